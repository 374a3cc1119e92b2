"""The criterion model and its codec: Group.characteristic entries decode to typed criteria and
encode back unchanged; typed items written by hand encode to the documented shapes."""

from __future__ import annotations

import json
from typing import Any

from fhirconv.eligibility import codec
from fhirconv.eligibility.model import Code, Concept, Criterion, Item, Quantity, Window
from tests.conftest import GOLDEN

Json = dict[str, Any]
LOINC = "http://loinc.org"


def golden_characteristics() -> list[Json]:
    bundle = json.loads((GOLDEN / "NCT05765006.bundle.json").read_text(encoding="utf-8"))
    group = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Group")
    return list(group["characteristic"])


def test_golden_group_decodes_and_encodes_back_unchanged() -> None:
    characteristics = golden_characteristics()
    criteria = codec.decode(characteristics)
    assert len(criteria) == 12  # 6 inclusion + 6 exclusion criteria
    again = [c for criterion in criteria for c in codec.encode(criterion)]
    assert again == [
        c for c in characteristics if c["id"] not in ("age", "sex", "healthy-volunteers")
    ]


def test_decoded_items_are_typed() -> None:
    criteria = codec.decode(golden_characteristics())
    iga = next(c for c in criteria if c.text.startswith("IgA deficiency"))
    assert iga.exclude and iga.coverage == "complete"
    (item,) = iga.items
    assert item.kind == "observation" and item.comparator == "<"
    assert item.quantity == Quantity(10, "mg/dL")
    assert item.concept.has(LOINC, "2458-8")


def test_two_sided_range_times_uln_window_and_sex_scope_encode_as_documented() -> None:
    ast = Item(
        id="c1-item-1",
        kind="observation",
        concept=Concept((Code(LOINC, "1920-8", "AST"),), "AST"),
        source_text="> 2.5 x ULN",
        source_criterion="c1",
        exclude=True,
        comparator=">",
        quantity=Quantity(2.5, "{xULN}", "x ULN"),
        window=Window("<=", 4, "wk", "before screening", "within 4 weeks"),
        whole_clause=True,
        applies_to_sex="male",
    )
    bmi = Item(
        id="c2-item-1",
        kind="observation",
        concept=Concept((Code(LOINC, "39156-5"),)),
        source_text="18.5 to 30 kg/m2",
        source_criterion="c2",
        low=Quantity(18.5, "kg/m2"),
        high=Quantity(30, "kg/m2"),
    )
    encoded = codec.encode(Criterion("c1", "AST > 2.5 x ULN (men)", True, "complete", (ast,)))
    assert encoded[0]["exclude"] is True and encoded[0]["valueCodeableConcept"]["text"]
    quantity = encoded[1]["valueQuantity"]
    assert quantity == {
        "value": 2.5,
        "comparator": ">",
        "unit": "x ULN",
        "system": "http://unitsofmeasure.org",
        "code": "{xULN}",
    }
    assert codec.decode_item(encoded[1]) == ast
    (range_item,) = codec.encode(Criterion("c2", "BMI", False, "complete", (bmi,)))[1:]
    assert range_item["valueRange"]["low"]["value"] == 18.5
    assert range_item["valueRange"]["high"]["value"] == 30
    assert codec.decode_item(range_item) == bmi
