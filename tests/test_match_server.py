"""`fhirconv match --server` against the real HAPI server: the verdicts equal those of the same
patients read from files, for every patient × study; narrowing by search never drops a patient
the evaluator would not call ineligible; write-back is idempotent.

Patients: three Synthea patients (tests/fixtures/synthea), synthetic patients of our own with
known answers, and — when ../shared is there — all 63 Synthea patients of ../shared/synthea-r4.
Every id carries a prefix unique to this module, so other data on the server never mixes in.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirconv.bundle import dumps
from fhirconv.cli import app
from fhirconv.convert import convert_inputs
from fhirconv.errors import RecordError
from fhirconv.match import Options, Study, load_patients, load_studies, match
from fhirconv.match.server import Traffic, match_server
from fhirconv.match.writeback import WriteBack, subject_id
from fhirconv.publish import FhirClient
from tests.conftest import EXAMPLE, FIXTURES, SHARED
from tests.synthea import loadable

pytestmark = pytest.mark.hapi

Json = dict[str, Any]
AS_OF = date(2021, 4, 1)
SYNTHEA_FIXTURES = FIXTURES / "synthea"
STUDY_FIXTURES = ["NCT00007696", "NCT00576225", "NCT00569413", "NCT01949129", "NCT00184067"]


def _put(resource: Json) -> Json:
    kind, rid = resource["resourceType"], resource["id"]
    return {"resource": resource, "request": {"method": "PUT", "url": f"{kind}/{rid}"}}


def synthetic_patients(prefix: str) -> list[Json]:
    """Patients written for these tests, each with what it is meant to show."""

    def patient(name: str, **fields: Any) -> Json:
        return {"resourceType": "Patient", "id": f"{prefix}{name}", **fields}

    sle = {
        "resourceType": "Condition",
        "id": f"{prefix}sle-condition",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {
            "coding": [
                {
                    "system": "http://snomed.info/sct",
                    "code": "55464009",
                    "display": "Systemic lupus erythematosus",
                }
            ]
        },
        "subject": {"reference": f"Patient/{prefix}adult-sle"},
        "onsetDateTime": "2015-03-01",
    }
    people = [
        patient("adult-sle", gender="female", birthDate="1985-05-05"),  # a candidate
        patient("too-old", gender="female", birthDate="1930-01-01"),  # age limit: ineligible
        patient("child", gender="male", birthDate="2015-01-01"),  # age limit: ineligible
        patient("no-birthdate", gender="female"),  # age unknown: never ineligible by age
        patient("born-1950", gender="male", birthDate="1950"),  # 70 or 71 on the as-of date
        patient("deceased", gender="female", birthDate="1980-01-01", deceasedBoolean=True),
        patient("no-gender", birthDate="1970-07-07"),  # sex unknown: never ineligible by sex
    ]
    return [
        {"resourceType": "Bundle", "type": "transaction", "entry": [_put(p)]} for p in people
    ] + [{"resourceType": "Bundle", "type": "transaction", "entry": [_put(sle)]}]


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"t9{uuid.uuid4().hex[:6]}-"


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("studies")
    sources = [str(EXAMPLE), *(str(FIXTURES / "ctgov-v2" / f"{n}.json") for n in STUDY_FIXTURES)]
    for result in convert_inputs(sources):
        assert not isinstance(result, RecordError), str(result)
        (folder / f"{result.nct_id}.json").write_text(dumps(result.bundle), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def studies(study_folder: Path) -> list[Study]:
    return load_studies([study_folder])


@pytest.fixture(scope="module")
def client(fhir_server_url: str) -> Iterator[FhirClient]:
    with FhirClient(fhir_server_url) as fhir:
        yield fhir


def _load(client: FhirClient, bundles: list[Json], folder: Path) -> Path:
    """Put each transaction on the server and beside it as a file (what file input reads)."""
    for number, bundle in enumerate(bundles):
        result = client.post_transaction(bundle)
        assert not result.failed_entries, result.failed_entries[:1]
        (folder / f"patient-{number}.json").write_text(json.dumps(bundle), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def patient_files(
    client: FhirClient, prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    bundles = [
        loadable(json.loads(path.read_text(encoding="utf-8")), prefix)
        for path in sorted(SYNTHEA_FIXTURES.glob("*.json"))
    ]
    return _load(client, [*bundles, *synthetic_patients(prefix)], tmp_path_factory.mktemp("pt"))


def _by_pair(results: list[Json], prefix: str) -> dict[tuple[str, str], Json]:
    return {(r["patient"], r["study"]): r for r in results if r["patient"].startswith(prefix)}


def _file_results(files: Path, studies: list[Study]) -> list[Json]:
    options = Options(as_of=AS_OF)
    return [match(p, s, options).as_json() for p in load_patients([files]) for s in studies]


def _server_results(
    client: FhirClient, studies: list[Study], narrow: bool = False, traffic: Traffic | None = None
) -> list[Json]:
    return [
        result.as_json()
        for outcome in match_server(
            client, studies, Options(as_of=AS_OF), narrow=narrow, traffic=traffic, page_size=7
        )
        for result in outcome.results
    ]


def test_server_verdicts_equal_file_verdicts(
    client: FhirClient, studies: list[Study], patient_files: Path, prefix: str
) -> None:
    files = _by_pair(_file_results(patient_files, studies), prefix)
    traffic = Traffic()
    server = _by_pair(_server_results(client, studies, traffic=traffic), prefix)
    assert len(files) == 10 * len(studies)
    assert set(server) == set(files)
    for pair, expected in files.items():
        assert server[pair]["verdict"] == expected["verdict"], pair
    # Known answers of the synthetic patients against the reference example (18–70 years).
    example = "NCT05765006"
    verdicts = {
        p.removeprefix(prefix): r["verdict"] for (p, s), r in server.items() if s == example
    }
    assert verdicts["too-old"] == verdicts["child"] == verdicts["deceased"] == "ineligible"
    assert verdicts["adult-sle"] == verdicts["no-birthdate"] == "possibly-eligible"
    assert verdicts["born-1950"] == "possibly-eligible"  # 70 or 71: cannot tell
    assert traffic.requests > 0 and traffic.bytes > 0


def test_patients_excluded_by_the_patient_resource_are_not_fetched(
    client: FhirClient, studies: list[Study], patient_files: Path, prefix: str
) -> None:
    reference = [s for s in studies if s.nct_id == "NCT05765006"]
    fetched = {
        outcome.patient_id.removeprefix(prefix): outcome.fetched
        for outcome in match_server(client, reference, Options(as_of=AS_OF))
        if outcome.patient_id.startswith(prefix)
    }
    assert fetched["too-old"] is fetched["child"] is fetched["deceased"] is False
    assert fetched["adult-sle"] is fetched["no-birthdate"] is True


def test_search_narrowing_keeps_every_patient_not_ineligible(
    client: FhirClient, studies: list[Study], patient_files: Path, prefix: str
) -> None:
    files = _by_pair(_file_results(patient_files, studies), prefix)
    narrowed = _by_pair(_server_results(client, studies, narrow=True), prefix)
    listed = {patient for patient, _ in narrowed}
    for (patient, study), expected in files.items():
        if patient in listed:
            assert narrowed[(patient, study)]["verdict"] == expected["verdict"]
        else:  # not kept by the search: ineligible for every study
            assert expected["verdict"] == "ineligible", (patient, study)
    assert f"{prefix}no-birthdate" in listed and f"{prefix}no-gender" in listed
    assert f"{prefix}born-1950" in listed  # partial date near the 70-year bound


def test_write_back_is_idempotent(
    client: FhirClient,
    studies: list[Study],
    study_folder: Path,
    patient_files: Path,
    prefix: str,
) -> None:
    reference = [s for s in studies if s.nct_id == "NCT05765006"]
    bundle = json.loads((study_folder / "NCT05765006.json").read_text(encoding="utf-8"))
    assert not client.post_transaction(bundle).failed_entries  # the study the subjects join

    def run() -> WriteBack:
        writer = WriteBack(client, AS_OF, batch_size=5)
        for outcome in match_server(client, reference, Options(as_of=AS_OF)):
            if outcome.patient_id.startswith(prefix):
                for result in outcome.results:
                    writer.add(result, reference[0])
        writer.flush()
        return writer

    first = run()
    assert not first.failures
    assert first.counts["created"] + first.counts["updated"] + first.counts["unchanged"] == 10
    second = run()
    assert dict(second.counts) == {"unchanged": 10}
    subject = client.get_json(
        f"ResearchSubject/{subject_id(reference[0].research_study['id'], prefix + 'too-old')}"
    )
    assert subject["status"] == "ineligible"
    assert subject["individual"]["reference"] == f"Patient/{prefix}too-old"
    assert subject["meta"]["versionId"] == "1"
    found = client.get_json(
        "ResearchSubject", {"study": "ResearchStudy/NCT05765006", "status": "candidate"}
    )
    candidates = {e["resource"]["individual"]["reference"] for e in found.get("entry", [])}
    assert f"Patient/{prefix}adult-sle" in candidates


def test_cli_server_equals_cli_files(
    fhir_server_url: str, patient_files: Path, prefix: str, tmp_path: Path
) -> None:
    study = tmp_path / "study.json"
    runner = CliRunner()
    assert runner.invoke(app, ["convert", str(EXAMPLE), "-o", str(study), "-q"]).exit_code == 0
    common = ["--study", str(study), "--as-of", AS_OF.isoformat(), "--format", "json"]
    by_file = runner.invoke(app, ["match", str(patient_files), *common])
    by_server = runner.invoke(app, ["match", "--server", fhir_server_url, *common])
    assert by_file.exit_code == 0 and by_server.exit_code == 0, by_server.output

    def verdicts(text: str) -> dict[str, str]:
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        return {d["patient"]: d["verdict"] for d in lines if d["patient"].startswith(prefix)}

    assert verdicts(by_server.stdout) == verdicts(by_file.stdout)
    assert len(verdicts(by_file.stdout)) == 10


def test_cli_write_back_twice_changes_nothing(
    fhir_server_url: str, study_folder: Path, patient_files: Path, client: FhirClient
) -> None:
    study = study_folder / "NCT05765006.json"
    assert not client.post_transaction(json.loads(study.read_text(encoding="utf-8"))).failed_entries
    arguments = ["match", "--server", fhir_server_url, "--study", str(study)]
    arguments += ["--as-of", AS_OF.isoformat(), "--format", "json", "--write-back"]
    runner = CliRunner()
    first = runner.invoke(app, arguments)
    assert first.exit_code == 0, first.stderr
    second = runner.invoke(app, arguments)
    assert second.exit_code == 0, second.stderr
    summary = next(line for line in second.stderr.splitlines() if line.startswith("write-back"))
    assert "unchanged" in summary
    assert "created" not in summary and "updated" not in summary, summary


def test_all_synthea_patients(
    client: FhirClient, studies: list[Study], tmp_path_factory: pytest.TempPathFactory
) -> None:
    source = SHARED / "synthea-r4"
    if not source.is_dir():
        pytest.skip(f"{source} not found: the run over all 63 Synthea patients needs ../shared")
    prefix = f"t9all{uuid.uuid4().hex[:6]}-"
    bundles = [
        loadable(json.loads(path.read_text(encoding="utf-8")), prefix)
        for path in sorted(source.glob("*.json"))
    ]
    files = _load(client, bundles, tmp_path_factory.mktemp("synthea"))
    expected = _by_pair(_file_results(files, studies), prefix)
    got = _by_pair(_server_results(client, studies), prefix)
    assert len(expected) == 63 * len(studies)
    assert {k: v["verdict"] for k, v in got.items()} == {
        k: v["verdict"] for k, v in expected.items()
    }
