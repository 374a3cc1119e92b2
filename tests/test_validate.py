"""`fhirconv validate` catches the classes of error HAPI FHIR's instance validator reports:
repeated element ids, invalid UCUM codes, R5 cross-version extensions that do not follow their R5
definition, fullUrls that disagree with their resources, references the bundle rules cannot
resolve."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fhirconv.ucum import is_valid_ucum
from fhirconv.validate import errors, validate_bundle
from tests._defects import GOLDEN_BUNDLE, XVER, Defect, defects

Json = dict[str, Any]


@pytest.fixture(scope="module")
def golden() -> Json:
    loaded: Json = json.loads(GOLDEN_BUNDLE.read_text(encoding="utf-8"))
    return loaded


def test_golden_bundle_has_no_issue(golden: Json) -> None:
    assert validate_bundle(golden) == []


@pytest.mark.parametrize("defect", defects(), ids=lambda d: d.name)
def test_each_defect_is_an_error(defect: Defect) -> None:
    found = errors(validate_bundle(defect.bundle))
    assert any(defect.fhirconv_error in str(issue) for issue in found), found


def test_element_id_repeated_deep_inside_one_resource_is_named(golden: Json) -> None:
    bundle = copy.deepcopy(golden)
    group = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Group")
    group["characteristic"][0]["code"]["id"] = "shared"
    group["characteristic"][3]["code"]["coding"][0]["id"] = "shared"
    found = errors(validate_bundle(bundle))
    assert [i.path for i in found] == ["characteristic[3].code.coding[0].id"]
    assert "also at characteristic[0].code.id" in found[0].message


def test_same_element_id_in_two_resources_is_fine(golden: Json) -> None:
    bundle = copy.deepcopy(golden)
    for entry in bundle["entry"][:2]:
        entry["resource"].setdefault("meta", {})["id"] = "m1"
    assert errors(validate_bundle(bundle)) == []


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("mg/dL", True),
        ("u[IU]/mL", True),
        ("m[IU]/L", True),
        ("10*9/L", True),
        ("{cells}/kg", True),
        ("mL/min/{1.73_m2}", True),
        ("u[U]/mL", False),  # [U] is no UCUM unit: the TSH defect of issue 10
        ("m[U]/L", False),
        ("mg/", False),
        ("mg ", False),
        ("", False),
        ("milligrams", False),
    ],
)
def test_ucum_validity(code: str, valid: bool) -> None:
    assert is_valid_ucum(code) is valid


def test_ucum_coding_is_checked_too(golden: Json) -> None:
    bundle = copy.deepcopy(golden)
    study = bundle["entry"][0]["resource"]
    study["extension"].append(
        {
            "url": "https://example.org/unit",
            "valueCoding": {"system": "http://unitsofmeasure.org", "code": "mcg"},
        }
    )
    found = errors(validate_bundle(bundle))
    assert any("'mcg' is not a valid UCUM code" in str(i) for i in found), found


def test_relative_reference_with_urn_fullurls_is_a_warning(golden: Json) -> None:
    """What HAPI warns on: found by Type/id but not by the bundle resolution rules."""
    bundle = copy.deepcopy(golden)
    for number, entry in enumerate(bundle["entry"]):
        entry["fullUrl"] = f"urn:uuid:00000000-0000-4000-8000-{number:012d}"
    issues = validate_bundle(bundle)
    assert errors(issues) == []
    assert issues and all("bundle resolution rules" in i.message for i in issues)


def test_reference_to_no_entry_is_an_error(golden: Json) -> None:
    bundle = copy.deepcopy(golden)
    bundle["entry"][0]["resource"]["sponsor"] = {"reference": "Organization/missing"}
    found = errors(validate_bundle(bundle))
    assert [i.message for i in found] == [
        "reference 'Organization/missing' does not resolve inside the bundle"
    ]


def test_cross_version_extension_out_of_context_is_an_error(golden: Json) -> None:
    bundle = copy.deepcopy(golden)
    group = bundle["entry"][1]["resource"]
    group.setdefault("extension", []).append(
        {"url": XVER + "ResearchStudy.descriptionSummary", "valueMarkdown": "on a Group"}
    )
    found = errors(validate_bundle(bundle))
    assert any("allowed only on ResearchStudy" in i.message for i in found), found


def test_cross_version_required_part_and_type(golden: Json) -> None:
    bundle = copy.deepcopy(golden)
    study = bundle["entry"][0]["resource"]
    study["extension"] += [
        {
            "url": XVER + "ResearchStudy.progressStatus",
            "extension": [{"url": "actual", "valueBoolean": True}],
        },
        {
            "url": XVER + "ResearchStudy.recruitment",
            "extension": [{"url": "targetNumber", "valueString": "24"}],
        },
    ]
    messages = [i.message for i in errors(validate_bundle(bundle))]
    assert any("'state' occurs 0 times; R5 allows 1..1" in m for m in messages), messages
    assert any("'targetNumber' needs a value of type ['unsignedInt']" in m for m in messages)


def _table_ucum_codes() -> dict[str, set[str]]:
    from fhirconv.tables import load_csv
    from fhirconv.tables import load_json as load_table

    return {
        "eligibility-units.csv": {
            r["ucum"] for r in load_csv("eligibility-units.csv") if r["ucum"]
        },
        "eligibility-analytes.csv": {
            r["ucum"] for r in load_csv("eligibility-analytes.csv") if r["ucum"]
        },
        "dose-units.json": {v["code"] for v in load_table("dose-units.json")["map"].values()},
        "age-units.json": {v["code"] for v in load_table("age-units.json")["map"].values()},
    }


@pytest.mark.parametrize("table", sorted(_table_ucum_codes()))
def test_every_ucum_code_our_tables_emit_is_valid(table: str) -> None:
    codes = _table_ucum_codes()[table]
    assert codes
    assert sorted(c for c in codes if not is_valid_ucum(c)) == []


def test_hormone_micro_units_are_international_units() -> None:
    from fhirconv.eligibility.units import ucum_for_written_unit

    assert ucum_for_written_unit("uU/mL") == "u[IU]/mL"
    assert ucum_for_written_unit("µU/mL") == "u[IU]/mL"
    assert ucum_for_written_unit("mU/L") == "m[IU]/L"
