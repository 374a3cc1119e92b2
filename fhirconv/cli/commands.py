"""Imports every command module so each registers its command on the shared `app`."""

from __future__ import annotations

from fhirconv.cli import (
    convert,  # noqa: F401
    coverage,  # noqa: F401
    fetch,  # noqa: F401
    match,  # noqa: F401
    push,  # noqa: F401
    validate,  # noqa: F401
)
