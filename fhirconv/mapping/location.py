"""Trial → Location resources, one per site (shared between studies: keyed on facility and place).

The site's recruitment status belongs to the study, not the place, so it is written on the
ResearchStudy.site reference (see research_study.py).
"""

from __future__ import annotations

from typing import Any

from fhirconv.mapping import countries, ids, systems
from fhirconv.mapping.context import MappingContext
from fhirconv.mapping.organization import organization_reference
from fhirconv.model import Site

Json = dict[str, Any]


def location_identity(site: Site) -> str:
    position = f"{site.geo.lat:.6f},{site.geo.lon:.6f}" if site.geo else None
    return ids.location_key(site.facility, site.city, site.state, site.zip, site.country, position)


def location_id(site: Site) -> str:
    return ids.hashed_id("loc", location_identity(site))


def location_reference(site: Site) -> dict[str, str]:
    return ids.reference("Location", location_id(site), site_name(site))


def site_name(site: Site) -> str:
    place = ", ".join(p for p in (site.city, site.state, site.country) if p)
    return site.facility or place or "Unnamed site"


def to_location(ctx: MappingContext, site: Site) -> Json:
    address: Json = {}
    if site.city:
        address["city"] = site.city
    if site.state:
        address["state"] = site.state
    if site.zip:
        address["postalCode"] = site.zip
    if site.country:
        address["country"] = countries.iso_alpha2(site.country) or site.country
    resource: Json = {
        "resourceType": "Location",
        "id": location_id(site),
        "identifier": [
            {
                "system": systems.LOCATION_KEY,
                "value": location_identity(site),
            }
        ],
        "name": site_name(site),
        "mode": "instance",
    }
    if address:
        address["text"] = ", ".join(p for p in (site.city, site.state, site.zip, site.country) if p)
        resource["address"] = address
    if site.geo:
        resource["position"] = {"longitude": site.geo.lon, "latitude": site.geo.lat}
    if site.facility:
        resource["managingOrganization"] = organization_reference(site.facility)
    return resource


def to_locations(ctx: MappingContext) -> list[Json]:
    seen: dict[str, Json] = {}
    for site in ctx.trial.sites:
        resource = to_location(ctx, site)
        seen.setdefault(resource["id"], resource)
    return list(seen.values())
