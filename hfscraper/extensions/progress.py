"""The progress line during a crawl, and the rate-limit budget kept in the crawl state.

`ProgressExtension` logs one INFO line per spider every HFSCRAPER_PROGRESS_INTERVAL seconds (default 30), in
place of Scrapy's bare `LogStats` line (which settings.py turns off; with the interval at 0 this extension
brings it back instead, every LOGSTATS_INTERVAL)::

    hfscraper: models: 12,345 stored, 120 skipped (410 entities/s, 395/s now), 13 pages, files 2,001
    downloaded (0 failed), 40 CIDs, api 812/1000 left (resets in 143 s)

(one line in the log). Entities per second count the entities stored and skipped, since the spider opened and
over the last interval. The numbers come from the crawler's stats (`hfscraper/state/recorded`,
`deltafetch/skipped`, `hfscraper/state/duplicate`, `hfscraper/spider/pages`, `hfscraper/files/downloaded`,
`hfscraper/files/failed`, `hfscraper/ipfs/entities`); the budget per bucket from what
`RateLimitDownloaderMiddleware` saw last (`SharedLimits.budgets`: the `r`, `t`, `q` of the Hub's RateLimit
headers), with the reset counted down since.

`RateLimitStateExtension` writes that budget (per host and bucket: remaining, seconds to the reset, quota,
window, when seen) into the crawl state's `ratelimits` table: at most every `RATELIMIT_SAVE_SECONDS`, only when
a new response brought new numbers, and once more when the spider closes, so `scrapy status` can show the
budget seen last. Only those numbers are stored, never a header, a URL or the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.extensions.logstats import LogStats

from hfscraper.extensions.checkpoint import state_location
from hfscraper.items import format_hub_datetime
from hfscraper.middlewares.ratelimit import PROCESS_LIMITS, SharedLimits
from hfscraper.ratelimit_pacer import BUCKETS
from hfscraper.state import RateLimitRow, SharedStateStore, StateStore

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.spiders import Spider

logger = logging.getLogger(__name__)

#: The budget is written to the crawl state at most this often (and when the spider closes).
RATELIMIT_SAVE_SECONDS = 5.0


def _n(value: Any) -> str:
    return f"{int(value or 0):,}"


def budget_text(limits: SharedLimits, now_mono: float) -> str:
    """`api 812/1000 left (resets in 143 s), resolvers ...`: the budget seen last per bucket (per host and bucket
    when the crawl talks to several hosts)."""
    budgets = limits.budgets
    hosts = {host for host, _ in budgets}
    order = {bucket: n for n, bucket in enumerate(BUCKETS)}
    parts = []
    for (host, bucket), seen in sorted(budgets.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9), kv[0][1])):
        name = f"{host} {bucket}" if len(hosts) > 1 else bucket
        left = f"{seen.remaining:,}/{seen.quota:,}" if seen.quota is not None else f"{seen.remaining:,}"
        parts.append(f"{name} {left} left (resets in {seen.resets_in(now_mono):.0f} s)")
    return ", ".join(parts)


def budget_rows(limits: SharedLimits) -> list[RateLimitRow]:
    """The budgets as rows of the state's `ratelimits` table."""
    return [
        RateLimitRow(
            host=host,
            bucket=bucket,
            remaining=seen.remaining,
            reset_seconds=seen.reset,
            quota=seen.quota,
            window=seen.window,
            seen_at=format_hub_datetime(datetime.fromtimestamp(seen.seen_at, UTC)),
        )
        for (host, bucket), seen in sorted(limits.budgets.items())
    ]


class ProgressExtension:
    """Log a progress line every HFSCRAPER_PROGRESS_INTERVAL seconds (see the module docstring).

    *limits* and *clock* exist for tests; a crawl uses the process-wide limits and `time.monotonic`.
    """

    def __init__(self, crawler: Crawler, interval: float, *, limits: SharedLimits | None = None,
                 clock: Any = time.monotonic) -> None:  # fmt: skip
        self.crawler = crawler
        self.interval = interval
        self.limits = PROCESS_LIMITS if limits is None else limits
        self.clock = clock
        self.name = ""
        self.started = 0.0
        self._previous: tuple[float, int] = (0.0, 0)
        self._task: asyncio.Future[None] | None = None
        self.fallback: LogStats | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        interval = crawler.settings.getfloat("HFSCRAPER_PROGRESS_INTERVAL", 30.0)
        if interval < 0:
            raise NotConfigured(f"HFSCRAPER_PROGRESS_INTERVAL ({interval!r}) must be 0 or more")
        extension = cls(crawler, interval)
        if interval == 0:
            # Off: Scrapy's own line instead, as if this extension were not installed.
            extension.fallback = LogStats.from_crawler(crawler)  # NotConfigured when LOGSTATS_INTERVAL is 0 too
            return extension
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider: Spider) -> None:
        self.name = spider.name
        self.started = self.clock()
        self._previous = (self.started, 0)
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                logger.info("%s", self.line())
            except Exception:  # a progress line must never stop a crawl
                logger.debug("Could not build the progress line", exc_info=True)

    def spider_closed(self, spider: Spider) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def line(self) -> str:
        """The progress line now (also advances the "now" rate's interval)."""
        stats = self.crawler.stats
        assert stats is not None
        get = stats.get_value
        now = self.clock()
        stored = int(get("hfscraper/state/recorded", 0) or 0)
        skipped = int(get("deltafetch/skipped", 0) or 0) + int(get("hfscraper/state/duplicate", 0) or 0)
        done = stored + skipped
        since_t, since_done = self._previous
        self._previous = (now, done)
        overall = done / (now - self.started) if now > self.started else 0.0
        recent = (done - since_done) / (now - since_t) if now > since_t else 0.0
        parts = [
            f"{_n(stored)} stored, {_n(skipped)} skipped ({overall:,.0f} entities/s, {recent:,.0f}/s now)",
            f"{_n(get('hfscraper/spider/pages'))} pages",
        ]
        if get("hfscraper/files/entities") is not None:
            parts.append(
                f"files {_n(get('hfscraper/files/downloaded'))} downloaded ({_n(get('hfscraper/files/failed'))} failed)"
            )
        if get("hfscraper/ipfs/entities") is not None:
            parts.append(f"{_n(get('hfscraper/ipfs/entities'))} CIDs")
        budget = budget_text(self.limits, now)
        if budget:
            parts.append(budget)
        return f"hfscraper: {self.name}: " + ", ".join(parts)


class RateLimitStateExtension:
    """Keep the rate-limit budget seen last in the crawl state (see the module docstring)."""

    def __init__(self, crawler: Crawler, *, limits: SharedLimits | None = None,
                 every: float = RATELIMIT_SAVE_SECONDS) -> None:  # fmt: skip
        self.crawler = crawler
        self.limits = PROCESS_LIMITS if limits is None else limits
        self.every = every
        self.state_file, _ = state_location(crawler.settings)
        self.fsync = crawler.settings.getbool("HFSCRAPER_STORE_FSYNC", False)
        self.shared: SharedStateStore | None = None
        self._saved_version = 0
        self._task: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        extension = cls(crawler)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider: Spider) -> None:
        if getattr(spider, "listing_identity", None) is None:
            return  # not a listing crawl: no crawl state
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            self.shared = SharedStateStore.acquire(self.state_file, fsync=self.fsync)
        except Exception as exc:
            logger.warning("Cannot keep the rate-limit budget in %(file)s: %(error)s",
                           {"file": self.state_file, "error": exc})  # fmt: skip
            return
        self._task = asyncio.ensure_future(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.save()

    async def save(self) -> None:
        """Write the budgets if a response brought new numbers since the last write."""
        version = self.limits.budgets_version
        if self.shared is None or version == self._saved_version or not self.limits.budgets:
            return
        self._saved_version = version
        try:
            await self.shared.call(StateStore.record_ratelimits, budget_rows(self.limits))
        except Exception as exc:  # the budget is informative: never stop a crawl for it
            logger.warning("Cannot save the rate-limit budget in %(file)s: %(error)s",
                           {"file": self.state_file, "error": exc})  # fmt: skip

    async def spider_closed(self, spider: Spider) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        shared, self.shared = self.shared, None
        if shared is None:
            return
        self.shared = shared
        try:
            await self.save()
        finally:
            self.shared = None
            shared.release()
