"""`WorkerCheckpointExtension`: the crawl state of a distributed crawl's worker.

A worker records what it stores exactly as a single-process crawl does (`CrawlStatePipeline` -> the session's
`record_stored`: the entity's version and completed stages, group-committed), so `scrapy status`, deltafetch and
`scrapy export` read a worker's state file like any other. What differs from `CheckpointExtension`:

- No listing lock: any number of workers may share one output folder and state file (SQLite WAL; every process
  waits up to 30 s for the write lock, and writes are short group commits).
- The crawl row is the workers' own (`mode` `worker`, its listing identity carries the Redis namespace), shared by
  the workers of one state file, never a sweep: a worker sees only part of the listing and must never tombstone
  what it did not see (the discovery does that, `DiscoveryCheckpointExtension`).
- There is no cursor: a worker has no pages, so its run completes when it ends with reason `finished`.
- Leftovers of interrupted writes are swept from each folder before it is recorded (another worker may have been
  killed while writing into it).

Settings: those of `CheckpointExtension`, and HFSCRAPER_DISTRIBUTED_NAMESPACE.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import CloseSpider

from hfscraper.extensions.checkpoint import (
    STATE_ERROR_REASON,
    CheckpointExtension,
    _Opened,
    listing_keys,
)
from hfscraper.state import SharedStateStore, StateStore

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.spiders import Spider

logger = logging.getLogger(__name__)

#: The `mode` of a worker's crawl row.
WORKER_MODE = "worker"


class WorkerCheckpointExtension(CheckpointExtension):
    """`CheckpointExtension` for HFSCRAPER_DISTRIBUTED_ROLE = `worker` (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.namespace: str = crawler.settings.get("HFSCRAPER_DISTRIBUTED_NAMESPACE") or ""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def spider_opened(self, spider: Spider) -> None:
        describe = getattr(spider, "listing_identity", None)
        if describe is None:
            return
        identity: dict[str, Any] = {**describe(), "distributed": WORKER_MODE, "namespace": self.namespace}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            shared = SharedStateStore.acquire(self.state_file, fsync=self.fsync)
        except Exception as exc:
            logger.error("Cannot open the crawl state %(file)s: %(error)s", {"file": self.state_file, "error": exc})
            raise CloseSpider(STATE_ERROR_REASON) from exc
        try:
            if (await shared.call(StateStore.meta)).get("output_dir") is None:
                await shared.call(StateStore.set_meta, "output_dir", str(self.output_dir))
            opened = await shared.call(_open_worker_crawl, spider.name, identity, os.getpid())
        except Exception as exc:
            shared.release()
            logger.error("Cannot open the crawl state %(file)s: %(error)s", {"file": self.state_file, "error": exc})
            raise CloseSpider(STATE_ERROR_REASON) from exc
        session = self.new_session(spider, shared, opened, None)
        # No pages: the chain is complete as it stands, so a run that ends `finished` completes the worker's crawl.
        session.tracker.register(0, 0, None, 0)
        session.tracker.advance()
        self.session = session
        logger.info(
            "Worker: crawl #%(id)d (run %(run)d) records %(type)s entities in %(file)s",
            {"id": opened.crawl.crawl_id, "run": opened.crawl.runs, "type": opened.crawl.repo_type,
             "file": self.state_file},
        )  # fmt: skip


def _open_worker_crawl(store: StateStore, spider: str, identity: dict[str, Any], pid: int) -> _Opened:
    listing_key, scope_key = listing_keys(identity)
    crawl = store.unfinished_crawl(listing_key)
    if crawl is None:
        crawl = store.create_crawl(
            spider=spider,
            repo_type=identity["type"],
            listing_key=listing_key,
            scope_key=scope_key,
            listing=identity,
            mode=WORKER_MODE,
            since=None,
            max_items=0,
            sweep=False,
        )
    crawl = store.start_run(crawl.crawl_id, pid)
    return _Opened(crawl, None, resumed=False, recovering=True, reset=0)
