"""End-to-end conversion: the reference example (golden Bundle and every fact), real fixtures,
the whole shared corpus, determinism and idempotent requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhirconv.bundle import dumps
from fhirconv.convert import ConvertedStudy, convert_inputs
from fhirconv.errors import RecordError
from fhirconv.mapping import systems
from fhirconv.validate import errors
from tests.conftest import CORPUS_JSON, CORPUS_XML, EXAMPLE, FIXTURES, GOLDEN, corpus_files

Json = dict[str, Any]


def convert_one(path: Path) -> ConvertedStudy:
    results = list(convert_inputs([str(path)]))
    assert len(results) == 1
    result = results[0]
    assert not isinstance(result, RecordError), str(result)
    return result


def by_type(study: ConvertedStudy, resource_type: str) -> list[Json]:
    return [r for r in study.resources if r["resourceType"] == resource_type]


def ext(resource: Json, url: str) -> list[Json]:
    return [e for e in resource.get("extension", []) if e["url"] == url]


def sub(extension: Json, name: str) -> Any:
    for part in extension["extension"]:
        if part["url"] == name:
            return next(v for k, v in part.items() if k.startswith("value"))
    return None


@pytest.fixture(scope="module")
def reference() -> ConvertedStudy:
    return convert_one(EXAMPLE)


def test_reference_example_matches_golden_bundle(
    reference: ConvertedStudy, update_golden: bool
) -> None:
    golden = GOLDEN / "NCT05765006.bundle.json"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(dumps(reference.bundle, pretty=True), encoding="utf-8")
    assert golden.exists(), "no golden file yet: run pytest --update-golden and review the diff"
    assert reference.bundle == json.loads(golden.read_text(encoding="utf-8"))


def test_reference_example_is_valid_and_warning_free(reference: ConvertedStudy) -> None:
    assert errors(reference.issues) == []
    assert reference.warnings == []


def test_reference_example_carries_every_fact(reference: ConvertedStudy) -> None:
    study = by_type(reference, "ResearchStudy")[0]
    assert study["identifier"][0] == {
        "use": "official",
        "system": systems.NCT,
        "value": "NCT05765006",
    }
    assert {"JWCAR029012"} <= {i["value"] for i in study["identifier"]}
    assert study["title"].startswith("CD19-CART(Relma-cel)")
    assert study["status"] == "active"
    statuses = [sub(e, "state") for e in ext(study, systems.xver("ResearchStudy.progressStatus"))]
    assert {
        "system": systems.ctgov_enum("Status"),
        "code": "RECRUITING",
        "display": "Recruiting",
    } in [c["coding"][0] for c in statuses]
    assert study["phase"]["coding"][0]["code"] == "phase-1"
    assert study["primaryPurposeType"]["coding"][0]["code"] == "treatment"
    assert study["period"] == {"start": "2023-02-24", "end": "2025-12-30"}
    # R5 context of targetNumber is ResearchStudy.recruitment: one complex extension holds it.
    recruitment = ext(study, systems.xver("ResearchStudy.recruitment"))
    assert recruitment == [
        {
            "url": systems.xver("ResearchStudy.recruitment"),
            "extension": [{"url": "targetNumber", "valueUnsignedInt": 24}],
        }
    ]
    assert ext(study, systems.xver("ResearchStudy.recruitment.targetNumber")) == []
    summary = ext(study, systems.xver("ResearchStudy.descriptionSummary"))[0]["valueMarkdown"]
    assert summary.startswith("This is a phase I, open-label")
    assert "4 dose level" in study["description"]
    assert study["condition"][0]["text"] == "Systemic Lupus Erythematosus"
    category_codes = {c["coding"][0]["code"] for c in study["category"]}
    assert {"INTERVENTIONAL", "NA", "SINGLE_GROUP", "NONE"} <= category_codes
    assert study["arm"][0]["name"] == "Relma-cel be administrated in four dose level"
    assert study["arm"][0]["type"]["coding"][0]["code"] == "experimental"
    assert study["contact"] == [
        {
            "name": "medical JW",
            "telecom": [{"system": "phone", "value": "+86 21 50464201", "use": "work"}],
        }
    ]
    pmids = {a.get("display") for a in study["relatedArtifact"]}
    assert {"PMID: 3005930", "PMID: 40386685"} <= pmids
    assert study["location"] == [
        {"text": "China", "coding": [{"system": "urn:iso:std:iso:3166", "code": "CN"}]}
    ]
    assert study["sponsor"]["display"] == "Shanghai Ming Ju Biotechnology Co., Ltd."
    assert study["principalInvestigator"]["display"] == "yu Hu"
    assert len(study["site"]) == 1


def test_reference_example_people_places_and_plan(reference: ConvertedStudy) -> None:
    roles = by_type(reference, "PractitionerRole")
    investigators = {
        r["practitioner"]["display"]: r["organization"]["display"]
        for r in roles
        if r["code"][0]["coding"][0]["code"] == "primary-investigator"
    }
    union = "Union Hospital, Tongji Medical College, Huazhong University of Science and Technology"
    assert investigators == {
        "yu Hu": union,
        "heng Mei": union,
        "liangjing Lv": "Renji Hospital Shanghai Jiaotong University School of Medical",
    }
    (location,) = by_type(reference, "Location")
    assert location["name"] == "Relma-cel Medical"
    assert location["address"]["city"] == "Shanghai"
    assert "state" not in location["address"]
    assert location["address"]["country"] == "CN"
    (plan,) = by_type(reference, "PlanDefinition")
    (arm,) = plan["action"]
    assert arm["code"][0]["coding"][0]["code"] == "experimental"
    (intervention,) = arm["action"]
    assert intervention["title"] == "Relma-cel"
    assert intervention["code"][0]["coding"][0]["code"] == "BIOLOGICAL"
    doses = [
        e["valueQuantity"] for e in intervention["extension"] if e["url"].endswith("dose-level")
    ]
    assert [d["value"] for d in doses] == [
        15_000_000,
        25_000_000,
        50_000_000,
        100_000_000,
        150_000_000,
    ]
    assert {d["code"] for d in doses} == {"{cells}"}


def test_reference_example_eligibility_group(reference: ConvertedStudy) -> None:
    group = next(g for g in by_type(reference, "Group") if g["id"].endswith("-eligibility"))
    assert group["type"] == "person" and group["actual"] is False
    characteristics = group["characteristic"]
    age = next(c for c in characteristics if c["code"]["coding"][0]["code"] == "30525-0")
    assert age["valueRange"]["low"]["value"] == 18 and age["valueRange"]["low"]["code"] == "a"
    assert age["valueRange"]["high"]["value"] == 70
    assert not any(c["code"]["coding"][0]["code"] == "46098-0" for c in characteristics)  # sex ALL
    healthy = next(
        c for c in characteristics if c["code"]["coding"][0]["code"] == "healthy-volunteers"
    )
    assert healthy["valueBoolean"] is False
    criteria = [c for c in characteristics if c["code"]["coding"][0]["code"].endswith("-criterion")]
    inclusion = [c for c in criteria if not c["exclude"]]
    exclusion = [c for c in criteria if c["exclude"]]
    assert len(inclusion) == 6 and len(exclusion) == 6
    fourth = inclusion[3]["valueCodeableConcept"]["text"]
    assert "Prednisone (or equivalent) ≥7.5 mg/ day" in fourth
    assert "stable for > 2 weeks" in fourth  # the Markdown escape \> undone
    assert exclusion[5]["valueCodeableConcept"]["text"].startswith("IgA deficiency")
    assert "serum IgA level < 10 mg/dL" in exclusion[5]["valueCodeableConcept"]["text"]


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "ctgov-v2").glob("*.json")), ids=lambda p: p.stem
)
def test_fixture_converts_and_validates(path: Path) -> None:
    study = convert_one(path)
    assert errors(study.issues) == [], [str(i) for i in study.issues[:5]]
    assert study.nct_id == path.stem
    for entry in study.bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {
            "method": "PUT",
            "url": f"{resource['resourceType']}/{resource['id']}",
        }


def test_same_input_gives_byte_identical_bundle() -> None:
    path = FIXTURES / "ctgov-v2" / "NCT02513394.json"
    first = dumps(convert_one(path).bundle)
    second = dumps(convert_one(path).bundle)
    assert first == second


def test_shared_organization_is_one_resource_across_studies(tmp_path: Path) -> None:
    a = convert_one(FIXTURES / "ctgov-v2" / "NCT00007696.json")
    study = json.loads((FIXTURES / "ctgov-v2" / "NCT00007696.json").read_text())
    study["protocolSection"]["identificationModule"]["nctId"] = "NCT99999999"
    other = tmp_path / "copy.json"
    other.write_text(json.dumps(study))
    b = convert_one(other)
    ids_a = {r["id"] for r in a.resources if r["resourceType"] == "Organization"}
    ids_b = {r["id"] for r in b.resources if r["resourceType"] == "Organization"}
    assert ids_a and ids_a == ids_b
    assert by_type(a, "ResearchStudy")[0]["id"] != by_type(b, "ResearchStudy")[0]["id"]


@pytest.mark.corpus
@pytest.mark.parametrize(("folder", "pattern"), [(CORPUS_JSON, "*.json"), (CORPUS_XML, "*.xml")])
def test_every_corpus_record_converts_and_validates(folder: Path, pattern: str) -> None:
    files = corpus_files(folder, pattern)
    failures = []
    count = 0
    for result in convert_inputs([str(folder)]):
        count += 1
        if isinstance(result, RecordError):
            failures.append(str(result))
        elif not result.ok:
            failures.append(f"{result.nct_id}: {[str(i) for i in errors(result.issues)[:3]]}")
    assert count == len(files)
    assert failures == []
