"""`hfscraper.seal`: what changes an entity folder's seal, and what does not."""

from __future__ import annotations

import os
from pathlib import Path

from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.seal import entity_seal, folder_seal


def make_entity(root: Path) -> tuple[Path, Path]:
    folder = root / "models" / "org__m"
    (folder / "sub").mkdir(parents=True)
    (folder / "metadata.json").write_text('{"id": "org/m"}\n')
    (folder / "sub" / "config.json").write_bytes(b"0123456789")
    car = root / "car" / "models" / "org__m.car"
    car.parent.mkdir(parents=True)
    car.write_bytes(b"car")
    return folder, car


def test_the_seal_is_stable_and_names_the_folder_and_its_car(tmp_path: Path) -> None:
    folder, car = make_entity(tmp_path)
    sealed = entity_seal(tmp_path, tmp_path / "car", "model", "org/m")
    assert sealed is not None and sealed == folder_seal(folder, [car])
    assert sealed == entity_seal(tmp_path, tmp_path / "car", "model", "org/m")
    assert sealed != entity_seal(tmp_path, None, "model", "org/m")  # the CAR is part of it


def test_every_change_the_crawl_must_redo_breaks_the_seal(tmp_path: Path) -> None:
    folder, car = make_entity(tmp_path)
    sealed = folder_seal(folder, [car])
    target = folder / "sub" / "config.json"
    info = os.stat(target)

    target.write_bytes(b"0123456780")  # one byte, same size: the mtime moves
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    assert folder_seal(folder, [car]) != sealed
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert folder_seal(folder, [car]) == sealed  # what the seal cannot see is `scrapy verify`'s job

    (folder / "extra.txt").write_text("x")
    assert folder_seal(folder, [car]) != sealed
    (folder / "extra.txt").unlink()
    car.unlink()
    assert folder_seal(folder, [car]) != sealed


def test_leftovers_and_tombstones_do_not_count_and_a_missing_folder_has_no_seal(tmp_path: Path) -> None:
    folder, car = make_entity(tmp_path)
    sealed = folder_seal(folder, [car])
    (folder / f"{TEMP_PREFIX}123-x").write_text("partial")
    (folder / "tombstone.json").write_text("{}")
    assert folder_seal(folder, [car]) == sealed
    assert folder_seal(tmp_path / "models" / "nothing") is None
    assert entity_seal(tmp_path, None, "model", "") is None  # an id the store refuses has no folder


def test_an_entity_whose_car_is_built_on_demand_is_sealed_by_its_folder_alone(tmp_path: Path) -> None:
    from hfscraper.ipfs.pins import PinRow, record_pin
    from hfscraper.state import StateStore

    folder, car = make_entity(tmp_path)
    car.unlink()
    store = StateStore(tmp_path / "state.sqlite")
    try:
        # the filestore layout's pin: a root and a profile, no CAR file
        record_pin(store, PinRow("embedded", "model", "org/m", "bafy", "unixfs-v1-2025", None, "2025-01-01T00:00:00Z"))
        sealed = entity_seal(tmp_path, tmp_path / "car", "model", "org/m", store)
        assert sealed is not None and sealed == folder_seal(folder)
        car.write_bytes(b"a CAR of an older layout")  # not the entity's CAR: nothing to redo
        assert entity_seal(tmp_path, tmp_path / "car", "model", "org/m", store) == sealed
        (folder / "sub" / "config.json").write_bytes(b"changed")
        assert entity_seal(tmp_path, tmp_path / "car", "model", "org/m", store) != sealed
    finally:
        store.close()
