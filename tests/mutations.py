"""Ways registries, exports and disks break records, applied to real ones (shared by
tests/test_robustness.py and bench/robustness).

Each mutation is applied to the serialized record (bytes), so it can produce what no JSON or XML
library would write: 100,000 levels of nesting, bytes that are not UTF-8, text cut short.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEEP_LEVELS = 100_000
HUGE = 200_000  # characters in a "huge string"
_DEEP = "\x00deep\x00"
_BAD_BYTES = "\x00bad-utf8\x00"

JSON_OPS = (
    "null",
    "delete",
    "empty_list",
    "empty_object",
    "empty_string",
    "to_string",
    "to_number",
    "to_bool",
    "to_list",
    "to_object",
    "list_of_junk",
    "huge_string",
    "deep_nesting",
    "invalid_utf8",
)
# Operations that give a value of another JSON shape than the one it replaces.
SHAPE_CHANGING = frozenset(
    {"empty_list", "empty_object", "to_number", "to_bool", "to_list", "to_object", "list_of_junk"}
)


@dataclass(frozen=True)
class Mutation:
    """What was done, where: `path` is the concrete path (indices as numbers)."""

    op: str
    path: tuple[str | int, ...]

    @property
    def generic(self) -> str:
        return generic_path(self.path)

    def __str__(self) -> str:
        return f"{self.op} at {self.generic}"


def generic_path(path: tuple[str | int, ...]) -> str:
    """('protocolSection', 'armGroups', 3, 'label') → 'protocolSection.armGroups[].label'."""
    text = ""
    for part in path:
        text += "[]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def json_paths(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Every node below the top (containers and leaves) of a study object."""
    if isinstance(value, dict):
        children: Any = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return
    for key, child in children:
        yield (*path, key)
        yield from json_paths(child, (*path, key))


def _replacement(op: str, value: Any, rng: random.Random) -> Any:
    if op == "null":
        return None
    if op == "empty_list":
        return []
    if op == "empty_object":
        return {}
    if op == "empty_string":
        return ""
    if op == "to_string":
        return rng.choice(["x", "12", "N/A", "true", "2020-13-45", "ÄÖ ü\u200b", str(value)[:50]])
    if op == "to_number":
        return rng.choice([0, 7, -1, 3.5, 10**20])
    if op == "to_bool":
        return rng.choice([True, False])
    if op == "to_list":
        return [value]
    if op == "to_object":
        return {"value": value}
    if op == "list_of_junk":
        return [1, "x", None, {}, [], True]
    if op == "huge_string":
        return "x" * HUGE
    if op == "deep_nesting":
        return _DEEP
    if op == "invalid_utf8":
        text = value if isinstance(value, str) else "text"
        cut = rng.randrange(len(text) + 1)
        return text[:cut] + _BAD_BYTES + text[cut:]
    raise ValueError(op)


def mutate_json(
    study: dict[str, Any], op: str, path: tuple[str | int, ...], rng: random.Random
) -> tuple[bytes, Any]:
    """`study` with `op` applied at `path`, serialized as one NDJSON line (bytes); and the value
    put there (None for a deletion)."""
    mutated = copy.deepcopy(study)
    parent: Any = mutated
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    new: Any = None
    if op == "delete":
        del parent[last]
    else:
        new = parent[last] = _replacement(op, parent[last], rng)
    text = json.dumps(mutated, ensure_ascii=False)
    text = text.replace(json.dumps(_DEEP), "[" * DEEP_LEVELS + "]" * DEEP_LEVELS)
    data = text.encode("utf-8").replace(json.dumps(_BAD_BYTES)[1:-1].encode(), b"\xff\xfe\xc3(")
    return data, new


# --- XML -----------------------------------------------------------------------------------------

XML_OPS = (
    "delete",
    "empty",
    "junk_text",
    "huge_text",
    "child_for_text",
    "duplicate",
    "deep_nesting",
    "invalid_utf8",
    "entity_junk",
)
_ELEMENT = re.compile(r"<([a-z_]+)(?: [^>]*)?>([^<]*)</\1>")


def xml_elements(text: str) -> list[tuple[str, int, int]]:
    """(tag, start, end) of every element holding only text (the XML reader's leaves)."""
    return [(m.group(1), m.start(), m.end()) for m in _ELEMENT.finditer(text)]


def mutate_xml(text: str, op: str, element: tuple[str, int, int], rng: random.Random) -> bytes:
    tag, start, end = element
    original = text[start:end]
    if op == "delete":
        replacement = ""
    elif op == "empty":
        replacement = f"<{tag}></{tag}>"
    elif op == "junk_text":
        junk = rng.choice(["N/A", "12", "ÄÖ ü", "2020-13-45", "Yes No", "-1 Years", "&amp;"])
        replacement = f"<{tag}>{junk}</{tag}>"
    elif op == "huge_text":
        replacement = f"<{tag}>{'x' * HUGE}</{tag}>"
    elif op == "child_for_text":
        replacement = f"<{tag}><{tag}>{original}</{tag}></{tag}>"
    elif op == "duplicate":
        replacement = original + original
    elif op == "deep_nesting":
        replacement = f"<{tag}>{'<x>' * DEEP_LEVELS}{'</x>' * DEEP_LEVELS}</{tag}>"
    elif op == "invalid_utf8":
        replacement = f"<{tag}>{_BAD_BYTES}</{tag}>"
    elif op == "entity_junk":
        replacement = f"<{tag}>&undefined; &#0; <</{tag}>"
    else:
        raise ValueError(op)
    data = (text[:start] + replacement + text[end:]).encode("utf-8")
    return data.replace(_BAD_BYTES.encode(), b"\xff\xfe\xc3(")


# --- registry page text --------------------------------------------------------------------------

TEXT_OPS = (
    "delete_line",
    "duplicate_line",
    "swap_lines",
    "junk_line",
    "huge_line",
    "blank_line",
    "delete_section",
    "truncate",
    "invalid_utf8",
)


def mutate_text(text: str, op: str, rng: random.Random, headings: frozenset[str]) -> bytes:
    """One page's text with `op` applied at a random line (never the NCT ID line, so the record
    can still be told from its neighbours)."""
    lines = text.split("\n")
    candidates = [i for i, line in enumerate(lines) if line.strip() and "NCT ID:" not in line]
    at = rng.choice(candidates)
    if op == "delete_line":
        del lines[at]
    elif op == "duplicate_line":
        lines.insert(at, lines[at])
    elif op == "swap_lines":
        other = rng.choice(candidates)
        lines[at], lines[other] = lines[other], lines[at]
    elif op == "junk_line":
        lines[at] = rng.choice(["N/A", "Group Type", ":", "Phase 9", "1", "Ages: -5", "»"])
    elif op == "huge_line":
        lines[at] = "x" * HUGE
    elif op == "blank_line":
        lines[at] = ""
    elif op == "delete_section":
        starts = [i for i in candidates if lines[i].strip() in headings] or [at]
        first = rng.choice(starts)
        following = [i for i in starts if i > first]
        lines[first : following[0] if following else len(lines)] = []
    elif op == "truncate":
        nct_line = next(i for i, line in enumerate(lines) if "NCT ID:" in line)
        cut = rng.randrange(nct_line + 1, len(lines) + 1)
        lines = lines[:cut]
    elif op == "invalid_utf8":
        lines[at] = lines[at] + _BAD_BYTES
    else:
        raise ValueError(op)
    return "\n".join(lines).encode("utf-8").replace(_BAD_BYTES.encode(), b"\xff\xfe\xc3(")


__all__ = [
    "DEEP_LEVELS",
    "JSON_OPS",
    "SHAPE_CHANGING",
    "TEXT_OPS",
    "XML_OPS",
    "Mutation",
    "generic_path",
    "json_paths",
    "mutate_json",
    "mutate_text",
    "mutate_xml",
    "xml_elements",
]
