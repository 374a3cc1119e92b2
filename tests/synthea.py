"""Synthea transaction Bundles made loadable by id, for the server-matching tests and bench.

Synthea writes `POST Type` entries with `urn:uuid:` fullUrls: the server would pick the ids, and
a patient on the server could not be matched with the same patient read from the file. The
preprocessing step (documented in docs/matching.md, "Testing against a server"):

- every entry becomes `PUT Type/<prefix><uuid>` with that id in the resource (the fullUrl and the
  `urn:uuid:` references stay; the server rewrites references to the ids it stores);
- billing and care-plan resources the matcher never reads (Claim, ExplanationOfBenefit,
  DiagnosticReport, CarePlan, Goal, ImagingStudy) are left out unless a kept resource refers to
  them, which makes loading several times faster.

The same rewritten Bundle is then both the file the file-side matcher reads and what the server
holds, so the two see the same resources under the same ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Json = dict[str, Any]

UNREAD_TYPES = frozenset(
    {"Claim", "ExplanationOfBenefit", "DiagnosticReport", "CarePlan", "Goal", "ImagingStudy"}
)


def _references(value: object, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                found.add(item)
            else:
                _references(item, found)
    elif isinstance(value, list):
        for item in value:
            _references(item, found)


def loadable(bundle: Json, prefix: str = "") -> Json:
    """The Bundle as a transaction of PUTs with ids `<prefix><uuid>`, unread types left out."""
    entries = [e for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
    keep = [e for e in entries if e["resource"].get("resourceType") not in UNREAD_TYPES]
    dropped = [e for e in entries if e["resource"].get("resourceType") in UNREAD_TYPES]
    while True:  # keep what a kept resource refers to
        wanted: set[str] = set()
        for entry in keep:
            _references(entry["resource"], wanted)
        back = [e for e in dropped if e.get("fullUrl") in wanted]
        if not back:
            break
        keep += back
        dropped = [e for e in dropped if e.get("fullUrl") not in wanted]
    rewritten: list[Json] = []
    for entry in keep:
        resource = json.loads(json.dumps(entry["resource"]))
        uuid = str(entry.get("fullUrl", "")).removeprefix("urn:uuid:") or str(resource["id"])
        resource["id"] = f"{prefix}{uuid}"
        kind = resource["resourceType"]
        rewritten.append(
            {
                "fullUrl": entry.get("fullUrl"),
                "resource": resource,
                "request": {"method": "PUT", "url": f"{kind}/{resource['id']}"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": rewritten}


def write_loadable(source: Path, target_dir: Path, prefix: str = "") -> Path:
    target = target_dir / f"{prefix}{source.name}"
    bundle = loadable(json.loads(source.read_text(encoding="utf-8")), prefix)
    target.write_text(json.dumps(bundle), encoding="utf-8")
    return target
