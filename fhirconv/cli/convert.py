"""`fhirconv convert` and `fhirconv validate`."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.bundle import dumps, ndjson_by_type
from fhirconv.cli import app
from fhirconv.cli.push import push
from fhirconv.convert import ConvertedStudy, convert_inputs
from fhirconv.errors import FhirconvError, RecordError
from fhirconv.fetch import StudyFetcher
from fhirconv.sources import FORMATS
from fhirconv.validate import errors, validate_bundle, validate_resource


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
    studies: list[ConvertedStudy] = []
    failures: list[str] = []
    records = 0
    fetcher = StudyFetcher()  # NCT-id inputs: downloaded ($FHIRCONV_CTGOV_BASE_URL: a mirror)
    try:
        converted_at = datetime.now(UTC).replace(microsecond=0) if timestamp else None
        for result in convert_inputs(inputs, source_format, converted_at, fetcher=fetcher):
            records += 1
            if isinstance(result, RecordError):
                failures.append(str(result))
            elif not result.ok:
                shown = "; ".join(str(i) for i in errors(result.issues)[:5])
                failures.append(f"{result.trial.source.describe()}: validation failed: {shown}")
            else:
                studies.append(result)
                if not quiet:
                    for warning in result.warnings:
                        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    except FhirconvError as error:
        raise _fail_usage(str(error)) from None
    finally:
        fetcher.close()
    if push_to and output_format != "bundle":
        raise _fail_usage("--push sends transaction Bundles: use it with --format bundle")
    with tempfile.TemporaryDirectory(prefix="fhirconv-") as scratch:
        if push_to and output in (None, "-"):
            output = scratch + "/"  # nothing asked on stdout: push from a scratch directory
        if output_format == "ndjson":
            _write_ndjson(studies, output)
        else:
            many = records > 1 or any(Path(name).is_dir() for name in inputs if name != "-")
            _write_bundles(studies, output, pretty, many)
        for failure in failures:
            typer.secho(f"error: {failure}", err=True, fg=typer.colors.RED)
        noun = "study" if len(studies) == 1 else "studies"
        typer.echo(f"converted {len(studies)} {noun}, {len(failures)} failed", err=True)
        push_code = 0
        if push_to and studies and output:
            push_code = _push_written(Path(output), push_to, push_token_env, push_token_file)
    if failures or push_code:
        raise typer.Exit(code=max(1 if failures else 0, push_code))


def _push_written(
    written: Path, server: str, token_env: str | None, token_file: Path | None
) -> int:
    """Run `fhirconv push` on what was just written; its exit code."""
    try:
        push(paths=[written], server=server, token_env=token_env, token_file=token_file)
    except typer.Exit as done:
        return done.exit_code
    return 0


def _write_bundles(
    studies: list[ConvertedStudy], output: str | None, pretty: bool, many: bool
) -> None:
    """One study to a file; several (or a directory given) to a directory of NCT….json files."""
    if output is None or output == "-":
        for study in studies:
            typer.echo(dumps(study.bundle, pretty), nl=False)
        return
    target = Path(output)
    if not many and not target.is_dir() and not output.endswith(("/", "\\")):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dumps(studies[0].bundle, pretty), encoding="utf-8")
        return
    target.mkdir(parents=True, exist_ok=True)
    for study in studies:
        (target / f"{study.nct_id}.json").write_text(dumps(study.bundle, pretty), encoding="utf-8")


def _write_ndjson(studies: list[ConvertedStudy], output: str | None) -> None:
    by_type = ndjson_by_type(r for study in studies for r in study.resources)
    if output is None or output == "-":
        for lines in by_type.values():
            for line in lines:
                typer.echo(line)
        return
    target = Path(output)
    target.mkdir(parents=True, exist_ok=True)
    for kind, lines in by_type.items():
        (target / f"{kind}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")


@app.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Bundle JSON files, NDJSON of bundles or resources, or directories."),
    ],
) -> None:
    """Validate FHIR R4 bundles or resources on disk; print each problem with resource and path."""
    problems = 0
    checked = 0
    for file in _json_files(files):
        try:
            documents = _documents(file)
        except (OSError, ValueError) as error:
            typer.secho(f"error: {file}: cannot read: {error}", err=True, fg=typer.colors.RED)
            problems += 1
            continue
        for where, document in documents:
            checked += 1
            issues = (
                validate_bundle(document)
                if document.get("resourceType") == "Bundle"
                else validate_resource(document)
            )
            for issue in issues:
                typer.echo(f"{file}{where}: {issue}")
            problems += len(errors(issues))
    typer.echo(f"checked {checked} document(s): {problems} error(s)", err=True)
    if problems:
        raise typer.Exit(code=1)


def _json_files(paths: list[Path]) -> list[Path]:
    result: list[Path] = []
    for path in paths:
        if path.is_dir():
            result += sorted(p for p in path.rglob("*") if p.suffix in {".json", ".ndjson"})
        else:
            result.append(path)
    return result


def _documents(file: Path) -> list[tuple[str, dict[str, object]]]:
    text = file.read_text(encoding="utf-8")
    try:
        return [("", json.loads(text))]
    except json.JSONDecodeError:
        return [
            (f":{n}", json.loads(line))
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip()
        ]
