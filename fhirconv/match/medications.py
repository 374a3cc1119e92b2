"""What a patient takes: MedicationStatement / MedicationRequest → ingredient and daily dose.

The ingredient comes from an RxNorm coding (ingredient RxCUI) or, failing that, from the drug's
name in the coding display or text (product codes such as "predniSONE 5 MG Oral Tablet" are not
ingredient codes, and no RxNorm relationship data ship offline). The daily dose is
doseQuantity × timing.repeat.frequency / period, or × the times a day of a timing code (BID, TID…).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhirconv.eligibility import vocab
from fhirconv.eligibility.units import convert, ucum_for_written_unit
from fhirconv.match.records import DateRange, PatientRecord, parse_date

Json = dict[str, Any]

UCUM = "http://unitsofmeasure.org"
# HL7 v3 GTSAbbreviation timing codes → administrations per day.
_TIMING_CODES = {"QD": 1.0, "BID": 2.0, "TID": 3.0, "QID": 4.0, "AM": 1.0, "PM": 1.0,
                 "QOD": 0.5, "Q4H": 6.0, "Q6H": 4.0, "Q8H": 3.0, "Q12H": 2.0,
                 "QHS": 1.0}  # fmt: skip
_PERIOD_DAYS = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1.0, "wk": 7.0, "mo": 30.4375,
                "a": 365.25}  # fmt: skip
_ACTIVE_STATEMENT = {"active", "intended", "on-hold"}
_ACTIVE_REQUEST = {"active", "on-hold"}


@dataclass
class MedicationUse:
    resource: Json
    concept: Json  # the medication's CodeableConcept
    entry: vocab.Medication | None
    active: bool  # being taken on the as-of date
    start: DateRange | None
    end: DateRange | None
    ignored: bool = False  # entered-in-error

    @property
    def id(self) -> str:
        return str(self.resource.get("id") or "?")

    @property
    def label(self) -> str:
        return f"{self.resource.get('resourceType')}/{self.id}"

    @property
    def name(self) -> str:
        if self.entry:
            return self.entry.name
        return str(self.concept.get("text") or "medication")


def _concept(resource: Json, record: PatientRecord) -> Json:
    concept = resource.get("medicationCodeableConcept")
    if isinstance(concept, dict):
        return concept
    medication = record.resolve(resource.get("medicationReference"))
    if medication is None:
        return {}
    merged: Json = dict(medication.get("code") or {})
    codings = list(merged.get("coding", []) or [])
    texts = [merged.get("text") or ""]
    for ingredient in medication.get("ingredient", []) or []:
        item = ingredient.get("itemCodeableConcept") or {}
        codings += item.get("coding", []) or []
        texts.append(item.get("text") or "")
    merged["coding"] = codings
    merged["text"] = " / ".join(t for t in texts if t)
    return merged


def identify(concept: Json) -> vocab.Medication | None:
    listed = concept.get("coding")
    codings = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
    for coding in codings:
        if coding.get("system") == vocab.RXNORM and coding.get("code"):
            found = vocab.medication_by_rxnorm(str(coding["code"]))
            if found:
                return found
    words = " ".join(
        [str(concept.get("text") or "")] + [str(c.get("display") or "") for c in codings]
    )
    for med in vocab.medications():
        regex = vocab.phrase_regex(med.synonyms)
        if regex and regex.search(words):
            return med
    return None


def _period(resource: Json) -> tuple[DateRange | None, DateRange | None]:
    if resource.get("resourceType") == "MedicationRequest":
        validity = (resource.get("dispenseRequest") or {}).get("validityPeriod") or {}
        start = parse_date(validity.get("start")) or parse_date(resource.get("authoredOn"))
        return start, parse_date(validity.get("end"))
    period = resource.get("effectivePeriod") or {}
    start = parse_date(period.get("start")) or parse_date(resource.get("effectiveDateTime"))
    return start, parse_date(period.get("end"))


def uses(record: PatientRecord, as_of: date) -> list[MedicationUse]:
    found: list[MedicationUse] = []
    for resource in record.of_type("MedicationStatement", "MedicationRequest"):
        status = str(resource.get("status") or "")
        concept = _concept(resource, record)
        start, end = _period(resource)
        if resource.get("resourceType") == "MedicationRequest":
            active = status in _ACTIVE_REQUEST and resource.get("intent") not in ("proposal",)
        else:
            active = status in _ACTIVE_STATEMENT
        if start is not None and start.earliest > as_of:
            active = False
        if end is not None and end.latest < as_of:
            active = False
        found.append(
            MedicationUse(
                resource,
                concept,
                identify(concept),
                active,
                start,
                end,
                ignored=status == "entered-in-error",
            )
        )
    return found


def _per_day(dosage: Json) -> float | None:
    timing = dosage.get("timing") or {}
    repeat = timing.get("repeat") or {}
    if repeat.get("frequency") is not None or repeat.get("period") is not None:
        frequency = float(repeat.get("frequencyMax") or repeat.get("frequency") or 1)
        period = float(repeat.get("period") or 1)
        unit = _PERIOD_DAYS.get(str(repeat.get("periodUnit") or "d"))
        if unit is None or period <= 0:
            return None
        return frequency / (period * unit)
    for coding in (timing.get("code") or {}).get("coding", []) or []:
        per_day = _TIMING_CODES.get(str(coding.get("code") or "").upper())
        if per_day is not None:
            return per_day
    return None


def daily_dose(resource: Json) -> tuple[float | None, str | None, str]:
    """Daily dose of a MedicationStatement / MedicationRequest as (value, UCUM unit, ""), or
    (None, None, why not). Several dosage lines add up when their units agree (mass units are
    summed in mg)."""
    label = f"{resource.get('resourceType')}/{resource.get('id') or '?'}"
    dosages = resource.get("dosage") or resource.get("dosageInstruction") or []
    if not dosages:
        return None, None, f"{label} has no dosage"
    total = 0.0
    total_unit: str | None = None
    for dosage in dosages:
        if dosage.get("asNeeded") or dosage.get("asNeededBoolean"):
            return None, None, f"{label} is taken as needed"
        rates = dosage.get("doseAndRate") or []
        quantity = next((r.get("doseQuantity") for r in rates if r.get("doseQuantity")), None)
        if not isinstance(quantity, dict) or quantity.get("value") is None:
            return None, None, f"{label} has no dose quantity"
        unit = quantity.get("code") if quantity.get("system") in (None, UCUM) else None
        unit = unit or ucum_for_written_unit(str(quantity.get("unit") or ""))
        if not unit:
            written = quantity.get("unit") or quantity.get("code") or "no unit"
            return None, None, f"{label} dose unit {written!r} is not UCUM"
        per_day = _per_day(dosage)
        if per_day is None:
            return None, None, f"{label} has no computable frequency"
        value = float(quantity["value"])
        milligrams = convert(value, unit, "mg")
        if milligrams is not None:
            value, unit = milligrams, "mg"
        if total_unit not in (None, unit):
            return None, None, f"{label} has dosage lines in {total_unit} and {unit}"
        total += value * per_day
        total_unit = unit
    return total, total_unit, ""


def daily_dose_mg(use: MedicationUse) -> tuple[float | None, str]:
    """Daily dose in mg of one medication use, or None and why not."""
    value, unit, why = daily_dose(use.resource)
    if value is None:
        return None, why.replace(f"{use.resource.get('resourceType')}/{use.id}", use.label)
    if unit != "mg":
        return None, f"{use.label} dose unit {unit!r} is not a mass"
    return value, ""
