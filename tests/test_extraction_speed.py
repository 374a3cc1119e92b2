"""Criteria extraction does work linear in the length of the criteria: each vocabulary is compiled
once, the study's own condition vocabulary is built once per study (not per criterion), and the
key-word prefilter of `vocab.PhraseIndex` finds exactly what running every phrase regex finds.
Counted, not timed."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirconv.convert import convert_trial
from fhirconv.eligibility import characteristics, vocab
from fhirconv.model import Trial
from fhirconv.sources import read_text
from tests.conftest import FIXTURES

_LINES = [
    "Serum creatinine > 2.5 mg/dL within 4 weeks of lupus nephritis flare",
    "Age 18 to 65 years",
    "History of SLE or diabetes treated with prednisone 10 mg/day",
    "ECOG 0-1",
    "Pregnant or breastfeeding women",
]


def _trial_with_criteria(lines: int) -> Trial:
    record: dict[str, Any] = json.loads(
        (FIXTURES / "ctgov-v2" / "NCT00007696.json").read_text(encoding="utf-8")
    )
    text = "Inclusion Criteria:\n\n" + "\n".join(
        f"* {_LINES[i % len(_LINES)]} (item {i})" for i in range(lines)
    )
    record["protocolSection"]["eligibilityModule"]["eligibilityCriteria"] = text
    (trial,) = read_text(json.dumps(record), "long.json", "ctgov-json")
    assert isinstance(trial, Trial)
    return trial


_BUILD = characteristics._condition_concepts


def _work(lines: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of the expensive steps while converting a study with `lines` criteria."""
    counts = {"vocabularies": 0, "compiled": 0, "characteristics": 0}

    def counted_build(*args: Any) -> Any:
        counts["vocabularies"] += 1
        return _BUILD(*args)

    monkeypatch.setattr(characteristics, "_condition_concepts", counted_build)
    characteristics._conditions_of.cache_clear()
    trial = _trial_with_criteria(lines)
    misses = vocab._phrase_regex.cache_info().misses
    study = convert_trial(trial)
    counts["compiled"] = vocab._phrase_regex.cache_info().misses - misses
    group = next(r for r in study.resources if r["resourceType"] == "Group")
    counts["characteristics"] = len(group["characteristic"])
    return counts


def test_extraction_work_does_not_grow_faster_than_the_criteria(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    convert_trial(_trial_with_criteria(5))  # every table loaded and compiled once
    short = _work(500, monkeypatch)
    long = _work(2000, monkeypatch)
    # The study's vocabulary is built once, however many criteria; no regex compiled per
    # criterion.
    assert short["vocabularies"] == long["vocabularies"] == 1
    # (A study's own condition synonyms are compiled once, when first seen.)
    assert short["compiled"] <= 5 and long["compiled"] <= 5
    # The criteria are really there: four times the lines, about four times the items.
    assert 3.5 * short["characteristics"] < long["characteristics"] < 4.5 * short["characteristics"]


def test_the_ascii_fold_table_is_every_letter_python_equates_with_ascii() -> None:
    """`vocab.folded` relies on the non-ASCII characters that case-insensitive matching equates
    with an ASCII letter being exactly İ ı ſ and the Kelvin sign (checked over all of Unicode)."""
    letter = re.compile(r"(?i)[a-z]")
    found = {chr(c) for c in range(128, sys.maxunicode + 1) if letter.fullmatch(chr(c))}
    assert found == {"\u0130", "\u0131", "\u017f", "\u212a"}


def _naive(entries: list[tuple[str, ...]], text: str) -> list[tuple[int, tuple[int, int]]]:
    found = []
    for index, phrases in enumerate(entries):
        regex = vocab.phrase_regex(phrases)
        for match in regex.finditer(text) if regex else ():
            found.append((index, match.span()))
    return found


_ENTRIES = [
    *(m.synonyms for m in vocab.medications()),
    *(c.synonyms for c in vocab.drug_classes()),
    *((c.term, *c.synonyms) for c in vocab.conditions()),
    ("Sjögren syndrome",),  # not ASCII: always searched
    ("lupus nephritis", "LN"),
    ("",),
]
_PIECES = [
    *(phrase for entry in _ENTRIES for phrase in entry if phrase),
    " ", "-", "\n", ", ", "(", ")", "İ", "ı", "ſ", "\u212a", "PREDNİSONE", "Lupus-Nephritis",
    "lupus\nnephritis", "SLE", "sle", "xSLE", "SLEx", "non-", "—", "ß", "µ",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12), st.text(max_size=20))
def test_phrase_index_finds_exactly_what_every_regex_finds(pieces: list[str], noise: str) -> None:
    text = "".join(pieces) + noise
    index = vocab.PhraseIndex(_ENTRIES)
    assert [(i, m.span()) for i, m in index.finditer(text)] == _naive(_ENTRIES, text)


def test_phrase_index_finds_case_folded_spellings() -> None:
    index = vocab.PhraseIndex([("prednisone",), ("ketoconazole",)])
    found = [(i, m.group(0)) for i, m in index.finditer("PREDNİSONE and \u212aetoconazole")]
    assert found == [(0, "PREDNİSONE"), (1, "\u212aetoconazole")]


def test_phrase_regex_is_compiled_once_per_vocabulary() -> None:
    first = vocab.phrase_regex(["alpha beta", "AB"])
    assert vocab.phrase_regex(("alpha beta", "AB")) is first
