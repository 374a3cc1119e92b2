"""Resending requests that failed for reasons that may pass: throttling, gateways, timeouts.

Policy (``RetryPolicy``):

* retried: HTTP 429, 502, 503, 504; connect/read/write/pool timeouts; connection errors;
  and, for idempotent requests only, HTTP 409: HAPI answers 409 (HAPI-0825, "client-assigned
  ID constraint failure") when two transactions create the same new resource at once — two
  studies sharing a new Organization pushed in parallel. The loser was rolled back whole, and
  resending it finds the resource in place (observed against HAPI 8 with --concurrency 4);
* waits: ``Retry-After`` when the server sends one (seconds or HTTP-date), otherwise exponential
  backoff with *full jitter* — ``uniform(0, min(max_delay, base_delay * 2**retry))``;
* bounded: at most ``max_attempts`` sends and never past ``deadline`` seconds from the first;
  a ``Retry-After`` longer than the time left fails at once, saying both figures;
* not retried: a TLS failure (the server's certificate cannot be verified, or the TLS handshake
  itself fails): trying again cannot change the certificate — ``TlsFailure`` names the URL;
* counted: ``Attempts.causes`` keeps one short label per retry ("429", "503", "connect error")
  so a summary can say "3 retries: 2×429, 1×503";
* idempotency: only an idempotent request is ever resent. A non-idempotent one (a transaction
  with a POST lacking ``ifNoneExist``) is sent once; it is tried again only when the
  connection could not even be opened (connect error/timeout, no free pooled connection: the
  request never left, the server never saw it). 429/503 on it → ``RetriesExhausted`` (refused,
  not resent); a read/write timeout, broken connection or 502/504 → ``OutcomeUnknown``: the
  server may or may not have applied it, and we say so instead of resending.

The sleep function, clock and random source are injectable so tests run instantly.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from fhirconv.errors import PublishError

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
Clock = Callable[[], float]

RETRY_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})
IDEMPOTENT_RETRY_STATUSES: frozenset[int] = frozenset({409})
# Answers that say the server refused the request (did not apply it): a non-idempotent request
# that gets one fails plainly; any other retryable answer leaves its outcome unknown.
_NOT_APPLIED_STATUSES: frozenset[int] = frozenset({429, 503})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. ``max_attempts`` counts the first send."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    deadline: float = 600.0
    retry_statuses: frozenset[int] = field(default=RETRY_STATUSES)
    idempotent_retry_statuses: frozenset[int] = field(default=IDEMPOTENT_RETRY_STATUSES)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.deadline <= 0:
            raise ValueError("delays must be non-negative and the deadline positive")


class RetriesExhausted(PublishError):
    """Every allowed attempt failed with a retryable problem; ``last`` says what the last was."""

    def __init__(self, message: str, *, attempts: int, status_code: int | None,
                 last: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status_code = status_code
        self.reason = last.reason_phrase if last is not None else ""
        self.body: Any = None  # the last answer's JSON (an OperationOutcome, with luck)
        if last is not None:
            try:
                self.body = last.json()
            except ValueError:
                self.body = None


class TlsFailure(PublishError):
    """The TLS connection could not be set up (most often: the certificate does not verify).

    Never retried: the same certificate would fail the same way."""

    def __init__(self, url: str, reason: str, *, certificate: bool) -> None:
        what = "TLS certificate verification failed" if certificate else "TLS handshake failed"
        hint = (" (is the server's CA missing from this machine's trust store, or the name "
                "wrong? --insecure skips the check, for testing only)") if certificate else ""
        super().__init__(f"{what} for URL: {url}: {reason}{hint}")
        self.url = url
        self.reason = reason
        self.certificate = certificate
        self.attempts = 1


class OutcomeUnknown(PublishError):
    """A non-idempotent request may or may not have been applied; it was not resent."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass
class Attempts:
    """What happened while sending: filled in by ``send_with_retry``."""

    count: int = 0
    waits: list[float] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)  # why each retry was made ("429", …)
    connection_failed: bool = False  # the last attempt never reached the server


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), else ``None``."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(retry: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full-jitter exponential backoff before retry number ``retry`` (0 for the first retry)."""
    ceiling = min(policy.max_delay, policy.base_delay * (2**retry))
    return rng.uniform(0.0, ceiling)


def _never_sent(exc: httpx.TransportError) -> bool:
    """The request bytes never left: the server cannot have acted on it."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl`` error under an httpx transport error, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def tls_failure(exc: httpx.TransportError, url: str) -> TlsFailure | None:
    """A ``TlsFailure`` when ``exc`` is one (found in its cause chain, or by OpenSSL's words)."""
    if not isinstance(exc, httpx.ConnectError):
        return None
    cause = _ssl_error(exc)
    text = str(exc)
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        reason = getattr(cause, "verify_message", None) or str(cause or exc)
        return TlsFailure(url, reason, certificate=True)
    if cause is not None or text.startswith("[SSL"):
        return TlsFailure(url, str(cause or exc), certificate=False)
    return None


_CAUSE_LABELS: dict[type[httpx.TransportError], str] = {
    httpx.ConnectTimeout: "connect timeout",
    httpx.ReadTimeout: "read timeout",
    httpx.WriteTimeout: "write timeout",
    httpx.PoolTimeout: "pool timeout",
    httpx.ConnectError: "connect error",
}


def cause_label(exc: httpx.TransportError) -> str:
    """A short name for why a retry was needed (for counting in summaries)."""
    for cls, label in _CAUSE_LABELS.items():
        if isinstance(exc, cls):
            return label
    return "broken connection"


def _describe(exc: httpx.TransportError) -> str:
    kind = {
        httpx.ConnectTimeout: "timed out connecting",
        httpx.ReadTimeout: "timed out waiting for the answer",
        httpx.WriteTimeout: "timed out sending the request",
        httpx.PoolTimeout: "timed out waiting for a free connection",
        httpx.ConnectError: "could not connect",
        httpx.RemoteProtocolError: "the connection broke",
        httpx.ReadError: "the connection broke while reading the answer",
        httpx.WriteError: "the connection broke while sending",
    }
    for cls, words in kind.items():
        if isinstance(exc, cls):
            return words
    return f"network error ({type(exc).__name__})"


def send_with_retry(
    send: Callable[[], httpx.Response],
    *,
    idempotent: bool,
    policy: RetryPolicy | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
    rng: random.Random | None = None,
    attempts: Attempts | None = None,
    what: str = "request",
    url: str = "",
    abort: Callable[[], bool] | None = None,
) -> httpx.Response:
    """Call ``send`` until it yields a final answer; return that response (any status).

    Raises ``RetriesExhausted`` when attempts or deadline run out on retryable failures and
    ``OutcomeUnknown`` when a non-idempotent request may have been applied, ``TlsFailure``
    at once when TLS cannot be set up. ``attempts.connection_failed`` says whether the last
    attempt failed before reaching the server (connect error or timeout). ``abort()`` true
    before a retry: give up at once (a push that is stopping does not wait out backoffs).
    """
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    attempts = attempts if attempts is not None else Attempts()
    started = clock()
    retry = 0
    while True:
        attempts.count += 1
        problem: str
        status: int | None = None
        retry_after: float | None = None
        last: httpx.Response | None = None
        cause: str
        try:
            response = send()
        except httpx.TransportError as exc:
            tls = tls_failure(exc, url or what)
            if tls is not None:
                tls.attempts = attempts.count
                raise tls from None
            attempts.connection_failed = _never_sent(exc)
            problem = _describe(exc)
            cause = cause_label(exc)
            if not idempotent and not _never_sent(exc):
                raise OutcomeUnknown(
                    f"{what}: {problem}; it may or may not have been applied, and it was "
                    "not resent because it is not idempotent (it contains a POST without "
                    "ifNoneExist) — check the server before pushing it again",
                    attempts=attempts.count,
                ) from None
        else:
            attempts.connection_failed = False
            status, last = response.status_code, response
            cause = str(status)
            retryable = status in policy.retry_statuses or (
                idempotent and status in policy.idempotent_retry_statuses
            )
            if not retryable:
                return response
            problem = f"HTTP {status} {response.reason_phrase}".rstrip()
            if not idempotent:
                if status in _NOT_APPLIED_STATUSES:
                    raise RetriesExhausted(
                        f"{what}: {problem} (the server refused it); not resent because it is "
                        "not idempotent (it contains a POST without ifNoneExist)",
                        attempts=attempts.count,
                        status_code=status,
                        last=last,
                    )
                raise OutcomeUnknown(
                    f"{what}: {problem}; a gateway error means it may or may not have been "
                    "applied, and it was not resent because it is not idempotent (it contains "
                    "a POST without ifNoneExist) — check the server before pushing it again",
                    attempts=attempts.count,
                )
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if attempts.count >= policy.max_attempts:
            raise RetriesExhausted(
                f"{what}: {problem}; gave up after {attempts.count} attempt(s)",
                attempts=attempts.count,
                status_code=status,
                last=last,
            )
        if abort is not None and abort():
            raise RetriesExhausted(
                f"{what}: {problem}; not retried after {attempts.count} attempt(s): the push "
                "is stopping",
                attempts=attempts.count,
                status_code=status,
                last=last,
            )
        delay = retry_after if retry_after is not None else backoff_delay(retry, policy, rng)
        remaining = policy.deadline - (clock() - started)
        if delay > remaining:
            if retry_after is not None:
                why = (f"the server asked to wait {delay:.0f} s (Retry-After) but only "
                       f"{max(0.0, remaining):.0f} s of the {policy.deadline:.0f} s deadline "
                       "are left")
            else:
                why = f"the {policy.deadline:.0f} s deadline would pass before the next try"
            raise RetriesExhausted(
                f"{what}: {problem}; gave up after {attempts.count} attempt(s): {why}",
                attempts=attempts.count,
                status_code=status,
                last=last,
            )
        log.info("%s: %s; retrying in %.1f s (attempt %d)", what, problem, delay, attempts.count)
        attempts.waits.append(delay)
        attempts.causes.append(cause)
        sleep(delay)
        retry += 1
