"""CARv1: write a UnixFS DAG as one archive in a single streaming pass, read one back with every block verified.

Layout (ipld specs `transport/car/carv1`): `varint(len(H)) H`, then sections `varint(len(CID) + len(block)) CID
block`. H is the dag-cbor map `{"roots": [CID], "version": 1}` (keys in dag-cbor's length-first order, each CID as
tag 42 over `00 || binary CID`); for one CIDv1 root it is 58 bytes after its length varint, the same bytes as
`@ipld/car` writes.

Writing: the root CID is known only at the end, but its length is fixed by the profile (34 bytes for CIDv0, 36 for
any sha2-256 CIDv1), so the writer reserves the header, streams the blocks (leaves first, each block once), then
writes the header in place and renames the temporary file over the target. `ipfs dag import` and `ipfs-car` take
blocks in any order.

Reading: CARv1, and CARv2 (its inner CARv1 payload). Every block's hash is checked against its CID; any damage is
a `CarReadError` with the byte offset.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.ipfs.multiformats import (
    CID,
    cid_from_bytes,
    cid_to_str,
    decode_cid,
    decode_varint,
    encode_varint,
)

#: CARv2 starts with this 11-byte pragma (a CARv1-style header `{"version": 2}`).
CARV2_PRAGMA = bytes.fromhex("0aa16776657273696f6e02")

#: Sections (CID + block) larger than this are refused when reading; kubo's own limit for a block is 2 MiB.
MAX_SECTION_SIZE = 8 * 1024 * 1024
#: Headers larger than this are refused.
MAX_HEADER_SIZE = 1024 * 1024

_counter = itertools.count()


class CarReadError(ValueError):
    """A CAR that cannot be read: truncated, malformed, an unsupported version, or a block whose hash differs
    from its CID. `offset` is the byte offset where the problem was found (None when not about one place)."""

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{path + ': ' if path else ''}{message}{where}")
        self.path = path
        self.offset = offset


# --- the header (a fixed, tiny dag-cbor shape) ----------------------------------------------------------------------


def encode_header(roots: list[bytes]) -> bytes:
    """The dag-cbor CARv1 header `{"roots": [...], "version": 1}` for binary CIDs *roots* (no length prefix)."""
    if len(roots) > 0xFFFF:
        raise ValueError("at most 65535 roots")
    out = bytearray(b"\xa2\x65roots")
    if len(roots) < 24:
        out.append(0x80 | len(roots))
    elif len(roots) < 256:
        out += bytes((0x98, len(roots)))
    else:
        out += b"\x99" + len(roots).to_bytes(2, "big")
    for cid in roots:
        body = b"\x00" + cid
        out += b"\xd8\x2a"  # tag 42
        if len(body) < 24:
            out.append(0x40 | len(body))
        elif len(body) < 256:
            out += bytes((0x58, len(body)))
        else:
            raise ValueError("CID too long for this header writer")
        out += body
    out += b"\x67version\x01"
    return bytes(out)


class _Cbor:
    """A strict reader for the few dag-cbor items a CAR header uses (maps, arrays, strings, ints, tag 42)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _arg(self, info: int) -> int:
        if info < 24:
            return info
        size = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
        if size is None:
            raise ValueError("indefinite lengths are not dag-cbor")
        end = self.pos + size
        if end > len(self.data):
            raise ValueError("truncated header")
        value = int.from_bytes(self.data[self.pos : end], "big")
        self.pos = end
        return value

    def item(self, depth: int = 0) -> object:
        if depth > 8:
            raise ValueError("header nested too deeply")
        if self.pos >= len(self.data):
            raise ValueError("truncated header")
        head = self.data[self.pos]
        self.pos += 1
        major, info = head >> 5, head & 0x1F
        if major == 7:
            simple = {20: False, 21: True, 22: None}
            if info not in simple:
                raise ValueError("unsupported CBOR simple value or float in the header")
            return simple[info]
        arg = self._arg(info)
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            end = self.pos + arg
            if end > len(self.data):
                raise ValueError("truncated header")
            raw = self.data[self.pos : end]
            self.pos = end
            return raw if major == 2 else raw.decode("utf-8")
        if major == 4:
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            out = {}
            for _ in range(arg):
                key = self.item(depth + 1)
                if not isinstance(key, str) or key in out:
                    raise ValueError("header map keys must be distinct strings")
                out[key] = self.item(depth + 1)
            return out
        # major 6: a tag; only 42 (CID) is meaningful here
        value = self.item(depth + 1)
        if arg != 42:
            raise ValueError(f"unsupported CBOR tag {arg} in the header")
        if not isinstance(value, bytes) or not value.startswith(b"\x00"):
            raise ValueError("tag 42 must hold 00 + a binary CID")
        return cid_from_bytes(value[1:])


def decode_header(data: bytes) -> tuple[int, list[CID]]:
    """(version, roots) of a CAR header (dag-cbor, without its length prefix); ValueError when malformed."""
    reader = _Cbor(data)
    header = reader.item()
    if reader.pos != len(data):
        raise ValueError("trailing bytes after the header")
    if not isinstance(header, dict) or not isinstance(header.get("version"), int):
        raise ValueError("header is not a map with a version")
    version = header["version"]
    if version != 1:
        return version, []
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise ValueError("header roots must be a list of CIDs")
    return version, roots


# --- writing --------------------------------------------------------------------------------------------------------


class CarWriter:
    """A `BlockSink` that appends CAR sections to *out*, each distinct block once.

    The memory it keeps is one binary CID per distinct block (to skip repeated ones: identical chunks, identical
    files in a folder).
    """

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.seen: set[bytes] = set()
        self.blocks = 0
        self.bytes = 0

    def put(self, cid: bytes, *parts: bytes | memoryview) -> None:
        if cid in self.seen:
            return
        self.seen.add(cid)
        length = len(cid) + sum(len(p) for p in parts)
        write = self.out.write
        write(encode_varint(length) + cid)
        for part in parts:
            write(part)
        self.blocks += 1
        self.bytes += length


def header_section(root: bytes, *more: bytes) -> bytes:
    """The CAR's first bytes for *root* (and *more* roots): `varint(len(H)) H`."""
    header = encode_header([root, *more])
    return encode_varint(len(header)) + header


def temp_path_for(out_path: Path) -> Path:
    """A temporary file name beside *out_path*, unique per process, thread and call."""
    name = f"{TEMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{next(_counter)}.car.part"
    return out_path.with_name(name)


@contextlib.contextmanager
def atomic_output(out_path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[tuple[BinaryIO, Path]]:
    """Open a temporary file beside *out_path* (yielded with its path); on success it replaces *out_path*, on
    any error it is removed."""
    target = Path(out_path)
    tmp = temp_path_for(target)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w+b", buffering=1024 * 1024) as out:
            yield out, tmp
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(target.parent)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- reading --------------------------------------------------------------------------------------------------------


def _read_exact(f: BinaryIO, size: int, path: str, what: str) -> bytes:
    offset = f.tell()
    data = f.read(size)
    if len(data) != size:
        raise CarReadError(f"truncated {what} ({len(data)} of {size} bytes)", path=path, offset=offset)
    return data


def _read_varint(f: BinaryIO, path: str, *, eof_ok: bool) -> int | None:
    offset = f.tell()
    raw = bytearray()
    while True:
        byte = f.read(1)
        if not byte:
            if not raw and eof_ok:
                return None
            raise CarReadError("truncated varint", path=path, offset=offset)
        raw += byte
        if byte[0] < 0x80 or len(raw) >= 9:
            break
    try:
        value, _ = decode_varint(bytes(raw))
    except ValueError as exc:
        raise CarReadError(str(exc), path=path, offset=offset) from None
    return value


def _open_payload(f: BinaryIO, path: str) -> tuple[list[CID], int | None]:
    """Read the header(s) from the start of *f*: (roots, end offset of the CARv1 payload or None for EOF)."""
    start = f.tell()
    head = f.read(len(CARV2_PRAGMA))
    if head == CARV2_PRAGMA:
        fixed = _read_exact(f, 40, path, "CARv2 header")
        data_offset = int.from_bytes(fixed[16:24], "little")
        data_size = int.from_bytes(fixed[24:32], "little")
        f.seek(data_offset)
        roots, _ = _open_payload(f, path)
        return roots, data_offset + data_size
    f.seek(start)
    length = _read_varint(f, path, eof_ok=False)
    assert length is not None
    if length == 0 or length > MAX_HEADER_SIZE:
        raise CarReadError(f"header length {length} out of range", path=path, offset=start)
    header = _read_exact(f, length, path, "header")
    try:
        version, roots = decode_header(header)
    except ValueError as exc:
        raise CarReadError(f"not a CAR (bad header: {exc})", path=path, offset=start) from None
    if version != 1:
        raise CarReadError(f"unsupported CAR version {version}", path=path, offset=start)
    return roots, None


def iter_sections(f: BinaryIO, path: str, end: int | None) -> Iterator[tuple[CID, int, bytes]]:
    """(CID, offset of the block, block) of each section from the current position to *end* (None: EOF), every
    block's hash verified."""
    while end is None or f.tell() < end:
        offset = f.tell()
        length = _read_varint(f, path, eof_ok=end is None)
        if length is None:
            return
        if length == 0 or length > MAX_SECTION_SIZE:
            raise CarReadError(f"section length {length} out of range", path=path, offset=offset)
        section = _read_exact(f, length, path, "section")
        try:
            cid, cid_end = decode_cid(section)
        except ValueError as exc:
            raise CarReadError(f"bad CID: {exc}", path=path, offset=offset) from None
        block = section[cid_end:]
        try:
            ok = cid.verify(block)
        except ValueError as exc:
            raise CarReadError(f"block {cid}: {exc}", path=path, offset=offset) from None
        if not ok:
            raise CarReadError(f"block {cid} does not match its hash", path=path, offset=offset)
        yield cid, f.tell() - len(block), block


def read_car(path: str | os.PathLike[str]) -> tuple[list[str], Iterator[tuple[str, bytes]]]:
    """Open a CAR (v1, or v2's inner v1): its root CID strings, and an iterator of (CID string, block) in file order.

    The header is read at once (CarReadError when it is bad); the iterator reads the blocks lazily, checks each
    one's hash, and raises CarReadError at the first damaged, truncated or unverifiable section. It closes the
    file when exhausted (or garbage-collected).
    """
    name = os.fspath(path)
    f = open(name, "rb")  # noqa: SIM115 - handed over to the generator
    try:
        roots, end = _open_payload(f, name)
    except BaseException:
        f.close()
        raise

    def blocks() -> Iterator[tuple[str, bytes]]:
        with f:
            for cid, _, block in iter_sections(f, name, end):
                yield str(cid), block

    return [str(root) for root in roots], blocks()


class CarIndex:
    """Random access to the blocks of a CAR file (for a DAG walk): binary CID -> (offset, length), built by one
    verifying pass; blocks are read again on demand and checked again."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.offsets: dict[bytes, tuple[int, int]] = {}
        with open(self.path, "rb") as f:
            roots, end = _open_payload(f, self.path)
            self.roots = [root.bytes for root in roots]
            for cid, offset, block in iter_sections(f, self.path, end):
                self.offsets.setdefault(cid.bytes, (offset, len(block)))
        self._file: BinaryIO | None = None

    def __enter__(self) -> CarIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def get(self, cid: bytes) -> bytes:
        """The block *cid*; KeyError when the CAR does not hold it, CarReadError when it changed since."""
        offset, length = self.offsets[cid]
        if self._file is None:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)
        block = self._file.read(length)
        if len(block) != length or not cid_from_bytes(cid).verify(block):
            raise CarReadError(f"block {cid_to_str(cid)} changed since it was indexed", path=self.path, offset=offset)
        return block
