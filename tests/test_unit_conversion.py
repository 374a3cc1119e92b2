"""Unit conversion of patient results as EHRs record them (pint, plus the HbA1c equation)."""

from __future__ import annotations

import pytest

from fhirconv.eligibility.units import analyte_molar_mass, convert


@pytest.mark.parametrize(
    ("value", "source", "target", "analyte", "expected"),
    [
        (0.071, "1", "%", "4548-4", 7.1),  # HbA1c as a fraction
        (5.9, "%", "1", None, 0.059),
        (53.0, "mmol/mol", "%", "59261-8", 6.999),  # IFCC → NGSP, master equation
        (7.0, "%", "mmol/mol", "17856-6", 52.95),  # any code of the HbA1c group
        (0.07, "1", "mmol/mol", "4548-4", 52.95),
        (1200.0, "/uL", "10*9/L", None, 1.2),  # counts per µL vs ×10⁹/L
        (3.1, "10*3/uL", "/uL", None, 3100.0),
        (1.4, "mg/dL", "umol/L", "2160-0", 123.8),  # creatinine via its molar mass
        (97.0, "umol/L", "mg/dL", "38483-4", 1.097),  # … from the blood code of the group
        (6.1, "mmol/L", "mg/dL", "14771-0", 109.9),  # fasting glucose
        (9.0, "nmol/L", "ng/dL", "14913-8", 259.6),  # testosterone
        (118.0, "g/L", "g/dL", None, 11.8),
        (150.0, "[lb_av]", "kg", None, 68.04),
        (2.5, "u[IU]/mL", "m[IU]/L", None, 2.5),  # TSH written two ways
    ],
)
def test_conversions(
    value: float, source: str, target: str, analyte: str | None, expected: float
) -> None:
    converted = convert(value, source, target, analyte)
    assert converted == pytest.approx(expected, rel=2e-3)


@pytest.mark.parametrize(
    ("source", "target", "analyte"),
    [
        ("mmol/mol", "%", None),  # IFCC vs NGSP needs to know the analyte is HbA1c
        ("m[IU]/mL", "ng/mL", None),  # activity units never become a mass
        ("[IU]/L", "U/L", None),
        ("mg/dL", "umol/L", None),  # molar conversion needs a molar mass
        ("mg/dL", "mmol/L", "718-7"),  # … which haemoglobin does not have here
        ("kg", "cm", None),
    ],
)
def test_conversions_that_would_be_guesses_are_refused(
    source: str, target: str, analyte: str | None
) -> None:
    assert convert(10.0, source, target, analyte) is None


def test_molar_mass_is_shared_by_the_whole_loinc_group() -> None:
    assert analyte_molar_mass("14682-9") == analyte_molar_mass("2160-0") == pytest.approx(113.12)
    assert analyte_molar_mass("14995-5") == pytest.approx(180.16)  # 2-hour glucose
