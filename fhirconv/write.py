"""Writing converted studies as they come, so a batch of any size runs in constant memory.

`BundleWriter`: one transaction Bundle per study — to stdout (one per line, or indented), to one
file (a single study), or to a directory of `NCTxxxxxxxx.json` (several). `NdjsonWriter`: the
bulk-data layout, one `<Type>.ndjson` per resource type with each shared resource written once,
and a Bulk Data `manifest.json` listing them.

Every file is written atomically (`fhirconv.atomic`): a write that fails (read-only directory,
disk full) raises `OutputError` naming the path and the reason and leaves no partial file; the
Bundle files written before it stay, complete, and are counted in `written`. NDJSON files appear
only when the whole run has been written (`close()`); `abort()` removes them all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhirconv.atomic import AtomicFile, make_directory, write_text_atomically
from fhirconv.bundle import dumps
from fhirconv.jsonio import compact_json

Json = dict[str, Any]
Echo = Callable[[str], None]


def _is_directory(output: str) -> bool:
    return Path(output).is_dir() or output.endswith(("/", "\\"))


class BundleWriter:
    """Writes each study's Bundle as soon as it is converted.

    With `output` a file name and no sign of several studies, the first Bundle is held back: a
    second study (one input file that holds several) turns the output into a directory."""

    def __init__(self, output: str | None, *, pretty: bool, several: bool, echo: Echo) -> None:
        self.output = None if output in (None, "-") else output
        self.pretty = pretty
        self.echo = echo
        self.directory: Path | None = None
        self.held: tuple[str, Json] | None = None
        self.written = 0  # files written completely (a count: a run may write millions)
        if self.output is not None and (several or _is_directory(self.output)):
            self._open_directory()

    def _open_directory(self) -> None:
        assert self.output is not None
        self.directory = Path(self.output)
        make_directory(self.directory)

    def _to_directory(self, nct_id: str, bundle: Json) -> None:
        assert self.directory is not None
        path = self.directory / f"{nct_id}.json"
        write_text_atomically(path, dumps(bundle, self.pretty))
        self.written += 1

    def add(self, nct_id: str, bundle: Json) -> None:
        if self.output is None:
            self.echo(dumps(bundle, self.pretty))
        elif self.directory is not None:
            self._to_directory(nct_id, bundle)
        elif self.held is None:
            self.held = (nct_id, bundle)
        else:
            self._open_directory()
            self._to_directory(*self.held)
            self.held = None
            self._to_directory(nct_id, bundle)

    def close(self) -> None:
        if self.held is not None and self.output is not None:
            target = Path(self.output)
            held, self.held = self.held, None
            write_text_atomically(target, dumps(held[1], self.pretty))
            self.written += 1

    def abort(self) -> None:
        """Stop without writing a held Bundle; files already written stay (each is complete)."""
        self.held = None


BULK_MANIFEST_NAME = "manifest.json"


def bulk_manifest(
    files: dict[str, tuple[str, int]], transaction_time: datetime, request: str
) -> Json:
    """A Bulk Data export-style manifest (FHIR Bulk Data Access IG, "Response - Complete
    Status") for resource type → (file name, resource count). `url`s are the file names,
    relative to the manifest: the files are local until something serves them (`push` does,
    for `$import`)."""
    return {
        "transactionTime": transaction_time.isoformat(timespec="seconds"),
        "request": request,
        "requiresAccessToken": False,
        "output": [
            {"type": kind, "url": name, "count": count}
            for kind, (name, count) in sorted(files.items())
        ],
        "error": [],
    }


def _identity(kind: str, rid: str) -> bytes:
    """A shared resource remembered in 16 bytes (its type and id run to ~100): a whole-registry
    run meets millions of them. At 2^-128 per pair, a collision will not happen."""
    return hashlib.blake2b(f"{kind}/{rid}".encode(), digest_size=16).digest()


class NdjsonWriter:
    """Resources as NDJSON: to stdout in arrival order, or to `<Type>.ndjson` files in a
    directory, with a Bulk Data `manifest.json`; a resource several studies share is written
    once (remembered by id only). `request` is what the manifest names as the request that
    made the files (the command line)."""

    def __init__(
        self, output: str | None, *, echo: Echo, request: str = "fhirconv convert"
    ) -> None:
        self.directory = None if output in (None, "-") else Path(str(output))
        self.echo = echo
        self.request = request
        self.seen: set[bytes] = set()
        self.files: dict[str, AtomicFile] = {}
        self.counts: dict[str, int] = {}
        self.written = 0  # files put in place
        if self.directory is not None:
            make_directory(self.directory)

    def add(self, resources: list[Json]) -> None:
        for resource in resources:
            rid = resource["id"]
            if not rid.startswith("NCT"):  # a study's own resources are unique already
                key = _identity(resource["resourceType"], rid)
                if key in self.seen:
                    continue
                self.seen.add(key)
            line = compact_json(resource)
            if self.directory is None:
                self.echo(line + "\n")
                continue
            kind = resource["resourceType"]
            if kind not in self.files:
                self.files[kind] = AtomicFile(self.directory / f"{kind}.ndjson")
                self.counts[kind] = 0
            self.files[kind].write(line + "\n")
            self.counts[kind] += 1

    def close(self) -> None:
        """Put every `<Type>.ndjson` in place, then the manifest naming them; a failure
        removes the ones not yet in place."""
        try:
            for handle in self.files.values():
                handle.commit()
                self.written += 1
            if self.directory is not None and self.files:
                listed = {
                    kind: (handle.target.name, self.counts[kind])
                    for kind, handle in self.files.items()
                }
                manifest = bulk_manifest(listed, datetime.now(UTC), self.request)
                target = self.directory / BULK_MANIFEST_NAME
                write_text_atomically(target, json.dumps(manifest, indent=2) + "\n")
                self.written += 1
        finally:
            self.abort()

    def abort(self) -> None:
        """Remove every NDJSON file not yet in place (nothing truncated is left)."""
        for handle in self.files.values():
            handle.discard()
        self.files.clear()
