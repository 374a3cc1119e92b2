"""Partial dates as registries write them, for every reader: ISO ("2023", "2023-02",
"2023-02-24"), "February 24, 2023" (with "Sept." or "3rd" too), "24 February 2023" and
"February 2023", each kept at the precision written."""

from __future__ import annotations

import datetime
import re

__all__ = ["DateProblem", "parse_partial_date"]

_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        1,
    )
    for name in names
}
_ISO = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_MONTH_DAY_YEAR = re.compile(r"([A-Za-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})")
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})\s+([A-Za-z]+)\.?,?\s+(\d{4})")
_MONTH_YEAR = re.compile(r"([A-Za-z]+)\.?,?\s+(\d{4})")


class DateProblem(ValueError):
    """Text that is not a date, or a date that cannot exist; the message quotes the text."""


def parse_partial_date(text: str) -> str:
    """'August 2015' → '2015-08', 'August 15, 2015' → '2015-08-15', '2015' → '2015'.

    Raises `DateProblem` for text that is not a date or a date that cannot exist.
    """
    value = " ".join(text.split())
    year: str
    month: int | None = None
    day: int | None = None
    if match := _ISO.fullmatch(value):
        year = match.group(1)
        month = int(match.group(2)) if match.group(2) else None
        day = int(match.group(3)) if match.group(3) else None
    elif match := _MONTH_DAY_YEAR.fullmatch(value):
        month, day, year = _month(match.group(1), text), int(match.group(2)), match.group(3)
    elif match := _DAY_MONTH_YEAR.fullmatch(value):
        day, month, year = int(match.group(1)), _month(match.group(2), text), match.group(3)
    elif match := _MONTH_YEAR.fullmatch(value):
        month, year = _month(match.group(1), text), match.group(2)
    else:
        raise DateProblem(f"unreadable date {text!r}")
    try:
        datetime.date(int(year), month or 1, day or 1)
    except ValueError as error:
        raise DateProblem(f"impossible date {text!r} ({error})") from error
    if month is None:
        return year
    if day is None:
        return f"{year}-{month:02d}"
    return f"{year}-{month:02d}-{day:02d}"


def _month(word: str, text: str) -> int:
    number = _MONTHS.get(word.casefold())
    if number is None:
        raise DateProblem(f"unknown month {word!r} in {text!r}")
    return number
