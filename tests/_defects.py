"""Bundles with one defect each, of the classes HAPI FHIR's instance validator reports and
`fhirconv validate` must catch too: made from the golden bundle by hand, one change each."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]
GOLDEN_BUNDLE = Path(__file__).resolve().parent / "golden" / "NCT05765006.bundle.json"
XVER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Defect:
    name: str
    bundle: Json
    hl7_error: str  # a fragment of the error HAPI's validator gives
    fhirconv_error: str  # a fragment of the issue `fhirconv validate` gives


def _resource(bundle: Json, kind: str) -> Json:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind)


def _repeat_action_id(bundle: Json) -> None:
    plan = _resource(bundle, "PlanDefinition")
    plan["action"].append({"id": plan["action"][0]["id"], "title": "Second arm, same element id"})


def _nested_repeat(bundle: Json) -> None:
    plan = _resource(bundle, "PlanDefinition")
    plan["action"][0].setdefault("action", []).append({"id": "arm-1", "title": "Nested repeat"})


def _bad_ucum(bundle: Json) -> None:
    group = _resource(bundle, "Group")
    group["characteristic"].append(
        {
            "code": {"text": "Thyrotropin"},
            "valueQuantity": {"value": 4.5, "unit": "uU/mL", "system": UCUM, "code": "u[U]/mL"},
            "exclude": True,
        }
    )


def _unknown_sub_extension(bundle: Json) -> None:
    study = _resource(bundle, "ResearchStudy")
    for extension in study["extension"]:
        if extension["url"] == XVER + "ResearchStudy.recruitment":
            extension["extension"].append({"url": "plannedSites", "valueUnsignedInt": 3})


def _flat_recruitment_number(bundle: Json) -> None:
    study = _resource(bundle, "ResearchStudy")
    study["extension"].append(
        {"url": XVER + "ResearchStudy.recruitment.targetNumber", "valueUnsignedInt": 24}
    )


def _full_url_of_another_resource(bundle: Json) -> None:
    bundle["entry"][0]["fullUrl"] = bundle["entry"][1]["fullUrl"]


MUTATIONS: list[tuple[str, Callable[[Json], None], str, str]] = [
    ("repeated-action-id", _repeat_action_id, "Duplicate id value", "is not unique"),
    ("nested-repeated-id", _nested_repeat, "Duplicate id value", "is not unique"),
    ("invalid-ucum", _bad_ucum, "u[U]", "not a valid UCUM code"),
    ("unknown-sub-extension", _unknown_sub_extension, "plannedSites", "plannedSites"),
    ("flat-recruitment-number", _flat_recruitment_number, "invalid Version", "recruitment"),
    ("fullurl-disagrees", _full_url_of_another_resource, "fullUrl", "disagrees"),
]


def defects() -> list[Defect]:
    golden = json.loads(GOLDEN_BUNDLE.read_text(encoding="utf-8"))
    made = []
    for name, mutate, hl7_error, fhirconv_error in MUTATIONS:
        bundle = copy.deepcopy(golden)
        mutate(bundle)
        made.append(Defect(name, bundle, hl7_error, fhirconv_error))
    return made
