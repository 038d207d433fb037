"""`CheckpointExtension`: crash-safe resume of listing crawls, over the state store (`hfscraper.state`).

For every spider that describes its listing (`listing_identity()`, as `HubListingSpider` does) it keeps one
`CrawlSession` per run:

- **Start.** It checks the output folder's record (`hfscraper.output_owner`: another state file, finish reason
  `output_owned`; another Hub, `other_endpoint`, also checked against the endpoint the state recorded), takes the
  listing's lock (a second process crawling the same listing into the same output folder stops at once with
  finish reason `already_running`), records itself as the folder's owner, then continues the listing's unfinished crawl
  from its saved cursor, or starts a new crawl. Every run gets a fresh chain id: listing requests of an
  older chain (restored from a JOBDIR) are ignored by the spider, so JOBDIR and the checkpoint never run two
  chains.
- **Checkpoints.** The spider registers each parsed listing page with the number of items it yields; the
  item signals (`item_scraped`, `item_dropped`, `item_error`) and `item_skipped()` count them down. When a
  page and every page before it are done, its `rel="next"` URL is saved (with the entities skipped on those
  pages, which count as seen) in one transaction. So after a kill -9 the next run re-reads at most the pages
  whose items were not all stored; entities that this crawl already stored come back as duplicates and are
  skipped, so no feed gets a row twice. An item that fails with an error blocks its page for the rest of
  the run: the crawl cannot complete, and the next run re-reads that page.
- **Entities.** `record_stored()` (called by `CrawlStatePipeline`, after every other pipeline) records each
  stored entity's version in group-committed transactions, before Scrapy's `item_scraped`, i.e. before any
  feed sees the item.
- **JOBDIR.** Built before Scrapy's scheduler opens, it marks the JOBDIR as in use and, when the run that
  used it last never closed cleanly (kill -9, a double Ctrl-C), discards its request queue and
  `requests.seen`: after such a stop they are stale or truncated (Scrapy then fails while pushing into the
  queue), and the checkpoint, not the queue, says where the listing continues. After a graceful stop the
  JOBDIR is kept; its queued listing request belongs to the old chain and is ignored.
- **End.** A run that finished with every page stored completes the crawl: its cursor is cleared and its
  watermark computed; a full sweep of a whole listing then tombstones every entity it did not see (state and
  a `tombstone.json` next to `metadata.json`), unless that would be more than `TombstoneGuard` allows: then
  nothing is marked, the run ends `tombstone_guard` and the next run lists again. Any other run leaves the crawl
  and its cursor for the next run.
- **Sweeps.** Only a walk in `SWEEP_SORTS` order (createdAt: a repo's place never changes, new ones appear before
  the cursor) can tell that an unseen entity is gone. In any other order a repo moves while the crawl pages
  (counters change; a modified repo jumps to the front of lastModified) and keyset paging skips it, so such a
  crawl is no sweep: it tombstones nothing, and when it completes one line says so (`order_caveat`). A crawl in
  a counter order (`COUNTER_SORTS`) also leaves no watermark: it may have missed entities that did not change.
- **Feeds.** Only a run this extension admitted (`admitted`: lock held, crawl opened) writes feeds
  (`hfscraper.extensions.feeds`): a refused start never truncates the running crawl's `-O` file.

Settings: HFSCRAPER_STATE_DIR (where the state file lives), HFSCRAPER_OUTPUT_DIR (which state file: one per
output folder), HFSCRAPER_STORE_FSYNC (SQLite `synchronous=FULL`), DELTAFETCH_RESET (forget which entities
completed every stage, so that all are stored again), HFSCRAPER_TOMBSTONE_MAX_FRACTION and
HFSCRAPER_TOMBSTONE_GUARD_MIN (`TombstoneGuard`), HFSCRAPER_CRAWL_ALLOW_OTHER_ENDPOINT and
HFSCRAPER_STATE_ADOPT_OUTPUT (`hfscraper.output_owner`).

Stats: hfscraper/resume/resumed (1 when a run continued a crawl), hfscraper/resume/page (the page it
continued at), hfscraper/resume/jobdir_discarded (1 when the JOBDIR's queue was dropped),
hfscraper/resume/cursor_refused (counted by the spider), hfscraper/state/checkpoints, hfscraper/state/recorded,
hfscraper/state/restored (tombstones cleared), hfscraper/state/tombstoned, hfscraper/state/tombstone_guarded
(entities a held sweep did not mark deleted), hfscraper/state/item_errors,
hfscraper/state/errors (writes to the state that failed: the crawl cannot complete),
deltafetch/stored (entities that completed every stage, and keys stored; with DELTAFETCH_ENABLED).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from scrapy import signals
from scrapy.exceptions import CloseSpider
from scrapy.utils.misc import load_object

from hfscraper import output_owner
from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.hub import HostileIdError, entity_folder_name
from hfscraper.items import HubEntityItem
from hfscraper.preview_records import due_pending
from hfscraper.resources import ResourceGuard
from hfscraper.seal import entity_seal
from hfscraper.state import (
    STAGE_PIPELINES,
    Checkpoint,
    CrawlRow,
    CursorRow,
    EntityRecord,
    PageTracker,
    SharedStateStore,
    StageFailed,
    StateStore,
    item_version,
    remove_tombstone,
    state_file_path,
    sweep_leftovers,
    utc_now,
    write_tombstone,
)

try:  # POSIX; elsewhere the listing lock is not taken
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.settings import BaseSettings
    from scrapy.spiders import Spider
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

DEFAULT_STATE_DIR = "state"
DEFAULT_OUTPUT_DIR = "output"
#: Finish reason of a run that found another process crawling the same listing into the same output.
ALREADY_RUNNING_REASON = "already_running"
#: Scrapy's finish reason of a run stopped on request (Ctrl-C, SIGTERM, a scrapyd cancel).
STOPPED_REASON = "shutdown"
#: Finish reason of a run whose state file could not be opened or read.
STATE_ERROR_REASON = "state_error"
#: Finish reason of a full sweep that would have marked too many entities deleted (see `TombstoneGuard`).
TOMBSTONE_GUARD_REASON = "tombstone_guard"
#: Seconds subtracted from a watermark on top of the crawl's duration: listings may show a change a little
#: after its commit time.
WATERMARK_MARGIN = 600.0
#: Skipped entities recorded as seen in one transaction at most, when no checkpoint takes them along.
SEEN_BATCH = 5000
#: Listing orders whose complete walk sees every entity that existed throughout: only these sweep (tombstone).
SWEEP_SORTS = frozenset({"createdAt"})
#: Orders whose values move without the entity changing (None: the Hub's default, trendingScore): a walk may miss
#: unchanged entities, so it gives no watermark for incremental crawls.
COUNTER_SORTS = frozenset({None, "downloads", "likes", "trendingScore", "likes30d"})


def order_caveat(listing: dict[str, Any]) -> str | None:
    """For a whole-listing crawl in an order that is no sweep: one line on what its completion does not tell."""
    whole = not (listing.get("search") or listing.get("author") or listing.get("filters"))
    sort = listing.get("sort")
    if sort in SWEEP_SORTS or not whole or listing.get("max_items") or listing.get("since"):
        return None
    if sort == "lastModified":
        return (
            "sorted by lastModified: entities modified during the crawl may be missing (the next incremental crawl "
            "gets them); deletions are only detected by a createdAt sweep"
        )
    return (
        f"sorted by {sort or 'the Hub default (trendingScore)'}: entities that moved during the crawl may be missing "
        "and it sets no watermark; deletions are only detected by a createdAt sweep"
    )


def listing_keys(identity: dict[str, Any]) -> tuple[str, str]:
    """`(listing_key, scope_key)` of a listing identity.

    The listing key names a crawl that a later run may continue (type, query, sort, expand, max_items,
    since); the scope key leaves out how the listing is walked (sort, max_items, since), so an incremental
    crawl finds the watermark of any earlier crawl over the same entities and fields.
    """
    listing = json.dumps(identity, sort_keys=True, ensure_ascii=False)
    scope = {k: v for k, v in identity.items() if k not in ("sort", "max_items", "since")}
    return listing, json.dumps(scope, sort_keys=True, ensure_ascii=False)


def state_location(settings: BaseSettings) -> tuple[Path, Path]:
    """`(state file, resolved output folder)` for these settings (HFSCRAPER_STATE_DIR, HFSCRAPER_OUTPUT_DIR)."""
    output = Path(os.path.realpath(os.path.expanduser(settings.get("HFSCRAPER_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR)))
    state_dir = Path(os.path.abspath(os.path.expanduser(settings.get("HFSCRAPER_STATE_DIR") or DEFAULT_STATE_DIR)))
    return state_file_path(state_dir, output), output


def car_folder(settings: BaseSettings, output_dir: Path) -> Path:
    """Where the IPFS stage writes the CARs (HFSCRAPER_IPFS_CAR_DIR, default `<output>/car`)."""
    from hfscraper.pipelines.ipfs import DEFAULT_CAR_FOLDER  # that module imports this one

    car_dir = settings.get("HFSCRAPER_IPFS_CAR_DIR")
    return Path(os.path.abspath(os.path.expanduser(car_dir))) if car_dir else output_dir / DEFAULT_CAR_FOLDER


def previews_backoff(settings: BaseSettings) -> tuple[float, float]:
    """The previews stage's backoff settings (HFSCRAPER_PREVIEWS_RETRY_MIN, _MAX), as it reads them."""
    return (
        settings.getfloat("HFSCRAPER_PREVIEWS_RETRY_MIN", 600.0),
        settings.getfloat("HFSCRAPER_PREVIEWS_RETRY_MAX", 86400.0),
    )


def enabled_stages(crawler: Crawler) -> tuple[str, ...]:
    """The pipeline stages (`hfscraper.state.STAGE_PIPELINES`) that this crawler runs."""
    stages = []
    for stage, path in STAGE_PIPELINES.items():
        with contextlib.suppress(RuntimeError):
            if crawler.get_item_pipeline(load_object(path)) is not None:
                stages.append(stage)
    return tuple(stages)


@dataclass(frozen=True)
class TombstoneGuard:
    """How many deletions one full sweep may record: a listing that suddenly lacks many entities (a Hub outage
    answering short pages, a filtered mirror, another Hub) must not tombstone the archive.

    A sweep may mark `unseen` of `live` entities deleted when `unseen <= min_count` (small types: 1 of 10 is
    already 10%) or `unseen <= max_fraction * live`; otherwise it marks none and ends incomplete
    (HFSCRAPER_TOMBSTONE_MAX_FRACTION, HFSCRAPER_TOMBSTONE_GUARD_MIN; a fraction of 1 turns the guard off).
    """

    max_fraction: float = 0.05
    min_count: int = 3

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> TombstoneGuard:
        return cls(
            max_fraction=settings.getfloat("HFSCRAPER_TOMBSTONE_MAX_FRACTION", cls.max_fraction),
            min_count=settings.getint("HFSCRAPER_TOMBSTONE_GUARD_MIN", cls.min_count),
        )

    def allows(self, unseen: int, live: int) -> bool:
        return unseen <= self.min_count or unseen <= self.max_fraction * live


@dataclass(frozen=True)
class SweepResult:
    """What the end of a full sweep did: `tombstoned` entities marked deleted, or `held` (the guard refused to
    mark `unseen` of `live` entities)."""

    tombstoned: int = 0
    held: bool = False
    unseen: int = 0
    live: int = 0


@dataclass(frozen=True)
class _Opened:
    crawl: CrawlRow
    cursor: CursorRow | None
    resumed: bool
    recovering: bool
    reset: int
    #: Entities the state called complete whose folder was gone (`lost`) or no longer as sealed (`changed`) when
    #: this run started: they are redone, and the listing is walked from the top and in full to reach them.
    lost: int = 0
    changed: int = 0
    #: Entities of the resumed crawl, on pages before its checkpoint, whose pending preview is due again.
    previews_due: int = 0

    @property
    def relist(self) -> bool:
        """Walk the listing from its first page, in full, to reach entities before the checkpoint."""
        return bool(self.lost or self.changed or self.previews_due)


class CrawlSession:
    """One run of one crawl: the cursor chain, the page tracker and every write to the state.

    Attributes:
        crawl: the crawl's row as this run started it.
        chain_id: this run's chain; requests of other chains are stale.
        resume: `(next_url, page_seq, items_seen)` to continue from, or None to start at the top.
        chain_done: every page of the crawl was stored by an earlier run; only its completion is missing.
        since: the incremental crawl's watermark (paging stops at older entities), or None.
        recovering: the previous run of this crawl ended without a finish (killed): leftovers of its
            interrupted writes are removed from the folders this run stores into.
        stages: the pipeline stages this crawl runs for each entity.
    """

    def __init__(
        self,
        crawler: Crawler,
        shared: SharedStateStore,
        opened: _Opened,
        *,
        output_dir: Path,
        shape: str,
        stages: tuple[str, ...],
        lock: IO[bytes] | None,
        deltafetch: bool,
        car_dir: Path | None = None,
    ) -> None:
        self.crawler = crawler
        #: Where the IPFS stage writes each entity's CAR (part of its seal), None when it does not run.
        self.car_dir = car_dir
        assert crawler.stats is not None
        self.stats: StatsCollector = crawler.stats
        self.shared = shared
        self.crawl = opened.crawl
        self.crawl_id = opened.crawl.crawl_id
        self.listing_key = opened.crawl.listing_key
        self.repo_type = opened.crawl.repo_type
        self.output_dir = output_dir
        self.shape = shape
        self.stages = stages
        self.deltafetch = deltafetch
        self.recovering = opened.recovering
        self.since: str | None = None if opened.relist else opened.crawl.since
        self.tombstone_guard = TombstoneGuard.from_settings(crawler.settings)
        self._lock = lock
        cursor = None if opened.relist else opened.cursor
        self.chain_done = bool(cursor is not None and cursor.done)
        self.resume: tuple[str, int, int] | None = None
        if cursor is not None and not cursor.done and cursor.next_url:
            self.resume = (cursor.next_url, cursor.page_seq + 1, cursor.items_seen)
        self.chain_id = ""
        self.tracker = PageTracker()
        self._new_chain(self.resume[1] if self.resume else 0)
        if self.chain_done:  # nothing left to fetch: the chain is complete as it stands
            self.tracker.register(0, 0, None, cursor.items_seen if cursor else 0)
            self.tracker.advance()
        # pending writes
        self._seen: list[tuple[str, str]] = []
        self._request_keys: list[tuple[str, str]] = []
        self._checkpoint: Checkpoint | None = None
        self._commit_task: asyncio.Future[None] | None = None
        self._records: list[tuple[EntityRecord, asyncio.Future[None]]] = []
        self._records_scheduled = False
        # One record batch on the state's thread at a time: records made meanwhile go together in the next one.
        self._records_running: asyncio.Future[Any] | None = None
        self._record_tasks: set[asyncio.Future[Any]] = set()
        self.in_flight: dict[tuple[str, str], asyncio.Future[None]] = {}
        self._newest: str | None = None
        self.closed = False
        #: A write to the state failed: the crawl cannot be complete.
        self.failed = False

    # -- chains ---------------------------------------------------------------------------------------------

    def _new_chain(self, first_seq: int) -> None:
        self.chain_id = uuid.uuid4().hex[:12]
        self.tracker = PageTracker(first_seq=first_seq)

    def restart_chain(self) -> str:
        """Start the listing again from the top (a refused cursor): a new chain whose pages count from 0.

        The saved cursor stays until the new chain saves its first checkpoint.
        """
        self.resume = None
        self.chain_done = False
        self._new_chain(0)
        return self.chain_id

    def is_current(self, chain_id: object) -> bool:
        return chain_id == self.chain_id

    @property
    def chain_complete(self) -> bool:
        """Every page of the chain, up to its last one, is completely stored."""
        return self.tracker.ended

    # -- pages and items ------------------------------------------------------------------------------------

    def page_parsed(
        self, chain_id: str, seq: int, n_items: int, next_url: str | None, items_seen: int, newest: str | None
    ) -> None:
        """A listing page of this chain was parsed: it yields *n_items* items, then the chain continues at
        *next_url* (None: it ends here)."""
        if not self.is_current(chain_id):
            return
        if newest is not None and (self._newest is None or newest > self._newest):
            self._newest = newest
        self.tracker.register(seq, n_items, next_url, items_seen)
        self._advance()

    def claim(self, key: tuple[str, str]) -> asyncio.Future[None]:
        """Mark an entity as on its way down the pipeline (until `item_finished` or `release`)."""
        future = self.in_flight[key] = asyncio.get_running_loop().create_future()
        return future

    def release(self, key: tuple[str, str]) -> None:
        """Drop a claim whose entity was not sent down the pipeline after all; wake whoever waits for it."""
        waiter = self.in_flight.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def item_finished(self, item: Any, *, failed: bool = False) -> None:
        """An item left the pipeline: stored, dropped, or (*failed*) raised an error."""
        if not isinstance(item, HubEntityItem):
            return
        waiter = self.in_flight.pop((item.repo_type, item.id), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if failed:
            # Whatever an earlier run stored of it may be gone now (a stage rewrote part of its folder): it is not
            # complete, for `scrapy status` or deltafetch, until a later run succeeds.
            # Submitted now, so that it comes before any later record of the same entity on the state's thread.
            task = asyncio.wrap_future(self.shared.submit(_invalidate, [(item.repo_type, item.id)]))
            self._record_tasks.add(task)
            task.add_done_callback(self._invalidated)
        tag = item._crawl_page
        if tag is None or not self.is_current(tag[0]):
            return
        if failed:
            self.stats.inc_value("hfscraper/state/item_errors")
            self.tracker.item_failed(tag[1])
        else:
            self.tracker.item_done(tag[1])
        self._advance()

    def item_skipped(self, item: HubEntityItem) -> None:
        """An item was not sent to the pipeline because the state already holds it: it is seen, and done."""
        self._seen.append((item.repo_type, item.id))
        if len(self._seen) >= SEEN_BATCH:
            self._schedule_commit()  # even while no checkpoint is due (a blocked page), keep the list short
        tag = item._crawl_page
        if tag is None or not self.is_current(tag[0]):
            return
        self.tracker.item_done(tag[1])
        self._advance()

    def request_key_stored(self, spider: str, key: str) -> None:
        self._request_keys.append((spider, key))

    def _advance(self) -> None:
        done = self.tracker.advance()
        if done is None:
            return
        seq, page = done
        self._checkpoint = Checkpoint(
            listing_key=self.listing_key,
            crawl_id=self.crawl_id,
            chain_id=self.chain_id,
            next_url=page.next_url,
            page_seq=seq,
            items_seen=page.items_seen,
            newest_seen=self._newest,
        )
        self._schedule_commit()

    def _schedule_commit(self) -> None:
        if self._commit_task is None or self._commit_task.done():
            self._commit_task = asyncio.ensure_future(self._commit_loop())

    async def _commit_loop(self) -> None:
        # One commit at a time; checkpoints that arrive meanwhile are folded into the next one.
        while self._checkpoint is not None or self._seen or self._request_keys:
            checkpoint, self._checkpoint = self._checkpoint, None
            seen, self._seen = self._seen, []
            keys, self._request_keys = self._request_keys, []
            try:
                if checkpoint is None:
                    await self.shared.call(StateStore.save_seen, self.crawl_id, seen, keys)
                else:
                    full = dataclasses.replace(checkpoint, seen=tuple(seen), request_keys=tuple(keys))
                    await self.shared.call(StateStore.save_checkpoint, full)
                    self.stats.inc_value("hfscraper/state/checkpoints")
            except Exception as exc:
                self._state_error(exc)
                continue
            if self.deltafetch and keys:
                self.stats.inc_value("deltafetch/stored", len(keys))

    def _invalidated(self, task: asyncio.Future[None]) -> None:
        self._record_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._state_error(task.exception())  # type: ignore[arg-type]

    def _state_error(self, exc: Exception) -> None:
        # The crawl goes on (the next commit may succeed), but it cannot count as complete.
        self.failed = True
        self.stats.inc_value("hfscraper/state/errors")
        if ResourceGuard.of(self.crawler).handle(exc) is not None:
            return  # a full disk or a vanished folder: logged once, and the crawl stops
        logger.error("Could not write to the crawl state %(file)s: %(error)s", {"file": self.shared.path, "error": exc})

    async def flush(self) -> None:
        """Wait until every pending record and checkpoint is committed."""
        while True:
            tasks = [t for t in (self._commit_task, *self._record_tasks) if t is not None and not t.done()]
            if self._records and not self._records_scheduled and self._records_running is None:
                self._flush_records()
                continue
            if not tasks:
                if self._checkpoint is not None or self._seen or self._request_keys:
                    self._schedule_commit()
                    continue
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- entity records (group commit) ----------------------------------------------------------------------

    async def record_stored(self, item: HubEntityItem) -> None:
        """Record that *item* went through every stage (less those it left pending, `item._pending_stages`);
        returns once the record is committed."""
        sha, last_modified = item_version(item)
        pending = item._pending_stages  # redone by the next crawl
        stages = tuple(s for s in self.stages if s not in pending) if pending else self.stages
        record = EntityRecord(item.repo_type, item.id, sha, last_modified, self.shape, stages)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._records.append((record, future))
        if not self._records_scheduled:
            self._records_scheduled = True
            loop.call_soon(self._flush_records)
        await future

    def _flush_records(self) -> None:
        self._records_scheduled = False
        if self._records_running is not None:
            return  # its end flushes what waits
        batch, self._records = self._records, []
        if not batch:
            return
        task = asyncio.ensure_future(
            self.shared.call(
                _record_batch, self.crawl_id, [r for r, _ in batch], self.output_dir, self.recovering, self.car_dir
            )
        )
        self._record_tasks.add(task)
        self._records_running = task
        task.add_done_callback(lambda t: self._records_done(t, batch))

    def _records_done(self, task: asyncio.Future[list[tuple[str, str]]], batch: list[Any]) -> None:
        self._record_tasks.discard(task)
        self._records_running = None
        if self._records:
            self._flush_records()
        if task.cancelled():
            for _, future in batch:
                future.cancel()
            return
        error = task.exception()
        if error is not None:
            # Raised to CrawlStatePipeline: the items fail (item_error), which blocks their pages.
            self.stats.inc_value("hfscraper/state/errors")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        restored = task.result()
        self.stats.inc_value("hfscraper/state/recorded", len(batch))
        if self.deltafetch:
            self.stats.inc_value("deltafetch/stored", len(batch))
        if restored:
            self.stats.inc_value("hfscraper/state/restored", len(restored))
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    # -- the end --------------------------------------------------------------------------------------------

    async def close(self, reason: str, complete: bool) -> None:
        """Commit what is pending, then complete the crawl or leave it for the next run."""
        if self.closed:
            return
        self.closed = True
        try:
            await self.flush()
            sweep = SweepResult()
            if complete and self.crawl.sweep:
                sweep = await self.shared.call(
                    _tombstone_unseen, self.repo_type, self.crawl_id, self.output_dir, self.tombstone_guard
                )
                if sweep.tombstoned:
                    self.stats.inc_value("hfscraper/state/tombstoned", sweep.tombstoned)
                    logger.info(
                        "Marked %(n)d %(type)s(s) deleted: the full listing no longer has them",
                        {"n": sweep.tombstoned, "type": self.repo_type},
                    )
            if sweep.held:
                self._hold_tombstones(sweep)
                await self.shared.call(_hold_sweep, self.crawl_id, self.listing_key)
            elif complete:
                moving = self.crawl.listing.get("sort") in COUNTER_SORTS
                done = await self.shared.call(_complete, self.crawl_id, reason, moving)
                logger.info(
                    "Crawl #%(id)d of the %(type)s listing is complete (watermark %(w)s)",
                    {"id": self.crawl_id, "type": self.repo_type, "w": done.watermark},
                )
                caveat = order_caveat(self.crawl.listing)
                if caveat is not None:
                    logger.warning(
                        "Crawl #%(id)d of the %(type)s listing %(caveat)s",
                        {"id": self.crawl_id, "type": self.repo_type, "caveat": caveat},
                    )
            else:
                await self.shared.call(StateStore.finish_run, self.crawl_id, reason)
                # A requested stop is no problem: said at INFO. Anything else that ends a crawl early is.
                (logger.info if reason == STOPPED_REASON else logger.warning)(
                    "Crawl #%(id)d of the %(type)s listing %(what)s (finish reason %(reason)s); "
                    "the same command continues it",
                    {
                        "id": self.crawl_id, "type": self.repo_type, "reason": reason,
                        "what": "stopped on request" if reason == STOPPED_REASON else "did not complete",
                    },
                )  # fmt: skip
        finally:
            for waiter in self.in_flight.values():
                if not waiter.done():
                    waiter.set_result(None)
            _unlock(self._lock)
            self.shared.release()

    def _hold_tombstones(self, sweep: SweepResult) -> None:
        # The run's own finish reason (after CoreStats set `finished`): the stats dump, the command's outcome line
        # and its exit code (1) all say why the crawl did not complete.
        self.stats.set_value("hfscraper/state/tombstone_guarded", sweep.unseen)
        self.stats.set_value("finish_reason", TOMBSTONE_GUARD_REASON)
        guard = self.tombstone_guard
        logger.warning(
            "Crawl #%(id)d: the full %(type)s listing lacks %(n)d of %(live)d live %(type)s(s) (%(pct).1f%%), more "
            "than HFSCRAPER_TOMBSTONE_MAX_FRACTION=%(f)g (and HFSCRAPER_TOMBSTONE_GUARD_MIN=%(min)d) allow: none "
            "marked deleted, the crawl stays incomplete (finish reason %(reason)s). If the Hub really deleted "
            "them, run the same command with -s HFSCRAPER_TOMBSTONE_MAX_FRACTION=1 to mark them",
            {
                "id": self.crawl_id, "type": self.repo_type, "n": sweep.unseen, "live": sweep.live,
                "pct": 100.0 * sweep.unseen / max(sweep.live, 1), "f": guard.max_fraction, "min": guard.min_count,
                "reason": TOMBSTONE_GUARD_REASON,
            },
        )  # fmt: skip


# -- work done on the store's thread -----------------------------------------------------------------------


def _record_batch(
    store: StateStore,
    crawl_id: int,
    records: list[EntityRecord],
    output_dir: Path,
    recovering: bool,
    car_dir: Path | None = None,
) -> list[tuple[str, str]]:
    if recovering:
        for record in records:
            sweep_leftovers(output_dir, record.repo_type, record.id)
    # Sealed here, on the state's thread, once every stage has written the folder (this pipeline runs last).
    records = [dataclasses.replace(r, seal=entity_seal(output_dir, car_dir, r.repo_type, r.id, store)) for r in records]
    restored = store.record_entities(crawl_id, records)
    for repo_type, repo_id in restored:
        remove_tombstone(output_dir, repo_type, repo_id)
    return restored


def _invalidate(store: StateStore, entities: list[tuple[str, str]]) -> None:
    by_type: dict[str, list[str]] = {}
    for repo_type, repo_id in entities:
        by_type.setdefault(repo_type, []).append(repo_id)
    for repo_type, ids in by_type.items():
        store.invalidate_entities(repo_type, ids)


def _tombstone_unseen(
    store: StateStore, repo_type: str, crawl_id: int, output_dir: Path, guard: TombstoneGuard
) -> SweepResult:
    ids = store.unseen_live(repo_type, crawl_id)
    if not ids:
        return SweepResult()
    live = store.entity_counts().get(repo_type, {}).get("live", 0)
    if not guard.allows(len(ids), live):
        return SweepResult(held=True, unseen=len(ids), live=live)
    when = utc_now()
    # The files first: if this is interrupted, the crawl is not complete and the next run does it again.
    for repo_id in ids:
        write_tombstone(output_dir, repo_type, repo_id, when)
    return SweepResult(tombstoned=store.tombstone(repo_type, crawl_id, ids, when))


def _complete(store: StateStore, crawl_id: int, reason: str, moving: bool) -> CrawlRow:
    done = store.complete_crawl(crawl_id, reason, WATERMARK_MARGIN)
    if moving and done.watermark is not None:
        # A walk in a counter order may have skipped entities that did not change: no cover for `since=auto`.
        with store.transaction():
            store.db.execute("UPDATE crawls SET watermark = NULL WHERE crawl_id = ?", (crawl_id,))
        done = dataclasses.replace(done, watermark=None)
    return done


def _hold_sweep(store: StateStore, crawl_id: int, listing_key: str) -> None:
    # The crawl stays open, and its next run lists again from the top rather than only completing: if the Hub
    # lacked those entities for a while, a later listing sees them (and they are never marked deleted).
    store.finish_run(crawl_id, TOMBSTONE_GUARD_REASON)
    with store.transaction():
        store.db.execute("DELETE FROM cursors WHERE listing_key = ? AND crawl_id = ?", (listing_key, crawl_id))


def _check_stored(
    store: StateStore, repo_type: str, resumed_crawl: int | None, output_dir: Path, car_dir: Path | None
) -> tuple[list[str], list[str]]:
    """`(lost, changed)`: ids of entities the state calls complete whose folder is gone, and (of those the resumed
    crawl already saw: the pages before its checkpoint are not listed again) whose folder or CAR is not as sealed.

    One `lstat` per complete entity for the first (the whole archive, on every start: streamed, so memory stays
    flat at millions of entities, where a set of the type folder's names would not), one `stat` per file for the
    second.
    """
    root = os.fspath(output_dir / OUTPUT_FOLDERS[repo_type]) + os.sep
    lost = []
    for repo_id in store.complete_ids(repo_type):
        try:
            name = entity_folder_name(repo_id)
        except HostileIdError:
            continue  # never stored under a folder
        if not os.path.lexists(root + name):
            lost.append(repo_id)
    changed: list[str] = []
    if resumed_crawl is not None:
        missing = set(lost)
        changed = [
            repo_id
            for repo_id, seal in store.complete_entities(repo_type, resumed_crawl)
            if seal is not None
            and repo_id not in missing
            and entity_seal(output_dir, car_dir, repo_type, repo_id, store) != seal
        ]
    return lost, changed


def _open_crawl(
    store: StateStore,
    spider: str,
    identity: dict[str, Any],
    pid: int,
    reset: bool,
    output_dir: Path | None = None,
    car_dir: Path | None = None,
    previews: tuple[float, float] | None = None,
) -> _Opened:
    listing_key, scope_key = listing_keys(identity)
    crawl = store.unfinished_crawl(listing_key)
    resumed = crawl is not None
    if crawl is None:
        since_arg = identity.get("since")
        since: str | None = None
        if since_arg == "auto":
            cover = store.last_cover(scope_key)
            since = cover.watermark if cover is not None else None
        elif since_arg:
            since = str(since_arg)
        whole = not (identity.get("search") or identity.get("author") or identity.get("filters"))
        sweep = whole and not identity.get("max_items") and since is None and identity.get("sort") in SWEEP_SORTS
        crawl = store.create_crawl(
            spider=spider,
            repo_type=identity["type"],
            listing_key=listing_key,
            scope_key=scope_key,
            listing=identity,
            mode="incremental" if since_arg else "full",
            since=since,
            max_items=int(identity.get("max_items") or 0),
            sweep=sweep,
        )
    cursor = store.cursor(listing_key) if resumed else None
    if cursor is not None and cursor.crawl_id != crawl.crawl_id:
        cursor = None
    recovering = resumed and crawl.run_pid is not None and crawl.finished_at is None
    reset_count = store.reset_stages(identity["type"], spider) if reset else 0
    lost: list[str] = []
    changed: list[str] = []
    if output_dir is not None and not reset:
        lost, changed = _check_stored(store, identity["type"], crawl.crawl_id if resumed else None, output_dir, car_dir)
        if lost or changed:
            store.invalidate_entities(identity["type"], [*lost, *changed])
    due = (
        due_pending(store, identity["type"], crawl.crawl_id, datetime.now(UTC), *previews)
        if previews and resumed and cursor is not None
        else 0
    )
    crawl = store.start_run(crawl.crawl_id, pid)
    return _Opened(crawl, cursor, resumed, recovering, reset_count, len(lost), len(changed), due)


def _crawled_endpoint(store: StateStore) -> str | None:
    """The endpoint of the newest crawl recorded (a state file older than the `endpoint` meta key)."""
    for crawl in reversed(store.crawls()):
        endpoint = crawl.listing.get("endpoint")
        if endpoint:
            return output_owner.public_endpoint(str(endpoint))
    return None


def _endpoint_refusal(
    output_dir: Path, recorded: str | None, endpoint: str, allow_other: bool
) -> tuple[str, str] | None:
    """The state file's own check of the endpoint (an output folder crawled before it had a record)."""
    if recorded is None or recorded == endpoint or allow_other:
        return None
    owner = output_owner.OutputOwner(state_file="", endpoint=recorded)
    return output_owner.refusal(output_dir, owner, Path(), endpoint, allow_other_endpoint=False, adopt=True)


def _lock_listing(state_file: Path, listing_key: str) -> IO[bytes] | None:
    """An exclusive lock on one listing of one state file, held until `_unlock` (or the process ends).

    Returns None when another process holds it.
    """
    if fcntl is None:  # pragma: no cover
        return open(os.devnull, "rb")  # noqa: SIM115
    digest = hashlib.sha256(listing_key.encode()).hexdigest()[:12]
    path = state_file.with_name(f"{state_file.name}.{digest}.lock")
    handle = open(path, "ab")  # noqa: SIM115 - held for the whole run
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


#: The file in a JOBDIR that says whether the run using it closed cleanly (`closed`) or not (`running <pid>`).
JOBDIR_MARKER = "hfscraper-run"


def guard_jobdir(jobdir: Path) -> tuple[IO[bytes] | None, bool]:
    """Before Scrapy's scheduler opens a JOBDIR: discard its request queue if the run that used it last did
    not close cleanly. Returns the marker's (locked) handle, and whether the queue was discarded.

    After a kill -9 (or a double Ctrl-C) a JOBDIR's disk queue is at best stale and at worst truncated, and
    Scrapy then fails while pushing into it, so a listing would never finish. Nothing is lost by dropping it:
    where the listing continues is the crawl state's checkpoint; the duplicate filter's `requests.seen` goes
    too (after a crash it lists requests whose results were never stored). The marker is locked while a
    run uses the JOBDIR; if another live process holds it, nothing is touched (and None is returned).
    """
    jobdir.mkdir(parents=True, exist_ok=True)
    handle = open(jobdir / JOBDIR_MARKER, "a+b")  # noqa: SIM115 - held for the whole run
    if fcntl is not None:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return None, False
    handle.seek(0)
    previous = handle.read().decode("ascii", "replace").strip()
    discarded = False
    if previous.startswith("running"):
        shutil.rmtree(jobdir / "requests.queue", ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(jobdir / "requests.seen")
        discarded = True
    _set_marker(handle, f"running {os.getpid()}")
    return handle, discarded


def _set_marker(handle: IO[bytes], text: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(text.encode("ascii") + b"\n")
    handle.flush()


def listing_is_locked(state_file: Path, listing_key: str) -> bool:
    """True while a process crawls this listing into the state file's output folder."""
    handle = _lock_listing(state_file, listing_key)
    if handle is None:
        return True
    _unlock(handle)
    return False


def _unlock(handle: IO[bytes] | None) -> None:
    if handle is None:
        return
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()


class CheckpointExtension:
    """Open, checkpoint and close the crawl of each listing spider (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        self.state_file, self.output_dir = state_location(settings)
        self.fsync: bool = settings.getbool("HFSCRAPER_STORE_FSYNC", False)
        self.deltafetch: bool = settings.getbool("DELTAFETCH_ENABLED", True)
        self.reset: bool = settings.getbool("DELTAFETCH_RESET", False)
        self.endpoint = output_owner.endpoint_of(settings)
        self.allow_other_endpoint: bool = settings.getbool(output_owner.ALLOW_OTHER_ENDPOINT, False)
        self.adopt_output: bool = settings.getbool(output_owner.ADOPT_OUTPUT, False)
        self.session: CrawlSession | None = None
        #: This run holds its listing's lock and opened its crawl: only then may a feed be written
        #: (`hfscraper.extensions.feeds`).
        self.admitted = False
        self._jobdir: IO[bytes] | None = None
        self._jobdir_discarded = False
        jobdir = settings.get("JOBDIR")
        if jobdir:
            self._jobdir, self._jobdir_discarded = guard_jobdir(Path(jobdir))
            if self._jobdir_discarded:
                logger.warning(
                    "The last run using JOBDIR %(dir)s did not stop cleanly (killed?): its request queue is "
                    "unusable and was discarded; the crawl state's checkpoint says where the listing continues",
                    {"dir": jobdir},
                )
            elif self._jobdir is None:
                logger.error("Another process is using JOBDIR %(dir)s", {"dir": jobdir})
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(self.item_error, signal=signals.item_error)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    async def spider_opened(self, spider: Spider) -> None:
        if self._jobdir_discarded:
            assert self.crawler.stats is not None
            self.crawler.stats.set_value("hfscraper/resume/jobdir_discarded", 1)
        describe = getattr(spider, "listing_identity", None)
        if describe is None:
            return
        identity: dict[str, Any] = describe()
        listing_key, _ = listing_keys(identity)
        # Before anything is created: the output folder's record (`hfscraper.output_owner`; `scrapy crawl` checked
        # it already, this covers other ways of starting a crawler).
        self._refuse_if(self._owner_refusal())
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock_listing(self.state_file, listing_key)
        if lock is None:
            logger.error(
                "Another process is crawling this %(type)s listing into %(out)s (lock next to %(state)s); "
                "not starting a second one",
                {"type": identity["type"], "out": self.output_dir, "state": self.state_file},
            )
            raise CloseSpider(ALREADY_RUNNING_REASON)
        try:
            shared = SharedStateStore.acquire(self.state_file, fsync=self.fsync)
        except Exception as exc:
            _unlock(lock)
            raise self._open_failed(exc) from exc
        try:
            meta = await shared.call(StateStore.meta)
            refused = _endpoint_refusal(
                self.output_dir, meta.get("endpoint") or await shared.call(_crawled_endpoint), self.endpoint,
                self.allow_other_endpoint,
            )  # fmt: skip
            if refused is None:
                refused = output_owner.claim(
                    self.output_dir, self.state_file, self.endpoint,
                    allow_other_endpoint=self.allow_other_endpoint, adopt=self.adopt_output,
                )  # fmt: skip
            if refused is None:
                if meta.get("output_dir") is None:
                    await shared.call(StateStore.set_meta, "output_dir", str(self.output_dir))
                if meta.get("endpoint") != self.endpoint:
                    await shared.call(StateStore.set_meta, "endpoint", self.endpoint)
                stages = enabled_stages(self.crawler)
                car_dir = car_folder(self.crawler.settings, self.output_dir) if "ipfs" in stages else None
                opened = await shared.call(
                    _open_crawl, spider.name, identity, os.getpid(), self.reset, self.output_dir, car_dir,
                    previews_backoff(self.crawler.settings) if "previews" in stages else None,
                )  # fmt: skip
        except Exception as exc:
            shared.release()
            _unlock(lock)
            raise self._open_failed(exc) from exc
        if refused is not None:
            shared.release()
            _unlock(lock)
            self._refuse_if(refused)
        self.session = self.new_session(spider, shared, opened, lock)
        self._log_start(opened, identity)

    def _owner_refusal(self) -> tuple[str, str] | None:
        try:
            owner = output_owner.read_owner(self.output_dir)
        except output_owner.OwnerRecordError as exc:
            return output_owner.OTHER_STATE_REASON, str(exc)
        return output_owner.refusal(
            self.output_dir, owner, self.state_file, self.endpoint,
            allow_other_endpoint=self.allow_other_endpoint, adopt=self.adopt_output,
        )  # fmt: skip

    @staticmethod
    def _refuse_if(refused: tuple[str, str] | None) -> None:
        if refused is not None:
            reason, message = refused
            logger.error("%(message)s", {"message": message})
            raise CloseSpider(reason)

    def _open_failed(self, exc: Exception) -> CloseSpider:
        """The crawl state could not be opened: a full disk or a vanished folder says so (`disk_full`,
        `output_unavailable`), anything else is `state_error`; one ERROR line either way."""
        failure = ResourceGuard.of(self.crawler).classify(exc)
        if failure is not None:
            logger.error("%(message)s", {"message": failure.message()})
            return CloseSpider(failure.reason)
        logger.error("Cannot open the crawl state %(file)s: %(error)s", {"file": self.state_file, "error": exc})
        return CloseSpider(STATE_ERROR_REASON)

    def new_session(
        self, spider: Spider, shared: SharedStateStore, opened: _Opened, lock: IO[bytes] | None
    ) -> CrawlSession:
        """The session of an opened crawl (also the distributed worker's, which opens its crawl otherwise)."""
        self.admitted = True
        stages = enabled_stages(self.crawler)
        return CrawlSession(
            self.crawler,
            shared,
            opened,
            output_dir=self.output_dir,
            shape=str(getattr(spider, "shape", "")),
            stages=stages,
            lock=lock,
            deltafetch=self.deltafetch,
            car_dir=car_folder(self.crawler.settings, self.output_dir) if "ipfs" in stages else None,
        )

    def _log_start(self, opened: _Opened, identity: dict[str, Any]) -> None:
        session = self.session
        assert session is not None
        stats = session.stats
        crawl = opened.crawl
        if opened.lost or opened.changed:
            logger.warning(
                "%(lost)d %(type)s(s) the crawl state called complete are missing from %(out)s and %(changed)d "
                "changed since they were stored; they will be stored again (the listing is walked from its first "
                "page%(full)s)",
                {
                    "lost": opened.lost, "changed": opened.changed, "type": crawl.repo_type, "out": self.output_dir,
                    "full": ", in full" if crawl.since else "",
                },
            )  # fmt: skip
            stats.set_value("hfscraper/state/lost", opened.lost)
            stats.set_value("hfscraper/state/changed", opened.changed)
        if opened.previews_due:
            logger.info(
                "%(n)d %(type)s(s) listed before the saved cursor have a pending preview that is due again; "
                "walking the listing from its first page to reach them",
                {"n": opened.previews_due, "type": crawl.repo_type},
            )
        if opened.reset:
            logger.info(
                "DELTAFETCH_RESET: %(n)d %(type)s(s) will be stored again", {"n": opened.reset, "type": crawl.repo_type}
            )
        if opened.resumed:
            stats.set_value("hfscraper/resume/resumed", 1)
            if session.resume is not None:
                stats.set_value("hfscraper/resume/page", session.resume[1])
            where = (
                f"page {session.resume[1]} ({session.resume[2]} entities listed before it)"
                if session.resume
                else "its end (every page is stored)"
                if session.chain_done
                else "the top (no page was completely stored)"
            )
            logger.info(
                "Resuming crawl #%(id)d of the %(type)s listing (run %(run)d) at %(where)s%(recovering)s",
                {
                    "id": crawl.crawl_id, "type": crawl.repo_type, "run": crawl.runs, "where": where,
                    "recovering": "; the last run was interrupted" if opened.recovering else "",
                },
            )  # fmt: skip
        else:
            logger.info(
                "Starting crawl #%(id)d of the %(type)s listing (%(mode)s%(since)s); state in %(file)s",
                {
                    "id": crawl.crawl_id, "type": crawl.repo_type, "mode": crawl.mode,
                    "since": f", changes since {crawl.since}" if crawl.since else
                    (", no earlier complete crawl: listing everything" if identity.get("since") == "auto" else ""),
                    "file": self.state_file,
                },
            )  # fmt: skip

    async def spider_closed(self, spider: Spider, reason: str) -> None:
        # The scheduler has saved the JOBDIR queue by now (it closes before spider_closed).
        if self._jobdir is not None:
            _set_marker(self._jobdir, "closed")
            _unlock(self._jobdir)
            self._jobdir = None
        session = self.session
        if session is None:
            return
        stats = session.stats
        incomplete = bool(stats.get_value("hfscraper/spider/incomplete")) or bool(
            stats.get_value("hfscraper/store/failed")
        )
        complete = reason == "finished" and not incomplete and session.chain_complete and not session.failed
        try:
            await session.close(reason, complete)
        except Exception as exc:
            # The state's disk is full or its folder gone: the run stays unfinished there (the next one resumes it).
            if ResourceGuard.of(self.crawler).handle(exc) is None:
                raise
        finally:
            self.session = None

    # -- item signals ---------------------------------------------------------------------------------------

    def item_scraped(self, item: Any, response: Response | None = None, spider: Spider | None = None) -> None:
        session = self.session
        if session is None:
            return
        key = None
        request = getattr(response, "request", None)
        if request is not None:
            key = request.meta.get("deltafetch_key")
        if key is not None and spider is not None:
            session.request_key_stored(spider.name, str(key))
        session.item_finished(item)

    def item_dropped(
        self,
        item: Any,
        response: Response | None = None,
        exception: BaseException | None = None,
        spider: Spider | None = None,
    ) -> None:
        if self.session is not None:
            # A stage that failed (StageFailed) holds its page back like an item error: the next run redoes it.
            self.session.item_finished(item, failed=isinstance(exception, StageFailed))

    def item_error(self, item: Any, response: Response | None = None, spider: Spider | None = None) -> None:
        if self.session is not None:
            self.session.item_finished(item, failed=True)
