"""`fhirconv match`: one test per rule, on hand-built patients, for the reference example
(SLE, SELENA-SLEDAI, proteinuria, creatinine in mg/dL and µmol/L, IgA, prednisone dose) and for
synthetic criteria texts run through the same Group mapper."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.convert import convert_inputs
from fhirconv.errors import RecordError
from fhirconv.mapping.context import MappingContext
from fhirconv.mapping.group import to_group
from fhirconv.match import Options, PatientRecord, Study, load_patients, load_studies, match
from fhirconv.match.evaluate import MatchResult
from fhirconv.model import Eligibility, SourceRef, Trial
from tests.conftest import EXAMPLE, REPO

Json = dict[str, Any]
AS_OF = date(2025, 6, 1)
OPTIONS = Options(as_of=AS_OF)
UCUM = "http://unitsofmeasure.org"
SCORE = "https://fhirconv.dev/fhir/CodeSystem/eligibility-score"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


# --- builders -----------------------------------------------------------------------------------


def patient(
    pid: str = "p1", gender: str | None = "female", birth: str | None = "1985-04-12"
) -> Json:
    resource: Json = {"resourceType": "Patient", "id": pid}
    if gender:
        resource["gender"] = gender
    if birth:
        resource["birthDate"] = birth
    return resource


def lab(oid: str, loinc: str, value: float, unit: str, when: str, status: str = "final") -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def sledai(oid: str, value: int, when: str = "2025-05-20") -> Json:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": SCORE, "code": "selena-sledai"}], "text": "SELENA-SLEDAI"},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "valueInteger": value,
    }


def condition(
    cid: str, snomed: str, display: str, onset: str = "2019-03-02",
    clinical: str = "active", verification: str = "confirmed",
) -> Json:  # fmt: skip
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"code": clinical}]},
        "verificationStatus": {"coding": [{"code": verification}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": snomed}], "text": display},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": onset,
    }


def statement(
    mid: str, rxcui: str, name: str, dose: float, unit: str = "mg", per_day: int = 1,
    start: str = "2025-01-10", status: str = "active", timing_code: str | None = None,
) -> Json:  # fmt: skip
    timing: Json = (
        {"code": {"coding": [{"code": timing_code}]}}
        if timing_code
        else {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}}
    )
    return {
        "resourceType": "MedicationStatement",
        "id": mid,
        "status": status,
        "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": rxcui}], "text": name},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": start},
        "dosage": [
            {
                "timing": timing,
                "doseAndRate": [
                    {"doseQuantity": {"value": dose, "unit": unit, "system": UCUM, "code": unit}}
                ],
            }
        ],
    }


def record(*resources: Json, who: Json | None = None) -> PatientRecord:
    person = who or patient()
    return PatientRecord(person, list(resources), {})


@pytest.fixture(scope="module")
def reference() -> Study:
    (result,) = list(convert_inputs([str(EXAMPLE)]))
    assert not isinstance(result, RecordError)
    research = next(r for r in result.resources if r["resourceType"] == "ResearchStudy")
    group = next(r for r in result.resources if r["resourceType"] == "Group")
    return Study("NCT05765006", "", research, group)


def study_from(criteria: str, conditions: tuple[str, ...] = ()) -> Study:
    trial = Trial(
        source=SourceRef(file="test", format="ctgov-json"),
        nct_id="NCT00000001",
        conditions=conditions,
        eligibility=Eligibility(criteria=criteria),
    )
    return Study("NCT00000001", "", {}, to_group(MappingContext(trial)))


def outcome(result: MatchResult, starts: str) -> Any:
    return next(c for c in result.criteria if c.text.startswith(starts))


# --- the reference example ----------------------------------------------------------------------


def good_sle(*extra: Json) -> PatientRecord:
    return record(
        condition("sle", "55464009", "Systemic lupus erythematosus"),
        sledai("sledai", 10),
        lab("uprot", "2889-4", 1.2, "g/(24.h)", "2025-05-18"),
        lab("creat", "2160-0", 88, "umol/L", "2025-05-18"),
        lab("iga", "2458-8", 210, "mg/dL", "2025-05-18"),
        statement("pred", "8640", "prednisone", 10),
        *extra,
    )


def test_reference_candidate_is_possibly_eligible_never_eligible_on_free_text(
    reference: Study,
) -> None:
    result = match(good_sle(), reference, OPTIONS)
    assert result.verdict == "possibly-eligible"
    assert outcome(result, "Sign an informed consent").result == "unknown"
    assert outcome(result, "IgA deficiency").result == "not-met"
    assert outcome(result, "A diagnosis of SLE").result == "met"
    assert outcome(result, "A diagnosis of SLE").evidence == ["sle"]


def test_creatinine_in_umol_per_l_is_converted_but_a_partial_reading_never_excludes(
    reference: Study,
) -> None:
    # The criterion also speaks of treatments, hemodialysis and windows the items do not reach.
    result = match(record(lab("creat", "2160-0", 250, "umol/L", "2025-05-18")), reference, OPTIONS)
    assert result.verdict == "possibly-eligible"
    severe = outcome(result, "Severe lupus nephritis")
    assert severe.result == "unknown" and severe.evidence == ["creat"]
    assert "2.828 mg/dL" in severe.reason and "> 2.5 mg/dL" in severe.reason
    assert "only part of the criterion" in severe.reason


def test_creatinine_in_mg_per_dl_just_below_is_not_excluding(reference: Study) -> None:
    result = match(record(lab("creat", "2160-0", 2.4, "mg/dL", "2025-05-18")), reference, OPTIONS)
    assert outcome(result, "Severe lupus nephritis").result == "unknown"  # rest is free text
    assert result.verdict == "possibly-eligible"


def test_proteinuria_above_six_grams_is_named_but_not_decisive(reference: Study) -> None:
    result = match(record(lab("up", "2889-4", 7, "g/(24.h)", "2025-05-18")), reference, OPTIONS)
    assert result.verdict == "possibly-eligible"
    assert outcome(result, "Severe lupus nephritis").evidence == ["up"]


def test_iga_deficiency_in_g_per_l_excludes(reference: Study) -> None:
    result = match(record(lab("iga", "2458-8", 0.05, "g/L", "2025-05-18")), reference, OPTIONS)
    iga = outcome(result, "IgA deficiency")
    assert iga.result == "met" and result.verdict == "ineligible"


def test_selena_sledai_six_is_unknown_because_a_conditional_second_route_exists(
    reference: Study,
) -> None:
    # "Score ≥6 ... if low complement ... is present": 6 may still qualify by that route.
    result = match(record(sledai("s", 6)), reference, OPTIONS)
    criterion = outcome(result, "SELENA-SLEDAI score ≥8")
    assert criterion.result == "unknown" and criterion.evidence == ["s"]
    assert result.verdict == "possibly-eligible"


def test_selena_sledai_exactly_eight_meets_inclusive_bound(reference: Study) -> None:
    result = match(record(sledai("s", 8)), reference, OPTIONS)
    assert outcome(result, "SELENA-SLEDAI score ≥8").result != "not-met"


def test_prednisone_dose_is_daily_dose_times_frequency(reference: Study) -> None:
    # 2 × 5 mg a day = 10 mg/d: inside 7.5–30; the criterion has an exception clause, so not decisive  # noqa: E501
    result = match(good_sle(), reference, OPTIONS)
    reason = outcome(result, "The history of SLE").reason
    assert "daily dose 10 mg/d" not in reason or "meets" in reason
    two_a_day = record(statement("pred", "8640", "prednisone", 5, per_day=2))
    text = outcome(match(two_a_day, reference, OPTIONS), "The history of SLE").reason
    assert "daily dose 10 mg/d" in text


def test_reference_example_patients_run_from_the_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    bundle = tmp_path / "study.json"
    converted = runner.invoke(app, ["convert", str(EXAMPLE), "-o", str(bundle), "-q"])
    assert converted.exit_code == 0, converted.output
    patients = sorted((REPO / "examples" / "patients").glob("*.json"))
    args = ["match", *map(str, patients), "--study", str(bundle), "--as-of", "2025-06-01"]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    verdicts = {line["patient"]: line["verdict"] for line in lines}
    # sle-nephritis's creatinine is named only in a partly read criterion: never a decision.
    assert verdicts == {"sle-candidate": "possibly-eligible", "sle-nephritis": "possibly-eligible"}
    for line in lines:
        assert set(line) == {"patient", "study", "verdict", "criteria"}
        for criterion in line["criteria"]:
            assert set(criterion) == {"text", "exclude", "result", "evidence", "reason"}
    table = runner.invoke(app, args)
    assert "sle-nephritis × NCT05765006: POSSIBLY-ELIGIBLE" in table.stdout
    assert "creat-2" in table.stdout


# --- rules on synthetic criteria ----------------------------------------------------------------


def test_missing_lab_is_unknown_never_met() -> None:
    study = study_from("Inclusion Criteria:\n\n* Hemoglobin ≥ 9 g/dL\n")
    result = match(record(), study, OPTIONS)
    criterion = outcome(result, "Hemoglobin")
    assert criterion.result == "unknown" and "no final" in criterion.reason
    assert result.verdict == "possibly-eligible"


def test_unconvertible_unit_is_unknown_not_a_guess() -> None:
    study = study_from("Inclusion Criteria:\n\n* Hemoglobin ≥ 9 g/dL\n")
    result = match(record(lab("hb", "718-7", 6.0, "mmol/L", "2025-05-01")), study, OPTIONS)
    criterion = outcome(result, "Hemoglobin")
    assert criterion.result == "unknown" and "not convertible" in criterion.reason


def test_strict_and_inclusive_bounds_as_written() -> None:
    strict = study_from("Exclusion Criteria:\n\n* ALT > 100 U/L\n")
    inclusive = study_from("Exclusion Criteria:\n\n* ALT ≥ 100 U/L\n")
    at_bound = record(lab("alt", "1742-6", 100, "U/L", "2025-05-01"))
    assert outcome(match(at_bound, strict, OPTIONS), "ALT").result == "not-met"
    assert outcome(match(at_bound, inclusive, OPTIONS), "ALT").result == "met"


def test_lab_older_than_the_window_is_missing() -> None:
    study = study_from("Exclusion Criteria:\n\n* HbA1c > 9% within 3 months prior to screening\n")
    old = record(lab("a1c", "4548-4", 10.0, "%", "2025-01-15"))
    recent = record(lab("a1c", "4548-4", 10.0, "%", "2025-04-15"))
    stale = outcome(match(old, study, OPTIONS), "HbA1c")
    assert stale.result == "unknown" and "older than" in stale.reason
    assert outcome(match(recent, study, OPTIONS), "HbA1c").result == "met"


def test_only_final_observations_count() -> None:
    study = study_from("Exclusion Criteria:\n\n* ALT > 100 U/L\n")
    preliminary = record(lab("alt", "1742-6", 300, "U/L", "2025-05-01", status="preliminary"))
    assert outcome(match(preliminary, study, OPTIONS), "ALT").result == "unknown"


def test_age_from_birth_date_at_as_of() -> None:
    study = study_from("Inclusion Criteria:\n\n* Aged 18 years or older\n")
    turns_18_after = record(who=patient(birth="2007-06-02"))
    turns_18_on = record(who=patient(birth="2007-06-01"))
    assert outcome(match(turns_18_after, study, OPTIONS), "Aged").result == "not-met"
    assert outcome(match(turns_18_on, study, OPTIONS), "Aged").result == "met"


def test_partial_birth_date_that_leaves_age_open_is_unknown() -> None:
    study = study_from("Inclusion Criteria:\n\n* Aged 18 years or older\n")
    open_year = record(who=patient(birth="2007"))
    clear_year = record(who=patient(birth="1990"))
    assert outcome(match(open_year, study, OPTIONS), "Aged").result == "unknown"
    assert outcome(match(clear_year, study, OPTIONS), "Aged").result == "met"


def test_resolved_or_refuted_condition_is_not_present() -> None:
    study = study_from("Exclusion Criteria:\n\n* Epilepsy\n")
    resolved = record(condition("c", "84757009", "Epilepsy", clinical="resolved"))
    refuted = record(condition("c", "84757009", "Epilepsy", verification="refuted"))
    error = record(condition("c", "84757009", "Epilepsy", verification="entered-in-error"))
    active = record(condition("c", "84757009", "Epilepsy"))
    assert outcome(match(resolved, study, OPTIONS), "Epilepsy").result == "not-met"
    assert outcome(match(refuted, study, OPTIONS), "Epilepsy").result == "not-met"
    assert outcome(match(error, study, OPTIONS), "Epilepsy").result == "unknown"
    assert outcome(match(active, study, OPTIONS), "Epilepsy").result == "met"


def test_history_of_counts_a_resolved_condition() -> None:
    study = study_from("Exclusion Criteria:\n\n* History of epilepsy\n")
    resolved = record(condition("c", "84757009", "Epilepsy", clinical="resolved"))
    assert outcome(match(resolved, study, OPTIONS), "History").result == "met"


def test_negated_inclusion_condition_requires_absence() -> None:
    study = study_from("Inclusion Criteria:\n\n* No history of stroke\n")
    result = match(
        record(condition("s", "230690007", "Stroke", onset="2020-01-01")), study, OPTIONS
    )
    assert outcome(result, "No history").result == "not-met"
    assert result.verdict == "ineligible"


def test_condition_duration_window_at_least_six_months() -> None:
    study = study_from(
        "Inclusion Criteria:\n\n* Diagnosis of type 2 diabetes for at least 6 months before screening\n"  # noqa: E501
    )
    recent = record(condition("d", "44054006", "Type 2 diabetes", onset="2025-03-01"))
    longstanding = record(condition("d", "44054006", "Type 2 diabetes", onset="2020-03-01"))
    # A recorded onset 3 months ago is no proof the disease is not older (an EHR's onset is often
    # when it was first coded here): a required diagnosis never turns a patient away.
    assert outcome(match(recent, study, OPTIONS), "Diagnosis").result == "unknown"
    assert "needs review" in outcome(match(recent, study, OPTIONS), "Diagnosis").reason
    assert outcome(match(longstanding, study, OPTIONS), "Diagnosis").result == "met"


def test_or_alternatives_are_not_an_and() -> None:
    study = study_from("Inclusion Criteria:\n\n* ECOG 0-1 or Karnofsky ≥ 70\n")
    group = study.group or {}
    items = [c for c in group["characteristic"] if "-item-" in c.get("id", "")]
    groups = {
        e["valueString"]
        for c in items
        for e in c["extension"]
        if e["url"].endswith("alternative-group")
    }
    assert len(items) == 2 and len(groups) == 1
    kps = {
        "resourceType": "Observation", "id": "kps", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "89243-0"}]},
        "effectiveDateTime": "2025-05-01", "valueInteger": 80,
    }  # fmt: skip
    result = match(record(kps), study, OPTIONS)
    assert outcome(result, "ECOG").result == "met"  # ECOG unknown, Karnofsky met: any suffices


def test_daily_dose_from_timing_code_and_prednisone_equivalents() -> None:
    study = study_from("Inclusion Criteria:\n\n* Prednisone (or equivalent) ≤ 10 mg/day\n")
    # methylprednisolone 4 mg BID = 8 mg/d = 10 mg prednisone-equivalent: meets ≤ 10
    methylpred = record(statement("m", "6902", "methylprednisolone", 4, timing_code="BID"))
    result = match(methylpred, study, OPTIONS)
    criterion = outcome(result, "Prednisone")
    assert criterion.result == "met", criterion.reason
    assert "10 mg/d prednisone-equivalent" in criterion.reason
    dexa = record(statement("d", "3264", "dexamethasone", 4))  # ≈ 26.7 mg prednisone
    assert outcome(match(dexa, study, OPTIONS), "Prednisone").result == "not-met"


def test_dose_without_mass_unit_is_unknown() -> None:
    study = study_from("Inclusion Criteria:\n\n* Prednisone ≤ 10 mg/day\n")
    tablets = record(statement("t", "8640", "prednisone", 2, unit="{tbl}"))
    assert outcome(match(tablets, study, OPTIONS), "Prednisone").result == "unknown"


def test_pregnancy_exclusion_uses_gender_and_status() -> None:
    study = study_from("Exclusion Criteria:\n\n* Pregnant or breastfeeding women\n")
    male = record(who=patient(gender="male"))
    female = record()
    assert outcome(match(male, study, OPTIONS), "Pregnant").result == "not-met"
    assert outcome(match(female, study, OPTIONS), "Pregnant").result == "unknown"
    pregnant = {
        "resourceType": "Observation", "id": "preg", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "82810-3"}]},
        "effectiveDateTime": "2025-05-25",
        "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": "77386006"}]},  # noqa: E501
    }  # fmt: skip
    assert outcome(match(record(pregnant), study, OPTIONS), "Pregnant").result == "met"


def test_loading_ndjson_patients_and_bundle_studies(tmp_path: Path) -> None:
    lines = [
        patient("a"),
        {**lab("x", "1742-6", 10, "U/L", "2025-05-01"), "subject": {"reference": "Patient/a"}},
    ]
    lines += [patient("b", gender="male")]
    path = tmp_path / "patients.ndjson"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n", encoding="utf-8")
    records = load_patients([path])
    assert [r.id for r in records] == ["a", "b"]
    assert [x["id"] for x in records[0].resources] == ["x"] and records[1].resources == []
    study = study_from("Exclusion Criteria:\n\n* ALT > 100 U/L\n")
    bundle = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "ResearchStudy", "id": "s", "enrollment": [{"reference": "Group/g"}],  # noqa: E501
                          "identifier": [{"system": "https://clinicaltrials.gov", "value": "NCT00000001"}]}},  # noqa: E501
            {"resource": {**(study.group or {}), "id": "g"}},
        ],
    }  # fmt: skip
    study_path = tmp_path / "study.json"
    study_path.write_text(json.dumps(bundle), encoding="utf-8")
    (loaded,) = load_studies([study_path])
    assert loaded.nct_id == "NCT00000001" and loaded.group is not None
    assert match(records[0], loaded, OPTIONS).criteria[0].result == "not-met"
