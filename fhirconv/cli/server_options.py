"""Command-line options for talking to a FHIR server, shared by `push` and `match --server`.

One definition of each option (name, help, secrets only from a variable or a file) and one way to
turn them into a `FhirClient`, so both commands authenticate, time out and retry alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.errors import ExitCode, PublishError
from fhirconv.publish.auth import AuthError, AuthOptions, build_auth
from fhirconv.publish.client import FhirClient, Timeouts, sends_credentials_in_clear
from fhirconv.publish.retry import OutcomeUnknown, RetriesExhausted, RetryPolicy, TlsFailure

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="FHIRCONV_SERVER",
        help="FHIR base URL, e.g. https://fhir.example.org/r4 (or set FHIRCONV_SERVER).",
    ),
]
TokenEnvOption = Annotated[
    str | None,
    typer.Option(
        "--token-env",
        help="Bearer token: the NAME of an environment variable holding it.",
        metavar="VAR",
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option("--token-file", help="Bearer token: a file holding it.", metavar="PATH"),
]
BasicUserOption = Annotated[str | None, typer.Option("--basic-user", help="HTTP basic user name.")]
BasicPasswordEnvOption = Annotated[
    str | None,
    typer.Option(
        "--basic-password-env",
        help="HTTP basic password: the NAME of an environment variable holding it.",
        metavar="VAR",
    ),
]
BasicPasswordFileOption = Annotated[
    Path | None,
    typer.Option(
        "--basic-password-file", help="HTTP basic password: a file holding it.", metavar="PATH"
    ),
]
SmartClientIdOption = Annotated[
    str | None, typer.Option("--smart-client-id", help="SMART Backend Services client id.")
]
SmartKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--smart-key",
        help="SMART: PEM private key (RSA → RS384, EC P-384 → ES384).",
        metavar="PATH",
    ),
]
SmartTokenUrlOption = Annotated[
    str | None,
    typer.Option(
        "--smart-token-url",
        help="SMART: the authorization server's token endpoint.",
        metavar="URL",
    ),
]
SmartKidOption = Annotated[
    str | None,
    typer.Option(
        "--smart-kid",
        help="SMART: key id for the JWT header (default: the key's JWK thumbprint).",
    ),
]
ConnectTimeoutOption = Annotated[
    float,
    typer.Option(
        "--connect-timeout", min=0.5, help="Seconds to wait for a connection.", metavar="S"
    ),
]
InsecureOption = Annotated[
    bool,
    typer.Option("--insecure", help="Do not verify the server's TLS certificate (testing only)."),
]


@dataclass(frozen=True)
class ServerArguments:
    """What the shared options collected (secrets are names of variables or files, not values)."""

    server: str
    auth: AuthOptions
    timeout: float
    connect_timeout: float
    retries: int
    insecure: bool
    max_connections: int


def build_client(arguments: ServerArguments) -> FhirClient:
    """The client the options describe; warns on stderr when TLS is off or credentials would
    travel in clear. Raises `PublishError` (a bad URL) or `AuthConfigError` (bad credentials)."""
    if not arguments.server.startswith(("http://", "https://")):
        raise PublishError(f"--server must be an http:// or https:// URL, not {arguments.server!r}")
    auth = build_auth(arguments.auth)
    if arguments.insecure:
        typer.echo("warning: --insecure: the server's TLS certificate is NOT verified", err=True)
    if sends_credentials_in_clear(arguments.server, auth is not None):
        typer.echo("warning: credentials will be sent unencrypted over http://", err=True)
    return FhirClient(
        arguments.server,
        auth=auth,
        verify=not arguments.insecure,
        max_connections=arguments.max_connections,
        timeouts=Timeouts(
            connect=arguments.connect_timeout, read=arguments.timeout, write=arguments.timeout
        ),
        retry=RetryPolicy(max_attempts=arguments.retries + 1),
    )


def exit_code_of(error: PublishError) -> ExitCode:
    """The named exit code of an error that stopped a whole run against the server (the codes
    `push` gives for the same faults)."""
    if isinstance(error, TlsFailure):
        return ExitCode.TLS_FAILED
    if isinstance(error, AuthError):
        return ExitCode.AUTH_REFUSED
    if isinstance(error, RetriesExhausted) and error.status_code is None:
        return ExitCode.SERVER_UNREACHABLE  # every attempt failed to connect
    if isinstance(error, OutcomeUnknown):
        return ExitCode.OUTCOME_UNKNOWN
    return ExitCode.RECORDS_FAILED
