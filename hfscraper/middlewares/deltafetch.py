"""`DeltaFetchSpiderMiddleware`: skip what the crash-safe crawl state already holds.

It offers scrapy-deltafetch's interface over `hfscraper.state` instead of a dbm file (scrapy-deltafetch 2.1.0
fails to start on Scrapy >= 2.16, which dropped synchronous-only spider middlewares, and its dbm store is
not crash-safe), and fits how hfscraper gets its entities: from listing pages, not from one request each.

For each callback's output it looks up, in one query, the entities it carries: Hub items, and requests whose
`cb_kwargs["item"]` is one (the per-model `baseModels` requests). Then:

- **Duplicates** (always, whatever DELTAFETCH_ENABLED says): an entity that this same crawl already stored
  at the same version is dropped. A resumed crawl re-reads the pages after its last checkpoint, and a feed
  must not get those rows twice. An entity still in the pipeline (listed twice) is waited for first.
- **Unchanged entities** (DELTAFETCH_ENABLED): an entity whose `(id, sha, lastModified)` and listing fields
  equal the recorded ones, that completed every pipeline stage this crawl runs, is not tombstoned and whose
  folder (and CAR) still has the seal recorded with it (`hfscraper.seal`: every file's size and modification
  time), is skipped: nothing is rewritten, nothing downloaded. A folder changed, emptied or lost since is processed
  again.
- **Keyed requests** (DELTAFETCH_ENABLED): a request with `meta["deltafetch_key"]` is skipped when an item
  from an earlier response to a request with that key was stored (as scrapy-deltafetch does).

`meta["deltafetch_enabled"] = False` on a request opts it out; on the request of a response, it opts out
everything that response yields. Skipped and duplicate entities still count as seen by the crawl (they are
not tombstoned) and as done for its checkpoint.

Settings: DELTAFETCH_ENABLED (default true), DELTAFETCH_RESET (read by the checkpoint extension: forget
which entities completed, so everything is stored again).
Stats: deltafetch/skipped (entities and keyed requests skipped), deltafetch/stored (counted by the state:
entities that completed every stage, and keys stored), hfscraper/state/duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from scrapy import Request

from hfscraper.extensions.checkpoint import CheckpointExtension, CrawlSession
from hfscraper.items import HubEntityItem
from hfscraper.pipelines.entity_store import METADATA_FILE
from hfscraper.seal import entity_seal
from hfscraper.state import EntityState, StateStore, entity_folder, item_version

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

DUPLICATE = "duplicate"
#: Stored by this same crawl with a stage left pending (a preview the viewer could not give yet): processed again,
#: but no feed gets a second row for it.
PENDING = "pending"
UNCHANGED = "unchanged"


def _entity_of(output: Any) -> HubEntityItem | None:
    if isinstance(output, HubEntityItem):
        return output
    if isinstance(output, Request):
        carried = output.cb_kwargs.get("item")
        if isinstance(carried, HubEntityItem):
            return carried
    return None


def judge(
    store: StateStore,
    repo_type: str,
    versions: dict[str, tuple[str | None, str | None]],
    *,
    shape: str,
    stages: Iterable[str],
    crawl_id: int,
    output_dir: Path,
    spider: str = "",
    keys: Iterable[str] = (),
    car_dir: Path | None = None,
) -> tuple[dict[str, str], set[str]]:
    """On the store's thread: `({id: DUPLICATE | UNCHANGED}, {stored request keys})` for one page's output."""
    required = frozenset(stages)
    # An entity the Hub now spells in another case takes over its old spelling's row and folder first.
    for old, new in store.respell(repo_type, versions, crawl_id, output_dir):
        logger.info("%(old)s is now spelled %(new)s: its row and folder follow", {"old": old, "new": new})
    states = store.entities(repo_type, versions)
    verdicts: dict[str, str] = {}
    for repo_id, (sha, modified) in versions.items():
        state = states.get(repo_id)
        if state is None or state.deleted_at is not None or not state.same_version(sha, modified, shape):
            continue
        if state.stored_crawl_id == crawl_id:
            verdicts[repo_id] = DUPLICATE if required <= state.stages else PENDING
        elif required <= state.stages and _intact(state, output_dir, car_dir, store):
            verdicts[repo_id] = UNCHANGED
    keys = list(keys)
    known = store.known_request_keys(spider, keys) if keys else set()
    return verdicts, known


def _intact(state: EntityState, output_dir: Path, car_dir: Path | None, store: StateStore | None = None) -> bool:
    """The entity's folder (and CAR) is as the state recorded it: its seal is unchanged (an entity recorded
    before seals: its `metadata.json` is there)."""
    if state.seal is not None:
        return entity_seal(output_dir, car_dir, state.repo_type, state.id, store) == state.seal
    folder = entity_folder(output_dir, state.repo_type, state.id)
    return folder is not None and (folder / METADATA_FILE).is_file()


class DeltaFetchSpiderMiddleware:
    """Skip entities and requests the crawl state already holds (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        assert crawler.stats is not None
        self.stats = crawler.stats
        self.enabled: bool = crawler.settings.getbool("DELTAFETCH_ENABLED", True)
        self._extension: CheckpointExtension | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def _session(self) -> CrawlSession | None:
        if self._extension is None:
            with contextlib.suppress(RuntimeError):
                self._extension = self.crawler.get_extension(CheckpointExtension)
        return self._extension.session if self._extension is not None else None

    async def process_spider_output(self, response: Response, result: AsyncIterator[Any]) -> AsyncIterator[Any]:
        session = self._session()
        if session is None:
            async for output in result:
                yield output
            return
        request = getattr(response, "request", None)
        response_enabled = request is None or request.meta.get("deltafetch_enabled", True) is not False
        held: list[Any] = []
        async for output in result:
            if _entity_of(output) is not None or (isinstance(output, Request) and "deltafetch_key" in output.meta):
                held.append(output)
            else:
                yield output
        if held:
            async for output in self._filter(session, held, response_enabled):
                yield output

    async def _filter(self, session: CrawlSession, held: list[Any], response_enabled: bool) -> AsyncIterator[Any]:
        versions: dict[str, tuple[str | None, str | None]] = {}
        for output in held:
            entity = _entity_of(output)
            if entity is not None and entity.repo_type == session.repo_type:
                versions[entity.id] = item_version(entity)
        keys = [str(o.meta["deltafetch_key"]) for o in held if isinstance(o, Request) and "deltafetch_key" in o.meta]
        spider = self.crawler.spider.name if self.crawler.spider is not None else ""
        # Claim the page's entities before asking the state: one that finishes while the state is asked would
        # otherwise be neither in the answer nor in flight any more, and go down the pipeline (and into a feed)
        # twice. Entities another page holds are waited for below.
        claimed = {
            key: session.claim(key)
            for key in ((o.repo_type, o.id) for o in held if isinstance(o, HubEntityItem))
            if key not in session.in_flight
        }
        try:
            verdicts, known = await session.shared.call(_judge_call, session.repo_type, versions, session, spider, keys)
        except BaseException:
            for key in claimed:
                session.release(key)
            raise
        try:
            for output in held:
                opted_in = response_enabled and (
                    not isinstance(output, Request) or output.meta.get("deltafetch_enabled", True) is not False
                )
                entity = _entity_of(output)
                verdict = verdicts.get(entity.id) if entity is not None else None
                key = (entity.repo_type, entity.id) if isinstance(output, HubEntityItem) else None
                if verdict == DUPLICATE or (verdict == UNCHANGED and self.enabled and opted_in):
                    assert entity is not None
                    self._skip(session, entity, verdict)
                    if key is not None and claimed.pop(key, None) is not None:
                        session.release(key)
                    continue
                if (
                    isinstance(output, Request)
                    and self.enabled
                    and opted_in
                    and "deltafetch_key" in output.meta
                    and str(output.meta["deltafetch_key"]) in known
                ):
                    self.stats.inc_value("deltafetch/skipped")
                    logger.debug("Skipped %(request)s: its deltafetch_key is stored", {"request": output})
                    if entity is not None:
                        session.item_skipped(entity)
                    continue
                if isinstance(output, HubEntityItem):
                    assert key is not None
                    if verdict == PENDING:
                        output._in_feed = True
                        self.stats.inc_value("hfscraper/state/pending_again")
                    if claimed.pop(key, None) is None:  # held by another page (or listed twice on this one)
                        if not await self._wait_in_flight(session, output):
                            continue
                        session.claim(key)
                yield output
        finally:  # a consumer that stops early leaves no claim behind (later pages would wait on it)
            for key in claimed:
                session.release(key)

    async def _wait_in_flight(self, session: CrawlSession, item: HubEntityItem) -> bool:
        """For an entity another page held when the state was asked (listed twice): wait while it is in the
        pipeline, then ask again; False if it turned out a duplicate. It may have finished before this is called,
        so the state is asked again whether or not there was anything to wait for."""
        key = (item.repo_type, item.id)
        while True:
            if key in session.in_flight:
                await asyncio.shield(session.in_flight[key])
            spider = self.crawler.spider.name if self.crawler.spider is not None else ""
            verdicts, _ = await session.shared.call(
                _judge_call, session.repo_type, {item.id: item_version(item)}, session, spider, []
            )
            if verdicts.get(item.id) == DUPLICATE:
                self._skip(session, item, DUPLICATE)
                return False
            if key not in session.in_flight:
                item._in_feed = item._in_feed or verdicts.get(item.id) == PENDING
                return True

    def _skip(self, session: CrawlSession, entity: HubEntityItem, verdict: str) -> None:
        if verdict == DUPLICATE:
            self.stats.inc_value("hfscraper/state/duplicate")
            logger.debug("Skipped %(id)s: this crawl already stored it", {"id": entity.id})
        else:
            self.stats.inc_value("deltafetch/skipped")
            logger.debug("Skipped %(id)s: unchanged since it was stored", {"id": entity.id})
        session.item_skipped(entity)


def _judge_call(
    store: StateStore,
    repo_type: str,
    versions: dict[str, tuple[str | None, str | None]],
    session: CrawlSession,
    spider: str,
    keys: list[str],
) -> tuple[dict[str, str], set[str]]:
    return judge(
        store,
        repo_type,
        versions,
        shape=session.shape,
        stages=session.stages,
        crawl_id=session.crawl_id,
        output_dir=session.output_dir,
        spider=spider,
        keys=keys,
        car_dir=session.car_dir,
    )
