"""Reading the matcher's inputs: patient records and study Bundles, both plain FHIR R4 JSON.

A patient file is a Bundle (any type) or NDJSON (one resource or one Bundle per line) and may hold
several patients: resources are grouped by the Patient their `subject`/`patient` references. A
study file is a Bundle written by `fhirconv convert` (or NDJSON of resources): a ResearchStudy and
the Group its `enrollment` references.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fhirconv.errors import InputError as ParseError
from fhirconv.jsonio import json_documents
from fhirconv.mapping import systems

Json = dict[str, Any]

__all__ = [
    "DateRange",
    "PatientRecord",
    "Study",
    "add_duration",
    "load_patients",
    "load_studies",
    "parse_date",
    "read_resources",
]


class InputError(ValueError):
    """A file that is not FHIR JSON the matcher can read."""


# --- dates: partial FHIR dates as the range of days they may mean ---------------------------------

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class DateRange:
    """The earliest and latest day a (possibly partial) FHIR date or dateTime can mean."""

    earliest: date
    latest: date

    @property
    def exact(self) -> bool:
        return self.earliest == self.latest

    def __str__(self) -> str:
        if self.exact:
            return self.earliest.isoformat()
        return f"{self.earliest.isoformat()}..{self.latest.isoformat()}"


def _month_end(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(days=1)


def parse_date(value: object) -> DateRange | None:
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    year = int(match.group(1))
    try:
        if match.group(3):
            day = date(year, int(match.group(2)), int(match.group(3)))
            return DateRange(day, day)
        if match.group(2):
            month = int(match.group(2))
            return DateRange(date(year, month, 1), _month_end(year, month))
        return DateRange(date(year, 1, 1), date(year, 12, 31))
    except ValueError:
        return None


def add_duration(day: date, value: float, ucum: str, sign: int = 1) -> date:
    """`day` moved by a duration (calendar months and years, whole days otherwise)."""
    if ucum in ("a", "mo"):
        months = round(value * (12 if ucum == "a" else 1)) * sign
        index = day.year * 12 + day.month - 1 + months
        year, month = divmod(index, 12)
        last = _month_end(year, month + 1).day
        return date(year, month + 1, min(day.day, last))
    days = {"wk": 7.0, "d": 1.0, "h": 1 / 24, "min": 1 / 1440}.get(ucum, 1.0) * value
    return day + timedelta(days=round(days) * sign)


# --- reading files ------------------------------------------------------------------------------


def _documents(path: Path) -> Iterator[Json]:
    """The JSON objects in a file: one document, the items of a JSON array, or NDJSON lines (a
    UTF-8 BOM is allowed). Unreadable JSON (invalid, truncated, nested too deeply) is an
    InputError naming the file and line."""
    text = path.read_bytes().decode("utf-8-sig")
    for line, document in json_documents(text):
        if isinstance(document, ParseError):
            where = f"{path}" if line is None else f"{path}: line {line}"
            raise InputError(f"{where}: {document}")
        if isinstance(document, dict):
            yield document
        elif isinstance(document, list):
            yield from (d for d in document if isinstance(d, dict))


def read_resources(paths: Iterable[Path]) -> list[tuple[str | None, Json]]:
    """Every resource in the files, with its Bundle entry fullUrl when there is one."""
    found: list[tuple[str | None, Json]] = []
    for path in paths:
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in (".json", ".ndjson"))
            if path.is_dir()
            else [path]
        )
        for file in files:
            for document in _documents(file):
                found += list(_flatten(document))
    return found


def _flatten(document: Json) -> Iterator[tuple[str | None, Json]]:
    if document.get("resourceType") == "Bundle":
        for entry in document.get("entry", []) or []:
            resource = entry.get("resource")
            if isinstance(resource, dict):
                if resource.get("resourceType") == "Bundle":
                    yield from _flatten(resource)
                else:
                    yield entry.get("fullUrl"), resource
    elif "resourceType" in document:
        yield None, document


# --- patients -----------------------------------------------------------------------------------


@dataclass
class PatientRecord:
    patient: Json
    resources: list[Json] = field(default_factory=list)
    by_reference: dict[str, Json] = field(default_factory=dict)  # Medication look-ups

    @property
    def id(self) -> str:
        return str(self.patient.get("id") or "?")

    def of_type(self, *types: str) -> list[Json]:
        return [r for r in self.resources if r.get("resourceType") in types]

    def resolve(self, reference: object) -> Json | None:
        if not isinstance(reference, dict):
            return None
        ref = reference.get("reference")
        return self.by_reference.get(ref) if isinstance(ref, str) else None


_SUBJECT_FIELDS = ("subject", "patient", "beneficiary")


def load_patients(paths: Iterable[Path]) -> list[PatientRecord]:
    resources = read_resources(paths)
    keys: dict[str, PatientRecord] = {}
    records: list[PatientRecord] = []
    shared: dict[str, Json] = {}
    for full_url, resource in resources:
        kind = resource.get("resourceType")
        rid = resource.get("id")
        names = [f"{kind}/{rid}"] if rid else []
        if full_url:
            names.append(full_url)
        for name in names:
            shared[name] = resource
        if kind == "Patient":
            record = PatientRecord(resource)
            records.append(record)
            for name in names:
                keys[name] = record
    if not records:
        raise InputError("no Patient resource found")
    for _, resource in resources:
        if resource.get("resourceType") == "Patient":
            continue
        owner: PatientRecord | None = None
        for name in _SUBJECT_FIELDS:
            ref = resource.get(name)
            if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                owner = keys.get(ref["reference"])
                if owner is None and len(records) == 1:
                    owner = records[0]
                break
        else:
            if len(records) == 1 and resource.get("resourceType") != "Medication":
                owner = records[0]
        if owner is not None:
            owner.resources.append(resource)
    for record in records:
        record.by_reference = shared
        for resource in record.resources:
            for contained in resource.get("contained", []) or []:
                if isinstance(contained, dict) and contained.get("id"):
                    record.by_reference[f"#{contained['id']}"] = contained
    return records


# --- studies ------------------------------------------------------------------------------------


@dataclass
class Study:
    nct_id: str
    title: str
    research_study: Json
    group: Json | None

    @property
    def characteristics(self) -> list[Json]:
        return list((self.group or {}).get("characteristic", []) or [])


def _nct_id(study: Json) -> str:
    for identifier in study.get("identifier", []) or []:
        if identifier.get("system") == systems.NCT and identifier.get("value"):
            return str(identifier["value"])
    return str(study.get("id") or "?")


def load_studies(paths: Iterable[Path]) -> list[Study]:
    resources = read_resources(paths)
    groups: dict[str, Json] = {}
    for full_url, resource in resources:
        if resource.get("resourceType") == "Group":
            if resource.get("id"):
                groups[f"Group/{resource['id']}"] = resource
            if full_url:
                groups[full_url] = resource
    studies: list[Study] = []
    for _, resource in resources:
        if resource.get("resourceType") != "ResearchStudy":
            continue
        group = None
        for ref in resource.get("enrollment", []) or []:
            group = groups.get(str(ref.get("reference")))
            if group:
                break
        studies.append(Study(_nct_id(resource), str(resource.get("title") or ""), resource, group))
    if not studies:
        raise InputError("no ResearchStudy resource found")
    return studies
