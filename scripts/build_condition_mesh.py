#!/usr/bin/env python3
"""Build mappings/condition-mesh.csv and mappings/mesh-tree.csv from public sources.

Usage: scripts/build_condition_mesh.py DO_XREFS DO_TREE MESH_TREE CORPUS_DIR
           [--mondo DIR] [--out mappings] [--scope all|corpus]

- DO_XREFS: DOreports/allXREFinDO.tsv and DO_TREE: DOreports/HumanDO.tsv of the Human Disease
  Ontology (https://github.com/DiseaseOntology/HumanDiseaseOntology, CC0 1.0): each disease's
  MeSH, SNOMED CT and ICD-10-CM cross-references, and its parents.
- --mondo DIR: MONDO's exact-match mapping sets (src/ontology/mappings/mondo_exactmatch_sctid,
  _mesh and _icd10cm .sssom.tsv of https://github.com/monarch-initiative/mondo, CC0 1.0) saved
  as DIR/sctid.tsv, DIR/mesh.tsv, DIR/icd10cm.tsv. A code exactly matching a MONDO disease that
  exactly matches a MeSH descriptor is the most precise mapping (match = exact); DO's
  cross-references come next (xref), then DO's nearest-ancestor MeSH (ancestor).
- MESH_TREE: NLM's MeSH tree file (Tree Number, Desc Ui, Term; e.g. 2017MeshTree.txt from
  https://www.nlm.nih.gov/mesh/, public domain).
- CORPUS_DIR: ClinicalTrials.gov API v2 JSON records; their conditionBrowseModule MeSH terms
  (NLM MeSH, assigned by ClinicalTrials.gov) decide the scope, and give the ancestors of
  descriptors newer than the tree file.

Scope (--scope): all (the default) keeps every DO disease with a MeSH descriptor and a SNOMED CT
or ICD-10-CM code; corpus keeps only those whose MeSH is one a corpus trial is coded with, or a
descendant of one (a patient's more specific diagnosis still meets the trial's broader one). A DO
disease with SNOMED CT / ICD-10-CM codes but no MeSH cross-reference takes the MeSH of its nearest
DO ancestors that have one (is-a: the specific disease is also the broader one). The tree keeps
every kept descriptor, every corpus descriptor, and all their ancestors.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import defaultdict
from pathlib import Path

_MESH = re.compile(r"^([A-Z])0*(\d{1,9})$")


def normal_mesh(descriptor: str) -> str:
    match = _MESH.match(descriptor.strip().upper())
    if not match:
        return descriptor.strip().upper()
    digits = match.group(2)
    return match.group(1) + (digits.zfill(6) if len(digits) <= 6 else digits.zfill(9))


def _unquote(value: str) -> str:
    return value.strip().strip('"')


Codes = dict[str, dict[str, set[str]]]


def read_do(xrefs: Path, tree: Path) -> tuple[Codes, dict[str, set[str]], dict[str, str]]:
    """(DOID → {"MESH"|"SNOMED"|"ICD10CM": codes}, DOID → parent DOIDs, DOID → label)."""
    codes: Codes = defaultdict(lambda: defaultdict(set))
    labels: dict[str, str] = {}
    with xrefs.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            doid, label, xref = (_unquote(part) for part in line.rstrip("\n").split("\t"))
            labels[doid] = label
            prefix, _, code = xref.partition(":")
            if prefix == "MESH" and code.startswith("D"):
                codes[doid]["MESH"].add(normal_mesh(code))
            elif prefix.startswith("SNOMEDCT"):
                codes[doid]["SNOMED"].add(code)
            elif prefix == "ICD10CM":
                codes[doid]["ICD10CM"].add(code.upper())
    parent_labels: dict[str, set[str]] = defaultdict(set)
    with tree.open(encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            doid, label, parent = (_unquote(part) for part in line.rstrip("\n").split("\t"))
            labels.setdefault(doid, label)
            if parent:
                parent_labels[doid].add(parent)
    by_label = {label: doid for doid, label in labels.items()}
    parents = {
        doid: {by_label[p] for p in names if p in by_label} for doid, names in parent_labels.items()
    }
    return codes, parents, labels


# Where MeSH files a descriptor under one that it is not a kind of, the tree numbers below that
# descriptor are dropped and its ancestors are listed instead. Prediabetic State sits under
# Diabetes Mellitus (C18.452.394.750.774, C19.246.774), but prediabetes is not diabetes (ADA
# Standards of Care, section 2): a trial for diabetes must not take it as met.
NOT_A_KIND_OF = {"D011236": "D003920"}
# Disease branches: C (Diseases) and F03 (Mental Disorders). Other branches (E01 Diagnosis,
# G07 Physiological Phenomena …) file the same descriptor for other reasons, not is-a.
DISEASE_BRANCHES = ("C", "F03")


def read_mondo(folder: Path) -> tuple[Codes, dict[str, str]]:
    """MONDO id → {"MESH"|"SNOMED"|"ICD10CM": exactly matching codes}, and MONDO labels."""
    codes: Codes = defaultdict(lambda: defaultdict(set))
    labels: dict[str, str] = {}
    for name, kind in (("sctid", "SNOMED"), ("mesh", "MESH"), ("icd10cm", "ICD10CM")):
        with (folder / f"{name}.tsv").open(encoding="utf-8") as handle:
            lines = (line for line in handle if not line.startswith("#"))
            for row in csv.DictReader(lines, delimiter="\t"):
                if row["predicate_id"] != "skos:exactMatch":
                    continue
                code = row["object_id"].partition(":")[2]
                if kind == "MESH" and not code.startswith("D"):
                    continue
                value = normal_mesh(code) if kind == "MESH" else code.upper()
                codes[row["subject_id"]][kind].add(value)
                labels[row["subject_id"]] = row["subject_label"]
    return codes, labels


def read_mesh_tree(path: Path) -> tuple[dict[str, list[str]], dict[str, str]]:
    numbers: dict[str, list[str]] = defaultdict(list)
    names: dict[str, str] = {}
    with path.open(encoding="utf-8-sig") as handle:
        next(handle)
        for line in handle:
            number, descriptor, term = line.rstrip("\n").split("\t")
            numbers[normal_mesh(descriptor)].append(number)
            names[normal_mesh(descriptor)] = term
    for descriptor, found in numbers.items():
        diseases = [n for n in found if n.startswith(DISEASE_BRANCHES)]
        numbers[descriptor] = diseases or found
    return numbers, names


def read_corpus(folder: Path) -> tuple[set[str], dict[str, set[str]], dict[str, str]]:
    """Corpus condition MeSH ids, the ancestors ClinicalTrials.gov lists for a descriptor when a
    trial is coded with it alone (intersection over such trials), and names."""
    meshes: set[str] = set()
    ancestors: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        module = (record.get("derivedSection") or {}).get("conditionBrowseModule") or {}
        ids = [normal_mesh(m["id"]) for m in module.get("meshes", []) if m.get("id")]
        found = {normal_mesh(a["id"]) for a in module.get("ancestors", []) if a.get("id")}
        for item in [*module.get("meshes", []), *module.get("ancestors", [])]:
            if item.get("id") and item.get("term"):
                names[normal_mesh(item["id"])] = item["term"]
        meshes.update(ids)
        if len(ids) == 1:  # the trial's ancestors are then exactly this descriptor's
            ancestors[ids[0]] = ancestors.get(ids[0], found) & found
    return meshes, ancestors, names


def tree_ancestors_of_number(number: str, by_number: dict[str, str]) -> set[str]:
    parts = number.split(".")
    return {
        by_number[p] for end in range(1, len(parts)) if (p := ".".join(parts[:end])) in by_number
    }


def tree_ancestors(
    descriptor: str, numbers: dict[str, list[str]], by_number: dict[str, str]
) -> set[str]:
    found: set[str] = set()
    for number in numbers.get(descriptor, []):
        parts = number.split(".")
        for end in range(1, len(parts)):
            parent = by_number.get(".".join(parts[:end]))
            if parent:
                found.add(parent)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("do_xrefs", type=Path)
    parser.add_argument("do_tree", type=Path)
    parser.add_argument("mesh_tree", type=Path)
    parser.add_argument("corpus", type=Path)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "mappings"
    )
    parser.add_argument("--do-release", default="", help="DO commit/date, for the header")
    parser.add_argument("--mondo", type=Path, help="folder of MONDO exact-match SSSOM files")
    parser.add_argument("--mondo-release", default="", help="MONDO release, for the header")
    parser.add_argument(
        "--scope",
        choices=("corpus", "all"),
        default="all",
        help="corpus: diseases at or under a corpus trial's condition MeSH; all: every DO disease",
    )
    args = parser.parse_args()

    codes, parents, labels = read_do(args.do_xrefs, args.do_tree)
    numbers, names = read_mesh_tree(args.mesh_tree)
    by_number = {n: d for d, ns in numbers.items() for n in ns}
    corpus, corpus_ancestors, corpus_names = read_corpus(args.corpus)

    overrides: dict[str, set[str]] = {}
    for descriptor, wrong in NOT_A_KIND_OF.items():
        wrong_numbers = tuple(numbers.get(wrong, []))
        kept = [n for n in numbers.get(descriptor, []) if not n.startswith(wrong_numbers)]
        numbers[descriptor] = kept
        above = tree_ancestors(wrong, numbers, by_number)
        above |= {a for n in kept for a in tree_ancestors_of_number(n, by_number)}
        overrides[descriptor] = above - {wrong}

    def ancestors_of(descriptor: str) -> set[str]:
        if descriptor in overrides:
            return set(overrides[descriptor])
        if descriptor in numbers:
            return tree_ancestors(descriptor, numbers, by_number)
        return set(corpus_ancestors.get(descriptor, set()))

    def nearest_mesh(doid: str) -> tuple[set[str], str]:
        """MeSH of the DO term, else of its nearest DO ancestors that have one."""
        if codes[doid]["MESH"]:
            return set(codes[doid]["MESH"]), doid
        level, seen = set(parents.get(doid, set())), {doid}
        while level:
            found = {m for d in level for m in codes[d]["MESH"]} if level else set()
            if found:
                return found, "|".join(sorted(d for d in level if codes[d]["MESH"]))
            seen |= level
            level = {p for d in level for p in parents.get(d, set())} - seen
        return set(), ""

    rows: list[tuple[str, str, str, str, str, str]] = []
    kept: set[str] = set()
    if args.mondo:
        mondo, mondo_labels = read_mondo(args.mondo)
        for term in sorted(mondo):
            for mesh in sorted(mondo[term]["MESH"]):
                if args.scope == "corpus" and not ({mesh} | ancestors_of(mesh)) & corpus:
                    continue
                for system, kind in (("snomed", "SNOMED"), ("icd10cm", "ICD10CM")):
                    for code in sorted(mondo[term][kind]):
                        kept.add(mesh)
                        label = mondo_labels.get(term, "")
                        rows.append((system, code, mesh, "exact", label, term))
    for doid in sorted(codes):
        if not (codes[doid]["SNOMED"] or codes[doid]["ICD10CM"]):
            continue
        meshes, via = nearest_mesh(doid)
        for mesh in sorted(meshes):
            if args.scope == "corpus" and not ({mesh} | ancestors_of(mesh)) & corpus:
                continue
            kept.add(mesh)
            source = doid + ("" if via == doid else f" via DO ancestor {via}")
            match = "xref" if via == doid else "ancestor"
            label = labels.get(doid, "")
            for code in sorted(codes[doid]["SNOMED"]):
                rows.append(("snomed", code, mesh, match, label, source))
            for code in sorted(c for c in codes[doid]["ICD10CM"] if "-" not in c):  # not blocks
                rows.append(("icd10cm", code, mesh, match, label, source))

    mondo_release = f", {args.mondo_release}" if args.mondo_release else ""
    header = (
        "# Condition crosswalk SNOMED CT / ICD-10-CM -> MeSH descriptor (7-character form). Built"
        " by scripts/build_condition_mesh.py. match=exact rows: MONDO exact-match mapping sets"
        " (https://github.com/monarch-initiative/mondo src/ontology/mappings/"
        f"mondo_exactmatch_sctid, _mesh, _icd10cm .sssom.tsv{mondo_release};"
        " licence CC0 1.0): the code and the MeSH descriptor both exactly match one MONDO disease."
        " match=xref / ancestor rows: the Human Disease Ontology (DO,"
        " https://github.com/DiseaseOntology/HumanDiseaseOntology, DOreports/allXREFinDO.tsv and"
        f" HumanDO.tsv{', ' + args.do_release if args.do_release else ''}; licence CC0 1.0): each"
        " row is a DO disease's own SNOMED CT / ICD-10-CM cross-reference and its MeSH"
        " cross-reference, or (source 'via DO ancestor') the MeSH of its nearest DO ancestor."
        " The matcher uses a code's most precise rows only (exact, else xref, else ancestor);"
        " several MeSH rows of that kind mean what they share (the descriptors common to all their"
        " ancestries: B20 is HIV infection, not AIDS)."
        + (
            " Scope: diseases whose MeSH is, or descends from, a condition MeSH term of the"
            " ClinicalTrials.gov corpus."
            if args.scope == "corpus"
            else " Scope: every DO disease with MeSH and SNOMED CT or ICD-10-CM cross-references."
        )
        + " ICD-10-CM codes match by prefix (E11 covers E11.9)."
        " SNOMED CT (SNOMED International) and ICD-10-CM (CDC NCHS) codes are DO's; verify"
        " before clinical use."
    )
    order = {"exact": 0, "xref": 1, "ancestor": 2}
    best: dict[tuple[str, str, str], tuple[str, str, str, str, str, str]] = {}
    for row in sorted(rows, key=lambda r: (order[r[3]], r)):  # the most precise mapping first
        best.setdefault(row[:3], row)
    with (args.out / "condition-mesh.csv").open("w", encoding="utf-8", newline="") as handle:
        handle.write(header + "\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["system", "code", "mesh", "match", "label", "source"])
        writer.writerows(sorted(best.values()))
    rows = list(best.values())

    wanted = kept | corpus
    for descriptor in list(wanted):
        wanted |= ancestors_of(descriptor)
    tree_header = (
        "# MeSH descriptors with their tree numbers (NLM Medical Subject Headings, 2017 tree file"
        " 2017MeshTree.txt as mirrored in github.com/jzsh2000/pubmed data/mesh, public domain:"
        " https://www.nlm.nih.gov/databases/download/terms_and_conditions_mesh.html). A parent is"
        " the descriptor at the tree number one level up. Descriptors newer than that file carry"
        " no tree number; their ancestors (column ancestors) are those ClinicalTrials.gov lists in"
        " conditionBrowseModule for corpus trials coded with that descriptor alone (source ctgov;"
        " none when no such trial exists). Scope: the"
        " descriptors of condition-mesh.csv and of the corpus trials' conditions, with ancestors."
    )
    with (args.out / "mesh-tree.csv").open("w", encoding="utf-8", newline="") as handle:
        handle.write(tree_header + "\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["mesh", "name", "tree_numbers", "ancestors", "source"])
        for descriptor in sorted(wanted):
            if descriptor in overrides:
                above = "|".join(sorted(overrides[descriptor]))
                note = f"mesh2017, not under {NOT_A_KIND_OF[descriptor]} (see the builder)"
                row = [descriptor, names[descriptor], "|".join(numbers[descriptor]), above, note]
            elif descriptor in numbers:
                row = [
                    descriptor,
                    names[descriptor],
                    "|".join(sorted(numbers[descriptor])),
                    "",
                    "mesh2017",
                ]
            else:
                extra = "|".join(sorted(corpus_ancestors.get(descriptor, set())))
                row = [descriptor, corpus_names.get(descriptor, ""), "", extra, "ctgov"]
            writer.writerow(row)
    print(f"{len(rows)} crosswalk rows, {len(kept)} MeSH descriptors; tree {len(wanted)} rows")


if __name__ == "__main__":
    main()
