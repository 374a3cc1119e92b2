"""A whole `convert` run as a library call: converted studies → writer → manifest → push.

`write_converted` takes what `convert.convert_inputs` yields and, study by study: writes each
good study (`write.BundleWriter` or `write.NdjsonWriter`), records it in the output's incremental
manifest (`manifest.Manifest`), counts resources by type and failures by reason, and — given a
`push` — hands the new and changed studies' Bundles to it as they are made (no file is read back).
A write failure stops the run: what was written completely is kept and listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from fhirconv.convert import ConvertedStudy
from fhirconv.duplicates import updated
from fhirconv.errors import OutputError, RecordError
from fhirconv.manifest import Manifest, RefreshCounts
from fhirconv.publish.bundles import BundleSource, LoadedBundle
from fhirconv.publish.report import PushSummary
from fhirconv.validate import errors
from fhirconv.write import BundleWriter, NdjsonWriter

Pusher = Callable[[Iterable[LoadedBundle]], PushSummary]
"""Pushes bundles as they come, e.g. `functools.partial(publish.push_stream, client=…)`."""
OnResult = Callable[[ConvertedStudy | RecordError], None]


@dataclass
class ConvertSummary:
    """What one run did: studies converted, resources by type, failures, files, refresh, push."""

    converted: int = 0
    failures: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    resources: Counter[str] = field(default_factory=Counter)
    written: int = 0  # files written completely
    write_error: OutputError | None = None
    refresh: RefreshCounts | None = None
    pushed: PushSummary | None = None

    def lines(self) -> list[str]:
        """The summary a person reads at the end of a run."""
        noun = "study" if self.converted == 1 else "studies"
        lines = [f"converted {self.converted} {noun}, {len(self.failures)} failed"]
        if self.resources:
            counted = ", ".join(f"{kind} {n}" for kind, n in sorted(self.resources.items()))
            lines.append(f"resources: {counted}")
        if self.reasons:
            lines.append(
                "failures: " + "; ".join(f"{n}× {why}" for why, n in self.reasons.most_common())
            )
        if self.refresh is not None:
            lines.append(f"refresh: {self.refresh.line()}")
        return lines


def failure_reason(result: ConvertedStudy | RecordError) -> str:
    """A failure's kind, without where it happened (so failures can be counted by reason)."""
    if isinstance(result, ConvertedStudy):
        return "validation failed"
    message = result.message
    for cut in (" at line ", " (in ", ": "):
        message = message.split(cut, 1)[0]
    return message


def describe_failure(result: ConvertedStudy | RecordError) -> str:
    """One line naming the file, record (and field) and what went wrong."""
    if isinstance(result, RecordError):
        return str(result)
    shown = "; ".join(str(issue) for issue in errors(result.issues)[:5])
    return f"{result.trial.source.describe()}: validation failed: {shown}"


def write_converted(
    results: Iterable[ConvertedStudy | RecordError],
    writer: BundleWriter | NdjsonWriter | None,
    *,
    manifest: Manifest | None = None,
    push: Pusher | None = None,
    on_result: OnResult | None = None,
) -> ConvertSummary:
    """Write (and push) every good study; count and describe the rest (module docstring).

    `writer` None writes nothing (a push only). With a `manifest`, only new and changed studies
    are pushed, and when the run ends without a failure the studies gone from the inputs have
    their outputs deleted (with failures they are only reported)."""
    summary = ConvertSummary()
    studies = _written(results, writer, manifest, summary, on_result)
    try:
        if push is not None:
            summary.pushed = push(studies)
        else:
            for _ in studies:
                pass
        if writer is not None:
            writer.close()
        if manifest is not None:
            summary.refresh = manifest.finish(delete_gone=not summary.failures)
    except OutputError as error:
        summary.write_error = error
    finally:
        if writer is not None:
            writer.abort()
            summary.written = writer.written
    return summary


def _written(
    results: Iterable[ConvertedStudy | RecordError],
    writer: BundleWriter | NdjsonWriter | None,
    manifest: Manifest | None,
    summary: ConvertSummary,
    on_result: OnResult | None,
) -> Iterator[LoadedBundle]:
    """Writes each good study and yields the Bundles to push (all, or new and changed)."""
    for result in results:
        if on_result is not None:
            on_result(result)
        if isinstance(result, RecordError) or not result.ok:
            summary.failures.append(describe_failure(result))
            summary.reasons[failure_reason(result)] += 1
            continue
        if isinstance(writer, NdjsonWriter):
            writer.add(result.resources)
        elif writer is not None:
            writer.add(result.nct_id, result.bundle)
        summary.converted += 1
        summary.resources.update(r["resourceType"] for r in result.resources)
        change = "new"
        if manifest is not None and result.source_digest is not None:
            output = f"{result.nct_id}.json"
            change = manifest.record(
                result.nct_id, result.source_digest, updated(result.trial), output
            )
        if change != "unchanged":
            source = BundleSource(Path(result.trial.source.file))
            yield LoadedBundle(source, result.nct_id, result.bundle)


__all__ = ["ConvertSummary", "Pusher", "describe_failure", "failure_reason", "write_converted"]
