"""Score predicted eligibility items against the Leaf-derived gold standard.

Matching follows `shared/eligibility-gold/README.md`: same document and kind, overlapping spans,
equal operator, values equal within 1e-6, units equal after normalisation (an age without a unit
is in years; "class", "grade", "score" count as no unit). Each gold item matches at most one
prediction. A prediction overlapping a skipped region of its own kind, or an `other` region, and
no gold item of its kind, is neither right nor wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "KindScore", "Report", "normalise_unit", "read_gold", "score"]

KINDS = ("age", "threshold", "window", "sex")
_TOLERANCE = 1e-6

_TIME_UNITS = {
    "years": ("years", "year", "yrs", "yr", "y", "yo", "y/o", "a", "years-old", "year-old"),
    "months": ("months", "month", "mo", "mos", "mths", "mth"),
    "weeks": ("weeks", "week", "wks", "wk", "w"),
    "days": ("days", "day", "d"),
    "hours": ("hours", "hour", "hrs", "hr", "h"),
    "minutes": ("minutes", "minute", "mins", "min"),
}
_TIME_LOOKUP = {spelling: canonical for canonical, spellings in _TIME_UNITS.items()
                for spelling in spellings}  # fmt: skip
_NO_UNIT_WORDS = {"class", "grade", "score", "classification", "points", "point", "stage",
                  "level", "levels"}  # fmt: skip
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


def normalise_unit(unit: str | None, kind: str) -> str | None:
    """Comparable form of a unit: case, spaces and common spellings folded."""
    if unit is None:
        return "years" if kind == "age" else None
    text = unit.strip().lower().replace("μ", "µ").replace("²", "2").replace("³", "3")
    text = text.translate(_SUPERSCRIPTS)
    text = re.sub(r"\s+", "", text)
    if text in _NO_UNIT_WORDS or text == "":
        return "years" if kind == "age" else None
    if text in _TIME_LOOKUP:
        return _TIME_LOOKUP[text]
    if re.search(r"uln|upperlimit|normal|reference|highestreference", text) and "lower" not in text:
        return "xuln"
    text = text.replace("µ", "u").replace("mcl", "ul").replace("^", "").replace("**", "")
    text = re.sub(r"^[x×*]", "", text)
    text = text.lstrip("/")
    text = text.replace("gm/", "g/").replace("gr/", "g/").replace("cells/", "/")
    text = text.lstrip("/")
    return text


@dataclass
class KindScore:
    """Counts for one kind; precision/recall/F1 derived."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    neutral: int = 0
    exclude_agree: int = 0

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 0.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 0.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass
class Report:
    """Scores per kind, and the unmatched items for error analysis."""

    by_kind: dict[str, KindScore] = field(default_factory=lambda: {k: KindScore() for k in KINDS})
    false_positives: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)
    false_negatives: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)

    def format(self) -> str:
        lines = [
            f"{'kind':<10} {'P':>6} {'R':>6} {'F1':>6} {'TP':>5} {'FP':>5} {'FN':>5}"
            f" {'neutral':>7} {'excl.agree':>10}"
        ]
        for kind, counts in self.by_kind.items():
            agreement = (
                counts.exclude_agree / counts.true_positives if counts.true_positives else 0.0
            )
            lines.append(
                f"{kind:<10} {counts.precision:6.3f} {counts.recall:6.3f} {counts.f1:6.3f}"
                f" {counts.true_positives:5d} {counts.false_positives:5d}"
                f" {counts.false_negatives:5d} {counts.neutral:7d} {agreement:10.3f}"
            )
        return "\n".join(lines)


def read_gold(path: Path) -> list[dict[str, Any]]:
    """Documents of a gold JSONL file."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _overlaps(first: Sequence[int], second: Sequence[int]) -> bool:
    return first[0] < second[1] and second[0] < first[1]


def _same_value(first: Any, second: Any) -> bool:
    if first is None or second is None:
        return first is None and second is None
    if isinstance(first, str) or isinstance(second, str):
        return str(first).lower() == str(second).lower()
    return abs(float(first) - float(second)) <= _TOLERANCE


def _matches(gold: Mapping[str, Any], predicted: Mapping[str, Any]) -> bool:
    kind = str(gold["kind"])
    return (
        predicted.get("kind") == kind
        and _overlaps(gold["span"], predicted["span"])
        and predicted.get("operator") == gold["operator"]
        and _same_value(gold["value"], predicted.get("value"))
        and _same_value(gold.get("value2"), predicted.get("value2"))
        and (
            kind == "sex"
            or normalise_unit(gold.get("unit"), kind) == normalise_unit(predicted.get("unit"), kind)
        )
    )


def score(
    gold_documents: Iterable[Mapping[str, Any]],
    predictions: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Report:
    """Score predictions (doc_id → items) against gold documents."""
    report = Report()
    for document in gold_documents:
        doc_id = str(document["doc_id"])
        gold_items = [item for item in document["items"] if item["kind"] in KINDS]
        predicted = [item for item in predictions.get(doc_id, []) if item.get("kind") in KINDS]
        used: set[int] = set()
        for item in predicted:
            kind = str(item["kind"])
            counts = report.by_kind[kind]
            match_index = next(
                (
                    index
                    for index, gold in enumerate(gold_items)
                    if index not in used and _matches(gold, item)
                ),
                None,
            )
            if match_index is not None:
                used.add(match_index)
                counts.true_positives += 1
                if bool(gold_items[match_index].get("exclude")) == bool(item.get("exclude")):
                    counts.exclude_agree += 1
                continue
            touches_gold = any(
                g["kind"] == kind and _overlaps(g["span"], item["span"]) for g in gold_items
            )
            in_skipped = any(
                region["kind"] in (kind, "other") and _overlaps(region["span"], item["span"])
                for region in document.get("skipped", [])
            )
            if in_skipped and not touches_gold:
                counts.neutral += 1
            else:
                counts.false_positives += 1
                report.false_positives.append((doc_id, item))
        for index, gold in enumerate(gold_items):
            if index not in used:
                report.by_kind[str(gold["kind"])].false_negatives += 1
                report.false_negatives.append((doc_id, gold))
    return report
