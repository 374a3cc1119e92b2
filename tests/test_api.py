"""The public library API: every name in `fhirconv.__all__` imports, and a run end to end through
the API alone (read → convert → write with a manifest → push, and match) works."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import httpx

import fhirconv
from tests.conftest import EXAMPLE, FIXTURES

PATIENTS = Path(__file__).resolve().parents[1] / "examples" / "patients"


def test_every_public_name_imports_and_is_documented() -> None:
    assert len(set(fhirconv.__all__)) == len(fhirconv.__all__) > 20
    for name in fhirconv.__all__:
        value = getattr(fhirconv, name)
        assert value is not None
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"
    docs = fhirconv.__doc__ or ""
    missing = [name for name in fhirconv.__all__ if name not in docs]
    assert not missing, f"not described in fhirconv's docstring: {missing}"


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        fhirconv.no_such_thing  # noqa: B018
    except AttributeError as error:
        assert "no_such_thing" in str(error)
    else:
        raise AssertionError("no AttributeError")


def test_end_to_end_through_the_api_only(tmp_path: Path) -> None:
    sent: list[dict[str, object]] = []

    def server(request: httpx.Request) -> httpx.Response:
        bundle = json.loads(request.content)
        sent.append(bundle)
        entries = [
            {"response": {"status": "201 Created", "location": e["request"]["url"]}}
            for e in bundle["entry"]
        ]
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
        )

    inputs = [str(FIXTURES / "ctgov-v2" / "NCT00007696.json"), str(EXAMPLE)]
    out = tmp_path / "out"
    writer = fhirconv.BundleWriter(str(out), pretty=False, several=True, echo=print)
    with fhirconv.FhirClient("https://fhir.test/r4", transport=httpx.MockTransport(server)) as c:

        def push(bundles: object) -> fhirconv.PushSummary:
            return fhirconv.push_stream(bundles, c)  # type: ignore[arg-type]

        with fhirconv.Manifest(out) as manifest:
            results = fhirconv.convert_inputs(inputs, manifest=manifest)
            summary = fhirconv.write_converted(results, writer, manifest=manifest, push=push)
    assert isinstance(summary, fhirconv.ConvertSummary)
    assert summary.converted == 2 and not summary.failures
    assert summary.refresh is not None and len(summary.refresh.new) == 2
    assert summary.pushed is not None and summary.pushed.exit_code == fhirconv.ExitCode.OK
    assert len(sent) == 2 and sorted(p.name for p in out.glob("NCT*.json")) == [
        "NCT00007696.json",
        "NCT05765006.json",
    ]
    assert not fhirconv.validate_bundle(json.loads((out / "NCT05765006.json").read_text()))

    studies = fhirconv.load_studies([out / "NCT05765006.json"])
    patients = list(fhirconv.iter_patients(sorted(PATIENTS.glob("*.json"))[:1]))
    record = patients[0]
    assert not isinstance(record, fhirconv.InputError)
    result = fhirconv.match_patient(record, studies[0], fhirconv.Options(as_of=date(2025, 6, 1)))
    assert result.as_json()["verdict"] in {"eligible", "ineligible", "possibly-eligible"}
