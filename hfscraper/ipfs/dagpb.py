"""dag-pb and UnixFS protobuf, encoded and decoded by hand (two tiny, fixed messages).

dag-pb (`PBNode`) as kubo writes it: every link (field 2) before the data (field 1); each link writes its Hash
(field 1), its Name (field 2, even when empty) and its Tsize (field 3)::

    PBLink { bytes Hash = 1; string Name = 2; uint64 Tsize = 3; }
    PBNode { repeated PBLink Links = 2; bytes Data = 1; }

UnixFS `Data` (proto2, so `blocksizes` is not packed), fields written in field-number order::

    Data { Type Type = 1; bytes Data = 2; uint64 filesize = 3; repeated uint64 blocksizes = 4;
           uint64 hashType = 5; uint64 fanout = 6; uint32 mode = 7; UnixTime mtime = 8; }

Decoding follows the dag-pb spec's strictness (no unknown fields, no duplicate Data, Hash required) but accepts
Links and Data in either order, and packed `blocksizes` as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from hfscraper.ipfs.multiformats import cid_from_bytes, decode_varint, encode_varint, varint_len

# UnixFS node types.
T_RAW = 0
T_DIRECTORY = 1
T_FILE = 2
T_METADATA = 3
T_SYMLINK = 4
T_HAMT_SHARD = 5

TYPE_NAMES = {
    T_RAW: "raw",
    T_DIRECTORY: "directory",
    T_FILE: "file",
    T_METADATA: "metadata",
    T_SYMLINK: "symlink",
    T_HAMT_SHARD: "hamt-sharded-directory",
}

#: The Data field of a plain directory node: `0a 02 08 01` in the PBNode.
DIRECTORY_DATA = b"\x08\x01"


class PBLink(NamedTuple):
    """One dag-pb link: the child's binary CID, its name (bytes) and its cumulative size."""

    cid: bytes
    name: bytes
    tsize: int


@dataclass
class PBNode:
    """A decoded dag-pb node: its links in block order and its Data field (None when absent)."""

    links: list[PBLink] = field(default_factory=list)
    data: bytes | None = None


@dataclass
class UnixFSData:
    """A decoded UnixFS Data message (fields that are absent are None, `blocksizes` empty)."""

    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)
    hash_type: int | None = None
    fanout: int | None = None
    mode: int | None = None
    mtime: bytes | None = None


# --- encoding ------------------------------------------------------------------------------------------------------


def _bytes_field(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + encode_varint(len(value)) + value


def encode_link(cid: bytes, name: bytes, tsize: int) -> bytes:
    """One serialized `PBNode.Links` entry (tag, length and the PBLink message)."""
    body = b"\x0a" + encode_varint(len(cid)) + cid + b"\x12" + encode_varint(len(name)) + name
    body += b"\x18" + encode_varint(tsize)
    return b"\x12" + encode_varint(len(body)) + body


def link_serialized_size(name_len: int, cid_len: int, tsize: int) -> int:
    """`len(encode_link(...))` without building it (IPIP-499's `block` estimation counts this)."""
    body = 1 + varint_len(cid_len) + cid_len + 1 + varint_len(name_len) + name_len + 1 + varint_len(tsize)
    return 1 + varint_len(body) + body


def encode_node(links: list[PBLink] | tuple[PBLink, ...], data: bytes | None) -> bytes:
    """A dag-pb block: the links in the order given (callers sort directory links), then Data."""
    parts = [encode_link(cid, name, tsize) for cid, name, tsize in links]
    if data is not None:
        parts.append(_bytes_field(0x0A, data))
    return b"".join(parts)


def encode_unixfs(
    type_: int,
    *,
    data: bytes | None = None,
    filesize: int | None = None,
    blocksizes: list[int] | tuple[int, ...] = (),
    hash_type: int | None = None,
    fanout: int | None = None,
) -> bytes:
    """A UnixFS Data message, fields in field-number order as kubo's protobuf library writes them."""
    out = bytearray(b"\x08")
    out += encode_varint(type_)
    if data is not None:
        out += _bytes_field(0x12, data)
    if filesize is not None:
        out += b"\x18" + encode_varint(filesize)
    for size in blocksizes:
        out += b"\x20" + encode_varint(size)
    if hash_type is not None:
        out += b"\x28" + encode_varint(hash_type)
    if fanout is not None:
        out += b"\x30" + encode_varint(fanout)
    return bytes(out)


def file_leaf_wrapper(size: int) -> tuple[bytes, bytes]:
    """(prefix, suffix) such that `prefix + chunk + suffix` is the dag-pb leaf kubo's CIDv0 import makes of a
    *size*-byte chunk: `PBNode{Data: UnixFS{Type: File, Data: chunk, filesize: size}}`.

    Hashing the three parts in turn avoids copying the chunk. An empty chunk has no Data field:

    >>> b"".join(file_leaf_wrapper(0)).hex()
    '0a0408021800'
    """
    inner_head = b"\x08\x02\x12" + encode_varint(size) if size else b"\x08\x02"
    suffix = b"\x18" + encode_varint(size)
    inner_len = len(inner_head) + size + len(suffix)
    return b"\x0a" + encode_varint(inner_len) + inner_head, suffix


# --- decoding ------------------------------------------------------------------------------------------------------


def _read_key(buf: bytes, pos: int) -> tuple[int, int, int]:
    key, pos = decode_varint(buf, pos)
    return key >> 3, key & 7, pos


def _read_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = decode_varint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ValueError("truncated length-delimited field")
    return bytes(buf[pos:end]), end


def decode_link(buf: bytes) -> PBLink:
    """Decode one PBLink message; ValueError when it is malformed or its Hash is missing or not a CID."""
    cid: bytes | None = None
    name = b""
    tsize = 0
    pos = 0
    while pos < len(buf):
        number, wire, pos = _read_key(buf, pos)
        if number == 1 and wire == 2 and cid is None:
            cid, pos = _read_bytes(buf, pos)
        elif number == 2 and wire == 2:
            name, pos = _read_bytes(buf, pos)
        elif number == 3 and wire == 0:
            tsize, pos = decode_varint(buf, pos)
        else:
            raise ValueError(f"unexpected field {number} (wire type {wire}) in a dag-pb link")
    if cid is None:
        raise ValueError("dag-pb link without a Hash")
    cid_from_bytes(cid)  # a ValueError unless it is one whole CID
    return PBLink(cid, name, tsize)


def decode_node(block: bytes | memoryview) -> PBNode:
    """Decode a dag-pb block; ValueError when it is not valid dag-pb."""
    buf = bytes(block)
    node = PBNode()
    pos = 0
    while pos < len(buf):
        number, wire, pos = _read_key(buf, pos)
        if wire != 2 or number not in (1, 2):
            raise ValueError(f"unexpected field {number} (wire type {wire}) in a dag-pb node")
        value, pos = _read_bytes(buf, pos)
        if number == 2:
            node.links.append(decode_link(value))
        elif node.data is not None:
            raise ValueError("dag-pb node with two Data fields")
        else:
            node.data = value
    return node


def decode_unixfs(data: bytes) -> UnixFSData:
    """Decode a UnixFS Data message; ValueError when it is malformed or has no Type."""
    type_: int | None = None
    out = UnixFSData(type=-1)
    pos = 0
    while pos < len(data):
        number, wire, pos = _read_key(data, pos)
        if wire == 0:
            value, pos = decode_varint(data, pos)
            if number == 1:
                type_ = value
            elif number == 3:
                out.filesize = value
            elif number == 4:
                out.blocksizes.append(value)
            elif number == 5:
                out.hash_type = value
            elif number == 6:
                out.fanout = value
            elif number == 7:
                out.mode = value
            else:
                raise ValueError(f"unexpected varint field {number} in UnixFS data")
        elif wire == 2:
            raw, pos = _read_bytes(data, pos)
            if number == 2:
                out.data = raw
            elif number == 4:  # packed blocksizes
                inner = 0
                while inner < len(raw):
                    value, inner = decode_varint(raw, inner)
                    out.blocksizes.append(value)
            elif number == 8:
                out.mtime = raw
            else:
                raise ValueError(f"unexpected bytes field {number} in UnixFS data")
        else:
            raise ValueError(f"unexpected wire type {wire} in UnixFS data")
    if type_ is None:
        raise ValueError("UnixFS data without a Type")
    out.type = type_
    return out
