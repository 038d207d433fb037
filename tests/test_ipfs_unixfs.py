"""UnixFS import and CARs, checked on their structure: the balanced layout against a transcription of kubo's
top-down builder, exact Tsize and blocksizes, folders (`ipfs add -r --hidden`: hidden files, empty files and
folders, bytewise order, symlinks, exclusions), the HAMT threshold at and one byte past it, bounded memory, and
CARs read back with this package's own reader (every block verified, the DAG walked, bytes reassembled)."""

from __future__ import annotations

import math
import os
import tracemalloc
from pathlib import Path

import pytest

from hfscraper.ipfs import (
    PROFILES,
    CarReadError,
    DagError,
    Profile,
    UnsupportedFileError,
    bytes_cid,
    directory_cid,
    file_cid,
    path_cid,
    read_car,
    unpack_car,
    write_car,
)
from hfscraper.ipfs.car import CARV2_PRAGMA, CarIndex
from hfscraper.ipfs.dagpb import (
    T_DIRECTORY,
    T_FILE,
    T_HAMT_SHARD,
    T_SYMLINK,
    PBLink,
    decode_node,
    decode_unixfs,
    encode_node,
    encode_unixfs,
)
from hfscraper.ipfs.multiformats import RAW, cid_from_bytes, cid_to_str, parse_cid
from hfscraper.ipfs.unixfs import Importer, Link
from tests.support.ipfs_data import chacha_bytes, make_names_dir, tree_files, write_file, write_random_tree

PROFILE_NAMES = ["unixfs-v1-2025", "unixfs-v0-2015", "kubo-cidv1"]
MiB = 1024 * 1024


class MemorySink:
    """A BlockSink that keeps every block (tests only)."""

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}
        self.puts = 0

    def put(self, cid: bytes, *parts: bytes | memoryview) -> None:
        self.puts += 1
        self.blocks[cid] = b"".join(bytes(p) for p in parts)


def kubo_balanced(profile: Profile, data: bytes) -> str:
    """A transcription of boxo's top-down balanced builder (`importer/balanced/builder.go`: the first leaf is
    the root; while data remains, a new root takes the old one as first child and `fillNodeRec` fills it to the
    next depth), built in memory from this package's block encoders only."""
    size = profile.chunk_size
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    importer = Importer(profile)
    pending = iter(chunks)
    remaining = [len(chunks)]

    def leaf() -> tuple[bytes, int, int]:
        remaining[0] -= 1
        chunk = next(pending)
        link = importer.add_bytes(chunk)  # a one-chunk file is exactly that leaf
        return link.cid, link.tsize, len(chunk)

    def fill(children: list[tuple[bytes, int, int]], depth: int) -> None:
        while len(children) < profile.max_links and remaining[0]:
            if depth == 1:
                children.append(leaf())
            else:
                grand: list[tuple[bytes, int, int]] = []
                fill(grand, depth - 1)
                children.append(importer._file_node(grand))

    root = leaf()
    depth = 1
    while remaining[0]:
        children = [root]
        fill(children, depth)
        root = importer._file_node(children)
        depth += 1
    return cid_to_str(root[0])


def walk(blocks: dict[bytes, bytes], cid: bytes, depth: int = 0) -> list[tuple[int, int]]:
    """(depth, data bytes) of every leaf under *cid*, checking Tsize, blocksizes and filesize on the way."""
    if cid_from_bytes(cid).codec == RAW:
        return [(depth, len(blocks[cid]))]
    node = decode_node(blocks[cid])
    fs = decode_unixfs(node.data or b"")
    assert fs.type == T_FILE
    if not node.links:
        return [(depth, len(fs.data or b""))]
    leaves = []
    for i, link in enumerate(node.links):
        below = walk(blocks, link.cid, depth + 1)
        assert sum(n for _, n in below) == fs.blocksizes[i]
        assert link.tsize == tsize_of(blocks, link.cid)
        assert link.name == b""
        leaves += below
    assert fs.filesize == sum(fs.blocksizes)
    return leaves


def tsize_of(blocks: dict[bytes, bytes], cid: bytes) -> int:
    if cid_from_bytes(cid).codec == RAW:
        return len(blocks[cid])
    return len(blocks[cid]) + sum(link.tsize for link in decode_node(blocks[cid]).links)


class TestFileLayout:
    @pytest.mark.parametrize("width", [2, 3, 4])
    def test_bottom_up_equals_kubo_top_down(self, width: int) -> None:
        for raw in (True, False):
            profile = Profile("tiny", cid_version=1 if raw else 0, raw_leaves=raw, chunk_size=3, max_links=width)
            for chunks in [*range(0, 30), width**3, width**3 + 1, width**4 - 1, width**4, width**4 + 1]:
                data = chacha_bytes(chunks * 3 - (chunks % 2 if chunks else 0), f"layout-{chunks}")
                assert bytes_cid(data, profile) == kubo_balanced(profile, data), (raw, width, chunks)

    @pytest.mark.parametrize("name", PROFILE_NAMES)
    def test_structure(self, name: str) -> None:
        profile = PROFILES[name]
        size = profile.chunk_size
        for chunks, extra in [(1, 0), (1, 1), (profile.max_links, 0), (profile.max_links, 1)]:
            if size * chunks > 200 * MiB:
                profile = profile.with_(name="narrow", max_links=8)
                chunks = min(chunks, 8)
            data = chacha_bytes(size * chunks + extra, f"structure-{chunks}")
            sink = MemorySink()
            root = Importer(profile, sink).add_bytes(data)
            leaves = walk(sink.blocks, root.cid)
            assert root.tsize == sum(len(b) for b in sink.blocks.values())
            assert len({depth for depth, _ in leaves}) == 1  # balanced: every leaf at the same depth
            assert len(leaves) == math.ceil(len(data) / size)
            assert sum(n for _, n in leaves) == len(data)

    def test_trailing_chunk_gets_its_own_parents(self) -> None:
        # boxo importer/balanced/builder.go: 174 x 256 KiB + 1 gives 175 leaves, 2 parents (174 and 1 links) and a
        # root: 178 blocks
        sink = MemorySink()
        root = Importer(PROFILES["unixfs-v0-2015"], sink).add_bytes(chacha_bytes(174 * 262144 + 1, "trailing"))
        assert len(sink.blocks) == 178
        top = decode_node(sink.blocks[root.cid])
        assert [len(decode_node(sink.blocks[link.cid]).links) for link in top.links] == [174, 1]

    def test_empty_file(self) -> None:
        sink = MemorySink()
        root = Importer(PROFILES["unixfs-v0-2015"], sink).add_bytes(b"")
        assert sink.blocks == {root.cid: bytes.fromhex("0a0408021800")} and root.tsize == 6
        assert Importer(PROFILES["kubo-cidv1"]).add_bytes(b"").tsize == 0

    def test_file_cid_streams_the_same_as_bytes(self, tmp_path: Path) -> None:
        data = chacha_bytes(3 * MiB + 17, "same")
        (tmp_path / "f").write_bytes(data)
        for name in PROFILE_NAMES:
            assert file_cid(tmp_path / "f", name) == bytes_cid(data, name) == path_cid(tmp_path / "f", name)

    @pytest.mark.parametrize("name", PROFILE_NAMES)
    def test_memory_is_bounded(self, name: str, tmp_path: Path) -> None:
        path = write_file(tmp_path / "big.bin", 64 * MiB, "bounded")
        tracemalloc.start()
        try:
            file_cid(path, name)
            cid_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            write_car(path, tmp_path / "big.car", name)
            car_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        chunk = PROFILES[name].chunk_size
        assert cid_peak < chunk + 1 * MiB, cid_peak
        assert car_peak < chunk + 2 * MiB, car_peak  # plus the CAR's write buffer


class TestFolders:
    def test_hidden_empty_and_order(self, tmp_path: Path) -> None:
        root = tmp_path / "d"
        (root / "sub" / "empty").mkdir(parents=True)
        for name in ["b", "B", "a", "_x", "Ä", ".hidden", "z"]:
            (root / name).write_bytes(name.encode())
        (root / "sub" / "empty-file").write_bytes(b"")
        sink = MemorySink()
        link = Importer(PROFILES["unixfs-v0-2015"], sink).add_directory(root)
        node = decode_node(sink.blocks[link.cid])
        assert decode_unixfs(node.data or b"").type == T_DIRECTORY
        names = [lk.name for lk in node.links]
        assert names == sorted(names) == [b".hidden", b"B", b"_x", b"a", b"b", b"sub", b"z", "Ä".encode()]
        sub = decode_node(sink.blocks[node.links[names.index(b"sub")].cid])
        assert [lk.name for lk in sub.links] == [b"empty", b"empty-file"]
        empty = sub.links[0]
        assert cid_to_str(empty.cid) == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn" and empty.tsize == 4
        assert link.tsize == len(sink.blocks[link.cid]) + sum(lk.tsize for lk in node.links)
        assert sum(len(b) for b in sink.blocks.values()) == link.tsize  # no block twice in this folder

    def test_empty_folder(self, tmp_path: Path) -> None:
        (tmp_path / "e").mkdir()
        assert directory_cid(tmp_path / "e", "unixfs-v0-2015") == "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        assert directory_cid(tmp_path / "e") == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"

    def test_exclude(self, tmp_path: Path) -> None:
        a = write_random_tree(tmp_path / "a", seed=3)
        b = write_random_tree(tmp_path / "b", seed=3)
        (a / "ipfs_cid.txt").write_text("x")
        (a / "skipme").mkdir()
        (a / "skipme" / "inner").write_text("y")
        expected = directory_cid(b)
        assert directory_cid(a) != expected
        assert directory_cid(a, exclude={"ipfs_cid.txt", "skipme"}) == expected
        assert directory_cid(a, exclude=["./ipfs_cid.txt", "skipme/"]) == expected
        (b / "skipme").mkdir()
        assert directory_cid(a, exclude={"ipfs_cid.txt", "skipme/inner"}) == directory_cid(b)

    def test_symlinks_are_symlink_nodes(self, tmp_path: Path) -> None:
        root = tmp_path / "d"
        root.mkdir()
        (root / "target").write_bytes(b"data")
        os.symlink("target", root / "link")
        os.symlink("/nowhere/at/all", root / "dangling")
        sink = MemorySink()
        link = Importer(PROFILES["kubo-cidv1"], sink).add_directory(root)
        node = decode_node(sink.blocks[link.cid])
        by_name = {lk.name: lk for lk in node.links}
        symlink_block = encode_node([], encode_unixfs(T_SYMLINK, data=b"target"))
        assert sink.blocks[by_name[b"link"].cid] == symlink_block == bytes.fromhex("0a0a08041206") + b"target"
        assert cid_from_bytes(by_name[b"link"].cid).codec == 0x70
        assert decode_unixfs(decode_node(sink.blocks[by_name[b"dangling"].cid]).data or b"").data == (
            b"/nowhere/at/all"
        )
        # the PATH given is followed when it is a symlink
        os.symlink(root, tmp_path / "alias")
        assert path_cid(tmp_path / "alias", "kubo-cidv1") == cid_to_str(link.cid)

    def test_refuses_special_files(self, tmp_path: Path) -> None:
        root = tmp_path / "d"
        root.mkdir()
        os.mkfifo(root / "fifo")
        with pytest.raises(UnsupportedFileError, match="fifo: not a regular file, folder or symlink"):
            directory_cid(root)
        assert directory_cid(root, exclude={"fifo"}) == directory_cid(tmp_path / "d", exclude={"fifo"})

    def test_wrong_kinds(self, tmp_path: Path) -> None:
        (tmp_path / "f").write_bytes(b"x")
        with pytest.raises(IsADirectoryError):
            file_cid(tmp_path)
        with pytest.raises(NotADirectoryError):
            directory_cid(tmp_path / "f")
        with pytest.raises(FileNotFoundError):
            file_cid(tmp_path / "missing")
        with pytest.raises(FileNotFoundError):
            path_cid(tmp_path / "missing")
        with pytest.raises(ValueError, match="unknown IPFS profile"):
            file_cid(tmp_path / "f", "unixfs-v2")


def _root_type(folder: Path, profile: Profile) -> tuple[int, int, MemorySink, Link]:
    sink = MemorySink()
    link = Importer(profile, sink).add_directory(folder)
    node = decode_node(sink.blocks[link.cid])
    return decode_unixfs(node.data or b"").type, len(node.links), sink, link


class TestHamtThreshold:
    """At the threshold a folder stays flat (`>`); one byte more and it is a HAMT. For each estimation mode."""

    @pytest.mark.parametrize(
        ("name", "cid_len"),
        [("unixfs-v0-2015", 34), ("kubo-cidv1", 36)],
    )
    def test_links_estimation(self, name: str, cid_len: int, tmp_path: Path) -> None:
        profile = PROFILES[name]
        name_len = 64 - cid_len  # 4096 x (name + CID) = 262144 exactly
        names = [f"{i:0{name_len}d}" for i in range(4096)]
        at = make_names_dir(tmp_path / "at", names)
        assert _root_type(at, profile)[:2] == (T_DIRECTORY, 4096)
        over = make_names_dir(tmp_path / "over", [*names[:-1], names[-1] + "x"])
        kind, links, sink, link = _root_type(over, profile)
        assert kind == T_HAMT_SHARD and links <= 256
        inclusive = profile.with_(name="kubo-0.39", hamt_inclusive=True)
        assert _root_type(at, inclusive)[0] == T_HAMT_SHARD
        # the shard's entries are exactly the folder's
        unpack_dir = tmp_path / "unpacked"
        from hfscraper.ipfs.unixfs import export

        export(link.cid, sink.blocks.__getitem__, unpack_dir)
        assert sorted(os.listdir(unpack_dir)) == sorted(os.listdir(over))

    def test_block_estimation(self, tmp_path: Path) -> None:
        profile = PROFILES["unixfs-v1-2025"]
        # a flat directory block: 4 bytes of Data, then one link per file of 1 byte (raw CID: 36 bytes)
        # link of an 11-char name: 55 bytes; 4765 of them + one 21-char name (65) + 4 = 262144
        names = [f"{i:011d}" for i in range(4765)]
        at = make_names_dir(tmp_path / "at", [*names, "n" * 21])
        kind, links, sink, link = _root_type(at, profile)
        assert (kind, links, len(sink.blocks[link.cid])) == (T_DIRECTORY, 4766, 262144)
        over = make_names_dir(tmp_path / "over", [*names, "n" * 22])
        assert _root_type(over, profile)[0] == T_HAMT_SHARD
        # `links` estimation would not shard it: 4765 x 47 + 58 is far below 256 KiB
        assert _root_type(over, profile.with_(name="links", hamt_estimation="links"))[0] == T_DIRECTORY

    def test_disabled(self, tmp_path: Path) -> None:
        folder = make_names_dir(tmp_path / "d", [f"{i:040d}" for i in range(5000)])
        profile = PROFILES["kubo-cidv1"]
        assert _root_type(folder, profile)[0] == T_HAMT_SHARD
        assert _root_type(folder, profile.with_(name="flat", hamt_estimation="disabled"))[0] == T_DIRECTORY
        assert _root_type(folder, profile.with_(name="flat", hamt_threshold=0))[0] == T_DIRECTORY

    def test_shard_layout(self, tmp_path: Path) -> None:
        folder = make_names_dir(tmp_path / "d", [f"file-{i:05d}-{'x' * 40}" for i in range(5000)])
        kind, _, sink, link = _root_type(folder, PROFILES["unixfs-v0-2015"])
        assert kind == T_HAMT_SHARD
        root = decode_node(sink.blocks[link.cid])
        fs = decode_unixfs(root.data or b"")
        assert (fs.fanout, fs.hash_type) == (256, 0x22)
        prefixes = [lk.name[:2] for lk in root.links]
        assert prefixes == sorted(prefixes) and all(p == p.upper() for p in prefixes)
        bitmap = int.from_bytes(fs.data or b"", "big")
        assert [int(p, 16) for p in prefixes] == [i for i in range(256) if bitmap >> i & 1]
        assert link.tsize == tsize_of(sink.blocks, link.cid)


class TestCar:
    @pytest.mark.parametrize("name", PROFILE_NAMES)
    def test_folder_round_trip(self, name: str, tmp_path: Path) -> None:
        folder = write_random_tree(tmp_path / "in", seed=7, max_size=3 * MiB)
        (folder / "dup1").write_bytes(b"same" * 100_000)
        (folder / "dup2").write_bytes(b"same" * 100_000)
        car = tmp_path / "out.car"
        root = write_car(folder, car, name)
        assert root == directory_cid(folder, name)
        roots, blocks = read_car(car)
        assert roots == [root]
        seen = [cid for cid, _ in blocks]
        assert len(seen) == len(set(seen))  # every block once, even the identical chunks
        assert seen[-1] == root  # children before parents: the root comes last
        with CarIndex(car) as index:
            assert reachable(index, parse_cid(root).bytes) == set(index.offsets)  # complete, nothing extra
        assert unpack_car(car, tmp_path / "out") == root
        assert tree_files(tmp_path / "out") == tree_files(folder)

    @pytest.mark.parametrize("name", PROFILE_NAMES)
    def test_file_round_trip(self, name: str, tmp_path: Path) -> None:
        path = write_file(tmp_path / "f.bin", 2 * PROFILES[name].chunk_size + 5, "car-file")
        root = write_car(path, tmp_path / "f.car", name)
        assert root == file_cid(path, name)
        unpack_car(tmp_path / "f.car", tmp_path / "f.out")
        assert (tmp_path / "f.out").read_bytes() == path.read_bytes()

    def test_deterministic_bytes(self, tmp_path: Path) -> None:
        folder = write_random_tree(tmp_path / "in", seed=11)
        write_car(folder, tmp_path / "a.car")
        write_car(folder, tmp_path / "b.car")
        assert (tmp_path / "a.car").read_bytes() == (tmp_path / "b.car").read_bytes()

    def test_car_inside_the_folder(self, tmp_path: Path) -> None:
        folder = write_random_tree(tmp_path / "in", seed=5)
        expected = directory_cid(folder, exclude={"entity.car"})
        assert write_car(folder, folder / "entity.car") == expected
        assert write_car(folder, folder / "entity.car") == expected  # the existing one is left out too
        assert directory_cid(folder, exclude={"entity.car"}) == expected
        assert not [p for p in os.listdir(folder) if p.startswith(".hfscraper-tmp-")]

    def test_failure_leaves_nothing(self, tmp_path: Path) -> None:
        (tmp_path / "out").mkdir()
        with pytest.raises(FileNotFoundError):
            write_car(tmp_path / "missing", tmp_path / "out" / "x.car")
        folder = tmp_path / "in"
        folder.mkdir()
        os.mkfifo(folder / "fifo")
        with pytest.raises(UnsupportedFileError):
            write_car(folder, tmp_path / "out" / "x.car")
        assert os.listdir(tmp_path / "out") == []
        with pytest.raises(FileNotFoundError):
            write_car(tmp_path / "out", tmp_path / "nowhere" / "x.car")

    def test_damage_is_detected(self, tmp_path: Path) -> None:
        path = write_file(tmp_path / "f", 600_000, "damage")
        car = tmp_path / "f.car"
        root = write_car(path, car, "kubo-cidv1")
        good = car.read_bytes()
        # one flipped bit inside the first block's data
        bad = bytearray(good)
        bad[len(good) // 3] ^= 1
        (tmp_path / "bad.car").write_bytes(bad)
        roots, blocks = read_car(tmp_path / "bad.car")
        assert roots == [root]
        with pytest.raises(CarReadError, match="does not match its hash at byte"):
            list(blocks)
        # truncated in the middle of a section
        (tmp_path / "short.car").write_bytes(good[:-10])
        with pytest.raises(CarReadError, match="truncated section"):
            list(read_car(tmp_path / "short.car")[1])
        # not a CAR at all
        (tmp_path / "text.car").write_bytes(b"hello, this is not a CAR file\n")
        with pytest.raises(CarReadError, match="truncated header \\(29 of 104 bytes\\) at byte 1"):
            read_car(tmp_path / "text.car")
        (tmp_path / "json.car").write_bytes(b'\x0c{"roots":[]}')
        with pytest.raises(CarReadError, match="not a CAR \\(bad header"):
            read_car(tmp_path / "json.car")
        (tmp_path / "empty.car").write_bytes(b"")
        with pytest.raises(CarReadError, match="truncated varint"):
            read_car(tmp_path / "empty.car")
        with pytest.raises(FileNotFoundError):
            read_car(tmp_path / "missing.car")

    def test_reads_carv2(self, tmp_path: Path) -> None:
        folder = write_random_tree(tmp_path / "in", seed=2)
        v1 = tmp_path / "v1.car"
        root = write_car(folder, v1)
        payload = v1.read_bytes()
        header = bytes(16) + (51).to_bytes(8, "little") + len(payload).to_bytes(8, "little") + bytes(8)
        v2 = tmp_path / "v2.car"
        v2.write_bytes(CARV2_PRAGMA + header + payload + b"index bytes that are not read")
        roots, blocks = read_car(v2)
        assert roots == [root]
        assert list(blocks) == list(read_car(v1)[1])
        unpack_car(v2, tmp_path / "out")
        assert tree_files(tmp_path / "out") == tree_files(folder)

    def test_unpack_refuses_unsafe_and_incomplete_dags(self, tmp_path: Path) -> None:
        for bad_name in [b"..", b"a/b", b""]:
            sink = MemorySink()
            importer = Importer(PROFILES["kubo-cidv1"], sink)
            child = importer.add_bytes(b"evil")
            block = encode_node([PBLink(child.cid, bad_name, child.tsize)], encode_unixfs(T_DIRECTORY))
            root = importer._pb_block(block)
            car = tmp_path / "evil.car"
            write_blocks(car, root.cid, sink.blocks)
            with pytest.raises(DagError, match="unsafe directory entry name"):
                unpack_car(car, tmp_path / f"out-{len(bad_name)}")
        sink = MemorySink()
        root = Importer(PROFILES["kubo-cidv1"], sink).add_bytes(chacha_bytes(600_000, "incomplete"))
        del sink.blocks[next(cid for cid in sink.blocks if cid != root.cid)]
        write_blocks(tmp_path / "partial.car", root.cid, sink.blocks)
        with pytest.raises(DagError, match="is missing"):
            unpack_car(tmp_path / "partial.car", tmp_path / "partial")


def write_blocks(car: Path, root: bytes, blocks: dict[bytes, bytes]) -> None:
    from hfscraper.ipfs.car import CarWriter, header_section

    with open(car, "wb") as out:
        out.write(header_section(root))
        writer = CarWriter(out)
        for cid, block in blocks.items():
            writer.put(cid, block)


def reachable(index: CarIndex, root: bytes) -> set[bytes]:
    """Every CID reachable from *root* through dag-pb links (all must be in the CAR)."""
    seen: set[bytes] = set()
    todo = [root]
    while todo:
        cid = todo.pop()
        if cid in seen:
            continue
        seen.add(cid)
        if cid_from_bytes(cid).codec == RAW:
            continue
        todo.extend(link.cid for link in decode_node(index.get(cid)).links)
    return seen


def test_importers_share_a_chunk_buffer_per_thread_safely() -> None:
    """Importers reuse one chunk buffer per thread and chunk size: many threads at once, and importers made one
    after another in the same thread (the pipeline's pattern), give the CIDs of a fresh importer each."""
    import concurrent.futures

    sizes = [0, 1, 1000, 262_144, 262_145, 1_048_576, 3_000_001]
    datas = {size: chacha_bytes(size, f"shared-{size}") for size in sizes}
    expected = {
        (name, size): str(Importer(profile).add_bytes(data))
        for name, profile in PROFILES.items()
        for size, data in datas.items()
    }
    jobs = [(name, size) for name in PROFILES for size in sizes] * 4

    def run(job: tuple[str, int]) -> tuple[tuple[str, int], str]:
        name, size = job
        return job, str(Importer(PROFILES[name]).add_bytes(datas[size]))

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, jobs))
    assert all(cid == expected[job] for job, cid in results)
    assert str(Importer(PROFILES["unixfs-v1-2025"]).add_bytes(datas[1000])) == expected[("unixfs-v1-2025", 1000)]
