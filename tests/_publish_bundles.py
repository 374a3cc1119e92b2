"""A tiny generator of study transaction Bundles following the converter's conventions.

Every entry: ``fullUrl`` ``urn:uuid:…``, ``request`` ``PUT <Type>/<deterministic id>``; references
are ``Type/id``. Ids derive from identifiers (``NCT…``, ``NCT…-eligibility``, ``org-<hash>``,
``loc-<hash>``) so two studies sharing a sponsor share one Organization.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_NS = uuid.UUID("8b7e3d2a-5c1f-4e0a-9d6b-2f4a1c3e5b70")


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def org_id(name: str) -> str:
    return f"org-{_hash(name)}"


def loc_id(name: str) -> str:
    return f"loc-{_hash(name)}"


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    ref = f"{resource['resourceType']}/{resource['id']}"
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid5(_NS, ref)}",
        "resource": resource,
        "request": {"method": "PUT", "url": ref},
    }


def study_bundle(
    nct: str,
    *,
    title: str | None = None,
    sponsor: str = "Acme Pharma",
    sites: Sequence[str] = ("Springfield General Hospital",),
    status: str = "active",
) -> dict[str, Any]:
    """A transaction Bundle for one study: Organization, Locations, Group, ResearchStudy."""
    org = {
        "resourceType": "Organization",
        "id": org_id(sponsor),
        "identifier": [{"system": "urn:fhirconv:sponsor", "value": org_id(sponsor)}],
        "name": sponsor,
    }
    locations = [{"resourceType": "Location", "id": loc_id(site), "name": site} for site in sites]
    group = {
        "resourceType": "Group",
        "id": f"{nct}-eligibility",
        "type": "person",
        "actual": False,
        "characteristic": [
            {
                "code": {"text": "age"},
                "valueRange": {"low": {"value": 18, "unit": "a"}},
                "exclude": False,
            }
        ],
    }
    study = {
        "resourceType": "ResearchStudy",
        "id": nct,
        "identifier": [{"system": "https://clinicaltrials.gov", "value": nct}],
        "title": title or f"Study {nct}",
        "status": status,
        "sponsor": {"reference": f"Organization/{org['id']}"},
        "enrollment": [{"reference": f"Group/{group['id']}"}],
        "site": [{"reference": f"Location/{loc['id']}"} for loc in locations],
    }
    resources: list[dict[str, Any]] = [org, *locations, group, study]
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(r) for r in resources],
    }


def with_plain_post(bundle: dict[str, Any]) -> dict[str, Any]:
    """The bundle plus a POST without ifNoneExist (not idempotent)."""
    extra = {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": {"resourceType": "Basic", "code": {"text": "note"}},
        "request": {"method": "POST", "url": "Basic"},
    }
    return {**bundle, "entry": [*bundle["entry"], extra]}


def write_bundle(directory: Path, bundle: dict[str, Any], name: str | None = None) -> Path:
    study = next(
        e["resource"]["id"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "ResearchStudy"
    )
    path = directory / (name or f"{study}.json")
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


def nct(n: int) -> str:
    return f"NCT{n:08d}"
