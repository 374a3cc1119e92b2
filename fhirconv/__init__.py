"""fhirconv: clinical-trial registry records → validated FHIR R4.

The data flows one way; each stage is a folder or module:

    sources/      read: one reader per input format → the normalized `model.Trial`
    mapping/      map: one pure module per FHIR resource type, `Trial` → resources (dicts)
    eligibility/  criteria text → individual criteria → computable items (used by mapping/group.py)
    validate.py   validate: R4 structure (fhir.resources R4B, via fhir.py) + bundle-level checks
    bundle.py     bundle: one deterministic, idempotent transaction Bundle per study
    write.py      write: Bundles or NDJSON, study by study
    publish/      publish: push Bundles to a FHIR server (retries, auth, reports)
    fetch.py      download records from the ClinicalTrials.gov API v2
    coverage.py   measure which registry fields reach the Bundle
    match/        evaluate patients' FHIR records against studies' eligibility Groups
    cli/          the `fhirconv` command: thin wrappers over the above

`convert.py` runs read → map → validate → bundle; code tables live in the repository's `mappings/`
(shipped inside the wheel), loaded by `tables.py`.
"""
