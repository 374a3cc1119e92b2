"""`fhirconv convert` and `fhirconv validate`."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.cli import app, fail, usage_error
from fhirconv.cli.push import push
from fhirconv.convert import convert_inputs
from fhirconv.errors import ExitCode, FhirconvError, OutputError, RecordError
from fhirconv.fetch import StudyFetcher
from fhirconv.parallel import default_jobs
from fhirconv.sources import FORMATS
from fhirconv.validate import errors
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
    """Convert trial records into validated FHIR R4 transaction Bundles (or NDJSON)."""
    if source_format and source_format not in FORMATS:
        raise usage_error(f"--from must be one of {', '.join(FORMATS)}, not {source_format!r}")
    if validation not in {"fast", "full"}:
        raise usage_error("--validate must be fast or full")
    if output_format not in {"bundle", "ndjson"}:
        raise usage_error("--format must be bundle or ndjson")
    if push_to and output_format != "bundle":
        raise usage_error("--push sends transaction Bundles: use it with --format bundle")
    several = len(inputs) > 1 or any(Path(name).is_dir() for name in inputs if name != "-")
    if several and output_format == "bundle" and _names_one_file(output):
        raise usage_error(
            f"-o {output} names one file, but the inputs hold several studies",
            "Give a directory (e.g. -o out/) for one NCTxxxxxxxx.json per study.",
        )
    with tempfile.TemporaryDirectory(prefix="fhirconv-") as scratch:
        if push_to and output in (None, "-"):
            output = scratch + "/"  # nothing asked on stdout: push from a scratch directory
        run = _convert_and_write(
            inputs,
            output,
            source_format,
            output_format,
            pretty,
            several,
            timestamp,
            quiet,
            jobs or default_jobs(),
            validation == "full",
        )
        for failure in run.failures:
            typer.secho(f"error: {failure}", err=True, fg=typer.colors.RED)
        noun = "study" if run.converted == 1 else "studies"
        typer.echo(f"converted {run.converted} {noun}, {len(run.failures)} failed", err=True)
        if run.write_error is not None:
            kept = (
                f"{len(run.written)} complete file(s) written before it are kept"
                if run.written
                else "nothing was written"
            )
            raise fail(f"{run.write_error}; stopped, {kept}", ExitCode.OUTPUT_FAILED)
        push_code = 0
        if push_to and run.converted and output:
            push_code = _push_written(Path(output), push_to, push_token_env, push_token_file)
    if run.failures or push_code:
        raise typer.Exit(code=max(ExitCode.RECORDS_FAILED if run.failures else 0, push_code))


def _names_one_file(output: str | None) -> bool:
    """Whether -o names a single file: an existing file, or a new name ending in .json."""
    if output in (None, "-") or output.endswith(("/", "\\")):
        return False
    path = Path(output)
    return path.is_file() or (not path.exists() and path.suffix.lower() == ".json")


def _echo(text: str) -> None:
    typer.echo(text, nl=False)


@dataclass
class _Run:
    converted: int = 0
    failures: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    write_error: OutputError | None = None


def _convert_and_write(
    inputs: list[str],
    output: str | None,
    source_format: str | None,
    output_format: str,
    pretty: bool,
    several: bool,
    timestamp: bool,
    quiet: bool,
    jobs: int,
    full_validation: bool,
) -> _Run:
    """Convert and write study by study (constant memory). A write failure stops the run: what
    was written completely is kept and listed, nothing partial is left."""
    run = _Run()
    fetcher = StudyFetcher()  # NCT-id inputs: downloaded ($FHIRCONV_CTGOV_BASE_URL: a mirror)
    bundles: BundleWriter | None = None
    resources: NdjsonWriter | None = None
    try:
        if output_format == "ndjson":
            resources = NdjsonWriter(output, echo=_echo)
        else:
            bundles = BundleWriter(output, pretty=pretty, several=several, echo=_echo)
        converted_at = datetime.now(UTC).replace(microsecond=0) if timestamp else None
        for result in convert_inputs(
            inputs,
            source_format,
            converted_at,
            fetcher=fetcher,
            jobs=jobs,
            full_validation=full_validation,
        ):
            if isinstance(result, RecordError):
                run.failures.append(str(result))
            elif not result.ok:
                shown = "; ".join(str(i) for i in errors(result.issues)[:5])
                run.failures.append(f"{result.trial.source.describe()}: validation failed: {shown}")
            else:
                if resources is not None:
                    resources.add(result.resources)
                elif bundles is not None:
                    bundles.add(result.nct_id, result.bundle)
                run.converted += 1
                if not quiet:
                    for warning in result.warnings:
                        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
        if bundles is not None:
            bundles.close()
        if resources is not None:
            resources.close()
    except OutputError as error:
        run.write_error = error
    except FhirconvError as error:
        raise usage_error(str(error)) from None
    finally:
        fetcher.close()
        if bundles is not None:
            bundles.abort()
            run.written = bundles.written
        if resources is not None:
            resources.abort()
            run.written = resources.written
    return run


def _push_written(
    written: Path, server: str, token_env: str | None, token_file: Path | None
) -> int:
    """Run `fhirconv push` on what was just written; its exit code."""
    try:
        push(paths=[written], server=server, token_env=token_env, token_file=token_file)
    except typer.Exit as done:
        return done.exit_code
    return 0
