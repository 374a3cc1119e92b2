"""Duplicate NCT ids in one run: the most recently updated record (last update posted, else
submitted, else the data version) is converted and the others skipped.

Finding them costs a first, reading-only pass over the local inputs, unit by unit. It keeps one
small tuple per study — (last update, unit number, occurrence within the unit) — and the whole
list only for the ids that occur more than once; the units holding duplicates are named in a
second enumeration, only when there are any.
A unit the incremental manifest can skip is not parsed: its studies' ids and dates come from
the manifest.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fhirconv.model import Trial
from fhirconv.sources import read_unit
from fhirconv.sources.inputs import InputUnit, Unit

Where = tuple[int, int]  # (unit number in the run, occurrence of the NCT id within the unit)
_Seen = tuple[str, int, int]  # (updated, unit number, occurrence within the unit)
Known = Callable[[str], list[tuple[str, str]] | None]  # unit digest → [(NCT id, updated)]


@dataclass(frozen=True)
class Duplicate:
    kept: Where
    warning: str


def updated(trial: Trial) -> str:
    """The date the duplicate rule compares: last update posted, else submitted, else the data
    version; "" when none is known."""
    date = trial.last_update_posted or trial.last_update_submitted or trial.data_version
    return date.value if date else ""


def unit_keys(unit: Unit, fmt: str | None, known: Known | None) -> list[tuple[str, str]]:
    """(NCT id, updated) of each study in a unit, in order."""
    if not isinstance(unit, InputUnit):
        return []
    if known is not None:
        remembered = known(unit.digest)
        if remembered is not None:
            return remembered
    return [(r.nct_id, updated(r)) for r in read_unit(unit, fmt) if isinstance(r, Trial)]


def find_duplicates(
    units: Callable[[], Iterable[tuple[int, Unit]]],
    fmt: str | None,
    known: Known | None = None,
    studies: Callable[[int], None] | None = None,
) -> dict[str, Duplicate]:
    """NCT id → which of its records to keep, for the ids that occur more than once;
    `studies(n)` is told how many studies the inputs hold (a progress bar's total).

    `units()` enumerates the run's units; it is called again, only when there are duplicates,
    to name the units holding them (so the first pass keeps no names)."""
    first: dict[str, _Seen] = {}
    count = 0
    repeated: dict[str, list[_Seen]] = {}
    for number, unit in units():
        occurrences: dict[str, int] = {}
        for nct_id, date in unit_keys(unit, fmt, known):
            occurrence = occurrences.get(nct_id, 0)
            occurrences[nct_id] = occurrence + 1
            count += 1
            seen = (sys.intern(date), number, occurrence)
            if nct_id not in first:
                first[nct_id] = seen
            else:
                repeated.setdefault(nct_id, [first[nct_id]]).append(seen)
    if studies is not None:
        studies(count - sum(len(records) - 1 for records in repeated.values()))
    if not repeated:
        return {}
    wanted = {number for records in repeated.values() for _, number, _ in records}
    labels = {n: u.label for n, u in units() if n in wanted and isinstance(u, InputUnit)}
    return {nct_id: _decide(nct_id, records, labels) for nct_id, records in repeated.items()}


def _decide(nct_id: str, records: list[_Seen], labels: dict[int, str]) -> Duplicate:
    # The latest update wins; between equal dates, the record read last.
    _, number, occurrence = max(records)
    listed = "; ".join(
        f"{labels.get(n, '?')}{f' (occurrence {o + 1})' if o else ''} "
        f"updated {d or 'on an unknown date'}"
        for d, n, o in records
    )
    return Duplicate(
        kept=(number, occurrence),
        warning=f"{nct_id} occurs in {len(records)} records ({listed}); kept the one in "
        f"{labels.get(number, '?')}, the most recently updated; the others were not converted",
    )


__all__ = ["Duplicate", "find_duplicates", "unit_keys", "updated"]
