"""Trial + its resources → one Provenance: where the record came from and what made the bundle.

Deterministic by default: `recorded` is the registry record's last update (midnight UTC), not the
time of conversion, so the same input gives a byte-identical Bundle. The conversion time is
written only when asked for (`converted_at`, the CLI's `--timestamp`), as `recorded` and
`occurredDateTime`.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import PurePath
from typing import Any

from fhirconv.mapping import ids, systems
from fhirconv.model import Trial
from fhirconv.tables import table_version

Json = dict[str, Any]

SOURCE_LAST_UPDATE = systems.extension("source-last-update")
SOURCE_DATA_VERSION = systems.extension("source-data-version")
SOFTWARE_VERSION = systems.extension("software-version")
MAPPING_VERSION = systems.extension("mapping-tables-version")
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACTIVITY = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


@cache  # the installed distribution's metadata is read from disk
def fhirconv_version() -> str:
    try:
        return version("fhirconv")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def provenance_id(nct_id: str) -> str:
    return f"{nct_id}-provenance"


def _recorded(trial: Trial) -> str:
    for date in (trial.last_update_posted, trial.last_update_submitted, trial.first_posted):
        if date:
            padded = (date.value + "-01-01")[:10] if len(date.value) < 10 else date.value
            return f"{padded}T00:00:00Z"
    return "1970-01-01T00:00:00Z"


def to_provenance(
    trial: Trial, resources: list[Json], converted_at: datetime | None = None
) -> Json:
    software = fhirconv_version()
    extensions: list[Json] = [
        {"url": SOFTWARE_VERSION, "valueString": f"fhirconv {software}"},
        {"url": MAPPING_VERSION, "valueString": table_version()},
    ]
    if trial.data_version:
        # The registry's data release the record came from (API v2 versionHolder).
        extensions.insert(0, {"url": SOURCE_DATA_VERSION, "valueDate": trial.data_version.value})
    if trial.last_update_posted:
        extensions.insert(
            0, {"url": SOURCE_LAST_UPDATE, "valueDateTime": trial.last_update_posted.value}
        )
    entities: list[Json] = [
        {
            "role": "source",
            "what": {
                "identifier": {"system": systems.NCT, "value": trial.nct_id},
                "display": trial.registry_url,
            },
        }
    ]
    source_file = trial.source.file
    if not source_file.startswith(("http://", "https://")):
        # Only the file name: a full path would make the output depend on where it was run.
        name = "stdin" if source_file == "-" else PurePath(source_file).name
        entities.append(
            {"role": "source", "what": {"display": f"{trial.source.format} file {name}"}}
        )
    provenance: Json = {
        "resourceType": "Provenance",
        "id": provenance_id(trial.nct_id),
        "extension": extensions,
        "target": [ids.reference(r["resourceType"], r["id"]) for r in resources],
    }
    if converted_at is not None:
        provenance["occurredDateTime"] = converted_at.isoformat()
    provenance["recorded"] = converted_at.isoformat() if converted_at else _recorded(trial)
    provenance["activity"] = {
        "coding": [{"system": ACTIVITY, "code": "CREATE", "display": "create"}],
        "text": "Converted from the ClinicalTrials.gov registry record by fhirconv",
    }
    provenance["agent"] = [
        {
            "type": {
                "coding": [
                    {"system": PARTICIPANT_TYPE, "code": "assembler", "display": "Assembler"}
                ]
            },
            "who": {"display": f"fhirconv {software}"},
        },
        {
            "type": {
                "coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]
            },
            "who": {"display": "ClinicalTrials.gov, U.S. National Library of Medicine"},
        },
    ]
    provenance["entity"] = entities
    return provenance
