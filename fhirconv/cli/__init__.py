"""The `fhirconv` command line: thin wrappers that parse options, call the library, print results.

Each command lives in its own module and registers itself on `app`; only this package prints.
Exit codes are `fhirconv.errors.ExitCode`: 0 all done, 1 some records or studies failed (the rest
were processed), 2 usage error, 3 an output could not be written (nothing partial is left),
141 stdout was closed by its reader (`fhirconv … | head`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperGroup

from fhirconv.errors import ExitCode


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())


class _Commands(TyperGroup):
    """The command group; a reader that closes stdout early (`fhirconv match … | head`) ends the
    run quietly with ExitCode.BROKEN_PIPE, not with a traceback or click's generic exit 1; an
    input nested too deeply for Python is a usage error, not a RecursionError traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            _quiet_stdout()
            raise typer.Exit(code=ExitCode.BROKEN_PIPE) from None
        except RecursionError:
            # The readers refuse deep nesting record by record; this is the last guard for any
            # input parsed elsewhere (push reads bundles itself).
            raise usage_error("an input is nested too deeply to read; refused") from None


app = typer.Typer(
    name="fhirconv",
    cls=_Commands,
    help="Convert clinical-trial registry records into validated FHIR R4 bundles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # tokens and patient data live in locals
)


def usage_error(message: str, hint: str | None = None) -> typer.Exit:
    """Print `error: message` (and a hint) and return the exit that ends a usage error; every
    command raises what this returns, so usage errors read and end alike."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    if hint:
        typer.echo(hint, err=True)
    return typer.Exit(code=ExitCode.USAGE)


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print `error: message` and return the exit for `code`."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=code)


# Importing the command modules registers their commands on `app`.
from fhirconv.cli import commands  # noqa: E402,F401
