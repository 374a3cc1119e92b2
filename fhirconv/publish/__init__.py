"""Publishing FHIR transaction Bundles to a server: the only part of fhirconv that speaks HTTP.

client.py   FhirClient.post_transaction(bundle) -> TransactionResult (entries classified
            created / updated / unchanged), over one shared, injectable httpx.Client
retry.py    backoff with full jitter, Retry-After, bounded attempts and deadline; never
            resends a non-idempotent bundle
auth.py     bearer token, HTTP basic, SMART Backend Services (httpx.Auth)
outcome.py  OperationOutcome -> plain-language issues tied to study and entry
report.py   StudyResult / PushSummary and their printable lines
push.py     push_bundles(): many bundles, N in flight, failures isolated per study
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
from fhirconv.publish.push import push_bundles
from fhirconv.publish.report import PushSummary, StudyResult
from fhirconv.publish.retry import OutcomeUnknown, RetriesExhausted, RetryPolicy

__all__ = [
    "AuthConfigError",
    "AuthError",
    "BasicAuth",
    "BearerTokenAuth",
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
    "StudyResult",
    "Timeouts",
    "TransactionRejected",
    "TransactionResult",
    "classify_entry",
    "explain",
    "is_idempotent",
    "parse_operation_outcome",
    "push_bundles",
]
