"""Legacy ClinicalTrials.gov XML (`<clinical_study>`, AllPublicXML / classic API) → `Trial`.

Accepts one `<clinical_study>` per file, or any wrapper element holding several. Parsed with
`defusedxml` (the input is untrusted). Display strings ("Phase 1/Phase 2", "Active, not recruiting")
are normalized to ClinicalTrials.gov API v2 enum spellings with the tables in
`mappings/ctgov-xml-enums.json`; a display value missing from a table is kept as an UPPER_SNAKE code
so the code-table check downstream reports it. Field paths in codes, dates and errors are XML paths
(`clinical_study/study_design_info/allocation`).

Textblocks (summaries, descriptions, eligibility criteria) are hard-wrapped and indented in the XML;
they are dedented, wrapped lines are joined, paragraphs kept, and `-` bullets become Markdown `* `
items so the text compares with the API v2 Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from fhirconv.errors import RecordError
from fhirconv.model import (
    AgeLimit,
    Arm,
    Code,
    ContactPoint,
    Design,
    Eligibility,
    Intervention,
    Investigator,
    IpdSharing,
    Link,
    MeshTerm,
    Organization,
    Outcome,
    Oversight,
    PartialDate,
    Reference,
    ResponsibleParty,
    SecondaryId,
    Site,
    SourceRef,
    Trial,
)
from fhirconv.sources.dates import DateProblem as _DateProblem
from fhirconv.sources.dates import parse_partial_date as parse_xml_date
from fhirconv.sources.record import FieldError, read_record, upper_snake
from fhirconv.tables import load_json

FORMAT = "ctgov-xml"
ROOT = "clinical_study"
ENUMS_FILE = "ctgov-xml-enums.json"


def read_text(text: str, file: str) -> Iterator[Trial | RecordError]:
    """Yield one `Trial` (or `RecordError`) per `<clinical_study>` found in `text`."""
    try:
        root = _parse(text)
    except ParseError as error:
        yield RecordError(file, _lone_nct_id(text), None, f"malformed XML: {error}")
        return
    except DefusedXmlException as error:
        yield RecordError(file, _lone_nct_id(text), None, f"refused unsafe XML: {error!r}")
        return
    studies = [root] if root.tag == ROOT else root.findall(f".//{ROOT}")
    if not studies:
        yield RecordError(
            file, None, None, f"not ClinicalTrials.gov XML: root <{root.tag}> holds no <{ROOT}>"
        )
        return
    for index, study in enumerate(studies, 1):
        yield study_to_trial(study, file, f"#{index}")


def _lone_nct_id(text: str) -> str | None:
    """The NCT id of an unparseable file holding one study, to name it in the error."""
    found = set(re.findall(r"<nct_id>\s*(NCT\d{8})\s*</nct_id>", text))
    return found.pop() if len(found) == 1 else None


_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")


def _parse(text: str) -> Element:
    # A str is already decoded: drop the declaration (its encoding= would contradict that) but keep
    # the line structure so parser messages still name the right line.
    text = _DECLARATION.sub("", text.lstrip("\ufeff"), count=1)
    root: Element = SafeET.fromstring(text)
    return root


def study_to_trial(study: Element, file: str, position: str = "#1") -> Trial | RecordError:
    """Convert one `<clinical_study>`; never raises for bad data, returns a `RecordError`."""
    return read_record(_StudyReader(study, file, position))


# --- display string → API v2 enum --------------------------------------------------------------


def _fold(value: str) -> str:
    return " ".join(value.split()).casefold()


class EnumTables:
    """The display → enum tables of `mappings/ctgov-xml-enums.json`, one per XML element."""

    def __init__(self, tables: dict[str, Any]) -> None:
        self.exact: dict[str, dict[str, str | None]] = {}
        self.folded: dict[str, dict[str, str | None]] = {}
        for section, table in tables.items():
            if section.startswith("_") or not isinstance(table, dict):
                continue
            self.exact[section] = dict(table)
            self.folded[section] = {_fold(k): v for k, v in table.items()}

    def known(self, section: str, display: str) -> bool:
        return display in self.exact[section] or _fold(display) in self.folded[section]

    def lookup(self, section: str, display: str) -> str | None:
        """The enum for `display`; None when the table maps it to null; else UPPER_SNAKE."""
        table = self.exact[section]
        if display in table:
            return table[display]
        folded = self.folded[section]
        key = _fold(display)
        if key in folded:
            return folded[key]
        return upper_snake(display)


@cache
def enum_tables() -> EnumTables:
    return EnumTables(load_json(ENUMS_FILE))


# --- small text helpers ------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return text or None


_BULLET = re.compile(
    r"^(?:(?P<sym>[-•*+·▪◦])|(?P<num>\(?(?:\d{1,3}|[A-Za-z]|[ivxIVX]{2,4})[.)]))(?P<ws>\s+)(?=\S)"
)


@dataclass
class _Block:
    is_item: bool
    content_col: int  # column (after dedent) where the block's text starts
    marker: str  # "*" for symbol bullets, "1." etc. for numbered ones, "" for paragraphs
    text: str


def textblock_to_text(raw: str | None) -> str | None:
    """Dedent an XML textblock, join hard-wrapped lines, keep paragraphs, bullets as Markdown."""
    if raw is None:
        return None
    lines = [line.rstrip() for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = [line.expandtabs(8) for line in lines]
    indents = [len(line) - len(line.lstrip(" ")) for line in lines if line.strip()]
    if not indents:
        return None
    base = min(indents)
    blocks: list[_Block] = []
    blank_before = True
    for line in lines:
        if not line.strip():
            blank_before = True
            continue
        indent = len(line) - len(line.lstrip(" ")) - base
        body = line.strip()
        match = _BULLET.match(body)
        current = blocks[-1] if blocks else None
        starts = blank_before or current is None
        if not starts and current is not None and match:
            # Hard wrapping never puts "-  " (two spaces) or a marker off the text column.
            starts = indent != current.content_col or (
                match.group("sym") is not None and len(match.group("ws")) >= 2
            )
        if not starts and current is not None and not match and current.is_item:
            starts = indent < current.content_col - 1
        if starts:
            if match:
                marker = "*" if match.group("sym") else match.group("num")
                blocks.append(_Block(True, indent + match.end(), marker, body[match.end() :]))
            else:
                blocks.append(_Block(False, indent, "", body))
        elif current is not None:
            current.text += " " + body
        blank_before = False
    return _render(blocks)


_MARKDOWN_SPECIAL = re.compile(r"([\\<>\[\]*^~&])")


def markdown_escape(text: str) -> str:
    """Backslash-escape what API v2 escapes in its Markdown text: ``<3`` → ``\\<3``."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _render(blocks: list[_Block]) -> str | None:
    out: list[str] = []
    stack: list[tuple[int, int]] = []  # (content column, leading spaces for children)
    previous: _Block | None = None
    for block in blocks:
        if block.is_item:
            while stack and stack[-1][0] > block.content_col:
                stack.pop()
            if stack and stack[-1][0] == block.content_col:
                stack.pop()
            leading = stack[-1][1] if stack else 0
            stack.append((block.content_col, leading + len(block.marker) + 1))
            text = f"{' ' * leading}{block.marker} {markdown_escape(block.text)}"
        else:
            stack.clear()
            text = markdown_escape(block.text)
        if previous is not None:
            out.append("\n" if previous.is_item and block.is_item else "\n\n")
        out.append(text)
        previous = block
    return "".join(out) or None


def _display_of(code: str) -> str:
    """DIETARY_SUPPLEMENT → 'Dietary Supplement' (API v2's prefix in arm intervention names)."""
    return code.replace("_", " ").title()


_YES = {"yes", "accepts healthy volunteers", "true"}
_NO = {"no", "false"}


# --- the reader --------------------------------------------------------------------------------


class _StudyReader:
    """Reads one `<clinical_study>`; knows the XML paths so errors can name them."""

    def __init__(self, study: Element, file: str, position: str) -> None:
        self.study = study
        self.file = file
        self.record = _clean(study.findtext("id_info/nct_id")) or position
        self.shape_warnings: list[tuple[str, str]] = []
        self.enums = enum_tables()

    # element access

    def text(self, path: str, parent: Element | None = None) -> str | None:
        element = (self.study if parent is None else parent).find(path)
        return None if element is None else self.leaf_text(element, path, parent)

    def texts(self, path: str, parent: Element | None = None) -> tuple[str, ...]:
        elements = (self.study if parent is None else parent).findall(path)
        return tuple(t for t in (self.leaf_text(e, path, parent) for e in elements) if t)

    def leaf_text(self, element: Element, path: str, parent: Element | None) -> str | None:
        """The text of an element that should hold only text. Child elements there are a shape
        the registry never writes: their content is not read, and a warning names the field."""
        if len(element):
            where = f"{ROOT}/{path}" if parent is None else f"{ROOT}/…/{parent.tag}/{path}"
            children = ", ".join(sorted({f"<{child.tag}>" for child in element}))
            self.shape_warnings.append((where, f"expected text, found {children}; not read"))
        return _clean(element.text)

    def textblock(self, path: str) -> str | None:
        element = self.study.find(path)
        if element is None:
            return None
        block = element.find("textblock")
        return textblock_to_text((block if block is not None else element).text)

    # value conversion

    def code(self, section: str, value: str | None, field: str) -> Code | None:
        if value is None:
            return None
        code = self.enums.lookup(section, value)
        return Code(code=code, field=f"{ROOT}/{field}") if code else None

    def code_at(self, section: str, path: str, parent: Element | None = None) -> Code | None:
        return self.code(section, self.text(path, parent), path)

    def flag(self, path: str, parent: Element | None = None) -> bool | None:
        value = self.text(path, parent)
        if value is None:
            return None
        if value.casefold() in _YES:
            return True
        if value.casefold() in _NO:
            return False
        raise FieldError(f"{ROOT}/{path}", f"not Yes/No: {value!r}")

    def date(self, *paths: str) -> PartialDate | None:
        """The first of `paths` present (newer element name first), with its type attribute."""
        for path in paths:
            element = self.study.find(path)
            value = _clean(element.text) if element is not None else None
            if element is None or value is None:
                continue
            field = f"{ROOT}/{path}"
            try:
                iso = parse_xml_date(value)
            except _DateProblem as error:
                raise FieldError(field, str(error)) from error
            kind = _clean(element.get("type"))
            estimated = None
            if kind is not None:
                code = self.enums.lookup("date_type", kind)
                estimated = {"ESTIMATED": True, "ACTUAL": False}.get(code or "")
            return PartialDate(value=iso, field=field, estimated=estimated)
        return None

    def age(self, path: str) -> AgeLimit | None:
        text = self.text(path)
        if not text or text.upper() in {"N/A", "NA", "NONE"}:
            return None
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", text)
        if not match:
            raise FieldError(
                f"{ROOT}/{path}", f"unreadable age {text!r} (expected e.g. '18 Years')"
            )
        return AgeLimit(
            value=float(match.group(1)), unit=match.group(2).capitalize(), field=f"{ROOT}/{path}"
        )

    def person_name(self, element: Element) -> str | None:
        """first/middle/last name (+ degrees); recent XML puts the whole name in last_name."""
        parts = [self.text(p, element) for p in ("first_name", "middle_name", "last_name")]
        name = " ".join(p for p in parts if p) or self.text("name_title", element)
        degrees = self.text("degrees", element)
        if name and degrees and not name.endswith(degrees):
            name = f"{name}, {degrees}"
        return name

    def organization(self, element: Element | None, path: str) -> Organization | None:
        if element is None:
            return None
        name = self.text("agency", element)
        if not name:
            return None
        org_class = self.code(
            "agency_class", self.text("agency_class", element), f"{path}/agency_class"
        )
        return Organization(name=name, org_class=org_class)

    # the record

    def trial(self) -> Trial:
        nct_id = self.text("id_info/nct_id")
        if not nct_id:
            raise FieldError(f"{ROOT}/id_info/nct_id", "record has no NCT id")
        if not re.fullmatch(r"NCT\d{8}", nct_id):
            raise FieldError(f"{ROOT}/id_info/nct_id", f"not an NCT id: {nct_id!r}")
        self.record = nct_id
        source = self.text("source")
        return Trial(
            source=SourceRef(file=self.file, record=nct_id, format=FORMAT),
            nct_id=nct_id,
            nct_id_aliases=self.texts("id_info/nct_alias"),
            org_study_id=self.text("id_info/org_study_id"),
            secondary_ids=tuple(SecondaryId(id=i) for i in self.texts("id_info/secondary_id")),
            brief_title=self.text("brief_title"),
            official_title=self.text("official_title"),
            acronym=self.text("acronym"),
            organization=Organization(name=source) if source else None,
            overall_status=self.code_at("overall_status", "overall_status"),
            last_known_status=self.code_at("overall_status", "last_known_status"),
            why_stopped=self.text("why_stopped"),
            status_verified=self.date("verification_date"),
            start_date=self.date("start_date"),
            primary_completion_date=self.date("primary_completion_date"),
            completion_date=self.date("completion_date"),
            first_submitted=self.date("study_first_submitted", "firstreceived_date"),
            first_submitted_qc=self.date("study_first_submitted_qc"),
            first_posted=self.date("study_first_posted"),
            results_first_submitted=self.date(
                "results_first_submitted", "firstreceived_results_date"
            ),
            results_first_submitted_qc=self.date("results_first_submitted_qc"),
            results_first_posted=self.date("results_first_posted"),
            disposition_first_submitted=self.date(
                "disposition_first_submitted", "firstreceived_results_disposition_date"
            ),
            disposition_first_submitted_qc=self.date("disposition_first_submitted_qc"),
            disposition_first_posted=self.date("disposition_first_posted"),
            last_update_submitted=self.date("last_update_submitted", "lastchanged_date"),
            last_update_posted=self.date("last_update_posted"),
            has_expanded_access=self.flag("has_expanded_access"),
            has_results=self.study.find("clinical_results") is not None,
            lead_sponsor=self.organization(
                self.study.find("sponsors/lead_sponsor"), "sponsors/lead_sponsor"
            ),
            collaborators=tuple(
                o
                for o in (
                    self.organization(c, "sponsors/collaborator")
                    for c in self.study.findall("sponsors/collaborator")
                )
                if o
            ),
            responsible_party=self.responsible_party(),
            oversight=self.oversight(),
            brief_summary=self.textblock("brief_summary"),
            detailed_description=self.textblock("detailed_description"),
            conditions=self.texts("condition"),
            keywords=self.texts("keyword"),
            condition_meshes=tuple(
                MeshTerm(term=t) for t in self.texts("condition_browse/mesh_term")
            ),
            intervention_meshes=tuple(
                MeshTerm(term=t) for t in self.texts("intervention_browse/mesh_term")
            ),
            design=self.design(),
            arms=self.arms(),
            interventions=self.interventions(),
            outcomes=self.outcomes(),
            eligibility=self.eligibility(),
            officials=self.officials(),
            central_contacts=self.central_contacts(),
            sites=self.sites(),
            countries=self.countries(),
            removed_countries=self.texts("removed_countries/country"),
            references=self.references(),
            see_also_links=tuple(
                Link(url=url, label=self.text("description", link))
                for link in self.study.findall("link")
                if (url := self.text("url", link))
            ),
            ipd_sharing=self.ipd_sharing(),
            data_version=self.download_date(),
            reader_warnings=tuple(
                dict.fromkeys(
                    SourceRef(file=self.file, record=nct_id, format=FORMAT).describe(where)
                    + f": {message}"
                    for where, message in self.shape_warnings
                )
            ),
        )

    def download_date(self) -> PartialDate | None:
        """The data release: "ClinicalTrials.gov processed this data on February 03, 2023". Not
        study content (it names the download), so an unreadable one is left out, not an error."""
        path = "required_header/download_date"
        text = self.text(path)
        if text is None:
            return None
        text = re.sub(r"^.*?\bprocessed this data on\s*", "", text, flags=re.IGNORECASE)
        try:
            return PartialDate(value=parse_xml_date(text), field=f"{ROOT}/{path}")
        except (_DateProblem, ValueError):
            return None

    def responsible_party(self) -> ResponsibleParty | None:
        party = self.study.find("responsible_party")
        if party is None or len(party) == 0:
            return None
        return ResponsibleParty(
            type=self.code_at("responsible_party_type", "responsible_party/responsible_party_type"),
            investigator_name=self.text("investigator_full_name", party),
            investigator_title=self.text("investigator_title", party),
            investigator_affiliation=self.text("investigator_affiliation", party),
            old_name_title=self.text("name_title", party),
            old_organization=self.text("organization", party),
        )

    def oversight(self) -> Oversight | None:
        if self.study.find("oversight_info") is None:
            return None
        return Oversight(
            has_dmc=self.flag("oversight_info/has_dmc"),
            is_fda_regulated_drug=self.flag("oversight_info/is_fda_regulated_drug"),
            is_fda_regulated_device=self.flag("oversight_info/is_fda_regulated_device"),
            is_unapproved_device=self.flag("oversight_info/is_unapproved_device"),
            is_us_export=self.flag("oversight_info/is_us_export"),
            is_ppsd=self.flag("oversight_info/is_ppsd"),
        )

    def phases(self) -> tuple[Code, ...]:
        value = self.text("phase")
        if value is None:
            return ()
        parts = [value] if self.enums.known("phase", value) else value.split("/")
        codes = (self.code("phase", p.strip(), "phase") for p in parts if p.strip())
        return tuple(c for c in codes if c)

    def study_type(self) -> tuple[Code | None, bool | None]:
        value = self.text("study_type")
        code = self.code("study_type", value, "study_type")
        registry = None
        if code is not None and code.code == "OBSERVATIONAL" and value is not None:
            registry = "patient registry" in value.casefold()
        return code, registry

    def masking(self, value: str | None, path: str) -> tuple[Code | None, tuple[Code, ...]]:
        """'Double (Participant, Investigator)' → DOUBLE + (PARTICIPANT, INVESTIGATOR)."""
        if value is None:
            return None, ()
        if self.enums.known("masking", value):
            return self.code("masking", value, path), ()
        match = re.fullmatch(r"\s*([^()]*?)\s*(?:\((.*)\))?\s*", value)
        word, who = (match.group(1), match.group(2)) if match else (value, None)
        who_masked = tuple(
            c
            for c in (self.code("who_masked", w.strip(), path) for w in (who or "").split(","))
            if c and c.code
        )
        return self.code("masking", word or value, path), who_masked

    def old_design(self) -> dict[str, str]:
        """Pre-2017 `<study_design>`: 'Allocation: Randomized, …, Masking: Double Blind (…), …'
        or the older key-less 'Treatment, Randomized, Double Blind (Subject), Placebo Control, …'.

        Returns element name → display value for the parts the model has (endpoint classification
        and control type are not in the model and are left out).
        """
        value = self.text("study_design")
        if value is None or value.upper() in {"N/A", "NA"}:
            return {}
        parts = [p.strip() for p in re.split(r",(?![^()]*\))", value) if p.strip()]
        keys = {
            "allocation": "allocation",
            "intervention model": "intervention_model",
            "masking": "masking",
            "primary purpose": "primary_purpose",
            "observational model": "observational_model",
            "time perspective": "time_perspective",
        }
        found: dict[str, str] = {}
        for part in parts:
            key, sep, display = part.partition(":")
            if sep:
                section = keys.get(_fold(key))
                if section and display.strip():
                    found.setdefault(section, display.strip())
                continue
            word = re.sub(r"\s*\(.*\)\s*$", "", part)
            for section in (
                "allocation",
                "intervention_model",
                "masking",
                "primary_purpose",
                "observational_model",
                "time_perspective",
            ):
                if section not in found and self.enums.known(section, word):
                    found[section] = part
                    break
        return found

    def design(self) -> Design:
        info = self.study.find("study_design_info")
        old = self.old_design()

        def pick(name: str) -> tuple[str | None, str]:
            """The value of design element `name`, newer element first, and its path."""
            value = self.text(name, info) if info is not None else None
            if value is not None:
                return value, f"study_design_info/{name}"
            return old.get(name), "study_design"

        def coded(name: str) -> Code | None:
            value, path = pick(name)
            return self.code(name, value, path)

        masking_value, masking_path = pick("masking")
        masking, who_masked = self.masking(masking_value, masking_path)
        study_type, registry = self.study_type()
        enrollment = self.study.find("enrollment")
        count: int | None = None
        estimated: bool | None = None
        if enrollment is not None and (raw := _clean(enrollment.text)) is not None:
            try:
                count = int(raw)
            except ValueError as error:
                raise FieldError(
                    f"{ROOT}/enrollment", f"enrollment is not a number: {raw!r}"
                ) from error
            kind = _clean(enrollment.get("type"))
            if kind is not None:
                code = self.enums.lookup("enrollment_type", kind)
                estimated = {"ESTIMATED": True, "ACTUAL": False}.get(code or "")
        access = self.study.find("expanded_access_info")
        access_types: list[Code] = []
        if access is not None:
            for child in access:
                if self.flag(child.tag, access):
                    code = self.enums.lookup("expanded_access_type", child.tag)
                    if code:
                        access_types.append(
                            Code(code=code, field=f"{ROOT}/expanded_access_info/{child.tag}")
                        )
        return Design(
            study_type=study_type,
            phases=self.phases(),
            allocation=coded("allocation"),
            intervention_model=coded("intervention_model"),
            intervention_model_description=self.text(
                "study_design_info/intervention_model_description"
            ),
            primary_purpose=coded("primary_purpose"),
            masking=masking,
            masking_description=self.text("study_design_info/masking_description"),
            who_masked=who_masked,
            observational_model=coded("observational_model"),
            time_perspective=coded("time_perspective"),
            enrollment_count=count,
            enrollment_estimated=estimated,
            patient_registry=registry,
            target_duration=self.text("target_duration"),
            bio_spec_retention=self.code_at("biospec_retention", "biospec_retention"),
            bio_spec_description=self.textblock("biospec_descr"),
            expanded_access_types=tuple(access_types),
        )

    def arms(self) -> tuple[Arm, ...]:
        links: dict[str, list[str]] = {}
        for item in self.interventions():
            prefix = f"{_display_of(item.type.code)}: " if item.type else ""
            for linked in item.arm_labels:
                names = links.setdefault(linked, [])
                if prefix + item.name not in names:
                    names.append(prefix + item.name)
        arms = []
        for group in self.study.findall("arm_group"):
            label = self.text("arm_group_label", group)
            if not label:
                continue
            arms.append(
                Arm(
                    label=label,
                    type=self.code(
                        "arm_group_type",
                        self.text("arm_group_type", group),
                        "arm_group/arm_group_type",
                    ),
                    description=self.text("description", group),
                    intervention_names=tuple(links.get(label, ())),
                )
            )
        return tuple(arms)

    def interventions(self) -> tuple[Intervention, ...]:
        result = []
        for item in self.study.findall("intervention"):
            name = self.text("intervention_name", item)
            if not name:
                continue
            result.append(
                Intervention(
                    name=name,
                    type=self.code(
                        "intervention_type",
                        self.text("intervention_type", item),
                        "intervention/intervention_type",
                    ),
                    description=self.text("description", item),
                    other_names=self.texts("other_name", item),
                    arm_labels=self.texts("arm_group_label", item),
                )
            )
        return tuple(result)

    def outcomes(self) -> tuple[Outcome, ...]:
        result = []
        for kind in ("primary", "secondary", "other"):
            for item in self.study.findall(f"{kind}_outcome"):
                measure = self.text("measure", item)
                if measure:
                    result.append(
                        Outcome(
                            kind=kind,
                            measure=measure,
                            description=self.text("description", item),
                            time_frame=self.text("time_frame", item),
                        )
                    )
        return tuple(result)

    def eligibility(self) -> Eligibility:
        if self.study.find("eligibility") is None:
            return Eligibility()
        return Eligibility(
            criteria=self.textblock("eligibility/criteria"),
            sex=self.code_at("gender", "eligibility/gender"),
            gender_based=self.flag("eligibility/gender_based"),
            gender_description=self.text("eligibility/gender_description"),
            minimum_age=self.age("eligibility/minimum_age"),
            maximum_age=self.age("eligibility/maximum_age"),
            healthy_volunteers=self.flag("eligibility/healthy_volunteers"),
            study_population=self.textblock("eligibility/study_pop"),
            sampling_method=self.code_at("sampling_method", "eligibility/sampling_method"),
        )

    def officials(self) -> tuple[Investigator, ...]:
        result = []
        for item in self.study.findall("overall_official"):
            name = self.person_name(item)
            if name:
                result.append(
                    Investigator(
                        name=name,
                        role=self.code(
                            "official_role", self.text("role", item), "overall_official/role"
                        ),
                        affiliation=self.text("affiliation", item),
                    )
                )
        return tuple(result)

    def contact(self, element: Element, path: str, role: Code | None) -> ContactPoint:
        return ContactPoint(
            name=self.person_name(element),
            role=role,
            phone=self.text("phone", element),
            phone_ext=self.text("phone_ext", element),
            email=self.text("email", element),
        )

    def contact_role(self, tag: str, path: str) -> Code | None:
        code = self.enums.lookup("contact_role", tag)
        return Code(code=code, field=f"{ROOT}/{path}") if code else None

    def central_contacts(self) -> tuple[ContactPoint, ...]:
        return tuple(
            self.contact(element, tag, self.contact_role(tag, tag))
            for tag in ("overall_contact", "overall_contact_backup")
            for element in self.study.findall(tag)
        )

    def sites(self) -> tuple[Site, ...]:
        result = []
        for location in self.study.findall("location"):
            contacts = [
                self.contact(element, f"location/{tag}", self.contact_role(tag, f"location/{tag}"))
                for tag in ("contact", "contact_backup")
                for element in location.findall(tag)
            ]
            contacts += [
                self.contact(
                    element,
                    "location/investigator",
                    self.code(
                        "official_role", self.text("role", element), "location/investigator/role"
                    ),
                )
                for element in location.findall("investigator")
            ]
            result.append(
                Site(
                    facility=self.text("facility/name", location),
                    city=self.text("facility/address/city", location),
                    state=self.text("facility/address/state", location),
                    zip=self.text("facility/address/zip", location),
                    country=self.text("facility/address/country", location),
                    status=self.code(
                        "overall_status", self.text("status", location), "location/status"
                    ),
                    contacts=tuple(contacts),
                )
            )
        return tuple(result)

    def countries(self) -> tuple[str, ...]:
        listed = self.texts("location_countries/country")
        if listed:
            return tuple(dict.fromkeys(listed))
        seen: dict[str, None] = {}
        for location in self.study.findall("location"):
            country = self.text("facility/address/country", location)
            if country:
                seen.setdefault(country, None)
        return tuple(seen)

    def references(self) -> tuple[Reference, ...]:
        result = []
        for tag in ("reference", "results_reference"):
            kind = self.enums.lookup("reference_type", tag)
            for item in self.study.findall(tag):
                citation, pmid = self.text("citation", item), self.text("PMID", item)
                if citation or pmid:
                    result.append(
                        Reference(
                            citation=citation,
                            pmid=pmid,
                            type=Code(code=kind, field=f"{ROOT}/{tag}") if kind else None,
                        )
                    )
        return tuple(result)

    def ipd_sharing(self) -> IpdSharing | None:
        data = self.study.find("patient_data")
        if data is None:
            return None
        return IpdSharing(
            sharing=self.code_at("sharing_ipd", "patient_data/sharing_ipd"),
            description=self.text("ipd_description", data),
            info_types=tuple(
                c
                for c in (
                    self.code("ipd_info_type", t, "patient_data/ipd_info_type")
                    for t in self.texts("ipd_info_type", data)
                )
                if c
            ),
            time_frame=self.text("ipd_time_frame", data),
            access_criteria=self.text("ipd_access_criteria", data),
            url=self.text("ipd_url", data),
        )
