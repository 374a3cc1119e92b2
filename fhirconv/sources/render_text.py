"""`Trial` → registry page text: the inverse of `registry_text.read_text`, in the layout of
`registry_layout`.

Writes the layout of examples/NCT05765006.txt (same headings, blurbs and labels), plus headings and
labels in the same style for the facts the example page has no place for (Keywords, Primary
Outcomes, Oversight, …; see `registry_text`). Every paragraph is separated by a blank line, a value
that is not stated inside an item is written `-`, and a bare line that the reader could take for
something else (a contact name that looks like a phone number) is written with its label.

Its purpose is the round trip: for any `Trial`, `read_text(render_registry_text(trial))` gives the
same facts back (apart from `source` and the `field` of codes, dates and ages, which name the
layout's labels instead of the original source's fields).
"""

from __future__ import annotations

from collections.abc import Iterable

from fhirconv.model import (
    AgeLimit,
    Code,
    ContactPoint,
    MeshTerm,
    Organization,
    PartialDate,
    Site,
    Trial,
)
from fhirconv.sources import registry_layout as layout

Paragraphs = list[str]


def render_registry_text(trial: Trial) -> str:
    """The page text of one trial."""
    paragraphs: Paragraphs = []
    if trial.brief_title:
        paragraphs.append(_free(trial.brief_title))
    paragraphs.append(f"{layout.NCT_ID_PREFIX} {trial.nct_id}")
    if trial.last_update_posted:
        paragraphs.append(f"{layout.LAST_UPDATED_PREFIX} {_date(trial.last_update_posted)}")
    if trial.has_results is not None:
        state, note = (
            (layout.RESULTS_POSTED, layout.RESULTS_POSTED_NOTE)
            if trial.has_results
            else (layout.RESULTS_PENDING, layout.RESULTS_PENDING_NOTE)
        )
        paragraphs += [layout.STUDY_RESULTS, state, note]
    for heading, body, always in _sections(trial):
        if body or always:
            paragraphs += [heading, layout.BLURBS[heading][0], *body]
    paragraphs += [layout.MORE_RELATED_TRIALS, layout.BLURBS[layout.MORE_RELATED_TRIALS][0]]
    return "\n\n".join(paragraphs) + "\n"


def render_registry_texts(trials: Iterable[Trial]) -> str:
    """Several pages in one text, as `read_text` splits them."""
    return "\n".join(render_registry_text(trial) for trial in trials)


def _sections(trial: Trial) -> list[tuple[str, Paragraphs, bool]]:
    """(heading, body paragraphs, whether to write the heading even with an empty body).

    Sections whose mere presence is a fact (an empty Responsible Party is not no Responsible
    Party) are always written when the fact is there.
    """
    design, eligibility = trial.design, trial.eligibility
    party, oversight, ipd = trial.responsible_party, trial.oversight, trial.ipd_sharing
    return [
        (layout.BASIC_INFORMATION, _labels(_basic_values(trial)), False),
        (layout.BRIEF_SUMMARY, _optional(trial.brief_summary), False),
        (layout.DETAILED_DESCRIPTION, _optional(trial.detailed_description), False),
        (layout.CONDITIONS, _lines(trial.conditions), False),
        (layout.KEYWORDS, _lines(trial.keywords), False),
        (layout.MESH_TERMS, _meshes(trial), False),
        (
            layout.STUDY_DESIGN,
            _labels(
                [
                    ("Allocation Method", _code(design.allocation)),
                    ("Intervention Model", _code(design.intervention_model)),
                    ("Intervention Model Description", design.intervention_model_description),
                    ("Primary Study Purpose", _code(design.primary_purpose)),
                    ("Blinding Strategy", _code(design.masking)),
                    ("Masked Roles", _codes(design.who_masked)),
                    ("Masking Description", design.masking_description),
                    ("Observational Model", _code(design.observational_model)),
                    ("Time Perspective", _code(design.time_perspective)),
                    ("Patient Registry", _yes_no(design.patient_registry)),
                    ("Target Duration", design.target_duration),
                    ("Biospecimen Retention", _code(design.bio_spec_retention)),
                    ("Biospecimen Description", design.bio_spec_description),
                    ("Expanded Access Types", _codes(design.expanded_access_types)),
                ]
            ),
            False,
        ),
        (layout.STUDY_GROUPS, _arms(trial), False),
        (layout.INTERVENTIONS, _interventions(trial), False),
        *[
            (heading, _outcomes(trial, kind), False)
            for kind, heading in (
                ("primary", layout.PRIMARY_OUTCOMES),
                ("secondary", layout.SECONDARY_OUTCOMES),
                ("other", layout.OTHER_OUTCOMES),
            )
        ],
        (
            layout.ELIGIBILITY_CRITERIA,
            _optional(eligibility.criteria)
            + _labels(
                [
                    ("Minimum Eligible Age", _age(eligibility.minimum_age)),
                    ("Maximum Eligible Age", _age(eligibility.maximum_age)),
                    ("Eligible Sex", _code(eligibility.sex)),
                    ("Gender Based Eligibility", _yes_no(eligibility.gender_based)),
                    ("Gender Eligibility Description", eligibility.gender_description),
                    ("Accepts Healthy Volunteers", _yes_no(eligibility.healthy_volunteers)),
                    ("Age Groups", _codes(eligibility.std_ages)),
                    ("Study Population", eligibility.study_population),
                    ("Sampling Method", _code(eligibility.sampling_method)),
                ]
            ),
            False,
        ),
        (layout.SPONSORS, _sponsors(trial), False),
        (
            layout.REGISTERING_ORGANIZATION,
            _organization(trial.organization) if trial.organization else [],
            False,
        ),
        (
            layout.RESPONSIBLE_PARTY,
            []
            if party is None
            else _markers(layout.RESPONSIBILITY_ROLE, party.type)
            + _labels(
                [
                    ("Investigator Name", party.investigator_name),
                    ("Investigator Title", party.investigator_title),
                    ("Investigator Affiliation", party.investigator_affiliation),
                    ("Old Name/Title", party.old_name_title),
                    ("Old Organization", party.old_organization),
                ]
            ),
            party is not None,
        ),
        (
            layout.OVERSIGHT,
            []
            if oversight is None
            else _labels(
                [
                    ("Data Monitoring Committee", _yes_no(oversight.has_dmc)),
                    ("FDA-Regulated Drug", _yes_no(oversight.is_fda_regulated_drug)),
                    ("FDA-Regulated Device", _yes_no(oversight.is_fda_regulated_device)),
                    ("Unapproved Device", _yes_no(oversight.is_unapproved_device)),
                    ("Exported from the U.S.", _yes_no(oversight.is_us_export)),
                    ("Pediatric Postmarket Surveillance", _yes_no(oversight.is_ppsd)),
                    ("FDAAA 801 Violation", _yes_no(oversight.fdaaa801_violation)),
                ]
            ),
            oversight is not None,
        ),
        (layout.PRINCIPAL_INVESTIGATORS, _officials(trial), False),
        (layout.LOCATIONS, [p for site in trial.sites for p in _site(site)], False),
        (layout.COUNTRIES, _lines(trial.countries), False),
        (layout.REMOVED_COUNTRIES, _lines(trial.removed_countries), False),
        (layout.CENTRAL_CONTACTS, [p for c in trial.central_contacts for p in _contact(c)], False),
        (layout.FACILITY_CONTACTS, _facility_contacts(trial), False),
        (layout.REFERENCES, _references(trial), False),
        (
            layout.LINKS,
            [
                p
                for link in trial.see_also_links
                for p in [*_optional(link.label), f"{layout.LINK} {link.url}"]
            ],
            False,
        ),
        (layout.AVAILABLE_IPDS, _available_ipds(trial), False),
        (layout.OTHER_IDENTIFIERS, _identifiers(trial), False),
        (
            layout.DATA_SHARING,
            []
            if ipd is None
            else _labels(
                [
                    ("Plan to Share IPD", _code(ipd.sharing)),
                    ("IPD Sharing Description", ipd.description),
                    ("IPD Supporting Information", _codes(ipd.info_types)),
                    ("IPD Sharing Time Frame", ipd.time_frame),
                    ("IPD Access Criteria", ipd.access_criteria),
                    ("IPD Sharing URL", ipd.url),
                ]
            ),
            ipd is not None,
        ),
    ]


def _basic_values(trial: Trial) -> list[tuple[str, str | None]]:
    design = trial.design
    enrollment: str | None = None
    if design.enrollment_count is not None or design.enrollment_estimated is not None:
        count = "not stated" if design.enrollment_count is None else str(design.enrollment_count)
        enrollment = f"{count} {layout.ENROLLMENT_UNIT}" + _qualifier(design.enrollment_estimated)
    return [
        ("Official Title", trial.official_title),
        ("Acronym", trial.acronym),
        ("Recruitment Status", _code(trial.overall_status)),
        ("Last Known Status", _code(trial.last_known_status)),
        ("Why Stopped", trial.why_stopped),
        ("Clinical Phase", _codes(design.phases)),
        ("Total Enrollment", enrollment),
        ("Study Classification", _code(design.study_type)),
        ("Study Start Date", _date(trial.start_date)),
        ("Primary Completion Date", _date(trial.primary_completion_date)),
        ("Study Completion Date", _date(trial.completion_date)),
        ("Status Verified Date", _date(trial.status_verified)),
        ("First Submitted Date", _date(trial.first_submitted)),
        ("First Submitted QC Date", _date(trial.first_submitted_qc)),
        ("First Posted Date", _date(trial.first_posted)),
        ("Results First Submitted Date", _date(trial.results_first_submitted)),
        ("Results First Submitted QC Date", _date(trial.results_first_submitted_qc)),
        ("Results First Posted Date", _date(trial.results_first_posted)),
        ("Disposition First Submitted Date", _date(trial.disposition_first_submitted)),
        ("Disposition First Submitted QC Date", _date(trial.disposition_first_submitted_qc)),
        ("Disposition First Posted Date", _date(trial.disposition_first_posted)),
        ("Last Update Submitted Date", _date(trial.last_update_submitted)),
        ("Delayed Posting", _yes_no(trial.delayed_posting)),
        ("Results Waived", _yes_no(trial.results_waived)),
        ("Expanded Access Available", _yes_no(trial.has_expanded_access)),
        ("Expanded Access NCT ID", trial.expanded_access_nct_id),
        ("Expanded Access Status", _code(trial.expanded_access_status)),
        ("Registry Data Version", _date(trial.data_version)),
    ]


def _free(text: str) -> str:
    """Text as written: a line that would read as layout gets a backslash (see `escape_line`)."""
    return "\n".join(layout.escape_line(line) for line in text.split("\n"))


def _optional(text: str | None) -> Paragraphs:
    return [_free(text)] if text else []


def _lines(values: Iterable[str]) -> Paragraphs:
    return [_free(value) for value in values]


def _labels(values: list[tuple[str, str | None]]) -> Paragraphs:
    return [p for label, value in values if value is not None for p in (label, _free(value))]


def _code(code: Code | None) -> str | None:
    return code.code if code else None


def _codes(codes: tuple[Code, ...]) -> str | None:
    return ", ".join(c.code for c in codes) if codes else None


def _markers(prefix: str, code: Code | None) -> Paragraphs:
    """A marker line ("Responsibility Role SPONSOR") written only when the code is stated."""
    return [f"{prefix} {code.code}"] if code else []


def _marker(code: Code | None) -> str:
    return code.code if code else layout.NOT_STATED


def _yes_no(flag: bool | None) -> str | None:
    return None if flag is None else ("Yes" if flag else "No")


def _qualifier(estimated: bool | None) -> str:
    return {None: "", True: " (estimated)", False: " (actual)"}[estimated]


def _date(date: PartialDate | None) -> str | None:
    return None if date is None else date.value + _qualifier(date.estimated)


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _age(age: AgeLimit | None) -> str | None:
    return None if age is None else f"{_number(age.value)} {age.unit}"


def _meshes(trial: Trial) -> Paragraphs:
    groups: list[tuple[str, tuple[MeshTerm, ...]]] = [
        ("Condition", trial.condition_meshes),
        ("Condition Ancestor", trial.condition_ancestors),
        ("Intervention", trial.intervention_meshes),
        ("Intervention Ancestor", trial.intervention_ancestors),
    ]
    lines = []
    for kind, terms in groups:
        for term in terms:
            # An id-less term that ends in "[…]" gets an empty "[]" so the reader keeps its end.
            suffix = f" [{term.id}]" if term.id else (" []" if term.term.endswith("]") else "")
            lines.append(f"{kind}: {term.term}{suffix}")
    return ["\n".join(lines)] if lines else []


def _arms(trial: Trial) -> Paragraphs:
    descriptions = {
        (i.name, i.type.code if i.type else None): i.description for i in trial.interventions
    }
    paragraphs: Paragraphs = []
    for arm in trial.arms:
        # The label is the line just before its marker; the description follows the marker.
        paragraphs += [
            _free(arm.label),
            f"{layout.GROUP_TYPE} {_marker(arm.type)}",
            *_optional(arm.description),
        ]
        for name in arm.intervention_names:
            plain, code = layout.split_intervention_name(name)
            paragraphs += [_free(plain), f"{layout.INTERVENTION_TYPE} {code or layout.NOT_STATED}"]
            paragraphs += _optional(descriptions.get((plain, code)))
    return paragraphs


def _interventions(trial: Trial) -> Paragraphs:
    paragraphs: Paragraphs = []
    for item in trial.interventions:
        paragraphs += [_free(item.name), *_optional(item.description)]
        paragraphs += [f"{layout.OTHER_NAME} {name}" for name in item.other_names]
        paragraphs += [f"{layout.STUDY_GROUP} {label}" for label in item.arm_labels]
        paragraphs.append(f"{layout.INTERVENTION_TYPE} {_marker(item.type)}")
    return paragraphs


def _outcomes(trial: Trial, kind: str) -> Paragraphs:
    paragraphs: Paragraphs = []
    for outcome in trial.outcomes:
        if outcome.kind == kind:
            paragraphs += [_free(outcome.measure), *_optional(outcome.description)]
            paragraphs.append(f"{layout.TIME_FRAME} {outcome.time_frame or layout.NOT_STATED}")
    return paragraphs


def _organization(organization: Organization) -> Paragraphs:
    return [_free(organization.name), *_optional(_code(organization.org_class))]


def _sponsors(trial: Trial) -> Paragraphs:
    paragraphs: Paragraphs = []
    if trial.lead_sponsor:
        paragraphs += _organization(trial.lead_sponsor)
        paragraphs.append(f"{layout.SPONSOR_ROLE} {layout.LEAD_ROLE}")
    for collaborator in trial.collaborators:
        paragraphs += _organization(collaborator)
        paragraphs.append(f"{layout.SPONSOR_ROLE} {layout.COLLABORATOR_ROLE}")
    return paragraphs


def _officials(trial: Trial) -> Paragraphs:
    paragraphs: Paragraphs = []
    for official in trial.officials:
        paragraphs += [_free(official.name), f"{layout.ROLE} {_marker(official.role)}"]
        paragraphs += _optional(official.affiliation)
    return paragraphs


def _site(site: Site) -> Paragraphs:
    parts = [site.city, site.state, *([site.zip] if site.zip else []), site.country]
    paragraphs = [
        *_optional(site.facility),
        _free(", ".join(layout.escape_address_part(p) for p in parts)),
    ]
    if site.geo:
        paragraphs.append(f"{layout.COORDINATES} {site.geo.lat!r}, {site.geo.lon!r}")
    paragraphs.append(f"{layout.SITE_STATUS} {_marker(site.status)}")
    return paragraphs


def _looks_like_phone_or_email(text: str) -> bool:
    return bool(layout.PHONE_SHAPE.match(text) or layout.EMAIL_SHAPE.match(text))


def _contact(contact: ContactPoint) -> Paragraphs:
    paragraphs: Paragraphs = []
    if contact.name:
        ambiguous = _looks_like_phone_or_email(contact.name)
        paragraphs.append(
            f"{layout.CONTACT_NAME} {contact.name}" if ambiguous else _free(contact.name)
        )
    paragraphs.append(f"{layout.ROLE} {_marker(contact.role)}")
    if contact.phone:
        bare = layout.PHONE_SHAPE.match(contact.phone)
        paragraphs.append(contact.phone if bare else f"{layout.CONTACT_PHONE} {contact.phone}")
    if contact.phone_ext:
        paragraphs.append(f"{layout.CONTACT_PHONE_EXT} {contact.phone_ext}")
    if contact.email:
        bare = layout.EMAIL_SHAPE.match(contact.email)
        paragraphs.append(contact.email if bare else f"{layout.CONTACT_EMAIL} {contact.email}")
    return paragraphs


def _facility_contacts(trial: Trial) -> Paragraphs:
    paragraphs: Paragraphs = []
    for number, site in enumerate(trial.sites, 1):
        where = site.facility or ", ".join(p for p in (site.city, site.country) if p)
        for contact in site.contacts:
            paragraphs += _contact(contact)
            paragraphs.append(f"{layout.SITE} {number}" + (f" ({where})" if where else ""))
    return paragraphs


def _references(trial: Trial) -> Paragraphs:
    paragraphs: Paragraphs = []
    for reference in trial.references:
        paragraphs += _optional(reference.citation)
        paragraphs.append(f"{layout.REFERENCE_TYPE} {_marker(reference.type)}")
        if reference.pmid:
            paragraphs.append(f"{layout.PMID} {reference.pmid} {layout.PMID_SUFFIX}")
        for notice in reference.retractions:
            paragraphs.append(f"{layout.RETRACTION_PMID} {notice.pmid or layout.NOT_STATED}")
            if notice.source:
                paragraphs.append(f"{layout.RETRACTION_SOURCE} {notice.source}")
    return paragraphs


def _available_ipds(trial: Trial) -> Paragraphs:
    paragraphs: Paragraphs = []
    for ipd in trial.available_ipds:
        paragraphs += _optional(ipd.comment)
        if ipd.id:
            paragraphs.append(f"{layout.IPD_ID} {ipd.id}")
        if ipd.type:
            paragraphs.append(f"{layout.IPD_TYPE} {ipd.type}")
        paragraphs.append(f"{layout.IPD_URL} {ipd.url or layout.NOT_STATED}")
    return paragraphs


def _identifiers(trial: Trial) -> Paragraphs:
    paragraphs: Paragraphs = []
    if trial.org_study_id:
        paragraphs += [
            _free(trial.org_study_id),
            f"{layout.IDENTIFIER_TYPE} {trial.org_study_id_type or layout.NOT_STATED}",
            f"{layout.IDENTIFIER_SOURCE} {layout.ORG_STUDY_ID_SOURCE}",
        ]
        if trial.org_study_id_link:
            paragraphs.append(f"{layout.IDENTIFIER_LINK} {trial.org_study_id_link}")
    for secondary in trial.secondary_ids:
        paragraphs += [
            _free(secondary.id),
            f"{layout.IDENTIFIER_TYPE} {_marker(secondary.type)}",
            f"{layout.IDENTIFIER_SOURCE} {layout.SECONDARY_ID_SOURCE}",
        ]
        if secondary.domain:
            paragraphs.append(f"{layout.IDENTIFIER_DOMAIN} {secondary.domain}")
        if secondary.link:
            paragraphs.append(f"{layout.IDENTIFIER_LINK} {secondary.link}")
    for alias in trial.nct_id_aliases:
        paragraphs += [
            _free(alias),
            f"{layout.IDENTIFIER_TYPE} {layout.NOT_STATED}",
            f"{layout.IDENTIFIER_SOURCE} {layout.NCT_ALIAS_SOURCE}",
        ]
    return paragraphs
