"""Readers: one per input format, each turning records into the normalized `Trial`.

Every reader exposes `read_text(text: str, file: str) -> Iterator[Trial | RecordError]`: a bad
record is yielded as a `RecordError` (naming file, record and field) so a batch never loses the
good records around it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from fhirconv.errors import InputError, RecordError, UnknownFormatError
from fhirconv.model import Trial
from fhirconv.sources import ctgov_json, ctgov_xml, registry_text

Reader = Callable[[str, str], Iterator[Trial | RecordError]]
_READERS: dict[str, Reader] = {
    "ctgov-json": ctgov_json.read_text,
    "ctgov-xml": ctgov_xml.read_text,
    "registry-text": registry_text.read_text,
}
FORMATS = tuple(_READERS)
_SUFFIXES = {".json", ".ndjson", ".jsonl", ".xml", ".txt"}


def detect_format(text: str, file: str) -> str:
    """Tell the format from the content (not the file name), so stdin works too."""
    head = text.lstrip("\ufeff \t\r\n")[:4096]
    if head.startswith(("{", "[")):
        return "ctgov-json"
    if head.startswith("<"):
        if "<clinical_study" in head or "<clinical_study" in text[:20000]:
            return "ctgov-xml"
        raise UnknownFormatError(file, "XML, but not a <clinical_study> document")
    if "NCT ID:" in text[:20000] or "\nBasic Information\n" in text[:20000]:
        return "registry-text"
    raise UnknownFormatError(file, "neither JSON, <clinical_study> XML nor registry page text")


def read_text(text: str, file: str, fmt: str | None = None) -> Iterator[Trial | RecordError]:
    """Records in `text`, read with the reader for `fmt` (detected when None)."""
    fmt = fmt or detect_format(text, file)
    reader = _READERS.get(fmt)
    if reader is None:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    yield from reader(text, file)


def input_files(path: Path) -> list[Path]:
    """A file, or the readable files under a directory (sorted, so batches are deterministic)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES)
    return [path]


def read_path(name: str, fmt: str | None = None) -> Iterator[Trial | RecordError]:
    """Every record in a file, a directory of files, or `-` (stdin). A file that cannot be read or
    recognized becomes one RecordError; the others are still read."""
    if name == "-":
        yield from _read_file_text(sys.stdin.read(), "-", fmt)
        return
    path = Path(name)
    if not path.exists():
        raise InputError(f"{name}: no such file or directory")
    for file in input_files(path):
        try:
            text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            yield RecordError(str(file), None, None, f"cannot read file: {error}")
            continue
        yield from _read_file_text(text, str(file), fmt)


def _read_file_text(text: str, file: str, fmt: str | None) -> Iterator[Trial | RecordError]:
    try:
        yield from read_text(text, file, fmt)
    except UnknownFormatError as error:
        yield RecordError(file, None, None, str(error).split(": ", 1)[-1])


__all__ = ["FORMATS", "detect_format", "input_files", "read_path", "read_text"]
