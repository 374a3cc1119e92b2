"""Odd input never crashes the pipeline: real records with fields deleted, emptied, nulled or
replaced by junk either convert to a valid Bundle or fail as one clear RecordError."""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhirconv.convert import convert_inputs, convert_or_report, convert_trial
from fhirconv.errors import InputError, RecordError
from fhirconv.model import Trial
from fhirconv.sources import decode_input, read_path, read_text, registry_text
from fhirconv.sources.ctgov_json import study_to_trial
from fhirconv.sources.render_text import render_registry_text
from tests.conftest import FIXTURES
from tests.mutations import (
    JSON_OPS,
    TEXT_OPS,
    XML_OPS,
    json_paths,
    mutate_json,
    mutate_text,
    mutate_xml,
    xml_elements,
)

HEADINGS = frozenset(registry_text.BLURBS)

JUNK: list[Any] = ["", "   ", None, "ÄÖ ü\u200b", "12", "x" * 3000, "0", "2020-13", [], {}, 7, True]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _leaves(child, (*path, index))
    else:
        yield path


def _assert_converts_or_fails_cleanly(result: Any) -> None:
    if isinstance(result, RecordError):
        assert result.file and str(result)
        return
    converted = convert_trial(result)
    assert converted.ok, [str(i) for i in converted.issues[:3]]


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "ctgov-v2").glob("*.json")), ids=lambda p: p.stem
)
def test_mutated_json_records_never_crash(path: Path) -> None:
    study = json.loads(path.read_text(encoding="utf-8"))
    leaves = list(_leaves(study["protocolSection"]))
    rng = random.Random(path.stem)  # deterministic per record
    for _ in range(12):
        mutated = copy.deepcopy(study)
        where = rng.choice(leaves)
        parent = mutated["protocolSection"]
        for key in where[:-1]:
            parent = parent[key]
        if rng.random() < 0.3:
            del parent[where[-1]]
        else:
            parent[where[-1]] = rng.choice(JUNK)
        _assert_converts_or_fails_cleanly(study_to_trial(mutated, str(path)))


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "ctgov-xml").glob("*.xml")), ids=lambda p: p.stem
)
def test_mutated_xml_records_never_crash(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    tags = re.findall(r"<([a-z_]+)>[^<]*</\1>", text)
    rng = random.Random(path.stem)
    for _ in range(12):
        tag = rng.choice(tags)
        replacement = rng.choice(["", f"<{tag}></{tag}>", f"<{tag}>  ÄÖ 12 N/A</{tag}>"])
        mutated = re.sub(rf"<{tag}>[^<]*</{tag}>", replacement, text, count=1)
        for result in read_text(mutated, str(path)):
            _assert_converts_or_fails_cleanly(result)


# --- every reader is total: type confusion, nesting, encodings, empty input, duplicates --------

STUDY = json.loads((FIXTURES / "ctgov-v2" / "NCT00007696.json").read_text(encoding="utf-8"))
NCT = "NCT00007696"


def _read_one(study: Any, file: str = "in.json") -> Any:
    (result,) = read_text(json.dumps(study), file, "ctgov-json")
    return result


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(STUDY)
    parent = mutated
    for key in path[:-1]:
        parent = parent.setdefault(key, {})
    parent[path[-1]] = value
    return mutated


def test_a_string_design_module_converts_the_rest_and_warns_naming_the_field() -> None:
    trial = _read_one(_with(("protocolSection", "designModule"), "Interventional"))
    converted = convert_trial(trial)
    assert converted.ok
    (warning,) = [w for w in converted.warnings if "designModule" in w]
    assert warning.startswith(f"in.json, record {NCT}, field protocolSection.designModule:")
    assert "expected an object" in warning and "ignored" in warning


def test_locations_given_as_strings_are_named_and_the_study_still_converts() -> None:
    path = ("protocolSection", "contactsLocationsModule", "locations")
    trial = _read_one(_with(path, ["Boston"]))
    assert not isinstance(trial, RecordError)
    assert trial.sites == ()
    assert any(
        ".locations[0]: expected an object, found text 'Boston'" in w for w in trial.reader_warnings
    )
    assert convert_trial(trial).ok


def test_a_single_condition_string_is_read_as_a_list_with_a_warning() -> None:
    trial = _read_one(_with(("protocolSection", "conditionsModule", "conditions"), "Asthma"))
    assert trial.conditions == ("Asthma",)
    assert any("conditions: expected a list" in w for w in trial.reader_warnings)


@pytest.mark.parametrize("value", [[], ["x"], "text", 7, True])
def test_a_protocol_section_of_the_wrong_shape_is_a_record_error_naming_it(value: Any) -> None:
    result = _read_one(_with(("protocolSection",), value))
    assert isinstance(result, RecordError)
    assert result.field == "protocolSection"


def test_an_identification_module_list_is_an_error_naming_that_field() -> None:
    result = _read_one(_with(("protocolSection", "identificationModule"), []))
    assert isinstance(result, RecordError)
    assert result.field == "protocolSection.identificationModule"
    assert "expected an object, found a list" in result.message


@pytest.mark.parametrize(
    "path",
    [
        ("protocolSection", "statusModule", "startDateStruct"),
        ("protocolSection", "armsInterventionsModule", "armGroups"),
        ("protocolSection", "eligibilityModule", "minimumAge"),
        ("protocolSection", "sponsorCollaboratorsModule", "leadSponsor", "name"),
        ("derivedSection", "conditionBrowseModule", "meshes"),
        ("protocolSection", "referencesModule", "references"),
    ],
)
@pytest.mark.parametrize("value", [[1, "x", None], {"a": {"b": []}}, 3.5, False, ""])
def test_type_confusion_anywhere_converts_or_names_the_field(
    path: tuple[str, ...], value: Any
) -> None:
    result = _read_one(_with(path, value))
    if isinstance(result, RecordError):
        assert result.field and result.record == NCT
        return
    assert convert_trial(result).ok


def test_json_nested_100000_levels_is_refused_with_a_message() -> None:
    text = '{"protocolSection": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (result,) = read_text(text, "deep.json", "ctgov-json")
    assert isinstance(result, RecordError)
    assert "nested more than" in result.message


def test_a_pretty_printed_file_cut_short_is_one_truncated_json_error() -> None:
    text = json.dumps(STUDY, indent=2)
    cut = text[: len(text) // 2]
    results = list(read_text(cut, "cut.json", "ctgov-json"))
    assert len(results) == 1 and isinstance(results[0], RecordError)
    assert results[0].message.startswith("truncated JSON (the text ends too early) at line ")
    assert results[0].record == NCT  # the one NCT id in the text names the record


@pytest.mark.parametrize("text", ["", "  \n", "[]", '{"studies": []}'])
def test_input_without_records_is_an_error(text: str, tmp_path: Path) -> None:
    file = tmp_path / "empty.json"
    file.write_text(text, encoding="utf-8")
    (result,) = read_path(str(file))
    assert isinstance(result, RecordError) and result.message.startswith("no records: ")


def test_a_directory_without_records_is_an_error(tmp_path: Path) -> None:
    (result,) = read_path(str(tmp_path))
    assert isinstance(result, RecordError) and "no records" in result.message


def test_bytes_that_are_not_utf8_fail_only_their_record_naming_the_field(tmp_path: Path) -> None:
    good = json.dumps(STUDY).encode()
    bad = good.replace(b'"briefTitle": "', b'"briefTitle": "\xff\xfe', 1)
    other = json.dumps(_with(("protocolSection", "identificationModule", "nctId"), "NCT99999999"))
    file = tmp_path / "mixed.ndjson"
    file.write_bytes(bad + b"\n" + other.encode() + b"\n")
    first, second = read_path(str(file))
    assert isinstance(first, RecordError)
    assert first.field == "protocolSection.identificationModule.briefTitle"
    assert "not valid UTF-8" in first.message
    assert not isinstance(second, RecordError) and second.nct_id == "NCT99999999"


def test_xml_declaring_iso_8859_1_is_read(tmp_path: Path) -> None:
    text = (FIXTURES / "ctgov-xml").glob("*.xml").__next__().read_text(encoding="utf-8")
    body = re.sub(r"^<\?xml[^>]*\?>", "", text.lstrip())
    body = body.replace("<brief_title>", "<brief_title>Café Müller: ", 1)
    file = tmp_path / "latin1.xml"
    file.write_bytes(('<?xml version="1.0" encoding="ISO-8859-1"?>' + body).encode("latin-1"))
    (trial,) = read_path(str(file))
    assert not isinstance(trial, RecordError), trial
    assert trial.brief_title and trial.brief_title.startswith("Café Müller: ")


def test_a_reader_defect_becomes_a_record_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fhirconv.sources import ctgov_json

    def broken(self: Any) -> Any:
        raise AttributeError("'list' object has no attribute 'get'")

    monkeypatch.setattr(ctgov_json._StudyReader, "design", broken)
    result = _read_one(STUDY)
    assert isinstance(result, RecordError) and result.record == NCT
    assert "unexpected data: AttributeError" in result.message and "ctgov_json.py" in result.message


def test_a_mapping_defect_becomes_a_record_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from fhirconv import convert

    def broken(trial: Any) -> Any:
        raise KeyError("intervention")

    monkeypatch.setattr(convert, "map_trial", broken)
    result = convert.convert_or_report(_read_one(STUDY))
    assert isinstance(result, RecordError) and result.record == NCT
    assert "cannot convert" in result.message


def _updated(study: dict[str, Any], when: str) -> dict[str, Any]:
    return _with(("protocolSection", "statusModule", "lastUpdatePostDateStruct"), {"date": when})


def test_duplicate_nct_ids_keep_the_most_recently_updated_record(tmp_path: Path) -> None:
    newer = _with(("protocolSection", "identificationModule", "briefTitle"), "Newer title")
    newer["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"] = {"date": "2030-01-01"}
    (tmp_path / "a.json").write_text(json.dumps(newer), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps(STUDY), encoding="utf-8")
    results = list(convert_inputs([str(tmp_path / "a.json"), str(tmp_path / "b.json")]))
    (kept,) = results
    assert not isinstance(kept, RecordError)
    assert kept.trial.brief_title == "Newer title"
    (warning,) = [w for w in kept.warnings if "occurs in 2 records" in w]
    assert "a.json" in warning and "b.json" in warning and "most recently updated" in warning


# --- property-based: hypothesis picks the record, the path and the mutation ---------------------

_FIXTURE_STUDIES = [
    json.loads(p.read_text(encoding="utf-8"))
    for p in sorted((FIXTURES / "ctgov-v2").glob("*.json"))[:6]
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_mutation_at_any_json_path_converts_or_is_named(data: st.DataObject) -> None:
    study = data.draw(st.sampled_from(_FIXTURE_STUDIES))
    path = data.draw(st.sampled_from(list(json_paths(study))))
    op = data.draw(st.sampled_from(JSON_OPS))
    line, _ = mutate_json(study, op, path, random.Random(data.draw(st.integers(0, 2**16))))
    untouched = json.dumps(_FIXTURE_STUDIES[-1]).encode()
    text = decode_input(untouched + b"\n" + line + b"\n" + untouched, "batch.ndjson")
    results = list(read_text(text, "batch.ndjson", "ctgov-json"))
    assert len(results) == 3
    assert not isinstance(results[0], RecordError) and not isinstance(results[2], RecordError)
    mutated = results[1]
    if isinstance(mutated, RecordError):
        assert mutated.file == "batch.ndjson" and (mutated.record or mutated.field)
        return
    result = convert_or_report(mutated)
    if isinstance(result, RecordError):
        assert result.record
        return
    assert result.ok, [str(issue) for issue in result.issues[:3]]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_mutation_of_an_xml_element_converts_or_is_named(data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted((FIXTURES / "ctgov-xml").glob("*.xml"))))
    text = path.read_text(encoding="utf-8")
    element = data.draw(st.sampled_from(xml_elements(text)))
    op = data.draw(st.sampled_from(XML_OPS))
    mutated = mutate_xml(text, op, element, random.Random(0))
    try:
        results = list(read_text(decode_input(mutated, "m.xml"), "m.xml", "ctgov-xml"))
    except InputError as error:  # not decodable: read_path reports it as the file's RecordError
        assert "m.xml" in str(error)
        return
    (result,) = results
    if isinstance(result, RecordError):
        assert result.file == "m.xml"
        return
    converted = convert_or_report(result)
    assert isinstance(converted, RecordError) or converted.ok, converted.issues[:3]


def test_an_xml_element_with_children_where_text_belongs_is_named() -> None:
    path = sorted((FIXTURES / "ctgov-xml").glob("*.xml"))[0]
    text = path.read_text(encoding="utf-8").replace("<brief_title>", "<brief_title><b>x</b>", 1)
    (trial,) = read_text(text, "odd.xml", "ctgov-xml")
    assert not isinstance(trial, RecordError)
    (warning,) = trial.reader_warnings
    assert "odd.xml, record NCT" in warning and "field clinical_study/brief_title" in warning
    assert "expected text, found <b>" in warning


_PAGES = [
    render_registry_text(trial)
    for study in _FIXTURE_STUDIES[:4]
    if isinstance(trial := _read_one(study), Trial)
]


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_mutation_of_a_page_keeps_its_neighbours_and_converts_or_is_named(
    data: st.DataObject,
) -> None:
    page = data.draw(st.sampled_from(_PAGES[1:]))
    op = data.draw(st.sampled_from(TEXT_OPS))
    mutated = mutate_text(page, op, random.Random(data.draw(st.integers(0, 2**16))), HEADINGS)
    text = decode_input(_PAGES[0].encode() + b"\n" + mutated, "pages.txt")
    results = list(read_text(text, "pages.txt", "registry-text"))
    first = results[0]
    assert not isinstance(first, RecordError) and first.nct_id in _PAGES[0]
    for result in results[1:]:
        if isinstance(result, RecordError):
            assert result.file == "pages.txt" and (result.record or result.field)
            continue
        converted = convert_or_report(result)
        assert isinstance(converted, RecordError) or converted.ok, converted.issues[:3]
