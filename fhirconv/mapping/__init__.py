"""Mappers: pure functions from a `Trial` to FHIR R4 resources (as JSON-ready dicts).

One module per resource type; `map_trial` runs them all and returns the study's resources in a
stable order, with the warnings the code tables raised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirconv.mapping.context import MappingContext, Warning_
from fhirconv.mapping.group import to_cohort_group, to_group
from fhirconv.mapping.location import to_locations
from fhirconv.mapping.organization import to_organizations
from fhirconv.mapping.plan_definition import to_plan_definition
from fhirconv.mapping.practitioner import to_practitioners_and_roles
from fhirconv.mapping.research_study import to_research_study
from fhirconv.model import Trial

Json = dict[str, Any]


@dataclass
class MappedStudy:
    """A study's resources, ResearchStudy first, and what the mapping had to report."""

    nct_id: str
    resources: list[Json]
    warnings: list[Warning_] = field(default_factory=list)


def map_trial(trial: Trial) -> MappedStudy:
    ctx = MappingContext(trial)
    plan = to_plan_definition(ctx)
    group = to_group(ctx)
    cohort = to_cohort_group(ctx, group)
    resources = [
        to_research_study(ctx),
        group,
        *([cohort] if cohort else []),
        *([plan] if plan else []),
        *to_organizations(ctx),
        *to_locations(ctx),
        *to_practitioners_and_roles(ctx),
    ]
    return MappedStudy(trial.nct_id, resources, ctx.warnings)
