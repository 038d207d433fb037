"""The wire formats under `hfscraper.ipfs`: varints, base encodings, CIDs, dag-pb and UnixFS protobuf, the murmur3
HAMT hash, and the CAR header, each checked against bytes fixed by the specs or another implementation."""

from __future__ import annotations

import hashlib

import pytest

from hfscraper.ipfs import PROFILES, Profile
from hfscraper.ipfs.car import CARV2_PRAGMA, decode_header, encode_header, header_section
from hfscraper.ipfs.dagpb import (
    DIRECTORY_DATA,
    T_FILE,
    T_HAMT_SHARD,
    PBLink,
    decode_node,
    decode_unixfs,
    encode_link,
    encode_node,
    encode_unixfs,
    file_leaf_wrapper,
    link_serialized_size,
)
from hfscraper.ipfs.multiformats import (
    DAG_PB,
    RAW,
    b32decode_lower,
    b32encode_lower,
    b58decode,
    b58encode,
    cid_from_bytes,
    cid_to_str,
    cid_v0,
    cid_v1,
    decode_varint,
    encode_varint,
    parse_cid,
    varint_len,
)
from hfscraper.ipfs.profiles import get_profile
from hfscraper.ipfs.unixfs import hamt_hash

EMPTY_SHA = hashlib.sha256(b"").digest()


class TestVarint:
    @pytest.mark.parametrize(
        ("value", "encoded"),
        [(0, "00"), (1, "01"), (127, "7f"), (128, "8001"), (300, "ac02"), (16384, "808001"),
         (262144, "808010"), (2**63 - 1, "ffffffffffffffff7f")],
    )  # fmt: skip
    def test_round_trip(self, value: int, encoded: str) -> None:
        assert encode_varint(value).hex() == encoded
        assert decode_varint(bytes.fromhex(encoded)) == (value, len(encoded) // 2)
        assert varint_len(value) == len(encoded) // 2

    @pytest.mark.parametrize(
        ("raw", "message"),
        [("", "truncated"), ("80", "truncated"), ("8000", "not minimally"), ("ffffffffffffffffff01", "longer")],
    )
    def test_rejects(self, raw: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            decode_varint(bytes.fromhex(raw))

    def test_negative(self) -> None:
        with pytest.raises(ValueError):
            encode_varint(-1)


class TestBases:
    def test_base58btc(self) -> None:
        assert b58encode(b"") == ""
        assert b58encode(b"\0\0\x01") == "112"
        assert b58encode(b"hello world") == "StV1DL6CwTryKyV"  # the multibase spec's example
        for data in (b"", b"\0", b"\0\0abc", bytes(range(256))):
            assert b58decode(b58encode(data)) == data
        with pytest.raises(ValueError):
            b58decode("0OIl")

    def test_base32(self) -> None:
        assert b32encode_lower(b"hello world") == "nbswy3dpeb3w64tmmq"  # multibase spec: "bnbswy3dpeb3w64tmmq"
        assert b32decode_lower("NBSWY3DPEB3W64TMMQ") == b"hello world"
        with pytest.raises(ValueError):
            b32decode_lower("1")


class TestCid:
    def test_v0_and_v1_forms(self) -> None:
        v0 = cid_v0(EMPTY_SHA)
        assert len(v0) == 34 and cid_to_str(v0).startswith("Qm")
        raw = cid_v1(RAW, EMPTY_SHA)
        assert cid_to_str(raw) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        pb = cid_v1(DAG_PB, EMPTY_SHA)
        assert cid_to_str(pb).startswith("bafybei") and len(pb) == 36

    def test_parse(self) -> None:
        text = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        cid = parse_cid(text)
        assert (cid.version, cid.codec, cid.hash_code) == (0, DAG_PB, 0x12)
        assert str(cid) == text
        assert cid.verify(bytes.fromhex("0a0408021800"))
        v1 = parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        assert (v1.version, v1.codec, v1.digest) == (1, RAW, EMPTY_SHA)
        assert v1.verify(b"") and not v1.verify(b"x")
        # the same CID in other multibases
        assert parse_cid("B" + str(v1)[1:].upper()) == v1
        assert parse_cid("f" + v1.bytes.hex()) == v1
        assert parse_cid("z" + b58encode(v1.bytes)) == v1
        # a CIDv0 upgraded to v1 names the same block but is another CID
        as_v1 = parse_cid("b" + b32encode_lower(b"\x01\x70" + cid.multihash))
        assert as_v1.multihash == cid.multihash and as_v1 != cid

    @pytest.mark.parametrize(
        "text", ["", "Qm", "xyz", "bafy!", "b" + b32encode_lower(b"\x02\x70\x12\x20" + EMPTY_SHA),
                 "b" + b32encode_lower(b"\x01\x55\x12\x20" + EMPTY_SHA[:5]), "f0g", "z" + b58encode(cid_v0(EMPTY_SHA))],
    )  # fmt: skip
    def test_parse_rejects(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_cid(text)

    def test_trailing_bytes(self) -> None:
        with pytest.raises(ValueError, match="trailing"):
            cid_from_bytes(cid_v1(RAW, EMPTY_SHA) + b"\0")


class TestDagPb:
    def test_empty_v0_leaf(self) -> None:
        # kubo's empty file under CIDv0 (boxo ipld/unixfs `NewLeafNode(nil)`: `0a04 0802 1800`)
        assert b"".join(file_leaf_wrapper(0)).hex() == "0a0408021800"
        assert cid_to_str(cid_v0(hashlib.sha256(bytes.fromhex("0a0408021800")).digest())) == (
            "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
        )

    @pytest.mark.parametrize("size", [1, 127, 128, 262144, 1048576])
    def test_leaf_wrapper_is_the_unixfs_node(self, size: int) -> None:
        chunk = b"\xab" * size
        prefix, suffix = file_leaf_wrapper(size)
        expected = encode_node([], encode_unixfs(T_FILE, data=chunk, filesize=size))
        assert prefix + chunk + suffix == expected
        node = decode_node(expected)
        fs = decode_unixfs(node.data or b"")
        assert (node.links, fs.type, fs.data, fs.filesize) == ([], T_FILE, chunk, size)

    def test_node_round_trip(self) -> None:
        links = [PBLink(cid_v0(EMPTY_SHA), b"", 5), PBLink(cid_v1(RAW, EMPTY_SHA), "ü".encode(), 2**40)]
        data = encode_unixfs(T_FILE, filesize=7, blocksizes=[3, 4])
        block = encode_node(links, data)
        assert block.startswith(b"\x12")  # links first, as kubo writes them
        assert block.endswith(b"\x0a" + encode_varint(len(data)) + data)
        node = decode_node(block)
        assert node.links == links and node.data == data
        fs = decode_unixfs(data)
        assert (fs.type, fs.filesize, fs.blocksizes) == (T_FILE, 7, [3, 4])
        assert data.hex() == "0802180720032004"  # blocksizes not packed (proto2)

    def test_packed_blocksizes_are_read(self) -> None:
        assert decode_unixfs(bytes.fromhex("08021807220203 04".replace(" ", ""))).blocksizes == [3, 4]

    def test_directory_and_hamt_data(self) -> None:
        assert DIRECTORY_DATA.hex() == "0801"
        data = encode_unixfs(T_HAMT_SHARD, data=b"\x01\x02", hash_type=0x22, fanout=256)
        assert data.hex() == "08051202010228223080" + "02"
        fs = decode_unixfs(data)
        assert (fs.type, fs.data, fs.hash_type, fs.fanout) == (T_HAMT_SHARD, b"\x01\x02", 0x22, 256)

    @pytest.mark.parametrize(("name_len", "cid_len", "tsize"), [(0, 34, 0), (11, 36, 1), (255, 36, 2**35 - 1)])
    def test_link_serialized_size(self, name_len: int, cid_len: int, tsize: int) -> None:
        link = encode_link(b"\x01" * cid_len, b"n" * name_len, tsize)
        assert link_serialized_size(name_len, cid_len, tsize) == len(link)

    def test_kubo_link_sizes(self) -> None:
        # kubo test/cli/cid_profiles_test.go TestProtobufHelpers
        assert link_serialized_size(255, 34, 0) == 299
        assert link_serialized_size(255, 36, 0) == 301
        assert link_serialized_size(10, 36, 0) == 54
        assert link_serialized_size(255, 36, 34359738367) == 305
        assert link_serialized_size(11, 36, 1) == 55

    @pytest.mark.parametrize(
        "raw",
        ["08", "0a05aa", "1a00", "12020a00", "120212000a000a00"],
    )
    def test_decode_rejects(self, raw: str) -> None:
        with pytest.raises(ValueError):
            decode_node(bytes.fromhex(raw))

    def test_unixfs_needs_a_type(self) -> None:
        with pytest.raises(ValueError, match="Type"):
            decode_unixfs(bytes.fromhex("1801"))


class TestHamtHash:
    """murmur3-x64-128's first 64 bits (h1): boxo's HAMT hash."""

    def test_known_vector(self) -> None:
        # MurmurHash3_x64_128("The quick brown fox jumps over the lazy dog", seed 0) = e34bbc7bbc071b6c 7a433ca9c49a9347
        assert hamt_hash(b"The quick brown fox jumps over the lazy dog") == 0xE34BBC7BBC071B6C
        assert hamt_hash(b"") == 0

    def test_unsigned(self) -> None:
        assert all(0 <= hamt_hash(bytes([i]) * i) < 2**64 for i in range(64))


class TestCarHeader:
    def test_one_v1_root_is_58_bytes(self) -> None:
        root = cid_v1(DAG_PB, EMPTY_SHA)
        header = encode_header([root])
        assert len(header) == 58
        assert header_section(root) == b"\x3a" + header
        # the same bytes @ipld/car and dag-cbor write: {"roots": [tag 42(00 || cid)], "version": 1}
        assert header.hex() == "a265726f6f747381d82a5825" + "00" + root.hex() + "6776657273696f6e01"
        version, roots = decode_header(header)
        assert version == 1 and [r.bytes for r in roots] == [root]

    def test_v0_root(self) -> None:
        root = cid_v0(EMPTY_SHA)
        assert len(encode_header([root])) == 56
        assert decode_header(encode_header([root]))[1][0].bytes == root

    def test_carv2_pragma(self) -> None:
        assert decode_header(CARV2_PRAGMA[1:]) == (2, [])

    @pytest.mark.parametrize(
        "raw",
        ["", "a0", "a1677665727369006f6e01", "a265726f6f7473f66776657273696f6e01", "9f", "a265726f6f7473"],
    )
    def test_rejects(self, raw: str) -> None:
        with pytest.raises(ValueError):
            decode_header(bytes.fromhex(raw))


class TestProfiles:
    def test_named(self) -> None:
        assert set(PROFILES) == {"unixfs-v1-2025", "unixfs-v0-2015", "kubo-cidv1"}
        v1 = PROFILES["unixfs-v1-2025"]
        assert (v1.cid_version, v1.raw_leaves, v1.chunk_size, v1.max_links, v1.hamt_estimation) == (
            1, True, 1048576, 1024, "block",
        )  # fmt: skip
        v0 = PROFILES["unixfs-v0-2015"]
        assert (v0.cid_version, v0.raw_leaves, v0.chunk_size, v0.max_links, v0.hamt_estimation) == (
            0, False, 262144, 174, "links",
        )  # fmt: skip
        k1 = PROFILES["kubo-cidv1"]
        assert (k1.cid_version, k1.raw_leaves, k1.chunk_size, k1.max_links, k1.hamt_estimation) == (
            1, True, 262144, 174, "links",
        )  # fmt: skip
        for p in PROFILES.values():
            assert (p.hamt_threshold, p.hamt_fanout, p.hamt_inclusive) == (262144, 256, False)

    def test_get_profile(self) -> None:
        assert get_profile("kubo-cidv1") is PROFILES["kubo-cidv1"]
        assert get_profile(PROFILES["kubo-cidv1"]) is PROFILES["kubo-cidv1"]
        with pytest.raises(ValueError, match="unknown IPFS profile 'nope' \\(known: "):
            get_profile("nope")

    @pytest.mark.parametrize(
        "changes",
        [{"cid_version": 2}, {"cid_version": 0}, {"chunk_size": 0}, {"chunk_size": 4 * 1024 * 1024},
         {"max_links": 1}, {"hamt_fanout": 100}, {"hamt_fanout": 2048}, {"hamt_estimation": "size"}],
    )  # fmt: skip
    def test_invalid(self, changes: dict[str, object]) -> None:
        with pytest.raises(ValueError, match="invalid profile"):
            Profile(**{**PROFILES["kubo-cidv1"].__dict__, **changes})  # type: ignore[arg-type]
