"""A computable eligibility criterion, as plain typed values (no FHIR classes).

A study's eligibility is a list of `Criterion` (one per inclusion/exclusion line, its verbatim
text, `exclude`, and how much of it the coded items capture: `coverage`), each with the `Item`s
read from it. `fhirconv.eligibility.codec` turns these into `Group.characteristic` entries and
back; `convert` encodes with it and `match` decodes with it.

Codes are neutral (`Code`: system + code + display). An `Item` is one of:

- `age` (quantity / range in UCUM `a`, `mo`, `wk`, `d`), `sex` (`value`: an administrative-gender
  `Code`), `pregnancy`, `lactation`, `childbearing` (present / absent through `exclude`);
- `observation`: a lab, vital sign or score (LOINC or the project's score codes) against a
  `comparator` + `quantity` or a two-sided `low`..`high` range (ONE item, inclusive), in UCUM; the
  unit `{xULN}` is a multiple of the result's own reference-range upper limit;
- `condition` (MeSH or an uncoded text concept), with `history` ("history of": inactive counts)
  and a time `window` (within / at least);
- `medication` (RxNorm ingredient or ATC class) with a `window`, and `dose`: its daily dose
  (`per_day`), optionally counted in `equivalent_to` (prednisone equivalents);
- `procedure` (SNOMED CT / CPT codes, `mappings/eligibility-procedures.csv`): done, optionally
  within a `window` ("≤ 92 days postpartum" is a delivery within 92 days).

Logical structure: inclusion items sharing `alternative_group` are alternatives (any one
suffices); exclusion items sharing `conjunction_group` exclude only together. `conditional`
(exceptions, conditions, cohorts), `qualifier` (a word the item does not capture),
`whole_clause` (the item is one whole alternative / requirement) and `applies_to_sex` (the item
concerns one sex only) say how far the item may decide; see docs/matching.md "The verdict rule".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ItemKind = Literal[
    "age",
    "sex",
    "pregnancy",
    "lactation",
    "childbearing",
    "observation",
    "condition",
    "medication",
    "dose",
    "procedure",
]
Coverage = Literal["complete", "partial", "none"]
Comparator = Literal["<", "<=", ">", ">="]

__all__ = [
    "Code",
    "Comparator",
    "Concept",
    "Coverage",
    "Criterion",
    "Item",
    "ItemKind",
    "Quantity",
    "Window",
]


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    display: str | None = None


@dataclass(frozen=True)
class Concept:
    codes: tuple[Code, ...]
    text: str | None = None

    def has(self, system: str, code: str) -> bool:
        return any(c.system == system and c.code == code for c in self.codes)

    def systems(self) -> frozenset[str]:
        return frozenset(c.system for c in self.codes)


@dataclass(frozen=True)
class Quantity:
    """A value in a UCUM unit (`unit`), with the unit as written when it differs (`written`)."""

    value: float
    unit: str | None = None
    written: str | None = None


@dataclass(frozen=True)
class Window:
    """ "within 6 months prior to screening" (`<=`), "at least 6 months" (`>=`)."""

    operator: str
    value: float
    unit: str  # UCUM: a, mo, wk, d, h, min
    relation: str
    text: str


@dataclass(frozen=True)
class Item:
    id: str
    kind: ItemKind
    concept: Concept
    source_text: str
    source_criterion: str | None = None
    exclude: bool = False  # the trait excludes (or, in an inclusion, "no …": must be absent)
    comparator: Comparator | None = None  # with `quantity`
    quantity: Quantity | None = None  # a single bound (or an exact value without comparator)
    low: Quantity | None = None  # a two-sided range, both ends inclusive
    high: Quantity | None = None
    value: Concept | None = None  # sex / pregnancy / lactation status
    window: Window | None = None
    per_day: bool = False  # dose items: a daily dose
    equivalent_to: Code | None = None
    alternative_group: str | None = None
    conjunction_group: str | None = None
    history: bool = False
    qualifier: str | None = None
    conditional: bool = False
    whole_clause: bool = False
    applies_to_sex: str | None = None
    # conditions that do not count: the named exceptions ("except basal cell carcinoma") and, for
    # "other X", the study's own conditions
    exceptions: tuple[Concept, ...] = ()


@dataclass(frozen=True)
class Criterion:
    id: str
    text: str
    exclude: bool
    coverage: Coverage
    items: tuple[Item, ...] = ()
