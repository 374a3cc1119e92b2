"""Unit conversion (fhirconv.eligibility.units)."""

from __future__ import annotations

import pytest

from fhirconv.eligibility.units import convert, ucum_for_written_unit

CREATININE = "2160-0"
HBA1C = "4548-4"


def test_creatinine_mass_to_molar_uses_the_molar_mass() -> None:
    micromolar = convert(2.5, "mg/dL", "umol/L", CREATININE)
    assert micromolar == pytest.approx(221, abs=0.5)
    back = convert(221, "umol/L", "mg/dL", CREATININE)
    assert back == pytest.approx(2.5, abs=0.01)


def test_dimensional_conversions() -> None:
    assert convert(12, "g/dL", "g/L") == pytest.approx(120)
    assert convert(1.5, "10*9/L", "/uL") == pytest.approx(1500)
    assert convert(100, "10*3/uL", "10*9/L") == pytest.approx(100)
    assert convert(6, "mo", "a") == pytest.approx(0.5)


def test_hba1c_percent_and_mmol_per_mol_by_master_equation() -> None:
    assert convert(7.0, "%", "mmol/mol", HBA1C) == pytest.approx(53, abs=0.5)
    assert convert(53, "mmol/mol", "%", HBA1C) == pytest.approx(7.0, abs=0.05)


def test_unconvertible_gives_none() -> None:
    assert convert(2.5, "mg/dL", "umol/L") is None  # no analyte: no molar mass
    assert convert(40, "U/L", "mg/dL") is None
    assert convert(1, "kg", "mm[Hg]") is None


def test_written_units_map_to_ucum() -> None:
    assert ucum_for_written_unit("mg/dl") == "mg/dL"
    assert ucum_for_written_unit("μmol/L") == "umol/L"
    assert ucum_for_written_unit("kg/m²") == "kg/m2"
    assert ucum_for_written_unit("mm Hg") == "mm[Hg]"
    assert ucum_for_written_unit("g/24h") == "g/(24.h)"
    assert ucum_for_written_unit("furlongs") is None
