"""hfscraper.ipfs against an independent implementation, for every profile: the npm `ipfs-unixfs-importer`
17.1.1 computes the CIDs (and CARs) of the same files and folders, and `ipfs-car unpack` 3.1.0 must read back every
CAR this package writes, byte for byte. Both are pinned in `tests/js/package-lock.json`; install them with
`npm ci --prefix tests/js` (`.ci/run` does). Without them these tests skip, and fail under `CI`.

Inputs: files of 0 bytes, 1 byte, exactly one chunk, one chunk plus one byte, a two-level tree (more than
links-per-node chunks); seeded random folders (nested, hidden files, empty files and folders, unicode names);
folders exactly at the HAMT threshold (must stay flat) and one byte past it (must shard) for each estimation mode,
and a sharded folder nested inside another.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from hfscraper.ipfs import PROFILES, path_cid, read_car, write_car
from hfscraper.ipfs.unixfs import hamt_hash
from tests.support import report
from tests.support.ipfs_data import (
    kubo_names,
    make_kubo_hamt_dir,
    make_names_dir,
    tree_files,
    write_file,
    write_random_tree,
)
from tests.support.js_oracle import JsOracle, ipfs_car_unpack, require_js

PROFILE_NAMES = ["unixfs-v1-2025", "unixfs-v0-2015", "kubo-cidv1"]
COUNTS = {"cids": 0, "cars": 0, "unpacked": 0}


@pytest.fixture(scope="module")
def oracle() -> JsOracle:
    require_js()
    return JsOracle()


def file_sizes(name: str) -> dict[str, int]:
    profile = PROFILES[name]
    chunk = profile.chunk_size
    return {
        "empty": 0,
        "one-byte": 1,
        "one-chunk": chunk,
        "chunk-plus-one": chunk + 1,
        "two-levels": profile.max_links * chunk + 1,
    }


@pytest.fixture(scope="module")
def inputs(oracle: JsOracle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """profile -> input name -> path (files of that profile's sizes, and the folders, shared by all)."""
    base = tmp_path_factory.mktemp("oracle-inputs")
    folders: dict[str, Path] = {}
    for seed in (1, 2, 3):
        folders[f"random-{seed}"] = write_random_tree(base / f"random-{seed}", seed)
    # links estimation, CIDv0: 4096 x (30 + 34) = 262144 exactly; 4033 x (31 + 34) = 262145
    folders["links-v0-at"] = make_kubo_hamt_dir(base / "links-v0-at", 4096, 30, 30, "hamt-unixfs-v0-2015")
    folders["links-v0-over"] = make_kubo_hamt_dir(base / "links-v0-over", 4033, 31, 31, "hamt-unixfs-v0-2015")
    # links estimation, CIDv1: 4096 x (28 + 36) = 262144 exactly, then one name one byte longer
    names = kubo_names(4096, 28, 28, "hamt-kubo-cidv1")
    folders["links-v1-at"] = make_names_dir(base / "links-v1-at", names)
    folders["links-v1-over"] = make_names_dir(base / "links-v1-over", [*names[:-1], names[-1] + "x"])
    # block estimation: a dag-pb block of exactly 262144 bytes, then 262145
    folders["block-at"] = make_kubo_hamt_dir(base / "block-at", 4766, 11, 21, "hamt-unixfs-v1-2025")
    folders["block-over"] = make_kubo_hamt_dir(base / "block-over", 4766, 11, 22, "hamt-unixfs-v1-2025")
    # a shard inside a folder, beside files and an empty folder
    nested = write_random_tree(base / "nested", 9, max_files=5)
    make_kubo_hamt_dir(nested / "big-folder", 4500, 40, 40, "nested")
    folders["nested-hamt"] = nested
    out: dict[str, dict[str, Path]] = {}
    sizes_written: dict[int, Path] = {}
    for name in PROFILE_NAMES:
        out[name] = dict(folders)
        for label, size in file_sizes(name).items():
            if size not in sizes_written:
                sizes_written[size] = write_file(base / "files" / f"{size}.bin", size, f"oracle-{size}")
            out[name][label] = sizes_written[size]
    return out


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_cids_agree_with_the_js_importer(name: str, oracle: JsOracle, inputs: dict[str, dict[str, Path]]) -> None:
    labels = sorted(inputs[name])
    expected = oracle.cids([inputs[name][label] for label in labels], name)
    got = [path_cid(inputs[name][label], name) for label in labels]
    mismatches = {label: (g, e) for label, g, e in zip(labels, got, expected, strict=True) if g != e}
    assert not mismatches
    COUNTS["cids"] += len(labels)


def test_threshold_folders_shard_as_expected(inputs: dict[str, dict[str, Path]], oracle: JsOracle) -> None:
    """The at/over folders really sit at the boundary for their mode (else the agreement above proves little)."""
    from hfscraper.ipfs.dagpb import T_DIRECTORY, T_HAMT_SHARD, decode_node, decode_unixfs
    from hfscraper.ipfs.unixfs import Importer

    def root_type(label: str, profile_name: str) -> int:
        blocks: dict[bytes, bytes] = {}

        class Sink:
            def put(self, cid: bytes, *parts: bytes | memoryview) -> None:
                blocks[cid] = b"".join(bytes(p) for p in parts)

        link = Importer(PROFILES[profile_name], Sink()).add_directory(inputs[profile_name][label])
        return decode_unixfs(decode_node(blocks[link.cid]).data or b"").type

    assert root_type("links-v0-at", "unixfs-v0-2015") == T_DIRECTORY
    assert root_type("links-v0-over", "unixfs-v0-2015") == T_HAMT_SHARD
    assert root_type("links-v1-at", "kubo-cidv1") == T_DIRECTORY
    assert root_type("links-v1-over", "kubo-cidv1") == T_HAMT_SHARD
    assert root_type("block-at", "unixfs-v1-2025") == T_DIRECTORY
    assert root_type("block-over", "unixfs-v1-2025") == T_HAMT_SHARD


def test_seeded_random_folders(oracle: JsOracle, tmp_path: Path) -> None:
    """More random folders, all three profiles, one node process."""
    folders = [write_random_tree(tmp_path / f"r{seed}", 100 + seed, max_files=12) for seed in range(8)]
    jobs = [{"op": "add", "path": str(f), "profile": name} for name in PROFILE_NAMES for f in folders]
    expected = [answer["cid"] for answer in oracle.run(jobs)]
    got = [path_cid(f, name) for name in PROFILE_NAMES for f in folders]
    assert got == expected
    COUNTS["cids"] += len(jobs)


def test_murmur3_agrees_with_multiformats_murmur3(oracle: JsOracle) -> None:
    rnd = random.Random(5)
    samples = [b"", b"a", "Ünïcödé/日本語".encode()] + [rnd.randbytes(rnd.randint(1, 300)) for _ in range(200)]
    answers = oracle.run([{"op": "murmur", "hex": s.hex()} for s in samples])
    assert [f"{hamt_hash(s):016x}" for s in samples] == [a["hash"] for a in answers]


CAR_INPUTS = ["empty", "one-byte", "one-chunk", "chunk-plus-one", "two-levels", "random-1", "random-2",
              "links-v0-over", "block-over", "nested-hamt"]  # fmt: skip


def blocks_of(car: Path) -> tuple[list[str], dict[str, bytes]]:
    roots, blocks = read_car(car)
    return roots, dict(blocks)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_cars_match_the_js_importer_and_unpack_with_ipfs_car(
    name: str, oracle: JsOracle, inputs: dict[str, dict[str, Path]], tmp_path: Path
) -> None:
    labels = [label for label in CAR_INPUTS if not (name == "unixfs-v1-2025" and label == "two-levels")]
    jobs = []
    ours = {}
    for label in labels:
        src = inputs[name][label]
        ours[label] = (write_car(src, tmp_path / f"{label}.car", name), tmp_path / f"{label}.car")
        jobs.append({"op": "add", "path": str(src), "profile": name, "car": str(tmp_path / f"{label}.js.car")})
    answers = oracle.run(jobs)
    for label, answer in zip(labels, answers, strict=True):
        root, car = ours[label]
        assert answer["cid"] == root, label
        our_roots, our_blocks = blocks_of(car)
        js_roots, js_blocks = blocks_of(tmp_path / f"{label}.js.car")
        assert our_roots == js_roots == [root], label
        assert our_blocks == js_blocks, label  # the same blocks, byte for byte
        assert_ipfs_car_unpacks(car, inputs[name][label], tmp_path / f"{label}.out")
        COUNTS["cars"] += 1


def test_two_level_v1_2025_car_unpacks_with_ipfs_car(inputs: dict[str, dict[str, Path]], tmp_path: Path) -> None:
    """1 GiB + 1 byte (1025 leaves under 2 parents): our CAR of it, read back by ipfs-car byte for byte."""
    src = inputs["unixfs-v1-2025"]["two-levels"]
    car = tmp_path / "two-levels.car"
    write_car(src, car, "unixfs-v1-2025")
    assert_ipfs_car_unpacks(car, src, tmp_path / "two-levels.out")
    car.unlink()


def assert_ipfs_car_unpacks(car: Path, src: Path, out: Path) -> None:
    ipfs_car_unpack(car, out)
    COUNTS["unpacked"] += 1
    if src.is_dir():
        assert tree_files(out) == tree_files(src)
    else:
        assert same_file(out, src)


def same_file(a: Path, b: Path) -> bool:
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(8 * 1024 * 1024), fb.read(8 * 1024 * 1024)
            if x != y:
                return False
            if not x:
                return True


@pytest.fixture(scope="module", autouse=True)
def _summary() -> object:
    yield
    if COUNTS["cids"]:
        report.record(
            f"hfscraper.ipfs: {COUNTS['cids']} CIDs and {COUNTS['cars']} CARs agreed with ipfs-unixfs-importer; "
            f"ipfs-car unpacked {COUNTS['unpacked']} of our CARs byte for byte"
        )


def test_missing_oracle_skips_or_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without `npm ci --prefix tests/js` the oracle tests skip naming the command; under CI they fail."""
    from tests.support import js_oracle

    monkeypatch.setattr(js_oracle, "JS_DIR", tmp_path)
    reason = js_oracle.unavailable_reason()
    assert reason is not None and "npm ci --prefix tests/js" in reason
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="npm ci --prefix tests/js"):
        js_oracle.require_js()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set, so the JS oracle tests must run"):
        js_oracle.require_js()


def test_known_difference_subfolders_count_toward_the_threshold(oracle: JsOracle, tmp_path: Path) -> None:
    """kubo (boxo `io/directory.go`) counts every link of a folder, subfolders included, when deciding to shard;
    the JS importer counts only files. 4100 subfolders x (30 + 34) bytes > 256 KiB: we shard as kubo does, and
    the JS importer's CID is our CID of the same folder left flat."""
    folder = tmp_path / "d"
    for i in range(4100):
        (folder / f"{i:030d}").mkdir(parents=True)
        (folder / f"{i:030d}" / "f").write_bytes(b"x")
    v0 = PROFILES["unixfs-v0-2015"]
    (js,) = oracle.cids([folder], "unixfs-v0-2015")
    assert path_cid(folder, v0) != js
    assert path_cid(folder, v0.with_(name="flat", hamt_estimation="disabled")) == js
