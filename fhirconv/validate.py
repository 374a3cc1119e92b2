"""Validation: every resource against the FHIR R4 structure (fhir.resources R4B models), plus
checks the models cannot make, the same classes of error HAPI FHIR's instance validator reports:
codes on required bindings are allowed ones; element ids are unique within a resource; every UCUM
code (a Quantity's or Coding's with system http://unitsofmeasure.org) is valid UCUM; every R5
cross-version extension is one `mappings/r5-cross-version-extensions.json` defines, used in its
context with the sub-extensions, types and cardinalities R5 gives the element; in a bundle,
resource ids are unique, requests match their resources, every fullUrl agrees with its resource's
type and id, and every reference resolves to an entry by the FHIR bundle resolution rules.

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
from fhirconv.ucum import is_valid_ucum

Json = dict[str, Any]
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
UCUM = "http://unitsofmeasure.org"
# A RESTful fullUrl: `<base>/Type/id` (optionally `/_history/v`); its base resolves relative refs.
_RESTFUL = re.compile(
    r"^(?P<base>(?:https?://\S+?)?)/?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)


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


def validate_resource(
    resource: Json, label: str | None = None, *, full: bool = False
) -> list[Issue]:
    """Structure (R4B model), id syntax and required bindings of one resource. The model is
    skipped when `fhir.proves_valid` shows it would accept the resource (`full`: never)."""
    return _checked_resource(resource, label or _label(resource, "resource"), full)[0]


def _checked_resource(
    resource: Json, label: str, full: bool
) -> tuple[list[Issue], list[tuple[str, str]] | None]:
    """`validate_resource`'s issues and the (path, reference) pairs of the resource, found on
    the same walk (None when the resource type is unknown and nothing was walked)."""
    issues: list[Issue] = []
    try:
        fhir.model_class(str(resource.get("resourceType")))
    except (KeyError, ValueError, AttributeError):
        unknown = Issue(
            "error",
            label,
            "resourceType",
            f"unknown resource type {resource.get('resourceType')!r}",
        )
        return [unknown], None
    if full or not fhir.proves_valid(resource):
        try:
            fhir.parse_resource(resource)
        except fhir.ValidationError as error:
            for detail in error.errors():
                path = _path(detail["loc"])
                issues.append(Issue("error", label, path, detail["msg"]))
    if "id" in resource and not _ID.match(str(resource["id"])):
        issues.append(Issue("error", label, "id", f"invalid id {resource['id']!r}"))
    checks = _ElementChecks(label)
    issues += checks.run(resource)
    return issues, checks.references


class _ElementChecks:
    """The checks the models cannot make, in one walk over the resource (nested resources
    excluded): required bindings on every primitive, then unique element ids, UCUM codes, R5
    cross-version extensions and rng-2 on every element — reported in that order."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bindings: list[Issue] = []
        self.element_ids: list[Issue] = []
        self.ucum: list[Issue] = []
        self.cross_version: list[Issue] = []
        self.ranges: list[Issue] = []
        self.first_id_at: dict[str, str] = {}
        self.references: list[tuple[str, str]] = []  # (path, reference), for the bundle checks

    def run(self, resource: Json) -> list[Issue]:
        self.cross_version += _cross_version_issues_of(resource, "", resource, self.label)
        self._walk(resource, "", str(resource.get("resourceType")), resource)
        return self.bindings + self.element_ids + self.ucum + self.cross_version + self.ranges

    def _walk(self, value: Any, path: str, plain: str, resource: Json) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                if key in {"resource", "contained"}:
                    continue  # nested resources are validated on their own
                child_path = f"{path}.{key}" if path else key
                child_plain = f"{plain}.{key}"
                if isinstance(child, dict):
                    self._element(child_path, child, resource)
                elif not isinstance(child, list):
                    if key == "reference" and isinstance(child, str):
                        self.references.append((child_path, child))
                    self._binding(child_path, child_plain, child)
                    continue
                self._walk(child, child_path, child_plain, resource)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                child_path = f"{path}[{index}]"
                if isinstance(child, dict):
                    self._element(child_path, child, resource)
                elif not isinstance(child, list):
                    self._binding(child_path, plain, child)
                    continue
                self._walk(child, child_path, plain, resource)

    def _binding(self, path: str, plain: str, value: Any) -> None:
        if not isinstance(value, str):
            return
        allowed = _allowed_codes(plain)
        if allowed is not None and value not in allowed:
            self.bindings.append(
                Issue(
                    "error",
                    self.label,
                    path,
                    f"code {value!r} is not allowed (required binding: {', '.join(allowed)})",
                )
            )

    def _element(self, path: str, element: Json, resource: Json) -> None:
        label = self.label
        element_id = element.get("id")
        if isinstance(element_id, str):
            if element_id in self.first_id_at:
                self.element_ids.append(
                    Issue(
                        "error",
                        label,
                        f"{path}.id",
                        f"element id {element_id!r} is not unique within the resource "
                        f"(also at {self.first_id_at[element_id]})",
                    )
                )
            else:
                self.first_id_at[element_id] = f"{path}.id"
        if element.get("system") == UCUM and "code" in element:
            code = element["code"]
            if not isinstance(code, str) or not is_valid_ucum(code):
                self.ucum.append(
                    Issue("error", label, f"{path}.code", f"{code!r} is not a valid UCUM code")
                )
        if "extension" in element:
            self.cross_version += _cross_version_issues_of(element, path, resource, label)
        range_issue = _range_issue(element, path, label)
        if range_issue is not None:
            self.ranges.append(range_issue)


def _range_issue(element: Json, path: str, label: str) -> Issue | None:
    """FHIR rng-2, low <= high, which HAPI's validator can check only when both ends share a unit
    (it has no UCUM conversion): a Range with ends in two units is an error there, and here."""
    low, high = element.get("low"), element.get("high")
    if not (isinstance(low, dict) and isinstance(high, dict)):
        return None
    if not (
        isinstance(low.get("value"), int | float) and isinstance(high.get("value"), int | float)
    ):
        return None
    if (low.get("system"), low.get("code")) != (high.get("system"), high.get("code")):
        return Issue(
            "error",
            label,
            path,
            f"range ends in different units ({low.get('code')!r}, {high.get('code')!r}): "
            "low <= high (rng-2) cannot be checked without unit conversion",
        )
    if low["value"] > high["value"]:
        return Issue("error", label, path, "range low is above high (rng-2)")
    return None


@cache
def _cross_version_table() -> tuple[str, dict[str, Json]]:
    table = load_json("r5-cross-version-extensions.json")
    return str(table["url_prefix"]), dict(table["extensions"])


def _value_type(extension: Json) -> str | None:
    """The type suffix of an extension's value[x] ("valueUnsignedInt" → "UnsignedInt")."""
    key = next((k for k in extension if k.startswith("value") and len(k) > 5), None)
    return key[5:] if key else None


def _type_allowed(value_type: str, types: list[str]) -> bool:
    """`types` as R5 writes them ("unsignedInt", "Reference(Group)"); JSON capitalises them."""
    return any(value_type.lower() == t.split("(", 1)[0].lower() for t in types)


def _cross_version_issues_of(element: Json, path: str, resource: Json, label: str) -> list[Issue]:
    """R5 cross-version extensions on one element against their R5 definitions (see the table's
    `source`); `path` "" is the resource itself."""
    prefix, table = _cross_version_table()
    issues: list[Issue] = []
    for index, extension in enumerate(element.get("extension") or []):
        if not isinstance(extension, dict):
            continue
        url = extension.get("url")
        if not isinstance(url, str) or not url.startswith(prefix):
            continue
        where = f"{path}.extension[{index}]" if path else f"extension[{index}]"
        issues += _one_cross_version(
            url, table.get(url[len(prefix) :]), extension, path, resource, label, where
        )
    return issues


def _one_cross_version(
    url: str,
    spec: Json | None,
    extension: Json,
    parent_path: str,
    resource: Json,
    label: str,
    where: str,
) -> list[Issue]:
    if spec is None:
        return [Issue("error", label, where, f"no R5 cross-version definition for {url!r}")]
    issues = []
    if parent_path or resource.get("resourceType") != spec["context"]:
        issues.append(Issue("error", label, where, f"{url!r} is allowed only on {spec['context']}"))
    value_type = _value_type(extension)
    parts: dict[str, Json] | None = spec.get("parts")
    if parts is None:
        if extension.get("extension"):
            issues.append(Issue("error", label, where, f"{url!r} has no sub-extensions"))
        if value_type is None or not _type_allowed(value_type, spec["types"]):
            issues.append(
                Issue("error", label, where, f"{url!r} needs a value of type {spec['types']}")
            )
        return issues
    if value_type is not None:
        issues.append(Issue("error", label, where, f"{url!r} is complex: it has no value[x]"))
    counts: dict[str, int] = {}
    for index, part in enumerate(extension.get("extension") or []):
        name = part.get("url") if isinstance(part, dict) else None
        part_where = f"{where}.extension[{index}]"
        if name not in parts:
            issues.append(
                Issue("error", label, part_where, f"sub-extension {name!r} is not defined by {url}")
            )
            continue
        counts[name] = counts.get(name, 0) + 1
        part_type = _value_type(part)
        if part_type is None or not _type_allowed(part_type, parts[name]["types"]):
            issues.append(
                Issue(
                    "error",
                    label,
                    part_where,
                    f"sub-extension {name!r} needs a value of type {parts[name]['types']}",
                )
            )
    for name, part_spec in parts.items():
        count = counts.get(name, 0)
        if count < part_spec["min"] or (part_spec["max"] != "*" and count > int(part_spec["max"])):
            issues.append(
                Issue(
                    "error",
                    label,
                    where,
                    f"sub-extension {name!r} occurs {count} times; R5 allows "
                    f"{part_spec['min']}..{part_spec['max']}",
                )
            )
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


_ALLOWED_BY_PATH: dict[str, tuple[str, ...] | None] = {}
_REMEMBERED_PATHS = 20_000  # element paths are few; an adversarial document cannot grow it past


def _allowed_codes(plain: str) -> tuple[str, ...] | None:
    """The codes a required binding allows at the index-free path `plain`, if one applies."""
    if plain in _ALLOWED_BY_PATH:
        return _ALLOWED_BY_PATH[plain]
    exact, suffixes = _bindings()
    allowed = exact.get(plain)
    if allowed is None:
        allowed = next((codes for end, codes in suffixes if plain.endswith(end)), None)
    if len(_ALLOWED_BY_PATH) < _REMEMBERED_PATHS:
        _ALLOWED_BY_PATH[plain] = allowed
    return allowed


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


def _full_url_issue(full_url: str, resource: Json, label: str) -> Issue | None:
    """A RESTful fullUrl must name the entry's own resource type and id (FHIR R4 Bundle, bdl-8 and
    "fullUrl SHALL NOT disagree with the id in the resource")."""
    if full_url.startswith(("urn:uuid:", "urn:oid:")):
        return None
    match = _RESTFUL.match(full_url)
    if match is None:
        return Issue("error", label, "fullUrl", f"fullUrl {full_url!r} is neither urn nor Type/id")
    if (match["type"], match["id"]) != (resource.get("resourceType"), resource.get("id")):
        return Issue(
            "error",
            label,
            "fullUrl",
            f"fullUrl {full_url!r} disagrees with the resource's type and id",
        )
    return None


def _resolve(reference: str, from_full_url: str | None) -> str:
    """The absolute URL a reference means inside a bundle (FHIR R4 §3.3.1.4 "Resolving references
    in Bundles"): absolute URLs and urns stand as they are; a relative `Type/id` takes the base of
    the referring entry's fullUrl when that is RESTful, and stays relative otherwise."""
    if ":" in reference.split("/", 1)[0]:
        return reference
    match = _RESTFUL.match(from_full_url or "")
    if match and match["base"]:
        return f"{match['base']}/{reference}"
    return reference


def validate_bundle(bundle: Json, *, full: bool = False) -> list[Issue]:
    """All resources of a Bundle, the Bundle itself, and the bundle-level checks (`full`: every
    resource through its model, see `validate_resource`)."""
    issues: list[Issue] = []
    if bundle.get("resourceType") != "Bundle":
        return [Issue("error", _label(bundle, "resource"), "resourceType", "not a Bundle")]
    entries = bundle.get("entry") or []
    shell = {k: v for k, v in bundle.items() if k != "entry"}
    issues += validate_resource(shell, "Bundle", full=full)
    full_urls: set[str] = set()
    seen_ids: dict[str, str | None] = {}  # Type/id → that entry's fullUrl
    references: dict[int, list[tuple[str, str]] | None] = {}  # by entry index
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        where = f"Bundle.entry[{index}]"
        if not isinstance(resource, dict):
            issues.append(Issue("error", where, "resource", "entry has no resource"))
            continue
        label = _label(resource, where)
        found, references[index] = _checked_resource(resource, label, full)
        issues += found
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url:
            full_urls.add(full_url)
            problem = _full_url_issue(full_url, resource, label)
            if problem:
                issues.append(problem)
        if resource.get("id"):
            type_id = f"{resource.get('resourceType')}/{resource['id']}"
            if type_id in seen_ids:
                issues.append(Issue("error", label, "id", "two entries have the same type and id"))
            seen_ids[type_id] = full_url if isinstance(full_url, str) else None
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
        label = _label(resource, f"Bundle.entry[{index}]")
        own_full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        walked = references.get(index)
        for path, target in _references(resource) if walked is None else walked:
            if target.startswith("#"):
                continue
            resolved = _resolve(target, own_full_url)
            if resolved in full_urls:
                continue
            if target in seen_ids:
                # Found by type and id, but not by the bundle rules: a strict reader (the HL7
                # validator, a FHIR server resolving a document) cannot link the two.
                issues.append(
                    Issue(
                        "warning",
                        label,
                        path,
                        f"reference {target!r} matches an entry by type and id, but its fullUrl "
                        f"{seen_ids[target]!r} is not {resolved!r} (bundle resolution rules)",
                    )
                )
                continue
            issues.append(
                Issue(
                    "error",
                    label,
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
