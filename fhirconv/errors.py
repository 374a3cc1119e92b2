"""The errors fhirconv raises, and the exit code each kind of failure ends a command with.

    FhirconvError                 every error of ours; `str()` is one line a user can act on
    ├── UsageError                a command line that cannot be run as given       → USAGE
    │   └── QueryError            a fetch --query or NCT id that cannot become API parameters
    ├── InputError                a file or stream we cannot read (a missing path  → USAGE)
    │   ├── UnknownFormatError    the input is none of the formats we read (use --from)
    │   └── RecordError           one record is bad: names the file, the record and the field;
    │                             batches report it and go on                      → RECORDS_FAILED
    ├── FieldError                raised inside a reader where one field is bad; the reader's
    │                             boundary (sources/record.py) turns it into a RecordError
    ├── OutputError               an output file could not be written: names the path and the
    │                             OS's reason; nothing partial is left             → OUTPUT_FAILED
    ├── FetchError                a study or page could not be downloaded from ClinicalTrials.gov
    └── PublishError              the FHIR server refused or could not be reached (its subclasses
                                  live in fhirconv/publish/)

Batch commands catch `RecordError` per record, so one bad record never loses the others.
"""

from __future__ import annotations

import traceback
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """How a `fhirconv` command ends. 0, 1 and 2 keep the meanings the README has always given."""

    OK = 0
    RECORDS_FAILED = 1  # some records or studies failed; the others were processed and written
    USAGE = 2  # the command line cannot be run as given (bad option, -o FILE with several inputs)
    OUTPUT_FAILED = 3  # an output could not be written (read-only, disk full); nothing partial left
    # push (and convert --push): a failure that stopped the push, or left it in doubt
    SERVER_UNREACHABLE = 4  # the server could not be reached (refused, timed out) after retries
    AUTH_REFUSED = 5  # the server (or SMART token endpoint) refused our credentials: 401/403
    TLS_FAILED = 6  # the TLS connection could not be set up (certificate not verified)
    OUTCOME_UNKNOWN = 7  # retries exhausted (429/503 …) or a bundle may or may not have landed
    BAD_NDJSON = 8  # resource NDJSON lines that are no resource were not sent
    INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT; what was in flight may or may not have landed
    BROKEN_PIPE = 141  # stdout closed by its reader (`| head`): 128 + SIGPIPE, as shells report


class FhirconvError(Exception):
    """Base of every error fhirconv raises on purpose."""


class UsageError(FhirconvError):
    """The command line asks for something that cannot be done (a usage error, exit 2)."""


class InputError(FhirconvError):
    """An input file or stream could not be read."""


class UnknownFormatError(InputError):
    def __init__(self, file: str, detail: str) -> None:
        super().__init__(
            f"{file}: cannot tell the input format ({detail}); "
            "pass --from ctgov-json, ctgov-xml or registry-text"
        )
        self.file = file


class RecordError(InputError):
    """One record is bad. Carries where, so batch reports can list it."""

    def __init__(self, file: str, record: str | None, field: str | None, message: str) -> None:
        where = file
        if record:
            where += f", record {record}"
        if field:
            where += f", field {field}"
        super().__init__(f"{where}: {message}")
        self.file = file
        self.record = record
        self.field = field
        self.message = message


class FieldError(FhirconvError):
    """Bad data in one field of the record being read; `field` is the source's own path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class OutputError(FhirconvError):
    """An output could not be written. Names the path and the operating system's reason."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path
        self.reason = reason


class FetchError(FhirconvError):
    """A study or page could not be downloaded. Names the study (or URL) and the HTTP status."""

    def __init__(
        self, message: str, *, url: str, status: int | None = None, nct_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.nct_id = nct_id


class QueryError(UsageError, ValueError):
    """A ``--query`` (or NCT id) that cannot be turned into API parameters."""


class PublishError(FhirconvError):
    """The FHIR server refused a bundle, or could not be reached after retries."""


def unexpected(error: BaseException) -> str:
    """A RecordError message for data no reader check anticipated: what Python met, and where in
    fhirconv (so it can be reported and fixed), in one line."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/fhirconv/" in f.filename.replace("\\", "/")]
    where = f" (in {Path(ours[-1].filename).name}:{ours[-1].lineno})" if ours else ""
    return f"unexpected data: {type(error).__name__}: {error}{where}"
