"""Parsing JSON input the same way everywhere (convert, validate, match, coverage).

`parse_json` turns every way a JSON text can be unreadable into an `InputError` whose message a
user can act on: invalid or truncated JSON names the line and column; JSON nested deeper than
`MAX_DEPTH` levels (no registry record or FHIR resource comes near it; 100,000 levels would
exhaust Python's recursion limit) is refused before anything walks it.

`json_documents` tells one JSON document from NDJSON: a text that is not one document is read as
NDJSON only when its first non-blank line is a whole JSON value by itself, so a pretty-printed
file cut short gets one "truncated JSON at line L col C" instead of an error for every line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import orjson

from fhirconv.errors import InputError

MAX_DEPTH = 200


def json_error_message(error: json.JSONDecodeError, first_line: int = 1) -> str:
    """'truncated JSON …' when the text ends before the value does, else 'invalid JSON …';
    `first_line` is the line the parsed text starts on (NDJSON)."""
    ended = error.pos >= len(error.doc.rstrip()) or _unclosed(error.doc)
    kind = "truncated JSON (the text ends too early)" if ended else "invalid JSON"
    line = error.lineno + first_line - 1
    return f"{kind} at line {line} col {error.colno}: {error.msg}"


_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def _unclosed(text: str) -> bool:
    """Whether more objects and arrays are opened than closed (strings aside): a text cut short."""
    bare = _STRING.sub("", text)
    return bare.count("{") + bare.count("[") > bare.count("}") + bare.count("]")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests containers more than `limit` levels deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep() -> str:
    return f"JSON nested more than {MAX_DEPTH} levels deep; refused"


_LONG_NUMBER = re.compile(r"\d{19}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{19}")


def parse_json(text: str | bytes, first_line: int = 1) -> Any:
    """The JSON value in `text`; raises `InputError` (no file name: the caller adds it)."""
    # orjson is three times faster and gives the same values for every text it accepts, except
    # integers of more than 64 bits (it makes them floats): a text with a number that long, and
    # whatever orjson refuses (NaN, lone surrogates, errors), goes to the stdlib parser, which
    # decides — and words the error — as it always did.
    long_number = _LONG_NUMBER_BYTES if isinstance(text, bytes) else _LONG_NUMBER
    if long_number.search(text):  # type: ignore[arg-type]
        value = _stdlib_parsed(text, first_line)
    else:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = _stdlib_parsed(text, first_line)
    if _depth_exceeds(value, MAX_DEPTH):
        raise InputError(_too_deep())
    return value


def _stdlib_parsed(text: str | bytes, first_line: int) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise InputError(_too_deep()) from None
    except json.JSONDecodeError as error:
        raise InputError(json_error_message(error, first_line)) from None
    except UnicodeDecodeError as error:
        raise InputError(
            f"not UTF-8: byte 0x{error.object[error.start]:02x} at offset {error.start}"
        ) from None


# What orjson writes differently from `json.dumps(ensure_ascii=False)`: exponents ("1e-7" for
# "1e-07") and NaN/Infinity (as null). Seeing either — or the same bytes inside a string — the
# stdlib writes it, so the output is byte for byte what it always was.
_NOT_LIKE_STDLIB = re.compile(rb"\d[eE][-+]?\d|null")


def compact_json(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"))`, faster."""
    try:
        data = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        data = b"null"  # not serialisable that way (a lone surrogate, a huge int): the stdlib's
    if _NOT_LIKE_STDLIB.search(data):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return data.decode("utf-8")


def _is_whole_value(line: str) -> bool:
    try:
        json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def json_documents(text: str) -> Iterator[tuple[int | None, Any | InputError]]:
    """(line number or None for a whole-file document, the value or why it could not be read).

    An empty text yields nothing; the caller decides what "no documents" means."""
    stripped = text.lstrip("\ufeff")
    if not stripped.strip():
        return
    try:
        yield None, parse_json(stripped)
        return
    except InputError as whole_error:
        lines = [(n, line) for n, line in enumerate(stripped.splitlines(), 1) if line.strip()]
        if len(lines) < 2 or not _is_whole_value(lines[0][1]):
            yield None, whole_error
            return
    for number, line in lines:
        try:
            yield number, parse_json(line, number)
        except InputError as error:
            yield number, error


__all__ = ["MAX_DEPTH", "compact_json", "json_documents", "json_error_message", "parse_json"]
