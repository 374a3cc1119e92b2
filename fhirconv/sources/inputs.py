"""Enumerating input lazily, as *units*: the pieces of input that are read, hashed and converted
one at a time, so a run over any number of studies holds one unit in memory.

A unit is one file; one member of a ZIP archive (ClinicalTrials.gov's bulk download is a ZIP of
one JSON file per study, read in place, never unpacked); or one line of an NDJSON file (`.ndjson`,
`.jsonl`: streamed line by line). Directories are walked with `os.scandir`, each level sorted by
name, so the order is deterministic without listing the whole tree first. A unit's `file` is the
name errors use: the path, `archive.zip:folder/NCT00000102.json` for a member; NDJSON lines also
carry their line number.

`digest` (SHA-256 of the unit's bytes) is what the incremental manifest (`fhirconv.manifest`)
compares between runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import IO

from fhirconv.errors import RecordError
from fhirconv.manifest import MANIFEST_NAME

RECORD_SUFFIXES = frozenset({".json", ".ndjson", ".jsonl", ".xml", ".txt"})
NDJSON_SUFFIXES = frozenset({".ndjson", ".jsonl"})
ARCHIVE_SUFFIXES = frozenset({".zip"})
_SKIPPED_MEMBER_PREFIXES = ("__MACOSX/",)  # resource forks macOS adds to archives it makes


@dataclass(frozen=True)
class InputUnit:
    """One readable piece of input and where it came from."""

    file: str
    data: bytes
    line: int | None = None  # NDJSON: the 1-based line number within `file`

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def label(self) -> str:
        return self.file if self.line is None else f"{self.file} line {self.line}"


Unit = InputUnit | RecordError


def _walk(path: Path) -> Iterator[Path]:
    """Files under `path`, depth first, each directory's entries sorted by name (a directory
    sorts as `name/`, so the order is that of the sorted full paths); hidden entries and
    directories holding a fhirconv output manifest are left out."""
    try:
        with os.scandir(path) as scan:
            entries = sorted(
                (entry.name + ("/" if entry.is_dir() else ""), entry.path) for entry in scan
            )
    except OSError:
        return
    if any(name == MANIFEST_NAME for name, _ in entries):
        return  # fhirconv's own output (perhaps written inside the input tree during this run)
    for name, entry_path in entries:
        if name.startswith("."):
            continue  # hidden: temporary files being written, version-control folders
        if name.endswith("/"):
            yield from _walk(Path(entry_path))
        else:
            yield Path(entry_path)


def iter_input_files(path: Path) -> Iterator[Path]:
    """A file, or the readable files under a directory (record files and ZIP archives), lazily
    and in a deterministic order."""
    if not path.is_dir():
        yield path
        return
    for file in _walk(path):
        if file.suffix.lower() in RECORD_SUFFIXES | ARCHIVE_SUFFIXES and file.is_file():
            yield file


def _first_value_is_whole(handle: IO[bytes]) -> bool:
    """Whether the first non-blank line of an NDJSON candidate is a JSON value by itself (else
    it is one document spread over lines, read whole so a cut is one error, not one per line)."""
    for line in handle:
        if line.strip():
            try:
                json.loads(line)
            except (ValueError, RecursionError):
                return False
            return True
    return True


def _lines(handle: IO[bytes], file: str) -> Iterator[InputUnit]:
    for number, line in enumerate(handle, start=1):
        if line.strip():
            yield InputUnit(file, line.rstrip(b"\r\n"), number)


def _streamed(
    opener: Callable[[], IO[bytes]], file: str, fmt: str | None
) -> Iterator[InputUnit] | None:
    """NDJSON lines as units, or None when the content must be read whole instead."""
    if fmt not in (None, "ctgov-json") or Path(file).suffix.lower() not in NDJSON_SUFFIXES:
        return None
    with opener() as probe:
        if not _first_value_is_whole(probe):
            return None

    def lines() -> Iterator[InputUnit]:
        with opener() as handle:
            yield from _lines(handle, file)

    return lines()


def _archive_units(path: Path, fmt: str | None) -> Iterator[Unit]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as error:
        yield RecordError(str(path), None, None, f"not a readable ZIP archive: {error}")
        return
    with archive:
        members = sorted(
            info.filename
            for info in archive.infolist()
            if not info.is_dir()
            and not info.filename.startswith(_SKIPPED_MEMBER_PREFIXES)
            and Path(info.filename).suffix.lower() in RECORD_SUFFIXES
        )
        if not members:
            suffixes = ", ".join(sorted(RECORD_SUFFIXES))
            yield RecordError(str(path), None, None, f"no records: the archive has no {suffixes}")
            return
        for member in members:
            file = f"{path}:{member}"
            try:
                streamed = _streamed(partial(archive.open, member), file, fmt)
                if streamed is not None:
                    yield from streamed
                else:
                    yield InputUnit(file, archive.read(member))
            except (OSError, zipfile.BadZipFile, EOFError) as error:
                yield RecordError(file, None, None, f"cannot read the archive member: {error}")


def file_units(path: Path, fmt: str | None = None) -> Iterator[Unit]:
    """The units of one file: itself, its NDJSON lines, or its archive members."""
    if path.suffix.lower() in ARCHIVE_SUFFIXES:
        yield from _archive_units(path, fmt)
        return
    try:
        streamed = _streamed(lambda: path.open("rb"), str(path), fmt)
        if streamed is not None:
            yield from streamed
        else:
            yield InputUnit(str(path), path.read_bytes())
    except OSError as error:
        yield RecordError(str(path), None, None, f"cannot read file: {error.strerror}")


def path_units(path: Path, fmt: str | None = None) -> Iterator[Unit]:
    """Every unit of a file or directory; a directory holding no input file is a RecordError
    (a run over nothing must not look like success)."""
    found = False
    for file in iter_input_files(path):
        found = True
        yield from file_units(file, fmt)
    if not found:
        suffixes = ", ".join(sorted(RECORD_SUFFIXES | ARCHIVE_SUFFIXES))
        yield RecordError(
            str(path), None, None, f"no records: the directory has no {suffixes} file"
        )


def holds_several(names: Iterable[str]) -> bool:
    """Whether these inputs hold several studies by their names alone: several names, a
    directory or an archive."""
    names = list(names)
    if len(names) > 1:
        return True
    return any(
        name != "-" and (Path(name).is_dir() or Path(name).suffix.lower() in ARCHIVE_SUFFIXES)
        for name in names
    )


__all__ = [
    "ARCHIVE_SUFFIXES",
    "NDJSON_SUFFIXES",
    "RECORD_SUFFIXES",
    "InputUnit",
    "Unit",
    "file_units",
    "holds_several",
    "iter_input_files",
    "path_units",
]
