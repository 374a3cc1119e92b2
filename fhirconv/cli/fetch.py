"""``fhirconv fetch``: download study records from the ClinicalTrials.gov API v2.

Thin: parses options, drives ``fhirconv.fetch.CtgovClient``, writes what it returns and prints a
summary. Output is what ``fhirconv convert`` reads: a directory of ``NCTxxxxxxxx.json`` files, or
NDJSON (one study per line) in a file or on stdout. Exit 0 all fetched, 1 some requested study or
page failed (everything fetched before or after it is still written), 2 usage error, 3 the output
could not be written (named with the reason; no partial file is left).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from fhirconv.atomic import AtomicFile, make_directory, write_text_atomically
from fhirconv.cli import app, fail, usage_error
from fhirconv.cli.progress import progress_bar
from fhirconv.errors import ExitCode, OutputError
from fhirconv.fetch import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_RATE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_PAGE_SIZE,
    CtgovClient,
    FetchError,
    QueryError,
    nct_id_of,
    normalize_nct_id,
    parse_query,
)

Json = dict[str, Any]
_NDJSON_SUFFIXES = (".ndjson", ".jsonl")
_IDS_PER_SEARCH = 100  # --since with NCT ids: ids per filter.ids search (keeps URLs short)


def _usage(message: str) -> typer.Exit:
    return usage_error(message, "Try 'fhirconv fetch --help' for help.")


class _Output:
    """Where studies go: one ``NCT….json`` per study in a directory, or NDJSON lines.

    Files are written atomically (``fhirconv.atomic``): each study file appears complete or not at
    all, and an NDJSON file appears only when the run ends without a write failure."""

    def __init__(self, output: str | None) -> None:
        self.directory: Path | None = None
        self.stream: TextIO | None = None
        self.file: AtomicFile | None = None
        self.where = "stdout"
        self.failed = False  # a write failed: the NDJSON file is not put in place
        self.close_error: str | None = None
        if output is None or output == "-":
            self.stream = sys.stdout
        elif output.lower().endswith(_NDJSON_SUFFIXES):
            self.file = AtomicFile(Path(output))
            self.where = output
        elif output.lower().endswith(".json") and not Path(output).is_dir():
            raise ValueError(
                f"-o {output}: give a directory (one NCT….json per study) or a .ndjson file"
            )
        else:
            self.directory = Path(output)
            make_directory(self.directory)
            self.where = f"{self.directory}{os.sep}"

    def write(self, nct_id: str, study: Json) -> None:
        if self.directory is not None:
            text = json.dumps(study, indent=2, ensure_ascii=False) + "\n"
            write_text_atomically(self.directory / f"{nct_id}.json", text)
        elif self.file is not None:
            self.file.write(json.dumps(study, ensure_ascii=False) + "\n")
        else:
            assert self.stream is not None
            self.stream.write(json.dumps(study, ensure_ascii=False) + "\n")
            self.stream.flush()

    def close(self, complete: bool) -> None:
        """Put the NDJSON file in place (`complete`), or remove it (a write failed)."""
        if self.file is not None:
            if not complete:
                self.file.discard()
                return
            try:
                self.file.commit()
            except OutputError as error:
                self.failed = True
                self.close_error = f"{error}; stopped, no partial file left"


@contextmanager
def _opened(output: str | None) -> Iterator[_Output]:
    try:
        sink = _Output(output)
    except OutputError as error:
        raise fail(str(error), ExitCode.OUTPUT_FAILED) from None
    except (OSError, ValueError) as error:
        raise _usage(str(error)) from None
    complete = False
    try:
        yield sink
        complete = not sink.failed
    finally:
        sink.close(complete)


@app.command("fetch")
def fetch(
    nct_ids: Annotated[
        list[str] | None,
        typer.Argument(help="NCT ids to download (NCT followed by 8 digits).", show_default=False),
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option(
            "--query",
            help="Search, as key=value pairs joined by &: condition, term, intervention, sponsor, "
            "location, title, outcome, status (RECRUITING,…), phase (PHASE2,…), ids; API "
            "parameters (query.*, filter.*, aggFilters, sort) pass through. Repeatable.",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="YYYY-MM-DD",
            help="Only studies whose last update was posted on or after this date "
            "(incremental refresh).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="At most this many studies per --query search."),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="A directory (one NCTxxxxxxxx.json per study) or a .ndjson file. "
            "Default: NDJSON on stdout.",
            show_default=False,
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="API base URL. Default: $FHIRCONV_CTGOV_BASE_URL, else "
            "https://clinicaltrials.gov/api/v2.",
            show_default=False,
        ),
    ] = None,
    page_size: Annotated[
        int,
        typer.Option("--page-size", min=1, max=MAX_PAGE_SIZE, help="Studies per search page."),
    ] = DEFAULT_PAGE_SIZE,
    rate: Annotated[
        float,
        typer.Option(
            "--rate",
            help="Requests per second at most (0: no limit; the API asks for about 50 a minute).",
        ),
    ] = DEFAULT_RATE,
    retries: Annotated[
        int,
        typer.Option(
            "--retries",
            min=0,
            help="Resend a request this many times on 429, 5xx, timeouts and broken connections.",
        ),
    ] = DEFAULT_RETRIES,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer.")
    ] = DEFAULT_TIMEOUT,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar (the summary is still printed).")
    ] = False,
) -> None:
    """Download ClinicalTrials.gov API v2 records, by NCT id or by search, for `convert`."""
    ids: list[str] = []
    searches: list[dict[str, str]] = []
    when: date | None = None
    try:
        for raw in nct_ids or []:
            nct = normalize_nct_id(raw)
            if nct not in ids:
                ids.append(nct)
        searches = [parse_query(q) for q in query or []]
        if since is not None:
            when = date.fromisoformat(since)
    except QueryError as error:
        raise _usage(str(error)) from None
    except ValueError:
        raise _usage(f"--since must be a date as YYYY-MM-DD, not {since!r}") from None
    if not ids and not searches:
        if when is None:
            raise _usage("give NCT ids, --query, --since, or several of them")
        searches = [{}]  # --since alone: every study updated since then

    failures: list[str] = []
    notes: list[str] = []
    written: set[str] = set()
    with (
        _opened(output) as sink,
        CtgovClient(base_url, rate=rate, retries=retries, timeout=timeout) as client,
        progress_bar("fetching", quiet=quiet) as bar,
    ):

        def keep(study: Json, requested: str | None = None) -> None:
            nct = nct_id_of(study)
            if nct is None:
                failures.append(
                    f"{requested or 'a search result'}: the record has no NCT id; not written"
                )
                return
            if requested and nct != requested:
                notes.append(f"{requested} is now {nct} (ClinicalTrials.gov redirected)")
            if nct in written:
                return
            sink.write(nct, study)
            written.add(nct)

        try:
            if ids and when is None:
                for done, nct in enumerate(ids, 1):
                    try:
                        keep(client.study(nct), nct)
                    except FetchError as error:
                        failures.append(str(error))
                    bar.update(done, len(ids))
            elif ids:
                # Incremental refresh of a list: which of these were updated since? One search
                # per 100 ids instead of one request per id.
                updated = 0
                for start in range(0, len(ids), _IDS_PER_SEARCH):
                    chunk = ids[start : start + _IDS_PER_SEARCH]
                    try:
                        for study in client.search(
                            {"filter.ids": ",".join(chunk)}, when, page_size=page_size
                        ):
                            keep(study)
                            updated += 1
                    except FetchError as error:
                        failures.append(str(error))
                    bar.update(min(start + _IDS_PER_SEARCH, len(ids)), len(ids))
                notes.append(
                    f"{updated} of {len(ids)} requested stud"
                    f"{'y' if len(ids) == 1 else 'ies'} updated since {when}"
                )
            for search in searches:
                try:
                    for study in client.search(
                        search, when, page_size=page_size, limit=limit, progress=bar.update
                    ):
                        keep(study)
                except FetchError as error:
                    failures.append(str(error))
        except OutputError as error:
            sink.failed = True
            failures.append(f"{error}; stopped, no partial file left")
        stats = client.stats

    if sink.close_error:
        failures.append(sink.close_error)
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    for failure in failures:
        typer.secho(f"error: {failure}", err=True, fg=typer.colors.RED)
    count = 0 if sink.failed and sink.file is not None else len(written)  # NDJSON: all or none
    typer.echo(
        f"fetched {count} stud{'y' if count == 1 else 'ies'} to {sink.where} "
        f"({stats.requests} request{'' if stats.requests == 1 else 's'}, "
        f"{stats.retries} retr{'y' if stats.retries == 1 else 'ies'}); {len(failures)} failed",
        err=True,
    )
    if sink.failed:
        raise typer.Exit(ExitCode.OUTPUT_FAILED)
    if failures:
        raise typer.Exit(ExitCode.RECORDS_FAILED)
