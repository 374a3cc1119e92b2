"""Load the eligibility code tables (CSV files in `mappings/`, shipped as `fhirconv/_mappings`)."""

from __future__ import annotations

import csv
import importlib.resources
import io
from functools import cache
from pathlib import Path

import fhirconv


def _read_table_text(file_name: str) -> str:
    """Text of a mappings file: from the installed wheel first, else from the source checkout."""
    packaged = importlib.resources.files("fhirconv") / "_mappings" / file_name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = Path(fhirconv.__file__).resolve().parents[1] / "mappings" / file_name
    return checkout.read_text(encoding="utf-8")


@cache
def load_rows(file_name: str) -> tuple[dict[str, str], ...]:
    """Rows of a CSV table as dicts; lines starting with '#' (source citations) are skipped."""
    lines = [line for line in io.StringIO(_read_table_text(file_name)) if not line.startswith("#")]
    return tuple(dict(row) for row in csv.DictReader(lines))
