"""Concept tables the matcher reads patient data through: LOINC equivalence groups and MeSH.

- `loinc_group(code)`: the equivalence group of a LOINC code (`mappings/loinc-groups.csv`), e.g.
  2160-0, 14682-9 (µmol/L) and 38483-4 (blood) are all "creatinine-serum".
- `normal_mesh(id)`: one form for MeSH descriptor ids. ClinicalTrials.gov and older tables write
  7 characters (D003924), newer MeSH releases 10 (D000003924); both become the 7-character form
  (letter + 6 digits) whenever the number fits, which it does for every descriptor issued so far.
- `condition_mesh(system, code)`: the MeSH descriptors a SNOMED CT / ICD-10(-CM) coded condition
  maps to, with every ancestor descriptor (so type 2 diabetes also counts as diabetes mellitus).
- `patient_medications()`: the ingredients patient records are read with: those criteria are
  coded with (`eligibility-medications.csv`) and the commonly taken ones of
  `medication-ingredients.csv` (WHO ATC codes), the criterion table first.
"""

from __future__ import annotations

import re
from functools import cache

from fhirconv.eligibility import vocab
from fhirconv.tables import load_csv

__all__ = [
    "ICD10",
    "ICD10CM",
    "LOINC",
    "SNOMED",
    "analyte_group",
    "condition_mesh",
    "condition_mesh_direct",
    "group_codes",
    "group_loinc_codes",
    "loinc_group",
    "mesh_ancestors",
    "mesh_name",
    "normal_mesh",
    "patient_medications",
]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ICD10 = "http://hl7.org/fhir/sid/icd-10"

_MESH_ID = re.compile(r"^([A-Z])0*(\d{1,9})$")


def normal_mesh(descriptor: str) -> str:
    """A MeSH descriptor id in 7-character form: "D000003924" and "D003924" → "D003924"."""
    text = descriptor.strip().upper()
    match = _MESH_ID.match(text)
    if not match:
        return text
    digits = match.group(2)
    if len(digits) > 6:
        return f"{match.group(1)}{digits.zfill(9)}"
    return f"{match.group(1)}{digits.zfill(6)}"


# --- LOINC groups ---------------------------------------------------------------------------------


@cache
def _groups() -> dict[str, str]:
    return {row["loinc"]: row["group"] for row in load_csv("loinc-groups.csv")}


@cache
def _analyte_groups() -> dict[str, str]:
    found: dict[str, str] = {}
    for row in load_csv("loinc-groups.csv"):
        if row["analyte"]:
            found.setdefault(row["analyte"].lower(), row["group"])
    return found


def loinc_group(code: str) -> str | None:
    """Equivalence group of a LOINC code, None when the table does not list it."""
    return _groups().get(code.strip())


def group_loinc_codes(group: str) -> frozenset[str]:
    """Every LOINC code in `group`."""
    return frozenset(code for code, name in _groups().items() if name == group)


def group_codes(group: str) -> frozenset[tuple[str, str]]:
    """Every (LOINC system, code) in `group`."""
    return frozenset((LOINC, code) for code in group_loinc_codes(group))


def analyte_group(analyte: str) -> str | None:
    """Group of an analyte as named in eligibility-analytes.csv (creatinine-serum)."""
    return _analyte_groups().get(analyte.strip().lower())


# --- conditions → MeSH ------------------------------------------------------------------------


@cache
def _parents() -> dict[str, frozenset[str]]:
    """MeSH descriptor → the descriptors directly above it (`mappings/mesh-tree.csv`: one tree
    level up; for descriptors newer than the tree file, the ancestors ClinicalTrials.gov lists)."""
    rows = load_csv("mesh-tree.csv")
    number_to_id: dict[str, str] = {}
    for row in rows:
        for number in row["tree_numbers"].split("|"):
            if number:
                number_to_id[number] = normal_mesh(row["mesh"])
    tree: dict[str, set[str]] = {}
    for row in rows:
        mesh = normal_mesh(row["mesh"])
        above = tree.setdefault(mesh, set())
        for number in row["tree_numbers"].split("|"):
            parent = number_to_id.get(number.rpartition(".")[0]) if "." in number else None
            if parent and parent != mesh:
                above.add(parent)
        above.update(normal_mesh(a) for a in row["ancestors"].split("|") if a)
    return {mesh: frozenset(parents) for mesh, parents in tree.items()}


@cache
def mesh_ancestors(descriptor: str) -> frozenset[str]:
    """`descriptor` (normalised) and every MeSH descriptor above it in the tree."""
    start = normal_mesh(descriptor)
    seen = {start}
    todo = [start]
    parents = _parents()
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return frozenset(seen)


@cache
def mesh_name(descriptor: str) -> str | None:
    """The descriptor's MeSH heading, when the tree table has it."""
    wanted = normal_mesh(descriptor)
    return next((r["name"] for r in load_csv("mesh-tree.csv") if r["mesh"] == wanted), None)


_PRECISION = ("exact", "xref", "ancestor")
Crosswalk = dict[tuple[str, str], frozenset[str]]


@cache
def _crosswalk() -> tuple[Crosswalk, Crosswalk]:
    """(system, code) → MeSH candidates: from `condition-mesh.csv` (MONDO exact matches, else
    Human Disease Ontology cross-references, else DO ancestors: only the most precise kind a
    code has), and from `eligibility-conditions.csv` (hand-checked; ICD-10 codes as prefixes)."""
    ranked: dict[tuple[str, str], tuple[int, set[str]]] = {}
    for row in load_csv("condition-mesh.csv"):
        key = (row["system"], row["code"].upper())
        rank = _PRECISION.index(row["match"])
        best = ranked.get(key)
        if best is None or rank < best[0]:
            ranked[key] = (rank, {normal_mesh(row["mesh"])})
        elif rank == best[0]:
            best[1].add(normal_mesh(row["mesh"]))
    checked: dict[tuple[str, str], set[str]] = {}
    for condition in vocab.conditions():
        mesh = normal_mesh(condition.mesh)
        for code in condition.snomed:
            checked.setdefault(("snomed", code), set()).add(mesh)
        for prefix in condition.icd10:
            checked.setdefault(("icd10cm", prefix.upper()), set()).add(mesh)
    return (
        {key: frozenset(ids) for key, (_, ids) in ranked.items()},
        {key: frozenset(ids) for key, ids in checked.items()},
    )


def _lookup(table: Crosswalk, system: str, code: str) -> list[frozenset[str]]:
    """Candidate sets for a code: SNOMED CT exactly; ICD-10 from its longest listed prefix
    down (the first one is the most specific)."""
    if system == "snomed":
        found = table.get((system, code))
        return [found] if found else []
    hits: list[frozenset[str]] = []
    for end in range(len(code), 2, -1):
        found = table.get((system, code[:end]))
        if found:
            hits.append(found)
    return hits


@cache
def condition_mesh(system: str, code: str) -> frozenset[str]:
    """MeSH descriptors (7-character, with ancestors) a coded condition certainly is; empty if
    unknown.

    A code several ontology diseases share (ICD-10-CM B20 is cross-referenced by both "HIV
    infection" and "AIDS") means only what those diseases have in common: the intersection of
    their ancestries (HIV infection and above). ICD-10 codes more specific than the table find
    their longest listed prefix ("E11.65" ← "E11").
    """
    kind = {SNOMED: "snomed", ICD10CM: "icd10cm", ICD10: "icd10cm"}.get(system)
    if kind is None:
        return frozenset()
    key = code.strip().upper()
    ontology, checked = _crosswalk()
    found: set[str] = set()
    for candidates in _lookup(ontology, kind, key)[:1]:
        shared: set[str] | None = None
        for mesh in candidates:
            closure = set(mesh_ancestors(mesh))
            shared = closure if shared is None else shared & closure
        found |= shared or set()
    for candidates in _lookup(checked, kind, key):
        for mesh in candidates:
            found |= mesh_ancestors(mesh)
    return frozenset(found)


@cache
def condition_mesh_direct(system: str, code: str) -> frozenset[str]:
    """The most specific of `condition_mesh(system, code)`: the descriptors no other one in the
    set lies below (for SNOMED CT 44054006, Diabetes Mellitus, Type 2 alone)."""
    meaning = condition_mesh(system, code)
    above = {a for m in meaning for a in mesh_ancestors(m) if a != m}
    return frozenset(meaning - above)


@cache
def patient_medications() -> tuple[vocab.Medication, ...]:
    """Ingredients for reading patient records: the criterion table's, then the patient-side
    table's (`medication-ingredients.csv`) for ingredients the first does not name."""
    known = {m.name.lower() for m in vocab.medications()}
    extra = tuple(
        vocab.Medication(
            row["name"],
            tuple(s.strip() for s in row["synonyms"].split("|") if s.strip()) or (row["name"],),
            row["rxnorm"] or None,
            tuple(c.strip() for c in row["classes"].split("|") if c.strip()),
            float(row["prednisone_factor"]) if row["prednisone_factor"] else None,
        )
        for row in load_csv("medication-ingredients.csv")
        if row["name"].lower() not in known
    )
    return vocab.medications() + extra
