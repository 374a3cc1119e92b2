"""The reference example's Group carries the computable criteria as coded characteristics."""

from __future__ import annotations

from typing import Any

from fhirconv.convert import convert_inputs
from fhirconv.errors import RecordError
from fhirconv.validate import errors
from tests.conftest import EXAMPLE

Json = dict[str, Any]


def _group() -> Json:
    (result,) = list(convert_inputs([str(EXAMPLE)]))
    assert not isinstance(result, RecordError)
    assert errors(result.issues) == []
    return next(r for r in result.resources if r["resourceType"] == "Group")


def _items(group: Json, code: str) -> list[Json]:
    return [
        c for c in group["characteristic"]
        if "-item-" in c.get("id", "") and c["code"]["coding"] and c["code"]["coding"][0]["code"] == code  # noqa: E501
    ]  # fmt: skip


def _source(c: Json) -> str:
    return next(e["valueString"] for e in c["extension"] if e["url"].endswith("source-criterion"))


def test_reference_exclusions_are_coded() -> None:
    group = _group()
    (proteinuria,) = _items(group, "2889-4")
    assert proteinuria["valueQuantity"] == {
        "value": 6, "comparator": ">", "unit": "g/24h",
        "system": "http://unitsofmeasure.org", "code": "g/(24.h)",
    }  # fmt: skip
    assert proteinuria["exclude"] is True
    creatinine = _items(group, "2160-0")
    assert [(c["valueQuantity"]["value"], c["valueQuantity"]["code"]) for c in creatinine] == [
        (2.5, "mg/dL"),
        (221, "umol/L"),
    ]
    (iga,) = _items(group, "2458-8")
    assert iga["valueQuantity"]["comparator"] == "<" and iga["valueQuantity"]["value"] == 10
    assert iga["exclude"] is True


def test_reference_inclusions_are_coded() -> None:
    group = _group()
    (sledai,) = _items(group, "selena-sledai")
    assert (
        sledai["valueQuantity"] == {"value": 8, "comparator": ">="} and sledai["exclude"] is False
    )
    (dose,) = [c for c in _items(group, "8640") if "valueRange" in c]
    assert dose["valueRange"]["low"]["value"] == 7.5 and dose["valueRange"]["high"]["value"] == 30
    assert dose["valueRange"]["low"]["code"] == "mg/d"
    per = next(e for e in dose["extension"] if e["url"].endswith("eligibility-dose"))
    assert {"url": "per", "valueCode": "d"} in per["extension"]


def test_every_item_points_to_an_existing_criterion() -> None:
    group = _group()
    ids = {c.get("id") for c in group["characteristic"]}
    items = [c for c in group["characteristic"] if "-item-" in c.get("id", "")]
    assert items
    for item in items:
        assert _source(item) in ids
        assert any(e["url"].endswith("source-text") for e in item["extension"])


def test_alternatives_and_windows_are_extensions() -> None:
    group = _group()
    urls = {
        e["url"].rsplit("/", 1)[1] for c in group["characteristic"] for e in c.get("extension", [])
    }
    assert {
        "eligibility-time-window",
        "eligibility-alternative-group",
        "eligibility-coverage",
    } <= urls
