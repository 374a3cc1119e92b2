"""The publish layer under faults, with ``httpx.MockTransport`` (no server, no real sleeping)."""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

import fhirconv.cli.server_options as cli_server_options
from fhirconv.cli import app
from fhirconv.errors import ExitCode
from fhirconv.publish import (
    AuthConfigError,
    AuthError,
    BasicAuth,
    BearerTokenAuth,
    FhirClient,
    OutcomeUnknown,
    RetriesExhausted,
    RetryPolicy,
    SmartBackendAuth,
    TransactionRejected,
    classify_entry,
    is_idempotent,
    push_bundles,
)
from fhirconv.publish.auth import CLIENT_ASSERTION_TYPE, AuthOptions, build_auth
from fhirconv.publish.outcome import explain, parse_operation_outcome
from fhirconv.publish.push import StopRule, push_one
from fhirconv.publish.retry import backoff_delay, parse_retry_after, send_with_retry
from tests._publish_bundles import loc_id, nct, study_bundle, with_plain_post, write_bundle

BASE = "https://fhir.test/r4"
TOKEN_URL = "https://auth.test/token"
Handler = Callable[[httpx.Request], httpx.Response]
STORAGE = "https://hapifhir.io/fhir/CodeSystem/hapi-fhir-storage-response-code"


# -- helpers ------------------------------------------------------------------------------------


def transaction_response(request: httpx.Request, code: str = "SUCCESSFUL_UPDATE_AS_CREATE",
                         status: str = "201 Created", version: str = "1") -> httpx.Response:
    """A HAPI-like transaction-response with one entry per request entry."""
    bundle = json.loads(request.content)
    entries = []
    for entry in bundle["entry"]:
        url = entry["request"]["url"]
        ref = url if entry["request"]["method"] == "PUT" else f"{url}/generated-1"
        entries.append({"response": {
            "status": status, "location": f"{ref}/_history/{version}", "etag": f'W/"{version}"',
            "outcome": {"resourceType": "OperationOutcome", "issue": [{
                "severity": "information", "code": "informational",
                "details": {"coding": [{"system": STORAGE, "code": code}]}}]},
        }})
    return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response",
                                     "entry": entries})


def outcome(diagnostics: str, code: str = "processing", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics, **extra}]}


class Script:
    """A MockTransport handler that answers from a list, then with a default, recording calls."""

    def __init__(self, *steps: httpx.Response | Exception | Handler,
                 default: Handler = transaction_response) -> None:
        self.steps = list(steps)
        self.default = default
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            step = self.steps.pop(0) if self.steps else self.default
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(request)


def client_for(handler: Handler, sleeps: list[float] | None = None, **kwargs: Any) -> FhirClient:
    recorded = sleeps if sleeps is not None else []
    return FhirClient(BASE, transport=httpx.MockTransport(handler), sleep=recorded.append,
                      rng=random.Random(7), **kwargs)


def _cli(*args: str) -> list[str]:
    from typer.main import get_command

    command = get_command(app)
    is_group = hasattr(command, "commands")
    return ["push", *args] if is_group else [*args]


@pytest.fixture
def bundle() -> dict[str, Any]:
    return study_bundle("NCT05765006", sites=["Site A", "Site B"])


# -- retry: 429 / 503 / timeouts ----------------------------------------------------------------


def test_429_with_retry_after_seconds_is_honoured_then_succeeds(bundle: dict[str, Any]) -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}))
    sleeps: list[float] = []
    result = client_for(script, sleeps).post_transaction(bundle)
    assert sleeps == [7.0]
    assert len(script.requests) == 2
    assert result.attempts == 2
    assert result.count("created") == len(bundle["entry"])


def test_429_with_retry_after_http_date(bundle: dict[str, Any]) -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    script = Script(httpx.Response(429, headers={"Retry-After": format_datetime(when, True)}))
    sleeps: list[float] = []
    client_for(script, sleeps).post_transaction(bundle)
    assert len(sleeps) == 1 and 27.0 <= sleeps[0] <= 30.0


def test_503_then_success_uses_jittered_backoff(bundle: dict[str, Any]) -> None:
    script = Script(httpx.Response(503), httpx.Response(503))
    sleeps: list[float] = []
    policy = RetryPolicy(base_delay=1.0)
    result = client_for(script, sleeps, retry=policy).post_transaction(bundle)
    assert result.attempts == 3
    assert len(sleeps) == 2
    assert 0.0 <= sleeps[0] <= 1.0 and 0.0 <= sleeps[1] <= 2.0


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retried_for_idempotent_bundles(
    bundle: dict[str, Any], status: int
) -> None:
    script = Script(httpx.Response(status))
    assert client_for(script).post_transaction(bundle).attempts == 2


def test_read_timeout_then_success(bundle: dict[str, Any]) -> None:
    script = Script(httpx.ReadTimeout("slow"))
    sleeps: list[float] = []
    result = client_for(script, sleeps).post_transaction(bundle)
    assert len(script.requests) == 2 and len(sleeps) == 1
    assert result.count("created") == len(bundle["entry"])


def test_connect_error_then_success(bundle: dict[str, Any]) -> None:
    script = Script(httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"))
    assert client_for(script).post_transaction(bundle).attempts == 3


def test_attempts_are_bounded(bundle: dict[str, Any]) -> None:
    script = Script(default=lambda r: httpx.Response(503))
    sleeps: list[float] = []
    with pytest.raises(RetriesExhausted) as caught:
        client_for(script, sleeps).post_transaction(bundle)
    assert len(script.requests) == 5 and len(sleeps) == 4
    assert caught.value.attempts == 5 and caught.value.status_code == 503
    assert "503" in str(caught.value) and "5 attempt" in str(caught.value)


def test_deadline_is_not_overrun_by_a_long_retry_after(bundle: dict[str, Any]) -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "3600"}))
    sleeps: list[float] = []
    with pytest.raises(RetriesExhausted, match="deadline"):
        client_for(script, sleeps, retry=RetryPolicy(deadline=60)).post_transaction(bundle)
    assert sleeps == [] and len(script.requests) == 1


def test_deadline_counts_time_spent() -> None:
    now = [0.0]

    def send() -> httpx.Response:
        now[0] += 25.0  # every attempt takes 25 s
        return httpx.Response(503)

    sleeps: list[float] = []
    with pytest.raises(RetriesExhausted):
        send_with_retry(send, idempotent=True, policy=RetryPolicy(deadline=60, max_attempts=10),
                        sleep=sleeps.append, clock=lambda: now[0], rng=random.Random(1))
    assert len(sleeps) <= 2


def test_parse_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_backoff_is_full_jitter_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(3)
    for retry in range(10):
        samples = [backoff_delay(retry, policy, rng) for _ in range(200)]
        ceiling = min(4.0, 0.5 * 2**retry)
        assert all(0.0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # spread across the range, not fixed


def test_409_upsert_race_is_retried_only_when_idempotent(bundle: dict[str, Any]) -> None:
    race = httpx.Response(409, json=outcome(
        "HAPI-0550: HAPI-0825: Error flushing transaction ... client-assigned ID constraint "
        "failure"))
    script = Script(race)
    assert client_for(script).post_transaction(bundle).attempts == 2

    script = Script(race)
    with pytest.raises(TransactionRejected):
        client_for(script).post_transaction(with_plain_post(bundle))
    assert len(script.requests) == 1


# -- permanent failures ---------------------------------------------------------------------------


def test_permanent_400_is_not_retried_and_names_study_and_entry(bundle: dict[str, Any]) -> None:
    body = outcome("HAPI-0450: Failed to parse Bundle.entry[2].resource: unknown element 'foo'",
                   code="structure")
    script = Script(httpx.Response(400, json=body))
    sleeps: list[float] = []
    from fhirconv.publish.bundles import BundleSource, LoadedBundle

    loaded = LoadedBundle(BundleSource(Path("NCT05765006.json")), "NCT05765006", bundle)
    result = push_one(loaded, client_for(script, sleeps))
    assert len(script.requests) == 1 and sleeps == []
    assert result.status == "failed"
    line = result.line()
    expected_ref = f"Location/{loc_id('Site B')}"
    assert line.startswith("NCT05765006 FAILED: ")
    assert "unknown element 'foo'" in line
    assert f"(entry 2 {expected_ref})" in line
    assert "HAPI-0450" not in line  # the server's error number is kept apart
    issue = result.issues[0]
    assert (issue.study, issue.entry_index, issue.entry_ref) == ("NCT05765006", 2, expected_ref)
    assert issue.server_code == "HAPI-0450"


def test_hapi_reference_error_is_attributed_by_path(bundle: dict[str, Any]) -> None:
    issues = parse_operation_outcome(outcome(
        "HAPI-1094: Resource Organization/missing not found, specified in path: "
        "ResearchStudy.sponsor"))
    [report] = explain(issues, bundle, "NCT05765006")
    assert report.entry_ref == "ResearchStudy/NCT05765006"
    assert report.entry_index == len(bundle["entry"]) - 1
    assert "not found" in report.text()


def test_expression_and_location_are_used(bundle: dict[str, Any]) -> None:
    issues = parse_operation_outcome({"resourceType": "OperationOutcome", "issue": [{
        "severity": "error", "code": "required", "details": {"text": "Group.type is required"},
        "expression": ["Bundle.entry[3].resource.type"]}]})
    [report] = explain(issues, bundle, "NCT05765006")
    assert report.entry_index == 3 and report.entry_ref == "Group/NCT05765006-eligibility"
    assert report.where == "Bundle.entry[3].resource.type"
    assert "Group.type is required" in report.text()


def test_error_without_operation_outcome(bundle: dict[str, Any]) -> None:
    script = Script(httpx.Response(400, text="<html>nope</html>"))
    from fhirconv.publish.bundles import BundleSource, LoadedBundle

    result = push_one(LoadedBundle(BundleSource(Path("x.json")), "NCT05765006", bundle),
                      client_for(script))
    assert result.line() == (
        "NCT05765006 FAILED: processing failed: the server answered HTTP 400 Bad Request")


# -- non-idempotent bundles ---------------------------------------------------------------------


def test_is_idempotent(bundle: dict[str, Any]) -> None:
    assert is_idempotent(bundle)
    plain = with_plain_post(bundle)
    assert not is_idempotent(plain)
    plain["entry"][-1]["request"]["ifNoneExist"] = "identifier=urn:x|1"
    assert is_idempotent(plain)


def test_plain_post_is_not_resent_after_a_timeout(bundle: dict[str, Any]) -> None:
    script = Script(httpx.ReadTimeout("slow"))
    sleeps: list[float] = []
    with pytest.raises(OutcomeUnknown) as caught:
        client_for(script, sleeps).post_transaction(with_plain_post(bundle))
    assert len(script.requests) == 1 and sleeps == []
    assert "may or may not have been applied" in str(caught.value)


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_plain_post_is_not_resent_after_a_retryable_status(
    bundle: dict[str, Any], status: int
) -> None:
    script = Script(httpx.Response(status, headers={"Retry-After": "1"}))
    with pytest.raises((OutcomeUnknown, RetriesExhausted)) as caught:
        client_for(script).post_transaction(with_plain_post(bundle))
    assert len(script.requests) == 1
    assert isinstance(caught.value, OutcomeUnknown) == (status in (502, 504))


def test_plain_post_is_tried_again_when_it_never_left(bundle: dict[str, Any]) -> None:
    script = Script(httpx.ConnectError("refused"))
    result = client_for(script).post_transaction(with_plain_post(bundle))
    assert result.attempts == 2


def test_plain_post_with_ifnoneexist_is_retried(bundle: dict[str, Any]) -> None:
    conditional = with_plain_post(bundle)
    conditional["entry"][-1]["request"]["ifNoneExist"] = "identifier=urn:x|1"
    script = Script(httpx.ReadTimeout("slow"))
    assert client_for(script).post_transaction(conditional).attempts == 2


def test_outcome_unknown_is_reported_per_study(tmp_path: Path) -> None:
    write_bundle(tmp_path, with_plain_post(study_bundle(nct(1))))
    write_bundle(tmp_path, study_bundle(nct(2)))

    def handler(request: httpx.Request) -> httpx.Response:
        if b"Basic" in request.content:
            raise httpx.ReadTimeout("slow")
        return transaction_response(request)

    script = Script(default=handler)
    summary = push_bundles([tmp_path], client_for(script), concurrency=2)
    first, second = summary.studies
    assert first.outcome_unknown and not first.ok and second.ok
    assert len(script.requests) == 2
    assert any("Outcome unknown" in line and nct(1) in line for line in summary.lines())


# -- classification -----------------------------------------------------------------------------


def _response(status: str, version: str, code: str | None = None,
              last_modified: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"status": status, "location": f"X/1/_history/{version}"}
    if code:
        response["outcome"] = {"resourceType": "OperationOutcome", "issue": [{
            "severity": "information", "code": "informational",
            "details": {"coding": [{"system": STORAGE, "code": code}]}}]}
    if last_modified:
        response["lastModified"] = last_modified
    return response


def test_classify_by_hapi_storage_code() -> None:
    assert classify_entry("PUT", _response("200 OK", "4", "SUCCESSFUL_UPDATE_NO_CHANGE"))[0] == (
        "unchanged")
    assert classify_entry("PUT", _response("200 OK", "5", "SUCCESSFUL_UPDATE"))[0] == "updated"
    assert classify_entry("PUT", _response("201 Created", "1", "SUCCESSFUL_UPDATE_AS_CREATE"))[
        0] == "created"


def test_classify_without_storage_code() -> None:
    arrived = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert classify_entry("PUT", _response("201 Created", "1")) == ("created", "status")
    assert classify_entry("PUT", _response("200 OK", "1")) == ("unchanged", "version-1")
    before = _response("200 OK", "3", last_modified="2025-01-01T11:59:00Z")
    after = _response("200 OK", "3", last_modified="2025-01-01T12:00:00.500+00:00")
    assert classify_entry("PUT", before, arrived) == ("unchanged", "last-modified")
    assert classify_entry("PUT", after, arrived) == ("updated", "last-modified")
    assert classify_entry("PUT", _response("200 OK", "3")) == ("updated", "assumed")


def test_classify_reads_back_when_the_server_gives_no_time(bundle: dict[str, Any]) -> None:
    """A non-HAPI server: no outcome, no lastModified; one GET of the version decides."""
    answered = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            old = request.url.path.endswith("Organization/" + bundle["entry"][0]["resource"]["id"]
                                            + "/_history/7")
            stamp = "2024-06-01T00:00:00Z" if old else "2025-01-01T12:00:00Z"
            assert request.headers["Cache-Control"] == "no-cache"
            return httpx.Response(200, json={"resourceType": "X", "meta": {"lastUpdated": stamp}})
        entries = [{"response": {"status": "200 OK",
                                 "location": f"{e['request']['url']}/_history/7"}}
                   for e in json.loads(request.content)["entry"]]
        return httpx.Response(200, headers={"Date": format_datetime(answered, True)},
                              json={"resourceType": "Bundle", "type": "transaction-response",
                                    "entry": entries})

    result = client_for(Script(default=handler)).post_transaction(bundle)
    kinds = [(e.kind, e.how) for e in result.entries]
    assert kinds[0] == ("unchanged", "read-back")
    assert all(k == ("updated", "read-back") for k in kinds[1:])


# -- auth: bearer / basic -------------------------------------------------------------------------

SECRET_TOKEN = "s3cr3t-T0KEN-value-0123456789"


def _assert_secret_hidden(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text


def test_bearer_token_from_env_is_sent_and_never_shown(
    bundle: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FHIR_TOKEN", SECRET_TOKEN)
    auth = BearerTokenAuth.from_env("FHIR_TOKEN")
    script = Script(httpx.Response(503), default=lambda r: httpx.Response(
        401, json=outcome("token rejected", code="login")))
    client = client_for(script, auth=auth)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TransactionRejected) as caught:
        client.post_transaction(bundle)
    assert all(r.headers["Authorization"] == f"Bearer {SECRET_TOKEN}" for r in script.requests)
    _assert_secret_hidden(SECRET_TOKEN, repr(auth), str(auth), repr(client), str(caught.value),
                          repr(caught.value), caplog.text, repr(vars(auth)))
    assert "env:FHIR_TOKEN" in repr(auth)


def test_bearer_token_from_file(bundle: dict[str, Any], tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(SECRET_TOKEN + "\n")
    script = Script()
    auth = BearerTokenAuth.from_file(token_file)
    client_for(script, auth=auth).post_transaction(bundle)
    assert script.requests[0].headers["Authorization"] == f"Bearer {SECRET_TOKEN}"
    _assert_secret_hidden(SECRET_TOKEN, repr(auth))


def test_missing_secrets_are_named_not_shown(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    with pytest.raises(AuthConfigError, match="NO_SUCH_TOKEN"):
        BearerTokenAuth.from_env("NO_SUCH_TOKEN")
    with pytest.raises(AuthConfigError, match="cannot read"):
        BearerTokenAuth.from_file(tmp_path / "absent")
    with pytest.raises(AuthConfigError, match="one way"):
        build_auth(AuthOptions(token_env="A", basic_user="u", basic_password_env="B"))


def test_basic_auth_from_env_and_file(
    bundle: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FHIR_PW", "pa:ss-w0rd")
    pw_file = tmp_path / "pw"
    pw_file.write_text("pa:ss-w0rd\n")
    expected = "Basic " + base64.b64encode(b"alice:pa:ss-w0rd").decode()
    for auth in (BasicAuth.from_env("alice", "FHIR_PW"), BasicAuth.from_file("alice", pw_file)):
        script = Script()
        client_for(script, auth=auth).post_transaction(bundle)
        assert script.requests[0].headers["Authorization"] == expected
        _assert_secret_hidden("pa:ss-w0rd", repr(auth), str(auth))


# -- auth: SMART Backend Services ---------------------------------------------------------------


def _rsa_key_file(tmp_path: Path) -> tuple[Path, rsa.RSAPublicKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "smart-rsa.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path, key.public_key()


class SmartServer:
    """Token endpoint + FHIR endpoint. Tokens are tok-1, tok-2, …; `revoked` ones get 401."""

    def __init__(self, expires_in: int = 300) -> None:
        self.expires_in = expires_in
        self.assertions: list[str] = []
        self.forms: list[dict[str, str]] = []
        self.fhir_tokens: list[str] = []
        self.revoked: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            with self.lock:
                self.forms.append(form)
                self.assertions.append(form["client_assertion"])
                token = f"tok-{len(self.assertions)}"
            return httpx.Response(200, json={"access_token": token, "token_type": "bearer",
                                             "expires_in": self.expires_in,
                                             "scope": form.get("scope")})
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self.lock:
            self.fhir_tokens.append(token)
        if token in self.revoked or not token.startswith("tok-"):
            return httpx.Response(401, json=outcome("invalid token", code="login"))
        return transaction_response(request)


def test_smart_assertion_claims_and_token_caching(bundle: dict[str, Any], tmp_path: Path) -> None:
    key_path, public_key = _rsa_key_file(tmp_path)
    now = [time.time()]
    auth = SmartBackendAuth.from_key_file(client_id="fhirconv-test", token_url=TOKEN_URL,
                                          key_path=key_path, scope="system/*.cu",
                                          clock=lambda: now[0])
    server = SmartServer(expires_in=300)
    client = client_for(server, auth=auth)
    client.post_transaction(bundle)
    client.post_transaction(bundle)
    assert server.fhir_tokens == ["tok-1", "tok-1"]  # cached
    assert len(server.assertions) == 1

    form = server.forms[0]
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == "system/*.cu"
    assert form["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    assertion = server.assertions[0]
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS384" and header["typ"] == "JWT" and header["kid"]
    claims = jwt.decode(assertion, public_key, algorithms=["RS384"], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "fhirconv-test"
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - int(now[0]) <= 300
    assert len(claims["jti"]) >= 16

    # Past expires_in (minus the margin): a new assertion and a new token.
    now[0] += 290
    client.post_transaction(bundle)
    assert server.fhir_tokens[-1] == "tok-2"
    second = jwt.decode(server.assertions[1], public_key, algorithms=["RS384"],
                        audience=TOKEN_URL, options={"verify_exp": False, "verify_iat": False})
    assert second["jti"] != claims["jti"]
    assert second["exp"] - int(now[0]) <= 300
    _assert_secret_hidden("tok-", repr(auth), repr(client))


def test_smart_refreshes_once_on_401(bundle: dict[str, Any], tmp_path: Path) -> None:
    key_path, _ = _rsa_key_file(tmp_path)
    auth = SmartBackendAuth.from_key_file(client_id="c", token_url=TOKEN_URL, key_path=key_path)
    server = SmartServer()
    client = client_for(server, auth=auth)
    client.post_transaction(bundle)
    server.revoked.add("tok-1")  # revoked server-side before it expired
    result = client.post_transaction(bundle)
    assert result.count("created") == len(bundle["entry"])
    assert server.fhir_tokens == ["tok-1", "tok-1", "tok-2"]

    server.revoked.update({"tok-2", "tok-3"})  # still refused after the refresh: give up
    with pytest.raises(TransactionRejected) as caught:
        client.post_transaction(bundle)
    assert caught.value.status_code == 401
    assert server.fhir_tokens[3:] == ["tok-2", "tok-3"]  # exactly one refresh


def test_smart_es384_with_ec_key(bundle: dict[str, Any], tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    auth = SmartBackendAuth.from_key_file(client_id="c", token_url=TOKEN_URL, key_path=path,
                                          kid="my-key-1")
    server = SmartServer()
    client_for(server, auth=auth).post_transaction(bundle)
    header = jwt.get_unverified_header(server.assertions[0])
    assert header["alg"] == "ES384" and header["kid"] == "my-key-1"
    jwt.decode(server.assertions[0], key.public_key(), algorithms=["ES384"], audience=TOKEN_URL)


def test_smart_token_refusal_is_readable(bundle: dict[str, Any], tmp_path: Path) -> None:
    key_path, _ = _rsa_key_file(tmp_path)
    auth = SmartBackendAuth.from_key_file(client_id="c", token_url=TOKEN_URL, key_path=key_path)
    refusal = httpx.Response(400, json={"error": "invalid_client",
                                        "error_description": "unknown key"})
    with pytest.raises(AuthError, match="invalid_client — unknown key"):
        client_for(Script(default=lambda r: refusal), auth=auth).post_transaction(bundle)


def test_smart_key_must_be_a_private_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    with pytest.raises(AuthConfigError, match="not a PEM private key"):
        SmartBackendAuth.from_key_file(client_id="c", token_url=TOKEN_URL, key_path=bad)


# -- push_bundles and the CLI -------------------------------------------------------------------


@pytest.fixture
def ten_studies(tmp_path: Path) -> Path:
    for i in range(1, 11):
        write_bundle(tmp_path, study_bundle(nct(i), sites=[f"Site {i}", "Shared Site"]))
    return tmp_path


class Concurrent:
    """Answers slowly, counts requests in flight, refuses one study."""

    def __init__(self, failing: str) -> None:
        self.failing = failing
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.in_flight += 1
            self.requests += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(0.05)
            if f"ResearchStudy/{self.failing}".encode() in request.content:
                return httpx.Response(400, json=outcome(
                    "HAPI-1821: Bundle.entry[0].resource.name: invalid value",
                    code="value"))
            return transaction_response(request)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture
def mock_cli_transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Handler]]:
    """Make the CLI's FhirClient use a MockTransport with the handler put in the list."""
    handlers: list[Handler] = []
    real = FhirClient

    def factory(base_url: str, **kwargs: Any) -> FhirClient:
        kwargs.pop("verify", None)
        return real(base_url, transport=httpx.MockTransport(lambda r: handlers[0](r)),
                    sleep=lambda s: None, **kwargs)

    # push builds its client in fhirconv.cli.server_options (shared with match --server)
    monkeypatch.setattr(cli_server_options, "FhirClient", factory)
    yield handlers


def test_ten_bundles_one_failing_through_the_cli(
    ten_studies: Path, mock_cli_transport: list[Handler]
) -> None:
    server = Concurrent(failing=nct(4))
    mock_cli_transport.append(server)
    result = CliRunner().invoke(app, _cli(str(ten_studies), "--server", BASE,
                                          "--concurrency", "4"))
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert server.requests == 10
    assert 1 < server.max_in_flight <= 4
    pushed = [line for line in out.splitlines()
              if line.startswith("NCT") and line.endswith("created 5, updated 0, unchanged 0")]
    assert len(pushed) == 9, out
    failed = [line for line in out.splitlines() if "FAILED:" in line]
    org = study_bundle(nct(4))["entry"][0]["request"]["url"]
    assert failed == [f"{nct(4)} FAILED: Bundle.entry[0].resource.name: invalid value "
                      f"(entry 0 {org})"]
    assert "Pushed 9 of 10 studies, 1 FAILED" in out


def test_cli_all_pushed_exits_0_and_reads_token_env(
    ten_studies: Path, mock_cli_transport: list[Handler], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return transaction_response(request, "SUCCESSFUL_UPDATE_NO_CHANGE", "200 OK")

    mock_cli_transport.append(handler)
    monkeypatch.setenv("MY_FHIR_TOKEN", SECRET_TOKEN)
    monkeypatch.setenv("FHIRCONV_SERVER", BASE)
    result = CliRunner().invoke(app, _cli(str(ten_studies), "--token-env", "MY_FHIR_TOKEN"))
    assert result.exit_code == 0, result.output
    assert seen == [f"Bearer {SECRET_TOKEN}"] * 10
    assert f"{nct(1)} created 0, updated 0, unchanged 5" in result.stdout
    assert SECRET_TOKEN not in result.output


def test_cli_dry_run_sends_nothing(ten_studies: Path, mock_cli_transport: list[Handler]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("dry run must not send")

    mock_cli_transport.append(handler)
    result = CliRunner().invoke(app, _cli(str(ten_studies / f"{nct(1)}.json"), "--dry-run"))
    assert result.exit_code == 0, result.output
    assert f"{nct(1)} would send 5 entries" in result.stdout
    assert f"  PUT ResearchStudy/{nct(1)}" in result.stdout
    assert "nothing was sent" in result.stdout


@pytest.mark.parametrize("args", [
    ["--server", BASE, "--token-env", "A", "--token-file", "b"],
    ["--server", "ftp://x"],
    [],  # no server
    ["--server", BASE, "--token", "literal-secret"],  # no such option: never on the command line
    ["--server", BASE, "--smart-client-id", "c"],  # incomplete SMART options
    ["--server", "https://user:pw@fhir.test/r4"],  # credentials in the URL
])
def test_cli_usage_errors_exit_2(ten_studies: Path, args: list[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FHIRCONV_SERVER", raising=False)
    result = CliRunner().invoke(app, _cli(str(ten_studies), *args))
    assert result.exit_code == 2, result.output


def test_cli_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, _cli(str(tmp_path / "nope"), "--server", BASE))
    assert result.exit_code == 2


def test_cli_insecure_warns(ten_studies: Path, mock_cli_transport: list[Handler]) -> None:
    mock_cli_transport.append(transaction_response)
    result = CliRunner().invoke(app, _cli(str(ten_studies), "--server", BASE, "--insecure"))
    assert result.exit_code == 0
    assert "NOT verified" in result.stderr


def test_bad_files_fail_alone(tmp_path: Path) -> None:
    write_bundle(tmp_path, study_bundle(nct(1)))
    (tmp_path / f"{nct(2)}.json").write_text("{not json")
    (tmp_path / f"{nct(3)}.json").write_text(json.dumps({"resourceType": "Bundle",
                                                         "type": "collection", "entry": []}))
    lines = "\n".join(json.dumps(study_bundle(nct(n))) for n in (4, 5))
    (tmp_path / "more.ndjson").write_text(lines + "\n\n")
    script = Script()
    summary = push_bundles([tmp_path], client_for(script))
    by_study = {s.study: s for s in summary.studies}
    assert set(by_study) == {nct(1), nct(2), nct(3), nct(4), nct(5)}
    assert "truncated JSON (the text ends too early) at line 1" in (by_study[nct(2)].error or "")
    assert "collection" in (by_study[nct(3)].error or "")
    assert [s.ok for s in summary.studies] == [True, False, False, True, True]
    assert len(script.requests) == 3
    assert summary.exit_code == 1


def test_batch_entry_failures_are_attributed(bundle: dict[str, Any]) -> None:
    bundle = {**bundle, "type": "batch"}

    def handler(request: httpx.Request) -> httpx.Response:
        response = transaction_response(request)
        body = response.json()
        body["type"] = "batch-response"
        body["entry"][1]["response"] = {"status": "422 Unprocessable Entity", "outcome": outcome(
            "Location.name: too long", code="too-long")}
        return httpx.Response(200, json=body)

    from fhirconv.publish.bundles import BundleSource, LoadedBundle

    result = push_one(LoadedBundle(BundleSource(Path("b.json")), "NCT05765006", bundle),
                      client_for(Script(default=handler)))
    assert result.status == "failed"
    assert len(result.created) == len(bundle["entry"]) - 1
    assert result.issues[0].entry_index == 1
    assert "(entry 1 Location/" in result.line()


def test_smart_token_is_fetched_once_by_concurrent_pushes(ten_studies: Path,
                                                         tmp_path_factory: pytest.TempPathFactory
                                                         ) -> None:
    key_path, _ = _rsa_key_file(tmp_path_factory.mktemp("key"))
    auth = SmartBackendAuth.from_key_file(client_id="c", token_url=TOKEN_URL, key_path=key_path)
    server = SmartServer()
    summary = push_bundles([ten_studies], client_for(server, auth=auth), concurrency=5)
    assert summary.exit_code == 0
    assert len(server.assertions) == 1 and server.fhir_tokens == ["tok-1"] * 10


def test_secrets_stay_out_of_debug_logs_on_a_real_socket(
    bundle: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx/httpcore at DEBUG over a real connection (refused): no token in any record."""
    monkeypatch.setenv("FHIR_TOKEN", SECRET_TOKEN)
    caplog.set_level(logging.DEBUG)
    client = FhirClient("http://127.0.0.1:9", auth=BearerTokenAuth.from_env("FHIR_TOKEN"),
                        sleep=lambda s: None, retry=RetryPolicy(max_attempts=2))
    with pytest.raises(RetriesExhausted) as caught:
        client.post_transaction(bundle)
    assert "could not connect" in str(caught.value)
    _assert_secret_hidden(SECRET_TOKEN, caplog.text, str(caught.value), repr(client))


def test_exhausted_retries_keep_the_servers_explanation(bundle: dict[str, Any]) -> None:
    race = httpx.Response(409, json=outcome(
        "HAPI-0550: HAPI-0825: client-assigned ID constraint failure at Bundle.entry[1]",
        code="conflict"))
    from fhirconv.publish.bundles import BundleSource, LoadedBundle

    result = push_one(LoadedBundle(BundleSource(Path("x.json")), "NCT05765006", bundle),
                      client_for(Script(default=lambda r: race)))
    assert result.attempts == 5
    assert result.line() == (
        "NCT05765006 FAILED: conflict (edited concurrently?): client-assigned ID constraint "
        f"failure at Bundle.entry[1] (entry 1 Location/{loc_id('Site A')}) [after 5 attempts]")


# -- faults that stop a push: TLS, dead server, 401/403; Retry-After past the deadline; retries --


def _self_signed_tls_server() -> tuple[str, Callable[[], None]]:
    """An HTTPS server on 127.0.0.1 whose certificate no trust store knows; (base URL, stop)."""
    import http.server
    import ssl
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    folder = Path(tempfile.mkdtemp())
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")

    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # A failed handshake is the client's news, not this server's: keep stderr clean.
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"https://127.0.0.1:{server.server_address[1]}/fhir", stop


def test_tls_certificate_failure_is_named_and_not_retried(bundle: dict[str, Any]) -> None:
    from fhirconv.publish.retry import TlsFailure

    url, stop = _self_signed_tls_server()
    sleeps: list[float] = []
    try:
        with FhirClient(url, sleep=sleeps.append) as client, \
                pytest.raises(TlsFailure) as caught:
            client.post_transaction(bundle)
    finally:
        stop()
    message = str(caught.value)
    assert message.startswith(f"TLS certificate verification failed for URL: {url}")
    assert "self-signed" in message or "self signed" in message
    assert "could not connect" not in message
    assert sleeps == [] and caught.value.attempts == 1


def _tls_refusal(request: httpx.Request) -> httpx.Response:
    import ssl

    cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate "
                                            "verify failed: unable to get local issuer")
    raise httpx.ConnectError(str(cause)) from cause


def test_tls_failure_stops_the_push_at_once(ten_studies: Path) -> None:
    script = Script(default=_tls_refusal)
    summary = push_bundles([ten_studies], client_for(script), concurrency=1)
    assert len(script.requests) <= 2  # one sending, at most one more already started
    first = summary.failed[0]
    assert first.line().startswith(
        f"{first.study} FAILED: TLS certificate verification failed for URL: {BASE}")
    assert len(summary.not_sent) >= 8 and summary.exit_code == ExitCode.TLS_FAILED
    assert summary.stopped is not None and "TLS certificate" in summary.stopped
    assert "NOT SENT: the push stopped: TLS certificate" in summary.not_sent[0].line()


def test_dead_server_stops_after_n_connection_failures(
    tmp_path: Path, mock_cli_transport: list[Handler]
) -> None:
    for i in range(1, 51):
        write_bundle(tmp_path, study_bundle(nct(i)))
    calls: list[str] = []

    def refused(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        raise httpx.ConnectError("[Errno 111] Connection refused")

    mock_cli_transport.append(refused)
    result = CliRunner().invoke(app, _cli(str(tmp_path), "--server", BASE, "--concurrency", "2",
                                          "--max-connection-failures", "3"))
    assert result.exit_code == ExitCode.SERVER_UNREACHABLE, result.output
    out = result.stdout
    failed = [line for line in out.splitlines() if " FAILED: " in line]
    # 3 in a row stop it; at most the 2 in flight then also finish; nothing else is sent.
    assert 3 <= len(failed) <= 4
    # The first three each tried 1 + 4 times; one still in flight gives up once it is stopping.
    assert 3 * 5 <= len(calls) <= 5 * len(failed)
    assert f"Pushed 0 of 50 studies, {len(failed)} FAILED, {50 - len(failed)} NOT SENT" in out
    assert "Stopped early: the server could not be reached for 3 bundles in a row" in out
    assert "could not connect" in out
    assert "NOT SENT" not in "\n".join(line for line in out.splitlines()
                                       if line.startswith("NCT"))  # listed once, not per line
    assert f"Not sent: {nct(len(failed) + 1)}" in out or "Not sent: NCT" in out


def test_connection_failures_must_be_in_a_row_to_stop(ten_studies: Path) -> None:
    def every_other(request: httpx.Request) -> httpx.Response:
        if any(f"ResearchStudy/{nct(i)}".encode() in request.content for i in (1, 3, 5, 7, 9)):
            raise httpx.ConnectTimeout("no answer to SYN")
        return transaction_response(request)

    summary = push_bundles([ten_studies], client_for(every_other), concurrency=1,
                           stop_rule=StopRule(max_connection_failures=2))
    assert summary.stopped is None and summary.not_sent == []
    assert len(summary.failed) == 5 and len(summary.succeeded) == 5
    assert all(s.fault == "connection" for s in summary.failed)

    two_in_a_row = push_bundles(
        [ten_studies],
        client_for(lambda r: every_other(r) if b"NCT00000002" not in r.content
                   else _raise(httpx.ConnectError("refused"))),
        concurrency=1, stop_rule=StopRule(max_connection_failures=2))
    assert two_in_a_row.stopped is not None
    assert [s.status for s in two_in_a_row.studies[:2]] == ["failed", "failed"]
    assert {s.status for s in two_in_a_row.studies[2:]} <= {"failed", "not-sent"}
    assert len(two_in_a_row.not_sent) >= 7


def _raise(exc: Exception) -> httpx.Response:
    raise exc


def test_read_timeouts_do_not_count_as_a_dead_server(ten_studies: Path) -> None:
    script = Script(default=lambda r: _raise(httpx.ReadTimeout("slow transaction")))
    summary = push_bundles([ten_studies], client_for(script), concurrency=1,
                           stop_rule=StopRule(max_connection_failures=1))
    assert summary.stopped is None  # it answered nothing in time, but it was reached
    assert len(summary.failed) == 10 and summary.not_sent == []


@pytest.mark.parametrize(("status", "with_token", "words"), [
    (401, True, "the server refused our credentials (HTTP 401 Unauthorized)"),
    (401, False, "the server wants credentials (HTTP 401 Unauthorized) and none were given"),
    (403, True, "the server refused access (HTTP 403 Forbidden): the credentials given lack"),
])
def test_401_403_stop_at_once_with_a_hint(
    ten_studies: Path, mock_cli_transport: list[Handler], monkeypatch: pytest.MonkeyPatch,
    status: int, with_token: bool, words: str,
) -> None:
    seen: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=outcome("HAPI-0333: Access denied", code="security"))

    mock_cli_transport.append(refuse)
    monkeypatch.setenv("MY_FHIR_TOKEN", SECRET_TOKEN)
    token = ["--token-env", "MY_FHIR_TOKEN"] if with_token else []
    result = CliRunner().invoke(app, _cli(str(ten_studies), "--server", BASE,
                                          "--concurrency", "1", *token))
    assert result.exit_code == ExitCode.AUTH_REFUSED, result.output
    assert len(seen) <= 2, "every remaining bundle was sent after the refusal"
    out = result.stdout
    assert words in out
    assert "--token-env VAR or --token-file PATH" in out
    assert "[the server said: HAPI-0333: Access denied]" in out
    assert f"{10 - len(seen)} NOT SENT" in out and "Stopped early: " in out
    assert SECRET_TOKEN not in result.output


def test_retry_after_beyond_the_deadline_says_asked_versus_left(bundle: dict[str, Any]) -> None:
    from fhirconv.publish.bundles import BundleSource, LoadedBundle

    now = [0.0]

    def slow_then_throttled(request: httpx.Request) -> httpx.Response:
        now[0] += 45.0  # the refusal itself took 45 s of the deadline
        return httpx.Response(429, headers={"Retry-After": "3600"})

    client = FhirClient(BASE, transport=httpx.MockTransport(slow_then_throttled),
                        sleep=lambda s: None, clock=lambda: now[0],
                        retry=RetryPolicy(deadline=60))
    result = push_one(LoadedBundle(BundleSource(Path("x.json")), "NCT05765006", bundle), client)
    assert "the server asked to wait 3600 s (Retry-After) but only 15 s of the 60 s deadline " \
           "are left" in result.line()
    assert "HTTP 429" in result.line() and result.attempts == 1


def test_retries_and_their_causes_are_counted_in_the_summary(ten_studies: Path) -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "1"}), httpx.Response(503),
                    httpx.Response(429), httpx.ConnectError("refused"))
    summary = push_bundles([ten_studies], client_for(script), concurrency=1)
    assert summary.exit_code == 0
    assert "4 retries: 2×429, 1×503, 1×connect error" in summary.lines()
    assert sum(len(s.retry_causes) for s in summary.studies) == 4
    quiet = push_bundles([ten_studies], client_for(Script()), concurrency=1)
    assert not any("retr" in line.lower() for line in quiet.lines())
