"""Failure classes found by reading the missed match-dev patients (issue 9), each with sentences
written for these tests (not taken from a registry), and adversarial sentences where the same
words must not decide."""

from __future__ import annotations

from typing import Any

from fhirconv.mapping import MappingContext
from fhirconv.mapping.group import to_group
from fhirconv.match import Study, match
from fhirconv.model import Eligibility, MeshTerm, SourceRef, Trial
from tests.test_match import (
    OPTIONS,
    UCUM,
    condition,
    lab,
    outcome,
    patient,
    record,
    statement,
    study_from,
)
from tests.test_verdict_rule import exclusion, inclusion, lab_with_range, verdict

Json = dict[str, Any]
LOINC = "http://loinc.org"


def blood_pressure(oid: str, systolic: float, diastolic: float, text: str) -> Json:
    def component(code: str, value: float) -> Json:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        }

    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "85354-9"}], "text": text},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-05-25",
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }


def eye_drops(mid: str) -> Json:
    drops = statement(mid, "10600", "timolol 0.5% ophthalmic solution", 1, "[drp]", 2)
    drops["dosage"][0]["route"] = {"text": "ophthalmic"}
    return drops


MAN = patient(gender="male")


# --- drug classes ---------------------------------------------------------------------------------


def test_a_rapid_acting_insulin_is_mealtime_insulin() -> None:
    text = exclusion("Currently taking mealtime insulin")
    aspart = statement("asp", "51428", "insulin aspart", 6, "[iU]", 3)
    assert verdict(text, aspart).verdict == "ineligible"


def test_a_basal_insulin_is_not_mealtime_insulin() -> None:
    text = exclusion("Currently taking mealtime insulin")
    glargine = statement("gla", "274783", "insulin glargine", 20, "[iU]")
    assert verdict(text, glargine).verdict != "ineligible"


def test_an_oral_beta_blocker_excludes_despite_an_eye_drop_exception() -> None:
    text = exclusion("Ongoing beta-blocker therapy (except eye drops)")
    metoprolol = statement("met", "6918", "metoprolol tartrate 50 MG", 50, "mg", 2)
    result = verdict(text, metoprolol)
    assert result.verdict == "ineligible"
    assert outcome(result, "Ongoing beta-blocker").evidence == ["met"]


def test_beta_blocker_eye_drops_are_the_named_exception() -> None:
    text = exclusion("Ongoing beta-blocker therapy (except eye drops)")
    assert verdict(text, eye_drops("tim")).verdict != "ineligible"


def test_a_route_exception_after_a_single_drug_is_not_absorbed() -> None:
    # an ingredient has no route in its code: "timolol (except eye drops)" cannot be checked
    text = exclusion("Timolol (except eye drops) or metformin")
    oral = statement("tim", "10600", "timolol 10 MG oral tablet", 10)
    assert verdict(text, oral).verdict != "ineligible"


# --- windows --------------------------------------------------------------------------------------


def test_relation_words_belong_to_the_window() -> None:
    text = exclusion("Use of systemic corticosteroids within 2 months before enrolment")
    prednisone = statement("pred", "8640", "prednisone 10 MG", 10, start="2025-03-01")
    prednisone["status"] = "completed"
    prednisone["effectivePeriod"]["end"] = "2025-05-01"
    result = verdict(text, prednisone)
    assert result.verdict == "ineligible"


def test_whichever_is_longer_decides_only_inside_the_written_window() -> None:
    text = exclusion(
        "Use of an anti-obesity medication, or within 14 days or 5 half-lives, whichever is"
        " longer, before randomization"
    )
    taking = statement("phen", "", "phentermine 37.5 MG oral tablet", 37.5)
    assert verdict(text, taking).verdict == "ineligible"
    stopped = statement("phen", "", "phentermine 37.5 MG oral tablet", 37.5, start="2025-01-01")
    stopped["status"] = "completed"
    stopped["effectivePeriod"]["end"] = "2025-05-01"  # 31 days: outside 14 days, maybe not 5 t½
    result = verdict(text, stopped)
    assert result.verdict != "ineligible"
    assert outcome(result, "Use of an anti-obesity").result == "unknown"


# --- vital signs: position, reversed bounds, differences ------------------------------------------


def test_a_position_named_in_the_criterion_is_read_from_that_position_only() -> None:
    text = exclusion("Seated diastolic blood pressure > 95 mmHg")
    standing = blood_pressure("bp", 150, 99, "Blood pressure, standing")
    assert verdict(text, standing).verdict != "ineligible"
    seated = blood_pressure("bp", 150, 99, "Blood pressure, sitting, after 5 minutes rest")
    result = verdict(text, seated)
    assert result.verdict == "ineligible"
    assert outcome(result, "Seated diastolic").evidence == ["bp"]


def test_a_reading_without_a_position_still_answers_a_positioned_criterion() -> None:
    text = exclusion("Supine systolic blood pressure >= 160 mmHg (one recheck is allowed)")
    result = verdict(text, blood_pressure("bp", 165, 90, "Blood pressure"))
    assert result.verdict == "ineligible"


def test_two_bounds_around_the_name_are_both_required() -> None:
    text = inclusion("85 ≤ seated SBP < 150 mmHg")
    assert verdict(text, blood_pressure("bp", 150, 80, "Sitting BP")).verdict == "ineligible"
    assert verdict(text, blood_pressure("bp", 149, 80, "Sitting BP")).verdict != "ineligible"


def test_a_difference_between_readings_is_not_the_reading() -> None:
    text = exclusion("Systolic pressure difference between the two arms is SBP > 15 mmHg")
    assert verdict(text, blood_pressure("bp", 140, 80, "Blood pressure")).verdict != "ineligible"


# --- analyte names, notes, "A or B and C" ---------------------------------------------------------


def test_an_abbreviation_after_its_long_name_is_one_name() -> None:
    text = exclusion("Aspartate aminotransferase (AST) > 3 x ULN")
    ast = lab("ast", "1920-8", 160, "U/L", "2025-05-20")
    ast["referenceRange"] = [{"high": {"value": 40, "unit": "U/L", "system": UCUM, "code": "U/L"}}]
    assert verdict(text, ast).verdict == "ineligible"


def test_an_advisory_note_does_not_keep_the_criterion_from_deciding() -> None:
    text = exclusion(
        "Corrected QT interval (QTcF) > 480 ms. Note: a value above 480 ms should be confirmed"
        " by a repeat ECG before the patient is referred to cardiology."
    )
    assert verdict(text, lab("qt", "8636-3", 495, "ms", "2025-05-20")).verdict == "ineligible"


def test_a_note_that_admits_patients_keeps_the_criterion_open() -> None:
    text = exclusion("QTcF > 480 ms. Note: patients with a pacemaker are eligible.")
    assert verdict(text, lab("qt", "8636-3", 495, "ms", "2025-05-20")).verdict != "ineligible"


def test_free_testosterone_is_not_total_testosterone() -> None:
    text = inclusion("Free testosterone < 65 pg/mL")
    total = lab("tt", "2986-8", 300, "ng/dL", "2025-05-20")
    result = verdict(text, total, who=MAN)
    assert outcome(result, "Free testosterone").result == "unknown"


A_OR_B_AND_C = inclusion(
    "Total testosterone below 2.5 ng/mL (below 8.7 nmol/L) or testosterone 2.5-3.5 ng/mL and"
    " free testosterone below 65 pg/mL"
)


def test_a_or_b_and_c_fails_when_both_readings_fail() -> None:
    total = lab("tt", "2986-8", 3.0, "ng/mL", "2025-05-20")
    free = lab("ft", "2991-8", 80, "pg/mL", "2025-05-20")
    assert verdict(A_OR_B_AND_C, total, free, who=MAN).verdict == "ineligible"


def test_a_or_b_and_c_holds_when_the_second_branch_holds() -> None:
    total = lab("tt", "2986-8", 3.0, "ng/mL", "2025-05-20")
    free = lab("ft", "2991-8", 50, "pg/mL", "2025-05-20")
    assert verdict(A_OR_B_AND_C, total, free, who=MAN).verdict != "ineligible"


def test_a_or_b_and_c_is_unknown_when_the_two_readings_disagree() -> None:
    # A holds (2.0 < 2.5) but C fails: "A or (B and C)" is met, "(A or B) and C" is not
    total = lab("tt", "2986-8", 2.0, "ng/mL", "2025-05-20")
    free = lab("ft", "2991-8", 80, "pg/mL", "2025-05-20")
    result = verdict(A_OR_B_AND_C, total, free, who=MAN)
    assert result.verdict != "ineligible"
    assert outcome(result, "Total testosterone").result == "unknown"


def test_a_unit_restatement_in_brackets_is_not_a_second_requirement() -> None:
    text = inclusion("Hemoglobin at least 10 g/dL (100 g/L)")
    result = verdict(text, lab("hb", "718-7", 10.5, "g/dL", "2025-05-20"))
    assert outcome(result, "Hemoglobin").result == "met"


# --- procedures, postpartum, history lists, units, list layout ------------------------------------


def procedure(pid: str, system: str, code: str, when: str, status: str = "completed") -> Json:
    return {
        "resourceType": "Procedure",
        "id": pid,
        "status": status,
        "code": {"coding": [{"system": system, "code": code}], "text": "procedure"},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": when,
    }


SNOMED = "http://snomed.info/sct"
CPT = "http://www.ama-assn.org/go/cpt"


def test_days_postpartum_is_a_delivery_inside_the_window() -> None:
    text = inclusion("Women no more than 10 weeks postpartum at baseline")
    recent = procedure("del", SNOMED, "11466000", "2025-04-20")  # 42 days before 2025-06-01
    assert verdict(text, recent).verdict != "ineligible"
    assert outcome(verdict(text, recent), "Women no more").result in ("met", "unknown")
    old = procedure("del", SNOMED, "177184002", "2025-01-05")  # 147 days
    assert verdict(text, old).verdict == "ineligible"


def test_no_recorded_delivery_is_unknown_not_a_failure() -> None:
    text = inclusion("Must be within 8 weeks postpartum")
    result = verdict(text)
    assert result.verdict != "ineligible"
    assert outcome(result, "Must be within").result == "unknown"


def test_a_recent_epidural_steroid_injection_excludes() -> None:
    text = exclusion("Lumbar epidural steroid injection within 6 weeks before the screening visit")
    recent = procedure("esi", CPT, "62323", "2025-05-10")
    assert verdict(text, recent).verdict == "ineligible"
    old = procedure("esi", CPT, "62323", "2024-11-10")
    assert verdict(text, old).verdict != "ineligible"


def test_a_cervical_injection_is_not_a_lumbar_one() -> None:
    text = exclusion("Lumbar epidural steroid injection within 6 weeks before the screening visit")
    cervical = procedure("esi", CPT, "62321", "2025-05-10")
    assert verdict(text, cervical).verdict != "ineligible"


def test_a_procedure_not_done_never_counts() -> None:
    text = exclusion("Lumbar epidural steroid injection within 6 weeks before the screening visit")
    planned = procedure("esi", CPT, "62323", "2025-05-10", status="not-done")
    assert verdict(text, planned).verdict != "ineligible"


def test_a_history_cue_covers_every_disease_of_its_list() -> None:
    text = exclusion("Past or present schizophrenia, bipolar disorder, or suicidal behaviour")
    remitted = condition("bp", "13746004", "Bipolar disorder", "2012-03-01", "remission")
    result = verdict(text, remitted)
    assert result.verdict == "ineligible"
    assert outcome(result, "Past or present").evidence == ["bp"]


def test_a_remitted_disease_without_a_history_cue_does_not_exclude() -> None:
    text = exclusion("Active bipolar disorder")
    remitted = condition("bp", "13746004", "Bipolar disorder", "2012-03-01", "remission")
    assert verdict(text, remitted).verdict != "ineligible"


def test_a_concentration_written_per_day_is_read_as_per_decilitre() -> None:
    text = inclusion("Fasting glucose below 110 mg/d")
    fasting = lab("fg", "14771-0", 7.0, "mmol/L", "2025-05-20")  # 126 mg/dL
    assert verdict(text, fasting).verdict == "ineligible"


def test_a_daily_dose_keeps_its_unit() -> None:
    text = exclusion("Prednisone more than 7.5 mg/d")
    result = verdict(text, statement("pred", "8640", "prednisone 5 MG", 5, per_day=2))
    assert result.verdict == "ineligible"


def test_a_sub_heading_between_two_numbered_lists_starts_a_new_list() -> None:
    text = (
        "Inclusion Criteria:\n\nAt the first visit\n\n1. Adults aged 30 or over\n\n"
        "At the second visit\n\n1. Fasting glucose below 110 mg/dL\n"
    )
    result = match(
        record(lab("fg", "1558-6", 130, "mg/dL", "2025-05-20")), study_from(text), OPTIONS
    )
    assert result.verdict == "ineligible"
    assert outcome(result, "Fasting glucose").result == "not-met"


# --- text limits read against the structured ones ------------------------------------------------


def study_with_limits(criteria: str, sex: str | None, low: float | None, high: float | None) -> Any:
    study = study_from(criteria)
    structured: list[Json] = []
    if low is not None or high is not None:
        value_range: Json = {}
        if low is not None:
            value_range["low"] = {"value": low, "unit": "years", "system": UCUM, "code": "a"}
        if high is not None:
            value_range["high"] = {"value": high, "unit": "years", "system": UCUM, "code": "a"}
        structured.append(
            {
                "id": "age",
                "code": {"coding": [{"system": LOINC, "code": "30525-0"}], "text": "Age"},
                "valueRange": value_range,
                "exclude": False,
            }
        )
    if sex:
        structured.append(
            {
                "id": "sex",
                "code": {"coding": [{"system": LOINC, "code": "46098-0"}], "text": "Sex"},
                "valueCodeableConcept": {
                    "coding": [
                        {"system": "http://hl7.org/fhir/administrative-gender", "code": sex}
                    ],
                    "text": sex.title(),
                },
                "exclude": False,
            }
        )
    assert study.group is not None
    study.group["characteristic"][:0] = structured
    return study


def test_a_partners_sex_in_a_single_sex_study_does_not_fail_the_patient() -> None:
    text = inclusion("Female and aged 21 or older")
    study = study_with_limits(text, "male", 18, None)
    result = match(record(who=patient(gender="male", birth="1970-01-01")), study, OPTIONS)
    assert result.verdict != "ineligible"
    assert outcome(result, "Female and aged").result == "unknown"


def test_a_text_sex_that_agrees_with_the_structured_one_still_decides() -> None:
    text = inclusion("Men aged 30 or over")
    study = study_with_limits(text, "male", 18, None)
    woman = match(record(who=patient(gender="female", birth="1970-01-01")), study, OPTIONS)
    assert woman.verdict == "ineligible"


def test_a_text_age_that_disagrees_with_a_structured_bound_on_that_side_is_unknown() -> None:
    text = inclusion("Aged 18 to 55 years")
    study = study_with_limits(text, None, 18, 60)
    result = match(record(who=patient(birth="1967-01-01")), study, OPTIONS)  # 58 on 2025-06-01
    assert result.verdict != "ineligible"
    assert outcome(result, "Aged 18 to 55").result == "unknown"


def test_a_text_age_bound_where_the_structured_limit_is_silent_decides() -> None:
    text = inclusion("Aged 18 to 55 years")
    study = study_with_limits(text, None, 18, None)
    result = match(record(who=patient(birth="1967-01-01")), study, OPTIONS)
    assert result.verdict == "ineligible"


# --- "within the normal range" -------------------------------------------------------------------


def test_a_result_above_its_normal_range_fails_a_within_normal_requirement() -> None:
    text = inclusion("Serum potassium within the laboratory normal range")
    high = lab_with_range("k", "2823-3", 5.9, "mmol/L", 3.5, 5.1)
    result = verdict(text, high)
    assert result.verdict == "ineligible"
    assert outcome(result, "Serum potassium").evidence == ["k"]


def test_a_must_be_normal_line_in_the_exclusions_is_a_requirement() -> None:
    text = exclusion("AST must be within normal limits")
    normal = lab_with_range("ast", "1920-8", 30, "U/L", 5, 40)
    assert verdict(text, normal).verdict != "ineligible"
    high = lab_with_range("ast", "1920-8", 55, "U/L", 5, 40)
    assert verdict(text, high).verdict == "ineligible"


def test_a_normal_range_without_a_reference_range_is_unknown() -> None:
    text = inclusion("Serum potassium within the laboratory normal range")
    result = verdict(text, lab("k", "2823-3", 5.9, "mmol/L", "2025-05-20"))
    assert outcome(result, "Serum potassium").result == "unknown"


def test_a_temperature_in_fahrenheit_is_compared_with_a_result_in_celsius() -> None:
    # offset scales (°F, °C) are converted, not multiplied (this used to raise from pint)
    text = exclusion("Body temperature > 100.4 °F at screening")
    result = verdict(text, lab("t", "8310-5", 38.6, "Cel", "2025-05-28"))
    assert result.verdict == "ineligible"
    assert outcome(result, "Body temperature").evidence == ["t"]


# --- "other malignancy …, except …" ---------------------------------------------------------------


def study_of(criteria: str, meshes: tuple[tuple[str, str], ...], names: tuple[str, ...]) -> Study:
    trial = Trial(
        source=SourceRef(file="test", format="ctgov-json"),
        nct_id="NCT00000002",
        conditions=names,
        condition_meshes=tuple(MeshTerm(id=i, term=t) for i, t in meshes),
        eligibility=Eligibility(criteria=criteria),
    )
    return Study("NCT00000002", "", {}, to_group(MappingContext(trial)))


def cancer(cid: str, snomed: str, text: str, onset: str, state: str = "resolved") -> Json:
    return condition(cid, snomed, text, onset, state)


OTHER_CANCER = exclusion(
    "Another malignancy within the past 3 years, except adequately treated basal cell"
    " carcinoma or carcinoma in situ of the cervix"
)
BREAST = study_of(OTHER_CANCER, (("D001943", "Breast Neoplasms"),), ("Breast Cancer",))


def test_another_cancer_inside_the_window_excludes_even_when_resolved() -> None:
    colon = cancer("colon", "363406005", "Malignant neoplasm of colon", "2024-02-01")
    result = match(record(colon), BREAST, OPTIONS)
    assert result.verdict == "ineligible"
    assert outcome(result, "Another malignancy").evidence == ["colon"]


def test_a_named_exception_does_not_exclude() -> None:
    bcc = cancer("bcc", "254701007", "Basal cell carcinoma of skin", "2024-02-01")
    assert match(record(bcc), BREAST, OPTIONS).verdict != "ineligible"


def test_the_studys_own_cancer_is_not_another_one() -> None:
    breast = cancer("br", "254837009", "Malignant neoplasm of breast", "2025-01-10", "active")
    assert match(record(breast), BREAST, OPTIONS).verdict != "ineligible"


def test_another_cancer_before_the_window_does_not_exclude() -> None:
    colon = cancer("colon", "363406005", "Malignant neoplasm of colon", "2019-02-01")
    assert match(record(colon), BREAST, OPTIONS).verdict != "ineligible"


def test_other_cancer_in_a_study_whose_own_condition_has_no_code_never_decides() -> None:
    study = study_of(OTHER_CANCER, (), ("Rare tumour of the kind nobody codes",))
    colon = cancer("colon", "363406005", "Malignant neoplasm of colon", "2024-02-01")
    assert match(record(colon), study, OPTIONS).verdict != "ineligible"


def test_an_exception_the_model_cannot_code_keeps_the_criterion_open() -> None:
    text = exclusion(
        "Another malignancy within the past 3 years, except low-risk localised tumours of any kind"
    )
    study = study_of(text, (("D001943", "Breast Neoplasms"),), ("Breast Cancer",))
    colon = cancer("colon", "363406005", "Malignant neoplasm of colon", "2024-02-01")
    assert match(record(colon), study, OPTIONS).verdict != "ineligible"
