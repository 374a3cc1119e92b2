"""Legacy ClinicalTrials.gov XML reader (fhirconv.sources.ctgov_xml)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fhirconv.errors import RecordError
from fhirconv.model import Trial
from fhirconv.sources import ctgov_json, ctgov_xml
from fhirconv.sources.ctgov_xml import parse_xml_date, read_text, textblock_to_text, upper_snake
from fhirconv.tables import load_json, mapping_path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ctgov-xml"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CORPUS_XML = CORPUS / "ctgov-xml"
CORPUS_V2 = CORPUS / "ctgov-v2"


def _read(path: Path) -> list[Trial | RecordError]:
    return list(read_text(path.read_text(encoding="utf-8"), str(path)))


def _trial(nct_id: str) -> Trial:
    results = _read(FIXTURES / f"{nct_id}.xml")
    assert len(results) == 1
    trial = results[0]
    assert isinstance(trial, Trial), trial
    return trial


def _one_error(text: str) -> RecordError:
    results = list(read_text(text, "bad.xml"))
    assert len(results) == 1
    error = results[0]
    assert isinstance(error, RecordError), error
    return error


def _codes(codes: Any) -> list[str]:
    return [c.code for c in codes]


def _minimal(body: str, nct_id: str | None = "NCT01234567") -> str:
    ident = f"<nct_id>{nct_id}</nct_id>" if nct_id else ""
    return (
        f"<clinical_study><id_info><org_study_id>X-1</org_study_id>{ident}</id_info>"
        f"<brief_title>T</brief_title>{body}</clinical_study>"
    )


# --- real records --------------------------------------------------------------------------------


def test_old_nci_record_1999_nested_criteria_and_many_sites() -> None:
    trial = _trial("NCT00002575")
    assert trial.source.format == "ctgov-xml"
    assert trial.org_study_id == "NCCTG-934653"
    assert [s.id for s in trial.secondary_ids] == [
        "NCI-2012-02234",
        "CAN-NCIC-CO12",
        "CDR0000063648",
    ]
    assert trial.first_submitted is not None and trial.first_submitted.value == "1999-11-01"
    assert trial.first_submitted.field == "clinical_study/study_first_submitted"
    # "August 1994" stays a month; no type attribute → estimated not stated
    assert trial.start_date is not None
    assert (trial.start_date.value, trial.start_date.estimated) == ("1994-08", None)
    assert trial.completion_date is not None
    assert (trial.completion_date.value, trial.completion_date.estimated) == ("2009-11", False)
    assert trial.first_posted is not None and trial.first_posted.estimated is True  # "Estimate"
    assert trial.lead_sponsor is not None
    assert trial.lead_sponsor.org_class is not None and trial.lead_sponsor.org_class.code == "OTHER"
    assert [(c.name, c.org_class.code if c.org_class else None) for c in trial.collaborators] == [
        ("National Cancer Institute (NCI)", "NIH"),
        ("NCIC Clinical Trials Group", "OTHER"),
    ]
    assert trial.organization is not None
    assert trial.organization.name == "Alliance for Clinical Trials in Oncology"  # <source>
    assert _codes(trial.design.phases) == ["PHASE3"]
    assert trial.design.masking is not None and trial.design.masking.code == "NONE"
    assert len(trial.sites) == 158
    assert trial.countries == ("Canada", "Puerto Rico", "United States")
    assert [a.intervention_names for a in trial.arms] == [
        ("Procedure: conventional surgery",),
        ("Procedure: laparoscopic surgery",),
    ]
    assert "\r" not in (trial.arms[0].description or "")
    assert [(m.id, m.term) for m in trial.condition_meshes] == [(None, "Colonic Neoplasms")]
    criteria = trial.eligibility.criteria or ""
    assert criteria.startswith("DISEASE CHARACTERISTICS:\n\n* Clinical diagnosis of primary")
    assert (
        "\n  * Involving a single colon segment:\n    * Right colon from the ileocecal" in criteria
    )
    assert "PATIENT CHARACTERISTICS:\n\nAge:\n\n* 18 and over" in criteria


def test_phase1_phase2_record() -> None:
    trial = _trial("NCT00004454")
    assert _codes(trial.design.phases) == ["PHASE1", "PHASE2"]
    assert [c.field for c in trial.design.phases] == ["clinical_study/phase"] * 2
    assert trial.lead_sponsor is not None and trial.lead_sponsor.org_class is not None
    assert trial.lead_sponsor.org_class.code == "NIH"
    assert [(i.name, i.type.code if i.type else None) for i in trial.interventions] == [
        ("lymphocyte gene therapy", "GENETIC")
    ]
    assert trial.officials[0].name == "Chester B. Whitley"
    assert trial.officials[0].role is not None and trial.officials[0].role.code == "STUDY_CHAIR"


def test_observational_patient_registry() -> None:
    trial = _trial("NCT05381714")
    design = trial.design
    assert design.study_type is not None and design.study_type.code == "OBSERVATIONAL"
    assert design.patient_registry is True
    assert design.observational_model is not None
    assert design.observational_model.code == "CASE_CONTROL"
    assert design.time_perspective is not None
    assert design.time_perspective.code == "CROSS_SECTIONAL"
    assert design.target_duration == "1 Day"
    assert trial.start_date is not None
    assert (trial.start_date.value, trial.start_date.estimated) == ("2022-01-01", False)
    elig = trial.eligibility
    assert elig.healthy_volunteers is True
    assert (
        elig.sampling_method is not None and elig.sampling_method.code == "NON_PROBABILITY_SAMPLE"
    )
    assert elig.study_population == (
        "54 patients with post-COVID-19 and 54 healthy individuals will be included."
    )
    assert elig.maximum_age is not None
    assert (elig.maximum_age.value, elig.maximum_age.unit) == (25.0, "Years")
    assert trial.ipd_sharing is not None and trial.ipd_sharing.sharing is not None
    assert trial.ipd_sharing.sharing.code == "NO"
    assert trial.responsible_party is not None and trial.responsible_party.type is not None
    assert trial.responsible_party.type.code == "PRINCIPAL_INVESTIGATOR"
    assert trial.responsible_party.investigator_name == "Musa Güneş"
    assert trial.oversight is not None and trial.oversight.is_fda_regulated_drug is False
    assert [o.role.code if o.role else None for o in trial.officials] == [
        "STUDY_CHAIR",
        "PRINCIPAL_INVESTIGATOR",
        "STUDY_DIRECTOR",
    ]


def test_record_with_results_and_na_ages() -> None:
    trial = _trial("NCT00493064")
    assert trial.has_results is True
    assert trial.results_first_posted is not None
    assert trial.results_first_posted.value == "2018-12-21"
    assert _codes(trial.design.phases) == ["PHASE2", "PHASE3"]
    assert trial.design.allocation is not None and trial.design.allocation.code == "NA"
    assert trial.design.intervention_model is not None
    assert trial.design.intervention_model.code == "SINGLE_GROUP"
    assert trial.eligibility.minimum_age is None and trial.eligibility.maximum_age is None
    assert trial.arms[0].intervention_names == (
        "Drug: Nicotinic acid",
        "Drug: Prednisolone acetate",
    )
    assert trial.interventions[0].other_names == ("Niacin",)
    assert trial.design.enrollment_count == 63 and trial.design.enrollment_estimated is False


def test_submission_milestones_and_data_release() -> None:
    trial = _trial("NCT00493064")
    dates = {
        name: (date.value, date.estimated) if date else None
        for name in (
            "first_submitted_qc",
            "results_first_submitted",
            "results_first_submitted_qc",
            "disposition_first_posted",
            "data_version",
        )
        for date in [getattr(trial, name)]
    }
    assert dates == {
        "first_submitted_qc": ("2007-06-25", None),
        "results_first_submitted": ("2018-08-27", None),
        "results_first_submitted_qc": ("2018-12-18", None),
        "disposition_first_posted": None,
        "data_version": ("2023-02-03", None),  # "ClinicalTrials.gov processed this data on …"
    }
    assert trial.results_first_submitted is not None
    assert trial.results_first_submitted.field == "clinical_study/results_first_submitted"


def test_disposition_dates_and_an_unreadable_download_date() -> None:
    (trial,) = read_text(
        _minimal(
            "<required_header><download_date>processed whenever</download_date></required_header>"
            "<disposition_first_submitted>February 18, 2011</disposition_first_submitted>"
            "<disposition_first_submitted_qc>March 1, 2011</disposition_first_submitted_qc>"
            '<disposition_first_posted type="Estimate">February 25, 2011</disposition_first_posted>'
        ),
        "d.xml",
    )
    assert isinstance(trial, Trial), trial
    assert trial.disposition_first_submitted is not None
    assert trial.disposition_first_submitted.value == "2011-02-18"
    assert trial.disposition_first_submitted_qc is not None
    assert trial.disposition_first_submitted_qc.value == "2011-03-01"
    assert trial.disposition_first_posted is not None
    assert (trial.disposition_first_posted.value, trial.disposition_first_posted.estimated) == (
        "2011-02-25",
        True,
    )
    assert trial.data_version is None  # metadata of the download: left out, not an error


def test_site_contacts_investigators_and_central_contact() -> None:
    trial = _trial("NCT00461643")
    assert trial.overall_status is not None and trial.overall_status.code == "UNKNOWN"
    assert trial.last_known_status is not None and trial.last_known_status.code == "RECRUITING"
    assert trial.primary_completion_date is not None
    assert trial.primary_completion_date.estimated is True  # type="Anticipated"
    (central,) = trial.central_contacts
    assert (central.name, central.email) == ("Stefano Palomba, MD", "stefanopalomba@tin.it")
    assert central.role is not None and central.role.code == "CONTACT"
    site = trial.sites[0]
    assert site.status is not None and site.status.code == "RECRUITING"
    assert [(c.name, c.role.code if c.role else None) for c in site.contacts] == [
        ("Ingrid Tomaino, MD", "CONTACT"),
        ("Stefano Palomba, MD", "PRINCIPAL_INVESTIGATOR"),
    ]
    assert trial.arms[0].intervention_names == (
        "Drug: Clomiphene citrate, metformin, metformin plus clomiphene citrate, gonadotropins",
    )


def test_expanded_access_record() -> None:
    trial = _trial("NCT00495066")
    assert trial.design.study_type is not None
    assert trial.design.study_type.code == "EXPANDED_ACCESS"
    assert trial.overall_status is not None and trial.overall_status.code == "NO_LONGER_AVAILABLE"
    assert trial.removed_countries == ("Argentina", "Canada", "Puerto Rico", "United States")
    assert trial.see_also_links[0].label == "BMS Clinical Trials Disclosure"


def test_withheld_record_with_pre_2017_elements() -> None:
    trial = _trial("NCT01827488")
    assert trial.overall_status is not None and trial.overall_status.code == "WITHHELD"
    assert trial.design.study_type is None  # "N/A" maps to no study type
    assert _codes(trial.design.phases) == ["NA"]
    assert trial.first_submitted is not None
    assert trial.first_submitted.field == "clinical_study/firstreceived_date"
    assert trial.last_update_submitted is not None
    assert trial.last_update_submitted.value == "2013-06-30"
    assert trial.responsible_party is not None
    assert trial.responsible_party.old_name_title == "[Redacted]"


def test_textblocks_match_the_api_v2_markdown_of_the_same_snapshot() -> None:
    xml = _trial("NCT00492635")
    (json_trial,) = ctgov_json.read_text(
        (FIXTURES / "NCT00492635.v2.json").read_text(encoding="utf-8"), "NCT00492635.v2.json"
    )
    assert isinstance(json_trial, Trial)
    assert xml.brief_summary == json_trial.brief_summary
    assert xml.eligibility.criteria == json_trial.eligibility.criteria
    assert "Life expectancy \\<3 years" in (xml.eligibility.criteria or "")


# --- pieces ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("August 2015", "2015-08"),
        ("August 15, 2015", "2015-08-15"),
        ("August 5, 2015", "2015-08-05"),
        ("2015-08-15", "2015-08-15"),
        ("2015-08", "2015-08"),
        ("Jan 2001", "2001-01"),
        ("Sept. 3, 2009", "2009-09-03"),
        ("3 March 2010", "2010-03-03"),
        ("2004", "2004"),
    ],
)
def test_dates_keep_the_written_precision(text: str, iso: str) -> None:
    assert parse_xml_date(text) == iso


@pytest.mark.parametrize("text", ["February 30, 2015", "Smarch 2015", "2015-13", "soon"])
def test_bad_dates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_xml_date(text)


def test_textblock_dedents_joins_wrapped_lines_and_makes_markdown_lists() -> None:
    raw = (
        "\n        Inclusion Criteria:\r\n\r\n"
        "          -  Adults with a condition that is described on a line that\r\n"
        "             wraps onto the next line\r\n\r\n"
        "               -  nested item\r\n\r\n"
        "          1. numbered one\r\n\r\n"
        "         10. numbered ten\r\n\r\n"
        "        A paragraph that is\r\n        wrapped too.\r\n      "
    )
    assert textblock_to_text(raw) == (
        "Inclusion Criteria:\n\n"
        "* Adults with a condition that is described on a line that wraps onto the next line\n"
        "  * nested item\n"
        "1. numbered one\n"
        "10. numbered ten\n\n"
        "A paragraph that is wrapped too."
    )
    assert textblock_to_text("\n      \n   ") is None


def test_unknown_display_value_is_kept_upper_snake() -> None:
    assert upper_snake("Foo Bar") == "FOO_BAR"
    (trial,) = read_text(
        _minimal("<overall_status>Foo Bar</overall_status><phase>Phase 5</phase>"), "x.xml"
    )
    assert isinstance(trial, Trial)
    assert trial.overall_status is not None and trial.overall_status.code == "FOO_BAR"
    assert _codes(trial.design.phases) == ["PHASE_5"]


def test_lookup_ignores_case_and_spacing() -> None:
    (trial,) = read_text(
        _minimal("<study_design_info><allocation>non-randomized</allocation></study_design_info>"),
        "x.xml",
    )
    assert isinstance(trial, Trial)
    assert trial.design.allocation is not None
    assert trial.design.allocation.code == "NON_RANDOMIZED"


@pytest.mark.parametrize(
    ("design", "expected"),
    [
        (
            "Allocation: Randomized, Endpoint Classification: Safety/Efficacy Study, Intervention "
            "Model: Parallel Assignment, Masking: Double Blind (Subject, Caregiver, Investigator, "
            "Outcomes Assessor), Primary Purpose: Treatment",
            ("RANDOMIZED", "PARALLEL", "DOUBLE", "TREATMENT", None, None),
        ),
        (
            "Treatment, Randomized, Double Blind (Subject, Investigator), Placebo Control, "
            "Parallel Assignment, Efficacy Study",
            ("RANDOMIZED", "PARALLEL", "DOUBLE", "TREATMENT", None, None),
        ),
        (
            "Observational Model: Case-Only, Time Perspective: Prospective",
            (None, None, None, None, "CASE_ONLY", "PROSPECTIVE"),
        ),
        ("N/A", (None, None, None, None, None, None)),
    ],
)
def test_old_study_design_strings(design: str, expected: tuple[str | None, ...]) -> None:
    (trial,) = read_text(_minimal(f"<study_design>{design}</study_design>"), "x.xml")
    assert isinstance(trial, Trial)
    d = trial.design
    got = tuple(
        c.code if c else None
        for c in (
            d.allocation,
            d.intervention_model,
            d.masking,
            d.primary_purpose,
            d.observational_model,
            d.time_perspective,
        )
    )
    assert got == expected
    if "Subject" in design:
        assert "PARTICIPANT" in _codes(d.who_masked)
        assert all(c.field == "clinical_study/study_design" for c in d.who_masked)


def test_masking_with_who_masked() -> None:
    (trial,) = read_text(
        _minimal(
            "<study_design_info><masking>Quadruple (Participant, Care Provider, Investigator, "
            "Outcomes Assessor)</masking></study_design_info>"
        ),
        "x.xml",
    )
    assert isinstance(trial, Trial)
    assert trial.design.masking is not None and trial.design.masking.code == "QUADRUPLE"
    assert _codes(trial.design.who_masked) == [
        "PARTICIPANT",
        "CARE_PROVIDER",
        "INVESTIGATOR",
        "OUTCOMES_ASSESSOR",
    ]


def test_wrapper_with_several_studies() -> None:
    one = _minimal("", "NCT00000001")
    two = _minimal("", "NCT00000002")
    results = list(
        read_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<studies>{one}{two}</studies>', "w.xml")
    )
    assert [r.nct_id for r in results if isinstance(r, Trial)] == ["NCT00000001", "NCT00000002"]


def test_mapping_file_is_found_and_has_a_section_per_element() -> None:
    assert mapping_path("ctgov-xml-enums.json").is_file()
    tables = load_json("ctgov-xml-enums.json")
    for section in ("overall_status", "phase", "masking", "intervention_type", "agency_class"):
        assert all(isinstance(v, str | None) for v in tables[section].values())


def test_every_enum_in_the_xml_tables_is_in_the_api_v2_code_table() -> None:
    code_table = load_json("ctgov-enums.json")["enums"]
    known = {code for table in code_table.values() for code in table}
    not_codes = {"enrollment_type", "date_type"}  # these become booleans (estimated), not codes
    tables = load_json("ctgov-xml-enums.json")
    missing = {
        (section, code)
        for section, table in tables.items()
        if not section.startswith("_") and section not in not_codes
        for code in table.values()
        if code is not None and code not in known
    }
    assert missing == set()


# --- errors ------------------------------------------------------------------------------------


def test_malformed_xml_is_one_error_naming_the_line() -> None:
    error = _one_error("<clinical_study>\n<id_info>\n<nct_id>NCT01234567</id_info>\n")
    assert error.file == "bad.xml" and error.record is None
    assert error.message.startswith("malformed XML:")
    assert re.search(r"line \d+", error.message)


def test_unsafe_xml_is_refused() -> None:
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaa">]><clinical_study>&a;</clinical_study>'
    error = _one_error(bomb)
    assert "unsafe XML" in error.message


def test_missing_nct_id() -> None:
    error = _one_error(_minimal("", nct_id=None))
    assert error.field == "clinical_study/id_info/nct_id"
    assert error.record == "#1"
    assert "no NCT id" in error.message


def test_impossible_date_names_the_xml_path() -> None:
    error = _one_error(_minimal("<start_date>February 30, 2015</start_date>"))
    assert (error.record, error.field) == ("NCT01234567", "clinical_study/start_date")
    assert "impossible date" in error.message


def test_unreadable_date_names_the_xml_path() -> None:
    error = _one_error(_minimal('<completion_date type="Actual">someday</completion_date>'))
    assert error.field == "clinical_study/completion_date"


def test_not_clinical_trials_xml() -> None:
    error = _one_error("<html><body/></html>")
    assert "no <clinical_study>" in error.message


def test_a_bad_record_does_not_lose_its_neighbours() -> None:
    good = _minimal("", "NCT00000001")
    bad = _minimal("<enrollment>many</enrollment>", "NCT00000002")
    results = list(read_text(f"<studies>{good}{bad}</studies>", "w.xml"))
    assert isinstance(results[0], Trial)
    assert isinstance(results[1], RecordError)
    assert results[1].field == "clinical_study/enrollment"


# --- the whole corpus ----------------------------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS_XML.is_dir(), reason=f"shared corpus not present at {CORPUS_XML}")
def test_every_corpus_record_reads_without_errors() -> None:
    files = sorted(CORPUS_XML.glob("*.xml"))
    assert files
    errors: list[str] = []
    unknown_codes: set[tuple[str, str]] = set()
    tables = ctgov_xml.enum_tables()
    known = {v for table in tables.exact.values() for v in table.values() if v}
    for path in files:
        for result in _read(path):
            if isinstance(result, RecordError):
                errors.append(str(result))
                continue
            assert result.nct_id == path.stem
            for code in _all_codes(result):
                if code.code not in known:
                    unknown_codes.add((code.field, code.code))
    assert errors == []
    assert unknown_codes == set()


def _all_codes(value: Any) -> list[Any]:
    from pydantic import BaseModel

    from fhirconv.model import Code

    if isinstance(value, Code):
        return [value]
    if isinstance(value, BaseModel):
        return [c for name in type(value).model_fields for c in _all_codes(getattr(value, name))]
    if isinstance(value, tuple):
        return [c for item in value for c in _all_codes(item)]
    return []


# --- the same study in both formats -----------------------------------------------------------


def _age(limit: Any) -> tuple[float, str] | None:
    return None if limit is None else (limit.value, limit.unit)


def _code(code: Any) -> str | None:
    return None if code is None else str(code.code)


# Facts that a snapshot-to-snapshot change does not explain away when both snapshots are the same
# version of the record; when the JSON snapshot is a later version (later last-update date), the
# sponsor may have edited these fields, and a difference is an allowed, reported exception.
FACTS: dict[str, Callable[[Trial], object]] = {
    "nct_id": lambda t: t.nct_id,
    "org_study_id": lambda t: t.org_study_id,
    "brief_title": lambda t: " ".join((t.brief_title or "").split()),
    "study_type": lambda t: _code(t.design.study_type),
    "phases": lambda t: tuple(c.code for c in t.design.phases),
    "conditions": lambda t: frozenset(t.conditions),
    "lead_sponsor": lambda t: t.lead_sponsor.name if t.lead_sponsor else None,
    "arm_labels": lambda t: tuple(a.label for a in t.arms),
    "arm_intervention_names": lambda t: tuple(a.intervention_names for a in t.arms),
    "interventions": lambda t: frozenset((_code(i.type), i.name) for i in t.interventions),
    "sex": lambda t: _code(t.eligibility.sex),
    "minimum_age": lambda t: _age(t.eligibility.minimum_age),
    "maximum_age": lambda t: _age(t.eligibility.maximum_age),
    "first_submitted_qc": lambda t: t.first_submitted_qc.value if t.first_submitted_qc else None,
    "results_first_submitted": lambda t: (
        t.results_first_submitted.value if t.results_first_submitted else None
    ),
}
NEVER_CHANGES = {"nct_id"}


def _overlap_pairs() -> list[tuple[str, Path, Path]]:
    pairs = [("fixture", FIXTURES / "NCT00492635.xml", FIXTURES / "NCT00492635.v2.json")]
    if CORPUS_XML.is_dir() and CORPUS_V2.is_dir():
        shared = sorted(
            {p.stem for p in CORPUS_XML.glob("NCT*.xml")}
            & {p.stem for p in CORPUS_V2.glob("*.json")}
        )
        pairs += [
            ("corpus", CORPUS_XML / f"{nct}.xml", CORPUS_V2 / f"{nct}.json") for nct in shared
        ]
    return pairs


def test_overlap_xml_and_api_v2_agree(capsys: pytest.CaptureFixture[str]) -> None:
    pairs = _overlap_pairs()
    agree = dict.fromkeys(FACTS, 0)
    exceptions: list[str] = []
    failures: list[str] = []
    for origin, xml_path, json_path in pairs:
        (xml_trial,) = _read(xml_path)
        (json_trial,) = ctgov_json.read_text(json_path.read_text(encoding="utf-8"), str(json_path))
        assert isinstance(xml_trial, Trial), xml_trial
        assert isinstance(json_trial, Trial), json_trial
        xml_update = xml_trial.last_update_submitted
        json_update = json_trial.last_update_submitted
        edited_since = (
            xml_update is not None
            and json_update is not None
            and json_update.value > xml_update.value
        )
        for name, fact in FACTS.items():
            mine, theirs = fact(xml_trial), fact(json_trial)
            if mine == theirs:
                agree[name] += 1
                continue
            line = f"{origin} {xml_trial.nct_id} {name}: xml={mine!r} json={theirs!r}"
            if edited_since and name not in NEVER_CHANGES:
                exceptions.append(
                    f"{line} (record updated {xml_update.value if xml_update else '?'} → "
                    f"{json_update.value if json_update else '?'})"
                )
            else:
                failures.append(line)
    report = [f"{len(pairs)} XML/API v2 pairs ({sum(o == 'corpus' for o, *_ in pairs)} corpus)"]
    report += [f"  {name:<24} {count}/{len(pairs)} agree" for name, count in agree.items()]
    report += [f"  allowed: {e}" for e in exceptions]
    with capsys.disabled():
        print("\n" + "\n".join(report))
    assert failures == [], "\n".join(report + failures)
