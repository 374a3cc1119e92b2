"""`fhirconv convert` and `fhirconv validate`."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.cli import app, fail, usage_error
from fhirconv.cli.progress import Bar, progress_bar
from fhirconv.cli.server_options import ServerArguments, build_client
from fhirconv.convert import ConvertedStudy, convert_inputs
from fhirconv.errors import ExitCode, FhirconvError, OutputError, PublishError, RecordError
from fhirconv.fetch import StudyFetcher
from fhirconv.manifest import Manifest
from fhirconv.parallel import default_jobs
from fhirconv.pipeline import ConvertSummary, write_converted
from fhirconv.publish.auth import AuthOptions
from fhirconv.publish.client import FhirClient
from fhirconv.publish.push import push_stream
from fhirconv.sources import FORMATS
from fhirconv.sources.inputs import holds_several
from fhirconv.write import BundleWriter, NdjsonWriter


@app.command()
def convert(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Files, directories or - (stdin): CT.gov API v2 JSON/NDJSON, legacy XML,"
            " registry page text."
            " NCT ids (not existing paths) are fetched from ClinicalTrials.gov."
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Output file (one study) or directory (several). Default: stdout.",
        ),
    ] = None,
    source_format: Annotated[
        str | None,
        typer.Option("--from", help=f"Input format instead of detecting it: {', '.join(FORMATS)}."),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="bundle: one transaction Bundle per study; ndjson: one file per resource type.",
        ),
    ] = "bundle",
    pretty: Annotated[bool, typer.Option("--pretty", help="Indent the JSON.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not print mapping warnings.")
    ] = False,
    timestamp: Annotated[
        bool,
        typer.Option(
            "--timestamp",
            help="Record the conversion time in each Provenance (output then differs run to run).",
        ),
    ] = False,
    push_to: Annotated[
        str | None,
        typer.Option(
            "--push",
            metavar="URL",
            help="Also push the bundles to this FHIR server (as `fhirconv push`; for other"
            " authentication than a bearer token, convert with -o and run `fhirconv push`).",
        ),
    ] = None,
    push_token_env: Annotated[
        str | None,
        typer.Option(
            "--push-token-env", metavar="VAR", help="--push: bearer token from this variable."
        ),
    ] = None,
    push_token_file: Annotated[
        Path | None,
        typer.Option("--push-token-file", metavar="PATH", help="--push: bearer token file."),
    ] = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Convert every study even when the output directory's manifest says it is"
            " unchanged (the manifest is still updated).",
        ),
    ] = False,
    validation: Annotated[
        str,
        typer.Option(
            "--validate",
            help="fast: skip a resource's model when a quick walk proves it valid (the same"
            " errors); full: validate every resource through its fhir.resources model.",
        ),
    ] = "fast",
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            help="Worker processes (default: the machine's cores). Output is the same for any N.",
        ),
    ] = None,
) -> None:
    """Convert trial records into validated FHIR R4 transaction Bundles (or NDJSON).

    Into a directory, a re-run converts and writes only the studies whose record changed (see
    fhirconv-manifest.sqlite there), deletes those gone from the inputs, and says how many were
    new, changed, unchanged and gone; --push then pushes only the new and changed."""
    if source_format and source_format not in FORMATS:
        raise usage_error(f"--from must be one of {', '.join(FORMATS)}, not {source_format!r}")
    if validation not in {"fast", "full"}:
        raise usage_error("--validate must be fast or full")
    if output_format not in {"bundle", "ndjson"}:
        raise usage_error("--format must be bundle or ndjson")
    if push_to and output_format != "bundle":
        raise usage_error("--push sends transaction Bundles: use it with --format bundle")
    if push_to and not push_to.startswith(("http://", "https://")):
        raise usage_error(f"--push must be an http:// or https:// URL, not {push_to!r}")
    several = holds_several(inputs)
    if several and output_format == "bundle" and _names_one_file(output):
        raise usage_error(
            f"-o {output} names one file, but the inputs hold several studies",
            "Give a directory (e.g. -o out/) for one NCTxxxxxxxx.json per study.",
        )
    push_only = bool(push_to) and output in (None, "-")  # nothing asked on stdout: push only
    client = _push_client(push_to, push_token_env, push_token_file) if push_to else None
    fetcher = StudyFetcher()  # NCT-id inputs: downloaded ($FHIRCONV_CTGOV_BASE_URL: a mirror)
    try:
        with progress_bar("converting", quiet=quiet) as bar:
            summary = _run(
                inputs,
                None if push_only else output,
                push_only,
                source_format,
                output_format,
                pretty,
                several,
                timestamp,
                quiet,
                full,
                jobs or default_jobs(),
                validation == "full",
                fetcher,
                client,
                bar,
            )
    finally:
        fetcher.close()
        if client is not None:
            client.close()
    for failure in summary.failures:
        typer.secho(f"error: {failure}", err=True, fg=typer.colors.RED)
    for line in summary.lines():
        typer.echo(line, err=True)
    if summary.pushed is not None:
        for study in [*summary.pushed.failed, *summary.pushed.not_sent[:1]]:
            for line in [study.line(), *study.detail_lines()]:
                typer.secho(line, err=True, fg=typer.colors.RED)
        for line in summary.pushed.lines():
            typer.echo(line, err=True)
    if summary.write_error is not None:
        kept = (
            f"{summary.written} complete file(s) written before it are kept"
            if summary.written
            else "nothing was written"
        )
        raise fail(f"{summary.write_error}; stopped, {kept}", ExitCode.OUTPUT_FAILED)
    push_code = summary.pushed.exit_code if summary.pushed is not None else ExitCode.OK
    if summary.failures or push_code:
        raise typer.Exit(code=max(ExitCode.RECORDS_FAILED if summary.failures else 0, push_code))


def _names_one_file(output: str | None) -> bool:
    """Whether -o names a single file: an existing file, or a new name ending in .json."""
    if output in (None, "-") or output.endswith(("/", "\\")):
        return False
    path = Path(output)
    return path.is_file() or (not path.exists() and path.suffix.lower() == ".json")


def _echo(text: str) -> None:
    typer.echo(text, nl=False)


def _run(
    inputs: list[str],
    output: str | None,
    push_only: bool,
    source_format: str | None,
    output_format: str,
    pretty: bool,
    several: bool,
    timestamp: bool,
    quiet: bool,
    full: bool,
    jobs: int,
    full_validation: bool,
    fetcher: StudyFetcher,
    client: FhirClient | None,
    bar: Bar,
) -> ConvertSummary:
    """Open the writer (and the manifest of a Bundle directory), then convert, write and push
    study by study through the library."""
    writer: BundleWriter | NdjsonWriter | None = None
    manifest: Manifest | None = None
    try:
        if push_only:
            writer = None
        elif output_format == "ndjson":
            writer = NdjsonWriter(
                output, echo=_echo, request=shlex.join(["fhirconv", "convert", *inputs])
            )
        else:
            writer = BundleWriter(output, pretty=pretty, several=several, echo=_echo)
            if writer.directory is not None:
                manifest = Manifest(
                    writer.directory, f"pretty={pretty} timestamp={timestamp}", full=full
                )
    except OutputError as error:
        raise fail(str(error), ExitCode.OUTPUT_FAILED) from None

    def shown(result: ConvertedStudy | RecordError) -> None:
        bar.advance()
        if not quiet and isinstance(result, ConvertedStudy):
            for warning in result.warnings:
                bar.echo(f"warning: {warning}", color="yellow")

    converted_at = datetime.now(UTC).replace(microsecond=0) if timestamp else None
    try:
        results = convert_inputs(
            inputs,
            source_format,
            converted_at,
            fetcher=fetcher,
            manifest=manifest,
            studies=bar.set_total,
            jobs=jobs,
            full_validation=full_validation,
        )
        push = partial(push_stream, client=client) if client is not None else None
        return write_converted(results, writer, manifest=manifest, push=push, on_result=shown)
    except OutputError as error:
        raise fail(str(error), ExitCode.OUTPUT_FAILED) from None
    except FhirconvError as error:
        raise usage_error(str(error)) from None
    finally:
        if manifest is not None:
            manifest.close()


def _push_client(server: str, token_env: str | None, token_file: Path | None) -> FhirClient:
    """The client `--push` sends through, with `fhirconv push`'s defaults: a bearer token at most
    (other authentication: write with -o, then `fhirconv push`)."""
    arguments = ServerArguments(
        server=server,
        auth=AuthOptions(token_env=token_env, token_file=token_file),
        timeout=120.0,
        connect_timeout=10.0,
        retries=4,
        insecure=False,
        max_connections=10,
    )
    try:
        return build_client(arguments)
    except PublishError as error:  # a bad URL, or a token that cannot be read
        raise usage_error(str(error)) from None
