"""The crash-safe crawl state: the SQLite store, the page tracker, and the deltafetch decisions over them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from scrapy import Request
from scrapy.http import TextResponse
from scrapy.utils.test import get_crawler

from hfscraper.extensions.checkpoint import CheckpointExtension, listing_keys
from hfscraper.items import ModelItem
from hfscraper.middlewares.deltafetch import DUPLICATE, UNCHANGED, DeltaFetchSpiderMiddleware, judge
from hfscraper.pipelines.entity_store import METADATA_FILE
from hfscraper.spiders.models import ModelsSpider
from hfscraper.state import (
    SCHEMA_VERSION,
    TOMBSTONE_FILE,
    Checkpoint,
    EntityRecord,
    PageTracker,
    StateError,
    StateStore,
    entity_folder,
    remove_tombstone,
    state_file_path,
    sweep_leftovers,
    write_tombstone,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def new_crawl(store: StateStore, **overrides: Any) -> int:
    identity = {"type": "model", "sort": "createdAt", "max_items": 0, "since": None, **overrides}
    listing_key, scope_key = listing_keys(identity)
    crawl = store.create_crawl(
        spider="models", repo_type="model", listing_key=listing_key, scope_key=scope_key, listing=identity,
        mode="full", since=None, max_items=int(identity["max_items"]), sweep=True,
    )  # fmt: skip
    return crawl.crawl_id


def record(repo_id: str, sha: str = "a" * 40, modified: str = "2024-01-01T00:00:00.000Z") -> EntityRecord:
    return EntityRecord("model", repo_id, sha, modified, "shape1", ("stored",))


# -- the store ------------------------------------------------------------------------------------------------


class TestStore:
    def test_wal_mode_schema_version_and_reopen(self, tmp_path: Path) -> None:
        path = tmp_path / "s" / "state.sqlite3"
        store = StateStore(path)
        assert store.journal_mode() == "wal"
        assert store.meta()["schema_version"] == str(SCHEMA_VERSION)
        crawl_id = new_crawl(store)
        store.record_entities(crawl_id, [record("org/a")])
        store.close()
        reopened = StateStore(path)
        assert reopened.journal_mode() == "wal"
        assert set(reopened.entities("model", ["org/a", "org/b"])) == {"org/a"}
        assert reopened.crawl(crawl_id) is not None
        reopened.close()

    def test_fsync_setting_selects_synchronous_full(self, tmp_path: Path) -> None:
        normal = StateStore(tmp_path / "n.sqlite3")
        full = StateStore(tmp_path / "f.sqlite3", fsync=True)
        # 1 = NORMAL, 2 = FULL
        assert normal.db.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert full.db.execute("PRAGMA synchronous").fetchone()[0] == 2

    def test_newer_schema_and_garbage_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "state.sqlite3"
        StateStore(path).set_meta("schema_version", str(SCHEMA_VERSION + 1))
        with pytest.raises(StateError, match="schema version"):
            StateStore(path)
        garbage = tmp_path / "garbage.sqlite3"
        garbage.write_bytes(b"this is not a database" * 100)
        with pytest.raises(StateError):
            StateStore(garbage)
        with pytest.raises(StateError, match="no state file"):
            StateStore(tmp_path / "absent.sqlite3", create=False)

    def test_one_state_file_per_output_folder(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "out").mkdir()
        a = state_file_path("state", tmp_path / "out")
        assert a == state_file_path("state", "out") == state_file_path("state", "./out/")
        assert a.parent == Path("state") and a.name.startswith("hfscraper-out-") and a.suffix == ".sqlite3"
        assert state_file_path("state", tmp_path / "other") != a
        assert state_file_path("state", tmp_path / "x" / "out") != a  # same folder name, other path

    def test_checkpoints_and_what_was_seen(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path / "state.sqlite3")
        crawl_id = new_crawl(store)
        key = store.crawl(crawl_id).listing_key  # type: ignore[union-attr]
        store.record_entities(crawl_id - 0, [record("org/a")])
        later = new_crawl(store, sort="likes")
        store.save_checkpoint(
            Checkpoint(key, crawl_id, "chain1", "http://hub/api/models?cursor=x", 3, 200,
                       newest_seen="2024-05-01T00:00:00.000Z", seen=(("model", "org/a"),),
                       request_keys=(("models", "k1"),))
        )  # fmt: skip
        cursor = store.cursor(key)
        assert cursor is not None
        assert (cursor.next_url, cursor.page_seq, cursor.items_seen, cursor.done) == (
            "http://hub/api/models?cursor=x", 3, 200, False,
        )  # fmt: skip
        assert store.crawl(crawl_id).newest_seen == "2024-05-01T00:00:00.000Z"  # type: ignore[union-attr]
        assert store.entities("model", ["org/a"])["org/a"].seen_crawl_id == crawl_id
        assert store.known_request_keys("models", ["k1", "k2"]) == {"k1"}
        # an older newest_seen never lowers it; the last page of a chain is `done`
        store.save_checkpoint(Checkpoint(key, crawl_id, "chain1", None, 4, 210, newest_seen="2020-01-01T00:00:00.000Z"))
        assert store.cursor(key).done and store.cursor(key).next_url is None  # type: ignore[union-attr]
        assert store.crawl(crawl_id).newest_seen == "2024-05-01T00:00:00.000Z"  # type: ignore[union-attr]
        assert store.unfinished_crawl(key).crawl_id == crawl_id  # type: ignore[union-attr]
        assert later != crawl_id

    def test_complete_crawl_clears_the_cursor_and_sets_a_safe_watermark(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path / "state.sqlite3")
        first = new_crawl(store)
        key = store.crawl(first).listing_key  # type: ignore[union-attr]
        store.save_checkpoint(Checkpoint(key, first, "c", None, 0, 1, newest_seen="2024-05-01T12:00:00.000Z"))
        done = store.complete_crawl(first, "finished", 600)
        assert done.complete and done.finish_reason == "finished" and store.cursor(key) is None
        # newest seen, minus the crawl's duration and the margin (a change during the crawl is newer than that)
        assert "2024-05-01T11:49:00.000Z" <= done.watermark <= "2024-05-01T11:50:00.000Z"  # type: ignore[operator]
        assert store.last_cover(done.scope_key).crawl_id == first  # type: ignore[union-attr]
        assert store.unfinished_crawl(key) is None
        # a later crawl's watermark never goes below what was known when it started (its clock floor)
        store.record_entities(first, [record("org/a", modified="2024-05-01T12:00:00.000Z")])
        second = new_crawl(store)
        store.save_checkpoint(Checkpoint(key, second, "c", None, 0, 1, newest_seen="2024-05-01T12:00:00.000Z"))
        assert store.complete_crawl(second, "finished", 600).watermark == "2024-05-01T12:00:00.000Z"
        # max_items crawls never give a watermark to incremental crawls
        capped = new_crawl(store, max_items=5)
        assert store.complete_crawl(capped, "finished", 0).scope_key == done.scope_key
        assert store.last_cover(done.scope_key).crawl_id == second  # type: ignore[union-attr]

    def test_entities_tombstones_and_restores(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path / "state.sqlite3")
        first = new_crawl(store)
        assert store.record_entities(first, [record("org/a"), record("org/b"), record("org/c")]) == []
        second = new_crawl(store)
        store.record_entities(second, [record("org/a", sha="b" * 40)])
        store.save_seen(second, [("model", "org/b")], [])
        assert store.unseen_live("model", second) == ["org/c"]
        assert store.tombstone("model", second, ["org/c"], "2026-01-01T00:00:00.000Z") == 1
        assert store.entity_counts() == {"model": {"live": 2, "deleted": 1}}
        state = store.entities("model", ["org/a", "org/c"])
        assert state["org/a"].sha == "b" * 40 and state["org/a"].first_crawl_id == first
        assert state["org/a"].stored_crawl_id == second and state["org/c"].deleted_at == "2026-01-01T00:00:00.000Z"
        third = new_crawl(store)
        assert store.record_entities(third, [record("org/c")]) == [("model", "org/c")]
        assert store.entity_counts() == {"model": {"live": 3, "deleted": 0}}

    def test_stages_and_reset(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path / "state.sqlite3")
        crawl_id = new_crawl(store)
        store.record_entities(crawl_id, [record("org/a")])
        store.mark_stage("model", "org/a", "files")
        assert store.entities("model", ["org/a"])["org/a"].stages == {"stored", "files"}
        store.save_seen(crawl_id, [], [("models", "k")])
        assert store.reset_stages("model", "models") == 1
        assert store.entities("model", ["org/a"])["org/a"].stages == frozenset()
        assert store.known_request_keys("models", ["k"]) == set()

    def test_a_killed_writer_leaves_only_whole_transactions(self, tmp_path: Path) -> None:
        """kill -9 a process in the middle of its writes: every transaction is all there or not at all."""
        path = tmp_path / "state.sqlite3"
        child = textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(REPO_ROOT)!r})
            from hfscraper.state import Checkpoint, EntityRecord, StateStore
            store = StateStore({str(path)!r})
            crawl = store.create_crawl(spider="models", repo_type="model", listing_key="k", scope_key="s",
                                       listing={{}}, mode="full", since=None, max_items=0, sweep=True)
            batch = 0
            while True:
                records = [EntityRecord("model", f"org/m-{{batch}}-{{i}}", "a" * 40, None, "x", ("stored",))
                           for i in range(200)]
                store.record_entities(crawl.crawl_id, records)
                store.save_checkpoint(Checkpoint("k", crawl.crawl_id, "c", f"http://hub/?cursor={{batch}}", batch,
                                                 (batch + 1) * 200))
                print(batch, flush=True)
                batch += 1
            """
        )
        process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        committed = -1
        deadline = time.monotonic() + 30
        while committed < 20 and time.monotonic() < deadline:
            committed = int(process.stdout.readline())
        time.sleep(0.013)  # somewhere inside a later transaction
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert committed >= 20

        store = StateStore(path)
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = store.db.execute("SELECT count(*) FROM entities").fetchone()[0]
        assert count % 200 == 0 and count >= (committed + 1) * 200
        cursor = store.cursor("k")
        assert cursor is not None and cursor.page_seq >= committed
        # the checkpoint never runs ahead of the records it stands for
        assert cursor.items_seen <= count and cursor.next_url == f"http://hub/?cursor={cursor.page_seq}"
        batches = {row[0].rsplit("-", 1)[0] for row in store.db.execute("SELECT id FROM entities")}
        assert len(batches) == count // 200


# -- the entity tree ------------------------------------------------------------------------------------------


def test_tombstone_files_and_leftover_sweep(tmp_path: Path) -> None:
    folder = entity_folder(tmp_path, "model", "org/a")
    assert folder == tmp_path / "models" / "org__a"
    assert not write_tombstone(tmp_path, "model", "org/a", "2026-01-01T00:00:00.000Z")  # no folder: nothing
    folder.mkdir(parents=True)
    (folder / METADATA_FILE).write_text("{}")
    (folder / ".hfscraper-tmp-999999-1-1.part").write_text("half")
    (folder / f".hfscraper-tmp-{os.getpid()}-1-1.part").write_text("mine, being renamed")
    assert write_tombstone(tmp_path, "model", "org/a", "2026-01-01T00:00:00.000Z")
    assert json.loads((folder / TOMBSTONE_FILE).read_text()) == {"id": "org/a", "deletedAt": "2026-01-01T00:00:00.000Z"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [METADATA_FILE, TOMBSTONE_FILE, f".hfscraper-tmp-{os.getpid()}-1-1.part"]
    )
    assert sweep_leftovers(tmp_path, "model", "org/a") == 0
    assert remove_tombstone(tmp_path, "model", "org/a") and not remove_tombstone(tmp_path, "model", "org/a")
    assert entity_folder(tmp_path, "model", "bad\x00id") is None


# -- the page tracker -----------------------------------------------------------------------------------------


class TestPageTracker:
    def test_items_finishing_out_of_order(self) -> None:
        tracker = PageTracker(first_seq=5)
        tracker.register(5, 2, "u6", 2)
        tracker.register(6, 1, "u7", 3)
        tracker.item_done(6)
        assert tracker.advance() is None  # page 6 is done, page 5 is not
        tracker.item_done(5)
        assert tracker.advance() is None
        tracker.item_done(5)
        seq, page = tracker.advance()  # type: ignore[misc]
        assert (seq, page.next_url, page.items_seen) == (6, "u7", 3)
        assert tracker.advance() is None and not tracker.ended

    def test_items_done_before_their_page_is_registered(self) -> None:
        tracker = PageTracker()
        tracker.item_done(0)
        assert tracker.advance() is None
        tracker.register(0, 1, "u1", 1)
        assert tracker.advance() is not None

    def test_empty_and_last_pages(self) -> None:
        tracker = PageTracker()
        tracker.register(0, 0, "u1", 0)
        assert tracker.advance()[0] == 0  # type: ignore[index]
        tracker.register(1, 1, None, 1)
        assert tracker.advance() is None
        tracker.item_done(1)
        assert tracker.advance()[0] == 1 and tracker.ended  # type: ignore[index]

    def test_a_failed_item_blocks_its_page_and_all_later_ones(self) -> None:
        tracker = PageTracker()
        tracker.register(0, 2, "u1", 2)
        tracker.register(1, 1, None, 3)
        tracker.item_done(0)
        tracker.item_failed(0)
        tracker.item_done(1)
        assert tracker.advance() is None and tracker.blocked and not tracker.ended


# -- deltafetch decisions -------------------------------------------------------------------------------------


class TestJudge:
    def setup_method(self) -> None:
        self.versions = {"org/a": ("a" * 40, "2024-01-01T00:00:00.000Z")}

    def store_with(self, tmp_path: Path, rec: EntityRecord, *, on_disk: bool = True) -> tuple[StateStore, int]:
        store = StateStore(tmp_path / "state.sqlite3")
        crawl_id = new_crawl(store)
        store.record_entities(crawl_id, [rec])
        if on_disk:
            folder = entity_folder(tmp_path / "out", "model", rec.id)
            assert folder is not None
            folder.mkdir(parents=True)
            (folder / METADATA_FILE).write_text("{}")
        return store, crawl_id

    def verdict(self, store: StateStore, crawl_id: int, tmp_path: Path, **kwargs: Any) -> str | None:
        options = {"shape": "shape1", "stages": ("stored",), "crawl_id": crawl_id, "output_dir": tmp_path / "out"}
        verdicts, _ = judge(store, "model", self.versions, **{**options, **kwargs})
        return verdicts.get("org/a")

    def test_same_crawl_is_a_duplicate_other_crawls_unchanged(self, tmp_path: Path) -> None:
        store, crawl_id = self.store_with(tmp_path, record("org/a"))
        assert self.verdict(store, crawl_id, tmp_path) == DUPLICATE
        assert self.verdict(store, crawl_id + 1, tmp_path) == UNCHANGED

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ({"shape": "other"}, None),  # other fields asked for
            ({"stages": ("stored", "files")}, None),  # a stage this crawl runs never completed
            ({}, UNCHANGED),
        ],
    )
    def test_what_makes_an_entity_unchanged(
        self, tmp_path: Path, change: dict[str, Any], expected: str | None
    ) -> None:
        store, crawl_id = self.store_with(tmp_path, record("org/a"))
        assert self.verdict(store, crawl_id + 1, tmp_path, **change) == expected

    def test_changed_missing_tombstoned_or_shaless_entities_are_fetched(self, tmp_path: Path) -> None:
        store, crawl_id = self.store_with(tmp_path, record("org/a", sha="b" * 40))
        assert self.verdict(store, crawl_id + 1, tmp_path) is None
        store, crawl_id = self.store_with(tmp_path / "2", record("org/a"), on_disk=False)
        assert self.verdict(store, crawl_id + 1, tmp_path / "2") is None
        store, crawl_id = self.store_with(tmp_path / "3", record("org/a"))
        store.tombstone("model", crawl_id + 1, ["org/a"], "2026-01-01T00:00:00.000Z")
        assert self.verdict(store, crawl_id + 1, tmp_path / "3") is None
        shaless = EntityRecord("model", "org/a", None, None, "shape1", ("stored",))
        store, crawl_id = self.store_with(tmp_path / "4", shaless)
        self.versions = {"org/a": (None, None)}
        assert self.verdict(store, crawl_id + 1, tmp_path / "4") is None

    def test_request_keys(self, tmp_path: Path) -> None:
        store = StateStore(tmp_path / "state.sqlite3")
        store.save_seen(1, [], [("models", "k1")])
        _, known = judge(
            store, "model", {}, shape="", stages=(), crawl_id=1, output_dir=tmp_path, spider="models", keys=["k1", "k2"]
        )
        assert known == {"k1"}


# -- the middleware with a real crawl session -----------------------------------------------------------------


def model(i: int, sha: str = "a" * 40) -> ModelItem:
    return ModelItem.from_api({"_id": f"{i:024x}", "id": f"org/m-{i}", "sha": sha,
                               "lastModified": "2024-01-01T00:00:00.000Z"})  # fmt: skip


async def _drain(outputs: Any) -> list[Any]:
    return [o async for o in outputs]


async def _aiter(items: list[Any]) -> Any:
    for item in items:
        yield item


def open_session(tmp_path: Path, **settings: Any) -> tuple[Any, Any, Any]:
    crawler = get_crawler(
        ModelsSpider,
        {
            "HFSCRAPER_HUB_ENDPOINT": "http://127.0.0.1:9",
            "HFSCRAPER_STATE_DIR": str(tmp_path / "state"),
            "HFSCRAPER_OUTPUT_DIR": str(tmp_path / "out"),
            **settings,
        },
    )
    spider = ModelsSpider.from_crawler(crawler)
    crawler.spider = spider
    extension = CheckpointExtension(crawler)
    middleware = DeltaFetchSpiderMiddleware(crawler)
    middleware._extension = extension
    return crawler, spider, extension, middleware  # type: ignore[return-value]


@pytest.mark.parametrize("enabled", [True, False])
def test_middleware_skips_unchanged_and_duplicate_entities(tmp_path: Path, enabled: bool) -> None:
    async def scenario() -> dict[str, Any]:
        # crawl 1 stores m-1 and m-2 (their folders exist)
        crawler, spider, extension, _ = open_session(tmp_path)
        await extension.spider_opened(spider)
        for i in (1, 2):
            await extension.session.record_stored(model(i))
            folder = entity_folder(tmp_path / "out", "model", f"org/m-{i}")
            folder.mkdir(parents=True)  # type: ignore[union-attr]
            (folder / METADATA_FILE).write_text("{}")  # type: ignore[operator]
        extension.session.tracker.register(0, 0, None, 2)
        extension.session._advance()
        await extension.spider_closed(spider, "finished")
        # crawl 2: m-1 unchanged, m-2 changed, m-3 new; m-1 again on a later page of the same crawl
        crawler, spider, extension, middleware = open_session(tmp_path, DELTAFETCH_ENABLED=enabled)
        await extension.spider_opened(spider)
        session = extension.session
        chain = session.chain_id
        items = [model(1), model(2, sha="b" * 40), model(3)]
        for item in items:
            item._crawl_page = (chain, 0)
        session.page_parsed(chain, 0, 3, "http://127.0.0.1:9/next", 3, None)
        request = Request("http://127.0.0.1:9/api/models")
        response = TextResponse(request.url, body=b"[]", request=request)
        passed = await _drain(middleware.process_spider_output(response, _aiter(items)))
        for item in passed:
            await session.record_stored(item)
            extension.item_scraped(item, response, spider)
        checkpoint_after_page = session.tracker._next
        again = model(1)
        again._crawl_page = (chain, 1)
        session.page_parsed(chain, 1, 1, None, 4, None)
        passed_again = await _drain(middleware.process_spider_output(response, _aiter([again])))
        await session.flush()
        result = {
            "passed": [i.id for i in passed],
            "passed_again": [i.id for i in passed_again],
            "next": checkpoint_after_page,
            "ended": session.chain_complete,
            "stats": crawler.stats.get_stats(),
        }
        await extension.spider_closed(spider, "finished")
        return result

    result = asyncio.run(scenario())
    stats = result["stats"]
    if enabled:
        assert result["passed"] == ["org/m-2", "org/m-3"]
        # m-1 skipped twice: unchanged since crawl 1 (this crawl never stored it, so it is not a duplicate)
        assert stats.get("deltafetch/skipped") == 2 and stats.get("deltafetch/stored") == 2
        assert result["passed_again"] == [] and stats.get("hfscraper/state/duplicate") is None
    else:
        assert result["passed"] == ["org/m-1", "org/m-2", "org/m-3"]
        assert stats.get("deltafetch/skipped") is None
        # this crawl stored m-1 itself: listed again, it is a duplicate whatever DELTAFETCH_ENABLED says
        assert result["passed_again"] == [] and stats.get("hfscraper/state/duplicate") == 1
    assert result["next"] == 1 and result["ended"]  # skipped entities count as done for the checkpoint


def test_middleware_respects_deltafetch_enabled_meta(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        crawler, spider, extension, middleware = open_session(tmp_path)
        await extension.spider_opened(spider)
        await extension.session.record_stored(model(1))
        await extension.spider_closed(spider, "shutdown")
        folder = entity_folder(tmp_path / "out", "model", "org/m-1")
        folder.mkdir(parents=True)  # type: ignore[union-attr]
        (folder / METADATA_FILE).write_text("{}")  # type: ignore[operator]
        crawler, spider, extension, middleware = open_session(tmp_path, HFSCRAPER_CRAWL_MAX_ITEMS=0)
        await extension.spider_opened(spider)
        opted_out = Request("http://127.0.0.1:9/api/models", meta={"deltafetch_enabled": False})
        response = TextResponse(opted_out.url, body=b"[]", request=opted_out)
        passed = await _drain(middleware.process_spider_output(response, _aiter([model(1)])))
        await extension.spider_closed(spider, "shutdown")
        return [i.id for i in passed]

    # the crawl of the first session never completed, so the second continues it: m-1 is this crawl's own
    # (a duplicate) and is dropped even for an opted-out response
    assert asyncio.run(scenario()) == []


def test_second_process_on_the_same_listing_is_refused(tmp_path: Path) -> None:
    async def scenario() -> str:
        _, spider, extension, _ = open_session(tmp_path)
        await extension.spider_opened(spider)
        _, spider2, extension2, _ = open_session(tmp_path)
        try:
            await extension2.spider_opened(spider2)
        except Exception as exc:  # CloseSpider
            reason = getattr(exc, "reason", repr(exc))
        else:
            reason = "opened"
        await extension.spider_closed(spider, "finished")
        return reason

    # flock is per open file description: a second one in the same process conflicts like another process
    assert asyncio.run(scenario()) == "already_running"


def test_state_file_is_never_given_credentials(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, spider, extension, _ = open_session(tmp_path)
        await extension.spider_opened(spider)
        await extension.spider_closed(spider, "shutdown")

    asyncio.run(scenario())
    (path,) = (tmp_path / "state").glob("*.sqlite3")
    db = sqlite3.connect(path)
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = {row[1].lower() for table in tables for row in db.execute(f"PRAGMA table_info({table})")}
    assert not {c for c in columns if "token" in c or "header" in c or "auth" in c}


def test_deltafetch_key_requests_are_skipped_once_their_item_was_stored(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], dict[str, Any]]:
        crawler, spider, extension, middleware = open_session(tmp_path)
        await extension.spider_opened(spider)
        keyed = Request("http://127.0.0.1:9/api/models/org/m-1", meta={"deltafetch_key": "org/m-1@x"})
        response = TextResponse(keyed.url, body=b"{}", request=keyed)
        extension.item_scraped({"any": "item"}, response, spider)  # an item came from that key's response
        await extension.spider_closed(spider, "shutdown")
        crawler, spider, extension, middleware = open_session(tmp_path)
        await extension.spider_opened(spider)
        listing = Request("http://127.0.0.1:9/api/models")
        page = TextResponse(listing.url, body=b"[]", request=listing)
        outputs = [
            Request("http://127.0.0.1:9/api/models/org/m-1", meta={"deltafetch_key": "org/m-1@x"}),
            Request("http://127.0.0.1:9/api/models/org/m-1?again", meta={"deltafetch_key": "org/m-1@x",
                                                                           "deltafetch_enabled": False}),
            Request("http://127.0.0.1:9/api/models/org/m-2", meta={"deltafetch_key": "org/m-2@x"}),
        ]
        passed = await _drain(middleware.process_spider_output(page, _aiter(outputs)))
        stats = crawler.stats.get_stats()
        await extension.spider_closed(spider, "shutdown")
        return [r.url for r in passed], stats

    urls, stats = asyncio.run(scenario())
    assert urls == ["http://127.0.0.1:9/api/models/org/m-1?again", "http://127.0.0.1:9/api/models/org/m-2"]
    assert stats.get("deltafetch/skipped") == 1


def test_a_failed_checkpoint_write_makes_the_crawl_incomplete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(self: StateStore, checkpoint: Checkpoint) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async def scenario() -> tuple[bool, Any, Any]:
        crawler, spider, extension, _ = open_session(tmp_path)
        await extension.spider_opened(spider)
        session = extension.session
        monkeypatch.setattr(StateStore, "save_checkpoint", disk_full)
        session.page_parsed(session.chain_id, 0, 0, None, 0, None)
        await session.flush()
        failed = session.failed
        await extension.spider_closed(spider, "finished")
        monkeypatch.undo()
        store = StateStore(extension.state_file)
        (crawl,) = store.crawls()
        return failed, crawler.stats.get_value("hfscraper/state/errors"), crawl

    failed, errors, crawl = asyncio.run(scenario())
    assert failed and errors == 1
    assert not crawl.complete and crawl.finish_reason == "finished"  # the run ended, the crawl is not done
