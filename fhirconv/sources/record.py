"""What every reader shares: a field-level error, and turning one record into a Trial or an error.

A reader's per-record class raises `FieldError(field, message)` (from fhirconv.errors, re-exported
here) where the data is bad; `read_record` turns that, a model validation failure or any other
exception into a `RecordError` naming the file, the record and the field, so the batch goes on.
"""

from __future__ import annotations

import re
from typing import Protocol

from pydantic import ValidationError

from fhirconv.errors import FieldError, RecordError, unexpected
from fhirconv.model import Trial


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
    """The record's Trial, or the RecordError that says which file, record and field are bad.

    This is the boundary every reader's records pass: whatever shape the data has, reading it
    ends in a Trial or a RecordError, never in an exception that would stop the batch."""
    try:
        return reader.trial()
    except FieldError as error:
        return RecordError(reader.file, reader.record, error.field, error.message)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        return RecordError(reader.file, reader.record, field, first["msg"])
    except RecursionError:
        return RecordError(reader.file, reader.record, None, "nested too deeply to read; refused")
    except Exception as error:  # the boundary: any other shape is this record's
        return RecordError(reader.file, reader.record, None, unexpected(error))


__all__ = ["FieldError", "RecordReader", "read_record", "unexpected", "upper_snake"]
