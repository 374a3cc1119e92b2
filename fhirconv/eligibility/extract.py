"""Rule-based extraction of computable items from eligibility criteria text.

Finds numeric comparisons (operator + value(s) + unit) and classifies each by its context:
`age` ("aged 18-65", "18 years or older"), `window` ("within 6 months prior to …"),
`threshold` (labs, vitals, scores: "creatinine > 2.5 mg/dL", "ECOG 0-1", "NYHA class III"),
`dose` (mass per time next to a drug), plus word mentions: `sex`, `pregnancy`, `lactation`,
`childbearing`. Offline, no models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from fhirconv.eligibility.criteria import parse_criteria
from fhirconv.eligibility.numbers import NUMBER_PATTERN, parse_number, roman_to_int
from fhirconv.eligibility.units import ucum_for_written_unit
from fhirconv.tables import load_csv

__all__ = ["ExtractedItem", "ItemKind", "Operator", "extract_document", "extract_items"]

ItemKind = Literal[
    "age", "threshold", "window", "sex", "pregnancy", "lactation", "childbearing", "dose"
]
Operator = Literal[">", ">=", "<", "<=", "=", "between"]


class ExtractedItem(BaseModel):
    """One computable item found in criteria text; `span` indexes the text given."""

    model_config = ConfigDict(frozen=True)

    kind: ItemKind
    operator: Operator | None = None
    value: float | str | None = None
    value2: float | None = None
    unit: str | None = None
    ucum: str | None = None
    name: str | None = None
    code: str | None = None
    span: tuple[int, int]
    exclude: bool = False
    negated: bool = False
    event: str | None = None
    text: str = ""


# --- text normalisation (keeps a map back to the original offsets) ----------------------------

_ESCAPE = re.compile(r"\\(?=[!-/:-@\[-`{-~])")
_CHAR_MAP = str.maketrans(
    {"＞": ">", "＜": "<", "≧": "≥", "≦": "≤", "⩾": "≥", "⩽": "≤", "＝": "=", "～": "~",
     "μ": "µ", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "−": "-",
     "˂": "<", "˃": ">"}
)  # fmt: skip


def _normalise(text: str) -> tuple[str, list[int]]:
    """Text with Markdown escapes removed and look-alike characters unified, plus an index map."""
    kept: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(text):
        if ch == "\\" and _ESCAPE.match(text, index):
            continue
        kept.append(ch)
        origin.append(index)
    origin.append(len(text))
    return "".join(kept).translate(_CHAR_MAP), origin


# --- vocabulary -------------------------------------------------------------------------------

_OPERATOR_WORDS: list[tuple[str, str]] = [
    (
        r"greater\s+than\s+or\s+equal\s+to|more\s+than\s+or\s+equal\s+to|equal\s+to\s+or\s+"
        r"(?:greater|more|higher|older)\s+th[ae]n|equal\s+or\s+(?:greater|more)\s+than|higher\s+than\s+or\s+"
        r"equal\s+to|at\s+least|no\s+less\s+than|not\s+less\s+than|no\s+fewer\s+than|minimum\s+"
        r"(?:of\s+)?|a\s+minimum\s+of|(?:≥|>)\s*(?:or|/)\s*=(?:\s*to\b)?|>=|=>|≥=?|over\s+or\s+equal\s+to"
        r"|older\s+than\s+or\s+equal\s+to|aged?\s+over\s+or\s+equal\s+to|at\s+or\s+(?:after|beyond|above)",
        ">=",
    ),
    (
        r"less\s+than\s+or\s+equal\s+to|lower\s+than\s+or\s+equal\s+to|equal\s+to\s+or\s+"
        r"(?:less|lower|younger)\s+th[ae]n|equal\s+or\s+less\s+than|at\s+most|no\s+more\s+than|not\s+more\s+than"
        r"|no\s+greater\s+than|not\s+greater\s+than|no\s+higher\s+than|not\s+exceeding|not\s+to\s+"
        r"exceed|up\s+to|a\s+maximum\s+of|maximum\s+(?:of\s+)?|max\.?|(?:≤|<)\s*(?:or|/)\s*=(?:\s*to\b)?"
        r"|<=|=<|≤=?|at\s+or\s+(?:before|below)|within\s+(?:the\s+)?(?:past|last|previous|preceding|prior)?"
        # "by 36 hours of age", "by 6 months old": an age reached at the latest
        r"|by(?=\s+\S+\s*(?:hours?|days?|weeks?|months?|years?)\s+(?:of\s+age|old)\b)",
        "<=",
    ),
    (
        r"more\s+th[ae]n|greater\s+th[ae]n|higher\s+than|longer\s+than|larger\s+than|older\s+th[ae]n|in\s+excess\s+of|"
        r"exceeding|exceeds?|above|over|beyond|superior\s+to|>",
        ">",
    ),
    (
        r"less\s+th[ae]n|lower\s+than|fewer\s+than|shorter\s+than|younger\s+th[ae]n|under|below|inferior\s+to|<",
        "<",
    ),
    (r"=|equal\s+to|equals", "="),
]
_SUFFIX_OPERATORS: list[tuple[str, str]] = [
    (
        r"or\s+(?:more|older|greater|above|over|higher|longer)|and\s+(?:above|older|over|up|more)"
        r"|\+|or\s+later|at\s+minimum",
        ">=",
    ),
    (
        r"or\s+(?:less|younger|below|fewer|lower|under|shorter)|and\s+(?:under|below|younger|less)"
        r"|at\s+(?:the\s+)?most|or\s+earlier|maximum",
        "<=",
    ),
]

_PREFIX_OP = "|".join(
    f"(?P<op{index}>{pattern})" for index, (pattern, _) in enumerate(_OPERATOR_WORDS)
)
_PREFIX_OP_VALUES = [operator for _, operator in _OPERATOR_WORDS]
# "21 or less than 2" and "under 18 or over 70" are two comparisons, not a suffix operator.
_SUFFIX_OP = "|".join(
    f"(?P<sop{index}>(?:{pattern})(?!\\s+than)(?!\\s*[<>≤≥]?\\s*\\d))"
    for index, (pattern, _) in enumerate(_SUFFIX_OPERATORS)
)
_SUFFIX_OP_VALUES = [operator for _, operator in _SUFFIX_OPERATORS]

_TIME_UCUM = {"a": "years", "mo": "months", "wk": "weeks", "d": "days", "h": "hours",
              "min": "minutes"}  # fmt: skip
_ULN = (
    r"(?:[x×*]|times|fold)?\s*(?:the\s+)?(?:institutional\s+|local\s+)?(?:upper\s+limits?\s+of"
    r"\s+(?:the\s+)?normal(?:\s+range)?|ULN|LLN|lower\s+limit\s+of\s+(?:the\s+)?normal|"
    r"(?:the\s+)?(?:normal|reference)\s+(?:upper\s+)?(?:value|range|limit)|maximum\s+normal"
    r"\s+value|highest\s+reference\s+value)"
)
# An amount consumed per unit of time: "drinks per day", "alcoholic drinks per day", "cigars/day"
# ("3 times a week" is how often something is done: a count, not a measurement).
_RATE = (
    r"(?:(?:[A-Za-z]{3,}\s+)?(?!times\b)[A-Za-z]{2,}s\s*(?:/|\bper\b|\ba\b|\bin\s+a\b)\s*)"
    r"(?:day|week|month|hour|minute|min)\b"
)
_POWER = r"(?:[x×*]\s*)?10\s*(?:\^|\*\*|e)?\s*[0-9⁰¹²³⁴⁵⁶⁷⁸⁹]{1,2}\s*/\s*(?:L|l|µL|uL|mm3|mm³|mcL)"


@cache
def _unit_pattern() -> str:
    spellings = {row["written"] for row in load_csv("eligibility-units.csv")}
    words = sorted(spellings, key=len, reverse=True)
    alternation = "|".join(
        re.escape(word).replace(r"\ ", r"\s*").replace("/", r"\s*/\s*") for word in words
    )
    # A unit never runs into a following letter or digit ("mg" in "mgs", "m" in "more").
    return (
        rf"(?:{_POWER}|{_ULN}|{_RATE}|{alternation}|(?:[x×]|times)\s*(?:ULN|normal))"
        r"(?![A-Za-z0-9µ²³/])"
    )


_NUM = rf"(?:{NUMBER_PATTERN})"
_TIME_WORD = r"(?:years?|months?|weeks?|days?|hours?)\b"
# "≥ 33 gestational weeks": the qualifier between the number and its unit
_GESTATIONAL = r"gestational(?=\s*(?:weeks?|wks?|days?|months?)\b)"


@cache
def _comparison_regex() -> re.Pattern[str]:
    unit = _unit_pattern()
    return re.compile(
        rf"""
        (?:(?P<between>between|from|range\s+(?:of|from))\s+(?:(?P<betweenage>the\s+ages?\s+of)\s+)?)?
        (?:(?:{_PREFIX_OP})\s*(?:(?P<ageword>(?:the\s+)?age)\s*(?:of\b|:|is\b)?\s*)?)?
        (?P<v1>{_NUM})(?:(?:st|nd|rd|th)(?=\s*(?:percentile|centile)))?(?:\s*\(\s*\d+\s*\))?(?:\s*-\s*(?={_TIME_WORD})|\s*)(?:{_GESTATIONAL}\s*)?(?P<u1>{unit})?
        (?:
            (?:\s*old\b(?=\s*(?:to|-)\s*\d))?(?:\s*-(?=\s*(?:and|to)\b))?
            \s*(?P<range>-|–|—|~|to|and|through|until)\s*
            (?:(?P<rop>≤|<=|<|≥|>=|>)\s*)?
            (?P<v2>{_NUM})(?:\s*-\s*(?={_TIME_WORD})|\s*)(?:{_GESTATIONAL}\s*)?(?P<u2>{unit})?
        )?
        (?:(?:\s*(?:years?|months?)?\s*(?:of\s+age|old|in\s+age|ago))?\s*(?:{_SUFFIX_OP}))?
        """,
        re.VERBOSE | re.IGNORECASE,
    )


@dataclass
class _Comparison:
    operator: str | None
    value: float
    value2: float | None
    unit: str | None
    start: int
    end: int
    explicit: bool  # an operator or range was written (not a bare number)


def _parse_comparison(match: re.Match[str]) -> _Comparison | None:
    value = parse_number(match.group("v1"))
    if value is None:
        return None
    operator: str | None = None
    for index, op in enumerate(_PREFIX_OP_VALUES):
        if match.group(f"op{index}"):
            operator = op
    suffix_end: int | None = None
    for index, op in enumerate(_SUFFIX_OP_VALUES):
        if match.group(f"sop{index}"):
            # "CRAFFT = 2 or higher": the suffix says which way the bound goes.
            if operator is None or operator == "=":
                operator = op
            else:
                suffix_end = match.start(f"sop{index}")
    unit = match.group("u1") or match.group("u2")
    value2: float | None = None
    end = match.end() if suffix_end is None else suffix_end
    if match.group("v2") is not None:
        second = parse_number(match.group("v2"))
        joiner = match.group("range").lower()
        # "18 and 65 years old": with no operator and one unit after both numbers, a range.
        and_range = (
            joiner == "and"
            and operator is None
            and match.group("u2") is not None
            and match.group("u1") is None
            and re.fullmatch(r"(?:years?|yrs?|months?)", match.group("u2").strip(), re.I)
            is not None
        )
        if second is None or (joiner == "and" and not match.group("between") and not and_range):
            # "18 and 65" without "between" is a list, not a range: keep the first number only.
            end = match.end("u1") if match.group("u1") else match.end("v1")
            unit = match.group("u1")
        elif second > value and (
            operator is None
            or operator == "="  # "BIMS = 8-15"
            or (match.group("between") and match.group("rop"))
            or (match.group(0).lower().startswith("within") and not match.group("rop"))
        ):
            operator, value2 = "between", second
        else:
            end = match.end("u1") if match.group("u1") else match.end("v1")
            unit = match.group("u1")
    start = match.start()
    if match.group("between") and operator != "between":
        start = match.start("v1") if operator is None else start
    text = match.group(0)
    end = start + len(text[: end - start].rstrip())
    return _Comparison(
        operator,
        value,
        value2,
        unit.strip() if unit else None,
        start,
        end,
        explicit=operator is not None,
    )


# --- context classifiers ------------------------------------------------------------------------

_AGE_BEFORE = re.compile(
    r"(?:\bage[ds]?\b|\baging\b|years?\s+of\s+age|\bolder\b|\byounger\b|\badults?\b\s*(?:\(|,)?"
    r"|\bpatients?\b|\bsubjects?\b|\bparticipants?\b|\bchildren\b|\bmen\b|\bwomen\b|\bmales?\b"
    r"|\bfemales?\b|\bindividuals?\b|\bvolunteers?\b|\bboys?\b|\bgirls?\b|\binfants?\b"
    r"|\bpersons?\b|\bpeople\b)[^.;\n]{0,25}$",
    re.IGNORECASE,
)
_AGE_WORD_RIGHT_BEFORE = re.compile(r"\bage[ds]?\s*[:(]?\s*$", re.IGNORECASE)
_PERSON_RIGHT_BEFORE = re.compile(
    r"\b(?:patients?|subjects?|participants?|individuals?|adults?|children|volunteers?|persons?"
    r"|people|men|women|males?|females?|boys?|girls?)\s*[(:]?\s*$",
    re.IGNORECASE,
)
_AGE_WORD_BEFORE = re.compile(r"\b(?:age[ds]?|aging)\b[^.;\n\d]{0,20}$", re.IGNORECASE)
_AGE_AFTER = re.compile(
    r"^\s*(?:\)|-)?\s*(?:years?|yrs?|y|months?|weeks?|days?)?\s*[-\s]?(?:olds?\b|of\s+age\b|"
    r"aged?\b|yo\b|y/o\b|in\s+age\b)",
    re.IGNORECASE,
)
_AGE_BOUND_NEXT = re.compile(
    r"\s*(?:,|and|or|to)\s*(?:≥|>=|>|≤|<=|<)\s*\d+\s*(?:years?|yrs?)\b(?!\s*(?:ago|prior|before|after))",
    re.IGNORECASE,
)
_WINDOW_CUE = re.compile(
    r"\b(?:within|past|last|previous|preceding|prior|before|ago|since|after|following|recent"
    r"|recently|during|in\s+the)\b",
    re.IGNORECASE,
)
_DURATION_BEFORE = re.compile(r"\b(?:for|lasting|duration|history\s+of)\b[^.;\n]{0,12}$", re.I)
_THRESHOLD_TIME_NAMES = re.compile(
    r"\b(?:life\s+expectancy|expected\s+survival|survival|prognosis|gestation\w*|"
    r"weeks?\s+pregnant|GA|SA|postmenstrual|corrected\s+age|QTc?\w*|PT|aPTT|INR)\b"
    r"[^.;\n]{0,40}$",
    re.IGNORECASE,
)
# "< 27 weeks gestation", "beyond 20 weeks of amenorrhea": a gestational age, not a window.
_GESTATION_AFTER = re.compile(r"\s*(?:of\s+)?(?:gestation\w*|GA\b|SA\b)", re.I)
_SCORE_WORDS = re.compile(
    r"\b(?:score|scale|index|class|grade|level|count|ratio|value|rate|status|questionnaire|"
    r"test|total|percentile|IQ|quotient|inventory|stage|points?)\b",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(?:no|not|without|non|absence\s+of|never)\b[^.;\n]{0,30}$", re.I)
_CLAUSE_START = re.compile(r"[.;:\n•]\s|^|\(|,\s+(?:and|or)\b")


@dataclass(frozen=True)
class _Concept:
    name: str
    code: str | None
    synonyms: tuple[str, ...]
    is_score: bool
    roman: bool


@cache
def _concepts() -> tuple[_Concept, ...]:
    concepts: list[_Concept] = []
    for row in load_csv("eligibility-analytes.csv"):
        concepts.append(
            _Concept(
                row["name"], row["loinc"] or None, tuple(row["synonyms"].split("|")), False, False
            )
        )
    for row in load_csv("eligibility-scores.csv"):
        concepts.append(
            _Concept(
                row["name"],
                row["loinc"] or row["id"],
                tuple(row["synonyms"].split("|")),
                True,
                row["roman"] == "true",
            )
        )
    return tuple(concepts)


@cache
def _concept_regex() -> tuple[re.Pattern[str], dict[str, _Concept]]:
    by_synonym: dict[str, _Concept] = {}
    for concept in _concepts():
        for synonym in concept.synonyms:
            by_synonym.setdefault(synonym.lower(), concept)
    words = sorted(by_synonym, key=len, reverse=True)
    # Short upper-case abbreviations (Hb, PS, EF) must match as written; names in any case.
    alternation = "|".join(re.escape(word) for word in words)
    return re.compile(rf"(?<![\w-])(?:{alternation})(?![\w])", re.IGNORECASE), by_synonym


def _find_concept(before: str) -> tuple[_Concept, str] | None:
    """The analyte/score named closest before a comparison (in the same clause)."""
    regex, by_synonym = _concept_regex()
    found: tuple[_Concept, str] | None = None
    for match in regex.finditer(before):
        written = match.group(0)
        if len(written) <= 3 and not any(ch.isupper() for ch in written):
            continue  # "hr", "ps", "ef": only as capitalised abbreviations
        concept = by_synonym[written.lower()]
        found = (concept, written)
    return found


_NAME_TAIL = re.compile(r"([A-Za-z][\w\-/()+ ]{0,40}?)\s*(?:\(|:|,|of|is|was|level|levels)?\s*$")


def _clause_before(text: str, start: int, limit: int = 80) -> str:
    window = text[max(0, start - limit) : start]
    cut = max(window.rfind(ch) for ch in ".;\n•")
    if cut >= 0 and not (cut > 0 and window[cut] == "." and window[cut - 1 : cut].isdigit()):
        window = window[cut + 1 :]
    return window


# --- extraction -------------------------------------------------------------------------------

_SEX_WORDS = re.compile(
    r"\b(?:(?P<female>women|woman|females?|girls?|ladies|lady)|(?P<male>men|man|males?|boys?))\b",
    re.IGNORECASE,
)
# "male infertility", "female relative", "Women's Hospital", "sex with men": a sex word that
# is not the sex of the person being enrolled.
_NOT_A_SEX_AFTER = re.compile(
    r"(?:['’]s\b|\s*-?\s*(?:relatives?|infertility|factors?|reproductive|same[- ]sex|"
    r"(?:first|second)[- ]degree\s+relatives?)\b)",
    re.IGNORECASE,
)
_NOT_A_SEX_BEFORE = re.compile(
    r"(?:\b(?:sex|intercourse)\s+with\s+|\b(?:first|second)[- ]degree\s+)$", re.IGNORECASE
)
_PREGNANCY = re.compile(r"\bpregnan\w*", re.IGNORECASE)
_LACTATION = re.compile(r"\b(?:breast[- ]?feeding|lactat\w+|nursing)\b", re.IGNORECASE)
_CHILDBEARING = re.compile(r"\bchild[- ]?bearing\s+(?:potential|age)\b|\bWOCBP\b", re.IGNORECASE)
_IMPLIED_WINDOW = re.compile(
    r"\b(?:within\s+(?:the\s+)?(?:(?:past|last|previous|preceding|prior)\s+|an?\s+)?|in\s+(?:the\s+)?"
    r"(?:past|last|previous|preceding|prior)\s+|(?:during|over|for)\s+the\s+(?:past|last|previous"
    r"|preceding|prior)\s+|(?<!\w\s)\b(?:past|last|previous)\s+)"
    r"(?P<unit>year|month|week|day|hour)\b",
    re.IGNORECASE,
)
_PAST_WINDOW = re.compile(
    r"\b(?:(?:in|during|over|for|within)\s+(?:the\s+)?)?(?P<span>(?:past|last|previous|preceding|"
    r"former|prior|(?:most\s+)?recent|next|following|coming|upcoming|first)\s+"
    r"(?P<v>" + NUMBER_PATTERN + r")(?:\s*\(\s*\d+\s*\))?\s*-?\s*"
    r"(?P<u>years?|months?|weeks?|days?|hours?|yrs?|wks?|mos?)\b)",
    re.IGNORECASE,
)
_CLASS_VALUE = r"(?:VI|IV|V|III|II|I|[ⅠⅡⅢⅣⅤⅥ]|[1-6](?!\d|[.,]\d))\b"
# Roman numerals written as one Unicode character ("Class Ⅲ-Ⅳ")
_UNICODE_ROMAN = {"Ⅰ": "I", "Ⅱ": "II", "Ⅲ": "III", "Ⅳ": "IV", "Ⅴ": "V", "Ⅵ": "VI"}
# "NYHA class III", "ASA (American ...) physical status: I-III", "ASA ≥ 3", "ASA 3 or 4"
_ROMAN_SCORE = re.compile(
    r"\)?\s*(?:\([^()]{0,60}\)\s*)?:?\s*(?i:(?:physical|functional|anesthesia|anaesthesia|clinical)\s+)?"
    r"(?i:(?:class(?:ification)?|grade|stage|status|score|levels?|physical\s+status)\s*)?"
    r"(?i:class\s+)?:?\s*"
    rf"(?:(?P<op>≥|>=|>|≤|<=|<)\s*)?(?P<r1>{_CLASS_VALUE})"
    rf"(?:\s*(?:-|–|to|~|through)\s*(?i:class\s+)?(?P<r2>{_CLASS_VALUE}))?"
)
_CLASS_LIST = re.compile(rf"\s*(?:,|or|and|/|and/or)\s*(?:class\s+)?(?P<r>{_CLASS_VALUE})")
_OPERATOR_BEFORE = re.compile(r"(?P<op>≥|>=|>|≤|<=|<)\s*$")
_SYMBOL_OPERATOR = {"≥": ">=", ">=": ">=", ">": ">", "≤": "<=", "<=": "<=", "<": "<"}
_FLIPPED = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}
_REVERSED_OPERATOR = re.compile(
    r"\s*(?P<op>≥|>=|>|≤|<=|<)\s*(?P<subject>[A-Za-z][A-Za-z\- ]{0,30}?)\s*(?=[<>≤≥(),;:.\n]|$)"
)


def _class_value(written: str) -> int | None:
    if written in _UNICODE_ROMAN:
        written = _UNICODE_ROMAN[written]
    return int(written) if written.isdigit() else roman_to_int(written)


_DOSE_CONTEXT = re.compile(
    r"(?:\bdose\b|\bdaily\b|prednisone|prednisolone|methylprednisolone|dexamethasone|"
    r"hydrocortisone|corticosteroid|steroid|mg/kg|equivalent|\bdrug\b|therapy|treatment|"
    r"\btaking\b|\bmedication\b)",
    re.IGNORECASE,
)
_DRUG_NAME = re.compile(
    r"\b([A-Z]?[a-z]+(?:one|olone|asone|sone|ine|ate|mab|nib|tin|pril|sartan|olol|azole|mycin|"
    r"cillin|fen|pam|lam|ide|ol))\b"
)


def _unit_ucum(unit: str | None) -> str | None:
    if unit is None:
        return None
    compact = re.sub(r"\s+", " ", unit.strip())
    if re.match(
        r"^(?:[x×*]|times|fold)?\s*(?:the\s+)?.*(?:ULN|upper|normal|reference|LLN)",
        compact,
        re.IGNORECASE,
    ):
        return None
    power = re.match(
        r"^(?:[x×*]\s*)?10\s*(?:\^|\*\*|e)?\s*([0-9⁰¹²³⁴⁵⁶⁷⁸⁹]{1,2})\s*/\s*(\S+)$", compact
    )
    if power:
        exponent = power.group(1).translate(str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789"))
        per = {"l": "L", "µl": "uL", "ul": "uL", "mcl": "uL", "mm3": "mm3", "mm³": "mm3"}.get(
            power.group(2).lower()
        )
        return f"10*{exponent}/{per}" if per else None
    return ucum_for_written_unit(compact)


def _display_unit(unit: str | None) -> str | None:
    """Units as written, except "x ULN" forms which all read "x ULN" ("twice the ULN")."""
    if unit is None:
        return None
    if re.search(r"ULN|upper\s+limit|normal|reference", unit, re.IGNORECASE) and not re.search(
        r"LLN|lower", unit, re.IGNORECASE
    ):
        return "x ULN"
    return unit


def extract_items(text: str, *, exclude: bool = False, offset: int = 0) -> list[ExtractedItem]:
    """Items found in ONE criterion's text; spans are `offset` + indices into `text`."""
    clean, origin = _normalise(text)
    items: list[ExtractedItem] = []
    taken: list[tuple[int, int]] = []

    def span_of(start: int, end: int) -> tuple[int, int]:
        return origin[start] + offset, origin[end - 1] + 1 + offset

    coordinated: list[ExtractedItem] = []

    def add(kind: str, start: int, end: int, **fields: object) -> None:
        span = span_of(start, end)
        item = ExtractedItem.model_validate(
            {
                "kind": kind,
                "span": span,
                "exclude": exclude,
                "text": text[span[0] - offset : span[1] - offset],
                **fields,
            }
        )
        items.append(item)
        taken.append((start, end))
        # "ALT, AST and bilirubin > 2 x ULN", "radiation or chemotherapy within 4 weeks": one
        # item per coordinated observation or event, with the same span.
        if kind == "threshold":
            others = _coordinated_concepts(clean, start)
            coordinated.extend(
                item.model_copy(update={"name": written, "code": concept.code})
                for concept, written in others[:-1]
            )
        elif kind == "window" and (events := _coordinated_events(clean, start)):
            items[-1] = item.model_copy(update={"event": events[-1]})
            coordinated.extend(item.model_copy(update={"event": event}) for event in events[:-1])

    _extract_implied_windows(clean, add)
    _extract_scores(clean, add, taken)
    previous: dict[str, object] | None = None
    position = 0
    while (match := _comparison_regex().search(clean, position)) is not None:
        # Resume right after what was used: "≥18 years and ≤ 90 years" gives two comparisons.
        position = match.end() if match.end() > match.start() else match.start() + 1
        if any(s < match.end() and match.start() < e for s, e in taken):
            continue
        comparison = _parse_comparison(match)
        if comparison is None:
            continue
        subject: str | None = None
        if comparison.operator is None and comparison.value2 is None:
            # "18 <Age <80", "145 mmHg ≤ msSBP": the operator after the value, read from the
            # other side; what is compared is named after it.
            reverse = _REVERSED_OPERATOR.match(clean, comparison.end)
            if reverse is not None:
                comparison.operator = _FLIPPED[_SYMBOL_OPERATOR[reverse.group("op")]]
                comparison.end = reverse.end("op")
                subject = reverse.group("subject")
        position = max(comparison.end, match.start() + 1)
        before = clean[: comparison.start]
        chained = previous is not None and re.fullmatch(
            r"\s*(?:,|or|and|/|and/or)\s*",
            clean[int(str(previous["end"])) : comparison.start],
            re.IGNORECASE,
        )
        if chained and comparison.operator is None and _LIST_MARKER.match(clean, comparison.start):
            chained = False  # "Heart rate <140/min,\n 4. Hemoglobin": "4." numbers the next item
        if chained and previous is not None:
            if comparison.operator is None:
                comparison.operator = str(previous["operator"])
                comparison.explicit = True
            if comparison.unit is None and previous["kind"] in ("age", "window"):
                comparison.unit = previous["unit"]  # type: ignore[assignment]
        if subject is not None:
            chained = False  # "… < 140 mmHg and 50 ≤ DBP < 90": a reversed bound names its own
        fields = _classify(
            clean,
            comparison,
            before,
            chained_kind=(str(previous["kind"]) if chained and previous is not None else None),
            chained_name=(previous.get("name") if chained and previous is not None else None),
            subject=subject,
        )
        if fields is None:
            previous = None
            continue
        kind = str(fields.pop("kind"))
        add(kind, comparison.start, comparison.end, **fields)
        previous = {
            "kind": kind,
            "end": comparison.end,
            "operator": comparison.operator,
            "unit": comparison.unit,
            "name": fields.get("name"),
        }
    _merge_dose_ranges(items)
    _extract_mentions(clean, add)
    items.sort(key=lambda item: item.span)
    kept = _unique(items)
    kept.extend(coordinated)
    kept.sort(key=lambda item: item.span)
    return kept


# What may separate two coordinated names: a comma, "or", "and", "and/or", a slash; a closing
# parenthesis of an abbreviation; a determiner or specimen word before the next name.
_COORDINATOR = re.compile(
    r"\s*\)?\s*(?:\([^()]{0,40}\)\s*)?(?:,\s*(?:and/or|and|or)?|/|&|\band/or\b|\bor\b|\band\b)"
    r"\s*(?:(?:the|serum|plasma|blood|total)\s+)?$",
    re.IGNORECASE,
)
# What may stand between the last name and its comparison.
_NAME_TO_COMPARISON = re.compile(
    r"\s*\)?\s*(?:\([^()]{0,40}\)\s*)?(?:(?:levels?|values?|concentrations?|counts?|both|each)\s*)?"
    r"(?:of|:|=|is|are|must\s+be|should\s+be)?\s*$",
    re.IGNORECASE,
)


def _coordinated_concepts(clean: str, start: int) -> list[tuple[_Concept, str]]:
    """Known analytes/scores coordinated right before a comparison, in order ("ALT, AST and
    total bilirubin"); fewer than two when the comparison is about one name."""
    clause = _clause_before(clean, start)
    regex, by_synonym = _concept_regex()
    found = [
        m
        for m in regex.finditer(clause)
        if len(m.group(0)) > 3 or any(ch.isupper() for ch in m.group(0))
    ]
    if len(found) < 2 or not _NAME_TO_COMPARISON.fullmatch(clause, found[-1].end()):
        return []
    names = [(by_synonym[found[-1].group(0).lower()], found[-1].group(0))]
    following = found[-1].start()
    for match in reversed(found[:-1]):
        concept = by_synonym[match.group(0).lower()]
        gap = clause[match.end() : following]
        if concept is names[0][0] and re.fullmatch(r"\s*[()]?\s*", gap):
            following = match.start()  # "alanine aminotransferase (ALT)": one name
            continue
        if not _COORDINATOR.fullmatch(gap) or any(concept is known for known, _ in names):
            break
        names.insert(0, (concept, match.group(0)))
        following = match.start()
    return names if len(names) > 1 else []


_CONJUNCT = r"[A-Za-z][\w-]*(?:\s+[A-Za-z][\w-]*){0,3}"
_EVENT_LIST = re.compile(
    rf"(?:^|\b(?:of|with|to|for|in|received?|receiving|taking|use|had|have|has|undergone|"
    rf"underwent|including|such\s+as|e\.g\.|any)\s+|[:(]\s*)"
    rf"(?P<list>{_CONJUNCT}(?:\s*,\s*{_CONJUNCT})*\s*,?\s*(?:and/or|or|and)\s+(?:other\s+|any\s+)?"
    rf"{_CONJUNCT})\s*(?:use|intake|treatment|therapy|exposure)?\s*$",
    re.IGNORECASE,
)
_NOT_IN_EVENT = re.compile(
    r"\b(?:who|which|that|be|is|are|was|were|been|not|no|patients?|subjects?|participants?|"
    r"women|men|will|must|should|may|can|plan|planned|history|diagnosis|diagnosed|the|a|an|"
    r"within|prior|last|past|previous|than|at|least|during|since|after|before|on|in|for|of|"
    r"with|to|by)\b",
    re.IGNORECASE,
)


def _coordinated_events(clean: str, start: int) -> list[str]:
    """Events coordinated right before a window ("radiation or chemotherapy within 4 weeks");
    fewer than two when the window is about one event."""
    clause = _clause_before(clean, start).rstrip()
    listed = _EVENT_LIST.search(clause)
    if listed is None:
        return []
    events = [
        part.strip()
        for part in re.split(r"\s*,\s*(?:and/or|or|and)?\s*|\s+(?:and/or|or|and)\s+", listed[1])
        if part.strip()
    ]
    events = [re.sub(r"^(?:other|any)\s+", "", event, flags=re.I) for event in events]
    if len(events) < 2 or any(
        _NOT_IN_EVENT.search(event) or not _EXPOSURE_HEAD.search(event) for event in events
    ):
        return []
    return events


# Treatments, procedures and exposures: the events a window usually dates. Conditions are left
# out ("heart failure, liver disease or unstable angina within 6 months" is one criterion).
_EXPOSURE_HEAD = re.compile(
    r"(?:therap(?:y|ies)|radiation|surger(?:y|ies)|transplant\w*|procedures?|operations?|"
    r"treatments?|vaccin\w+|transfusions?|trials?|tests?|drugs?|medications?|medicines?|products?|"
    r"agents?|antibiotics?|probiotics?|steroids?|\w{3,}(?:mab|nib|ics|als|ids|ines?|ectomy|plasty|"
    r"scopy|otomy|ostomy|ation|ization))$",
    re.IGNORECASE,
)


_LIST_MARKER = re.compile(r"(?<=\n)[ \t]*\d{1,2}\s*[.)](?!\d)|\d{1,2}\s*[.)]\s+(?=[A-Z])")


def _unique(items: list[ExtractedItem]) -> list[ExtractedItem]:
    """Items without repeats (two synonyms of one score before the same value)."""
    seen: set[tuple[object, ...]] = set()
    kept: list[ExtractedItem] = []
    for item in items:
        key = (item.kind, item.span, item.operator, item.value, item.value2, item.unit)
        if key not in seen:
            seen.add(key)
            kept.append(item)
    return kept


def _classify(
    clean: str,
    comparison: _Comparison,
    before: str,
    chained_kind: str | None,
    chained_name: object,
    subject: str | None = None,
) -> dict[str, object] | None:
    """Decide what a comparison is about; None to drop it."""
    ucum = _unit_ucum(comparison.unit)
    after = clean[comparison.end : comparison.end + 30]
    clause = _clause_before(clean, comparison.start)
    if subject is not None:
        clause = subject  # named after a reversed operator ("18 <Age")
    is_time = ucum in _TIME_UCUM
    common: dict[str, object] = {
        "operator": comparison.operator,
        "value": comparison.value,
        "value2": comparison.value2,
        "unit": _display_unit(comparison.unit),
        "ucum": ucum,
        "negated": bool(_NEGATION.search(clause)),
    }
    if comparison.operator is None:
        return None
    if chained_kind in ("age", "threshold", "window") and (
        comparison.unit is None or is_time == (chained_kind != "threshold")
    ):
        kind = chained_kind
        if kind == "age" and comparison.unit is None:
            common["ucum"] = "a"
        if kind == "threshold":
            common["name"] = chained_name
        return {"kind": kind, **common}
    age_after = bool(_AGE_AFTER.match(after)) or bool(
        re.search(
            r"\b(?:older|younger|of\s+age|olds?|ages?)\b",
            clean[comparison.start : comparison.end],
            re.IGNORECASE,
        )
    )
    if (
        (
            ucum in (None, "a", "mo", "wk", "d")
            # "Age less than 72 hours": a newborn's age
            or (
                ucum in ("h", "min")
                and (_AGE_WORD_RIGHT_BEFORE.search(clause) is not None or _AGE_AFTER.match(after))
            )
        )
        # "within one year" is a window, whatever else is around it
        and not clean[comparison.start : comparison.end].lower().startswith("within")
        and (
            _AGE_WORD_BEFORE.search(clause)
            or age_after
            # A number of years with no window or duration wording around it is an age
            # ("They are 18 years or older", "< 60 years").
            or (
                ucum == "a"
                and not _WINDOW_CUE.search(after[:15])
                and not _WINDOW_CUE.search(clause[-25:])
                and not _DURATION_BEFORE.search(clause)
            )
            or (
                comparison.unit is None
                and re.search(
                    r"\b(?:older|younger)\s+than\s*$", clean[: comparison.start + 14][-30:]
                )
            )
            # "patients <18", "subjects ≥ 12 to < 18 years": a bare limit right after a person
            or (comparison.unit is None and _PERSON_RIGHT_BEFORE.search(clause) is not None)
            # "≥20 and ≤80 years", "<30 or >69 years old": a bare bound joined to an age bound
            or (comparison.unit is None and _AGE_BOUND_NEXT.match(after) is not None)
        )
        and not _THRESHOLD_TIME_NAMES.search(clause)
        and (comparison.unit is None or ucum in ("a", "mo", "wk", "d", "h", "min"))
    ):
        if comparison.unit is None and comparison.value > 120:
            return None
        common["ucum"] = ucum or "a"
        return {"kind": "age", **common}
    if is_time:
        time_name: re.Match[str] | None = (
            _THRESHOLD_TIME_NAMES.search(clause)
            or _GESTATION_AFTER.match(after)
            or re.search(r"gestation\w*", clean[comparison.start : comparison.end], re.I)
        )
        if time_name:
            written = time_name.group(0).split()[-1 if time_name.re is _GESTATION_AFTER else 0]
            if re.match(r"gestation|GA$|SA$", written, re.I):
                written = "gestational age"
            return {"kind": "threshold", "name": written, **common}
        if _DURATION_BEFORE.search(clause) and not _WINDOW_CUE.search(after[:20]):
            return None  # "diabetes for at least 6 months": a duration, not a window
        return {"kind": "window", "event": _event_name(clause), **common}
    if comparison.unit is None and (
        re.match(r"\s*/\s*\d", after) or re.search(r"\d\s*/\s*$", clean[: comparison.start])
    ):
        return None  # "≥140/90": two values for one bound
    if comparison.unit is None and all(
        value is None or 1900 <= value <= 2100 for value in (comparison.value, comparison.value2)
    ):
        return None  # "between 2008 and 2017": calendar years
    concept = _find_concept(clause)
    if (
        ucum is not None
        and _DOSE_CONTEXT.search(clause + after[:10])
        and ucum.startswith(("mg", "g", "ug", "mg/kg"))
        and (concept is None or concept[0].is_score)
        and "/L" not in ucum
        and "/dL" not in ucum
    ):
        drug = _DRUG_NAME.findall(clause)
        return {"kind": "dose", "name": drug[-1] if drug else None, **common}
    name: str | None = None
    code: str | None = None
    if concept is not None:
        name, code = concept[1], concept[0].code
    elif comparison.unit is None and not _SCORE_WORDS.search(clause):
        # A bare number after a generic word ("version 10 or higher", "at most two OLV") is
        # not a measurement: take it only after an abbreviation naming one ("FEV >20", "CLASI
        # ≥ 5", "pH 6.75-7.25"), and never when written as a word ("at least one", "twice").
        tail = clause.strip()
        if not _ABBREVIATION_TAIL.search(tail) or not re.match(
            r"[\d.]", clean[_value_start(clean, comparison) :]
        ):
            return None
        if not re.search(r"[A-Za-z]{2,}[^A-Za-z]{0,4}$", tail) or re.search(
            r"\b(?:times?|episodes?|attacks?|lesions?|drinks?|cigarettes?|visits?|lines?|"
            r"cycles?|doses?|days?|sessions?|points?)\b",
            after[:20],
            re.IGNORECASE,
        ):
            return None
    if name is None:
        name_tail = _NAME_TAIL.search(clause)
        name = name_tail.group(1).strip() if name_tail else None
    return {"kind": "threshold", "name": name, "code": code, **common}


_ABBREVIATION_TAIL = re.compile(
    r"(?:\b[A-Z][A-Za-z0-9/-]*[A-Z0-9][A-Za-z0-9/-]*|\bpH|(?i:\b(?:pressure|weight|height|length|depth"
    r"|size|diameter|thickness|volume|angle|distance|intensity|pain|temperature|pocket|saturation"
    r"|fraction|output|circumference|velocity|gap|density|concentrations?|titer|titre|motivation"
    r"|severity|born|body\s+mass\s+index)\b))\s*[(:]?\s*(?:of|is|was|=|at)?\s*$"
)
_FIRST_NUMBER = re.compile(NUMBER_PATTERN, re.IGNORECASE)


def _value_start(clean: str, comparison: _Comparison) -> int:
    """Where the first number of a comparison is written."""
    found = _FIRST_NUMBER.search(clean, comparison.start, comparison.end)
    return found.start() if found else comparison.start


def _event_name(clause: str) -> str | None:
    words = re.findall(r"[A-Za-z][\w\-]+", clause)
    stop = {
        "within",
        "the",
        "in",
        "of",
        "a",
        "an",
        "for",
        "past",
        "last",
        "prior",
        "to",
        "or",
        "and",
        "at",
        "least",
        "less",
        "than",
        "more",
        "no",
        "not",
        "with",
        "any",
        "has",
        "have",
        "had",
        "been",
        "who",
        "is",
        "are",
        "was",
        "were",
        "previous",
    }
    meaningful = [word for word in words if word.lower() not in stop]
    return " ".join(meaningful[-3:]) or None


def _extract_scores(clean: str, add: _Adder, taken: list[tuple[int, int]]) -> None:
    """Scores written as classes ("NYHA class III", "ASA I-II", "ECOG 0-1", "Gleason 7")."""
    regex, by_synonym = _concept_regex()
    for match in regex.finditer(clean):
        concept = by_synonym[match.group(0).lower()]
        if not concept.is_score:
            continue
        if len(match.group(0)) <= 3 and not match.group(0).isupper():
            continue
        rest_start = match.end()
        if concept.roman:
            _add_class_score(clean, add, match, concept)
            continue
        # Numeric score with no operator: "ECOG 0-1" (between), "Gleason score 7" (=).
        bare = re.compile(
            r"(?:\s*\)?\s*(?:\([^)]{0,60}\))?\s*(?:performance\s+)?(?:status|score|scale|total)?"
            r"\s*(?:of|:|=)?\s*)(?P<v1>\d+(?:[.,]\d+)?)(?:\s*(?P<r>-|–|to|~)\s*(?P<v2>\d+(?:[.,]\d+)?))?"
            r"(?!\d)(?![.,]\d)(?!\s*(?:%|[a-zA-Z]))"
        ).match(clean, rest_start)
        if bare is None:
            continue
        following = clean[bare.end() : bare.end() + 10]
        if re.match(r"\s*(?:or|and|,)\s*\d", following) or re.match(r"\s*[<>≤≥=]", following):
            continue
        first_value = parse_number(bare.group("v1"))
        second_value = parse_number(bare.group("v2")) if bare.group("v2") else None
        if first_value is None:
            continue
        if second_value is not None and second_value > first_value:
            add(
                "threshold",
                bare.start("v1"),
                bare.end(),
                operator="between",
                value=first_value,
                value2=second_value,
                name=match.group(0),
                code=concept.code,
            )
        elif second_value is None:
            add(
                "threshold",
                bare.start("v1"),
                bare.end(),
                operator="=",
                value=first_value,
                name=match.group(0),
                code=concept.code,
            )
    del taken  # `add` records the spans it covers


def _add_class_score(clean: str, add: _Adder, match: re.Match[str], concept: _Concept) -> None:
    """A class-valued score after its name: "NYHA III", ">ASA II", "ASA 1-3", "ASA 3 or 4".

    A list of consecutive classes ("ASA 3 or 4", "physical status 1 and 2") is read as the range
    they span; a list with gaps is not a comparison.
    """
    roman = _ROMAN_SCORE.match(clean, match.end())
    if roman is None:
        return
    first = _class_value(roman.group("r1"))
    second = _class_value(roman.group("r2")) if roman.group("r2") else None
    if first is None:
        return
    start = roman.start("op") if roman.group("op") else roman.start("r1")
    end = roman.end()
    written_op = roman.group("op")
    before = _OPERATOR_BEFORE.search(clean, 0, match.start())
    if written_op is None and before is not None:
        written_op, start = before.group("op"), before.start()
    listed = [first] if second is None else [first, second]
    position = end
    while second is None and (item := _CLASS_LIST.match(clean, position)) is not None:
        value = _class_value(item.group("r"))
        if value is None:
            break
        listed.append(value)
        position = end = item.end()
    fields: dict[str, object] = {"name": match.group(0), "code": concept.code}
    if written_op is not None:
        if len(listed) > 1:
            return
        add("threshold", start, end, operator=_SYMBOL_OPERATOR[written_op], value=first, **fields)
    elif len(listed) == 1:
        add("threshold", start, end, operator="=", value=first, **fields)
    elif listed == list(range(listed[0], listed[0] + len(listed))) or (
        len(listed) == 2 and listed[1] > listed[0] and second is not None
    ):
        add(
            "threshold",
            start,
            end,
            operator="between",
            value=listed[0],
            value2=listed[-1],
            **fields,
        )


def _extract_implied_windows(clean: str, add: _Adder) -> None:
    """ "within the past year", "in the last month": windows of one unit."""
    units = {"year": "a", "month": "mo", "week": "wk", "day": "d", "hour": "h"}
    for match in _IMPLIED_WINDOW.finditer(clean):
        unit = match.group("unit").lower()
        add(
            "window",
            match.start(),
            match.end(),
            operator="<=",
            value=1.0,
            unit=unit,
            ucum=units[unit],
            event=_event_name(_clause_before(clean, match.start())),
        )
    for match in _PAST_WINDOW.finditer(clean):
        value = parse_number(match.group("v"))
        ucum = ucum_for_written_unit(match.group("u"))
        if value is None or ucum is None:
            continue
        add(
            "window",
            match.start("span"),
            match.end("span"),
            operator="<=",
            value=value,
            unit=match.group("u"),
            ucum=ucum,
            event=_event_name(_clause_before(clean, match.start())),
        )


def _extract_mentions(clean: str, add: _Adder) -> None:
    for match in _SEX_WORDS.finditer(clean):
        value = "female" if match.group("female") else "male"
        if match.group(0).lower() == "man" and re.match(r"\s*-?made", clean[match.end() :]):
            continue
        if _NOT_A_SEX_AFTER.match(clean, match.end()) or _NOT_A_SEX_BEFORE.search(
            clean, 0, match.start()
        ):
            continue
        add("sex", match.start(), match.end(), operator="=", value=value)
    for regex, kind in (
        (_PREGNANCY, "pregnancy"),
        (_LACTATION, "lactation"),
        (_CHILDBEARING, "childbearing"),
    ):
        for match in regex.finditer(clean):
            add(kind, match.start(), match.end())


def _merge_dose_ranges(items: list[ExtractedItem]) -> None:
    """ "≥7.5 mg/day, and ≤30 mg/day" of one drug → one dose item `between` 7.5 and 30."""
    index = 0
    while index + 1 < len(items):
        low, high = items[index], items[index + 1]
        if (
            low.kind == high.kind == "dose"
            and low.operator in (">=", ">")
            and high.operator in ("<=", "<")
            and low.ucum == high.ucum
            and isinstance(low.value, float)
            and isinstance(high.value, float)
            and low.value < high.value
        ):
            items[index] = low.model_copy(
                update={
                    "operator": "between",
                    "value2": high.value,
                    "span": (low.span[0], high.span[1]),
                    "text": low.text + " … " + high.text,
                }
            )
            del items[index + 1]
        index += 1


class _Adder(Protocol):
    """Type of the `add` callback (kind, start, end, **fields)."""

    def __call__(self, kind: str, start: int, end: int, **fields: object) -> None: ...


def extract_document(text: str) -> list[ExtractedItem]:
    """Items of a whole criteria section, with inclusion/exclusion from its headings.

    Criteria come from `split_criteria`; a heading line that carries numbers ("Type II diabetic
    patients, 18 years and older, were included if:") is read too.
    """
    layout = parse_criteria(text)
    items: list[ExtractedItem] = []
    for criterion in layout.criteria:
        items.extend(
            extract_items(
                text[criterion.start : criterion.end],
                exclude=criterion.exclude,
                offset=criterion.start,
            )
        )
    for heading in layout.headings:
        if any(ch.isdigit() for ch in text[heading.start : heading.end]):
            found = extract_items(
                text[heading.start : heading.end], exclude=heading.exclude, offset=heading.start
            )
            items.extend(found)
    items.sort(key=lambda item: item.span)
    return items
