"""`convert` and `validate` as a user runs them: outputs, exit codes, error messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from fhirconv.cli import app
from tests.conftest import EXAMPLE, FIXTURES

runner = CliRunner()
GOOD = FIXTURES / "ctgov-v2" / "NCT00007696.json"


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def test_convert_one_study_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    code, _, err = run("convert", str(EXAMPLE), "-o", str(out))
    assert code == 0, err
    bundle = json.loads(out.read_text())
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert "converted 1 study, 0 failed" in err


def test_convert_directory_writes_one_bundle_per_study(tmp_path: Path) -> None:
    code, _, err = run("convert", str(FIXTURES / "ctgov-v2"), "-o", str(tmp_path / "out"))
    assert code == 0, err
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in (FIXTURES / "ctgov-v2").glob("*.json"))


def test_batch_with_one_bad_record_converts_the_rest(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(GOOD, inputs / "good.json")
    (inputs / "broken.json").write_text('{"protocolSection": {', encoding="utf-8")
    code, _, err = run("convert", str(inputs), "-o", str(tmp_path / "out"))
    assert code == 1
    assert (tmp_path / "out" / "NCT00007696.json").exists()
    assert "broken.json" in err
    assert "truncated JSON (the text ends too early) at line 1 col 22" in err
    assert "converted 1 study, 1 failed" in err
    assert "Traceback" not in err


def test_record_without_nct_id_names_file_and_field(tmp_path: Path) -> None:
    study = json.loads(GOOD.read_text())
    del study["protocolSection"]["identificationModule"]["nctId"]
    bad = tmp_path / "no-id.json"
    bad.write_text(json.dumps(study))
    code, _, err = run("convert", str(bad))
    assert code == 1
    assert "no-id.json" in err and "protocolSection.identificationModule.nctId" in err


def test_impossible_date_names_record_and_field(tmp_path: Path) -> None:
    study = json.loads(GOOD.read_text())
    study["protocolSection"]["statusModule"]["startDateStruct"]["date"] = "2020-02-31"
    bad = tmp_path / "bad-date.json"
    bad.write_text(json.dumps(study))
    code, _, err = run("convert", str(bad))
    assert code == 1
    assert "NCT00007696" in err and "startDateStruct.date" in err and "2020-02-31" in err


def test_unrecognized_layout_is_a_clear_error(tmp_path: Path) -> None:
    odd = tmp_path / "notes.txt"
    odd.write_text("just some notes\nnothing registry-like\n")
    code, _, err = run("convert", str(odd))
    assert code == 1
    assert "notes.txt" in err and "--from" in err


def test_stdin_and_explicit_format(tmp_path: Path) -> None:
    code, out, err = run("convert", "-", "--from", "registry-text", stdin=EXAMPLE.read_text())
    assert code == 0, err
    assert json.loads(out)["entry"][0]["resource"]["id"] == "NCT05765006"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run("convert", str(GOOD), "--from", "pdf")[0] == 2
    assert run("convert", str(tmp_path / "missing.json"))[0] == 2
    assert run("convert")[0] == 2


def test_ndjson_output_has_one_file_per_type_and_shared_resources_once(tmp_path: Path) -> None:
    code, _, err = run(
        "convert", str(FIXTURES / "ctgov-v2"), "--format", "ndjson", "-o", str(tmp_path)
    )
    assert code == 0, err
    studies = (tmp_path / "ResearchStudy.ndjson").read_text().splitlines()
    assert len(studies) == len(list((FIXTURES / "ctgov-v2").glob("*.json")))
    organizations = [
        json.loads(line)["id"]
        for line in (tmp_path / "Organization.ndjson").read_text().splitlines()
    ]
    assert len(organizations) == len(set(organizations))


def test_validate_accepts_our_output_and_reports_problems(tmp_path: Path) -> None:
    out = tmp_path / "study.json"
    assert run("convert", str(GOOD), "-o", str(out))[0] == 0
    assert run("validate", str(out))[0] == 0
    bundle = json.loads(out.read_text())
    bundle["entry"][0]["resource"]["status"] = "bogus"
    bundle["entry"][1]["resource"]["characteristic"][0]["code"] = "not a concept"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(bundle))
    code, out_text, _ = run("validate", str(broken))
    assert code == 1
    assert "ResearchStudy/NCT00007696 status" in out_text and "bogus" in out_text
    assert "Group/NCT00007696-eligibility characteristic[0].code" in out_text


def test_validate_reports_dangling_reference(tmp_path: Path) -> None:
    out = tmp_path / "study.json"
    assert run("convert", str(GOOD), "-o", str(out))[0] == 0
    bundle = json.loads(out.read_text())
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Location"]
    broken = tmp_path / "dangling.json"
    broken.write_text(json.dumps(bundle))
    code, out_text, _ = run("validate", str(broken))
    assert code == 1
    assert "does not resolve inside the bundle" in out_text


def test_ndjson_single_file_input_with_many_studies_goes_to_a_directory(tmp_path: Path) -> None:
    lines = [
        json.dumps(json.loads(p.read_text()))
        for p in sorted((FIXTURES / "ctgov-v2").glob("*.json"))[:3]
    ]
    ndjson = tmp_path / "studies.ndjson"
    ndjson.write_text("\n".join(lines) + "\n")
    code, _, err = run("convert", str(ndjson), "-o", str(tmp_path / "out.json"))
    assert code == 0, err
    assert len(list((tmp_path / "out.json").glob("NCT*.json"))) == 3


def test_stdout_bundles_are_one_per_line(tmp_path: Path) -> None:
    code, out, err = run("convert", str(FIXTURES / "ctgov-v2" / "NCT00007696.json"), str(EXAMPLE))
    assert code == 0, err
    bundles = [json.loads(line) for line in out.splitlines()]
    assert [b["entry"][0]["resource"]["id"] for b in bundles] == ["NCT00007696", "NCT05765006"]
