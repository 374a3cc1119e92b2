"""The `fhirconv` command line: thin wrappers that parse options, call the library, print results.

Each command lives in its own module and registers itself on `app`; only this package prints.
Exit codes: 0 all done, 1 some records or studies failed (the rest were processed), 2 usage error.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="fhirconv",
    help="Convert clinical-trial registry records into validated FHIR R4 bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # tokens and patient data live in locals
)

# Importing the command modules registers their commands on `app`.
from fhirconv.cli import commands  # noqa: E402,F401
