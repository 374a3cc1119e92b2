"""What a mapper needs besides the `Trial`: a place to report codes the tables lack.

Mappers stay pure (no I/O); warnings are collected here and handed to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirconv.mapping import systems
from fhirconv.model import Code, Trial
from fhirconv.tables import load_json

Json = dict[str, Any]


@dataclass(frozen=True)
class Warning_:
    """Something kept but not fully mapped: where it was, and what happened."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class MappingContext:
    trial: Trial
    warnings: list[Warning_] = field(default_factory=list)

    def warn(self, field_name: str | None, message: str) -> None:
        self.warnings.append(Warning_(self.trial.source.describe(field_name), message))

    def lookup(self, table: str, code: Code | None, key: str | None = None) -> Json | None:
        """The target of `code` (or of `key`, a derived key such as "PHASE1+PHASE2") in `table`.

        A code the table lacks is reported (never dropped silently) and `None` returned, so the
        caller keeps the registry's own code and text instead.
        """
        if code is None:
            return None
        lookup_key = key or code.code
        entry: Json | None = load_json(table)["map"].get(lookup_key)
        if entry is None and lookup_key not in load_json(table).get("unmappable", []):
            self.warn(code.field, f"code {lookup_key!r} is not in mappings/{table}; kept as text")
        return entry

    def lookup_fallback(self, table: str) -> str:
        fallback: str = load_json(table)["fallback"]["code"]
        return fallback

    def ctgov_coding(self, enum: str, code: Code) -> Json:
        """A coding in the fhirconv CT.gov code system for API v2 enum `enum`."""
        tables = load_json("ctgov-enums.json")
        display = tables["enums"].get(enum, {}).get(code.code)
        if display is None:
            self.warn(code.field, f"value {code.code!r} is not a known CT.gov {enum} value")
        coding: Json = {"system": systems.ctgov_enum(enum), "code": code.code}
        if display:
            coding["display"] = display
        return coding

    def ctgov_concept(self, enum: str, code: Code | None) -> Json | None:
        if code is None:
            return None
        coding = self.ctgov_coding(enum, code)
        return {"coding": [coding], "text": coding.get("display", code.code)}
