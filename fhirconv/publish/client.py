"""``FhirClient``: POST transaction Bundles to a FHIR server and say what each entry did.

The client wraps one ``httpx.Client`` (injectable, or built here from an injectable transport)
and is safe to share between threads. Every request goes through ``send_with_retry``; a bundle
is resent only if it is idempotent (see ``is_idempotent``).

How an entry's result is classified (``classify_entry`` and ``FhirClient._settle``), cheapest
reliable signal first:

1. HAPI's storage response code in ``response.outcome`` (``details.coding`` in system
   ``https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code``):
   ``SUCCESSFUL_UPDATE_NO_CHANGE`` → unchanged; ``SUCCESSFUL_UPDATE…`` → updated;
   ``SUCCESSFUL_CREATE…`` / ``SUCCESSFUL_UPDATE_AS_CREATE`` → created;
   ``SUCCESSFUL_CREATE_WITH_CONDITIONAL_MATCH`` → unchanged. This is the server's own word
   and costs nothing; HAPI (5.4+) sends it on every entry.
2. ``201 Created`` → created. ``200 OK`` at version 1 → unchanged (the resource existed
   before, and a write would have made it version 2).
3. ``200 OK`` at version N > 1 on other servers: compare the resource's last-modified time
   with the moment our request reached the server, both on the *server's* clock (no skew):
   that moment is at or after ``Date`` (of the response) minus the round-trip time. Modified
   before it → unchanged, else updated. The time comes from ``response.lastModified`` or,
   when the server leaves it out, from one ``GET`` of the version in ``response.location``
   (its ``meta.lastUpdated``; disable with ``verify_unchanged=False``).
4. Nothing to go on → updated (``how == "assumed"``).
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from fhirconv.errors import PublishError
from fhirconv.publish.outcome import Issue, entry_ref, parse_operation_outcome
from fhirconv.publish.retry import Attempts, Clock, RetryPolicy, Sleep, send_with_retry

log = logging.getLogger(__name__)


def _user_agent() -> str:
    try:
        return f"fhirconv/{importlib.metadata.version('fhirconv')}"
    except importlib.metadata.PackageNotFoundError:
        return "fhirconv"


FHIR_JSON = "application/fhir+json"
HAPI_STORAGE_CODES = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"

EntryKind = Literal["created", "updated", "unchanged", "deleted", "read", "failed", "other"]

_STORAGE_KINDS: dict[str, EntryKind] = {
    "SUCCESSFUL_CREATE": "created",
    "SUCCESSFUL_CREATE_NO_CONDITIONAL_MATCH": "created",
    "SUCCESSFUL_CREATE_WITH_CONDITIONAL_MATCH": "unchanged",
    "SUCCESSFUL_UPDATE": "updated",
    "SUCCESSFUL_UPDATE_AS_CREATE": "created",
    "SUCCESSFUL_UPDATE_NO_CHANGE": "unchanged",
    "SUCCESSFUL_UPDATE_WITH_CONDITIONAL_MATCH": "updated",
    "SUCCESSFUL_UPDATE_NO_CONDITIONAL_MATCH": "created",
    "SUCCESSFUL_CONDITIONAL_UPDATE": "updated",
    "SUCCESSFUL_PATCH": "updated",
    "SUCCESSFUL_PATCH_NO_CHANGE": "unchanged",
    "SUCCESSFUL_CONDITIONAL_PATCH": "updated",
    "SUCCESSFUL_CONDITIONAL_PATCH_NO_CHANGE": "unchanged",
    "SUCCESSFUL_DELETE": "deleted",
    "SUCCESSFUL_DELETE_NOT_FOUND": "deleted",
    "SUCCESSFUL_DELETE_ALREADY_DELETED": "deleted",
}
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
_VERSION_IN_LOCATION = re.compile(r"/_history/([^/?#]+)")


@dataclass(frozen=True)
class Timeouts:
    """Seconds. Transactions can take long on the server, hence the generous read timeout."""

    connect: float = 10.0
    read: float = 120.0
    write: float = 60.0
    pool: float = 300.0  # waiting for a free pooled connection while other threads send

    def to_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


@dataclass(frozen=True)
class EntryResult:
    """What the server did with one bundle entry."""

    index: int
    method: str
    url: str
    ref: str | None  # Type/id of the entry (from request.url or the resource)
    status: int
    location: str | None
    version: str | None
    kind: EntryKind
    how: str  # which signal decided `kind` (storage-code, status, version-1, last-modified, …)
    issues: tuple[Issue, ...] = ()

    @property
    def resource_ref(self) -> str | None:
        """``Type/id`` as stored (from ``location`` when the server gave one)."""
        if self.location:
            parts = self.location.split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2:
                return "/".join(parts[-2:])
        return self.ref


@dataclass(frozen=True)
class TransactionResult:
    """The answer to one transaction (or batch) bundle."""

    status_code: int
    entries: tuple[EntryResult, ...]
    attempts: int
    elapsed: float
    bundle_type: str = "transaction"

    def refs(self, kind: EntryKind) -> list[str]:
        return [e.resource_ref or f"entry {e.index}" for e in self.entries if e.kind == kind]

    def count(self, kind: EntryKind) -> int:
        return sum(1 for e in self.entries if e.kind == kind)

    @property
    def failed_entries(self) -> list[EntryResult]:
        return [e for e in self.entries if e.kind == "failed"]


class TransactionRejected(PublishError):
    """The server answered an error status; ``body`` is its JSON (often an OperationOutcome)."""

    def __init__(self, status_code: int, reason: str, body: Any, attempts: int) -> None:
        issues = parse_operation_outcome(body)
        first = next((i.diagnostics or i.details for i in issues if i.is_error), None)
        super().__init__(
            f"the server refused the bundle: HTTP {status_code} {reason}".rstrip()
            + (f": {first}" if first else "")
        )
        self.status_code = status_code
        self.reason = reason
        self.body = body
        self.issues = issues
        self.attempts = attempts


class BadResponse(PublishError):
    """The server's answer is not the transaction-response we asked for."""


def is_idempotent(bundle: Mapping[str, Any]) -> bool:
    """Can this bundle be sent again safely? PUT/DELETE/GET and conditional POSTs only."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return True
    for entry in entries:
        request = entry.get("request") if isinstance(entry, Mapping) else None
        if not isinstance(request, Mapping):
            return False
        method = str(request.get("method", "")).upper()
        if method in _IDEMPOTENT_METHODS:
            continue
        if method == "POST" and request.get("ifNoneExist"):
            continue
        return False
    return True


def _status_code(status: Any) -> int:
    match = re.match(r"\s*(\d{3})", str(status or ""))
    return int(match.group(1)) if match else 0


def _version(response: Mapping[str, Any]) -> str | None:
    location = response.get("location")
    if isinstance(location, str):
        match = _VERSION_IN_LOCATION.search(location)
        if match:
            return match.group(1)
    etag = response.get("etag")
    if isinstance(etag, str) and etag.strip():
        return etag.strip().removeprefix("W/").strip('"')
    return None


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def classify_entry(
    method: str,
    response: Mapping[str, Any],
    request_arrived_after: datetime | None = None,
    last_modified: datetime | None = None,
) -> tuple[EntryKind, str]:
    """``(kind, how)`` for one response entry — steps 1, 2 and 3 of the module docstring.

    ``request_arrived_after``: a server-clock instant at or before which our request arrived
    (``Date`` of the response minus the round trip). ``last_modified`` overrides
    ``response.lastModified`` (e.g. from a follow-up read).
    """
    status = _status_code(response.get("status"))
    if status >= 400:
        return "failed", "status"
    for issue in parse_operation_outcome(response.get("outcome")):
        for code in issue.storage_codes:
            if code in _STORAGE_KINDS:
                return _STORAGE_KINDS[code], "storage-code"
    method = method.upper()
    if method in ("GET", "HEAD"):
        return "read", "status"
    if method == "DELETE":
        return "deleted", "status"
    if status == 201:
        return "created", "status"
    if status != 200:
        return "other", "status"
    version = _version(response)
    if version == "1":
        return "unchanged", "version-1"
    modified = last_modified or _parse_instant(response.get("lastModified"))
    if modified is not None and request_arrived_after is not None:
        if modified < request_arrived_after:
            return "unchanged", "last-modified"
        return "updated", "last-modified"
    return "updated", "assumed"


def _reason(response: httpx.Response) -> str:
    return response.reason_phrase or ""


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class FhirClient:
    """A FHIR server's REST API, for what publishing needs: transactions and reads."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None = None,
        http_client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeouts: Timeouts | None = None,
        verify: bool = True,
        retry: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
        max_connections: int = 10,
        verify_unchanged: bool = True,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise PublishError(f"the server URL must start with http:// or https://: {base_url}")
        if httpx.URL(base_url).userinfo:
            raise PublishError(
                "put no credentials in the server URL; use a token, basic-auth "
                "or SMART option (secrets from an environment variable or file)"
            )
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.timeouts = timeouts or Timeouts()
        self.verify_unchanged = verify_unchanged
        self._auth = auth
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._owns_client = http_client is None
        if http_client is None:
            if not verify:
                log.warning("TLS certificate verification is OFF for %s", self.base_url)
            http_client = httpx.Client(
                transport=transport,
                timeout=self.timeouts.to_httpx(),
                verify=verify,
                limits=httpx.Limits(
                    max_connections=max_connections, max_keepalive_connections=max_connections
                ),
                headers={"User-Agent": _user_agent()},
                follow_redirects=False,
            )
        self._http = http_client

    def __repr__(self) -> str:
        return f"FhirClient({self.base_url!r}, auth={self._auth!r})"

    def close(self) -> None:
        if self._owns_client:
            self._http.close()

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------

    def _send(self, request: httpx.Request) -> httpx.Response:
        if self._auth is not None:
            return self._http.send(request, auth=self._auth)
        return self._http.send(request)

    def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        attempts: Attempts | None = None,
    ) -> httpx.Response:
        """Send with retries; ``url`` is relative to the base URL unless absolute."""
        if not url.startswith(("http://", "https://")):
            url = f"{self.base_url}/{url.lstrip('/')}" if url else self.base_url
        all_headers = {"Accept": FHIR_JSON}
        if json is not None:
            all_headers["Content-Type"] = FHIR_JSON
        all_headers.update(headers or {})
        request = self._http.build_request(
            method, url, json=json, params=params, headers=all_headers
        )
        if idempotent is None:
            idempotent = method.upper() in _IDEMPOTENT_METHODS
        return send_with_retry(
            lambda: self._send(request),
            idempotent=idempotent,
            policy=self.retry,
            sleep=self._sleep,
            clock=self._clock,
            rng=self._rng,
            attempts=attempts,
            what=f"{method} {url}",
        )

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET ``path`` (bypassing server-side caches); raise ``TransactionRejected`` on errors."""
        response = self.request("GET", path, params=params, headers={"Cache-Control": "no-cache"})
        if response.status_code >= 400:
            raise TransactionRejected(
                response.status_code, _reason(response), _json_or_none(response), 1
            )
        return response.json()

    def post_transaction(self, bundle: Mapping[str, Any]) -> TransactionResult:
        """POST a transaction (or batch) bundle to the base URL and classify every entry.

        Raises ``TransactionRejected`` (an error status), ``RetriesExhausted``,
        ``OutcomeUnknown`` (a non-idempotent bundle may have been applied), ``BadResponse``
        or ``AuthError``/``AuthConfigError`` — all ``PublishError``.
        """
        attempts = Attempts()
        started = self._clock()
        response = self.request(
            "POST", "", json=bundle, idempotent=is_idempotent(bundle), attempts=attempts
        )
        elapsed = self._clock() - started
        body = _json_or_none(response)
        if response.status_code >= 300:  # redirects are not followed: a POST must not move
            raise TransactionRejected(response.status_code, _reason(response), body, attempts.count)
        if not isinstance(body, Mapping) or body.get("resourceType") != "Bundle":
            raise BadResponse(
                f"the server answered HTTP {response.status_code} but not with a Bundle"
            )
        return self._settle(bundle, response, body, attempts.count, elapsed)

    # -- classification ----------------------------------------------------------------------

    def _arrival_bound(self, response: httpx.Response, elapsed: float) -> datetime | None:
        date = response.headers.get("Date")
        if not date:
            return None
        try:
            answered = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return None
        if answered.tzinfo is None:
            return None
        # The response left at or after `answered` (Date is truncated to the second), so the
        # request arrived at or after answered - elapsed.
        return answered - timedelta(seconds=elapsed)

    def _last_updated(self, location: str) -> datetime | None:
        try:
            resource = self.get_json(location)
        except PublishError as exc:
            log.debug("could not read %s to classify it: %s", location, exc)
            return None
        meta = resource.get("meta") if isinstance(resource, Mapping) else None
        return _parse_instant(meta.get("lastUpdated")) if isinstance(meta, Mapping) else None

    def _settle(
        self,
        bundle: Mapping[str, Any],
        response: httpx.Response,
        body: Mapping[str, Any],
        attempts: int,
        elapsed: float,
    ) -> TransactionResult:
        sent: Sequence[Any] = bundle.get("entry") or []
        answered: Sequence[Any] = body.get("entry") or []
        if len(answered) != len(sent):
            raise BadResponse(
                f"the server answered {len(answered)} entries for the {len(sent)} sent"
            )
        arrived_after = self._arrival_bound(response, elapsed)
        results: list[EntryResult] = []
        for index, (request_entry, response_entry) in enumerate(zip(sent, answered, strict=True)):
            req = request_entry.get("request") if isinstance(request_entry, Mapping) else None
            req = req if isinstance(req, Mapping) else {}
            res = response_entry.get("response") if isinstance(response_entry, Mapping) else None
            res = res if isinstance(res, Mapping) else {}
            method = str(req.get("method", "")).upper()
            kind, how = classify_entry(method, res, arrived_after)
            location = res.get("location") if isinstance(res.get("location"), str) else None
            if (
                how == "assumed"
                and self.verify_unchanged
                and location
                and arrived_after is not None
            ):
                modified = self._last_updated(location)
                if modified is not None:
                    kind, how = classify_entry(method, res, arrived_after, modified)
                    how = "read-back" if how == "last-modified" else how
            results.append(
                EntryResult(
                    index=index,
                    method=method,
                    url=str(req.get("url", "")),
                    ref=entry_ref(request_entry),
                    status=_status_code(res.get("status")),
                    location=location,
                    version=_version(res),
                    kind=kind,
                    how=how,
                    issues=tuple(parse_operation_outcome(res.get("outcome"))),
                )
            )
        return TransactionResult(
            status_code=response.status_code,
            entries=tuple(results),
            attempts=attempts,
            elapsed=elapsed,
            bundle_type=str(body.get("type", "")).removesuffix("-response") or "transaction",
        )


@dataclass
class ClientOptions:
    """Everything needed to build a ``FhirClient`` (what the CLI collects)."""

    base_url: str
    auth: httpx.Auth | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    verify: bool = True
    max_connections: int = 10

    def build(self, transport: httpx.BaseTransport | None = None) -> FhirClient:
        return FhirClient(
            self.base_url,
            auth=self.auth,
            timeouts=self.timeouts,
            retry=self.retry,
            verify=self.verify,
            max_connections=self.max_connections,
            transport=transport,
        )


def sends_credentials_in_clear(base_url: str, has_auth: bool) -> bool:
    """Would credentials travel unencrypted (http:// to a host other than this machine)?"""
    if not has_auth or not base_url.startswith("http://"):
        return False
    host = httpx.URL(base_url).host
    return host not in ("localhost", "127.0.0.1", "::1")
