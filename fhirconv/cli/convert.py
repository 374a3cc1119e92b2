"""`fhirconv convert` and `fhirconv validate`."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.cli import app
from fhirconv.cli.push import push
from fhirconv.convert import convert_inputs
from fhirconv.errors import FhirconvError, RecordError
from fhirconv.fetch import StudyFetcher
from fhirconv.sources import FORMATS
from fhirconv.validate import errors
from fhirconv.write import BundleWriter, NdjsonWriter


def _fail_usage(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


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
) -> None:
    """Convert trial records into validated FHIR R4 transaction Bundles (or NDJSON)."""
    if source_format and source_format not in FORMATS:
        raise _fail_usage(f"--from must be one of {', '.join(FORMATS)}, not {source_format!r}")
    if output_format not in {"bundle", "ndjson"}:
        raise _fail_usage("--format must be bundle or ndjson")
    if push_to and output_format != "bundle":
        raise _fail_usage("--push sends transaction Bundles: use it with --format bundle")
    with tempfile.TemporaryDirectory(prefix="fhirconv-") as scratch:
        if push_to and output in (None, "-"):
            output = scratch + "/"  # nothing asked on stdout: push from a scratch directory
        several = len(inputs) > 1 or any(Path(name).is_dir() for name in inputs if name != "-")
        converted, failures = _convert_and_write(
            inputs, output, source_format, output_format, pretty, several, timestamp, quiet
        )
        for failure in failures:
            typer.secho(f"error: {failure}", err=True, fg=typer.colors.RED)
        noun = "study" if converted == 1 else "studies"
        typer.echo(f"converted {converted} {noun}, {len(failures)} failed", err=True)
        push_code = 0
        if push_to and converted and output:
            push_code = _push_written(Path(output), push_to, push_token_env, push_token_file)
    if failures or push_code:
        raise typer.Exit(code=max(1 if failures else 0, push_code))


def _echo(text: str) -> None:
    typer.echo(text, nl=False)


def _convert_and_write(
    inputs: list[str],
    output: str | None,
    source_format: str | None,
    output_format: str,
    pretty: bool,
    several: bool,
    timestamp: bool,
    quiet: bool,
) -> tuple[int, list[str]]:
    """Convert and write study by study (constant memory); the count written and the failures."""
    failures: list[str] = []
    converted = 0
    bundles = BundleWriter(output, pretty=pretty, several=several, echo=_echo)
    resources = NdjsonWriter(output, echo=_echo) if output_format == "ndjson" else None
    fetcher = StudyFetcher()  # NCT-id inputs: downloaded ($FHIRCONV_CTGOV_BASE_URL: a mirror)
    try:
        converted_at = datetime.now(UTC).replace(microsecond=0) if timestamp else None
        for result in convert_inputs(inputs, source_format, converted_at, fetcher=fetcher):
            if isinstance(result, RecordError):
                failures.append(str(result))
            elif not result.ok:
                shown = "; ".join(str(i) for i in errors(result.issues)[:5])
                failures.append(f"{result.trial.source.describe()}: validation failed: {shown}")
            else:
                converted += 1
                if resources is not None:
                    resources.add(result.resources)
                else:
                    bundles.add(result.nct_id, result.bundle)
                if not quiet:
                    for warning in result.warnings:
                        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    except FhirconvError as error:
        raise _fail_usage(str(error)) from None
    finally:
        fetcher.close()
        bundles.close()
        if resources is not None:
            resources.close()
    return converted, failures


def _push_written(
    written: Path, server: str, token_env: str | None, token_file: Path | None
) -> int:
    """Run `fhirconv push` on what was just written; its exit code."""
    try:
        push(paths=[written], server=server, token_env=token_env, token_file=token_file)
    except typer.Exit as done:
        return done.exit_code
    return 0
