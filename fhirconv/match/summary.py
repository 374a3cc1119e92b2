"""A summary across patients: per study, how many patients got each verdict, and who to look at.

It reads the same objects `fhirconv match --format json` prints (one per patient × study:
`patient`, `study`, `verdict`, `criteria`), so it never depends on the evaluator's classes, and
keeps only counts and the best `top` candidates per study: memory stays flat in the number of
patients.

Candidates are the patients not found ineligible, ranked: "eligible" before "possibly-eligible",
then fewer criteria left unknown (less to check by hand), then more criteria met, then patient id.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VERDICTS", "Summary"]

Json = dict[str, Any]
VERDICTS = ("eligible", "possibly-eligible", "ineligible")


def _status(criterion: Json) -> str:
    return str(criterion.get("result") or criterion.get("status") or "")


@dataclass(frozen=True, order=True)
class _Candidate:
    rank: int
    unknown: int
    unmet_negative: int  # minus the criteria clearly satisfied: more satisfied ranks higher
    patient: str
    verdict: str = field(compare=False)

    def as_json(self) -> Json:
        return {
            "patient": self.patient,
            "verdict": self.verdict,
            "unknown": self.unknown,
            "satisfied": -self.unmet_negative,
        }


def _satisfied(criterion: Json) -> bool:
    wanted = "not-met" if criterion.get("exclude") else "met"
    return _status(criterion) == wanted


@dataclass
class _StudySummary:
    study: str
    verdicts: Counter[str] = field(default_factory=Counter)
    candidates: list[_Candidate] = field(default_factory=list)


class Summary:
    def __init__(self, top: int = 100) -> None:
        self.top = top
        self._studies: dict[str, _StudySummary] = {}

    def add(self, line: Json) -> None:
        """Count one patient × study result (a `--format json` object)."""
        study = str(line.get("study") or "?")
        verdict = str(line.get("verdict") or "?")
        summary = self._studies.setdefault(study, _StudySummary(study))
        summary.verdicts[verdict] += 1
        if verdict not in ("eligible", "possibly-eligible"):
            return
        criteria = [c for c in line.get("criteria", []) or [] if isinstance(c, dict)]
        candidate = _Candidate(
            rank=0 if verdict == "eligible" else 1,
            unknown=sum(_status(c) == "unknown" for c in criteria),
            unmet_negative=-sum(_satisfied(c) for c in criteria),
            patient=str(line.get("patient") or "?"),
            verdict=verdict,
        )
        summary.candidates.append(candidate)
        if len(summary.candidates) > 2 * self.top:
            summary.candidates = sorted(summary.candidates)[: self.top]

    def as_json(self) -> Json:
        studies = []
        for study in sorted(self._studies.values(), key=lambda s: s.study):
            ranked = sorted(study.candidates)[: self.top]
            studies.append(
                {
                    "study": study.study,
                    "patients": sum(study.verdicts.values()),
                    "verdicts": {v: study.verdicts.get(v, 0) for v in VERDICTS}
                    | {v: n for v, n in study.verdicts.items() if v not in VERDICTS},
                    "candidates": [c.as_json() for c in ranked],
                }
            )
        return {"studies": studies}

    def render_json(self) -> str:
        return json.dumps(self.as_json(), ensure_ascii=False, indent=2) + "\n"

    def render_text(self) -> str:
        lines: list[str] = []
        for study in self.as_json()["studies"]:
            counts = ", ".join(f"{n} {v}" for v, n in study["verdicts"].items())
            lines.append(f"{study['study']}: {study['patients']} patients: {counts}")
            for number, candidate in enumerate(study["candidates"], start=1):
                lines.append(
                    f"  {number:>3}. {candidate['patient']}  {candidate['verdict']}"
                    f"  ({candidate['satisfied']} criteria satisfied,"
                    f" {candidate['unknown']} unknown)"
                )
        return "\n".join(lines) + "\n"
