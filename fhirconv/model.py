"""The normalized trial model: the only contract between readers and mappers.

Every reader (ClinicalTrials.gov API v2 JSON, legacy XML, registry page text) produces a `Trial`;
every mapper reads only a `Trial`. Field names follow the registry's vocabulary, values are
normalized (codes in ClinicalTrials.gov API v2 spelling, dates as ISO partial dates) and the values
that can be wrong or unknown (codes, dates) carry the source field they came from, so that an error
can name the file, the record and the field.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DatePrecision = Literal["year", "month", "day"]
_PARTIAL_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")


class Part(BaseModel):
    """Base for every model part: frozen, no unknown attributes (typos fail loudly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceRef(Part):
    """Where a record came from: the file (or URL, or `-` for stdin) and the record within it."""

    file: str
    record: str | None = None  # NCT id when known, else the position in the file ("#3", "line 7")
    format: str  # "ctgov-json" | "ctgov-xml" | "registry-text"

    def describe(self, field: str | None = None) -> str:
        where = self.file
        if self.record:
            where += f", record {self.record}"
        if field:
            where += f", field {field}"
        return where


class Code(Part):
    """A coded value as the registry wrote it (API v2 enum spelling) and the field it came from."""

    code: str
    field: str


class PartialDate(Part):
    """A date at the precision the registry gave: never a day (or month) that was not written."""

    value: str  # YYYY, YYYY-MM or YYYY-MM-DD
    field: str
    estimated: bool | None = None  # True: ESTIMATED/ANTICIPATED, False: ACTUAL, None: not stated

    @field_validator("value")
    @classmethod
    def _valid(cls, value: str) -> str:
        if not _PARTIAL_DATE.match(value):
            raise ValueError(f"not a date of form YYYY, YYYY-MM or YYYY-MM-DD: {value!r}")
        if len(value) == 10:
            date.fromisoformat(value)  # rejects days a month does not have (2020-02-31)
        return value

    @property
    def precision(self) -> DatePrecision:
        return {4: "year", 7: "month"}.get(len(self.value), "day")  # type: ignore[return-value]


class Organization(Part):
    name: str
    org_class: Code | None = (
        None  # INDUSTRY, NIH, FED, OTHER_GOV, INDIV, NETWORK, AMBIG, OTHER, UNKNOWN
    )


class ContactPoint(Part):
    """A person or office to contact: central contacts, site contacts."""

    name: str | None = None
    role: Code | None = None  # CONTACT, PRINCIPAL_INVESTIGATOR, SUB_INVESTIGATOR, STUDY_CHAIR, …
    phone: str | None = None
    phone_ext: str | None = None
    email: str | None = None


class Investigator(Part):
    """An overall official (principal investigator, study chair, study director)."""

    name: str
    role: Code | None = None
    affiliation: str | None = None


class ResponsibleParty(Part):
    type: Code | None = None  # SPONSOR, PRINCIPAL_INVESTIGATOR, SPONSOR_INVESTIGATOR
    investigator_name: str | None = None
    investigator_title: str | None = None
    investigator_affiliation: str | None = None
    old_name_title: str | None = None
    old_organization: str | None = None


class GeoPoint(Part):
    lat: float
    lon: float


class Site(Part):
    facility: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    status: Code | None = None
    geo: GeoPoint | None = None
    contacts: tuple[ContactPoint, ...] = ()


class Arm(Part):
    label: str
    type: Code | None = (
        None  # EXPERIMENTAL, ACTIVE_COMPARATOR, PLACEBO_COMPARATOR, SHAM_COMPARATOR, …
    )
    description: str | None = None
    intervention_names: tuple[str, ...] = ()  # as "TYPE: Name" in API v2, plain names elsewhere


class Intervention(Part):
    name: str
    type: Code | None = None  # DRUG, DEVICE, BIOLOGICAL, PROCEDURE, RADIATION, BEHAVIORAL, …
    description: str | None = None
    other_names: tuple[str, ...] = ()
    arm_labels: tuple[str, ...] = ()


class Outcome(Part):
    kind: Literal["primary", "secondary", "other"]
    measure: str
    description: str | None = None
    time_frame: str | None = None


class Retraction(Part):
    """A retraction notice of a referenced publication (API v2 references.retractions)."""

    pmid: str | None = None  # the PubMed id of the retraction notice
    source: str | None = None  # the journal (or other source) of the notice, as written


class Reference(Part):
    citation: str | None = None
    pmid: str | None = None
    type: Code | None = None  # BACKGROUND, RESULT, DERIVED
    retractions: tuple[Retraction, ...] = ()


class AvailableIpd(Part):
    """A data set or document the study shares (API v2 referencesModule.availIpds): all free text
    as the registry gives it ("Individual Participant Data Set", "Study Protocol", …)."""

    id: str | None = None
    type: str | None = None
    url: str | None = None
    comment: str | None = None


class Link(Part):
    url: str
    label: str | None = None


class SecondaryId(Part):
    id: str
    type: Code | None = (
        None  # NIH, FDA, VA, CDC, AHRQ, SAMHSA, OTHER_GRANT, EUDRACT_NUMBER, CTIS, REGISTRY, OTHER
    )
    domain: str | None = None
    link: str | None = None


class AgeLimit(Part):
    """An age bound as the registry wrote it ("18 Years") split into number and unit word."""

    value: float
    unit: str  # Years, Months, Weeks, Days, Hours, Minutes
    field: str


class Eligibility(Part):
    criteria: str | None = None  # the whole criteria text, Markdown as the registry gave it
    sex: Code | None = None  # ALL, FEMALE, MALE
    gender_based: bool | None = None
    gender_description: str | None = None
    minimum_age: AgeLimit | None = None
    maximum_age: AgeLimit | None = None
    healthy_volunteers: bool | None = None
    std_ages: tuple[Code, ...] = ()  # CHILD, ADULT, OLDER_ADULT
    study_population: str | None = None
    sampling_method: Code | None = None


class MeshTerm(Part):
    id: str | None = None  # MeSH id (D…/C…); None when the source gives only the term (legacy XML)
    term: str


class IpdSharing(Part):
    sharing: Code | None = None  # YES, NO, UNDECIDED
    description: str | None = None
    info_types: tuple[Code, ...] = ()
    time_frame: str | None = None
    access_criteria: str | None = None
    url: str | None = None


class Oversight(Part):
    has_dmc: bool | None = None
    is_fda_regulated_drug: bool | None = None
    is_fda_regulated_device: bool | None = None
    is_unapproved_device: bool | None = None
    is_us_export: bool | None = None
    is_ppsd: bool | None = None
    fdaaa801_violation: bool | None = None


class Design(Part):
    study_type: Code | None = None  # INTERVENTIONAL, OBSERVATIONAL, EXPANDED_ACCESS
    phases: tuple[Code, ...] = ()  # EARLY_PHASE1, PHASE1, PHASE2, PHASE3, PHASE4, NA
    allocation: Code | None = None
    intervention_model: Code | None = None
    intervention_model_description: str | None = None
    primary_purpose: Code | None = None
    masking: Code | None = None
    masking_description: str | None = None
    who_masked: tuple[Code, ...] = ()
    observational_model: Code | None = None
    time_perspective: Code | None = None
    enrollment_count: int | None = None
    enrollment_estimated: bool | None = None  # True: ESTIMATED, False: ACTUAL
    patient_registry: bool | None = None
    target_duration: str | None = None
    bio_spec_retention: Code | None = None
    bio_spec_description: str | None = None
    expanded_access_types: tuple[Code, ...] = ()  # INDIVIDUAL, INTERMEDIATE, TREATMENT


class Trial(Part):
    """One registered study, normalized. `nct_id` is the only required fact."""

    source: SourceRef
    nct_id: str
    nct_id_aliases: tuple[str, ...] = ()
    org_study_id: str | None = None
    org_study_id_type: str | None = None
    org_study_id_link: str | None = None
    secondary_ids: tuple[SecondaryId, ...] = ()
    brief_title: str | None = None
    official_title: str | None = None
    acronym: str | None = None
    organization: Organization | None = None  # the registering organization

    overall_status: Code | None = None
    last_known_status: Code | None = None
    why_stopped: str | None = None
    status_verified: PartialDate | None = None
    start_date: PartialDate | None = None
    primary_completion_date: PartialDate | None = None
    completion_date: PartialDate | None = None
    first_submitted: PartialDate | None = None
    first_submitted_qc: PartialDate | None = None  # first submission that met QC criteria
    first_posted: PartialDate | None = None
    results_first_submitted: PartialDate | None = None
    results_first_submitted_qc: PartialDate | None = None
    results_first_posted: PartialDate | None = None
    disposition_first_submitted: PartialDate | None = None  # certification / extension request
    disposition_first_submitted_qc: PartialDate | None = None
    disposition_first_posted: PartialDate | None = None
    last_update_submitted: PartialDate | None = None
    last_update_posted: PartialDate | None = None
    delayed_posting: bool | None = None  # device study posted only after approval/clearance
    results_waived: bool | None = None
    has_expanded_access: bool | None = None
    expanded_access_nct_id: str | None = None
    expanded_access_status: Code | None = None  # status of that record (AVAILABLE, …)
    has_results: bool | None = None

    lead_sponsor: Organization | None = None
    collaborators: tuple[Organization, ...] = ()
    responsible_party: ResponsibleParty | None = None
    oversight: Oversight | None = None

    brief_summary: str | None = None
    detailed_description: str | None = None
    conditions: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    condition_meshes: tuple[MeshTerm, ...] = ()
    condition_ancestors: tuple[MeshTerm, ...] = ()
    intervention_meshes: tuple[MeshTerm, ...] = ()
    intervention_ancestors: tuple[MeshTerm, ...] = ()

    design: Design = Field(default_factory=Design)
    arms: tuple[Arm, ...] = ()
    interventions: tuple[Intervention, ...] = ()
    outcomes: tuple[Outcome, ...] = ()
    eligibility: Eligibility = Field(default_factory=Eligibility)

    officials: tuple[Investigator, ...] = ()
    central_contacts: tuple[ContactPoint, ...] = ()
    sites: tuple[Site, ...] = ()
    countries: tuple[str, ...] = ()  # country names as the registry gave them
    removed_countries: tuple[str, ...] = ()

    references: tuple[Reference, ...] = ()
    see_also_links: tuple[Link, ...] = ()
    available_ipds: tuple[AvailableIpd, ...] = ()
    ipd_sharing: IpdSharing | None = None

    # The registry's data release the record was taken from (API v2 miscInfoModule.versionHolder,
    # legacy XML download_date): a property of the download, kept for the Provenance.
    data_version: PartialDate | None = None

    # What the reader met and could not take as written (a field of the wrong shape, ignored or
    # coerced): one line each, naming file, record and field; reported with the mapping warnings.
    reader_warnings: tuple[str, ...] = ()

    @field_validator("nct_id")
    @classmethod
    def _nct_id(cls, value: str) -> str:
        if not re.fullmatch(r"NCT\d{8}", value):
            raise ValueError(f"not an NCT id (NCT followed by 8 digits): {value!r}")
        return value

    @property
    def registry_url(self) -> str:
        return f"https://clinicaltrials.gov/study/{self.nct_id}"
