"""The errors fhirconv raises.

    FhirconvError                 every error of ours; `str()` is one line a user can act on
    ├── InputError                a record or file we cannot read
    │   ├── UnknownFormatError    the input is none of the formats we read (use --from)
    │   └── RecordError           one record is bad: names the file, the record and the field
    ├── MappingError              a Trial that cannot become FHIR (names the record and field)
    ├── ValidationFailed          resources that fail R4 validation (carries the issues)
    └── PublishError              the FHIR server refused or could not be reached

Batch commands catch `RecordError` per record, so one bad record never loses the others.
"""

from __future__ import annotations


class FhirconvError(Exception):
    """Base of every error fhirconv raises on purpose."""


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


class MappingError(FhirconvError):
    """A Trial could not be turned into FHIR resources."""


class ValidationFailed(FhirconvError):
    """Generated or loaded resources failed validation; `issues` lists each problem."""

    def __init__(self, where: str, issues: list[str]) -> None:
        shown = "; ".join(issues[:3]) + (f"; … {len(issues) - 3} more" if len(issues) > 3 else "")
        super().__init__(f"{where}: {len(issues)} validation error(s): {shown}")
        self.where = where
        self.issues = issues


class PublishError(FhirconvError):
    """The FHIR server refused a bundle, or could not be reached after retries."""
