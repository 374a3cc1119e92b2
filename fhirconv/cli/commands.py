"""Imports every command module so each registers its command on the shared `app`."""

from __future__ import annotations

from fhirconv.cli import push  # noqa: F401
from fhirconv.cli import convert  # noqa: F401
from fhirconv.cli import fetch  # noqa: F401
from fhirconv.cli import match  # noqa: F401
