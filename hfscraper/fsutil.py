"""Small file-system helpers: atomic writes that never leave a half-written file behind.

Blocking functions; call them from a worker thread inside a crawl. They keep system calls to a minimum
(the entity store calls them for every entity of the Hub).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from pathlib import Path

#: Prefix of the temporary files `write_atomic` creates next to its target. One is left behind only by a
#: crash between its creation and its rename; it is safe to delete.
TEMP_PREFIX = ".hfscraper-tmp-"

_counter = itertools.count()
_O_BINARY = getattr(os, "O_BINARY", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


def _temp_name(path: str | os.PathLike[str]) -> str:
    # Unique per process, thread and call; O_EXCL below refuses any leftover of the same name. Plain strings:
    # pathlib interns every name it parses, and these are all different.
    name = f"{TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{next(_counter)}.part"
    return os.path.join(os.path.dirname(path), name)


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename or a new file inside it) to disk, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY | _O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> None:
    """Replace *path* with *data* atomically: a temporary file in the same folder, then `os.replace`.

    Readers see the old content or the new one, never a mix. With *fsync*, the data and the rename are
    flushed to disk before returning. The file gets the usual permissions (0666 minus the umask).
    """
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_directory(os.path.dirname(path) or ".")


def same_content(path: str | os.PathLike[str], data: bytes) -> bool:
    """True when *path* is a regular file holding exactly *data*."""
    try:
        if os.stat(path).st_size != len(data):
            return False
        with open(path, "rb") as f:
            return f.read(len(data) + 1) == data
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False


def ensure_directory(path: Path, *, fsync: bool = False) -> bool:
    """Create *path* (and missing parents) if needed; True if it was created. With *fsync*, a new folder's
    entry in its parent is flushed to disk."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return ensure_directory(path, fsync=fsync)
    if fsync:
        fsync_directory(path.parent)
    return True


def write_file(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """`write_atomic`, creating the parent folder as needed."""
    ensure_directory(path.parent, fsync=fsync)
    write_atomic(path, data, fsync=fsync)


def write_if_changed(path: Path, data: bytes, *, fsync: bool = False) -> bool:
    """`write_file` unless *path* already holds these exact bytes; True if written."""
    if same_content(path, data):
        return False
    write_file(path, data, fsync=fsync)
    return True


def process_alive(pid: int) -> bool:
    """Whether a process with *pid* runs (one of another user counts): temp files named after a live writer's pid
    are never swept."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_temp_files(folder: Path, *, prefixes: tuple[str, ...] = (TEMP_PREFIX,), suffix: str = "") -> int:
    """Remove the temporary files that processes no longer running left in *folder*; how many were removed.

    A temporary file's name is one of *prefixes*, then its writer's pid and a `-`, and ends with *suffix*; files
    of this process or of a live one are kept (one may be about to be renamed), and so is anything else. The folder
    is read lazily (`os.scandir`): it may hold every entity's file, and memory must not grow with their number.
    """
    removed = 0
    mine = os.getpid()
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    with entries:
        for entry in entries:
            name = entry.name
            if not name.endswith(suffix):
                continue
            for prefix in prefixes:
                digits, dash, _ = name[len(prefix) :].partition("-") if name.startswith(prefix) else ("", "", "")
                if dash and digits.isdigit():
                    break
            else:
                continue
            pid = int(digits)
            if pid == mine or process_alive(pid) or not entry.is_file(follow_symlinks=False):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed += 1
    return removed
