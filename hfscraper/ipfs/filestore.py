"""The `filestore` CAR layout: no CAR bytes on disk; an entity's CAR is built from its folder when asked for.

A CAR of an entity folder is fully determined by the folder's bytes and the import profile, so a stored CAR is a
cache of the folder, not data (kubo's filestore, `ipfs add --nocopy`, keeps references to files instead of copies
for the same reason). With `HFSCRAPER_IPFS_CAR_LAYOUT=filestore` (the embedded backend's default) the IPFS stage
computes and records every CID and the pin (root CID, profile; `pins.car_path` NULL) and writes no CAR.
`folder_car` writes the entity's CAR on demand, byte for byte what the `entity` layout writes
(`varint(len(H)) H` with the single root, then the blocks as the stage's importer makes them, each distinct block
once, the root's last), after checking that the folder still hashes to the recorded root: a folder changed or
damaged since the crawl has no CAR of that root any more (`FolderChangedError`; a re-crawl of the entity restores
it).

Blocking; run it in a worker thread inside a crawl.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Final

from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.ipfs.car import CarWriter, header_section
from hfscraper.ipfs.multiformats import cid_to_str, parse_cid
from hfscraper.ipfs.profiles import Profile, get_profile
from hfscraper.ipfs.unixfs import Importer, UnsupportedFileError

#: The layout name (`HFSCRAPER_IPFS_CAR_LAYOUT`).
LAYOUT: Final = "filestore"
#: Top-level files of an entity folder left out of its DAG (as `hfscraper.pipelines.ipfs.NOT_ADDRESSED`, which
#: loads Scrapy: `ipfs_cid.txt` and `tombstone.json`).
NOT_ADDRESSED: Final = frozenset({"ipfs_cid.txt", "tombstone.json"})


class FolderChangedError(LookupError):
    """The entity folder no longer hashes to its recorded root (or is gone): its CAR cannot be built."""


def _import(folder: Path, profile: Profile, sink: CarWriter | None) -> str:
    try:
        real = stat.S_ISDIR(os.lstat(folder).st_mode)
    except FileNotFoundError:
        real = False
    if not real:
        raise FolderChangedError(f"{folder} is gone or not a folder")
    importer = Importer(profile, sink, exclude=NOT_ADDRESSED, skip_prefix=TEMP_PREFIX)
    try:
        return cid_to_str(importer.add_directory(folder).cid)
    except UnsupportedFileError as exc:  # a socket, FIFO or device: nothing the crawl stored
        raise FolderChangedError(f"{folder} holds what no crawl stores ({exc})") from None


def folder_root(folder: Path, profile: Profile | str) -> str:
    """The root CID of the entity folder's DAG (what the stage records), hashing only. OSError."""
    return _import(folder, get_profile(profile), None)


def folder_car(folder: Path, root: str, profile: Profile | str, out: BinaryIO, *, check_first: bool = True) -> None:
    """Write the CAR of the entity folder *folder*, whose recorded root is *root*, to *out*.

    With *check_first* the folder is hashed once before anything is written (for an output that cannot be taken
    back, such as a pipe). The root is checked again at the end in any case: FolderChangedError when the folder
    does not hash to *root* (*out* then holds a partial CAR: discard it). OSError when it cannot be read.
    """
    chosen = get_profile(profile)
    label = f"{folder} no longer hashes to its recorded root {root}"
    if check_first:
        got = _import(folder, chosen, None)
        if got != root:
            raise FolderChangedError(f"{label} (it gives {got})")
    out.write(header_section(parse_cid(root).bytes))
    got = _import(folder, chosen, CarWriter(out))
    if got != root:
        raise FolderChangedError(f"{label} (it gives {got})")
