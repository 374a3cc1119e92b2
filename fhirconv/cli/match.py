"""`fhirconv match`: patients × studies → eligibility verdicts with reasons."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from fhirconv.atomic import write_text_atomically
from fhirconv.cli import app, fail, usage_error
from fhirconv.cli.progress import progress_bar
from fhirconv.cli.server_options import (
    BasicPasswordEnvOption,
    BasicPasswordFileOption,
    BasicUserOption,
    ConnectTimeoutOption,
    InsecureOption,
    ServerArguments,
    ServerOption,
    SmartClientIdOption,
    SmartKeyOption,
    SmartKidOption,
    SmartTokenUrlOption,
    TokenEnvOption,
    TokenFileOption,
    build_client,
    exit_code_of,
)
from fhirconv.errors import ExitCode, OutputError, PublishError
from fhirconv.match import MatchResult, Options, Study, load_studies, match, render_table
from fhirconv.match.records import InputError, iter_patients
from fhirconv.match.server import ServerError, Traffic, match_server
from fhirconv.match.summary import Summary
from fhirconv.match.writeback import WriteBack
from fhirconv.publish.auth import AuthOptions


@app.command("match")
def match_command(
    study: Annotated[
        list[Path],
        typer.Option(
            "--study",
            "-s",
            help="Studies written by `fhirconv convert`: Bundle files, NDJSON, or directories"
            " (repeatable).",
        ),
    ],
    patients: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Patient records, FHIR R4: Bundle JSON files, NDJSON files (a Bulk Data $export"
            " folder: Patient.ndjson, Condition.ndjson, …) or directories of them. Leave out"
            " with --server.",
        ),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Evaluation date YYYY-MM-DD (default: today).")
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (for people) or json (one object per patient × study per line).",
        ),
    ] = "table",
    lookback: Annotated[
        int,
        typer.Option(
            "--lookback-days",
            help="Results older than this count as missing when the criterion gives no window.",
        ),
    ] = 365,
    summary_file: Annotated[
        Path | None,
        typer.Option(
            "--summary",
            help="Also write a summary across patients here: per study, counts by verdict and"
            " the ranked candidates.",
        ),
    ] = None,
    summary_format: Annotated[str, typer.Option("--summary-format", help="json or text.")] = "json",
    summary_top: Annotated[
        int, typer.Option("--summary-top", help="Candidates listed per study in the summary.")
    ] = 100,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    server: ServerOption = None,
    candidates_only: Annotated[
        bool,
        typer.Option(
            "--candidates-only",
            help="--server: list only the patients a Patient search (structured age and sex"
            " limits) keeps for some study; the others are not read at all.",
        ),
    ] = False,
    write_back: Annotated[
        bool,
        typer.Option(
            "--write-back",
            help="--server: write one ResearchSubject per patient × study to the server"
            " (idempotent; the study must be on the server: fhirconv push it first).",
        ),
    ] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, max=64, help="--server: patient records fetched at once.")
    ] = 4,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, max=1000, help="--server: _count per page.")
    ] = 100,
    token_env: TokenEnvOption = None,
    token_file: TokenFileOption = None,
    basic_user: BasicUserOption = None,
    basic_password_env: BasicPasswordEnvOption = None,
    basic_password_file: BasicPasswordFileOption = None,
    smart_client_id: SmartClientIdOption = None,
    smart_key: SmartKeyOption = None,
    smart_token_url: SmartTokenUrlOption = None,
    smart_scope: Annotated[
        str | None,
        typer.Option(
            help="SMART: scopes to request (default system/*.read, plus"
            " system/ResearchSubject.write with --write-back)."
        ),
    ] = None,
    smart_kid: SmartKidOption = None,
    timeout: Annotated[
        float,
        typer.Option(min=1.0, help="--server: seconds to wait for one answer.", metavar="S"),
    ] = 60.0,
    connect_timeout: ConnectTimeoutOption = 10.0,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            max=20,
            help="--server: retries after the first attempt on 429/502/503/504 and network errors.",
            metavar="N",
        ),
    ] = 4,
    insecure: InsecureOption = False,
) -> None:
    """Evaluate every patient against every study's eligibility criteria, with reasons.

    Patients are read and evaluated one at a time, from files or from a FHIR server (--server).
    A file or a patient record that cannot be read is reported on stderr and skipped; the others
    are still evaluated, and the exit code is then 1.
    """
    if output_format not in ("table", "json"):
        raise usage_error("--format must be table or json")
    if summary_format not in ("json", "text"):
        raise usage_error("--summary-format must be json or text")
    try:
        when = date.fromisoformat(as_of) if as_of else date.today()
    except ValueError:
        raise usage_error(f"--as-of must be a date YYYY-MM-DD, not {as_of!r}") from None
    if bool(patients) == bool(server):
        raise usage_error("give patient files or --server URL (one of the two)")
    if (write_back or candidates_only) and not server:
        raise usage_error("--write-back and --candidates-only need --server")
    for path in [*(patients or []), *study]:
        if not path.exists():
            raise usage_error(f"no such file: {path}")
    try:
        studies = load_studies(study)
    except (InputError, OSError, UnicodeDecodeError) as error:
        raise usage_error(str(error)) from None
    options = Options(as_of=when, lookback_days=lookback)
    output = _Output(output_format, Summary(top=summary_top) if summary_file else None)
    if server:
        scope = smart_scope or (
            "system/*.read system/ResearchSubject.write" if write_back else "system/*.read"
        )
        arguments = ServerArguments(
            server=server,
            auth=AuthOptions(
                token_env=token_env,
                token_file=token_file,
                basic_user=basic_user,
                basic_password_env=basic_password_env,
                basic_password_file=basic_password_file,
                smart_client_id=smart_client_id,
                smart_key=smart_key,
                smart_token_url=smart_token_url,
                smart_scope=scope,
                smart_kid=smart_kid,
            ),
            timeout=timeout,
            connect_timeout=connect_timeout,
            retries=retries,
            insecure=insecure,
            max_connections=concurrency + 1,
        )
        failures = _match_server(
            arguments,
            studies,
            options,
            output,
            ServerRun(concurrency, page_size, candidates_only, write_back, quiet),
        )
    else:
        failures = _match_files(patients or [], studies, options, output, quiet)
    if output.summary is not None and summary_file is not None:
        text = (
            output.summary.render_json()
            if summary_format == "json"
            else output.summary.render_text()
        )
        try:
            write_text_atomically(summary_file, text)
        except OutputError as error:
            raise fail(str(error), ExitCode.OUTPUT_FAILED) from None
    if failures:
        raise typer.Exit(code=ExitCode.RECORDS_FAILED)


@dataclass
class _Output:
    """Prints results as they come (table or JSON lines) and feeds the summary."""

    output_format: str
    summary: Summary | None
    first: bool = True

    def emit(self, result: MatchResult) -> None:
        line = result.as_json()
        if self.summary is not None:
            self.summary.add(line)
        if self.output_format == "json":
            typer.echo(json.dumps(line, ensure_ascii=False))
        else:
            if not self.first:
                typer.echo("")
            typer.echo(render_table(result))
        self.first = False


def _match_files(
    patients: list[Path], studies: list[Study], options: Options, output: _Output, quiet: bool
) -> int:
    failures = 0
    try:
        with progress_bar("matching", quiet=quiet, unit="patients") as bar:
            for record in iter_patients(patients):
                bar.advance()
                if isinstance(record, InputError):
                    failures += 1
                    bar.echo(f"error: {record}", color="red")
                    continue
                for trial in studies:
                    output.emit(match(record, trial, options))
    except BrokenPipeError:
        raise  # the reader closed stdout (`| head`): the CLI ends quietly
    except (InputError, OSError, UnicodeDecodeError) as error:
        raise usage_error(str(error)) from None
    return failures


@dataclass(frozen=True)
class ServerRun:
    concurrency: int
    page_size: int
    candidates_only: bool
    write_back: bool
    quiet: bool


def _match_server(
    arguments: ServerArguments,
    studies: list[Study],
    options: Options,
    output: _Output,
    run: ServerRun,
) -> int:
    try:
        client = build_client(arguments)
    except PublishError as error:  # a bad URL or credentials that cannot be loaded
        raise usage_error(str(error)) from None
    traffic = Traffic()
    failures = patients = fetched = 0
    by_id = {study.nct_id: study for study in studies}
    with client:
        writer = WriteBack(client, options.as_of) if run.write_back else None
        try:
            with progress_bar("matching", quiet=run.quiet, unit="patients") as bar:
                for outcome in match_server(
                    client,
                    studies,
                    options,
                    concurrency=run.concurrency,
                    page_size=run.page_size,
                    narrow=run.candidates_only,
                    traffic=traffic,
                ):
                    bar.advance()
                    patients += 1
                    fetched += outcome.fetched
                    if outcome.error is not None:
                        failures += 1
                        bar.echo(f"error: {outcome.error}", color="red")
                        continue
                    for result in outcome.results:
                        output.emit(result)
                        if writer is not None:
                            writer.add(result, by_id[result.study])
        except ServerError as error:
            raise fail(str(error), error.exit_code) from None
        except PublishError as error:
            raise fail(f"{arguments.server}: {error}", exit_code_of(error)) from None
        if writer is not None:
            writer.flush()
            typer.echo(writer.line(), err=True)
            for problem in writer.failures:
                typer.secho(f"error: write-back: {problem}", err=True, fg=typer.colors.RED)
            failures += len(writer.failures)
    typer.echo(
        f"server: {patients} patients, {fetched} full records read;"
        f" {traffic.requests} requests ({traffic.retries} retries),"
        f" {traffic.bytes:,} bytes received"
        + (", $everything refused: per-type searches used" if traffic.everything_refused else ""),
        err=True,
    )
    return failures
