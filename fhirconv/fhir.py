"""The one place that imports `fhir.resources`, so the FHIR release is chosen once.

fhir.resources 7+ defaults to R5; its `R4B` package has the same shapes as R4 for every resource
type fhirconv writes (ResearchStudy, Group, PlanDefinition, Organization, Practitioner,
PractitionerRole, Location, Provenance, Bundle), so R4B models validate our R4 content.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

FHIR_VERSION = "4.0.1"

__all__ = ["FHIR_VERSION", "ValidationError", "model_class", "parse_resource"]


@cache
def model_class(resource_type: str) -> type[BaseModel]:
    """The R4B model for `resource_type`; KeyError for a type FHIR does not define."""
    cls: type[BaseModel] = get_fhir_model_class(resource_type)
    return cls


def parse_resource(resource: dict[str, Any]) -> BaseModel:
    """Validate a resource's JSON against its R4B model (raises pydantic ValidationError)."""
    return model_class(str(resource.get("resourceType"))).model_validate(resource)
