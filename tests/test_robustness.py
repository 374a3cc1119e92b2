"""Odd input never crashes the pipeline: real records with fields deleted, emptied, nulled or
replaced by junk either convert to a valid Bundle or fail as one clear RecordError."""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhirconv.convert import convert_trial
from fhirconv.errors import RecordError
from fhirconv.sources import read_text
from fhirconv.sources.ctgov_json import study_to_trial
from tests.conftest import FIXTURES

JUNK: list[Any] = ["", "   ", None, "ÄÖ ü\u200b", "12", "x" * 3000, "0", "2020-13", [], {}, 7, True]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    else:
        yield path


def _assert_converts_or_fails_cleanly(result: Any) -> None:
    if isinstance(result, RecordError):
        assert result.file and str(result)
        return
    converted = convert_trial(result)
    assert converted.ok, [str(i) for i in converted.issues[:3]]


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "ctgov-v2").glob("*.json")), ids=lambda p: p.stem
)
def test_mutated_json_records_never_crash(path: Path) -> None:
    study = json.loads(path.read_text(encoding="utf-8"))
    leaves = list(_leaves(study["protocolSection"]))
    rng = random.Random(path.stem)  # deterministic per record
    for _ in range(12):
        mutated = copy.deepcopy(study)
        where = rng.choice(leaves)
        parent = mutated["protocolSection"]
        for key in where[:-1]:
            parent = parent[key]
        if rng.random() < 0.3:
            del parent[where[-1]]
        else:
            parent[where[-1]] = rng.choice(JUNK)
        _assert_converts_or_fails_cleanly(study_to_trial(mutated, str(path)))


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "ctgov-xml").glob("*.xml")), ids=lambda p: p.stem
)
def test_mutated_xml_records_never_crash(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tags = re.findall(r"<([a-z_]+)>[^<]*</\1>", text)
    rng = random.Random(path.stem)
    for _ in range(12):
        tag = rng.choice(tags)
        replacement = rng.choice(["", f"<{tag}></{tag}>", f"<{tag}>  ÄÖ 12 N/A</{tag}>"])
        mutated = re.sub(rf"<{tag}>[^<]*</{tag}>", replacement, text, count=1)
        for result in read_text(mutated, str(path)):
            _assert_converts_or_fails_cleanly(result)
