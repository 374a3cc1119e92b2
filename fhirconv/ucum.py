"""UCUM code validity, through ucumvert's grammar of the UCUM specification (its atoms, prefixes,
annotations and operators as published in ucum-essence.xml)."""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["is_valid_ucum"]


@cache
def _parser() -> Any:
    from ucumvert import get_ucum_parser

    return get_ucum_parser()


@cache
def is_valid_ucum(code: str) -> bool:
    """True when `code` is a syntactically valid UCUM expression made of known UCUM units."""
    from lark.exceptions import LarkError

    if not code or code != code.strip():
        return False
    try:
        _parser().parse(code)
    except LarkError:
        return False
    return True
