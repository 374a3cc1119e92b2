"""The one place that imports `fhir.resources`, so the FHIR release is chosen once.

fhir.resources 7+ defaults to R5; its `R4B` package has the same shapes as R4 for every resource
type fhirconv writes (ResearchStudy, Group, PlanDefinition, Organization, Practitioner,
PractitionerRole, Location, Provenance, Bundle), so R4B models validate our R4 content.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

FHIR_VERSION = "4.0.1"

__all__ = ["FHIR_VERSION", "ValidationError", "model_class", "parse_resource", "proves_valid"]


@cache
def model_class(resource_type: str) -> type[BaseModel]:
    """The R4B model for `resource_type`; KeyError for a type FHIR does not define."""
    cls: type[BaseModel] = get_fhir_model_class(resource_type)
    return cls


def parse_resource(resource: dict[str, Any]) -> BaseModel:
    """Validate a resource's JSON against its R4B model (raises pydantic ValidationError)."""
    return model_class(str(resource.get("resourceType"))).model_validate(resource)


# --- a quick proof of validity ------------------------------------------------------------------
#
# Validating through the models costs more than mapping a study. `proves_valid` walks the JSON
# against the same models' field tables instead, and accepts only what it can prove the models
# accept: known elements of the expected JSON type, primitives in a conservative subset of their
# formats (ASCII codes, ids and URIs; strings with a visible character; plain dates; integers in
# range), required elements present, at most one value[x]. Anything else — an unknown element, a
# null, an empty container, a date with a time, a `_primitive` extension, a contained resource,
# a model with validators of its own — is "not proven", and the caller validates through the
# model, which then reports exactly what it always did. So the quick path can only skip the
# model for content the model would accept; tests/test_fast_validation.py checks that on the
# corpus and on mutated bundles.

_VISIBLE_TEXT = re.compile(r"[^\ud800-\udfff]*[!-~][^\ud800-\udfff]*", re.DOTALL)
_ASCII_CODE = re.compile(r"[!-~]+(?: [!-~]+)*")
_ASCII_TOKEN = re.compile(r"[!-~]+")
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PLAIN_DATE = re.compile(r"[12]\d{3}(?:-(?:0[1-9]|1[0-2])(?:-\d{2})?)?")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
# An http(s) URL the URL parser certainly takes: DNS labels (no punycode, a top-level label
# starting with a letter, so never read as an IPv4 address), no port, RFC 3986 path characters.
_HTTP_URL = re.compile(
    r"https?://(?!(?i:xn--))[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.(?!(?i:xn--))[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z][A-Za-z0-9-]*"
    r"(?:[/?#](?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#]|%[0-9A-Fa-f]{2})*)?"
)
_INSTANT = re.compile(
    r"[12]\d{3}-(?:0[1-9]|1[0-2])-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
    r"(?:Z|[+-](?:(?:0\d|1[0-3]):[0-5]\d|14:00))"
)
_INT_MAX = 2147483647
_STANDARD_VALIDATORS = {"reject_null_complex_elements", "validate_after_model_construction"}


def _plain_date(value: Any) -> bool:
    if not isinstance(value, str) or not _PLAIN_DATE.fullmatch(value):
        return False
    if len(value) == 10:
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
    return True


def _instant(value: Any) -> bool:
    if not isinstance(value, str) or not _INSTANT.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _http_url(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 2000 and _HTTP_URL.fullmatch(value) is not None


def _int_between(low: int) -> Callable[[Any], bool]:
    return lambda value: type(value) is int and low <= value <= _INT_MAX


def _matching(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and pattern.fullmatch(value) is not None


def _decimal(value: Any) -> bool:
    return type(value) in (int, float) and _DECIMAL.fullmatch(str(value)) is not None


_PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "String": _matching(_VISIBLE_TEXT),
    "Markdown": _matching(_VISIBLE_TEXT),
    "Code": _matching(_ASCII_CODE),
    "Id": _matching(_ID),
    "Uri": _matching(_ASCII_TOKEN),
    "Canonical": _matching(_ASCII_TOKEN),
    "Date": _plain_date,
    "DateTime": _plain_date,
    "Instant": _instant,
    "Url": _http_url,
    "UnsignedInt": _int_between(0),
    "PositiveInt": _int_between(1),
    "Integer": _int_between(-_INT_MAX - 1),
    "Decimal": _decimal,
}


@dataclass(frozen=True)
class _Element:
    many: bool
    model: type[BaseModel] | None  # a complex type
    check: Callable[[Any], bool] | None  # a primitive; neither: not provable


@dataclass(frozen=True)
class _Table:
    resource_type: str
    provable: bool  # no validators beyond the standard ones
    elements: dict[str, _Element]  # by JSON name
    required: tuple[str, ...]
    choices: tuple[tuple[frozenset[str], bool], ...]  # (JSON names, one required)


def _strip_optional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _element(annotation: Any) -> _Element:
    kind = _strip_optional(annotation)
    many = typing.get_origin(kind) is list
    if many:
        (kind,) = typing.get_args(kind)
        kind = _strip_optional(kind)
    if kind is bool:
        return _Element(many, None, lambda value: type(value) is bool)
    if typing.get_origin(kind) is typing.Annotated:
        metadata = typing.get_args(kind)[1:]
        names = [type(m).__name__ for m in metadata]
        if len(names) == 1 and names[0] in _PRIMITIVES:
            return _Element(many, None, _PRIMITIVES[names[0]])
        return _Element(many, None, None)
    if isinstance(kind, type) and kind.__name__ in _PRIMITIVES:
        return _Element(many, None, _PRIMITIVES[kind.__name__])
    model_of = getattr(kind, "get_model_klass", None)
    if model_of is not None:
        model: type[BaseModel] = model_of()
        if model.__name__ not in ("Resource", "DomainResource", "FHIRPrimitiveExtension"):
            return _Element(many, model, None)
    return _Element(many, None, None)


@cache
def _table(model: type[BaseModel]) -> _Table:
    decorators = model.__pydantic_decorators__
    provable = (
        set(decorators.model_validators) <= _STANDARD_VALIDATORS
        and not decorators.field_validators
        and not decorators.validators
        and not decorators.root_validators
    )
    elements: dict[str, _Element] = {}
    required: list[str] = []
    choices: dict[str, tuple[list[str], bool]] = {}
    for name, field in model.model_fields.items():
        json_name = field.alias or name
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if json_name.startswith("_") or name == "fhir_comments":
            continue  # primitive extensions and comments: never proven, so never accepted
        elements[json_name] = _element(field.annotation)
        if extra.get("element_required") or field.is_required():
            required.append(json_name)
        if extra.get("one_of_many"):
            group = choices.setdefault(str(extra["one_of_many"]), ([], False))
            group[0].append(json_name)
            choices[str(extra["one_of_many"])] = (
                group[0],
                group[1] or extra.get("one_of_many_required") is True,
            )
    return _Table(
        str(getattr(model, "__resource_type__", "")),
        provable,
        elements,
        tuple(required),
        tuple((frozenset(names), needed) for names, needed in choices.values()),
    )


def _proves(value: Any, model: type[BaseModel], top: bool) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    table = _table(model)
    if not table.provable:
        return False
    for key, child in value.items():
        if key == "resourceType":
            if not top or child != table.resource_type:
                return False
            continue
        element = table.elements.get(key)
        if element is None:
            return False
        items = child if element.many else (child,)
        if element.many and (type(child) is not list or not child):
            return False
        for item in items:
            if element.model is not None:
                if not _proves(item, element.model, False):
                    return False
            elif element.check is None or not element.check(item):
                return False
    if any(key not in value for key in table.required):
        return False
    for names, needed in table.choices:
        count = sum(1 for key in value if key in names)  # an element has few keys, [x] many
        if count > 1 or (needed and count == 0):
            return False
    return True


def proves_valid(resource: dict[str, Any]) -> bool:
    """Whether the resource is certainly valid for its R4B model (False: not proven — validate
    it through the model with `parse_resource`)."""
    try:
        model = model_class(str(resource.get("resourceType")))
    except (KeyError, ValueError, AttributeError):
        return False
    return _proves(resource, model, True)
