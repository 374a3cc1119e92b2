"""Bulk `$import`: the client serves the NDJSON files itself and the server fetches them.

The FHIR server here is a fake (HAPI 8.8 in servers/hapi has no $import); it really fetches each
`input.url` over HTTP from the file server the client started on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.errors import ExitCode
from fhirconv.publish.bulk import ordered_files, resource_files
from fhirconv.publish.client import FhirClient
from fhirconv.publish.importer import ImportFailed, ImportRefused, import_ndjson, serve_files
from tests.conftest import FIXTURES

BASE = "https://fhir.test/r4"
runner = CliRunner()


class FakeImportServer:
    """Offers $import, fetches the inputs when kicked off, answers 202 once, then 200."""

    def __init__(self, kickoff_status: int = 202, job_status: int = 200) -> None:
        self.kickoff_status = kickoff_status
        self.job_status = job_status
        self.parameters: dict[str, Any] | None = None
        self.fetched: dict[str, bytes] = {}
        self.polls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(
                200,
                json={
                    "resourceType": "CapabilityStatement",
                    "rest": [
                        {"mode": "server", "operation": [{"name": "import", "definition": "x"}]}
                    ],
                },
            )
        if request.method == "POST" and request.url.path.endswith("/$import"):
            self.parameters = json.loads(request.content)
            if self.kickoff_status >= 400:
                return httpx.Response(self.kickoff_status)
            for parameter in self.parameters["parameter"]:
                if parameter["name"] == "input":
                    parts = {p["name"]: p for p in parameter["part"]}
                    url = parts["url"]["valueUri"]
                    self.fetched[parts["type"]["valueCode"]] = httpx.get(url).content
            return httpx.Response(202, headers={"Content-Location": f"{BASE}/$import-poll/1"})
        if request.url.path.endswith("/$import-poll/1"):
            self.polls += 1
            if self.polls == 1:
                return httpx.Response(202)
            return httpx.Response(
                self.job_status, json={"resourceType": "OperationOutcome", "issue": []}
            )
        return httpx.Response(404)


@pytest.fixture
def ndjson_dir(tmp_path: Path) -> Path:
    out = tmp_path / "bulk"
    result = runner.invoke(
        app,
        [
            "convert",
            str(FIXTURES / "ctgov-v2" / "NCT00007696.json"),
            str(FIXTURES / "ctgov-v2" / "NCT00057759.json"),
            "--format",
            "ndjson",
            "-o",
            str(out),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.stderr
    return out


def client(server: FakeImportServer) -> FhirClient:
    return FhirClient(BASE, transport=httpx.MockTransport(server))


def test_import_serves_the_files_and_follows_the_job(ndjson_dir: Path) -> None:
    server = FakeImportServer()
    files = ordered_files(resource_files([ndjson_dir]) or [])
    with client(server) as fhir:
        result = import_ndjson(files, fhir, poll_interval=0, sleep=lambda _: None)
    assert server.polls == 2 and result.status_url == f"{BASE}/$import-poll/1"
    assert server.parameters is not None
    named = {p["name"]: p for p in server.parameters["parameter"]}
    assert named["inputFormat"]["valueCode"] == "application/fhir+ndjson"
    assert named["inputSource"]["valueUri"].startswith("http://127.0.0.1:")
    # every file fetched whole, byte for byte; types in dependency order
    for kind, path in files:
        assert server.fetched[kind] == path.read_bytes()
    kinds = [kind for kind, _ in files]
    assert kinds.index("Organization") < kinds.index("ResearchStudy") < kinds.index("Provenance")
    assert result.resources == sum(len(p.read_text().splitlines()) for _, p in files)


def test_the_file_server_serves_only_the_listed_files(ndjson_dir: Path) -> None:
    (ndjson_dir / "push.journal").write_text("secret-ish")
    listed = [ndjson_dir / "Group.ndjson"]
    with serve_files(listed) as (base, _):
        assert httpx.get(f"{base}/Group.ndjson").status_code == 200
        assert httpx.get(f"{base}/push.journal").status_code == 404
        assert httpx.get(f"{base}/../bulk/push.journal").status_code == 404
    with pytest.raises(httpx.ConnectError):  # stopped when the block ends
        httpx.get(f"{base}/Group.ndjson")


def test_a_refused_kickoff_and_a_failed_job_are_told_apart(ndjson_dir: Path) -> None:
    files = ordered_files(resource_files([ndjson_dir]) or [])
    with client(FakeImportServer(kickoff_status=501)) as fhir, pytest.raises(ImportRefused):
        import_ndjson(files, fhir, poll_interval=0, sleep=lambda _: None)
    with client(FakeImportServer(job_status=500)) as fhir, pytest.raises(ImportFailed):
        import_ndjson(files, fhir, poll_interval=0, sleep=lambda _: None)


def test_cli_push_uses_import_when_offered(
    ndjson_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fhirconv.cli.server_options as cli_server_options
    import fhirconv.publish.importer as importer

    server = FakeImportServer()
    real = FhirClient
    monkeypatch.setattr(
        cli_server_options,
        "FhirClient",
        lambda url, **kw: real(
            url,
            transport=httpx.MockTransport(server),
            **{k: v for k, v in kw.items() if k != "verify"},
        ),
    )
    monkeypatch.setattr(importer.time, "sleep", lambda _: None)
    result = runner.invoke(app, ["push", str(ndjson_dir), "--server", BASE])
    assert result.exit_code == ExitCode.OK, result.output
    assert "serving the files to it" in result.stderr
    assert "through $import" in result.stdout and server.fetched
    # --no-import keeps to batched transactions (this fake then refuses them: not found)
    again = runner.invoke(app, ["push", str(ndjson_dir), "--server", BASE, "--no-import"])
    assert "(--no-import)" in again.stderr and again.exit_code == ExitCode.RECORDS_FAILED
