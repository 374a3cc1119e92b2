"""Facts about one patient, read once from FHIR R4 JSON and normalised, for the evaluator to query.

Nothing here depends on FHIR model classes: every fact is a frozen dataclass of plain values.
Codes are `(system, code)` pairs. Every fact names its source as `resource` ("Observation/abc"),
its date as `when` (a `DateRange`: a partial date "2019-03" means any day of March 2019; None when
the record gives no date) and a short human `label`, so a verdict can cite its evidence.

- `ObservationFact`: one result. A panel Observation (blood pressure 85354-9 / 55284-4, any
  Observation with `component`) gives one fact for each component, with `panel` = the panel's
  "Observation/id", and one fact for the panel itself when it carries a value. `group` is the
  LOINC equivalence group (`mappings/loinc-groups.csv`: 2160-0, 14682-9 and 38483-4 are all
  "creatinine-serum"); `quantity` is the value with its UCUM unit and `value_in(ucum)` converts
  it (pint; mass ↔ molar via the analyte's molar mass; HbA1c % ↔ mmol/mol). `usable` is False
  for statuses other than final / amended / corrected (a preliminary result never decides).
- `ConditionFact`: `mesh` = MeSH descriptors (7-character form) the SNOMED CT / ICD-10 codes map
  to, with ancestors; `mesh_direct` = the most specific of them. `counts` is False for refuted /
  entered-in-error conditions: they must never be used. `active` is the clinical status
  (active / recurrence / relapse) with no abatement on or before the as-of date.
- `MedicationFact`: a MedicationStatement or MedicationRequest with its ingredients (RxNorm code
  and name), ATC classes, period, `current` on the as-of date (see `_current` for the rule:
  stopped/completed/ended courses and requests older than their supply are not current), route,
  daily dose (value + UCUM, mass in mg), as-needed and reason text.
- `ProcedureFact`, `AllergyFact`, `ImmunizationFact`: code, status and date.
- `PatientFacts`: demographics (`deceased` from `Patient.deceased[x]`) and the lists above with
  look-ups: `observations_of(group)`, `conditions_with_mesh(id)`, `conditions_with_code(...)`,
  `medications_with(ingredient=…, atc_class=…)`, `procedures_with_code(...)`, `allergies_to(...)`.

`facts_of(record, as_of)` builds a `PatientFacts` from a `PatientRecord`. A resource with a
malformed element (a list where FHIR has one value, text where it has a number) gives no fact and
is listed in `PatientFacts.problems`; the rest of the record still counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any, Literal, TypeVar

from fhirconv.eligibility import vocab
from fhirconv.eligibility.units import convert, ucum_for_written_unit
from fhirconv.match import concepts
from fhirconv.match.medications import daily_dose, identify
from fhirconv.match.records import DateRange, PatientRecord, parse_date

__all__ = [
    "AllergyFact",
    "Code",
    "ConditionFact",
    "DateRange",
    "ImmunizationFact",
    "MedicationFact",
    "ObservationFact",
    "PatientFacts",
    "ProcedureFact",
    "Quantity",
    "facts_of",
]

Json = dict[str, Any]
Code = tuple[str, str]  # (system, code)

UCUM = "http://unitsofmeasure.org"
_USABLE_OBSERVATION = frozenset({"final", "amended", "corrected"})
_IGNORED_STATUS = frozenset({"entered-in-error", "not-done", "cancelled"})
_ACTIVE_CONDITION = frozenset({"active", "recurrence", "relapse"})
# A MedicationRequest with no end date and no supply duration is taken as current for this long
# after it was written: a years-old order is no evidence of today's treatment.
REQUEST_CURRENT_DAYS = 365


@dataclass(frozen=True)
class Quantity:
    """A measured value; `unit` is a UCUM code, or None when the record's unit is not UCUM."""

    value: float
    unit: str | None
    comparator: str | None = None  # "<", "<=", ">=", ">" as recorded ("< 0.5")

    def __str__(self) -> str:
        prefix = self.comparator or ""
        return f"{prefix}{self.value:g} {self.unit or '(no unit)'}".strip()


@dataclass(frozen=True)
class ObservationFact:
    resource: str
    label: str
    when: DateRange | None
    codes: frozenset[Code]
    group: str | None
    loinc: str | None  # the code conversions use (molar mass, HbA1c equation)
    quantity: Quantity | None
    coded_value: frozenset[Code]
    boolean: bool | None
    text: str | None  # valueString, or the value's display text
    code_text: str  # what the record calls it ("Blood pressure sitting")
    low: Quantity | None  # reference range
    high: Quantity | None
    status: str
    usable: bool
    panel: str | None  # "Observation/id" of the panel this component came from

    def value_in(self, ucum: str) -> float | None:
        """The value in `ucum`, None when absent or not convertible."""
        if self.quantity is None or self.quantity.unit is None:
            return None
        return convert(self.quantity.value, self.quantity.unit, ucum, self.loinc)

    def times_upper_limit(self) -> float | None:
        """The value as a multiple of the reference range's upper limit (× ULN)."""
        if self.quantity is None or self.high is None or not self.high.value:
            return None
        if self.quantity.unit == self.high.unit or self.high.unit is None:
            return self.quantity.value / self.high.value
        high = self.value_in(self.high.unit)
        return None if high is None else high / self.high.value


@dataclass(frozen=True)
class ConditionFact:
    resource: str
    label: str
    when: DateRange | None  # onset, else the date it was recorded
    codes: frozenset[Code]
    mesh: frozenset[str]  # every descriptor the condition is, ancestors included
    mesh_direct: frozenset[str]  # the most specific of them (what the codes name)
    text: str
    clinical_status: str | None
    verification_status: str | None
    category: frozenset[str]
    onset: DateRange | None
    abatement: DateRange | None
    recorded: DateRange | None
    counts: bool  # False: refuted or entered in error, never evidence of anything
    active: bool  # clinically active on the as-of date


@dataclass(frozen=True)
class MedicationFact:
    resource: str
    label: str
    when: DateRange | None  # start
    kind: Literal["statement", "request"]
    codes: frozenset[Code]
    ingredients: frozenset[str]  # RxNorm ingredient codes known for the drug
    names: tuple[str, ...]  # ingredient name(s) from the medication table, else the record's text
    classes: frozenset[str]  # ATC codes
    status: str
    intent: str | None
    start: DateRange | None
    end: DateRange | None
    current: bool
    counts: bool  # False when entered in error / cancelled / not taken
    route: str | None  # route text or display
    route_codes: frozenset[Code]
    daily_dose: Quantity | None
    dose_note: str  # why there is no daily dose
    as_needed: bool
    reason: tuple[str, ...]
    text: str

    def in_class(self, atc: str) -> bool:
        return any(code.startswith(atc) for code in self.classes)


@dataclass(frozen=True)
class ProcedureFact:
    resource: str
    label: str
    when: DateRange | None  # performed (start of a period)
    codes: frozenset[Code]
    text: str
    status: str
    counts: bool
    reason: tuple[str, ...]


@dataclass(frozen=True)
class AllergyFact:
    resource: str
    label: str
    when: DateRange | None  # onset, else recorded date
    codes: frozenset[Code]  # substance codes, RxNorm included
    text: str
    clinical_status: str | None
    verification_status: str | None
    category: frozenset[str]
    kind: str | None  # allergy | intolerance
    criticality: str | None
    counts: bool  # False: refuted or entered in error
    active: bool


@dataclass(frozen=True)
class ImmunizationFact:
    resource: str
    label: str
    when: DateRange | None
    codes: frozenset[Code]
    text: str
    status: str
    counts: bool  # False unless completed


@dataclass(frozen=True)
class PatientFacts:
    id: str
    resource: str  # "Patient/id"
    as_of: date
    gender: str | None
    birth_date: DateRange | None
    deceased: bool
    deceased_date: DateRange | None
    observations: tuple[ObservationFact, ...]
    conditions: tuple[ConditionFact, ...]
    medications: tuple[MedicationFact, ...]
    procedures: tuple[ProcedureFact, ...]
    allergies: tuple[AllergyFact, ...]
    immunizations: tuple[ImmunizationFact, ...]
    # Resources that could not be read (a malformed element), each "Type/id: why"; they give no
    # fact, and the rest of the record still counts.
    problems: tuple[str, ...] = ()

    def observations_of(self, group: str) -> tuple[ObservationFact, ...]:
        """Usable results of a LOINC group, newest first (undated last)."""
        found = [o for o in self.observations if o.group == group and o.usable]
        return tuple(sorted(found, key=_newest_first))

    def observations_with_code(self, system: str, code: str) -> tuple[ObservationFact, ...]:
        found = [o for o in self.observations if (system, code) in o.codes and o.usable]
        return tuple(sorted(found, key=_newest_first))

    def conditions_with_mesh(self, descriptor: str) -> tuple[ConditionFact, ...]:
        """Conditions (refuted ones excluded) that are `descriptor` or one of its descendants."""
        wanted = concepts.normal_mesh(descriptor)
        return tuple(c for c in self.conditions if c.counts and wanted in c.mesh)

    def conditions_with_code(self, system: str, code: str) -> tuple[ConditionFact, ...]:
        return tuple(c for c in self.conditions if c.counts and (system, code) in c.codes)

    def medications_with(
        self, ingredient: str | None = None, atc_class: str | None = None
    ) -> tuple[MedicationFact, ...]:
        """Medications (entered-in-error excluded) containing an ingredient (RxNorm code or
        name) or belonging to an ATC class (code prefix)."""
        found: list[MedicationFact] = []
        for medication in self.medications:
            if not medication.counts:
                continue
            if ingredient is not None:
                key = ingredient.strip().lower()
                names = {n.lower() for n in medication.names}
                if key not in medication.ingredients and key not in names:
                    continue
            if atc_class is not None and not medication.in_class(atc_class):
                continue
            found.append(medication)
        return tuple(found)

    def procedures_with_code(self, system: str, code: str) -> tuple[ProcedureFact, ...]:
        return tuple(p for p in self.procedures if p.counts and (system, code) in p.codes)

    def allergies_to(self, system: str, code: str) -> tuple[AllergyFact, ...]:
        return tuple(a for a in self.allergies if a.counts and (system, code) in a.codes)


def _newest_first(fact: ObservationFact) -> tuple[bool, int]:
    return (fact.when is None, -fact.when.latest.toordinal() if fact.when else 0)


# --- reading -------------------------------------------------------------------------------------


def _items(value: object) -> list[Any]:
    """A repeating element as a list; anything else (a malformed scalar) as no items."""
    return value if isinstance(value, list) else []


def _mapping(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _codes(concept: object) -> frozenset[Code]:
    if not isinstance(concept, dict):
        return frozenset()
    return frozenset(
        (str(c.get("system") or ""), str(c["code"]).strip())
        for c in _items(concept.get("coding"))
        if isinstance(c, dict) and c.get("code")
    )


def _text(concept: object) -> str:
    if not isinstance(concept, dict):
        return ""
    if concept.get("text"):
        return str(concept["text"])
    for coding in _items(concept.get("coding")):
        if isinstance(coding, dict) and coding.get("display"):
            return str(coding["display"])
    return ""


def _status(concept: object) -> str | None:
    """The code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
    for _, code in sorted(_codes(concept)):
        return code
    return None


def _reference(resource: Json) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id') or '?'}"


def _when(resource: Json, *names: str) -> DateRange | None:
    """The first date among `xDateTime`, `xPeriod.start`, `xInstant`, `xDate` for each name."""
    for name in names:
        for key in (f"{name}DateTime", f"{name}Instant", f"{name}Date", name):
            found = parse_date(resource.get(key))
            if found:
                return found
        period = resource.get(f"{name}Period")
        if isinstance(period, dict):
            found = parse_date(period.get("start")) or parse_date(period.get("end"))
            if found:
                return found
    return None


def _quantity(value: object) -> Quantity | None:
    if not isinstance(value, dict) or not isinstance(value.get("value"), int | float):
        return None
    unit: str | None = None
    if value.get("code") and value.get("system") in (None, UCUM):
        unit = str(value["code"])
    elif value.get("unit"):
        unit = ucum_for_written_unit(str(value["unit"]))
    comparator = value.get("comparator")
    return Quantity(float(value["value"]), unit, str(comparator) if comparator else None)


def _loinc_of(codes: frozenset[Code]) -> tuple[str | None, str | None]:
    loinc = sorted(code for system, code in codes if system == concepts.LOINC)
    for code in loinc:
        group = concepts.loinc_group(code)
        if group:
            return group, code
    return None, (loinc[0] if loinc else None)


def _observation(
    source: Json, part: Json, panel: str | None, when: DateRange | None
) -> ObservationFact:
    codes = _codes(part.get("code"))
    group, loinc = _loinc_of(codes)
    quantity = _quantity(part.get("valueQuantity"))
    if quantity is None and isinstance(part.get("valueInteger"), int):
        quantity = Quantity(float(part["valueInteger"]), None)
    coded = _codes(part.get("valueCodeableConcept"))
    boolean = part.get("valueBoolean") if isinstance(part.get("valueBoolean"), bool) else None
    text = part.get("valueString")
    if text is None and part.get("valueCodeableConcept"):
        text = _text(part.get("valueCodeableConcept")) or None
    low = high = None
    for reference_range in _items(part.get("referenceRange")):
        if isinstance(reference_range, dict):
            low = low or _quantity(reference_range.get("low"))
            high = high or _quantity(reference_range.get("high"))
    status = str(source.get("status") or "")
    name = _text(part.get("code")) or (loinc or "observation")
    shown = (
        str(quantity)
        if quantity
        else (text or ("yes" if boolean else "no" if boolean is False else ""))
    )
    resource = _reference(source)
    label = f"{name} {shown}".strip() + (f" on {when}" if when else " (undated)")
    if panel:
        label += f" (in {resource})"
    return ObservationFact(
        resource=resource,
        label=label,
        when=when,
        codes=codes,
        group=group,
        loinc=loinc,
        quantity=quantity,
        coded_value=coded,
        boolean=boolean,
        text=str(text) if text is not None else None,
        code_text=_text(source.get("code")),
        low=low,
        high=high,
        status=status,
        usable=status in _USABLE_OBSERVATION,
        panel=panel,
    )


def _observations(resource: Json) -> list[ObservationFact]:
    # `issued` (when the result was released) stands in for a missing clinically relevant time.
    when = _when(resource, "effective") or parse_date(resource.get("issued"))
    found: list[ObservationFact] = []
    components = [c for c in _items(resource.get("component")) if isinstance(c, dict)]
    has_value = any(key.startswith("value") for key in resource)
    if has_value or not components:
        found.append(_observation(resource, resource, None, when))
    panel = _reference(resource)
    found += [_observation(resource, component, panel, when) for component in components]
    return found


def _condition(resource: Json, as_of: date) -> ConditionFact:
    codes = _codes(resource.get("code"))
    mesh: set[str] = set()
    direct: set[str] = set()
    for system, code in codes:
        mesh |= concepts.condition_mesh(system, code)
        direct |= concepts.condition_mesh_direct(system, code)
    clinical = _status(resource.get("clinicalStatus"))
    verification = _status(resource.get("verificationStatus"))
    onset = _when(resource, "onset")
    abatement = _when(resource, "abatement")
    counts = verification not in ("refuted", "entered-in-error")
    active = (
        counts
        and clinical in _ACTIVE_CONDITION
        and (abatement is None or abatement.earliest > as_of)
        and (onset is None or onset.earliest <= as_of)
    )
    text = _text(resource.get("code")) or "condition"
    status_words = ", ".join(s for s in (clinical, verification) if s)
    label = f"{text} ({status_words})" if status_words else text
    if onset:
        label += f" since {onset}"
    recorded = parse_date(resource.get("recordedDate"))
    return ConditionFact(
        resource=_reference(resource),
        label=label,
        when=onset or recorded,
        codes=codes,
        mesh=frozenset(mesh),
        mesh_direct=frozenset(
            direct - {a for m in direct for a in concepts.mesh_ancestors(m) if a != m}
        ),
        text=text,
        clinical_status=clinical,
        verification_status=verification,
        category=frozenset(code for c in _items(resource.get("category")) for _, code in _codes(c)),
        onset=onset,
        abatement=abatement,
        recorded=recorded,
        counts=counts,
        active=active,
    )


def _medication_concept(resource: Json, record: PatientRecord) -> Json:
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    medication = record.resolve(resource.get("medicationReference"))
    if medication is None:
        reference = resource.get("medicationReference")
        display = reference.get("display") if isinstance(reference, dict) else None
        return {"text": display} if display else {}
    merged: Json = dict(_mapping(medication.get("code")))
    codings = list(_items(merged.get("coding")))
    texts = [str(merged.get("text") or "")]
    for ingredient in _items(medication.get("ingredient")):
        item = _mapping(_mapping(ingredient).get("itemCodeableConcept"))
        codings += _items(item.get("coding"))
        texts.append(str(item.get("text") or ""))
    merged["coding"] = codings
    merged["text"] = " / ".join(t for t in texts if t)
    return merged


def _days(duration: object) -> float | None:
    if not isinstance(duration, dict) or not isinstance(duration.get("value"), int | float):
        return None
    unit = str(duration.get("code") or duration.get("unit") or "d")
    per = {"d": 1.0, "day": 1.0, "days": 1.0, "wk": 7.0, "mo": 30.4375, "a": 365.25, "h": 1 / 24}
    factor = per.get(unit)
    return None if factor is None else float(duration["value"]) * factor


def _current(
    resource: Json, status: str, start: DateRange | None, end: DateRange | None, as_of: date
) -> bool:
    """Taken on the as-of date.

    A statement counts when its status is active / intended / on-hold and its period covers the
    date. A request counts when it is an active order (not a proposal or plan) covering the date:
    until `dispenseRequest.validityPeriod.end`, else for the supply it grants
    (expectedSupplyDuration × (1 + numberOfRepeatsAllowed)), else for `REQUEST_CURRENT_DAYS` after
    it was written. A course that has ended, stopped or completed is not current.
    """
    if start is not None and start.earliest > as_of:
        return False
    if end is not None and end.latest < as_of:
        return False
    if resource.get("resourceType") == "MedicationStatement":
        return status in ("active", "intended", "on-hold")
    if status not in ("active", "on-hold") or resource.get("intent") in ("proposal", "plan"):
        return False
    if end is not None:
        return True
    if start is None:
        return False  # an undated order says nothing about today
    dispense = _mapping(resource.get("dispenseRequest"))
    supply = _days(dispense.get("expectedSupplyDuration"))
    if supply is not None:
        repeats = dispense.get("numberOfRepeatsAllowed")
        supply *= 1 + (int(repeats) if isinstance(repeats, int) else 0)
    else:
        supply = REQUEST_CURRENT_DAYS
    return start.latest + timedelta(days=round(supply)) >= as_of


@cache
def _medication_patterns() -> tuple[tuple[vocab.Medication, re.Pattern[str]], ...]:
    found = []
    for medication in concepts.patient_medications():
        pattern = vocab.phrase_regex(medication.synonyms)
        if pattern is not None:
            found.append((medication, pattern))
    return tuple(found)


def _ingredients(concept: Json) -> list[vocab.Medication]:
    """Every table ingredient the concept names: by RxNorm ingredient code, then by name in its
    text and displays (a combination product names several)."""
    found: list[vocab.Medication] = []
    first = identify(concept)
    if first is not None:
        found.append(first)
    listed = _items(concept.get("coding"))
    for coding in listed:
        if isinstance(coding, dict) and coding.get("system") == vocab.RXNORM:
            found += [
                m
                for m in concepts.patient_medications()
                if m.rxnorm and m.rxnorm == str(coding.get("code")) and m not in found
            ]
    words = " ".join(
        [str(concept.get("text") or "")]
        + [
            str(c.get("display") or "")
            for c in _items(concept.get("coding"))
            if isinstance(c, dict)
        ]
    )
    for medication, pattern in _medication_patterns():
        if medication not in found and pattern.search(words):
            found.append(medication)
    return found


# ATC classifies by route: an ingredient with route-specific codes keeps those of the record's
# route (timolol eye drops are S01ED01, not the beta-blocker C07AA06; an inhaled corticosteroid is
# R03BA, not a systemic one). Words are looked for in the route and the product text.
_ROUTE_FAMILIES = (
    (re.compile(r"ophthalm|\beye\b|intraocular|conjunctival", re.I), ("S01",)),
    (re.compile(r"inhal|actuat|nebuli[sz]|respiratory", re.I), ("R03",)),
    (re.compile(r"nasal", re.I), ("R01",)),
    (re.compile(r"topical|cutaneous|transdermal|cream|ointment|\bgel\b|lotion", re.I), ("D",)),
)
_LOCAL_FAMILIES = ("S01", "R03", "R01", "D")


def _route_classes(classes: set[str], words: str) -> set[str]:
    for pattern, families in _ROUTE_FAMILIES:
        if pattern.search(words):
            kept = {c for c in classes if c.startswith(families)}
            return kept or classes
    systemic = {c for c in classes if not c.startswith(_LOCAL_FAMILIES)}
    return systemic or classes


def _medication(resource: Json, record: PatientRecord, as_of: date) -> MedicationFact:
    concept = _medication_concept(resource, record)
    codes = _codes(concept)
    entries = _ingredients(concept)
    kind: Literal["statement", "request"] = (
        "request" if resource.get("resourceType") == "MedicationRequest" else "statement"
    )
    status = str(resource.get("status") or "")
    if kind == "request":
        validity = _mapping(_mapping(resource.get("dispenseRequest")).get("validityPeriod"))
        start = parse_date(validity.get("start")) or parse_date(resource.get("authoredOn"))
        end = parse_date(validity.get("end"))
    else:
        period = _mapping(resource.get("effectivePeriod"))
        start = parse_date(period.get("start")) or parse_date(resource.get("effectiveDateTime"))
        end = parse_date(period.get("end"))
    ingredients = {code for system, code in codes if system == vocab.RXNORM}
    ingredients |= {entry.rxnorm for entry in entries if entry.rxnorm}
    text = _text(concept) or "medication"
    names = tuple(entry.name for entry in entries) or (text,)
    dosages = [
        d
        for d in _items(resource.get("dosage")) or _items(resource.get("dosageInstruction"))
        if isinstance(d, dict)
    ]
    route_codes: set[Code] = set()
    route_text: str | None = None
    as_needed = False
    for dosage in dosages:
        route_codes |= _codes(dosage.get("route"))
        route_text = route_text or _text(dosage.get("route")) or None
        as_needed = as_needed or bool(
            dosage.get("asNeededBoolean") or dosage.get("asNeededCodeableConcept")
        )
    try:
        value, unit, note = daily_dose(resource)
    except (TypeError, AttributeError, ValueError, KeyError) as error:
        value, unit, note = None, None, f"dosage not readable ({type(error).__name__})"
    reasons = tuple(t for t in (_text(c) for c in _items(resource.get("reasonCode"))) if t)
    current = _current(resource, status, start, end, as_of)
    label = f"{text} ({status or 'no status'}"
    label += f", from {start}" if start else ""
    label += f" to {end})" if end else ")"
    return MedicationFact(
        resource=_reference(resource),
        label=label,
        when=start,
        kind=kind,
        codes=codes,
        ingredients=frozenset(ingredients),
        names=names,
        classes=frozenset(
            _route_classes({c for e in entries for c in e.classes}, f"{route_text or ''} {text}")
        ),
        status=status,
        intent=str(resource["intent"]) if resource.get("intent") else None,
        start=start,
        end=end,
        current=current,
        counts=status not in _IGNORED_STATUS and status != "not-taken",
        route=route_text,
        route_codes=frozenset(route_codes),
        daily_dose=Quantity(value, unit) if value is not None else None,
        dose_note=note,
        as_needed=as_needed,
        reason=reasons,
        text=text,
    )


def _procedure(resource: Json) -> ProcedureFact:
    when = _when(resource, "performed")
    status = str(resource.get("status") or "")
    text = _text(resource.get("code")) or "procedure"
    return ProcedureFact(
        resource=_reference(resource),
        label=f"{text} ({status})" + (f" on {when}" if when else " (undated)"),
        when=when,
        codes=_codes(resource.get("code")),
        text=text,
        status=status,
        counts=status not in _IGNORED_STATUS,
        reason=tuple(t for t in (_text(c) for c in _items(resource.get("reasonCode"))) if t),
    )


def _allergy(resource: Json, as_of: date) -> AllergyFact:
    codes = set(_codes(resource.get("code")))
    for reaction in _items(resource.get("reaction")):
        if isinstance(reaction, dict):
            codes |= _codes(reaction.get("substance"))
    clinical = _status(resource.get("clinicalStatus"))
    verification = _status(resource.get("verificationStatus"))
    counts = verification not in ("refuted", "entered-in-error")
    text = _text(resource.get("code")) or "allergy"
    when = _when(resource, "onset") or parse_date(resource.get("recordedDate"))
    return AllergyFact(
        resource=_reference(resource),
        label=f"{text} ({', '.join(s for s in (clinical, verification) if s) or 'no status'})",
        when=when,
        codes=frozenset(codes),
        text=text,
        clinical_status=clinical,
        verification_status=verification,
        category=frozenset(str(c) for c in _items(resource.get("category"))),
        kind=str(resource["type"]) if resource.get("type") else None,
        criticality=str(resource["criticality"]) if resource.get("criticality") else None,
        counts=counts,
        active=counts and clinical in (None, "active") and (when is None or when.earliest <= as_of),
    )


def _immunization(resource: Json) -> ImmunizationFact:
    when = _when(resource, "occurrence")
    status = str(resource.get("status") or "")
    text = _text(resource.get("vaccineCode")) or "immunization"
    return ImmunizationFact(
        resource=_reference(resource),
        label=f"{text} ({status})" + (f" on {when}" if when else " (undated)"),
        when=when,
        codes=_codes(resource.get("vaccineCode")),
        text=text,
        status=status,
        counts=status == "completed",
    )


def _deceased(patient: Json) -> tuple[bool, DateRange | None]:
    if patient.get("deceasedBoolean") is True:
        return True, None
    moment = patient.get("deceasedDateTime")
    if moment:
        return True, parse_date(moment)
    return False, None


Fact = TypeVar("Fact")


def _read_each(
    resources: list[Json], read: Callable[[Json], list[Fact]], problems: list[str]
) -> tuple[Fact, ...]:
    """Facts of each resource; a resource with a malformed element becomes a problem instead of
    stopping the patient (FHIR validation would have rejected it; the rest still counts)."""
    found: list[Fact] = []
    for resource in resources:
        try:
            found += read(resource)
        except (TypeError, AttributeError, ValueError, KeyError, IndexError) as error:
            problems.append(
                f"{_reference(resource)}: not readable ({type(error).__name__}: {error})"
            )
    return tuple(found)


def facts_of(record: PatientRecord, as_of: date) -> PatientFacts:
    """Every fact the matcher uses about one patient, as of `as_of`."""
    patient = record.patient
    deceased, deceased_date = _deceased(patient)
    if deceased_date is not None and deceased_date.earliest > as_of:
        deceased, deceased_date = False, None  # dies after the evaluation date
    gender = patient.get("gender")
    problems: list[str] = []
    resources = [r for r in record.resources if isinstance(r, dict)]

    def of_type(*kinds: str) -> list[Json]:
        return [r for r in resources if r.get("resourceType") in kinds]

    return PatientFacts(
        id=record.id,
        resource=f"Patient/{record.id}",
        as_of=as_of,
        gender=str(gender) if isinstance(gender, str) and gender else None,
        birth_date=parse_date(patient.get("birthDate")),
        deceased=deceased,
        deceased_date=deceased_date,
        observations=_read_each(of_type("Observation"), _observations, problems),
        conditions=_read_each(of_type("Condition"), lambda r: [_condition(r, as_of)], problems),
        medications=_read_each(
            of_type("MedicationStatement", "MedicationRequest"),
            lambda r: [_medication(r, record, as_of)],
            problems,
        ),
        procedures=_read_each(of_type("Procedure"), lambda r: [_procedure(r)], problems),
        allergies=_read_each(
            of_type("AllergyIntolerance"), lambda r: [_allergy(r, as_of)], problems
        ),
        immunizations=_read_each(of_type("Immunization"), lambda r: [_immunization(r)], problems),
        problems=tuple(problems),
    )
