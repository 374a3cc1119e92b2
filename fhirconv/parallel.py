"""Converting studies on several cores: `convert_parallel` maps, validates and bundles records in
a pool of worker processes and yields the results in input order, exactly as `convert_records`
would — so `convert --jobs N` writes the same bytes as `--jobs 1`. Reading, de-duplication of
shared resources and writing stay in the calling process.

Records travel in chunks, with a bounded number of chunks in flight, so memory stays flat
whatever the input size. A record that fails inside a worker comes back as the RecordError
`convert_or_report` made there; a worker process that dies (killed, out of memory) fails only
the records it was converting — each is retried alone in a fresh pool, and one that kills its
worker again is reported by name.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, NamedTuple

from fhirconv.convert import ConvertedStudy, convert_or_report, convert_records
from fhirconv.errors import RecordError
from fhirconv.model import Trial
from fhirconv.validate import Issue

__all__ = ["CHUNK_SIZE", "convert_parallel", "default_jobs"]

CHUNK_SIZE = 8  # records per task: enough to amortise the hand-over, small enough to balance
_CHUNKS_IN_FLIGHT_PER_JOB = 4

Json = dict[str, Any]


class _Converted(NamedTuple):
    """What a worker sends back for a converted record: the parts of a ConvertedStudy the
    parent does not already hold (the Trial stays in the parent)."""

    bundle: Json
    warnings: list[str]
    issues: list[Issue]


class _Failed(NamedTuple):
    """A RecordError's fields (an exception with its own constructor does not survive pickling)."""

    file: str
    record: str | None
    field: str | None
    message: str


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _ignore_interrupts() -> None:
    # Ctrl-C goes to the whole process group: the parent stops the pool, workers stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _convert_chunk(
    trials: list[Trial], converted_at: datetime | None, full_validation: bool
) -> list[_Converted | _Failed]:
    outcomes: list[_Converted | _Failed] = []
    for trial in trials:
        result = convert_or_report(trial, converted_at, full_validation=full_validation)
        if isinstance(result, RecordError):
            outcomes.append(_Failed(result.file, result.record, result.field, result.message))
        else:
            outcomes.append(_Converted(result.bundle, result.warnings, result.issues))
    return outcomes


def _rebuilt(trial: Trial, outcome: _Converted | _Failed) -> ConvertedStudy | RecordError:
    if isinstance(outcome, _Failed):
        return RecordError(outcome.file, outcome.record, outcome.field, outcome.message)
    return ConvertedStudy(trial, outcome.bundle, outcome.warnings, outcome.issues)


class _Pool:
    """A process pool that is replaced when one of its workers dies."""

    def __init__(self, jobs: int, converted_at: datetime | None, full_validation: bool) -> None:
        self.jobs = jobs
        self.settings = (converted_at, full_validation)
        self.executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.jobs, initializer=_ignore_interrupts)

    def submit(self, trials: list[Trial]) -> Future[list[_Converted | _Failed]]:
        try:
            return self.executor.submit(_convert_chunk, trials, *self.settings)
        except BrokenProcessPool:
            self.restart()
            return self.executor.submit(_convert_chunk, trials, *self.settings)

    def restart(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._start()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def _one_by_one(
    chunk: list[Trial | RecordError], converted_at: datetime | None, full_validation: bool
) -> Iterator[ConvertedStudy | RecordError]:
    """A chunk whose worker died, each record converted alone in a pool of its own (so no other
    record can be blamed): the one that kills its worker again is reported by name."""
    pool = _Pool(1, converted_at, full_validation)
    try:
        for record in chunk:
            if isinstance(record, RecordError):
                yield record
                continue
            try:
                (outcome,) = pool.submit([record]).result()
            except BrokenProcessPool:
                pool.restart()
                yield RecordError(
                    record.source.file,
                    record.nct_id,
                    None,
                    "cannot convert: the process converting it died (killed or out of memory)",
                )
                continue
            yield _rebuilt(record, outcome)
    finally:
        pool.close()


def convert_parallel(
    records: Iterable[Trial | RecordError],
    jobs: int,
    converted_at: datetime | None = None,
    *,
    full_validation: bool = False,
) -> Iterator[ConvertedStudy | RecordError]:
    """`convert_records(records)` on `jobs` worker processes, results in input order."""
    stream = iter(records)
    # The first chunk is converted here: it loads every table and compiles every pattern once,
    # before the workers are forked (they inherit them), and a small input needs no pool at all.
    converted_here = 0
    for record in stream:
        yield from convert_records([record], converted_at, full_validation=full_validation)
        converted_here += 1
        if converted_here == CHUNK_SIZE:
            break
    if jobs <= 1 or converted_here < CHUNK_SIZE:
        yield from convert_records(stream, converted_at, full_validation=full_validation)
        return
    pool = _Pool(jobs, converted_at, full_validation)
    pending: deque[tuple[list[Trial | RecordError], Future[list[_Converted | _Failed]]]] = deque()
    reading_error: Exception | None = None
    try:
        while True:
            while reading_error is None and len(pending) < jobs * _CHUNKS_IN_FLIGHT_PER_JOB:
                chunk = []
                try:
                    for record in stream:
                        chunk.append(record)
                        if len(chunk) == CHUNK_SIZE:
                            break
                except Exception as error:
                    # As with --jobs 1, the records read before it are still delivered first.
                    reading_error = error
                if not chunk:
                    break
                trials = [record for record in chunk if isinstance(record, Trial)]
                pending.append((chunk, pool.submit(trials)))
            if not pending:
                if reading_error is not None:
                    raise reading_error
                return
            chunk, future = pending.popleft()
            try:
                outcomes = iter(future.result())
            except BrokenProcessPool:
                # Every chunk in flight is lost with the pool: the others go to a new pool,
                # this one record by record.
                pool.restart()
                pending = deque(
                    (waiting, pool.submit([r for r in waiting if isinstance(r, Trial)]))
                    for waiting, _ in pending
                )  # fmt: skip
                yield from _one_by_one(chunk, converted_at, full_validation)
                continue
            for record in chunk:
                yield (
                    record if isinstance(record, RecordError) else _rebuilt(record, next(outcomes))
                )
    finally:
        pool.close()
