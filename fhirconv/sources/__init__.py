"""Readers: one per input format, each turning records into the normalized `Trial`.

Every reader exposes `read_text(text: str, file: str) -> Iterator[Trial | RecordError]`: a bad
record is yielded as a `RecordError` (naming file, record and field) so a batch never loses the
good records around it.
"""

from __future__ import annotations

import codecs
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import BaseModel

from fhirconv.errors import InputError, RecordError, UnknownFormatError, unexpected
from fhirconv.model import Trial
from fhirconv.sources import ctgov_json, ctgov_xml, registry_text
from fhirconv.sources.inputs import InputUnit, Unit, iter_input_files, path_units

Reader = Callable[[str, str], Iterator[Trial | RecordError]]
_READERS: dict[str, Reader] = {
    "ctgov-json": ctgov_json.read_text,
    "ctgov-xml": ctgov_xml.read_text,
    "registry-text": registry_text.read_text,
}
FORMATS = tuple(_READERS)


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
    """Records in `text`, read with the reader for `fmt` (detected when None).

    Each reader yields a Trial or a RecordError per record; should a reader itself fail part-way
    through a file (a defect, not bad data), that file's remaining records become one RecordError
    naming it, and the batch goes on with the next file."""
    fmt = fmt or detect_format(text, file)
    reader = _READERS.get(fmt)
    if reader is None:
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    yield from _guarded(reader(text, file), file)


def _guarded(records: Iterator[Trial | RecordError], file: str) -> Iterator[Trial | RecordError]:
    """The reader's records, behind the file boundary: a reader failing part-way (a defect, not
    bad data) ends the file with one RecordError; a Trial holding undecodable bytes fails alone."""
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except RecursionError:
            yield RecordError(file, None, None, "nested too deeply to read; refused")
            return
        except Exception as error:  # the file boundary, behind each record's own
            yield RecordError(file, None, None, unexpected(error))
            return
        if isinstance(record, Trial):
            field = _undecodable_field(record)
            if field is not None:
                yield RecordError(file, record.nct_id, field, "the file is not valid UTF-8 here")
                continue
        yield record


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _undecodable_field(trial: Trial) -> str | None:
    """The first field holding bytes that were not UTF-8 (kept as surrogate escapes), if any."""
    stack: list[tuple[str, object]] = [("", trial)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _UNDECODABLE.search(value):
                return path
        elif isinstance(value, BaseModel):
            stack += [(f"{path}.{k}".lstrip("."), v) for k, v in value.__dict__.items()]
        elif isinstance(value, tuple | list):
            stack += [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    return None


def input_files(path: Path) -> list[Path]:
    """A file, or the readable files under a directory (sorted, so batches are deterministic)."""
    return list(iter_input_files(path))


_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def decode_input(data: bytes, file: str) -> str:
    """The text of an input file: UTF-8 (a BOM is allowed), or the encoding an XML declaration
    names (ISO-8859-1, windows-1252 …). Bytes that are not valid UTF-8 in JSON or page text are
    kept as surrogate escapes, so only the record holding them fails, naming the field
    (`read_text` checks every Trial); in XML they fail the file, naming the byte offset."""
    body = data.removeprefix(b"\xef\xbb\xbf")
    declared = _XML_ENCODING.match(body.lstrip())
    if declared:
        name = declared.group(1).decode("ascii")
        try:
            codecs.lookup(name)
        except LookupError:
            raise InputError(f"{file}: the XML declares an unknown encoding {name!r}") from None
        try:
            return body.decode(name)
        except UnicodeDecodeError as error:
            raise InputError(
                f"{file}: not {name} as its XML declaration says: byte 0x{body[error.start]:02x}"
                f" at offset {error.start}"
            ) from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        if body.lstrip()[:1] == b"<":
            raise InputError(
                f"{file}: not UTF-8 (and no XML declaration names another encoding): "
                f"byte 0x{body[error.start]:02x} at offset {error.start}"
            ) from None
        return body.decode("utf-8", errors="surrogateescape")


_NCT_ID_IN_BYTES = re.compile(rb'<nct_id>\s*(NCT\d{8})\s*</nct_id>|"nctId"\s*:\s*"(NCT\d{8})"')


def _lone_nct_id(data: bytes) -> str | None:
    """The NCT id of an undecodable file holding one study, to name it in the error."""
    found = {b"".join(match).decode() for match in _NCT_ID_IN_BYTES.findall(data)}
    return found.pop() if len(found) == 1 else None


def read_stdin() -> str:
    """Standard input decoded as files are (BOM, XML-declared encodings, bad bytes)."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:
        return sys.stdin.read()
    data: bytes = buffer.read()
    return decode_input(data, "-")


def read_path(
    name: str, fmt: str | None = None, *, stdin: Callable[[], str] | None = None
) -> Iterator[Trial | RecordError]:
    """Every record in a file, a directory of files, a ZIP archive, or `-` (`stdin()`). A file
    that cannot be read or recognized becomes one RecordError; the others are still read. A
    directory holding no input file is a RecordError too: a run over nothing must not look like
    success."""
    if name == "-":
        yield from _read_file_text((stdin or read_stdin)(), "-", fmt)
        return
    for unit in units_of(name, fmt):
        yield from read_unit(unit, fmt)


def units_of(name: str, fmt: str | None = None) -> Iterator[Unit]:
    """The units (`sources.inputs`) of a file, directory or archive named on the command line."""
    path = Path(name)
    if not path.exists():
        raise InputError(f"{name}: no such file or directory")
    yield from path_units(path, fmt)


def read_unit(unit: Unit, fmt: str | None = None) -> Iterator[Trial | RecordError]:
    """The records of one unit: a file's or archive member's, or one NDJSON line's."""
    if isinstance(unit, RecordError):
        yield unit
        return
    if unit.line is not None:
        text = unit.data.decode("utf-8", errors="surrogateescape")
        yield from _guarded(ctgov_json.read_line(text, unit.file, unit.line), unit.file)
        return
    try:
        text = decode_input(unit.data, unit.file)
    except InputError as error:
        record = _lone_nct_id(unit.data)
        yield RecordError(unit.file, record, None, str(error).split(": ", 1)[-1])
        return
    yield from _read_file_text(text, unit.file, fmt)


def _read_file_text(text: str, file: str, fmt: str | None) -> Iterator[Trial | RecordError]:
    if not text.strip("\ufeff \t\r\n"):
        yield RecordError(file, None, None, "no records: the file is empty")
        return
    try:
        yield from read_text(text, file, fmt)
    except UnknownFormatError as error:
        yield RecordError(file, None, None, str(error).split(": ", 1)[-1])


__all__ = [
    "FORMATS",
    "InputUnit",
    "decode_input",
    "detect_format",
    "input_files",
    "read_path",
    "read_stdin",
    "read_text",
    "read_unit",
    "units_of",
]
