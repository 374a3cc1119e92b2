"""Deterministic resource ids, keys and references.

Ids are derived from identifiers, never random, so the same input gives a byte-identical Bundle and
`PUT Type/id` is an idempotent upsert. Study-owned resources use the NCT id; shared resources
(organizations, practitioners, locations) use a hash of their identity key, so the same sponsor or
site named by many studies is one resource.

An identity key holds everything the shared resource's content is made of, written exactly (only
Unicode form and spacing are normalized): two studies that spell a hospital differently get two
resources rather than one resource each study rewrites in turn, so re-publishing never flip-flops.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# fullUrls are `<BUNDLE_BASE>/Type/id`: the relative reference `Type/id` found in a resource then
# resolves to its entry under the FHIR bundle resolution rules, and resources stay byte-identical
# in Bundle and NDJSON output. README "fullUrl and references" says why this over urn:uuid.
BUNDLE_BASE = "https://fhirconv.dev/fhir"


def identity_key(*parts: str | None) -> str:
    """Exact key of a shared resource: NFC form, runs of whitespace collapsed, parts joined by |."""
    return "|".join(" ".join(unicodedata.normalize("NFC", part or "").split()) for part in parts)


def normalize_key(*parts: str | None) -> str:
    """Case-, accent-, punctuation- and whitespace-insensitive key, for matching names to terms."""
    cleaned = []
    for part in parts:
        text = unicodedata.normalize("NFKD", part or "")
        text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
        text = re.sub(r"[^\w]+", " ", text).strip()
        cleaned.append(text)
    return "|".join(cleaned)


def hashed_id(prefix: str, key: str) -> str:
    return f"{prefix}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def full_url(resource_type: str, resource_id: str) -> str:
    return f"{BUNDLE_BASE}/{resource_type}/{resource_id}"


def reference(resource_type: str, resource_id: str, display: str | None = None) -> dict[str, str]:
    ref = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        ref["display"] = display
    return ref


def organization_key(name: str) -> str:
    return identity_key(name)


def organization_id(name: str) -> str:
    return hashed_id("org", organization_key(name))


def practitioner_key(name: str, affiliation: str | None) -> str:
    return identity_key(name, affiliation)


def location_key(*parts: str | None) -> str:
    """Facility, city, state, zip, country and position: all a Location's content comes from."""
    return identity_key(*parts)
