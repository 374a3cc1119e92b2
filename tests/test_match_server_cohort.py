"""The study's cohort as a Bulk Data `bulk-cohort-group`: one `member-filter` per structured limit
a FHIR search states exactly; each query runs on HAPI; the offline validator checks the profile."""

from __future__ import annotations

import copy
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from fhirconv.convert import ConvertedStudy, convert_inputs
from fhirconv.errors import RecordError
from fhirconv.mapping.group import BULK_COHORT_GROUP, MEMBER_FILTER, member_filters
from fhirconv.match.server import resolve_today
from fhirconv.publish import FhirClient
from tests.conftest import EXAMPLE, FIXTURES
from tests.test_hl7_validator import error_messages, validate, validator  # noqa: F401

Json = dict[str, Any]


def _convert(*sources: Path) -> list[ConvertedStudy]:
    studies = []
    for result in convert_inputs([str(s) for s in sources]):
        assert not isinstance(result, RecordError), str(result)
        studies.append(result)
    return studies


def _groups(study: ConvertedStudy) -> dict[str, Json]:
    return {r["id"]: r for r in study.resources if r["resourceType"] == "Group"}


def _filters(group: Json) -> list[str]:
    return [
        e["valueExpression"]["expression"]
        for e in group.get("modifierExtension", [])
        if e["url"] == MEMBER_FILTER
    ]


def test_reference_example_cohort_group() -> None:
    (study,) = _convert(EXAMPLE)
    groups = _groups(study)
    cohort = groups["NCT05765006-cohort"]
    assert cohort["meta"]["profile"] == [BULK_COHORT_GROUP]
    assert cohort["type"] == "person" and cohort["actual"] is False and cohort["name"]
    assert "characteristic" not in cohort
    # 18 to 70 years: born on or before 18 years ago, and after 71 years ago (70 completed).
    assert _filters(cohort) == [
        "Patient?birthdate=le{{today() - 18 years}}&birthdate=gt{{today() - 71 years}}"
    ]
    for extension in cohort["modifierExtension"]:
        assert extension["valueExpression"]["language"] == "application/x-fhir-query"
    eligibility = groups["NCT05765006-eligibility"]
    assert "modifierExtension" not in eligibility  # characteristics stay usable by every reader


def _limit(kind: str, **value: Any) -> Json:
    return {"id": kind, "code": {"text": kind}, **value, "exclude": False}


def _years(value: float, code: str = "a") -> Json:
    return {"value": value, "code": code, "system": "http://unitsofmeasure.org", "unit": code}


def test_member_filters_only_for_what_a_search_states_exactly() -> None:
    female = _limit(
        "sex",
        valueCodeableConcept={
            "coding": [{"system": "http://hl7.org/fhir/administrative-gender", "code": "female"}]
        },
    )
    assert member_filters([female]) == ["Patient?gender=female"]
    months = _limit("age", valueRange={"low": _years(6, "mo")})
    assert member_filters([months]) == ["Patient?birthdate=le{{today() - 6 months}}"]
    # A fractional limit, mixed units and hours are not said exactly by a date search.
    assert member_filters([_limit("age", valueRange={"low": _years(17.5)})]) == []
    mixed = _limit("age", valueRange={"low": _years(6, "mo"), "high": _years(2)})
    assert member_filters([mixed]) == []
    assert member_filters([_limit("age", valueRange={"low": _years(12, "h")})]) == []
    # Free-text criteria, even fully coded ones, stay characteristics only.
    criterion = {"id": "criterion-1", "code": {"text": "Inclusion criterion"}, "exclude": False}
    assert member_filters([criterion]) == []


def test_a_study_without_structured_limits_has_no_cohort_group(tmp_path: Path) -> None:
    (study,) = _convert(FIXTURES / "ctgov-v2" / "NCT00007696.json")
    assert len(_groups(study)) == 2  # has an age range
    record = json.loads((FIXTURES / "ctgov-v2" / "NCT00007696.json").read_text(encoding="utf-8"))
    eligibility = record.get("protocolSection", {}).get("eligibilityModule", {})
    for key in ("minimumAge", "maximumAge", "sex"):
        eligibility.pop(key, None)
    unlimited = tmp_path / "NCT00007696.json"
    unlimited.write_text(json.dumps(record), encoding="utf-8")
    (bare,) = _convert(unlimited)
    assert list(_groups(bare)) == ["NCT00007696-eligibility"]


def test_resolve_today() -> None:
    query = "Patient?birthdate=le{{today() - 18 years}}&birthdate=gt{{today() - 71 years}}"
    assert resolve_today(query, date(2024, 2, 29)) == (
        "Patient?birthdate=le2006-02-28&birthdate=gt1953-02-28"
    )
    assert resolve_today("Patient?gender=male", date(2024, 2, 29)) == "Patient?gender=male"


@pytest.mark.hapi
def test_every_member_filter_runs_on_hapi(fhir_server_url: str) -> None:
    sources = [EXAMPLE, *sorted((FIXTURES / "ctgov-v2").glob("*.json"))]
    queries = [
        query
        for study in _convert(*sources)
        for group in _groups(study).values()
        for query in _filters(group)
    ]
    assert any("gender=" in q for q in queries) and any("birthdate=" in q for q in queries)
    with FhirClient(fhir_server_url) as client:
        for query in queries:
            resolved = resolve_today(query, date(2025, 6, 1))
            assert "{{" not in resolved
            answer = client.get_json(resolved + "&_summary=count")  # an error raises
            assert answer["resourceType"] == "Bundle" and "total" in answer, query


@pytest.mark.hl7validator
def test_validator_checks_the_cohort_profile(validator: Path, tmp_path: Path) -> None:  # noqa: F811
    (study,) = _convert(EXAMPLE)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(study.bundle), encoding="utf-8")
    bad_bundle = copy.deepcopy(study.bundle)
    for entry in bad_bundle["entry"]:
        if entry["resource"]["id"] == "NCT05765006-cohort":
            del entry["resource"]["modifierExtension"]
            entry["resource"]["characteristic"] = [
                {"code": {"text": "x"}, "valueBoolean": True, "exclude": False}
            ]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_bundle), encoding="utf-8")
    outcomes = validate(validator, [good, bad])
    assert error_messages(outcomes["good.json"]) == []
    errors = " ".join(error_messages(outcomes["bad.json"]))
    assert "member-filter" in errors and "Group.characteristic: max allowed = 0" in errors
