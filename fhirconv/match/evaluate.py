"""Evaluate a patient's FHIR record against a study's eligibility Group, with a reason each time.

Rules (docs/matching.md): missing data is never "met"; units are converted before comparing and
an unconvertible unit is unknown; time windows count back from the as-of date and an observation
older than the window (or, without a window, than the look-back) is missing; inactive, resolved or
refuted conditions are not present unless the criterion asks for history; bounds are compared
exactly as written; daily doses are dose × frequency; age comes from birthDate at the as-of date.
A study is "ineligible" only when a criterion is clearly decided against the patient on present,
current, convertible data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from fhirconv.eligibility import characteristics as ch
from fhirconv.eligibility import codec, vocab
from fhirconv.eligibility.model import Code as ModelCode
from fhirconv.eligibility.model import Concept, Criterion, Item
from fhirconv.eligibility.units import convert, ucum_for_written_unit
from fhirconv.mapping import systems
from fhirconv.match import concepts
from fhirconv.match import medications as meds
from fhirconv.match.facts import MedicationFact, ObservationFact, PatientFacts, facts_of
from fhirconv.match.records import DateRange, PatientRecord, Study, add_duration, parse_date

Json = dict[str, Any]
Result = Literal["met", "not-met", "unknown"]
Verdict = Literal["eligible", "ineligible", "possibly-eligible"]

__all__ = ["CriterionOutcome", "MatchResult", "Options", "match"]

_FINAL = {"final", "amended", "corrected"}
_PRESENT = {"active", "recurrence", "relapse"}
_PAST = {"inactive", "remission", "resolved"}
_PREGNANT = {"77386006", "LA15173-0"}
_NOT_PREGNANT = {"60001007", "LA26683-5"}
_BREASTFEEDING = {"LA29252-6"}
_NOT_BREASTFEEDING = {"LA29253-4"}
_ICD10 = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cm")


# A result with no window in its criterion is current for this long: older labs and vital signs
# are not what a screening visit would use, so they never decide (nor meet) a criterion.
CURRENT_DAYS = 90


@dataclass(frozen=True)
class Options:
    as_of: date
    lookback_days: int = 365  # observations older than this (with no window) count as missing


@dataclass
class Finding:
    """Does the patient have the characteristic's trait? True / False / None (not known)."""

    holds: bool | None
    reason: str
    evidence: list[str] = field(default_factory=list)


@dataclass
class CriterionOutcome:
    id: str
    text: str
    exclude: bool
    result: Result
    evidence: list[str]
    reason: str

    def as_json(self) -> Json:
        return {
            "text": self.text,
            "exclude": self.exclude,
            "result": self.result,
            "evidence": self.evidence,
            "reason": self.reason,
        }


@dataclass
class MatchResult:
    patient: str
    study: str
    verdict: Verdict
    criteria: list[CriterionOutcome]

    def as_json(self) -> Json:
        return {
            "patient": self.patient,
            "study": self.study,
            "verdict": self.verdict,
            "criteria": [c.as_json() for c in self.criteria],
        }


# --- FHIR helpers (patient resources) ------------------------------------------------------------


def _codings(concept: object) -> list[Json]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding", []) or [] if isinstance(c, dict)]


def _has_code(concept: object, system: str, code: str) -> bool:
    return any(c.get("system") == system and c.get("code") == code for c in _codings(concept))


def _words(concept: object) -> str:
    if not isinstance(concept, dict):
        return ""
    return " ".join(
        [str(concept.get("text") or "")] + [str(c.get("display") or "") for c in _codings(concept)]
    )


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.3e}"


@dataclass(frozen=True)
class _Window:
    operator: str
    value: float
    ucum: str
    relation: str

    def start(self, as_of: date) -> date:
        return add_duration(as_of, self.value, self.ucum, -1)

    def describe(self) -> str:
        unit = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours"}.get(
            self.ucum, self.ucum
        )
        words = {"<=": "within", "<": "less than", ">=": "at least", ">": "more than"}[
            self.operator
        ]
        return f"{words} {_fmt(self.value)} {unit} {self.relation}"


def _window(item: Item) -> _Window | None:
    window = item.window
    if window is None or window.operator not in ("<=", "<", ">=", ">"):
        return None
    return _Window(
        window.operator, window.value, window.unit, window.relation or "before the evaluation date"
    )


class _Predicate:
    """A bound (with comparator) or a two-sided range, in the item's unit."""

    def __init__(self, item: Item) -> None:
        self.low: float | None = None
        self.high: float | None = None
        self.low_strict = self.high_strict = False
        self.unit: str | None = None
        self.written = ""
        if item.quantity is not None:
            value = item.quantity.value
            comparator = item.comparator
            self.unit = item.quantity.unit
            shown = item.quantity.written or item.quantity.unit
            unit_text = f" {shown}" if shown else ""
            symbol = {">=": "≥", "<=": "≤"}.get(str(comparator), comparator or "=")
            self.written = f"{symbol} {_fmt(value)}{unit_text}"
            if comparator in (">", ">="):
                self.low, self.low_strict = value, comparator == ">"
            elif comparator in ("<", "<="):
                self.high, self.high_strict = value, comparator == "<"
            else:
                self.low = self.high = value
        elif item.low is not None or item.high is not None:
            low, high = item.low, item.high
            self.low = low.value if low else None
            self.high = high.value if high else None
            self.unit = (low.unit if low else None) or (high.unit if high else None)
            shown = (low.written if low else None) or (high.written if high else None) or self.unit
            unit_text = f" {shown}" if self.unit else ""
            low_text = _fmt(self.low) if self.low is not None else ""
            high_text = _fmt(self.high) if self.high is not None else ""
            self.written = f"{low_text}–{high_text}{unit_text}"

    def test(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_strict and value == self.low)):
            return False
        return not (
            self.high is not None
            and (value > self.high or (self.high_strict and value == self.high))
        )

    def test_interval(
        self, low: float, high: float, low_open: bool, high_open: bool
    ) -> bool | None:
        """True/False when every value in the interval agrees, None otherwise."""
        epsilon = max(abs(low), abs(high), 1.0) * 1e-9
        ends = [low + epsilon if low_open else low, high - epsilon if high_open else high]
        results = {self.test(v) for v in ends if v not in (float("inf"), float("-inf"))}
        if float("inf") in (low, high) or float("-inf") in (low, high):
            # unbounded: decided only if the bound side can never satisfy / always satisfies
            if high == float("inf") and self.high is not None:
                results.add(False)
            if low == float("-inf") and self.low is not None:
                results.add(False)
        return results.pop() if len(results) == 1 else None


# --- evaluators -----------------------------------------------------------------------------------


def _age(record: PatientRecord, item: Item, options: Options) -> Finding:
    birth = parse_date(record.patient.get("birthDate"))
    if birth is None:
        return Finding(None, "no birthDate recorded")
    predicate = _Predicate(item)
    unit = predicate.unit or "a"
    as_of = options.as_of
    if birth.earliest > as_of:
        return Finding(None, f"birthDate {birth} is after the as-of date {as_of}")

    def completed(born: date) -> int:
        months = (as_of.year - born.year) * 12 + as_of.month - born.month - (as_of.day < born.day)
        days = (as_of - born).days
        return {"a": months // 12, "mo": months, "wk": days // 7, "d": days}.get(unit, months // 12)

    oldest, youngest = completed(birth.earliest), completed(min(birth.latest, as_of))
    unit_word = {"a": "years", "mo": "months", "wk": "weeks", "d": "days"}.get(unit, unit)
    evidence = [str(record.patient.get("id") or "?")]
    if predicate.test(oldest) == predicate.test(youngest):
        age = f"{oldest}" if oldest == youngest else f"{youngest}–{oldest}"
        return Finding(
            predicate.test(oldest),
            f"age {age} {unit_word} on {as_of} (birthDate {record.patient.get('birthDate')})"
            f" vs {predicate.written}",
            evidence,
        )
    return Finding(
        None,
        f"birthDate {record.patient.get('birthDate')} leaves age between {youngest} and"
        f" {oldest} {unit_word}: cannot tell against {predicate.written}",
        evidence,
    )


def _sex(record: PatientRecord, item: Item, options: Options) -> Finding:
    wanted = item.value.codes[0].code if item.value and item.value.codes else None
    gender = record.patient.get("gender")
    evidence = [str(record.patient.get("id") or "?")]
    if gender not in ("male", "female"):
        return Finding(None, f"Patient.gender is {gender or 'missing'}", evidence)
    return Finding(gender == wanted, f"Patient.gender {gender} (required {wanted})", evidence)


def _date_of(resource: Json) -> DateRange | None:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if resource.get(key):
            return parse_date(resource[key])
    period = resource.get("effectivePeriod") or {}
    return (
        parse_date(period.get("end"))
        or parse_date(period.get("start"))
        or parse_date(resource.get("issued"))
    )


def _current(
    resources: list[Json], window: _Window | None, options: Options
) -> tuple[list[tuple[DateRange, Json]], list[tuple[DateRange, Json]], date]:
    """(resources dated inside the window, older ones, the window start), newest first."""
    if window is not None and window.operator in ("<=", "<"):
        start = window.start(options.as_of)
    else:
        start = options.as_of - timedelta(days=options.lookback_days)
    inside: list[tuple[DateRange, Json]] = []
    older: list[tuple[DateRange, Json]] = []
    for resource in resources:
        when = _date_of(resource)
        if when is None or when.earliest > options.as_of:
            continue  # undated, or after the as-of date
        (inside if when.earliest >= start else older).append((when, resource))
    inside.sort(key=lambda pair: pair[0].latest, reverse=True)
    older.sort(key=lambda pair: pair[0].latest, reverse=True)
    return inside, older, start


def _observation_matches(observation: Json, c: Json) -> bool:
    code = c.get("code") or {}
    concept = observation.get("code") or {}
    for coding in _codings(code):
        if _has_code(concept, str(coding.get("system")), str(coding.get("code"))):
            return True
    score = next((vocab.score_by_code(str(x.get("code"))) for x in _codings(code)), None)
    if score is not None:
        regex = vocab.phrase_regex(score.synonyms)
        text = _words(concept)
        return bool(regex and regex.search(text) and not re.search(r"\bclinical\b", text, re.I))
    return False


def _observation_value(
    observation: Json,
) -> tuple[float, float, bool, bool, str | None, str] | None:
    """(low, high, low_open, high_open, ucum, written) of the value, or None if not numeric."""
    if isinstance(observation.get("valueInteger"), int):
        value = float(observation["valueInteger"])
        return value, value, False, False, None, _fmt(value)
    quantity = observation.get("valueQuantity")
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return None
    value = float(quantity["value"])
    unit = quantity.get("code") if quantity.get("system") in (None, systems.UCUM) else None
    if not unit and quantity.get("unit"):
        unit = ucum_for_written_unit(str(quantity["unit"]))
    written = f"{_fmt(value)} {quantity.get('unit') or quantity.get('code') or ''}".strip()
    comparator = quantity.get("comparator")
    inf = float("inf")
    if comparator in ("<", "<="):
        return -inf, value, True, comparator == "<", unit, f"{comparator}{written}"
    if comparator in (">", ">="):
        return value, inf, comparator == ">", True, unit, f"{comparator}{written}"
    return value, value, False, False, unit, written


def _criterion_group(item: Item) -> str | None:
    """The LOINC equivalence group of the item's analyte ("creatinine-serum")."""
    for code in item.concept.codes:
        if code.system == systems.LOINC:
            group = concepts.loinc_group(code.code)
            if group:
                return group
    return None


# Body positions a vital sign is taken in ("supine systolic blood pressure", "sitSBP").
_POSITIONS = {
    "supine": re.compile(r"supine|lying|recumbent", re.I),
    "sitting": re.compile(r"sitting|seated|\bsit", re.I),
    "standing": re.compile(r"standing|upright|orthostatic", re.I),
}


def _position(text: str) -> str | None:
    return next((name for name, regex in _POSITIONS.items() if regex.search(text)), None)


def _observation_facts(
    record: PatientRecord, item: Item, options: Options
) -> list[ObservationFact]:
    """Usable results answering the characteristic: any code of its LOINC group (panel components
    included), or for a score without a LOINC code, a result named like it. A criterion naming a
    body position is not answered by a reading the record says was taken in another one."""
    facts = _facts(record, options)
    group = _criterion_group(item)
    if group:
        wanted = _position(item.concept.text or "")
        return [
            o
            for o in facts.observations_of(group)
            if wanted is None or _position(o.code_text) in (None, wanted)
        ]
    found: list[ObservationFact] = []
    for code in item.concept.codes:
        found += facts.observations_with_code(code.system, code.code)
    if found:
        return found
    score = next((vocab.score_by_code(code.code) for code in item.concept.codes), None)
    if score is not None:
        regex = vocab.phrase_regex(score.synonyms)
        return [
            o
            for o in facts.observations
            if o.usable
            and regex
            and regex.search(o.code_text)
            and not re.search(r"\bclinical\b", o.code_text, re.I)
        ]
    return []


def _observation(record: PatientRecord, item: Item, options: Options) -> Finding:
    name = item.concept.text or "value"
    window = _window(item)
    if window is not None and window.operator in ("<=", "<"):
        start = window.start(options.as_of)
        limit = window.describe()
    else:
        days = min(options.lookback_days, CURRENT_DAYS)
        start = options.as_of - timedelta(days=days)
        limit = f"the {days}-day look-back"
    dated = [
        o
        for o in _observation_facts(record, item, options)
        # a preliminary result may still change: it never decides
        if o.status in _FINAL and o.when is not None and o.when.earliest <= options.as_of
    ]
    dated.sort(key=lambda o: o.when.latest if o.when else date.min, reverse=True)
    inside = [o for o in dated if o.when and o.when.earliest >= start]
    if not inside:
        if dated:
            newest = dated[0]
            return Finding(
                None,
                f"latest {name} ({newest.resource}, {newest.when}) is older than {limit}"
                f" (from {start})",
                [_id(newest.resource)],
            )
        return Finding(None, f"no final {name} result recorded")
    fact = inside[0]
    oid = _id(fact.resource)
    when = fact.when
    if fact.quantity is None:
        return Finding(None, f"{name} {oid} on {when} has no numeric value", [oid])
    quantity = fact.quantity
    unit = quantity.unit
    written = str(quantity)
    inf = float("inf")
    low, high = quantity.value, quantity.value
    low_open = high_open = False
    if quantity.comparator in ("<", "<="):
        low, low_open, high_open = -inf, True, quantity.comparator == "<"
    elif quantity.comparator in (">", ">="):
        high, high_open, low_open = inf, True, quantity.comparator == ">"
    predicate = _Predicate(item)
    if predicate.unit == ch.RELATIVE_TO_UPPER_LIMIT:
        ratio = fact.times_upper_limit() if quantity.comparator is None else None
        if ratio is None:
            return Finding(
                None,
                f"{name} {written} on {when} has no reference-range upper limit to compare with"
                f" {predicate.written}",
                [oid],
            )
        low = high = ratio
        written += f" (= {_fmt(ratio)} × ULN {fact.high})"
        unit = predicate.unit
    if predicate.unit is None and unit not in (None, "1") and not str(unit).startswith("{"):
        # "platelets < 100,000" against 245 10*3/uL: a bare number has no scale to compare with.
        return Finding(
            None,
            f"{name} {written} on {when}: the threshold {predicate.written} has no unit",
            [oid],
        )
    if predicate.unit and predicate.unit != unit:
        if unit is None:
            return Finding(
                None,
                f"{name} {written} on {when} has no unit to compare with {predicate.written}",
                [oid],
            )
        converted = [
            v if v in (inf, -inf) else convert(v, unit, predicate.unit, fact.loinc)
            for v in (low, high)
        ]
        if converted[0] is None or converted[1] is None:
            return Finding(
                None,
                f"{name} {written} on {when}: unit {unit} not convertible to {predicate.unit}",
                [oid],
            )
        low, high = float(converted[0]), float(converted[1])
        if low == high:
            written += f" (= {_fmt(low)} {predicate.unit})"
    holds = predicate.test_interval(low, high, low_open, high_open)
    label = name
    if holds is None:
        return Finding(
            None, f"{label} {written} on {when} cannot be compared with {predicate.written}", [oid]
        )
    relation = "meets" if holds else "does not meet"
    return Finding(
        holds, f"{label} {written} on {when} {relation} {predicate.written} [{oid}]", [oid]
    )


def _id(reference: str) -> str:
    return reference.rsplit("/", 1)[-1]


_FACTS: dict[int, tuple[PatientRecord, PatientFacts]] = {}


def _facts(record: PatientRecord, options: Options) -> PatientFacts:
    """The record's facts, built once per match() call."""
    cached = _FACTS.get(id(record))
    if cached is None or cached[0] is not record or cached[1].as_of != options.as_of:
        _FACTS.clear()
        cached = (record, facts_of(record, options.as_of))
        _FACTS[id(record)] = cached
    return cached[1]


def _status_code(concept: object) -> str | None:
    return next((str(x.get("code")) for x in _codings(concept) if x.get("code")), None)


def _reproductive(kind: str) -> Callable[[PatientRecord, Item, Options], Finding]:
    def evaluate(record: PatientRecord, item: Item, options: Options) -> Finding:
        pid = str(record.patient.get("id") or "?")
        if record.patient.get("gender") == "male":
            return Finding(False, f"Patient.gender male: not {kind}", [pid])
        if kind == "of childbearing potential":
            return Finding(None, "childbearing potential is not recorded in a computable form")
        loinc = "82810-3" if kind == "pregnant" else "63895-7"
        yes, no = (
            (_PREGNANT, _NOT_PREGNANT)
            if kind == "pregnant"
            else (_BREASTFEEDING, _NOT_BREASTFEEDING)
        )
        observations = [
            o
            for o in record.of_type("Observation")
            if o.get("status") in _FINAL and _has_code(o.get("code"), systems.LOINC, loinc)
        ]
        window = _window(item) or _Window("<=", 30, "d", "before the evaluation date")
        inside, older, _ = _current(observations, window, options)
        for when, observation in inside:
            codes = {str(x.get("code")) for x in _codings(observation.get("valueCodeableConcept"))}
            if codes & yes:
                return Finding(
                    True, f"{observation.get('id')} on {when}: {kind}", [str(observation.get("id"))]
                )
            if codes & no:
                return Finding(
                    False,
                    f"{observation.get('id')} on {when}: not {kind}",
                    [str(observation.get("id"))],
                )
        if kind == "pregnant":
            for condition in record.of_type("Condition"):
                if (
                    _has_code(condition.get("code"), systems.SNOMED, "77386006")
                    and _condition_state(condition) == "present"
                ):
                    return Finding(
                        True,
                        f"Condition {condition.get('id')}: pregnancy",
                        [str(condition.get("id"))],
                    )
        if older:
            return Finding(
                None,
                f"latest {kind} status ({older[0][1].get('id')}, {older[0][0]})"
                f" is older than {window.describe()}",
            )
        return Finding(None, f"no current {kind} status recorded")

    return evaluate


def _condition_state(condition: Json) -> str:
    """present / past / refuted / ignore."""
    verification = _status_code(condition.get("verificationStatus"))
    if verification == "entered-in-error":
        return "ignore"
    if verification == "refuted":
        return "refuted"
    clinical = _status_code(condition.get("clinicalStatus"))
    if clinical in _PAST:
        return "past"
    if clinical in _PRESENT:
        return "present"
    return (
        "past"
        if condition.get("abatementDateTime") or condition.get("abatementPeriod")
        else "present"
    )


def _condition_matches(condition: Json, wanted: Concept) -> bool:
    concept = condition.get("code") or {}
    synonyms = [wanted.text or ""]
    for code in wanted.codes:
        if code.system != systems.MESH:
            continue
        if _has_code(concept, systems.MESH, code.code):
            return True
        row = vocab.condition_by_mesh(code.code)
        if row is None:
            synonyms.append(code.display or "")
            continue
        synonyms += [row.term, *row.synonyms]
        for theirs in _codings(concept):
            system, value = theirs.get("system"), str(theirs.get("code") or "")
            if system == systems.SNOMED and value in row.snomed:
                return True
            if system in _ICD10 and any(value.startswith(p) for p in row.icd10):
                return True
    if systems.MESH not in wanted.systems():
        row = next(
            (
                r
                for r in vocab.conditions()
                if synonyms[0].lower() in (s.lower() for s in (r.term, *r.synonyms))
            ),
            None,
        )
        if row is not None:
            return _condition_matches(
                condition, Concept((ModelCode(systems.MESH, row.mesh),), synonyms[0])
            )
    regex = vocab.phrase_regex([s for s in synonyms if s])
    return bool(regex and regex.search(_words(concept)))


def _onset(condition: Json) -> DateRange | None:
    period = condition.get("onsetPeriod") or {}
    return (
        parse_date(condition.get("onsetDateTime"))
        or parse_date(period.get("start"))
        or parse_date(condition.get("recordedDate"))
    )


# Words that name no particular disease: sharing only these, a record is not like an exception.
_GENERIC_DISEASE_WORDS = frozenset(
    [
        "cancer",
        "cancers",
        "carcinoma",
        "carcinomas",
        "neoplasm",
        "neoplasms",
        "malignant",
        "malignancy",
        "malignancies",
        "tumor",
        "tumors",
        "tumour",
        "tumours",
        "disease",
        "diseases",
        "disorder",
        "disorders",
        "of",
        "the",
        "and",
        "or",
        "in",
        "for",
        "with",
        "by",
        "to",
        "adequately",
        "treated",
        "cured",
        "curatively",
        "resected",
        "completely",
        "history",
        "other",
        "any",
        "primary",
        "secondary",
        "prior",
        "previous",
        "excised",
        "removed",
    ]
)


def _exception_state(record: PatientRecord, condition: Json, item: Item, options: Options) -> str:
    """Is a recorded condition one of the item's exceptions? "yes", "no", or "unsure" when the
    record cannot show it is not (no MeSH reading of its codes, or a word of an exception)."""
    if any(_condition_matches(condition, exception) for exception in item.exceptions):
        return "yes"
    reference = f"Condition/{condition.get('id')}"
    fact = next((f for f in _facts(record, options).conditions if f.resource == reference), None)
    wanted = {
        concepts.normal_mesh(code.code)
        for exception in item.exceptions
        for code in exception.codes
        if code.system == systems.MESH
    }
    if fact is not None and fact.mesh & wanted:
        return "yes"
    if fact is None or not fact.mesh:
        return "unsure"
    words = set(re.findall(r"[a-z]+", _words(condition.get("code")).lower()))
    for exception in item.exceptions:
        theirs = set(re.findall(r"[a-z]+", (exception.text or "").lower()))
        theirs |= {
            w for c in exception.codes for w in re.findall(r"[a-z]+", (c.display or "").lower())
        }
        if (words & theirs) - _GENERIC_DISEASE_WORDS:
            return "unsure"
    return "no"


def _condition(record: PatientRecord, item: Item, options: Options) -> Finding:
    name = item.concept.text or "condition"
    window = _window(item)
    # "malignancy within the past 5 years": a resolved one inside the window counts too
    history = item.history or (window is not None and window.operator in ("<=", "<"))
    matches = [
        x
        for x in record.of_type("Condition")
        if _condition_matches(x, item.concept) and _condition_state(x) != "ignore"
    ]
    if not matches:
        return Finding(None, f"no {name} recorded")
    negatives: list[str] = []
    undecided: list[str] = []
    for condition in matches:
        cid = str(condition.get("id") or "?")
        state = _condition_state(condition)
        if state == "refuted":
            negatives.append(f"{cid} refuted")
            continue
        if item.exceptions:
            excepted = _exception_state(record, condition, item, options)
            if excepted == "yes":
                negatives.append(f"{cid} is a named exception")
                continue
            if excepted == "unsure":
                undecided.append(f"{cid}: the record cannot show it is not a named exception")
                continue
        if state == "past" and not history:
            negatives.append(f"{cid} {_status_code(condition.get('clinicalStatus')) or 'abated'}")
            continue
        if window is not None:
            onset = _onset(condition)
            if onset is None:
                undecided.append(f"{cid} has no onset date to check {window.describe()}")
                continue
            start = window.start(options.as_of)
            if window.operator in (">=", ">"):
                ok = onset.latest <= start if window.operator == ">=" else onset.latest < start
                no = onset.earliest > start if window.operator == ">=" else onset.earliest >= start
            else:
                ok = onset.earliest >= start and onset.latest <= options.as_of
                no = onset.latest < start
            if not ok:
                (negatives if no else undecided).append(
                    f"{cid} onset {onset} vs {window.describe()}"
                )
                continue
            return Finding(
                True, f"{name}: {cid} ({state}, onset {onset}) {window.describe()}", [cid]
            )
        return Finding(
            True, f"{name}: {cid} ({state}{', history counts' if history else ''})", [cid]
        )
    ids = [str(x.get("id")) for x in matches]
    if undecided:
        return Finding(None, f"{name}: " + "; ".join(undecided), ids)
    return Finding(False, f"{name} not present: " + "; ".join(negatives), ids)


def _medication_filter(item: Item) -> tuple[Callable[[meds.MedicationUse], bool], str, bool]:
    """(does a use count, what it is called, convert to prednisone equivalents?)"""
    dose = item.per_day
    equivalent = item.equivalent_to
    label = item.concept.text or "medication"
    for code in item.concept.codes:
        if code.system == vocab.RXNORM:
            target = vocab.medication_by_rxnorm(code.code)
            if equivalent and target and target.prednisone_factor is not None:
                return (
                    (lambda u: u.entry is not None and u.entry.prednisone_factor is not None),
                    f"{label} (or equivalent)",
                    True,
                )
            return (lambda u, t=target: u.entry is not None and u.entry == t), label, False
        if code.system == vocab.ATC:
            atc = code.code
            drug_class = vocab.drug_class(atc)
            convert_prednisone = bool(drug_class and drug_class.prednisone_equivalent and dose)
            return (
                (lambda u, a=atc: u.entry is not None and u.entry.in_class(a)),
                label,
                convert_prednisone,
            )
    regex = vocab.phrase_regex([label])
    return (lambda u: bool(regex and regex.search(_words(u.concept)))), label, False


def _started_before(began: DateRange | None, window: _Window, as_of: date) -> bool | None:
    if began is None:
        return None
    start = window.start(as_of)
    if window.operator == ">=":
        return True if began.latest <= start else (False if began.earliest > start else None)
    return True if began.latest < start else (False if began.earliest >= start else None)


def _medication_uses(
    record: PatientRecord, item: Item, options: Options
) -> tuple[list[MedicationFact], str]:
    """The patient's medications answering a medication item (entered-in-error ones left out),
    read through the patient facts: ingredients from the patient medication table, ATC classes
    by route (timolol eye drops are not a beta-blocker), current-ness by status and period."""
    facts = _facts(record, options)
    label = item.concept.text or "medication"
    for code in item.concept.codes:
        if code.system == vocab.RXNORM:
            return list(facts.medications_with(ingredient=code.code)), label
        if code.system == vocab.ATC:
            return list(facts.medications_with(atc_class=code.code)), label
    regex = vocab.phrase_regex([label])
    named = [
        m
        for m in facts.medications
        if m.counts and regex and regex.search(" ".join((m.text, *m.names)))
    ]
    return named, label


def _medication(record: PatientRecord, item: Item, options: Options) -> Finding:
    relevant, label = _medication_uses(record, item, options)
    window = _window(item)
    if not relevant:
        return Finding(None, f"no {label} recorded")
    ids = [_id(m.resource) for m in relevant]
    undecided: list[str] = []
    for use in relevant:
        name = ", ".join(use.names)
        uid = _id(use.resource)
        if window is None:
            if use.current:
                return Finding(True, f"taking {name} ({use.resource})", [uid])
            continue
        if window.operator in ("<=", "<"):
            start = window.start(options.as_of)
            if use.current or (
                use.end is not None
                and use.end.latest >= start
                and (use.start is None or use.start.earliest <= options.as_of)
            ):
                return Finding(True, f"{name} ({use.resource}) {window.describe()}", [uid])
            if use.end is None and not use.current:
                undecided.append(f"{use.resource} ({use.status}) has no end date")
            continue
        if not use.current:
            continue
        started = _started_before(use.start, window, options.as_of)
        if started:
            return Finding(
                True, f"{name} ({use.resource}) since {use.start} ({window.describe()})", [uid]
            )
        if started is None:
            undecided.append(f"{use.resource} has no start date to check {window.describe()}")
    if undecided:
        return Finding(None, f"{label}: " + "; ".join(undecided), ids)
    return Finding(
        False,
        f"not taking {label} as required ("
        + ", ".join(f"{u.resource} {u.status}" for u in relevant)
        + ")",
        ids,
    )


def _dose(record: PatientRecord, item: Item, options: Options) -> Finding:
    counts, label, prednisone = _medication_filter(item)
    window = _window(item)
    relevant = [u for u in meds.uses(record, options.as_of) if counts(u) and not u.ignored]
    if not relevant:
        return Finding(None, f"no {label} recorded")
    active = [u for u in relevant if u.active]
    predicate = _Predicate(item)
    ids = [u.id for u in active or relevant]
    total = 0.0
    parts: list[str] = []
    for use in active:
        milligrams, why = meds.daily_dose_mg(use)
        if milligrams is None:
            return Finding(None, why, ids)
        factor = use.entry.prednisone_factor if prednisone and use.entry else 1.0
        if factor is None:
            return Finding(None, f"no prednisone equivalence for {use.name}", ids)
        total += milligrams * factor
        part = f"{use.name} {_fmt(milligrams)} mg/d ({use.label})"
        parts.append(
            part
            + (
                f" ≙ {_fmt(milligrams * factor)} mg prednisone"
                if prednisone and factor != 1
                else ""
            )
        )
        if window is not None and window.operator in (">=", ">"):
            started = _started_before(use.start, window, options.as_of)
            if started is None:
                return Finding(
                    None, f"{use.label} has no start date to check {window.describe()}", ids
                )
            if not started:
                return Finding(
                    False, f"{use.label} started {use.start}: not {window.describe()}", ids
                )
    target = predicate.unit or "mg/d"
    value = convert(total, "mg/d", target)
    if value is None:
        return Finding(None, f"daily dose not convertible to {target}", ids)
    described = " + ".join(parts) if parts else f"no active {label} on {options.as_of}"
    holds = predicate.test(value)
    unit = "mg/d prednisone-equivalent" if prednisone else "mg/d"
    return Finding(
        holds,
        f"daily dose {_fmt(total)} {unit} [{described}]"
        f" {'meets' if holds else 'does not meet'} {predicate.written}",
        ids,
    )


_DONE = {"completed", "in-progress"}


def _procedure(record: PatientRecord, item: Item, options: Options) -> Finding:
    """A procedure done (Procedure.status completed / in-progress), inside the item's window when
    it has one. Recorded only outside the window: not met; not recorded: unknown."""
    name = item.concept.text or "procedure"
    wanted = {(code.system, code.code) for code in item.concept.codes}
    found = [
        p
        for p in _facts(record, options).procedures
        if p.counts and p.codes & wanted and (p.when is None or p.when.earliest <= options.as_of)
    ]
    if not found:
        return Finding(None, f"no {name} recorded")
    done = [p for p in found if p.status in _DONE]
    ids = [_id(p.resource) for p in found]
    if not done:
        statuses = ", ".join(f"{p.resource} {p.status or 'no status'}" for p in found)
        return Finding(None, f"{name}: {statuses}", ids)
    window = _window(item)
    if window is None:
        first = done[0]
        return Finding(True, f"{name}: {first.label}", [_id(first.resource)])
    start = window.start(options.as_of)
    undecided: list[str] = []
    for procedure in done:
        when = procedure.when
        if when is None:
            undecided.append(f"{procedure.resource} has no date")
            continue
        if window.operator in ("<=", "<"):
            inside = when.earliest >= start if window.operator == "<=" else when.earliest > start
            outside = when.latest < start if window.operator == "<=" else when.latest <= start
        else:
            inside = when.latest <= start if window.operator == ">=" else when.latest < start
            outside = when.earliest > start if window.operator == ">=" else when.earliest >= start
        if inside:
            return Finding(
                True,
                f"{name}: {procedure.label} ({window.describe()})",
                [_id(procedure.resource)],
            )
        if not outside:
            undecided.append(f"{procedure.resource} on {when} vs {window.describe()}")
    if undecided:
        return Finding(None, f"{name}: " + "; ".join(undecided), ids)
    latest = ", ".join(f"{p.resource} on {p.when}" for p in done)
    return Finding(False, f"{name} not {window.describe()}: {latest}", ids)


_EVALUATORS: dict[str, Callable[[PatientRecord, Item, Options], Finding]] = {
    "age": _age,
    "sex": _sex,
    "pregnancy": _reproductive("pregnant"),
    "lactation": _reproductive("breastfeeding"),
    "childbearing": _reproductive("of childbearing potential"),
    "observation": _observation,
    "condition": _condition,
    "medication": _medication,
    "dose": _dose,
    "procedure": _procedure,
}


# --- criteria and verdict -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Limits:
    """The study's structured age and sex limits, against which a text item may be read."""

    sex: str | None = None  # the one sex the study admits
    age: Item | None = None
    age_met: bool | None = None  # does the patient meet the structured age limit


def _contradicts_limits(item: Item, finding: Finding, limits: _Limits) -> str | None:
    """Why a text age/sex item is not about the patient, or None. A sex the study does not admit
    ("Female and at least 18" in a male-only study) describes a partner or a caregiver; a text
    age bound the patient fails while meeting a structured bound given on that same side
    ("over 18" vs at least 18 years) is a disagreement in the record, for a person to settle."""
    if item.kind == "sex" and limits.sex:
        wanted = item.value.codes[0].code if item.value and item.value.codes else None
        if wanted and wanted != limits.sex:
            return (
                f"the study admits {limits.sex} patients only: a {wanted} requirement concerns"
                " someone else (a partner?)"
            )
    if item.kind == "age" and limits.age is not None and limits.age_met and finding.holds is False:
        structured = limits.age
        sides_given = (item.low is None or structured.low is not None) and (
            item.high is None or structured.high is not None
        )
        bound = item.quantity
        if bound is not None and item.comparator in (">", ">="):
            sides_given = structured.low is not None
        elif bound is not None and item.comparator in ("<", "<="):
            sides_given = structured.high is not None
        if sides_given:
            return "the text age limit disagrees with the structured one this patient meets"
    return None


def _part(
    item: Item,
    criterion_exclude: bool,
    record: PatientRecord,
    options: Options,
    limits: _Limits | None = None,
) -> Finding:
    """Whether this item makes the criterion's statement true for the patient."""
    evaluate = _EVALUATORS[item.kind]
    scope = item.applies_to_sex
    if scope:
        gender = record.patient.get("gender")
        if gender not in ("male", "female"):
            return Finding(None, f"applies to {scope} patients only; sex not recorded")
        if gender != scope:
            # not this patient's rule: it neither excludes nor fails them
            return Finding(not criterion_exclude, f"applies to {scope} patients only")
    finding = evaluate(record, item, options)
    clash = _contradicts_limits(item, finding, limits) if limits else None
    if clash:
        return Finding(None, f"{finding.reason}: {clash}: needs review", finding.evidence)
    required_diagnosis = item.kind == "condition" and not criterion_exclude and not item.exclude
    if required_diagnosis and finding.holds is False:
        # A required diagnosis recorded as resolved, refuted or outside a window is no proof the
        # patient does not qualify (records are incomplete): never a reason to turn them away.
        return Finding(None, f"{finding.reason}: needs review", finding.evidence)
    if finding.holds is not None and item.exclude != criterion_exclude:
        finding = Finding(not finding.holds, finding.reason, finding.evidence)  # "no …" in the text
    if item.qualifier and finding.holds:
        return Finding(
            None, f"{finding.reason}, but '{item.qualifier}' is not computable", finding.evidence
        )
    if item.conditional and finding.holds is not None:
        return Finding(
            None,
            f"{finding.reason} (the criterion states exceptions or conditions: not decisive)",
            finding.evidence,
        )
    return finding


def _combine(findings: list[Finding], any_of: bool) -> Finding:
    values = [f.holds for f in findings]
    evidence = [e for f in findings for e in f.evidence]
    if any_of:
        hits = [f for f in findings if f.holds]
        if hits:
            return Finding(
                True, " or ".join(f.reason for f in hits), [e for f in hits for e in f.evidence]
            )
        holds = False if all(v is False for v in values) else None
    else:
        misses = [f for f in findings if f.holds is False]
        if misses:
            return Finding(
                False, "; ".join(f.reason for f in misses), [e for f in misses for e in f.evidence]
            )
        holds = True if all(values) else None
    reasons = list(dict.fromkeys(f.reason for f in findings))
    return Finding(holds, "; ".join(reasons), list(dict.fromkeys(evidence)))


def _combine_unit(findings: list[Finding], items: list[Item]) -> Finding:
    """An inclusion's alternatives. "A or B and C" (items of one alternative group carrying
    conjunction groups: the runs joined by "and") is read both ways, "A or (B and C)" and
    "(A or B) and C", and decides only when the two readings agree."""
    if not any(item.conjunction_group for item in items):
        return _combine(findings, any_of=True)
    runs: dict[str, list[Finding]] = {}
    for number, (finding, item) in enumerate(zip(findings, items, strict=True)):
        runs.setdefault(item.conjunction_group or f"#{number}", []).append(finding)
    tight_and = _combine([_combine(run, any_of=False) for run in runs.values()], any_of=True)
    # the other bracketing: split where "and" joins two items, "or" inside each part
    parts: list[list[Finding]] = [[findings[0]]]
    for previous, finding, item in zip(items, findings[1:], items[1:], strict=False):
        joined_by_and = bool(item.conjunction_group) and item.conjunction_group == (
            previous.conjunction_group
        )
        if joined_by_and:
            parts.append([finding])
        else:
            parts[-1].append(finding)
    tight_or = _combine([_combine(part, any_of=True) for part in parts], any_of=False)
    if tight_and.holds == tight_or.holds:
        return tight_and
    return Finding(
        None,
        f"{tight_and.reason}: 'A or B and C' read both ways disagrees: needs review",
        tight_and.evidence,
    )


def _criterion(
    criterion: Criterion, record: PatientRecord, options: Options, limits: _Limits | None = None
) -> CriterionOutcome:
    exclude, text, cid = criterion.exclude, criterion.text, criterion.id
    coverage = criterion.coverage
    if not criterion.items:
        return CriterionOutcome(cid, text, exclude, "unknown", [], "not computable: needs review")
    units: dict[str, list[Finding]] = {}
    unit_members: dict[str, list[Item]] = {}
    for number, item in enumerate(criterion.items):
        group = item.conjunction_group if exclude else item.alternative_group
        key = group or f"#{number}"
        units.setdefault(key, []).append(_part(item, exclude, record, options, limits))
        unit_members.setdefault(key, []).append(item)
    # Inclusion: all units (each an "or" group); exclusion: any unit (each an "and" group).
    combined = [
        _combine_unit(units[key], unit_members[key]) if not exclude else _combine(units[key], False)
        for key in units
    ]
    overall = _combine(combined, any_of=exclude)
    evidence = list(dict.fromkeys(overall.evidence))
    # Only a criterion whose coded items capture its whole meaning decides, in either direction:
    # a partial reading ("X of organic cause", "Y for diabetic patients") is never a verdict.
    if overall.holds is not None and coverage == "complete":
        result: Result = "met" if overall.holds else "not-met"
        return CriterionOutcome(cid, text, exclude, result, evidence, overall.reason)
    # A unit whose items each capture a whole clause (one alternative of an exclusion, one
    # requirement of an inclusion) decides alone, in the direction that excludes.
    for unit_items, unit_finding in zip(unit_members.values(), combined, strict=True):
        if not all(item.whole_clause for item in unit_items):
            continue
        if unit_finding.holds is exclude:
            result = "met" if exclude else "not-met"
            return CriterionOutcome(
                cid,
                text,
                exclude,
                result,
                list(dict.fromkeys(unit_finding.evidence)),
                f"{unit_finding.reason} (this clause is read whole)",
            )
    reason = overall.reason
    if overall.holds is not None:
        reason += "; the coded items capture only part of the criterion: needs review"
    return CriterionOutcome(cid, text, exclude, "unknown", evidence, reason)


def _structured_text(item: Item) -> str:
    if item.kind == "age":
        parts = []
        if item.low is not None:
            parts.append(f"at least {_fmt(item.low.value)} {item.low.written or item.low.unit}")
        if item.high is not None:
            parts.append(f"at most {_fmt(item.high.value)} {item.high.written or item.high.unit}")
        return "Age " + " and ".join(parts) + " (structured limit)"
    sex = item.value.text if item.value and item.value.text else ""
    return f"Sex: {sex} (structured limit)"


def match(record: PatientRecord, study: Study, options: Options) -> MatchResult:
    """One patient against one study's eligibility: a verdict with every criterion's outcome."""
    outcomes: list[CriterionOutcome] = []
    facts = _facts(record, options)
    if facts.deceased:
        when = f" on {facts.deceased_date}" if facts.deceased_date else ""
        outcomes.append(
            CriterionOutcome(
                "deceased",
                "The patient is alive (deceased patients are never candidates)",
                False,
                "not-met",
                [record.id],
                f"Patient.deceased[x]: died{when}",
            )
        )
    criteria = {criterion.id: criterion for criterion in codec.decode(study.characteristics)}
    structured: dict[str, Item] = {}
    for c in study.characteristics:
        cid = str(c.get("id") or "")
        if cid in ("age", "sex"):
            item = codec.decode_item({**c, "exclude": False})
            if item is not None:
                structured[cid] = item
    sex_item = structured.get("sex")
    age_item = structured.get("age")
    limits = _Limits(
        sex=sex_item.value.codes[0].code if sex_item and sex_item.value and sex_item.value.codes
        else None,
        age=age_item,
        age_met=_age(record, age_item, options).holds if age_item else None,
    )  # fmt: skip
    for c in study.characteristics:
        cid = str(c.get("id") or "")
        if cid in structured:
            item = structured[cid]
            limit = Criterion(cid, _structured_text(item), False, "complete", (item,))
            outcomes.append(_criterion(limit, record, options))
        elif cid in criteria:
            outcomes.append(_criterion(criteria[cid], record, options, limits))
    if any(
        (o.result == "not-met" and not o.exclude) or (o.result == "met" and o.exclude)
        for o in outcomes
    ):
        verdict: Verdict = "ineligible"
    elif all(o.result == ("not-met" if o.exclude else "met") for o in outcomes):
        verdict = "eligible"
    else:
        verdict = "possibly-eligible"
    return MatchResult(record.id, study.nct_id, verdict, outcomes)
