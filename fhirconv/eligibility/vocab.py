"""Vocabularies for computable eligibility: medications (RxNorm, ATC classes, prednisone
equivalence), drug classes, conditions (MeSH with a SNOMED CT / ICD-10 crosswalk) and scores.

Shared by the Group mapper (which finds mentions in criteria text) and the matcher (which finds
the same things in a patient's record). The data live in `mappings/eligibility-*.csv`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from re import Match

from fhirconv.tables import load_csv

__all__ = [
    "ATC",
    "RXNORM",
    "Condition",
    "DrugClass",
    "Medication",
    "PhraseIndex",
    "Procedure",
    "Score",
    "condition_by_mesh",
    "conditions",
    "drug_class",
    "drug_class_index",
    "drug_classes",
    "folded",
    "medication",
    "medication_by_rxnorm",
    "medication_index",
    "medications",
    "phrase_regex",
    "procedure_index",
    "procedures",
    "score_by_code",
    "scores",
    "word_regex",
    "words",
]

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"


@dataclass(frozen=True)
class Medication:
    name: str
    synonyms: tuple[str, ...]
    rxnorm: str | None
    classes: tuple[str, ...]  # ATC codes
    prednisone_factor: float | None  # mg prednisone per mg of this drug

    def in_class(self, atc: str) -> bool:
        return any(code.startswith(atc) for code in self.classes)


@dataclass(frozen=True)
class DrugClass:
    atc: str
    name: str
    synonyms: tuple[str, ...]
    prednisone_equivalent: bool


@dataclass(frozen=True)
class Condition:
    mesh: str
    term: str
    synonyms: tuple[str, ...]
    snomed: tuple[str, ...]
    icd10: tuple[str, ...]


@dataclass(frozen=True)
class Score:
    id: str
    name: str
    synonyms: tuple[str, ...]
    loinc: str | None


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split("|") if part.strip())


@cache
def medications() -> tuple[Medication, ...]:
    return tuple(
        Medication(
            row["name"],
            _split(row["synonyms"]) or (row["name"],),
            row["rxnorm"] or None,
            _split(row["classes"]),
            float(row["prednisone_factor"]) if row["prednisone_factor"] else None,
        )
        for row in load_csv("eligibility-medications.csv")
    )


@cache
def drug_classes() -> tuple[DrugClass, ...]:
    return tuple(
        DrugClass(
            row["atc"], row["name"], _split(row["synonyms"]), row["prednisone_equivalent"] == "true"
        )
        for row in load_csv("eligibility-drug-classes.csv")
    )


@cache
def conditions() -> tuple[Condition, ...]:
    return tuple(
        Condition(
            row["mesh"],
            row["term"],
            _split(row["synonyms"]),
            _split(row["snomed"]),
            _split(row["icd10"]),
        )
        for row in load_csv("eligibility-conditions.csv")
    )


@cache
def scores() -> tuple[Score, ...]:
    return tuple(
        Score(row["id"], row["name"], _split(row["synonyms"]), row["loinc"] or None)
        for row in load_csv("eligibility-scores.csv")
    )


def medication(name: str) -> Medication | None:
    key = name.strip().lower()
    for entry in medications():
        if key == entry.name.lower() or key in (s.lower() for s in entry.synonyms):
            return entry
    return None


def medication_by_rxnorm(code: str) -> Medication | None:
    return next((m for m in medications() if m.rxnorm == code), None)


def drug_class(atc: str) -> DrugClass | None:
    return next((c for c in drug_classes() if c.atc == atc), None)


def condition_by_mesh(mesh: str) -> Condition | None:
    return next((c for c in conditions() if c.mesh == mesh), None)


def score_by_code(code: str) -> Score | None:
    return next((s for s in scores() if code in (s.id, s.loinc)), None)


def phrase_regex(phrases: tuple[str, ...] | list[str]) -> re.Pattern[str] | None:
    """One regex finding any of `phrases` as whole words; short all-capital abbreviations
    ("SLE", "MI", "TB") match only as written, everything else in any case."""
    return _phrase_regex(tuple(phrases))


@lru_cache(maxsize=4096)
def _phrase_regex(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    # Cached: the extractor and the matcher ask for the same vocabularies over and over.
    exact = sorted({p for p in phrases if len(p) <= 4 and p.isupper()}, key=len, reverse=True)
    loose = sorted({p for p in phrases if p not in exact}, key=len, reverse=True)
    parts: list[str] = []
    if loose:
        words = "|".join(re.escape(p).replace(r"\ ", r"[\s-]+") for p in loose)
        parts.append(rf"(?i:{words})")
    if exact:
        parts.append("|".join(re.escape(p) for p in exact))
    if not parts:
        return None
    return re.compile(rf"(?<![\w-])(?:{'|'.join(parts)})(?![\w])")


# The only non-ASCII characters that Python's case-insensitive matching equates with an ASCII
# letter (İ ı → i, ſ → s, Kelvin sign → k; tests/test_vocab_speed.py enumerates them): folded
# to those letters, a text holds the lower-cased words of every ASCII phrase `phrase_regex` can
# find in it.
_ASCII_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def folded(text: str) -> str:
    """`text` as `PhraseIndex` searches it for key words."""
    return text.translate(_ASCII_FOLD).lower()


def _key_word(phrases: tuple[str, ...]) -> tuple[str, ...] | None:
    """One word per phrase that every match of the phrase contains (lower case), or None when
    some phrase has none that can be checked that way (not ASCII)."""
    keys: list[str] = []
    for phrase in phrases:
        longest = max(phrase.split(" "), key=len)
        if not longest or not phrase.isascii():
            return None
        keys.append(longest.lower())
    return tuple(keys)


class PhraseIndex:
    """The `phrase_regex` of each entry's phrases, compiled once, searched only when one of the
    entry's key words occurs in the text: `finditer` yields exactly what running every entry's
    regex in turn yields, without scanning the text once per entry."""

    def __init__(self, entries: list[tuple[str, ...]] | tuple[tuple[str, ...], ...]) -> None:
        self._entries = [(_phrase_regex(tuple(p)), _key_word(tuple(p))) for p in entries]

    def finditer(
        self, text: str, folded_text: str | None = None
    ) -> Iterator[tuple[int, Match[str]]]:
        """(entry index, match) for every match of every entry, in entry order."""
        lowered = folded(text) if folded_text is None else folded_text
        for index, (regex, keys) in enumerate(self._entries):
            if regex is None:
                continue
            if keys is not None and not any(key in lowered for key in keys):
                continue
            for match in regex.finditer(text):
                yield index, match


@cache
def medication_index() -> PhraseIndex:
    return PhraseIndex([m.synonyms for m in medications()])


@cache
def drug_class_index() -> PhraseIndex:
    return PhraseIndex([c.synonyms for c in drug_classes()])


@cache
def procedure_index() -> PhraseIndex:
    return PhraseIndex([p.synonyms for p in procedures()])


@cache
def words(list_name: str) -> tuple[str, ...]:
    """One word list of `mappings/eligibility-words.csv` (filler, modifier, sex-word …)."""
    found = tuple(
        row["phrase"] for row in load_csv("eligibility-words.csv") if row["list"] == list_name
    )
    if not found:
        raise KeyError(f"eligibility-words.csv has no list {list_name!r}")
    return found


@cache
def word_regex(list_name: str) -> re.Pattern[str]:
    """A case-insensitive regex matching any phrase of a word list, not inside a word ("e.g."
    ends in a dot, so word boundaries would miss it)."""
    return re.compile(rf"(?<!\w)(?:{'|'.join(words(list_name))})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class Procedure:
    name: str
    synonyms: tuple[str, ...]
    snomed: tuple[str, ...]
    cpt: tuple[str, ...]


@cache
def procedures() -> tuple[Procedure, ...]:
    """`mappings/eligibility-procedures.csv`: procedures named in criteria, with their codes."""
    return tuple(
        Procedure(row["name"], _split(row["synonyms"]), _split(row["snomed"]), _split(row["cpt"]))
        for row in load_csv("eligibility-procedures.csv")
    )
