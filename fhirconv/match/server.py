"""Matching where the patients live: a FHIR server's patients against studies.

The server only supplies data; every verdict comes from `fhirconv.match.evaluate.match`, the same
code that evaluates patient files, fed with the same kind of `PatientRecord`.

1. **Patients** are read page by page (`Patient?_count=N`, following `next` links) — or, with
   `narrow=True`, only those a FHIR search says may pass some study's structured age and sex
   limits (`Patient?birthdate=…&gender=…`, see `PatientSearch`).
2. **Narrowing.** The structured age and sex limits and `Patient.deceased[x]` are decided by the
   Patient resource alone and exclude exactly (they are complete criteria). Each Patient is first
   evaluated against them; a patient they exclude from every study is reported from the Patient
   resource alone (ineligible, with the deciding limit) and their record is never fetched.
3. **Records.** For the other patients, `Patient/ID/$everything` (only the resource types the
   evaluator reads, paged), or, when the server refuses it (4xx), one search per type
   (`Condition?patient=ID`, …). Records are fetched `concurrency` at a time, evaluated in order,
   and dropped: memory holds one page of Patients and `concurrency` records.

Retries and back-off are `FhirClient.request`'s (`fhirconv.publish.retry`), shared with `push`.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import httpx

from fhirconv.eligibility import codec
from fhirconv.eligibility.model import Item
from fhirconv.errors import ExitCode, PublishError
from fhirconv.mapping.group import birthdate_bounds
from fhirconv.match.evaluate import MatchResult, Options, match
from fhirconv.match.records import PatientRecord, Study, add_duration, patient_records
from fhirconv.publish.client import FhirClient
from fhirconv.publish.retry import Attempts

Json = dict[str, Any]

__all__ = [
    "PATIENT_TYPES",
    "PatientOutcome",
    "PatientSearch",
    "ServerError",
    "Traffic",
    "limits_of",
    "match_server",
    "patient_search",
    "resolve_today",
]

# What the evaluator reads (fhirconv.match.facts); nothing else is fetched.
PATIENT_TYPES = (
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "AllergyIntolerance",
    "Immunization",
)
_MEDICATION_INCLUDES = {
    "MedicationRequest": "MedicationRequest:medication",
    "MedicationStatement": "MedicationStatement:medication",
}
_STRUCTURED_LIMITS = ("age", "sex")
_GENDERS = ("male", "female", "other", "unknown")


class ServerError(PublishError):
    """The server cannot be used for the run (refused credentials, no Patient search): stop."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.RECORDS_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Traffic:
    """Requests sent (retries included) and response bytes received; shared by threads."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0
    everything_refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, response: httpx.Response, attempts: Attempts) -> None:
        with self._lock:
            self.requests += attempts.count
            self.retries += max(0, attempts.count - 1)
            self.bytes += len(response.content)

    def refused_everything(self) -> None:
        with self._lock:
            self.everything_refused += 1


@dataclass
class PatientOutcome:
    """One patient's results against every study, or why they could not be evaluated."""

    patient_id: str
    results: list[MatchResult]
    fetched: bool  # the full record was read (False: excluded by the Patient resource alone)
    error: str | None = None


# --- narrowing --------------------------------------------------------------------------------


def limits_of(study: Study) -> Study:
    """The study reduced to the criteria the Patient resource alone decides: the structured age
    and sex limits (and, inside `match`, `Patient.deceased[x]`)."""
    group = dict(study.group or {})
    group["characteristic"] = [
        c for c in study.characteristics if c.get("id") in _STRUCTURED_LIMITS
    ]
    return replace(study, group=group)


def _excluded(patient: Json, limits: Study, options: Options) -> bool:
    return match(PatientRecord(patient), limits, options).verdict == "ineligible"


@dataclass(frozen=True)
class PatientSearch:
    """FHIR searches on Patient that keep every patient the structured limits do not exclude.

    `birthdate_after` / `birthdate_on_or_before` bound the birth date (age limits at the as-of
    date); `genders` are the administrative genders a sex limit leaves in ("other", "unknown" and
    a missing gender are never excluded: the evaluator calls them unknown). A patient with no
    birthDate is never excluded either, so each bound comes with a second, disjoint search for
    `birthdate:missing=true`.
    """

    birthdate_after: date | None = None
    birthdate_on_or_before: date | None = None
    genders: tuple[str, ...] | None = None

    @property
    def narrows(self) -> bool:
        return bool(self.birthdate_after or self.birthdate_on_or_before or self.genders)

    def queries(self) -> list[dict[str, list[str]]]:
        """Disjoint parameter sets whose union is every patient the limits may leave in."""
        birth: list[dict[str, list[str]]] = [{}]
        bounds: list[str] = []
        if self.birthdate_after is not None:
            bounds.append(f"gt{self.birthdate_after.isoformat()}")
        if self.birthdate_on_or_before is not None:
            bounds.append(f"le{self.birthdate_on_or_before.isoformat()}")
        if bounds:
            birth = [{"birthdate": bounds}, {"birthdate:missing": ["true"]}]
        if not self.genders:
            return birth
        sexes = [{"gender": [",".join(self.genders)]}, {"gender:missing": ["true"]}]
        return [{**b, **g} for b in birth for g in sexes]


def _age_bounds(item: Item, as_of: date) -> tuple[date | None, date | None]:
    """(born after, born on or before) for the item's age limits, read as the evaluator reads
    them: ages in completed units, one unit for both ends (the first end's), strict bounds on
    whole numbers. Anything else gives no bound."""
    low: float | None = None
    high: float | None = None
    if item.quantity is not None:
        unit = item.quantity.unit
        value, comparator = item.quantity.value, item.comparator
        if comparator in (">", ">="):
            low = value + 1 if comparator == ">" else value
        elif comparator in ("<", "<="):
            high = value - 1 if comparator == "<" else value
        else:
            low = high = value
    else:
        unit = (item.low.unit if item.low else None) or (item.high.unit if item.high else None)
        low = item.low.value if item.low else None
        high = item.high.value if item.high else None
    after: date | None = None
    on_or_before: date | None = None
    for prefix, offset in birthdate_bounds(low, high, unit) or []:
        day = add_duration(as_of, offset, str(unit), sign=-1)
        if prefix == "le":
            on_or_before = day
        else:
            after = day
    return after, on_or_before


def patient_search(study: Study, as_of: date) -> PatientSearch:
    """The Patient search that narrows `study` without excluding anyone the evaluator would not
    (only the structured limits, whole units; anything else: no narrowing)."""
    after: date | None = None
    on_or_before: date | None = None
    genders: tuple[str, ...] | None = None
    for characteristic in study.characteristics:
        cid = characteristic.get("id")
        if cid not in _STRUCTURED_LIMITS:
            continue
        item = codec.decode_item({**characteristic, "exclude": False})
        if item is None:
            continue
        if cid == "age" and item.kind == "age":
            after, on_or_before = _age_bounds(item, as_of)
        elif cid == "sex" and item.value and item.value.codes:
            wanted = item.value.codes[0].code
            if wanted in ("male", "female"):
                genders = tuple(
                    g for g in _GENDERS if g != ("female" if wanted == "male" else "male")
                )
    return PatientSearch(after, on_or_before, genders)


def _hull(searches: list[PatientSearch]) -> PatientSearch:
    """One search that keeps every patient any of `searches` keeps (their loosest bounds)."""
    if not searches or not all(s.narrows for s in searches):
        return PatientSearch()
    afters = [s.birthdate_after for s in searches]
    befores = [s.birthdate_on_or_before for s in searches]
    genders = [s.genders for s in searches]
    return PatientSearch(
        None if None in afters else min(a for a in afters if a is not None),
        None if None in befores else max(b for b in befores if b is not None),
        None
        if None in genders
        else tuple(g for g in _GENDERS if any(g in (s or ()) for s in genders)),
    )


_TODAY_MINUS = re.compile(r"\{\{\s*today\(\)\s*-\s*(\d+)\s+(years|months|weeks|days)\s*\}\}")
_UCUM_OF = {"years": "a", "months": "mo", "weeks": "wk", "days": "d"}


def resolve_today(expression: str, day: date) -> str:
    """A `member-filter` query with its embedded `{{today() - N unit}}` FHIRPath evaluated on
    `day` (FHIR servers do not evaluate them: the client substitutes them before searching)."""
    return _TODAY_MINUS.sub(
        lambda m: add_duration(day, int(m.group(1)), _UCUM_OF[m.group(2)], sign=-1).isoformat(),
        expression,
    )


# --- reading from the server ------------------------------------------------------------------


def _next_link(bundle: Json) -> str | None:
    for link in bundle.get("link", []) or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None


def _get(
    client: FhirClient, url: str, params: Mapping[str, str | list[str]] | None, traffic: Traffic
) -> httpx.Response:
    attempts = Attempts()
    response = client.request(
        "GET",
        url,
        params=params,  # type: ignore[arg-type]  # httpx accepts lists for repeated parameters
        headers={"Cache-Control": "no-cache"},
        attempts=attempts,
    )
    traffic.count(response, attempts)
    if response.status_code in (401, 403):
        raise ServerError(
            f"GET {url}: HTTP {response.status_code}: the server refused the credentials "
            "(see --token-env/--token-file, --basic-user, --smart-client-id)",
            ExitCode.AUTH_REFUSED,
        )
    return response


def _pages(
    client: FhirClient, url: str, params: Mapping[str, str | list[str]], traffic: Traffic
) -> Iterator[Json]:
    """Every resource of a search, page after page (`next` links); HTTP errors raise."""
    next_url: str | None = url
    first = True
    while next_url:
        response = _get(client, next_url, params if first else None, traffic)
        first = False
        if response.status_code >= 400:
            raise _HttpRefused(
                response.status_code,
                f"GET {response.request.url}: HTTP {response.status_code} {response.reason_phrase}",
            )
        bundle = response.json()
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise _HttpRefused(
                response.status_code, f"GET {response.request.url}: the answer is not a Bundle"
            )
        for entry in bundle.get("entry", []) or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") != "OperationOutcome":
                yield resource
        next_url = _next_link(bundle)


class _HttpRefused(PublishError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _everything(
    client: FhirClient, patient_id: str, page_size: int, traffic: Traffic
) -> list[Json]:
    return list(
        _pages(
            client,
            f"Patient/{patient_id}/$everything",
            {
                "_type": ",".join(("Patient", *PATIENT_TYPES, "Medication")),
                "_count": str(page_size),
            },
            traffic,
        )
    )


def _per_type(client: FhirClient, patient: Json, page_size: int, traffic: Traffic) -> list[Json]:
    resources: list[Json] = [patient]
    seen: set[str] = set()
    for kind in PATIENT_TYPES:
        params: dict[str, str | list[str]] = {
            "patient": str(patient["id"]),
            "_count": str(page_size),
        }
        if kind in _MEDICATION_INCLUDES:
            params["_include"] = _MEDICATION_INCLUDES[kind]
        for resource in _pages(client, kind, params, traffic):
            key = f"{resource.get('resourceType')}/{resource.get('id')}"
            if key not in seen:  # an included Medication may come once per order
                seen.add(key)
                resources.append(resource)
    return resources


@dataclass
class _Fetcher:
    client: FhirClient
    page_size: int
    traffic: Traffic
    everything: bool = True  # switched off once the server refuses $everything

    def record(self, patient: Json) -> PatientRecord:
        patient_id = str(patient["id"])
        resources: list[Json] | None = None
        if self.everything:
            try:
                resources = _everything(self.client, patient_id, self.page_size, self.traffic)
            except _HttpRefused as refused:
                if not 400 <= refused.status < 500:
                    raise
                self.everything = False  # unsupported here: every later patient per type
                self.traffic.refused_everything()
        if resources is None:
            resources = _per_type(self.client, patient, self.page_size, self.traffic)
        for record in patient_records(resources):
            if record.id == patient_id:
                return record
        return PatientRecord(patient)  # the server answered without the Patient itself


# --- the run ------------------------------------------------------------------------------------


def _patients(
    client: FhirClient, search: PatientSearch, page_size: int, traffic: Traffic
) -> Iterator[Json]:
    for query in search.queries():
        params: dict[str, str | list[str]] = {**query, "_count": str(page_size)}
        try:
            yield from _pages(client, "Patient", params, traffic)
        except _HttpRefused as refused:
            raise ServerError(f"cannot list patients: {refused}") from None


def match_server(
    client: FhirClient,
    studies: list[Study],
    options: Options,
    *,
    concurrency: int = 4,
    page_size: int = 100,
    narrow: bool = False,
    traffic: Traffic | None = None,
) -> Iterator[PatientOutcome]:
    """Every patient on the server (with `narrow`, only those a Patient search keeps for some
    study) against every study, in the server's order. A patient whose record cannot be read is
    an outcome with `error` set; the others continue. `ServerError` stops the run."""
    traffic = traffic if traffic is not None else Traffic()
    limits = [limits_of(study) for study in studies]
    search = (
        _hull([patient_search(s, options.as_of) for s in studies]) if narrow else PatientSearch()
    )
    fetcher = _Fetcher(client, page_size, traffic)
    pending: deque[tuple[Json, Future[PatientRecord] | None]] = deque()

    def settle(patient: Json, future: Future[PatientRecord] | None) -> PatientOutcome:
        patient_id = str(patient.get("id"))
        if future is None:
            record = PatientRecord(patient)
        else:
            try:
                record = future.result()
            except ServerError:
                raise
            except (PublishError, httpx.HTTPError, ValueError) as error:
                return PatientOutcome(patient_id, [], True, f"Patient/{patient_id}: {error}")
        results = [match(record, study, options) for study in studies]
        return PatientOutcome(patient_id, results, future is not None)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for patient in _patients(client, search, page_size, traffic):
            if not patient.get("id"):
                continue
            needed = not all(_excluded(patient, lim, options) for lim in limits)
            pending.append((patient, pool.submit(fetcher.record, patient) if needed else None))
            while len(pending) > concurrency:
                yield settle(*pending.popleft())
        while pending:
            yield settle(*pending.popleft())
