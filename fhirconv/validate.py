"""Validation: every resource against the FHIR R4 structure (fhir.resources R4B models), plus
bundle-level checks the models cannot make: every reference resolves inside the bundle, codes on
required bindings are allowed ones, ids are unique, requests match their resources.

Returns issues; never prints and never raises for invalid content. `validate_files` reads
bundles or resources from disk for `fhirconv validate`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from fhirconv import fhir
from fhirconv.errors import InputError, unexpected
from fhirconv.jsonio import json_documents
from fhirconv.tables import load_json

Json = dict[str, Any]
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Issue:
    severity: Literal["error", "warning"]
    resource: str  # "ResearchStudy/NCT05765006", or "Bundle" / "entry[3]" when there is no id
    path: str  # element path within the resource, e.g. "characteristic[2].valueRange.low"
    message: str

    def __str__(self) -> str:
        where = f"{self.resource} {self.path}".strip()
        return f"{self.severity}: {where}: {self.message}"


def _label(resource: Json, fallback: str) -> str:
    if resource.get("resourceType") and resource.get("id"):
        return f"{resource['resourceType']}/{resource['id']}"
    return str(resource.get("resourceType") or fallback)


def validate_resource(resource: Json, label: str | None = None) -> list[Issue]:
    """Structure (R4B model), id syntax and required bindings of one resource."""
    label = label or _label(resource, "resource")
    issues: list[Issue] = []
    try:
        fhir.model_class(str(resource.get("resourceType")))
    except (KeyError, ValueError, AttributeError):
        return [
            Issue(
                "error",
                label,
                "resourceType",
                f"unknown resource type {resource.get('resourceType')!r}",
            )
        ]
    try:
        fhir.parse_resource(resource)
    except fhir.ValidationError as error:
        for detail in error.errors():
            path = _path(detail["loc"])
            issues.append(Issue("error", label, path, detail["msg"]))
    if "id" in resource and not _ID.match(str(resource["id"])):
        issues.append(Issue("error", label, "id", f"invalid id {resource['id']!r}"))
    issues += _binding_issues(resource, label)
    return issues


def _path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


@cache
def _bindings() -> tuple[dict[str, tuple[str, ...]], list[tuple[str, tuple[str, ...]]]]:
    exact: dict[str, tuple[str, ...]] = {}
    suffix: list[tuple[str, tuple[str, ...]]] = []
    for binding in load_json("required-bindings.json")["bindings"]:
        codes = tuple(binding["codes"])
        if "path" in binding:
            exact[binding["path"]] = codes
        else:
            suffix.append(("." + binding["suffix"], codes))
    return exact, suffix


def _leaves(value: Any, path: str, plain: str) -> Iterator[tuple[str, str, Any]]:
    """(indexed path, index-free path, value) of every primitive under `value`."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key in {"resource", "contained"}:
                continue  # nested resources are validated on their own
            yield from _leaves(child, f"{path}.{key}" if path else key, f"{plain}.{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, f"{path}[{index}]", plain)
    else:
        yield path, plain, value


def _binding_issues(resource: Json, label: str) -> list[Issue]:
    exact, suffixes = _bindings()
    issues = []
    for path, plain, value in _leaves(resource, "", str(resource.get("resourceType"))):
        allowed = exact.get(plain)
        if allowed is None:
            allowed = next((codes for end, codes in suffixes if plain.endswith(end)), None)
        if allowed is not None and isinstance(value, str) and value not in allowed:
            issues.append(
                Issue(
                    "error",
                    label,
                    path,
                    f"code {value!r} is not allowed (required binding: {', '.join(allowed)})",
                )
            )
    return issues


def _references(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else key
            if key == "reference" and isinstance(child, str):
                yield child_path, child
            elif key not in {"resource", "contained"}:
                yield from _references(child, child_path)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _references(child, f"{path}[{index}]")


def validate_bundle(bundle: Json) -> list[Issue]:
    """All resources of a Bundle, the Bundle itself, and the bundle-level checks."""
    issues: list[Issue] = []
    if bundle.get("resourceType") != "Bundle":
        return [Issue("error", _label(bundle, "resource"), "resourceType", "not a Bundle")]
    entries = bundle.get("entry") or []
    shell = {k: v for k, v in bundle.items() if k != "entry"}
    issues += validate_resource(shell, "Bundle")
    targets: set[str] = set()
    seen_ids: set[str] = set()
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        where = f"Bundle.entry[{index}]"
        if not isinstance(resource, dict):
            issues.append(Issue("error", where, "resource", "entry has no resource"))
            continue
        label = _label(resource, where)
        issues += validate_resource(resource, label)
        if entry.get("fullUrl"):
            targets.add(str(entry["fullUrl"]))
        if resource.get("id"):
            type_id = f"{resource.get('resourceType')}/{resource['id']}"
            if type_id in seen_ids:
                issues.append(Issue("error", label, "id", "two entries have the same type and id"))
            seen_ids.add(type_id)
            targets.add(type_id)
        request = entry.get("request")
        if bundle.get("type") in {"transaction", "batch"}:
            if not isinstance(request, dict) or not request.get("method") or not request.get("url"):
                issues.append(Issue("error", label, "request", "transaction entry has no request"))
            elif request["method"] == "PUT" and resource.get("id"):
                expected = f"{resource['resourceType']}/{resource['id']}"
                url = str(request["url"])
                if "?" not in url and url != expected:
                    issues.append(
                        Issue("error", label, "request.url", f"PUT {url} does not match {expected}")
                    )
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            continue
        for path, target in _references(resource):
            if target.startswith("#"):
                continue
            if target not in targets:
                issues.append(
                    Issue(
                        "error",
                        _label(resource, f"Bundle.entry[{index}]"),
                        path,
                        f"reference {target!r} does not resolve inside the bundle",
                    )
                )
    return issues


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "error"]


@dataclass(frozen=True)
class CheckedDocument:
    """One JSON document read from disk and its issues; `where` is "file" or "file:line"."""

    where: str
    issues: list[Issue]


def validate_files(paths: list[Path]) -> Iterator[CheckedDocument]:
    """Validate every Bundle or resource in `paths` (JSON, NDJSON, directories of them). A file
    or line that cannot be read, parsed, or holds no resource is a document with one error."""
    for file in _json_files(paths):
        for where, document in _documents(file):
            if isinstance(document, InputError):
                yield CheckedDocument(
                    f"{file}{where}", [Issue("error", str(file), "", f"cannot read: {document}")]
                )
            else:
                yield CheckedDocument(f"{file}{where}", _checked(document, str(file)))


def _checked(document: Json, file: str) -> list[Issue]:
    """The document's issues; a shape no check anticipated is one error, not a traceback."""
    try:
        if document.get("resourceType") == "Bundle":
            return validate_bundle(document)
        return validate_resource(document)
    except RecursionError:
        return [Issue("error", file, "", "nested too deeply to validate")]
    except Exception as error:  # the boundary: one document never stops the others
        return [Issue("error", file, "", f"cannot validate: {unexpected(error)}")]


def _json_files(paths: list[Path]) -> list[Path]:
    result: list[Path] = []
    for path in paths:
        if path.is_dir():
            result += sorted(p for p in path.rglob("*") if p.suffix in {".json", ".ndjson"})
        else:
            result.append(path)
    return result


def _documents(file: Path) -> list[tuple[str, Json | InputError]]:
    """(":line" or "" or "#index", a JSON object or why there is none) for each document: a
    whole-file JSON value, NDJSON lines, or the items of a JSON array (a UTF-8 BOM is allowed)."""
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except OSError as error:
        return [("", InputError(error.strerror or str(error)))]
    except UnicodeDecodeError as error:
        return [("", InputError(f"not UTF-8: byte at offset {error.start}"))]
    found: list[tuple[str, Json | InputError]] = []
    for line, value in json_documents(text):
        where = "" if line is None else f":{line}"
        items = (
            [(f"{where}#{index}", item) for index, item in enumerate(value, 1)]
            if isinstance(value, list)
            else [(where, value)]
        )
        for place, item in items:
            if isinstance(item, dict | InputError):
                found.append((place, item))
            else:
                found.append((place, InputError("not a FHIR resource (a JSON object)")))
    if not found:
        found.append(("", InputError("no resources: the file is empty")))
    return found
