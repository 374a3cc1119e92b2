"""Patient facts: what the matcher reads from a FHIR record, independent of any criterion."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhirconv.match.concepts import (
    ICD10CM,
    LOINC,
    SNOMED,
    condition_mesh,
    condition_mesh_direct,
    loinc_group,
    normal_mesh,
)
from fhirconv.match.facts import PatientFacts, facts_of
from fhirconv.match.records import PatientRecord

AS_OF = date(2026, 11, 26)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
Json = dict[str, Any]


def _coded(system: str, code: str, text: str = "") -> Json:
    concept: Json = {"coding": [{"system": system, "code": code}]}
    if text:
        concept["text"] = text
    return concept


def _quantity(value: float, code: str) -> Json:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def _record(*resources: Json, **patient: Any) -> PatientRecord:
    return PatientRecord({"resourceType": "Patient", "id": "p1", **patient}, list(resources))


def _facts(*resources: Json, **patient: Any) -> PatientFacts:
    return facts_of(_record(*resources, **patient), AS_OF)


def test_mesh_ids_in_both_lengths_become_one_form() -> None:
    assert normal_mesh("D000003924") == "D003924"
    assert normal_mesh("D003924") == "D003924"
    assert normal_mesh(" d003924 ") == "D003924"


def test_equivalent_loinc_codes_share_a_group() -> None:
    assert loinc_group("2160-0") == loinc_group("38483-4") == loinc_group("14682-9")
    assert loinc_group("2160-0") == "creatinine-serum"
    assert loinc_group("2345-7") == loinc_group("2339-0") == "glucose"
    assert loinc_group("1558-6") == "glucose-fasting" != loinc_group("2345-7")
    assert loinc_group("59261-8") == loinc_group("4548-4") == "hba1c"
    assert loinc_group("0000-0") is None


def test_blood_pressure_panel_components_are_read() -> None:
    panel = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "code": _coded(LOINC, "55284-4", "Blood pressure sitting"),
        "effectiveDateTime": "2026-11-20",
        "component": [
            {"code": _coded(LOINC, "8480-6"), "valueQuantity": _quantity(148, "mm[Hg]")},
            {"code": _coded(LOINC, "8462-4"), "valueQuantity": _quantity(92, "mm[Hg]")},
        ],
    }
    facts = _facts(panel)
    (systolic,) = facts.observations_of("bp-systolic")
    (diastolic,) = facts.observations_of("bp-diastolic")
    assert systolic.quantity is not None and systolic.quantity.value == 148
    assert diastolic.value_in("mm[Hg]") == 92
    assert systolic.panel == "Observation/bp" == systolic.resource
    assert systolic.code_text == "Blood pressure sitting"
    assert systolic.when is not None and systolic.when.earliest == date(2026, 11, 20)
    assert facts.observations_of("bp-panel") == ()  # the panel itself has no value


def test_creatinine_from_blood_code_converts_to_micromoles() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "cr",
        "status": "final",
        "code": _coded(LOINC, "38483-4"),
        "effectiveDateTime": "2026-11-12",
        "valueQuantity": _quantity(2.0, "mg/dL"),
        "referenceRange": [{"low": _quantity(0.6, "mg/dL"), "high": _quantity(1.25, "mg/dL")}],
    }
    (creatinine,) = _facts(observation).observations_of("creatinine-serum")
    micromoles = creatinine.value_in("umol/L")
    assert micromoles is not None and micromoles == pytest.approx(176.8, abs=0.1)
    assert creatinine.times_upper_limit() == pytest.approx(1.6)


def test_unusable_statuses_are_not_results() -> None:
    observation = {
        "resourceType": "Observation",
        "id": "x",
        "status": "entered-in-error",
        "code": _coded(LOINC, "718-7"),
        "valueQuantity": _quantity(9.0, "g/dL"),
    }
    facts = _facts(observation)
    assert facts.observations_of("hemoglobin") == ()
    assert len(facts.observations) == 1 and not facts.observations[0].usable


def test_refuted_condition_never_counts_and_hierarchy_reaches_ancestors() -> None:
    diabetes = {
        "resourceType": "Condition",
        "id": "dm",
        "clinicalStatus": _coded(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active"
        ),
        "code": _coded(SNOMED, "44054006", "Type 2 diabetes"),
        "onsetDateTime": "2015",
    }
    ruled_out = {
        "resourceType": "Condition",
        "id": "ruled-out",
        "verificationStatus": _coded(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", "refuted"
        ),
        "code": _coded(SNOMED, "44054006"),
    }
    facts = _facts(diabetes, ruled_out)
    found = facts.conditions_with_mesh("D000003924")
    assert [c.resource for c in found] == ["Condition/dm"]
    assert found[0].active and found[0].onset is not None
    assert found[0].mesh_direct == {"D003924"}
    assert not next(c for c in facts.conditions if c.resource == "Condition/ruled-out").counts


def test_icd10_code_more_specific_than_the_table_still_maps() -> None:
    assert "D003924" in condition_mesh(ICD10CM, "E11.9")
    assert condition_mesh(ICD10CM, "Z99.9") == frozenset()


def test_resolved_condition_is_history_not_active() -> None:
    resolved = {
        "resourceType": "Condition",
        "id": "c",
        "clinicalStatus": _coded(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "resolved"
        ),
        "code": _coded(SNOMED, "44054006"),
        "onsetDateTime": "2010-02-03",
        "abatementDateTime": "2012-05",
    }
    (condition,) = _facts(resolved).conditions
    assert condition.counts and not condition.active
    assert condition.abatement is not None and condition.abatement.latest == date(2012, 5, 31)


def _statement(key: str, status: str, period: Json, **extra: Any) -> Json:
    return {
        "resourceType": "MedicationStatement",
        "id": key,
        "status": status,
        "medicationCodeableConcept": _coded(RXNORM, "8640", "predniSONE 5 MG Oral Tablet"),
        "effectivePeriod": period,
        **extra,
    }


def test_medication_currency_follows_status_and_period() -> None:
    dosage = {
        "route": {"text": "oral"},
        "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": _quantity(5, "mg")}],
    }
    taking = _statement("taking", "active", {"start": "2026-01-01"}, dosage=[dosage])
    ended = _statement("ended", "active", {"start": "2025-01-01", "end": "2026-08-01"})
    stopped = _statement("stopped", "stopped", {"start": "2026-01-01"})
    facts = _facts(taking, ended, stopped)
    by_id = {m.resource: m for m in facts.medications}
    now = by_id["MedicationStatement/taking"]
    assert now.current and now.route == "oral"
    assert now.daily_dose is not None and (now.daily_dose.value, now.daily_dose.unit) == (10, "mg")
    assert "prednisone" in now.names and now.in_class("H02AB")
    assert not by_id["MedicationStatement/stopped"].current
    assert len(facts.medications_with(ingredient="8640")) == 3
    assert len(facts.medications_with(atc_class="H02")) == 3
    assert [m.current for m in facts.medications].count(True) == 1


def test_years_old_active_order_is_not_current() -> None:
    def order(authored: str, **extra: Any) -> Json:
        return {
            "resourceType": "MedicationRequest",
            "id": authored,
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": _coded(RXNORM, "6809", "metformin"),
            "authoredOn": authored,
            **extra,
        }

    supply = {"dispenseRequest": {"expectedSupplyDuration": {"value": 30, "code": "d"}}}
    facts = _facts(
        order("2019-04-02"),
        order("2026-10-01"),
        order("2026-06-01", **supply),
    )
    current = {m.resource: m.current for m in facts.medications}
    assert current == {
        "MedicationRequest/2019-04-02": False,
        "MedicationRequest/2026-10-01": True,
        "MedicationRequest/2026-06-01": False,  # a 30-day supply ran out in July
    }


def test_as_needed_medicine_has_no_daily_dose() -> None:
    dosage = {
        "asNeededBoolean": True,
        "timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": _quantity(500, "mg")}],
    }
    (medicine,) = _facts(
        _statement("prn", "active", {"start": "2026-01-01"}, dosage=[dosage])
    ).medications
    assert medicine.as_needed and medicine.daily_dose is None
    assert "as needed" in medicine.dose_note


def test_deceased_patient_is_flagged() -> None:
    assert _facts(deceasedBoolean=True).deceased
    dead = _facts(deceasedDateTime="2024-03-02T10:00:00Z")
    assert dead.deceased and dead.deceased_date is not None
    assert dead.deceased_date.earliest == date(2024, 3, 2)
    assert not _facts(deceasedBoolean=False).deceased
    assert not _facts().deceased


def test_procedures_allergies_and_immunizations_are_read() -> None:
    procedure = {
        "resourceType": "Procedure",
        "id": "proc",
        "status": "completed",
        "code": _coded(SNOMED, "38102005", "Cholecystectomy"),
        "performedPeriod": {"start": "2022-05-18T08:00:00Z", "end": "2022-05-18T09:00:00Z"},
    }
    not_done = {**procedure, "id": "proc2", "status": "not-done"}
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "alg",
        "verificationStatus": _coded(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed"
        ),
        "category": ["medication"],
        "code": _coded(RXNORM, "7980", "Penicillin G"),
        "recordedDate": "2001-02-03",
    }
    vaccine = {
        "resourceType": "Immunization",
        "id": "imm",
        "status": "completed",
        "vaccineCode": _coded("http://hl7.org/fhir/sid/cvx", "140"),
        "occurrenceDateTime": "2025-10-01",
    }
    facts = _facts(procedure, not_done, allergy, vaccine)
    (done,) = facts.procedures_with_code(SNOMED, "38102005")
    assert done.resource == "Procedure/proc" and done.when is not None
    assert done.when.earliest == date(2022, 5, 18)
    (penicillin,) = facts.allergies_to(RXNORM, "7980")
    assert penicillin.category == frozenset({"medication"}) and penicillin.active
    (flu,) = facts.immunizations
    assert flu.counts and flu.when is not None


def test_condition_hierarchy_from_the_crosswalk() -> None:
    # Alzheimer disease (SNOMED CT) is a dementia; CKD stage 3 (ICD-10-CM, more specific than
    # the table) is chronic kidney disease; type 2 diabetes is a diabetes mellitus.
    assert "D003704" in condition_mesh(SNOMED, "26929004")
    assert "D051436" in condition_mesh(ICD10CM, "N18.30")
    assert {"D003924", "D003920"} <= condition_mesh(SNOMED, "44054006")
    assert condition_mesh_direct(SNOMED, "44054006") == {"D003924"}


def test_a_code_shared_by_several_diseases_means_only_what_they_share() -> None:
    # ICD-10-CM B20 is cross-referenced by both HIV infection and AIDS: it proves HIV infection.
    meaning = condition_mesh(ICD10CM, "B20")
    assert "D015658" in meaning and "D000163" not in meaning


def test_prediabetes_is_not_diabetes() -> None:
    for system, code in ((SNOMED, "15777000"), (SNOMED, "714628002"), (ICD10CM, "R73.03")):
        assert "D003920" not in condition_mesh(system, code)
    assert "D011236" in condition_mesh(SNOMED, "15777000")


def test_every_synthea_and_match_dev_patient_reads_into_facts() -> None:
    from fhirconv.match.records import load_patients
    from tests.conftest import SHARED

    files = sorted((SHARED / "synthea-r4").glob("*.json"))
    files += sorted((SHARED / "match-dev" / "patients").glob("*.json"))
    if not files:
        pytest.skip(f"no patients under {SHARED}: this check needs ../shared")
    panels = creatinine_38483 = deceased = 0
    for path in files:
        for record in load_patients([path]):
            facts = facts_of(record, AS_OF)
            panels += sum(o.panel is not None for o in facts.observations_of("bp-systolic"))
            creatinine_38483 += len(facts.observations_with_code(LOINC, "38483-4"))
            deceased += facts.deceased
            assert all(c.resource.startswith("Condition/") for c in facts.conditions)
    assert panels > 0 and creatinine_38483 > 0 and deceased > 0


@pytest.mark.parametrize("status", ["preliminary", "registered", "cancelled", "unknown"])
def test_only_final_amended_or_corrected_results_are_usable(status: str) -> None:
    observation = {
        "resourceType": "Observation",
        "id": "h",
        "status": status,
        "code": _coded(LOINC, "718-7"),
        "effectiveDateTime": "2026-11-20",
        "valueQuantity": _quantity(13.1, "g/dL"),
    }
    assert _facts(observation).observations_of("hemoglobin") == ()
    assert _facts({**observation, "status": "amended"}).observations_of("hemoglobin")


def _taking(key: str, text: str, route: str | None = None) -> Json:
    statement: Json = {
        "resourceType": "MedicationStatement",
        "id": key,
        "status": "active",
        "medicationCodeableConcept": {"text": text},
        "effectivePeriod": {"start": "2026-02-01"},
    }
    if route:
        statement["dosage"] = [{"route": {"text": route}}]
    return statement


def test_drug_classes_follow_the_route_and_combinations_name_every_ingredient() -> None:
    facts = _facts(
        _taking("eye", "timolol maleate 0.25 % eye drops"),
        _taking("pill", "timolol 10 MG tablet", route="by mouth"),
        _taking("combo", "Hydrocodone-free tablet: acetaminophen 300 MG / oxycodone 10 MG"),
        _taking("puffer", "budesonide 200 MCG/ACTUAT inhaler"),
        _taking("pen", "Humalog (insulin lispro) 100 units/mL pen"),
    )
    by_id = {m.resource.split("/")[1]: m for m in facts.medications}
    assert by_id["eye"].classes == {"S01ED01"} and not by_id["eye"].in_class("C07")
    assert by_id["pill"].in_class("C07")
    assert set(by_id["combo"].names) == {"acetaminophen", "oxycodone"}
    assert by_id["combo"].ingredients == {"161", "7804"}
    assert by_id["puffer"].classes == {"R03BA02"}
    assert by_id["pen"].in_class("A10AB")  # a fast-acting (mealtime) insulin
    assert [m.resource for m in facts.medications_with(atc_class="C07")] == [
        "MedicationStatement/pill"
    ]


def test_a_malformed_resource_is_a_problem_not_a_lost_patient() -> None:
    broken = {
        "resourceType": "MedicationStatement",
        "id": "odd",
        "status": "active",
        "medicationCodeableConcept": {"coding": "8640"},  # a string where FHIR has a list
        "effectivePeriod": "2026",
        "dosage": [{"timing": {"repeat": {"frequency": "twice"}}, "doseAndRate": 5}],
    }
    odd_lab = {
        "resourceType": "Observation",
        "id": "odd-lab",
        "status": "final",
        "code": _coded(LOINC, "718-7"),
        "referenceRange": [{"high": _quantity(15.5, "g/dL")}],
        "valueQuantity": {"value": [13], "unit": "g/dL"},
        "component": 7,
    }
    good = {
        "resourceType": "Observation",
        "id": "good",
        "status": "final",
        "code": _coded(LOINC, "718-7"),
        "effectiveDateTime": "2026-11-20",
        "valueQuantity": _quantity(13.2, "g/dL"),
    }
    facts = _facts(broken, odd_lab, good)
    assert [o.resource for o in facts.observations_of("hemoglobin") if o.quantity] == [
        "Observation/good"
    ]
    assert all(isinstance(p, str) for p in facts.problems)
    (medication,) = facts.medications
    assert medication.daily_dose is None and "not readable" in medication.dose_note
