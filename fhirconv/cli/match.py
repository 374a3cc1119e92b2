"""`fhirconv match`: patients × studies → eligibility verdicts with reasons."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.cli import app, usage_error
from fhirconv.match import Options, load_patients, load_studies, match, render_table
from fhirconv.match.records import InputError


@app.command("match")
def match_command(
    patients: Annotated[
        list[Path],
        typer.Argument(
            help="Patient records: FHIR R4 Bundle JSON or NDJSON files (or directories)."
        ),
    ],
    study: Annotated[
        list[Path],
        typer.Option(
            "--study", "-s", help="Study Bundle(s) written by `fhirconv convert` (repeatable)."
        ),
    ],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Evaluation date YYYY-MM-DD (default: today).")
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table (for people) or json (one object per line).")
    ] = "table",
    lookback: Annotated[
        int,
        typer.Option(
            "--lookback-days",
            help="Results older than this count as missing when the criterion gives no window.",
        ),
    ] = 365,
) -> None:
    """Evaluate every patient against every study's eligibility criteria, with reasons."""
    if output_format not in ("table", "json"):
        raise usage_error("--format must be table or json")
    try:
        when = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise usage_error(f"--as-of must be a date YYYY-MM-DD, not {as_of!r}") from None
    for path in [*patients, *study]:
        if not path.exists():
            raise usage_error(f"no such file: {path}")
    try:
        records = load_patients(patients)
        studies = load_studies(study)
    except (InputError, OSError, UnicodeDecodeError) as error:
        raise usage_error(str(error)) from None
    options = Options(as_of=when, lookback_days=lookback)
    first = True
    for record in records:
        for trial in studies:
            result = match(record, trial, options)
            if output_format == "json":
                typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
            else:
                if not first:
                    typer.echo("")
                typer.echo(render_table(result))
            first = False
