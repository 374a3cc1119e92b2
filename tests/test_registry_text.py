"""Registry page text reader (fhirconv.sources.registry_text) and its inverse (render_text)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirconv.errors import RecordError
from fhirconv.model import AvailableIpd, Code, PartialDate, Reference, Retraction, Trial
from fhirconv.sources import ctgov_json
from fhirconv.sources.ctgov_xml import parse_xml_date
from fhirconv.sources.record import FieldError
from fhirconv.sources.registry_layout import BLURBS
from fhirconv.sources.registry_text import parse_date, read_text
from fhirconv.sources.render_text import render_registry_text, render_registry_texts

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "NCT05765006.txt"
CORPUS_JSON = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "ctgov-v2"
FIXTURES_JSON = REPO / "tests" / "fixtures" / "ctgov-v2"

# What the round trip does not compare, with the reason. Everything else must come back equal.
NOT_COMPARED = {
    "source": "where the record was read from: the JSON file vs the rendered text",
    "field": "the source field of a code, date or age names the input format's own field "
    "(protocolSection.statusModule.overallStatus vs Basic Information > Recruitment Status)",
}


def read_one(text: str, file: str = "page.txt") -> Trial:
    results = list(read_text(text, file))
    assert len(results) == 1, results
    trial = results[0]
    assert isinstance(trial, Trial), trial
    return trial


def facts(value: Any) -> Any:
    """A model dump without the attributes in NOT_COMPARED."""
    if isinstance(value, dict):
        return {k: facts(v) for k, v in value.items() if k not in NOT_COMPARED}
    if isinstance(value, list | tuple):
        return [facts(v) for v in value]
    return value


def differences(left: Any, right: Any, path: str = "") -> Iterator[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in left.keys() | right.keys():
            yield from differences(left.get(key), right.get(key), f"{path}.{key}")
    elif isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            yield from differences(a, b, f"{path}[{index}]")
    elif left != right:
        yield f"{path}: {left!r:.120} != {right!r:.120}"


def round_trip_differences(trial: Trial) -> list[str]:
    back = read_one(render_registry_text(trial), "rendered.txt")
    return list(differences(facts(trial.model_dump()), facts(back.model_dump())))


def page(*sections: str, nct_id: str | None = "NCT01234567", title: str = "A Study") -> str:
    """A hand-written page: title, NCT ID line, then the given sections (heading + blurb added)."""
    head = [title] + ([f"NCT ID: {nct_id}"] if nct_id else [])
    return "\n\n".join(head + list(sections)) + "\n"


def section(heading: str, *values: str) -> str:
    return "\n\n".join([heading, BLURBS[heading][0], *values])


# -- the reference example ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Trial:
    return read_one(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))


def test_example_identification_and_status(example: Trial) -> None:
    assert example.nct_id == "NCT05765006"
    assert example.source.format == "registry-text"
    assert example.source.record == "NCT05765006"
    assert example.brief_title == (
        "CD19-CART(Relma-cel) for Moderate to Severe Active Systemic Lupus Erythematosus"
    )
    assert example.overall_status is not None
    assert example.overall_status.code == "RECRUITING"
    assert example.overall_status.field == "Basic Information > Recruitment Status"
    assert [p.code for p in example.design.phases] == ["PHASE1"]
    assert example.design.enrollment_count == 24
    assert example.design.enrollment_estimated is None  # the page does not say
    assert example.design.study_type is not None
    assert example.design.study_type.code == "INTERVENTIONAL"
    assert example.start_date is not None and example.start_date.value == "2023-02-24"
    assert example.completion_date is not None and example.completion_date.value == "2025-12-30"
    assert example.last_update_posted is not None
    assert example.last_update_posted.value == "2023-03-15"
    assert example.org_study_id == "JWCAR029012"
    assert example.org_study_id_type is None  # "Identifier Type: -"
    assert example.has_results is False  # "Results pending"


def test_example_texts_and_condition(example: Trial) -> None:
    assert example.brief_summary is not None
    assert example.brief_summary.startswith("This is a phase I, open-label, single-arm")
    assert example.brief_summary.endswith("subjects in China.")
    assert example.detailed_description is not None
    assert example.detailed_description.startswith("This is a phase I, open-label")
    assert "\n\nThere will be 4 dose level" in example.detailed_description
    assert example.detailed_description.endswith("determine RP2D .")
    assert example.conditions == ("Systemic Lupus Erythematosus",)


def test_example_design(example: Trial) -> None:
    design = example.design
    assert design.allocation is not None and design.allocation.code == "NA"
    assert design.intervention_model is not None
    assert design.intervention_model.code == "SINGLE_GROUP"
    assert design.primary_purpose is not None and design.primary_purpose.code == "TREATMENT"
    assert design.masking is not None and design.masking.code == "NONE"
    assert design.masking.field == "Study Design > Blinding Strategy"


def test_example_arm_and_intervention(example: Trial) -> None:
    (arm,) = example.arms
    assert arm.label == "Relma-cel be administrated in four dose level"
    assert arm.type is not None and arm.type.code == "EXPERIMENTAL"
    assert arm.description is None
    # Rebuilt in API v2 form ("Type: Name") from the name and its "Intervention Type" line.
    assert arm.intervention_names == ("Biological: Relma-cel",)
    (intervention,) = example.interventions
    assert intervention.name == "Relma-cel"
    assert intervention.type is not None and intervention.type.code == "BIOLOGICAL"
    assert intervention.description is not None
    assert intervention.description.startswith("CD19-targeted Chimeric AntigenReceptor (CAR)")
    assert intervention.description.endswith("150×106 CAR+ T cells")
    # The page shows which group gets the intervention only under Study Groups.
    assert intervention.arm_labels == ("Relma-cel be administrated in four dose level",)


def test_example_eligibility(example: Trial) -> None:
    eligibility = example.eligibility
    criteria = eligibility.criteria
    assert criteria is not None
    assert criteria.startswith("Inclusion Criteria\n\n1. Sign an informed consent form")
    assert "\nExclusion Criteria\n" in criteria
    assert criteria.endswith(
        "IgA deficiency was present during screening (serum IgA level \\< 10 mg/dL)"
    )
    # Kept verbatim: Markdown escapes stay for the criteria splitter.
    assert "\n5\\. Screening is positive" in criteria
    assert "stable for \\> 2 weeks" in criteria
    assert "Minimum Eligible Age" not in criteria
    assert eligibility.minimum_age is not None
    assert (eligibility.minimum_age.value, eligibility.minimum_age.unit) == (18, "Years")
    assert eligibility.minimum_age.field == "Eligibility Criteria > Minimum Eligible Age"
    assert eligibility.maximum_age is not None
    assert (eligibility.maximum_age.value, eligibility.maximum_age.unit) == (70, "Years")
    assert eligibility.sex is not None and eligibility.sex.code == "ALL"
    assert eligibility.healthy_volunteers is False


def test_example_sponsor_and_people(example: Trial) -> None:
    assert example.lead_sponsor is not None
    assert example.lead_sponsor.name == "Shanghai Ming Ju Biotechnology Co., Ltd."
    assert example.lead_sponsor.org_class is not None
    assert example.lead_sponsor.org_class.code == "INDUSTRY"
    assert example.collaborators == ()
    assert example.responsible_party is not None
    assert example.responsible_party.type is not None
    assert example.responsible_party.type.code == "SPONSOR"
    assert [
        (o.name, o.role.code if o.role else None, o.affiliation) for o in example.officials
    ] == [
        (
            "yu Hu",
            "PRINCIPAL_INVESTIGATOR",
            "Union Hospital, Tongji Medical College, Huazhong University of Science and Technology",
        ),
        (
            "heng Mei",
            "PRINCIPAL_INVESTIGATOR",
            "Union Hospital, Tongji Medical College, Huazhong University of Science and Technology",
        ),
        (
            "liangjing Lv",
            "PRINCIPAL_INVESTIGATOR",
            "Renji Hospital Shanghai Jiaotong University School of Medical",
        ),
    ]
    (contact,) = example.central_contacts
    assert contact.name == "medical JW"
    assert contact.role is not None and contact.role.code == "CONTACT"
    assert contact.phone == "+86 21 50464201"
    assert contact.email is None


def test_example_site_countries_and_facility_contact(example: Trial) -> None:
    (site,) = example.sites
    assert site.facility == "Relma-cel Medical"
    assert (site.city, site.state, site.zip, site.country) == ("Shanghai", None, None, "China")
    assert site.status is not None and site.status.code == "RECRUITING"
    # The page lists facility contacts apart from the sites; with one site they are its contacts.
    (contact,) = site.contacts
    assert contact.name == "medical Relma-cel"
    # "Role: primary": the site's primary (not backup) contact, which API v2 calls CONTACT.
    assert contact.role is not None and contact.role.code == "CONTACT"
    assert contact.role.field == "Facility Contacts > Role"
    assert example.countries == ("China",)


def test_example_references(example: Trial) -> None:
    assert [(r.pmid, r.type.code if r.type else None) for r in example.references] == [
        ("3005930", "RESULT"),
        ("40386685", "DERIVED"),
    ]
    first, second = example.references
    assert first.citation is not None and first.citation.startswith("Kaufman JL, Deak ST")
    assert second.citation is not None and second.citation.endswith("eCollection 2025 May.")


def test_example_survives_render_and_read_back(example: Trial) -> None:
    assert round_trip_differences(example) == []


def test_rendered_example_uses_the_example_layout(example: Trial) -> None:
    rendered = render_registry_text(example)
    for line in (
        "NCT ID: NCT05765006",
        "Last Updated: 2023-03-15",
        "Recruitment Status\n\nRECRUITING",
        "Total Enrollment\n\n24 participants",
        "Shanghai, , China",
        "Site Status RECRUITING",
        "Group Type EXPERIMENTAL\n\nRelma-cel\n\nIntervention Type BIOLOGICAL",
        "Sponsor Role lead",
        "Responsibility Role SPONSOR",
        "PMID: 3005930 (View on PubMed)",
        "Identifier Type: -\n\nIdentifier Source: org_study_id",
    ):
        assert line in rendered
    for heading in BLURBS:
        if heading in rendered:
            assert f"{heading}\n\n{BLURBS[heading][0]}" in rendered or heading == "Study Results"


# -- hand-written variants ---------------------------------------------------------------------


def test_only_the_nct_id_is_required() -> None:
    trial = read_one("NCT ID: NCT01234567\n")
    assert trial.nct_id == "NCT01234567"
    assert trial.brief_title is None
    assert trial.sites == () and trial.arms == () and trial.officials == ()
    assert trial.responsible_party is None and trial.oversight is None


def test_missing_nct_id_is_a_record_error_naming_file_and_field() -> None:
    text = page(section("Basic Information", "Recruitment Status", "RECRUITING"), nct_id=None)
    (error,) = read_text(text, "pages/x.txt")
    assert isinstance(error, RecordError)
    assert error.file == "pages/x.txt"
    assert error.field == "NCT ID"
    assert error.record == "#1"


def test_bad_nct_id_is_a_record_error() -> None:
    (error,) = read_text(page(nct_id="NCT123"), "x.txt")
    assert isinstance(error, RecordError)
    assert error.field == "NCT ID"
    assert "NCT123" in error.message


def test_bad_date_is_a_record_error_naming_the_label() -> None:
    text = page(section("Basic Information", "Study Start Date", "2023-02-31"))
    (error,) = read_text(text, "x.txt")
    assert isinstance(error, RecordError)
    assert error.record == "NCT01234567"
    assert error.field == "Basic Information > Study Start Date"


def test_display_forms_are_normalized_to_api_v2_spelling() -> None:
    text = page(
        section(
            "Basic Information",
            "Recruitment Status",
            "Not yet recruiting",
            "Clinical Phase",
            "Phase 1 / Phase 2",
            "Total Enrollment",
            "120 participants (estimated)",
            "Study Classification",
            "Interventional",
            "Study Start Date",
            "February 24, 2023 (actual)",
            "Study Completion Date",
            "Dec 2025",
        ),
        section(
            "Study Design",
            "Allocation Method",
            "N/A",
            "Intervention Model",
            "Parallel Assignment",
            "Primary Study Purpose",
            "Supportive Care",
            "Blinding Strategy",
            "None (Open Label)",
        ),
        section(
            "Eligibility Criteria", "Eligible Sex", "Female", "Accepts Healthy Volunteers", "Yes"
        ),
    )
    trial = read_one(text)
    assert trial.overall_status is not None and trial.overall_status.code == "NOT_YET_RECRUITING"
    assert [p.code for p in trial.design.phases] == ["PHASE1", "PHASE2"]
    assert (trial.design.enrollment_count, trial.design.enrollment_estimated) == (120, True)
    assert trial.design.study_type is not None and trial.design.study_type.code == "INTERVENTIONAL"
    assert trial.start_date is not None
    assert (trial.start_date.value, trial.start_date.estimated) == ("2023-02-24", False)
    assert trial.completion_date is not None and trial.completion_date.value == "2025-12"
    design = trial.design
    assert [c.code if c else None for c in (design.allocation, design.intervention_model,
            design.primary_purpose, design.masking)] == [
        "NA", "PARALLEL", "SUPPORTIVE_CARE", "NONE",
    ]  # fmt: skip
    assert trial.eligibility.sex is not None and trial.eligibility.sex.code == "FEMALE"
    assert trial.eligibility.healthy_volunteers is True
    assert trial.eligibility.criteria is None


@pytest.mark.parametrize("phases", ["PHASE1, PHASE2", "PHASE1 / PHASE2", "Phase 1/Phase 2"])
def test_several_phases(phases: str) -> None:
    trial = read_one(page(section("Basic Information", "Clinical Phase", phases)))
    assert [p.code for p in trial.design.phases] == ["PHASE1", "PHASE2"]


def test_sections_in_another_order_and_label_value_on_one_line() -> None:
    text = page(
        section(
            "Locations",
            "Mercy Hospital",
            "Boston, Massachusetts, 02114, United States",
            "Site Status Recruiting",
        ),
        section(
            "Eligibility Criteria",
            "Inclusion Criteria:\n\n* adults",
            "Minimum Eligible Age: 18 Years",
        ),
        section(
            "Basic Information", "Recruitment Status: COMPLETED", "Total Enrollment", "30 (Actual)"
        ),
        section("Conditions", "Asthma", "COPD"),
    )
    trial = read_one(text)
    (site,) = trial.sites
    assert (site.facility, site.city, site.state, site.zip, site.country) == (
        "Mercy Hospital", "Boston", "Massachusetts", "02114", "United States",
    )  # fmt: skip
    assert site.status is not None and site.status.code == "RECRUITING"
    assert trial.eligibility.criteria == "Inclusion Criteria:\n\n* adults"
    assert trial.eligibility.minimum_age is not None and trial.eligibility.minimum_age.value == 18
    assert trial.overall_status is not None and trial.overall_status.code == "COMPLETED"
    assert (trial.design.enrollment_count, trial.design.enrollment_estimated) == (30, False)
    assert trial.conditions == ("Asthma", "COPD")


def test_many_sites_address_forms_and_contacts_tied_by_site_number() -> None:
    text = page(
        section(
            "Locations",
            "Relma-cel Medical",
            "Shanghai, , China",
            "Site Status RECRUITING",
            "Hôpital Nord",
            "Lyon, France",
            "Site Status Not yet recruiting",
            "Seoul, Korea, Republic of",  # no facility; the country has a comma
            "Site Status -",
            "Clinic, with a comma in its name",
            "Houston, Texas, 77030, United States",
            "Site Status COMPLETED",
        ),
        section(
            "Facility Contacts",
            "Jane Roe",
            "Role: CONTACT",
            "+33 4 72 00 00 00",
            "jane.roe@example.org",
            "Site: 2 (Hôpital Nord)",
            "John Doe",
            "Role: PRINCIPAL_INVESTIGATOR",
            "Site: 4",
        ),
    )
    trial = read_one(text)
    addresses = [(s.facility, s.city, s.state, s.zip, s.country) for s in trial.sites]
    assert addresses == [
        ("Relma-cel Medical", "Shanghai", None, None, "China"),
        ("Hôpital Nord", "Lyon", None, None, "France"),
        (None, "Seoul", None, None, "Korea, Republic of"),
        ("Clinic, with a comma in its name", "Houston", "Texas", "77030", "United States"),
    ]
    statuses = [s.status.code if s.status else None for s in trial.sites]
    assert statuses == ["RECRUITING", "NOT_YET_RECRUITING", None, "COMPLETED"]
    assert [len(s.contacts) for s in trial.sites] == [0, 1, 0, 1]
    jane = trial.sites[1].contacts[0]
    assert (jane.name, jane.phone, jane.email) == (
        "Jane Roe",
        "+33 4 72 00 00 00",
        "jane.roe@example.org",
    )
    assert trial.sites[3].contacts[0].name == "John Doe"


def test_facility_contacts_without_a_site_line_and_several_sites_are_not_guessed() -> None:
    text = page(
        section("Locations", "A", "X, , Y", "Site Status -", "B", "Z, , Y", "Site Status -"),
        section("Facility Contacts", "Jane Roe", "Role: CONTACT"),
    )
    assert [s.contacts for s in read_one(text).sites] == [(), ()]


def test_zero_and_many_arms_and_interventions() -> None:
    interventions = section(
        "Interventions",
        "Aspirin",
        "100 mg daily",
        "Intervention Type DRUG",
        "Placebo",
        "Intervention Type Drug",
        "Counselling",
        "Weekly sessions.\n\nSecond paragraph.",
        "Intervention Type BEHAVIORAL",
    )
    groups = section(
        "Study Groups",
        "Treatment",
        "Group Type EXPERIMENTAL",
        "Aspirin and counselling",
        "Aspirin",
        "Intervention Type DRUG",
        "100 mg daily",
        "Counselling",
        "Intervention Type BEHAVIORAL",
        "Weekly sessions.\n\nSecond paragraph.",
        "Control",
        "Group Type Placebo Comparator",
        "Placebo",
        "Intervention Type DRUG",
        "Observation",
        "Group Type -",
    )
    trial = read_one(page(groups, interventions))
    assert [(a.label, a.type.code if a.type else None, a.description) for a in trial.arms] == [
        ("Treatment", "EXPERIMENTAL", "Aspirin and counselling"),
        ("Control", "PLACEBO_COMPARATOR", None),
        ("Observation", None, None),
    ]
    assert [a.intervention_names for a in trial.arms] == [
        ("Drug: Aspirin", "Behavioral: Counselling"),
        ("Drug: Placebo",),
        (),
    ]
    assert [(i.name, i.description, i.arm_labels) for i in trial.interventions] == [
        ("Aspirin", "100 mg daily", ("Treatment",)),
        ("Placebo", None, ("Control",)),
        ("Counselling", "Weekly sessions.\n\nSecond paragraph.", ("Treatment",)),
    ]
    empty = read_one(page(section("Study Groups"), section("Interventions")))
    assert empty.arms == () and empty.interventions == ()


def test_zero_and_many_investigators_with_and_without_affiliation() -> None:
    text = page(
        section(
            "Principal Investigators",
            "Ann Lee",
            "Role: Study Chair",
            "Alpha University",
            "Bob Kim",
            "Role: PRINCIPAL_INVESTIGATOR",
            "Cy Young",
            "Role: STUDY_DIRECTOR",
            "Gamma Institute",
        )
    )
    officials = read_one(text).officials
    assert [(o.name, o.role.code if o.role else None, o.affiliation) for o in officials] == [
        ("Ann Lee", "STUDY_CHAIR", "Alpha University"),
        ("Bob Kim", "PRINCIPAL_INVESTIGATOR", None),
        ("Cy Young", "STUDY_DIRECTOR", "Gamma Institute"),
    ]
    assert read_one(page(section("Principal Investigators"))).officials == ()


def test_heading_words_inside_text_are_not_headings() -> None:
    description = "Background\n\nInterventions\n\nPatients get the drug.\n\nLocations\n\nTwo sites."
    trial = read_one(
        page(section("Detailed Description", description), section("Conditions", "Flu"))
    )
    assert trial.detailed_description == description
    assert trial.interventions == () and trial.sites == ()
    assert trial.conditions == ("Flu",)


def test_pages_without_blurbs_are_read_by_their_headings() -> None:
    text = "\n\n".join(
        [
            "Title",
            "NCT ID: NCT01234567",
            "Conditions",
            "Flu",
            "Locations",
            "Oslo, Norway",
            "Site Status RECRUITING",
        ]
    )
    trial = read_one(text)
    assert trial.conditions == ("Flu",)
    assert [(s.city, s.country) for s in trial.sites] == [("Oslo", "Norway")]


def test_unknown_label_lines_do_not_break_the_record() -> None:
    text = page(
        section(
            "Basic Information",
            "Recruitment Status",
            "RECRUITING",
            "Sponsor Website",
            "https://example.org",
            "Total Enrollment",
            "12 participants",
        )
    )
    trial = read_one(text)
    assert trial.overall_status is not None and trial.overall_status.code == "RECRUITING"
    assert trial.design.enrollment_count == 12


def test_several_pages_in_one_file() -> None:
    example_text = EXAMPLE.read_text(encoding="utf-8")
    second = page(section("Conditions", "Flu"), nct_id="NCT07654321", title="Second Study")
    results = list(read_text(example_text + "\n\n" + second + "\n" + example_text, "many.txt"))
    assert [r.nct_id if isinstance(r, Trial) else r for r in results] == [
        "NCT05765006", "NCT07654321", "NCT05765006",
    ]  # fmt: skip
    assert isinstance(results[1], Trial)
    assert results[1].brief_title == "Second Study"
    assert results[1].conditions == ("Flu",)
    first, third = results[0], results[2]
    assert isinstance(first, Trial) and isinstance(third, Trial)
    assert first == third


def test_a_page_without_nct_id_before_others_is_an_error_and_the_others_are_read() -> None:
    first = page(section("Conditions", "Flu"), nct_id=None, title="Lost Study")
    second = page(section("Conditions", "Cold"), nct_id="NCT07654321", title="Found Study")
    results = list(read_text(first + "\n" + second, "many.txt"))
    assert isinstance(results[0], RecordError) and results[0].field == "NCT ID"
    assert isinstance(results[1], Trial) and results[1].conditions == ("Cold",)


def test_text_lines_that_look_like_layout_survive_the_round_trip(example: Trial) -> None:
    tricky = example.model_copy(
        update={
            "brief_summary": (
                "Results:\nTime Frame: 7 months\nRole: CONTACT\n\\Site Status X\nNCT ID: x"
            ),
            "conditions": ("Conditions", "Group Type A"),
        }
    )
    assert round_trip_differences(tricky) == []


def test_submission_dates_retractions_and_available_ipds_survive_the_round_trip(
    example: Trial,
) -> None:
    def day(value: str, estimated: bool | None = None) -> PartialDate:
        return PartialDate(value=value, field="x", estimated=estimated)

    enriched = example.model_copy(
        update={
            "first_submitted_qc": day("2023-03-01"),
            "results_first_submitted": day("2024-02"),
            "results_first_submitted_qc": day("2024-03-05"),
            "disposition_first_submitted": day("2022-08-08"),
            "disposition_first_submitted_qc": day("2022-08-09"),
            "disposition_first_posted": day("2022-08-11", estimated=False),
            "delayed_posting": True,
            "results_waived": False,
            "expanded_access_nct_id": "NCT05918913",
            "expanded_access_status": Code(code="TEMPORARILY_NOT_AVAILABLE", field="x"),
            "data_version": day("2025-12-09"),
            "references": (
                Reference(
                    citation="A retracted paper.\nRetraction PMID: 1",
                    pmid="123",
                    type=Code(code="RESULT", field="x"),
                    retractions=(
                        Retraction(pmid="999", source="Lancet. 2021"),
                        Retraction(source="a notice without PMID"),
                        Retraction(pmid="7"),
                    ),
                ),
                Reference(citation="Another.", retractions=(Retraction(pmid="8"),)),
            ),
            "available_ipds": (
                AvailableIpd(
                    id="IPD-7",
                    type="Individual Participant Data Set",
                    url="https://example.org/ipd",
                    comment="On request.\nIPD URL: not a marker",
                ),
                AvailableIpd(comment="only a comment"),
                AvailableIpd(type="Study Protocol"),
            ),
        }
    )
    assert round_trip_differences(enriched) == []
    text = render_registry_text(enriched)
    assert "First Submitted QC Date\n\n2023-03-01\n" in text
    assert "Disposition First Posted Date\n\n2022-08-11 (actual)\n" in text
    assert "Retraction PMID: 999\n\nRetraction Source: Lancet. 2021" in text


def test_render_several_pages_reads_back() -> None:
    trials = [
        read_one(page(section("Conditions", "Flu"), nct_id=f"NCT0000000{n}", title=f"T{n}"))
        for n in range(1, 4)
    ]
    back = list(read_text(render_registry_texts(trials), "all.txt"))
    assert all(isinstance(t, Trial) for t in back)
    assert [facts(t.model_dump()) for t in back if isinstance(t, Trial)] == [
        facts(t.model_dump()) for t in trials
    ]


LAYOUT_WORDS = [
    *BLURBS,
    *(b for blurbs in BLURBS.values() for b in blurbs),
    "NCT ID: NCT01234567",
    "NCT ID: nonsense",
    "Recruitment Status",
    "Total Enrollment",
    "Study Start Date",
    "Minimum Eligible Age",
    "Group Type EXPERIMENTAL",
    "Intervention Type",
    "Role:",
    "Site Status",
    "Reference Type",
    "PMID: 1",
    "Retraction PMID: 2",
    "Retraction Source: -",
    "IPD Type: Study Protocol",
    "IPD URL: -",
    "First Submitted QC Date",
    "Identifier Source: org_study_id",
    "Site: 3",
    "Coordinates: 1, 2",
    "Shanghai, , China",
    ", , ,",
    "\\",
    "-",
    "12 participants",
    "Yes",
    "x",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(LAYOUT_WORDS), st.text(max_size=20)), max_size=40))
def test_never_crashes_on_odd_text(lines: list[str]) -> None:
    for result in read_text("\n".join(lines), "odd.txt"):
        assert isinstance(result, Trial | RecordError)


# -- the round trip over real records ------------------------------------------------------------


def _json_trials(folder: Path) -> list[tuple[str, Trial]]:
    trials = []
    for path in sorted(folder.glob("*.json")):
        for result in ctgov_json.read_text(path.read_text(encoding="utf-8"), str(path)):
            if isinstance(result, Trial):
                trials.append((path.name, result))
    return trials


def _round_trip_report(trials: list[tuple[str, Trial]]) -> list[str]:
    return [
        f"{name} {trial.nct_id} {difference}"
        for name, trial in trials
        for difference in round_trip_differences(trial)
    ]


@pytest.mark.corpus
def test_round_trip_over_the_shared_corpus() -> None:
    if not CORPUS_JSON.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS_JSON} (needs ../shared/corpus/ctgov-v2)")
    trials = _json_trials(CORPUS_JSON)
    assert trials, f"no API v2 records read from {CORPUS_JSON}"
    arms_lost = [
        name
        for name, trial in trials
        if [(a.label, a.intervention_names) for a in read_one(render_registry_text(trial)).arms]
        != [(a.label, a.intervention_names) for a in trial.arms]
    ]
    assert arms_lost == [], f"{len(arms_lost)} records lose arms or their interventions"
    mismatches = _round_trip_report(trials)
    assert mismatches == [], f"{len(mismatches)} differences, first: {mismatches[:5]}"


def test_round_trip_over_the_fixture_records() -> None:
    if not FIXTURES_JSON.is_dir() or not any(FIXTURES_JSON.glob("*.json")):
        pytest.skip(f"no API v2 fixtures in {FIXTURES_JSON}")
    trials = _json_trials(FIXTURES_JSON)
    assert trials
    assert _round_trip_report(trials) == []


def test_not_compared_lists_only_what_the_layout_cannot_carry() -> None:
    assert set(NOT_COMPARED) == {"source", "field"}
    assert all(re.search(r"\w", reason) for reason in NOT_COMPARED.values())


# -- study groups anchored on "Group Type": multi-arm pages ---------------------------------------

FIXTURES_TEXT = REPO / "tests" / "fixtures" / "registry-text"


def _arms(trial: Trial) -> list[tuple[str, str | None, str | None, tuple[str, ...]]]:
    return [
        (a.label, a.type.code if a.type else None, a.description, a.intervention_names)
        for a in trial.arms
    ]


FOUR_ARMS = [
    (
        "Amlodipine low dose",
        "EXPERIMENTAL",
        "Participants take the low dose every morning for twelve weeks.",
        ("Drug: Amlodipine", "Behavioral: Counselling"),
    ),
    ("Amlodipine high dose", "EXPERIMENTAL", None, ("Drug: Amlodipine",)),
    ("Placebo", "PLACEBO_COMPARATOR", None, ("Drug: Matching placebo tablet",)),
    (
        "Usual care",
        "NO_INTERVENTION",
        "No study treatment; blood pressure is measured at the same visits.",
        (),
    ),
]
AMLODIPINE = (
    "Calcium channel blocker taken by mouth once a day.\n\n"
    "Tablets are 2.5 mg or 5 mg, as the arm says."
)
COUNSELLING = "Weekly thirty-minute sessions on salt intake."
PLACEBO = "Looks, smells and tastes like the active tablet."
FOUR_ARM_INTERVENTIONS = [
    ("Amlodipine", "DRUG", AMLODIPINE, ("Amlodipine low dose", "Amlodipine high dose")),
    ("Counselling", "BEHAVIORAL", COUNSELLING, ("Amlodipine low dose",)),
    ("Matching placebo tablet", "DRUG", PLACEBO, ("Placebo",)),
]


def _interventions(trial: Trial) -> list[tuple[str, str | None, str | None, tuple[str, ...]]]:
    return [
        (i.name, i.type.code if i.type else None, i.description, i.arm_labels)
        for i in trial.interventions
    ]


def test_hand_made_four_arm_page_keeps_every_arm() -> None:
    """Interventions with two-paragraph descriptions inside groups used to be read as the next
    group's label, losing half the groups."""
    path = FIXTURES_TEXT / "NCT09990001.txt"
    trial = read_one(path.read_text(encoding="utf-8"), str(path))
    assert _arms(trial) == FOUR_ARMS
    assert _interventions(trial) == FOUR_ARM_INTERVENTIONS


def test_groups_alone_list_the_interventions_with_their_descriptions() -> None:
    path = FIXTURES_TEXT / "NCT09990002.txt"
    trial = read_one(path.read_text(encoding="utf-8"), str(path))
    assert _arms(trial) == FOUR_ARMS
    assert _interventions(trial) == FOUR_ARM_INTERVENTIONS


def test_hand_made_page_round_trips() -> None:
    path = FIXTURES_TEXT / "NCT09990001.txt"
    trial = read_one(path.read_text(encoding="utf-8"), str(path))
    assert round_trip_differences(trial) == []


def test_intervention_description_that_reads_like_a_label_stays_with_its_intervention() -> None:
    groups = section(
        "Study Groups",
        "Arm A",
        "Group Type EXPERIMENTAL",
        "Drug X",
        "Intervention Type DRUG",
        "Arm B",  # the description of Drug X, worded like a group label
        "Arm C",
        "Group Type ACTIVE_COMPARATOR",
        "Drug Y",
        "Intervention Type DRUG",
        "Given daily.",
    )
    trial = read_one(page(groups))
    assert _arms(trial) == [
        ("Arm A", "EXPERIMENTAL", None, ("Drug: Drug X",)),
        ("Arm C", "ACTIVE_COMPARATOR", None, ("Drug: Drug Y",)),
    ]
    assert _interventions(trial) == [
        ("Drug X", "DRUG", "Arm B", ("Arm A",)),
        ("Drug Y", "DRUG", "Given daily.", ("Arm C",)),
    ]


def test_group_without_label_and_intervention_without_name_are_dropped_not_misread() -> None:
    groups = section(
        "Study Groups",
        "Group Type EXPERIMENTAL",  # no label: cannot be told apart
        "Drug X",
        "Intervention Type DRUG",
        "Second",
        "Group Type OTHER",
        "Intervention Type DRUG",  # no name before it
        "Orphan description.",
        "Third",
        "Group Type -",
    )
    trial = read_one(page(groups))
    assert _arms(trial) == [("Second", "OTHER", None, ()), ("Third", None, None, ())]


def test_rendered_multi_arm_trial_with_shared_intervention_reads_back() -> None:
    path = FIXTURES_TEXT / "NCT09990001.txt"
    trial = read_one(path.read_text(encoding="utf-8"), str(path))
    rendered = render_registry_text(trial)
    # Each label is the line just before its marker.
    for arm in trial.arms:
        assert f"{arm.label}\n\nGroup Type {arm.type.code if arm.type else '-'}" in rendered
    assert _arms(read_one(rendered)) == FOUR_ARMS


# -- one partial-date parser for XML and page text -------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso", "estimated"),
    [
        ("2023-02-24", "2023-02-24", None),
        ("2023-2", "2023-02", None),
        ("February 24, 2023", "2023-02-24", None),
        ("Sept. 3rd, 2009 (estimated)", "2009-09-03", True),
        ("3 March 2010 [Actual]", "2010-03-03", False),
        ("Feb 2023 (anticipated)", "2023-02", True),
        ("2004", "2004", None),
    ],
)
def test_page_dates_read_like_xml_dates(text: str, iso: str, estimated: bool | None) -> None:
    date = parse_date(text, "Basic Information > Study Start Date")
    assert date is not None
    assert (date.value, date.estimated) == (iso, estimated)
    assert parse_xml_date(text.split(" (")[0].split(" [")[0]) == iso


@pytest.mark.parametrize("text", ["February 30, 2015", "Smarch 2015", "2015-13", "soon"])
def test_bad_page_dates_name_the_field(text: str) -> None:
    with pytest.raises(FieldError) as raised:
        parse_date(text, "Basic Information > Study Start Date")
    assert raised.value.field == "Basic Information > Study Start Date"
    assert repr(text) in str(raised.value)
