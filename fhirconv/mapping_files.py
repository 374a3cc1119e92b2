"""Find and load the data files in `mappings/` (code tables, display → enum tables).

In a wheel the folder is packaged as `fhirconv/_mappings` (see `[tool.hatch.build.targets.wheel.
force-include]`); in a source checkout (or an editable install) it is `mappings/` next to the
package. `mapping_path` looks in that order.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import fhirconv


def mapping_path(name: str) -> Traversable:
    """The mapping file `name` (e.g. "ctgov-xml-enums.json"), packaged or in the checkout."""
    packaged = files("fhirconv") / "_mappings" / name
    if packaged.is_file():
        return packaged
    checkout = Path(fhirconv.__file__).resolve().parents[1] / "mappings" / name
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(
        f"mapping file {name!r} is neither packaged (fhirconv/_mappings) nor in {checkout.parent}"
    )


@cache
def load_json(name: str) -> Any:
    """Parse the JSON mapping file `name` once per process."""
    return json.loads(mapping_path(name).read_text(encoding="utf-8"))
