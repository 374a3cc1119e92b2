"""``fhirconv push``: send study bundles to a FHIR server as transactions.

Thin: parses options, builds a ``FhirClient`` and calls ``fhirconv.publish.push_bundles`` —
or, for a directory of resource NDJSON (``convert --format ndjson``), the bulk load
``fhirconv.publish.bulk.push_ndjson``; prints per-study (per-batch) lines and a summary.
Exits with ``fhirconv.errors.ExitCode`` names: OK, RECORDS_FAILED (some study or batch refused;
the others were still pushed), USAGE, SERVER_UNREACHABLE, AUTH_REFUSED, TLS_FAILED,
OUTCOME_UNKNOWN, BAD_NDJSON, INTERRUPTED.
Secrets are only ever read from environment variables or files.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.cli import app, usage_error
from fhirconv.cli.progress import progress_bar
from fhirconv.cli.server_options import (
    BasicPasswordEnvOption,
    BasicPasswordFileOption,
    BasicUserOption,
    ConnectTimeoutOption,
    InsecureOption,
    ServerArguments,
    ServerOption,
    SmartClientIdOption,
    SmartKeyOption,
    SmartKidOption,
    SmartTokenUrlOption,
    TokenEnvOption,
    TokenFileOption,
    build_client,
)
from fhirconv.errors import ExitCode, InputError, PublishError
from fhirconv.publish.auth import AuthConfigError, AuthOptions
from fhirconv.publish.bulk import (
    DEFAULT_BATCH_SIZE,
    import_operation,
    ordered_files,
    push_ndjson,
    resource_files,
)
from fhirconv.publish.client import FhirClient
from fhirconv.publish.importer import ImportRefused, import_ndjson
from fhirconv.publish.push import StopRule, push_bundles
from fhirconv.publish.report import StudyResult

Progress = Callable[[StudyResult, int, int], None]


def _usage(message: str) -> typer.Exit:
    return usage_error(message, "Try 'fhirconv push --help' for help.")


def _shown(result: StudyResult) -> bool:
    """Bundles never sent are listed once in the summary, not one line each."""
    return result.status != "not-sent"


def _echo_result(result: StudyResult) -> None:
    if not _shown(result):
        return
    typer.echo(result.line())
    for line in result.detail_lines():
        typer.echo(line)


@contextmanager
def _progress(quiet: bool, unit: str = "studies") -> Iterator[Progress]:
    """The shared progress bar (not under -q or for a dry run, whose plan is the output);
    study lines always go to stdout, printed above the bar when both are this terminal."""
    with progress_bar("pushing", quiet=quiet, unit=unit) as bar:

        def update(result: StudyResult, done: int, total: int) -> None:
            if _shown(result):
                for line in [result.line(), *result.detail_lines()]:
                    bar.echo(line, err=bar.enabled and sys.stdout.isatty())
            bar.update(done, total)

        yield update


@app.command("push")
def push(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="BUNDLE_OR_DIR...",
            help="Transaction Bundle files (NCTxxxxxxxx.json, or NDJSON with one Bundle a line), "
            "or directories of them; or a directory of resource NDJSON (convert --format "
            "ndjson), loaded in batches with a journal to resume from.",
        ),
    ],
    server: ServerOption = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Bundles in flight at once.")] = 4,
    token_env: TokenEnvOption = None,
    token_file: TokenFileOption = None,
    basic_user: BasicUserOption = None,
    basic_password_env: BasicPasswordEnvOption = None,
    basic_password_file: BasicPasswordFileOption = None,
    smart_client_id: SmartClientIdOption = None,
    smart_key: SmartKeyOption = None,
    smart_token_url: SmartTokenUrlOption = None,
    smart_scope: Annotated[str, typer.Option(help="SMART: scopes to request.")] = (
        "system/*.write"
    ),
    smart_kid: SmartKidOption = None,
    timeout: Annotated[
        float,
        typer.Option(
            min=1.0, help="Seconds to wait for the server's answer to one bundle.", metavar="S"
        ),
    ] = 120.0,
    connect_timeout: ConnectTimeoutOption = 10.0,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            max=20,
            help="Retries after the first attempt on 429/502/503/504 and network errors "
            "(never for a bundle with a plain POST).",
            metavar="N",
        ),
    ] = 4,
    max_connection_failures: Annotated[
        int,
        typer.Option(
            min=1,
            help="Stop after this many bundles in a row could not reach the server (each "
            "after its retries); the rest are reported as not sent.",
            metavar="N",
        ),
    ] = 3,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            max=10000,
            help="Resource NDJSON: resources per transaction.",
            metavar="N",
        ),
    ] = DEFAULT_BATCH_SIZE,
    journal: Annotated[
        Path | None,
        typer.Option(
            help="Resource NDJSON: the journal of batches that landed, read to resume "
            "(default: push.journal beside the input).",
            metavar="PATH",
        ),
    ] = None,
    use_import: Annotated[
        bool,
        typer.Option(
            "--import/--no-import",
            help="Resource NDJSON: load through the server's bulk $import when its"
            " CapabilityStatement offers it (the files are served to it from this machine);"
            " --no-import always uses batched transactions.",
        ),
    ] = True,
    import_address: Annotated[
        str | None,
        typer.Option(
            help="$import: the host[:port] the server reaches this machine at (default: "
            "127.0.0.1, for a server on this machine); files are served on all interfaces then.",
            metavar="HOST[:PORT]",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what would be sent (method and URL per entry); send nothing."
        ),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar (study lines still print).")
    ] = False,
    insecure: InsecureOption = False,
) -> None:
    """Push transaction Bundles to a FHIR server; report created / updated / unchanged."""
    if not dry_run and not server:
        raise _usage("give the FHIR server: --server URL or FHIRCONV_SERVER")
    if server and not server.startswith(("http://", "https://")):
        raise _usage(f"--server must be an http:// or https:// URL, not {server!r}")
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise _usage("no such file or directory: " + ", ".join(missing))
    client: FhirClient | None = None
    if not dry_run:
        assert server is not None
        arguments = ServerArguments(
            server=server,
            auth=AuthOptions(
                token_env=token_env,
                token_file=token_file,
                basic_user=basic_user,
                basic_password_env=basic_password_env,
                basic_password_file=basic_password_file,
                smart_client_id=smart_client_id,
                smart_key=smart_key,
                smart_token_url=smart_token_url,
                smart_scope=smart_scope,
                smart_kid=smart_kid,
            ),
            timeout=timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            insecure=insecure,
            max_connections=concurrency,
        )
        try:
            client = build_client(arguments)
        except (AuthConfigError, PublishError) as exc:
            raise _usage(str(exc)) from None
    try:
        bulk_files = resource_files(paths)
    except InputError as exc:
        raise _usage(str(exc)) from None
    if bulk_files is not None:
        if client is not None and use_import and import_operation(client):
            _import(bulk_files, client, import_address)  # falls back when refused
        elif client is not None:
            typer.echo(
                "note: loading with batched transactions"
                + ("" if use_import else " (--no-import)")
                + ("; the server does not offer $import" if use_import else ""),
                err=True,
            )
        _bulk(
            bulk_files,
            client,
            server,
            concurrency,
            batch_size,
            journal,
            dry_run,
            max_connection_failures,
            quiet,
        )
    try:
        with _progress(quiet or dry_run) as progress:
            summary = push_bundles(
                paths,
                client,
                concurrency=concurrency,
                dry_run=dry_run,
                progress=progress,
                stop_rule=StopRule(max_connection_failures=max_connection_failures),
            )
    except InputError as exc:
        raise _usage(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo("interrupted: studies in flight may or may not have been pushed", err=True)
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        if client is not None:
            client.close()
    for line in summary.lines():
        typer.echo(line)
    raise typer.Exit(summary.exit_code)


def _import(files: list[Path], client: FhirClient, address: str | None) -> None:
    """Load through $import and exit; return (to fall back) only when the server refused the
    kick-off, so nothing was imported."""
    typer.echo("note: the server offers $import; serving the files to it", err=True)
    try:
        result = import_ndjson(
            ordered_files(files),
            client,
            bind="0.0.0.0" if address else "127.0.0.1",
            advertise=address,
        )
    except ImportRefused as exc:
        typer.echo(f"note: {exc}; loading with batched transactions instead", err=True)
        return
    except PublishError as exc:
        client.close()
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(ExitCode.OUTCOME_UNKNOWN) from None
    client.close()
    typer.echo(
        f"Imported {result.resources} resources from {result.files} files through "
        f"$import in {result.elapsed:.1f} s"
    )
    raise typer.Exit(ExitCode.OK)


def _bulk(
    files: list[Path],
    client: FhirClient | None,
    server: str | None,
    concurrency: int,
    batch_size: int,
    journal: Path | None,
    dry_run: bool,
    max_connection_failures: int,
    quiet: bool,
) -> None:
    """The bulk load of resource NDJSON; exits with its code."""
    try:
        with _progress(quiet or dry_run, "batches") as progress:
            summary = push_ndjson(
                files,
                client,
                batch_size=batch_size,
                concurrency=concurrency,
                journal_path=journal,
                dry_run=dry_run,
                progress=progress,
                stop_rule=StopRule(max_connection_failures=max_connection_failures),
                base_url=server,
            )
    except InputError as exc:
        raise _usage(str(exc)) from None
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: batches in flight may or may not have landed; run the same "
            "command again to resume from the journal",
            err=True,
        )
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    finally:
        if client is not None:
            client.close()
    for line in summary.lines():
        typer.echo(line)
    raise typer.Exit(summary.exit_code)
