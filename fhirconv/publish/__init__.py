"""Publishing FHIR transaction Bundles to a server: the only part of fhirconv that speaks HTTP.

    client.py   FhirClient.post_transaction(bundle) -> TransactionResult (entries classified
                created / updated / unchanged), over one shared, injectable httpx.Client
    retry.py    backoff with full jitter, Retry-After, bounded attempts and deadline; never
                resends a non-idempotent bundle; TLS failures named, never retried; retry
                causes counted
    auth.py     bearer token, HTTP basic, SMART Backend Services (httpx.Auth)
    outcome.py  OperationOutcome -> plain-language issues tied to study and entry
    report.py   StudyResult / PushSummary and their printable lines
    push.py     push_bundles(): many bundles, N in flight, failures isolated per study;
                StopRule: a dead server, 401/403 or TLS failure stops the push early
    bulk.py     push_ndjson(): resource NDJSON in batched transactions, dependency layers,
                N in flight, a journal to resume from
    bundles.py  finding and reading bundle files (JSON, NDJSON, directories)
"""

from __future__ import annotations

from fhirconv.publish.auth import (
    AuthConfigError,
    AuthError,
    BasicAuth,
    BearerTokenAuth,
    Secret,
    SmartBackendAuth,
)
from fhirconv.publish.bulk import BulkSummary, import_operation, push_ndjson, resource_files
from fhirconv.publish.client import (
    EntryResult,
    FhirClient,
    Timeouts,
    TransactionRejected,
    TransactionResult,
    classify_entry,
    is_idempotent,
)
from fhirconv.publish.outcome import Issue, IssueReport, explain, parse_operation_outcome
from fhirconv.publish.push import StopRule, push_bundles
from fhirconv.publish.report import PushSummary, StudyResult
from fhirconv.publish.retry import OutcomeUnknown, RetriesExhausted, RetryPolicy, TlsFailure

__all__ = [
    "AuthConfigError",
    "AuthError",
    "BasicAuth",
    "BearerTokenAuth",
    "BulkSummary",
    "EntryResult",
    "FhirClient",
    "Issue",
    "IssueReport",
    "OutcomeUnknown",
    "PushSummary",
    "RetriesExhausted",
    "RetryPolicy",
    "Secret",
    "SmartBackendAuth",
    "StopRule",
    "StudyResult",
    "Timeouts",
    "TlsFailure",
    "TransactionRejected",
    "TransactionResult",
    "classify_entry",
    "explain",
    "import_operation",
    "is_idempotent",
    "parse_operation_outcome",
    "push_bundles",
    "push_ndjson",
    "resource_files",
]
