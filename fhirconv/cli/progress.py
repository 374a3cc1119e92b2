"""The progress bar every long command shows (convert, coverage, fetch, push, match).

On a terminal it is a `rich` bar on stderr with count, rate and ETA (the ETA once the total is
known); under `-q`, or when stderr is not a terminal (a pipe, a log file, a test), it is off and
costs nothing. Lines printed while it runs go through `Bar.echo`, above the bar, so they never
tear it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rate(ProgressColumn):
    """`31.2 studies/s`: rich's own speed column counts bytes."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f} {self.unit}/s", style="cyan")


class Bar:
    """A running bar, or (disabled) a stand-in whose methods only print lines."""

    def __init__(self, progress: Progress | None, task: TaskID | None) -> None:
        self._progress = progress
        self._task = task

    @property
    def enabled(self) -> bool:
        return self._progress is not None

    def update(self, done: int, total: int | None = None) -> None:
        """`done` items so far, of `total` when known."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, total=total)

    def advance(self, count: int = 1) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)

    def set_total(self, total: int | None) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def echo(self, line: str, *, err: bool = True, color: str | None = None) -> None:
        """Print a line (above the bar while it runs)."""
        if self._progress is not None and err:
            style = color or ""
            self._progress.console.print(
                line, style=style, markup=False, highlight=False, soft_wrap=True
            )
        else:
            typer.secho(line, err=err, fg=color)


def wanted(quiet: bool) -> bool:
    """Whether to draw a bar: not under -q, and only on a terminal."""
    return not quiet and sys.stderr.isatty()


@contextmanager
def progress_bar(
    label: str, *, quiet: bool, total: int | None = None, unit: str = "studies"
) -> Iterator[Bar]:
    """A bar for `label` (e.g. "converting") counting `unit`; off under -q or off a terminal."""
    if not wanted(quiet):
        yield Bar(None, None)
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield Bar(progress, task)


__all__ = ["Bar", "progress_bar", "wanted"]
