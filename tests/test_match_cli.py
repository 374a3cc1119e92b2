"""`fhirconv match` as a hospital runs it: inputs of every shape, streaming, errors, summary."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.match.records import InputError, iter_patients, patient_key
from tests.conftest import EXAMPLE, REPO

Json = dict[str, Any]
PATIENTS = sorted((REPO / "examples" / "patients").glob("*.json"))
AS_OF = ["--as-of", "2025-06-01"]


@pytest.fixture(scope="module")
def study_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("study") / "study.json"
    converted = CliRunner().invoke(app, ["convert", str(EXAMPLE), "-o", str(bundle), "-q"])
    assert converted.exit_code == 0, converted.output
    return bundle


def _lines(output: str) -> list[Json]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _verdicts(output: str) -> dict[tuple[str, str], str]:
    return {(line["patient"], line["study"]): line["verdict"] for line in _lines(output)}


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, ["match", *args])


def _bulk_export(bundles: list[Path], folder: Path) -> Path:
    """The bundles' resources as a Bulk Data $export writes them: one NDJSON file per type."""
    folder.mkdir()
    by_type: dict[str, list[str]] = {}
    for path in bundles:
        for entry in json.loads(path.read_text())["entry"]:
            resource = entry["resource"]
            by_type.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    for kind, lines in by_type.items():
        (folder / f"{kind}.ndjson").write_text("\n".join(lines) + "\n")
    return folder


def test_bulk_export_folder_gives_the_same_verdicts_as_bundles(
    study_bundle: Path, tmp_path: Path
) -> None:
    from_bundles = _run(
        *map(str, PATIENTS), "--study", str(study_bundle), *AS_OF, "--format", "json"
    )
    export = _bulk_export(PATIENTS, tmp_path / "export")
    from_export = _run(str(export), "--study", str(study_bundle), *AS_OF, "--format", "json")
    assert from_bundles.exit_code == 0 == from_export.exit_code, from_export.output
    assert _verdicts(from_export.stdout) == _verdicts(from_bundles.stdout)
    assert len(_verdicts(from_export.stdout)) == 2
    by_patient = {line["patient"]: line for line in _lines(from_export.stdout)}
    bundled = {line["patient"]: line for line in _lines(from_bundles.stdout)}
    assert by_patient == bundled  # the same evidence, criterion by criterion


def test_study_as_ndjson_and_as_directory(study_bundle: Path, tmp_path: Path) -> None:
    ndjson = tmp_path / "ndjson"
    converted = CliRunner().invoke(
        app, ["convert", str(EXAMPLE), "-o", str(ndjson), "--format", "ndjson", "-q"]
    )
    assert converted.exit_code == 0, converted.output
    bundled = _run(str(PATIENTS[0]), "--study", str(study_bundle), *AS_OF, "--format", "json")
    expected = _verdicts(bundled.stdout)
    assert expected
    for given in (ndjson, study_bundle.parent):
        result = _run(str(PATIENTS[0]), "--study", str(given), *AS_OF, "--format", "json")
        assert result.exit_code == 0, result.output
        assert _verdicts(result.stdout) == expected


def test_study_given_as_patient_is_an_error_naming_the_file(study_bundle: Path) -> None:
    result = _run(str(study_bundle), str(PATIENTS[0]), "--study", str(study_bundle), *AS_OF)
    assert result.exit_code == 1
    assert f"{study_bundle}: holds a ResearchStudy and no Patient" in result.stderr
    assert f"{PATIENTS[0].stem} × NCT05765006" in result.stdout  # the good file still ran


def test_patient_given_as_study_is_an_error_naming_the_file() -> None:
    result = _run(str(PATIENTS[0]), "--study", str(PATIENTS[1]), *AS_OF)
    assert result.exit_code == 2
    assert f"{PATIENTS[1]}: holds Patient data and no ResearchStudy" in result.stderr


def test_unreadable_patient_file_does_not_lose_the_others(
    study_bundle: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": "Patient", "id": "x", ')
    result = _run(str(broken), *map(str, PATIENTS), "--study", str(study_bundle), *AS_OF)
    assert result.exit_code == 1
    assert str(broken) in result.stderr
    assert result.stdout.count("× NCT05765006") == 2


def _r5_statement() -> Json:
    return {
        "resourceType": "MedicationStatement",
        "id": "m1",
        "status": "recorded",
        "medication": {"concept": {"text": "aspirin"}},
        "subject": {"reference": "Patient/r5"},
    }


@pytest.mark.parametrize(
    ("resources", "named"),
    [
        ([{"resourceType": "Patient", "id": "r5"}, _r5_statement()], "FHIR R5"),
        (
            [
                {
                    "resourceType": "Patient",
                    "id": "r5",
                    "meta": {"profile": ["http://hl7.org/fhir/5.0/StructureDefinition/Patient"]},
                }
            ],
            "is FHIR R5",
        ),
        (
            [
                {"resourceType": "Patient", "id": "s3"},
                {
                    "resourceType": "Condition",
                    "id": "c",
                    "clinicalStatus": "active",
                    "subject": {"reference": "Patient/s3"},
                },
            ],
            "FHIR STU3",
        ),
        ([{"resourceType": "Patient", "id": "s3"}, {"resourceType": "ProcedureRequest"}], "STU3"),
    ],
)
def test_other_fhir_versions_are_refused_with_the_reason(
    resources: list[Json], named: str, study_bundle: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "other.json"
    entries = [{"resource": r} for r in resources]
    bundle.write_text(
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})
    )
    ndjson = tmp_path / "other.ndjson"
    ndjson.write_text("\n".join(json.dumps(r) for r in resources) + "\n")
    for given in (bundle, ndjson):
        result = _run(str(given), "--study", str(study_bundle), *AS_OF)
        assert result.exit_code == 1
        assert f"{given}" in result.stderr and "not FHIR R4" in result.stderr
        assert named in result.stderr


def test_summary_counts_verdicts_and_ranks_candidates(study_bundle: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    args = [*map(str, PATIENTS), "--study", str(study_bundle), *AS_OF, "--format", "json"]
    result = _run(*args, "--summary", str(summary))
    assert result.exit_code == 0, result.output
    verdicts = _verdicts(result.stdout)
    (study,) = json.loads(summary.read_text())["studies"]
    assert study["study"] == "NCT05765006" and study["patients"] == 2
    for verdict in ("eligible", "possibly-eligible", "ineligible"):
        assert study["verdicts"][verdict] == list(verdicts.values()).count(verdict)
    candidates = [c["patient"] for c in study["candidates"]]
    assert candidates == [p for (p, _), v in verdicts.items() if v != "ineligible"]
    text = tmp_path / "summary.txt"
    _run(*args, "--summary", str(text), "--summary-format", "text")
    assert text.read_text().startswith("NCT05765006: 2 patients:")


def test_json_lines_keep_their_documented_keys(study_bundle: Path) -> None:
    result = _run(*map(str, PATIENTS), "--study", str(study_bundle), *AS_OF, "--format", "json")
    for line in _lines(result.stdout):
        assert set(line) == {"patient", "study", "verdict", "criteria"}


def test_patient_references_in_every_form_find_the_patient() -> None:
    assert patient_key("Patient/123") == "123"
    assert patient_key("https://ehr.example/fhir/Patient/123/_history/4") == "123"
    assert patient_key("urn:uuid:5b1c") == "5b1c"
    assert patient_key("Group/9") is None


def _patient_lines(count: int, observations: int) -> tuple[list[str], list[str]]:
    patients, results = [], []
    for number in range(count):
        patients.append(json.dumps({"resourceType": "Patient", "id": f"p{number}"}))
        for item in range(observations):
            results.append(
                json.dumps(
                    {
                        "resourceType": "Observation",
                        "id": f"o{number}-{item}",
                        "status": "final",
                        "code": {"text": "x" * 200},
                        "subject": {"reference": f"Patient/p{number}"},
                        "valueQuantity": {"value": item},
                    }
                )
            )
    return patients, results


def _peak_while_streaming(folder: Path, count: int) -> int:
    folder.mkdir()
    patients, results = _patient_lines(count, 40)
    (folder / "Patient.ndjson").write_text("\n".join(patients) + "\n")
    (folder / "Observation.ndjson").write_text("\n".join(results) + "\n")
    tracemalloc.start()
    seen = 0
    for record in iter_patients([folder]):
        assert not isinstance(record, InputError)
        assert len(record.resources) == 40
        seen += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seen == count
    return peak


def test_ndjson_patients_stream_with_flat_memory(tmp_path: Path) -> None:
    small = _peak_while_streaming(tmp_path / "small", 20)
    large = _peak_while_streaming(tmp_path / "large", 400)
    extra_lines = (400 - 20) * 41
    # Holding the resources would cost well over 1 kB a line (each parsed Observation here is
    # larger than its 300-byte text); the byte-offset index costs a few integers a line.
    assert (large - small) / extra_lines < 100


def test_resources_in_a_file_without_patient_join_their_patient(tmp_path: Path) -> None:
    patient = {"resourceType": "Patient", "id": "abc"}
    (tmp_path / "patient.json").write_text(json.dumps(patient))
    labs = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"lab{n}",
                    "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:abc" if n else "Patient/abc"},
                }
            }
            for n in range(2)
        ],
    }
    (tmp_path / "labs.json").write_text(json.dumps(labs))
    (record,) = list(iter_patients([tmp_path]))
    assert not isinstance(record, InputError)
    assert sorted(r["id"] for r in record.of_type("Observation")) == ["lab0", "lab1"]


def test_ndjson_of_bundles_gives_each_bundle_its_patients(tmp_path: Path) -> None:
    lines = [json.dumps(json.loads(path.read_text())) for path in PATIENTS]
    (tmp_path / "bundles.ndjson").write_text("\n".join(lines) + "\n")
    records = [r for r in iter_patients([tmp_path / "bundles.ndjson"])]
    assert sorted(r.id for r in records if not isinstance(r, InputError)) == sorted(
        p.stem for p in PATIENTS
    )


def test_summary_ranks_eligible_first_then_fewer_unknowns_and_keeps_the_top() -> None:
    from fhirconv.match.summary import Summary

    def line(patient: str, verdict: str, unknown: int, met: int) -> Json:
        criteria = [{"exclude": False, "result": "unknown"}] * unknown
        criteria += [{"exclude": True, "result": "not-met"}] * met
        return {"patient": patient, "study": "S", "verdict": verdict, "criteria": criteria}

    summary = Summary(top=3)
    for item in (
        line("many-unknown", "possibly-eligible", 5, 1),
        line("out", "ineligible", 0, 9),
        line("few-unknown", "possibly-eligible", 1, 1),
        line("sure", "eligible", 0, 2),
        line("few-unknown-more-met", "possibly-eligible", 1, 3),
        *(line(f"filler{n}", "possibly-eligible", 9, 0) for n in range(10)),
    ):
        summary.add(item)
    (study,) = summary.as_json()["studies"]
    assert study["patients"] == 15
    assert study["verdicts"] == {"eligible": 1, "possibly-eligible": 13, "ineligible": 1}
    ranked = [c["patient"] for c in study["candidates"]]
    assert ranked == ["sure", "few-unknown-more-met", "few-unknown"]
