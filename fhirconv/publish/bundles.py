"""Finding and reading the bundles to push: ``NCTxxxxxxxx.json`` files, NDJSON, directories.

A directory stands for the ``*.json`` and ``*.ndjson`` files directly in it (sorted). A
``.ndjson``/``.jsonl`` file holds one Bundle per line; any other file holds one Bundle. A file
or line that cannot be read becomes a ``BundleLoadError`` for that one bundle — the others are
still pushed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhirconv.errors import InputError
from fhirconv.jsonio import parse_json

NDJSON_SUFFIXES = frozenset({".ndjson", ".jsonl"})
BUNDLE_SUFFIXES = frozenset({".json"}) | NDJSON_SUFFIXES
_NCT = re.compile(r"^NCT\d{8}$")


@dataclass(frozen=True)
class BundleSource:
    """Where one bundle comes from: a file, and for NDJSON the (1-based) line."""

    path: Path
    line: int | None = None

    @property
    def label(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else str(self.path)


@dataclass(frozen=True)
class LoadedBundle:
    source: BundleSource
    study: str
    bundle: dict[str, Any]


@dataclass(frozen=True)
class BundleLoadError:
    source: BundleSource
    study: str
    message: str


def discover(sources: Iterable[Path]) -> list[Path]:
    """The bundle files named by ``sources`` (directories expanded); ``InputError`` if missing."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in BUNDLE_SUFFIXES
            )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def _is_ndjson(path: Path) -> bool:
    return path.suffix.lower() in NDJSON_SUFFIXES


def count_bundles(files: Iterable[Path]) -> int:
    """How many bundles ``iter_bundles`` will yield (NDJSON: non-blank lines)."""
    total = 0
    for path in files:
        if _is_ndjson(path):
            try:
                with path.open("rb") as handle:
                    total += sum(1 for line in handle if line.strip())
            except OSError:
                total += 1
        else:
            total += 1
    return total


def study_id(bundle: Mapping[str, Any], source: BundleSource) -> str:
    """The study a bundle is about: the ResearchStudy's NCT id, else its id, else the file."""
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping) or resource.get("resourceType") != "ResearchStudy":
            continue
        identifiers = resource.get("identifier")
        for identifier in identifiers if isinstance(identifiers, list) else []:
            value = identifier.get("value") if isinstance(identifier, Mapping) else None
            if isinstance(value, str) and _NCT.match(value):
                return value
        rid = resource.get("id")
        if isinstance(rid, str) and rid:
            return rid
        request = entry.get("request")
        url = request.get("url") if isinstance(request, Mapping) else None
        if isinstance(url, str) and url.startswith("ResearchStudy/"):
            return url.split("/", 1)[1]
    return _fallback_study(source)


def _fallback_study(source: BundleSource) -> str:
    stem = source.path.stem
    if _NCT.match(stem) and source.line is None:
        return stem
    return source.label


def check_bundle(bundle: Any) -> list[str]:
    """Why this cannot be pushed as a transaction (``[]`` if it can)."""
    if not isinstance(bundle, Mapping) or bundle.get("resourceType") != "Bundle":
        return ["not a FHIR Bundle"]
    problems: list[str] = []
    if bundle.get("type") not in ("transaction", "batch"):
        problems.append(f"Bundle.type is {bundle.get('type')!r}, not 'transaction' or 'batch'")
    entries = bundle.get("entry")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        return [*problems, "Bundle.entry is not a list"]
    for index, entry in enumerate(entries):
        request = entry.get("request") if isinstance(entry, Mapping) else None
        if not isinstance(request, Mapping):
            problems.append(f"entry {index} has no request")
            continue
        if not isinstance(request.get("method"), str) or not isinstance(request.get("url"), str):
            problems.append(f"entry {index} request lacks method or url")
    return problems


def plan(bundle: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(method, url)`` of each entry, as it would be sent."""
    steps: list[tuple[str, str]] = []
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        request = entry.get("request") if isinstance(entry, Mapping) else None
        if isinstance(request, Mapping):
            method = str(request.get("method", "?")).upper()
            url = str(request.get("url", "?"))
            if method == "POST" and request.get("ifNoneExist"):
                url += f" (if none exist: {request['ifNoneExist']})"
            steps.append((method, url))
    return steps


def _parse(text: str | bytes, source: BundleSource) -> LoadedBundle | BundleLoadError:
    try:
        bundle = parse_json(text, source.line or 1)
    except InputError as exc:
        return BundleLoadError(source, _fallback_study(source), str(exc))
    if not isinstance(bundle, dict):
        return BundleLoadError(source, _fallback_study(source), "not a FHIR Bundle")
    return LoadedBundle(source, study_id(bundle, source), bundle)


def iter_bundles(files: Iterable[Path]) -> Iterator[LoadedBundle | BundleLoadError]:
    """Each bundle in ``files``, read lazily (NDJSON line by line)."""
    for path in files:
        try:
            if _is_ndjson(path):
                with path.open("rb") as handle:
                    for number, line in enumerate(handle, start=1):
                        if line.strip():
                            yield _parse(line, BundleSource(path, number))
            else:
                yield _parse(path.read_bytes(), BundleSource(path))
        except OSError as exc:
            source = BundleSource(path)
            yield BundleLoadError(source, _fallback_study(source), f"cannot read: {exc.strerror}")
