"""Push many study bundles: N in flight on a thread pool sharing one ``FhirClient``.

One study failing — a refused bundle, an unreachable server, a bad file — is recorded in its
``StudyResult`` and never stops the others. Bundles are read lazily and at most
``2 * concurrency`` are held in memory at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path

from fhirconv.errors import PublishError
from fhirconv.publish.bundles import (
    BundleLoadError,
    LoadedBundle,
    check_bundle,
    count_bundles,
    discover,
    iter_bundles,
    plan,
)
from fhirconv.publish.client import FhirClient, TransactionRejected, is_idempotent
from fhirconv.publish.outcome import explain, explain_http_error, parse_operation_outcome
from fhirconv.publish.report import PushSummary, StudyResult
from fhirconv.publish.retry import OutcomeUnknown, RetriesExhausted

log = logging.getLogger(__name__)

# progress(result, done, total): called in the calling thread as each study finishes.
ProgressCallback = Callable[[StudyResult, int, int], None]


def _failed(loaded: LoadedBundle | BundleLoadError, message: str) -> StudyResult:
    return StudyResult(
        study=loaded.study, source=loaded.source.label, status="failed", error=message
    )


def plan_one(loaded: LoadedBundle) -> StudyResult:
    """A dry-run result: what would be sent, after the same checks as a real push."""
    problems = check_bundle(loaded.bundle)
    if problems:
        return _failed(loaded, "; ".join(problems))
    return StudyResult(
        study=loaded.study,
        source=loaded.source.label,
        status="planned",
        planned=plan(loaded.bundle),
        idempotent=is_idempotent(loaded.bundle),
    )


def push_one(loaded: LoadedBundle, client: FhirClient) -> StudyResult:
    """Send one study's bundle; every failure becomes a failed ``StudyResult``, never raises."""
    problems = check_bundle(loaded.bundle)
    if problems:
        return _failed(loaded, "not sent: " + "; ".join(problems))
    idempotent = is_idempotent(loaded.bundle)
    base = StudyResult(
        study=loaded.study, source=loaded.source.label, status="pushed", idempotent=idempotent
    )
    started = time.monotonic()
    try:
        result = client.post_transaction(loaded.bundle)
    except TransactionRejected as exc:
        base.status = "failed"
        base.attempts = exc.attempts
        base.issues = explain_http_error(
            exc.status_code, exc.reason, exc.body, loaded.bundle, loaded.study
        )
        base.error = str(exc)
    except OutcomeUnknown as exc:
        base.status, base.attempts, base.outcome_unknown = "failed", exc.attempts, True
        base.error = f"outcome unknown: {exc}"
    except RetriesExhausted as exc:
        base.status, base.attempts, base.error = "failed", exc.attempts, str(exc)
        if exc.status_code is not None and parse_operation_outcome(exc.body):
            base.issues = explain_http_error(
                exc.status_code, exc.reason, exc.body, loaded.bundle, loaded.study
            )
    except PublishError as exc:
        base.status, base.error = "failed", str(exc)
    except Exception as exc:  # a bug must cost one study, not the whole push
        log.exception("unexpected error pushing %s", loaded.study)
        base.status, base.error = "failed", f"internal error: {type(exc).__name__}: {exc}"
    else:
        base.attempts = result.attempts
        base.created = result.refs("created")
        base.updated = result.refs("updated")
        base.unchanged = result.refs("unchanged")
        base.deleted = result.refs("deleted")
        base.other = result.refs("other") + result.refs("read")
        failed_entries = result.failed_entries  # batch bundles: entries fail one by one
        if failed_entries:
            base.status = "failed"
            for entry in failed_entries:
                issues = [i for i in entry.issues if i.is_error] or list(entry.issues)
                reports = explain(issues, loaded.bundle, loaded.study)
                if not reports:
                    reports = explain_http_error(
                        entry.status, "", None, loaded.bundle, loaded.study
                    )
                for report in reports:
                    if report.entry_index is None:
                        report = replace(report, entry_index=entry.index, entry_ref=entry.ref)
                    base.issues.append(report)
    base.elapsed = time.monotonic() - started
    return base


def push_bundles(
    sources: Iterable[Path],
    client: FhirClient | None,
    concurrency: int = 4,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> PushSummary:
    """Push every bundle found in ``sources`` (files or directories) and summarize.

    ``client`` may be ``None`` only for a dry run. Raises ``InputError`` if a source does not
    exist (before anything is sent); everything after that is reported per study.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if client is None and not dry_run:
        raise ValueError("a FhirClient is needed unless dry_run is set")
    started = time.monotonic()
    files = discover(sources)
    total = count_bundles(files)
    results: dict[int, StudyResult] = {}

    def finish(seq: int, result: StudyResult) -> None:
        results[seq] = result
        if progress is not None:
            progress(result, len(results), max(total, len(results)))

    loaded_iter = enumerate(iter_bundles(files))
    if dry_run or client is None:
        for seq, loaded in loaded_iter:
            if isinstance(loaded, BundleLoadError):
                finish(seq, _failed(loaded, loaded.message))
            else:
                finish(seq, plan_one(loaded))
        return PushSummary(
            [results[k] for k in sorted(results)], dry_run=True, elapsed=time.monotonic() - started
        )

    window = 2 * concurrency
    in_flight: dict[Future[StudyResult], tuple[int, LoadedBundle]] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fhirconv-push") as pool:
        try:
            for seq, loaded in loaded_iter:
                if isinstance(loaded, BundleLoadError):
                    finish(seq, _failed(loaded, loaded.message))
                    continue
                in_flight[pool.submit(push_one, loaded, client)] = (seq, loaded)
                while len(in_flight) >= window:
                    _collect(in_flight, finish)
            while in_flight:
                _collect(in_flight, finish)
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise
    return PushSummary(
        [results[k] for k in sorted(results)], dry_run=False, elapsed=time.monotonic() - started
    )


def _collect(
    in_flight: dict[Future[StudyResult], tuple[int, LoadedBundle]],
    finish: Callable[[int, StudyResult], None],
) -> None:
    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
    for future in done:
        seq, loaded = in_flight.pop(future)
        try:
            result = future.result()
        except Exception as exc:  # push_one does not raise; be safe anyway
            result = _failed(loaded, f"internal error: {type(exc).__name__}: {exc}")
        finish(seq, result)
