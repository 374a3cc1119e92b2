"""Resources → one transaction Bundle per study, deterministically (NDJSON: see write.py).

Every entry is `PUT Type/id` with an id derived from identifiers: posting the same Bundle twice
creates nothing new, and a resource shared by many studies is written to one place. fullUrls are
`<ids.BUNDLE_BASE>/Type/id`, so the `Type/id` references resolve inside the Bundle; the order is
the mapper's stable order; no timestamps: the same input gives a byte-identical Bundle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fhirconv.jsonio import compact_json
from fhirconv.mapping import ids

Json = dict[str, Any]


def transaction_bundle(nct_id: str, resources: Iterable[Json]) -> Json:
    entries = [
        {
            "fullUrl": ids.full_url(resource["resourceType"], resource["id"]),
            "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
        }
        for resource in resources
    ]
    return {
        "resourceType": "Bundle",
        "id": f"{nct_id}-transaction",
        "type": "transaction",
        "entry": entries,
    }


def dumps(resource: Json, pretty: bool = False) -> str:
    if pretty:
        return json.dumps(resource, ensure_ascii=False, indent=2) + "\n"
    return compact_json(resource) + "\n"
