"""Reading the matcher's inputs: patient records and study Bundles, both plain FHIR R4 JSON.

A patient file is a Bundle (any type) or NDJSON (one resource or one Bundle per line) and may hold
several patients: resources are grouped by the Patient their `subject`/`patient` references. A
study file is a Bundle written by `fhirconv convert` (or NDJSON of resources): a ResearchStudy and
the Group its `enrollment` references.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fhirconv import errors
from fhirconv.errors import InputError as ParseError
from fhirconv.jsonio import json_documents, parse_json
from fhirconv.mapping import systems

Json = dict[str, Any]

__all__ = [
    "DateRange",
    "InputError",
    "PatientRecord",
    "Study",
    "add_duration",
    "fhir_version_problem",
    "input_files",
    "iter_patients",
    "load_patients",
    "load_studies",
    "parse_date",
    "patient_key",
    "patient_records",
    "read_resources",
]


class InputError(errors.InputError):
    """A file that is not FHIR R4 JSON the matcher can read; names the file (and line)."""


# --- dates: partial FHIR dates as the range of days they may mean ---------------------------------

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class DateRange:
    """The earliest and latest day a (possibly partial) FHIR date or dateTime can mean."""

    earliest: date
    latest: date

    @property
    def exact(self) -> bool:
        return self.earliest == self.latest

    def __str__(self) -> str:
        if self.exact:
            return self.earliest.isoformat()
        return f"{self.earliest.isoformat()}..{self.latest.isoformat()}"


def _month_end(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(days=1)


def parse_date(value: object) -> DateRange | None:
    if not isinstance(value, str):
        return None
    match = _DATE.match(value.strip())
    if not match:
        return None
    year = int(match.group(1))
    try:
        if match.group(3):
            day = date(year, int(match.group(2)), int(match.group(3)))
            return DateRange(day, day)
        if match.group(2):
            month = int(match.group(2))
            return DateRange(date(year, month, 1), _month_end(year, month))
        return DateRange(date(year, 1, 1), date(year, 12, 31))
    except ValueError:
        return None


def add_duration(day: date, value: float, ucum: str, sign: int = 1) -> date:
    """`day` moved by a duration (calendar months and years, whole days otherwise)."""
    if ucum in ("a", "mo"):
        months = round(value * (12 if ucum == "a" else 1)) * sign
        index = day.year * 12 + day.month - 1 + months
        year, month = divmod(index, 12)
        last = _month_end(year, month + 1).day
        return date(year, month + 1, min(day.day, last))
    days = {"wk": 7.0, "d": 1.0, "h": 1 / 24, "min": 1 / 1440}.get(ucum, 1.0) * value
    return day + timedelta(days=round(days) * sign)


# --- reading files ------------------------------------------------------------------------------

_NDJSON_SUFFIXES = (".ndjson", ".jsonl")
_PATIENT_TEXT = re.compile(rb'"resourceType"\s*:\s*"Patient"')
_STUDY_TEXT = re.compile(rb'"resourceType"\s*:\s*"ResearchStudy"')


def input_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, directories expanded to their .json / .ndjson / .jsonl files (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and p.suffix in (".json", *_NDJSON_SUFFIXES)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or directory")
    return files


def _documents(path: Path) -> Iterator[Json]:
    """The JSON objects in a file: one document, the items of a JSON array, or NDJSON lines (a
    UTF-8 BOM is allowed). Unreadable JSON (invalid, truncated, nested too deeply) is an
    InputError naming the file and line."""
    text = path.read_bytes().decode("utf-8-sig")
    for line, document in json_documents(text):
        if isinstance(document, ParseError):
            where = f"{path}" if line is None else f"{path}: line {line}"
            raise InputError(f"{where}: {document}")
        if isinstance(document, dict):
            yield document
        elif isinstance(document, list):
            yield from (d for d in document if isinstance(d, dict))


def read_resources(paths: Iterable[Path]) -> list[tuple[str | None, Json]]:
    """Every resource in the files, with its Bundle entry fullUrl when there is one."""
    found: list[tuple[str | None, Json]] = []
    for file in input_files(paths):
        for document in _documents(file):
            found += list(_flatten(document))
    return found


def _flatten(document: Json) -> Iterator[tuple[str | None, Json]]:
    if document.get("resourceType") == "Bundle":
        entries = document.get("entry")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            resource = entry.get("resource")
            if isinstance(resource, dict):
                if resource.get("resourceType") == "Bundle":
                    yield from _flatten(resource)
                else:
                    yield entry.get("fullUrl"), resource
    elif "resourceType" in document:
        yield None, document


# --- FHIR version ---------------------------------------------------------------------------------

# Resource types that exist in R5 or STU3 but not in R4 (FHIR resource lists of each release).
_NOT_R4_TYPES = {
    "R5": frozenset(
        {"ActorDefinition", "ArtifactAssessment", "ConditionDefinition", "DeviceDispense",
         "DeviceUsage", "EncounterHistory", "FormularyItem", "GenomicStudy", "ImagingSelection",
         "InventoryItem", "InventoryReport", "MedicationUsage", "NutritionIntake",
         "NutritionProduct", "Permission", "Requirements", "SubscriptionTopic", "TestPlan",
         "Transport"}
    ),
    "STU3": frozenset(
        {"BodySite", "DataElement", "DeviceComponent", "EligibilityRequest", "EligibilityResponse",
         "ExpansionProfile", "ImagingManifest", "ProcedureRequest", "ProcessRequest",
         "ProcessResponse", "ReferralRequest", "Sequence", "ServiceDefinition"}
    ),
}  # fmt: skip
_VERSION_IN_URL = re.compile(r"hl7\.org/fhir/(R5|R4B?|STU3|DSTU2|[1-5]\.\d)", re.I)
_RELEASES = {"1.0": "DSTU2", "3.0": "STU3", "4.0": "R4", "4.3": "R4", "4.6": "R5", "5.0": "R5",
             "R4B": "R4"}  # fmt: skip


def _release(text: str) -> str:
    return _RELEASES.get(text.upper() if text[0].isalpha() else text, text.upper())


def fhir_version_problem(resource: Json) -> str | None:
    """Why `resource` (or a Bundle) looks like FHIR other than R4, None when nothing says so.

    Evidence, strongest first: a `fhirVersion` element or profile URL naming another release;
    a resource type that R4 does not have; an element shaped as in R5 (`medication` as a
    CodeableReference on medication resources) or STU3 (`clinicalStatus` as a plain code).
    """
    stated = resource.get("fhirVersion")
    if isinstance(stated, str) and stated and not stated.startswith("4."):
        return f"fhirVersion {stated}"
    for profile in (resource.get("meta") or {}).get("profile", []) or []:
        found = _VERSION_IN_URL.search(str(profile))
        if found and _release(found.group(1)) != "R4":
            return f"meta.profile {profile} is FHIR {_release(found.group(1))}"
    kind = str(resource.get("resourceType") or "")
    for release, types in _NOT_R4_TYPES.items():
        if kind in types:
            return f"{kind} is a FHIR {release} resource type, not R4"
    if kind in ("MedicationRequest", "MedicationStatement", "MedicationAdministration") and (
        isinstance(resource.get("medication"), dict)
    ):
        return f"{kind}.medication (a CodeableReference) is FHIR R5; R4 has medication[x]"
    if kind in ("Condition", "AllergyIntolerance") and isinstance(
        resource.get("clinicalStatus"), str
    ):
        return f"{kind}.clinicalStatus as a plain code is FHIR STU3; R4 has a CodeableConcept"
    if kind == "Bundle":
        for _, inner in _flatten(resource):
            problem = fhir_version_problem(inner)
            if problem:
                return problem
    return None


def _not_r4(path: Path, where: str, problem: str) -> InputError:
    return InputError(
        f"{path}{where}: not FHIR R4 ({problem}); fhirconv match reads R4 only: convert the data "
        "to R4 first"
    )


# --- patients -----------------------------------------------------------------------------------
@dataclass
class PatientRecord:
    patient: Json
    resources: list[Json] = field(default_factory=list)
    by_reference: dict[str, Json] = field(default_factory=dict)  # Medication look-ups

    @property
    def id(self) -> str:
        return str(self.patient.get("id") or "?")

    def of_type(self, *types: str) -> list[Json]:
        return [r for r in self.resources if r.get("resourceType") in types]

    def resolve(self, reference: object) -> Json | None:
        if not isinstance(reference, dict):
            return None
        ref = reference.get("reference")
        return self.by_reference.get(ref) if isinstance(ref, str) else None


_SUBJECT_FIELDS = ("subject", "patient", "beneficiary")
_PATIENT_REFERENCE = re.compile(r"(?:^|/)Patient/([^/]+?)(?:/_history/[^/]*)?$")


def patient_key(reference: str) -> str | None:
    """The Patient id a reference points to: "Patient/7", "https://x/fhir/Patient/7",
    "urn:uuid:7" → "7"; None for anything else."""
    if reference.startswith("urn:uuid:"):
        return reference[len("urn:uuid:") :]
    found = _PATIENT_REFERENCE.search(reference)
    return found.group(1) if found else None


def _subject_of(resource: Json) -> str | None:
    for name in _SUBJECT_FIELDS:
        reference = resource.get(name)
        if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
            return str(reference["reference"])
    return None


def _names(full_url: str | None, resource: Json) -> list[str]:
    """What references to this resource may say: "Type/id" and its Bundle fullUrl."""
    names = [f"{resource.get('resourceType')}/{resource['id']}"] if resource.get("id") else []
    if full_url:
        names.append(full_url)
    return names


def _group(
    pairs: list[tuple[str | None, Json]], extra: dict[str, list[Json]], shared: dict[str, Json]
) -> list[PatientRecord]:
    """Patients of one document, each with the resources that reference it (and any of `extra`,
    resources read elsewhere for that patient id). A document with one Patient owns every
    resource whose subject it cannot resolve."""
    keys: dict[str, PatientRecord] = {}
    records: list[PatientRecord] = []
    local = dict(shared)
    for full_url, resource in pairs:
        for name in _names(full_url, resource):
            local[name] = resource
        if resource.get("resourceType") == "Patient":
            record = PatientRecord(resource)
            records.append(record)
            for name in [*_names(full_url, resource), str(resource.get("id") or "")]:
                keys[name] = record
    for _, resource in pairs:
        if resource.get("resourceType") == "Patient":
            continue
        reference = _subject_of(resource)
        owner: PatientRecord | None = None
        if reference is not None:
            owner = keys.get(reference) or keys.get(patient_key(reference) or "")
            if owner is None and len(records) == 1:
                owner = records[0]
        elif len(records) == 1 and resource.get("resourceType") != "Medication":
            owner = records[0]
        if owner is not None:
            owner.resources.append(resource)
    for record in records:
        record.resources += extra.get(record.id, [])
        record.by_reference = local
        for resource in record.resources:
            contained_resources = resource.get("contained")
            if not isinstance(contained_resources, list):
                continue
            for contained in contained_resources:
                if isinstance(contained, dict) and contained.get("id"):
                    record.by_reference[f"#{contained['id']}"] = contained
    return records


def patient_records(resources: Iterable[Json]) -> list[PatientRecord]:
    """Patients of one set of resources (a server's answer for one patient, say), grouped
    exactly as a file holding the same resources would be."""
    return _group([(None, resource) for resource in resources], {}, {})


_Line = tuple[int, int, int]  # (file number, byte offset, length)


class _NdjsonIndex:
    """Where each patient's resources are in a set of NDJSON files: byte offsets, not resources.
    Each line costs three 8-byte integers in an array, so memory grows with the number of lines
    by little, and not with what they hold."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self.patients = array("q")  # Patient lines, flattened triples
        self.documents = array("q")  # lines that are whole Bundles
        self.by_patient: dict[str, array[int]] = {}
        self.shared: dict[str, Json] = {}  # Medication and other unowned look-ups
        self.problems: list[InputError] = []

    @staticmethod
    def lines(flat: array[int]) -> Iterator[_Line]:
        for start in range(0, len(flat), 3):
            yield flat[start], flat[start + 1], flat[start + 2]

    def read(self, line: _Line) -> Json:
        number, offset, length = line
        with self.files[number].open("rb") as handle:
            handle.seek(offset)
            item: Json = parse_json(handle.read(length))
            return item


def _index_ndjson(files: list[Path]) -> _NdjsonIndex:
    index = _NdjsonIndex(files)
    for number, path in enumerate(files):
        entries: dict[str, array[int]] = {}  # patient id → lines of this file
        patients = array("q")
        documents = array("q")
        shared: dict[str, Json] = {}
        studies = 0
        problem: InputError | None = None
        with path.open("rb") as handle:
            offset = 0
            for line_number, raw in enumerate(handle, start=1):
                line = (number, offset, len(raw))
                offset += len(raw)
                if not raw.strip():
                    continue
                try:
                    item = parse_json(raw, first_line=line_number)
                except ParseError as error:
                    problem = InputError(f"{path}: line {line_number}: {error}")
                    break
                if not isinstance(item, dict):
                    continue
                version = fhir_version_problem(item)
                if version:
                    problem = _not_r4(path, f": line {line_number}", version)
                    break
                kind = item.get("resourceType")
                if kind == "Bundle":
                    documents.extend(line)
                elif kind == "Patient":
                    patients.extend(line)
                elif kind == "ResearchStudy":
                    studies += 1
                else:
                    reference = _subject_of(item)
                    owner = patient_key(reference) if reference else None
                    if owner:
                        entries.setdefault(owner, array("q")).extend(line)
                    elif item.get("id"):
                        shared[f"{kind}/{item['id']}"] = item
        if problem is None and studies and not patients and not documents:
            problem = _study_as_patient(path)
        if problem is not None:
            index.problems.append(problem)
            continue
        index.patients.extend(patients)
        index.documents.extend(documents)
        index.shared.update(shared)
        for owner, lines in entries.items():
            index.by_patient.setdefault(owner, array("q")).extend(lines)
    return index


def _study_as_patient(path: Path) -> InputError:
    return InputError(
        f"{path}: holds a ResearchStudy and no Patient: this is a study, not patient data "
        "(pass it with --study)"
    )


def iter_patients(paths: Iterable[Path]) -> Iterator[PatientRecord | InputError]:
    """Patient records one at a time, and an `InputError` for each file that cannot be read
    (the others still are).

    JSON files (a Bundle, a resource, or an array) are read one file at a time; resources in a
    JSON file holding no Patient (say, a Bundle of Medications or a patient's labs apart) are
    kept and joined to their patient. NDJSON files, such as the one-file-per-resource-type
    output of a Bulk Data `$export`, are indexed first: one pass records the byte offset of each
    line under the Patient its subject names; then each Patient line is read with its own lines
    only. Memory therefore grows with one patient's data plus a few integers per line, not with
    the number of patients.
    """
    files = input_files(paths)
    ndjson = [f for f in files if f.suffix in _NDJSON_SUFFIXES]
    whole = [f for f in files if f.suffix not in _NDJSON_SUFFIXES]
    extra: dict[str, list[Json]] = {}
    shared: dict[str, Json] = {}
    with_patients: list[Path] = []
    for path in whole:
        data = path.read_bytes()
        if _PATIENT_TEXT.search(data):
            with_patients.append(path)
            continue
        if _STUDY_TEXT.search(data):
            yield _study_as_patient(path)
            continue
        try:
            documents = list(_documents(path))
        except (InputError, UnicodeDecodeError) as error:
            yield error if isinstance(error, InputError) else InputError(f"{path}: {error}")
            continue
        for document in documents:
            for full_url, resource in _flatten(document):
                reference = _subject_of(resource)
                owner = patient_key(reference) if reference else None
                if owner:
                    extra.setdefault(owner, []).append(resource)
                else:
                    for name in _names(full_url, resource):
                        shared[name] = resource
    index = _index_ndjson(ndjson)
    shared.update(index.shared)
    yield from index.problems
    found = False
    for path in with_patients:
        try:
            documents = list(_documents(path))
        except (InputError, UnicodeDecodeError) as error:
            yield error if isinstance(error, InputError) else InputError(f"{path}: {error}")
            continue
        for document in documents:
            problem = fhir_version_problem(document)
            if problem:
                yield _not_r4(path, "", problem)
                break
            for record in _group(list(_flatten(document)), extra, shared):
                found = True
                yield record
    for line in index.lines(index.documents):
        for record in _group(list(_flatten(index.read(line))), extra, shared):
            found = True
            yield record
    for line in index.lines(index.patients):
        patient = index.read(line)
        lines = index.by_patient.get(str(patient.get("id")), array("q"))
        owned = [index.read(item) for item in index.lines(lines)]
        pairs: list[tuple[str | None, Json]] = [(None, patient), *((None, r) for r in owned)]
        for record in _group(pairs, extra, shared):
            found = True
            yield record
    if not found:
        yield InputError(f"no Patient resource found in {', '.join(map(str, files)) or 'no files'}")


def load_patients(paths: Iterable[Path]) -> list[PatientRecord]:
    """Every patient at once (small inputs and tests); the first unreadable file raises."""
    records: list[PatientRecord] = []
    for item in iter_patients(paths):
        if isinstance(item, InputError):
            raise item
        records.append(item)
    return records


# --- studies ------------------------------------------------------------------------------------


@dataclass
class Study:
    nct_id: str
    title: str
    research_study: Json
    group: Json | None

    @property
    def characteristics(self) -> list[Json]:
        return list((self.group or {}).get("characteristic", []) or [])


def _nct_id(study: Json) -> str:
    for identifier in study.get("identifier", []) or []:
        if identifier.get("system") == systems.NCT and identifier.get("value"):
            return str(identifier["value"])
    return str(study.get("id") or "?")


def load_studies(paths: Iterable[Path]) -> list[Study]:
    """Every study in the files: Bundles from `fhirconv convert`, NDJSON (its `--format ndjson`
    output, one file per resource type), single resources; directories are expanded. A file of
    patient data, or of FHIR other than R4, is an error naming the file."""
    resources: list[tuple[str | None, Json]] = []
    for path in input_files(paths):
        found = [pair for document in _documents(path) for pair in _flatten(document)]
        kinds = {resource.get("resourceType") for _, resource in found}
        if "Patient" in kinds and "ResearchStudy" not in kinds:
            raise InputError(
                f"{path}: holds Patient data and no ResearchStudy: this is a patient record, "
                "not a study (pass patient files as arguments, studies with --study)"
            )
        for _, resource in found:
            problem = fhir_version_problem(resource)
            if problem:
                raise _not_r4(path, "", problem)
        resources += found
    groups: dict[str, Json] = {}
    for full_url, resource in resources:
        if resource.get("resourceType") == "Group":
            if resource.get("id"):
                groups[f"Group/{resource['id']}"] = resource
            if full_url:
                groups[full_url] = resource
    studies: list[Study] = []
    for _, resource in resources:
        if resource.get("resourceType") != "ResearchStudy":
            continue
        group = None
        for ref in resource.get("enrollment", []) or []:
            group = groups.get(str(ref.get("reference")))
            if group:
                break
        studies.append(Study(_nct_id(resource), str(resource.get("title") or ""), resource, group))
    if not studies:
        raise InputError(f"no ResearchStudy resource found in {', '.join(map(str, paths))}")
    return studies
