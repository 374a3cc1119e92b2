"""Country names as ClinicalTrials.gov writes them → ISO 3166-1 alpha-2 codes.

pycountry (the ISO 3166 tables, kept up to date upstream) knows most names; `mappings/countries.csv`
lists the registry's spellings it does not. Exact look-ups only: a fuzzy match would turn
"Kosovo" into Serbia.
"""

from __future__ import annotations

from functools import cache

import pycountry

from fhirconv.tables import load_csv


@cache
def _overrides() -> dict[str, str]:
    return {row["name"].casefold(): row["alpha2"] for row in load_csv("countries.csv")}


@cache
def iso_alpha2(name: str) -> str | None:
    """The alpha-2 code of `name`, or None when the name has no ISO 3166-1 code."""
    key = name.strip().casefold()
    if key in _overrides():
        return _overrides()[key] or None
    try:
        country = pycountry.countries.lookup(name.strip())
    except LookupError:
        return None
    code: str = country.alpha_2
    return code
