"""fhirconv: clinical-trial registry records → validated FHIR R4.

The data flows one way; each stage is a folder or module:

    sources/      read: one reader per input format → the normalized `model.Trial`;
                  sources/inputs.py enumerates input lazily as units (files, ZIP members,
                  NDJSON lines)
    mapping/      map: one pure module per FHIR resource type, `Trial` → resources (dicts)
    eligibility/  criteria text → individual criteria → computable items (used by mapping/group.py)
    validate.py   validate: R4 structure (fhir.resources R4B, via fhir.py) + bundle-level checks
    bundle.py     bundle: one deterministic, idempotent transaction Bundle per study
    write.py      write: Bundles or NDJSON (with a Bulk Data manifest.json), study by study
    duplicates.py one study per NCT id in a run: the most recently updated record
    manifest.py   incremental refresh: what the last run wrote, per input unit's SHA-256
    pipeline.py   a whole convert run: converted studies → writer → manifest → push
    publish/      publish: push Bundles to a FHIR server (retries, auth, reports), bulk load
                  NDJSON (batched transactions with a journal, or $import)
    fetch.py      download records from the ClinicalTrials.gov API v2
    coverage.py   measure which registry fields reach the Bundle
    match/        evaluate patients' FHIR records against studies' eligibility Groups
    cli/          the `fhirconv` command: thin wrappers over the above

`convert.py` runs read → map → validate → bundle; code tables live in the repository's `mappings/`
(shipped inside the wheel), loaded by `tables.py`.

The public API is the names in `__all__`, importable from `fhirconv` itself (each is loaded on
first use, so `import fhirconv` stays cheap). A whole `convert` run, as the CLI does it:

    from fhirconv import BundleWriter, Manifest, convert_inputs, write_converted
    writer = BundleWriter("out/", pretty=False, several=True, echo=print)
    with Manifest(writer.directory) as manifest:              # incremental refresh
        summary = write_converted(convert_inputs(["ctg-studies.zip"], manifest=manifest),
                                  writer, manifest=manifest)
    print(summary.lines(), summary.refresh)

    read      convert_inputs (files, directories, ZIP, NDJSON, `-`, NCT ids) → ConvertedStudy
              or RecordError, convert_trial,
              read_path, read_text, FORMATS, StudyFetcher, CtgovClient (ClinicalTrials.gov API)
    write     BundleWriter, NdjsonWriter (+ Bulk Data manifest.json), write_converted,
              ConvertSummary, Manifest (incremental refresh), RefreshCounts, validate_bundle
    publish   FhirClient, push_bundles (files), push_stream (bundles as made), push_ndjson
              (batched transactions, journal), import_ndjson ($import), PushSummary,
              BulkSummary, StopRule
    match     load_studies, iter_patients, match_patient (`match.evaluate.match`: the name
              `fhirconv.match` is the subpackage), Options
    errors    ExitCode, FhirconvError, RecordError, InputError, OutputError, PublishError
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "FORMATS": "fhirconv.sources",
    "BulkSummary": "fhirconv.publish.bulk",
    "BundleWriter": "fhirconv.write",
    "ConvertSummary": "fhirconv.pipeline",
    "ConvertedStudy": "fhirconv.convert",
    "CtgovClient": "fhirconv.fetch",
    "ExitCode": "fhirconv.errors",
    "FhirClient": "fhirconv.publish.client",
    "FhirconvError": "fhirconv.errors",
    "InputError": "fhirconv.errors",
    "Manifest": "fhirconv.manifest",
    "NdjsonWriter": "fhirconv.write",
    "Options": "fhirconv.match.evaluate",
    "OutputError": "fhirconv.errors",
    "PublishError": "fhirconv.errors",
    "PushSummary": "fhirconv.publish.report",
    "RecordError": "fhirconv.errors",
    "RefreshCounts": "fhirconv.manifest",
    "StopRule": "fhirconv.publish.push",
    "StudyFetcher": "fhirconv.fetch",
    "convert_inputs": "fhirconv.convert",
    "convert_trial": "fhirconv.convert",
    "import_ndjson": "fhirconv.publish.importer",
    "iter_patients": "fhirconv.match.records",
    "load_studies": "fhirconv.match.records",
    "match_patient": "fhirconv.match.evaluate:match",
    "push_bundles": "fhirconv.publish.push",
    "push_ndjson": "fhirconv.publish.bulk",
    "push_stream": "fhirconv.publish.push",
    "read_path": "fhirconv.sources",
    "read_text": "fhirconv.sources",
    "validate_bundle": "fhirconv.validate",
    "write_converted": "fhirconv.pipeline",
}

__all__ = [
    "FORMATS",
    "BulkSummary",
    "BundleWriter",
    "ConvertSummary",
    "ConvertedStudy",
    "CtgovClient",
    "ExitCode",
    "FhirClient",
    "FhirconvError",
    "InputError",
    "Manifest",
    "NdjsonWriter",
    "Options",
    "OutputError",
    "PublishError",
    "PushSummary",
    "RecordError",
    "RefreshCounts",
    "StopRule",
    "StudyFetcher",
    "convert_inputs",
    "convert_trial",
    "import_ndjson",
    "iter_patients",
    "load_studies",
    "match_patient",
    "push_bundles",
    "push_ndjson",
    "push_stream",
    "read_path",
    "read_text",
    "validate_bundle",
    "write_converted",
]

if TYPE_CHECKING:
    from fhirconv.convert import ConvertedStudy, convert_inputs, convert_trial
    from fhirconv.errors import (
        ExitCode,
        FhirconvError,
        InputError,
        OutputError,
        PublishError,
        RecordError,
    )
    from fhirconv.fetch import CtgovClient, StudyFetcher
    from fhirconv.manifest import Manifest, RefreshCounts
    from fhirconv.match.evaluate import Options
    from fhirconv.match.evaluate import match as match_patient
    from fhirconv.match.records import iter_patients, load_studies
    from fhirconv.pipeline import ConvertSummary, write_converted
    from fhirconv.publish.bulk import BulkSummary, push_ndjson
    from fhirconv.publish.client import FhirClient
    from fhirconv.publish.importer import import_ndjson
    from fhirconv.publish.push import StopRule, push_bundles, push_stream
    from fhirconv.publish.report import PushSummary
    from fhirconv.sources import FORMATS, read_path, read_text
    from fhirconv.validate import validate_bundle
    from fhirconv.write import BundleWriter, NdjsonWriter


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562)."""
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'fhirconv' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    value = getattr(import_module(module), attribute or name)
    globals()[name] = value
    return value
