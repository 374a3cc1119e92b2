"""Registry page text → `Trial`: the reader of the layout `registry_layout` describes (see
examples/NCT05765006.txt).

Sections may come in any order or be missing; items may be zero or many. Coded values are normalized
to ClinicalTrials.gov API v2 enum spelling ("Not yet recruiting" → NOT_YET_RECRUITING, "Phase 1" →
PHASE1); a value that is no known display form is kept as written, so a mapper can name it. A marker
value of `-` means "not stated". `Code.field` and error fields use the layout's own words:
"Basic Information > Recruitment Status". Dates are read by `sources.dates`, the parser the XML
reader uses too.

Facility contacts are tied to sites by an optional `Site: <n> (…)` line (n counts the Locations
items from 1). Without it, the contacts belong to the only site when there is exactly one site;
with several sites they cannot be placed and are left out.

Several pages in one file are split at each title line + `NCT ID:` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from fhirconv.errors import RecordError
from fhirconv.model import (
    AgeLimit,
    Arm,
    AvailableIpd,
    Code,
    ContactPoint,
    Design,
    Eligibility,
    GeoPoint,
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
    Retraction,
    SecondaryId,
    Site,
    SourceRef,
    Trial,
)
from fhirconv.sources.dates import DateProblem, parse_partial_date
from fhirconv.sources.record import FieldError, read_record
from fhirconv.sources.registry_layout import (
    ALLOCATIONS,
    ARM_TYPES,
    AVAILABLE_IPDS,
    BIO_SPEC,
    BLURB_KEYS,
    BLURBS,
    BRIEF_SUMMARY,
    CENTRAL_CONTACTS,
    COMMA_COUNTRIES,
    CONDITIONS,
    CONTACT_LABEL,
    CONTACT_ROLES,
    COORDINATES_LINE,
    COUNTRIES,
    DATA_SHARING,
    DETAILED_DESCRIPTION,
    ELIGIBILITY_CRITERIA,
    ELIGIBILITY_KEYS,
    EMAIL_SHAPE,
    EXPANDED_ACCESS_TYPES,
    FACILITY_CONTACTS,
    GROUP_TYPE,
    GROUP_TYPE_LINE,
    IDENTIFIER_LABEL,
    IDENTIFIER_TYPE,
    INTERVENTION_MODELS,
    INTERVENTION_TYPE,
    INTERVENTION_TYPE_LINE,
    INTERVENTION_TYPES,
    INTERVENTIONS,
    IPD_INFO_TYPES,
    IPD_MARKER,
    IPD_SHARING,
    KEYWORDS,
    LABEL_SECTIONS,
    LAST_UPDATED,
    LEAD_ROLE,
    LINK_LINE,
    LINKS,
    LOCATIONS,
    MASKINGS,
    MESH,
    MESH_KINDS,
    MESH_TERMS,
    NCT_ALIAS_SOURCE,
    NCT_ID,
    NCT_LINE,
    NOT_STATED,
    OBSERVATIONAL_MODELS,
    OFFICIAL_ROLES,
    ORG_CLASSES,
    ORG_STUDY_ID_SOURCE,
    OTHER_IDENTIFIERS,
    OTHER_NAME_LINE,
    OTHER_OUTCOMES,
    OVERSIGHT,
    PHASES,
    PHONE_SHAPE,
    PMID_LINE,
    PRIMARY_OUTCOMES,
    PRINCIPAL_INVESTIGATORS,
    PURPOSES,
    REFERENCE_TYPE,
    REFERENCE_TYPE_LINE,
    REFERENCE_TYPES,
    REFERENCES,
    REGISTERING_ORGANIZATION,
    REMOVED_COUNTRIES,
    RESPONSIBILITY_ROLE,
    RESPONSIBLE_PARTY,
    RESPONSIBLE_PARTY_TYPES,
    RESULTS_PENDING,
    RESULTS_POSTED,
    RETRACTION,
    ROLE_LINE,
    SAMPLING,
    SECONDARY_ID_TYPES,
    SECONDARY_OUTCOMES,
    SEXES,
    SITE_LINE,
    SITE_STATUS,
    SITE_STATUS_LINE,
    SPONSOR_ROLE_LINE,
    SPONSORS,
    STATUSES,
    STD_AGES,
    STUDY_GROUP_LINE,
    STUDY_GROUPS,
    STUDY_RESULTS,
    STUDY_TYPES,
    TEXT_LABELS,
    TIME_FRAME,
    TIME_FRAME_LINE,
    TIME_PERSPECTIVES,
    WHO_MASKED,
    heading_of,
    intervention_type_display,
    is_blank,
    match_label,
    normalize_code,
    split_address,
    split_intervention_name,
    squash,
    unescape_line,
)

FORMAT = "registry-text"

# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_text(text: str, file: str) -> Iterator[Trial | RecordError]:
    """Yield one `Trial` (or `RecordError`) per registry page found in `text`."""
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").split("\n")
    for position, (start, end) in enumerate(_record_spans(lines), 1):
        yield _RecordReader(lines, start, end, file, f"#{position}").read()


def _line_before(lines: list[str], end: int, start: int) -> int | None:
    """The last non-blank line before line `end` (not before `start`), unless it is a group or
    intervention marker: a name or label is one line, the one just before its marker."""
    for index in range(end - 1, start - 1, -1):
        text = lines[index].strip()
        if text:
            is_marker = GROUP_TYPE_LINE.match(text) or INTERVENTION_TYPE_LINE.match(text)
            return None if is_marker else index
    return None


def _next_nonblank(lines: list[str], start: int, end: int) -> int | None:
    return next((i for i in range(start, end) if not is_blank(lines[i])), None)


def _record_spans(lines: list[str]) -> Iterator[tuple[int, int]]:
    """Split a file into pages: each starts at its title line (the line before `NCT ID:`)."""
    nct_lines = [i for i, line in enumerate(lines) if NCT_LINE.match(line.strip())]
    if not nct_lines:
        yield 0, len(lines)
        return
    starts = []
    previous_end = 0
    for nct_line in nct_lines:
        title = next(
            (i for i in range(nct_line - 1, previous_end - 1, -1) if not is_blank(lines[i])),
            None,
        )
        is_title = title is not None and squash(lines[title]) not in BLURB_KEYS
        is_title = is_title and heading_of(lines[title or 0]) is None
        starts.append(title if is_title and title is not None else nct_line)
        previous_end = nct_line + 1
    if any(heading_of(line) for line in lines[: starts[0]]):
        # Text before the first page that has sections: a page without its NCT ID line.
        yield 0, starts[0]
    else:
        starts[0] = 0
    for index, start in enumerate(starts):
        yield start, starts[index + 1] if index + 1 < len(starts) else len(lines)


@dataclass
class _Section:
    heading: str
    heading_line: int  # 0-based index of the heading line in the file
    lines: list[str]  # the body, blurb removed, as written
    blurb: str | None = None


@dataclass
class _Value:
    text: str  # single-line labels: the first line; text labels: the whole value, verbatim
    field: str  # "Section > Label"


@dataclass
class _ContactDraft:
    name: str | None = None
    role: Code | None = None
    has_role: bool = False
    phone: str | None = None
    phone_ext: str | None = None
    email: str | None = None
    site: str | None = None

    def contact(self) -> ContactPoint:
        return ContactPoint(
            name=self.name,
            role=self.role,
            phone=self.phone,
            phone_ext=self.phone_ext,
            email=self.email,
        )


@dataclass
class _SiteDraft:
    site: Site
    contacts: list[ContactPoint] = field(default_factory=list)


def _value(line: str) -> str:
    return unescape_line(line.strip())


def _marker_value(text: str) -> str | None:
    value = text.strip()
    return None if value in {"", NOT_STATED} else value


def _text_of(lines: list[str]) -> str | None:
    return "\n".join(unescape_line(line) for line in lines).strip() or None


class _RecordReader:
    """Reads one page (lines[start:end]); errors name the file, the record and the field."""

    def __init__(self, lines: list[str], start: int, end: int, file: str, position: str) -> None:
        self.lines = lines
        self.start = start
        self.end = end
        self.file = file
        self.record = position
        self.sections: list[_Section] = []
        self.values: dict[str, _Value] = {}

    def read(self) -> Trial | RecordError:
        return read_record(self)

    # -- structure ----------------------------------------------------------------------------

    def split_sections(self, body_start: int) -> None:
        lines, end = self.lines, self.end
        candidates: list[tuple[int, str, int | None]] = []  # (line, heading, blurb line)
        for i in range(body_start, end):
            heading = heading_of(lines[i])
            if heading is None:
                continue
            after = _next_nonblank(lines, i + 1, end)
            blurbs = {squash(b) for b in BLURBS[heading]}
            has_blurb = after is not None and squash(lines[after]) in blurbs
            candidates.append((i, heading, after if has_blurb else None))
        if any(blurb is not None for _, _, blurb in candidates):
            # The page writes blurbs: a heading word without its blurb is text, not a heading
            # (a description may well have a line "Interventions").
            headings = [c for c in candidates if c[2] is not None]
        else:
            headings = [c for c in candidates if c[0] == body_start or is_blank(lines[c[0] - 1])]
        for index, (line, heading, blurb) in enumerate(headings):
            body_first = (blurb if blurb is not None else line) + 1
            body_end = headings[index + 1][0] if index + 1 < len(headings) else end
            self.sections.append(
                _Section(
                    heading=heading,
                    heading_line=line,
                    lines=lines[body_first:body_end],
                    blurb=lines[blurb].strip() if blurb is not None else None,
                )
            )

    def named(self, heading: str) -> list[_Section]:
        return [s for s in self.sections if s.heading == heading]

    def has(self, heading: str) -> bool:
        return any(s.heading == heading for s in self.sections)

    def body(self, heading: str) -> list[str]:
        """All sections of that heading, one after the other (a page may repeat a heading)."""
        result: list[str] = []
        for section in self.named(heading):
            if result:
                result.append("")
            result.extend(section.lines)
        return result

    def collect_labels(self, section: _Section, start: int = 0) -> None:
        current: tuple[str, int] | None = None
        lines = section.lines

        def close(end: int) -> None:
            if current is None:
                return
            label, first = current
            if label in TEXT_LABELS:
                text = _text_of(lines[first:end])
            else:
                found = _next_nonblank(lines, first, end)
                text = _value(lines[found]) if found is not None else None
            if text is not None:
                self.values.setdefault(label, _Value(text, f"{section.heading} > {label}"))

        for i in range(start, len(lines)):
            hit = match_label(lines[i])
            if hit is None:
                continue
            close(i)
            current = None
            label, inline = hit
            if inline is not None:
                self.values.setdefault(label, _Value(inline, f"{section.heading} > {label}"))
            else:
                current = (label, i + 1)
        close(len(lines))

    # -- values -------------------------------------------------------------------------------

    def text(self, label: str) -> str | None:
        value = self.values.get(label)
        return _marker_value(value.text) if value else None

    def code_of(self, value: str | None, field: str, vocabulary: frozenset[str]) -> Code | None:
        value = _marker_value(value or "")
        if value is None:
            return None
        return Code(code=normalize_code(value, vocabulary), field=field)

    def code(self, label: str, vocabulary: frozenset[str]) -> Code | None:
        value = self.values.get(label)
        return self.code_of(value.text, value.field, vocabulary) if value else None

    def codes(self, label: str, vocabulary: frozenset[str]) -> tuple[Code, ...]:
        value = self.values.get(label)
        if value is None:
            return ()
        text = re.sub(r"\bN/A\b", "NA", value.text, flags=re.IGNORECASE)
        parts = (p.strip() for p in re.split(r"[,;/|]", text))
        return tuple(
            Code(code=normalize_code(p, vocabulary), field=value.field)
            for p in parts
            if p and p != NOT_STATED
        )

    def flag(self, label: str) -> bool | None:
        value = self.values.get(label)
        if value is None:
            return None
        answer = value.text.strip().casefold()
        if answer in {"yes", "true", "y"}:
            return True
        if answer in {"no", "false", "n"}:
            return False
        if answer in {"", NOT_STATED}:
            return None
        raise FieldError(value.field, f"expected Yes or No, found {value.text!r}")

    def date_of(self, text: str, field: str) -> PartialDate | None:
        return parse_date(text, field)

    def date(self, label: str) -> PartialDate | None:
        value = self.values.get(label)
        return self.date_of(value.text, value.field) if value else None

    def age(self, label: str) -> AgeLimit | None:
        value = self.values.get(label)
        if value is None or _marker_value(value.text) is None:
            return None
        if value.text.strip().casefold() in {"n/a", "na", "none", "no limit"}:
            return None
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", value.text.strip())
        if not match:
            raise FieldError(
                value.field, f"unreadable age {value.text!r} (expected e.g. '18 Years')"
            )
        unit = match.group(2).capitalize()  # as written ("1 Year"), like the API v2 reader
        return AgeLimit(value=float(match.group(1)), unit=unit, field=value.field)

    def enrollment(self) -> tuple[int | None, bool | None]:
        value = self.values.get("Total Enrollment")
        if value is None:
            return None, None
        text = value.text.casefold()
        estimated: bool | None = None
        if "estimat" in text or "anticipat" in text:
            estimated = True
        elif "actual" in text:
            estimated = False
        number = re.search(r"\d[\d,]*", text)
        if number:
            return int(number.group(0).replace(",", "")), estimated
        if "not stated" in text or _marker_value(text) is None:
            return None, estimated
        raise FieldError(value.field, f"enrollment is not a number: {value.text!r}")

    # -- the trial ----------------------------------------------------------------------------

    def trial(self) -> Trial:
        lines = self.lines
        nct_line = next(
            (i for i in range(self.start, self.end) if NCT_LINE.match(lines[i].strip())), None
        )
        if nct_line is None:
            raise FieldError("NCT ID", "record has no 'NCT ID:' line")
        match = NCT_LINE.match(lines[nct_line].strip())
        nct_id = match.group(1).strip().upper() if match else ""
        if not NCT_ID.fullmatch(nct_id):
            raise FieldError("NCT ID", f"not an NCT id (line {nct_line + 1}): {nct_id!r}")
        self.record = nct_id
        title_line = next(
            (i for i in range(nct_line - 1, self.start - 1, -1) if not is_blank(lines[i])), None
        )
        self.split_sections(nct_line + 1)
        header_end = self.sections[0].heading_line if self.sections else self.end
        last_updated: PartialDate | None = None
        for i in range(nct_line + 1, header_end):
            updated = LAST_UPDATED.match(lines[i].strip())
            if updated and last_updated is None:
                last_updated = self.date_of(updated.group(1), "Last Updated")
        for section in self.sections:
            if section.heading == ELIGIBILITY_CRITERIA:
                self.collect_labels(section, self.criteria_end(section))
            elif section.heading in LABEL_SECTIONS:
                self.collect_labels(section)
        arms, listed_in_groups = self.arms()
        if self.has(INTERVENTIONS):
            interventions = _with_arm_labels(self.interventions(), arms)
        else:
            # A page without an Interventions section lists them only inside the groups.
            interventions = listed_in_groups
        sites = self.sites()
        organization = self.organizations(REGISTERING_ORGANIZATION)
        return Trial(
            source=SourceRef(file=self.file, record=nct_id, format=FORMAT),
            nct_id=nct_id,
            brief_title=_value(lines[title_line])
            if title_line is not None and heading_of(lines[title_line]) is None
            else None,
            official_title=self.text("Official Title"),
            acronym=self.text("Acronym"),
            organization=organization[0][0] if organization else None,
            overall_status=self.code("Recruitment Status", STATUSES),
            last_known_status=self.code("Last Known Status", STATUSES),
            why_stopped=self.text("Why Stopped"),
            status_verified=self.date("Status Verified Date"),
            start_date=self.date("Study Start Date"),
            primary_completion_date=self.date("Primary Completion Date"),
            completion_date=self.date("Study Completion Date"),
            first_submitted=self.date("First Submitted Date"),
            first_submitted_qc=self.date("First Submitted QC Date"),
            first_posted=self.date("First Posted Date"),
            results_first_submitted=self.date("Results First Submitted Date"),
            results_first_submitted_qc=self.date("Results First Submitted QC Date"),
            results_first_posted=self.date("Results First Posted Date"),
            disposition_first_submitted=self.date("Disposition First Submitted Date"),
            disposition_first_submitted_qc=self.date("Disposition First Submitted QC Date"),
            disposition_first_posted=self.date("Disposition First Posted Date"),
            last_update_submitted=self.date("Last Update Submitted Date"),
            last_update_posted=last_updated,
            delayed_posting=self.flag("Delayed Posting"),
            results_waived=self.flag("Results Waived"),
            has_expanded_access=self.flag("Expanded Access Available"),
            expanded_access_nct_id=self.text("Expanded Access NCT ID"),
            expanded_access_status=self.code("Expanded Access Status", STATUSES),
            has_results=self.has_results(),
            **self.identifiers(),
            **self.sponsors(),
            responsible_party=self.responsible_party(),
            oversight=self.oversight(),
            brief_summary=_text_of(self.body(BRIEF_SUMMARY)),
            detailed_description=_text_of(self.body(DETAILED_DESCRIPTION)),
            conditions=self.list_of(CONDITIONS),
            keywords=self.list_of(KEYWORDS),
            **self.meshes(),
            design=self.design(),
            arms=arms,
            interventions=interventions,
            outcomes=self.outcomes(),
            eligibility=self.eligibility(),
            officials=self.officials(),
            central_contacts=tuple(d.contact() for d in self.contacts(CENTRAL_CONTACTS)),
            sites=sites,
            countries=self.list_of(COUNTRIES),
            removed_countries=self.list_of(REMOVED_COUNTRIES),
            references=self.references(),
            see_also_links=self.links(),
            available_ipds=self.available_ipds(),
            ipd_sharing=self.ipd_sharing(),
            data_version=self.date("Registry Data Version"),
        )

    def criteria_end(self, section: _Section) -> int:
        return next(
            (
                i
                for i, line in enumerate(section.lines)
                if (hit := match_label(line)) and squash(hit[0]) in ELIGIBILITY_KEYS
            ),
            len(section.lines),
        )

    def has_results(self) -> bool | None:
        for section in self.named(STUDY_RESULTS):
            state = squash(section.blurb or _text_of(section.lines) or "")
            if state.startswith(squash(RESULTS_PENDING)):
                return False
            if state.startswith((squash(RESULTS_POSTED), "results available")):
                return True
        return None

    def list_of(self, heading: str) -> tuple[str, ...]:
        return tuple(_value(line) for line in self.body(heading) if line.strip())

    def identifiers(self) -> dict[str, object]:
        field = f"{OTHER_IDENTIFIERS} > {IDENTIFIER_TYPE.rstrip(':')}"
        items: list[dict[str, str | None]] = []
        for line in self.body(OTHER_IDENTIFIERS):
            stripped = line.strip()
            if not stripped:
                continue
            label = IDENTIFIER_LABEL.match(stripped)
            if label and items:
                items[-1].setdefault(label.group(1).casefold(), _marker_value(label.group(2)))
            elif not label:
                items.append({"id": unescape_line(stripped)})
        org_study_id: dict[str, str | None] | None = None
        aliases: list[str] = []
        secondary: list[SecondaryId] = []
        for item in items:
            source = (item.get("source") or "").casefold()
            identifier = item["id"] or ""
            if source == ORG_STUDY_ID_SOURCE and org_study_id is None:
                org_study_id = item
            elif source in {NCT_ALIAS_SOURCE, "nct_alias", "nct id alias"}:
                aliases.append(identifier)
            else:
                secondary.append(
                    SecondaryId(
                        id=identifier,
                        type=self.code_of(item.get("type"), field, SECONDARY_ID_TYPES),
                        domain=item.get("domain"),
                        link=item.get("link"),
                    )
                )
        return {
            "org_study_id": org_study_id["id"] if org_study_id else None,
            "org_study_id_type": org_study_id.get("type") if org_study_id else None,
            "org_study_id_link": org_study_id.get("link") if org_study_id else None,
            "secondary_ids": tuple(secondary),
            "nct_id_aliases": tuple(aliases),
        }

    def organizations(self, heading: str) -> list[tuple[Organization, str | None]]:
        """(organization, role) for each item; an item ends at "Sponsor Role X" or at the end."""
        field = f"{heading} > Organization Class"
        result: list[tuple[Organization, str | None]] = []
        region: list[str] = []

        def close(role: str | None) -> None:
            lines = [_value(line) for line in region if line.strip()]
            region.clear()
            if not lines:
                return
            org_class = None
            if len(lines) >= 2 and normalize_code(lines[-1], ORG_CLASSES) in ORG_CLASSES:
                org_class = self.code_of(lines.pop(), field, ORG_CLASSES)
            result.append((Organization(name=" ".join(lines), org_class=org_class), role))

        for line in self.body(heading):
            marker = SPONSOR_ROLE_LINE.match(line.strip())
            if marker:
                close(marker.group(1).strip().casefold())
            else:
                region.append(line)
        close(None)
        return result

    def sponsors(self) -> dict[str, object]:
        lead: Organization | None = None
        collaborators: list[Organization] = []
        for organization, role in self.organizations(SPONSORS):
            if lead is None and (role is None or LEAD_ROLE in role):
                lead = organization
            else:
                collaborators.append(organization)
        return {"lead_sponsor": lead, "collaborators": tuple(collaborators)}

    def responsible_party(self) -> ResponsibleParty | None:
        if not self.has(RESPONSIBLE_PARTY):
            return None
        return ResponsibleParty(
            type=self.code(RESPONSIBILITY_ROLE, RESPONSIBLE_PARTY_TYPES),
            investigator_name=self.text("Investigator Name"),
            investigator_title=self.text("Investigator Title"),
            investigator_affiliation=self.text("Investigator Affiliation"),
            old_name_title=self.text("Old Name/Title"),
            old_organization=self.text("Old Organization"),
        )

    def oversight(self) -> Oversight | None:
        if not self.has(OVERSIGHT):
            return None
        return Oversight(
            has_dmc=self.flag("Data Monitoring Committee"),
            is_fda_regulated_drug=self.flag("FDA-Regulated Drug"),
            is_fda_regulated_device=self.flag("FDA-Regulated Device"),
            is_unapproved_device=self.flag("Unapproved Device"),
            is_us_export=self.flag("Exported from the U.S."),
            is_ppsd=self.flag("Pediatric Postmarket Surveillance"),
            fdaaa801_violation=self.flag("FDAAA 801 Violation"),
        )

    def meshes(self) -> dict[str, tuple[MeshTerm, ...]]:
        found: dict[str, list[MeshTerm]] = {kind.casefold(): [] for kind in MESH_KINDS}
        for line in self.body(MESH_TERMS):
            match = MESH.match(line.strip())
            if match and match.group(2).strip():
                found[match.group(1).casefold()].append(
                    MeshTerm(id=match.group(3) or None, term=match.group(2).strip())
                )
        return {
            "condition_meshes": tuple(found["condition"]),
            "condition_ancestors": tuple(found["condition ancestor"]),
            "intervention_meshes": tuple(found["intervention"]),
            "intervention_ancestors": tuple(found["intervention ancestor"]),
        }

    def design(self) -> Design:
        count, estimated = self.enrollment()
        return Design(
            study_type=self.code("Study Classification", STUDY_TYPES),
            phases=self.codes("Clinical Phase", PHASES),
            allocation=self.code("Allocation Method", ALLOCATIONS),
            intervention_model=self.code("Intervention Model", INTERVENTION_MODELS),
            intervention_model_description=self.text("Intervention Model Description"),
            primary_purpose=self.code("Primary Study Purpose", PURPOSES),
            masking=self.code("Blinding Strategy", MASKINGS),
            masking_description=self.text("Masking Description"),
            who_masked=self.codes("Masked Roles", WHO_MASKED),
            observational_model=self.code("Observational Model", OBSERVATIONAL_MODELS),
            time_perspective=self.code("Time Perspective", TIME_PERSPECTIVES),
            enrollment_count=count,
            enrollment_estimated=estimated,
            patient_registry=self.flag("Patient Registry"),
            target_duration=self.text("Target Duration"),
            bio_spec_retention=self.code("Biospecimen Retention", BIO_SPEC),
            bio_spec_description=self.text("Biospecimen Description"),
            expanded_access_types=self.codes("Expanded Access Types", EXPANDED_ACCESS_TYPES),
        )

    def interventions(self) -> tuple[Intervention, ...]:
        """Items: name, description, "Other Name: …", "Study Group: …", "Intervention Type X"."""
        field = f"{INTERVENTIONS} > {INTERVENTION_TYPE}"
        result: list[Intervention] = []
        region: list[str] = []

        def close(type_text: str | None) -> None:
            first = _next_nonblank(region, 0, len(region))
            if first is None:
                region.clear()
                return
            name = _value(region[first])
            rest = region[first + 1 :]
            label_at = next(
                (i for i, line in enumerate(rest) if OTHER_NAME_LINE.match(line.strip())
                 or STUDY_GROUP_LINE.match(line.strip())),
                len(rest),
            )  # fmt: skip
            other_names, arm_labels = [], []
            for line in rest[label_at:]:
                if other := OTHER_NAME_LINE.match(line.strip()):
                    other_names.append(other.group(1).strip())
                elif group := STUDY_GROUP_LINE.match(line.strip()):
                    arm_labels.append(group.group(1).strip())
            result.append(
                Intervention(
                    name=name,
                    type=self.code_of(type_text, field, INTERVENTION_TYPES),
                    description=_text_of(rest[:label_at]),
                    other_names=tuple(n for n in other_names if n),
                    arm_labels=tuple(n for n in arm_labels if n),
                )
            )
            region.clear()

        for line in self.body(INTERVENTIONS):
            marker = INTERVENTION_TYPE_LINE.match(line.strip())
            if marker:
                close(marker.group(1))
            else:
                region.append(line)
        close(None)
        return tuple(result)

    def arms(self) -> tuple[tuple[Arm, ...], tuple[Intervention, ...]]:
        """Items, each anchored on its "Group Type X" marker: the group's label is the line just
        before the marker; after the marker come the group's description, then per intervention
        its name (the line just before "Intervention Type X"), the marker, and its description.

        Anchoring on the markers rather than counting paragraphs from the previous group keeps
        every group whatever the interventions' descriptions look like. Also returns the
        interventions as the groups list them (name, type, description, the groups' labels).
        """
        lines = self.body(STUDY_GROUPS)
        field = f"{STUDY_GROUPS} > {GROUP_TYPE}"
        type_field = f"{STUDY_GROUPS} > {INTERVENTION_TYPE}"
        markers = [i for i, line in enumerate(lines) if GROUP_TYPE_LINE.match(line.strip())]
        labels = [
            _line_before(lines, marker, markers[index - 1] + 1 if index else 0)
            for index, marker in enumerate(markers)
        ]
        arms: list[Arm] = []
        listed: dict[tuple[str, str | None], Intervention] = {}
        for index, marker in enumerate(markers):
            if index + 1 < len(markers):
                next_label = labels[index + 1]
                end = next_label if next_label is not None else markers[index + 1]
            else:
                end = len(lines)
            type_lines = [
                i for i in range(marker + 1, end) if INTERVENTION_TYPE_LINE.match(lines[i].strip())
            ]
            names = [_line_before(lines, t, marker + 1) for t in type_lines]
            first_name = names[0] if names else None
            description_end = (
                end if not type_lines else first_name if first_name is not None else type_lines[0]
            )
            given: list[tuple[str, Code | None, str | None]] = []
            for number, (type_line, name_line) in enumerate(zip(type_lines, names, strict=True)):
                if name_line is None:
                    continue  # a type marker without a name: nothing to keep
                following = [n for n in names[number + 1 :] if n is not None]
                after = min([*following, *type_lines[number + 1 : number + 2], end])
                type_match = INTERVENTION_TYPE_LINE.match(lines[type_line].strip())
                assert type_match is not None
                given.append(
                    (
                        _value(lines[name_line]),
                        self.code_of(type_match.group(1), type_field, INTERVENTION_TYPES),
                        _text_of(lines[type_line + 1 : after]),
                    )
                )
            label_line = labels[index]
            if label_line is None:
                continue  # a group without a label cannot be told apart; nothing to keep
            label = _value(lines[label_line])
            match = GROUP_TYPE_LINE.match(lines[marker].strip())
            arms.append(
                Arm(
                    label=label,
                    type=self.code_of(match.group(1) if match else None, field, ARM_TYPES),
                    description=_text_of(lines[marker + 1 : description_end]),
                    intervention_names=tuple(
                        f"{intervention_type_display(code.code)}: {name}" if code else name
                        for name, code, _ in given
                    ),
                )
            )
            for name, code, description in given:
                key = (name, code.code if code else None)
                known = listed.get(key)
                listed[key] = Intervention(
                    name=name,
                    type=code,
                    description=known.description if known else description,
                    arm_labels=(*known.arm_labels, label) if known else (label,),
                )
        return tuple(arms), tuple(listed.values())

    def outcomes(self) -> tuple[Outcome, ...]:
        result: list[Outcome] = []
        kinds: tuple[tuple[Literal["primary", "secondary", "other"], str], ...] = (
            ("primary", PRIMARY_OUTCOMES),
            ("secondary", SECONDARY_OUTCOMES),
            ("other", OTHER_OUTCOMES),
        )
        for kind, heading in kinds:
            region: list[str] = []
            for line in [*self.body(heading), f"{TIME_FRAME} {NOT_STATED}"]:
                marker = TIME_FRAME_LINE.match(line.strip())
                if not marker:
                    region.append(line)
                    continue
                first = _next_nonblank(region, 0, len(region))
                if first is not None:
                    result.append(
                        Outcome(
                            kind=kind,
                            measure=_value(region[first]),
                            description=_text_of(region[first + 1 :]),
                            time_frame=_marker_value(marker.group(1)),
                        )
                    )
                region = []
        return tuple(result)

    def eligibility(self) -> Eligibility:
        criteria_lines: list[str] = []
        for section in self.named(ELIGIBILITY_CRITERIA):
            criteria_lines.extend(section.lines[: self.criteria_end(section)])
        return Eligibility(
            criteria=_text_of(criteria_lines),
            sex=self.code("Eligible Sex", SEXES),
            gender_based=self.flag("Gender Based Eligibility"),
            gender_description=self.text("Gender Eligibility Description"),
            minimum_age=self.age("Minimum Eligible Age"),
            maximum_age=self.age("Maximum Eligible Age"),
            healthy_volunteers=self.flag("Accepts Healthy Volunteers"),
            std_ages=self.codes("Age Groups", STD_AGES),
            study_population=self.text("Study Population"),
            sampling_method=self.code("Sampling Method", SAMPLING),
        )

    def officials(self) -> tuple[Investigator, ...]:
        """Items: name, "Role: X", affiliation. Between two Role lines, the last line is the next
        official's name and the lines before it the previous official's affiliation."""
        lines = self.body(PRINCIPAL_INVESTIGATORS)
        field = f"{PRINCIPAL_INVESTIGATORS} > Role"
        markers = [i for i, line in enumerate(lines) if ROLE_LINE.match(line.strip())]
        if not markers:
            return tuple(Investigator(name=_value(line)) for line in lines if line.strip())
        result: list[Investigator] = []
        previous_end = 0
        for index, marker in enumerate(markers):
            name_line = next(
                (i for i in range(marker - 1, previous_end - 1, -1) if not is_blank(lines[i])),
                None,
            )
            if result and name_line is not None:
                result[-1] = result[-1].model_copy(
                    update={"affiliation": _text_of(lines[previous_end:name_line])}
                )
            role = ROLE_LINE.match(lines[marker].strip())
            if name_line is not None:
                result.append(
                    Investigator(
                        name=_value(lines[name_line]),
                        role=self.code_of(role.group(1) if role else None, field, OFFICIAL_ROLES),
                    )
                )
            previous_end = marker + 1
            if index + 1 == len(markers) and result:
                result[-1] = result[-1].model_copy(
                    update={"affiliation": _text_of(lines[previous_end:])}
                )
        return tuple(result)

    def contacts(self, heading: str) -> list[_ContactDraft]:
        """Items: name, "Role: X", phone, "Phone Extension: …", email (facility contacts also
        "Site: n"). A phone or e-mail line is recognized by its shape, or by its label."""
        field = f"{heading} > Role"
        drafts: list[_ContactDraft] = []
        current: _ContactDraft | None = None
        for line in self.body(heading):
            text = line.strip()
            if not text:
                continue
            role = ROLE_LINE.match(text)
            labelled = CONTACT_LABEL.match(text)
            site = SITE_LINE.match(text) if heading == FACILITY_CONTACTS else None
            kind, value = "name", unescape_line(text)
            if labelled:
                kind, value = labelled.group(1).casefold(), labelled.group(2).strip()
                kind = {"e-mail": "email", "phone extension": "phone_ext"}.get(kind, kind)
            elif role:
                kind, value = "role", role.group(1)
            elif site:
                kind, value = "site", site.group(1).strip()
            elif EMAIL_SHAPE.match(text):
                kind = "email"
            elif PHONE_SHAPE.match(text):
                kind = "phone"
            if (
                kind == "name"
                or current is None
                or (kind == "role" and (current.has_role or current.phone or current.email))
                or (kind != "role" and getattr(current, kind) is not None)
            ):
                current = _ContactDraft()
                drafts.append(current)
            if kind == "role":
                current.has_role = True
                current.role = self.code_of(value, field, CONTACT_ROLES)
            else:
                setattr(current, kind, value or None)
        return drafts

    def sites(self) -> tuple[Site, ...]:
        """Items: facility, "City, State, Zip, Country", "Coordinates: lat, lon", "Site Status"."""
        field = f"{LOCATIONS} > {SITE_STATUS}"
        countries = COMMA_COUNTRIES | set(self.list_of(COUNTRIES))
        drafts: list[_SiteDraft] = []
        region: list[str] = []

        def close(status: str | None) -> None:
            texts = [line.strip() for line in region if line.strip()]
            region.clear()
            geo: GeoPoint | None = None
            rest: list[str] = []
            for text in texts:
                coordinates = COORDINATES_LINE.match(text)
                if coordinates:
                    geo = GeoPoint(lat=float(coordinates.group(1)), lon=float(coordinates.group(2)))
                else:
                    rest.append(unescape_line(text))
            if not rest and geo is None and status is None:
                return
            facility: str | None = None
            address: str | None = None
            if len(rest) >= 2:
                facility, address = " ".join(rest[:-1]), rest[-1]
            elif rest and re.search(r"(?<!\\),", rest[0]):
                address = rest[0]
            elif rest:
                facility = rest[0]
            parts = split_address(address, frozenset(countries)) if address else []
            city = state = zip_code = country = None
            if len(parts) == 1:
                country = parts[0]
            elif len(parts) == 2:
                city, country = parts
            elif len(parts) == 3:
                city, state, country = parts
            elif len(parts) >= 4:
                city, state, zip_code, country = (
                    parts[0], ", ".join(parts[1:-2]), parts[-2], parts[-1]
                )  # fmt: skip
            drafts.append(
                _SiteDraft(
                    Site(
                        facility=facility,
                        city=city or None,
                        state=state or None,
                        zip=zip_code or None,
                        country=country or None,
                        status=self.code_of(status, field, STATUSES),
                        geo=geo,
                    )
                )
            )

        for line in self.body(LOCATIONS):
            marker = SITE_STATUS_LINE.match(line.strip())
            if marker:
                close(marker.group(1))
            else:
                region.append(line)
        close(None)
        self.attach_facility_contacts(drafts)
        return tuple(d.site.model_copy(update={"contacts": tuple(d.contacts)}) for d in drafts)

    def attach_facility_contacts(self, drafts: list[_SiteDraft]) -> None:
        for contact in self.contacts(FACILITY_CONTACTS):
            target: _SiteDraft | None = None
            number = re.match(r"#?(\d+)\b", contact.site or "")
            if number and 1 <= int(number.group(1)) <= len(drafts):
                target = drafts[int(number.group(1)) - 1]
            elif contact.site:
                named = [d for d in drafts if d.site.facility == contact.site]
                target = named[0] if len(named) == 1 else None
            elif len(drafts) == 1:
                target = drafts[0]
            if target is not None:
                target.contacts.append(contact.contact())

    def references(self) -> tuple[Reference, ...]:
        """Items: citation, "Reference Type X", "PMID: n (View on PubMed)", then per retraction
        notice "Retraction PMID: n" and "Retraction Source: …"."""
        field = f"{REFERENCES} > {REFERENCE_TYPE}"
        result: list[Reference] = []
        region: list[str] = []
        last_closed = False  # a PMID line right after "Reference Type" belongs to that reference
        for line in [*self.body(REFERENCES), ""]:
            text = line.strip()
            marker = REFERENCE_TYPE_LINE.match(text)
            pmid = PMID_LINE.match(text)
            retraction = RETRACTION.match(text)
            if retraction and result:
                result[-1] = _with_retraction(
                    result[-1], retraction.group(1).casefold(), _marker_value(retraction.group(2))
                )
            elif marker:
                result.append(
                    Reference(
                        citation=_text_of(region),
                        type=self.code_of(marker.group(1), field, REFERENCE_TYPES),
                    )
                )
                region, last_closed = [], True
            elif pmid and last_closed and result[-1].pmid is None and not _text_of(region):
                result[-1] = result[-1].model_copy(update={"pmid": pmid.group(1)})
            elif pmid:
                result.append(Reference(citation=_text_of(region), pmid=pmid.group(1)))
                region, last_closed = [], False
            elif text:
                region.append(line)
                last_closed = False
            else:
                region.append(line)
        if _text_of(region):
            result.append(Reference(citation=_text_of(region)))
        return tuple(result)

    def links(self) -> tuple[Link, ...]:
        """Items: label, "Link: url"."""
        result: list[Link] = []
        region: list[str] = []
        for line in self.body(LINKS):
            marker = LINK_LINE.match(line.strip())
            if marker and marker.group(1).strip():
                result.append(Link(url=marker.group(1).strip(), label=_text_of(region)))
                region = []
            else:
                region.append(line)
        return tuple(result)

    def available_ipds(self) -> tuple[AvailableIpd, ...]:
        """Items: comment text, "IPD ID: …", "IPD Type: …", "IPD URL: …" (ends the item)."""
        result: list[AvailableIpd] = []
        region: list[str] = []
        values: dict[str, str | None] = {}
        for line in self.body(AVAILABLE_IPDS):
            marker = IPD_MARKER.match(line.strip())
            if not marker:
                region.append(line)
                continue
            kind = marker.group(1).casefold()
            values.setdefault(kind, _marker_value(marker.group(2)))
            if kind == "url":
                item = AvailableIpd(
                    id=values.get("id"),
                    type=values.get("type"),
                    url=values.get("url"),
                    comment=_text_of(region),
                )
                if item.id or item.type or item.url or item.comment:
                    result.append(item)
                region, values = [], {}
        return tuple(result)

    def ipd_sharing(self) -> IpdSharing | None:
        if not self.has(DATA_SHARING):
            return None
        return IpdSharing(
            sharing=self.code("Plan to Share IPD", IPD_SHARING),
            description=self.text("IPD Sharing Description"),
            info_types=self.codes("IPD Supporting Information", IPD_INFO_TYPES),
            time_frame=self.text("IPD Sharing Time Frame"),
            access_criteria=self.text("IPD Access Criteria"),
            url=self.text("IPD Sharing URL"),
        )


def _with_retraction(reference: Reference, part: str, value: str | None) -> Reference:
    """The reference with a retraction line read: "pmid" starts a notice; "source" completes the
    last notice when it has none yet, else starts one."""
    notices = list(reference.retractions)
    if part == "source" and notices and notices[-1].source is None:
        notices[-1] = notices[-1].model_copy(update={"source": value})
    elif part == "source":
        notices.append(Retraction(source=value))
    else:
        notices.append(Retraction(pmid=value))
    return reference.model_copy(update={"retractions": tuple(notices)})


def _with_arm_labels(
    interventions: tuple[Intervention, ...], arms: tuple[Arm, ...]
) -> tuple[Intervention, ...]:
    """The groups each intervention is used in, read from the Study Groups section, when the
    Interventions section does not say ("Study Group: …" lines): the example page shows the
    relation only from the groups' side, API v2 from both (armGroupLabels, interventionNames)."""
    if any(i.arm_labels for i in interventions):
        return interventions
    used_in: dict[tuple[str, str | None], list[str]] = {}
    for arm in arms:
        for name in arm.intervention_names:
            used_in.setdefault(split_intervention_name(name), []).append(arm.label)
    return tuple(
        i.model_copy(
            update={"arm_labels": tuple(used_in.get((i.name, i.type.code if i.type else None), ()))}
        )
        for i in interventions
    )


def parse_date(text: str, field: str) -> PartialDate | None:
    """A partial date in any form `sources.dates` reads (the XML reader's parser too), optionally
    followed by "(estimated)"/"(actual)". `-` or nothing: None."""
    value = text.strip()
    estimated: bool | None = None
    qualifier = re.search(r"[\[(]\s*(estimated|anticipated|actual)\s*[\])]\s*$", value, re.I)
    if qualifier:
        estimated = qualifier.group(1).casefold() != "actual"
        value = value[: qualifier.start()].strip()
    if _marker_value(value) is None:
        return None
    try:
        iso = parse_partial_date(value)
    except DateProblem as error:
        raise FieldError(field, str(error)) from error
    return PartialDate(value=iso, field=field, estimated=estimated)
