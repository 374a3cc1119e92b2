"""Field accounting (`fhirconv.coverage`, `fhirconv coverage`): the measurement finds dropped
values, unknown fields fail, and the figure over real records stays at or above its floor."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhirconv.cli import app
from fhirconv.convert import convert_trial
from fhirconv.coverage import Coverage, load_spec, measure, measure_record, parse_spec
from fhirconv.mapping import research_study
from fhirconv.sources.ctgov_json import study_to_trial

Json = dict[str, Any]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ctgov-v2"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "ctgov-v2"
# Floors, just below today's figures (both 100%: every mapped field of every record arrives).
# A field the reader cannot keep yet is marked `gap` in the spec and counts against the figure.
FIXTURE_FLOOR = 0.999
CORPUS_FLOOR = 0.999

S = "protocolSection.statusModule"
ID = "protocolSection.identificationModule"
L = "protocolSection.contactsLocationsModule.locations"
A = "protocolSection.armsInterventionsModule.armGroups"


def load(name: str) -> Json:
    study: Json = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return study


def bundle_of(study: Json) -> Json:
    trial = study_to_trial(study, "test.json")
    assert not isinstance(trial, Exception), str(trial)
    converted = convert_trial(trial)  # type: ignore[arg-type]
    assert converted.ok, [str(i) for i in converted.issues[:3]]
    return converted.bundle


def pairs(folder: Path) -> Iterator[tuple[Json, Json]]:
    for path in sorted(folder.glob("*.json")):
        study = json.loads(path.read_text(encoding="utf-8"))
        yield study, bundle_of(study)


def resources(bundle: Json, kind: str) -> list[Json]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


# --- the spec ------------------------------------------------------------------------------------


def test_spec_loads_and_accounts_for_every_field() -> None:
    spec = load_spec()
    for field in spec.fields.values():
        assert field.dropped or field.target or field.targets_by_value, field.path
        if field.dropped is not None:
            assert len(field.dropped) > 20, f"{field.path}: say why it is dropped"
    # Fields of the official data structure that are rare or absent in our records are listed too.
    for path in (
        f"{S}.delayedPosting",
        f"{S}.resultsWaived",
        "protocolSection.oversightModule.isPpsd",
        "protocolSection.designModule.designInfo.maskingInfo.whoMasked",
        "protocolSection.designModule.nPtrsToThisExpAccNctId",
        "protocolSection.eligibilityModule.stdAges",
        "protocolSection.referencesModule.availIpds.url",
        "protocolSection.referencesModule.references.retractions.pmid",
        "derivedSection.miscInfoModule.versionHolder",
        "derivedSection.miscInfoModule.submissionTracking.submissionInfos.unreleaseDateUnknown",
        "derivedSection.conditionBrowseModule.browseLeaves.relevance",
        "derivedSection.interventionBrowseModule.browseBranches.abbrev",
        "derivedSection.conditionBrowseModule.ancestors.term",
    ):
        assert path in spec.fields, path
    assert {s.prefix for s in spec.out_of_scope} == {
        "resultsSection",
        "documentSection",
        "annotationSection",
    }
    assert all(s.follow for s in spec.out_of_scope)


def test_spec_rejects_a_row_with_neither_target_nor_reason() -> None:
    with pytest.raises(ValueError, match="needs a target"):
        parse_spec({"fields": [{"path": "protocolSection.x", "kind": "text"}], "out_of_scope": []})
    with pytest.raises(ValueError, match="without a reason"):
        parse_spec({"fields": [{"path": "protocolSection.x", "dropped": True}], "out_of_scope": []})
    with pytest.raises(ValueError, match="not under scope"):
        parse_spec(
            {
                "fields": [
                    {"path": "p.x", "target": "Location.name", "scope": "Group.characteristic"}
                ],
                "out_of_scope": [],
            }
        )


# --- the measurement -----------------------------------------------------------------------------


def test_a_faithful_bundle_carries_the_record() -> None:
    study = load("NCT02513394")
    record = measure_record(study, bundle_of(study))
    assert record.unknown == set()
    assert record.paths[f"{L}.city"].records_carried == 1
    assert record.paths[f"{L}.city"].values_present > 400
    assert record.paths[f"{S}.overallStatus"].records_carried == 1


def test_a_value_the_bundle_lost_is_not_carried() -> None:
    study = load("NCT02513394")
    bundle = bundle_of(study)
    record = measure_record(study, bundle)
    assert record.paths[f"{L}.zip"].values_carried == record.paths[f"{L}.zip"].values_present
    for location in resources(bundle, "Location")[:3]:
        location["address"].pop("postalCode", None)
    damaged = measure_record(study, bundle)
    count = damaged.paths[f"{L}.zip"]
    assert count.records_carried == 0
    assert count.values_carried == count.values_present - 3
    assert len(damaged.missed[f"{L}.zip"]) == 3


def test_a_stub_mapper_that_drops_a_field_makes_the_figure_fall(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    studies = [load("NCT00007696"), load("NCT02513394")]
    before = measure((s, bundle_of(s)) for s in studies)
    assert before.paths[f"{ID}.officialTitle"].records_carried == 2
    monkeypatch.setattr(research_study, "label_extensions", lambda trial: [])
    after = measure((s, bundle_of(s)) for s in studies)
    assert after.paths[f"{ID}.officialTitle"].records_carried == 0
    assert after.carried < before.carried
    assert after.figure < before.figure


def test_a_value_found_only_elsewhere_is_not_carried_at_its_target() -> None:
    study = load("NCT00057759")
    bundle = bundle_of(study)
    (plan,) = resources(bundle, "PlanDefinition")
    descriptions = [a.pop("description") for a in plan["action"] if "description" in a]
    (research,) = resources(bundle, "ResearchStudy")
    for arm in research.get("arm", []):
        arm.pop("description", None)
    assert descriptions
    count = measure_record(study, bundle).paths[f"{A}.description"]
    assert count.values_present == 2
    assert count.values_carried == 0


def test_scope_ties_a_value_to_its_own_element() -> None:
    """An arm's description under another arm's name is not that arm's description."""
    study = load("NCT00057759")
    bundle = bundle_of(study)
    (research,) = resources(bundle, "ResearchStudy")
    arms = research["arm"]
    assert len(arms) >= 2
    arms[0]["description"], arms[1]["description"] = arms[1]["description"], arms[0]["description"]
    count = measure_record(study, bundle).paths[f"{A}.description"]
    assert count.values_carried == count.values_present - 2


def test_codes_are_carried_by_the_ctgov_code_or_the_mapped_fhir_code() -> None:
    study = load("NCT00007696")
    bundle = bundle_of(study)
    (research,) = resources(bundle, "ResearchStudy")
    progress = research_study.systems.xver("ResearchStudy.progressStatus")
    research["extension"] = [e for e in research["extension"] if e["url"] != progress]
    record = measure_record(study, bundle)
    # COMPLETED still reaches ResearchStudy.status as "completed" (mappings/overall-status.json)
    assert record.paths[f"{S}.overallStatus"].records_carried == 1
    # the milestone dates went with the progressStatus extensions
    assert record.paths[f"{S}.startDateStruct.date"].records_carried == 0
    research["status"] = "withdrawn"
    assert measure_record(study, bundle).paths[f"{S}.overallStatus"].records_carried == 0


def test_date_type_is_checked_on_its_own_milestone() -> None:
    study = load("NCT00499317")
    bundle = bundle_of(study)
    path = f"{S}.startDateStruct.type"
    assert measure_record(study, bundle).paths[path].records_carried == 1
    (research,) = resources(bundle, "ResearchStudy")
    for extension in research["extension"]:
        parts = extension.get("extension", [])
        codes = json.dumps(parts)
        if '"study-start"' in codes:
            for part in parts:
                if part["url"] == "actual":
                    part["valueBoolean"] = not part["valueBoolean"]
    assert measure_record(study, bundle).paths[path].records_carried == 0


def test_rare_status_and_reference_fields_are_carried() -> None:
    """Fields no corpus record has (or only a few): delayedPosting, resultsWaived, statusForNctId,
    reference retractions and available IPDs reach their targets."""
    study = copy.deepcopy(load("NCT00007696"))
    protocol = study["protocolSection"]
    status = protocol["statusModule"]
    status["delayedPosting"] = True
    status["resultsWaived"] = False
    status["expandedAccessInfo"] = {
        "hasExpandedAccess": True,
        "nctId": "NCT05918913",
        "statusForNctId": "TEMPORARILY_NOT_AVAILABLE",
    }
    references = protocol.setdefault("referencesModule", {})
    references["references"] = [
        {
            "pmid": "12345678",
            "type": "RESULT",
            "citation": "A retracted paper. J Imaginary Res. 2020;1:1-2.",
            "retractions": [{"pmid": "23456789", "source": "J Imaginary Res. 2021"}],
        }
    ]
    references["availIpds"] = [
        {
            "id": "IPD-7",
            "type": "Individual Participant Data Set",
            "url": "https://example.org/ipd/7",
            "comment": "On request to the data access committee.",
        },
        {"type": "Study Protocol", "url": "https://example.org/protocol.pdf"},
    ]
    bundle = bundle_of(study)
    record = measure_record(study, bundle)
    for path in (
        f"{S}.delayedPosting",
        f"{S}.resultsWaived",
        f"{S}.expandedAccessInfo.statusForNctId",
        f"{S}.studyFirstSubmitQcDate",
        "protocolSection.referencesModule.references.retractions.pmid",
        "protocolSection.referencesModule.references.retractions.source",
        "protocolSection.referencesModule.availIpds.id",
        "protocolSection.referencesModule.availIpds.type",
        "protocolSection.referencesModule.availIpds.url",
        "protocolSection.referencesModule.availIpds.comment",
        "derivedSection.miscInfoModule.versionHolder",
    ):
        assert record.paths[path].records_carried == 1, path
    (research,) = resources(bundle, "ResearchStudy")
    (paper,) = [a for a in research["relatedArtifact"] if a.get("label") == "RESULT"]
    (retraction,) = paper["extension"]
    assert retraction["url"].endswith("/retraction")
    ipds = [a for a in research["relatedArtifact"] if a.get("label") == "Available IPD/information"]
    assert [a["display"] for a in ipds] == ["Individual Participant Data Set", "Study Protocol"]
    assert all(a["type"] == "documentation" for a in ipds)


def test_an_unknown_field_is_reported() -> None:
    study = load("NCT00007696")
    bundle = bundle_of(study)
    changed = copy.deepcopy(study)
    changed["protocolSection"]["statusModule"]["brandNewField"] = "x"
    changed["protocolSection"]["newModule"] = {"items": [{"value": 1}]}
    changed["resultsSection"] = {"anything": {"at": "all"}}  # out of scope: known
    record = measure_record(changed, bundle)
    assert record.unknown == {f"{S}.brandNewField", "protocolSection.newModule.items.value"}
    assert "resultsSection" in record.out_of_scope


def test_dropped_fields_are_counted_apart_from_the_figure() -> None:
    study = load("NCT02513394")
    coverage = measure([(study, bundle_of(study))])
    ancestors = "derivedSection.conditionBrowseModule.ancestors.id"
    assert load_spec().fields[ancestors].dropped
    assert coverage.paths[ancestors].records_present == 1
    assert coverage.dropped_present >= 1
    assert coverage.present == sum(
        c.records_present for p, c in coverage.paths.items() if not load_spec().fields[p].dropped
    )


# --- real records --------------------------------------------------------------------------------


def _check(coverage: Coverage, floor: float) -> None:
    assert coverage.failed == []
    assert dict(coverage.unknown) == {}, "new ClinicalTrials.gov fields: add them to the spec"
    missed = {
        spec.path: f"{count.records_carried}/{count.records_present}"
        for spec, count in coverage.rows()
        if spec.dropped is None and count.records_carried < count.records_present and not spec.gap
    }
    assert missed == {}, "mapped fields not carried (fix the mapper, or mark a reader gap)"
    assert coverage.figure >= floor, (
        f"{coverage.carried}/{coverage.present} = {coverage.figure:.4f}"
    )


def test_fixtures_carried_at_or_above_floor() -> None:
    _check(measure(pairs(FIXTURES)), FIXTURE_FLOOR)


@pytest.mark.corpus
def test_corpus_carried_at_or_above_floor() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}: the corpus-wide figure needs it")
    coverage = measure(pairs(CORPUS))
    assert coverage.records == len(list(CORPUS.glob("*.json")))
    _check(coverage, CORPUS_FLOOR)


# --- the command ---------------------------------------------------------------------------------


def test_command_prints_table_figure_and_unknowns(tmp_path: Path) -> None:
    runner = CliRunner()
    one = FIXTURES / "NCT00007696.json"
    result = runner.invoke(app, ["coverage", str(one)])
    assert result.exit_code == 0, result.output
    assert "## protocolSection.statusModule" in result.output
    assert "carried/present = " in result.output
    assert "unknown paths: none" in result.output
    as_json = runner.invoke(app, ["coverage", "--format", "json", str(one)])
    assert as_json.exit_code == 0
    report = json.loads(as_json.output)
    assert report["records"] == 1 and report["unknown"] == {}
    assert 0 < report["carried"] <= report["present"]

    study = load("NCT00007696")
    study["protocolSection"]["statusModule"]["brandNewField"] = True
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(study), encoding="utf-8")
    failing = runner.invoke(app, ["coverage", str(changed)])
    assert failing.exit_code == 1
    assert f"{S}.brandNewField (1 records)" in failing.output
