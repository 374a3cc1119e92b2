"""`fhirconv match`: evaluate patients' FHIR records against studies' eligibility Groups."""

from __future__ import annotations

# fhirconv.mapping must load before fhirconv.eligibility.characteristics: characteristics imports
# fhirconv.mapping.systems, whose package imports mapping.group, which imports characteristics.
import fhirconv.mapping  # noqa: F401
from fhirconv.match.evaluate import CriterionOutcome, MatchResult, Options, match
from fhirconv.match.records import PatientRecord, Study, load_patients, load_studies
from fhirconv.match.report import render_table

__all__ = [
    "CriterionOutcome",
    "MatchResult",
    "Options",
    "PatientRecord",
    "Study",
    "load_patients",
    "load_studies",
    "match",
    "render_table",
]
