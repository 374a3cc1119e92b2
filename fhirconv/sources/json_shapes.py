"""Making an API v2 study's JSON the shape the reader expects, before it is read.

Registries, exports and hand edits put a list where an object belongs, a string where a list of
strings does, a number where text does. `conform` walks the study along the shapes in
`mappings/ctgov-v2-shapes.json` (every path the reader uses) and returns a copy in which every
known path has its expected shape, with one warning per change naming the field:

- a number or boolean where text is expected is read as its text;
- a single value where a list is expected becomes a one-item list;
- text holding a number where a number is expected, or "true"/"false" where a boolean is, is read;
- anything else of the wrong shape is ignored (the rest of the record still converts).

`null` is the same as absent. Paths the shapes do not name are kept untouched (the reader never
looks at them). A wrong shape on the path to the NCT id is an error: without it there is no record
to name. Text that was not valid UTF-8 in the file (decoded with surrogate escapes) is an error
naming the field, since what it should have said cannot be known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhirconv.errors import FieldError
from fhirconv.tables import load_json

SHAPES_FILE = "ctgov-v2-shapes.json"
REQUIRED = frozenset(
    {
        "protocolSection",
        "protocolSection.identificationModule",
        "protocolSection.identificationModule.nctId",
    }
)
_NAMES = {
    "object": "an object",
    "array": "a list",
    "string": "text",
    "number": "a number",
    "boolean": "true or false",
}
_SURROGATE = re.compile("[\udc80-\udcff]")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def shapes() -> dict[str, str]:
    table: dict[str, str] = load_json(SHAPES_FILE)["shapes"]
    return table


def shape_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


@dataclass
class Conformed:
    study: dict[str, Any]
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (field path, message)


_ABSENT = object()


def conform(study: dict[str, Any]) -> Conformed:
    """A copy of `study` with every known path in its expected shape, and what was changed."""
    result = Conformed({})
    table = shapes()
    for key, value in study.items():
        kept = _conform(value, key, key, table, result)
        if kept is not _ABSENT:
            result.study[key] = kept
    return result


def _describe(value: Any) -> str:
    shape = shape_of(value)
    if shape == "string":
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"text {shown!r}"
    return _NAMES.get(shape, shape)


def _conform(value: Any, path: str, plain: str, table: dict[str, str], out: Conformed) -> Any:
    """`path` indexes the shape table (`[]` for list items); `plain` is what messages show."""
    expected = table.get(path)
    if expected is None or value is None:
        return value if value is not None else _ABSENT
    actual = shape_of(value)
    if actual == "string" and _SURROGATE.search(value):
        raise FieldError(plain, "the file is not valid UTF-8 here")
    if actual != expected:
        value = _coerce(value, actual, expected, path, plain, out)
        if value is _ABSENT:
            return _ABSENT
        actual = shape_of(value)
    if actual == "object":
        kept_object: dict[str, Any] = {}
        for key, child in value.items():
            kept = _conform(child, f"{path}.{key}", f"{plain}.{key}", table, out)
            if kept is not _ABSENT:
                kept_object[key] = kept
        return kept_object
    if actual == "array":
        kept_items = []
        for index, child in enumerate(value):
            kept = _conform(child, f"{path}[]", f"{plain}[{index}]", table, out)
            if kept is not _ABSENT:
                kept_items.append(kept)
        return kept_items
    return value


def _coerce(value: Any, actual: str, expected: str, path: str, plain: str, out: Conformed) -> Any:
    """`value` in the expected shape (with a warning), or _ABSENT (with a warning)."""
    wanted = _NAMES[expected]
    coerced: Any = _ABSENT
    if expected == "string" and actual in {"number", "boolean"}:
        coerced = str(value).lower() if actual == "boolean" else str(value)
    elif expected == "array" and actual in {"string", "number", "object"}:
        item_shape = table_item_shape(path)
        if item_shape == actual or (item_shape == "string" and actual == "number"):
            coerced = [value]
    elif expected == "number" and actual == "string" and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        coerced = int(number) if number.is_integer() else number
    elif (
        expected == "boolean" and actual == "string" and value.strip().lower() in {"true", "false"}
    ):
        coerced = value.strip().lower() == "true"
    if coerced is _ABSENT:
        if path in REQUIRED:
            raise FieldError(plain, f"expected {wanted}, found {_describe(value)}")
        out.warnings.append((plain, f"expected {wanted}, found {_describe(value)}; ignored"))
        return _ABSENT
    out.warnings.append(
        (plain, f"expected {wanted}, found {_describe(value)}; read as {coerced!r}")
    )
    return coerced


def table_item_shape(path: str) -> str | None:
    return shapes().get(f"{path}[]")


__all__ = ["REQUIRED", "Conformed", "conform", "shape_of", "shapes"]
