"""`fhirconv match`: patients × studies → eligibility verdicts with reasons."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.atomic import write_text_atomically
from fhirconv.cli import app, fail, usage_error
from fhirconv.cli.progress import progress_bar
from fhirconv.errors import ExitCode, OutputError
from fhirconv.match import Options, load_studies, match, render_table
from fhirconv.match.records import InputError, iter_patients
from fhirconv.match.summary import Summary


@app.command("match")
def match_command(
    patients: Annotated[
        list[Path],
        typer.Argument(
            help="Patient records, FHIR R4: Bundle JSON files, NDJSON files (a Bulk Data $export"
            " folder: Patient.ndjson, Condition.ndjson, …) or directories of them."
        ),
    ],
    study: Annotated[
        list[Path],
        typer.Option(
            "--study",
            "-s",
            help="Studies written by `fhirconv convert`: Bundle files, NDJSON, or directories"
            " (repeatable).",
        ),
    ],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Evaluation date YYYY-MM-DD (default: today).")
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (for people) or json (one object per patient × study per line).",
        ),
    ] = "table",
    lookback: Annotated[
        int,
        typer.Option(
            "--lookback-days",
            help="Results older than this count as missing when the criterion gives no window.",
        ),
    ] = 365,
    summary_file: Annotated[
        Path | None,
        typer.Option(
            "--summary",
            help="Also write a summary across patients here: per study, counts by verdict and"
            " the ranked candidates.",
        ),
    ] = None,
    summary_format: Annotated[str, typer.Option("--summary-format", help="json or text.")] = "json",
    summary_top: Annotated[
        int, typer.Option("--summary-top", help="Candidates listed per study in the summary.")
    ] = 100,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Evaluate every patient against every study's eligibility criteria, with reasons.

    Patients are read and evaluated one at a time. A file that cannot be read is reported on
    stderr and skipped; the others are still evaluated, and the exit code is then 1.
    """
    if output_format not in ("table", "json"):
        raise usage_error("--format must be table or json")
    if summary_format not in ("json", "text"):
        raise usage_error("--summary-format must be json or text")
    try:
        when = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise usage_error(f"--as-of must be a date YYYY-MM-DD, not {as_of!r}") from None
    for path in [*patients, *study]:
        if not path.exists():
            raise usage_error(f"no such file: {path}")
    try:
        studies = load_studies(study)
    except (InputError, OSError, UnicodeDecodeError) as error:
        raise usage_error(str(error)) from None
    options = Options(as_of=when, lookback_days=lookback)
    summary = Summary(top=summary_top) if summary_file else None
    failures = 0
    first = True
    try:
        with progress_bar("matching", quiet=quiet, unit="patients") as bar:
            for record in iter_patients(patients):
                bar.advance()
                if isinstance(record, InputError):
                    failures += 1
                    bar.echo(f"error: {record}", color="red")
                    continue
                for trial in studies:
                    result = match(record, trial, options)
                    line = result.as_json()
                    if summary is not None:
                        summary.add(line)
                    if output_format == "json":
                        typer.echo(json.dumps(line, ensure_ascii=False))
                    else:
                        if not first:
                            typer.echo("")
                        typer.echo(render_table(result))
                    first = False
    except BrokenPipeError:
        raise  # the reader closed stdout (`| head`): the CLI ends quietly
    except (InputError, OSError, UnicodeDecodeError) as error:
        raise usage_error(str(error)) from None
    if summary is not None and summary_file is not None:
        text = summary.render_json() if summary_format == "json" else summary.render_text()
        try:
            write_text_atomically(summary_file, text)
        except OutputError as error:
            raise fail(str(error), ExitCode.OUTPUT_FAILED) from None
    if failures:
        raise typer.Exit(code=ExitCode.RECORDS_FAILED)
