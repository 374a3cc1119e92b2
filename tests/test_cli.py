"""`convert` and `validate` as a user runs them: outputs, exit codes, error messages."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.errors import ExitCode
from fhirconv.manifest import MANIFEST_NAME
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
    written = sorted(p.name for p in (tmp_path / "out").glob("*.json"))
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


# --- usage, empty input, exit codes ------------------------------------------------------------


def test_exit_codes_keep_their_documented_meanings() -> None:
    assert (ExitCode.OK, ExitCode.RECORDS_FAILED, ExitCode.USAGE) == (0, 1, 2)
    assert ExitCode.OUTPUT_FAILED == 3 and ExitCode.BROKEN_PIPE == 141


def test_one_output_file_for_several_inputs_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "single.json"
    code, _, err = run("convert", str(GOOD), str(EXAMPLE), "-o", str(target))
    assert code == ExitCode.USAGE
    assert "names one file" in err and not target.exists()


def test_empty_inputs_fail_with_a_message(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "nothing").mkdir()
    names = [str(tmp_path / n) for n in ("empty.json", "list.json", "nothing")]
    code, _, err = run("convert", *names)
    assert code == ExitCode.RECORDS_FAILED
    assert "empty.json: no records: the file is empty" in err
    assert "list.json: no records: no studies in it" in err
    assert "nothing: no records: the directory has no" in err


def test_duplicate_ids_keep_the_newest_record_in_ndjson_output_too(tmp_path: Path) -> None:
    study = json.loads(GOOD.read_text())
    newer = json.loads(GOOD.read_text())
    newer["protocolSection"]["identificationModule"]["briefTitle"] = "Newest"
    newer["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2031-05"}
    (tmp_path / "in.ndjson").write_text(json.dumps(newer) + "\n" + json.dumps(study) + "\n")
    for fmt in ("bundle", "ndjson"):
        out = tmp_path / fmt
        code, _, err = run("convert", str(tmp_path / "in.ndjson"), "--format", fmt, "-o", f"{out}/")
        assert code == 0, err
        assert "NCT00007696 occurs in 2 records" in err
        text = (
            out / ("NCT00007696.json" if fmt == "bundle" else "ResearchStudy.ndjson")
        ).read_text()
        assert "Newest" in text


def test_validate_reads_a_bom_an_array_and_fails_on_an_empty_file(tmp_path: Path) -> None:
    bundle = (Path(__file__).parent / "golden" / "NCT05765006.bundle.json").read_text()
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + bundle.encode())
    code, out, err = run("validate", str(tmp_path / "bom.json"))
    assert code == 0, out + err
    (tmp_path / "array.json").write_text(f"[{bundle}, 3]")
    code, out, err = run("validate", str(tmp_path / "array.json"))
    assert (
        code == ExitCode.RECORDS_FAILED and "array.json#2" in out and "not a FHIR resource" in out
    )
    (tmp_path / "empty.json").write_text("")
    code, out, err = run("validate", str(tmp_path / "empty.json"))
    assert code == ExitCode.RECORDS_FAILED and "no resources" in out


def test_deep_json_is_refused_by_validate_and_match(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"resourceType": "Bundle", "entry": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, out, _ = run("validate", str(deep))
    assert code == ExitCode.RECORDS_FAILED and "nested more than" in out
    code, _, err = run("match", str(deep), "--study", str(deep))
    assert code == ExitCode.USAGE and "nested more than" in err
    code, out, err = run("push", str(deep), "--server", "http://127.0.0.1:9/fhir", "--dry-run")
    # one bundle file that cannot be read fails alone, named, like any other bad bundle
    assert code == ExitCode.RECORDS_FAILED and "Traceback" not in err
    assert "JSON nested more than 200 levels deep; refused" in out and str(deep) in out


# --- atomic writes -----------------------------------------------------------------------------


def _disk_full_after(monkeypatch: pytest.MonkeyPatch, successes: int) -> None:
    """The (successes+1)-th file flush fails as a full disk does."""
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        calls["n"] += 1
        if calls["n"] > successes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr("fhirconv.atomic.os.fsync", fsync)


def test_a_full_disk_stops_with_the_path_and_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _disk_full_after(monkeypatch, 2)
    out = tmp_path / "out"
    code, _, err = run("convert", str(FIXTURES / "ctgov-v2"), "-o", str(out), "-q")
    assert code == ExitCode.OUTPUT_FAILED
    assert f"cannot write {out}{os.sep}" in err and "No space left on device" in err
    assert "2 complete file(s) written before it are kept" in err
    files = sorted(p.name for p in out.iterdir() if p.name != MANIFEST_NAME)
    assert len(files) == 2 and all(name.endswith(".json") for name in files)
    for file in out.glob("*.json"):
        assert json.loads(file.read_text())["resourceType"] == "Bundle"


def test_a_full_disk_leaves_no_ndjson_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _disk_full_after(monkeypatch, 1)
    out = tmp_path / "bulk"
    code, _, err = run("convert", str(FIXTURES / "ctgov-v2"), "--format", "ndjson", "-o", str(out))
    assert code == ExitCode.OUTPUT_FAILED and "No space left on device" in err
    assert sorted(p.name for p in out.iterdir()) == ["ResearchStudy.ndjson"] or not list(
        out.iterdir()
    )
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories")
def test_a_read_only_directory_names_the_path(tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, _, err = run("convert", str(FIXTURES / "ctgov-v2"), "-o", str(out))
    finally:
        out.chmod(0o755)
    assert code == ExitCode.OUTPUT_FAILED and f"cannot write {out}" in err
    assert not list(out.iterdir())


def test_a_write_error_in_a_single_file_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "one.json"
    target.write_text("previous")
    _disk_full_after(monkeypatch, 0)
    code, _, err = run("convert", str(GOOD), "-o", str(target))
    assert code == ExitCode.OUTPUT_FAILED and f"cannot write {target}" in err
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["one.json"]


# --- stdout closed by its reader ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["convert", "match"])
def test_a_closed_pipe_ends_quietly(command: str) -> None:
    golden = Path(__file__).parent / "golden" / "NCT05765006.bundle.json"
    patients = FIXTURES.parent.parent / ".." / "shared" / "synthea-r4"
    if command == "convert":
        args = ["convert", *[str(p) for p in sorted((FIXTURES / "ctgov-v2").glob("*.json"))]]
    else:
        patient_files = sorted(patients.glob("*.json"))[:20]
        if not patient_files:
            pytest.skip("no ../shared/synthea-r4 patients")
        args = ["match", *map(str, patient_files), "--study", str(golden), "--as-of", "2024-01-01"]
    process = subprocess.Popen(
        [sys.executable, "-m", "fhirconv", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(100)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=300) == ExitCode.BROKEN_PIPE, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
