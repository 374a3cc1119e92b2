"""Incremental refresh: a re-run into the same directory converts, writes and pushes only the
studies whose record changed, and deletes those gone from the inputs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.convert import convert_inputs
from fhirconv.errors import ExitCode
from fhirconv.manifest import MANIFEST_NAME, Manifest
from fhirconv.pipeline import write_converted
from fhirconv.publish.bundles import LoadedBundle
from fhirconv.publish.report import PushSummary
from fhirconv.write import BundleWriter
from tests.conftest import FIXTURES

runner = CliRunner()
IDS = ["NCT00007696", "NCT00057759", "NCT00142506"]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for nct_id in IDS:
        shutil.copy(FIXTURES / "ctgov-v2" / f"{nct_id}.json", folder)
    return folder


def convert(inputs: Path, out: Path, *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["convert", str(inputs), "-o", str(out), "-q", *extra])
    return result.exit_code, result.stderr


def retitle(path: Path, title: str) -> None:
    record = json.loads(path.read_text())
    record["protocolSection"]["identificationModule"]["briefTitle"] = title
    path.write_text(json.dumps(record))


def stamps(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in out.glob("NCT*.json")}


def test_a_rerun_rewrites_only_what_changed(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, err = convert(inputs, out)
    assert code == ExitCode.OK and "refresh: 3 new, 0 changed, 0 unchanged, 0 gone" in err
    assert (out / MANIFEST_NAME).is_file()
    before = stamps(out)

    code, err = convert(inputs, out)
    assert code == ExitCode.OK and "refresh: 0 new, 0 changed, 3 unchanged, 0 gone" in err
    assert "converted 0 studies" in err and stamps(out) == before  # nothing rewritten

    retitle(inputs / f"{IDS[1]}.json", "A title changed upstream")
    code, err = convert(inputs, out)
    assert "refresh: 0 new, 1 changed, 2 unchanged, 0 gone" in err
    bundle = json.loads((out / f"{IDS[1]}.json").read_text())
    assert bundle["entry"][0]["resource"]["title"] == "A title changed upstream"
    after = stamps(out)
    assert [n for n in before if before[n] != after[n]] == [f"{IDS[1]}.json"]


def test_new_and_gone_studies(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert(inputs, out)
    (inputs / f"{IDS[0]}.json").unlink()
    shutil.copy(FIXTURES / "ctgov-v2" / "NCT00159809.json", inputs)
    code, err = convert(inputs, out)
    assert code == ExitCode.OK, err
    assert "refresh: 1 new, 0 changed, 2 unchanged, 1 gone" in err
    assert not (out / f"{IDS[0]}.json").exists() and (out / "NCT00159809.json").exists()


def test_gone_studies_are_kept_when_the_run_had_failures(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert(inputs, out)
    # A record that cannot be read may be the study that looks gone: nothing is deleted.
    (inputs / f"{IDS[0]}.json").write_text('{"protocolSection": ')
    code, err = convert(inputs, out)
    assert code == ExitCode.RECORDS_FAILED
    assert "1 gone (kept: the run had failures)" in err and (out / f"{IDS[0]}.json").exists()
    # The failing record is read again next time (and reported again), not remembered as done.
    code, err = convert(inputs, out)
    assert code == ExitCode.RECORDS_FAILED and "truncated JSON" in err


def test_a_missing_output_and_changed_options_convert_again(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    convert(inputs, out)
    (out / f"{IDS[2]}.json").unlink()
    _, err = convert(inputs, out)
    assert "refresh: 0 new, 1 changed, 2 unchanged, 0 gone" in err
    assert (out / f"{IDS[2]}.json").exists()
    _, err = convert(inputs, out, "--pretty")  # another output: every study again
    assert "refresh: 0 new, 3 changed, 0 unchanged, 0 gone" in err
    assert (out / f"{IDS[0]}.json").read_text().startswith("{\n")
    _, err = convert(inputs, out, "--pretty", "--full")
    assert "refresh: 0 new, 3 changed, 0 unchanged, 0 gone" in err


def test_a_zip_member_that_changed_is_the_only_one_converted(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "ctg-studies.zip"
    records = {n: (FIXTURES / "ctgov-v2" / f"{n}.json").read_text() for n in IDS}

    def pack() -> None:
        with zipfile.ZipFile(archive, "w") as handle:
            for nct_id, text in records.items():
                handle.writestr(f"ctg-studies/{nct_id}.json", text)

    pack()
    out = tmp_path / "out"
    assert "3 new" in convert(archive, out)[1]
    record = json.loads(records[IDS[0]])
    record["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
    records[IDS[0]] = json.dumps(record)
    pack()
    assert "refresh: 0 new, 1 changed, 2 unchanged, 0 gone" in convert(archive, out)[1]


class Recorder:
    """A pusher that records what it was given (the library's push hook)."""

    def __init__(self) -> None:
        self.studies: list[str] = []

    def __call__(self, bundles: Iterable[LoadedBundle]) -> PushSummary:
        self.studies += [loaded.study for loaded in bundles]
        return PushSummary([])


def refresh(inputs: Path, out: Path) -> list[str]:
    pusher = Recorder()
    writer = BundleWriter(str(out), pretty=False, several=True, echo=print)
    with Manifest(out) as manifest:
        results = convert_inputs([str(inputs)], manifest=manifest)
        summary = write_converted(results, writer, manifest=manifest, push=pusher)
    assert summary.write_error is None and not summary.failures
    return pusher.studies


def test_only_new_and_changed_studies_are_pushed(inputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert refresh(inputs, out) == IDS
    assert refresh(inputs, out) == []
    retitle(inputs / f"{IDS[2]}.json", "Changed")
    assert refresh(inputs, out) == [IDS[2]]


def _research_study(server: str, nct_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server}/ResearchStudy/{nct_id}",
        headers={"Accept": "application/fhir+json", "Cache-Control": "no-cache"},
    )
    assert response.status_code == 200, response.text
    resource: dict[str, Any] = response.json()
    return resource


@pytest.mark.hapi
def test_convert_push_sends_only_changed_studies_to_hapi(
    fhir_server_url: str, inputs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, err = convert(inputs, out, "--push", fhir_server_url)
    assert code == ExitCode.OK, err
    assert "Pushed 3 of 3 studies" in err
    code, err = convert(inputs, out, "--push", fhir_server_url)
    assert code == ExitCode.OK and "Pushed 0 of 0 studies" in err
    retitle(inputs / f"{IDS[1]}.json", "Retitled for the refresh test")
    code, err = convert(inputs, out, "--push", fhir_server_url)
    assert code == ExitCode.OK and "Pushed 1 of 1 studies" in err, err
    assert _research_study(fhir_server_url, IDS[1])["title"] == "Retitled for the refresh test"
