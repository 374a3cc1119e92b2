"""`fhirconv validate`: check bundles or resources on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.cli import app
from fhirconv.validate import errors, validate_bundle, validate_resource


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
