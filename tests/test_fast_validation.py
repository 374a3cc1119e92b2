"""The quick validity proof (`fhir.proves_valid`) never accepts what the fhir.resources models
reject, so validation with it reports exactly the issues full model validation reports: on every
fixture's bundle and on resources mutated in the ways mappers and inputs go wrong."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from fhirconv import fhir
from fhirconv.convert import ConvertedStudy, convert_inputs
from fhirconv.validate import validate_bundle, validate_resource
from tests.conftest import EXAMPLE, FIXTURES
from tests.mutations import json_paths

Json = dict[str, Any]

# Values a mapper or a record can put where a primitive or an element belongs.
_ODD_VALUES: list[Any] = [
    None, "", " ", "\t\n", "x", "ÄÖ ü", "中文", "\u200b", "a\udcff", "x" * 300, "two words",
    "2020-02-30", "2020-13", "2020-02-29", "2021-02-29", "0000", "2020-01-01T10:00:00",
    "2020-01-01T10:00:00Z", "2020-01-01T25:00:00Z", "2020-01-01T10:00:00.1234567Z",
    "http://1.2.3.999/x", "https://xn--zz.com/", "https://example.org/a b", "https://ex.org/%zz",
    "urn:uuid:1", "/relative/path", "Patient/1", "#local", "mailto:a@b.org",
    0, -1, 1, 2**31, -(2**31) - 1, 3.5, 1e-7, 1e300, float("nan"), float("inf"), True, False,
    [], {}, [None], ["x"], [{}], {"value": 1}, {"url": "u"}, {"resourceType": "Patient"},
]  # fmt: skip


@pytest.fixture(scope="module")
def studies() -> list[ConvertedStudy]:
    inputs = [str(EXAMPLE), str(FIXTURES / "ctgov-v2"), str(FIXTURES / "ctgov-xml")]
    found = [r for r in convert_inputs(inputs) if isinstance(r, ConvertedStudy)]
    assert len(found) >= 20
    return found


def test_fixture_bundles_get_the_same_issues_both_ways(studies: list[ConvertedStudy]) -> None:
    proven = 0
    for study in studies:
        assert validate_bundle(study.bundle) == validate_bundle(study.bundle, full=True)
        proven += sum(fhir.proves_valid(resource) for resource in study.resources)
    # The quick proof must pay: most resources skip the model.
    assert proven > 0.8 * sum(len(study.resources) for study in studies)


def _mutated(resource: Json, rng: random.Random) -> Json:
    mutated = copy.deepcopy(resource)
    path = rng.choice(list(json_paths(mutated)))
    parent: Any = mutated
    for key in path[:-1]:
        parent = parent[key]
    action = rng.randrange(4)
    if action == 0:
        del parent[path[-1]]
    elif action == 1 and isinstance(parent, dict):
        parent[rng.choice(["bogus", "_status", "fhir_comments", "valueString", "id"])] = rng.choice(
            _ODD_VALUES
        )
    else:
        parent[path[-1]] = copy.deepcopy(rng.choice(_ODD_VALUES))
    return mutated


def _outcome(resource: Json, full: bool) -> list[Any]:
    """The issues, or the exception validation raised (the models have a few crashes of their
    own, e.g. a number where a URL belongs): either way the same in both modes."""
    try:
        return list(validate_resource(resource, "r", full=full))
    except Exception as error:
        return [type(error).__name__, str(error)]


def _model_accepts(resource: Json) -> bool:
    try:
        fhir.parse_resource(resource)
    except Exception:
        return False
    return True


def test_mutated_resources_get_the_same_issues_both_ways(studies: list[ConvertedStudy]) -> None:
    rng = random.Random(20261208)
    resources = [resource for study in studies for resource in study.resources]
    disagreements = []
    rejected = 0
    for _ in range(3000):
        mutated = _mutated(rng.choice(resources), rng)
        full = _outcome(mutated, full=True)
        rejected += bool(full)
        if fhir.proves_valid(mutated) and not _model_accepts(mutated):
            disagreements.append((mutated, full))
        if _outcome(mutated, full=False) != full:
            disagreements.append((mutated, full))
    assert rejected > 500  # the mutations do break resources
    assert [(str(m)[:300], f) for m, f in disagreements] == []


def test_proof_declines_what_it_cannot_prove() -> None:
    organization: Json = {"resourceType": "Organization", "id": "org-1", "name": "A"}
    assert fhir.proves_valid(organization)
    for change in [
        {"name": ""},
        {"name": None},
        {"active": "true"},
        {"telecom": []},
        {"alias": ["ok", None]},
        {"_name": {"extension": []}},
        {"contained": [{"resourceType": "Organization", "id": "x"}]},
        {"partOf": "Organization/1"},
        {"id": "x" * 65},
        {"unknownElement": 1},
    ]:
        assert not fhir.proves_valid({**organization, **change}), change
    assert not fhir.proves_valid({"resourceType": "NotAType", "id": "x"})


def test_quick_proof_is_not_used_when_full_validation_is_asked(
    studies: list[ConvertedStudy], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    parse = fhir.parse_resource

    def counted(resource: Json) -> Any:
        calls.append(str(resource.get("resourceType")))
        return parse(resource)

    monkeypatch.setattr(fhir, "parse_resource", counted)
    bundle = studies[0].bundle
    validate_bundle(bundle, full=True)
    assert len(calls) == len(bundle["entry"]) + 1  # every entry and the Bundle itself
    calls.clear()
    validate_bundle(bundle)
    assert len(calls) < len(bundle["entry"]) / 2


def test_cli_validate_full_writes_the_same_bundles(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fhirconv.cli import app

    runner = CliRunner()
    outputs = []
    for mode in ("fast", "full"):
        out = tmp_path / mode
        result = runner.invoke(
            app, ["convert", str(FIXTURES / "ctgov-v2"), "-o", f"{out}/", "--validate", mode]
        )
        assert result.exit_code == 0, result.stderr
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1] and outputs[0]
