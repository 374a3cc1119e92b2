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

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        status_code: int | None,
        last: httpx.Response | None = None,
    ) -> None:
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
) -> httpx.Response:
    """Call ``send`` until it yields a final answer; return that response (any status).

    Raises ``RetriesExhausted`` when attempts or deadline run out on retryable failures and
    ``OutcomeUnknown`` when a non-idempotent request may have been applied.
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
        try:
            response = send()
        except httpx.TransportError as exc:
            problem = _describe(exc)
            if not idempotent and not _never_sent(exc):
                raise OutcomeUnknown(
                    f"{what}: {problem}; it may or may not have been applied, and it was "
                    "not resent because it is not idempotent (it contains a POST without "
                    "ifNoneExist) — check the server before pushing it again",
                    attempts=attempts.count,
                ) from None
        else:
            status, last = response.status_code, response
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
        delay = retry_after if retry_after is not None else backoff_delay(retry, policy, rng)
        remaining = policy.deadline - (clock() - started)
        if delay > remaining:
            waited = f" (the server asked to wait {delay:.0f} s)" if retry_after else ""
            raise RetriesExhausted(
                f"{what}: {problem}; gave up after {attempts.count} attempt(s): the "
                f"{policy.deadline:.0f} s deadline would pass before the next try{waited}",
                attempts=attempts.count,
                status_code=status,
                last=last,
            )
        log.info("%s: %s; retrying in %.1f s (attempt %d)", what, problem, delay, attempts.count)
        attempts.waits.append(delay)
        sleep(delay)
        retry += 1
