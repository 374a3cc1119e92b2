"""`fhirconv validate`: check bundles or resources on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fhirconv.cli import app, usage_error
from fhirconv.errors import ExitCode
from fhirconv.validate import errors, validate_files


@app.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Bundle JSON files, NDJSON of bundles or resources, or directories."),
    ],
) -> None:
    """Validate FHIR R4 bundles or resources on disk; print each problem with resource and path."""
    for path in files:
        if not path.exists():
            raise usage_error(f"{path}: no such file or directory")
    problems = 0
    checked = 0
    for document in validate_files(files):
        checked += 1
        for issue in document.issues:
            typer.echo(f"{document.where}: {issue}")
        problems += len(errors(document.issues))
    typer.echo(f"checked {checked} document(s): {problems} error(s)", err=True)
    if problems or not checked:
        raise typer.Exit(code=ExitCode.RECORDS_FAILED)
