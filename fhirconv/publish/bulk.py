"""Bulk load: push a directory of ``<Type>.ndjson`` resources (``convert --format ndjson``).

How it loads:

* **batches** — ``batch_size`` resources per transaction Bundle, each entry ``PUT Type/id``
  (so a resend never duplicates anything), ``concurrency`` batches in flight;
* **dependency order** — the types are loaded in *layers* computed from the references the
  files actually hold (a first pass reads only ``"reference": "Type/…"``): a type waits for
  every type it points to, so HAPI's referential-integrity check finds each target already
  stored. For our output that is Organization, Practitioner → Location → PractitionerRole,
  Group, PlanDefinition → ResearchStudy → Provenance. Types in one layer go in parallel; a
  layer starts when the one before it has finished. A type that refers to itself (e.g.
  ``Organization.partOf``) is sent one batch at a time, in file order; types in a reference
  cycle share a layer (the server may then refuse a batch whose target is not yet stored);
* **journal** — every batch that landed is appended (and fsync'ed) to a journal file as one
  JSON line: server, file, lines, resource count and the SHA-256 of the batch's lines. A
  re-run with the same journal skips each batch whose digest is journalled for that server,
  so an interrupted load resumes without resending what landed. A batch that landed just
  before a kill but was not yet journalled is sent again: harmless, as it is PUT by id.
  Changing ``batch_size`` changes the batches, so they are all sent again (also harmless).
  A resume hashes the lines of a journalled batch without parsing them. A batch holding lines
  that are no resource sends the rest but is not journalled, so the bad lines are reported on
  every run until fixed;
* **stop rules and faults** as for bundles (``push.StopRule``): a dead server, a 401/403 or a
  TLS failure stops the load; the rest is reported not sent and the journal keeps what landed.

HAPI's bulk ``$import`` lets the server fetch the files itself; ``import_operation`` reports
whether a server's CapabilityStatement offers it, and ``importer.import_ndjson`` drives it
(``fhirconv push`` uses it when offered, these transactions otherwise).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from fhirconv.errors import ExitCode, InputError, PublishError
from fhirconv.publish.bundles import BundleSource, LoadedBundle
from fhirconv.publish.client import FhirClient
from fhirconv.publish.push import Breaker, StopRule, not_sent_result, push_watched
from fhirconv.publish.report import StudyResult, push_exit_code, retry_line
from fhirconv.write import BULK_MANIFEST_NAME

log = logging.getLogger(__name__)

JOURNAL_NAME = "push.journal"
DEFAULT_BATCH_SIZE = 200
# Ties inside a layer, and the order when references say nothing: the converter's own order.
PREFERRED_ORDER = (
    "Organization",
    "Practitioner",
    "Location",
    "PractitionerRole",
    "Group",
    "PlanDefinition",
    "ResearchStudy",
    "Provenance",
)
_REFERENCE = re.compile(rb'"reference"\s*:\s*"([A-Z][A-Za-z]+)/')
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# progress(batch_result, batches_done, batches_total)
BatchProgress = Callable[[StudyResult, int, int], None]


# -- finding the files ----------------------------------------------------------------------


def _first_record(path: Path) -> Any:
    try:
        with path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    return json.loads(line)
    except (OSError, ValueError, RecursionError):
        return None
    return None


def _blank(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return all(not line.strip() for line in handle)
    except OSError:
        return False


def is_resource_ndjson(path: Path) -> bool:
    """An ``.ndjson`` file whose first record is a resource other than a Bundle."""
    if path.suffix.lower() != ".ndjson" or not path.is_file():
        return False
    first = _first_record(path)
    return (isinstance(first, dict) and isinstance(first.get("resourceType"), str)
            and first["resourceType"] != "Bundle")


def is_bulk_manifest(path: Path) -> bool:
    """A Bulk Data manifest (``convert --format ndjson`` writes ``manifest.json``)."""
    if path.name != BULK_MANIFEST_NAME:
        return False
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and isinstance(manifest.get("output"), list)


def resource_files(sources: Iterable[Path]) -> list[Path] | None:
    """The resource NDJSON files named by ``sources`` when *all* of them are that (a directory
    stands for its ``*.ndjson`` files); ``None`` when they hold Bundles (``push_bundles``).

    Raises ``InputError`` when resources and bundles are mixed."""
    files: list[Path] = []
    others: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            candidates = sorted(p for p in path.iterdir()
                                if p.is_file() and p.suffix.lower() == ".ndjson")
            bundles = sorted(p for p in path.iterdir()
                             if p.is_file() and p.suffix.lower() in (".json", ".jsonl")
                             and not is_bulk_manifest(p))
        else:
            candidates, bundles = [path], []
        for candidate in candidates:
            if candidate.suffix.lower() != ".ndjson":
                others.append(candidate)  # a Bundle file: not read here
                continue
            if _first_record(candidate) is None and _blank(candidate):
                continue  # an empty file holds neither resources nor bundles
            (files if is_resource_ndjson(candidate) else others).append(candidate)
        others.extend(bundles)
    if not files:
        return None
    if others:
        raise InputError(
            "these inputs mix resource NDJSON (a bulk load) with Bundles: "
            + ", ".join(str(p) for p in others[:5])
            + "; push them separately"
        )
    return files


# -- dependency layers ----------------------------------------------------------------------


def _rank(kind: str) -> tuple[int, str]:
    return (PREFERRED_ORDER.index(kind), "") if kind in PREFERRED_ORDER else (
        len(PREFERRED_ORDER) - 1, kind)  # unknown types: before Provenance, by name


def referenced_types(files: Mapping[str, list[Path]]) -> tuple[dict[str, set[str]], int]:
    """For each type, the types its resources refer to (literal ``Type/id`` references); and
    the number of non-blank lines in all the files."""
    graph: dict[str, set[str]] = {kind: set() for kind in files}
    lines = 0
    for kind, paths in files.items():
        for path in paths:
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        lines += 1
                        graph[kind].update(m.decode() for m in _REFERENCE.findall(line))
    return graph, lines


def load_layers(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Types grouped so that each layer refers only to earlier layers (and itself).

    Targets that are not being loaded are ignored (they must already be on the server).
    Types in a cycle are put in one layer."""
    kinds = set(graph)
    deps = {k: (graph[k] & kinds) - {k} for k in kinds}
    layers: list[list[str]] = []
    placed: set[str] = set()
    while len(placed) < len(kinds):
        ready = [k for k in kinds - placed if deps[k] <= placed]
        if not ready:  # only cycles left: take a cycle that waits for nothing else
            ready = _free_cycle(deps, placed)
        layer = sorted(ready, key=_rank)
        layers.append(layer)
        placed.update(layer)
    return layers


def _reachable(start: str, deps: Mapping[str, set[str]], placed: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in deps[todo.pop()] - placed:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _free_cycle(deps: Mapping[str, set[str]], placed: set[str]) -> list[str]:
    """Among the unplaced types (every one of which waits for another), a strongly connected
    set that waits for nothing outside itself: the first to load."""
    remaining = sorted(set(deps) - placed, key=_rank)
    reach = {k: _reachable(k, deps, placed) for k in remaining}
    for kind in remaining:
        cycle = {kind} | {j for j in reach[kind] if kind in reach[j]}
        if all(deps[j] - placed <= cycle for j in cycle):
            return sorted(cycle, key=_rank)
    return remaining  # not reached: the condensation of a finite graph has a source


# -- batches ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """``batch_size`` consecutive non-blank lines of one file, as read (not yet parsed): the
    unit the journal records, so a resume skips what landed without parsing it."""

    path: Path
    first_line: int
    last_line: int
    digest: str  # SHA-256 of the lines, each with one "\n"
    lines: tuple[tuple[int, bytes], ...]

    @property
    def label(self) -> str:
        return f"{self.path.name}:{self.first_line}-{self.last_line}"


@dataclass(frozen=True)
class Batch:
    """A chunk's resources as one transaction. ``clean``: every line was a resource — only
    then is it journalled, so a chunk with bad lines is reported again until they are fixed."""

    path: Path
    first_line: int
    last_line: int
    digest: str
    bundle: dict[str, Any]
    clean: bool = True

    @property
    def label(self) -> str:
        return f"{self.path.name}:{self.first_line}-{self.last_line}"

    @property
    def size(self) -> int:
        return len(self.bundle["entry"])


@dataclass(frozen=True)
class BadLine:
    path: Path
    line: int
    message: str

    @property
    def label(self) -> str:
        return f"{self.path.name}:{self.line}"


def _entry(resource: Any, base_url: str) -> dict[str, Any] | str:
    """The transaction entry for one resource, or why it cannot be one."""
    if not isinstance(resource, dict):
        return "not a JSON object"
    kind, rid = resource.get("resourceType"), resource.get("id")
    if not isinstance(kind, str) or not kind:
        return "no resourceType"
    if not isinstance(rid, str) or not _FHIR_ID.match(rid):
        return f"{kind} without a valid id (PUT by id needs one)"
    ref = f"{kind}/{rid}"
    return {"fullUrl": f"{base_url}/{ref}", "resource": resource,
            "request": {"method": "PUT", "url": ref}}


def iter_chunks(path: Path, batch_size: int) -> Iterator[Chunk]:
    """The file's non-blank lines, ``batch_size`` at a time, read lazily."""
    lines: list[tuple[int, bytes]] = []
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            lines.append((number, line))
            digest.update(line.rstrip(b"\r\n") + b"\n")
            if len(lines) >= batch_size:
                yield Chunk(path, lines[0][0], number, digest.hexdigest(), tuple(lines))
                lines, digest = [], hashlib.sha256()
    if lines:
        yield Chunk(path, lines[0][0], lines[-1][0], digest.hexdigest(), tuple(lines))


def parse_chunk(chunk: Chunk, base_url: str) -> tuple[Batch | None, list[BadLine]]:
    """The chunk's transaction (``None`` if no line is a resource) and its bad lines."""
    entries: list[dict[str, Any]] = []
    bad: list[BadLine] = []
    for number, line in chunk.lines:
        try:
            entry = _entry(json.loads(line), base_url)
        except ValueError as exc:
            entry = f"not valid JSON: {exc}"
        if isinstance(entry, str):
            bad.append(BadLine(chunk.path, number, entry))
        else:
            entries.append(entry)
    if not entries:
        return None, bad
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return Batch(chunk.path, chunk.first_line, chunk.last_line, chunk.digest, bundle,
                 clean=not bad), bad


def iter_batches(path: Path, batch_size: int, base_url: str) -> Iterator[Batch | BadLine]:
    """Every chunk of the file parsed: its bad lines, then its batch."""
    for chunk in iter_chunks(path, batch_size):
        batch, bad = parse_chunk(chunk, base_url)
        yield from bad
        if batch is not None:
            yield batch


# -- the journal ----------------------------------------------------------------------------


class Journal:
    """Append-only record of the batches that landed; one JSON object a line.

    Read leniently: a torn last line (a kill mid-write) is ignored, not fatal."""

    def __init__(self, path: Path, server: str) -> None:
        self.path = path
        self.server = server
        self.landed: set[str] = set()
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None
        try:
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict) and record.get("server") == server:
                        digest = record.get("sha256")
                        if isinstance(digest, str):
                            self.landed.add(digest)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise InputError(f"cannot read the journal {path}: {exc.strerror}") from None

    def has(self, chunk: Chunk | Batch) -> bool:
        return chunk.digest in self.landed

    def record(self, batch: Batch) -> None:
        line = json.dumps({
            "server": self.server,
            "file": batch.path.name,
            "lines": [batch.first_line, batch.last_line],
            "resources": batch.size,
            "sha256": batch.digest,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        })
        with self._lock:
            if self._handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._handle = self.path.open("a", encoding="utf-8")
            self._handle.write(line + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.landed.add(batch.digest)

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def default_journal(files: list[Path]) -> Path:
    """``push.journal`` in the directory of the (first) input file."""
    return files[0].parent / JOURNAL_NAME


# -- the load -------------------------------------------------------------------------------


@dataclass
class BulkSummary:
    """Every batch of one bulk load, in the order sent, and what was skipped."""

    batches: list[StudyResult] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)
    skipped_batches: int = 0
    skipped_resources: int = 0
    layers: list[list[str]] = field(default_factory=list)
    journal: Path | None = None
    elapsed: float = 0.0
    stopped: str | None = None
    dry_run: bool = False

    def _of(self, status: str) -> list[StudyResult]:
        return [b for b in self.batches if b.status == status]

    @property
    def exit_code(self) -> ExitCode:
        """OK when every resource is on the server (sent now or before); else as
        ``report.push_exit_code`` (bad lines: BAD_NDJSON)."""
        return push_exit_code(self.batches, bad_lines=bool(self.bad_lines))

    def total(self, kind: str) -> int:
        return sum(len(getattr(b, kind)) for b in self.batches)

    def lines(self) -> list[str]:
        order = " → ".join(", ".join(layer) for layer in self.layers)
        if self.dry_run:
            planned = self._of("planned")
            resources = sum(len(b.planned) for b in planned)
            return [f"Dry run: {len(planned)} batches ({resources} resources) would be sent, "
                    f"in this order: {order}; {self.skipped_batches} batches already loaded "
                    "per the journal; nothing was sent"]
        pushed, failed, not_sent = self._of("pushed"), self._of("failed"), self._of("not-sent")
        sent = sum(b.entry_count for b in pushed)
        line = (f"Loaded {sent} resources in {len(pushed)} batches in {self.elapsed:.1f} s "
                f"({sent / self.elapsed if self.elapsed else 0:.0f}/s): created "
                f"{self.total('created')}, updated {self.total('updated')}, unchanged "
                f"{self.total('unchanged')}")
        if failed:
            line += f"; {len(failed)} batches FAILED"
        if not_sent:
            line += f"; {len(not_sent)} NOT SENT"
        lines = [line, f"Order: {order}"]
        if self.skipped_batches:
            lines.append(f"Skipped {self.skipped_batches} batches ({self.skipped_resources} "
                         "resources) already loaded per the journal")
        retries = retry_line(c for b in self.batches for c in b.retry_causes)
        if retries:
            lines.append(retries[0].upper() + retries[1:])
        if self.bad_lines:
            shown = "; ".join(f"{b.label}: {b.message}" for b in self.bad_lines[:5])
            more = len(self.bad_lines) - 5
            lines.append(f"{len(self.bad_lines)} lines are no resource and were not sent: "
                         + shown + (f" … and {more} more" if more > 0 else ""))
        if self.stopped:
            lines.append(f"Stopped early: {self.stopped}")
        if self.journal is not None:
            again = " — run the same command again to resume" if (failed or not_sent) else ""
            lines.append(f"Journal: {self.journal}{again}")
        return lines


def import_operation(client: FhirClient) -> bool:
    """Does the server's CapabilityStatement offer the bulk ``$import`` operation?"""
    try:
        capability = client.get_json("metadata")
    except PublishError as exc:
        log.info("could not read the CapabilityStatement: %s", exc)
        return False
    operations: list[Any] = []
    for rest in capability.get("rest") or [] if isinstance(capability, dict) else []:
        if isinstance(rest, dict):
            operations.extend(rest.get("operation") or [])
            for resource in rest.get("resource") or []:
                if isinstance(resource, dict):
                    operations.extend(resource.get("operation") or [])
    return any(isinstance(op, dict) and op.get("name") in ("import", "$import")
               for op in operations)


def _group_files(files: Iterable[Path]) -> dict[str, list[Path]]:
    """Files by the resource type of their first record."""
    grouped: dict[str, list[Path]] = {}
    for path in files:
        first = _first_record(path)
        kind = first.get("resourceType") if isinstance(first, dict) else None
        grouped.setdefault(str(kind or path.stem), []).append(path)
    return grouped


def ordered_files(files: Iterable[Path]) -> list[tuple[str, Path]]:
    """(resource type, file) in dependency order: the order a bulk ``$import`` lists them."""
    grouped = _group_files(files)
    graph, _ = referenced_types(grouped)
    return [(kind, path) for layer in load_layers(graph) for kind in layer
            for path in grouped[kind]]


def push_ndjson(
    files: list[Path],
    client: FhirClient | None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int = 4,
    journal_path: Path | None = None,
    dry_run: bool = False,
    progress: BatchProgress | None = None,
    stop_rule: StopRule | None = None,
    base_url: str | None = None,
) -> BulkSummary:
    """Load resource NDJSON files as batched transactions in dependency order (module doc).

    Files are read lazily: at most ``2 * concurrency`` batches are held in memory.
    ``journal_path`` defaults to ``push.journal`` beside the first file; ``client`` may be
    ``None`` only for a dry run (then ``base_url`` names the server the journal is for)."""
    if batch_size < 1 or concurrency < 1:
        raise ValueError("batch_size and concurrency must be at least 1")
    if client is None and not dry_run:
        raise ValueError("a FhirClient is needed unless dry_run is set")
    started = time.monotonic()
    server = client.base_url if client is not None else (base_url or "").rstrip("/")
    grouped = _group_files(files)
    graph, line_count = referenced_types(grouped)
    layers = load_layers(graph)
    self_referencing = {kind for kind, targets in graph.items() if kind in targets}
    journal = Journal(journal_path or default_journal(files), server)
    summary = BulkSummary(layers=layers, journal=journal.path, dry_run=dry_run)
    breaker = Breaker(stop_rule or StopRule())
    estimate = -(-line_count // batch_size)  # for progress only: bad lines make it high
    done = 0

    def finish(result: StudyResult) -> None:
        nonlocal done
        summary.batches.append(result)
        done += 1
        if progress is not None:
            progress(result, done, max(estimate - summary.skipped_batches, done))

    def batches(kinds: list[str]) -> Iterator[Batch]:
        for kind in kinds:
            for path in grouped[kind]:
                for chunk in iter_chunks(path, batch_size):
                    if journal.has(chunk):  # only clean chunks are journalled: all resources
                        summary.skipped_batches += 1
                        summary.skipped_resources += len(chunk.lines)
                        continue
                    batch, bad = parse_chunk(chunk, server)
                    summary.bad_lines.extend(bad)
                    if batch is not None:
                        yield batch

    try:
        for layer in layers:
            together = [k for k in layer if k not in self_referencing]
            one_by_one = [k for k in layer if k in self_referencing]
            if dry_run:
                for batch in batches(layer):
                    finish(StudyResult(
                        study=batch.label, source=str(batch.path), status="planned",
                        planned=[("PUT", e["request"]["url"]) for e in batch.bundle["entry"]]))
                continue
            assert client is not None
            # A layer ends before the next starts: its resources are the next one's targets.
            _send_all(batches(together), concurrency, client, breaker, journal, finish)
            _send_all(batches(one_by_one), 1, client, breaker, journal, finish)
    finally:
        journal.close()
    summary.stopped = breaker.reason
    summary.elapsed = time.monotonic() - started
    return summary


def _as_loaded(batch: Batch) -> LoadedBundle:
    return LoadedBundle(BundleSource(batch.path, batch.first_line), batch.label, batch.bundle)


def _send_all(
    batches: Iterable[Batch],
    concurrency: int,
    client: FhirClient,
    breaker: Breaker,
    journal: Journal,
    finish: Callable[[StudyResult], None],
) -> None:
    def send(batch: Batch) -> StudyResult:
        result = push_watched(_as_loaded(batch), client, breaker)
        if result.status == "pushed" and batch.clean:
            try:
                journal.record(batch)
            except OSError as exc:
                result.status = "failed"
                result.error = (f"landed, but the journal {journal.path} could not be written "
                                f"({exc.strerror}): a resume will send it again")
        return result

    window = 2 * concurrency
    in_flight: dict[Future[StudyResult], Batch] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="fhirconv-bulk") as pool:
        try:
            for batch in batches:
                if breaker.reason is not None:
                    finish(not_sent_result(_as_loaded(batch), breaker.reason))
                    continue
                in_flight[pool.submit(send, batch)] = batch
                while len(in_flight) >= window:
                    _collect(in_flight, finish)
            while in_flight:
                _collect(in_flight, finish)
        except BaseException:
            for future in in_flight:
                future.cancel()
            raise


def _collect(
    in_flight: dict[Future[StudyResult], Batch], finish: Callable[[StudyResult], None]
) -> None:
    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
    for future in sorted(done, key=lambda f: (in_flight[f].path, in_flight[f].first_line)):
        batch = in_flight.pop(future)
        try:
            result = future.result()
        except Exception as exc:  # push_one does not raise; a journal write may
            result = StudyResult(study=batch.label, source=str(batch.path), status="failed",
                                 error=f"{type(exc).__name__}: {exc}")
        finish(result)
