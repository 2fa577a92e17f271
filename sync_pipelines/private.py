"""Owner-only files: the warehouse holds customers' names, e-mails and phones, the instance holds run history, and
`emulator.env` holds API keys. Everything the product writes is created folders 0700, files 0600 (`PRIVATE_UMASK`,
set when a run starts and by `make demo` / `make ui`), whatever the umask it was started with; what an earlier
release (or another umask) left readable is tightened by the next run (`tighten`). Analysts get the read copy on
purpose, through a group (docs/operations.md, "Files and privacy").
"""

import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_UMASK = 0o077
OTHERS = 0o077  # the group's and everyone else's bits


def tighten(paths: Iterable[Path]) -> None:
    """Take the group's and others' bits off each path and what it holds (symbolic links are left alone). A folder
    found private already is not walked: what was created in it since was created private, or cannot be reached."""
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            continue
        _tighten_one(path, mode)
        if stat.S_ISDIR(mode):
            _tighten_folder(path)


def _tighten_one(path: Path, mode: int) -> None:
    if mode & OTHERS:
        os.chmod(path, stat.S_IMODE(mode) & ~OTHERS)


def _tighten_folder(folder: Path) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except FileNotFoundError:  # gone meanwhile (a run's scratch file)
                continue
            if stat.S_ISLNK(mode):
                continue
            _tighten_one(Path(entry.path), mode)
            if stat.S_ISDIR(mode) and mode & OTHERS:
                _tighten_folder(Path(entry.path))
