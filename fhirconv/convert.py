"""The conversion pipeline as a library: read → map → validate → bundle.

`convert_inputs` is what `fhirconv convert` runs; a bad record, a study that mapping cannot
handle, or one that fails validation is yielded as a failure, and the others are still converted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fhirconv.bundle import transaction_bundle
from fhirconv.errors import FhirconvError, RecordError, unexpected
from fhirconv.mapping import map_trial
from fhirconv.mapping.provenance import to_provenance
from fhirconv.model import Trial
from fhirconv.sources import read_path, read_stdin, read_text
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
    jobs: int = 1,
    full_validation: bool = False,
) -> Iterator[ConvertedStudy | RecordError]:
    """Convert files, directories, `-`, and — given a `fetcher` — NCT ids that are not paths;
    on `jobs` processes (`fhirconv.parallel`), the results in input order either way.

    One study is written once: when an NCT id occurs in several records of the run, the most
    recently updated one (last update posted, else submitted) is converted, the others skipped,
    and the kept study's warnings name every record (the same rule for Bundle and NDJSON output).
    Finding them costs a first, reading-only pass over the local inputs."""
    records = _selected_records(list(names), fmt, fetcher)
    if jobs <= 1:
        yield from convert_records(records, converted_at, full_validation=full_validation)
        return
    from fhirconv.parallel import convert_parallel  # it builds on this module

    yield from convert_parallel(records, jobs, converted_at, full_validation=full_validation)


def _selected_records(
    names: list[str], fmt: str | None, fetcher: Fetcher | None
) -> Iterator[Trial | RecordError]:
    """Every record of the inputs, one per NCT id (see `convert_inputs`)."""
    stdin = _StdinOnce()
    local = [name for name in names if not _is_fetched(name, fetcher)]
    duplicates = _duplicates(
        trial
        for name in local
        for trial in read_path(name, fmt, stdin=stdin.text)
        if isinstance(trial, Trial)
    )
    occurrences: dict[tuple[str, str], int] = {}
    for name in names:
        if fetcher is not None and _is_fetched(name, fetcher):
            records = _fetched(name, fetcher)
        else:
            records = read_path(name, fmt, stdin=stdin.text)
        for record in records:
            if isinstance(record, Trial) and record.nct_id in duplicates:
                key = (record.source.file, record.nct_id)
                occurrence = occurrences.get(key, 0)
                occurrences[key] = occurrence + 1
                decision = duplicates[record.nct_id]
                if (record.source.file, occurrence) != decision.kept:
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
        self._text: str | None = None

    def text(self) -> str:
        if self._text is None:
            self._text = read_stdin()
        return self._text


@dataclass(frozen=True)
class _Duplicate:
    kept: tuple[str, int]  # (file, occurrence of the NCT id within that file)
    warning: str


def _updated(trial: Trial) -> str:
    date = trial.last_update_posted or trial.last_update_submitted or trial.data_version
    return date.value if date else ""


def _duplicates(trials: Iterable[Trial]) -> dict[str, _Duplicate]:
    """NCT id → which of its records to keep, for the ids that occur more than once."""
    seen: dict[str, list[tuple[str, int, str]]] = {}
    for trial in trials:
        records = seen.setdefault(trial.nct_id, [])
        occurrence = sum(1 for file, _, _ in records if file == trial.source.file)
        records.append((trial.source.file, occurrence, _updated(trial)))
    decisions: dict[str, _Duplicate] = {}
    for nct_id, records in seen.items():
        if len(records) < 2:
            continue
        # The latest update wins; between equal dates, the record read last.
        index = max(range(len(records)), key=lambda i: (records[i][2], i))
        file, occurrence, _ = records[index]
        listed = "; ".join(
            f"{f}{f' (occurrence {o + 1})' if o else ''} updated {u or 'on an unknown date'}"
            for f, o, u in records
        )
        decisions[nct_id] = _Duplicate(
            kept=(file, occurrence),
            warning=f"{nct_id} occurs in {len(records)} records ({listed}); kept the one in "
            f"{file}, the most recently updated; the others were not converted",
        )
    return decisions


def _fetched(nct_id: str, fetcher: Fetcher) -> Iterator[Trial | RecordError]:
    """The study `fetcher` downloads; a download failure becomes this input's RecordError."""
    source = f"https://clinicaltrials.gov/study/{nct_id}"
    try:
        text = fetcher(nct_id)
    except FhirconvError as error:
        yield RecordError(source, None, None, str(error))
        return
    yield from read_text(text, source, "ctgov-json")
