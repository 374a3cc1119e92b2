"""`python -m fhirconv`: the command line."""

from fhirconv.cli import app

app(prog_name="fhirconv")
