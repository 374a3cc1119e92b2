"""Field accounting: which ClinicalTrials.gov API v2 fields each Bundle carries, measured.

The spec (`mappings/ctgov-field-spec.json`) names, for every leaf path of the API v2
`protocolSection` and `derivedSection` (index-free dotted form, arrays without `[]`), the FHIR
target the value must reach, or `dropped` with the reason. Nothing here trusts the spec: for each
record and each non-empty leaf value, `measure_record` looks for that value in the study's Bundle
at the spec's target, normalized by the field's `kind`:

| kind | carried when a leaf at the target … |
|---|---|
| `text` | equals the value or contains it (texts the mapper composes, e.g. "phone ext. 12") |
| `code` | equals (case-insensitively) the CT.gov code, its display, or the FHIR code/display the
  field's code table maps it to; a value in `absent_is` is carried by the absence of any value |
| `date` | is the same ISO partial date (or a dateTime starting with it) |
| `date-type` | is the boolean `actual` flag the value means (ACTUAL → true, ESTIMATED → false) |
| `bool`, `number`, `age` | is the same boolean / number ("18 Years" → 18) |
| `country` | is the country name or its ISO 3166 alpha-2 code |
| `flag` | holds the field's `literal` when the value is true, and does not when false |
| `selects` | exists at the target the value selects (`targets_by_value`) |

A `scope` (an element path the target lies under) ties a value to its instance: the value must be
found under a scope element that also holds `scope_has` (a literal, e.g. a milestone code) and the
values of the raw object's sibling keys named in `with` (e.g. the arm's label). A target may list
alternatives separated by ` | `; a target that starts with `extension(URL)` (or is a bare URL)
matches that extension anywhere in the Bundle.

Pure: inputs are the raw study JSON and the converted Bundle; outputs are counts.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fhirconv.convert import convert_or_report
from fhirconv.errors import InputError, RecordError, unexpected
from fhirconv.mapping import countries, ids
from fhirconv.sources import decode_input, input_files
from fhirconv.sources.ctgov_json import raw_studies, study_to_trial
from fhirconv.tables import load_json

Json = dict[str, Any]
SPEC_FILE = "ctgov-field-spec.json"
KINDS = frozenset(
    {"text", "code", "date", "date-type", "bool", "number", "age", "country", "flag", "selects"}
)
_SEGMENT = re.compile(r"extension\([^()]*\)|[^.]+")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[A-Za-z]+\s*$")


# --- the spec ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """One API v2 leaf path and where its values go (or why they are dropped)."""

    path: str
    kind: str
    target: str | None = None
    dropped: str | None = None  # the reason, when the field is deliberately not converted
    scope: str | None = None
    scope_has: str | None = None
    with_: tuple[str, ...] = ()
    enum: str | None = None  # CT.gov enum name in mappings/ctgov-enums.json
    table: str | None = None  # code table mapping the CT.gov code to a FHIR code
    literal: str | None = None
    absent_is: tuple[str, ...] = ()
    targets_by_value: Mapping[str, str] = field(default_factory=dict)
    strip: str | None = None  # regex removed from the raw value before matching
    gap: str | None = None  # why a mapped field is not carried yet (for the reader)
    nonstandard: bool = False  # not an API v2 field, but seen in real files

    @property
    def module(self) -> str:
        return ".".join(self.path.split(".")[:2])

    @property
    def describe(self) -> str:
        if self.dropped is not None:
            return f"dropped: {self.dropped}"
        text = self.target or ""
        if self.targets_by_value:
            text = "; ".join(f"{k} → {v}" for k, v in self.targets_by_value.items())
        return f"{text} (gap: {self.gap})" if self.gap else text


@dataclass(frozen=True)
class OutOfScope:
    """A section (path prefix) not converted, and where a user can follow it instead."""

    prefix: str
    reason: str
    follow: str


@dataclass(frozen=True)
class Spec:
    fields: Mapping[str, FieldSpec]
    out_of_scope: tuple[OutOfScope, ...]

    def section(self, path: str) -> OutOfScope | None:
        for section in self.out_of_scope:
            if path == section.prefix or path.startswith(section.prefix + "."):
                return section
        return None

    def knows(self, path: str) -> bool:
        return path in self.fields or self.section(path) is not None


def parse_spec(data: Mapping[str, Any]) -> Spec:
    """A `Spec` from the JSON document; ValueError on a malformed row."""
    fields: dict[str, FieldSpec] = {}
    for row in data["fields"]:
        path = str(row["path"])
        if path in fields:
            raise ValueError(f"{path}: listed twice")
        kind = str(row.get("kind", "text"))
        if kind not in KINDS:
            raise ValueError(f"{path}: unknown kind {kind!r}")
        spec = FieldSpec(
            path=path,
            kind=kind,
            target=row.get("target"),
            dropped=row.get("reason") if row.get("dropped") else None,
            scope=row.get("scope"),
            scope_has=row.get("scope_has"),
            with_=tuple(row.get("with", ())),
            enum=row.get("enum"),
            table=row.get("table"),
            literal=row.get("literal"),
            absent_is=tuple(row.get("absent_is", ())),
            targets_by_value=dict(row.get("targets_by_value", {})),
            strip=row.get("strip"),
            gap=row.get("gap"),
            nonstandard=bool(row.get("nonstandard", False)),
        )
        if row.get("dropped") and not row.get("reason"):
            raise ValueError(f"{path}: dropped without a reason")
        if spec.dropped is None and not (spec.target or spec.targets_by_value):
            raise ValueError(f"{path}: needs a target, or dropped with a reason")
        if spec.scope:
            for target in [spec.target or "", *spec.targets_by_value.values()]:
                for alternative in _alternatives(target):
                    _scope_for(spec, alternative)  # raises when the target is not under the scope
        fields[path] = spec
    sections = tuple(
        OutOfScope(str(s["prefix"]), str(s["reason"]), str(s["follow"]))
        for s in data["out_of_scope"]
    )
    return Spec(fields, sections)


@cache
def load_spec(name: str = SPEC_FILE) -> Spec:
    return parse_spec(load_json(name))


# --- the raw record ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawLeaf:
    path: str
    value: Any
    parent: Mapping[str, Any]


def raw_leaves(
    value: Any, path: str = "", parent: Mapping[str, Any] | None = None
) -> Iterator[RawLeaf]:
    """Every primitive (and null) under `value`, with its index-free path and enclosing object."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from raw_leaves(child, f"{path}.{key}" if path else str(key), value)
    elif isinstance(value, list):
        for child in value:
            yield from raw_leaves(child, path, parent)
    else:
        yield RawLeaf(path, value, parent or {})


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- the Bundle ----------------------------------------------------------------------------------


def _segments(path: str) -> list[str]:
    if path.startswith(("http://", "https://")):
        head, _, rest = path.partition(" ")
        return [f"extension({head})", *_segments(rest)] if rest else [f"extension({head})"]
    return _SEGMENT.findall(path)


def _alternatives(target: str) -> list[str]:
    return [t.strip() for t in target.split(" | ") if t.strip()]


def _primitives(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for child in node.values():
            yield from _primitives(child)
    elif isinstance(node, list):
        for child in node:
            yield from _primitives(child)
    elif node is not None:
        yield node


def _hashable(value: Any) -> Any:
    """Booleans apart from 0 and 1 in sets (True == 1 in Python)."""
    return (value,) if isinstance(value, bool) else value


def _step(nodes: Iterable[Any], segment: str) -> list[Any]:
    result: list[Any] = []
    url = segment[len("extension(") : -1] if segment.startswith("extension(") else None
    for node in nodes:
        if not isinstance(node, dict):
            continue
        if url is not None:
            result += [
                e
                for e in node.get("extension") or []
                if isinstance(e, dict) and e.get("url") == url
            ]
            continue
        value = node.get(segment)
        if isinstance(value, list):
            result += value
        elif value is not None:
            result.append(value)
    return result


@dataclass(frozen=True)
class _Indexed:
    """A scope element and its primitives, indexed: exact values, squashed and keyed texts.
    Siblings match whole values only (a label "Placebo" is not found in another arm's text)."""

    node: Any
    exact: frozenset[Any]
    squashed: frozenset[str]
    keys: frozenset[str]
    numbers: frozenset[float]

    @classmethod
    def of(cls, node: Any) -> _Indexed:
        leaves = list(_primitives(node))
        texts = [leaf for leaf in leaves if isinstance(leaf, str)]
        squashed = [_squash(t) for t in texts]
        return cls(
            node=node,
            exact=frozenset(_hashable(leaf) for leaf in leaves),
            squashed=frozenset(squashed),
            keys=frozenset(_key(t) for t in texts if len(t) < 300),
            numbers=frozenset(n for n in (_number(leaf) for leaf in leaves) if n is not None),
        )


class BundleView:
    """The resources of one Bundle, with element selection by path."""

    def __init__(self, bundle: Json) -> None:
        self.resources: list[Json] = [
            e["resource"] for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)
        ]
        self._extensions: dict[str, list[Json]] | None = None
        self._cache: dict[str, list[Any]] = {}
        self._all: list[Any] | None = None
        self._scopes: dict[str, list[_Indexed]] = {}

    def _by_url(self) -> dict[str, list[Json]]:
        if self._extensions is None:
            index: dict[str, list[Json]] = {}

            def walk(node: Any) -> None:
                if isinstance(node, dict):
                    for key, child in node.items():
                        if key in {"extension", "modifierExtension"} and isinstance(child, list):
                            for ext in child:
                                if isinstance(ext, dict) and isinstance(ext.get("url"), str):
                                    index.setdefault(ext["url"], []).append(ext)
                        walk(child)
                elif isinstance(node, list):
                    for child in node:
                        walk(child)

            walk(self.resources)
            self._extensions = index
        return self._extensions

    def select(self, path: str, nodes: list[Any] | None = None) -> list[Any]:
        """Elements at `path` (from the resources, or relative to `nodes`)."""
        if nodes is None and path in self._cache:
            return self._cache[path]
        segments = _segments(path)
        if nodes is not None:
            current = nodes
        elif segments[0].startswith("extension("):
            current = list(self._by_url().get(segments[0][len("extension(") : -1], []))
            segments = segments[1:]
        else:
            current = [r for r in self.resources if r.get("resourceType") == segments[0]]
            segments = segments[1:]
        for segment in segments:
            current = _step(current, segment)
        if nodes is None:
            self._cache[path] = current
        return current

    def leaves(self, path: str) -> list[Any]:
        key = "leaves:" + path
        if key not in self._cache:
            self._cache[key] = [p for n in self.select(path) for p in _primitives(n)]
        return self._cache[key]

    def scope_nodes(self, path: str) -> list[_Indexed]:
        """The elements at `path`, each indexed for sibling look-ups."""
        if path not in self._scopes:
            self._scopes[path] = [_Indexed.of(node) for node in self.select(path)]
        return self._scopes[path]

    def all_leaves(self) -> list[Any]:
        if self._all is None:
            self._all = list(_primitives(self.resources))
        return self._all


# --- matching ------------------------------------------------------------------------------------


def _squash(text: str) -> str:
    return " ".join(text.split())


@cache
def _code_candidates(value: str, enum: str | None, table: str | None) -> frozenset[str]:
    candidates = {value, value.replace("_", " ")}
    if enum:
        display = load_json("ctgov-enums.json")["enums"].get(enum, {}).get(value)
        if display:
            candidates.add(display)
    if table:
        target = load_json(table)["map"].get(value)
        if target:
            candidates.update(str(target[k]) for k in ("code", "display") if k in target)
    return frozenset(c.casefold() for c in candidates)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


@cache
def _key(text: str) -> str:
    return ids.normalize_key(text)


def _text_match(wanted: str, leaf: Any) -> bool:
    """Equal or contained; else equal once case, accents, punctuation and spacing are ignored
    (shared resources keep one spelling of a name: "México, D.F." / "México, D. F.")."""
    if not isinstance(leaf, str):
        return False
    if leaf == wanted or wanted in leaf or _squash(wanted) in _squash(leaf):
        return True
    return len(leaf) < 300 and len(wanted) < 300 and _key(wanted) == _key(leaf) != ""


def matcher(spec: FieldSpec, value: Any) -> Any:
    """A predicate over Bundle leaves for one raw value (None when the value cannot be judged)."""
    kind = spec.kind
    if kind == "text":
        text = str(value).strip()
        if spec.strip:
            text = re.sub(spec.strip, "", text).strip()
        return lambda leaf: _text_match(text, leaf)
    if kind == "code":
        candidates = _code_candidates(str(value).strip(), spec.enum, spec.table)
        return lambda leaf: isinstance(leaf, str) and leaf.casefold() in candidates
    if kind == "date":
        date = str(value).strip()
        return lambda leaf: isinstance(leaf, str) and (leaf == date or leaf.startswith(date + "T"))
    if kind == "date-type":
        actual = str(value).strip().upper() == "ACTUAL"
        return lambda leaf: isinstance(leaf, bool) and leaf is actual
    if kind == "bool":
        return lambda leaf: isinstance(leaf, bool) and leaf is bool(value)
    if kind in {"number", "age"}:
        number = _number(value)
        if kind == "age" and isinstance(value, str) and (match := _AGE.match(value)):
            number = float(match.group(1))
        return lambda leaf: number is not None and _number(leaf) == number
    if kind == "country":
        name = str(value).strip()
        names = {name.casefold()}
        code = countries.iso_alpha2(name)
        if code:
            names.add(code.casefold())
        return lambda leaf: isinstance(leaf, str) and leaf.casefold() in names
    raise ValueError(f"{spec.path}: kind {kind!r} has no value matcher")


def _sibling_found(sibling: Any, node: _Indexed) -> bool:
    """Whether a raw sibling value (e.g. the arm's label) is held by the scope element `node`."""
    if _hashable(sibling) in node.exact:
        return True
    if isinstance(sibling, str):
        squashed = _squash(sibling)
        return squashed in node.squashed or (len(sibling) < 300 and _key(sibling) in node.keys)
    number = _number(sibling)
    return number is not None and number in node.numbers


def _scoped_nodes(
    view: BundleView, spec: FieldSpec, scope: str, parent: Mapping[str, Any]
) -> list[Any]:
    result = []
    siblings = [s for s in (parent.get(key) for key in spec.with_) if not is_empty(s)]
    for node in view.scope_nodes(scope):
        if spec.scope_has is not None and spec.scope_has not in node.exact:
            continue
        if all(_sibling_found(s, node) for s in siblings):
            result.append(node.node)
    return result


def _scope_for(spec: FieldSpec, alternative: str) -> str:
    """The longest of the spec's scope alternatives that `alternative` lies under."""
    assert spec.scope is not None
    segments = _segments(alternative)
    fitting = [
        s for s in _alternatives(spec.scope) if segments[: len(_segments(s))] == _segments(s)
    ]
    if not fitting:
        raise ValueError(f"{spec.path}: target {alternative!r} is not under scope {spec.scope!r}")
    return max(fitting, key=lambda s: len(_segments(s)))


def _target_leaves(
    view: BundleView, spec: FieldSpec, target: str, parent: Mapping[str, Any]
) -> list[Any]:
    leaves: list[Any] = []
    for alternative in _alternatives(target):
        if spec.scope:
            scope = _scope_for(spec, alternative)
            relative = ".".join(_segments(alternative)[len(_segments(scope)) :])
            nodes = _scoped_nodes(view, spec, scope, parent)
            selected = view.select(relative, nodes) if relative else nodes
            leaves += [p for n in selected for p in _primitives(n)]
        else:
            leaves += view.leaves(alternative)
    return leaves


def is_carried(view: BundleView, spec: FieldSpec, leaf: RawLeaf) -> bool:
    """Whether the raw value `leaf.value` reached the Bundle at the spec's target."""
    value = leaf.value
    if spec.kind == "selects":
        chosen = spec.targets_by_value.get(str(value).strip()) or spec.targets_by_value.get("*")
        return bool(chosen and _target_leaves(view, spec, chosen, leaf.parent))
    assert spec.target is not None
    leaves = _target_leaves(view, spec, spec.target, leaf.parent)
    if spec.kind == "flag":
        present = spec.literal in leaves
        return present if value is True else not present
    if spec.kind == "code" and str(value).strip() in spec.absent_is:
        return not leaves
    found = matcher(spec, value)
    return any(found(leaf_value) for leaf_value in leaves)


def found_anywhere(view: BundleView, spec: FieldSpec, value: Any) -> bool:
    """Whether the value appears anywhere in the Bundle (diagnoses a wrong target in the spec)."""
    if spec.kind in {"flag", "selects", "date-type", "bool"}:
        return False
    found = matcher(spec, value)
    return any(found(leaf) for leaf in view.all_leaves())


# --- counts --------------------------------------------------------------------------------------


@dataclass
class PathCount:
    """Per field path: records (and values) that had it, and that carried it into the Bundle."""

    records_present: int = 0
    records_carried: int = 0
    values_present: int = 0
    values_carried: int = 0
    values_elsewhere: int = 0  # not at the target, but somewhere in the Bundle

    def add(self, other: PathCount) -> None:
        self.records_present += other.records_present
        self.records_carried += other.records_carried
        self.values_present += other.values_present
        self.values_carried += other.values_carried
        self.values_elsewhere += other.values_elsewhere


@dataclass
class RecordCoverage:
    record: str
    paths: dict[str, PathCount] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    out_of_scope: set[str] = field(default_factory=set)  # section prefixes present
    missed: dict[str, list[Any]] = field(default_factory=dict)  # path → values not carried


def measure_record(study: Json, bundle: Json, spec: Spec | None = None) -> RecordCoverage:
    """Per-path counts for one raw API v2 study and the Bundle converted from it."""
    spec = spec or load_spec()
    ident = (study.get("protocolSection") or {}).get("identificationModule") or {}
    result = RecordCoverage(record=str(ident.get("nctId") or "?"))
    view = BundleView(bundle)
    values: dict[str, list[RawLeaf]] = {}
    for leaf in raw_leaves(study):
        section = spec.section(leaf.path)
        if section is not None:
            if not is_empty(leaf.value):
                result.out_of_scope.add(section.prefix)
            continue
        if leaf.path not in spec.fields:
            result.unknown.add(leaf.path)
            continue
        if not is_empty(leaf.value):
            values.setdefault(leaf.path, []).append(leaf)
    for path, leaves in values.items():
        field_spec = spec.fields[path]
        count = PathCount(records_present=1, values_present=len(leaves))
        if field_spec.dropped is None:
            for leaf in leaves:
                if is_carried(view, field_spec, leaf):
                    count.values_carried += 1
                else:
                    result.missed.setdefault(path, []).append(leaf.value)
                    if found_anywhere(view, field_spec, leaf.value):
                        count.values_elsewhere += 1
            count.records_carried = int(count.values_carried == count.values_present)
        result.paths[path] = count
    return result


@dataclass
class Coverage:
    """Counts over many records; `figure` is carried / present over mapped (not dropped) fields."""

    spec: Spec
    records: int = 0
    paths: dict[str, PathCount] = field(default_factory=dict)
    unknown: Counter[str] = field(default_factory=Counter)
    out_of_scope: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)  # records that could not be converted
    missed_examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, record: RecordCoverage) -> None:
        self.records += 1
        for path, count in record.paths.items():
            self.paths.setdefault(path, PathCount()).add(count)
        self.unknown.update(record.unknown)
        self.out_of_scope.update(record.out_of_scope)
        for path, missed in record.missed.items():
            examples = self.missed_examples.setdefault(path, [])
            if len(examples) < 3:
                examples.append(f"{record.record}: {str(missed[0])[:80]!r}")

    @property
    def carried(self) -> int:
        return sum(
            c.records_carried for p, c in self.paths.items() if self.spec.fields[p].dropped is None
        )

    @property
    def present(self) -> int:
        return sum(
            c.records_present for p, c in self.paths.items() if self.spec.fields[p].dropped is None
        )

    @property
    def dropped_present(self) -> int:
        return sum(
            c.records_present
            for p, c in self.paths.items()
            if self.spec.fields[p].dropped is not None
        )

    @property
    def figure(self) -> float:
        return self.carried / self.present if self.present else 1.0

    def rows(self) -> list[tuple[FieldSpec, PathCount]]:
        """Every spec field seen in the input, ordered by module as the spec lists them."""
        order = {path: n for n, path in enumerate(self.spec.fields)}
        return [
            (self.spec.fields[path], count)
            for path, count in sorted(self.paths.items(), key=lambda item: order[item[0]])
        ]

    def to_json(self) -> Json:
        return {
            "records": self.records,
            "failed": self.failed,
            "carried": self.carried,
            "present": self.present,
            "figure": round(self.figure, 6),
            "dropped_present": self.dropped_present,
            "fields": [
                {
                    "path": spec.path,
                    "records_present": count.records_present,
                    "records_carried": count.records_carried if spec.dropped is None else None,
                    "values_present": count.values_present,
                    "values_carried": count.values_carried if spec.dropped is None else None,
                    "values_elsewhere": count.values_elsewhere,
                    "target": spec.target,
                    "dropped": spec.dropped,
                    "gap": spec.gap,
                    "missed_examples": self.missed_examples.get(spec.path, []),
                }
                for spec, count in self.rows()
            ],
            "out_of_scope": [
                {
                    "prefix": s.prefix,
                    "records": self.out_of_scope.get(s.prefix, 0),
                    "reason": s.reason,
                    "follow": s.follow,
                }
                for s in self.spec.out_of_scope
            ],
            "unknown": dict(sorted(self.unknown.items())),
        }


def measure(pairs: Iterable[tuple[Json, Json]], spec: Spec | None = None) -> Coverage:
    """Coverage over (raw study, Bundle) pairs."""
    spec = spec or load_spec()
    coverage = Coverage(spec)
    for study, bundle in pairs:
        coverage.add(measure_record(study, bundle, spec))
    return coverage


def measure_inputs(
    inputs: list[str], progress: Callable[[int], None] | None = None
) -> Coverage:
    """Convert every API v2 record in `inputs` (files or directories) and measure its fields;
    `progress(n)` is told each time n more records are done."""
    coverage = Coverage(load_spec())
    for name in inputs:
        for path in input_files(Path(name)):
            if path.suffix.lower() not in {".json", ".ndjson", ".jsonl"}:
                coverage.failed.append(f"{path}: not ClinicalTrials.gov API v2 JSON (skipped)")
                continue
            try:
                text = decode_input(path.read_bytes(), str(path))
            except (OSError, InputError) as error:
                coverage.failed.append(f"{path}: cannot read: {error}")
                continue
            for position, study in raw_studies(text, str(path)):
                if progress is not None:
                    progress(1)
                trial = study_to_trial(study, str(path), position)
                converted = trial if isinstance(trial, RecordError) else convert_or_report(trial)
                if isinstance(converted, RecordError):
                    coverage.failed.append(str(converted))
                    continue
                assert not isinstance(study, RecordError)
                try:
                    coverage.add(measure_record(study, converted.bundle, coverage.spec))
                except Exception as error:  # the record boundary, as in convert
                    where = converted.trial.source.describe()
                    coverage.failed.append(f"{where}: cannot measure: {unexpected(error)}")
    return coverage
