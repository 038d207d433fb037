"""`WorkQueuePipeline`: the discovery's item pipeline: push each entity's listing record to the workers' queue.

With HFSCRAPER_DISTRIBUTED_ROLE = `discovery`, `DistributedAddon` makes this the only item pipeline: no entity
stage runs in the discovery. The item (rebuilt by a worker with `item_class.from_api`) is pushed as its Hub JSON
(`to_api()`), once per crawl and version (`type/id@sha`); the pipeline returns the item only once Redis has it, so
the listing's checkpoint (`hfscraper.extensions.checkpoint`, which counts `item_scraped`) never moves past an
entity that is not queued. A discovery killed and resumed re-reads the pages after its checkpoint and pushes
nothing twice.

Settings: HFSCRAPER_REDIS_URL, HFSCRAPER_DISTRIBUTED_NAMESPACE.
Stats: hfscraper/distributed/pushed (entries queued), hfscraper/distributed/already_pushed (pushed before by this
crawl: a resumed discovery re-read its page).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Self

from scrapy.exceptions import NotConfigured

from hfscraper.distributed import ROLE_DISCOVERY, role_of
from hfscraper.distributed.keys import WorkKeys, redis_from_settings
from hfscraper.distributed.queue import EntityWorkQueue, done_key, encode_entry
from hfscraper.items import HubEntityItem

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

STATS = "hfscraper/distributed"


class WorkQueuePipeline:
    """Push every Hub item to the Redis work queue (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        if role_of(crawler.settings) != ROLE_DISCOVERY:
            raise NotConfigured("HFSCRAPER_DISTRIBUTED_ROLE must be discovery to enable WorkQueuePipeline")
        self.crawler = crawler
        self.namespace: str = crawler.settings.get("HFSCRAPER_DISTRIBUTED_NAMESPACE") or ""
        self.client = redis_from_settings(crawler.settings)
        self.queue: EntityWorkQueue | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def open_spider(self) -> None:
        assert self.crawler.spider is not None
        self.queue = EntityWorkQueue(self.client, WorkKeys.of(self.namespace, self.crawler.spider.name))

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, HubEntityItem):
            return item
        assert self.queue is not None and self.crawler.stats is not None
        sha = item.sha if isinstance(item.sha, str) else None
        entry = encode_entry(item.repo_type, item.id, sha, item.to_api())
        queued = await asyncio.to_thread(self.queue.push, done_key(item.repo_type, item.id, sha), entry)
        self.crawler.stats.inc_value(f"{STATS}/pushed" if queued else f"{STATS}/already_pushed")
        return item
