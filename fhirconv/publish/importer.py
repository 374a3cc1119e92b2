"""Bulk ``$import`` of resource NDJSON: the server fetches the files itself from an address the
client controls.

``import_ndjson`` serves exactly the given files over HTTP (``http.server`` on a thread, nothing
else in their directory is readable), kicks off ``POST [base]/$import`` with HAPI's Parameters
(``inputFormat`` application/fhir+ndjson, ``inputSource``, ``storageDetail``, one ``input`` per
file with ``type`` and ``url``; ``Prefer: respond-async``), then polls the status URL the server
answers with (``Content-Location``) until the job is done, and stops serving.

The files are listed in dependency order (``bulk.load_layers``). The server must be able to
reach the address: ``advertise`` is the host (and port) it should use — by default the
loopback address, right when the server runs on this machine. A server that refuses the
kick-off (``ImportRefused``) leaves nothing done, so the caller can fall back to batched
transactions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from fhirconv.errors import PublishError
from fhirconv.publish.client import FhirClient

NDJSON_TYPE = "application/fhir+ndjson"
Sleep = Callable[[float], None]


class ImportRefused(PublishError):
    """The server did not accept the ``$import`` kick-off: nothing was imported."""


class ImportFailed(PublishError):
    """The ``$import`` job was accepted but failed, or its status could not be followed."""


@dataclass(frozen=True)
class ImportResult:
    files: int
    resources: int
    elapsed: float
    status_url: str | None
    outcome: Any  # the server's final answer (Parameters or OperationOutcome), when JSON


class _FileServer(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, Path]
    requests: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _FileServer

    def do_GET(self) -> None:  # http.server's name for the GET handler
        name = unquote(self.path.lstrip("/").split("?", 1)[0])
        path = self.server.files.get(name)
        self.server.requests.append(name)
        if path is None:
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", NDJSON_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the server's requests are not the user's business."""


@contextmanager
def serve_files(
    files: Sequence[Path], bind: str = "127.0.0.1", advertise: str | None = None
) -> Iterator[tuple[str, _FileServer]]:
    """Serve `files` (by name) until the block ends; yields the base URL and the server."""
    server = _FileServer((bind, 0), _Handler)
    server.files = {path.name: path for path in files}
    server.requests = []
    port = server.server_address[1]
    host = advertise or bind
    base = f"http://{host}" if ":" in host else f"http://{host}:{port}"
    thread = threading.Thread(target=server.serve_forever, name="fhirconv-import-files")
    thread.daemon = True
    thread.start()
    try:
        yield base, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def import_parameters(base: str, files: Sequence[tuple[str, Path]]) -> dict[str, Any]:
    """The kick-off's Parameters for (resource type, file) pairs served under `base`."""
    inputs = [
        {
            "name": "input",
            "part": [
                {"name": "type", "valueCode": kind},
                {"name": "url", "valueUri": f"{base}/{quote(path.name)}"},
            ],
        }
        for kind, path in files
    ]
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "inputFormat", "valueCode": NDJSON_TYPE},
            {"name": "inputSource", "valueUri": base},
            {"name": "storageDetail", "part": [{"name": "type", "valueCode": "https"}]},
            *inputs,
        ],
    }


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def import_ndjson(
    files: Sequence[tuple[str, Path]],
    client: FhirClient,
    *,
    bind: str = "127.0.0.1",
    advertise: str | None = None,
    poll_interval: float = 1.0,
    timeout: float = 3600.0,
    sleep: Sleep | None = None,
) -> ImportResult:
    """Import (resource type, NDJSON file) pairs through ``$import`` (module docstring).

    Raises ``ImportRefused`` when the kick-off is refused, ``ImportFailed`` when the job fails
    or does not finish within ``timeout`` seconds."""
    started = time.monotonic()
    with serve_files([path for _, path in files], bind, advertise) as (base, _):
        response = client.request(
            "POST",
            "$import",
            json=import_parameters(base, files),
            headers={"Prefer": "respond-async"},
            idempotent=False,
        )
        if response.status_code >= 400:
            raise ImportRefused(f"the server refused $import: HTTP {response.status_code}")
        status_url = response.headers.get("Content-Location")
        outcome: Any = _json(response)
        if response.status_code == 202 and not status_url:
            raise ImportFailed("the server accepted $import but gave no status URL to follow")
        while response.status_code == 202 and status_url:
            if time.monotonic() - started > timeout:
                raise ImportFailed(f"$import did not finish in {timeout:.0f} s ({status_url})")
            (sleep or time.sleep)(poll_interval)
            response = client.request("GET", status_url)
            outcome = _json(response)
            if response.status_code >= 400:
                raise ImportFailed(
                    f"the $import job failed: HTTP {response.status_code} ({status_url})"
                )
    resources = sum(_count_lines(path) for _, path in files)
    return ImportResult(len(files), resources, time.monotonic() - started, status_url, outcome)


def _json(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


__all__ = ["ImportFailed", "ImportRefused", "ImportResult", "import_ndjson", "serve_files"]
