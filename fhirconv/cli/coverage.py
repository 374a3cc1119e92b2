"""`fhirconv coverage`: convert ClinicalTrials.gov API v2 records and account for every field.

Prints, per field path of `mappings/ctgov-field-spec.json` seen in the input, how many records had
it and how many carried it into their Bundle (measured, see `fhirconv.coverage`), then the
carried/present figure, the sections out of scope and any field the spec does not know.
Exit 1 when the input has fields the spec does not know, or records that could not be converted.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from fhirconv.cli import app, usage_error
from fhirconv.cli.progress import progress_bar
from fhirconv.coverage import Coverage, measure_inputs
from fhirconv.errors import ExitCode

Json = dict[str, Any]


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def render_table(coverage: Coverage) -> str:
    lines: list[str] = []
    module = None
    width = max((len(spec.path) for spec, _ in coverage.rows()), default=20)
    header = f"{'path':<{width}}  {'present':>7}  {'carried':>7}  {'%':>6}  target / dropped reason"
    for spec, count in coverage.rows():
        if spec.module != module:
            module = spec.module
            lines += ["", f"## {module}", header]
        carried = "-" if spec.dropped else str(count.records_carried)
        percent = "" if spec.dropped else _percent(count.records_carried, count.records_present)
        flag = " [nonstandard key]" if spec.nonstandard else ""
        lines.append(
            f"{spec.path:<{width}}  {count.records_present:>7}  {carried:>7}  {percent:>6}  "
            f"{spec.describe}{flag}"
        )
    lines += [
        "",
        f"records: {coverage.records}"
        + (f", not converted: {len(coverage.failed)}" if coverage.failed else ""),
        f"carried/present = {coverage.carried}/{coverage.present} "
        f"({_percent(coverage.carried, coverage.present)})"
        "  [record × field pairs, fields with a target]",
        f"dropped with a reason: {coverage.dropped_present} record × field pairs "
        f"in {sum(1 for s, _ in coverage.rows() if s.dropped)} fields",
        "",
        "out of scope:",
    ]
    for section in coverage.spec.out_of_scope:
        records = coverage.out_of_scope.get(section.prefix, 0)
        lines.append(f"  {section.prefix} ({records} records): {section.reason}")
        lines.append(f"    follow: {section.follow}")
    lines.append("")
    if coverage.unknown:
        lines.append(f"unknown paths ({len(coverage.unknown)}), not in the field spec:")
        lines += [f"  {path} ({n} records)" for path, n in sorted(coverage.unknown.items())]
    else:
        lines.append("unknown paths: none")
    return "\n".join(lines)


@app.command()
def coverage(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="ClinicalTrials.gov API v2 JSON files (study, page, array, NDJSON) or directories."
        ),
    ],
    output_format: Annotated[
        str, typer.Option("--format", help="table (for people) or json (for machines).")
    ] = "table",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Convert API v2 records and report, per field path, how many records had it and how many
    carried it into the Bundle; the carried/present figure; fields the spec does not know."""
    if output_format not in {"table", "json"}:
        raise usage_error("--format must be table or json")
    with progress_bar("measuring", quiet=quiet, unit="records") as bar:
        result = measure_inputs(inputs, progress=bar.advance)
    if output_format == "json":
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    else:
        typer.echo(render_table(result))
    for failure in result.failed:
        typer.secho(f"error: {failure}", err=True, fg=typer.colors.RED)
    if result.unknown or result.failed:
        raise typer.Exit(code=ExitCode.RECORDS_FAILED)
