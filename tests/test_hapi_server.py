"""The HAPI FHIR R4 test server itself (``servers/hapi``): the behaviour the other tests rely on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

# The first test may build the jar and start the server inside fixture set-up.
pytestmark = [pytest.mark.hapi, pytest.mark.timeout(1800)]

FHIR_JSON = "application/fhir+json"
ORG_SYSTEM = "https://example.org/org"
STUDY_SYSTEM = "https://example.org/study"


@pytest.fixture
def fhir(fhir_server_url: str) -> Iterator[httpx.Client]:
    headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON, "Cache-Control": "no-cache"}
    with httpx.Client(base_url=fhir_server_url, headers=headers, timeout=120) as client:
        yield client


def _errors(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return [i for i in outcome.get("issue", []) if i.get("severity") in {"error", "fatal"}]


def _study_bundle(org_value: str, study_value: str) -> dict[str, Any]:
    """Transaction: conditional-update Organization + ResearchStudy pointing at it by urn:uuid."""
    org_uuid = f"urn:uuid:{uuid.uuid4()}"
    study_uuid = f"urn:uuid:{uuid.uuid4()}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": org_uuid,
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [{"system": ORG_SYSTEM, "value": org_value}],
                    "name": f"Sponsor {org_value}",
                },
                "request": {
                    "method": "PUT",
                    "url": f"Organization?identifier={ORG_SYSTEM}|{org_value}",
                },
            },
            {
                "fullUrl": study_uuid,
                "resource": {
                    "resourceType": "ResearchStudy",
                    "identifier": [{"system": STUDY_SYSTEM, "value": study_value}],
                    "title": "A study",
                    "status": "active",
                    "sponsor": {"reference": org_uuid},
                },
                "request": {
                    "method": "PUT",
                    "url": f"ResearchStudy?identifier={STUDY_SYSTEM}|{study_value}",
                },
            },
        ],
    }


def _locations(response: httpx.Response) -> list[str]:
    """Server ids ('Type/id', without _history) from a transaction-response Bundle."""
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "transaction-response"
    return [e["response"]["location"].split("/_history")[0] for e in bundle["entry"]]


def test_metadata_is_r4_capability_statement(fhir: httpx.Client) -> None:
    response = fhir.get("/metadata")
    assert response.status_code == 200
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"


def test_conditional_update_transaction_is_idempotent(fhir: httpx.Client) -> None:
    org_value = f"X-{uuid.uuid4().hex[:12]}"
    study_value = f"S-{uuid.uuid4().hex[:12]}"

    first = _locations(fhir.post("", json=_study_bundle(org_value, study_value)))
    second = _locations(fhir.post("", json=_study_bundle(org_value, study_value)))
    assert first == second
    org_ref, study_ref = first
    assert org_ref.startswith("Organization/")
    assert study_ref.startswith("ResearchStudy/")

    # Exactly one Organization carries the identifier (read-after-write, no cached search).
    found = fhir.get("/Organization", params={"identifier": f"{ORG_SYSTEM}|{org_value}"}).json()
    assert found["resourceType"] == "Bundle"
    assert [e["resource"]["id"] for e in found.get("entry", [])] == [org_ref.split("/")[1]]

    # The urn:uuid reference was rewritten to the Organization's server id.
    study = fhir.get(f"/{study_ref}").json()
    assert study["sponsor"]["reference"] == org_ref


def test_transaction_conditional_create_if_none_exist(fhir: httpx.Client) -> None:
    value = f"Y-{uuid.uuid4().hex[:12]}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Organization",
                    "identifier": [{"system": ORG_SYSTEM, "value": value}],
                    "name": "Once only",
                },
                "request": {
                    "method": "POST",
                    "url": "Organization",
                    "ifNoneExist": f"identifier={ORG_SYSTEM}|{value}",
                },
            }
        ],
    }
    first = fhir.post("", json=bundle)
    second = fhir.post("", json=bundle)
    assert first.json()["entry"][0]["response"]["status"].startswith("201")
    assert second.json()["entry"][0]["response"]["status"].startswith("200")
    assert _locations(first) == _locations(second)


def test_validate_accepts_valid_research_study(fhir: httpx.Client) -> None:
    study = {
        "resourceType": "ResearchStudy",
        "identifier": [{"system": STUDY_SYSTEM, "value": "NCT00000000"}],
        "title": "A valid study",
        "status": "active",
    }
    response = fhir.post("/ResearchStudy/$validate", json=study)
    assert response.status_code == 200, response.text
    assert _errors(response.json()) == []


@pytest.mark.parametrize(
    "study",
    [
        pytest.param({"resourceType": "ResearchStudy", "status": "bogus"}, id="bogus-status"),
        pytest.param({"resourceType": "ResearchStudy", "title": "no status"}, id="no-status"),
    ],
)
def test_validate_rejects_invalid_research_study(fhir: httpx.Client, study: dict[str, Any]) -> None:
    response = fhir.post("/ResearchStudy/$validate", json=study)
    # HAPI answers 400 when the body does not parse (an unknown status code) and 200/412 with
    # error issues when it parses but breaks the R4 ResearchStudy definition.
    assert response.status_code in {200, 400, 412, 422}, response.text
    assert _errors(response.json()), response.text
