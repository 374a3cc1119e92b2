"""Downloading study records from the ClinicalTrials.gov API v2 (https://clinicaltrials.gov/api/v2).

    CtgovClient.study(nct_id)           one study: ``GET /studies/{nctId}?format=json``
    CtgovClient.search(query, since)    every study matching a query: ``GET /studies``, following
                                        ``nextPageToken`` until the last page (or ``limit``)
    parse_query("condition=lupus&status=RECRUITING")
                                        user-friendly search keys → API parameters (``api_params``)
    StudyFetcher                        NCT id → API v2 JSON text, for ``convert`` inputs

Politeness: the API asks for about 50 requests a minute per IP, so every request (retries
included) first takes a token from a ``RateLimiter`` (default 0.8 requests/s, burst 1). Failures
that may pass — HTTP 429/500/502/503/504, timeouts, broken connections — are retried by
``fhirconv.publish.retry.send_with_retry`` (bounded attempts, full-jitter exponential backoff,
``Retry-After`` honoured); GETs are idempotent, so every retryable failure is resent.

Incremental refresh: ``since`` becomes ``filter.advanced=AREA[LastUpdatePostDate]RANGE[D,MAX]``,
combined with any other advanced filter by ``AND``.

The base URL is ``base_url`` when given, else ``$FHIRCONV_CTGOV_BASE_URL`` (mirrors, tests), else
the public API. Nothing here prints; progress is reported through a callback.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

import httpx

from fhirconv.errors import FhirconvError
from fhirconv.publish.retry import Attempts, RetriesExhausted, RetryPolicy, send_with_retry

Json = dict[str, Any]
Sleep = Callable[[float], None]
Clock = Callable[[], float]
Progress = Callable[[int, int | None], None]
"""Called as ``progress(done, total)`` after each page; ``total`` is None when unknown."""

DEFAULT_BASE_URL = "https://clinicaltrials.gov/api/v2"
BASE_URL_ENV = "FHIRCONV_CTGOV_BASE_URL"
STUDY_PAGE_URL = "https://clinicaltrials.gov/study/"
DEFAULT_RATE = 0.8  # requests per second: under the ~50 requests/minute the API asks for
DEFAULT_RETRIES = 4
DEFAULT_TIMEOUT = 30.0
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000  # the API's largest pageSize
NCT_ID = re.compile(r"^NCT\d{8}$")
FETCH_RETRY_STATUSES: frozenset[int] = frozenset({429, 500, 502, 503, 504})


class FetchError(FhirconvError):
    """A study or page could not be downloaded. Names the study (or URL) and the HTTP status."""

    def __init__(
        self, message: str, *, url: str, status: int | None = None, nct_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.nct_id = nct_id


class QueryError(FhirconvError, ValueError):
    """A ``--query`` that cannot be turned into API parameters (a usage error)."""


# --- where ----------------------------------------------------------------------------------


def resolve_base_url(base_url: str | None = None) -> str:
    """``base_url``, else ``$FHIRCONV_CTGOV_BASE_URL``, else the public API; no trailing slash."""
    chosen = base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    return chosen.rstrip("/")


def study_page_url(nct_id: str) -> str:
    """The public web page of a study: the source name ``convert`` records for a fetched id."""
    return STUDY_PAGE_URL + nct_id


def normalize_nct_id(text: str) -> str:
    """``nct05765006`` → ``NCT05765006``; raises ``QueryError`` for anything else."""
    candidate = text.strip().upper()
    if not NCT_ID.match(candidate):
        raise QueryError(f"{text!r} is not an NCT id (NCT followed by 8 digits)")
    return candidate


# --- queries --------------------------------------------------------------------------------

# Friendly key → API parameter. Keys already spelled as API parameters pass through.
_QUERY_KEYS: dict[str, str] = {
    "condition": "query.cond",
    "cond": "query.cond",
    "term": "query.term",
    "intervention": "query.intr",
    "intr": "query.intr",
    "sponsor": "query.spons",
    "spons": "query.spons",
    "lead": "query.lead",
    "location": "query.locn",
    "locn": "query.locn",
    "title": "query.titles",
    "titles": "query.titles",
    "outcome": "query.outc",
    "id": "query.id",
    "patient": "query.patient",
    "status": "filter.overallStatus",
    "ids": "filter.ids",
    "nct": "filter.ids",
    "geo": "filter.geo",
    "advanced": "filter.advanced",
    "phase": "phase",  # becomes filter.advanced=AREA[Phase](…): see _phase_expression
    "sort": "sort",
    "aggfilters": "aggFilters",
}
_PASS_THROUGH_PREFIXES = ("query.", "filter.", "postFilter.")
_PASS_THROUGH = frozenset({"aggFilters", "sort"})
# Set by the client itself; `fields` would strip the records `convert` needs.
_RESERVED = frozenset({"pageToken", "pageSize", "format", "countTotal", "fields", "markupFormat"})
# Keys whose repeated values are joined into one comma-separated list.
_LIST_KEYS = frozenset({"filter.overallStatus", "filter.ids", "phase"})
_STATUSES = frozenset(
    {
        "ACTIVE_NOT_RECRUITING",
        "COMPLETED",
        "ENROLLING_BY_INVITATION",
        "NOT_YET_RECRUITING",
        "RECRUITING",
        "SUSPENDED",
        "TERMINATED",
        "WITHDRAWN",
        "AVAILABLE",
        "NO_LONGER_AVAILABLE",
        "TEMPORARILY_NOT_AVAILABLE",
        "APPROVED_FOR_MARKETING",
        "WITHHELD",
        "UNKNOWN",
    }
)
_PHASES = {
    "EARLY_PHASE1": "EARLY_PHASE1",
    "EARLY1": "EARLY_PHASE1",
    "0": "EARLY_PHASE1",
    "PHASE1": "PHASE1",
    "1": "PHASE1",
    "PHASE2": "PHASE2",
    "2": "PHASE2",
    "PHASE3": "PHASE3",
    "3": "PHASE3",
    "PHASE4": "PHASE4",
    "4": "PHASE4",
    "NA": "NA",
}


def parse_query(text: str) -> dict[str, str]:
    """``"condition=lupus&status=RECRUITING"`` → ``{"query.cond": "lupus", ...}`` (API names).

    Values may be URL-encoded (``condition=lupus%20nephritis``) or not. Repeating ``status``,
    ``phase`` or ``ids`` adds to the list; repeating any other key is an error.
    """
    pairs = parse_qsl(text.strip().lstrip("?"), keep_blank_values=True)
    if not pairs:
        raise QueryError(f"empty query {text!r}; write key=value pairs joined by &")
    merged: dict[str, str] = {}
    for key, value in pairs:
        name = _api_name(key.strip())
        value = value.strip()
        if not value:
            raise QueryError(f"query key {key!r} has no value")
        if name in merged:
            if name not in _LIST_KEYS:
                raise QueryError(f"query key {key!r} given twice")
            merged[name] += "," + value
        else:
            merged[name] = value
    return merged


def _api_name(key: str) -> str:
    if key in _RESERVED:
        raise QueryError(f"query key {key!r} is set by fhirconv itself; leave it out")
    if key.startswith(_PASS_THROUGH_PREFIXES) or key in _PASS_THROUGH:
        return key
    name = _QUERY_KEYS.get(key.lower())
    if name is None:
        known = ", ".join(sorted(k for k in _QUERY_KEYS if len(k) > 4 or k in {"term", "id"}))
        raise QueryError(
            f"unknown query key {key!r}; use one of {known}, or an API parameter "
            "(query.*, filter.*, aggFilters, sort)"
        )
    return name


def since_expression(since: date) -> str:
    """The Essie expression for "last updated on or after ``since``"."""
    return f"AREA[LastUpdatePostDate]RANGE[{since.isoformat()},MAX]"


def _phase_expression(value: str) -> str:
    phases: list[str] = []
    for raw in value.split(","):
        key = raw.strip().upper().replace(" ", "").replace("-", "_")
        key = key.removeprefix("PHASE_")
        phase = _PHASES.get(key) or _PHASES.get("PHASE" + key)
        if phase is None:
            raise QueryError(
                f"unknown phase {raw.strip()!r}; use EARLY_PHASE1, PHASE1 … PHASE4 or NA (or 1-4)"
            )
        if phase not in phases:
            phases.append(phase)
    if len(phases) == 1:
        return f"AREA[Phase]{phases[0]}"
    return "AREA[Phase](" + " OR ".join(phases) + ")"


def _statuses(value: str) -> str:
    statuses = [s.strip().upper().replace(" ", "_").replace("-", "_") for s in value.split(",")]
    unknown = [s for s in statuses if s not in _STATUSES]
    if unknown:
        raise QueryError(
            f"unknown status {unknown[0]!r}; use one of {', '.join(sorted(_STATUSES))}"
        )
    return ",".join(statuses)


def api_params(query: Mapping[str, str], since: date | None = None) -> dict[str, str]:
    """Search parameters for ``GET /studies``: friendly or API keys in, API parameters out.

    ``phase`` and ``since`` are expressed in ``filter.advanced`` (there is no phase filter
    parameter), AND-ed with any advanced filter already given.
    """
    params: dict[str, str] = {}
    advanced: list[str] = []
    for key, value in query.items():
        name = _api_name(key)
        if name == "phase":
            advanced.append(_phase_expression(value))
        elif name == "filter.advanced":
            advanced.insert(0, value)
        elif name == "filter.overallStatus":
            params[name] = _statuses(value)
        elif name == "filter.ids":
            params[name] = ",".join(normalize_nct_id(i) for i in value.split(",") if i.strip())
        elif name in params:
            raise QueryError(f"query key {key!r} given twice")
        else:
            params[name] = value
    if since is not None:
        advanced.append(since_expression(since))
    if len(advanced) == 1:
        params["filter.advanced"] = advanced[0]
    elif advanced:
        params["filter.advanced"] = " AND ".join(f"({a})" for a in advanced)
    return params


# --- politeness -----------------------------------------------------------------------------


class RateLimiter:
    """A token bucket: ``rate`` tokens a second, holding at most ``burst``.

    ``acquire()`` takes one token, sleeping until one is there; ``rate <= 0`` turns it off.
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: float = 1.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._stamp: float | None = None

    def acquire(self) -> float:
        """Take a token; return how long we waited for it."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        if self._stamp is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        waited = 0.0
        if self._tokens < 1:
            waited = (1 - self._tokens) / self.rate
            self._sleep(waited)
            # The token that accrued while we slept is the one we take.
            self._stamp = now + waited
            self._tokens = 1.0
        self._tokens -= 1
        return waited


# --- the client -----------------------------------------------------------------------------


@dataclass
class FetchStats:
    """What a client did: requests sent (retries included), retry waits, pages and studies read."""

    requests: int = 0
    retries: int = 0
    pages: int = 0
    studies: int = 0
    duplicates: int = 0
    rate_waited: float = 0.0


def _user_agent() -> str:
    try:
        from importlib.metadata import version

        return f"fhirconv/{version('fhirconv')}"
    except Exception:  # not installed (running from a checkout)
        return "fhirconv"


class CtgovClient:
    """ClinicalTrials.gov API v2 over one ``httpx.Client``; use as a context manager or close().

    ``rate`` is requests per second (``<= 0``: unlimited); ``retries`` is how many times a
    failed request is resent (or a full ``RetryPolicy``). ``transport``, ``sleep``, ``clock``
    and ``rng`` are for tests.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        rate: float = DEFAULT_RATE,
        retries: int | RetryPolicy = DEFAULT_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        if isinstance(retries, RetryPolicy):
            self.policy = retries
        else:
            if retries < 0:
                raise ValueError("retries must not be negative")
            self.policy = RetryPolicy(
                max_attempts=retries + 1,
                retry_statuses=FETCH_RETRY_STATUSES,
                idempotent_retry_statuses=frozenset(),
            )
        self.limiter = RateLimiter(rate, clock=clock, sleep=sleep)
        self.stats = FetchStats()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._http = httpx.Client(
            transport=transport,
            timeout=timeout,
            follow_redirects=True,  # an old (alias) NCT id redirects to the current one
            headers={"User-Agent": _user_agent(), "Accept": "application/json"},
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- requests --

    def _get(
        self, path: str, params: Mapping[str, str], nct_id: str | None = None
    ) -> httpx.Response:
        url = self.base_url + path
        shown = str(httpx.URL(url, params=dict(params)))

        def send() -> httpx.Response:
            self.stats.rate_waited += self.limiter.acquire()
            self.stats.requests += 1
            return self._http.get(url, params=dict(params))

        attempts = Attempts()
        try:
            response = send_with_retry(
                send,
                idempotent=True,
                policy=self.policy,
                sleep=self._sleep,
                clock=self._clock,
                rng=self._rng,
                attempts=attempts,
                what=f"GET {shown}",
            )
        except RetriesExhausted as error:
            raise FetchError(
                f"{nct_id + ': ' if nct_id else ''}{error}",
                url=shown,
                status=error.status_code,
                nct_id=nct_id,
            ) from None
        except httpx.HTTPError as error:  # not retryable: bad URL, too many redirects, …
            raise FetchError(
                f"{nct_id + ': ' if nct_id else ''}GET {shown}: {error}", url=shown, nct_id=nct_id
            ) from None
        finally:
            self.stats.retries += len(attempts.waits)
        return response

    def _json(self, response: httpx.Response, nct_id: str | None = None) -> Json:
        url = str(response.request.url)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise FetchError(
                f"{nct_id + ': ' if nct_id else ''}GET {url}: the answer is not JSON ({error})",
                url=url,
                status=response.status_code,
                nct_id=nct_id,
            ) from None
        if not isinstance(body, dict):
            raise FetchError(
                f"{nct_id + ': ' if nct_id else ''}GET {url}: expected a JSON object, "
                f"got {type(body).__name__}",
                url=url,
                status=response.status_code,
                nct_id=nct_id,
            )
        return body

    @staticmethod
    def _refused(response: httpx.Response, nct_id: str | None = None) -> FetchError:
        url = str(response.request.url)
        detail = " ".join(response.text.split())[:300]
        message = f"GET {url}: HTTP {response.status_code} {response.reason_phrase}".rstrip()
        if detail:
            message += f": {detail}"
        if nct_id:
            message = f"{nct_id}: {message}"
        return FetchError(message, url=url, status=response.status_code, nct_id=nct_id)

    # -- the API --

    def study(self, nct_id: str) -> Json:
        """One study as API v2 JSON. ``FetchError`` (status 404) when there is no such study.

        An old NCT id that ClinicalTrials.gov redirects is followed; the study returned then
        carries its current id in ``protocolSection.identificationModule.nctId``.
        """
        nct_id = normalize_nct_id(nct_id)
        response = self._get(f"/studies/{nct_id}", {"format": "json"}, nct_id)
        if response.status_code == 404:
            raise FetchError(
                f"no such study {nct_id} on ClinicalTrials.gov "
                f"(HTTP 404 from {response.request.url})",
                url=str(response.request.url),
                status=404,
                nct_id=nct_id,
            )
        if response.status_code != 200:
            raise self._refused(response, nct_id)
        study = self._json(response, nct_id)
        if "protocolSection" not in study:
            raise FetchError(
                f"{nct_id}: GET {response.request.url}: the answer is not an API v2 study "
                "(no protocolSection)",
                url=str(response.request.url),
                status=response.status_code,
                nct_id=nct_id,
            )
        self.stats.studies += 1
        return study

    def search(
        self,
        query: Mapping[str, str],
        since: date | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        limit: int | None = None,
        progress: Progress | None = None,
    ) -> Iterator[Json]:
        """Every study matching ``query`` (friendly or API keys), page by page, in API order.

        Follows ``nextPageToken`` until the last page or ``limit`` studies. A study seen on an
        earlier page (records can move while paging) is skipped, not repeated.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise QueryError(f"page size must be 1 to {MAX_PAGE_SIZE}, not {page_size}")
        if limit is not None and limit < 1:
            raise QueryError(f"limit must be at least 1, not {limit}")
        base = api_params(query, since)
        base["format"] = "json"
        base["pageSize"] = str(min(page_size, limit) if limit else page_size)
        seen: set[str] = set()
        tokens: set[str] = set()
        token: str | None = None
        total: int | None = None
        done = 0
        while True:
            params = dict(base)
            if token is None:
                params["countTotal"] = "true"
            else:
                params["pageToken"] = token
            response = self._get("/studies", params)
            if response.status_code != 200:
                raise self._refused(response)
            page = self._json(response)
            self.stats.pages += 1
            studies = page.get("studies")
            if not isinstance(studies, list):
                url = str(response.request.url)
                raise FetchError(
                    f"GET {url}: the answer has no studies list",
                    url=url,
                    status=response.status_code,
                )
            if token is None and isinstance(page.get("totalCount"), int):
                total = page["totalCount"] if limit is None else min(page["totalCount"], limit)
            for study in studies:
                nct = _nct_of(study)
                if nct is not None:
                    if nct in seen:
                        self.stats.duplicates += 1
                        continue
                    seen.add(nct)
                done += 1
                self.stats.studies += 1
                yield study
                if limit is not None and done >= limit:
                    if progress:
                        progress(done, total)
                    return
            if progress:
                progress(done, total)
            next_token = page.get("nextPageToken")
            if not next_token:
                return
            if not isinstance(next_token, str) or next_token in tokens:
                url = str(response.request.url)
                raise FetchError(
                    f"GET {url}: the server sent page token {next_token!r} again; stopping "
                    "instead of looping",
                    url=url,
                    status=response.status_code,
                )
            tokens.add(next_token)
            token = next_token


def _nct_of(study: Any) -> str | None:
    try:
        nct = study["protocolSection"]["identificationModule"]["nctId"]
    except (KeyError, TypeError):
        return None
    return nct if isinstance(nct, str) else None


def nct_id_of(study: Json) -> str | None:
    """A study's NCT id (``protocolSection.identificationModule.nctId``), if it has one."""
    return _nct_of(study)


def last_update_posted(study: Json) -> str | None:
    """``lastUpdatePostDateStruct.date`` of a study (``YYYY-MM-DD``), if present."""
    try:
        value = study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


# --- convert's NCT-id inputs ------------------------------------------------------------------


class StudyFetcher:
    """``fetcher(nct_id) -> API v2 JSON text``: what ``convert_inputs`` calls for NCT-id inputs.

    The client is only created on first use (a run without NCT ids opens no connection) and is
    shared by every id, so rate limiting spans them all. Call ``close()`` (or use ``with``).
    """

    def __init__(self, base_url: str | None = None, **options: Any) -> None:
        self._base_url = base_url
        self._options = options
        self._client: CtgovClient | None = None

    def __call__(self, nct_id: str) -> str:
        if self._client is None:
            self._client = CtgovClient(self._base_url, **self._options)
        return json.dumps(self._client.study(nct_id), ensure_ascii=False)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "DEFAULT_RATE",
    "NCT_ID",
    "CtgovClient",
    "FetchError",
    "FetchStats",
    "QueryError",
    "RateLimiter",
    "StudyFetcher",
    "api_params",
    "last_update_posted",
    "nct_id_of",
    "normalize_nct_id",
    "parse_query",
    "resolve_base_url",
    "since_expression",
    "study_page_url",
]
