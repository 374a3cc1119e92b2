"""Trial → Organization resources: lead sponsor, collaborators, the registering organization,
investigators' affiliations and the institutions that run the sites.

Organizations are shared between studies, so their content depends only on their name (the key):
study-specific facts about them (sponsor role, agency class) live on the ResearchStudy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhirconv.mapping import ids, systems
from fhirconv.mapping.context import MappingContext

Json = dict[str, Any]


def organization_names(ctx: MappingContext) -> Iterator[str]:
    """Every organization the trial names, in a stable order (duplicates included)."""
    trial = ctx.trial
    if trial.lead_sponsor:
        yield trial.lead_sponsor.name
    for collaborator in trial.collaborators:
        yield collaborator.name
    if trial.organization:
        yield trial.organization.name
    party = trial.responsible_party
    if party and party.investigator_affiliation:
        yield party.investigator_affiliation
    for official in trial.officials:
        if official.affiliation:
            yield official.affiliation
    for site in trial.sites:
        if site.facility:
            yield site.facility


def organization_reference(name: str) -> dict[str, str]:
    return ids.reference("Organization", ids.organization_id(name), name)


def to_organization(name: str) -> Json:
    return {
        "resourceType": "Organization",
        "id": ids.organization_id(name),
        "identifier": [{"system": systems.ORGANIZATION_KEY, "value": ids.organization_key(name)}],
        "active": True,
        "name": name,
    }


def to_organizations(ctx: MappingContext) -> list[Json]:
    seen: dict[str, Json] = {}
    for name in organization_names(ctx):
        resource = to_organization(name)
        seen.setdefault(resource["id"], resource)
    return list(seen.values())
