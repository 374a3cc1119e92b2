"""The people-facing table: each patient × study verdict, then the criteria that decided it."""

from __future__ import annotations

import textwrap

from fhirconv.match.evaluate import CriterionOutcome, MatchResult

_MARK = {"met": "✓", "not-met": "✗", "unknown": "?"}


def _deciding(result: MatchResult) -> list[CriterionOutcome]:
    if result.verdict == "ineligible":
        return [
            c
            for c in result.criteria
            if (c.exclude and c.result == "met") or (not c.exclude and c.result == "not-met")
        ]
    if result.verdict == "possibly-eligible":
        return [c for c in result.criteria if c.result == "unknown"]
    return result.criteria


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render_table(result: MatchResult, width: int = 100) -> str:
    lines = [f"{result.patient} × {result.study}: {result.verdict.upper()}"]
    decided = [c for c in result.criteria if c.result == ("not-met" if c.exclude else "met")]
    lines.append(
        f"  {len(decided)} of {len(result.criteria)} criteria clearly satisfied, "
        f"{sum(c.result == 'unknown' for c in result.criteria)} unknown"
    )
    for criterion in _deciding(result):
        kind = "exclusion" if criterion.exclude else "inclusion"
        text = _short(criterion.text, width - 20)
        lines.append(f"  {_MARK[criterion.result]} {kind} {criterion.result}: {text}")
        reason = criterion.reason
        if criterion.evidence:
            reason += f" [evidence: {', '.join(criterion.evidence)}]"
        lines += textwrap.wrap(reason, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)
