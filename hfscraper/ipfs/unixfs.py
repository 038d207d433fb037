"""UnixFS import exactly as kubo's `ipfs add` builds it, and export (a DAG walk back to files).

Files (boxo `importer/balanced`): fixed-size chunks; a file of one chunk is that leaf; otherwise leaves are grouped
`max_links` at a time under dag-pb File nodes (`filesize`, one `blocksizes` entry per child, links with an empty
Name and the child's cumulative Tsize), those again `max_links` at a time, up to one root. Built bottom-up while
streaming, which gives the same tree as kubo's top-down balanced builder: all leaves at the same depth, a lone
trailing chunk still gets its own parents. Leaves are raw blocks (CIDv1 profiles) or, for CIDv0, dag-pb nodes
`UnixFS{Type: File, Data: chunk, filesize}` hashed as prefix, chunk, suffix without concatenating them.

Folders (`ipfs add -r --hidden`): hidden files are included, empty folders kept, links sorted bytewise by name
(names are the file system's bytes). A symlink inside a folder becomes a UnixFS Symlink node holding its target,
as kubo stores it (it is not followed); the PATH given at the top is followed if it is a symlink. Sockets, FIFOs
and devices are refused (`UnsupportedFileError`). A folder whose size estimate (`Profile.hamt_estimation`)
exceeds `Profile.hamt_threshold` becomes a HAMT shard (UnixFS HAMTShard, murmur3-x64-64, fanout 256), exactly
as boxo's `io/directory.go` and `hamt/hamt.go` build it.

Memory stays bounded: one chunk buffer per file (reused), at most `max_links` pending links per tree level, and
per folder only its entries' names and CIDs. Blocks go to a `BlockSink` as soon as they are made (or nowhere when
only the CID is wanted).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import stat
import threading
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple, Protocol

import mmh3

from hfscraper.ipfs.dagpb import (
    DIRECTORY_DATA,
    T_DIRECTORY,
    T_FILE,
    T_HAMT_SHARD,
    T_RAW,
    T_SYMLINK,
    PBLink,
    decode_node,
    decode_unixfs,
    encode_node,
    encode_unixfs,
    file_leaf_wrapper,
)
from hfscraper.ipfs.multiformats import DAG_PB, MURMUR3_X64_64, RAW, cid_from_bytes, cid_to_str, parse_cid
from hfscraper.ipfs.profiles import Profile

_CID_V1_RAW_PREFIX = b"\x01\x55\x12\x20"
_CID_V1_PB_PREFIX = b"\x01\x70\x12\x20"
_CID_V0_PREFIX = b"\x12\x20"


class UnsupportedFileError(ValueError):
    """A path that UnixFS cannot hold: a socket, a FIFO or a device (kubo refuses them too)."""


class Link(NamedTuple):
    """A child as its parent links to it: binary CID and cumulative size (Tsize: its blocks' total bytes)."""

    cid: bytes
    tsize: int

    def __str__(self) -> str:
        return cid_to_str(self.cid)


class BlockSink(Protocol):
    """Receives every block an import makes, as soon as it is made (children before their parents).

    `parts` concatenated are the block; they are valid only during the call (buffers are reused).
    """

    def put(self, cid: bytes, *parts: bytes | memoryview) -> None: ...


def hamt_hash(name: bytes) -> int:
    """The 64-bit HAMT hash of a directory entry name, as boxo computes it: the first 64 bits (h1) of
    MurmurHash3 x64 128 with seed 0, read most significant bit first.

    >>> f"{hamt_hash(b'The quick brown fox jumps over the lazy dog'):016x}"
    'e34bbc7bbc071b6c'
    """
    return mmh3.hash64(name, seed=0, x64arch=True, signed=False)[0]


@functools.cache
def hamt_prefixes(fanout: int) -> tuple[bytes, ...]:
    """The upper-case hex bucket prefixes of a HAMT shard's link names (made once: an importer per entity)."""
    width = len(f"{fanout - 1:X}")
    return tuple(f"{i:0{width}X}".encode("ascii") for i in range(fanout))


def normalize_exclude(exclude: Iterable[str | os.PathLike[str]]) -> frozenset[str]:
    """Relative paths as the walk compares them: `/`-separated, no `./`, no trailing slash."""
    if isinstance(exclude, frozenset):
        return _normalize_frozen(exclude)  # the pipelines' constant sets: normalized once, not per entity
    return _normalize(exclude)


@functools.cache
def _normalize_frozen(exclude: frozenset[str | os.PathLike[str]]) -> frozenset[str]:
    return _normalize(exclude)


def _normalize(exclude: Iterable[str | os.PathLike[str]]) -> frozenset[str]:
    out = set()
    for item in exclude:
        text = PurePosixPath(os.fspath(item).replace(os.sep, "/")).as_posix()
        if text not in ("", "."):
            out.add(text)
    return frozenset(out)


_thread_buffers = threading.local()


def _chunk_buffer(size: int) -> bytearray:
    """This thread's chunk buffer of *size* bytes, made once: importers are made per file, and a fresh megabyte
    (zeroed, and with a fixed mmap threshold mapped and unmapped each time) per small file costs more than
    hashing it. Blocks handed to a sink are views of it, valid until the next chunk is read (as before)."""
    buffers: dict[int, bytearray] | None = getattr(_thread_buffers, "by_size", None)
    if buffers is None:
        buffers = _thread_buffers.by_size = {}
    buffer = buffers.get(size)
    if buffer is None:
        buffer = buffers[size] = bytearray(size)
    return buffer


def _read_full(reader: BinaryIO, view: memoryview) -> int:
    """Fill *view* from *reader* (short reads retried); the byte count, less than len(view) only at EOF."""
    got = reader.readinto(view)  # type: ignore[attr-defined]
    if got is None:
        raise BlockingIOError("non-blocking reader returned no data")
    total = got
    size = len(view)
    while total < size and got:
        got = reader.readinto(view[total:])  # type: ignore[attr-defined]
        if got is None:
            raise BlockingIOError("non-blocking reader returned no data")
        total += got
    return total


class Importer:
    """Builds UnixFS DAGs for one profile and hands every block to *sink* (None: compute CIDs only).

    One importer can add many files and folders; it is not thread-safe (use one per thread).
    """

    def __init__(
        self,
        profile: Profile,
        sink: BlockSink | None = None,
        *,
        exclude: Iterable[str | os.PathLike[str]] = frozenset(),
        skip_inodes: Iterable[tuple[int, int]] = (),
        skip_prefix: str | None = None,
    ) -> None:
        self.profile = profile
        #: Entries whose name starts with this are left out at any depth (leftovers of interrupted writes).
        self.skip_prefix = skip_prefix
        self.sink = sink
        self.exclude = normalize_exclude(exclude)
        #: (st_dev, st_ino) of files the folder walk leaves out (a CAR being written inside the folder).
        self.skip_inodes = frozenset(skip_inodes)
        self._skip_ino = frozenset(ino for _, ino in self.skip_inodes)
        #: When a list: `(relative path, link, size)` of every regular file a folder walk adds, in walk order.
        self.files: list[tuple[str, Link, int]] | None = None
        #: Bytes of the last file `add_reader` imported.
        self.last_size = 0
        self._full_wrapper = file_leaf_wrapper(profile.chunk_size)
        self._pb_prefix = _CID_V0_PREFIX if profile.cid_version == 0 else _CID_V1_PB_PREFIX
        self._hamt_bits = profile.hamt_fanout.bit_length() - 1
        self._hamt_prefixes = hamt_prefixes(profile.hamt_fanout)

    # --- blocks ---------------------------------------------------------------------------------------------------

    def _pb_block(self, block: bytes) -> Link:
        """Hash a dag-pb block, hand it to the sink, and return its link (Tsize still without children)."""
        cid = self._pb_prefix + hashlib.sha256(block).digest()
        if self.sink is not None:
            self.sink.put(cid, block)
        return Link(cid, len(block))

    def _file_node(self, children: list[tuple[bytes, int, int]]) -> tuple[bytes, int, int]:
        """The File node over *children* (cid, tsize, filesize): (cid, tsize, filesize)."""
        sizes = [filesize for _, _, filesize in children]
        filesize = sum(sizes)
        data = encode_unixfs(T_FILE, filesize=filesize, blocksizes=sizes)
        block = encode_node([PBLink(cid, b"", tsize) for cid, tsize, _ in children], data)
        link = self._pb_block(block)
        return link.cid, link.tsize + sum(tsize for _, tsize, _ in children), filesize

    # --- files ----------------------------------------------------------------------------------------------------

    def add_reader(self, reader: BinaryIO) -> Link:
        """Import the bytes *reader* yields until EOF (it must offer `readinto`) as one file."""
        profile = self.profile
        size = profile.chunk_size
        width = profile.max_links
        view = memoryview(_chunk_buffer(size))
        raw = profile.raw_leaves
        sink = self.sink
        sha256 = hashlib.sha256
        leaf_prefix = _CID_V1_RAW_PREFIX if raw else self._pb_prefix
        full_prefix, full_suffix = self._full_wrapper
        full_wrapped = len(full_prefix) + size + len(full_suffix)
        # levels[i]: pending (cid, tsize, filesize) of depth i (0 = leaves), never `width` of them.
        levels: list[list[tuple[bytes, int, int]]] = [[]]
        leaves = 0
        total = 0
        while True:
            n = _read_full(reader, view)
            if n == 0 and leaves:
                break
            leaves += 1
            total += n
            chunk = view[:n] if n < size else view
            if raw:
                cid = leaf_prefix + sha256(chunk).digest()
                tsize = n
                if sink is not None:
                    sink.put(cid, chunk)
            else:
                if n == size:
                    prefix, suffix, tsize = full_prefix, full_suffix, full_wrapped
                else:
                    prefix, suffix = file_leaf_wrapper(n)
                    tsize = len(prefix) + n + len(suffix)
                h = sha256(prefix)
                h.update(chunk)
                h.update(suffix)
                cid = leaf_prefix + h.digest()
                if sink is not None:
                    sink.put(cid, prefix, chunk, suffix)
            leaf_level = levels[0]
            leaf_level.append((cid, tsize, n))
            if len(leaf_level) == width:
                self._push(levels, 0)
            if n < size:
                break
        self.last_size = total
        return self._finish_levels(levels)

    def _push(self, levels: list[list[tuple[bytes, int, int]]], depth: int) -> None:
        """Level *depth* is full: replace it by one File node on the level above (and so on upwards)."""
        width = self.profile.max_links
        while len(levels[depth]) == width:
            entry = self._file_node(levels[depth])
            levels[depth] = []
            depth += 1
            if depth == len(levels):
                levels.append([])
            levels[depth].append(entry)

    def _finish_levels(self, levels: list[list[tuple[bytes, int, int]]]) -> Link:
        """Close the pending levels bottom-up: every partial level gets a parent until one root is left."""
        depth = 0
        while True:
            top = max(i for i, level in enumerate(levels) if level)
            level = levels[depth]
            if depth == top:
                if len(level) == 1:
                    return Link(level[0][0], level[0][1])
                cid, tsize, _ = self._file_node(level)
                return Link(cid, tsize)
            if level:
                entry = self._file_node(level)
                levels[depth] = []
                levels[depth + 1].append(entry)
                self._push(levels, depth + 1)
            depth += 1

    def add_file(self, path: str | os.PathLike[str]) -> Link:
        """Import one regular file, streaming it."""
        with open(path, "rb", buffering=0) as reader:
            return self.add_reader(reader)

    def add_bytes(self, data: bytes | bytearray | memoryview) -> Link:
        """Import *data* as one file."""
        return self.add_reader(io.BytesIO(data))

    def add_symlink(self, target: bytes) -> Link:
        """A UnixFS Symlink node holding *target* (kubo stores symlinks this way, unresolved)."""
        return self._pb_block(encode_node([], encode_unixfs(T_SYMLINK, data=target)))

    # --- folders --------------------------------------------------------------------------------------------------

    def add_path(self, path: str | os.PathLike[str]) -> Link:
        """Import a file or a folder (followed if *path* itself is a symlink)."""
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            return self.add_directory(path)
        if stat.S_ISREG(mode):
            return self.add_file(path)
        raise UnsupportedFileError(f"{os.fspath(path)}: not a regular file or a folder")

    def add_directory(self, path: str | os.PathLike[str]) -> Link:
        """Import a folder recursively, leaving out `exclude` (relative paths) and `skip_inodes`."""
        if not os.path.isdir(path):
            raise NotADirectoryError(f"{os.fspath(path)}: not a folder")
        return self._walk(os.fspath(path), "")

    def _skipped(self, entry: os.DirEntry[str]) -> bool:
        if entry.inode() not in self._skip_ino:
            return False
        st = entry.stat(follow_symlinks=False)
        return (st.st_dev, st.st_ino) in self.skip_inodes

    def _walk(self, path: str, rel: str) -> Link:
        with os.scandir(path) as it:
            items = sorted(it, key=lambda e: os.fsencode(e.name))
        entries: list[tuple[bytes, Link]] = []
        for entry in items:
            relname = f"{rel}/{entry.name}" if rel else entry.name
            if relname in self.exclude or (self._skip_ino and self._skipped(entry)):
                continue
            if self.skip_prefix is not None and entry.name.startswith(self.skip_prefix):
                continue
            if entry.is_symlink():
                link = self.add_symlink(os.fsencode(os.readlink(entry.path)))
            elif entry.is_dir(follow_symlinks=False):
                link = self._walk(entry.path, relname)
            elif entry.is_file(follow_symlinks=False):
                link = self.add_file(entry.path)
                if self.files is not None:
                    self.files.append((relname, link, self.last_size))
            else:
                raise UnsupportedFileError(f"{entry.path}: not a regular file, folder or symlink")
            entries.append((os.fsencode(entry.name), link))
        return self.directory_node(entries)

    def directory_node(self, entries: list[tuple[bytes, Link]]) -> Link:
        """The folder holding *entries* (name bytes, link): a flat directory, or a HAMT past the threshold."""
        entries = sorted(entries, key=lambda item: item[0])
        links = [PBLink(link.cid, name, link.tsize) for name, link in entries]
        block = encode_node(links, DIRECTORY_DATA)
        if self._needs_hamt(entries, len(block)):
            return self._hamt(entries)
        link = self._pb_block(block)
        return Link(link.cid, link.tsize + sum(lk.tsize for lk in links))

    def _needs_hamt(self, entries: list[tuple[bytes, Link]], block_size: int) -> bool:
        profile = self.profile
        if profile.hamt_threshold == 0 or profile.hamt_estimation == "disabled":
            return False
        if profile.hamt_estimation == "block":
            estimate = block_size
        else:
            estimate = sum(len(name) + len(link.cid) for name, link in entries)
        if profile.hamt_inclusive:
            return estimate >= profile.hamt_threshold
        return estimate > profile.hamt_threshold

    # --- HAMT shards ----------------------------------------------------------------------------------------------

    def _hamt_index(self, hashed: int, depth: int) -> int:
        bits = self._hamt_bits
        shift = 64 - (depth + 1) * bits
        if shift < 0:
            raise ValueError("sharded directory too deep (two names with the same 64-bit hash)")
        return (hashed >> shift) & ((1 << bits) - 1)

    def _hamt(self, entries: list[tuple[bytes, Link]]) -> Link:
        root: dict[int, object] = {}
        for name, link in entries:
            self._hamt_insert(root, (name, link, hamt_hash(name)), 0)
        return self._hamt_node(root)

    def _hamt_insert(self, node: dict[int, object], value: tuple[bytes, Link, int], depth: int) -> None:
        while True:
            index = self._hamt_index(value[2], depth)
            current = node.get(index)
            if current is None:
                node[index] = value
                return
            depth += 1
            if isinstance(current, dict):
                node = current
                continue
            # Two names in one slot: a child shard takes both, one level (more hash bits) down.
            child: dict[int, object] = {}
            node[index] = child
            self._hamt_insert(child, current, depth)  # type: ignore[arg-type]
            node = child

    def _hamt_node(self, node: dict[int, object]) -> Link:
        links: list[PBLink] = []
        bitmap = 0
        for index in sorted(node):
            bitmap |= 1 << index
            child = node[index]
            prefix = self._hamt_prefixes[index]
            if isinstance(child, dict):
                shard = self._hamt_node(child)
                links.append(PBLink(shard.cid, prefix, shard.tsize))
            else:
                name, link, _ = child  # type: ignore[misc]
                links.append(PBLink(link.cid, prefix + name, link.tsize))
        # go-bitfield's Bytes(): the bitmap big-endian, leading zero bytes dropped.
        bitfield = bitmap.to_bytes((bitmap.bit_length() + 7) // 8, "big")
        data = encode_unixfs(T_HAMT_SHARD, data=bitfield, hash_type=MURMUR3_X64_64, fanout=self.profile.hamt_fanout)
        link = self._pb_block(encode_node(links, data))
        return Link(link.cid, link.tsize + sum(lk.tsize for lk in links))


# --- export: walking a DAG back to files ------------------------------------------------------------------------------

GetBlock = Callable[[bytes], bytes]


class DagError(ValueError):
    """A DAG that is not valid UnixFS (a missing block, sizes that disagree, a bad name, an unknown node type)."""


def _safe_name(name: bytes) -> str:
    if name in (b"", b".", b"..") or b"/" in name or b"\0" in name:
        raise DagError(f"unsafe directory entry name {name!r}")
    return os.fsdecode(name)


def _node(get_block: GetBlock, cid: bytes) -> tuple[int, object]:
    """(codec, raw bytes or (PBNode, UnixFSData)) of the block *cid*."""
    parsed = cid_from_bytes(cid)
    try:
        block = get_block(cid)
    except KeyError:
        raise DagError(f"block {cid_to_str(cid)} is missing") from None
    if parsed.codec == RAW:
        return RAW, block
    if parsed.codec != DAG_PB:
        raise DagError(f"block {cid_to_str(cid)} has codec 0x{parsed.codec:x}, not dag-pb or raw")
    try:
        node = decode_node(block)
        if node.data is None:
            raise ValueError("no Data field")
        return DAG_PB, (node, decode_unixfs(node.data))
    except ValueError as exc:
        raise DagError(f"block {cid_to_str(cid)} is not UnixFS: {exc}") from None


def _write_file_data(get_block: GetBlock, cid: bytes, out: BinaryIO) -> int:
    """Append the bytes of the file DAG *cid* to *out*, checking filesize and blocksizes; the byte count."""
    codec, value = _node(get_block, cid)
    if codec == RAW:
        out.write(value)  # type: ignore[arg-type]
        return len(value)  # type: ignore[arg-type]
    node, fs = value  # type: ignore[misc]
    if fs.type not in (T_FILE, T_RAW):
        raise DagError(f"{cid_to_str(cid)}: expected a file node, found type {fs.type}")
    if fs.blocksizes and len(fs.blocksizes) != len(node.links):
        raise DagError(f"{cid_to_str(cid)}: {len(node.links)} links but {len(fs.blocksizes)} blocksizes")
    written = 0
    if fs.data:
        out.write(fs.data)
        written += len(fs.data)
    for i, link in enumerate(node.links):
        got = _write_file_data(get_block, link.cid, out)
        if fs.blocksizes and got != fs.blocksizes[i]:
            raise DagError(f"{cid_to_str(cid)}: child {i} holds {got} bytes, blocksizes says {fs.blocksizes[i]}")
        written += got
    if fs.filesize is not None and written != fs.filesize:
        raise DagError(f"{cid_to_str(cid)}: {written} bytes, filesize says {fs.filesize}")
    return written


def _hamt_entries(get_block: GetBlock, node: object, fs: object, cid: bytes) -> Iterable[tuple[bytes, bytes]]:
    fanout = fs.fanout  # type: ignore[attr-defined]
    if not fanout or fanout & (fanout - 1):
        raise DagError(f"{cid_to_str(cid)}: HAMT shard with fanout {fanout}")
    width = len(f"{fanout - 1:X}")
    for link in node.links:  # type: ignore[attr-defined]
        if len(link.name) < width:
            raise DagError(f"{cid_to_str(cid)}: HAMT link name {link.name!r} is too short")
        if len(link.name) == width:
            codec, value = _node(get_block, link.cid)
            if codec != DAG_PB or value[1].type != T_HAMT_SHARD:  # type: ignore[index]
                raise DagError(f"{cid_to_str(link.cid)}: expected a HAMT shard")
            yield from _hamt_entries(get_block, value[0], value[1], link.cid)  # type: ignore[index]
        else:
            yield link.name[width:], link.cid


def export(root: bytes | str, get_block: GetBlock, dest: str | os.PathLike[str]) -> None:
    """Write the UnixFS DAG *root* to *dest* (a file, a folder, or a symlink), fetching blocks with *get_block*
    (binary CID -> block bytes, KeyError when missing). *dest* must not exist yet. Raises DagError.
    """
    cid = parse_cid(root).bytes if isinstance(root, str) else root
    dest = Path(dest)
    codec, value = _node(get_block, cid)
    if codec == RAW:
        with open(dest, "xb") as out:
            out.write(value)  # type: ignore[arg-type]
        return
    node, fs = value  # type: ignore[misc]
    if fs.type in (T_FILE, T_RAW):
        with open(dest, "xb") as out:
            _write_file_data(get_block, cid, out)
    elif fs.type == T_SYMLINK:
        os.symlink(fs.data or b"", dest)
    elif fs.type in (T_DIRECTORY, T_HAMT_SHARD):
        dest.mkdir()
        if fs.type == T_DIRECTORY:
            children: Iterable[tuple[bytes, bytes]] = ((link.name, link.cid) for link in node.links)
        else:
            children = _hamt_entries(get_block, node, fs, cid)
        seen = set()
        for name, child in children:
            safe = _safe_name(name)
            if safe in seen:
                raise DagError(f"{cid_to_str(cid)}: two entries named {name!r}")
            seen.add(safe)
            export(child, get_block, dest / safe)
    else:
        raise DagError(f"{cid_to_str(cid)}: unsupported UnixFS node type {fs.type}")
