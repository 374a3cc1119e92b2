"""Canonical URLs: code systems, identifier systems and extensions, each in one place.

Project extensions and code systems live under `https://fhirconv.dev/fhir/`; they are used only
where HL7 has no element, code system or R5 cross-version extension (see README "Extensions").
"""

from __future__ import annotations

from fhirconv.tables import load_json

# HL7 Terminology NamingSystem "ClinicalTrials-Gov" (http://terminology.hl7.org/NamingSystem/ClinicalTrials-Gov):
# its preferred uniqueId of type uri is the system for NCT numbers.
NCT = "https://clinicaltrials.gov"
MESH = "http://terminology.hl7.org/CodeSystem/MSH"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ISO3166 = "urn:iso:std:iso:3166"
PUBMED = "https://pubmed.ncbi.nlm.nih.gov"
ADMINISTRATIVE_GENDER = "http://hl7.org/fhir/administrative-gender"
RESEARCH_STUDY_STATUS = "http://hl7.org/fhir/research-study-status"
RESEARCH_STUDY_PHASE = "http://terminology.hl7.org/CodeSystem/research-study-phase"
RESEARCH_STUDY_PURPOSE = "http://terminology.hl7.org/CodeSystem/research-study-prim-purp-type"
RESEARCH_STUDY_OBJECTIVE_TYPE = (
    "http://terminology.hl7.org/CodeSystem/research-study-objective-type"
)
ARM_TYPE = "http://hl7.org/fhir/research-study-arm-type"  # R5
PARTY_ROLE = "http://hl7.org/fhir/research-study-party-role"  # R5
TITLE_TYPE = "http://hl7.org/fhir/title-type"  # R5
PLAN_DEFINITION_TYPE = "http://terminology.hl7.org/CodeSystem/plan-definition-type"
CONTACT_POINT_SYSTEM = "http://hl7.org/fhir/contact-point-system"

XVER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-"
PROJECT = "https://fhirconv.dev/fhir/"
PROJECT_EXTENSION = PROJECT + "StructureDefinition/"
PROJECT_CODES = PROJECT + "CodeSystem/"
# Keys that make shared resources (organizations, people, places) one resource across studies.
ORGANIZATION_KEY = PROJECT + "NamingSystem/organization-name"
PRACTITIONER_KEY = PROJECT + "NamingSystem/practitioner-key"
LOCATION_KEY = PROJECT + "NamingSystem/location-key"
STUDY_PART_KEY = PROJECT + "NamingSystem/study-part"


def xver(path: str) -> str:
    """URL of HL7's R5→R4 cross-version extension for R5 element `path`."""
    return XVER + path


def extension(name: str) -> str:
    return PROJECT_EXTENSION + name


def codes(name: str) -> str:
    return PROJECT_CODES + name


def ctgov_enum(enum: str) -> str:
    base: str = load_json("ctgov-enums.json")["base"]
    return base + enum
