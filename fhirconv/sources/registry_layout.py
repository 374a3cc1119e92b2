"""The registry page-text layout, shared by the reader (`registry_text`) and the renderer
(`render_text`): the vocabulary as data (mappings/registry-text-layout.json: headings, blurbs,
labels, marker words, display-form aliases), the marker patterns built from it, the API v2 code
vocabularies, and the escaping rules that keep text apart from layout.

A page (see examples/NCT05765006.txt) is a title line, `NCT ID: …`, `Last Updated: …`, then
sections: a heading line followed by a one-line blurb, then values:

* label sections (Basic Information, Study Design, the tail of Eligibility Criteria, Responsible
  Party, Oversight, Data Sharing): a label line ("Recruitment Status") followed by its value, or
  `Label: value` on one line;
* list sections (Conditions, Keywords, Countries, …): one value per line;
* item sections (Study Groups, Interventions, Locations, References, …): repeated items delimited
  by marker lines ("Group Type X", "Site Status X", "Reference Type X", "Role: X", …). In Study
  Groups an arm's label is the line just before its "Group Type" marker, its description follows
  the marker, and each intervention it gives is its name (the line just before "Intervention
  Type X"), the marker, and its description;
* text sections (Brief Summary, Detailed Description): the text verbatim.
"""

from __future__ import annotations

import re

from fhirconv.sources.record import upper_snake
from fhirconv.tables import load_json

_TABLE = load_json("registry-text-layout.json")
_HEADINGS: dict[str, str] = {h["name"]: h["heading"] for h in _TABLE["headings"]}
_MARKERS: dict[str, str] = {m["name"]: m["word"] for m in _TABLE["markers"]}
_LABELS: dict[str, tuple[str, ...]] = {
    s["name"]: tuple(label["label"] for label in s["labels"]) for s in _TABLE["label_sections"]
}

# Section headings.
STUDY_RESULTS = _HEADINGS["STUDY_RESULTS"]
BASIC_INFORMATION = _HEADINGS["BASIC_INFORMATION"]
BRIEF_SUMMARY = _HEADINGS["BRIEF_SUMMARY"]
DETAILED_DESCRIPTION = _HEADINGS["DETAILED_DESCRIPTION"]
CONDITIONS = _HEADINGS["CONDITIONS"]
KEYWORDS = _HEADINGS["KEYWORDS"]
MESH_TERMS = _HEADINGS["MESH_TERMS"]
STUDY_DESIGN = _HEADINGS["STUDY_DESIGN"]
STUDY_GROUPS = _HEADINGS["STUDY_GROUPS"]
INTERVENTIONS = _HEADINGS["INTERVENTIONS"]
PRIMARY_OUTCOMES = _HEADINGS["PRIMARY_OUTCOMES"]
SECONDARY_OUTCOMES = _HEADINGS["SECONDARY_OUTCOMES"]
OTHER_OUTCOMES = _HEADINGS["OTHER_OUTCOMES"]
ELIGIBILITY_CRITERIA = _HEADINGS["ELIGIBILITY_CRITERIA"]
SPONSORS = _HEADINGS["SPONSORS"]
REGISTERING_ORGANIZATION = _HEADINGS["REGISTERING_ORGANIZATION"]
RESPONSIBLE_PARTY = _HEADINGS["RESPONSIBLE_PARTY"]
OVERSIGHT = _HEADINGS["OVERSIGHT"]
PRINCIPAL_INVESTIGATORS = _HEADINGS["PRINCIPAL_INVESTIGATORS"]
LOCATIONS = _HEADINGS["LOCATIONS"]
COUNTRIES = _HEADINGS["COUNTRIES"]
REMOVED_COUNTRIES = _HEADINGS["REMOVED_COUNTRIES"]
CENTRAL_CONTACTS = _HEADINGS["CENTRAL_CONTACTS"]
FACILITY_CONTACTS = _HEADINGS["FACILITY_CONTACTS"]
REFERENCES = _HEADINGS["REFERENCES"]
LINKS = _HEADINGS["LINKS"]
AVAILABLE_IPDS = _HEADINGS["AVAILABLE_IPDS"]
OTHER_IDENTIFIERS = _HEADINGS["OTHER_IDENTIFIERS"]
DATA_SHARING = _HEADINGS["DATA_SHARING"]
MORE_RELATED_TRIALS = _HEADINGS["MORE_RELATED_TRIALS"]

RESULTS_PENDING: str = _TABLE["results_notes"]["RESULTS_PENDING"]
RESULTS_POSTED: str = _TABLE["results_notes"]["RESULTS_POSTED"]
RESULTS_PENDING_NOTE: str = _TABLE["results_notes"]["RESULTS_PENDING_NOTE"]
RESULTS_POSTED_NOTE: str = _TABLE["results_notes"]["RESULTS_POSTED_NOTE"]

# heading → the blurbs that may follow it (the first is the one the renderer writes).
# "Study Results" is followed by the results state instead of a blurb.
BLURBS: dict[str, tuple[str, ...]] = {h["heading"]: tuple(h["blurbs"]) for h in _TABLE["headings"]}

# A marker value the page leaves empty ("Identifier Type: -" in the example).
NOT_STATED: str = _TABLE["not_stated"]

# Header lines (before the first heading).
NCT_ID_PREFIX: str = _TABLE["header"]["NCT_ID_PREFIX"]
LAST_UPDATED_PREFIX: str = _TABLE["header"]["LAST_UPDATED_PREFIX"]

# Labels of label sections, by the section the renderer puts them in. Each label is unique across
# sections, so a label found in another section than its home is still understood.
BASIC_LABELS = _LABELS["BASIC_LABELS"]
DESIGN_LABELS = _LABELS["DESIGN_LABELS"]
ELIGIBILITY_LABELS = _LABELS["ELIGIBILITY_LABELS"]
RESPONSIBLE_PARTY_LABELS = _LABELS["RESPONSIBLE_PARTY_LABELS"]
OVERSIGHT_LABELS = _LABELS["OVERSIGHT_LABELS"]
DATA_SHARING_LABELS = _LABELS["DATA_SHARING_LABELS"]
LABEL_SECTIONS: dict[str, tuple[str, ...]] = {
    s["heading"]: _LABELS[s["name"]] for s in _TABLE["label_sections"]
}
# Labels whose value may run over several lines (free text); the others take one line.
TEXT_LABELS = frozenset(
    label["label"] for s in _TABLE["label_sections"] for label in s["labels"] if label["text"]
)

# Marker lines inside item sections: "<word> <value>" (the example writes some with a colon).
GROUP_TYPE = _MARKERS["GROUP_TYPE"]
INTERVENTION_TYPE = _MARKERS["INTERVENTION_TYPE"]
SPONSOR_ROLE = _MARKERS["SPONSOR_ROLE"]
RESPONSIBILITY_ROLE = _MARKERS["RESPONSIBILITY_ROLE"]
ROLE = _MARKERS["ROLE"]
SITE_STATUS = _MARKERS["SITE_STATUS"]
REFERENCE_TYPE = _MARKERS["REFERENCE_TYPE"]
PMID = _MARKERS["PMID"]
PMID_SUFFIX = _MARKERS["PMID_SUFFIX"]
RETRACTION_PMID = _MARKERS["RETRACTION_PMID"]
RETRACTION_SOURCE = _MARKERS["RETRACTION_SOURCE"]
IPD_ID = _MARKERS["IPD_ID"]
IPD_TYPE = _MARKERS["IPD_TYPE"]
IPD_URL = _MARKERS["IPD_URL"]
IDENTIFIER_TYPE = _MARKERS["IDENTIFIER_TYPE"]
IDENTIFIER_SOURCE = _MARKERS["IDENTIFIER_SOURCE"]
IDENTIFIER_DOMAIN = _MARKERS["IDENTIFIER_DOMAIN"]
IDENTIFIER_LINK = _MARKERS["IDENTIFIER_LINK"]
ORG_STUDY_ID_SOURCE = _MARKERS["ORG_STUDY_ID_SOURCE"]
SECONDARY_ID_SOURCE = _MARKERS["SECONDARY_ID_SOURCE"]
NCT_ALIAS_SOURCE = _MARKERS["NCT_ALIAS_SOURCE"]
OTHER_NAME = _MARKERS["OTHER_NAME"]
STUDY_GROUP = _MARKERS["STUDY_GROUP"]
TIME_FRAME = _MARKERS["TIME_FRAME"]
LINK = _MARKERS["LINK"]
COORDINATES = _MARKERS["COORDINATES"]
SITE = _MARKERS["SITE"]
CONTACT_NAME = _MARKERS["CONTACT_NAME"]
CONTACT_PHONE = _MARKERS["CONTACT_PHONE"]
CONTACT_PHONE_EXT = _MARKERS["CONTACT_PHONE_EXT"]
CONTACT_EMAIL = _MARKERS["CONTACT_EMAIL"]
LEAD_ROLE = _MARKERS["LEAD_ROLE"]
COLLABORATOR_ROLE = _MARKERS["COLLABORATOR_ROLE"]
MESH_KINDS: tuple[str, ...] = tuple(_TABLE["mesh_kinds"])
ENROLLMENT_UNIT: str = _TABLE["enrollment_unit"]  # "24 participants"


def marker_pattern(prefix: str) -> re.Pattern[str]:
    """`Group Type X`, `Group Type: X`, `Role: X` (case-insensitive); group 1 is the value."""
    words = re.escape(prefix.rstrip(":"))
    return re.compile(rf"^{words}(?::|\s|$)\s*(.*)$", re.IGNORECASE)


GROUP_TYPE_LINE = marker_pattern(GROUP_TYPE)
INTERVENTION_TYPE_LINE = marker_pattern(INTERVENTION_TYPE)
SPONSOR_ROLE_LINE = marker_pattern(SPONSOR_ROLE)
RESPONSIBILITY_ROLE_LINE = marker_pattern(RESPONSIBILITY_ROLE)
ROLE_LINE = re.compile(r"^Role:\s*(.*)$", re.IGNORECASE)
SITE_STATUS_LINE = marker_pattern(SITE_STATUS)
REFERENCE_TYPE_LINE = marker_pattern(REFERENCE_TYPE)
PMID_LINE = re.compile(r"^PMID:?\s*(\d+)\b", re.IGNORECASE)
RETRACTION = re.compile(r"^Retraction (PMID|Source):\s*(.*)$", re.IGNORECASE)
IPD_MARKER = re.compile(r"^IPD (ID|Type|URL):\s*(.*)$", re.IGNORECASE)
IDENTIFIER_LABEL = re.compile(r"^Identifier (Type|Source|Domain|Link):\s*(.*)$", re.IGNORECASE)
OTHER_NAME_LINE = re.compile(r"^Other Names?:\s*(.*)$", re.IGNORECASE)
STUDY_GROUP_LINE = re.compile(r"^Study Group:\s*(.*)$", re.IGNORECASE)
TIME_FRAME_LINE = re.compile(r"^Time Frame:\s*(.*)$", re.IGNORECASE)
LINK_LINE = re.compile(r"^Link:\s*(.*)$", re.IGNORECASE)
COORDINATES_LINE = re.compile(
    r"^Coordinates:\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*,\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)$",
    re.IGNORECASE,
)
SITE_LINE = re.compile(r"^Site:\s*(.*)$", re.IGNORECASE)
CONTACT_LABEL = re.compile(r"^(Name|Phone|Phone Extension|Email|E-mail):\s*(.*)$", re.IGNORECASE)
MESH = re.compile(
    r"^(Condition|Condition Ancestor|Intervention|Intervention Ancestor):\s*(.*?)"
    r"(?:\s*\[([^\[\]]*)\])?$",
    re.IGNORECASE,
)
NCT_LINE = re.compile(r"^NCT ID:\s*(.*)$", re.IGNORECASE)
LAST_UPDATED = re.compile(r"^Last Updated:\s*(.*)$", re.IGNORECASE)
NCT_ID = re.compile(r"NCT\d{8}")

# A bare contact line that is a phone number or an e-mail address (anything else is a name).
PHONE_SHAPE = re.compile(r"^\+?\(?\d[\d\s().\-/]*\d$")
EMAIL_SHAPE = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")


# ---------------------------------------------------------------------------------------------
# Code vocabularies (ClinicalTrials.gov API v2 enums) and display-form aliases.
# ---------------------------------------------------------------------------------------------

STATUSES = frozenset(
    {
        "ACTIVE_NOT_RECRUITING", "COMPLETED", "ENROLLING_BY_INVITATION", "NOT_YET_RECRUITING",
        "RECRUITING", "SUSPENDED", "TERMINATED", "WITHDRAWN", "AVAILABLE", "NO_LONGER_AVAILABLE",
        "TEMPORARILY_NOT_AVAILABLE", "APPROVED_FOR_MARKETING", "WITHHELD", "UNKNOWN",
    }
)  # fmt: skip
PHASES = frozenset({"NA", "EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4"})
STUDY_TYPES = frozenset({"EXPANDED_ACCESS", "INTERVENTIONAL", "OBSERVATIONAL"})
ALLOCATIONS = frozenset({"RANDOMIZED", "NON_RANDOMIZED", "NA"})
INTERVENTION_MODELS = frozenset(
    {"SINGLE_GROUP", "PARALLEL", "CROSSOVER", "FACTORIAL", "SEQUENTIAL"}
)
PURPOSES = frozenset(
    {
        "TREATMENT", "PREVENTION", "DIAGNOSTIC", "ECT", "SUPPORTIVE_CARE", "SCREENING",
        "HEALTH_SERVICES_RESEARCH", "BASIC_SCIENCE", "DEVICE_FEASIBILITY", "OTHER",
    }
)  # fmt: skip
MASKINGS = frozenset({"NONE", "SINGLE", "DOUBLE", "TRIPLE", "QUADRUPLE"})
WHO_MASKED = frozenset({"PARTICIPANT", "CARE_PROVIDER", "INVESTIGATOR", "OUTCOMES_ASSESSOR"})
OBSERVATIONAL_MODELS = frozenset(
    {
        "COHORT", "CASE_CONTROL", "CASE_ONLY", "CASE_CROSSOVER", "ECOLOGIC_OR_COMMUNITY",
        "FAMILY_BASED", "DEFINED_POPULATION", "NATURAL_HISTORY", "OTHER",
    }
)  # fmt: skip
TIME_PERSPECTIVES = frozenset({"RETROSPECTIVE", "PROSPECTIVE", "CROSS_SECTIONAL", "OTHER"})
BIO_SPEC = frozenset({"NONE_RETAINED", "SAMPLES_WITH_DNA", "SAMPLES_WITHOUT_DNA"})
EXPANDED_ACCESS_TYPES = frozenset({"INDIVIDUAL", "INTERMEDIATE", "TREATMENT"})
ARM_TYPES = frozenset(
    {
        "EXPERIMENTAL", "ACTIVE_COMPARATOR", "PLACEBO_COMPARATOR", "SHAM_COMPARATOR",
        "NO_INTERVENTION", "OTHER",
    }
)  # fmt: skip
INTERVENTION_TYPES = frozenset(
    {
        "BEHAVIORAL", "BIOLOGICAL", "COMBINATION_PRODUCT", "DEVICE", "DIAGNOSTIC_TEST",
        "DIETARY_SUPPLEMENT", "DRUG", "GENETIC", "PROCEDURE", "RADIATION", "OTHER",
    }
)  # fmt: skip
SEXES = frozenset({"ALL", "FEMALE", "MALE"})
STD_AGES = frozenset({"CHILD", "ADULT", "OLDER_ADULT"})
SAMPLING = frozenset({"PROBABILITY_SAMPLE", "NON_PROBABILITY_SAMPLE"})
ORG_CLASSES = frozenset(
    {"NIH", "FED", "OTHER_GOV", "INDIV", "INDUSTRY", "NETWORK", "AMBIG", "OTHER", "UNKNOWN"}
)
OFFICIAL_ROLES = frozenset(
    {"STUDY_CHAIR", "STUDY_DIRECTOR", "PRINCIPAL_INVESTIGATOR", "SUB_INVESTIGATOR"}
)
CONTACT_ROLES = OFFICIAL_ROLES | {"CONTACT"}
REFERENCE_TYPES = frozenset({"BACKGROUND", "RESULT", "DERIVED"})
RESPONSIBLE_PARTY_TYPES = frozenset({"SPONSOR", "PRINCIPAL_INVESTIGATOR", "SPONSOR_INVESTIGATOR"})
SECONDARY_ID_TYPES = frozenset(
    {
        "NIH", "FDA", "VA", "CDC", "AHRQ", "SAMHSA", "OTHER_GRANT", "EUDRACT_NUMBER", "CTIS",
        "REGISTRY", "OTHER",
    }
)  # fmt: skip
IPD_SHARING = frozenset({"YES", "NO", "UNDECIDED"})
IPD_INFO_TYPES = frozenset({"STUDY_PROTOCOL", "SAP", "ICF", "CSR", "ANALYTIC_CODE"})

# Display forms (after upper-snaking) that are not simply the enum: ClinicalTrials.gov web labels.
CODE_ALIASES: dict[str, str] = dict(_TABLE["code_aliases"])


def normalize_code(value: str, vocabulary: frozenset[str]) -> str:
    """API v2 spelling of `value` when it is a known enum or display form, else `value` as written.

    `vocabulary` disambiguates aliases that differ per field ("Individual" is INDIV for an
    organization class but INDIVIDUAL for an expanded-access type).
    """
    for candidate in (value, re.sub(r"\s*\(.*\)\s*$", "", value)):  # "None (Open Label)"
        snake = upper_snake(candidate)
        if snake in vocabulary:
            return snake
        alias = CODE_ALIASES.get(snake)
        if alias in vocabulary:
            return alias
    return value


def intervention_type_display(code: str) -> str:
    """DIETARY_SUPPLEMENT → "Dietary Supplement", the prefix of API v2 arm intervention names."""
    return code.replace("_", " ").title()


INTERVENTION_TYPE_BY_DISPLAY = {intervention_type_display(c): c for c in INTERVENTION_TYPES}


def split_intervention_name(name: str) -> tuple[str, str | None]:
    """An arm's intervention name "Drug: Aspirin" (API v2 form) → ("Aspirin", "DRUG")."""
    prefix, separator, plain = name.partition(": ")
    code = INTERVENTION_TYPE_BY_DISPLAY.get(prefix)
    return (plain, code) if separator and code else (name, None)


# Countries whose registry name contains a comma: an unescaped site line "Seoul, Korea, Republic
# of" is split with these in mind (the renderer escapes commas inside parts: `Korea\, Republic of`).
COMMA_COUNTRIES = frozenset(_TABLE["comma_countries"])


def escape_address_part(part: str | None) -> str:
    """A city/state/zip/country for the comma-separated site line (`\\,` keeps a comma)."""
    return (part or "").replace("\\", "\\\\").replace(",", "\\,")


def split_address(line: str, known_countries: frozenset[str]) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    chars = iter(line)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ",":
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    # Unescaped pages: "Seoul, Korea, Republic of" → join the country back together.
    if len(parts) >= 3 and f"{parts[-2]}, {parts[-1]}" in known_countries:
        parts[-2:] = [f"{parts[-2]}, {parts[-1]}"]
    return parts


def is_blank(line: str) -> bool:
    return not line.strip()


def squash(text: str) -> str:
    return " ".join(text.split()).casefold()


HEADING_BY_KEY = {squash(h): h for h in BLURBS}
BLURB_KEYS = {squash(b) for blurbs in BLURBS.values() for b in blurbs}


def heading_of(line: str) -> str | None:
    return HEADING_BY_KEY.get(squash(line))


LABEL_BY_KEY = {squash(label): label for labels in LABEL_SECTIONS.values() for label in labels}
ELIGIBILITY_KEYS = frozenset(squash(label) for label in ELIGIBILITY_LABELS)


def match_label(line: str) -> tuple[str, str | None] | None:
    """(label, value on the same line or None) when `line` is a label line."""
    stripped = line.strip()
    label = LABEL_BY_KEY.get(squash(stripped.removesuffix(":")))
    if label:
        return label, None
    if ":" in stripped:
        head, _, tail = stripped.partition(":")
        label = LABEL_BY_KEY.get(squash(head))
        if label and tail.strip():
            return label, tail.strip()
    role = RESPONSIBILITY_ROLE_LINE.match(stripped)
    if role:
        return RESPONSIBILITY_ROLE, role.group(1).strip()
    return None


STRUCTURAL_PATTERNS = (
    GROUP_TYPE_LINE,
    INTERVENTION_TYPE_LINE,
    SPONSOR_ROLE_LINE,
    ROLE_LINE,
    SITE_STATUS_LINE,
    REFERENCE_TYPE_LINE,
    PMID_LINE,
    RETRACTION,
    IPD_MARKER,
    IDENTIFIER_LABEL,
    OTHER_NAME_LINE,
    STUDY_GROUP_LINE,
    TIME_FRAME_LINE,
    LINK_LINE,
    COORDINATES_LINE,
    SITE_LINE,
    CONTACT_LABEL,
    MESH,
    NCT_LINE,
    LAST_UPDATED,
)


def is_structural_line(line: str) -> bool:
    """Whether the reader could take this line for layout (a heading, blurb, label or marker)
    rather than text. Text lines like that are written escaped: see `escape_line`."""
    text = line.strip()
    if text.startswith("\\"):
        return is_structural_line(text[1:])  # an escaped line that looks escaped is escaped again
    return bool(
        heading_of(text)
        or squash(text) in BLURB_KEYS
        or match_label(text)
        or any(pattern.match(text) for pattern in STRUCTURAL_PATTERNS)
    )


def escape_line(line: str) -> str:
    """A text line as written in the layout: a backslash before a line that would otherwise read
    as layout ("Time Frame: 7 months" inside an outcome description), Markdown style."""
    if not is_structural_line(line):
        return line
    indent = len(line) - len(line.lstrip())
    return f"{line[:indent]}\\{line[indent:]}"


def unescape_line(line: str) -> str:
    """Inverse of `escape_line`: the backslash is dropped only where `escape_line` puts one."""
    indent = len(line) - len(line.lstrip())
    rest = line[indent:]
    if rest.startswith("\\") and is_structural_line(rest[1:]):
        return line[:indent] + rest[1:]
    return line
