"""A real HAPI FHIR R4 server for the integration tests (``servers/hapi``).

Import the session fixture where it is needed (``conftest.py`` or a test module)::

    from tests.fhir_server import fhir_server_url  # noqa: F401

Where the server comes from, in order:

1. ``FHIRCONV_TEST_SERVER`` (a base URL such as ``http://127.0.0.1:8080/fhir``): used as it is;
   it is neither started nor stopped here. CI starts the server once and sets this.
2. ``java`` and ``mvn`` on PATH: ``servers/hapi/start`` builds the jar if needed and starts the
   server (about a minute); ``servers/hapi/stop`` stops it when the session ends, unless it was
   already running before the session began.
3. Otherwise the tests that need the server are skipped, except under ``CI=true``, where a
   server that cannot be had fails the tests instead of skipping them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
SERVER_DIR = REPO / "servers" / "hapi"
START = SERVER_DIR / "start"
STOP = SERVER_DIR / "stop"
LOG = SERVER_DIR / "run" / "server.log"
PIDFILE = SERVER_DIR / "run" / "pid"

ENV_URL = "FHIRCONV_TEST_SERVER"
HOW_TO_ENABLE = (
    "install Java 17 and Maven (the server is built and started by servers/hapi/start), "
    f"or set {ENV_URL} to the base URL of a running FHIR R4 server"
)
# Allowance for a first build (Maven downloads HAPI's dependencies) on top of start-up.
BUILD_ALLOWANCE_S = 1200

# Shared by every place the fixture is imported into, so one session starts one server.
_started_url: str | None = None


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> NoReturn:
    """Skip on a developer machine; fail under CI, where the tests must run."""
    if _in_ci():
        pytest.fail(f"HAPI FHIR test server unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"HAPI FHIR test server unavailable: {reason}")


def _log_tail(lines: int = 80) -> str:
    try:
        text = LOG.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


def _our_server_running() -> bool:
    """True when a server started by servers/hapi/start is alive (per its pid file)."""
    try:
        pid = int(PIDFILE.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _check_metadata(base_url: str) -> None:
    """Fail (never skip) when a server we were pointed at does not answer /metadata."""
    try:
        response = httpx.get(
            f"{base_url}/metadata", headers={"Accept": "application/fhir+json"}, timeout=60
        )
        kind = response.json().get("resourceType")
    except (httpx.HTTPError, ValueError) as exc:
        pytest.fail(f"{ENV_URL}={base_url}: GET /metadata failed: {exc}", pytrace=False)
    if response.status_code != 200 or kind != "CapabilityStatement":
        pytest.fail(
            f"{ENV_URL}={base_url}: GET /metadata gave HTTP {response.status_code} "
            f"resourceType={kind!r}, not a CapabilityStatement",
            pytrace=False,
        )


def _start() -> str:
    start_timeout = int(os.environ.get("HAPI_START_TIMEOUT", "300"))
    try:
        proc = subprocess.run(
            [str(START)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=start_timeout + BUILD_ALLOWANCE_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        subprocess.run([str(STOP)], capture_output=True, check=False)
        _unavailable(f"servers/hapi/start did not finish in time; server log tail:\n{_log_tail()}")
    lines = proc.stdout.strip().splitlines()
    url = lines[-1].strip() if lines else ""
    if proc.returncode != 0 or not url.startswith("http"):
        _unavailable(
            f"servers/hapi/start exited {proc.returncode}\n{proc.stderr[-6000:]}\n"
            f"server log tail:\n{_log_tail()}"
        )
    return url


@pytest.fixture(scope="session")
def fhir_server_url() -> Iterator[str]:
    """Base URL (no trailing slash) of a HAPI FHIR R4 server for this test session."""
    global _started_url

    given = os.environ.get(ENV_URL, "").strip().rstrip("/")
    if given:
        _check_metadata(given)
        yield given
        return

    if _started_url is not None:  # the fixture was imported twice: reuse the first server
        yield _started_url
        return

    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{' and '.join(missing)} not on PATH; to enable: {HOW_TO_ENABLE}")

    was_running = _our_server_running()
    url = _start()
    _started_url = url
    try:
        yield url
    finally:
        _started_url = None
        if not was_running:
            subprocess.run([str(STOP)], capture_output=True, check=False, timeout=120)
