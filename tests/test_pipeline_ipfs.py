"""IpfsPipeline on small entity trees: file and folder CIDs, ipfs_cid.txt, CARs, pins in the state and on a node."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.utils.test import get_crawler

from hfscraper.extensions.checkpoint import state_location
from hfscraper.ipfs import PROFILES, directory_cid, file_cid, read_car, unpack_car, write_car
from hfscraper.ipfs.filestore import FolderChangedError
from hfscraper.ipfs.kubo import KuboRpcClient
from hfscraper.ipfs.pins import entity_cids, pin_of, write_entity_car
from hfscraper.items import ModelItem
from hfscraper.pipelines import StageFailed
from hfscraper.pipelines.entity_store import EntityStorePipeline
from hfscraper.pipelines.ipfs import CID_FILE, IpfsPipeline
from hfscraper.state import EntityRecord, StateStore
from tests.support.ipfs_node import IpfsNode, free_port, ipfs_node_fixture

ipfs_node = ipfs_node_fixture()

ADDRESSED_OUT = {CID_FILE, "tombstone.json"}


#: Most tests here check the packs; the default layout (filestore, no CAR on disk) is asked for with DEFAULT_LAYOUT.
PACK_LAYOUT = {"HFSCRAPER_IPFS_CAR_LAYOUT": "pack"}
DEFAULT_LAYOUT = {"HFSCRAPER_IPFS_CAR_LAYOUT": None}


def settings_for(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    settings = {
        "HFSCRAPER_OUTPUT_DIR": str(tmp_path / "out"),
        "HFSCRAPER_STATE_DIR": str(tmp_path / "state"),
        **PACK_LAYOUT,
        **extra,
    }
    return {key: value for key, value in settings.items() if value is not None}


def model(repo_id: str = "org/model", sha: str = "a" * 40, **extra: Any) -> ModelItem:
    item = ModelItem.from_api({"_id": "x", "id": repo_id, "sha": sha, "lastModified": "2024-01-01T00:00:00.000Z"})
    for key, value in extra.items():
        setattr(item, key, value)
    return item


class Harness:
    """The entity store and the IPFS pipeline of one crawler, run on one event loop per call."""

    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.crawler = get_crawler(settings_dict=settings_for(tmp_path, **settings))
        self.store = EntityStorePipeline.from_crawler(self.crawler)
        self.ipfs = IpfsPipeline.from_crawler(self.crawler)
        self.output = Path(self.store.output_dir)

    def folder(self, item: ModelItem) -> Path:
        return self.output / "models" / item.id.replace("/", "__")

    def run(self, *items: ModelItem, files: dict[str, bytes] | None = None) -> list[Any]:
        """Store each item, put *files* into its folder, then open the IPFS pipeline, address them, stop."""

        async def go() -> list[Any]:
            for item in items:
                await self.store.process_item(item)
                for rel, content in (files or {}).items():
                    path = self.folder(item) / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
            await self.ipfs.open_spider()
            try:
                return await asyncio.gather(*(self.ipfs.process_item(i) for i in items), return_exceptions=True)
            finally:
                await self.ipfs.close_spider()
                await self.ipfs.engine_stopped()

        return asyncio.run(go())

    def stat(self, key: str) -> Any:
        assert self.crawler.stats is not None
        return self.crawler.stats.get_value(key)

    def state(self) -> StateStore:
        path, _ = state_location(self.crawler.settings)
        return StateStore(path)


def entity_car(h: Harness, repo_id: str = "org/model", repo_type: str = "model") -> Path:
    """The entity's own CAR, written from its pack or folder (what `scrapy car` writes) next to the output folder."""
    out = h.output.parent / f"{repo_id.replace('/', '__')}.entity.car"
    state = h.state()
    try:
        with open(out, "wb") as f:
            write_entity_car(state, h.ipfs.car_dir, repo_type, repo_id, f, output_dir=h.output)
    finally:
        state.close()
    return out


def tree_bytes(root: Path, leave_out: set[str] = frozenset()) -> dict[str, bytes]:  # type: ignore[assignment]
    out = {}
    for top, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(top, name), root).replace(os.sep, "/")
            if rel not in leave_out:
                out[rel] = Path(top, name).read_bytes()
    return out


def _write_car_bytes(folder: Path, tmp_path: Path) -> bytes:
    """What `write_car` (the entity layout) gives the folder."""
    out = tmp_path / "reference.car"
    write_car(folder, out, exclude={CID_FILE})
    return out.read_bytes()


FILES = {
    "README.md": b"# a model\n" * 1000,
    ".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
    "sub/weights.bin": os.urandom(1_500_000),
}


# -- embedded backend (no node) -------------------------------------------------------------------------------


def test_disabled_is_not_configured(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured):
        IpfsPipeline.from_crawler(get_crawler(settings_dict=settings_for(tmp_path, HFSCRAPER_IPFS_ENABLED=False)))


def test_addresses_an_entity_folder(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    item = model(
        files=[{"path": p, "status": "downloaded"} for p in FILES] + [{"path": "big.bin", "status": "skipped"}]
    )
    (result,) = h.run(item, files=FILES)
    assert result is item
    folder = h.folder(item)
    root = (folder / CID_FILE).read_text()
    assert root.endswith("\n") and root.count("\n") == 1
    root = root.strip()
    # ipfs_cid.txt is what `ipfs add -r --hidden` gives the folder without ipfs_cid.txt
    assert root == directory_cid(folder, exclude={CID_FILE}) and root.startswith("bafybei")
    # every listed file that is in the folder got its CID on the item; the skipped one did not
    cids = {f["path"]: f.get("cid") for f in item.files}
    assert cids == {**{p: file_cid(folder / p) for p in FILES}, "big.bin": None}
    # the pack lies outside the entity folder and names the root; the entity's own CAR cut from it has that
    # single root, unpacks to the folder's bytes and is byte for byte what write_car gives the folder
    (pack,) = (h.output / "car" / "packs" / "models").iterdir()
    assert read_car(pack)[0] == [root]
    car = entity_car(h)
    assert car.read_bytes() == _write_car_bytes(folder, tmp_path)
    roots, blocks = read_car(car)
    assert roots == [root] and sum(1 for _ in blocks) > 3
    unpack_car(car, tmp_path / "unpacked")
    assert tree_bytes(tmp_path / "unpacked") == tree_bytes(folder, {CID_FILE})
    assert (tmp_path / "unpacked" / ".gitattributes").is_file()  # hidden files are part of the folder
    # the state has every CID and the pin
    state = h.state()
    try:
        recorded = entity_cids(state, "model", "org/model")
        files_in_folder = {p: file_cid(folder / p) for p in ("metadata.json", *FILES)}
        assert recorded == {"": root, **files_in_folder}
        pin = pin_of(state, "embedded", "model", "org/model")
        assert pin is not None and pin.root_cid == root and pin.profile == "unixfs-v1-2025"
        assert pin.car_path == f"packs/models/{pack.name}" and pin.in_pack
    finally:
        state.close()
    assert h.stat("hfscraper/ipfs/entities") == 1 and h.stat("hfscraper/ipfs/files") == 4
    assert h.stat("hfscraper/ipfs/car/written") == 1 and h.stat("hfscraper/ipfs/pin/pinned") == 1
    assert h.stat("hfscraper/ipfs/cid_file/written") == 1 and h.stat("hfscraper/ipfs/failed") is None


def test_unchanged_folder_rewrites_nothing_and_changed_one_is_readdressed(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    item = model()
    first.run(item, files=FILES)
    folder = first.folder(item)
    (car,) = (first.output / "car" / "packs" / "models").iterdir()
    before = {p: p.stat().st_mtime_ns for p in (folder / CID_FILE, car)}
    old_root = (folder / CID_FILE).read_text().strip()

    second = Harness(tmp_path)
    second.run(model())
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert second.stat("hfscraper/ipfs/car/unchanged") == 1 and second.stat("hfscraper/ipfs/cid_file/unchanged") == 1
    assert second.stat("hfscraper/ipfs/pin/unchanged") == 1 and second.stat("hfscraper/ipfs/pin/pinned") is None

    third = Harness(tmp_path)
    third.run(model(sha="b" * 40), files={"README.md": b"changed\n"})
    new_root = (folder / CID_FILE).read_text().strip()
    assert new_root != old_root and new_root == directory_cid(folder, exclude={CID_FILE})
    # the new DAG went into a new pack; the old pack, which no pin points into any more, is gone
    (new_pack,) = (first.output / "car" / "packs" / "models").iterdir()
    assert new_pack != car and not car.exists() and read_car(new_pack)[0] == [new_root]
    assert read_car(entity_car(third))[0] == [new_root]
    assert third.stat("hfscraper/ipfs/pack/deleted") == 1
    assert third.stat("hfscraper/ipfs/car/written") == 1 and third.stat("hfscraper/ipfs/pin/pinned") == 1
    state = third.state()
    try:
        pin = pin_of(state, "embedded", "model", "org/model")
        assert pin is not None and pin.root_cid == new_root
    finally:
        state.close()


def test_default_layout_writes_no_car_and_builds_the_entity_layouts_car_from_the_folder(tmp_path: Path) -> None:
    h = Harness(tmp_path / "filestore", **DEFAULT_LAYOUT)
    item = model(files=[{"path": p, "status": "downloaded"} for p in FILES])
    h.run(item, files=FILES)
    folder = h.folder(item)
    root = (folder / CID_FILE).read_text().strip()
    assert root == directory_cid(folder, exclude={CID_FILE})
    assert not (h.output / "car").exists()  # not a byte, not an inode
    assert {f["path"]: f.get("cid") for f in item.files} == {p: file_cid(folder / p) for p in FILES}
    state = h.state()
    try:
        assert entity_cids(state, "model", "org/model")[""] == root
        pin = pin_of(state, "embedded", "model", "org/model")
        assert pin is not None and pin.root_cid == root and pin.profile == "unixfs-v1-2025"
        assert pin.car_path is None and not pin.in_pack
    finally:
        state.close()
    assert h.stat("hfscraper/ipfs/car/on_demand") == 1 and h.stat("hfscraper/ipfs/car/written") is None
    assert h.stat("hfscraper/ipfs/pin/pinned") == 1 and h.stat("hfscraper/ipfs/pack/written") is None
    # the CAR built on demand is byte for byte the one the entity layout writes for the same folder
    entity = Harness(tmp_path / "entity", HFSCRAPER_IPFS_CAR_LAYOUT="entity")
    entity.run(model(files=[{"path": p, "status": "downloaded"} for p in FILES]), files=FILES)
    (written,) = (entity.output / "car" / "models").iterdir()
    car = entity_car(h)
    assert car.read_bytes() == written.read_bytes() == _write_car_bytes(folder, tmp_path)
    unpack_car(car, tmp_path / "unpacked")
    assert tree_bytes(tmp_path / "unpacked") == tree_bytes(folder, {CID_FILE})

    # unchanged: nothing recorded again
    again = Harness(tmp_path / "filestore", **DEFAULT_LAYOUT)
    again.run(model())
    assert again.stat("hfscraper/ipfs/pin/unchanged") == 1 and again.stat("hfscraper/ipfs/pin/pinned") is None
    assert not (h.output / "car").exists()


def test_a_damaged_folder_has_no_car_until_a_crawl_restores_it(tmp_path: Path) -> None:
    h = Harness(tmp_path, **DEFAULT_LAYOUT)
    item = model()
    h.run(item, files=FILES)
    folder = h.folder(item)
    root = (folder / CID_FILE).read_text().strip()
    reference = entity_car(h).read_bytes()
    metadata = folder / "metadata.json"
    assert b"a" * 40 in metadata.read_bytes()
    metadata.write_bytes(metadata.read_bytes().replace(b"a" * 40, b"b" * 40, 1))  # a damaged byte
    for discardable in (False, True):
        out = tmp_path / f"refused-{discardable}.car"
        state = h.state()
        try:
            with open(out, "wb") as f, pytest.raises(FolderChangedError) as refused:
                write_entity_car(state, h.ipfs.car_dir, "model", "org/model", f, output_dir=h.output,
                                 discardable=discardable)  # fmt: skip
        finally:
            state.close()
        message = str(refused.value)
        assert f"recorded root {root}" in message and "re-crawl" in message and "\n" not in message
    assert out.stat().st_size > 0 and tmp_path.joinpath("refused-False.car").stat().st_size == 0  # hashed first
    # a crawl stores the entity again: its folder, and so its CAR, are restored
    again = Harness(tmp_path, **DEFAULT_LAYOUT)
    again.run(model())
    assert (folder / CID_FILE).read_text().strip() == root and entity_car(again).read_bytes() == reference


def test_switching_layouts_releases_or_keeps_the_cars(tmp_path: Path) -> None:
    packed = Harness(tmp_path, **PACK_LAYOUT)
    item = model()
    packed.run(item, model("org/other"), files=FILES)
    (pack,) = (packed.output / "car" / "packs" / "models").iterdir()
    reference = entity_car(packed).read_bytes()
    # pack -> filestore: an entity addressed again loses its CAR; the pack lives while another pin points into it
    first = Harness(tmp_path, **DEFAULT_LAYOUT)
    first.run(model())
    assert pack.exists() and first.stat("hfscraper/ipfs/pin/pinned") == 1
    assert entity_car(first).read_bytes() == reference
    other = tmp_path / "other.car"
    state = first.state()
    try:
        assert pin_of(state, "embedded", "model", "org/model").car_path is None  # type: ignore[union-attr]
        with open(other, "wb") as f:  # the entity not addressed since: still served by its pack
            write_entity_car(state, first.ipfs.car_dir, "model", "org/other", f, output_dir=first.output)
    finally:
        state.close()
    assert read_car(other)[0] == [(first.output / "models" / "org__other" / CID_FILE).read_text().strip()]
    second = Harness(tmp_path, **DEFAULT_LAYOUT)
    second.run(model("org/other"))
    assert not pack.exists() and second.stat("hfscraper/ipfs/pack/deleted") == 1  # released with its last pin
    # filestore -> pack: the entity goes into a new pack when it is next addressed
    back = Harness(tmp_path, **PACK_LAYOUT)
    back.run(model())
    (repacked,) = (packed.output / "car" / "packs" / "models").iterdir()
    assert back.stat("hfscraper/ipfs/car/written") == 1 and entity_car(back).read_bytes() == reference
    state = back.state()
    try:
        pin = pin_of(state, "embedded", "model", "org/model")
        assert pin is not None and pin.car_path == f"packs/models/{repacked.name}" and pin.in_pack
    finally:
        state.close()


def test_bookkeeping_files_are_not_part_of_the_cid(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    item = model()
    h.run(item, files=FILES)
    folder = h.folder(item)
    clean = (folder / CID_FILE).read_text().strip()
    (folder / "tombstone.json").write_text('{"id": "org/model", "deletedAt": "2026-01-01T00:00:00.000Z"}\n')
    (folder / ".hfscraper-tmp-999-1-1.part").write_bytes(b"half a write")
    (folder / "sub" / ".hfscraper-tmp-999-1-2.part").write_bytes(b"another")
    again = Harness(tmp_path)
    again.run(model())
    assert (folder / CID_FILE).read_text().strip() == clean
    assert clean == directory_cid(
        folder, exclude=ADDRESSED_OUT | {".hfscraper-tmp-999-1-1.part", "sub/.hfscraper-tmp-999-1-2.part"}
    )
    assert again.stat("hfscraper/ipfs/car/unchanged") == 1


@pytest.mark.parametrize("profile", list(PROFILES))
def test_each_profile(tmp_path: Path, profile: str) -> None:
    h = Harness(tmp_path, HFSCRAPER_IPFS_PROFILE=profile, HFSCRAPER_IPFS_CAR_DIR=str(tmp_path / "cars"))
    item = model(files=[{"path": "README.md"}])
    h.run(item, files={"README.md": b"x" * 600_000})
    folder = h.folder(item)
    root = (folder / CID_FILE).read_text().strip()
    assert root == directory_cid(folder, PROFILES[profile], exclude={CID_FILE})
    assert item.files[0]["cid"] == file_cid(folder / "README.md", profile)
    assert read_car(entity_car(h))[0] == [root] and entity_car(h).is_relative_to(tmp_path)
    assert [p.name for p in (tmp_path / "cars" / "packs").iterdir()] == ["models"]
    assert root.startswith("Qm" if profile == "unixfs-v0-2015" else "bafy")


def test_missing_folder_fails_the_stage(tmp_path: Path) -> None:
    h = Harness(tmp_path)

    async def go() -> Any:
        await h.ipfs.open_spider()
        try:
            return await h.ipfs.process_item(model("org/never-stored"))
        finally:
            await h.ipfs.engine_stopped()

    with pytest.raises(StageFailed, match="no metadata.json") as info:
        asyncio.run(go())
    assert info.value.stage == "ipfs"
    assert h.stat("hfscraper/ipfs/failed") == 1 and h.stat("hfscraper/ipfs/failed/folder") == 1


def test_unpin_deleted_embedded(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.run(model("org/kept"), model("org/gone"))
    state = h.state()
    try:
        crawl = state.create_crawl(
            spider="models", repo_type="model", listing_key="k", scope_key="s", listing={}, mode="full",
            since=None, max_items=0, sweep=True,
        )  # fmt: skip
        state.record_entities(
            crawl.crawl_id,
            [EntityRecord("model", i, "a" * 40, None, "", ("stored",)) for i in ("org/kept", "org/gone")],
        )
        # a later sweep did not see org/gone
        assert state.tombstone("model", crawl.crawl_id + 1, ["org/gone"], "2026-01-01T00:00:00.000Z") == 1
    finally:
        state.close()
    h2 = Harness(tmp_path, HFSCRAPER_IPFS_UNPIN_DELETED=True)
    h2.run()
    state = h2.state()
    try:
        assert pin_of(state, "embedded", "model", "org/gone") is None
        assert pin_of(state, "embedded", "model", "org/kept") is not None
    finally:
        state.close()
    assert h2.stat("hfscraper/ipfs/unpin/deleted") == 1
    # the CAR of a deleted entity stays on disk, like its folder: its pack is kept
    (pack,) = (h2.output / "car" / "packs" / "models").iterdir()
    gone = (h2.folder(model("org/gone")) / CID_FILE).read_text().strip()
    assert gone in read_car(pack)[0]


# -- kubo backend (a real node) --------------------------------------------------------------------------------


def node_pins(node: IpfsNode, root: str) -> bool:
    async def go() -> bool:
        async with KuboRpcClient(node.api_url) as client:
            return await client.pin_ls(root)

    return asyncio.run(go())


def test_kubo_backend_pins_the_folder_root(ipfs_node: IpfsNode, tmp_path: Path) -> None:
    kubo = {
        "HFSCRAPER_IPFS_BACKEND": "kubo",
        "HFSCRAPER_IPFS_API": ipfs_node.api_url,
        "HFSCRAPER_IPFS_VERIFY_ADD": True,
        **DEFAULT_LAYOUT,  # the node imports the blocks from CARs: the default layout is packs with kubo
    }
    h = Harness(tmp_path, **kubo)
    item = model("org/kubo-model", files=[{"path": p} for p in FILES])
    (result,) = h.run(item, files=FILES)
    assert result is item
    folder = h.folder(item)
    root = (folder / CID_FILE).read_text().strip()
    assert root == directory_cid(folder, exclude={CID_FILE})
    assert node_pins(ipfs_node, root)
    assert h.stat("hfscraper/ipfs/pin/pinned") == 1
    assert h.stat("hfscraper/ipfs/verify/matched") == 4  # metadata.json and the three files, added on the node
    state = h.state()
    try:
        pin = pin_of(state, "kubo", "model", "org/kubo-model")
        assert pin is not None and pin.root_cid == root and pin.in_pack
    finally:
        state.close()

    # unchanged: confirmed with pin/ls, not imported again
    again = Harness(tmp_path, **kubo)
    again.run(model("org/kubo-model"))
    assert again.stat("hfscraper/ipfs/pin/unchanged") == 1 and again.stat("hfscraper/ipfs/pin/pinned") is None

    # a new version: the new root is pinned, the old one unpinned
    changed = Harness(tmp_path, **kubo)
    changed.run(model("org/kubo-model", sha="c" * 40), files={"README.md": b"new readme\n"})
    new_root = (folder / CID_FILE).read_text().strip()
    assert new_root != root and node_pins(ipfs_node, new_root) and not node_pins(ipfs_node, root)
    assert changed.stat("hfscraper/ipfs/unpin/superseded") == 1


def test_kubo_node_down_closes_the_spider(tmp_path: Path) -> None:
    h = Harness(
        tmp_path, HFSCRAPER_IPFS_BACKEND="kubo", HFSCRAPER_IPFS_API=f"http://127.0.0.1:{free_port()}",
        HFSCRAPER_IPFS_CONNECT_TIMEOUT=2,
    )  # fmt: skip
    h.ipfs.backend = None

    async def go() -> None:
        try:
            await h.ipfs.open_spider()
        finally:
            await h.ipfs.engine_stopped()

    with pytest.raises(CloseSpider) as info:
        asyncio.run(go())
    assert info.value.reason == "ipfs_unavailable"


def test_kubo_unpins_deleted_entities(ipfs_node: IpfsNode, tmp_path: Path) -> None:
    kubo = {"HFSCRAPER_IPFS_BACKEND": "kubo", "HFSCRAPER_IPFS_API": ipfs_node.api_url}
    h = Harness(tmp_path, **kubo)
    h.run(model("org/k-kept"), model("org/k-gone"))
    roots = {
        i: (h.output / "models" / i.replace("/", "__") / CID_FILE).read_text().strip()
        for i in ("org/k-kept", "org/k-gone")
    }
    assert all(node_pins(ipfs_node, r) for r in roots.values())
    state = h.state()
    try:
        crawl = state.create_crawl(
            spider="models", repo_type="model", listing_key="k", scope_key="s", listing={}, mode="full",
            since=None, max_items=0, sweep=True,
        )  # fmt: skip
        state.record_entities(
            crawl.crawl_id, [EntityRecord("model", i, "a" * 40, None, "", ("stored",)) for i in roots]
        )
        state.tombstone("model", crawl.crawl_id + 1, ["org/k-gone"], "2026-01-01T00:00:00.000Z")
    finally:
        state.close()
    # not configured: nothing is unpinned
    Harness(tmp_path, **kubo).run()
    assert node_pins(ipfs_node, roots["org/k-gone"])
    h2 = Harness(tmp_path, HFSCRAPER_IPFS_UNPIN_DELETED=True, **kubo)
    h2.run()
    assert not node_pins(ipfs_node, roots["org/k-gone"]) and node_pins(ipfs_node, roots["org/k-kept"])
    assert h2.stat("hfscraper/ipfs/unpin/deleted") == 1


def test_a_node_cid_that_differs_fails_the_stage(
    ipfs_node: IpfsNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node that builds another DAG for a file (here: told another chunk size) makes the entity fail, loudly."""
    import hfscraper.ipfs.kubo as kubo

    real = kubo.add_params
    monkeypatch.setattr(kubo, "add_params", lambda profile: {**real(profile), "chunker": "size-262144"})
    h = Harness(
        tmp_path, HFSCRAPER_IPFS_BACKEND="kubo", HFSCRAPER_IPFS_API=ipfs_node.api_url, HFSCRAPER_IPFS_VERIFY_ADD=True
    )
    (result,) = h.run(model("org/mismatch"), files={"weights.bin": os.urandom(600_000)})
    assert isinstance(result, StageFailed) and result.stage == "ipfs"
    assert "the node answered" in str(result)
    assert h.stat("hfscraper/ipfs/failed/mismatch") == 1 and h.stat("hfscraper/ipfs/pin/pinned") is None


def test_unfinished_cars_of_killed_runs_are_swept(tmp_path: Path) -> None:
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    scratch = tmp_path / "out" / "car" / ".tmp"
    scratch.mkdir(parents=True)
    leftovers = [f"{dead_pid}-models-org__a.car", f".hfscraper-tmp-{dead_pid}-1-2.car.part"]
    kept = [f"{os.getpid()}-models-org__b.car", f".hfscraper-tmp-{os.getpid()}-1-3.car.part", "unrelated.txt"]
    for name in leftovers + kept:
        (scratch / name).write_bytes(b"partial")
    h = Harness(tmp_path)
    h.run(model(), files={"README.md": b"readme\n"})
    assert sorted(os.listdir(scratch)) == sorted(kept)  # this run's own CAR went through and left nothing
    assert read_car(entity_car(h))[0] == [(h.folder(model()) / CID_FILE).read_text().strip()]


def test_a_batch_is_one_pack_and_a_bad_entity_fails_alone(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    good, bad, other = model("org/good"), model("org/bad"), model("org/other")

    async def go() -> list[Any]:
        for item in (good, bad, other):
            await h.store.process_item(item)
        os.mkfifo(h.folder(bad) / "a-fifo")  # UnixFS cannot hold it: this entity fails, half-way through its DAG
        await h.ipfs.open_spider()
        try:
            return await asyncio.gather(*(h.ipfs.process_item(i) for i in (good, bad, other)), return_exceptions=True)
        finally:
            await h.ipfs.engine_stopped()

    results = asyncio.run(go())
    assert results[0] is good and results[2] is other
    assert isinstance(results[1], StageFailed) and "a-fifo" in str(results[1])
    assert not (h.folder(bad) / CID_FILE).exists()
    (pack,) = (h.output / "car" / "packs" / "models").iterdir()
    roots = [(h.folder(i) / CID_FILE).read_text().strip() for i in (good, other)]
    assert read_car(pack)[0] == [*roots, roots[0]]  # the failed entity's slot repeats a root
    assert sum(1 for _ in read_car(pack)[1]) == sum(1 for i in (good, other) for _ in read_car(entity_car(h, i.id))[1])
    for item in (good, other):
        assert entity_car(h, item.id).read_bytes() == _write_car_bytes(h.folder(item), tmp_path)
    assert h.stat("hfscraper/ipfs/batches") == 1 and h.stat("hfscraper/ipfs/pack/written") == 1
    assert h.stat("hfscraper/ipfs/failed/folder") == 1 and h.stat("hfscraper/ipfs/entities") == 2


def test_a_symlinked_entity_folder_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "metadata.json").write_text('{"id": "org/linked"}\n')
    (h.output / "models").mkdir(parents=True)
    os.symlink(elsewhere, h.folder(model("org/linked")))

    async def go() -> Any:
        await h.ipfs.open_spider()
        try:
            return await h.ipfs.process_item(model("org/linked"))
        finally:
            await h.ipfs.engine_stopped()

    with pytest.raises(StageFailed, match="symbolic link"):
        asyncio.run(go())
    assert not (elsewhere / CID_FILE).exists()
