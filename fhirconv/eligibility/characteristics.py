"""Criterion text → computable Group.characteristic entries (with their source words).

Wraps `fhirconv.eligibility.extract.extract_items` (numbers: ages, labs, scores, doses, windows;
mentions: sex, pregnancy, lactation, childbearing potential) and adds what the extractor does not
find: conditions (the study's own conditions and MeSH terms, plus `eligibility-conditions.csv`),
medications and drug classes (`eligibility-medications.csv`, `eligibility-drug-classes.csv`),
negation, "history of", severity qualifiers, time windows attached to the item they qualify,
"or"-alternatives and how much of the criterion the items cover.

Each computable characteristic points back to its criterion characteristic (by Element.id) and
keeps the words it came from; the extensions are documented in docs/matching.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import pairwise
from typing import Any, cast

from fhirconv.eligibility import codec, model, vocab
from fhirconv.eligibility.extract import ExtractedItem, extract_items
from fhirconv.eligibility.units import convert
from fhirconv.mapping import systems
from fhirconv.model import MeshTerm, Trial

Json = dict[str, Any]

# --- extension URLs: defined once, by the codec that writes them ----------------------------

SOURCE_CRITERION = codec.SOURCE_CRITERION
SOURCE_TEXT = codec.SOURCE_TEXT
TIME_WINDOW = codec.TIME_WINDOW
DOSE = codec.DOSE
ALTERNATIVE_GROUP = codec.ALTERNATIVE_GROUP
CONJUNCTION_GROUP = codec.CONJUNCTION_GROUP
CONDITIONAL = codec.CONDITIONAL
QUALIFIER = codec.QUALIFIER
HISTORY = codec.HISTORY
COVERAGE = codec.COVERAGE
ITEM_COVERAGE = codec.ITEM_COVERAGE
APPLIES_TO_SEX = codec.APPLIES_TO_SEX

CHARACTERISTIC_CODES = codec.CHARACTERISTIC_CODES
# UCUM annotation for "2.5 × the upper limit of normal": the value is a multiple of the
# Observation's own referenceRange.high.
RELATIVE_TO_UPPER_LIMIT = "{xULN}"
SCORE_CODES = codec.SCORE_CODES

AGE = {"system": systems.LOINC, "code": "30525-0", "display": "Age"}
SEX = {"system": systems.LOINC, "code": "46098-0", "display": "Sex"}
PREGNANCY_STATUS = {"system": systems.LOINC, "code": "82810-3", "display": "Pregnancy status"}
PREGNANT = {"system": systems.SNOMED, "code": "77386006", "display": "Pregnant"}
BREASTFEEDING_STATUS = {
    "system": systems.LOINC,
    "code": "63895-7",
    "display": "Breastfeeding status",
}
BREASTFEEDING = {"system": systems.LOINC, "code": "LA29252-6", "display": "Currently breastfeeding"}
CHILDBEARING = {
    "system": CHARACTERISTIC_CODES,
    "code": "childbearing-potential",
    "display": "Of childbearing potential",
}
UNCODED_CONDITION = {"system": CHARACTERISTIC_CODES, "code": "condition", "display": "Condition"}

_TIME_UNITS = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours",
               "min": "minutes"}  # fmt: skip

# --- internal item ------------------------------------------------------------------------------


@dataclass
class Window:
    operator: str  # "<=" / "<": within; ">=" / ">": at least that long
    value: float
    ucum: str
    relation: str
    text: str
    span: tuple[int, int]


@dataclass
class Item:
    """One computable item of a criterion (spans index the criterion text)."""

    kind: str  # age sex pregnancy lactation childbearing observation dose medication condition
    span: tuple[int, int]
    text: str
    negated: bool = False
    operator: str | None = None
    value: float | str | None = None
    value2: float | None = None
    ucum: str | None = None
    unit: str | None = None
    code: Json | None = None  # CodeableConcept
    window: Window | None = None
    conditional: bool = False
    qualifier: str | None = None
    history: bool = False
    equivalent: Json | None = None  # Coding: doses of the class count in this drug's equivalents
    name_span: tuple[int, int] | None = None  # where the analyte/drug name was written
    group: str | None = None
    conjunction: str | None = None
    extra_spans: list[tuple[int, int]] = field(default_factory=list)
    # The item (with its window and scope) is the whole of one alternative of an exclusion, or
    # the whole of one requirement of an inclusion: it may decide alone (see _clause_coverage).
    whole_clause: bool = False
    applies_to_sex: str | None = None  # "QTcF > 450 ms (males)": only for this sex
    exceptions: list[Json] = field(default_factory=list)  # conditions that do not count
    # "within 30 days or 5 half-lives, whichever is longer": an event inside the written window is
    # inside the meant one, one outside it may not be
    window_is_minimum: bool = False


# --- patterns -----------------------------------------------------------------------------------

_NEGATION_BEFORE = re.compile(
    r"\b(?:no|not|non|without|never|absence\s+of|free\s+of|negative|nor|neither|lack\s+of)\b"
    r"[^.;:,()]{0,30}$",
    re.IGNORECASE,
)
_NEGATIVE_AFTER = re.compile(r"^[\s-]*(?:negative|free|naive|naïve)\b", re.IGNORECASE)
_HISTORY_BEFORE = re.compile(
    r"\b(?:history|prior|previous|previously|past|ever|lifetime|suffered)\b[^.;:]{0,40}$",
    re.IGNORECASE,
)
_HISTORY_CUE = re.compile(
    r"\b(?:(?:current|present|active)\s+or\s+(?:past|previous|prior|lifetime)|"
    r"(?:past|previous|prior|lifetime)\s+or\s+(?:current|present|active)|"
    r"(?:a\s+)?(?:personal\s+)?(?:known\s+)?(?:lifetime\s+)?history\s+of|lifetime|ever\s+had|"
    r"previously\s+diagnosed\s+with|prior|previous)\b",
    re.IGNORECASE,
)
_QUALIFIER_BEFORE = re.compile(
    r"\b(?P<q>severe|moderate(?:\s+(?:to|or)\s+severe)?|uncontrolled|poorly\s+controlled|"
    r"clinically\s+significant|significant|unstable|symptomatic|decompensated|refractory|"
    r"advanced|end[- ]stage|progressive|high[- ]dose|equivalent|dose\s+of|doses\s+of)\b"
    r"(?:\s+\w+){0,3}\s*$",
    re.IGNORECASE,
)
_OTHER_BEFORE = re.compile(
    r"\b(?:other|another|except|excluding|not\s+caused\s+by)\s+(?:\w+\s+)?$", re.I
)
_PLAIN_OTHER = re.compile(r"(?:other|another)\s+(?:\w+\s+)?", re.IGNORECASE)
_NUMBER_AFTER = re.compile(r"^[\s:(]*(?:dose\s*)?(?:[<>≤≥=]|\d)")
_CLAUSE_BREAK = re.compile(r"[.;\n]\s|[;\n]|,\s")
_SENTENCE_BREAK = re.compile(r"(?<![\d\s])\.(?:\s|$)|[;\n]")
_OR = re.compile(r"\bor\b|/", re.IGNORECASE)
_AND = re.compile(r"\band\b", re.IGNORECASE)
# Cues that an item holds only under conditions the text states: whole criterion …
_CRITERION_EXCEPTION = re.compile(
    r"\b(?:unless|no\s+(?:minimum|maximum)|not\s+required|exempt\w*|waived|does\s+not\s+apply|"
    r"with\s+the\s+exception|may\s+be\s+(?:included|enrolled|eligible)|"
    # "(2 rechecks are allowed)": repeating a measurement is not an exception to the criterion
    r"(?<!rechecks\s)(?<!retests\s)(?<!repeats\s)(?<!recheck\s)(?<!retest\s)(?<!repeat\s)"
    r"(?:are|is)\s+(?:allowed|permitted)|"
    r"(?<!rechecks\sare\s)(?<!retests\sare\s)(?<!recheck\sis\s)(?<!retest\sis\s)permitted)\b",
    re.IGNORECASE,
)
# … or the sentence the item is in.
_SENTENCE_EXCEPTION = re.compile(
    r"\b(?:if|except|when|whereas|in\s+case|provided|only\s+for|only\s+in|for\s+those|for\s+patients"
    r"\s+(?:with|who|on)|for\s+subjects\s+(?:with|who|on))\b",
    re.IGNORECASE,
)
_RELATION_AFTER = re.compile(
    r"^\s*(?:\w+\s+){0,2}?(?P<rel>(?:prior\s+to|before|preceding|of|after|following|from)\s+"
    r"(?:the\s+)?(?:first\s+|initial\s+|study\s+|informed\s+)?(?:screening|enrol(?:l)?ment|"
    r"randomi[sz]ation|inclusion|study\s+entry|entry|baseline|consent|signing|day\s+1|visit\s+1|"
    r"first\s+dose|dosing|treatment|study\s+(?:drug|treatment|start))(?:\s+(?:date|visit))?)",
    re.IGNORECASE,
)
_AGAINST_CRITERIA = re.compile(
    r"\b(?:according\s+to|as\s+defined\s+by|meeting|that\s+meets?|fulfill\w*|by)\s+(?:the\s+)?"
    r"[^.;]{0,120}?\b(?:criteria|classification|guidelines?|definition)\b(?:\s+(?:of|by|from|for)\s+[^.;]*)?",
    re.IGNORECASE,
)
_FILLER = frozenset(vocab.words("filler"))

# --- vocabularies built per trial -----------------------------------------------------------------


def _initials(term: str) -> str | None:
    words = [w for w in re.findall(r"[A-Za-z]+", term) if w.lower() not in {"of", "the", "and"}]
    if len(words) < 2:
        return None
    return "".join(w[0].upper() for w in words)


@dataclass(frozen=True)
class _ConditionConcept:
    name: str
    mesh: Json | None  # MeSH Coding
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class _TrialConditions:
    concepts: tuple[_ConditionConcept, ...]
    index: vocab.PhraseIndex  # the concepts' synonyms, compiled once


def _trial_conditions(trial: Trial, criteria_text: str) -> _TrialConditions:
    return _conditions_of(trial.condition_meshes, trial.conditions, criteria_text)


# Every criterion of a study asks for the same vocabulary: built once per study, not per
# criterion (which made extraction quadratic in the length of the criteria text).
@lru_cache(maxsize=8)
def _conditions_of(
    condition_meshes: tuple[MeshTerm, ...], conditions: tuple[str, ...], criteria_text: str
) -> _TrialConditions:
    concepts = _condition_concepts(condition_meshes, conditions, criteria_text)
    return _TrialConditions(tuple(concepts), vocab.PhraseIndex([c.synonyms for c in concepts]))


def _condition_concepts(
    condition_meshes: tuple[MeshTerm, ...], conditions: tuple[str, ...], criteria_text: str
) -> list[_ConditionConcept]:
    """The study's own conditions (MeSH-coded where ClinicalTrials.gov gave an id), then the
    conditions table; each with synonyms and acronyms ("Systemic Lupus Erythematosus" → "SLE")."""
    concepts: list[_ConditionConcept] = []
    seen: set[str] = set()
    names: list[tuple[str, Json | None]] = []
    for mesh in condition_meshes:
        coding = (
            {"system": systems.MESH, "code": mesh.id, "display": mesh.term} if mesh.id else None
        )
        names.append((mesh.term, coding))
    names += [(c, None) for c in conditions]
    for name, coding in names:
        synonyms = {name}
        row = next(
            (
                r
                for r in vocab.conditions()
                if (coding and r.mesh == coding["code"])
                or name.lower() in (s.lower() for s in (r.term, *r.synonyms))
            ),
            None,
        )
        if row is not None:
            synonyms |= {row.term, *row.synonyms}
            if coding is None and any(m.id == row.mesh for m in condition_meshes):
                coding = {"system": systems.MESH, "code": row.mesh, "display": row.term}
        if "," in name:  # MeSH inverted form "Lupus Erythematosus, Systemic"
            head, _, tail = name.partition(",")
            synonyms.add(f"{tail.strip()} {head.strip()}")
        for synonym in list(synonyms):
            acronym = _initials(synonym)
            if acronym and len(acronym) >= 2 and re.search(rf"\b{acronym}\b", criteria_text):
                synonyms.add(acronym)
        key = (coding or {}).get("code") or name.lower()
        if key in seen:
            continue
        seen.add(key)
        concepts.append(_ConditionConcept(name, coding, tuple(sorted(synonyms))))
    for row in vocab.conditions():
        if row.mesh in seen or any(
            row.term.lower() == c.name.lower() or row.term in c.synonyms for c in concepts
        ):
            continue
        seen.add(row.mesh)
        concepts.append(
            _ConditionConcept(
                row.term,
                {"system": systems.MESH, "code": row.mesh, "display": row.term},
                (row.term, *row.synonyms),
            )
        )
    return concepts


# --- item finding -------------------------------------------------------------------------------


def _clause_before(text: str, start: int, limit: int = 80) -> str:
    window = text[max(0, start - limit) : start]
    cuts = [m.end() for m in _CLAUSE_BREAK.finditer(window)]
    return window[cuts[-1] :] if cuts else window


def _negated(text: str, span: tuple[int, int]) -> bool:
    return bool(_NEGATION_BEFORE.search(_clause_before(text, span[0]))) or bool(
        _NEGATIVE_AFTER.match(text[span[1] : span[1] + 15])
    )


def _overlaps(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(s < span[1] and span[0] < e for s, e in spans)


def _score_code(code: str, name: str | None) -> Json:
    score = vocab.score_by_code(code)
    display = score.name if score else (name or code)
    if re.fullmatch(r"\d+-\d", code):
        coding = {"system": systems.LOINC, "code": code, "display": display}
    else:
        coding = {"system": SCORE_CODES, "code": code, "display": display}
    return {"coding": [coding], "text": name or display}


def _analyte_code(code: str, name: str | None) -> Json:
    from fhirconv.tables import load_csv

    row = next((r for r in load_csv("eligibility-analytes.csv") if r["loinc"] == code), None)
    if row is None:
        return _score_code(code, name)
    coding = {"system": systems.LOINC, "code": code, "display": row["loinc_display"]}
    return {"coding": [coding], "text": name or row["name"]}


def _medication_code(med: vocab.Medication) -> Json:
    coding: Json = {"system": vocab.RXNORM, "code": med.rxnorm, "display": med.name}
    return {"coding": [coding] if med.rxnorm else [], "text": med.name}


def _procedure_code(procedure: vocab.Procedure) -> Json:
    codings = [{"system": systems.SNOMED, "code": code} for code in procedure.snomed]
    codings += [{"system": codec.CPT, "code": code} for code in procedure.cpt]
    return {"coding": codings, "text": procedure.name}


def _class_code(drug_class: vocab.DrugClass) -> Json:
    return {
        "coding": [{"system": vocab.ATC, "code": drug_class.atc, "display": drug_class.name}],
        "text": drug_class.name,
    }


def _find_drug(
    text: str,
) -> tuple[Json, tuple[int, int], vocab.Medication | vocab.DrugClass] | None:
    """The last drug or drug class named in `text`."""
    found: tuple[Json, tuple[int, int], vocab.Medication | vocab.DrugClass] | None = None
    medications, classes = vocab.medications(), vocab.drug_classes()
    lowered = vocab.folded(text)
    for index, match in vocab.medication_index().finditer(text, lowered):
        if found is None or match.start() > found[1][0]:
            found = (_medication_code(medications[index]), match.span(), medications[index])
    for index, match in vocab.drug_class_index().finditer(text, lowered):
        if found is None or match.start() > found[1][0]:
            found = (_class_code(classes[index]), match.span(), classes[index])
    return found


def _from_extracted(
    text: str, extracted: list[ExtractedItem]
) -> tuple[list[Item], list[ExtractedItem]]:
    """Items from the extractor's output, and its windows (attached later)."""
    items: list[Item] = []
    windows: list[ExtractedItem] = []
    previous: ExtractedItem | None = None
    extracted = _shared_units(text, extracted)
    sexes = {i.value for i in extracted if i.kind == "sex"}
    reproductive = any(i.kind in ("pregnancy", "lactation", "childbearing") for i in extracted)
    for raw in extracted:
        span = raw.span
        if raw.kind == "window" or (
            raw.kind == "threshold" and raw.code is None and raw.ucum in _TIME_UNITS
        ):
            windows.append(raw)
            continue
        if raw.kind == "age" and isinstance(raw.value, float) and raw.ucum in _TIME_UNITS:
            items.append(
                Item(
                    "age",
                    span,
                    raw.text,
                    raw.negated,
                    raw.operator,
                    raw.value,
                    raw.value2,
                    raw.ucum,
                    raw.unit,
                    {"coding": [AGE], "text": "Age"},
                )
            )
        elif raw.kind == "sex" and len(sexes) == 1 and not reproductive:
            items.append(Item("sex", span, raw.text, _negated(text, span), "=", raw.value))
        elif raw.kind in ("pregnancy", "lactation", "childbearing"):
            code = {
                "pregnancy": {"coding": [PREGNANCY_STATUS], "text": "Pregnancy"},
                "lactation": {"coding": [BREASTFEEDING_STATUS], "text": "Breastfeeding"},
                "childbearing": {"coding": [CHILDBEARING], "text": "Childbearing potential"},
            }[raw.kind]
            items.append(Item(raw.kind, span, raw.text, _negated(text, span), code=code))
        elif raw.kind == "threshold":
            threshold = _threshold_item(text, raw, previous)
            if threshold is not None:
                items.append(threshold)
        elif raw.kind == "dose":
            dose = _dose_item(text, raw)
            if dose is not None:
                items.append(dose)
        previous = raw
    return items, windows


_JOINED_BOUNDS = re.compile(r"[\s,]*(?:or|and|to|and/or)?[\s,]*", re.IGNORECASE)


def _shared_units(text: str, extracted: list[ExtractedItem]) -> list[ExtractedItem]:
    """ "SBP ≤ 100 or ≥ 140 mmHg": a bare bound takes the unit written once after the next bound
    of the same analyte, when only "or"/"and"/"to"/"," stand between them."""
    shared = list(extracted)
    for index, (left, right) in enumerate(pairwise(extracted)):
        if (
            left.kind == right.kind == "threshold"
            and left.unit is None
            and right.ucum is not None
            and left.name is not None
            and left.name == right.name
            and (
                _JOINED_BOUNDS.fullmatch(text[left.span[1] : right.span[0]])
                # "90 ≤ SBP < 140 mmHg": the name stands between the two bounds
                or text[left.span[1] : right.span[0]].strip() == left.name
            )
        ):
            shared[index] = left.model_copy(update={"unit": right.unit, "ucum": right.ucum})
    return shared


def _threshold_item(text: str, raw: ExtractedItem, previous: ExtractedItem | None) -> Item | None:
    """A lab, vital sign or score comparison with a code and a UCUM unit (or none)."""
    if not isinstance(raw.value, float):
        return None
    code = raw.code
    if (
        code is None
        and previous is not None
        and previous.kind == "threshold"
        and previous.code
        and previous.name == raw.name
    ):
        code = previous.code  # "creatinine > 2.5 mg/dL or 221 µmol/L": same analyte
    ucum = raw.ucum
    if raw.unit == "x ULN":
        # a multiple of the result's own reference-range upper limit: UCUM annotation {xULN}
        ucum = RELATIVE_TO_UPPER_LIMIT
    if code is not None and ucum is not None and raw.unit is not None:
        ucum = _truncated_unit(code, raw.unit, ucum)
    if code is None or (raw.unit is not None and ucum is None):
        return None  # no code, or a unit UCUM cannot express: stays text
    item = Item(
        "observation", raw.span, raw.text, raw.negated, raw.operator, raw.value, raw.value2,
        ucum, raw.unit, _analyte_code(code, raw.name),
    )  # fmt: skip
    name_at = text.rfind(raw.name, 0, raw.span[0]) if raw.name else -1
    if name_at >= 0 and raw.name:
        item.name_span = (name_at, name_at + len(raw.name))
        _absorb_name_words(text, item, code, name_at)
    return item


_POSITION_BEFORE = re.compile(
    r"\b(?P<position>supine|sitting|seated|standing|recumbent|lying)[^\S\n]+$", re.IGNORECASE
)


def _absorb_name_words(text: str, item: Item, code: str, name_at: int) -> None:
    """Words before the name that are the name too: the long form of an abbreviation ("alanine
    aminotransferase (ALT)"), and the body position a vital sign is taken in ("supine systolic
    blood pressure"), which the item keeps in its concept text so that only readings not
    taken in another position answer it."""
    from fhirconv.tables import load_csv

    start = name_at
    row = next((r for r in load_csv("eligibility-analytes.csv") if r["loinc"] == code), None)
    score = vocab.score_by_code(code)
    synonyms = (row["synonyms"].split("|") if row else []) + list(score.synonyms if score else [])
    regex = vocab.phrase_regex([s for s in synonyms if s])
    opened = re.search(r"\(\s*$", text[:start])
    if regex and opened:
        found = list(regex.finditer(text, max(0, opened.start() - 60), opened.start()))
        long_form = found[-1] if found else None
        if long_form and not text[long_form.end() : opened.start()].strip():
            item.extra_spans.append((long_form.start(), start))
            start = long_form.start()
    position = _POSITION_BEFORE.search(text[max(0, start - 20) : start])
    if position and item.code is not None:
        item.extra_spans.append((start - len(position.group()), start))
        word = position.group("position").lower()
        item.code = {**item.code, "text": f"{word} {item.code.get('text') or ''}".strip()}


def _truncated_unit(code: str, written: str, ucum: str) -> str:
    """ "glucose < 126 mg/d": a rate per day can never be a concentration; a written unit that is
    the analyte's own unit without its final "L" is read as that unit."""
    from fhirconv.tables import load_csv

    row = next((r for r in load_csv("eligibility-analytes.csv") if r["loinc"] == code), None)
    canonical = row["ucum"] if row else ""
    if (
        canonical
        and f"{written.strip().lower()}l" == canonical.lower()
        and convert(1.0, ucum, canonical, code) is None
    ):
        return canonical
    return ucum


def _dose_item(text: str, raw: ExtractedItem) -> Item | None:
    """A daily dose of a drug (or class) named just before it; other doses stay text."""
    if not isinstance(raw.value, float) or not raw.ucum:
        return None
    if not raw.ucum.endswith("/d") or raw.ucum.startswith("mg/kg"):
        return None
    span = raw.span
    clause_start = max(0, span[0] - 80)
    drug = _find_drug(text[clause_start : span[0]])
    if drug is None:
        return None
    code, (drug_start, drug_end), entry = drug
    item = Item(
        "dose", span, raw.text, raw.negated, raw.operator, raw.value, raw.value2, raw.ucum,
        raw.unit, code,
    )  # fmt: skip
    item.name_span = (clause_start + drug_start, clause_start + drug_end)
    after_name = text[clause_start + drug_end : span[0]]
    corticosteroid = (
        isinstance(entry, vocab.Medication) and entry.prednisone_factor is not None
    ) or (isinstance(entry, vocab.DrugClass) and entry.prednisone_equivalent)
    if corticosteroid and re.search(r"equivalent", after_name + text[span[1] : span[1] + 30], re.I):
        prednisone = vocab.medication("prednisone")
        if prednisone is not None:
            item.equivalent = _medication_code(prednisone)["coding"][0]
    return item


def _own_conditions(trial: Trial) -> tuple[Json, ...]:
    return _own_conditions_of(trial.condition_meshes, trial.conditions)


# Built once per study (every criterion asks for the same answer).
@lru_cache(maxsize=8)
def _own_conditions_of(
    condition_meshes: tuple[MeshTerm, ...], conditions: tuple[str, ...]
) -> tuple[Json, ...]:
    """The study's own conditions as coded concepts (its MeSH terms, and the conditions table's
    row for each condition it names), or none at all when a named condition has no code: "other
    malignancies" can only leave out what is coded."""
    own = [
        {"coding": [{"system": systems.MESH, "code": m.id, "display": m.term}], "text": m.term}
        for m in condition_meshes
        if m.id
    ]
    for name in conditions:
        row = next(
            (
                r
                for r in vocab.conditions()
                if name.lower() in (s.lower() for s in (r.term, *r.synonyms))
            ),
            None,
        )
        if row is None and not own:
            return ()
        if row is not None:
            coding = {"system": systems.MESH, "code": row.mesh, "display": row.term}
            own.append({"coding": [coding], "text": name})
    return tuple(own)


def _mentions(
    text: str,
    conditions: _TrialConditions,
    taken: list[tuple[int, int]],
    own: tuple[Json, ...] = (),
) -> list[Item]:
    """Conditions, medications, drug classes and procedures named in the text (not inside other
    items)."""
    items: list[Item] = []
    found: list[tuple[tuple[int, int], str, Json]] = []
    lowered = vocab.folded(text)
    for index, match in conditions.index.finditer(text, lowered):
        concept = conditions.concepts[index]
        code: Json = (
            {"coding": [concept.mesh], "text": concept.name}
            if concept.mesh
            else {"coding": [UNCODED_CONDITION], "text": concept.name}
        )
        found.append((match.span(), "condition", code))
    medications, classes = vocab.medications(), vocab.drug_classes()
    for index, match in vocab.medication_index().finditer(text, lowered):
        found.append((match.span(), "medication", _medication_code(medications[index])))
    for index, match in vocab.drug_class_index().finditer(text, lowered):
        found.append((match.span(), "medication", _class_code(classes[index])))
    procedures = vocab.procedures()
    for index, match in vocab.procedure_index().finditer(text, lowered):
        found.append((match.span(), "procedure", _procedure_code(procedures[index])))
    # Longest first, then no overlaps ("lupus nephritis" over "SLE" inside a longer name).
    found.sort(key=lambda f: (-(f[0][1] - f[0][0]), f[0][0]))
    used = list(taken)
    for span, kind, code in found:
        if _overlaps(span, used):
            continue
        before = text[max(0, span[0] - 40) : span[0]]
        other = _OTHER_BEFORE.search(before)
        plain_other = other and _PLAIN_OTHER.fullmatch(other.group())
        if other and not (plain_other and kind == "condition" and own):
            continue  # "other autoimmune diseases", "not caused by lupus"
        used.append(span)
        item = Item(kind, span, text[span[0] : span[1]], _negated(text, span), code=code)
        if other:
            # "other malignancies": any but the study's own conditions
            item.exceptions = list(own)
            item.extra_spans.append((max(0, span[0] - 40) + other.start(), span[0]))
        clause = _clause_before(text, span[0])
        qualifier = _QUALIFIER_BEFORE.search(clause)
        if qualifier:
            item.qualifier = " ".join(qualifier.group("q").lower().split())
        if kind == "medication" and _NUMBER_AFTER.match(text[span[1] : span[1] + 12]):
            item.qualifier = (
                item.qualifier or "dose"
            )  # "prednisone ≥100 …": a dose we could not read
        if kind == "condition" and _HISTORY_BEFORE.search(clause):
            item.history = True
            clause_start = span[0] - len(clause)
            # the cue's words are what `history` says: "past or present", "lifetime history of"
            item.extra_spans += [
                (clause_start + cue.start(), clause_start + cue.end())
                for cue in _HISTORY_CUE.finditer(clause)
            ]
        items.append(item)
    _spread_history(text, items)
    return items


def _spread_history(text: str, items: list[Item]) -> None:
    """ "history of A, B or C": the history cue before a list of diseases is every one's."""
    diseases = sorted((i for i in items if i.kind == "condition"), key=lambda i: i.span)
    for left, right in pairwise(diseases):
        between = text[left.span[1] : right.span[0]]
        if left.history and not _SENTENCE_BREAK.search(between) and len(between) <= 60:
            right.history = True


# "…, or 5 half-lives, whichever is longer" after a window: the window written is a lower bound.
_LONGER_ALTERNATIVE = re.compile(
    r"[\s,]*(?:or\s+(?:\d+(?:\.\d+)?|five|three|two|ten)\s*[-\s]?\s*(?:half[-\s]?lives|"
    r"elimination\s+half[-\s]?lives|t\s?1/2)[\s,]*)?"
    r"(?:whichever\s+is\s+(?:longer|greater|later))[\s,]*",
    re.IGNORECASE,
)


_OR_WITHIN = re.compile(r"\s*,\s*(?:or|and/or)\s*", re.IGNORECASE)


_NORMAL_RANGE = re.compile(
    r"\b(?:within|in)\s+(?:the\s+)?(?:institutional\s+|laboratory\s+|local\s+)?(?:normal|"
    r"reference)\s+(?:range|limits?)\b",
    re.IGNORECASE,
)
_BETWEEN_NAME_AND_RANGE = re.compile(
    r"[\s,]*(?:(?:levels?|values?|results?|concentrations?|counts?|must|should|shall|be|is|are|"
    r"remains?|to|not)\s+)*",
    re.IGNORECASE,
)
_MUST = re.compile(r"\b(?:must|should|shall)\s+(?:be|remain)\b", re.IGNORECASE)


@cache
def _lab_names() -> tuple[re.Pattern[str], dict[str, str]] | None:
    from fhirconv.tables import load_csv

    by_name: dict[str, str] = {}
    for row in load_csv("eligibility-analytes.csv"):
        if row["category"] == "lab" and row["loinc"]:
            for synonym in row["synonyms"].split("|"):
                by_name.setdefault(synonym.lower(), row["loinc"])
    regex = vocab.phrase_regex(list(by_name))
    return (regex, by_name) if regex else None


def _within_normal_range(text: str, exclude: bool, taken: list[tuple[int, int]]) -> list[Item]:
    """ "ALT within the normal range": the result at most its reference range's upper limit
    (`{xULN}` ≤ 1; a result below the lower limit is not caught, so this never wrongly fails
    anyone). In an exclusion, "X must be within the normal range" is a requirement."""
    names = _lab_names()
    found: list[Item] = []
    for match in _NORMAL_RANGE.finditer(text) if names else ():
        if names is None or _overlaps(match.span(), taken):
            continue
        regex, by_name = names
        named = [n for n in regex.finditer(text, max(0, match.start() - 60), match.start())]
        if not named or not _BETWEEN_NAME_AND_RANGE.fullmatch(text, named[-1].end(), match.start()):
            continue
        name = named[-1]
        between = text[name.end() : match.start()]
        negated = bool(re.search(r"\bnot\b", between, re.I)) != bool(
            exclude and _MUST.search(between)
        )
        code = _analyte_code(by_name[name.group().lower()], name.group())
        item = Item(
            "observation", match.span(), match.group(), negated, "<=", 1.0, None,
            RELATIVE_TO_UPPER_LIMIT, "x ULN", code,
        )  # fmt: skip
        item.name_span = name.span()
        item.extra_spans.append((name.end(), match.start()))
        found.append(item)
    return found


# "≤ 92 days postpartum", "within 6 weeks after delivery": a delivery inside that window.
_POSTPARTUM = re.compile(
    r"(?P<op>≤|<=|<|within|less\s+than|no\s+more\s+than|up\s+to|at\s+most)\s*(?P<n>\d+(?:\.\d+)?)"
    r"\s*(?P<unit>days?|weeks?|months?)\s+(?:postpartum|post-partum|after\s+(?:delivery|childbirth|"
    r"giving\s+birth))\b",
    re.IGNORECASE,
)
_POSTPARTUM_UNITS = {"day": "d", "week": "wk", "month": "mo"}


def _postpartum(text: str, taken: list[tuple[int, int]]) -> list[Item]:
    delivery = next((p for p in vocab.procedures() if p.name == "delivery"), None)
    found: list[Item] = []
    for match in _POSTPARTUM.finditer(text) if delivery else ():
        if delivery is None or _overlaps(match.span(), taken):
            continue
        strict = match.group("op") in ("<", "less than") or match.group("op").lower().startswith(
            "less"
        )
        unit = _POSTPARTUM_UNITS[match.group("unit").lower().rstrip("s")]
        item = Item("procedure", match.span(), match.group(), _negated(text, match.span()))
        item.code = _procedure_code(delivery)
        item.window = Window(
            "<" if strict else "<=",
            float(match.group("n")),
            unit,
            "before the evaluation date",
            match.group(),
            match.span(),
        )
        found.append(item)
    return found


def _attach_windows(text: str, items: list[Item], windows: list[ExtractedItem]) -> None:
    for raw in windows:
        if not isinstance(raw.value, float) or raw.ucum not in _TIME_UNITS or raw.operator is None:
            continue
        if raw.operator == "between":
            continue
        within = raw.operator in ("<=", "<")
        eligible = [
            i
            for i in items
            if i.window is None
            and (
                i.kind in ("condition", "medication", "dose", "procedure")
                or (within and i.kind in ("observation", "pregnancy", "lactation"))
            )
        ]

        def same_clause(a: int, b: int) -> bool:
            return not _CLAUSE_BREAK.search(text[min(a, b) : max(a, b)])

        before = [
            i
            for i in eligible
            if i.span[1] <= raw.span[0]
            and (
                same_clause(i.span[1], raw.span[0])
                # "current use of X, or within 30 days": the window is X's
                or _OR_WITHIN.fullmatch(text[i.span[1] : raw.span[0]])
            )
        ]
        after = [
            i for i in eligible if i.span[0] >= raw.span[1] and same_clause(raw.span[1], i.span[0])
        ]
        target = before[-1] if before else (after[0] if after else None)
        if target is None:
            continue
        end = raw.span[1]
        longer = _LONGER_ALTERNATIVE.match(text, end) if raw.operator in ("<=", "<") else None
        if longer:
            # "within 30 days or 5 half-lives, whichever is longer": the written window is the
            # shortest the criterion means, so only an event inside it may decide (see below)
            end = longer.end()
            target.window_is_minimum = True
        relation = _RELATION_AFTER.match(text[end : end + 60])
        if relation:
            end += relation.end()  # "prior to screening" belongs to the window: its words too
        target.window = Window(
            raw.operator,
            raw.value,
            raw.ucum,
            " ".join(relation.group("rel").split()) if relation else "before the evaluation date",
            raw.text,
            (raw.span[0], end),
        )


def _sentences(text: str) -> list[tuple[int, int]]:
    bounds: list[tuple[int, int]] = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        bounds.append((start, match.end()))
        start = match.end()
    bounds.append((start, len(text)))
    return bounds


_LOCAL_ROUTE = (
    r"(?:ophthalmic|eye|ocular|topical|cutaneous|dermal|skin|inhaled|inhalational|intranasal|nasal)"
)
# "beta-blockers (unless ophthalmic solutions)", "corticosteroids, except inhaled or topical":
# the ATC class of a systemic drug group already leaves out the local forms (timolol eye drops
# are S01ED, inhaled budesonide R03BA), so the exception is part of what the class item means.
_ROUTE_EXCEPTION = re.compile(
    rf"[^\S\n]*(?:\w+[^\S\n]+){{0,2}}?[(,]?[^\S\n]*(?:unless|except(?:[^\S\n]+for)?|other[^\S\n]+than|"
    rf"excluding|but[^\S\n]+not|not[^\S\n]+including)[^\S\n]+(?:the[^\S\n]+)?(?:for[^\S\n]+)?"
    rf"{_LOCAL_ROUTE}(?:[^\S\n]*(?:,|/|or|and)[^\S\n]*{_LOCAL_ROUTE})*"
    r"(?:[^\S\n]+(?:solutions?|drops|preparations?|formulations?|use|forms?|creams?|ointments?|"
    r"products?|administration|routes?|steroids|corticosteroids|agents))?[^\S\n]*\)?",
    re.IGNORECASE,
)
_LOCAL_ATC = ("S", "D", "R01", "R03")


def _absorb_route_exceptions(text: str, items: list[Item]) -> None:
    for item in items:
        codes = (item.code or {}).get("coding", [])
        classes = [c["code"] for c in codes if c.get("system") == vocab.ATC]
        if (
            item.kind != "medication"
            or not classes
            or any(c.startswith(_LOCAL_ATC) for c in classes)
        ):
            continue
        found = _ROUTE_EXCEPTION.match(text, item.span[1])
        if found:
            item.extra_spans.append(found.span())
    absorbed = [span for item in items for span in item.extra_spans]
    items[:] = [i for i in items if not any(a <= i.span[0] < b for a, b in absorbed)]


# "(except for cured basal cell carcinoma, carcinoma in situ of the cervix)" after a disease.
_EXCEPTION_LIST = re.compile(
    r"[\s,]*\(?\s*(?:except(?:\s+for)?|excluding|other\s+than|with\s+the\s+exception\s+of|"
    r"apart\s+from|but\s+not)\s+(?P<list>[^;()]+?)\s*(?:\)|(?=;)|(?<!\d)\.(?=\s|$)|$)",
    re.IGNORECASE,
)
_LIST_PARTS = re.compile(r",\s*(?:and\s+|or\s+)?|\s+(?:and/or|and|or)\s+", re.IGNORECASE)


def _absorb_named_exceptions(text: str, items: list[Item]) -> None:
    """A list of diseases named as exceptions right after a disease ("other malignancy within 5
    years, except treated basal cell carcinoma or cervical carcinoma in situ") is what the item
    leaves out: each part of the list must name a coded disease, else the list stays an
    exception the model cannot read (the item is then conditional)."""
    for found in _EXCEPTION_LIST.finditer(text):
        start, end = found.span("list")
        before = [
            i
            for i in items
            if i.kind == "condition"
            and i.span[1] <= found.start()
            and not _SENTENCE_BREAK.search(text, i.span[1], found.start())
        ]
        inside = [i for i in items if start <= i.span[0] < end]
        if not before or not inside or any(i.kind != "condition" for i in inside):
            continue
        parts = [p for p in _LIST_PARTS.split(text[start:end]) if p.strip()]
        offset, named = start, 0
        written: list[Json] = []
        for part in parts:
            at = text.index(part, offset)
            offset = at + len(part)
            in_part = [i for i in inside if at <= i.span[0] < offset and i.code]
            named += bool(in_part)
            # the words as written ("cured skin basal cell carcinoma") say what is excepted
            written += [{**(i.code or {}), "text": " ".join(part.split())} for i in in_part]
        if named != len(parts):
            continue
        target = max(before, key=lambda i: i.span)
        target.exceptions += written
        target.extra_spans.append(found.span())
        for item in inside:
            items.remove(item)


def _mark_conditional(text: str, items: list[Item]) -> None:
    absorbed = [span for item in items for span in item.extra_spans]
    text = "".join(
        " " if any(a <= n < b for a, b in absorbed) else char for n, char in enumerate(text)
    )
    if _CRITERION_EXCEPTION.search(text):
        for item in items:
            item.conditional = True
        return
    for start, end in _sentences(text):
        if _SENTENCE_EXCEPTION.search(text[start:end]):
            for item in items:
                if start <= item.span[0] < end:
                    item.conditional = True


_ONE_OF = vocab.word_regex("one-of")


def _drop_restatements(text: str, items: list[Item]) -> None:
    """ "testosterone < 2.3 ng/mL (< 8 nmol/L)": the bracketed bound restates the one before it in
    another unit; the first one written is read, the restatement's words are its own."""
    ordered = sorted(items, key=lambda i: i.span)
    for left, right in pairwise(ordered):
        if (
            left.kind == right.kind == "observation"
            and left.code == right.code
            and (left.operator == "between") == (right.operator == "between")
            and re.fullmatch(r"\s*\(\s*", text[left.span[1] : right.span[0]])
            and re.match(r"\s*\)", text[right.span[1] :])
            and left.ucum != right.ucum
        ):
            left.extra_spans.append(right.span)
            items.remove(right)


def _and_or_expression(text: str, ordered: list[Item], criterion_id: str) -> bool:
    """ "A or B and C" (an inclusion whose items are joined by both "or" and "and", nothing else):
    written as alternatives (split at "or") of conjunctions (runs joined by "and"). The evaluator
    decides such a criterion only when the other bracketing ("(A or B) and C") agrees."""
    chosen = [i for i in ordered if i.kind not in ("age", "sex")]
    if len(chosen) != len(ordered) or len(chosen) < 3:
        return False
    connectors: list[str] = []
    for left, right in pairwise(chosen):
        between = text[left.span[1] : right.span[0]]
        if _SENTENCE_BREAK.search(between) or "," in between:
            return False
        words = re.sub(r"[()]", " ", between)
        if re.search(r"\bor\b", words, re.I) and not re.search(r"\band\b", words, re.I):
            connectors.append("or")
        elif re.search(r"\band\b", words, re.I) and not re.search(r"\bor\b", words, re.I):
            connectors.append("and")
        else:
            return False
    if set(connectors) != {"or", "and"}:
        return False
    segment = 1
    for number, item in enumerate(chosen):
        if number and connectors[number - 1] == "or":
            segment += 1
        item.group = f"{criterion_id}-any-1"
        item.conjunction = f"{criterion_id}-all-{segment}"
    return True


def _group(text: str, items: list[Item], exclude: bool, criterion_id: str) -> None:
    """Inclusion items joined by "or" (and lists of drugs) become alternatives; exclusion items
    joined by a plain "and" must all be present."""
    _drop_restatements(text, items)
    ordered = sorted(items, key=lambda i: i.span)
    groups = 0
    if not exclude and _and_or_expression(text, ordered, criterion_id):
        return
    if not exclude and _ONE_OF.search(text):
        # "at least one of the following: A; B; C": every computable item is one route in
        chosen = [i for i in ordered if i.kind not in ("age", "sex")]
        for item in chosen:
            item.group = f"{criterion_id}-any-1"
        return
    for left, right in pairwise(ordered):
        between = text[left.span[1] : right.span[0]]
        if (
            _SENTENCE_BREAK.search(between)
            or left.kind in ("age", "sex")
            or right.kind in ("age", "sex")
        ):
            continue
        if not exclude:
            drug_list = left.kind == right.kind == "medication" and re.fullmatch(
                r"[\s,()/]*(?:(?:and|or|and/or|including|such\s+as|e\.g\.)[\s,()]*)*", between, re.I
            )
            if _OR.search(between) or drug_list:
                if left.group is None:
                    groups += 1
                    left.group = f"{criterion_id}-any-{groups}"
                right.group = left.group
        elif (
            _AND.search(between)
            and not _OR.search(between)
            and "," not in between
            and left.kind == right.kind == "observation"
        ):
            if left.conjunction is None:
                groups += 1
                left.conjunction = f"{criterion_id}-all-{groups}"
            right.conjunction = left.conjunction
        elif {left.kind, right.kind} == {"condition", "observation"} and not re.search(
            r"[,;]|\bor\b|defined|i\.\s?e\.", between, re.IGNORECASE
        ):
            # "heart failure with NYHA class III–IV", "NYHA class IV heart failure", "heart
            # failure (NYHA II or above)": the disease only with that grade
            if left.conjunction is None:
                groups += 1
                left.conjunction = f"{criterion_id}-all-{groups}"
            right.conjunction = left.conjunction


_NEGATION_BEFORE = re.compile(
    r"\b(?:no|not|without|free\s+of|absence\s+of|never)\b(?:\s+\w+){0,3}?\s*$", re.IGNORECASE
)


def _masked(text: str, items: list[Item], extracted: list[ExtractedItem] | None = None) -> str:
    """The text with every item's words (value, name, window, negation cue, sex scope) blanked,
    offsets kept."""
    spans = [i.span for i in items] + [i.name_span for i in items if i.name_span]
    spans += [i.window.span for i in items if i.window] + [s for i in items for s in i.extra_spans]
    spans += [r.span for r in extracted or [] if r.kind in ("sex",)]
    spans += [found.span() for found in _SEX_SCOPE.finditer(text)]
    for item in items:
        if item.negated:
            start = min(item.span[0], (item.name_span or item.span)[0])
            cue = _NEGATION_BEFORE.search(text, 0, start)
            if cue:
                spans.append(cue.span())
    chars = list(text)
    for start, end in spans:
        for index in range(start, min(end, len(chars))):
            chars[index] = " "
    blanked = _AGAINST_CRITERIA.sub(lambda found: " " * len(found.group()), "".join(chars))
    return _REPEAT_ALLOWED.sub(lambda found: " " * len(found.group()), blanked)


# "(2 rechecks are allowed)", "one repeat test is permitted": how to measure, not an exception.
_REPEAT_ALLOWED = re.compile(
    r"\(?\s*(?:\d+|one|two|three|a|up\s+to\s+\w+)\s+(?:re-?checks?|re-?tests?|repeats?|repeat\s+"
    r"(?:tests?|measurements?|assessments?)|re-?measurements?)\s+(?:is|are)\s+(?:allowed|permitted)"
    r"\s*\)?",
    re.IGNORECASE,
)


def _coverage(text: str, items: list[Item], extracted: list[ExtractedItem]) -> model.Coverage:
    """ "complete" when no content words are left outside the items, "partial" otherwise."""
    if not items:
        return "none"
    rest = _masked(text, items, extracted)
    events = [i for i in items if i.kind in ("condition", "medication", "dose", "procedure")]
    if any(i.window for i in events) and not all(i.window for i in events):
        return "partial"  # "MI or stroke within 6 months": the window may be meant for both

    def content(words_of: str) -> list[str]:
        words = re.findall(r"[A-Za-zµ]+", words_of)
        return [w for w in words if w.lower() not in _FILLER and len(w) > 1]

    if any(i.window_is_minimum for i in items):
        return "partial"  # the meant window may be longer: a "not met" proves nothing
    leftover = content(rest)
    if not leftover:
        return "complete"
    # "IgA deficiency (serum IgA < 10 mg/dL)": a short name defined by the items after it.
    if _name_then_definition(text, rest, items, 0) is not None:
        return "complete"
    return "partial"


_SEX_SCOPE = re.compile(
    r"\(\s*(?:(?:for|in)\s+)?(?P<a>males?|men|boys|females?|women|girls)(?:\s+only)?\s*\)"
    r"|\b(?:for|in)\s+(?P<b>males?|men|boys|females?|women|girls)\b",
    re.IGNORECASE,
)
_SEX_WORD = vocab.word_regex("sex-word")
# Words that may change the meaning of a clause the items do not reach: a window, a population,
# a condition, a negation. Any one of them left outside the items keeps every item from deciding
# alone (the criterion then decides only when its coverage is complete). A treatment state
# ("uncontrolled", "on dialysis") only qualifies its own clause, whose content words already keep
# that clause from being whole.
_MODIFIER = vocab.word_regex("modifier")
_ANY_OF = vocab.word_regex("list-lead-in")
_EXAMPLES = vocab.word_regex("examples")
_ALTERNATIVE_LEAD = vocab.word_regex("alternative")


def _top_level_clauses(text: str, separators: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans of the text between separators found outside brackets."""
    depth = 0
    cuts: list[tuple[int, int]] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif depth == 0:
            found = separators.match(text, position)
            if found and found.end() > position:
                cuts.append((found.start(), found.end()))
                position = found.end()
                continue
        position += 1
    spans: list[tuple[int, int]] = []
    start = 0
    for cut_start, cut_end in cuts:
        spans.append((start, cut_start))
        start = cut_end
    spans.append((start, len(text)))
    return [(a, b) for a, b in spans if text[a:b].strip()]


_EXCLUSION_SEPARATORS = re.compile(
    r"[;:\n]|,\s*|\s+(?:and/)?or\s+|\.(?=\s|$)(?<!\d\.)|\s+[a-h][.)]\s+", re.IGNORECASE
)
_INCLUSION_SEPARATORS = re.compile(r"[;:\n]|\.(?=\s|$)(?<!\d\.)")


def _clause_coverage(text: str, items: list[Item], exclude: bool) -> None:
    """Mark the items that capture a whole clause of the criterion on their own.

    An exclusion is a list of alternatives ("A, B or C"): an item that is the whole of one
    alternative excludes by itself. An inclusion is a list of requirements ("A; B"): an item that
    is the whole of one requirement fails it by itself. This is allowed only when nothing outside
    the items could change their meaning: no window, population, condition, treatment state,
    negation or sex/pregnancy word is left over anywhere in the criterion, and (for inclusions)
    no "or"/"one of" that would make the clauses alternatives.
    """
    if not items:
        return
    rest = _masked(text, items)
    if exclude:
        rest = _ANY_OF.sub(lambda found: " " * len(found.group()), rest)
    clauses = _top_level_clauses(text, _EXCLUSION_SEPARATORS if exclude else _INCLUSION_SEPARATORS)
    for start, end in clauses:
        scope = next((m for m in _SEX_SCOPE.finditer(text, start, end)), None)
        if scope:
            word = (scope.group("a") or scope.group("b")).lower()
            sex = "male" if word in ("male", "males", "man", "men", "boys") else "female"
            for item in items:
                if start <= item.span[0] < end:
                    item.applies_to_sex = sex
    if any(i.window for i in items) and not all(i.window for i in items):
        return  # a window written once may be meant for every item
    if any(i.kind in ("sex", "pregnancy", "lactation", "childbearing") for i in items):
        return  # "Males suffering from …": a population, decided only as a whole criterion
    whole: list[list[Item]] = []
    outside = list(rest)
    lead_in = False  # a clause before with words but no items: "Diseases of the eye: …"
    for start, end in clauses:
        inside = [i for i in items if start <= i.span[0] < end]
        if not inside:
            lead_in = lead_in or (
                bool(_content_words(rest[start:end])) and text[end : end + 1] == ":"
            )
            continue
        if (lead_in or _EXAMPLES.search(text)) and any(
            i.kind in ("condition", "medication", "procedure") for i in inside
        ):
            continue  # a disease or drug named as an example of something wider
        if not _content_words(rest[start:end]):
            whole.append(inside)
            continue
        head = _name_then_definition(text[start:end], rest[start:end], inside, start)
        if head is not None:
            # the name ("uncontrolled hypertension") is what the items define: its words are theirs
            for index in range(start + head[0], start + head[1]):
                outside[index] = " "
            whole.append(inside)
    left = "".join(outside)
    if _MODIFIER.search(left) or _SEX_WORD.search(left):
        return
    if not exclude and (_ALTERNATIVE_LEAD.search(left) or "/" in left):
        return
    for inside in whole:
        if not exclude and any(i.window_is_minimum for i in inside):
            continue  # failing the shortest window the requirement means is no proof
        for item in inside:
            item.whole_clause = True


def _content_words(words_of: str) -> list[str]:
    words = re.findall(r"[A-Za-zµ]+", words_of)
    return [w for w in words if w.lower() not in _FILLER and len(w) > 1]


_DEFINITION_OPENS = re.compile(
    r"(?P<head>[^():]*?)\s*(?:\(\s*(?:(?:defined\s+(?:as|by)|i\.?\s?e\.?|namely)\s*,?\s*)?|:|\s-)"
    r"\s*",
    re.IGNORECASE | re.DOTALL,
)


def _name_then_definition(
    clause: str, rest: str, items: list[Item], offset: int
) -> tuple[int, int] | None:
    """ "renal failure (eGFR < 30 mL/min)", "Poor kidney function: creatinine > 2 mg/dL": a short
    name (at most four words) written before the items that define it and nothing after them.
    Returns the span of the name within the clause."""
    if any(i.kind in ("condition", "medication", "procedure") for i in items):
        return None  # "active medical problems (HIV, cancer, …)": examples, not a definition
    first = min(i.span[0] for i in items) - offset
    last = max(max(i.span[1], i.window.span[1] if i.window else 0) for i in items) - offset
    before, after = rest[:first], rest[last:]
    if _content_words(re.sub(r"[()]", " ", after)):
        return None
    opened = _DEFINITION_OPENS.match(before)
    if (
        opened is None
        or not 0 < len(_content_words(opened.group("head"))) <= 4
        or _content_words(before[opened.end() :])
    ):
        return None
    return opened.span("head")


# --- FHIR ---------------------------------------------------------------------------------------


def _quantity(value: float, item: Item) -> model.Quantity:
    if item.ucum:
        written = item.unit if item.unit and item.unit != item.ucum else None
        return model.Quantity(value, item.ucum, written)
    return model.Quantity(value, None, item.unit)


def _code(coding: Json) -> model.Code:
    return model.Code(str(coding["system"]), str(coding["code"]), coding.get("display"))


def _concept(concept: Json) -> model.Concept:
    return model.Concept(tuple(_code(c) for c in concept.get("coding", [])), concept.get("text"))


def _kind(item: Item) -> model.ItemKind:
    if item.kind == "observation":
        return "observation"
    if item.kind in (
        "age",
        "sex",
        "pregnancy",
        "lactation",
        "childbearing",
        "condition",
        "dose",
        "procedure",
    ):
        return cast(model.ItemKind, item.kind)
    return "medication"


def to_model(item: Item, criterion_id: str, number: int, exclude: bool) -> model.Item:
    """The typed model of one extracted item (see fhirconv.eligibility.model)."""
    assert item.code is not None or item.kind == "sex"
    code = item.code or {"coding": [SEX], "text": "Sex"}
    quantity = low = high = None
    comparator: model.Comparator | None = None
    value: model.Concept | None = None
    if item.kind in ("age", "observation", "dose") and isinstance(item.value, float):
        if item.operator == "between" and item.value2 is not None:
            low, high = _quantity(item.value, item), _quantity(item.value2, item)
        else:
            quantity = _quantity(item.value, item)
            if item.operator in ("<", "<=", ">", ">="):
                comparator = cast(model.Comparator, item.operator)
    elif item.kind == "sex":
        sex = "female" if item.value == "female" else "male"
        coding = {"system": systems.ADMINISTRATIVE_GENDER, "code": sex, "display": sex.title()}
        value = model.Concept((_code(coding),), sex.title())
    elif item.kind == "pregnancy":
        value = model.Concept((_code(PREGNANT),), "Pregnant")
    elif item.kind == "lactation":
        value = model.Concept((_code(BREASTFEEDING),), "Currently breastfeeding")
    window = item.window
    return model.Item(
        id=f"{criterion_id}-item-{number}",
        kind=_kind(item),
        concept=_concept(code),
        source_text=item.text,
        source_criterion=criterion_id,
        # "no …" in the text turns an excluded trait into a required absence and vice versa.
        exclude=exclude != item.negated,
        comparator=comparator,
        quantity=quantity,
        low=low,
        high=high,
        value=value,
        window=(
            model.Window(window.operator, window.value, window.ucum, window.relation, window.text)
            if window
            else None
        ),
        per_day=item.kind == "dose",
        equivalent_to=_code(item.equivalent) if item.equivalent else None,
        alternative_group=item.group,
        conjunction_group=item.conjunction,
        history=item.history,
        qualifier=item.qualifier,
        conditional=item.conditional,
        whole_clause=item.whole_clause,
        applies_to_sex=item.applies_to_sex,
        exceptions=tuple(_concept(e) for e in item.exceptions),
    )


@dataclass
class CriterionResult:
    coverage: model.Coverage
    items: tuple[model.Item, ...]

    @property
    def characteristics(self) -> list[Json]:
        return [codec.encode_item(item) for item in self.items]


# "Group A (healthy volunteers): ...", "Cohort 2:", "Part B -": criteria that differ by cohort.
COHORT_HEADING = re.compile(
    r"^[\s*#-]*(?:group|cohort|arm|part|population)\s+(?:[A-Z]|\d{1,2}|[IVX]{1,4})\b[^\n]{0,80}[:)]",
    re.IGNORECASE | re.MULTILINE,
)


_NOTE = re.compile(r"(?:^|(?<=[.;)\s]))(?:Note|NB|N\.B\.)\s*:", re.IGNORECASE)
# What in a note would let a patient in now: then the note is part of the criterion.
_NOTE_ADMITS = re.compile(
    r"\b(?:allowed|permitted|acceptable|eligible|unless|except\w*|exempt\w*|waived|"
    r"does\s+not\s+apply|not\s+(?:required|excluded)|"
    r"(?:may|can|will)\s+(?:still\s+)?(?:be\s+)?(?:enrolled|included|randomi[sz]ed|participate)"
    r"(?!\s+(?:later|after|once|when)))\b",
    re.IGNORECASE,
)


def _without_advisory_note(text: str) -> str:
    """The criterion without a trailing "Note: …" that only says how to confirm it (repeat the
    ECG, refer to a specialist, re-screen later); a note that admits anyone stays."""
    note = _NOTE.search(text)
    if note is None or note.start() == 0 or _NOTE_ADMITS.search(text, note.end()):
        return text
    return text[: note.start()]


def computable_characteristics(
    text: str, exclude: bool, criterion_id: str, trial: Trial, by_cohort: bool = False
) -> CriterionResult:
    """Computable characteristics for one criterion's text and its coverage code. `by_cohort`:
    the criteria section is split by cohort (`COHORT_HEADING`), so no item is decisive alone."""
    text = _without_advisory_note(text)
    extracted = extract_items(text, exclude=exclude)
    items, windows = _from_extracted(text, extracted)
    conditions = _trial_conditions(trial, trial.eligibility.criteria or text)
    taken = [i.span for i in items] + [i.name_span for i in items if i.name_span]
    taken += [w.span for w in windows]
    items += _mentions(text, conditions, taken, _own_conditions(trial))
    items += _postpartum(text, [i.span for i in items])
    items += _within_normal_range(text, exclude, [i.span for i in items])
    items.sort(key=lambda i: i.span)
    _attach_windows(text, items, windows)
    _absorb_route_exceptions(text, items)
    _absorb_named_exceptions(text, items)
    _mark_conditional(text, items)
    if by_cohort:
        for item in items:
            item.conditional = True
    _group(text, items, exclude, criterion_id)
    coverage = _coverage(text, items, extracted)
    _clause_coverage(text, items, exclude)
    typed = tuple(
        to_model(item, criterion_id, number, exclude) for number, item in enumerate(items, start=1)
    )
    return CriterionResult(coverage, typed)
