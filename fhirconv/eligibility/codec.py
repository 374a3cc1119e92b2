"""The one codec between the criterion model (`fhirconv.eligibility.model`) and FHIR R4
`Group.characteristic` entries (plain JSON). docs/matching.md describes the encoding.

`encode(criterion)` gives the criterion's own characteristic (verbatim text, `exclude`,
`eligibility-coverage`) followed by one characteristic per item; `decode(characteristics)` reads
a Group's characteristics back into `Criterion`s (entries that are neither criteria nor their items,
such as the structured age/sex limits, are left to the caller). `decode_item` reads one item, so
the structured age/sex limits (same value shapes) decode the same way.
"""

from __future__ import annotations

from typing import Any, cast

from fhirconv.eligibility.model import (
    Code,
    Comparator,
    Concept,
    Coverage,
    Criterion,
    Item,
    ItemKind,
    Quantity,
    Window,
)
from fhirconv.mapping import systems

Json = dict[str, Any]

__all__ = ["decode", "decode_item", "encode", "encode_item", "item_kind"]

SOURCE_CRITERION = systems.extension("eligibility-source-criterion")
SOURCE_TEXT = systems.extension("eligibility-source-text")
TIME_WINDOW = systems.extension("eligibility-time-window")
DOSE = systems.extension("eligibility-dose")
ALTERNATIVE_GROUP = systems.extension("eligibility-alternative-group")
CONJUNCTION_GROUP = systems.extension("eligibility-conjunction-group")
CONDITIONAL = systems.extension("eligibility-conditional")
QUALIFIER = systems.extension("eligibility-qualifier")
HISTORY = systems.extension("eligibility-history")
COVERAGE = systems.extension("eligibility-coverage")
ITEM_COVERAGE = systems.extension("eligibility-item-coverage")
APPLIES_TO_SEX = systems.extension("eligibility-applies-to-sex")
EXCEPTION = systems.extension("eligibility-exception")

CHARACTERISTIC_CODES = systems.codes("eligibility-characteristic")
SCORE_CODES = systems.codes("eligibility-score")
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
CPT = "http://www.ama-assn.org/go/cpt"
_CRITERION_CODES = {
    False: ("inclusion-criterion", "Inclusion criterion"),
    True: ("exclusion-criterion", "Exclusion criterion"),
}
_TIME_UNITS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours",
               "min": "minutes"}  # fmt: skip


# --- encoding -------------------------------------------------------------------------------------


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _code(code: Code) -> Json:
    coding: Json = {"system": code.system, "code": code.code}
    if code.display is not None:
        coding["display"] = code.display
    return coding


def _concept(concept: Concept) -> Json:
    encoded: Json = {"coding": [_code(c) for c in concept.codes]}
    if concept.text is not None:
        encoded["text"] = concept.text
    return encoded


def _quantity(quantity: Quantity) -> Json:
    encoded: Json = {"value": _number(quantity.value)}
    if quantity.unit:
        encoded.update(
            unit=quantity.written or quantity.unit, system=systems.UCUM, code=quantity.unit
        )
    elif quantity.written:
        encoded["unit"] = quantity.written
    return encoded


def _value(item: Item) -> Json:
    if item.low is not None or item.high is not None:
        value_range: Json = {}
        if item.low is not None:
            value_range["low"] = _quantity(item.low)
        if item.high is not None:
            value_range["high"] = _quantity(item.high)
        return {"valueRange": value_range}
    if item.quantity is not None:
        quantity = _quantity(item.quantity)
        if item.comparator is not None:
            quantity = {"value": quantity.pop("value"), "comparator": item.comparator, **quantity}
        return {"valueQuantity": quantity}
    if item.value is not None:
        return {"valueCodeableConcept": _concept(item.value)}
    return {"valueBoolean": True}


def encode_item(item: Item) -> Json:
    """One item's characteristic."""
    extensions: list[Json] = []
    if item.source_criterion is not None:
        extensions.append({"url": SOURCE_CRITERION, "valueString": item.source_criterion})
        extensions.append({"url": SOURCE_TEXT, "valueString": item.source_text})
    if item.window:
        window = item.window
        extensions.append(
            {
                "url": TIME_WINDOW,
                "extension": [
                    {"url": "operator", "valueCode": window.operator},
                    {
                        "url": "duration",
                        "valueDuration": {
                            "value": _number(window.value),
                            "unit": _TIME_UNITS[window.unit],
                            "system": systems.UCUM,
                            "code": window.unit,
                        },
                    },
                    {"url": "relation", "valueString": window.relation},
                    {"url": "text", "valueString": window.text},
                ],
            }
        )
    if item.per_day:
        parts: list[Json] = [{"url": "per", "valueCode": "d"}]
        if item.equivalent_to:
            parts.append({"url": "equivalent-to", "valueCoding": _code(item.equivalent_to)})
        extensions.append({"url": DOSE, "extension": parts})
    if item.alternative_group:
        extensions.append({"url": ALTERNATIVE_GROUP, "valueString": item.alternative_group})
    if item.conjunction_group:
        extensions.append({"url": CONJUNCTION_GROUP, "valueString": item.conjunction_group})
    if item.history:
        extensions.append({"url": HISTORY, "valueBoolean": True})
    if item.qualifier:
        extensions.append({"url": QUALIFIER, "valueString": item.qualifier})
    if item.conditional:
        extensions.append({"url": CONDITIONAL, "valueBoolean": True})
    if item.whole_clause:
        extensions.append({"url": ITEM_COVERAGE, "valueCode": "complete"})
    if item.applies_to_sex:
        extensions.append({"url": APPLIES_TO_SEX, "valueCode": item.applies_to_sex})
    for exception in item.exceptions:
        extensions.append({"url": EXCEPTION, "valueCodeableConcept": _concept(exception)})
    encoded: Json = {"id": item.id}
    if extensions:
        encoded["extension"] = extensions
    encoded["code"] = _concept(item.concept)
    encoded.update(_value(item))
    encoded["exclude"] = item.exclude
    return encoded


def encode(criterion: Criterion) -> list[Json]:
    """The criterion's characteristic followed by its items'."""
    code, display = _CRITERION_CODES[criterion.exclude]
    own: Json = {
        "id": criterion.id,
        "extension": [{"url": COVERAGE, "valueCode": criterion.coverage}],
        "code": {
            "coding": [{"system": CHARACTERISTIC_CODES, "code": code, "display": display}],
            "text": display,
        },
        "valueCodeableConcept": {"text": criterion.text},
        "exclude": criterion.exclude,
    }
    return [own, *(encode_item(item) for item in criterion.items)]


# --- decoding -------------------------------------------------------------------------------------


def _extension(element: Json, url: str) -> Json | None:
    found = next((e for e in element.get("extension") or [] if e.get("url") == url), None)
    return found if isinstance(found, dict) else None


def _extension_value(element: Json, url: str) -> Any:
    found = _extension(element, url)
    if found is None:
        return None
    return next((v for k, v in found.items() if k.startswith("value")), None)


def _part(extension: Json, name: str) -> Any:
    found = next((e for e in extension.get("extension") or [] if e.get("url") == name), None)
    if not isinstance(found, dict):
        return None
    return next((v for k, v in found.items() if k.startswith("value")), None)


def _read_code(coding: Json) -> Code:
    display = coding.get("display")
    return Code(str(coding.get("system") or ""), str(coding.get("code") or ""), display)


def _read_concept(concept: object) -> Concept:
    if not isinstance(concept, dict):
        return Concept(())
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict)]
    text = concept.get("text")
    return Concept(tuple(_read_code(c) for c in codings), str(text) if text is not None else None)


def _read_quantity(quantity: object) -> Quantity | None:
    if not isinstance(quantity, dict) or quantity.get("value") is None:
        return None
    code = quantity.get("code") if quantity.get("system") in (None, systems.UCUM) else None
    unit = quantity.get("unit")
    written = str(unit) if unit is not None and (code is None or unit != code) else None
    return Quantity(float(quantity["value"]), str(code) if code else None, written)


def _read_window(characteristic: Json) -> Window | None:
    found = _extension(characteristic, TIME_WINDOW)
    if found is None:
        return None
    duration = _part(found, "duration") or {}
    if not isinstance(duration, dict) or duration.get("value") is None:
        return None
    return Window(
        str(_part(found, "operator") or "<="),
        float(duration["value"]),
        str(duration.get("code") or "d"),
        str(_part(found, "relation") or ""),
        str(_part(found, "text") or ""),
    )


def item_kind(characteristic: Json) -> ItemKind | None:
    """What an item characteristic is, from its code and value (None: not an item we evaluate)."""
    concept = _read_concept(characteristic.get("code"))
    if concept.has(systems.LOINC, "30525-0"):
        return "age"
    if concept.has(systems.LOINC, "46098-0"):
        return "sex"
    if concept.has(systems.LOINC, "82810-3"):
        return "pregnancy"
    if concept.has(systems.LOINC, "63895-7"):
        return "lactation"
    if concept.has(CHARACTERISTIC_CODES, "childbearing-potential"):
        return "childbearing"
    used = concept.systems()
    if used & {RXNORM, ATC}:
        return "dose" if _extension(characteristic, DOSE) else "medication"
    if systems.MESH in used or concept.has(CHARACTERISTIC_CODES, "condition"):
        return "condition"
    if used & {systems.SNOMED, CPT} and characteristic.get("valueBoolean") is True:
        return "procedure"
    if ("valueQuantity" in characteristic or "valueRange" in characteristic) and used & {
        systems.LOINC,
        SCORE_CODES,
    }:
        return "observation"
    return None


def decode_item(characteristic: Json) -> Item | None:
    kind = item_kind(characteristic)
    if kind is None:
        return None
    quantity = characteristic.get("valueQuantity")
    value_range = characteristic.get("valueRange") or {}
    comparator = quantity.get("comparator") if isinstance(quantity, dict) else None
    dose = _extension(characteristic, DOSE)
    equivalent = _part(dose, "equivalent-to") if dose else None
    value = characteristic.get("valueCodeableConcept")
    source_text = _extension_value(characteristic, SOURCE_TEXT)
    source_criterion = _extension_value(characteristic, SOURCE_CRITERION)
    return Item(
        id=str(characteristic.get("id") or ""),
        kind=kind,
        concept=_read_concept(characteristic.get("code")),
        source_text=str(source_text or ""),
        source_criterion=str(source_criterion) if source_criterion is not None else None,
        exclude=bool(characteristic.get("exclude")),
        comparator=cast(Comparator, comparator) if comparator in ("<", "<=", ">", ">=") else None,
        quantity=_read_quantity(quantity),
        low=_read_quantity(value_range.get("low")),
        high=_read_quantity(value_range.get("high")),
        value=_read_concept(value) if isinstance(value, dict) else None,
        window=_read_window(characteristic),
        per_day=bool(dose and _part(dose, "per") == "d"),
        equivalent_to=_read_code(equivalent) if isinstance(equivalent, dict) else None,
        alternative_group=_extension_value(characteristic, ALTERNATIVE_GROUP),
        conjunction_group=_extension_value(characteristic, CONJUNCTION_GROUP),
        history=bool(_extension_value(characteristic, HISTORY)),
        qualifier=_extension_value(characteristic, QUALIFIER),
        conditional=bool(_extension_value(characteristic, CONDITIONAL)),
        whole_clause=_extension_value(characteristic, ITEM_COVERAGE) == "complete",
        applies_to_sex=_extension_value(characteristic, APPLIES_TO_SEX),
        exceptions=tuple(
            _read_concept(e.get("valueCodeableConcept"))
            for e in characteristic.get("extension") or []
            if isinstance(e, dict) and e.get("url") == EXCEPTION
        ),
    )


def _criterion_exclude(characteristic: Json) -> bool | None:
    """True/False for a criterion's own characteristic, None for anything else."""
    if _extension_value(characteristic, SOURCE_CRITERION) is not None:
        return None
    for code in _read_concept(characteristic.get("code")).codes:
        if code.system == CHARACTERISTIC_CODES and code.code == "inclusion-criterion":
            return False
        if code.system == CHARACTERISTIC_CODES and code.code == "exclusion-criterion":
            return True
    return None


def decode(characteristics: list[Json]) -> list[Criterion]:
    """The criteria of a Group (in order), each with the items that name it as their source.
    Items of a kind the model does not know are dropped (the criterion's coverage still says
    how much was read)."""
    items: dict[str, list[Item]] = {}
    for characteristic in characteristics:
        source = _extension_value(characteristic, SOURCE_CRITERION)
        if source is not None:
            item = decode_item(characteristic)
            if item is not None:
                items.setdefault(str(source), []).append(item)
    criteria: list[Criterion] = []
    for characteristic in characteristics:
        exclude = _criterion_exclude(characteristic)
        if exclude is None:
            continue
        cid = str(characteristic.get("id") or "")
        text = str((characteristic.get("valueCodeableConcept") or {}).get("text") or "")
        coverage = _extension_value(characteristic, COVERAGE)
        if coverage not in ("complete", "partial", "none"):
            coverage = "complete" if text else "none"
        criteria.append(
            Criterion(cid, text, exclude, cast(Coverage, coverage), tuple(items.get(cid, [])))
        )
    return criteria
