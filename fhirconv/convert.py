"""The conversion pipeline as a library: read → map → validate → bundle.

`convert_inputs` is what `fhirconv convert` runs; a bad record or a study that fails validation
is yielded as a failure, and the others are still converted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhirconv.bundle import transaction_bundle
from fhirconv.errors import RecordError
from fhirconv.mapping import map_trial
from fhirconv.mapping.provenance import to_provenance
from fhirconv.model import Trial
from fhirconv.sources import read_path
from fhirconv.validate import Issue, errors, validate_bundle

Json = dict[str, Any]


@dataclass
class ConvertedStudy:
    """One study's transaction Bundle, the warnings mapping raised and any validation issues."""

    trial: Trial
    bundle: Json
    warnings: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def nct_id(self) -> str:
        return self.trial.nct_id

    @property
    def ok(self) -> bool:
        return not errors(self.issues)

    @property
    def resources(self) -> list[Json]:
        return [entry["resource"] for entry in self.bundle["entry"]]


def convert_trial(trial: Trial, converted_at: datetime | None = None) -> ConvertedStudy:
    """Map, add Provenance, bundle and validate one study. `converted_at` (off by default, to keep
    output byte-identical) records the conversion time in the Provenance."""
    mapped = map_trial(trial)
    provenance = to_provenance(trial, mapped.resources, converted_at)
    bundle = transaction_bundle(trial.nct_id, [*mapped.resources, provenance])
    return ConvertedStudy(
        trial=trial,
        bundle=bundle,
        warnings=[str(w) for w in mapped.warnings],
        issues=validate_bundle(bundle),
    )


def convert_records(
    records: Iterable[Trial | RecordError], converted_at: datetime | None = None
) -> Iterator[ConvertedStudy | RecordError]:
    for record in records:
        yield record if isinstance(record, RecordError) else convert_trial(record, converted_at)


def convert_inputs(
    names: Iterable[str], fmt: str | None = None, converted_at: datetime | None = None
) -> Iterator[ConvertedStudy | RecordError]:
    for name in names:
        yield from convert_records(read_path(name, fmt), converted_at)
