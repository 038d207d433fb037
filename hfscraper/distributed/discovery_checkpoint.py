"""`DiscoveryCheckpointExtension`: the crawl state of a distributed crawl's discovery process.

It is `CheckpointExtension` (listing lock, cursor checkpoints, resume after a kill) plus the discovery's Redis
bookkeeping: when the run starts, the listing is marked `running` in Redis (a new crawl also forgets the last
crawl's pushes and done markers; a resumed one keeps them, so nothing is pushed twice); when the run completes the
listing (every page pushed), it is marked `done`, which is what lets the workers end once the queue is drained.

Tombstones: the discovery's items go to Redis, not through the entity stages, so its crawl state never records
them as seen, and the usual end-of-sweep rule ("live entities this crawl did not see are deleted") would tombstone
everything. Instead a complete full sweep tombstones the live entities of this state file that are missing from
the crawl's `pushed` set in Redis (every entity the listing showed). That is right whether the workers share this
state file (one machine: their entities are checked against the whole listing) or not (the discovery's own state
file then holds no entities, and nothing is tombstoned). Workers never tombstone: each sees only part of the
listing.

Settings: those of `CheckpointExtension`, HFSCRAPER_REDIS_URL, HFSCRAPER_DISTRIBUTED_NAMESPACE.
Stats: those of `CheckpointExtension`; hfscraper/distributed/listing_done (entries pushed, once the listing is done).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Self

from hfscraper.distributed.keys import WorkKeys, redis_from_settings
from hfscraper.distributed.queue import EntityWorkQueue
from hfscraper.extensions.checkpoint import CheckpointExtension
from hfscraper.state import StateStore, utc_now, write_tombstone

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.spiders import Spider

logger = logging.getLogger(__name__)


class DiscoveryCheckpointExtension(CheckpointExtension):
    """`CheckpointExtension` for HFSCRAPER_DISTRIBUTED_ROLE = `discovery` (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.namespace: str = crawler.settings.get("HFSCRAPER_DISTRIBUTED_NAMESPACE") or ""
        self.client = redis_from_settings(crawler.settings)
        self.queue: EntityWorkQueue | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def spider_opened(self, spider: Spider) -> None:
        await super().spider_opened(spider)
        session = self.session
        if session is None:
            return
        self.queue = EntityWorkQueue(self.client, WorkKeys.of(self.namespace, spider.name))
        fresh = session.crawl.runs <= 1
        await asyncio.to_thread(self.queue.begin_listing, str(session.crawl_id), fresh=fresh)
        logger.info(
            "Discovery: pushing %(type)s entities to Redis %(key)s (%(how)s)",
            {
                "type": session.repo_type,
                "key": self.queue.keys.queue,
                "how": "a new crawl" if fresh else "continuing the crawl; entities pushed before are not pushed again",
            },
        )

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        session, queue = self.session, self.queue
        if session is not None and queue is not None:
            stats = session.stats
            incomplete = bool(stats.get_value("hfscraper/spider/incomplete")) or bool(
                stats.get_value("hfscraper/store/failed")
            )
            complete = reason == "finished" and not incomplete and session.chain_complete and not session.failed
            if complete:
                await session.flush()
                if session.crawl.sweep:
                    listed = await asyncio.to_thread(_listed_ids, queue, session.repo_type)
                    tombstoned = await session.shared.call(
                        _tombstone_unlisted, session.repo_type, session.crawl_id, listed, session.output_dir
                    )
                    if tombstoned:
                        stats.inc_value("hfscraper/state/tombstoned", tombstoned)
                        logger.info(
                            "Marked %(n)d %(type)s(s) deleted: the full listing no longer has them",
                            {"n": tombstoned, "type": session.repo_type},
                        )
                    # Done above, against the whole listing; the session's own rule would see nothing as seen.
                    session.crawl = dataclasses.replace(session.crawl, sweep=0)
                pushed = await asyncio.to_thread(queue.finish_listing)
                stats.set_value("hfscraper/distributed/listing_done", pushed)
                logger.info(
                    "Discovery: the %(type)s listing is done (%(n)d entities queued); workers end once they "
                    "drain the queue",
                    {"type": session.repo_type, "n": pushed},
                )
        await super().spider_closed(spider, reason)


def _listed_ids(queue: EntityWorkQueue, repo_type: str) -> set[str]:
    """Ids of *repo_type* in the crawl's `pushed` set (`type/id@sha`)."""
    prefix = repo_type + "/"
    return {key[len(prefix) :].rpartition("@")[0] for key in queue.pushed_keys() if key.startswith(prefix)}


def _tombstone_unlisted(store: StateStore, repo_type: str, crawl_id: int, listed: set[str], output_dir: Path) -> int:
    # unseen_live with a crawl id no row has: every live entity of the type.
    gone = [repo_id for repo_id in store.unseen_live(repo_type, -1) if repo_id not in listed]
    if not gone:
        return 0
    when = utc_now()
    for repo_id in gone:  # the files first, as CheckpointExtension does
        write_tombstone(output_dir, repo_type, repo_id, when)
    return store.tombstone(repo_type, crawl_id, gone, when)
