"""OperationOutcome → plain-language lines, attributed to a study and, when possible, an entry.

A FHIR server that refuses a transaction answers with an OperationOutcome; which entry was at
fault is not a structured field, so we look for it where servers put it:

* ``Bundle.entry[3]`` (HAPI writes this in ``diagnostics``; ``expression``/``location`` too);
* the entry's ``fullUrl`` (``urn:uuid:…``) quoted in the text;
* the entry's ``Type/id`` quoted in the text (only when that ``Type/id`` is in the bundle).

HAPI prefixes its messages with an error number (``HAPI-0541: …``); we keep it apart as
``server_code`` so the message a user reads starts with words.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Plain words for the OperationOutcome issue-type codes a user is likely to meet.
_CODE_WORDS: dict[str, str] = {
    "invalid": "invalid content",
    "structure": "malformed resource",
    "required": "required element missing",
    "value": "invalid value",
    "invariant": "rule violated",
    "security": "not permitted",
    "login": "login required",
    "unknown": "unknown user",
    "expired": "session expired",
    "forbidden": "forbidden",
    "suppressed": "suppressed",
    "processing": "processing failed",
    "not-supported": "not supported by the server",
    "duplicate": "duplicate",
    "multiple-matches": "matches several resources",
    "not-found": "not found",
    "deleted": "deleted",
    "too-long": "too long",
    "code-invalid": "invalid code",
    "extension": "unacceptable extension",
    "too-costly": "too costly for the server",
    "business-rule": "business rule violated",
    "conflict": "conflict (edited concurrently?)",
    "transient": "temporary server problem",
    "lock-error": "resource locked",
    "no-store": "server storage unavailable",
    "exception": "server error",
    "timeout": "server timed out",
    "incomplete": "incomplete results",
    "throttled": "server is throttling requests",
    "informational": "information",
}

_SEVERITY_RANK = {"fatal": 0, "error": 1, "warning": 2, "information": 3}

_ENTRY_INDEX = re.compile(r"Bundle\.entry\[(\d+)\]")
_SERVER_CODE = re.compile(r"^\s*((?:HAPI-\d+:\s*)+)")
# "specified in path: ResearchStudy.sponsor", expression "ResearchStudy.status"
_TYPE_PATH = re.compile(r"(?<![\w./])([A-Z][A-Za-z]+)\.[a-z]")


@dataclass(frozen=True)
class Issue:
    """One ``OperationOutcome.issue``, flattened."""

    severity: str
    code: str
    diagnostics: str | None = None
    details: str | None = None
    expression: tuple[str, ...] = ()
    location: tuple[str, ...] = ()
    storage_codes: tuple[str, ...] = ()  # details.coding codes (e.g. HAPI's SUCCESSFUL_UPDATE)

    @property
    def is_error(self) -> bool:
        return self.severity in ("fatal", "error")


@dataclass(frozen=True)
class IssueReport:
    """An issue explained for a person: which study, which entry, what went wrong."""

    study: str
    severity: str
    code: str
    message: str
    server_code: str | None = None
    where: str | None = None  # FHIRPath expression / location, when the server gave one
    entry_index: int | None = None
    entry_ref: str | None = None  # "Organization/org-ab12"

    @property
    def entry_label(self) -> str | None:
        if self.entry_index is None:
            return None
        label = f"entry {self.entry_index}"
        return f"{label} {self.entry_ref}" if self.entry_ref else label

    def text(self) -> str:
        """One line without the study id: ``invalid content: … at X (entry 3 Organization/o)``."""
        words = _CODE_WORDS.get(self.code, self.code or "problem")
        line = self.message if self.message else words
        if self.message and words.lower() not in self.message.lower():
            line = f"{words}: {self.message}"
        if self.severity not in ("error", "fatal"):
            line = f"{self.severity}: {line}"
        if self.where and self.where not in line:
            line += f" at {self.where}"
        if self.entry_label:
            line += f" ({self.entry_label})"
        return line

    def __str__(self) -> str:
        return f"{self.study}: {self.text()}"


def _codings(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        codings = value.get("coding")
        if isinstance(codings, list):
            return [c for c in codings if isinstance(c, Mapping)]
    return []


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def parse_operation_outcome(resource: Any) -> list[Issue]:
    """The issues of an OperationOutcome (anything else, or a malformed one → ``[]``)."""
    if not isinstance(resource, Mapping) or resource.get("resourceType") != "OperationOutcome":
        return []
    raw = resource.get("issue")
    if not isinstance(raw, list):
        return []
    issues: list[Issue] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        details = item.get("details")
        details_text: str | None = None
        if isinstance(details, Mapping):
            text = details.get("text")
            if isinstance(text, str):
                details_text = text
            else:
                displays = [c.get("display") for c in _codings(details)]
                shown = [d for d in displays if isinstance(d, str)]
                details_text = "; ".join(shown) or None
        diagnostics = item.get("diagnostics")
        issues.append(
            Issue(
                severity=str(item.get("severity") or "error"),
                code=str(item.get("code") or "unknown"),
                diagnostics=diagnostics if isinstance(diagnostics, str) else None,
                details=details_text,
                expression=_strings(item.get("expression")),
                location=_strings(item.get("location")),
                storage_codes=tuple(
                    str(c["code"]) for c in _codings(details) if isinstance(c.get("code"), str)
                ),
            )
        )
    return issues


def entry_ref(entry: Any) -> str | None:
    """``Type/id`` of a transaction entry: from ``request.url`` (PUT), else from the resource."""
    if not isinstance(entry, Mapping):
        return None
    request = entry.get("request")
    if isinstance(request, Mapping):
        url = request.get("url")
        if isinstance(url, str) and "?" not in url and url.count("/") == 1:
            return url
    resource = entry.get("resource")
    if isinstance(resource, Mapping):
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if isinstance(rtype, str):
            return f"{rtype}/{rid}" if isinstance(rid, str) else rtype
    return None


def _entries(bundle: Mapping[str, Any] | None) -> Sequence[Any]:
    if bundle is None:
        return ()
    entries = bundle.get("entry")
    return entries if isinstance(entries, list) else ()


def locate_entry(texts: Sequence[str], bundle: Mapping[str, Any] | None) -> int | None:
    """Index of the bundle entry the texts point at, or ``None`` if they don't name one."""
    entries = _entries(bundle)
    for text in texts:
        match = _ENTRY_INDEX.search(text)
        if match:
            index = int(match.group(1))
            if not entries or index < len(entries):
                return index
    joined = "\n".join(texts)
    for index, entry in enumerate(entries):
        full_url = entry.get("fullUrl") if isinstance(entry, Mapping) else None
        if isinstance(full_url, str) and full_url and full_url in joined:
            return index
    for index, entry in enumerate(entries):
        ref = entry_ref(entry)
        if ref and "/" in ref and re.search(rf"(?<![\w/-]){re.escape(ref)}(?![\w-])", joined):
            return index
    # A path into a resource type that only one entry has: that entry.
    for match in _TYPE_PATH.finditer(joined):
        rtype = match.group(1)
        if rtype == "Bundle":
            continue
        of_type = [i for i, e in enumerate(entries) if _resource_type(e) == rtype]
        if len(of_type) == 1:
            return of_type[0]
    return None


def _resource_type(entry: Any) -> str | None:
    if isinstance(entry, Mapping):
        resource = entry.get("resource")
        if isinstance(resource, Mapping) and isinstance(resource.get("resourceType"), str):
            return str(resource["resourceType"])
    return None


def explain(
    issues: Sequence[Issue], bundle: Mapping[str, Any] | None, study: str
) -> list[IssueReport]:
    """Plain-language reports for the issues, most severe first, each tied to study and entry."""
    entries = _entries(bundle)
    reports: list[IssueReport] = []
    for issue in sorted(issues, key=lambda i: _SEVERITY_RANK.get(i.severity, 9)):
        message = issue.diagnostics or issue.details or ""
        server_code: str | None = None
        match = _SERVER_CODE.match(message)
        if match:
            server_code = " ".join(re.findall(r"HAPI-\d+", match.group(1)))
            message = message[match.end() :]
        message = " ".join(message.split())
        if issue.details and issue.diagnostics and issue.details not in message:
            message = f"{message} ({issue.details})" if message else issue.details
        texts = [t for t in (issue.diagnostics, issue.details) if t]
        texts.extend(issue.expression)
        texts.extend(issue.location)
        index = locate_entry(texts, bundle)
        ref = entry_ref(entries[index]) if index is not None and index < len(entries) else None
        where = (issue.expression or issue.location or (None,))[0]
        reports.append(
            IssueReport(
                study=study,
                severity=issue.severity,
                code=issue.code,
                message=message,
                server_code=server_code,
                where=where,
                entry_index=index,
                entry_ref=ref,
            )
        )
    return reports


def explain_http_error(
    status_code: int, reason: str, body: Any, bundle: Mapping[str, Any] | None, study: str
) -> list[IssueReport]:
    """Reports for a refused request: the OperationOutcome if there is one, else the status."""
    issues = [i for i in parse_operation_outcome(body) if i.severity != "information"]
    if not issues:
        issues = parse_operation_outcome(body)
    if issues:
        return explain(issues, bundle, study)
    return [
        IssueReport(
            study=study,
            severity="error",
            code=_code_for_status(status_code),
            message=f"the server answered HTTP {status_code} {reason}".rstrip(),
        )
    ]


def _code_for_status(status_code: int) -> str:
    if status_code in (401,):
        return "login"
    if status_code == 403:
        return "forbidden"
    if status_code == 404:
        return "not-found"
    if status_code in (409, 412):
        return "conflict"
    if status_code == 429:
        return "throttled"
    if status_code >= 500:
        return "exception"
    return "processing"
