"""Split a free-text eligibility-criteria section into individual criteria.

Handles the layouts met in ClinicalTrials.gov records:

* API v2 Markdown ("Inclusion Criteria:\\n\\n* item\\n  * sub"), including Markdown escapes
  (``\\>``, ``5\\.``) that the registry adds when a paragraph merely *looks* like a list item;
* legacy XML textblocks (hard-wrapped lines with leading spaces and "-  " bullets);
* numbered lists ("  1. Age ≥ 18;"), lettered and Roman sub-lists, free paragraphs.

Nesting is decided from three clues, strongest first: a number that continues an open list
("5." after "4.") is a sibling in that list; a list that restarts ("1." after "4.") opens a
sub-list under the item before it; otherwise indentation decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fhirconv.eligibility.numbers import roman_to_int

__all__ = ["Criterion", "Heading", "parse_criteria", "split_criteria", "unescape_markdown"]


@dataclass(frozen=True)
class Criterion:
    """One criterion: its text (nested sub-items indented on their own lines), section and place."""

    text: str
    exclude: bool
    label: str | None
    start: int
    end: int


@dataclass(frozen=True)
class Heading:
    """A section heading ("Exclusion Criteria:") or a lead-in that opens a section."""

    text: str
    exclude: bool
    start: int
    end: int


@dataclass(frozen=True)
class CriteriaLayout:
    """Everything `parse_criteria` found: the criteria and the headings between them."""

    criteria: list[Criterion]
    headings: list[Heading]


# Characters CommonMark allows to be backslash-escaped (ASCII punctuation).
_MARKDOWN_ESCAPE = re.compile(r"\\([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")


def unescape_markdown(text: str) -> str:
    """Undo Markdown backslash escapes: ``\\>`` → ``>``, ``5\\.`` → ``5.``."""
    return _MARKDOWN_ESCAPE.sub(r"\1", text)


# --- headings -------------------------------------------------------------------------------

# "Key inclusion criteria:", "Resident Exclusion Criteria:", "Non-inclusion criteria",
# "Inclusion Criteria-- Participants must be:", "Percutaneous biopsy exclusion criteria (...)",
# and the bare words "INCLUSION" / "[Exclusion]" / "Exclusion Criteria." on a line of their own.
_STRONG_HEADING = re.compile(
    r"^(?P<pre>[A-Za-z0-9/,'’()\- ]{0,60}?\s)?"
    r"(?P<kind>non[- ]?inclusion|inclusion|exclusion|eligibility|ineligibility|selection)"
    r"(?:\s+criteri(?:a|on)(?P<rest>\s*(?:$|[:.\-–—(]|for\b).*)|s?\s*:?\s*$)",
    re.IGNORECASE,
)
# Words that make "… inclusion criteria" a sentence about the criteria, not a heading
# ("patients who do not fulfil the inclusion criteria").
_NOT_A_HEADING_WORDS = frozenset(
    {
        "the", "any", "all", "not", "no", "meet", "meeting", "meets", "fulfil", "fulfill",
        "fulfilling", "these", "above", "with", "do", "does", "who", "which", "other", "more",
        "specific", "following",
    }
)  # fmt: skip
_MAX_HEADING_PREFIX_WORDS = 4
# Lead-in sentences that open a section: "Subjects will be excluded if:",
# "We excluded patients with the following criteria:", "patients will be eligible if".
_WEAK_EXCLUDE = re.compile(
    r"\b(?:exclu\w*|ineligible|not\s+(?:be\s+)?eligible|non[- ]?inclusion|"
    r"none\s+of\s+the\s+following|not\s+(?:be\s+)?(?:enrolled|included))\b",
    re.IGNORECASE,
)
_WEAK_INCLUDE = re.compile(r"\b(?:inclu\w*|eligible|enrolled)\b", re.IGNORECASE)
_WEAK_HEADING_SHAPE = re.compile(r"(?::|\bif|\bcriteria)\s*$", re.IGNORECASE)

_MARKDOWN_DECORATION = re.compile(r"^[#>\s]*|[*_]{1,3}")


@dataclass(frozen=True)
class _HeadingMatch:
    exclude: bool
    remainder_offset: int | None  # where text after "Inclusion Criteria:" starts, if any


def _heading(content: str, bulleted: bool) -> _HeadingMatch | None:
    """Is this line (bullet marker removed) a section heading? Which section does it open?"""
    plain = _MARKDOWN_DECORATION.sub("", content).strip()
    if not plain:
        return None
    strong = _STRONG_HEADING.match(plain.strip("[](){}<> "))
    if strong and (len(plain) <= 120 or (strong.group("rest") or "").lstrip()[:1] in (":", ".")):
        prefix_words = (strong.group("pre") or "").lower().split()
        if len(prefix_words) > (2 if bulleted else _MAX_HEADING_PREFIX_WORDS) or any(
            word.strip(",()") in _NOT_A_HEADING_WORDS for word in prefix_words
        ):
            return None
        kind = strong.group("kind").lower()
        exclude = kind.startswith(("excl", "non", "inel"))
        rest = strong.group("rest") or ""
        if bulleted and rest.strip() not in ("", ":"):
            return None
        return _HeadingMatch(exclude, _heading_remainder(content, rest))
    if bulleted or len(plain) > 100 or not _WEAK_HEADING_SHAPE.search(plain):
        return None
    if _WEAK_EXCLUDE.search(plain):
        return _HeadingMatch(True, None)
    if _WEAK_INCLUDE.search(plain):
        return _HeadingMatch(False, None)
    return None


def _heading_remainder(content: str, rest: str) -> int | None:
    """Where criterion text written on the heading line starts ("Exclusion Criteria: None")."""
    separator = rest.lstrip()[:1]
    if separator not in (":", ".", "-", "–", "—"):
        colon = rest.find(":")  # "Inclusion Criteria for Patients: adults …"
        if colon < 0:
            return None
        separator = ":"
    rest_start = content.rfind(rest) if rest else -1
    cut = content.find(separator, max(rest_start, 0))
    if cut < 0:
        return None
    tail = content[cut + 1 :]
    lead = len(tail) - len(tail.lstrip(" *_\t-–—:."))
    return cut + 1 + lead if tail.strip(" *_\t-–—:.") else None


# --- bullets --------------------------------------------------------------------------------

_BULLET = re.compile(
    r"""^(?P<marker>
        \(?(?P<num>\d{1,3})(?:\\?[.)]|\s?\\?\.(?=\s))(?!\d)     # 1.  1)  (1)  5\.
      | \((?P<paren>[A-Za-z]{1,4})\)                            # (a)  (iv)
      | (?P<letter>[A-Za-z]|[ivxIVX]{1,4})\\?[.)]                # a.  b)  iv.  II.
      | (?P<symbol>\\?[*\-•●○◦▪■□·–+➢➤►✓])                    # *  -  •  \-
    )(?P<gap>[ \t]+|$)""",
    re.VERBOSE,
)


def _roman(token: str) -> int | None:
    """Value of a Roman numeral list label (i … xxxix) written canonically, else None: "iiii"
    or "vx" are not list labels."""
    value = roman_to_int(token)
    return value if value is not None and _to_roman(value) == token.lower() else None


def _to_roman(number: int) -> str:
    out = ""
    for value, numeral in ((10, "x"), (9, "ix"), (5, "v"), (4, "iv"), (1, "i")):
        while number >= value:
            out += numeral
            number -= value
    return out


@dataclass
class _Node:
    """A criterion under construction (a list item, or a free paragraph)."""

    label: str | None
    kind: str  # "num", "alpha", "ALPHA", "roman", "ROMAN", "sym:<char>" or "text"
    ordinal: int
    indent: int
    start: int
    end: int
    exclude: bool
    paragraphs: list[list[str]] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)

    def add_line(self, content: str, end: int, new_paragraph: bool) -> None:
        if new_paragraph or not self.paragraphs:
            self.paragraphs.append([content])
        else:
            self.paragraphs[-1].append(content)
        self.end = max(self.end, end)

    def render(self, depth: int = 0) -> str:
        own = "\n".join(" ".join(lines) for lines in self.paragraphs)
        parts = [own] if own else []
        pad = "  " * (depth + 1)
        for child in self.children:
            mark = "" if child.label is None else _display_label(child) + " "
            parts.append(pad + mark + child.render(depth + 1).replace("\n", "\n" + pad))
        return "\n".join(parts)


def _display_label(node: _Node) -> str:
    if node.kind.startswith("sym:") or node.label is None:
        return node.label or ""
    return node.label + "."


@dataclass(frozen=True)
class _Bullet:
    label: str
    kind: str
    ordinal: int
    content_offset: int  # index in the stripped line where the criterion text starts


def _classify_bullet(stripped: str, stack: list[_Node]) -> _Bullet | None:
    match = _BULLET.match(stripped)
    if not match:
        return None
    content_offset = match.end()
    if match.group("num"):
        return _Bullet(match.group("num"), "num", int(match.group("num")), content_offset)
    if match.group("symbol"):
        symbol = match.group("symbol").lstrip("\\")
        if match.group("gap") == "" and symbol in "-+":
            return None
        return _Bullet(symbol, "sym:" + symbol, 0, content_offset)
    token = match.group("paren") or match.group("letter") or ""
    if match.group("gap") == "":
        return None
    upper = token.isupper()
    roman_value = _roman(token)
    alpha_kind = "ALPHA" if upper else "alpha"
    roman_kind = "ROMAN" if upper else "roman"
    if len(token) == 1:
        alpha_value = ord(token.lower()) - ord("a") + 1
        continues_alpha = any(n.kind == alpha_kind and n.ordinal + 1 == alpha_value for n in stack)
        continues_roman = roman_value is not None and any(
            n.kind == roman_kind and n.ordinal + 1 == roman_value for n in stack
        )
        if (
            roman_value is not None
            and not continues_alpha
            and (continues_roman or roman_value == 1)
        ):
            return _Bullet(token, roman_kind, roman_value, content_offset)
        return _Bullet(token, alpha_kind, alpha_value, content_offset)
    if roman_value is None:
        return None
    return _Bullet(token, roman_kind, roman_value, content_offset)


def _place_bullet(stack: list[_Node], node: _Node) -> _Node | None:
    """Put `node` into the open list structure; return its parent (None: top level)."""
    ordered = not node.kind.startswith("sym:")
    siblings = [
        depth
        for depth, open_node in enumerate(stack)
        if open_node.kind == node.kind
        and (
            open_node.ordinal + 1 == node.ordinal
            if ordered
            # Bullets carry no number: only the indentation tells a sub-list from a sibling.
            else abs(open_node.indent - node.indent) <= 1
        )
    ]
    if siblings:
        # The closest indentation wins; on a tie the deepest list (the most recent one).
        depth = min(siblings, key=lambda d: (abs(stack[d].indent - node.indent), -d))
        del stack[depth:]
    elif stack:
        deepest = stack[-1]
        if (
            node.indent > deepest.indent
            or deepest.kind != node.kind
            or (ordered and node.ordinal <= 1)
        ):
            # A deeper bullet, a new kind of marker, or a restart: a sub-list of `deepest`,
            # unless the bullet is less indented than `deepest` (then climb out first).
            while stack and stack[-1].indent > node.indent + 1:
                stack.pop()
            if (
                stack
                and stack[-1].kind == node.kind
                and stack[-1].indent >= node.indent
                and not (ordered and node.ordinal <= 1)
            ):
                stack.pop()
        else:
            # Same kind, same level, numbering jumps ("1, 2, 4"): keep it a sibling.
            stack.pop()
    parent = stack[-1] if stack else None
    stack.append(node)
    return parent


# --- the parser -----------------------------------------------------------------------------

_LINE = re.compile(r"[^\n]*\n?")
_SENTENCE_END = re.compile(r"[.;:!?]\s*$")
_HARD_WRAP_WIDTH = 60


# A heading run into the previous criterion on the same line ("… relationship Exclusion
# Criteria:- Primary …"); only the capitalised form, so "meets the inclusion criteria" is not one.
_INLINE_HEADING = re.compile(
    r"(?<=\S)[ \t]+(?=(?:Key |Main )?(?:Inclusion|Exclusion|INCLUSION|EXCLUSION|Non-[Ii]nclusion)"
    r" (?:Criteria|CRITERIA)\b[ \t]*(?::|$))"
)
_HEADING_CONTINUATION = re.compile(r"^\W*criteria\W*$", re.IGNORECASE)


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, line without its line ending) for every line of `text`.

    A line holding a run-in section heading is cut in two before the heading.
    """
    out: list[tuple[int, str]] = []
    for match in _LINE.finditer(text):
        if match.start() == len(text) and match.group() == "":
            break
        line = match.group().rstrip("\r\n")
        cut = 0
        for inline in _INLINE_HEADING.finditer(line):
            out.append((match.start() + cut, line[cut : inline.start()]))
            cut = inline.end()
        out.append((match.start() + cut, line[cut:]))
    return out


def parse_criteria(text: str) -> CriteriaLayout:
    """Criteria and headings of an eligibility-criteria section."""
    top_level: list[_Node] = []
    headings: list[Heading] = []
    stack: list[_Node] = []
    free: _Node | None = None  # the free paragraph being built (criteria without bullets)
    exclude = False
    previous_blank = True
    previous_raw_length = 0
    current: _Node | None = None  # node the previous non-blank line went into

    lines = _lines(text)
    for number, (line_start, raw) in enumerate(lines):
        stripped = raw.lstrip(" \t\u00a0")
        content_end = line_start + len(raw.rstrip())
        if not stripped.strip():
            previous_blank = True
            continue
        indent = len(raw) - len(stripped)
        line_offset = line_start + indent
        if _HEADING_CONTINUATION.match(stripped) and headings and current is None:
            continue  # "Exclusion\n\nCriteria:" split over two lines
        bullet = _classify_bullet(stripped, stack)
        heading_text = stripped[bullet.content_offset :] if bullet else stripped
        heading = _heading(heading_text, bulleted=bullet is not None)
        if heading is not None:
            exclude = heading.exclude
            stack.clear()
            free = current = None
            headings.append(Heading(stripped.strip(), exclude, line_offset, content_end))
            previous_blank, previous_raw_length = True, 0
            if heading.remainder_offset is not None:
                remainder_start = line_offset + (bullet.content_offset if bullet else 0)
                remainder_start += heading.remainder_offset
                remainder = text[remainder_start:content_end].strip()
                if remainder:
                    free = _Node(None, "text", 0, indent, remainder_start, content_end, exclude)
                    free.add_line(unescape_markdown(remainder), content_end, True)
                    top_level.append(free)
                    current = free
                    previous_blank = False
            continue

        if bullet is not None:
            body = stripped[bullet.content_offset :].strip()
            node = _Node(
                bullet.label, bullet.kind, bullet.ordinal, indent, line_offset, content_end, exclude
            )
            if body:
                node.add_line(unescape_markdown(body), content_end, True)
            parent = _place_bullet(stack, node)
            if parent is None:
                top_level.append(node)
            else:
                parent.children.append(node)
                for ancestor in stack[:-1]:
                    ancestor.end = max(ancestor.end, content_end)
            free = None
            current = node
        else:
            body = unescape_markdown(stripped.strip())
            if previous_blank and stack and _is_subheading(body, lines[number + 1 :]):
                stack.clear()  # "At visit 2" over a list numbered from 1: a new list, not sub-items
            target = _continuation_target(stack, indent, previous_blank)
            if target is not None:
                del stack[stack.index(target) + 1 :]
                target.add_line(body, content_end, new_paragraph=previous_blank)
                for ancestor in stack:
                    ancestor.end = max(ancestor.end, content_end)
                current = target
            elif (
                free is not None
                and current is free
                and not previous_blank
                and _is_wrapped(previous_raw_length, free, body)
            ):
                free.add_line(body, content_end, new_paragraph=False)
            else:
                stack.clear()
                free = _Node(None, "text", 0, indent, line_offset, content_end, exclude)
                free.add_line(body, content_end, True)
                top_level.append(free)
                current = free
        previous_blank = False
        previous_raw_length = len(raw.rstrip())

    criteria = [
        Criterion(node.render(), node.exclude, node.label, node.start, node.end)
        for node in top_level
    ]
    return CriteriaLayout([c for c in criteria if c.text.strip()], headings)


_FIRST_BULLET = re.compile(r"^\s*(?:1[.)]|[aA][.)]|\(1\)|\(a\))\s+\S")
_SUBHEADING_SHAPE = re.compile(r"^[^.;,]{1,40}:?$")


def _is_subheading(body: str, following: list[tuple[int, str]]) -> bool:
    """A short line without a sentence ("At Visit 2", "Part B:") standing between two lists,
    the next of which starts again from 1 or a."""
    if not _SUBHEADING_SHAPE.match(body) or len(body.split()) > 5:
        return False
    after = next((line for _, line in following if line.strip()), "")
    return bool(_FIRST_BULLET.match(after))


def _continuation_target(stack: list[_Node], indent: int, after_blank: bool) -> _Node | None:
    """The open list item a non-bullet line continues, if any."""
    if not stack:
        return None
    if not after_blank:
        return stack[-1]  # a wrapped line, or a Markdown "lazy" continuation
    # A paragraph after a blank line belongs to the deepest item it is not less indented than
    # (XML lead-ins at the heading's column close the list; Markdown paragraphs at column 0
    # after a column-0 list stay with the last item, as CT.gov renders them).
    for node in reversed(stack):
        if node.indent <= indent:
            return node
    return None


def _is_wrapped(previous_raw_length: int, paragraph: _Node, body: str) -> bool:
    """Is this line the hard-wrapped continuation of the free paragraph before it?"""
    if body[:1].islower():
        return True
    last_line = paragraph.paragraphs[-1][-1] if paragraph.paragraphs else ""
    return previous_raw_length >= _HARD_WRAP_WIDTH and not _SENTENCE_END.search(last_line)


def split_criteria(text: str) -> list[Criterion]:
    """Individual criteria of an eligibility-criteria section, in document order.

    Text before any heading counts as inclusion. Sub-items and continuation paragraphs stay
    inside their parent criterion; `start`/`end` are offsets into `text` (Python `str` indices).
    """
    return parse_criteria(text).criteria
