"""Thin adapter over the shared mapping-table loader (`fhirconv.tables`).

Kept so older imports of `load_rows` keep working; new code imports `load_csv` directly.
"""

from __future__ import annotations

from fhirconv.tables import load_csv, load_json, mapping_path

__all__ = ["load_csv", "load_json", "load_rows", "mapping_path"]


def load_rows(file_name: str) -> tuple[dict[str, str], ...]:
    """Rows of a CSV table in `mappings/` as dicts; '#' comment lines are skipped."""
    return load_csv(file_name)
