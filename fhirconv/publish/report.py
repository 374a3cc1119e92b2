"""Per-study results of a push and the overall summary, with the lines a person reads."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from fhirconv.errors import ExitCode
from fhirconv.publish.outcome import IssueReport

StudyStatus = Literal["pushed", "failed", "planned", "not-sent"]
# A failure that every later bundle would meet too: the push stops on it (see push.py).
Fault = Literal["connection", "auth", "tls"]


def retry_line(causes: Iterable[str]) -> str | None:
    """``3 retries: 2×429, 1×503`` (most frequent first), or ``None`` when there were none."""
    counted = Counter(causes)
    total = sum(counted.values())
    if not total:
        return None
    parts = ", ".join(f"{n}×{cause}" for cause, n in counted.most_common())
    return f"{total} {'retry' if total == 1 else 'retries'}: {parts}"


_FAULT_CODES: dict[str, ExitCode] = {
    "tls": ExitCode.TLS_FAILED,
    "auth": ExitCode.AUTH_REFUSED,
    "connection": ExitCode.SERVER_UNREACHABLE,
}


def push_exit_code(results: Iterable[StudyResult], bad_lines: bool = False) -> ExitCode:
    """The exit code of a push: the failure that stopped it or left it in doubt, most decisive
    first (TLS, credentials, an unreachable server, outcome unknown, bad NDJSON lines), else
    RECORDS_FAILED when a study or batch was refused or not sent, else OK."""
    failed = [r for r in results if r.status in ("failed", "not-sent")]
    faults = {r.fault for r in failed if r.fault is not None}
    for fault, code in _FAULT_CODES.items():
        if fault in faults:
            return code
    if any(r.outcome_unknown or r.gave_up for r in failed):
        return ExitCode.OUTCOME_UNKNOWN
    if bad_lines:
        return ExitCode.BAD_NDJSON
    return ExitCode.RECORDS_FAILED if failed else ExitCode.OK


@dataclass
class StudyResult:
    """What happened to one study's bundle."""

    study: str
    source: str
    status: StudyStatus
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    issues: list[IssueReport] = field(default_factory=list)
    error: str | None = None  # a failure with no OperationOutcome (network, bad file, …)
    outcome_unknown: bool = False  # a non-idempotent bundle may or may not have been applied
    attempts: int = 0
    elapsed: float = 0.0
    planned: list[tuple[str, str]] = field(default_factory=list)  # dry run: (method, url)
    idempotent: bool = True
    retry_causes: list[str] = field(default_factory=list)  # one label per retry: "429", …
    fault: Fault | None = None
    gave_up: bool = False  # every retry failed with a retryable answer (429, 503 …)

    @property
    def ok(self) -> bool:
        return self.status in ("pushed", "planned")

    @property
    def entry_count(self) -> int:
        if self.status == "planned":
            return len(self.planned)
        return (
            len(self.created)
            + len(self.updated)
            + len(self.unchanged)
            + len(self.deleted)
            + len(self.other)
        )

    def counts(self) -> str:
        parts = [
            f"created {len(self.created)}",
            f"updated {len(self.updated)}",
            f"unchanged {len(self.unchanged)}",
        ]
        if self.deleted:
            parts.append(f"deleted {len(self.deleted)}")
        if self.other:
            parts.append(f"other {len(self.other)}")
        return ", ".join(parts)

    def line(self) -> str:
        """``NCT… created 5, updated 1, unchanged 12`` or ``NCT… FAILED: <first issue>``."""
        if self.status == "planned":
            note = "" if self.idempotent else " (not idempotent: sent once, never retried)"
            return f"{self.study} would send {len(self.planned)} entries{note}"
        if self.status == "pushed":
            return f"{self.study} {self.counts()}"
        if self.status == "not-sent":
            return f"{self.study} NOT SENT: {self.error or 'the push stopped'}"
        errors = [i for i in self.issues if i.severity in ("error", "fatal")] or self.issues
        if errors:
            reason = errors[0].text()
            more = len(errors) - 1
            if more:
                reason += f" — and {more} more issue(s)"
        else:
            reason = self.error or "unknown failure"
        if self.outcome_unknown and self.error and self.error not in reason:
            reason += f" ({self.error})"
        if errors and self.attempts > 1:
            reason += f" [after {self.attempts} attempts]"
        return f"{self.study} FAILED: {reason}"

    def detail_lines(self) -> list[str]:
        """Indented lines under ``line()``: every issue of a failure; the plan of a dry run."""
        if self.status == "planned":
            return [f"  {method} {url}" for method, url in self.planned]
        lines: list[str] = []
        if self.status == "failed":
            errors = [i for i in self.issues if i.severity in ("error", "fatal")] or self.issues
            lines.extend(f"  - {issue.text()}" for issue in errors[1:])
            if self.study not in self.source:
                lines.append(f"  (from {self.source})")
        return lines


@dataclass
class PushSummary:
    """All studies of one push, in input order."""

    studies: list[StudyResult]
    dry_run: bool = False
    elapsed: float = 0.0
    stopped: str | None = None  # why the push stopped before sending everything

    @property
    def failed(self) -> list[StudyResult]:
        """Studies sent (or tried) that did not land; ``not_sent`` are counted apart."""
        return [s for s in self.studies if s.status == "failed"]

    @property
    def not_sent(self) -> list[StudyResult]:
        return [s for s in self.studies if s.status == "not-sent"]

    @property
    def succeeded(self) -> list[StudyResult]:
        return [s for s in self.studies if s.ok]

    @property
    def exit_code(self) -> ExitCode:
        """OK when every study was pushed (or planned); else the code `push_exit_code` gives."""
        return push_exit_code(self.studies)

    def total(self, kind: Literal["created", "updated", "unchanged", "deleted"]) -> int:
        return sum(len(getattr(s, kind)) for s in self.studies)

    def lines(self) -> list[str]:
        n = len(self.studies)
        if self.dry_run:
            entries = sum(s.entry_count for s in self.succeeded)
            line = (
                f"Dry run: {len(self.succeeded)} of {n} studies would be sent "
                f"({entries} entries); nothing was sent"
            )
            if self.failed:
                line += f"; {len(self.failed)} cannot be sent"
            return [line]
        lines = [
            f"Pushed {len(self.succeeded)} of {n} studies"
            + (f", {len(self.failed)} FAILED" if self.failed else "")
            + (f", {len(self.not_sent)} NOT SENT" if self.not_sent else "")
            + f" in {self.elapsed:.1f} s: created {self.total('created')}, "
            f"updated {self.total('updated')}, unchanged {self.total('unchanged')}"
            + (f", deleted {self.total('deleted')}" if self.total("deleted") else "")
        ]
        retries = retry_line(c for s in self.studies for c in s.retry_causes)
        if retries:
            lines.append(retries[0].upper() + retries[1:])
        if self.stopped:
            lines.append(f"Stopped early: {self.stopped}")
        unknown = [s.study for s in self.failed if s.outcome_unknown]
        if unknown:
            lines.append(
                "Outcome unknown (check the server before pushing again): " + ", ".join(unknown)
            )
        if self.failed:
            lines.append("Failed: " + ", ".join(s.study for s in self.failed))
        if self.not_sent:
            shown = [s.study for s in self.not_sent[:20]]
            more = len(self.not_sent) - len(shown)
            lines.append("Not sent: " + ", ".join(shown) + (f" … and {more} more" if more else ""))
        return lines
