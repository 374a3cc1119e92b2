"""The verdict rule: a patient is "ineligible" only when a criterion whose coded items capture its
whole meaning (or a whole clause of it) is clearly violated. One or more sentences of each failure
class of issue 9, written for these tests (not taken from a registry)."""

from __future__ import annotations

from typing import Any

from fhirconv.match import match
from fhirconv.match.evaluate import MatchResult
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

Json = dict[str, Any]


def inclusion(text: str) -> str:
    return f"Inclusion Criteria:\n\n* {text}\n"


def exclusion(text: str) -> str:
    return f"Exclusion Criteria:\n\n* {text}\n"


def verdict(criteria: str, *resources: Json, who: Json | None = None) -> MatchResult:
    return match(record(*resources, who=who), study_from(criteria), OPTIONS)


def lab_with_range(oid: str, loinc: str, value: float, unit: str, low: float, high: float) -> Json:
    observation = lab(oid, loinc, value, unit, "2025-05-20")
    observation["referenceRange"] = [
        {
            "low": {"value": low, "unit": unit, "system": UCUM, "code": unit},
            "high": {"value": high, "unit": unit, "system": UCUM, "code": unit},
        }
    ]
    return observation


MAN = patient(gender="male")
WOMAN = patient(gender="female")


# --- partial readings never decide ----------------------------------------------------------------


def test_a_threshold_inside_a_longer_clause_does_not_exclude() -> None:
    text = exclusion("Serum creatinine above 2 mg/dL in candidates awaiting a kidney graft")
    result = verdict(text, lab("cr", "2160-0", 3.1, "mg/dL", "2025-05-20"))
    assert result.verdict != "ineligible"
    assert outcome(result, "Serum creatinine").result == "unknown"
    assert outcome(result, "Serum creatinine").evidence == ["cr"]


def test_a_threshold_that_is_the_whole_criterion_excludes() -> None:
    result = verdict(
        exclusion("Serum creatinine > 2 mg/dL"), lab("cr", "2160-0", 3.1, "mg/dL", "2025-05-20")
    )
    assert result.verdict == "ineligible"
    assert outcome(result, "Serum creatinine").evidence == ["cr"]


def test_an_equivalent_loinc_code_in_molar_units_answers_the_criterion() -> None:
    result = verdict(
        exclusion("Serum creatinine > 2 mg/dL"), lab("cr", "14682-9", 260, "umol/L", "2025-05-20")
    )
    assert result.verdict == "ineligible"


# --- sentences that only mention a sex ------------------------------------------------------------


def test_contraception_duty_for_women_does_not_fail_a_man() -> None:
    text = inclusion(
        "Female participants able to conceive agree to use two reliable birth-control methods"
    )
    assert verdict(text, who=MAN).verdict != "ineligible"


def test_sperm_donation_clause_does_not_fail_a_woman() -> None:
    text = inclusion("Men must refrain from donating sperm until 90 days after the last dose")
    assert verdict(text, who=WOMAN).verdict != "ineligible"


def test_pregnancy_test_duty_does_not_fail_a_man() -> None:
    text = inclusion("A negative serum hCG at screening for women who could become pregnant")
    assert verdict(text, who=MAN).verdict != "ineligible"


def test_a_sex_scoped_limit_applies_to_that_sex_only() -> None:
    text = exclusion("QTcF > 470 ms (women); QTcF > 450 ms (men)")
    qtc = lab("q", "8636-3", 460, "ms", "2025-05-20")
    assert verdict(text, qtc, who=MAN).verdict == "ineligible"
    assert verdict(text, qtc, who=WOMAN).verdict != "ineligible"


# --- treatment for a disease is not the disease ---------------------------------------------------


def test_prior_treatment_for_a_disease_does_not_exclude_the_untreated_patient() -> None:
    text = exclusion("Earlier systemic therapy given for type 2 diabetes")
    diabetes = condition("dm", "44054006", "Type 2 diabetes mellitus")
    assert verdict(text, diabetes).verdict != "ineligible"


# --- ranges and relative thresholds ---------------------------------------------------------------


def test_two_sided_range_is_one_requirement_inclusive_at_both_ends() -> None:
    text = inclusion("Body mass index from 20 to 30 kg/m2")
    assert verdict(text, lab("b", "39156-5", 30, "kg/m2", "2025-05-20")).verdict != "ineligible"
    assert verdict(text, lab("b", "39156-5", 31, "kg/m2", "2025-05-20")).verdict == "ineligible"
    assert verdict(text, lab("b", "39156-5", 19.9, "kg/m2", "2025-05-20")).verdict == "ineligible"


def test_times_upper_limit_uses_the_results_own_reference_range() -> None:
    text = exclusion("AST > 2.5 x ULN")
    at_limit = lab_with_range("ast", "1920-8", 100, "U/L", 10, 40)  # exactly 2.5 × ULN
    above = lab_with_range("ast", "1920-8", 104, "U/L", 10, 40)  # 2.6 × ULN
    assert verdict(text, at_limit).verdict != "ineligible"
    result = verdict(text, above)
    assert result.verdict == "ineligible" and "2.6 × ULN" in outcome(result, "AST").reason


def test_times_upper_limit_without_a_reference_range_is_unknown() -> None:
    result = verdict(exclusion("AST > 2.5 x ULN"), lab("ast", "1920-8", 900, "U/L", "2025-05-20"))
    assert outcome(result, "AST").result == "unknown" and result.verdict != "ineligible"


def test_a_bare_number_is_never_compared_with_a_result_in_units() -> None:
    result = verdict(
        exclusion("Platelets < 150,000"), lab("plt", "777-3", 210, "10*3/uL", "2025-05-20")
    )
    assert outcome(result, "Platelets").result == "unknown"
    assert result.verdict != "ineligible"


def test_hba1c_in_mmol_per_mol_is_converted_to_percent() -> None:
    text = inclusion("HbA1c between 7.0% and 10.0%")
    assert verdict(text, lab("a", "59261-8", 64, "mmol/mol", "2025-05-20")).verdict != "ineligible"
    assert verdict(text, lab("a", "59261-8", 97, "mmol/mol", "2025-05-20")).verdict == "ineligible"


def test_a_duration_since_diagnosis_is_not_an_age_limit() -> None:
    text = inclusion("Diabetes diagnosed 2 to 10 years before enrolment")
    assert verdict(text, who=patient(birth="1960-01-01")).verdict != "ineligible"


# --- qualifiers, negation and alternatives --------------------------------------------------------


def test_secondary_form_of_a_disease_is_not_the_disease() -> None:
    text = exclusion("Secondary arterial hypertension")
    essential = condition("htn", "59621000", "Essential hypertension")
    assert verdict(text, essential).verdict != "ineligible"


def test_intolerance_to_a_drug_is_not_taking_it() -> None:
    text = exclusion("Known hypersensitivity to aspirin")
    on_aspirin = statement("asa", "1191", "aspirin", 100)
    assert verdict(text, on_aspirin).verdict != "ineligible"


def test_any_one_of_list_needs_only_one() -> None:
    text = inclusion(
        "At least one of the following: HbA1c >= 6.5%; fasting plasma glucose >= 126 mg/dL"
    )
    result = verdict(
        text,
        lab("a", "4548-4", 7.1, "%", "2025-05-20"),
        lab("g", "1558-6", 101, "mg/dL", "2025-05-20"),
    )
    assert result.verdict != "ineligible"


def test_either_or_inclusion_fails_only_when_every_route_fails() -> None:
    text = inclusion("LDL cholesterol >= 130 mg/dL or triglycerides >= 200 mg/dL")
    one_route = verdict(
        text,
        lab("l", "13457-7", 110, "mg/dL", "2025-05-20"),
        lab("t", "2571-8", 240, "mg/dL", "2025-05-20"),
    )
    assert one_route.verdict != "ineligible"


def test_a_named_exception_is_never_overridden() -> None:
    text = exclusion(
        "Any malignancy in the past 5 years other than treated cutaneous squamous cell carcinoma"
    )
    skin = condition("scc", "254651007", "Squamous cell carcinoma of skin", onset="2023-02-01")
    assert verdict(text, skin).verdict != "ineligible"


def test_refuted_condition_does_not_exclude() -> None:
    text = exclusion("Epilepsy")
    ruled_out = condition("e", "84757009", "Epilepsy", verification="refuted")
    assert verdict(text, ruled_out).verdict != "ineligible"
    assert verdict(text, condition("e", "84757009", "Epilepsy")).verdict == "ineligible"


def test_stopped_medication_does_not_exclude() -> None:
    text = exclusion("Current treatment with warfarin")
    stopped = statement("w", "11289", "warfarin", 5, status="stopped")
    assert verdict(text, stopped).verdict != "ineligible"


def test_an_event_long_ago_is_outside_a_recent_window() -> None:
    text = exclusion("Myocardial infarction within the last 3 months")
    old = condition(
        "mi", "22298006", "Myocardial infarction", onset="2009-07-01", clinical="resolved"
    )
    assert verdict(text, old).verdict != "ineligible"


def test_a_window_written_once_is_not_dropped_from_the_first_items_of_a_list() -> None:
    text = exclusion(
        "Stroke, myocardial infarction or unstable angina within 6 months before screening"
    )
    old_stroke = condition("s", "230690007", "Stroke", onset="2001-05-01", clinical="resolved")
    assert verdict(text, old_stroke).verdict != "ineligible"


# --- whole clauses --------------------------------------------------------------------------------


def test_a_named_definition_clause_decides_its_alternative() -> None:
    text = exclusion("Kidney failure (eGFR < 20 mL/min/1.73m2) or maintenance dialysis")
    low = lab("g", "98979-8", 14, "mL/min/{1.73_m2}", "2025-05-20")
    result = verdict(text, low)
    assert result.verdict == "ineligible"
    assert "read whole" in outcome(result, "Kidney failure").reason


def test_a_conditional_clause_never_decides() -> None:
    text = exclusion("Hemoglobin < 10 g/dL if the participant is older than 12")
    assert verdict(text, lab("h", "718-7", 8, "g/dL", "2025-05-20")).verdict != "ineligible"


def test_missing_data_is_possibly_eligible_never_eligible() -> None:
    result = verdict(inclusion("Hemoglobin >= 10 g/dL"))
    assert result.verdict == "possibly-eligible"


# --- recency, shared units, medication use --------------------------------------------------------


def test_a_result_older_than_the_current_window_never_decides() -> None:
    text = exclusion("Serum creatinine > 2 mg/dL")
    stale = lab("cr", "2160-0", 3.1, "mg/dL", "2024-12-01")  # 182 days before the as-of date
    result = verdict(text, stale)
    assert outcome(result, "Serum creatinine").result == "unknown"
    assert "older than" in outcome(result, "Serum creatinine").reason
    assert result.verdict == "possibly-eligible"


def test_a_bound_written_without_its_unit_borrows_the_next_bounds_unit() -> None:
    text = exclusion("Pulse < 45 or > 110 beats/min")
    slow = lab("hr", "8867-4", 40, "/min", "2025-05-20")
    normal = lab("hr", "8867-4", 72, "/min", "2025-05-20")
    assert verdict(text, slow).verdict == "ineligible"
    assert outcome(verdict(text, normal), "Pulse").result == "not-met"


def test_current_use_of_a_named_drug_is_read_whole_among_alternatives() -> None:
    text = exclusion("Concomitant use of warfarin, or of any other anticoagulant")
    on_warfarin = statement("w", "11289", "warfarin", 5)
    result = verdict(text, on_warfarin)
    assert result.verdict == "ineligible"
    assert outcome(result, "Concomitant use").evidence == ["w"]


# --- found reading Synthea patients against corpus trials -----------------------------------------

HEART_FAILURE = condition("hf", "84114007", "Heart failure")


def test_a_disease_with_a_grade_needs_the_grade() -> None:
    for text in (
        "Heart failure of NYHA class III or IV",
        "NYHA class III-IV heart failure",
        "Congestive heart failure (NYHA class II or higher)",
    ):
        assert verdict(exclusion(text), HEART_FAILURE).verdict != "ineligible", text


def test_diseases_listed_in_brackets_after_a_qualified_head_are_examples() -> None:
    text = exclusion("Unstable, symptomatic systemic illness (heart failure, cirrhosis, cancer)")
    assert verdict(text, HEART_FAILURE).verdict != "ineligible"


def test_a_window_written_after_the_last_event_of_a_list_is_not_dropped() -> None:
    text = exclusion("History of heart failure or stroke within the past 3 months")
    old_failure = condition("hf", "84114007", "Heart failure", onset="2012-01-01")
    assert verdict(text, old_failure).verdict != "ineligible"


def test_a_population_word_keeps_a_disease_from_deciding_alone() -> None:
    text = exclusion("Women suffering from treated or untreated hypertension")
    hypertensive_man = condition("htn", "38341003", "Hypertensive disorder")
    assert verdict(text, hypertensive_man, who=MAN).verdict != "ineligible"


def test_examples_after_e_g_never_decide_alone() -> None:
    text = exclusion("Any disorder slowing gut transit, e.g. scleroderma or heart failure")
    assert verdict(text, HEART_FAILURE).verdict != "ineligible"


def test_a_plain_disease_exclusion_still_excludes() -> None:
    result = verdict(exclusion("Heart failure"), HEART_FAILURE)
    assert result.verdict == "ineligible" and outcome(result, "Heart failure").evidence == ["hf"]
