"""EntityStorePipeline and hfscraper.fsutil: atomic, idempotent writes that never leave the output folder."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from scrapy.exceptions import DropItem
from scrapy.utils.test import get_crawler

from hfscraper import fsutil
from hfscraper.hub import entity_folder_name
from hfscraper.items import DatasetItem, HubEntityItem, ModelItem, SpaceItem
from hfscraper.pipelines import entity_store
from hfscraper.pipelines.entity_store import EntityStorePipeline


def make_pipeline(output: Path | str, **settings: Any) -> EntityStorePipeline:
    crawler = get_crawler(settings_dict={"HFSCRAPER_OUTPUT_DIR": str(output), **settings})
    return EntityStorePipeline.from_crawler(crawler)


def process(pipeline: EntityStorePipeline, *items: Any) -> list[Any]:
    """Run process_item for each item (concurrently), returning results or the exceptions raised."""

    async def go() -> list[Any]:
        return await asyncio.gather(*(pipeline.process_item(i) for i in items), return_exceptions=True)

    return asyncio.run(go())


def stat(pipeline: EntityStorePipeline, key: str) -> Any:
    return pipeline.stats.get_value(key)


def expected_bytes(item: HubEntityItem) -> bytes:
    return (json.dumps(item.to_api(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def all_paths(root: Path) -> set[Path]:
    return {Path(d) / n for d, dirs, files in os.walk(root) for n in dirs + files}


PAYLOAD = {
    "_id": "621ffdc036468d709f17434d",
    "id": "openai-community/gpt2",
    "author": "openai-community",
    "lastModified": "2024-02-19T10:57:45.000Z",
    "tags": ["transformers", "license:mit"],
    "cardData": {"language": "en", "title": "Ünïcode ✓"},
    "createdAt": "2022-03-02T23:29:04.000Z",
}


# -- writing ------------------------------------------------------------------------------------------------


def test_writes_metadata_json(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path / "out")
    item = ModelItem.from_api(dict(PAYLOAD))
    (result,) = process(pipeline, item)
    assert result is item
    path = tmp_path / "out" / "models" / "openai-community__gpt2" / "metadata.json"
    data = path.read_bytes()
    assert data == expected_bytes(item)
    assert "Ünïcode ✓".encode() in data  # UTF-8, not \\u escapes
    assert data.endswith(b"}\n")
    assert json.loads(data) == PAYLOAD and list(json.loads(data)) == list(PAYLOAD)
    assert stat(pipeline, "hfscraper/store/written") == 1
    assert stat(pipeline, "hfscraper/store/encoded") is None
    umask = os.umask(0o022)
    os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask)


@pytest.mark.parametrize(("cls", "folder"), [(ModelItem, "models"), (DatasetItem, "datasets"), (SpaceItem, "spaces")])
def test_folder_per_type(tmp_path: Path, cls: type[HubEntityItem], folder: str) -> None:
    pipeline = make_pipeline(tmp_path)
    process(pipeline, cls.from_api({"id": "gpt2"}))
    assert (tmp_path / folder / "gpt2" / "metadata.json").is_file()


def test_unchanged_file_is_not_rewritten(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    process(pipeline, ModelItem.from_api(dict(PAYLOAD)))
    path = tmp_path / "models" / "openai-community__gpt2" / "metadata.json"
    before = path.stat()
    process(pipeline, ModelItem.from_api(dict(PAYLOAD)))
    after = path.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert stat(pipeline, "hfscraper/store/written") == 1 and stat(pipeline, "hfscraper/store/unchanged") == 1

    changed = dict(PAYLOAD, likes=5)
    process(pipeline, ModelItem.from_api(changed))
    assert json.loads(path.read_bytes()) == changed
    assert path.stat().st_ino != before.st_ino  # replaced by rename, never rewritten in place
    assert stat(pipeline, "hfscraper/store/written") == 2


def test_same_size_different_bytes_is_rewritten(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    process(pipeline, ModelItem.from_api({"id": "a", "likes": 1}))
    process(pipeline, ModelItem.from_api({"id": "a", "likes": 2}))
    assert json.loads((tmp_path / "models" / "a" / "metadata.json").read_text())["likes"] == 2
    assert stat(pipeline, "hfscraper/store/written") == 2


def test_no_temporary_files_left(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    items = [ModelItem.from_api({"id": f"o/m{i}", "likes": i}) for i in range(50)]
    process(pipeline, *items, *items)  # duplicates written concurrently
    names = {p.name for p in all_paths(tmp_path) if p.is_file()}
    assert names == {"metadata.json"}
    assert len(list((tmp_path / "models").iterdir())) == 50


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(tmp_path)
    process(pipeline, ModelItem.from_api({"id": "a", "likes": 1}))
    path = tmp_path / "models" / "a" / "metadata.json"
    original = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(5, "Input/output error")  # not a full disk: that stops the crawl (test_resource_failures)

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    (result,) = process(pipeline, ModelItem.from_api({"id": "a", "likes": 2}))
    assert isinstance(result, OSError)
    assert path.read_bytes() == original
    assert os.listdir(path.parent) == ["metadata.json"]
    assert stat(pipeline, "hfscraper/store/failed") == 1


def test_fsync_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(fsutil.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    process(make_pipeline(tmp_path / "a"), ModelItem.from_api({"id": "x/y"}))
    assert calls == []
    process(make_pipeline(tmp_path / "b", HFSCRAPER_STORE_FSYNC=True), ModelItem.from_api({"id": "x/y"}))
    assert len(calls) >= 2  # the file, its folder (and the new folder's parent)


def test_disk_work_runs_off_the_event_loop_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = entity_store.write_file
    monkeypatch.setattr(
        entity_store, "write_file", lambda *a, **k: (threads.append(threading.get_ident()), real(*a, **k))[1]
    )
    process(make_pipeline(tmp_path), ModelItem.from_api({"id": "a"}))
    assert threads and threads[0] != threading.get_ident()


def test_relative_output_dir_is_resolved_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    pipeline = make_pipeline("rel/out")
    assert pipeline.output_dir == (tmp_path / "rel" / "out").resolve() and pipeline.output_dir.is_absolute()
    monkeypatch.chdir("/")
    process(pipeline, ModelItem.from_api({"id": "a"}))
    assert (tmp_path / "rel" / "out" / "models" / "a" / "metadata.json").is_file()


def test_default_output_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    crawler = get_crawler(settings_dict={})
    assert EntityStorePipeline.from_crawler(crawler).output_dir == (tmp_path / "output").resolve()


def test_other_items_pass_through(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    item = {"id": "../../x"}
    assert process(pipeline, item) == [item]
    assert not tmp_path.joinpath("models").exists()


def test_invalid_unicode_in_values_is_escaped(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    payload = {"id": "a", "description": "bad \ud800 surrogate", "x": "é"}
    process(pipeline, DatasetItem.from_api(payload))
    data = (tmp_path / "datasets" / "a" / "metadata.json").read_bytes()
    assert json.loads(data) == payload and data.isascii()
    assert stat(pipeline, "hfscraper/store/ascii_fallback") == 1


# -- hostile ids --------------------------------------------------------------------------------------------

ENCODED_IDS = [
    "../../x", "../../etc/passwd", "..", ".", "/abs", "/etc/passwd", "a/b/c", "a/../../b", "a/./b",
    "..\\..\\x", "a\\b", "C:\\Windows", "CON", "nul", "aux.txt", "owner/x__y", "owner__x/y",
    "\u202etxt.exe", "org/\u202eevil", "x" * 300, "y" * 1000, "é" * 600, " ", "a/", "/",
    unicodedata.normalize("NFC", "org/café"), unicodedata.normalize("NFD", "org/café"), "~", "a:b",
]  # fmt: skip
REFUSED_IDS = [
    ("", "empty"),
    ("a\x00b", "control_character"),
    ("../\x00/x", "control_character"),
    ("a\nb", "control_character"),
    ("a\rb", "control_character"),
    ("\x1b[2J", "control_character"),
    ("a\x7f", "control_character"),
    ("a\x9b", "control_character"),
    ("x" * 1001, "too_long"),
    ("a\udc80", "invalid_unicode"),
]


def test_hostile_ids_never_escape_the_output_folder(tmp_path: Path) -> None:
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    (sandbox / "etc").mkdir()
    parent_before = set(os.listdir(tmp_path.parent))
    output = sandbox / "out"
    pipeline = make_pipeline(output)

    items = [ModelItem.from_api({"id": i, "likes": 1}) for i in ENCODED_IDS]
    results = process(pipeline, *items)
    assert all(isinstance(r, ModelItem) for r in results), results

    refused = [ModelItem(id=i) for i, _ in REFUSED_IDS] + [ModelItem(id=None), ModelItem(id=5)]  # type: ignore[arg-type]
    results = process(pipeline, *refused)
    assert all(isinstance(r, DropItem) for r in results), results

    # one folder per accepted id, each a direct child of output/models, holding the real id
    folders = sorted(p for p in (output / "models").iterdir())
    assert len(folders) == len(set(ENCODED_IDS))
    ids = set()
    for folder in folders:
        assert folder.parent == output / "models" and folder.is_dir() and not folder.is_symlink()
        assert os.listdir(folder) == ["metadata.json"]
        ids.add(json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["id"])
        assert folder.name == entity_folder_name(json.loads((folder / "metadata.json").read_text())["id"])
    assert ids == set(ENCODED_IDS)

    # nothing anywhere else: the sandbox holds only what it held plus the output tree, the tmp dir and its
    # parent gained nothing
    created = all_paths(sandbox) - {sandbox / "etc"}
    assert all(p == output or output in p.parents for p in created), sorted(created - {output})
    assert os.listdir(sandbox / "etc") == []
    assert set(os.listdir(tmp_path)) == {"sandbox"}
    assert set(os.listdir(tmp_path.parent)) == parent_before

    assert stat(pipeline, "hfscraper/store/encoded") == len(ENCODED_IDS)
    assert stat(pipeline, "hfscraper/store/written") == len(ENCODED_IDS)
    for reason in {r for _, r in REFUSED_IDS} | {"not_a_string"}:
        assert stat(pipeline, f"hfscraper/store/refused/{reason}"), reason
    assert stat(pipeline, "hfscraper/store/refused/control_character") == 7
    assert stat(pipeline, "hfscraper/store/refused/not_a_string") == 2


@pytest.mark.parametrize(("repo_id", "reason"), REFUSED_IDS)
def test_refused_ids_drop_the_item(tmp_path: Path, repo_id: str, reason: str, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = make_pipeline(tmp_path / "out")
    (result,) = process(pipeline, ModelItem(id=repo_id))
    assert isinstance(result, DropItem) and reason in str(result)
    assert stat(pipeline, f"hfscraper/store/refused/{reason}") == 1
    assert any("Not storing entity" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "out" / "models").exists() or not any((tmp_path / "out" / "models").iterdir())


def test_distinct_ids_get_distinct_folders(tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path)
    pairs = [
        ("owner__x/y", "owner/x__y"),
        (unicodedata.normalize("NFC", "o/é"), unicodedata.normalize("NFD", "o/é")),
        ("con", "CON"),
        ("a/b", "a__b"),
    ]
    for a, b in pairs:
        process(pipeline, ModelItem.from_api({"id": a}), ModelItem.from_api({"id": b}))
        assert entity_folder_name(a) != entity_folder_name(b)
    assert len(list((tmp_path / "models").iterdir())) == 2 * len(pairs)


@pytest.mark.parametrize("target", ["outside", "sibling", "dangling"])
def test_planted_symlink_is_not_followed(tmp_path: Path, target: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    output = tmp_path / "out"
    (output / "models" / "other__model").mkdir(parents=True)
    # A link out of the output folder, to another entity's folder inside it, or to nothing (yet).
    link_to = {"outside": outside, "sibling": output / "models" / "other__model", "dangling": tmp_path / "nothing"}
    os.symlink(link_to[target], output / "models" / "evil__model")
    pipeline = make_pipeline(output)
    (result,) = process(pipeline, ModelItem.from_api({"id": "evil/model"}))
    assert isinstance(result, DropItem)
    assert os.listdir(outside) == [] and os.listdir(output / "models" / "other__model") == []
    assert not (tmp_path / "nothing").exists()
    assert stat(pipeline, "hfscraper/store/refused/outside_output_dir") == 1


def test_folder_collision_is_refused_not_overwritten(tmp_path: Path) -> None:
    # What a case-insensitive file system does to `Org/Model` and `org/model`, simulated by hand.
    folder = tmp_path / "models" / "org__model"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"id": "Org/Model"}))
    pipeline = make_pipeline(tmp_path)
    (result,) = process(pipeline, ModelItem.from_api({"id": "org/model", "likes": 1}))
    assert isinstance(result, DropItem) and "already holds 'Org/Model'" in str(result)
    assert json.loads((folder / "metadata.json").read_text()) == {"id": "Org/Model"}
    assert stat(pipeline, "hfscraper/store/refused/folder_collision") == 1


def test_unreadable_old_file_is_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "org__model"
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_bytes(b"{truncated")
    pipeline = make_pipeline(tmp_path)
    process(pipeline, ModelItem.from_api({"id": "org/model"}))
    assert json.loads((folder / "metadata.json").read_text()) == {"id": "org/model"}


def test_symlinked_type_root_is_allowed(tmp_path: Path) -> None:
    # A user may point output/models at another disk: the check is made against the resolved root.
    disk = tmp_path / "disk"
    disk.mkdir()
    output = tmp_path / "out"
    output.mkdir()
    os.symlink(disk, output / "models")
    process(make_pipeline(output), ModelItem.from_api({"id": "a/b"}))
    assert (disk / "a__b" / "metadata.json").is_file()


# -- fsutil -------------------------------------------------------------------------------------------------


def test_write_if_changed(tmp_path: Path) -> None:
    path = tmp_path / "d" / "f.json"
    assert fsutil.write_if_changed(path, b"one") is True
    assert fsutil.write_if_changed(path, b"one") is False
    assert fsutil.write_if_changed(path, b"two") is True
    assert path.read_bytes() == b"two"
    assert fsutil.same_content(tmp_path / "missing", b"") is False
    assert fsutil.same_content(tmp_path / "d", b"") is False


def test_ensure_directory(tmp_path: Path) -> None:
    assert fsutil.ensure_directory(tmp_path / "a" / "b" / "c") is True
    assert fsutil.ensure_directory(tmp_path / "a" / "b" / "c") is False
    assert (tmp_path / "a" / "b" / "c").is_dir()


def test_leftover_temp_file_does_not_block_writes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fsutil.write_atomic(path, b"1")
    (tmp_path / f"{fsutil.TEMP_PREFIX}stale.part").write_bytes(b"junk")
    fsutil.write_atomic(path, b"2")
    assert path.read_bytes() == b"2"


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_sweep_dead_temp_files_keeps_live_and_foreign_names(tmp_path: Path) -> None:
    dead, mine, live = _dead_pid(), os.getpid(), os.getppid()
    p = fsutil.TEMP_PREFIX
    names = {
        f"{p}{dead}-1-2.part": False,  # a dead writer's: removed
        f"{p}{dead}-provenance_graph.json.part": False,
        f"{dead}-7.part": True,  # bare pid, but this sweep wants the prefix
        f"{p}{mine}-1-3.part": True,  # this process's own, maybe about to be renamed
        f"{p}{live}-1-4.part": True,  # a live process's
        f"{p}x{dead}-1.part": True,  # no pid where the pid goes
        f"{p}{dead}": True,  # no `-` after the pid
        "model.json": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / f"{p}{dead}-dir").mkdir()  # only files are removed
    assert fsutil.sweep_dead_temp_files(tmp_path) == 2
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(
        [*(n for n, kept in names.items() if kept), f"{p}{dead}-dir"]
    )
    # Several prefixes and a suffix (the CAR scratch folder: both forms; partial downloads: `.part` only).
    assert fsutil.sweep_dead_temp_files(tmp_path, prefixes=("",), suffix=".json") == 0
    assert fsutil.sweep_dead_temp_files(tmp_path, prefixes=(p, ""), suffix=".part") == 1
    assert not (tmp_path / f"{dead}-7.part").exists()
    assert fsutil.sweep_dead_temp_files(tmp_path / "missing") == 0
    assert fsutil.sweep_dead_temp_files(tmp_path / "model.json") == 0


# -- throughput (recorded in the report; kept loose so slow CI machines pass) -----------------------------


@pytest.mark.slow
def test_store_throughput(tmp_path: Path) -> None:
    import time

    pipeline = make_pipeline(tmp_path)
    items = [
        ModelItem.from_api({"_id": f"{i:024x}", "id": f"org{i % 100}/model-{i}", "tags": ["a"] * 20, "likes": i})
        for i in range(5000)
    ]
    start = time.perf_counter()

    async def go() -> None:
        sem = asyncio.Semaphore(100)  # Scrapy's CONCURRENT_ITEMS

        async def one(item: ModelItem) -> None:
            async with sem:
                await pipeline.process_item(item)

        await asyncio.gather(*(one(i) for i in items))

    asyncio.run(go())
    rate = len(items) / (time.perf_counter() - start)
    assert stat(pipeline, "hfscraper/store/written") == len(items)
    assert rate > 200


# -- ThreadBatcher ------------------------------------------------------------------------------------------


def test_thread_batcher_groups_calls_and_isolates_errors() -> None:
    from hfscraper.batching import ThreadBatcher

    calls: list[list[int]] = []
    main_thread = threading.get_ident()

    def work(n: int) -> int:
        assert threading.get_ident() != main_thread
        if n % 50 == 7:
            raise ValueError(f"bad {n}")
        return n * 2

    batcher: ThreadBatcher[int, int] = ThreadBatcher(work, max_size=64)
    real_run = batcher._run_batch
    batcher._run_batch = lambda args: (calls.append(list(args)), real_run(args))[1]

    async def go() -> list[Any]:
        return await asyncio.gather(*(batcher(n) for n in range(200)), return_exceptions=True)

    results = asyncio.run(go())
    for n, result in enumerate(results):
        if n % 50 == 7:
            assert isinstance(result, ValueError) and str(result) == f"bad {n}"
        else:
            assert result == n * 2
    assert [len(c) for c in calls] == [64, 64, 64, 8]
    assert sorted(x for c in calls for x in c) == list(range(200))


def test_thread_batcher_runs_whole_groups_where_it_is_told() -> None:
    """A group function (one transaction per group, say) on a given executor (the one thread that owns a
    connection): one submission per event-loop turn, each caller gets its own result or exception."""
    import concurrent.futures

    from hfscraper.batching import ThreadBatcher

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="owner")
    groups: list[tuple[str, list[int]]] = []

    def run_group(args: list[int]) -> list[tuple[bool, Any]]:
        groups.append((threading.current_thread().name, list(args)))
        return [(False, KeyError(n)) if n == 5 else (True, -n) for n in args]

    batcher: ThreadBatcher[int, int] = ThreadBatcher(None, max_size=8, batch_func=run_group, submit=executor.submit)

    async def go() -> tuple[list[Any], list[Any]]:
        first = await asyncio.gather(*(batcher(n) for n in range(10)), return_exceptions=True)
        second = await asyncio.gather(batcher(20), batcher(21))
        return first, second

    try:
        first, second = asyncio.run(go())
    finally:
        executor.shutdown()
    assert [r if not isinstance(r, KeyError) else "error" for r in first] == [
        0,
        -1,
        -2,
        -3,
        -4,
        "error",
        -6,
        -7,
        -8,
        -9,
    ]
    assert second == [-20, -21]
    assert [args for _, args in groups] == [list(range(8)), [8, 9], [20, 21]]
    assert all(name.startswith("owner") for name, _ in groups)
    with pytest.raises(TypeError):
        ThreadBatcher(None)

    # A group that cannot be handed over (the executor is shut down): every caller gets the error, none hangs.
    closed: ThreadBatcher[int, int] = ThreadBatcher(None, batch_func=run_group, submit=executor.submit)

    async def refused() -> list[Any]:
        return await asyncio.wait_for(asyncio.gather(*(closed(n) for n in range(3)), return_exceptions=True), 5)

    assert all(isinstance(r, RuntimeError) and "shutdown" in str(r) for r in asyncio.run(refused()))


def test_pipeline_batches_disk_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = make_pipeline(tmp_path)
    hops: list[int] = []
    real = asyncio.to_thread

    async def counting_to_thread(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(1)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)
    process(pipeline, *[ModelItem.from_api({"id": f"o/m{i}"}) for i in range(100)])
    assert stat(pipeline, "hfscraper/store/written") == 100
    assert 2 <= len(hops) <= 4  # 100 items in one turn: batches of at most 64
