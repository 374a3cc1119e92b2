"""Incremental refresh: what the last run wrote, kept beside the output, so a re-run converts and
writes only the studies whose record changed.

The manifest is `OUT/fhirconv-manifest.sqlite` (SQLite from the standard library: looked up one
input unit at a time, so memory stays flat however many studies the output holds, and a run killed
midway leaves it consistent). It holds:

* `meta.config`: a hash of what else decides the output — the mapping tables, fhirconv's own
  source code and the output options. When it differs from this run's, every study is converted
  again (and counted as changed);
* `studies`: per NCT id, the SHA-256 of the input unit it came from (a file, an archive member or
  an NDJSON line: `fhirconv.sources.inputs`), its last-update date (for the duplicate rule), the
  output file written for it, and the run that last saw it.

A unit whose digest is known, whose studies' outputs all exist and that had no failure last time
is skipped without being parsed. Studies seen in no unit of this run are *gone*: their outputs
are deleted, but only when the run had no failure (an unreadable input must not look like
studies withdrawn from the registry).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

from fhirconv.errors import OutputError
from fhirconv.tables import table_version

MANIFEST_NAME = "fhirconv-manifest.sqlite"
Change = Literal["new", "changed", "unchanged"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (
    nct_id TEXT PRIMARY KEY, digest TEXT NOT NULL, updated TEXT NOT NULL,
    output TEXT NOT NULL, run INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS studies_digest ON studies (digest);
CREATE TABLE IF NOT EXISTS failed_units (digest TEXT PRIMARY KEY);
"""


def software_version() -> str:
    """A short hash of fhirconv's source code: a new version of the converter rewrites all."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for source in sorted(package.rglob("*.py")):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def config_hash(options: str) -> str:
    """What besides the record decides a study's output: tables, code and `options`."""
    text = f"{table_version()}\n{software_version()}\n{options}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class RefreshCounts:
    """How the studies of this run compare with the last run's."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    gone: list[str] = field(default_factory=list)
    gone_kept: bool = False  # gone studies were reported, not deleted (the run had failures)

    def line(self) -> str:
        gone = f"{len(self.gone)} gone" + (
            " (kept: the run had failures)" if self.gone_kept else ""
        )
        return (
            f"{len(self.new)} new, {len(self.changed)} changed, {self.unchanged} unchanged, {gone}"
        )


class Manifest:
    """The manifest of one output directory; use as a context manager (or `close()`)."""

    def __init__(self, directory: Path, options: str = "", *, full: bool = False) -> None:
        self.directory = directory
        self.path = directory / MANIFEST_NAME
        self.counts = RefreshCounts()
        self._restored: set[str] = set()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise OutputError(str(self.path), str(error)) from None
        self.config = config_hash(options)
        previous = self._meta("config")
        self.stale = full or previous != self.config  # everything is converted again
        self.run = int(self._meta("run") or "0") + 1
        # Saved at once: rows an interrupted run wrote never share a number with the next run.
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('run', ?)", (str(self.run),))
        self._db.commit()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def known(self, digest: str) -> list[tuple[str, str]] | None:
        """(NCT id, last update) of the studies a unit with this digest gave last time, when it
        can be skipped: its outputs all exist and it had no failure. None: convert it."""
        if self.stale:
            return None
        if self._db.execute("SELECT 1 FROM failed_units WHERE digest = ?", (digest,)).fetchone():
            return None
        rows = self._db.execute(
            "SELECT nct_id, updated, output FROM studies WHERE digest = ?", (digest,)
        ).fetchall()
        if not rows:
            return None
        if not all((self.directory / output).is_file() for _, _, output in rows):
            self._restored.add(digest)  # written again: counted as changed, pushed again
            return None
        return [(str(nct_id), str(updated)) for nct_id, updated, _ in rows]

    def skip(self, digest: str, studies: int) -> None:
        """A unit left as it was: its studies are still there (not gone)."""
        self._db.execute("UPDATE studies SET run = ? WHERE digest = ?", (self.run, digest))
        self.counts.unchanged += studies

    def failed(self, digest: str) -> None:
        """A unit that gave a failure: converted again next time, so it is reported again."""
        self._db.execute("INSERT OR IGNORE INTO failed_units VALUES (?)", (digest,))

    def record(self, nct_id: str, digest: str, updated: str, output: str) -> Change:
        """A study written now; whether it is new, changed or (rewritten alike) unchanged."""
        row = self._db.execute("SELECT digest FROM studies WHERE nct_id = ?", (nct_id,)).fetchone()
        self._db.execute(
            "INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?, ?)",
            (nct_id, digest, updated, output, self.run),
        )
        self._db.execute("DELETE FROM failed_units WHERE digest = ?", (digest,))
        if row is None:
            self.counts.new.append(nct_id)
            return "new"
        if self.stale or row[0] != digest or digest in self._restored:
            self.counts.changed.append(nct_id)
            return "changed"
        self.counts.unchanged += 1
        return "unchanged"

    def finish(self, *, delete_gone: bool) -> RefreshCounts:
        """Find the gone studies (delete their outputs when `delete_gone`) and save the run."""
        gone = self._db.execute(
            "SELECT nct_id, output FROM studies WHERE run != ? ORDER BY nct_id", (self.run,)
        ).fetchall()
        self.counts.gone = [str(nct_id) for nct_id, _ in gone]
        self.counts.gone_kept = bool(gone) and not delete_gone
        if delete_gone:
            for nct_id, output in gone:
                (self.directory / output).unlink(missing_ok=True)
                self._db.execute("DELETE FROM studies WHERE nct_id = ?", (nct_id,))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)", (self.config,))
        self._db.commit()
        return self.counts

    def close(self) -> None:
        """Keep what was recorded (an interrupted run's studies are known next time)."""
        self._db.commit()
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MANIFEST_NAME", "Manifest", "RefreshCounts", "config_hash", "software_version"]
