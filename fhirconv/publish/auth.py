"""httpx ``Auth`` classes for FHIR servers: bearer token, HTTP basic, SMART Backend Services.

Secrets come from an environment variable or a file — never from a command-line argument
(visible in ``ps`` and shell history) — and are kept in ``Secret``, whose ``repr``/``str`` are
masked, so they cannot end up in logs, tracebacks or error messages by accident. The classes'
``repr`` names where the secret came from, never the secret.

SMART Backend Services (client-credentials grant with a signed JWT assertion,
https://hl7.org/fhir/smart-app-launch/backend-services.html):

* assertion: header ``alg`` RS384/ES384 (from the key type), ``typ`` JWT, ``kid`` (given, or
  the key's RFC 7638 JWK thumbprint); claims ``iss`` = ``sub`` = client id, ``aud`` = token
  URL, ``exp`` ≤ 5 minutes ahead, ``iat``, random ``jti``;
* token request: form POST of ``grant_type=client_credentials``, ``scope``,
  ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and
  ``client_assertion``, through the same httpx client (so the same transport, TLS settings and
  timeouts);
* the access token is cached until ``expires_in`` minus a margin, fetched again when it
  expires, and once more when the FHIR server answers 401 (the token may have been revoked).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fhirconv.errors import PublishError

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300  # seconds; the SMART spec's ceiling for exp
_ASSERTION_LIFETIME = 240  # what we use: under the ceiling with room for clock skew


class AuthConfigError(PublishError):
    """A credential could not be loaded (missing variable, unreadable file, bad key)."""


class AuthError(PublishError):
    """The authorization server refused to issue a token."""


class Secret:
    """A string that does not show itself: ``repr``/``str``/f-strings print ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # pickling would carry the value off; refuse
        raise TypeError("Secret cannot be pickled")


def secret_from_env(var: str, what: str = "secret") -> Secret:
    """The value of environment variable ``var`` (must be set and non-empty)."""
    value = os.environ.get(var)
    if value is None or not value.strip():
        raise AuthConfigError(f"environment variable {var} (the {what}) is not set or empty")
    return Secret(value.strip())


def secret_from_file(path: Path, what: str = "secret") -> Secret:
    """The contents of ``path``, surrounding whitespace stripped (must be non-empty)."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuthConfigError(f"cannot read the {what} file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise AuthConfigError(f"the {what} file {path} is not UTF-8 text") from None
    if not value:
        raise AuthConfigError(f"the {what} file {path} is empty")
    return Secret(value)


class BearerTokenAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request."""

    def __init__(self, token: Secret, source: str = "given") -> None:
        self._token = token
        self._source = source

    @classmethod
    def from_env(cls, var: str) -> BearerTokenAuth:
        return cls(secret_from_env(var, "bearer token"), f"env:{var}")

    @classmethod
    def from_file(cls, path: Path) -> BearerTokenAuth:
        return cls(secret_from_file(path, "bearer token"), f"file:{path}")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        yield request

    def __repr__(self) -> str:
        return f"BearerTokenAuth(source={self._source!r})"


class BasicAuth(httpx.Auth):
    """HTTP basic authentication; the password comes from an environment variable or a file."""

    def __init__(self, username: str, password: Secret, source: str = "given") -> None:
        self._username = username
        self._password = password
        self._source = source

    @classmethod
    def from_env(cls, username: str, var: str) -> BasicAuth:
        return cls(username, secret_from_env(var, "basic-auth password"), f"env:{var}")

    @classmethod
    def from_file(cls, username: str, path: Path) -> BasicAuth:
        return cls(username, secret_from_file(path, "basic-auth password"), f"file:{path}")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        pair = f"{self._username}:{self._password.reveal()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        yield request

    def __repr__(self) -> str:
        return f"BasicAuth(username={self._username!r}, password_source={self._source!r})"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, length: int | None = None) -> bytes:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return value.to_bytes(length, "big")


SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def jwk_thumbprint(key: SigningKey) -> str:
    """RFC 7638 SHA-256 thumbprint of the public half of ``key`` (a stable default ``kid``)."""
    members: dict[str, str]
    if isinstance(key, rsa.RSAPrivateKey):
        numbers = key.public_key().public_numbers()
        members = {
            "e": _b64url(_int_bytes(numbers.e)),
            "kty": "RSA",
            "n": _b64url(_int_bytes(numbers.n)),
        }
    else:
        pub = key.public_key().public_numbers()
        size = (key.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            key.curve.name, key.curve.name
        )
        members = {
            "crv": crv,
            "kty": "EC",
            "x": _b64url(_int_bytes(pub.x, size)),
            "y": _b64url(_int_bytes(pub.y, size)),
        }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def load_signing_key(path: Path, password: Secret | None = None) -> SigningKey:
    """An RSA or EC private key from a PEM file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuthConfigError(f"cannot read the SMART private key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(
            data, password=password.reveal().encode() if password else None
        )
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted" if "encrypted" in str(exc).lower() else "not a PEM private key"
        raise AuthConfigError(f"cannot load the SMART private key {path}: {reason}") from None
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise AuthConfigError(f"the SMART private key {path} must be RSA (RS384) or EC (ES384)")


@dataclass
class _Token:
    value: Secret
    expires_at: float  # clock() time after which we fetch a new one


class SmartBackendAuth(httpx.Auth):
    """SMART Backend Services: client-credentials grant with a signed JWT client assertion."""

    requires_response_body = True

    def __init__(
        self,
        *,
        client_id: str,
        token_url: str,
        key: SigningKey,
        scope: str = "system/*.write",
        kid: str | None = None,
        algorithm: str | None = None,
        clock: Callable[[], float] = time.time,
        key_source: str = "given",
    ) -> None:
        self.client_id = client_id
        self.token_url = token_url
        self.scope = scope
        self._key = key
        self._kid = kid or jwk_thumbprint(key)
        default_alg = "RS384" if isinstance(key, rsa.RSAPrivateKey) else "ES384"
        self.algorithm = algorithm or default_alg
        self._clock = clock
        self._key_source = key_source
        self._token: _Token | None = None
        self._lock = threading.Lock()
        self.tokens_fetched = 0

    @classmethod
    def from_key_file(
        cls,
        *,
        client_id: str,
        token_url: str,
        key_path: Path,
        scope: str = "system/*.write",
        kid: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> SmartBackendAuth:
        return cls(
            client_id=client_id,
            token_url=token_url,
            key=load_signing_key(key_path),
            scope=scope,
            kid=kid,
            clock=clock,
            key_source=f"file:{key_path}",
        )

    def __repr__(self) -> str:
        return (
            f"SmartBackendAuth(client_id={self.client_id!r}, token_url={self.token_url!r}, "
            f"scope={self.scope!r}, key_source={self._key_source!r})"
        )

    def client_assertion(self) -> str:
        """A freshly signed assertion JWT for one token request."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self._kid, "typ": "JWT"}
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)

    def _token_request(self) -> httpx.Request:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        return httpx.Request(
            "POST", self.token_url, data=form, headers={"Accept": "application/json"}
        )

    def _accept_token(self, response: httpx.Response) -> _Token:
        if response.status_code != 200:
            detail = ""
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                parts = [str(body[k]) for k in ("error", "error_description") if body.get(k)]
                detail = ": " + " — ".join(parts) if parts else ""
            raise AuthError(
                f"the SMART token endpoint {self.token_url} refused the client "
                f"{self.client_id!r}: HTTP {response.status_code}{detail}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(f"the SMART token endpoint {self.token_url} sent no access_token")
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 300.0
        margin = min(60.0, lifetime * 0.1)
        self.tokens_fetched += 1
        return _Token(Secret(token), self._clock() + max(0.0, lifetime - margin))

    def _current(self) -> _Token | None:
        token = self._token
        if token is not None and self._clock() < token.expires_at:
            return token
        return None

    def _fetch(self) -> Generator[httpx.Request, httpx.Response, _Token]:
        response = yield self._token_request()
        token = self._accept_token(response)
        self._token = token
        return token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # One thread fetches while the others wait for its token (no stampede at expiry).
        with self._lock:
            token = self._current()
            if token is None:
                token = yield from self._fetch()
        request.headers["Authorization"] = f"Bearer {token.value.reveal()}"
        response = yield request
        if response.status_code != 401:
            return
        with self._lock:
            if self._token is token or self._token is None:  # nobody refreshed it meanwhile
                token = yield from self._fetch()
            else:
                token = self._token
        request.headers["Authorization"] = f"Bearer {token.value.reveal()}"
        yield request


@dataclass(frozen=True)
class AuthOptions:
    """The credential choices of ``fhirconv push``; at most one scheme may be chosen."""

    token_env: str | None = None
    token_file: Path | None = None
    basic_user: str | None = None
    basic_password_env: str | None = None
    basic_password_file: Path | None = None
    smart_client_id: str | None = None
    smart_key: Path | None = None
    smart_token_url: str | None = None
    smart_scope: str = "system/*.write"
    smart_kid: str | None = None


def build_auth(options: AuthOptions) -> httpx.Auth | None:
    """The ``httpx.Auth`` the options ask for (``None``: anonymous); ``AuthConfigError`` if the
    options are contradictory or incomplete, or a secret cannot be loaded."""
    bearer = options.token_env is not None or options.token_file is not None
    basic = any(
        v is not None
        for v in (options.basic_user, options.basic_password_env, options.basic_password_file)
    )
    smart = any(
        v is not None for v in (options.smart_client_id, options.smart_key, options.smart_token_url)
    )
    if sum((bearer, basic, smart)) > 1:
        raise AuthConfigError(
            "choose one way to authenticate: a bearer token, HTTP basic, or SMART Backend Services"
        )
    if bearer:
        if options.token_env is not None and options.token_file is not None:
            raise AuthConfigError("give the bearer token by --token-env or --token-file, not both")
        if options.token_env is not None:
            return BearerTokenAuth.from_env(options.token_env)
        assert options.token_file is not None
        return BearerTokenAuth.from_file(options.token_file)
    if basic:
        if options.basic_user is None:
            raise AuthConfigError("HTTP basic needs --basic-user")
        if (options.basic_password_env is None) == (options.basic_password_file is None):
            raise AuthConfigError(
                "HTTP basic needs the password from exactly one of "
                "--basic-password-env or --basic-password-file"
            )
        if options.basic_password_env is not None:
            return BasicAuth.from_env(options.basic_user, options.basic_password_env)
        assert options.basic_password_file is not None
        return BasicAuth.from_file(options.basic_user, options.basic_password_file)
    if smart:
        missing = [
            name
            for name, value in (
                ("--smart-client-id", options.smart_client_id),
                ("--smart-key", options.smart_key),
                ("--smart-token-url", options.smart_token_url),
            )
            if value is None
        ]
        if missing:
            raise AuthConfigError("SMART Backend Services also needs " + ", ".join(missing))
        assert options.smart_client_id and options.smart_key and options.smart_token_url
        if not options.smart_token_url.startswith(("https://", "http://")):
            raise AuthConfigError(f"the SMART token URL must be http(s): {options.smart_token_url}")
        return SmartBackendAuth.from_key_file(
            client_id=options.smart_client_id,
            token_url=options.smart_token_url,
            key_path=options.smart_key,
            scope=options.smart_scope,
            kid=options.smart_kid,
        )
    return None
