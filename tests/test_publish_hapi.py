"""The publish layer against a real HAPI FHIR server (``servers/hapi``).

Uses the session fixture ``fhir_server_url`` (``tests/fhir_server.py``, via conftest).
Every test uses its own random NCT ids and sponsor names, so a shared server is fine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.publish import FhirClient, push_bundles
from tests._publish_bundles import org_id, study_bundle, write_bundle

pytestmark = pytest.mark.hapi


def _nct() -> str:
    return f"NCT9{uuid.uuid4().int % 10**7:07d}"


@pytest.fixture
def client(fhir_server_url: str) -> Iterator[FhirClient]:
    with FhirClient(fhir_server_url) as fhir:
        yield fhir


def _refs(bundle: dict[str, Any]) -> list[str]:
    return [e["request"]["url"] for e in bundle["entry"]]


def test_push_twice_second_time_all_unchanged(client: FhirClient, tmp_path: Path) -> None:
    bundle = study_bundle(
        _nct(),
        sponsor=f"Sponsor {uuid.uuid4()}",
        sites=[f"Site {uuid.uuid4()}", f"Site {uuid.uuid4()}"],
    )
    write_bundle(tmp_path, bundle)

    first = push_bundles([tmp_path], client)
    [study] = first.studies
    assert study.ok, study.line()
    assert sorted(study.created) == sorted(_refs(bundle))
    assert study.updated == [] and study.unchanged == []

    second = push_bundles([tmp_path], client)
    [again] = second.studies
    assert again.ok, again.line()
    assert again.created == [] and again.updated == []
    assert sorted(again.unchanged) == sorted(_refs(bundle))  # same ids, nothing new

    result = client.post_transaction(bundle)  # versions stay at 1: nothing was rewritten
    assert {e.version for e in result.entries} == {"1"}
    assert {e.how for e in result.entries} == {"storage-code"}


def test_changed_field_is_updated_under_the_same_id(client: FhirClient) -> None:
    nct = _nct()
    bundle = study_bundle(nct, sponsor=f"Sponsor {uuid.uuid4()}", title="Before")
    client.post_transaction(bundle)

    changed = study_bundle(nct, sponsor=bundle["entry"][0]["resource"]["name"], title="After")
    result = client.post_transaction(changed)
    kinds = {e.resource_ref: e.kind for e in result.entries}
    assert kinds.pop(f"ResearchStudy/{nct}") == "updated"
    assert set(kinds.values()) == {"unchanged"}
    study = next(e for e in result.entries if e.ref == f"ResearchStudy/{nct}")
    assert study.version == "2" and study.location is not None
    assert study.location.startswith(f"ResearchStudy/{nct}/_history/")

    stored = client.get_json(f"ResearchStudy/{nct}")
    assert stored["title"] == "After" and stored["meta"]["versionId"] == "2"


def test_studies_sharing_a_sponsor_share_one_organization(
    client: FhirClient, tmp_path: Path
) -> None:
    sponsor = f"Shared Sponsor {uuid.uuid4()}"
    site = f"Shared Site {uuid.uuid4()}"
    studies = [_nct() for _ in range(6)]
    for nct in studies:
        write_bundle(tmp_path, study_bundle(nct, sponsor=sponsor, sites=[site]))

    # Six in flight at once all create the same new Organization and Location: HAPI rejects
    # the losers of that race with 409, which the client retries.
    summary = push_bundles([tmp_path], client, concurrency=6)
    assert summary.exit_code == 0, "\n".join(s.line() for s in summary.studies)
    assert sum(s.created.count(f"Organization/{org_id(sponsor)}") for s in summary.studies) == 1

    found = client.get_json(
        "Organization", {"identifier": f"urn:fhirconv:sponsor|{org_id(sponsor)}"}
    )
    assert found["resourceType"] == "Bundle"
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [org_id(sponsor)]
    by_name = client.get_json("Organization", {"name:exact": sponsor})
    assert len(by_name.get("entry", [])) == 1

    for nct in studies:
        stored = client.get_json(f"ResearchStudy/{nct}")
        assert stored["sponsor"]["reference"] == f"Organization/{org_id(sponsor)}"


def test_refused_bundle_names_study_and_entry(client: FhirClient, tmp_path: Path) -> None:
    nct = _nct()
    bundle = study_bundle(nct, sponsor=f"Sponsor {uuid.uuid4()}")
    study_entry = bundle["entry"][-1]
    study_entry["resource"]["sponsor"] = {"reference": "Organization/does-not-exist"}
    write_bundle(tmp_path, bundle)
    write_bundle(tmp_path, study_bundle(_nct(), sponsor=f"Sponsor {uuid.uuid4()}"))

    summary = push_bundles([tmp_path], client)
    failed = [s for s in summary.studies if not s.ok]
    assert len(failed) == 1 and len(summary.succeeded) == 1
    line = failed[0].line()
    assert line.startswith(f"{nct} FAILED: ")
    assert "Organization/does-not-exist" in line and "not found" in line
    index = len(bundle["entry"]) - 1
    assert f"(entry {index} ResearchStudy/{nct})" in line
    assert failed[0].issues[0].server_code is not None


def test_cli_push_against_hapi(fhir_server_url: str, tmp_path: Path) -> None:
    nct = _nct()
    bundle = study_bundle(nct, sponsor=f"Sponsor {uuid.uuid4()}", sites=[f"Site {uuid.uuid4()}"])
    n = len(bundle["entry"])
    (tmp_path / "studies.ndjson").write_text(json.dumps(bundle) + "\n")
    runner = CliRunner()
    # Typer runs a lone command without its name; with several, the name comes first.
    args = [str(tmp_path), "--server", fhir_server_url]
    if hasattr(get_command(app), "commands"):
        args.insert(0, "push")
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert f"{nct} created {n}, updated 0, unchanged 0" in first.stdout
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert f"{nct} created 0, updated 0, unchanged {n}" in second.stdout
