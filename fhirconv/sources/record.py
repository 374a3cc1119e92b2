"""What every reader shares: a field-level error, and turning one record into a Trial or an error.

A reader's per-record class raises `FieldError(field, message)` where the data is bad;
`read_record` turns that (or a model validation failure) into a `RecordError` naming the file,
the record and the field, so the batch goes on with the next record.
"""

from __future__ import annotations

import re
from typing import Protocol

from pydantic import ValidationError

from fhirconv.errors import RecordError
from fhirconv.model import Trial


class FieldError(Exception):
    """Bad data in one field of the record being read; `field` is the source's own path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def upper_snake(value: str) -> str:
    """'Foo Bar' → 'FOO_BAR': the API v2 spelling of a display value, and how an unknown one is
    kept (never dropped) so the code-table check downstream reports it."""
    snake = re.sub(r"[^0-9A-Za-z]+", "_", value).strip("_").upper()
    return snake or value.strip().upper()


class RecordReader(Protocol):
    """A reader of one record: where it is, and how to build its Trial."""

    @property
    def file(self) -> str: ...

    @property
    def record(self) -> str | None: ...

    def trial(self) -> Trial: ...


def read_record(reader: RecordReader) -> Trial | RecordError:
    """The record's Trial, or the RecordError that says which file, record and field are bad."""
    try:
        return reader.trial()
    except FieldError as error:
        return RecordError(reader.file, reader.record, error.field, error.message)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        return RecordError(reader.file, reader.record, field, first["msg"])
