"""Numbers as written in eligibility criteria: digits, decimal commas, words, Roman numerals."""

from __future__ import annotations

import re

__all__ = ["NUMBER_PATTERN", "parse_number", "roman_to_int"]

_WORD_VALUES: dict[str, float] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "twice": 2, "thrice": 3,
    "a": 1, "an": 1, "single": 1, "half": 0.5,
}  # fmt: skip
_NUMBER_WORDS = sorted((w for w in _WORD_VALUES if len(w) > 2), key=len, reverse=True)

# "50,000" (thousands), "1,5" (decimal comma), "2.5", ".5"; number words; never inside a word.
NUMBER_PATTERN = (
    r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)(?![\d])"
    r"|(?<![\w-])(?:" + "|".join(_NUMBER_WORDS) + r")(?:[ -](?:one|two|three|four|five|six|"
    r"seven|eight|nine))?(?![\w-])"
)
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def parse_number(written: str) -> float | None:
    """Value of a number as written; None when it is not one."""
    token = written.strip().lower()
    if not token:
        return None
    if token[0].isdigit() or token[0] == ".":
        if _THOUSANDS.match(token):
            return float(token.replace(",", ""))
        try:
            return float(token.replace(",", "."))
        except ValueError:
            return None
    parts = re.split(r"[ -]", token)
    if all(part in _WORD_VALUES for part in parts):
        return float(sum(_WORD_VALUES[part] for part in parts))
    return None


_ROMAN = {"i": 1, "v": 5, "x": 10}


def roman_to_int(written: str) -> int | None:
    """Value of a Roman numeral I … XXXIX (NYHA, ASA classes), None when not one."""
    token = written.lower()
    if not token or any(ch not in _ROMAN for ch in token):
        return None
    total = 0
    for index, ch in enumerate(token):
        value = _ROMAN[ch]
        following = _ROMAN[token[index + 1]] if index + 1 < len(token) else 0
        total += -value if value < following else value
    return total if 0 < total < 40 else None
