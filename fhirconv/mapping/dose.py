"""Dose levels stated in free text → FHIR Quantities.

Reads quantities such as "25×10⁶ CAR+ T cells", "15x106 CAR+ T cells" (a superscript lost in
copy-paste: 15×10⁶), "1.5 x 10^8 cells/kg", "2 million cells", "200 mg", "0.5 mg/kg". A number
written without a unit in a list ("100x106(or 150 x106CAR+ T cells)") takes the unit of the next
quantity in the same sentence. Only units in `mappings/dose-units.json` count, so ordinary numbers
(ages, years, percentages) are never read as doses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from fhirconv.mapping import systems
from fhirconv.tables import load_json

Json = dict[str, Any]

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
_SCALE_WORDS = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}


@cache
def _units() -> dict[str, Json]:
    table: dict[str, Json] = load_json("dose-units.json")["map"]
    return table


@cache
def _quantity_pattern() -> re.Pattern[str]:
    units = sorted(_units(), key=len, reverse=True)
    unit_alternatives = "|".join(re.escape(u).replace(r"\ ", r"\s*") for u in units)
    return re.compile(
        r"(?<![\w.])(?P<number>\d+(?:[.,]\d+)?)"
        r"(?:\s*(?:[x×*]|times)\s*10\s*(?:\^|\*\*|e)?\s*(?P<exponent>[-−]?\d{1,2}|[⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+)"
        r"|\s*[eE](?P<e_exponent>[+-]?\d{1,2})"
        r"|\s+(?P<scale>thousand|million|billion|trillion))?"
        rf"(?:\s*(?P<unit>{unit_alternatives})(?![\w/]))?",
        re.IGNORECASE,
    )


@dataclass(frozen=True)
class Dose:
    value: float
    unit: str  # as written, normalized spacing
    ucum: str
    text: str  # the words it came from

    def quantity(self) -> Json:
        value: int | float = int(self.value) if self.value.is_integer() else self.value
        return {"value": value, "unit": self.unit, "system": systems.UCUM, "code": self.ucum}


def _number(text: str) -> float:
    # "1,5" is a decimal comma; "1,500" a thousands separator.
    if re.fullmatch(r"\d+,\d{3}", text):
        return float(text.replace(",", ""))
    return float(text.replace(",", "."))


def find_doses(text: str) -> list[Dose]:
    """Every dose quantity in `text`, in reading order, units resolved from neighbours."""
    found: list[tuple[float, str, str, bool]] = []  # value, unit, words, has power of ten
    for sentence in re.split(r"(?<=[.;:])\s+(?=[A-Z])|\n+", text):
        pending: list[tuple[float, str]] = []
        for match in _quantity_pattern().finditer(sentence):
            value = _number(match.group("number"))
            exponent = match.group("exponent") or match.group("e_exponent")
            has_power = bool(exponent or match.group("scale"))
            if exponent:
                value *= 10 ** int(exponent.translate(_SUPERSCRIPTS).replace("−", "-"))
            elif match.group("scale"):
                value *= 10 ** _SCALE_WORDS[match.group("scale").lower()]
            unit = match.group("unit")
            if unit is None:
                if has_power:
                    pending.append((value, match.group(0).strip()))
                continue
            unit_written = re.sub(r"\s+", " ", unit)
            for pending_value, words in pending:
                found.append((pending_value, unit_written, words, True))
            pending.clear()
            found.append((value, unit_written, match.group(0).strip(), has_power))
    doses = []
    for value, unit_written, words, has_power in found:
        entry = _units().get(unit_written.lower())
        if entry is None:
            continue
        if entry.get("counted") and not has_power and value < 1000:
            # "25 CAR+ T cells" is not a dose; a count needs a power of ten or a scale word.
            continue
        doses.append(Dose(value=value, unit=unit_written, ucum=entry["code"], text=words))
    return doses


def dose_levels(texts: list[str]) -> list[Dose]:
    """Distinct doses across `texts`, ordered by unit then value (a stable, readable order)."""
    unique: dict[tuple[str, float], Dose] = {}
    for text in texts:
        for dose in find_doses(text):
            unique.setdefault((dose.ucum, dose.value), dose)
    return sorted(unique.values(), key=lambda d: (d.ucum, d.value))
