"""Writing files so that a reader never sees half of one.

Every output file is first written to a hidden temporary file in the target's own directory (so
the final rename stays on one file system and is atomic) and renamed over the target only once
complete. Any `OSError` on the way (read-only directory, disk full, quota) removes the temporary
file and becomes an `OutputError` naming the target path and the operating system's reason.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from fhirconv.errors import OutputError


def reason(error: OSError) -> str:
    """The operating system's words for `error` ("No space left on device")."""
    return error.strerror or str(error) or type(error).__name__


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def make_directory(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(str(path), reason(error)) from None


class AtomicFile:
    """A text file written under a temporary name and renamed to `target` on `commit()`;
    `discard()` (or leaving the `with` block on an exception) removes it without a trace."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._handle: IO[str] | None = None
        self._temporary: Path | None = None
        make_directory(target.parent)
        try:
            descriptor, name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".part"
            )
            self._temporary = Path(name)
            self._handle = os.fdopen(descriptor, "w", encoding="utf-8", newline="\n")
            os.chmod(descriptor, 0o666 & ~_umask())  # mkstemp's 0600 would hide the output
        except OSError as error:
            self.discard()
            raise OutputError(str(target), reason(error)) from None

    def write(self, text: str) -> None:
        if self._handle is None:
            raise OutputError(str(self.target), "already closed")
        try:
            self._handle.write(text)
        except OSError as error:
            self.discard()
            raise OutputError(str(self.target), reason(error)) from None

    def commit(self) -> None:
        """Flush to disk and rename onto the target."""
        if self._handle is None or self._temporary is None:
            return
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None
            os.replace(self._temporary, self.target)
            self._temporary = None
        except OSError as error:
            self.discard()
            raise OutputError(str(self.target), reason(error)) from None

    def discard(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):  # the file is removed below anyway
                self._handle.close()
            self._handle = None
        if self._temporary is not None:
            with contextlib.suppress(OSError):
                self._temporary.unlink(missing_ok=True)
            self._temporary = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def write_text_atomically(target: Path, text: str) -> None:
    """`target` holds `text` completely, or (on an OutputError) is as it was before."""
    with AtomicFile(target) as handle:
        handle.write(text)


__all__ = ["AtomicFile", "make_directory", "reason", "write_text_atomically"]
