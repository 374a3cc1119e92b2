"""Trial → ResearchStudy, the hub every other resource of the study hangs from.

R4 elements first; facts R4 has no element for go in HL7's R5→R4 cross-version extensions
(`http://hl7.org/fhir/5.0/StructureDefinition/extension-ResearchStudy.…`), and in a documented
fhirconv extension only where R5 has no element either (see README, "Extensions").
"""

from __future__ import annotations

from typing import Any

from fhirconv.mapping import countries, ids, systems
from fhirconv.mapping.context import MappingContext
from fhirconv.mapping.group import group_reference
from fhirconv.mapping.location import location_reference
from fhirconv.mapping.organization import organization_reference
from fhirconv.mapping.plan_definition import arm_type_concept, plan_definition_reference
from fhirconv.mapping.practitioner import (
    Person,
    is_person_name,
    people,
    practitioner_reference,
    role_concept,
    role_reference,
    telecom,
)
from fhirconv.model import (
    AvailableIpd,
    Code,
    MeshTerm,
    Organization,
    PartialDate,
    Retraction,
    Trial,
)

Json = dict[str, Any]

SITE_STATUS = systems.extension("site-recruitment-status")
OVERSIGHT = systems.extension("oversight")
IPD_SHARING = systems.extension("ipd-sharing")
EXPANDED_ACCESS = systems.extension("expanded-access")
REMOVED_COUNTRY = systems.extension("removed-country")
DELAYED_POSTING = systems.extension("delayed-posting")
RESULTS_WAIVED = systems.extension("results-waived")
RETRACTION = systems.extension("retraction")
AVAILABLE_IPD = systems.extension("available-ipd")
AVAILABLE_IPD_LABEL = "Available IPD/information"
STUDY_DETAIL = systems.extension("design-detail")
IDENTIFIER_LINK = systems.extension("identifier-link")
MILESTONES = systems.codes("ctgov-milestone")


def research_study_id(nct_id: str) -> str:
    return nct_id


def _sub(url: str, value_key: str, value: Any) -> Json:
    return {"url": url, value_key: value}


def _complex(url: str, parts: list[Json]) -> Json:
    return {"url": url, "extension": parts}


def _nonempty(parts: list[Json | None]) -> list[Json]:
    return [p for p in parts if p]


def _present(url: str, value_key: str, value: Any) -> Json | None:
    """A sub-extension, or None when the source had no value (False is a value; None and "" not)."""
    return None if value is None or value == "" else _sub(url, value_key, value)


def _identifier_link(link: str | None) -> list[Json]:
    """The web page of an identifier (NIH RePORTER, a registry entry): R4 Identifier has no
    element for it, so a fhirconv extension (valueUrl; valueString when it is not a URL)."""
    if not link:
        return []
    if any(c.isspace() for c in link):
        return [{"url": IDENTIFIER_LINK, "valueString": link}]
    return [{"url": IDENTIFIER_LINK, "valueUrl": link}]


def identifiers(ctx: MappingContext) -> list[Json]:
    trial = ctx.trial
    result: list[Json] = [{"use": "official", "system": systems.NCT, "value": trial.nct_id}]
    for alias in trial.nct_id_aliases:
        result.append({"use": "old", "system": systems.NCT, "value": alias})
    if trial.org_study_id:
        org_type: Json = {"text": "Organization's unique protocol ID"}
        if trial.org_study_id_type:
            id_type = Code(
                code=trial.org_study_id_type,
                field="protocolSection.identificationModule.orgStudyIdInfo.type",
            )
            org_type["coding"] = [ctx.ctgov_coding("SecondaryIdType", id_type)]
        org_id: Json = {"use": "secondary", "type": org_type, "value": trial.org_study_id}
        if link := _identifier_link(trial.org_study_id_link):
            org_id = {"extension": link, **org_id}
        if trial.organization:
            org_id["assigner"] = organization_reference(trial.organization.name)
        result.append(org_id)
    for secondary in trial.secondary_ids:
        entry: Json = {"use": "secondary", "value": secondary.id}
        if link := _identifier_link(secondary.link):
            entry = {"extension": link, **entry}
        if secondary.type:
            entry["type"] = ctx.ctgov_concept("SecondaryIdType", secondary.type)
        if secondary.domain:
            entry["assigner"] = {"display": secondary.domain}
        result.append(entry)
    return result


def status(ctx: MappingContext) -> str:
    trial = ctx.trial
    code = trial.overall_status
    if code is None:
        ctx.warn("overallStatus", "record has no overall status; status set to the table fallback")
        fallback: str = ctx.lookup_fallback("overall-status.json")
        return fallback
    if code.code == "UNKNOWN":
        if trial.last_known_status:
            target = ctx.lookup("overall-status.json", trial.last_known_status)
            if target:
                return str(target["code"])
        return ctx.lookup_fallback("overall-status.json")
    target = ctx.lookup("overall-status.json", code)
    return str(target["code"]) if target else ctx.lookup_fallback("overall-status.json")


def phase(ctx: MappingContext) -> Json | None:
    phases = ctx.trial.design.phases
    if not phases:
        return None
    combined = Code(code="+".join(p.code for p in phases), field=phases[0].field)
    target = ctx.lookup("phase.json", combined)
    codings = []
    if target:
        codings.append(
            {
                "system": systems.RESEARCH_STUDY_PHASE,
                "code": target["code"],
                "display": target["display"],
            }
        )
    codings += [ctx.ctgov_coding("Phase", p) for p in phases]
    return {"coding": codings, "text": target["display"] if target else combined.code}


def primary_purpose(ctx: MappingContext) -> Json | None:
    purpose = ctx.trial.design.primary_purpose
    if purpose is None:
        return None
    concept = ctx.ctgov_concept("PrimaryPurpose", purpose)
    assert concept is not None
    target = ctx.lookup("primary-purpose.json", purpose)
    if target:
        concept["coding"].insert(
            0,
            {
                "system": systems.RESEARCH_STUDY_PURPOSE,
                "code": target["code"],
                "display": target["display"],
            },
        )
    return concept


def categories(ctx: MappingContext) -> list[Json]:
    design = ctx.trial.design
    coded: list[tuple[str, Code | None]] = [
        ("StudyType", design.study_type),
        ("DesignAllocation", design.allocation),
        ("InterventionalAssignment", design.intervention_model),
        ("DesignMasking", design.masking),
        *(("WhoMasked", who) for who in design.who_masked),
        ("ObservationalModel", design.observational_model),
        ("DesignTimePerspective", design.time_perspective),
        *(("ExpandedAccessType", kind) for kind in design.expanded_access_types),
    ]
    return [c for enum, code in coded if (c := ctx.ctgov_concept(enum, code))]


def _coded(text: str, terms: list[MeshTerm]) -> Json:
    """A concept with `text` and a MeSH coding per term that has an id (legacy XML names MeSH
    terms without ids: those add nothing beyond the text)."""
    concept: Json = {"text": text}
    codings = [{"system": systems.MESH, "code": t.id, "display": t.term} for t in terms if t.id]
    if codings:
        concept = {"coding": codings, "text": text}
    return concept


def conditions(trial: Trial) -> list[Json]:
    """Each condition as written, with the MeSH terms ClinicalTrials.gov derived for it; MeSH terms
    that match no written condition follow as coded conditions of their own."""
    unused = list(trial.condition_meshes)
    result = []
    for condition in trial.conditions:
        key = ids.normalize_key(condition)
        matched = [m for m in unused if ids.normalize_key(m.term) == key]
        for mesh in matched:
            unused.remove(mesh)
        result.append(_coded(condition, matched))
    result += [_coded(m.term, [m]) for m in unused]
    return result


def focus(trial: Trial) -> list[Json]:
    """What the study tests: its interventions, with MeSH codings where a term matches."""
    unused = list(trial.intervention_meshes)
    result = []
    for intervention in trial.interventions:
        names = {ids.normalize_key(n) for n in (intervention.name, *intervention.other_names)}
        matched = [m for m in unused if ids.normalize_key(m.term) in names]
        for mesh in matched:
            unused.remove(mesh)
        result.append(_coded(intervention.name, matched))
    result += [_coded(m.term, [m]) for m in unused]
    return result


def contacts(trial: Trial) -> list[Json]:
    result = []
    for contact in trial.central_contacts:
        detail: Json = {}
        if contact.name:
            detail["name"] = contact.name
        points = telecom(contact.phone, contact.phone_ext, contact.email)
        if points:
            detail["telecom"] = points
        if detail:
            result.append(detail)
    return result


def related_artifacts(ctx: MappingContext) -> list[Json]:
    trial = ctx.trial
    result: list[Json] = [
        {"type": "documentation", "label": "Registry record", "url": trial.registry_url}
    ]
    if trial.has_results:
        result.append(
            {
                "type": "documentation",
                "label": "Results",
                "display": "Results posted on ClinicalTrials.gov (not converted)",
                "url": f"{trial.registry_url}?tab=results",
            }
        )
    for reference in trial.references:
        target = ctx.lookup("reference-type.json", reference.type) if reference.type else None
        artifact: Json = {"type": target["code"] if target else "citation"}
        if reference.type:
            artifact["label"] = reference.type.code
        if reference.citation:
            artifact["citation"] = reference.citation
        if reference.pmid:
            artifact["url"] = f"{systems.PUBMED}/{reference.pmid}/"
            artifact["display"] = f"PMID: {reference.pmid}"
        if reference.retractions:
            artifact = {"extension": retraction_extensions(reference.retractions), **artifact}
        result.append(artifact)
    for link in trial.see_also_links:
        entry: Json = {"type": "documentation", "url": link.url}
        if link.label:
            entry["display"] = link.label
        result.append(entry)
    result += [available_ipd_artifact(ipd) for ipd in trial.available_ipds]
    return result


def retraction_extensions(notices: tuple[Retraction, ...]) -> list[Json]:
    """A retracted publication's retraction notices, on its RelatedArtifact. R4's type codes have
    no "retracted-by" (R5's RelatedArtifactType does, but the R4 binding is required), and a
    notice is not the reference's `successor`: so `fc:retraction` (pmid, PubMed url, source)."""
    result = []
    for notice in notices:
        parts: list[Json] = []
        if notice.pmid:
            parts.append(_sub("pmid", "valueString", notice.pmid))
            parts.append(_sub("url", "valueUrl", f"{systems.PUBMED}/{notice.pmid}/"))
        if notice.source:
            parts.append(_sub("source", "valueString", notice.source))
        result.append(_complex(RETRACTION, parts))
    return result


def available_ipd_artifact(ipd: AvailableIpd) -> Json:
    """A shared data set or document (availIpds) as a documentation RelatedArtifact labelled
    "Available IPD/information": its type as display, its URL; its id and comment, which
    RelatedArtifact has no element for, in `fc:available-ipd`."""
    artifact: Json = {"type": "documentation", "label": AVAILABLE_IPD_LABEL}
    parts = _nonempty(
        [
            _present("id", "valueString", ipd.id),
            _present("comment", "valueString", ipd.comment),
        ]
    )
    if parts:
        artifact = {"extension": [_complex(AVAILABLE_IPD, parts)], **artifact}
    artifact["display"] = ipd.type or AVAILABLE_IPD_LABEL
    if ipd.url:
        artifact["url"] = ipd.url
    return artifact


def country_concepts(ctx: MappingContext, names: tuple[str, ...]) -> list[Json]:
    result = []
    for name in names:
        code = countries.iso_alpha2(name)
        concept: Json = {"text": name}
        if code:
            concept["coding"] = [{"system": systems.ISO3166, "code": code}]
        else:
            ctx.warn("locations.country", f"country {name!r} has no ISO 3166 code; kept as text")
        result.append(concept)
    return result


def _fhir_date(date: PartialDate) -> str:
    return date.value  # FHIR dateTime accepts YYYY and YYYY-MM: the precision is kept as written


def period(trial: Trial) -> Json | None:
    result: Json = {}
    if trial.start_date:
        result["start"] = _fhir_date(trial.start_date)
    if trial.completion_date:
        result["end"] = _fhir_date(trial.completion_date)
    return result or None


def principal_investigator(ctx: MappingContext) -> dict[str, str] | None:
    for person in people(ctx):
        if person.role and person.role.code == "PRINCIPAL_INVESTIGATOR" and not person.site:
            return practitioner_reference(person)
    return None


def sites(ctx: MappingContext) -> list[Json]:
    result: list[Json] = []
    seen: set[str] = set()
    for site in ctx.trial.sites:
        target = location_reference(site)
        if target["reference"] in seen:
            continue
        seen.add(target["reference"])
        ref: Json = {}
        if site.status:
            status_concept = ctx.ctgov_concept("RecruitmentStatus", site.status)
            ref["extension"] = [{"url": SITE_STATUS, "valueCodeableConcept": status_concept}]
        result.append({**ref, **target})
    return result


def arms(ctx: MappingContext) -> list[Json]:
    result = []
    for arm in ctx.trial.arms:
        entry: Json = {"name": arm.label}
        concept = arm_type_concept(ctx, arm)
        if concept:
            entry["type"] = concept
        if arm.description:
            entry["description"] = arm.description
        result.append(entry)
    return result


_OBJECTIVE_TYPE = {"primary": "primary", "secondary": "secondary", "other": "exploratory"}


def objectives(trial: Trial) -> list[Json]:
    return [
        {
            "name": outcome.measure,
            "type": {
                "coding": [
                    {
                        "system": systems.RESEARCH_STUDY_OBJECTIVE_TYPE,
                        "code": _OBJECTIVE_TYPE[outcome.kind],
                    }
                ]
            },
        }
        for outcome in trial.outcomes
    ]


# --- extensions ---------------------------------------------------------------------------------


def label_extensions(trial: Trial) -> list[Json]:
    url = systems.xver("ResearchStudy.label")
    labels = [
        ("official", "Official Title", trial.official_title),
        ("acronym", "Acronym", trial.acronym),
    ]
    return [
        _complex(
            url,
            [
                _sub(
                    "type",
                    "valueCodeableConcept",
                    {"coding": [{"system": systems.TITLE_TYPE, "code": code, "display": display}]},
                ),
                _sub("value", "valueString", value),
            ],
        )
        for code, display, value in labels
        if value
    ]


def outcome_extensions(trial: Trial) -> list[Json]:
    url = systems.xver("ResearchStudy.outcomeMeasure")
    result = []
    for outcome in trial.outcomes:
        description = "\n\n".join(
            p
            for p in (
                outcome.description,
                f"Time frame: {outcome.time_frame}" if outcome.time_frame else None,
            )
            if p
        )
        parts = [
            _sub("name", "valueString", outcome.measure),
            _sub(
                "type",
                "valueCodeableConcept",
                {
                    "coding": [
                        {
                            "system": systems.RESEARCH_STUDY_OBJECTIVE_TYPE,
                            "code": _OBJECTIVE_TYPE[outcome.kind],
                        }
                    ]
                },
            ),
        ]
        if description:
            parts.append(_sub("description", "valueMarkdown", description))
        result.append(_complex(url, parts))
    return result


_MILESTONES: list[tuple[str, str, str]] = [
    ("start_date", "study-start", "Study start"),
    ("primary_completion_date", "primary-completion", "Primary completion"),
    ("completion_date", "study-completion", "Study completion"),
    ("first_submitted", "first-submitted", "First submitted"),
    ("first_submitted_qc", "first-submitted-qc", "First submitted that met QC criteria"),
    ("first_posted", "first-posted", "First posted"),
    ("results_first_submitted", "results-first-submitted", "Results first submitted"),
    (
        "results_first_submitted_qc",
        "results-first-submitted-qc",
        "Results first submitted that met QC criteria",
    ),
    ("results_first_posted", "results-first-posted", "Results first posted"),
    (
        "disposition_first_submitted",
        "disposition-first-submitted",
        "Certification/extension first submitted",
    ),
    (
        "disposition_first_submitted_qc",
        "disposition-first-submitted-qc",
        "Certification/extension first submitted that met QC criteria",
    ),
    (
        "disposition_first_posted",
        "disposition-first-posted",
        "Certification/extension first posted",
    ),
    ("last_update_submitted", "last-update-submitted", "Last update submitted"),
    ("last_update_posted", "last-update-posted", "Last update posted"),
    ("status_verified", "status-verified", "Status verified"),
]


def progress_extensions(ctx: MappingContext) -> list[Json]:
    """R5 progressStatus: the exact CT.gov status, and every dated milestone with its
    actual/estimated flag, so no date or its certainty is lost."""
    trial = ctx.trial
    url = systems.xver("ResearchStudy.progressStatus")
    result = []
    for status_code in (trial.overall_status, trial.last_known_status):
        if status_code:
            state = ctx.ctgov_concept("Status", status_code)
            actual = status_code is trial.overall_status
            result.append(
                _complex(
                    url,
                    [
                        _sub("state", "valueCodeableConcept", state),
                        _sub("actual", "valueBoolean", actual),
                    ],
                )
            )
    for attribute, code, display in _MILESTONES:
        date: PartialDate | None = getattr(trial, attribute)
        if date is None:
            continue
        parts = [
            _sub(
                "state",
                "valueCodeableConcept",
                {"coding": [{"system": MILESTONES, "code": code, "display": display}]},
            )
        ]
        if date.estimated is not None:
            parts.append(_sub("actual", "valueBoolean", not date.estimated))
        parts.append(_sub("period", "valuePeriod", {"start": _fhir_date(date)}))
        result.append(_complex(url, parts))
    return result


def recruitment_extensions(trial: Trial) -> list[Json]:
    count = trial.design.enrollment_count
    if count is None:
        return []
    # R5 puts the numbers in the backbone ResearchStudy.recruitment; its cross-version extension is
    # complex, one sub-extension per element, so they keep the context R5 gives them.
    which = "actualNumber" if trial.design.enrollment_estimated is False else "targetNumber"
    return [
        _complex(
            systems.xver("ResearchStudy.recruitment"), [_sub(which, "valueUnsignedInt", count)]
        )
    ]


def _party(
    ctx: MappingContext,
    role: Code | str | None,
    name: str | None,
    party: dict[str, str] | None,
    classifier: Json | None = None,
    role_text: str | None = None,
) -> Json:
    """One R5 associatedParty; a role the code tables have no code for is written as text."""
    url = systems.xver("ResearchStudy.associatedParty")
    if isinstance(role, str):
        role = Code(code=role, field="associatedParty.role")
    parts: list[Json] = []
    if name:
        parts.append(_sub("name", "valueString", name))
    concept = role_concept(ctx, role) if role else {"text": role_text} if role_text else None
    if concept:
        parts.append(_sub("role", "valueCodeableConcept", concept))
    if classifier:
        parts.append(_sub("classifier", "valueCodeableConcept", classifier))
    if party:
        parts.append(_sub("party", "valueReference", party))
    return _complex(url, parts)


def _org_party(ctx: MappingContext, role: str, org: Organization) -> Json:
    classifier = ctx.ctgov_concept("AgencyClass", org.org_class)
    return _party(ctx, role, org.name, organization_reference(org.name), classifier)


def _same_org(a: Organization, b: Organization) -> bool:
    a_class = a.org_class.code if a.org_class else None
    b_class = b.org_class.code if b.org_class else None
    return ids.normalize_key(a.name) == ids.normalize_key(b.name) and a_class == b_class


def registrant_extension(ctx: MappingContext) -> Json | None:
    """The organization that registered the study, with its agency class, when it is not already
    named (with the same class) as lead sponsor or collaborator."""
    trial = ctx.trial
    org = trial.organization
    if org is None:
        return None
    if any(o and _same_org(o, org) for o in (trial.lead_sponsor, *trial.collaborators)):
        return None
    return _party(
        ctx,
        None,
        org.name,
        organization_reference(org.name),
        ctx.ctgov_concept("AgencyClass", org.org_class),
        role_text="Registering organization",
    )


def responsible_party_extension(ctx: MappingContext) -> Json | None:
    """The responsible party; records from before 2007 name it only by `oldNameTitle` and
    `oldOrganization`, with no type."""
    trial = ctx.trial
    party = trial.responsible_party
    if party is None:
        return None
    name = party.investigator_name or party.old_name_title
    if not (party.type or name or party.old_organization):
        return None
    ref = None
    if party.investigator_name and is_person_name(party.investigator_name):
        ref = role_reference(
            Person(
                name=party.investigator_name,
                role=party.type,
                affiliation=party.investigator_affiliation,
            )
        )
    elif party.investigator_affiliation:
        # An "investigator" the registry names by an institution: no Practitioner is made for it.
        ref = organization_reference(party.investigator_affiliation)
    elif party.type and party.type.code == "SPONSOR" and trial.lead_sponsor:
        ref = organization_reference(trial.lead_sponsor.name)
    old_name = party.old_name_title if party.investigator_name else None
    details = (
        party.investigator_title,
        party.investigator_affiliation,
        old_name,
        party.old_organization,
    )
    detail = ", ".join(p for p in details if p)
    extension = _party(ctx, party.type, name, ref, role_text="Responsible party")
    if detail:
        classifier = _sub("classifier", "valueCodeableConcept", {"text": detail})
        extension["extension"].insert(1, classifier)
    return extension


def party_extensions(ctx: MappingContext) -> list[Json]:
    """R5 associatedParty: sponsor and collaborators (with their agency class), the registering
    organization, the responsible party, and every investigator and named contact with their
    role (central contacts that name an office rather than a person too, without a reference)."""
    trial = ctx.trial
    result = []
    if trial.lead_sponsor:
        result.append(_org_party(ctx, "LEAD_SPONSOR", trial.lead_sponsor))
    result += [_org_party(ctx, "COLLABORATOR", org) for org in trial.collaborators]
    registrant = registrant_extension(ctx)
    if registrant:
        result.append(registrant)
    responsible = responsible_party_extension(ctx)
    if responsible:
        result.append(responsible)
    for person in people(ctx):
        if person.site is None and person.role and person.role.code != party_type(trial):
            result.append(_party(ctx, person.role, person.name, role_reference(person)))
    for contact in trial.central_contacts:
        if contact.name and contact.role and not is_person_name(contact.name):
            result.append(_party(ctx, contact.role, contact.name, None))
    return result


def party_type(trial: Trial) -> str | None:
    party = trial.responsible_party
    return party.type.code if party and party.type else None


def project_extensions(ctx: MappingContext) -> list[Json]:
    trial = ctx.trial
    design = trial.design
    result: list[Json] = []
    if trial.brief_summary and trial.detailed_description:
        result.insert(
            0,
            {
                "url": systems.xver("ResearchStudy.descriptionSummary"),
                "valueMarkdown": trial.brief_summary,
            },
        )
    oversight = trial.oversight
    if oversight:
        flags = [
            ("hasDmc", oversight.has_dmc),
            ("isFdaRegulatedDrug", oversight.is_fda_regulated_drug),
            ("isFdaRegulatedDevice", oversight.is_fda_regulated_device),
            ("isUnapprovedDevice", oversight.is_unapproved_device),
            ("isUsExport", oversight.is_us_export),
            ("isPpsd", oversight.is_ppsd),
            ("fdaaa801Violation", oversight.fdaaa801_violation),
        ]
        parts = [_sub(name, "valueBoolean", value) for name, value in flags if value is not None]
        if parts:
            result.append(_complex(OVERSIGHT, parts))
    ipd = trial.ipd_sharing
    if ipd:
        parts = _nonempty(
            [
                _present(
                    "sharing", "valueCodeableConcept", ctx.ctgov_concept("IpdSharing", ipd.sharing)
                ),
                _present("description", "valueMarkdown", ipd.description),
                *(
                    _sub(
                        "infoType",
                        "valueCodeableConcept",
                        ctx.ctgov_concept("IpdSharingInfoType", t),
                    )
                    for t in ipd.info_types
                ),
                _present("timeFrame", "valueString", ipd.time_frame),
                _present("accessCriteria", "valueMarkdown", ipd.access_criteria),
                _present("url", "valueUri", ipd.url),
            ]
        )
        if parts:
            result.append(_complex(IPD_SHARING, parts))
    if (
        trial.has_expanded_access is not None
        or trial.expanded_access_nct_id
        or trial.expanded_access_status
    ):
        nct_id = trial.expanded_access_nct_id
        parts = _nonempty(
            [
                _present("hasExpandedAccess", "valueBoolean", trial.has_expanded_access),
                _present(
                    "nctId",
                    "valueIdentifier",
                    {"system": systems.NCT, "value": nct_id} if nct_id else None,
                ),
                _present(
                    "statusForNctId",
                    "valueCodeableConcept",
                    ctx.ctgov_concept("Status", trial.expanded_access_status),
                ),
            ]
        )
        result.append(_complex(EXPANDED_ACCESS, parts))
    details = _nonempty(
        [
            _present("patientRegistry", "valueBoolean", design.patient_registry),
            _present("targetDuration", "valueString", design.target_duration),
            _present(
                "interventionModelDescription",
                "valueMarkdown",
                design.intervention_model_description,
            ),
            _present("maskingDescription", "valueMarkdown", design.masking_description),
            _present(
                "bioSpecRetention",
                "valueCodeableConcept",
                ctx.ctgov_concept("BioSpecRetention", design.bio_spec_retention),
            ),
            _present("bioSpecDescription", "valueMarkdown", design.bio_spec_description),
        ]
    )
    if details:
        result.append(_complex(STUDY_DETAIL, details))
    result += [
        {"url": REMOVED_COUNTRY, "valueCodeableConcept": concept}
        for concept in country_concepts(ctx, trial.removed_countries)
    ]
    flags = [(DELAYED_POSTING, trial.delayed_posting), (RESULTS_WAIVED, trial.results_waived)]
    result += [{"url": url, "valueBoolean": flag} for url, flag in flags if flag is not None]
    return result


def to_research_study(ctx: MappingContext) -> Json:
    trial = ctx.trial
    extensions = [
        *label_extensions(trial),
        *recruitment_extensions(trial),
        *progress_extensions(ctx),
        *party_extensions(ctx),
        *outcome_extensions(trial),
        *project_extensions(ctx),
    ]
    study: Json = {"resourceType": "ResearchStudy", "id": research_study_id(trial.nct_id)}
    if extensions:
        study["extension"] = extensions
    study["identifier"] = identifiers(ctx)
    if trial.brief_title or trial.official_title:
        study["title"] = trial.brief_title or trial.official_title
    if trial.arms or trial.interventions:
        study["protocol"] = [plan_definition_reference(trial.nct_id)]
    study["status"] = status(ctx)
    optional: list[tuple[str, Any]] = [
        ("primaryPurposeType", primary_purpose(ctx)),
        ("phase", phase(ctx)),
        ("category", categories(ctx)),
        ("focus", focus(trial)),
        ("condition", conditions(trial)),
        ("contact", contacts(trial)),
        ("relatedArtifact", related_artifacts(ctx)),
        ("keyword", [{"text": k} for k in trial.keywords]),
        ("location", country_concepts(ctx, trial.countries)),
        ("description", trial.detailed_description or trial.brief_summary),
        ("enrollment", [group_reference(trial.nct_id)]),
        ("period", period(trial)),
        (
            "sponsor",
            organization_reference(trial.lead_sponsor.name) if trial.lead_sponsor else None,
        ),
        ("principalInvestigator", principal_investigator(ctx)),
        ("site", sites(ctx)),
        ("reasonStopped", {"text": trial.why_stopped} if trial.why_stopped else None),
        ("arm", arms(ctx)),
        ("objective", objectives(trial)),
    ]
    study.update((key, value) for key, value in optional if value)
    return study
