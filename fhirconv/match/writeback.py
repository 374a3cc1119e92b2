"""Answers as FHIR: one `ResearchSubject` per patient × study, written back idempotently.

The id is derived from the study and patient ids (`rs-` + a hash), so `PUT ResearchSubject/id`
creates it once and later runs update it in place; content holds nothing that changes between
runs on the same data and as-of date, so a second run leaves every version as it was (HAPI
answers `SUCCESSFUL_UPDATE_NO_CHANGE`).

- `status` from the verdict (R4 `research-subject-status`, required binding): eligible →
  `eligible`, ineligible → `ineligible`, possibly-eligible → `candidate` (a person who can be
  considered for the study; someone must still check the criteria left unknown).
- `study` → `ResearchStudy/<id of the converted study>`, `individual` → `Patient/<id>`.
- the reasons: the extension `eligibility-assessment` (docs/matching.md "Write-back"): the
  verdict, the as-of date, and per criterion its Group characteristic id, inclusion/exclusion,
  result (met / not-met / unknown), reason, and evidence (resource references as written).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhirconv.errors import PublishError
from fhirconv.mapping import ids, systems
from fhirconv.match.evaluate import MatchResult
from fhirconv.match.records import Study
from fhirconv.publish.client import FhirClient

Json = dict[str, Any]

__all__ = ["ASSESSMENT", "STATUS", "WriteBack", "research_subject", "subject_id"]

ASSESSMENT = systems.extension("eligibility-assessment")
STATUS = {"eligible": "eligible", "ineligible": "ineligible", "possibly-eligible": "candidate"}


def subject_id(study_id: str, patient_id: str) -> str:
    """Deterministic ResearchSubject id of one patient in one study."""
    return ids.hashed_id("rs", f"{study_id}|{patient_id}")


def _criterion_extension(
    criterion_id: str, exclude: bool, result: str, reason: str, evidence: list[str]
) -> Json:
    parts: list[Json] = [
        {"url": "id", "valueString": criterion_id},
        {"url": "exclude", "valueBoolean": exclude},
        {"url": "result", "valueCode": result},
    ]
    if reason:
        parts.append({"url": "reason", "valueString": reason})
    parts += [{"url": "evidence", "valueString": item} for item in evidence]
    return {"url": "criterion", "extension": parts}


def research_subject(result: MatchResult, study: Study, as_of: date) -> Json:
    """The ResearchSubject stating `result` (one patient × one study)."""
    study_id = str(study.research_study.get("id") or study.nct_id)
    assessment: list[Json] = [
        {"url": "verdict", "valueCode": result.verdict},
        {"url": "as-of", "valueDate": as_of.isoformat()},
    ]
    assessment += [
        _criterion_extension(c.id, c.exclude, c.result, c.reason, c.evidence)
        for c in result.criteria
    ]
    return {
        "resourceType": "ResearchSubject",
        "id": subject_id(study_id, result.patient),
        "extension": [{"url": ASSESSMENT, "extension": assessment}],
        "identifier": [
            {"system": systems.STUDY_PART_KEY, "value": f"{study.nct_id}/subject/{result.patient}"}
        ],
        "status": STATUS[result.verdict],
        "study": ids.reference("ResearchStudy", study_id),
        "individual": ids.reference("Patient", result.patient),
    }


@dataclass
class WriteBack:
    """Collects ResearchSubjects and PUTs them in transactions of `batch_size`; counts what the
    server did (created / updated / unchanged) and the failures, each with its reason."""

    client: FhirClient
    as_of: date
    batch_size: int = 100
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    _pending: list[Json] = field(default_factory=list)

    def add(self, result: MatchResult, study: Study) -> None:
        self._pending.append(research_subject(result, study, self.as_of))
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        bundle = {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": ids.full_url("ResearchSubject", subject["id"]),
                    "resource": subject,
                    "request": {"method": "PUT", "url": f"ResearchSubject/{subject['id']}"},
                }
                for subject in batch
            ],
        }
        try:
            outcome = self.client.post_transaction(bundle)
        except PublishError as error:  # refused, retries exhausted, TLS: the batch failed
            self.counts["failed"] += len(batch)
            self.failures.append(f"{len(batch)} ResearchSubjects: {error}")
            return
        for entry in outcome.entries:
            self.counts[entry.kind] += 1

    def line(self) -> str:
        done = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items()))
        return f"write-back: ResearchSubject {done or 'nothing written'}"
