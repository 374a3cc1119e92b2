"""Age ranges with ends in two units ("1 Month" to "18 Years") are written in one unit, exactly, so
FHIR's rng-2 (low <= high) holds for a validator without UCUM conversion (HAPI's) and a consumer
reading the Range in one unit gets both ends right; the written form stays in `age-as-written`."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fhirconv.convert import convert_trial
from fhirconv.mapping.group import AGE_AS_WRITTEN, one_unit_range
from fhirconv.model import AgeLimit
from fhirconv.sources.ctgov_json import read_text
from fhirconv.validate import errors, validate_bundle
from tests._defects import GOLDEN_BUNDLE
from tests.conftest import FIXTURES

Json = dict[str, Any]
UCUM = "http://unitsofmeasure.org"
NAMES = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours"}


def q(value: float, code: str) -> Json:
    return {"value": value, "unit": NAMES[code], "system": UCUM, "code": code}


def written(end: Json) -> Json | None:
    for extension in end.get("extension", []):
        if extension["url"] == AGE_AS_WRITTEN:
            found: Json = extension["valueQuantity"]
            return found
    return None


@pytest.mark.parametrize(
    ("low", "high", "expected_low", "expected_high"),
    [
        (q(1, "mo"), q(18, "a"), (1, "mo"), (216, "mo")),
        (q(18, "mo"), q(50, "a"), (18, "mo"), (600, "mo")),
        (q(30, "d"), q(30, "a"), (30, "d"), (10957.5, "d")),
        (q(6, "wk"), q(2, "a"), (42, "d"), (730.5, "d")),  # 2 a in weeks does not terminate
        (q(12, "h"), q(28, "d"), (12, "h"), (672, "h")),
    ],
)
def test_mixed_units_become_one_exact_unit(
    low: Json, high: Json, expected_low: tuple[float, str], expected_high: tuple[float, str]
) -> None:
    new_low, new_high = one_unit_range(low, high)
    assert (new_low["value"], new_low["code"]) == expected_low
    assert (new_high["value"], new_high["code"]) == expected_high
    for before, after in ((low, new_low), (high, new_high)):
        if before["code"] == after["code"]:
            assert after == before  # untouched: no extension
        else:
            assert written(after) == before
    assert new_low["value"] <= new_high["value"]


def test_same_unit_and_unknown_units_are_left_alone() -> None:
    same = (q(18, "a"), q(65, "a"))
    assert one_unit_range(*same) == same
    odd = ({"value": 2, "unit": "semesters"}, q(18, "a"))
    assert one_unit_range(*odd) == odd


def test_converted_study_has_one_unit_age_range_and_validates() -> None:
    path = sorted((FIXTURES / "ctgov-v2").glob("*.json"))[0]
    record = json.loads(path.read_text(encoding="utf-8"))
    eligibility = record["protocolSection"].setdefault("eligibilityModule", {})
    eligibility["minimumAge"] = "6 Months"
    eligibility["maximumAge"] = "17 Years"
    trial = next(iter(read_text(json.dumps(record), str(path))))
    assert not isinstance(trial, Exception)
    assert isinstance(trial.eligibility.minimum_age, AgeLimit)
    assert trial.eligibility.minimum_age.unit.lower() == "months"
    converted = convert_trial(trial)
    group = next(r for r in converted.resources if r["resourceType"] == "Group")
    age = next(c for c in group["characteristic"] if c.get("id") == "age")
    assert age["valueRange"]["low"]["code"] == age["valueRange"]["high"]["code"] == "mo"
    assert age["valueRange"]["high"]["value"] == 204
    assert written(age["valueRange"]["high"]) == q(17, "a")
    assert errors(converted.issues) == []


def test_validate_reports_range_in_two_units_and_inverted_range() -> None:
    bundle = json.loads(GOLDEN_BUNDLE.read_text(encoding="utf-8"))
    two_units = copy.deepcopy(bundle)
    group = next(
        e["resource"] for e in two_units["entry"] if e["resource"]["resourceType"] == "Group"
    )
    age = next(c for c in group["characteristic"] if c.get("id") == "age")
    age["valueRange"] = {"low": q(1, "mo"), "high": q(18, "a")}
    assert any("different units" in i.message for i in errors(validate_bundle(two_units)))
    age["valueRange"] = {"low": q(70, "a"), "high": q(18, "a")}
    assert any("low is above high" in i.message for i in errors(validate_bundle(two_units)))
