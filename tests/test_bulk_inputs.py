"""Bulk inputs: ClinicalTrials.gov's ZIP read in place, streamed NDJSON, lazily walked directories,
and the Bulk Data manifest of NDJSON output."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.convert import ConvertedStudy, convert_inputs
from fhirconv.errors import ExitCode, RecordError
from fhirconv.publish.bulk import resource_files
from fhirconv.sources.inputs import iter_input_files, path_units
from tests.conftest import FIXTURES

runner = CliRunner()
V2 = FIXTURES / "ctgov-v2"
IDS = ["NCT00007696", "NCT00057759", "NCT00142506"]


def study(nct_id: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((V2 / f"{nct_id}.json").read_text())
    return loaded


def renamed(nct_id: str, new_id: str, updated: str | None = None) -> dict[str, Any]:
    record = study(nct_id)
    record["protocolSection"]["identificationModule"]["nctId"] = new_id
    if updated is not None:
        status = record["protocolSection"]["statusModule"]
        status["lastUpdatePostDateStruct"] = {"date": updated, "type": "ACTUAL"}
    return record


def bulk_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def ok_ids(results: list[ConvertedStudy | RecordError]) -> list[str]:
    return [r.nct_id for r in results if isinstance(r, ConvertedStudy) and r.ok]


def test_a_ctgov_zip_is_read_in_place_member_by_member(tmp_path: Path) -> None:
    members = {f"ctg-studies/{n}.json": json.dumps(study(n)).encode() for n in reversed(IDS)}
    members["__MACOSX/ctg-studies/._NCT00007696.json"] = b"\x00\x05\x16\x07 resource fork"
    members["ctg-studies/README.pdf"] = b"%PDF-1.4"
    archive = bulk_zip(tmp_path / "ctg-studies.zip", members)
    results = list(convert_inputs([str(archive)]))
    assert ok_ids(results) == IDS  # member names sorted; the fork and the PDF are not records
    source = next(r for r in results if isinstance(r, ConvertedStudy)).trial.source.file
    assert source == f"{archive}:ctg-studies/NCT00007696.json"
    assert not list(tmp_path.glob("ctg-studies/*"))  # nothing unpacked


def test_a_bad_zip_member_is_named_and_the_others_convert(tmp_path: Path) -> None:
    members = {f"{n}.json": json.dumps(study(n)).encode() for n in IDS[:2]}
    members["NCT99999999.json"] = (
        b'{"protocolSection": {"identificationModule": {"nctId": "NCT99999999", '
    )
    archive = bulk_zip(tmp_path / "studies.zip", members)
    results = list(convert_inputs([str(archive)]))
    assert ok_ids(results) == IDS[:2]
    (error,) = [r for r in results if isinstance(r, RecordError)]
    assert error.file == f"{archive}:NCT99999999.json"
    assert "truncated JSON" in str(error) and "record NCT99999999" in str(error)


def test_a_file_that_is_no_zip_is_one_error(tmp_path: Path) -> None:
    fake = tmp_path / "broken.zip"
    fake.write_bytes(b"PK\x03\x04 not really an archive")
    (error,) = list(convert_inputs([str(fake)]))
    assert isinstance(error, RecordError) and "not a readable ZIP archive" in str(error)
    assert error.file == str(fake)


def test_ndjson_is_streamed_line_by_line_and_a_bad_line_is_named(tmp_path: Path) -> None:
    lines = [json.dumps(study(IDS[0])), "", "nope", json.dumps(study(IDS[1]))]
    path = tmp_path / "studies.ndjson"
    path.write_text("\n".join(lines) + "\n")
    units = list(path_units(path))
    assert [getattr(u, "line", None) for u in units] == [1, 3, 4]
    results = list(convert_inputs([str(path)]))
    assert ok_ids(results) == IDS[:2]
    (error,) = [r for r in results if isinstance(r, RecordError)]
    assert str(error).startswith(f"{path}, record line 3: invalid JSON at line 3")


def test_ndjson_inside_a_zip_names_member_and_line(tmp_path: Path) -> None:
    text = json.dumps(study(IDS[0])) + "\n" + json.dumps({"protocolSection": []}) + "\n"
    archive = bulk_zip(tmp_path / "s.zip", {"all/studies.ndjson": text.encode()})
    results = list(convert_inputs([str(archive)]))
    assert ok_ids(results) == IDS[:1]
    (error,) = [r for r in results if isinstance(r, RecordError)]
    assert error.file == f"{archive}:all/studies.ndjson" and error.record == "line 2"


def test_a_pretty_printed_ndjson_file_cut_short_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "pretty.ndjson"
    path.write_text(json.dumps(study(IDS[0]), indent=2)[:-40])
    (error,) = list(convert_inputs([str(path)]))
    assert isinstance(error, RecordError) and "truncated JSON" in str(error)


def test_directories_are_walked_in_sorted_path_order(tmp_path: Path) -> None:
    for name in ["b/2.json", "a.json", "a/z.json", "a/sub/y.xml", "c.pdf", "a/notes.md"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_input_files(tmp_path)]
    assert found == ["a.json", "a/sub/y.xml", "a/z.json", "b/2.json"]
    assert found == sorted(found)


def test_the_latest_duplicate_wins_across_a_zip_and_a_file(tmp_path: Path) -> None:
    older = renamed(IDS[0], IDS[0], updated="2001-01-01")
    newer = renamed(IDS[0], IDS[0], updated="2030-01-01")
    newer["protocolSection"]["identificationModule"]["briefTitle"] = "The newer record"
    archive = bulk_zip(tmp_path / "a.zip", {"x.json": json.dumps(newer).encode()})
    loose = tmp_path / "b.json"
    loose.write_text(json.dumps(older))
    (kept,) = [
        r for r in convert_inputs([str(archive), str(loose)]) if not isinstance(r, RecordError)
    ]
    assert kept.bundle["entry"][0]["resource"]["title"] == "The newer record"
    (warning,) = [w for w in kept.warnings if "occurs in 2 records" in w]
    assert f"kept the one in {archive}:x.json" in warning


def test_cli_converts_a_zip_to_ndjson_with_a_bulk_manifest(tmp_path: Path) -> None:
    members = {f"ctg-studies/{n}.json": json.dumps(study(n)).encode() for n in IDS}
    archive = bulk_zip(tmp_path / "ctg-studies.zip", members)
    out = tmp_path / "bulk"
    result = runner.invoke(app, ["convert", str(archive), "--format", "ndjson", "-o", str(out)])
    assert result.exit_code == ExitCode.OK, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["requiresAccessToken"] is False and manifest["error"] == []
    assert manifest["transactionTime"].endswith("+00:00")
    assert "convert" in manifest["request"]
    by_type = {item["type"]: item for item in manifest["output"]}
    assert by_type["ResearchStudy"]["count"] == 3
    for kind, item in by_type.items():
        lines = (out / item["url"]).read_text().splitlines()
        assert len(lines) == item["count"] and all(
            json.loads(x)["resourceType"] == kind for x in lines
        )
    # the summary counts resources by type and studies
    assert "converted 3 studies, 0 failed" in result.stderr
    assert "ResearchStudy 3" in result.stderr
    # push takes the directory as resource NDJSON: the manifest is not mistaken for a Bundle
    files = resource_files([out]) or []
    assert sorted(p.name for p in files) == sorted(item["url"] for item in manifest["output"])


def test_cli_summary_counts_failures_by_reason(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(study(IDS[0])))
    (tmp_path / "b.json").write_text("[")
    (tmp_path / "c.json").write_text('{"protocolSection": {"identificationModule": 1')
    result = runner.invoke(app, ["convert", str(tmp_path), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == ExitCode.RECORDS_FAILED
    assert "converted 1 study, 2 failed" in result.stderr
    assert "failures: 2× truncated JSON (the text ends too early)" in result.stderr


def test_a_zip_into_one_file_is_a_usage_error(tmp_path: Path) -> None:
    archive = bulk_zip(tmp_path / "s.zip", {"a.json": json.dumps(study(IDS[0])).encode()})
    result = runner.invoke(app, ["convert", str(archive), "-o", str(tmp_path / "one.json")])
    assert result.exit_code == ExitCode.USAGE
    assert "names one file, but the inputs hold several studies" in result.stderr
