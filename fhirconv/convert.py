"""The conversion pipeline as a library: read → map → validate → bundle.

`convert_inputs` is what `fhirconv convert` runs; a bad record, a study that mapping cannot
handle, or one that fails validation is yielded as a failure, and the others are still converted.
"""

from __future__ import annotations

import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fhirconv.bundle import transaction_bundle
from fhirconv.duplicates import Duplicate, find_duplicates
from fhirconv.errors import FhirconvError, RecordError, unexpected
from fhirconv.manifest import Manifest
from fhirconv.mapping import map_trial
from fhirconv.mapping.provenance import to_provenance
from fhirconv.model import Trial
from fhirconv.sources import read_text, read_unit, units_of
from fhirconv.sources.inputs import InputUnit, Unit
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
    source_digest: str | None = None  # SHA-256 of the input unit it came from (for a manifest)

    @property
    def nct_id(self) -> str:
        return self.trial.nct_id

    @property
    def ok(self) -> bool:
        return not errors(self.issues)

    @property
    def resources(self) -> list[Json]:
        return [entry["resource"] for entry in self.bundle["entry"]]


def convert_trial(
    trial: Trial, converted_at: datetime | None = None, *, full_validation: bool = False
) -> ConvertedStudy:
    """Map, add Provenance, bundle and validate one study. `converted_at` (off by default, to keep
    output byte-identical) records the conversion time in the Provenance; `full_validation`
    validates every resource through its model (`fhirconv.validate.validate_resource`)."""
    mapped = map_trial(trial)
    provenance = to_provenance(trial, mapped.resources, converted_at)
    bundle = transaction_bundle(trial.nct_id, [*mapped.resources, provenance])
    return ConvertedStudy(
        trial=trial,
        bundle=bundle,
        warnings=[*trial.reader_warnings, *(str(w) for w in mapped.warnings)],
        issues=validate_bundle(bundle, full=full_validation),
    )


def convert_or_report(
    trial: Trial, converted_at: datetime | None = None, *, full_validation: bool = False
) -> ConvertedStudy | RecordError:
    """`convert_trial` inside the record boundary: a Trial that mapping cannot handle becomes
    this record's RecordError (naming it, and where in fhirconv it failed), never a traceback."""
    try:
        return convert_trial(trial, converted_at, full_validation=full_validation)
    except FhirconvError as error:
        return RecordError(trial.source.file, trial.nct_id, None, str(error))
    except RecursionError:
        return RecordError(trial.source.file, trial.nct_id, None, "nested too deeply to convert")
    except Exception as error:  # the boundary: one record never stops the batch
        return RecordError(
            trial.source.file, trial.nct_id, None, f"cannot convert: {unexpected(error)}"
        )


def convert_records(
    records: Iterable[Trial | RecordError],
    converted_at: datetime | None = None,
    *,
    full_validation: bool = False,
) -> Iterator[ConvertedStudy | RecordError]:
    for record in records:
        yield (
            record
            if isinstance(record, RecordError)
            else convert_or_report(record, converted_at, full_validation=full_validation)
        )


def convert_inputs(
    names: Iterable[str],
    fmt: str | None = None,
    converted_at: datetime | None = None,
    *,
    fetcher: Fetcher | None = None,
    manifest: Manifest | None = None,
    studies: Callable[[int], None] | None = None,
    jobs: int = 1,
    full_validation: bool = False,
) -> Iterator[ConvertedStudy | RecordError]:
    """Convert files, directories, ZIP archives, `-`, and — given a `fetcher` — NCT ids that are
    not paths, unit by unit (`fhirconv.sources.inputs`) in constant memory.

    One study is written once: when an NCT id occurs in several records of the run, the most
    recently updated one is converted (`fhirconv.duplicates`), the others skipped, and the kept
    study's warnings name every record. Given the output's incremental `manifest`, a unit it
    knows unchanged is skipped unread (`Manifest.skip`), and a unit with a failure is noted.
    `studies(n)`, when given, is told how many distinct studies the local inputs hold before
    the first is converted (a progress bar's total). With `jobs` > 1 the studies are converted
    on that many processes (`fhirconv.parallel`); the results come in input order either way."""
    names = list(names)
    stdin = _StdinOnce()
    local = [name for name in names if not _is_fetched(name, fetcher)]
    known = manifest.known if manifest is not None else None
    duplicates = find_duplicates(lambda: _numbered(local, fmt, stdin), fmt, known, studies)
    records = _records(names, fmt, stdin, fetcher, duplicates, manifest)
    # One result per record, in input order (also from the pool, which reads ahead): the
    # digests wait in a queue for their record's result.
    digests: deque[str | None] = deque()

    def trials() -> Iterator[Trial | RecordError]:
        for record, digest in records:
            digests.append(digest)
            yield record

    if jobs <= 1:
        results = convert_records(trials(), converted_at, full_validation=full_validation)
    else:
        from fhirconv.parallel import convert_parallel  # it builds on this module

        results = convert_parallel(trials(), jobs, converted_at, full_validation=full_validation)
    for result in results:
        digest = digests.popleft()
        if isinstance(result, ConvertedStudy):
            result.source_digest = digest
        if manifest is not None and digest and (isinstance(result, RecordError) or not result.ok):
            manifest.failed(digest)
        yield result


def _records(
    names: list[str],
    fmt: str | None,
    stdin: _StdinOnce,
    fetcher: Fetcher | None,
    duplicates: dict[str, Duplicate],
    manifest: Manifest | None,
) -> Iterator[tuple[Trial | RecordError, str | None]]:
    """Every record to convert, with the digest of the unit it came from (None for downloads):
    one flat stream, less the duplicates and the units the manifest says are unchanged."""
    doubled = {decision.kept[0] for decision in duplicates.values()}
    number = -1
    for name in names:
        if fetcher is not None and _is_fetched(name, fetcher):
            yield from ((record, None) for record in _fetched(name, fetcher))
            continue
        for unit in _units(name, fmt, stdin):
            number += 1
            if isinstance(unit, RecordError):
                yield unit, None
                continue
            if manifest is not None and number not in doubled:
                remembered = manifest.known(unit.digest)
                if remembered is not None:
                    manifest.skip(unit.digest, len(remembered))
                    continue
            for record in _kept(read_unit(unit, fmt), number, duplicates):
                yield record, unit.digest


def _units(name: str, fmt: str | None, stdin: _StdinOnce) -> Iterable[Unit]:
    return [InputUnit("-", stdin.data())] if name == "-" else units_of(name, fmt)


def _numbered(names: list[str], fmt: str | None, stdin: _StdinOnce) -> Iterator[tuple[int, Unit]]:
    """Every unit of the local inputs, numbered across the run in the order read."""
    return enumerate(unit for name in names for unit in _units(name, fmt, stdin))


def _kept(
    records: Iterable[Trial | RecordError], number: int, duplicates: dict[str, Duplicate]
) -> Iterator[Trial | RecordError]:
    """The unit's records, less the duplicates another record replaces (the kept one carries
    the warning naming them all)."""
    occurrences: dict[str, int] = {}
    for record in records:
        if isinstance(record, Trial) and record.nct_id in duplicates:
            occurrence = occurrences.get(record.nct_id, 0)
            occurrences[record.nct_id] = occurrence + 1
            decision = duplicates[record.nct_id]
            if (number, occurrence) != decision.kept:
                continue
            record = record.model_copy(
                update={"reader_warnings": (*record.reader_warnings, decision.warning)}
            )
        yield record


def _is_fetched(name: str, fetcher: Fetcher | None) -> bool:
    return fetcher is not None and bool(_NCT_ID.match(name)) and not Path(name).exists()


class _StdinOnce:
    """Standard input read once, so both passes over the inputs see it."""

    def __init__(self) -> None:
        self._data: bytes | None = None

    def data(self) -> bytes:
        if self._data is None:
            buffer = getattr(sys.stdin, "buffer", None)
            self._data = buffer.read() if buffer is not None else sys.stdin.read().encode()
        return self._data


def _fetched(nct_id: str, fetcher: Fetcher) -> Iterator[Trial | RecordError]:
    """The study `fetcher` downloads; a download failure becomes this input's RecordError."""
    source = f"https://clinicaltrials.gov/study/{nct_id}"
    try:
        text = fetcher(nct_id)
    except FhirconvError as error:
        yield RecordError(source, None, None, str(error))
        return
    yield from read_text(text, source, "ctgov-json")
