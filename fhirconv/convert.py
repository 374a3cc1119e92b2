"""The conversion pipeline as a library: read → map → validate → bundle.

`convert_inputs` is what `fhirconv convert` runs; a bad record or a study that fails validation
is yielded as a failure, and the others are still converted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fhirconv.bundle import transaction_bundle
from fhirconv.errors import FhirconvError, RecordError
from fhirconv.mapping import map_trial
from fhirconv.mapping.provenance import to_provenance
from fhirconv.model import Trial
from fhirconv.sources import read_path, read_text
from fhirconv.validate import Issue, errors, validate_bundle

Json = dict[str, Any]
Fetcher = Callable[[str], str]
"""NCT id → that study's ClinicalTrials.gov API v2 JSON text (see `fhirconv.fetch.StudyFetcher`)."""

_NCT_ID = re.compile(r"^NCT\d{8}$")


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
    names: Iterable[str],
    fmt: str | None = None,
    converted_at: datetime | None = None,
    *,
    fetcher: Fetcher | None = None,
) -> Iterator[ConvertedStudy | RecordError]:
    """Convert files, directories, `-`, and — given a `fetcher` — NCT ids that are not paths."""
    for name in names:
        if fetcher is not None and _NCT_ID.match(name) and not Path(name).exists():
            yield from convert_records(_fetched(name, fetcher), converted_at)
        else:
            yield from convert_records(read_path(name, fmt), converted_at)


def _fetched(nct_id: str, fetcher: Fetcher) -> Iterator[Trial | RecordError]:
    """The study `fetcher` downloads; a download failure becomes this input's RecordError."""
    source = f"https://clinicaltrials.gov/study/{nct_id}"
    try:
        text = fetcher(nct_id)
    except FhirconvError as error:
        yield RecordError(source, None, None, str(error))
        return
    yield from read_text(text, source, "ctgov-json")
