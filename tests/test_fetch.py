"""`fhirconv fetch` and `convert NCT…` against a local replay of the ClinicalTrials.gov API v2.

No network but 127.0.0.1: `Replay` is a stdlib HTTP server, started per test on a free port,
serving the real API v2 records in tests/fixtures/ctgov-v2 the way the API does:

* ``GET /studies/{nctId}?format=json`` → the study, or 404 with the API's plain-text message;
* ``GET /studies?…`` → ``{"studies": [...], "nextPageToken": ..., "totalCount": ...}`` pages,
  filtered by ``query.cond`` (conditions and keywords), ``filter.overallStatus``, ``filter.ids``
  and ``filter.advanced`` (``AREA[LastUpdatePostDate]RANGE[D,MAX]``, ``AREA[Phase]…``), ordered
  by NCT id. A page token is only valid with the parameters of the first page (as the API
  requires) and unknown parameters are a 400, so a wrong mapping fails loudly;
* ``faults``: answers (status, headers, body) served, in order, before the normal ones.

The server logs every request (path and query parameters) for the assertions.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import random
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.convert import convert_inputs
from fhirconv.errors import ExitCode, FhirconvError, RecordError
from fhirconv.fetch import (
    BASE_URL_ENV,
    CtgovClient,
    FetchError,
    QueryError,
    RateLimiter,
    StudyFetcher,
    api_params,
    parse_query,
    resolve_base_url,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ctgov-v2"
Json = dict[str, Any]

_KNOWN_PARAMS = {
    "format", "pageSize", "pageToken", "countTotal", "query.cond", "query.term", "query.intr",
    "query.spons", "query.locn", "query.titles", "query.outc", "query.id", "query.lead",
    "filter.overallStatus", "filter.ids", "filter.advanced", "filter.geo", "aggFilters", "sort",
}
_SINCE = re.compile(r"AREA\[LastUpdatePostDate\]RANGE\[(\d{4}-\d{2}-\d{2}),MAX\]")
_PHASE = re.compile(r"AREA\[Phase\]\(?([A-Z0-9_ ]+(?: OR [A-Z0-9_]+)*)\)?")


def _records() -> dict[str, Json]:
    studies = {}
    for file in sorted(FIXTURES.glob("NCT*.json")):
        study = json.loads(file.read_text(encoding="utf-8"))
        studies[study["protocolSection"]["identificationModule"]["nctId"]] = study
    return studies


RECORDS = _records()


def _nct(study: Json) -> str:
    return str(study["protocolSection"]["identificationModule"]["nctId"])


def _updated(study: Json) -> str:
    return str(study["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"])


@dataclass
class Replay:
    """The replay server's state: records served, scripted faults, and the request log."""

    studies: dict[str, Json]
    faults: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    redirects: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    issued_tokens: list[str] = field(default_factory=list)
    _tokens: dict[str, tuple[str, int]] = field(default_factory=dict)
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def page_tokens(self) -> list[str | None]:
        return [params.get("pageToken") for path, params in self.log if path == "/api/v2/studies"]

    def answer(self, path: str, params: dict[str, str]) -> tuple[int, dict[str, str], str]:
        with self.lock:
            self.log.append((path, params))
            if self.faults:
                return self.faults.pop(0)
            if path == "/api/v2/studies":
                return self._search(params)
            match = re.fullmatch(r"/api/v2/studies/([^/]+)", path)
            if match:
                nct = match.group(1)
                if nct in self.redirects:
                    moved = f"/api/v2/studies/{self.redirects[nct]}?format=json"
                    return 301, {"Location": moved}, ""
                if nct in self.studies:
                    return 200, {}, json.dumps(self.studies[nct])
                return 404, {"Content-Type": "text/plain"}, f"Study not found: {nct}"
            return 404, {}, "not found"

    def _search(self, params: dict[str, str]) -> tuple[int, dict[str, str], str]:
        unknown = set(params) - _KNOWN_PARAMS
        if unknown:
            return 400, {"Content-Type": "text/plain"}, f"unknown parameter(s) {sorted(unknown)}"
        paging = {"pageToken", "pageSize", "countTotal"}
        fixed = {k: v for k, v in params.items() if k not in paging}
        signature = json.dumps(fixed, sort_keys=True)
        start = 0
        if "pageToken" in params:
            bound = self._tokens.get(params["pageToken"])
            if bound is None or bound[0] != signature:
                return 400, {"Content-Type": "text/plain"}, "invalid pageToken for these parameters"
            start = bound[1]
        matches = [s for _, s in sorted(self.studies.items()) if _matches(s, params)]
        size = int(params.get("pageSize", "10"))
        page: Json = {"studies": matches[start:start + size]}
        if params.get("countTotal") == "true":
            page["totalCount"] = len(matches)
        if start + size < len(matches):
            token = f"NF0g5J{len(self.issued_tokens) + 1:06d}"  # opaque, shaped like the API's
            self._tokens[token] = (signature, start + size)
            self.issued_tokens.append(token)
            page["nextPageToken"] = token
        return 200, {}, json.dumps(page)


def _matches(study: Json, params: dict[str, str]) -> bool:
    protocol = study["protocolSection"]
    if "query.cond" in params:
        words = [*protocol["conditionsModule"].get("conditions", []),
                 *protocol["conditionsModule"].get("keywords", [])]
        if not any(params["query.cond"].lower() in w.lower() for w in words):
            return False
    statuses = params.get("filter.overallStatus")
    if statuses and protocol["statusModule"]["overallStatus"] not in statuses.split(","):
        return False
    if "filter.ids" in params and _nct(study) not in params["filter.ids"].split(","):
        return False
    advanced = params.get("filter.advanced", "")
    since = _SINCE.search(advanced)
    if since and _updated(study) < since.group(1):
        return False
    phase = _PHASE.search(advanced)
    if phase:
        wanted = {p.strip() for p in phase.group(1).split(" OR ")}
        if not wanted & set(protocol.get("designModule", {}).get("phases", [])):
            return False
    return True


@pytest.fixture
def replay() -> Iterator[Replay]:
    state = Replay(studies=dict(RECORDS))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            status, headers, body = state.answer(url.path, dict(parse_qsl(url.query)))
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/api/v2"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class FakeTime:
    """An injected clock and sleep: sleeping advances the clock, and every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def client(replay: Replay, fake: FakeTime | None = None, **options: Any) -> CtgovClient:
    fake = fake or FakeTime()
    options.setdefault("rate", 0)
    return CtgovClient(replay.base_url, sleep=fake.sleep, clock=fake.clock,
                       rng=random.Random(4), **options)


# --- single studies -------------------------------------------------------------------------


def test_study_returns_the_recorded_record(replay: Replay) -> None:
    with client(replay) as api:
        study = api.study("NCT02513394")
    assert study == RECORDS["NCT02513394"]
    assert replay.log == [("/api/v2/studies/NCT02513394", {"format": "json"})]


def test_study_accepts_a_lower_case_id_and_rejects_a_malformed_one(replay: Replay) -> None:
    with client(replay) as api:
        assert _nct(api.study("nct00007696")) == "NCT00007696"
        with pytest.raises(QueryError, match="not an NCT id"):
            api.study("NCT123")
    assert len(replay.log) == 1


def test_unknown_study_is_a_fetch_error_naming_it(replay: Replay) -> None:
    with client(replay) as api, pytest.raises(FetchError) as caught:
        api.study("NCT99999999")
    error = caught.value
    assert isinstance(error, FhirconvError)
    assert error.status == 404 and error.nct_id == "NCT99999999"
    assert str(error).startswith("no such study NCT99999999")
    assert "/studies/NCT99999999" in str(error)
    assert len(replay.log) == 1  # a 404 is an answer, not retried


def test_an_old_id_follows_the_redirect_to_the_current_record(replay: Replay) -> None:
    replay.redirects["NCT00000042"] = "NCT00184067"
    with client(replay) as api:
        assert _nct(api.study("NCT00000042")) == "NCT00184067"


def test_an_answer_that_is_not_a_study_is_an_error(replay: Replay) -> None:
    replay.faults.append((200, {}, "<html>maintenance</html>"))
    replay.faults.append((200, {}, '{"hello": 1}'))
    with client(replay) as api:
        with pytest.raises(FetchError, match="not JSON"):
            api.study("NCT00184067")
        with pytest.raises(FetchError, match="no protocolSection"):
            api.study("NCT00184067")


# --- paging and --since ------------------------------------------------------------------------


def test_search_follows_next_page_tokens_to_the_end(replay: Replay) -> None:
    module = "conditionsModule"
    expected = [n for n, s in sorted(RECORDS.items())
                if any("erectile dysfunction" in c.lower()
                       for c in [*s["protocolSection"][module]["conditions"],
                                 *s["protocolSection"][module].get("keywords", [])])]
    assert len(expected) == 6
    pages: list[tuple[int, int | None]] = []
    with client(replay) as api:
        got = [_nct(s) for s in api.search(
            {"condition": "erectile dysfunction"}, page_size=2,
            progress=lambda done, total: pages.append((done, total)))]
        stats = api.stats
    assert got == expected  # all of them, in API order, none twice
    assert len(replay.issued_tokens) == 2  # three pages: 2 + 2 + 2
    assert replay.page_tokens == [None, *replay.issued_tokens]
    first, second, third = (params for _, params in replay.log)
    assert first == {"query.cond": "erectile dysfunction", "format": "json", "pageSize": "2",
                     "countTotal": "true"}
    assert {k: v for k, v in second.items() if k != "pageToken"} == {
        "query.cond": "erectile dysfunction", "format": "json", "pageSize": "2"}
    assert third["pageToken"] == replay.issued_tokens[1]
    assert pages == [(2, 6), (4, 6), (6, 6)]
    assert (stats.pages, stats.studies, stats.requests) == (3, 6, 3)


def test_search_stops_at_the_limit_without_fetching_more_pages(replay: Replay) -> None:
    with client(replay) as api:
        got = list(api.search({"condition": "erectile dysfunction"}, page_size=2, limit=3))
    assert len(got) == 3
    assert replay.page_tokens == [None, replay.issued_tokens[0]]


def test_search_skips_a_study_repeated_on_a_later_page(replay: Replay) -> None:
    first = {"studies": [RECORDS["NCT00142506"], RECORDS["NCT00173134"]], "nextPageToken": "t1"}
    second = {"studies": [RECORDS["NCT00173134"], RECORDS["NCT00569413"]]}
    replay.faults += [(200, {}, json.dumps(first)), (200, {}, json.dumps(second))]
    with client(replay) as api:
        got = [_nct(s) for s in api.search({"condition": "erectile"})]
        assert api.stats.duplicates == 1
    assert got == ["NCT00142506", "NCT00173134", "NCT00569413"]


def test_search_refuses_to_loop_on_a_repeated_page_token(replay: Replay) -> None:
    page = {"studies": [RECORDS["NCT00142506"]], "nextPageToken": "again"}
    replay.faults += [(200, {}, json.dumps(page))] * 2
    with client(replay) as api, pytest.raises(FetchError, match="again"):
        list(api.search({"condition": "erectile"}))


def test_since_becomes_a_last_update_range_the_server_filters_on(replay: Replay) -> None:
    with client(replay) as api:
        got = [_nct(s) for s in api.search({}, since=date(2023, 1, 1), page_size=3)]
    expected = sorted(n for n, s in RECORDS.items() if _updated(s) >= "2023-01-01")
    assert got == expected == ["NCT00499317", "NCT02513394", "NCT03511846", "NCT05798663"]
    assert replay.log[0][1]["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2023-01-01,MAX]"
    assert replay.page_tokens == [None, replay.issued_tokens[0]]


def test_since_and_phase_are_combined_in_one_advanced_filter(replay: Replay) -> None:
    with client(replay) as api:
        got = [_nct(s) for s in api.search({"phase": "3,PHASE1"}, since=date(2020, 1, 1))]
    assert replay.log[0][1]["filter.advanced"] == (
        "(AREA[Phase](PHASE3 OR PHASE1)) AND (AREA[LastUpdatePostDate]RANGE[2020-01-01,MAX])")
    assert got == ["NCT00576225", "NCT01341548", "NCT01949129", "NCT02513394", "NCT03511846"]


def test_friendly_query_keys_map_to_api_parameters() -> None:
    assert api_params(parse_query(
        "condition=lupus%20nephritis&status=recruiting&status=NOT_YET_RECRUITING"
        "&intervention=rituximab&sponsor=NIH&location=Boston&term=renal&phase=2"
    )) == {
        "query.cond": "lupus nephritis",
        "filter.overallStatus": "RECRUITING,NOT_YET_RECRUITING",
        "query.intr": "rituximab",
        "query.spons": "NIH",
        "query.locn": "Boston",
        "query.term": "renal",
        "filter.advanced": "AREA[Phase]PHASE2",
    }
    passed = "query.titles=TRAIL&filter.geo=distance(39,-77,50mi)&aggFilters=results:with"
    assert api_params(parse_query(passed)) == dict(parse_qsl(passed))
    for bad, message in [("colour=red", "unknown query key"), ("status=RUNNING", "unknown status"),
                         ("phase=7", "unknown phase"), ("pageSize=5", "set by fhirconv"),
                         ("term=a&term=b", "given twice"), ("condition=", "no value"),
                         ("", "empty")]:
        with pytest.raises(QueryError, match=message):
            api_params(parse_query(bad))


def test_unknown_parameters_are_the_servers_400_with_its_message(replay: Replay) -> None:
    with client(replay) as api, pytest.raises(FetchError) as caught:
        list(api.search({"query.nonsense": "x"}))
    assert caught.value.status == 400
    assert "unknown parameter" in str(caught.value)


# --- retries and politeness ----------------------------------------------------------------------


def test_429_waits_as_long_as_retry_after_says_then_succeeds(replay: Replay) -> None:
    fake = FakeTime()
    replay.faults.append((429, {"Retry-After": "7"}, "Too Many Requests"))
    with client(replay, fake) as api:
        assert _nct(api.study("NCT00184067")) == "NCT00184067"
        assert api.stats.retries == 1
    assert fake.sleeps == [7.0]
    assert len(replay.log) == 2


def test_503_backs_off_then_succeeds(replay: Replay) -> None:
    fake = FakeTime()
    replay.faults.append((503, {}, "Service Unavailable"))
    replay.faults.append((502, {}, "Bad Gateway"))
    with client(replay, fake) as api:
        got = [_nct(s) for s in api.search({"condition": "melanoma"})]
    assert got == ["NCT00184067"]
    assert len(fake.sleeps) == 2
    assert 0 <= fake.sleeps[0] <= 0.5 and 0 <= fake.sleeps[1] <= 1.0  # full jitter, doubling


def test_retries_are_bounded_and_the_error_names_url_and_status(replay: Replay) -> None:
    fake = FakeTime()
    replay.faults += [(503, {}, "Service Unavailable")] * 5
    with client(replay, fake, retries=2) as api, pytest.raises(FetchError) as caught:
        api.study("NCT00184067")
    assert caught.value.status == 503 and caught.value.nct_id == "NCT00184067"
    assert "HTTP 503" in str(caught.value) and "gave up after 3 attempt(s)" in str(caught.value)
    assert "/studies/NCT00184067" in str(caught.value)
    assert len(replay.log) == 3 and len(fake.sleeps) == 2


def test_connection_errors_are_retried_then_reported(replay: Replay) -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    fake = FakeTime()
    with client(replay, fake, retries=3, transport=httpx.MockTransport(refuse)) as api, \
            pytest.raises(FetchError, match="could not connect"):
        api.study("NCT00184067")
    assert len(calls) == 4 and len(fake.sleeps) == 3


def test_rate_limiter_spaces_requests() -> None:
    fake = FakeTime()
    bucket = RateLimiter(0.8, clock=fake.clock, sleep=fake.sleep)
    assert bucket.acquire() == 0.0  # the first request goes at once
    bucket.acquire()
    bucket.acquire()
    assert fake.sleeps == pytest.approx([1.25, 1.25])
    fake.now += 10  # idle time refills at most `burst` tokens
    assert bucket.acquire() == 0.0
    bucket.acquire()
    assert fake.sleeps == pytest.approx([1.25, 1.25, 1.25])
    burst = RateLimiter(2, burst=3, clock=fake.clock, sleep=fake.sleep)
    assert [burst.acquire() for _ in range(4)] == pytest.approx([0, 0, 0, 0.5])


def test_client_requests_go_through_the_rate_limiter(replay: Replay) -> None:
    fake = FakeTime()
    with client(replay, fake, rate=0.8) as api:
        for nct in ["NCT00184067", "NCT00205894", "NCT00499317"]:
            api.study(nct)
        assert api.stats.rate_waited == pytest.approx(2.5)
    assert fake.sleeps == pytest.approx([1.25, 1.25])


def test_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    assert resolve_base_url() == "https://clinicaltrials.gov/api/v2"
    monkeypatch.setenv(BASE_URL_ENV, "http://127.0.0.1:9/api/v2/")
    assert resolve_base_url() == "http://127.0.0.1:9/api/v2"
    assert resolve_base_url("http://mirror/api/v2") == "http://mirror/api/v2"


# --- the command line ------------------------------------------------------------------------

runner = CliRunner()


def fetch_cli(replay: Replay, *args: str) -> Any:
    return runner.invoke(app, ["fetch", "--base-url", replay.base_url, "--rate", "0", *args])


def test_cli_fetch_ids_to_a_directory_then_convert_it(replay: Replay, tmp_path: Path) -> None:
    studies = tmp_path / "studies"
    result = fetch_cli(replay, "NCT02513394", "NCT00184067", "nct02513394", "-o", str(studies))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in studies.iterdir()) == ["NCT00184067.json", "NCT02513394.json"]
    assert json.loads((studies / "NCT02513394.json").read_text()) == RECORDS["NCT02513394"]
    assert "fetched 2 studies" in result.stderr and "0 failed" in result.stderr
    assert len(replay.log) == 2  # the repeated id is fetched once

    converted = runner.invoke(app, ["convert", str(studies), "-o", str(tmp_path / "bundles"), "-q"])
    assert converted.exit_code == 0, converted.stderr
    assert sorted(p.name for p in (tmp_path / "bundles").glob("*.json")) == [
        "NCT00184067.json", "NCT02513394.json"]


def test_cli_fetch_search_to_ndjson_then_convert_it(replay: Replay, tmp_path: Path) -> None:
    out = tmp_path / "lupus.ndjson"
    result = fetch_cli(replay, "--query", "condition=erectile dysfunction&status=COMPLETED",
                       "--page-size", "1", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    lines = out.read_text().splitlines()
    assert [_nct(json.loads(line)) for line in lines] == ["NCT00142506", "NCT00656188"]
    assert replay.log[0][1]["filter.overallStatus"] == "COMPLETED"
    assert replay.page_tokens == [None, replay.issued_tokens[0]]

    converted = runner.invoke(app, ["convert", str(out), "-o", str(tmp_path / "bundles"), "-q"])
    assert converted.exit_code == 0, converted.stderr
    assert "converted 2 studies, 0 failed" in converted.stderr


def test_cli_fetch_to_stdout_with_since_and_limit(replay: Replay) -> None:
    result = fetch_cli(replay, "--query", "filter.overallStatus=ACTIVE_NOT_RECRUITING,RECRUITING",
                       "--since", "2023-07-01", "--limit", "5")
    assert result.exit_code == 0, result.stderr
    got = [_nct(json.loads(line)) for line in result.stdout.splitlines()]
    assert got == ["NCT00499317", "NCT05798663"]  # NCT02513394 was last updated 2023-06-15
    assert replay.log[0][1]["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2023-07-01,MAX]"


def test_cli_fetch_ids_since_refreshes_only_the_updated_ones(
    replay: Replay, tmp_path: Path
) -> None:
    result = fetch_cli(replay, "NCT00007696", "NCT03511846", "NCT05798663",
                       "--since", "2025-01-01", "-o", str(tmp_path))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["NCT03511846.json", "NCT05798663.json"]
    assert "2 of 3 requested studies updated since 2025-01-01" in result.stderr
    assert len(replay.log) == 1
    assert replay.log[0][1]["filter.ids"] == "NCT00007696,NCT03511846,NCT05798663"


def test_fetch_since_alone_feeds_an_incremental_convert(replay: Replay, tmp_path: Path) -> None:
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    everything = fetch_cli(replay, "--query", "term=a OR NOT a", "-o", str(corpus))
    assert everything.exit_code == 0, everything.stderr
    first = runner.invoke(app, ["convert", str(corpus), "-o", str(out), "-q"])
    assert f"refresh: {len(RECORDS)} new, 0 changed, 0 unchanged, 0 gone" in first.stderr
    # Upstream, one study recently updated changes; another, updated long ago, changes too
    # but is not fetched by --since (its last update is old), so it stays as it was.
    for nct_id, title in [("NCT00499317", "New"), ("NCT00007696", "Old")]:
        changed = copy.deepcopy(RECORDS[nct_id])  # RECORDS is shared by every test
        changed["protocolSection"]["identificationModule"]["briefTitle"] = title
        replay.studies[nct_id] = changed
    replay.log.clear()
    since = fetch_cli(replay, "--since", "2023-07-01", "-o", str(corpus))
    assert since.exit_code == 0, since.stderr
    assert replay.log[0][1]["filter.advanced"] == "AREA[LastUpdatePostDate]RANGE[2023-07-01,MAX]"
    again = runner.invoke(app, ["convert", str(corpus), "-o", str(out), "-q"])
    assert again.exit_code == 0, again.stderr
    unchanged = len(RECORDS) - 1
    assert f"refresh: 0 new, 1 changed, {unchanged} unchanged, 0 gone" in again.stderr
    bundle = json.loads((out / "NCT00499317.json").read_text())
    assert bundle["entry"][0]["resource"]["title"] == "New"


def test_cli_fetch_a_missing_id_fails_but_the_others_are_written(
    replay: Replay, tmp_path: Path
) -> None:
    result = fetch_cli(replay, "NCT99999999", "NCT00184067", "-o", str(tmp_path))
    assert result.exit_code == 1
    assert "no such study NCT99999999" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["NCT00184067.json"]
    assert "fetched 1 study" in result.stderr and "1 failed" in result.stderr


@pytest.mark.parametrize("args, message", [
    ([], "give NCT ids, --query, --since"),
    (["NCT1234"], "not an NCT id"),
    (["--query", "colour=red"], "unknown query key"),
    (["NCT00184067", "--since", "last tuesday"], "YYYY-MM-DD"),
    (["NCT00184067", "-o", "out.json"], ".ndjson file"),
])
def test_cli_fetch_usage_errors_exit_2(replay: Replay, args: list[str], message: str) -> None:
    result = fetch_cli(replay, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert replay.log == []


def test_convert_fetches_nct_ids_from_the_configured_server(
    replay: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BASE_URL_ENV, replay.base_url)
    out = tmp_path / "out.json"
    result = runner.invoke(app, ["convert", "NCT02513394", "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    bundle = json.loads(out.read_text())
    assert bundle["resourceType"] == "Bundle"
    study = next(e["resource"] for e in bundle["entry"]
                 if e["resource"]["resourceType"] == "ResearchStudy")
    assert any(i.get("value") == "NCT02513394" for i in study["identifier"])
    assert replay.log == [("/api/v2/studies/NCT02513394", {"format": "json"})]


def test_convert_reports_a_missing_nct_id_and_converts_the_rest(
    replay: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(BASE_URL_ENV, replay.base_url)
    result = runner.invoke(app, ["convert", "NCT99999999", str(FIXTURES / "NCT00184067.json"),
                                 "NCT00205894", "-o", str(tmp_path), "-q"])
    assert result.exit_code == 1
    assert "no such study NCT99999999" in result.stderr
    written = sorted(p.name for p in tmp_path.glob("*.json"))
    assert written == ["NCT00184067.json", "NCT00205894.json"]


def test_convert_prefers_an_existing_path_named_like_an_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NCT00184067").write_text((FIXTURES / "NCT00184067.json").read_text())

    def no_network(nct_id: str) -> str:
        raise AssertionError(f"fetched {nct_id}")

    results = list(convert_inputs(["NCT00184067"], fetcher=no_network))
    assert [r.nct_id for r in results if not isinstance(r, RecordError)] == ["NCT00184067"]


def test_study_fetcher_opens_no_connection_until_used(replay: Replay) -> None:
    with StudyFetcher(replay.base_url, rate=0) as fetcher:
        assert replay.log == []
        assert _nct(json.loads(fetcher("NCT00184067"))) == "NCT00184067"


def test_progress_bar_is_off_under_quiet_and_off_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fhirconv.cli.progress import progress_bar

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    with progress_bar("fetching", quiet=True) as quiet_bar:
        quiet_bar.update(1, 2)
        quiet_bar.echo("a line")
    assert not quiet_bar.enabled
    assert "a line" in capsys.readouterr().err
    with progress_bar("fetching", quiet=False) as bar:
        assert bar.enabled
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    with progress_bar("fetching", quiet=False) as piped:
        assert not piped.enabled


def _full_disk(monkeypatch: pytest.MonkeyPatch, successes: int) -> None:
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        calls["n"] += 1
        if calls["n"] > successes:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr("fhirconv.atomic.os.fsync", fsync)


def test_cli_fetch_a_full_disk_names_the_file_and_leaves_no_partial_one(
    replay: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk(monkeypatch, 1)
    result = fetch_cli(replay, "NCT00184067", "NCT00007696", "-o", str(tmp_path))
    assert result.exit_code == ExitCode.OUTPUT_FAILED
    assert f"cannot write {tmp_path}" in result.stderr
    assert "No space left on device" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["NCT00184067.json"]


def test_cli_fetch_ndjson_that_cannot_be_written_is_not_left_truncated(
    replay: Replay, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _full_disk(monkeypatch, 0)
    target = tmp_path / "studies.ndjson"
    result = fetch_cli(replay, "NCT00184067", "NCT00007696", "-o", str(target))
    assert result.exit_code == ExitCode.OUTPUT_FAILED
    assert f"cannot write {target}" in result.stderr
    assert list(tmp_path.iterdir()) == []
