"""CAR packs: many entities' DAGs in one CARv1 with several roots, so that a CAR does not cost an inode per entity.

A pack is a plain CARv1 (`ipfs dag import` imports every block and pins every root of its header). The IPFS stage
writes one per group of entities it addresses together (`HFSCRAPER_IPFS_CAR_LAYOUT=pack`; the default,
`filestore`, writes no CAR: `hfscraper.ipfs.filestore`), at
`<car dir>/packs/<type>/<UTC time>-<pid>-<n>.car`:

    varint(len(H)) H                       H = {"roots": [root 1, ..., root n], "version": 1}
    blocks of entity 1, its root last      exactly the sections of entity 1's standalone CAR
    blocks of entity 2, its root last
    ...

Each entity's blocks are one contiguous byte range, written as `hfscraper.ipfs.write_car` writes them for the
entity alone (same order, each distinct block once *within the entity*): its standalone CAR is
`header_section(root) + pack[offset : offset + length]`, byte for byte (`standalone_car`). The state records the
pack, offset and length per entity (`pins.car_path`, `car_offset`, `car_length`).

The header's root count is fixed before the blocks are written (its bytes are reserved, then written in place):
when an entity of the group fails half-way, its bytes are cut off again and its header slot repeats another root
(`ipfs dag import` pins a root once however often it is named).

With `HFSCRAPER_IPFS_CAR_LAYOUT=entity`, the same writer makes one single-root CAR per entity at
`<car dir>/<type>/<folder>.car`, the layout of earlier versions.

Blocking functions; run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from hfscraper.fsutil import fsync_directory
from hfscraper.ipfs.car import CarReadError, CarWriter, _open_payload, header_section, iter_sections
from hfscraper.ipfs.multiformats import parse_cid

#: Folder under the CAR folder that holds the packs (one subfolder per entity type, as the entity tree).
PACK_FOLDER: Final = "packs"
#: Copy buffer for standalone CARs and compaction.
COPY_SIZE: Final = 1024 * 1024

_counter = itertools.count()


@dataclass(frozen=True)
class Placed:
    """Where one entity's blocks went: its root and the byte range of its sections in the pack."""

    root: bytes
    offset: int
    length: int


def pack_name(folder: str) -> str:
    """A new pack's path relative to the CAR folder: `packs/<folder>/<UTC time>-<pid>-<n>.car`, unique per
    process and call (the pid lets a later run tell a dead writer's pack from a live one's)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return f"{PACK_FOLDER}/{folder}/{stamp}-{os.getpid()}-{next(_counter)}.car"


def pack_pid(name: str) -> int | None:
    """The pid of the process that wrote the pack *name* (None for another kind of CAR)."""
    parts = Path(name).name.split("-")
    if not name.startswith(f"{PACK_FOLDER}/") or len(parts) != 3 or not parts[1].isdigit():
        return None
    return int(parts[1])


class PackWriter:
    """Write up to *slots* entities' blocks into the scratch file *scratch*, then rename it to its place.

    `begin()` before an entity, `sink` receives its blocks, then `commit(root)` or `rollback()`. `finish(target)`
    writes the header and moves the file to *target*; `abort()` removes it. Not thread-safe.
    """

    def __init__(self, scratch: Path, slots: int, cid_len: int, *, fsync: bool = False) -> None:
        if slots < 1:
            raise ValueError("a pack needs at least one slot")
        self.scratch = scratch
        self.slots = slots
        self.fsync = fsync
        self.reserved = len(header_section(*([b"\0" * cid_len] * slots)))
        self.placed: list[Placed] = []
        fd = os.open(scratch, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        self.out: BinaryIO = os.fdopen(fd, "w+b", buffering=1024 * 1024)
        self.out.write(b"\0" * self.reserved)
        self.sink = CarWriter(self.out)
        self._start: int | None = None

    def begin(self) -> None:
        if len(self.placed) >= self.slots:
            raise ValueError(f"the pack has {self.slots} slots, all used")
        self._start = self.out.tell()
        self.sink.seen = set()  # each entity's range must hold all its blocks: no sharing across entities

    def commit(self, root: bytes) -> Placed:
        assert self._start is not None
        end = self.out.tell()
        placed = Placed(root, self._start, end - self._start)
        self.placed.append(placed)
        self._start = None
        return placed

    def rollback(self) -> None:
        """Cut off what the current entity wrote."""
        if self._start is None:
            return
        self.out.flush()
        self.out.truncate(self._start)
        self.out.seek(self._start)
        self._start = None

    def finish(self, target: Path) -> int:
        """Write the header (every committed root; unused slots repeat the first), move the pack to *target*
        (its folder is created); the pack's size. At least one entity must be committed."""
        if not self.placed:
            raise ValueError("an empty pack is not written")
        roots = [p.root for p in self.placed]
        roots += [roots[0]] * (self.slots - len(roots))
        header = header_section(*roots)
        if len(header) != self.reserved:  # roots of another length than the profile's (cannot happen)
            raise AssertionError(f"pack header is {len(header)} bytes, {self.reserved} were reserved")
        self.out.seek(0, os.SEEK_END)
        size = self.out.tell()
        self.out.seek(0)
        self.out.write(header)
        self.out.flush()
        if self.fsync:
            os.fsync(self.out.fileno())
        self.out.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.scratch, target)
        if self.fsync:
            fsync_directory(target.parent)
        return size

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.out.close()
        with contextlib.suppress(OSError):
            os.unlink(self.scratch)


def pack_roots(path: Path) -> list[str]:
    """The root CIDs in the header of the CAR at *path* (its blocks are not read). OSError, CarReadError."""
    name = os.fspath(path)
    with open(name, "rb") as f:
        roots, _ = _open_payload(f, name)
    return [str(root) for root in roots]


def read_range(path: Path, offset: int, length: int, root: str) -> Iterator[bytes]:
    """The sections of one entity in a pack, as raw bytes in chunks, after checking every block's hash and that
    the range ends with *root*'s block (CarReadError otherwise; OSError when unreadable)."""
    name = os.fspath(path)
    want = parse_cid(root).bytes
    with open(name, "rb") as f:
        roots, _ = _open_payload(f, name)
        if not any(r.bytes == want for r in roots):
            raise CarReadError(f"{root} is not a root of the pack", path=name)
        f.seek(offset)
        last = None
        for cid, _, _ in iter_sections(f, name, offset + length):
            last = cid
        if f.tell() != offset + length:
            raise CarReadError(f"the range of {root} ends inside a section", path=name, offset=f.tell())
        if last is None or last.bytes != want:
            raise CarReadError(f"the blocks of {root} are not at the recorded place", path=name, offset=offset)
        f.seek(offset)
        left = length
        while left:
            chunk = f.read(min(COPY_SIZE, left))
            if not chunk:
                raise CarReadError("truncated", path=name, offset=f.tell())
            left -= len(chunk)
            yield chunk


def check_range(path: Path, offset: int, length: int, root: str) -> None:
    """Raise CarReadError (or OSError) unless the pack at *path* holds *root* with its blocks at the range."""
    for _ in read_range(path, offset, length, root):
        pass


def standalone_car(path: Path, offset: int, length: int, root: str, out: BinaryIO) -> int:
    """Write the entity's own single-root CAR (the bytes `write_car` gives its folder) to *out*; bytes written."""
    chunks = read_range(path, offset, length, root)
    first = next(chunks, b"")  # verifies the whole range before the first byte is written
    header = header_section(parse_cid(root).bytes)
    out.write(header)
    out.write(first)
    written = len(header) + len(first)
    for chunk in chunks:
        out.write(chunk)
        written += len(chunk)
    return written


def pack_entities(path: Path) -> dict[str, bytes]:
    """Each root of a pack with its entity's own single-root CAR, found without the state: an entity's range ends
    with its root's block. Two packs (or layouts) hold the same entities exactly when these agree, whatever the
    grouping, names and order of the packs. CarReadError, OSError."""
    name = os.fspath(path)
    cars: dict[str, bytes] = {}
    with open(name, "rb") as f:
        roots, _ = _open_payload(f, name)
        wanted = {root.bytes for root in roots}
        start = f.tell()
        for cid, block_offset, block in iter_sections(f, name, None):
            if cid.bytes in wanted:
                end = block_offset + len(block)
                f.seek(start)
                cars[str(cid)] = header_section(cid.bytes) + f.read(end - start)
                f.seek(end)
                start = end
    return cars
