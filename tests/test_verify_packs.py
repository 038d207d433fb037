"""CAR packs (the default `HFSCRAPER_IPFS_CAR_LAYOUT=pack`) against a real crawl of the replica: few CAR files,
`scrapy car` cuts each entity's own CAR out of its pack byte for byte as the `entity` layout writes it, `scrapy
verify` finds a damaged entity range (that entity only) and a missing pack (each of its entities), and a repair
crawl restores them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfscraper.ipfs import read_car
from hfscraper.state import StateStore
from tests.support.crawl import REPO_ROOT, _scrapy_command
from tests.support.replica import ReplicaHandle, replica_fixture
from tests.test_verify import Archive, entity_ids, run_crawls, verify

replica = replica_fixture(models=30, datasets=6, spaces=0, seed=5)
PACK_LAYOUT = {"HFSCRAPER_IPFS_CAR_LAYOUT": "pack"}


@pytest.fixture(scope="module")
def archives(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, Archive]]:
    packed_root, single_root = tmp_path_factory.mktemp("packed"), tmp_path_factory.mktemp("single")
    packed = Archive(packed_root, packed_root / "out", packed_root / "state")
    single = Archive(single_root, single_root / "out", single_root / "state")
    run_crawls(replica, packed.out, PACK_LAYOUT)
    run_crawls(replica, single.out)  # the entity layout
    yield packed, single


def scrapy_car(archive: Archive, repo_type: str, repo_id: str, out: Path) -> subprocess.CompletedProcess[str]:
    command = [*_scrapy_command(), "car", repo_type, repo_id, "-o", str(out), "-s",
               f"HFSCRAPER_OUTPUT_DIR={archive.out}", "-s", f"HFSCRAPER_STATE_DIR={archive.state_dir}"]  # fmt: skip
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


def pins(archive: Archive) -> dict[str, tuple[str, int, int, str]]:
    store = StateStore(archive.state_file, create=False)
    try:
        return {
            row[0]: (row[1], row[2], row[3], row[4])
            for row in store.db.execute(
                "SELECT id, car_path, car_offset, car_length, root_cid FROM pins WHERE repo_type = 'model'"
            )
        }
    finally:
        store.close()


def test_packs_hold_every_entity_and_cut_out_byte_identical(archives: tuple[Archive, Archive], tmp_path: Path) -> None:
    packed, single = archives
    models = entity_ids(packed, "model")
    packs = sorted((packed.out / "car" / "packs" / "models").iterdir())
    assert 1 <= len(packs) <= len(models) // 5, "a pack per page of items, not a CAR per entity"
    assert not (packed.out / "car" / "models").exists()
    recorded = pins(packed)
    assert set(recorded) == set(models)
    held = {pack.name: set(read_car(pack)[0]) for pack in packs}
    for repo_id in models:
        car_path, _, _, root = recorded[repo_id]
        assert root in held[Path(car_path).name]
        out = tmp_path / "x.car"
        proc = scrapy_car(packed, "model", repo_id, out)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip().endswith(root)
        assert out.read_bytes() == single.car("model", repo_id).read_bytes()
    proc = scrapy_car(packed, "model", "nobody/nothing", tmp_path / "y.car")
    assert proc.returncode == 1 and "no CAR of model nobody/nothing" in proc.stderr and "Traceback" not in proc.stderr
    assert verify(packed).returncode == 0


def test_damaged_range_and_missing_pack_found_and_repaired(
    archives: tuple[Archive, Archive], replica: ReplicaHandle
) -> None:
    packed, _ = archives
    recorded = pins(packed)
    models = sorted(recorded)
    damaged = models[0]
    car_path, offset, length, _ = recorded[damaged]
    pack = packed.out / "car" / car_path
    data = bytearray(pack.read_bytes())
    data[offset + length // 2] ^= 0x01
    pack.write_bytes(bytes(data))
    proc = verify(packed, "--json", "--type", "model")
    assert proc.returncode == 1
    found = [(p["id"], p["kind"]) for p in json.loads(proc.stdout)["problems"]]
    assert found == [(damaged, "car")]  # the other entities of the same pack are intact
    (dataset_pack,) = (packed.out / "car" / "packs" / "datasets").iterdir()
    dataset_pack.unlink()
    proc = verify(packed, "--json", "--type", "dataset")
    found = sorted((p["id"], p["kind"]) for p in json.loads(proc.stdout)["problems"])
    assert found == [(i, "car") for i in entity_ids(packed, "dataset")] and found
    assert verify(packed, "--repair").returncode == 1
    run_crawls(replica, packed.out, PACK_LAYOUT)
    clean = verify(packed)
    assert clean.returncode == 0, clean.stdout
