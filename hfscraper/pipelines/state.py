"""`CrawlStatePipeline`: record each entity that went through every pipeline stage in the crawl state.

It runs last (ITEM_PIPELINES 1000). For every Hub item that reached it, it records the entity's version
(`sha`, `lastModified`, the listing's fields), the stages it completed, and that this crawl stored and saw
it; an entity that had a tombstone gets it cleared (state and `tombstone.json`). It returns the item only
once that record is committed (group-committed with the other items of the same moment), so Scrapy's
`item_scraped`, and with it every feed, sees an item only after the state knows it was stored: a crawl
killed at any moment and resumed never writes a feed row twice (see `hfscraper.extensions.checkpoint`).

Items other than hfscraper's Hub items, and crawls without a crawl session (spiders that are not listing
spiders), pass through untouched.

Settings: none of its own (the session reads HFSCRAPER_STATE_DIR and HFSCRAPER_OUTPUT_DIR).
Stats (counted by the session): hfscraper/state/recorded, hfscraper/state/restored, deltafetch/stored.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Self

from hfscraper.extensions.checkpoint import CheckpointExtension, CrawlSession
from hfscraper.items import HubEntityItem
from hfscraper.pipelines import StageFailed
from hfscraper.resources import ResourceGuard

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


class CrawlStatePipeline:
    """Record stored entities in the crawl state before Scrapy reports them scraped."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.guard = ResourceGuard.of(crawler)
        self._extension: CheckpointExtension | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def _session(self) -> CrawlSession | None:
        if self._extension is None:
            with contextlib.suppress(RuntimeError):
                self._extension = self.crawler.get_extension(CheckpointExtension)
        return self._extension.session if self._extension is not None else None

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, HubEntityItem):
            return item
        session = self._session()
        if session is not None:
            try:
                await session.record_stored(item)
            except Exception as exc:
                if self.guard.handle(exc) is None:
                    raise
                # The state's disk is full or its folder gone: logged once, the crawl stops, the entity is redone.
                self.guard.dropped()
                raise StageFailed("recorded", f"not recorded: {exc}") from None
        return item
