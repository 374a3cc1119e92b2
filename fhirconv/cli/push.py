"""``fhirconv push``: send study bundles to a FHIR server as transactions.

Thin: parses options, builds a ``FhirClient`` and calls ``fhirconv.publish.push_bundles`` —
or, for a directory of resource NDJSON (``convert --format ndjson``), the bulk load
``fhirconv.publish.bulk.push_ndjson``; prints per-study (per-batch) lines and a summary.
Exit 0 all pushed, 1 some study failed (the others were still pushed), 2 usage error.
Secrets are only ever read from environment variables or files.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.cli import app
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
from fhirconv.errors import InputError, PublishError
from fhirconv.publish.auth import AuthConfigError, AuthOptions
from fhirconv.publish.bulk import DEFAULT_BATCH_SIZE, import_operation, push_ndjson, resource_files
from fhirconv.publish.client import FhirClient
from fhirconv.publish.push import StopRule, push_bundles
from fhirconv.publish.report import StudyResult

Progress = Callable[[StudyResult, int, int], None]


def _usage(message: str) -> typer.Exit:
    """Print a usage error and return the exit (code 2) for the caller to raise."""
    typer.echo(f"Error: {message}", err=True)
    typer.echo("Try 'fhirconv push --help' for help.", err=True)
    return typer.Exit(2)


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
def _progress(dry_run: bool) -> Iterator[Progress]:
    """A progress display on stderr when it is a terminal; study lines always go to stdout."""
    interactive = sys.stderr.isatty()
    if interactive and sys.stdout.isatty() and not dry_run:
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress
        except ImportError:
            pass
        else:
            with RichProgress(
                TextColumn("pushing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            ) as bar:
                task = bar.add_task("push", total=None)

                def update(result: StudyResult, done: int, total: int) -> None:
                    # Both streams are this terminal: print above the bar, through its console.
                    for line in [result.line(), *result.detail_lines()] if _shown(result) else []:
                        bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
                    bar.update(task, completed=done, total=total)

                yield update
            return

    def plain(result: StudyResult, done: int, total: int) -> None:
        _echo_result(result)
        if interactive and not dry_run:
            end = "\n" if done >= total else ""
            sys.stderr.write(f"\r[{done}/{total}] studies done{end}")
            sys.stderr.flush()

    yield plain


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
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what would be sent (method and URL per entry); send nothing."
        ),
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
        _bulk(
            bulk_files,
            client,
            server,
            concurrency,
            batch_size,
            journal,
            dry_run,
            max_connection_failures,
        )
    try:
        with _progress(dry_run) as progress:
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
        raise typer.Exit(130) from None
    finally:
        if client is not None:
            client.close()
    for line in summary.lines():
        typer.echo(line)
    raise typer.Exit(summary.exit_code)


def _bulk(
    files: list[Path],
    client: FhirClient | None,
    server: str | None,
    concurrency: int,
    batch_size: int,
    journal: Path | None,
    dry_run: bool,
    max_connection_failures: int,
) -> None:
    """The bulk load of resource NDJSON; exits with its code."""
    if client is not None:
        offered = import_operation(client)
        typer.echo(
            "note: the server offers $import, but fhirconv cannot serve the files to it yet; "
            "loading with batched transactions"
            if offered
            else "note: the server does not offer $import; loading with batched transactions",
            err=True,
        )
    try:
        with _progress(dry_run) as progress:
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
        raise typer.Exit(130) from None
    finally:
        if client is not None:
            client.close()
    for line in summary.lines():
        typer.echo(line)
    raise typer.Exit(summary.exit_code)
