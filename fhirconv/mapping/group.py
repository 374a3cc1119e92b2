"""Trial → eligibility Group: who may enrol, in a form EHR trial matching can read.

`type` person, `actual` false. Structured limits become coded characteristics (age as a UCUM
Range, sex, healthy volunteers); the free-text criteria become one characteristic per inclusion or
exclusion criterion with `exclude` set and the criterion's verbatim text as the value, so a consumer
that knows none of our extensions still reads every criterion. After each criterion come the
computable characteristics found in its text (labs, scores, ages, doses, conditions, medications:
coded `code`, `valueQuantity`/`valueRange`/`valueCodeableConcept`/`valueBoolean`, `exclude`), tied
to it by the `eligibility-source-criterion` extension (docs/matching.md lists every extension).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from fhirconv.eligibility import codec
from fhirconv.eligibility.characteristics import COHORT_HEADING, computable_characteristics
from fhirconv.eligibility.criteria import split_criteria
from fhirconv.eligibility.model import Criterion
from fhirconv.mapping import ids, systems
from fhirconv.mapping.context import MappingContext
from fhirconv.model import AgeLimit, Code

Json = dict[str, Any]

CHARACTERISTIC_CODES = systems.codes("eligibility-characteristic")
CRITERIA_TEXT = systems.extension("eligibility-criteria-text")
STUDY_POPULATION = systems.extension("study-population")
SAMPLING_METHOD = systems.extension("sampling-method")
GENDER_BASED = systems.extension("gender-based")
GENDER_DESCRIPTION = systems.extension("gender-description")
STANDARD_AGE = systems.extension("standard-age-group")
AGE_AS_WRITTEN = systems.extension("age-as-written")

# UCUM time units in days, exactly as UCUM defines them: a = a_j = 365.25 d, mo = mo_j = a_j/12,
# wk = 7 d, d = 24 h, h = 60 min (https://ucum.org/ucum, "Time").
_DAYS_PER_UNIT: dict[str, Fraction] = {
    "a": Fraction(36525, 100),
    "mo": Fraction(36525, 1200),
    "wk": Fraction(7),
    "d": Fraction(1),
    "h": Fraction(1, 24),
    "min": Fraction(1, 1440),
}
_TIME_UNIT_NAMES = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours"}
_TIME_UNIT_NAMES["min"] = "minutes"

# Bulk Data Access IG (STU3): a cohort defined by FHIR searches (docs/matching.md "Cohorts").
BULK_COHORT_GROUP = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/bulk-cohort-group"
MEMBER_FILTER = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/member-filter"
FHIR_QUERY = "application/x-fhir-query"
# FHIRPath calendar durations for the UCUM units ages are counted in (completed units).
_CALENDAR_UNITS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days"}

AGE = {"system": systems.LOINC, "code": "30525-0", "display": "Age"}
SEX = {"system": systems.LOINC, "code": "46098-0", "display": "Sex"}


def group_id(nct_id: str) -> str:
    return f"{nct_id}-eligibility"


def group_reference(nct_id: str) -> dict[str, str]:
    return ids.reference("Group", group_id(nct_id))


def characteristic_code(code: str, display: str) -> Json:
    return {
        "coding": [{"system": CHARACTERISTIC_CODES, "code": code, "display": display}],
        "text": display,
    }


def age_quantity(ctx: MappingContext, limit: AgeLimit) -> Json:
    unit = ctx.lookup("age-units.json", Code(code=limit.unit, field=limit.field))
    value: int | float = int(limit.value) if limit.value.is_integer() else limit.value
    quantity: Json = {"value": value, "unit": limit.unit.lower()}
    if unit:
        quantity.update(system=systems.UCUM, code=unit["code"], unit=unit["display"])
    return quantity


def _finite_decimal(value: Fraction) -> int | float | None:
    """`value` as a JSON number when it is a terminating decimal, else None."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    if denominator != 1:
        return None
    return int(value) if value.denominator == 1 else float(value)


def _in_unit(quantity: Json, code: str) -> Json | None:
    value = _finite_decimal(
        Fraction(str(quantity["value"])) * _DAYS_PER_UNIT[quantity["code"]] / _DAYS_PER_UNIT[code]
    )
    if value is None:
        return None
    return {"value": value, "unit": _TIME_UNIT_NAMES[code], "system": systems.UCUM, "code": code}


def one_unit_range(low: Json, high: Json) -> tuple[Json, Json]:
    """Both ends of an age range in one UCUM unit, the finer of the two (days when that is not
    exact), so that comparing them needs no unit conversion: FHIR's rng-2 (low <= high) as HAPI's
    validator evaluates it, and a consumer that reads the Range in one unit. An end that changes
    keeps its written form in `fc:age-as-written`. Ends in units outside the table stay as they
    are."""
    codes = (low.get("code"), high.get("code"))
    if codes[0] == codes[1] or not all(c in _DAYS_PER_UNIT for c in codes):
        return low, high
    finer = min(codes, key=lambda c: _DAYS_PER_UNIT[str(c)])
    for target in (str(finer), "d"):
        ends: list[Json] = []
        for end in (low, high):
            if end["code"] == target:
                ends.append(end)
            elif (converted := _in_unit(end, target)) is not None:
                ends.append(
                    {**converted, "extension": [{"url": AGE_AS_WRITTEN, "valueQuantity": end}]}
                )
        if len(ends) == 2:
            return ends[0], ends[1]
    return low, high


def age_characteristic(ctx: MappingContext) -> Json | None:
    eligibility = ctx.trial.eligibility
    if not eligibility.minimum_age and not eligibility.maximum_age:
        return None
    value_range: Json = {}
    if eligibility.minimum_age:
        value_range["low"] = age_quantity(ctx, eligibility.minimum_age)
    if eligibility.maximum_age:
        value_range["high"] = age_quantity(ctx, eligibility.maximum_age)
    if "low" in value_range and "high" in value_range:
        value_range["low"], value_range["high"] = one_unit_range(
            value_range["low"], value_range["high"]
        )
    return {
        "id": "age",
        "code": {"coding": [AGE], "text": "Age"},
        "valueRange": value_range,
        "exclude": False,
    }


def sex_characteristic(ctx: MappingContext) -> Json | None:
    sex = ctx.trial.eligibility.sex
    if sex is None:
        return None
    target = ctx.lookup("sex.json", sex)
    if target is None:
        return None  # ALL (unrestricted) or an unknown code, which lookup() has reported
    return {
        "id": "sex",
        "code": {"coding": [SEX], "text": "Sex"},
        "valueCodeableConcept": {
            "coding": [
                {
                    "system": systems.ADMINISTRATIVE_GENDER,
                    "code": target["code"],
                    "display": target["display"],
                }
            ],
            "text": target["display"],
        },
        "exclude": False,
    }


def healthy_volunteers_characteristic(ctx: MappingContext) -> Json | None:
    accepts = ctx.trial.eligibility.healthy_volunteers
    if accepts is None:
        return None
    return {
        "id": "healthy-volunteers",
        "code": characteristic_code("healthy-volunteers", "Accepts healthy volunteers"),
        "valueBoolean": accepts,
        "exclude": False,
    }


def criteria_characteristics(ctx: MappingContext) -> list[Json]:
    """One characteristic per criterion (id `criterion-N`, verbatim text, `exclude`), each followed
    by the computable characteristics found in it (see `fhirconv.eligibility.characteristics`)."""
    text = ctx.trial.eligibility.criteria
    if not text:
        return []
    characteristics: list[Json] = []
    by_cohort = COHORT_HEADING.search(text) is not None
    for number, criterion in enumerate(split_criteria(text), start=1):
        criterion_id = f"criterion-{number}"
        computable = computable_characteristics(
            criterion.text, criterion.exclude, criterion_id, ctx.trial, by_cohort
        )
        characteristics += codec.encode(
            Criterion(
                criterion_id,
                criterion.text,
                criterion.exclude,
                computable.coverage,
                computable.items,
            )
        )
    return characteristics


def to_group(ctx: MappingContext) -> Json:
    trial = ctx.trial
    eligibility = trial.eligibility
    characteristics = [
        c
        for c in (
            age_characteristic(ctx),
            sex_characteristic(ctx),
            healthy_volunteers_characteristic(ctx),
        )
        if c
    ]
    characteristics += criteria_characteristics(ctx)
    extensions: list[Json] = []
    if eligibility.criteria:
        extensions.append({"url": CRITERIA_TEXT, "valueMarkdown": eligibility.criteria})
    if eligibility.study_population:
        extensions.append({"url": STUDY_POPULATION, "valueMarkdown": eligibility.study_population})
    if eligibility.sampling_method:
        extensions.append(
            {
                "url": SAMPLING_METHOD,
                "valueCodeableConcept": ctx.ctgov_concept(
                    "SamplingMethod", eligibility.sampling_method
                ),
            }
        )
    if eligibility.gender_based is not None:
        extensions.append({"url": GENDER_BASED, "valueBoolean": eligibility.gender_based})
    if eligibility.gender_description:
        extensions.append(
            {"url": GENDER_DESCRIPTION, "valueString": eligibility.gender_description}
        )
    extensions += [
        {"url": STANDARD_AGE, "valueCodeableConcept": ctx.ctgov_concept("StandardAge", age)}
        for age in eligibility.std_ages
    ]
    group: Json = {"resourceType": "Group", "id": group_id(trial.nct_id)}
    if extensions:
        group["extension"] = extensions
    group.update(
        identifier=[{"system": systems.STUDY_PART_KEY, "value": f"{trial.nct_id}/eligibility"}],
        active=True,
        type="person",
        actual=False,
        name=f"Eligibility: {trial.brief_title or trial.nct_id}",
    )
    if characteristics:
        group["characteristic"] = characteristics
    return group


def cohort_id(nct_id: str) -> str:
    return f"{nct_id}-cohort"


def birthdate_bounds(
    low: float | None, high: float | None, unit: str | None
) -> list[tuple[str, float]] | None:
    """Age limits "at least `low` and at most `high` completed `unit`s" as FHIR date search
    prefixes on the birth date with the offset (in `unit`s) to subtract from the evaluation day:
    age >= L  ⇔  born on or before day − L (`le`); age <= H  ⇔  born after day − (H + 1)
    (`gt`). None when a search cannot say it exactly (a fractional limit, a unit that is not a
    calendar duration)."""
    if unit not in _CALENDAR_UNITS:
        return None
    ends = [v for v in (low, high) if v is not None]
    if not ends or any(not float(v).is_integer() for v in ends):
        return None
    bounds: list[tuple[str, float]] = []
    if low is not None:
        bounds.append(("le", low))
    if high is not None:
        bounds.append(("gt", high + 1))
    return bounds


def _fhirpath_days_ago(offset: float, unit: str) -> str:
    return f"{{{{today() - {int(offset)} {_CALENDAR_UNITS[unit]}}}}}"


def member_filters(characteristics: list[Json]) -> list[str]:
    """FHIR searches for the structured limits that a search expresses exactly: age (relative
    to the day the query runs, as an embedded FHIRPath `today()`) and sex. The free-text
    criteria stay characteristics only."""
    filters: list[str] = []
    for characteristic in characteristics:
        if characteristic.get("id") == "age":
            value_range = characteristic.get("valueRange") or {}
            low, high = value_range.get("low"), value_range.get("high")
            units = {end.get("code") for end in (low, high) if end}
            unit = units.pop() if len(units) == 1 else None
            bounds = birthdate_bounds(
                low["value"] if low else None, high["value"] if high else None, unit
            )
            if bounds and unit:
                filters.append(
                    "Patient?"
                    + "&".join(
                        f"birthdate={prefix}{_fhirpath_days_ago(offset, unit)}"
                        for prefix, offset in bounds
                    )
                )
        elif characteristic.get("id") == "sex":
            codings = (characteristic.get("valueCodeableConcept") or {}).get("coding") or []
            codes = [
                c.get("code") for c in codings if c.get("system") == systems.ADMINISTRATIVE_GENDER
            ]
            if codes and codes[0] in ("male", "female"):
                filters.append(f"Patient?gender={codes[0]}")
    return filters


def to_cohort_group(ctx: MappingContext, eligibility: Json) -> Json | None:
    """The study's cohort as a Bulk Data `bulk-cohort-group`: one `member-filter` per structured
    limit a FHIR search expresses exactly; None when there is none. A separate Group from the
    eligibility Group because the profile forbids `characteristic` and `member-filter` is a
    modifier extension (a reader that does not know it must not use the Group at all)."""
    filters = member_filters(list(eligibility.get("characteristic", []) or []))
    if not filters:
        return None
    trial = ctx.trial
    return {
        "resourceType": "Group",
        "id": cohort_id(trial.nct_id),
        "meta": {"profile": [BULK_COHORT_GROUP]},
        "modifierExtension": [
            {"url": MEMBER_FILTER, "valueExpression": {"language": FHIR_QUERY, "expression": f}}
            for f in filters
        ],
        "identifier": [{"system": systems.STUDY_PART_KEY, "value": f"{trial.nct_id}/cohort"}],
        "active": True,
        "type": "person",
        "actual": False,
        "name": f"Cohort (structured age and sex limits): {trial.brief_title or trial.nct_id}",
    }
