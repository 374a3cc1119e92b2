"""Finds and loads the data files in `mappings/` (code tables, display → enum tables).

The tables ship inside the wheel as `fhirconv/_mappings` (see pyproject's hatch `force-include`);
in a source checkout or editable install they are read from the repository's top-level
`mappings/` folder.
"""

from __future__ import annotations

import csv
import io
import json
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import fhirconv


def mappings_dir() -> Traversable:
    """The folder holding the code tables: packaged copy first, then the source checkout's."""
    packaged = resources.files("fhirconv") / "_mappings"
    if packaged.is_dir():
        return packaged
    return Path(fhirconv.__file__).resolve().parents[1] / "mappings"


def mapping_path(name: str) -> Traversable:
    """The mapping file `name` (e.g. "phase.json"), packaged or in the checkout."""
    path = mappings_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"mapping file {name!r} is missing from {mappings_dir()}")
    return path


@cache
def load_json(name: str) -> dict[str, Any]:
    """Parse the JSON mapping file `name` once per process."""
    data: dict[str, Any] = json.loads(mapping_path(name).read_text(encoding="utf-8"))
    return data


@cache
def load_csv(name: str) -> tuple[dict[str, str], ...]:
    """Rows of the CSV mapping file `name`; lines starting with # are comments (the source)."""
    text = mapping_path(name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return tuple(csv.DictReader(io.StringIO("\n".join(lines))))


@cache
def table_version() -> str:
    """A short content hash of all tables, recorded in Provenance so outputs can be traced
    (hashed once per process, like the tables are loaded once)."""
    import hashlib

    digest = hashlib.sha256()
    folder = mappings_dir()
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_file() and entry.name.endswith((".json", ".csv")):
            digest.update(entry.name.encode())
            digest.update(entry.read_bytes())
    return digest.hexdigest()[:12]
