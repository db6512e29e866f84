"""Output places: the folder a command writes into, created before any work, or one line saying why not.

    output_dir(Path("figs"), "--out")               # figs/ exists and takes files afterwards
    output_file(Path("a/attn.json"), "--bertviz")   # a/ exists; a/attn.json is not a folder
    with writing_into(Path("figs"), "--out") as out:  # output_dir, undone if the block fails
        draw(..., out)

A folder that cannot be made (a parent that is a file, a read-only or virtual file system, no
permission) is a ConfigError naming the flag, the path and the operating system's reason, e.g.
`--out /proc/x: cannot create the folder (No such file or directory)`. Permission bits alone say
little (root passes every check), so the folder is created and a scratch file written and removed
in it: what fails here would have failed later, after the work. `writing_into` also takes back
the folders it made, when the work in its block fails and leaves them empty, so that a command
stopped by bad input leaves nothing behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from attnlab.errors import ConfigError


def _named(path: Path, flag: str | None) -> str:
    """How a message names the place: "--out figs", or "figs" when no flag named it."""
    return f"{flag} {path}" if flag else str(path)


def _ensure(folder: Path, named: str, which: str) -> None:
    """Create folder (and parents) and write a scratch file in it.

    Raises:
        ConfigError: `{named}: cannot create {which} (reason)`, or `cannot write into`; which names
            the folder after `named`: "the folder", or "its folder F" for the folder of a file.
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{named}: cannot create {which} (a file of that name exists)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{named}: cannot create {which} ({err.strerror or err})") from None
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".attnlab-"):
            pass
    except OSError as err:
        raise ConfigError(f"{named}: cannot write into {which} ({err.strerror or err})") from None


def output_dir(path: str | Path, flag: str | None = None) -> Path:
    """Create the folder path (and its parents) if absent, and check that files can be written in it.

    Args:
        path: the folder.
        flag: the command-line flag or field that named it (e.g. "--out"), for the message.
    Returns:
        path, as a Path.
    Raises:
        ConfigError: path is a file, or the folder cannot be created or written into.
    """
    path = Path(path)
    _ensure(path, _named(path, flag), "the folder")
    return path


def output_file(path: str | Path, flag: str | None = None) -> Path:
    """Create the folder of the file path (as `output_dir` does); path itself must not be a folder.

    Returns:
        path, as a Path.
    Raises:
        ConfigError: path is a folder, or its folder cannot be created or written into.
    """
    path = Path(path)
    named = _named(path, flag)
    if path.is_dir():
        raise ConfigError(f"{named}: is a folder, expected a file name")
    _ensure(path.parent, named, f"its folder {path.parent}")
    return path


def _absent(folder: Path) -> list[Path]:
    """folder and those of its parents that do not exist yet, deepest first."""
    return [p for p in (folder, *folder.parents) if not p.exists()]


@contextmanager
def writing_into(path: str | Path, flag: str | None = None, *, file: bool = False) -> Iterator[Path]:
    """`output_dir(path, flag)` (or `output_file` when file) around a block of work that writes there.

    If the block raises, the folders made here are removed again, those that are still empty, so a
    command that fails on bad input leaves nothing behind.

    Yields:
        path, as a Path.
    """
    path = Path(path)
    made = _absent(path.parent if file else path)
    (output_file if file else output_dir)(path, flag)
    try:
        yield path
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty: the block wrote something worth keeping
                break
        raise
