"""`RedisEntityWorker`: where a worker spider's items come from: the Redis work queue, through scrapy-redis.

scrapy-redis's `RedisMixin` reads its work from a Redis key, but only through `start_requests()` and its
`spider_idle` polling; Scrapy >= 2.16 never calls `start_requests()`, and the idle path closes a worker whenever the
queue is briefly empty (or never, with `MAX_IDLE_TIME_BEFORE_CLOSE = 0`). This subclass keeps the mixin's
connection and key settings (`setup_redis`: REDIS_URL, REDIS_PARAMS, REDIS_ENCODING, `redis_key`,
`redis_batch_size`) and replaces how work is taken with `async def start()`, which the listing spider's own
`start()` delegates to in the worker role:

- It claims entries reliably (`EntityWorkQueue.claim`: moved to this worker's processing list, under a lease kept
  alive by a heartbeat), at most HFSCRAPER_DISTRIBUTED_MAX_IN_FLIGHT entities at a time, so that work spreads over
  the workers instead of piling up in the first one.
- Each entry becomes the spider's item again (`make_request_from_data`: `item_class.from_api` of the listing
  record), or the model's `baseModels` request when the spider fetches them, which then yields the item. Entities
  this worker's crawl state already holds at the same version (stored by this crawl; or unchanged, with
  DELTAFETCH_ENABLED) are acked and skipped, as `DeltaFetchSpiderMiddleware` does for a listing page.
- The entry is acked (done marker, completion counted) when the item is scraped, i.e. after every stage and the
  crawl state's record; a stage failure (`StageFailed`, an error) queues it again, up to
  HFSCRAPER_DISTRIBUTED_MAX_ATTEMPTS tries.
- On an empty queue it waits (HFSCRAPER_DISTRIBUTED_POLL_INTERVAL) instead of closing, puts back the entries of
  workers whose lease ran out, and ends only when the discovery marked the listing done and no entry waits or is
  claimed anywhere (never, with HFSCRAPER_DISTRIBUTED_FOREVER).
- A graceful stop gives the entries it still holds back to the queue; after a SIGKILL the lease runs out and
  another worker does it.

Stats (hfscraper/distributed/...): claimed, completed, already_done (claimed, but their done marker was set),
skipped/duplicate, skipped/unchanged, retried, failed, deferred (the same entity was already in this worker's
stages), reclaimed (entries of dead workers put back), released (given back on a stop), lease_lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy_redis.spiders import RedisMixin

from hfscraper.distributed.keys import WorkKeys
from hfscraper.distributed.queue import EntityWorkQueue
from hfscraper.extensions.checkpoint import CheckpointExtension, CrawlSession
from hfscraper.items import HubEntityItem
from hfscraper.middlewares.deltafetch import DUPLICATE, UNCHANGED, judge
from hfscraper.pipelines import StageFailed
from hfscraper.state import StateStore, item_version

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

    from hfscraper.spiders.base import HubListingSpider

logger = logging.getLogger(__name__)

STATS = "hfscraper/distributed"


def worker_id() -> str:
    """`host:pid:random`: unique per process, readable in Redis."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class _Held:
    """An entry this worker claimed, and its entity."""

    __slots__ = ("entry", "repo_id", "repo_type", "sha")

    def __init__(self, entry: bytes, repo_type: str, repo_id: str, sha: str | None) -> None:
        self.entry = entry
        self.repo_type = repo_type
        self.repo_id = repo_id
        self.sha = sha


class RedisEntityWorker(RedisMixin):
    """The worker role's source of items for one listing spider (see the module docstring)."""

    def __init__(self, spider: HubListingSpider, crawler: Crawler) -> None:
        settings = crawler.settings
        self.spider = spider
        self.crawler = crawler
        self.name = spider.name
        self.logger = logger
        keys = WorkKeys.of(settings.get("HFSCRAPER_DISTRIBUTED_NAMESPACE") or "", spider.name)
        self.max_in_flight: int = settings.getint("HFSCRAPER_DISTRIBUTED_MAX_IN_FLIGHT", 16)
        self.poll: float = settings.getfloat("HFSCRAPER_DISTRIBUTED_POLL_INTERVAL", 1.0)
        self.lease: float = settings.getfloat("HFSCRAPER_DISTRIBUTED_LEASE", 30.0)
        self.max_attempts: int = settings.getint("HFSCRAPER_DISTRIBUTED_MAX_ATTEMPTS", 3)
        self.forever: bool = settings.getbool("HFSCRAPER_DISTRIBUTED_FOREVER", False)
        self.deltafetch: bool = settings.getbool("DELTAFETCH_ENABLED", True)
        # RedisMixin's attributes: the key it reads and how many entries one look takes.
        self.redis_key = keys.queue
        self.redis_batch_size = self.max_in_flight
        self.setup_redis(crawler)
        assert self.server is not None
        self.queue = EntityWorkQueue(self.server, keys, worker_id(), self.lease)
        self._held: dict[tuple[str, str], _Held] = {}
        self._room = asyncio.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._checkpoint: CheckpointExtension | None = None
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(self.item_error, signal=signals.item_error)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @property
    def stats(self) -> StatsCollector:
        stats = self.crawler.stats
        assert stats is not None
        return stats

    def spider_idle(self) -> None:
        """RedisMixin polls the queue on `spider_idle`; here `start()` waits for work itself, so the spider is idle
        only once `start()` has ended (the listing is done and drained), and may then close."""

    # -- taking work ------------------------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        """The worker spider's `start()`: items (and `baseModels` requests) from the queue, until it is done."""
        await asyncio.to_thread(self.queue.heartbeat)
        self._heartbeat = asyncio.ensure_future(self._keep_lease())
        logger.info(
            "Worker %(worker)s: taking %(type)s entities from Redis %(key)s (at most %(n)d at a time)",
            {
                "worker": self.queue.worker, "type": self.spider.repo_type, "key": self.redis_key,
                "n": self.max_in_flight,
            },
        )  # fmt: skip
        while True:
            room = self.max_in_flight - len(self._held)
            if room <= 0:
                await self._wait(self.poll)
                continue
            entries, done = await asyncio.to_thread(self.queue.claim, room)
            if done:
                self.stats.inc_value(f"{STATS}/already_done", done)
            if entries:
                self.stats.inc_value(f"{STATS}/claimed", len(entries))
                for output in await self._outputs(entries):
                    yield output
                continue
            if await asyncio.to_thread(self.queue.reclaim):
                continue
            if not self.forever and not self._held and await asyncio.to_thread(self.queue.finished):
                logger.info(
                    "Worker %(worker)s: the listing is done and drained (%(n)d entities completed here; a worker "
                    "started before the discovery of a new crawl sees the last crawl's end)",
                    {"worker": self.queue.worker, "n": self.stats.get_value(f"{STATS}/completed", 0)},
                )
                return
            await self._wait(self.poll)

    async def _wait(self, seconds: float) -> None:
        """Sleep up to *seconds*; an entity finishing ends the wait early (there is room to claim more)."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), seconds)

    async def _keep_lease(self) -> None:
        """Renew the lease every third of it; put back the entries of workers whose lease ran out."""
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await asyncio.to_thread(self.queue.heartbeat):
                    # Stalled longer than the lease: another worker may have taken this one's entries already.
                    self.stats.inc_value(f"{STATS}/lease_lost")
                    logger.warning("Worker %(worker)s: its lease had run out", {"worker": self.queue.worker})
                reclaimed = await asyncio.to_thread(self.queue.reclaim)
            except Exception as exc:  # Redis unreachable for a moment: try again next beat
                logger.warning("Worker heartbeat failed: %(error)s", {"error": exc})
                continue
            if reclaimed:
                self._reclaimed(reclaimed)

    def _reclaimed(self, n: int) -> None:
        self.stats.inc_value(f"{STATS}/reclaimed", n)
        logger.info("Put %(n)d entities of stopped workers back into the queue", {"n": n})

    async def _outputs(self, entries: list[bytes]) -> list[Any]:
        """What to yield for claimed entries: skip what the crawl state holds, hold the rest."""
        items: list[tuple[bytes, HubEntityItem]] = []
        for entry in entries:
            item = self.make_request_from_data(entry)
            if item is None:
                await asyncio.to_thread(self.queue.discard, entry)
                continue
            if (item.repo_type, item.id) in self._held:
                self.stats.inc_value(f"{STATS}/deferred")
                await asyncio.to_thread(self.queue.defer, entry)
                continue
            items.append((entry, item))
        verdicts = await self._judge([item for _, item in items])
        outputs: list[Any] = []
        for entry, item in items:
            sha, _ = item_version(item)
            held = _Held(entry, item.repo_type, item.id, sha)
            verdict = verdicts.get(item.id)
            if verdict == DUPLICATE or (verdict == UNCHANGED and self.deltafetch):
                self.stats.inc_value(f"{STATS}/skipped/{'duplicate' if verdict == DUPLICATE else 'unchanged'}")
                if verdict == UNCHANGED:
                    self.stats.inc_value("deltafetch/skipped")
                session = self._session()
                if session is not None:
                    session.item_skipped(item)
                self._ack(held, completed=False)
                continue
            self._held[(item.repo_type, item.id)] = held
            outputs.append(self.spider.entity_output(item))
        return outputs

    def make_request_from_data(self, data: bytes) -> HubEntityItem | None:  # type: ignore[override]
        """The item of one queue entry (RedisMixin's hook, which builds a Request from the data; here the data is
        a listing record, so it builds the item a listing page would have given). None for an unusable entry."""
        try:
            entry = json.loads(data)
            record = entry["r"]
            if entry.get("t") != self.spider.repo_type:
                raise ValueError(f"a {entry.get('t')!r} entry in the {self.spider.repo_type} queue")
            return self.spider.item_class.from_api(record)
        except (ValueError, TypeError, KeyError) as exc:
            self.stats.inc_value(f"{STATS}/bad_entry")
            logger.error("Dropped an unusable queue entry (%(error)s): %(entry).200r", {"error": exc, "entry": data})
            return None

    async def _judge(self, items: list[HubEntityItem]) -> dict[str, str]:
        session = self._session()
        if session is None or not items:
            return {}
        versions = {item.id: item_version(item) for item in items if item.repo_type == session.repo_type}
        verdicts, _ = await session.shared.call(
            _judge_call, session.repo_type, versions, session.shape, session.stages, session.crawl_id,
            session.output_dir, session.car_dir,
        )  # fmt: skip
        return verdicts

    def _session(self) -> CrawlSession | None:
        if self._checkpoint is None:
            with contextlib.suppress(RuntimeError, AttributeError):
                self._checkpoint = self.crawler.get_extension(CheckpointExtension)
        return self._checkpoint.session if self._checkpoint is not None else None

    # -- finishing work ---------------------------------------------------------------------------------------

    def _release_held(self, item: Any) -> _Held | None:
        if not isinstance(item, HubEntityItem):
            return None
        held = self._held.pop((item.repo_type, item.id), None)
        self._room.set()
        return held

    def item_scraped(self, item: Any) -> None:
        held = self._release_held(item)
        if held is not None:
            self.stats.inc_value(f"{STATS}/completed")
            self._ack(held, completed=True)

    def item_dropped(self, item: Any, exception: BaseException | None = None) -> None:
        held = self._release_held(item)
        if held is None:
            return
        if isinstance(exception, StageFailed):
            self._retry(held)
        else:  # dropped for good (a refused id, say): finished, without a completion
            self._ack(held, completed=False)

    def item_error(self, item: Any) -> None:
        held = self._release_held(item)
        if held is not None:
            self._retry(held)

    def _ack(self, held: _Held, *, completed: bool) -> None:
        self._spawn(
            asyncio.to_thread(self.queue.ack, held.entry, held.repo_type, held.repo_id, held.sha, completed=completed)
        )

    def _retry(self, held: _Held) -> None:
        def retry() -> None:
            if self.queue.retry(held.entry, self.max_attempts):
                self.stats.inc_value(f"{STATS}/retried")
            else:
                self.stats.inc_value(f"{STATS}/failed")
                logger.error(
                    "Gave up on %(type)s %(id)s after %(n)d attempts (Redis list %(key)s)",
                    {"type": held.repo_type, "id": held.repo_id, "n": self.max_attempts, "key": self.queue.keys.failed},
                )

        self._spawn(asyncio.to_thread(retry))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The entry stays in this worker's processing list: after the lease it goes back to the queue.
            logger.error("A Redis update failed: %(error)s", {"error": task.exception()})

    async def spider_closed(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        held = [h.entry for h in self._held.values()]
        self._held.clear()
        if held:
            self.stats.inc_value(f"{STATS}/released", len(held))
            await asyncio.to_thread(self.queue.release, held)
        await asyncio.to_thread(self.queue.leave)


def _judge_call(
    store: StateStore,
    repo_type: str,
    versions: dict[str, tuple[str | None, str | None]],
    shape: str,
    stages: tuple[str, ...],
    crawl_id: int,
    output_dir: Any,
    car_dir: Any = None,
) -> tuple[dict[str, str], set[str]]:
    return judge(
        store, repo_type, versions, shape=shape, stages=stages, crawl_id=crawl_id, output_dir=output_dir,
        car_dir=car_dir,
    )  # fmt: skip
