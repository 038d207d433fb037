"""The seal of an entity folder: a digest of what was on disk when the crawl state recorded the entity complete.

Every file under the folder (path relative to it, size, modification time in nanoseconds) and the entity's CAR,
hashed together. The CAR is the one the state's `pins` row names (given the state): for a pack, what identifies
the entity's CAR in it (pack, root, byte range) and the pack file's size and time; a pin with no CAR file (the
`filestore` layout: the CAR is built from the folder on demand) adds nothing, the seal covers the folder only;
without a pin row (or without the state), the entity layout's `<car dir>/<type>/<folder>.car`. A later run that
would skip the entity as unchanged recomputes it first, at the cost of one `stat` per file: a file changed (even a
byte in place: its mtime moves), truncated, deleted or added, a deleted CAR or pack, a folder gone, and the entity
is processed again instead of being taken for complete. What it cannot see (a change that keeps size and mtime)
is `scrapy verify`'s job, which rehashes every byte.

Left out: leftovers of interrupted atomic writes (`TEMP_PREFIX...`, swept by the crawl) and `tombstone.json`
(written and removed by the crawl state itself).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.ipfs.pins import entity_pin
from hfscraper.state import TOMBSTONE_FILE, StateStore, entity_folder


def folder_seal(folder: Path, extra: Iterable[Path | tuple[Path, str]] = ()) -> str | None:
    """The seal of *folder* and the *extra* files (its CAR); None when the folder is not a real folder."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return None
    except OSError:
        return None
    digest = hashlib.blake2b(digest_size=16)
    entries: list[tuple[str, int, int, int]] = []
    _walk(os.fspath(folder), "", entries)
    for given in extra:
        path, what = given if isinstance(given, tuple) else (given, "")
        name = f"\0{path}{what}"
        try:
            info = os.lstat(path)
        except OSError:
            entries.append((name, -1, 0, 0))  # recorded as missing: a CAR that appears changes the seal too
            continue
        entries.append((name, info.st_size, info.st_mtime_ns, stat.S_IFMT(info.st_mode)))
    for name, size, mtime, kind in sorted(entries):
        digest.update(f"{name}\0{size}\0{mtime}\0{kind}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def entity_seal(
    output_dir: Path, car_dir: Path | None, repo_type: str, repo_id: str, store: StateStore | None = None
) -> str | None:
    """The seal (`hfscraper.seal`) of an entity's folder and CAR as they are on disk now (*store*: the state, on
    its own thread, whose `pins` row says where the entity's CAR is)."""
    folder = entity_folder(output_dir, repo_type, repo_id)
    if folder is None:
        return None
    if car_dir is None:
        return folder_seal(folder)
    pin = entity_pin(store.db, repo_type, repo_id) if store is not None else None
    if pin is None:
        return folder_seal(folder, (car_dir / OUTPUT_FOLDERS[repo_type] / f"{folder.name}.car",))
    if pin.car_path is None:  # its CAR is the folder's own bytes, built on demand
        return folder_seal(folder)
    if pin.car_offset is None:  # the entity's own CAR
        return folder_seal(folder, (car_dir / pin.car_path,))
    return folder_seal(folder, ((car_dir / pin.car_path, f"#{pin.root_cid}@{pin.car_offset}+{pin.car_length}"),))


def _walk(top: str, prefix: str, entries: list[tuple[str, int, int, int]]) -> None:
    try:
        scan = os.scandir(top)
    except OSError:
        return
    with scan:
        for entry in scan:
            name = entry.name
            if name.startswith(TEMP_PREFIX) or (not prefix and name == TOMBSTONE_FILE):
                continue
            relative = f"{prefix}{name}"
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                _walk(entry.path, f"{relative}/", entries)
            else:
                entries.append((relative, info.st_size, info.st_mtime_ns, stat.S_IFMT(info.st_mode)))
