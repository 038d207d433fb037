"""`AdmittedFeedExporter`: Scrapy's feed exports (`-o`, `-O`, FEEDS), written only by a crawl that was admitted.

Scrapy's `FeedExporter` creates its slots when the spider opens and opens each feed's file lazily: at the first
item, or, for an empty feed (FEED_STORE_EMPTY), when the spider closes. A listing crawl that the checkpoint
refuses (`already_running`: another process is crawling the same listing into the same output; a state or
output-folder check failed) or that stops before its crawl opened still closes its spider, so the stock exporter
would then store an empty feed: with `-O` it truncates the file that the running crawl is writing to, which then
holds NUL bytes up to its write offset.

Why a subclass rather than an earlier lock: Scrapy opens the item pipelines (and with them the state file and
the output's scratch folders) before any `spider_opened` handler runs, and nothing an extension's constructor
can do stops a crawl without a traceback; so the refusals that need no crawl state (the output folder's record)
are checked by `scrapy crawl` before a crawler exists, and the listing lock, which needs the spider's listing,
stays in `CheckpointExtension.spider_opened`. What must not happen before that lock is taken is writing a feed,
and that is decided here: a listing spider's feeds are stored only once `CheckpointExtension` admitted the run
(`admitted`: it holds the lock and opened the crawl). Spiders that are not listing crawls export as usual.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from scrapy.extensions.feedexport import FeedExporter

from hfscraper.extensions.checkpoint import CheckpointExtension

if TYPE_CHECKING:
    from scrapy.spiders import Spider


class AdmittedFeedExporter(FeedExporter):
    """`FeedExporter` that writes nothing for a listing crawl the checkpoint did not admit."""

    def _admitted(self, spider: Spider) -> bool:
        if getattr(spider, "listing_identity", None) is None:
            return True
        checkpoint = None
        with contextlib.suppress(RuntimeError, AttributeError):
            checkpoint = self.crawler.get_extension(CheckpointExtension)
        return checkpoint is None or checkpoint.admitted

    def item_scraped(self, item: Any, spider: Spider) -> None:
        # An entity this crawl already exported, processed again only to finish a pending stage, gets no second row.
        if self._admitted(spider) and not getattr(item, "_in_feed", False):
            super().item_scraped(item, spider)

    async def close_spider(self, spider: Spider) -> None:
        if not self._admitted(spider):
            self.slots = []  # never opened: nothing to store, and no file to create or truncate
        await super().close_spider(spider)
