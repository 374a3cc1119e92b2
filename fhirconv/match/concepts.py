"""Concept tables the matcher reads patient data through: LOINC equivalence groups and MeSH.

- `loinc_group(code)`: the equivalence group of a LOINC code (`mappings/loinc-groups.csv`), e.g.
  2160-0, 14682-9 (µmol/L) and 38483-4 (blood) are all "creatinine-serum".
- `normal_mesh(id)`: one form for MeSH descriptor ids. ClinicalTrials.gov and older tables write
  7 characters (D003924), newer MeSH releases 10 (D000003924); both become the 7-character form
  (letter + 6 digits) whenever the number fits, which it does for every descriptor issued so far.
- `condition_mesh(system, code)`: the MeSH descriptors a SNOMED CT / ICD-10(-CM) coded condition
  maps to, with every ancestor descriptor (so type 2 diabetes also counts as diabetes mellitus).
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
    "group_codes",
    "group_loinc_codes",
    "loinc_group",
    "mesh_ancestors",
    "normal_mesh",
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
    """MeSH descriptor → its parent descriptors (from `mappings/mesh-tree.csv` when present)."""
    tree: dict[str, set[str]] = {}
    try:
        rows = load_csv("mesh-tree.csv")
    except FileNotFoundError:
        return {}
    number_to_id: dict[str, str] = {}
    for row in rows:
        for number in row["tree_numbers"].split("|"):
            if number:
                number_to_id[number] = normal_mesh(row["mesh"])
    for row in rows:
        mesh = normal_mesh(row["mesh"])
        for number in row["tree_numbers"].split("|"):
            parent_number = number.rpartition(".")[0]
            parent = number_to_id.get(parent_number)
            if parent and parent != mesh:
                tree.setdefault(mesh, set()).add(parent)
    return {mesh: frozenset(parents) for mesh, parents in tree.items()}


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
def _crosswalk() -> tuple[dict[str, frozenset[str]], tuple[tuple[str, str], ...]]:
    """SNOMED CT code → MeSH ids, and (ICD-10 prefix, MeSH id) pairs, longest prefix first."""
    snomed: dict[str, set[str]] = {}
    icd: list[tuple[str, str]] = []
    for condition in vocab.conditions():
        mesh = normal_mesh(condition.mesh)
        for code in condition.snomed:
            snomed.setdefault(code, set()).add(mesh)
        icd += [(prefix.upper(), mesh) for prefix in condition.icd10]
    try:
        rows = load_csv("condition-mesh.csv")
    except FileNotFoundError:
        rows = ()
    for row in rows:
        mesh = normal_mesh(row["mesh"])
        if row["system"] == "snomed":
            snomed.setdefault(row["code"], set()).add(mesh)
        elif row["system"] in ("icd10cm", "icd10"):
            icd.append((row["code"].upper(), mesh))
    icd.sort(key=lambda pair: len(pair[0]), reverse=True)
    return {code: frozenset(ids) for code, ids in snomed.items()}, tuple(icd)


def condition_mesh(system: str, code: str) -> frozenset[str]:
    """MeSH descriptors (7-character, with ancestors) of one coded condition; empty if unknown.

    An ICD-10 code maps through every table prefix it starts with ("E11.9" ← "E11"), so a code
    more specific than the table still finds its concept.
    """
    snomed, icd = _crosswalk()
    direct: set[str] = set()
    if system == SNOMED:
        direct |= snomed.get(code.strip(), frozenset())
    elif system in (ICD10CM, ICD10):
        key = code.strip().upper()
        direct |= {mesh for prefix, mesh in icd if key.startswith(prefix)}
    found: set[str] = set()
    for mesh in direct:
        found |= mesh_ancestors(mesh)
    return frozenset(found)
