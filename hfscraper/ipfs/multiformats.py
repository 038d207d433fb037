"""Multiformats, the small part kubo's CIDs need: unsigned varints, multihash, CID v0/v1 and their string forms.

Binary forms (what dag-pb links and CAR sections hold):

- multihash: `varint(code) varint(len(digest)) digest`; sha2-256 is `12 20 <32 bytes>`.
- CIDv0: the bare sha2-256 multihash (34 bytes); always dag-pb.
- CIDv1: `varint(1) varint(codec) multihash`; `01 70 12 20 <digest>` is dag-pb, `01 55 12 20 <digest>` raw.

String forms, as kubo prints them: CIDv0 in base58btc (`Qm...`, no multibase prefix), CIDv1 in base32 lower case
without padding behind the multibase prefix `b` (`bafy...` dag-pb, `bafk...` raw). `parse_cid` also reads the
multibase prefixes `z` (base58btc), `f` (base16) and `B` (base32 upper case).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

#: Multicodec codes used here.
DAG_PB = 0x70
RAW = 0x55
DAG_CBOR = 0x71
IDENTITY = 0x00
SHA2_256 = 0x12
SHA2_512 = 0x13
MURMUR3_X64_64 = 0x22

CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw", DAG_CBOR: "dag-cbor"}

#: Hash functions a multihash can be verified with: code -> (name, digest length, hashlib constructor name).
HASHES: dict[int, tuple[str, int, str | None]] = {
    IDENTITY: ("identity", -1, None),
    SHA2_256: ("sha2-256", 32, "sha256"),
    SHA2_512: ("sha2-512", 64, "sha512"),
    0x16: ("sha3-256", 32, "sha3_256"),
    0x14: ("sha3-512", 64, "sha3_512"),
    0xB220: ("blake2b-256", 32, None),
}

#: Longest varint accepted (multiformats caps unsigned varints at 9 bytes, 63 bits).
MAX_VARINT_BYTES = 9

B58_ALPHABET = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}


# --- varints -------------------------------------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """The unsigned LEB128 varint of *value* (protobuf and multiformats both use it).

    >>> encode_varint(0).hex(), encode_varint(127).hex(), encode_varint(128).hex(), encode_varint(262144).hex()
    ('00', '7f', '8001', '808010')
    """
    if value < 0:
        raise ValueError(f"varint of a negative number: {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_len(value: int) -> int:
    """How many bytes `encode_varint(value)` takes.

    >>> [varint_len(v) for v in (0, 127, 128, 16383, 16384, 2**35 - 1)]
    [1, 1, 2, 2, 3, 5]
    """
    return max(1, (value.bit_length() + 6) // 7)


def decode_varint(buf: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Read a minimally encoded unsigned varint from *buf* at *offset*: (value, offset after it).

    Raises ValueError when it is truncated, longer than 9 bytes, or not minimal (a trailing zero byte).

    >>> decode_varint(bytes.fromhex("808010"))
    (262144, 3)
    """
    value = 0
    shift = 0
    end = len(buf)
    pos = offset
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and pos - offset > 1:
                raise ValueError("varint not minimally encoded")
            return value, pos
        shift += 7
        if pos - offset >= MAX_VARINT_BYTES:
            raise ValueError("varint longer than 9 bytes")


# --- base encodings ------------------------------------------------------------------------------------------------


def b58encode(data: bytes) -> str:
    """Bitcoin's base58 (base58btc), as CIDv0 strings use it.

    >>> b58encode(bytes.fromhex("0000ff"))
    '115Q'
    """
    zeros = len(data) - len(data.lstrip(b"\0"))
    num = int.from_bytes(data, "big")
    out = bytearray()
    while num:
        num, rem = divmod(num, 58)
        out.append(B58_ALPHABET[rem])
    out.extend(b"1" * zeros)
    out.reverse()
    return out.decode("ascii")


def b58decode(text: str) -> bytes:
    """The inverse of `b58encode`; ValueError on a character outside the alphabet."""
    num = 0
    try:
        raw = text.encode("ascii")
        for c in raw:
            num = num * 58 + _B58_INDEX[c]
    except (KeyError, UnicodeEncodeError):
        raise ValueError(f"not base58btc: {text!r}") from None
    zeros = len(raw) - len(raw.lstrip(b"1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


def b32encode_lower(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase `b`)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode_lower(text: str) -> bytes:
    """The inverse of `b32encode_lower` (either case); ValueError when it is not base32."""
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        return base64.b32decode(padded)
    except ValueError:  # binascii.Error is a ValueError
        raise ValueError(f"not base32: {text!r}") from None


# --- multihash and CID ---------------------------------------------------------------------------------------------


def sha256_multihash(digest: bytes) -> bytes:
    """`12 20 <digest>`."""
    return b"\x12\x20" + digest


def cid_v0(digest: bytes) -> bytes:
    """The binary CIDv0 (a dag-pb block) of a sha2-256 *digest*."""
    return b"\x12\x20" + digest


def cid_v1(codec: int, digest: bytes) -> bytes:
    """The binary CIDv1 of a sha2-256 *digest* with *codec* (`DAG_PB`, `RAW`)."""
    return b"\x01" + encode_varint(codec) + b"\x12\x20" + digest


@dataclass(frozen=True)
class CID:
    """A decoded CID.

    Attributes:
        version: 0 or 1.
        codec: the multicodec of the block (`DAG_PB` for every CIDv0).
        multihash: the whole multihash (code, length, digest).
        hash_code: the multihash function code (`SHA2_256`).
        digest: the digest bytes.
    """

    version: int
    codec: int
    multihash: bytes
    hash_code: int
    digest: bytes

    @property
    def bytes(self) -> bytes:
        """The binary form (what a dag-pb link or a CAR section holds)."""
        if self.version == 0:
            return self.multihash
        return b"\x01" + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        return cid_to_str(self.bytes)

    def verify(self, block: bytes | memoryview) -> bool:
        """Whether *block* hashes to this CID's digest. ValueError for a hash function not supported here."""
        return verify_multihash(self.hash_code, self.digest, block)


def decode_multihash(buf: bytes | memoryview, offset: int = 0) -> tuple[int, bytes, int]:
    """(hash code, digest, offset after it) of the multihash at *offset*; ValueError when it is malformed."""
    code, pos = decode_varint(buf, offset)
    length, pos = decode_varint(buf, pos)
    if pos + length > len(buf):
        raise ValueError("truncated multihash")
    expected = HASHES.get(code, (None, -1, None))[1]
    if expected >= 0 and length != expected:
        raise ValueError(f"multihash 0x{code:x} with a {length}-byte digest")
    return code, bytes(buf[pos : pos + length]), pos + length


def decode_cid(buf: bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
    """Read a binary CID at *offset* (v0: `12 20` + 32 bytes; else a varint CIDv1): (CID, offset after it).

    Raises ValueError for a malformed CID or a version other than 0 and 1.
    """
    if len(buf) - offset >= 2 and buf[offset] == 0x12 and buf[offset + 1] == 0x20:
        if len(buf) - offset < 34:
            raise ValueError("truncated CIDv0")
        digest = bytes(buf[offset + 2 : offset + 34])
        return CID(0, DAG_PB, b"\x12\x20" + digest, SHA2_256, digest), offset + 34
    version, pos = decode_varint(buf, offset)
    if version != 1:
        raise ValueError(f"unsupported CID version {version}")
    codec, pos = decode_varint(buf, pos)
    start = pos
    code, digest, pos = decode_multihash(buf, pos)
    return CID(1, codec, bytes(buf[start:pos]), code, digest), pos


def cid_from_bytes(data: bytes) -> CID:
    """Decode a binary CID that must fill *data* exactly."""
    cid, end = decode_cid(data)
    if end != len(data):
        raise ValueError("trailing bytes after the CID")
    return cid


def cid_to_str(cid: bytes) -> str:
    """The string kubo prints for a binary CID: base58btc for v0, `b` + base32 for v1.

    >>> cid_to_str(cid_v1(RAW, hashlib.sha256(b"").digest()))
    'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku'
    """
    if len(cid) == 34 and cid[0] == 0x12 and cid[1] == 0x20:
        return b58encode(cid)
    return "b" + b32encode_lower(cid)


def parse_cid(text: str) -> CID:
    """Parse a CID string: `Qm...` (v0) or a multibase CIDv1 (`b`, `B`, `z`, `f`). ValueError when it is not one."""
    text = text.strip()
    if len(text) == 46 and text.startswith("Qm"):
        raw = b58decode(text)
    elif text[:1] in ("b", "B"):
        raw = b32decode_lower(text[1:])
    elif text[:1] == "z":
        raw = b58decode(text[1:])
    elif text[:1] in ("f", "F"):
        try:
            raw = bytes.fromhex(text[1:])
        except ValueError:
            raise ValueError(f"not base16: {text!r}") from None
    else:
        raise ValueError(f"not a CID (unknown multibase prefix): {text!r}")
    cid = cid_from_bytes(raw)
    if cid.version == 0 and not text.startswith("Qm"):
        raise ValueError(f"a CIDv0 must be written in base58btc: {text!r}")
    return cid


def verify_multihash(code: int, digest: bytes, block: bytes | memoryview) -> bool:
    """Whether *block* hashes to *digest* under multihash function *code*; ValueError when it is not supported."""
    if code == IDENTITY:
        return bytes(block) == digest
    if code == 0xB220:
        return hashlib.blake2b(block, digest_size=32).digest() == digest
    spec = HASHES.get(code)
    if spec is None or spec[2] is None:
        raise ValueError(f"unsupported multihash function 0x{code:x}")
    return hashlib.new(spec[2], block).digest() == digest
