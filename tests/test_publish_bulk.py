"""Bulk load of resource NDJSON: order, batching, the journal and resuming.

Faults come from ``httpx.MockTransport``; the end-to-end resume runs against the real HAPI
server (``fhir_server_url``), checking that every resource is there exactly once.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.errors import ExitCode, InputError
from fhirconv.publish import FhirClient
from fhirconv.publish.bulk import (
    JOURNAL_NAME,
    Journal,
    iter_batches,
    load_layers,
    push_ndjson,
    resource_files,
)
from fhirconv.publish.push import StopRule
from tests._publish_bundles import study_bundle, write_bundle

BASE = "https://fhir.test/r4"
Handler = Callable[[httpx.Request], httpx.Response]


def _cli(*args: str) -> list[str]:
    return ["push", *args] if hasattr(get_command(app), "commands") else [*args]


def ok(request: httpx.Request) -> httpx.Response:
    """A transaction-response creating every entry."""
    bundle = json.loads(request.content)
    return httpx.Response(200, json={"resourceType": "Bundle", "type": "transaction-response",
                                     "entry": [{"response": {
                                         "status": "201 Created",
                                         "location": f"{e['request']['url']}/_history/1"}}
                                         for e in bundle["entry"]]})


def client_for(handler: Handler, **kwargs: Any) -> FhirClient:
    return FhirClient(BASE, transport=httpx.MockTransport(handler), sleep=lambda s: None,
                      rng=random.Random(3), **kwargs)


def write_ndjson(folder: Path, studies: Iterable[str], tag: str = "") -> dict[str, list[str]]:
    """``<Type>.ndjson`` for the studies, as ``convert --format ndjson`` lays it out: shared
    resources once. Locations point to their Organization (so Location must wait for it).
    Returns the ids written per type."""
    folder.mkdir(parents=True, exist_ok=True)
    seen: dict[str, list[str]] = {}
    lines: dict[str, list[str]] = {}
    for index, nct in enumerate(studies):
        bundle = study_bundle(nct, sponsor=f"Sponsor {tag}{index % 3}",
                              sites=[f"Site {tag}{nct}", f"Shared Site {tag}"])
        org = bundle["entry"][0]["resource"]
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Location":
                resource["managingOrganization"] = {"reference": f"Organization/{org['id']}"}
            ids = seen.setdefault(resource["resourceType"], [])
            if resource["id"] in ids:
                continue
            ids.append(resource["id"])
            lines.setdefault(resource["resourceType"], []).append(json.dumps(resource))
    for kind, rows in lines.items():
        (folder / f"{kind}.ndjson").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return seen


def sent_types(request: httpx.Request) -> list[str]:
    return [e["resource"]["resourceType"] for e in json.loads(request.content)["entry"]]


def digest(request: httpx.Request) -> str:
    return hashlib.sha256(request.content).hexdigest()


# -- order and batching -------------------------------------------------------------------------


def test_layers_follow_the_references_in_the_data() -> None:
    graph = {
        "ResearchStudy": {"Organization", "Location", "Group", "PractitionerRole"},
        "Location": {"Organization"},
        "PractitionerRole": {"Practitioner", "Organization", "Location"},
        "Organization": {"Organization"},  # partOf: itself only, no wait
        "Practitioner": set(),
        "Group": set(),
        "Provenance": {"ResearchStudy", "Location", "Group"},
        "Basic": {"Patient"},  # a target not being loaded must already be on the server
    }
    assert load_layers(graph) == [
        ["Organization", "Practitioner", "Group", "Basic"],
        ["Location"],
        ["PractitionerRole"],
        ["ResearchStudy"],
        ["Provenance"],
    ]


def test_a_reference_cycle_shares_one_layer() -> None:
    graph = {"A": {"B"}, "B": {"A"}, "C": set(), "D": {"A"}}
    assert load_layers(graph) == [["C"], ["A", "B"], ["D"]]
    # No type is free at first: the cycle X⇄Y waits for nothing else, Z waits for it.
    graph = {"X": {"Y"}, "Y": {"X"}, "Z": {"X", "W"}, "W": {"Z"}}
    assert load_layers(graph) == [["X", "Y"], ["W", "Z"]]


def test_batches_cover_every_line_once_with_their_line_numbers(tmp_path: Path) -> None:
    rows = [json.dumps({"resourceType": "Group", "id": f"g{i}"}) for i in range(10)]
    rows.insert(4, "")  # a blank line is skipped, not counted as a resource
    path = tmp_path / "Group.ndjson"
    path.write_text("\n".join(rows) + "\n")
    batches = list(iter_batches(path, 3, BASE))
    assert [(b.first_line, b.last_line, b.size) for b in batches] == [  # type: ignore[union-attr]
        (1, 3, 3), (4, 7, 3), (8, 10, 3), (11, 11, 1)]
    entries = [e for b in batches for e in b.bundle["entry"]]  # type: ignore[union-attr]
    assert [e["request"] for e in entries] == [
        {"method": "PUT", "url": f"Group/g{i}"} for i in range(10)]
    assert entries[0]["fullUrl"] == f"{BASE}/Group/g0"
    assert len({b.digest for b in batches}) == 4  # type: ignore[union-attr]


def test_types_wait_for_their_targets_on_the_wire(tmp_path: Path) -> None:
    ids = write_ndjson(tmp_path, [f"NCT{n:08d}" for n in range(1, 13)])
    order: list[str] = []
    lock = threading.Lock()

    def slow(request: httpx.Request) -> httpx.Response:
        kinds = set(sent_types(request))
        assert len(kinds) == 1, "one type per batch"
        time.sleep(0.01 if "Organization" in kinds else 0)  # a slow first layer
        with lock:
            order.append(kinds.pop())
        return ok(request)

    summary = push_ndjson(resource_files([tmp_path]) or [], client_for(slow), batch_size=2,
                          concurrency=4)
    assert summary.exit_code == 0, summary.lines()
    position = {kind: [i for i, k in enumerate(order) if k == kind] for kind in set(order)}
    assert max(position["Organization"]) < min(position["Location"])  # Location → Organization
    assert max(position["Location"]) < min(position["ResearchStudy"])
    assert max(position["Group"]) < min(position["ResearchStudy"])
    assert summary.total("created") == sum(len(v) for v in ids.values())
    assert "Order: Organization, Group → Location → ResearchStudy" in summary.lines()


def test_batches_of_a_layer_go_in_parallel(tmp_path: Path) -> None:
    write_ndjson(tmp_path, [f"NCT{n:08d}" for n in range(1, 41)])
    in_flight = [0, 0]
    lock = threading.Lock()

    def counting(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return ok(request)

    summary = push_ndjson([tmp_path / "Location.ndjson"], client_for(counting), batch_size=5,
                          concurrency=3)
    assert summary.exit_code == 0
    assert in_flight[1] == 3


def test_self_referencing_type_is_sent_one_batch_at_a_time(tmp_path: Path) -> None:
    rows = [{"resourceType": "Organization", "id": "parent"}] + [
        {"resourceType": "Organization", "id": f"child{i}",
         "partOf": {"reference": "Organization/parent"}} for i in range(9)]
    (tmp_path / "Organization.ndjson").write_text("".join(json.dumps(r) + "\n" for r in rows))
    in_flight = [0, 0]
    lock = threading.Lock()

    def counting(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
        time.sleep(0.01)
        with lock:
            in_flight[0] -= 1
        return ok(request)

    summary = push_ndjson([tmp_path / "Organization.ndjson"], client_for(counting),
                          batch_size=2, concurrency=4)
    assert summary.exit_code == 0 and len(summary.batches) == 5
    assert in_flight[1] == 1
    assert summary.batches[0].study == "Organization.ndjson:1-2"


# -- the journal --------------------------------------------------------------------------------


class DiesAfter:
    """Answers ``k`` transactions, then the server is gone (connection refused)."""

    def __init__(self, k: int, answer: Handler = ok) -> None:
        self.k = k
        self.answer = answer
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            alive = len(self.sent) < self.k
            if alive:
                self.sent.append(digest(request))
        if not alive:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return self.answer(request)


def test_interrupted_load_resumes_without_resending(tmp_path: Path) -> None:
    write_ndjson(tmp_path, [f"NCT{n:08d}" for n in range(1, 21)])
    files = resource_files([tmp_path]) or []
    first = DiesAfter(5)
    broken = push_ndjson(files, client_for(first), batch_size=4, concurrency=2,
                         stop_rule=StopRule(max_connection_failures=2))
    assert broken.exit_code == ExitCode.SERVER_UNREACHABLE and broken.stopped is not None
    assert len(first.sent) == 5
    journal = (tmp_path / JOURNAL_NAME).read_text().splitlines()
    assert len(journal) == 5
    assert any("run the same command again to resume" in line for line in broken.lines())

    second = DiesAfter(10**6)
    resumed = push_ndjson(files, client_for(second), batch_size=4, concurrency=2)
    assert resumed.exit_code == 0, resumed.lines()
    assert resumed.skipped_batches == 5
    assert not set(first.sent) & set(second.sent), "a batch that landed was sent again"
    everything = push_ndjson(files, None, batch_size=4, dry_run=True, base_url=BASE,
                             journal_path=tmp_path / "fresh.journal")
    assert len(first.sent) + len(second.sent) == len(everything.batches)

    third = DiesAfter(10**6)
    done = push_ndjson(files, client_for(third), batch_size=4)
    assert third.sent == [] and done.exit_code == 0
    assert done.skipped_batches == len(everything.batches)


def test_journal_is_per_server_and_survives_a_torn_line(tmp_path: Path) -> None:
    write_ndjson(tmp_path / "in", [f"NCT{n:08d}" for n in range(1, 5)])
    files = resource_files([tmp_path / "in"]) or []
    journal = tmp_path / "load.journal"
    push_ndjson(files, client_for(ok), batch_size=3, journal_path=journal)
    landed = journal.read_text().splitlines()
    assert landed and all(json.loads(line)["server"] == BASE for line in landed)
    with journal.open("a") as handle:
        handle.write('{"server": "' + BASE + '", "sha2')  # killed in mid-write

    other = DiesAfter(10**6)
    elsewhere = FhirClient("https://other.test/fhir", transport=httpx.MockTransport(other))
    again = push_ndjson(files, elsewhere, batch_size=3, journal_path=journal)
    assert again.skipped_batches == 0 and len(other.sent) == len(landed)

    same = DiesAfter(10**6)
    resumed = push_ndjson(files, client_for(same), batch_size=3, journal_path=journal)
    assert same.sent == [] and resumed.skipped_batches == len(landed)
    assert Journal(journal, BASE).landed  # still readable after the torn line


def test_changed_lines_are_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "Group.ndjson"
    rows = [{"resourceType": "Group", "id": f"g{i}", "type": "person", "actual": False}
            for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    push_ndjson([path], client_for(ok), batch_size=3)
    rows[4]["name"] = "changed since the last load"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = DiesAfter(10**6)
    again = push_ndjson([path], client_for(script), batch_size=3)
    assert again.skipped_batches == 1 and len(script.sent) == 1
    assert [b.study for b in again.batches] == ["Group.ndjson:4-6"]


# -- bad input and faults -----------------------------------------------------------------------


def test_bad_lines_are_named_and_the_rest_is_sent(tmp_path: Path) -> None:
    path = tmp_path / "Group.ndjson"
    path.write_text(
        json.dumps({"resourceType": "Group", "id": "g1"}) + "\n"
        + '{"resourceType": "Group", "id": "g2"\n'  # truncated
        + json.dumps({"resourceType": "Group"}) + "\n"  # no id
        + json.dumps({"resourceType": "Group", "id": "bad id!"}) + "\n"
        + json.dumps({"resourceType": "Group", "id": "g5"}) + "\n"
    )
    summary = push_ndjson([path], client_for(ok), batch_size=10)
    assert summary.exit_code == ExitCode.BAD_NDJSON
    assert [b.line for b in summary.bad_lines] == [2, 3, 4]
    assert summary.total("created") == 2
    assert not (tmp_path / JOURNAL_NAME).exists()  # not journalled: reported again next time
    again = push_ndjson([path], client_for(ok), batch_size=10)
    assert [b.line for b in again.bad_lines] == [2, 3, 4] and again.exit_code == ExitCode.BAD_NDJSON
    text = "\n".join(summary.lines())
    assert "3 lines are no resource and were not sent: Group.ndjson:2: not valid JSON" in text
    assert "Group.ndjson:3: Group without a valid id" in text


def test_bundles_and_resources_mixed_are_refused(tmp_path: Path) -> None:
    write_ndjson(tmp_path, ["NCT00000001"])
    write_bundle(tmp_path, study_bundle("NCT00000002"))
    with pytest.raises(InputError, match="mix resource NDJSON"):
        resource_files([tmp_path])
    result = CliRunner().invoke(app, _cli(str(tmp_path), "--server", BASE))
    assert result.exit_code == 2 and "mix resource NDJSON" in result.output


def test_bundle_ndjson_is_not_taken_for_resources(tmp_path: Path) -> None:
    (tmp_path / "studies.ndjson").write_text(json.dumps(study_bundle("NCT00000003")) + "\n")
    assert resource_files([tmp_path]) is None


def test_an_empty_type_file_is_neither(tmp_path: Path) -> None:
    write_ndjson(tmp_path, ["NCT00000004"])
    (tmp_path / "Practitioner.ndjson").write_text("\n")
    found = resource_files([tmp_path]) or []
    assert tmp_path / "Practitioner.ndjson" not in found and len(found) == 4


def test_a_refused_batch_fails_alone(tmp_path: Path) -> None:
    write_ndjson(tmp_path, [f"NCT{n:08d}" for n in range(1, 7)])

    def refuse_one(request: httpx.Request) -> httpx.Response:
        urls = [e["request"]["url"] for e in json.loads(request.content)["entry"]]
        if "Group/NCT00000003-eligibility" in urls:
            return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": [{
                "severity": "error", "code": "value",
                "diagnostics": "HAPI-1821: Bundle.entry[0].resource.type: invalid"}]})
        return ok(request)

    summary = push_ndjson(resource_files([tmp_path]) or [], client_for(refuse_one),
                          batch_size=1)
    failed = [b for b in summary.batches if b.status == "failed"]
    assert [b.study for b in failed] == ["Group.ndjson:3-3"]
    assert "Bundle.entry[0].resource.type: invalid" in failed[0].line()
    assert summary.exit_code == 1 and summary.stopped is None
    journal = (tmp_path / JOURNAL_NAME).read_text()
    assert journal.count("\n") == len(summary.batches) - 1  # the failed batch is not in it


def test_401_stops_the_bulk_load_at_once(tmp_path: Path) -> None:
    write_ndjson(tmp_path, [f"NCT{n:08d}" for n in range(1, 21)])
    calls: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(401)

    summary = push_ndjson(resource_files([tmp_path]) or [], client_for(refuse), batch_size=2,
                          concurrency=1)
    assert len(calls) <= 2
    assert summary.stopped is not None and "--token-env" in summary.stopped
    assert Counter(b.status for b in summary.batches)["not-sent"] >= len(summary.batches) - 2
    assert not (tmp_path / JOURNAL_NAME).exists()


def test_cli_bulk_dry_run_and_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fhirconv.cli.server_options as cli_server_options

    write_ndjson(tmp_path, [f"NCT{n:08d}" for n in range(1, 4)])
    dry = CliRunner().invoke(app, _cli(str(tmp_path), "--dry-run", "--batch-size", "2"))
    assert dry.exit_code == 0, dry.output
    assert "PUT Organization/" in dry.stdout and "nothing was sent" in dry.stdout
    assert not (tmp_path / JOURNAL_NAME).exists()

    def capability(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"resourceType": "CapabilityStatement", "rest": [
                {"mode": "server", "operation": [{"name": "import", "definition": "x"}]}]})
        if request.url.path.endswith("/$import"):
            return httpx.Response(501)  # offered, then refused: nothing imported, fall back
        return ok(request)

    real = FhirClient
    monkeypatch.setattr(cli_server_options, "FhirClient", lambda url, **kw: real(
        url, transport=httpx.MockTransport(capability),
        **{k: v for k, v in kw.items() if k != "verify"}))
    journal = tmp_path / "elsewhere" / "my.journal"
    run = CliRunner().invoke(app, _cli(str(tmp_path), "--server", BASE, "--journal",
                                       str(journal), "--batch-size", "2"))
    assert run.exit_code == 0, run.output
    assert "the server offers $import" in run.stderr
    assert "refused $import: HTTP 501; loading with batched transactions instead" in run.stderr
    assert "Loaded " in run.stdout and f"Journal: {journal}" in run.stdout
    assert journal.exists()


# -- against the real HAPI server ---------------------------------------------------------------


def _count_on_server(client: FhirClient, kind: str, ids: list[str]) -> Counter[str]:
    """How many resources of ``kind`` the server holds for each id (search by _id)."""
    found: Counter[str] = Counter()
    for start in range(0, len(ids), 40):
        chunk = ids[start:start + 40]
        page = client.get_json(kind, {"_id": ",".join(chunk), "_count": "200",
                                      "_elements": "id"})
        found.update(e["resource"]["id"] for e in page.get("entry", []))
        assert page.get("total", len(page.get("entry", []))) == len(page.get("entry", []))
    return found


class RealUntil(httpx.BaseTransport):
    """Forwards to the real server for ``k`` transactions, then refuses connections."""

    def __init__(self, k: int | None) -> None:
        self.k = k
        self.posts: list[str] = []
        self.lock = threading.Lock()
        self.real = httpx.HTTPTransport()

    def close(self) -> None:
        self.real.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            with self.lock:
                if self.k is not None and len(self.posts) >= self.k:
                    raise httpx.ConnectError("[Errno 111] Connection refused")
                self.posts.append(hashlib.sha256(request.read()).hexdigest())
        return self.real.handle_request(request)


@pytest.mark.hapi
def test_killed_load_resumes_and_every_resource_is_there_once(
    fhir_server_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    studies = [f"NCT{tag}{n:02d}" for n in range(30)]  # fresh ids: nothing there before
    ids = write_ndjson(tmp_path, studies, tag=tag)
    files = resource_files([tmp_path]) or []
    plan = push_ndjson(files, None, batch_size=4, dry_run=True, base_url=fhir_server_url,
                       journal_path=tmp_path / "plan.journal")
    total = len(plan.batches)

    dying = RealUntil(k=total // 2)
    with FhirClient(fhir_server_url, transport=dying) as client:
        first = push_ndjson(files, client, batch_size=4, concurrency=3)
    assert first.stopped is not None and first.exit_code == ExitCode.SERVER_UNREACHABLE
    landed = len((tmp_path / JOURNAL_NAME).read_text().splitlines())
    assert landed == total // 2 == len(dying.posts)

    resuming = RealUntil(k=None)
    with FhirClient(fhir_server_url, transport=resuming) as client:
        second = push_ndjson(files, client, batch_size=4, concurrency=3)
        assert second.exit_code == 0, second.lines()
        assert second.skipped_batches == landed
        assert len(resuming.posts) == total - landed
        assert not set(dying.posts) & set(resuming.posts)
        for kind, kind_ids in ids.items():
            counts = _count_on_server(client, kind, kind_ids)
            assert set(counts) == set(kind_ids), f"{kind}: missing {set(kind_ids) - set(counts)}"
            assert set(counts.values()) == {1}, f"{kind}: duplicates"
            for rid in kind_ids[:3]:
                stored = client.get_json(f"{kind}/{rid}")
                assert stored["meta"]["versionId"] == "1"  # written once, never rewritten


@pytest.mark.hapi
def test_sigkilled_cli_load_resumes(fhir_server_url: str, tmp_path: Path) -> None:
    """A real kill -9 of ``fhirconv push`` mid-load, then the same command again."""
    import os
    import signal
    import subprocess
    import sys

    tag = uuid.uuid4().hex[:8]
    ids = write_ndjson(tmp_path, [f"NCT{tag}{n:02d}" for n in range(24)], tag=tag)
    journal = tmp_path / JOURNAL_NAME
    fhirconv = Path(sys.executable).with_name("fhirconv")
    command = [str(fhirconv), "push", str(tmp_path), "--server", fhir_server_url,
               "--batch-size", "3", "--concurrency", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the load ended before it could be killed"
    landed = journal.read_text().count("\n")
    assert landed >= 2

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Skipped {landed} batches" in resumed.stdout
    with FhirClient(fhir_server_url) as client:
        for kind, kind_ids in ids.items():
            counts = _count_on_server(client, kind, kind_ids)
            assert set(counts) == set(kind_ids) and set(counts.values()) == {1}, kind

