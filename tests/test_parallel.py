"""`convert --jobs N`: the same results, in the same order, byte for byte, as `--jobs 1` — also
for bad records, a record whose conversion fails in a worker, and a worker that dies."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fhirconv.convert
from fhirconv.bundle import dumps
from fhirconv.cli import app
from fhirconv.convert import ConvertedStudy, convert_inputs
from fhirconv.errors import RecordError
from fhirconv.mapping import MappedStudy, map_trial
from fhirconv.model import Trial
from fhirconv.parallel import CHUNK_SIZE
from tests.conftest import FIXTURES

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """More records than two chunks (so the pool really runs), with a file that is not JSON, an
    empty file, a duplicate NCT id and the XML fixtures in between."""
    folder = tmp_path_factory.mktemp("inputs")
    for path in sorted((FIXTURES / "ctgov-v2").glob("*.json")):
        shutil.copy(path, folder / path.name)
    for path in sorted((FIXTURES / "ctgov-xml").glob("*.xml")):
        shutil.copy(path, folder / path.name)
    first = sorted((FIXTURES / "ctgov-v2").glob("*.json"))[0]
    shutil.copy(first, folder / f"zz-duplicate-{first.name}")
    (folder / "NCT00000000.json").write_text('{"protocolSection": {', encoding="utf-8")
    (folder / "empty.json").write_text("", encoding="utf-8")
    assert len(list(folder.iterdir())) > 2 * CHUNK_SIZE + 1
    return folder


def outcome(result: ConvertedStudy | RecordError) -> str:
    """Everything a run reports about one result, as text."""
    if isinstance(result, RecordError):
        return f"error: {result}"
    issues = "|".join(map(str, result.issues))
    return f"{result.nct_id}\n{dumps(result.bundle)}{result.warnings}\n{issues}"


def test_jobs_2_yields_what_jobs_1_yields_in_the_same_order(inputs: Path) -> None:
    serial = [outcome(r) for r in convert_inputs([str(inputs)], jobs=1)]
    parallel = [outcome(r) for r in convert_inputs([str(inputs)], jobs=2)]
    assert len(serial) > 2 * CHUNK_SIZE
    assert any(line.startswith("error: ") for line in serial)
    assert any("occurs in 2 records" in line for line in serial)
    assert parallel == serial


def _fails_in_mapping(trial: Trial) -> MappedStudy:
    if trial.nct_id == "NCT00576225":
        raise ValueError("mapping broke on purpose")
    return map_trial(trial)


def test_a_record_failing_in_a_worker_is_reported_as_with_jobs_1(
    inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fhirconv.convert, "map_trial", _fails_in_mapping)  # workers fork: seen
    serial = [outcome(r) for r in convert_inputs([str(inputs)], jobs=1)]
    parallel = [outcome(r) for r in convert_inputs([str(inputs)], jobs=2)]
    failed = [line for line in serial if "mapping broke on purpose" in line]
    assert len(failed) == 1 and "NCT00576225" in failed[0]
    assert parallel == serial


_PARENT = os.getpid()


def _dies_in_a_worker(trial: Trial) -> MappedStudy:
    if trial.nct_id == "NCT00576225" and os.getpid() != _PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return map_trial(trial)


def test_a_worker_that_dies_fails_only_its_record(
    inputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = [outcome(r) for r in convert_inputs([str(inputs)], jobs=1)]
    monkeypatch.setattr(fhirconv.convert, "map_trial", _dies_in_a_worker)
    parallel = [outcome(r) for r in convert_inputs([str(inputs)], jobs=2)]
    assert len(parallel) == len(serial)
    differing = [(s, p) for s, p in zip(serial, parallel, strict=True) if s != p]
    assert len(differing) == 1
    kept, lost = differing[0]
    assert kept.startswith("NCT00576225")
    assert lost.startswith("error: ") and "NCT00576225" in lost and "died" in lost


# The incremental manifest records this run's state (its own bookkeeping, not output).
_RUN_STATE = {"fhirconv-manifest.sqlite"}


def _content(path: Path) -> bytes:
    """The file's bytes; the Bulk Data manifest less its transactionTime (the clock's)."""
    if path.name != "manifest.json":
        return path.read_bytes()
    manifest = json.loads(path.read_text())
    assert manifest.pop("transactionTime")
    return json.dumps(manifest, sort_keys=True).encode()


@pytest.mark.parametrize("fmt", ["ndjson", "bundle"])
def test_cli_output_is_byte_identical_for_any_jobs(inputs: Path, tmp_path: Path, fmt: str) -> None:
    outputs = []
    for jobs in ("1", "2", "3"):
        out = tmp_path / f"out-{jobs}"
        result = runner.invoke(
            app, ["convert", str(inputs), "-o", f"{out}/", "--format", fmt, "--jobs", jobs]
        )
        assert result.exit_code == 1, result.stderr  # the broken files fail, the rest is written
        files = sorted(out.iterdir())
        assert files
        outputs.append(
            ({p.name: _content(p) for p in files if p.name not in _RUN_STATE}, result.stderr)
        )
    assert outputs[1] == outputs[0]
    assert outputs[2] == outputs[0]
    if fmt == "ndjson":  # a shared resource is written once across the whole run
        for name, content in outputs[0][0].items():
            if not name.endswith(".ndjson"):
                continue
            ids = [json.loads(line)["id"] for line in content.decode().splitlines()]
            assert len(ids) == len(set(ids))


def test_jobs_must_be_positive(inputs: Path) -> None:
    result = runner.invoke(app, ["convert", str(inputs), "--jobs", "0"])
    assert result.exit_code == 2
    assert "--jobs" in result.stderr
