"""Unit look-up (written spelling → UCUM) and conversion between UCUM units.

Dimensional conversions go through pint, with each UCUM code mapped to a pint expression in
`mappings/eligibility-units.csv`. Mass ↔ substance (molar) conversions need the analyte's molar
mass from `mappings/eligibility-analytes.csv`. HbA1c % (NGSP/DCCT) ↔ mmol/mol (IFCC) uses the
IFCC–NGSP master equation NGSP = 0.09148 × IFCC + 2.152 (Hoelzel W et al., Clin Chem
2004;50:166–174), and a HbA1c fraction (UCUM "1": 0.066) is 6.6 %. An analyte is any LOINC code of
its equivalence group (`mappings/loinc-groups.csv`). International units get their own pint
dimension: µIU/mL ↔ mIU/L converts, IU ↔ mass never does. Anything else is not convertible:
`convert` returns None, never a guess.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fhirconv.tables import load_csv

__all__ = ["analyte_molar_mass", "convert", "ucum_for_written_unit"]

_HBA1C_LOINC = "4548-4"
_NGSP_SLOPE = 0.09148
_NGSP_INTERCEPT = 2.152


@cache
def _written_to_ucum() -> dict[str, str]:
    mapping: dict[str, str] = {}
    for row in load_csv("eligibility-units.csv"):
        mapping.setdefault(row["written"], row["ucum"])
    return mapping


@cache
def _written_lower_to_ucum() -> dict[str, str]:
    mapping: dict[str, str] = {}
    for written, ucum in _written_to_ucum().items():
        mapping.setdefault(written.lower(), ucum)
    return mapping


@cache
def _ucum_to_pint() -> dict[str, str]:
    mapping: dict[str, str] = {}
    for row in load_csv("eligibility-units.csv"):
        if row["pint"]:
            mapping.setdefault(row["ucum"], row["pint"])
    return mapping


def ucum_for_written_unit(written: str) -> str | None:
    """UCUM code of a unit as written ("mg/dl" → "mg/dL"), None when the table lacks it."""
    compact = " ".join(written.split())
    exact = _written_to_ucum().get(compact)
    if exact is not None:
        return exact
    return _written_lower_to_ucum().get(compact.lower()) or _written_lower_to_ucum().get(
        compact.replace(" ", "").lower()
    )


@cache
def _equivalent_loinc() -> dict[str, frozenset[str]]:
    """LOINC code → every code of its equivalence group (mappings/loinc-groups.csv)."""
    groups: dict[str, set[str]] = {}
    for row in load_csv("loinc-groups.csv"):
        groups.setdefault(row["group"], set()).add(row["loinc"])
    return {code: frozenset(codes) for codes in groups.values() for code in codes}


def _same_analyte(loinc: str) -> frozenset[str]:
    return _equivalent_loinc().get(loinc, frozenset({loinc}))


@cache
def _molar_masses() -> dict[str, float]:
    masses: dict[str, float] = {}
    for row in load_csv("eligibility-analytes.csv"):
        if row["loinc"] and row["molar_mass_g_per_mol"]:
            for code in _same_analyte(row["loinc"]):
                masses.setdefault(code, float(row["molar_mass_g_per_mol"]))
    for row in load_csv("loinc-groups.csv"):
        if row["molar_mass_g_per_mol"]:
            masses.setdefault(row["loinc"], float(row["molar_mass_g_per_mol"]))
    return masses


def analyte_molar_mass(loinc: str) -> float | None:
    """Molar mass (g/mol) of an analyte (any LOINC code of its equivalence group), None when the
    table has none."""
    return _molar_masses().get(loinc)


@cache
def _registry() -> Any:
    import pint

    registry: Any = pint.UnitRegistry()
    # International units measure biological activity, defined per substance: their own
    # dimension lets µIU/mL become mIU/L but never a mass.
    registry.define("international_unit = [international_unit]")
    return registry


def _quantity(value: float, ucum: str) -> Any:
    expression = _ucum_to_pint().get(ucum)
    if expression is None:
        return None
    import pint

    registry = _registry()
    try:
        # registry("1e9/liter") parses numbers too, so one path serves every expression.
        return value * registry(expression)
    except pint.OffsetUnitCalculusError:
        return registry.Quantity(value, expression)  # °C, °F: an offset scale, no factor


def convert(
    value: float, from_ucum: str, to_ucum: str, analyte_code: str | None = None
) -> float | None:
    """`value` in `from_ucum` expressed in `to_ucum`; None when not convertible.

    `analyte_code` (LOINC) enables mass ↔ molar conversion via the analyte's molar mass and the
    HbA1c % ↔ mmol/mol master equation.
    """
    if from_ucum == to_ucum:
        return value
    ratio_units = {"%", "1", "mmol/mol"}
    if analyte_code is not None and _HBA1C_LOINC in _same_analyte(analyte_code):
        if from_ucum == "mmol/mol" and to_ucum in ratio_units:
            percent = value * _NGSP_SLOPE + _NGSP_INTERCEPT
            return convert(percent, "%", to_ucum)
        if to_ucum == "mmol/mol" and from_ucum in ratio_units:
            as_percent = convert(value, from_ucum, "%")
            return None if as_percent is None else (as_percent - _NGSP_INTERCEPT) / _NGSP_SLOPE
    elif "mmol/mol" in (from_ucum, to_ucum) and {from_ucum, to_ucum} <= ratio_units:
        return None  # mmol/mol vs % is HbA1c IFCC vs NGSP, not a plain ratio: needs the analyte
    source = _quantity(value, from_ucum)
    target = _quantity(1.0, to_ucum)
    if source is None or target is None:
        return None
    import pint

    try:
        return float(source.to(target.units).magnitude / target.magnitude)
    except (pint.DimensionalityError, pint.OffsetUnitCalculusError):
        pass
    molar_mass = analyte_molar_mass(analyte_code) if analyte_code else None
    if molar_mass is None:
        return None
    grams_per_mole = _registry().Quantity(molar_mass, "gram/mole")
    for candidate in (source / grams_per_mole, source * grams_per_mole):
        try:
            return float(candidate.to(target.units).magnitude / target.magnitude)
        except (pint.DimensionalityError, pint.OffsetUnitCalculusError):
            continue
    return None
