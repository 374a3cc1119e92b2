"""Push many study bundles: N in flight on a thread pool sharing one ``FhirClient``.

One study failing — a refused bundle, a bad file — is recorded in its ``StudyResult`` and never
stops the others. Bundles are read lazily and at most ``2 * concurrency`` are held in memory.

Failures every later bundle would meet too stop the push early (``StopRule``), and each bundle
not yet sent is reported ``not-sent`` with the reason:

* the server refused our credentials (HTTP 401/403, or a SMART token endpoint refusing us):
  at once, with a hint about the authentication options;
* the TLS connection cannot be set up (certificate verification): at once;
* ``max_connection_failures`` bundles (studies, or batches of a bulk load) in a row whose last
  attempt never reached the server (connection refused, connect timeout): the server is down
  or unreachable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from fhirconv.errors import PublishError
from fhirconv.publish.auth import AuthError
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
from fhirconv.publish.retry import Attempts, OutcomeUnknown, RetriesExhausted, TlsFailure

log = logging.getLogger(__name__)

# progress(result, done, total): called in the calling thread as each study finishes.
ProgressCallback = Callable[[StudyResult, int, int], None]


AUTH_OPTIONS = (
    "--token-env VAR or --token-file PATH (a bearer token); --basic-user with "
    "--basic-password-env or --basic-password-file; or SMART Backend Services: "
    "--smart-client-id, --smart-key, --smart-token-url"
)


def auth_hint(status_code: int | None, has_auth: bool) -> str:
    """What to do about a refusal of our credentials (never shows a secret)."""
    if status_code == 403:
        return (
            "the server refused access (HTTP 403 Forbidden): the credentials given lack "
            "the right to write these resources (check the token's scopes or the "
            f"account's rights; SMART scopes: --smart-scope), or give others: {AUTH_OPTIONS}"
            if has_auth
            else "the server refused access (HTTP 403 Forbidden) and no credentials were "
            f"given: authenticate with {AUTH_OPTIONS}"
        )
    what = f"HTTP {status_code} Unauthorized" if status_code else "authentication failed"
    if has_auth:
        return (
            f"the server refused our credentials ({what}): check the token or password "
            f"(expired? for another server?); the options are {AUTH_OPTIONS}"
        )
    return f"the server wants credentials ({what}) and none were given: use {AUTH_OPTIONS}"


@dataclass(frozen=True)
class StopRule:
    """When a push gives up on the bundles not yet sent (see the module docstring)."""

    max_connection_failures: int = 3
    on_auth_failure: bool = True
    on_tls_failure: bool = True

    def __post_init__(self) -> None:
        if self.max_connection_failures < 1:
            raise ValueError("max_connection_failures must be at least 1")


class Breaker:
    """Watches studies as they finish (in the worker threads) and decides to stop.

    Recording in the worker, not the collecting thread, lets a bundle that starts right after
    the deciding failure see it, and lets retries in flight give up (``tripped``)."""

    def __init__(self, rule: StopRule) -> None:
        self.rule = rule
        self.in_a_row = 0
        self.reason: str | None = None
        self._lock = threading.Lock()

    def tripped(self) -> bool:
        return self.reason is not None

    def record(self, result: StudyResult) -> None:
        with self._lock:
            self._record(result)

    def _record(self, result: StudyResult) -> None:
        if self.reason is not None or result.status == "not-sent":
            return
        if result.fault == "auth" and self.rule.on_auth_failure:
            self.reason = result.error or "the server refused our credentials"
        elif result.fault == "tls" and self.rule.on_tls_failure:
            self.reason = result.error or "TLS failed"
        elif result.fault == "connection":
            self.in_a_row += 1
            if self.in_a_row >= self.rule.max_connection_failures:
                self.reason = (
                    f"the server could not be reached for {self.in_a_row} bundles "
                    f"in a row (last: {result.error})"
                )
        elif result.status in ("pushed", "failed"):
            self.in_a_row = 0


def not_sent_result(loaded: LoadedBundle | BundleLoadError, reason: str) -> StudyResult:
    """The result for a bundle the push did not send because it stopped."""
    return StudyResult(
        study=loaded.study,
        source=loaded.source.label,
        status="not-sent",
        error=f"the push stopped: {reason}",
    )


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


def push_watched(loaded: LoadedBundle, client: FhirClient, breaker: Breaker) -> StudyResult:
    """``push_one`` unless the push is stopping; the result is shown to ``breaker``."""
    if breaker.reason is not None:
        return not_sent_result(loaded, breaker.reason)
    result = push_one(loaded, client, abort=breaker.tripped)
    breaker.record(result)
    return result


def push_one(
    loaded: LoadedBundle, client: FhirClient, abort: Callable[[], bool] | None = None
) -> StudyResult:
    """Send one study's bundle; every failure becomes a failed ``StudyResult``, never raises.

    ``abort()`` true before a retry gives up on it (the push is stopping)."""
    problems = check_bundle(loaded.bundle)
    if problems:
        return _failed(loaded, "not sent: " + "; ".join(problems))
    idempotent = is_idempotent(loaded.bundle)
    base = StudyResult(
        study=loaded.study, source=loaded.source.label, status="pushed", idempotent=idempotent
    )
    started = time.monotonic()
    attempts = Attempts()
    try:
        result = client.post_transaction(loaded.bundle, attempts=attempts, abort=abort)
    except TransactionRejected as exc:
        base.status = "failed"
        base.attempts = exc.attempts
        if exc.status_code in (401, 403):
            base.fault = "auth"
            said = next((i.diagnostics or i.details for i in exc.issues if i.is_error), None)
            base.error = auth_hint(exc.status_code, client.has_auth) + (
                f" [the server said: {said}]" if said else ""
            )
            return _finish(base, attempts, started)
        base.issues = explain_http_error(
            exc.status_code, exc.reason, exc.body, loaded.bundle, loaded.study
        )
        base.error = str(exc)
    except TlsFailure as exc:
        base.status, base.attempts, base.error, base.fault = "failed", exc.attempts, str(exc), "tls"
    except AuthError as exc:  # e.g. the SMART token endpoint refused us
        base.status, base.error, base.fault = "failed", f"{exc}; {auth_hint(None, True)}", "auth"
    except OutcomeUnknown as exc:
        base.status, base.attempts, base.outcome_unknown = "failed", exc.attempts, True
        base.error = f"outcome unknown: {exc}"
    except RetriesExhausted as exc:
        base.status, base.attempts, base.error = "failed", exc.attempts, str(exc)
        base.gave_up = True
        if attempts.connection_failed:
            base.fault = "connection"
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
    return _finish(base, attempts, started)


def _finish(base: StudyResult, attempts: Attempts, started: float) -> StudyResult:
    base.retry_causes = list(attempts.causes)
    base.elapsed = time.monotonic() - started
    return base


def push_bundles(
    sources: Iterable[Path],
    client: FhirClient | None,
    concurrency: int = 4,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    stop_rule: StopRule | None = None,
) -> PushSummary:
    """Push every bundle found in ``sources`` (files or directories) and summarize.

    ``client`` may be ``None`` only for a dry run. Raises ``InputError`` if a source does not
    exist (before anything is sent); everything after that is reported per study. When
    ``stop_rule`` (default ``StopRule()``) stops the push, the rest are ``not-sent``.
    """
    files = discover(sources)
    return push_stream(
        iter_bundles(files),
        client,
        concurrency=concurrency,
        dry_run=dry_run,
        progress=progress,
        stop_rule=stop_rule,
        total=count_bundles(files),
    )


def push_stream(
    bundles: Iterable[LoadedBundle | BundleLoadError],
    client: FhirClient | None,
    *,
    concurrency: int = 4,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    stop_rule: StopRule | None = None,
    total: int | None = None,
) -> PushSummary:
    """Push bundles as they come (read from files, or made by ``convert`` in this process): at
    most ``2 * concurrency`` are held. ``total`` (when known) is passed on to ``progress``;
    otherwise ``progress`` gets the number done so far as the total."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if client is None and not dry_run:
        raise ValueError("a FhirClient is needed unless dry_run is set")
    started = time.monotonic()
    results: dict[int, StudyResult] = {}

    def finish(seq: int, result: StudyResult) -> None:
        results[seq] = result
        if progress is not None:
            progress(result, len(results), max(total or 0, len(results)))

    loaded_iter = enumerate(bundles)
    if dry_run or client is None:
        for seq, loaded in loaded_iter:
            if isinstance(loaded, BundleLoadError):
                finish(seq, _failed(loaded, loaded.message))
            else:
                finish(seq, plan_one(loaded))
        return PushSummary(
            [results[k] for k in sorted(results)], dry_run=True, elapsed=time.monotonic() - started
        )

    breaker = Breaker(stop_rule or StopRule())
    window = 2 * concurrency
    in_flight: dict[Future[StudyResult], tuple[int, LoadedBundle]] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fhirconv-push") as pool:
        try:
            for seq, loaded in loaded_iter:
                if breaker.reason is not None:
                    finish(seq, not_sent_result(loaded, breaker.reason))
                    continue
                if isinstance(loaded, BundleLoadError):
                    finish(seq, _failed(loaded, loaded.message))
                    continue
                in_flight[pool.submit(push_watched, loaded, client, breaker)] = (seq, loaded)
                while len(in_flight) >= window and breaker.reason is None:
                    _collect(in_flight, finish)
                if breaker.reason is not None:
                    _cancel_waiting(in_flight, finish, breaker.reason)
            while in_flight:
                _collect(in_flight, finish)
                if breaker.reason is not None:
                    _cancel_waiting(in_flight, finish, breaker.reason)
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise
    return PushSummary(
        [results[k] for k in sorted(results)],
        dry_run=False,
        elapsed=time.monotonic() - started,
        stopped=breaker.reason,
    )


def _cancel_waiting(
    in_flight: dict[Future[StudyResult], tuple[int, LoadedBundle]],
    finish: Callable[[int, StudyResult], None],
    reason: str,
) -> None:
    """Take back the bundles queued but not started; those already sending finish."""
    for future in list(in_flight):
        if future.cancel():
            seq, loaded = in_flight.pop(future)
            finish(seq, not_sent_result(loaded, reason))


def _collect(
    in_flight: dict[Future[StudyResult], tuple[int, LoadedBundle]],
    finish: Callable[[int, StudyResult], None],
) -> None:
    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
    # Input order among those done at once, so "in a row" means what a reader expects.
    for future in sorted(done, key=lambda f: in_flight[f][0]):
        seq, loaded = in_flight.pop(future)
        try:
            result = future.result()
        except Exception as exc:  # push_one does not raise; be safe anyway
            result = _failed(loaded, f"internal error: {type(exc).__name__}: {exc}")
        finish(seq, result)
