"""`fhirconv.match.server` against servers that misbehave (mock transports: fault injection only),
and the Patient search bounds against the evaluator (no server)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhirconv.match import Options, PatientRecord, Study, load_studies, match
from fhirconv.match.server import (
    ServerError,
    Traffic,
    limits_of,
    match_server,
    patient_search,
)
from fhirconv.publish.client import FhirClient
from fhirconv.publish.retry import RetryPolicy

Json = dict[str, Any]
BASE = "http://fhir.test/r4"
AS_OF = date(2025, 6, 1)


def _study(age: Json | None = None, sex: str | None = None) -> Study:
    characteristics: list[Json] = []
    if age is not None:
        characteristics.append(
            {
                "id": "age",
                "code": {"coding": [{"system": "http://loinc.org", "code": "30525-0"}]},
                "valueRange": age,
                "exclude": False,
            }
        )
    if sex is not None:
        characteristics.append(
            {
                "id": "sex",
                "code": {"coding": [{"system": "http://loinc.org", "code": "46098-0"}]},
                "valueCodeableConcept": {
                    "coding": [{"system": "http://hl7.org/fhir/administrative-gender", "code": sex}]
                },
                "exclude": False,
            }
        )
    group = {"resourceType": "Group", "id": "g", "characteristic": characteristics}
    study = {
        "resourceType": "ResearchStudy",
        "id": "NCT0",
        "enrollment": [{"reference": "Group/g"}],
    }
    return Study("NCT0", "test", study, group)


def _years(value: int, unit: str = "a") -> Json:
    return {"value": value, "system": "http://unitsofmeasure.org", "code": unit, "unit": unit}


@pytest.mark.parametrize(
    "age",
    [
        {"low": _years(18), "high": _years(70)},
        {"low": _years(1, "mo"), "high": _years(216, "mo")},
        {"high": _years(17)},
        {"low": _years(2, "wk"), "high": _years(30, "d")},
    ],
)
def test_patient_search_bounds_are_exactly_the_evaluators(age: Json) -> None:
    """For every exact birth date near the bounds (leap days included), the search keeps the
    patient exactly when the evaluator does not call them ineligible."""
    study = _study(age)
    search = patient_search(study, AS_OF)
    assert search.narrows
    limits = limits_of(study)
    bounds = [b for b in (search.birthdate_after, search.birthdate_on_or_before) if b]
    days = {b + timedelta(days=k) for b in bounds for k in range(-3, 4)}
    days |= {date(2008, 2, 29), date(2007, 2, 28), date(1955, 6, 1), date(1954, 6, 2)}
    for born in sorted(days):
        patient = {"resourceType": "Patient", "id": "p", "birthDate": born.isoformat()}
        excluded = match(PatientRecord(patient), limits, Options(AS_OF)).verdict == "ineligible"
        kept = (search.birthdate_after is None or born > search.birthdate_after) and (
            search.birthdate_on_or_before is None or born <= search.birthdate_on_or_before
        )
        assert kept is not excluded, born


def test_patient_search_queries_keep_missing_values() -> None:
    search = patient_search(_study({"low": _years(18)}, sex="female"), AS_OF)
    queries = search.queries()
    assert {"birthdate": ["le2007-06-01"], "gender": ["female,other,unknown"]} in queries
    assert {"birthdate:missing": ["true"], "gender:missing": ["true"]} in queries
    assert len(queries) == 4
    assert not patient_search(_study(), AS_OF).narrows
    # A limit in a unit the search cannot bound (hours) does not narrow.
    assert not patient_search(_study({"low": _years(12, "h")}), AS_OF).narrows


# --- a scripted server -------------------------------------------------------------------------


def _bundle(resources: list[Json], next_url: str | None = None) -> Json:
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def _patient(pid: str, born: str = "1980-01-01") -> Json:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": born}


def _condition(pid: str) -> Json:
    return {
        "resourceType": "Condition",
        "id": f"c-{pid}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "55464009"}]},
        "subject": {"reference": f"Patient/{pid}"},
    }


Handler = Callable[[httpx.Request], httpx.Response]


def _client(handler: Handler, attempts: int = 3) -> FhirClient:
    return FhirClient(
        BASE,
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_attempts=attempts, base_delay=0.0),
        sleep=lambda _: None,
    )


def _json(body: Json, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.fixture(scope="module")
def example_study(tmp_path_factory: pytest.TempPathFactory) -> Study:
    from typer.testing import CliRunner

    from fhirconv.cli import app
    from tests.conftest import EXAMPLE

    out = tmp_path_factory.mktemp("study") / "study.json"
    assert CliRunner().invoke(app, ["convert", str(EXAMPLE), "-o", str(out), "-q"]).exit_code == 0
    return load_studies([out])[0]


def _file_verdicts(study: Study, patients: list[Json]) -> dict[str, str]:
    out = {}
    for patient in patients:
        record = PatientRecord(patient, [_condition(patient["id"])])
        out[patient["id"]] = match(record, study, Options(AS_OF)).verdict
    return out


def test_everything_unsupported_falls_back_to_searches_per_type(example_study: Study) -> None:
    patients = [_patient("a"), _patient("b")]
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/r4/")
        asked.append(path)
        if path == "Patient":
            return _json(_bundle(patients))
        if path.endswith("$everything"):
            outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
            return _json(outcome, 404)
        if path == "Condition":
            return _json(_bundle([_condition(request.url.params["patient"])]))
        return _json(_bundle([]))

    traffic = Traffic()
    outcomes = list(
        match_server(
            _client(handler), [example_study], Options(AS_OF), traffic=traffic, concurrency=1
        )
    )
    got = {o.patient_id: o.results[0].verdict for o in outcomes}
    assert got == _file_verdicts(example_study, patients)
    assert traffic.everything_refused == 1
    assert sum(p.endswith("$everything") for p in asked) == 1  # not asked again for "b"
    assert asked.count("Condition") == 2
    # the condition was read: the SLE criterion cites it
    evidence = [e for c in outcomes[0].results[0].criteria for e in c.evidence]
    assert "c-a" in evidence


def test_pages_are_followed(example_study: Study) -> None:
    everyone = [_patient(f"p{n}") for n in range(7)]

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/r4/")
        if path == "Patient" or request.url.params.get("page"):
            page = int(request.url.params.get("page", "0"))
            more = f"{BASE}/Patient?page={page + 1}" if page < 2 else None
            return _json(_bundle(everyone[page * 3 : page * 3 + 3], more))
        if path.endswith("$everything"):
            pid = path.split("/")[1]
            part = int(request.url.params.get("part", "0"))
            if part == 0:  # the record in two pages
                return _json(_bundle([_patient(pid)], f"{BASE}/{path}?part=1"))
            return _json(_bundle([_condition(pid)]))
        return _json(_bundle([]))

    outcomes = list(match_server(_client(handler), [example_study], Options(AS_OF)))
    assert [o.patient_id for o in outcomes] == [p["id"] for p in everyone]
    assert {o.patient_id: o.results[0].verdict for o in outcomes} == _file_verdicts(
        example_study, everyone
    )


def test_429_is_retried_after_the_wait_asked(example_study: Study) -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(429, headers={"Retry-After": "0"})
        path = request.url.path.removeprefix("/r4/")
        if path == "Patient":
            return _json(_bundle([_patient("a")]))
        return _json(_bundle([_patient("a"), _condition("a")]))

    traffic = Traffic()
    outcomes = list(
        match_server(_client(handler), [example_study], Options(AS_OF), traffic=traffic)
    )
    assert [o.error for o in outcomes] == [None]
    assert traffic.retries == 1 and traffic.requests == 3


def test_a_record_that_cannot_be_read_fails_alone(example_study: Study) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/r4/")
        if path == "Patient":
            return _json(_bundle([_patient("bad"), _patient("good")]))
        if "bad" in path:
            return httpx.Response(503)
        return _json(_bundle([_patient("good")]))

    outcomes = list(match_server(_client(handler, attempts=2), [example_study], Options(AS_OF)))
    assert outcomes[0].error is not None and "Patient/bad" in outcomes[0].error
    assert outcomes[1].error is None and outcomes[1].results


def test_refused_credentials_stop_the_run(example_study: Study) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    with pytest.raises(ServerError, match="401"):
        list(match_server(_client(handler), [example_study], Options(AS_OF)))


def test_cli_needs_files_or_server(tmp_path: Path, example_study: Study) -> None:
    from typer.testing import CliRunner

    from fhirconv.cli import app

    study = tmp_path / "s.json"
    study.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": example_study.research_study},
                    {"resource": example_study.group},
                ],
            }
        ),
        encoding="utf-8",
    )
    neither = CliRunner().invoke(app, ["match", "--study", str(study)])
    assert neither.exit_code == 2 and "--server" in neither.output
    both = CliRunner().invoke(app, ["match", str(study), "--study", str(study), "--server", BASE])
    assert both.exit_code == 2
    write_back = CliRunner().invoke(
        app, ["match", str(study), "--study", str(study), "--write-back"]
    )
    assert write_back.exit_code == 2 and "--write-back" in write_back.output


def test_cli_refused_credentials_and_dead_server_give_the_named_exit_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import fhirconv.cli.server_options as cli_server_options
    from fhirconv.cli import app
    from fhirconv.errors import ExitCode
    from tests.conftest import EXAMPLE

    study = tmp_path / "study.json"
    made = CliRunner().invoke(app, ["convert", str(EXAMPLE), "-o", str(study), "-q"])
    assert made.exit_code == 0

    def refuses(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    real = FhirClient
    cases = ((refuses, ExitCode.AUTH_REFUSED), (unreachable, ExitCode.SERVER_UNREACHABLE))
    for handler, code in cases:
        monkeypatch.setattr(
            cli_server_options,
            "FhirClient",
            lambda url, h=handler, **kw: real(
                url,
                transport=httpx.MockTransport(h),
                **{k: v for k, v in kw.items() if k != "verify"},
                sleep=lambda _: None,  # retries without waiting
            ),
        )
        result = CliRunner().invoke(app, ["match", "--study", str(study), "--server", BASE, "-q"])
        assert result.exit_code == code, result.output
