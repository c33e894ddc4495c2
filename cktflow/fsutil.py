"""Safe output: atomic file writes, and output folders cktflow may write into without asking.

Every file cktflow writes goes to a temporary file in the same folder first and is then renamed
over its target (`os.replace`, atomic on one file system), so a reader never sees half a file and
an interrupted run leaves the previous version in place.

An output folder is claimed before anything is written into it: a folder that does not exist or is
empty is created and marked with the file MARKER; a folder that holds the marker (an earlier
cktflow run: rerunning resumes or overwrites there) is used as it is; any other non-empty folder
is refused unless the caller forces it, so a user's files are never overwritten by surprise.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator

__all__ = ["MARKER", "OutputFolderError", "claim_output_dir", "atomic_path", "atomic_open", "atomic_write_text",
           "atomic_write_bytes"]

#: The file that says "cktflow made this folder"; its presence lets later runs write there.
MARKER = ".cktflow-output"


#: The process umask (read once): mkstemp makes 0600 files, the written ones get the usual mode.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class OutputFolderError(ValueError):
    """The output folder cannot be used: it is a file, or a non-empty folder cktflow did not make."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` when the block ends without
    an exception and is removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """`open(path, mode)` for writing, atomically (see `atomic_path`)."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes a whole file: mode must start with 'w', got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def claim_output_dir(path: str | Path, force: bool = False) -> Path:
    """Make `path` cktflow's output folder (see the module docstring); returns it as a Path.

    Raises OutputFolderError for a file, or for a non-empty folder without the marker unless
    `force` (then the folder is marked and used)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputFolderError(f"{path}: exists and is not a folder")
    if path.is_dir() and not (path / MARKER).is_file() and any(path.iterdir()) and not force:
        raise OutputFolderError(f"{path}: the folder is not empty and cktflow did not create it; choose another "
                                f"-o/--out, or pass --force to write into it (files of the same name are replaced)")
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).is_file():
        atomic_write_text(path / MARKER, "This folder holds cktflow output; cktflow writes here without asking.\n")
    return path
