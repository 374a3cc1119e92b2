"""Splitting eligibility-criteria text into criteria (fhirconv.eligibility.criteria)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fhirconv.eligibility.criteria import Criterion, split_criteria, unescape_markdown

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE_EXAMPLE = SHARED / "examples" / "NCT05765006.txt"


def _reference_section() -> str:
    page = REFERENCE_EXAMPLE.read_text(encoding="utf-8")
    start = page.index("Inclusion Criteria\n")
    return page[start : page.index("Minimum Eligible Age")]


@pytest.mark.skipif(not REFERENCE_EXAMPLE.exists(), reason="../shared/examples is not present")
def test_reference_example_gives_six_inclusion_and_six_exclusion_criteria() -> None:
    section = _reference_section()
    criteria = split_criteria(section)
    inclusion = [c for c in criteria if not c.exclude]
    exclusion = [c for c in criteria if c.exclude]
    assert [c.label for c in inclusion] == ["1", "2", "3", "4", "5", "6"]
    assert [c.label for c in exclusion] == ["1", "2", "3", "4", "5", "6"]

    fourth = inclusion[3].text
    assert fourth.startswith("The history of SLE prior to screening was at least 6 months")
    assert "\nStandard treatment regimen refers to" in fourth
    assert "\nOral corticosteroids must meet the following requirements:" in fourth
    assert "\n  1. Prednisone (or equivalent) ≥7.5 mg/ day, and ≤30 mg/ day." in fourth
    assert "\n  3. At least 8 weeks of treatment prior to screening" in fourth
    assert "stable for > 2 weeks." in fourth  # "\>" unescaped

    assert inclusion[4].text.startswith("Screening is positive for antinuclear antibodies")
    assert exclusion[0].text.startswith("Severe lupus nephritis (defined as proteinuria > 6 g/24h")
    assert exclusion[5].text == (
        "IgA deficiency was present during screening (serum IgA level < 10 mg/dL)"
    )
    for criterion in criteria:
        raw = section[criterion.start : criterion.end]
        assert raw.lstrip("0123456789\\.) ")[:20] == criterion.text[:20]


def test_ctgov_markdown_bullets_with_sub_items() -> None:
    text = (
        "Inclusion Criteria:\n\n* Age 18 years or older\n* Diagnosed with type 2 diabetes\n\n"
        "Exclusion Criteria:\n\n* Pregnancy\n* Renal disease, such as:\n  * eGFR \\< 30\n"
        "  * dialysis\n* Prior transplant"
    )
    criteria = split_criteria(text)
    assert [(c.text.split("\n")[0], c.exclude, c.label) for c in criteria] == [
        ("Age 18 years or older", False, "*"),
        ("Diagnosed with type 2 diabetes", False, "*"),
        ("Pregnancy", True, "*"),
        ("Renal disease, such as:", True, "*"),
        ("Prior transplant", True, "*"),
    ]
    assert criteria[3].text == "Renal disease, such as:\n  * eGFR < 30\n  * dialysis"
    assert text[criteria[3].start : criteria[3].end].endswith("dialysis")


def test_legacy_xml_wrapped_lines_are_joined_to_their_bullet() -> None:
    text = (
        "\n        Inclusion Criteria:\r\n\r\n        Eligible patients must:\r\n\r\n"
        "          -  Be between the ages of 18 and 56\r\n\r\n"
        "          -  Be able to see the entire face of someone sitting across the table from\r\n"
        "             them without scanning\r\n\r\n"
        "        Exclusion Criteria:\r\n\r\n"
        "          -  Women who are pregnant or planning to become pregnant cannot be included\r\n"
        "             because of the risk of birth defects.\r\n      "
    )
    criteria = split_criteria(text)
    # "Eligible patients must:" is a lead-in that opens the section, not a criterion.
    assert [c.text for c in criteria] == [
        "Be between the ages of 18 and 56",
        "Be able to see the entire face of someone sitting across the table from them without"
        " scanning",
        "Women who are pregnant or planning to become pregnant cannot be included because of"
        " the risk of birth defects.",
    ]
    assert [c.exclude for c in criteria] == [False, False, True]
    assert text[criteria[1].start : criteria[1].end].endswith("without scanning")


def test_gold_style_numbered_lists() -> None:
    text = (
        "Inclusion criteria:\n  1. Age ≥ 18, male or female;\n  2. Documented MM;\n"
        "Exclusion criteria:\n  1. Prior CAR-T;\n  2. Pregnant."
    )
    criteria = split_criteria(text)
    assert [(c.label, c.exclude, c.text) for c in criteria] == [
        ("1", False, "Age ≥ 18, male or female;"),
        ("2", False, "Documented MM;"),
        ("1", True, "Prior CAR-T;"),
        ("2", True, "Pregnant."),
    ]


def test_text_without_headings_or_bullets_gives_one_criterion_per_line() -> None:
    text = "Age 40 to 70\nType 2 diabetes\n\nBMI between 25 and 40 kg/m2"
    criteria = split_criteria(text)
    assert [c.text for c in criteria] == [
        "Age 40 to 70",
        "Type 2 diabetes",
        "BMI between 25 and 40 kg/m2",
    ]
    assert not any(c.exclude for c in criteria)


def test_sub_lists_lettered_and_run_in_headings() -> None:
    text = (
        "Subjects will be excluded if:\n1. They have one of:\n   a. anemia\n   b. sepsis\n"
        "2. They smoke"
    )
    criteria = split_criteria(text)
    assert [(c.label, c.exclude) for c in criteria] == [("1", True), ("2", True)]
    assert criteria[0].text == "They have one of:\n  a. anemia\n  b. sepsis"

    run_in = "Inclusion Criteria:- Males- Stable relationship Exclusion Criteria:- Diabetes"
    assert [c.exclude for c in split_criteria(run_in)] == [False, True]


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("\\> 2 weeks", "> 2 weeks"),
        ("5\\. Screening", "5. Screening"),
        ("\\<10", "<10"),
        ("\\*footnote", "*footnote"),
        ("IL\\_6", "IL_6"),
        ("\\>/= 18", ">/= 18"),
    ],
)
def test_markdown_escapes_are_undone(escaped: str, plain: str) -> None:
    assert unescape_markdown(escaped) == plain
    assert split_criteria("Inclusion Criteria:\n\n* " + escaped)[0].text == plain


def _corpus_texts() -> list[tuple[str, str]]:
    import defusedxml.ElementTree as ElementTree

    texts: list[tuple[str, str]] = []
    for path in sorted((SHARED / "corpus" / "ctgov-v2").glob("*.json")):
        module = json.loads(path.read_text(encoding="utf-8"))["protocolSection"]
        texts.append(
            (path.name, module.get("eligibilityModule", {}).get("eligibilityCriteria", ""))
        )
    for path in sorted((SHARED / "corpus" / "ctgov-xml").glob("*.xml")):
        block = ElementTree.parse(path).getroot().find("eligibility/criteria/textblock")
        texts.append((path.name, block.text if block is not None and block.text else ""))
    return texts


# An exclusion heading on a line of its own, followed by some criterion text.
_EXCLUSION_SECTION = re.compile(
    r"^[ \t*#_\-]*(?:key\s+)?exclusion\s+criteria\s*:?[ \t*_]*\r?\n\s*\S", re.I | re.M
)


@pytest.mark.corpus
@pytest.mark.skipif(not (SHARED / "corpus").exists(), reason="../shared/corpus is not present")
def test_whole_corpus_splits_cleanly() -> None:
    texts = _corpus_texts()
    assert len(texts) > 1000
    for name, text in texts:
        criteria: list[Criterion] = split_criteria(text)
        for criterion in criteria:
            assert criterion.text.strip(), name
            assert 0 <= criterion.start < criterion.end <= len(text), name
        if _EXCLUSION_SECTION.search(text):
            assert any(c.exclude for c in criteria), name
