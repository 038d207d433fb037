"""Keep a crawl inside the Hub's rate limits: pace every bucket, and pause the whole host on a 429.

The Hub reports its quota on every response (`RateLimit: "api";r=<remaining>;t=<seconds to reset>` and
`RateLimit-Policy: "fixed window";"api";q=<quota>;w=<window>`, hub-docs rate-limits.md,
https://huggingface.co/docs/hub/rate-limits), per client and per bucket:
`resolvers` for URLs with `/resolve/` (and `/api/resolve-cache/`), `api` for other `/api/` URLs, `pages` for
the rest. `RateLimitDownloaderMiddleware` keeps one `QuotaPacer` (hfscraper/ratelimit_pacer.py) per host and
bucket, fed by the headers of every response, and makes each request wait in `process_request` until its
bucket may send again: what is left of the window is spread evenly over the time left, shared by all
concurrent requests to that bucket (they queue in order), so a bucket never runs dry.

On a 429 the whole host is paused, every bucket, not only the request that got it: until `Retry-After`
(seconds or HTTP-date), else the RateLimit reset `t`, else an exponential backoff, never longer than
HFSCRAPER_RATELIMIT_MAX_WAIT. The request is retried through Scrapy's `get_retry_request` (stats under
`hfscraper/ratelimit/...`), with its own retry budget: a 429 says the client is early, not that the
request failed, so it uses neither RETRY_TIMES nor RETRY_PRIORITY_ADJUST. AutoThrottle stays on and still
adapts the delay to the Hub's latency; this middleware only adds waits in front of it.

No Scrapy internals are used: the wait is an `async def process_request`, which Scrapy awaits before the
request enters the downloader slot; the download timeout starts only when the download handler sends the
request, so waiting never counts against DOWNLOAD_TIMEOUT, and a waiting request counts as active in the
downloader, so the engine does not pile up more behind it (at most CONCURRENT_REQUESTS wait). A Scrapy release
that changes any of the three fails a test: tests/test_middleware_ratelimit.py (TestScrapyContract) for the
first, tests/test_ratelimit_replica.py (a crawl with DOWNLOAD_TIMEOUT shorter than the wait; `waiting_max`) for
the other two.

Position: 940 in DOWNLOADER_MIDDLEWARES, after every default middleware and just before
HubAuthDownloaderMiddleware (950), which only adds the token while a request is on the wire. So its
`process_request` runs (nearly) last, right before the request goes out: no later middleware can answer a
paced request from a cache or add an unpaced one, and a request handed back on shutdown carries no token yet.
Its `process_response` sees every raw response before the other middlewares (but HubAuthDownloaderMiddleware,
which only takes the token off the request): the RateLimit headers of a 3xx before RedirectMiddleware (600)
turns it into a new request, and a 429 before RetryMiddleware (550) would re-queue it at once. A 429 it
retries therefore does not reach DownloaderStats (850) (no `downloader/response_status_count/429`); count them
under `hfscraper/ratelimit/429`.

Pacers and pauses are shared by every crawler of the process (`scrapy crawlall` runs three), keyed by host:
the Hub counts per client identity (its token, else its IP), and one process sends with one identity. The middleware
reaches them only through its pacing object (`LocalPacing`, over `SharedLimits`); in a distributed crawl, whose
processes on several machines share one identity, `RedisPacing` (hfscraper/distributed/ratelimit.py) keeps the same
pacers and pauses in Redis instead (HFSCRAPER_RATELIMIT_PACING).
Requests already handed to the downloader when a 429 arrives (in flight, or queued behind a download
delay) still go out; they get their own 429 and wait like the rest. On a graceful stop, requests still
waiting are handed back to the scheduler (kept in JOBDIR when one is set) instead of holding up shutdown; a request
marked `meta["hfscraper_unscheduled"]` (sent with `engine.download_async` by a pipeline: handing it back would only
send it round again) fails with IgnoreRequest instead.

Requests with `meta["dont_ratelimit"] = True` are neither paced nor paused, and their 429s are left to
RetryMiddleware. `meta["dont_retry"]` is honoured (the host still pauses), and `meta["max_retry_times"]`, when
set, replaces HFSCRAPER_RATELIMIT_MAX_429_RETRIES for that request.

Settings:

HFSCRAPER_RATELIMIT_ENABLED - turn the middleware on (default True; off leaves 429s to RetryMiddleware)
HFSCRAPER_RATELIMIT_MAX_WAIT - the longest pause after a 429, in seconds (default 600)
HFSCRAPER_RATELIMIT_RESERVE - requests of each window left unspent (default 1)
HFSCRAPER_RATELIMIT_MAX_429_RETRIES - how often one request is retried after 429s (default 10)
HFSCRAPER_RATELIMIT_PACING - where the pacers and pauses live: `local` (this process, `LocalPacing`), `redis`
    (shared by every process of a distributed crawl, `hfscraper.distributed.ratelimit.RedisPacing`), or `auto`
    (default: `redis` when HFSCRAPER_DISTRIBUTED_ROLE is `discovery` or `worker`, else `local`)

Stats:
hfscraper/ratelimit/429 - 429 responses; hfscraper/ratelimit/paused_seconds - time the host was paused;
hfscraper/ratelimit/waits - requests that had to wait; hfscraper/ratelimit/waiting_max - the most requests of
the crawler inside the middleware at once (at most CONCURRENT_REQUESTS: Scrapy counts them as active);
hfscraper/ratelimit/<bucket>/remaining - the last `r` seen, .../quota, .../window - the policy (per host and bucket,
with the reset and when it was seen, also in `SharedLimits.budgets`, which the progress line shows and the crawl
state keeps);
from get_retry_request: hfscraper/ratelimit/count, hfscraper/ratelimit/reason_count/429,
hfscraper/ratelimit/max_reached; hfscraper/ratelimit/bucket_mismatch - RateLimit headers naming another bucket
than the URL's (ignored); hfscraper/ratelimit/requeued_on_shutdown - waiting requests handed back on a stop;
hfscraper/ratelimit/dropped_on_shutdown - waiting unscheduled requests failed on a stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.asyncio import is_asyncio_available
from scrapy.utils.httpobj import urlparse_cached

from hfscraper.hub import parse_ratelimit, parse_ratelimit_policy
from hfscraper.ratelimit_pacer import QuotaPacer, bucket_for_url, pause_after_429

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

STATS_PREFIX = "hfscraper/ratelimit"
#: meta key: (host, bucket, sequence number) of a request this middleware let through.
TICKET_META = "_hfscraper_ratelimit_ticket"
#: meta key: the request was sent with `engine.download_async` (by a pipeline), not through the scheduler.
UNSCHEDULED_META = "hfscraper_unscheduled"
#: meta key: how many times the request was already retried after a 429.
RETRIES_META = "hfscraper_ratelimit_retries"
#: A waiting request looks again at least this often (new headers, a new pause, a shutdown).
RECHECK_SECONDS = 1.0


class HostPause:
    """A host paused after a 429 until `until` (monotonic seconds); `in_a_row` counts its 429s since the last
    other answer (for the backoff)."""

    __slots__ = ("in_a_row", "until")

    def __init__(self) -> None:
        self.until = 0.0
        self.in_a_row = 0


@dataclass(frozen=True)
class SeenBudget:
    """The rate-limit numbers of the last response of one bucket of one host, and when it came: `remaining` (`r`),
    `reset` seconds to the window's reset (`t`), `quota` and `window` (`q` and `w` of the last RateLimit-Policy
    seen for the bucket), `seen_at` (wall clock, `time.time()`) and `seen_mono` (the middleware's clock)."""

    remaining: int
    reset: float
    quota: int | None
    window: float | None
    seen_at: float
    seen_mono: float

    def resets_in(self, now_mono: float) -> float:
        """Seconds from *now_mono* to the reset the response announced (0 once past)."""
        return max(0.0, self.reset - (now_mono - self.seen_mono))


class SharedLimits:
    """Pacers, their queues and host pauses, shared by every middleware instance that is given it.

    `budgets` holds the last rate-limit numbers seen per (host, bucket), for the progress line and the crawl
    state (`hfscraper.extensions.progress`); `budgets_version` grows with every update. Only the numbers: never
    a header, a URL or a token. Hosts are `host[:port]` without any user info.
    """

    def __init__(self) -> None:
        self.pacers: dict[tuple[str, str], QuotaPacer] = {}
        self.queues: dict[tuple[str, str], tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}
        self.pauses: dict[str, HostPause] = {}
        self.budgets: dict[tuple[str, str], SeenBudget] = {}
        self.budgets_version = 0

    def saw_budget(self, host: str, bucket: str, budget: SeenBudget) -> None:
        self.budgets[(host.rpartition("@")[2], bucket)] = budget
        self.budgets_version += 1

    def pacer(self, host: str, bucket: str, reserve: int) -> QuotaPacer:
        key = (host, bucket)
        if key not in self.pacers:
            self.pacers[key] = QuotaPacer(reserve=reserve)
        return self.pacers[key]

    def queue(self, host: str, bucket: str) -> asyncio.Lock:
        """The FIFO lock requests to a bucket wait on, so they leave in the order they came (one per event loop:
        a lock cannot be shared between loops, and a test process may run crawls in several)."""
        key = (host, bucket)
        loop = asyncio.get_running_loop()
        if key not in self.queues or self.queues[key][0] is not loop:
            self.queues[key] = (loop, asyncio.Lock())
        return self.queues[key][1]

    def pause(self, host: str) -> HostPause:
        if host not in self.pauses:
            self.pauses[host] = HostPause()
        return self.pauses[host]


#: The limits of this process: one client identity, shared by all its crawlers.
PROCESS_LIMITS = SharedLimits()


class LocalPacing:
    """The pacing of this process: `QuotaPacer`s and `HostPause`s kept in a `SharedLimits` (the default).

    The middleware talks to its pacing only through these methods, so that another implementation (one shared
    by several processes, `hfscraper.distributed.ratelimit.RedisPacing`) can replace it. Times are on the
    middleware's clock.
    """

    def __init__(self, limits: SharedLimits, reserve: int) -> None:
        self.limits = limits
        self.reserve = reserve

    def try_send(self, host: str, bucket: str, now: float) -> tuple[float, int | None]:
        """`(now, sequence number)` when a request to the bucket may go now (it is counted as sent), else
        `(when it may, None)`."""
        pacer = self.limits.pacer(host, bucket, self.reserve)
        ready_at = max(self.limits.pause(host).until, pacer.next_send_at(now))
        if ready_at > now:
            return ready_at, None
        return now, pacer.sent_one(now)

    def describe(self, host: str, bucket: str) -> str:
        return repr(self.limits.pacer(host, bucket, self.reserve))

    def observed(
        self, host: str, bucket: str, seq: int, now: float, remaining: int, reset: float,
        quota: int | None, window: float | None,
    ) -> None:  # fmt: skip
        self.limits.pacer(host, bucket, self.reserve).observed(seq, now, remaining, reset, quota=quota, window=window)

    def forget(self, host: str, bucket: str, seq: int) -> None:
        self.limits.pacer(host, bucket, self.reserve).forget(seq)

    def answered(self, host: str) -> None:
        """A response other than 429 came from *host*: the backoff starts over."""
        self.limits.pause(host).in_a_row = 0

    def rate_limited(self, host: str) -> int:
        """A 429 came from *host*; returns its 429s in a row (for the backoff)."""
        pause = self.limits.pause(host)
        pause.in_a_row += 1
        return pause.in_a_row

    def pause_for(self, host: str, now: float, seconds: float) -> tuple[float, bool]:
        """Pause *host* until *seconds* after *now* unless it is paused longer already; returns the seconds the
        pause grew by (0: it did not) and whether the host was paused before."""
        pause = self.limits.pause(host)
        until = now + seconds
        was_paused = pause.until > now
        if until <= pause.until:
            return 0.0, was_paused
        added = until - max(pause.until, now)
        pause.until = until
        return added, was_paused


#: HFSCRAPER_RATELIMIT_PACING values, and the distributed roles that make `auto` mean `redis`.
PACINGS = ("auto", "local", "redis")
_DISTRIBUTED_ROLES = ("discovery", "worker")


def pacing_name(settings: Any) -> str:
    """`local` or `redis`: HFSCRAPER_RATELIMIT_PACING, with `auto` resolved by HFSCRAPER_DISTRIBUTED_ROLE."""
    name = settings.get("HFSCRAPER_RATELIMIT_PACING") or "auto"
    if name not in PACINGS:
        raise NotConfigured(f"HFSCRAPER_RATELIMIT_PACING must be one of {', '.join(PACINGS)}, not {name!r}")
    if name == "auto":
        return "redis" if settings.get("HFSCRAPER_DISTRIBUTED_ROLE") in _DISTRIBUTED_ROLES else "local"
    return str(name)


def request_key(request: Request) -> tuple[str, str]:
    """(host, bucket) of a request: host is `host[:port]`, lowercased."""
    parts = urlparse_cached(request)
    return parts.netloc.lower(), bucket_for_url(request.url)


class RateLimitDownloaderMiddleware:
    """Pace requests by the Hub's RateLimit headers and pause the host on 429 (see the module docstring).

    *limits*, *clock*, *wall_clock* and *sleep* exist for tests (`build_from_crawler(cls, crawler, clock=...)`);
    a crawl uses the process-wide limits, `time.monotonic`, `time.time` and `asyncio.sleep`.
    """

    def __init__(
        self,
        crawler: Crawler,
        *,
        limits: SharedLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        settings = crawler.settings
        if not settings.getbool("HFSCRAPER_RATELIMIT_ENABLED", True):
            raise NotConfigured
        self.max_wait: float = settings.getfloat("HFSCRAPER_RATELIMIT_MAX_WAIT", 600.0)
        if self.max_wait < 0:
            raise NotConfigured(
                f"HFSCRAPER_RATELIMIT_MAX_WAIT ({self.max_wait!r}) must be 0 or more to enable "
                "RateLimitDownloaderMiddleware"
            )
        self.reserve: int = settings.getint("HFSCRAPER_RATELIMIT_RESERVE", 1)
        if self.reserve < 0:
            raise NotConfigured(
                f"HFSCRAPER_RATELIMIT_RESERVE ({self.reserve!r}) must be 0 or more to enable "
                "RateLimitDownloaderMiddleware"
            )
        self.max_429_retries: int = settings.getint("HFSCRAPER_RATELIMIT_MAX_429_RETRIES", 10)
        if self.max_429_retries < 0:
            raise NotConfigured(
                f"HFSCRAPER_RATELIMIT_MAX_429_RETRIES ({self.max_429_retries!r}) must be 0 or more to enable "
                "RateLimitDownloaderMiddleware"
            )
        if sleep is None:
            if not _asyncio_reactor():
                raise NotConfigured(
                    "RateLimitDownloaderMiddleware needs the asyncio reactor (TWISTED_REACTOR = "
                    "'twisted.internet.asyncioreactor.AsyncioSelectorReactor', Scrapy's default)"
                )
            sleep = asyncio.sleep
        self.crawler = crawler
        self.limits = PROCESS_LIMITS if limits is None else limits
        self.pacing: LocalPacing | Any
        if limits is None and pacing_name(settings) == "redis":
            # Imported here: redis-py is needed only by distributed crawls.
            from hfscraper.distributed.ratelimit import RedisPacing

            self.pacing = RedisPacing.from_settings(settings, self.reserve)
        else:
            self.pacing = LocalPacing(self.limits, self.reserve)
        self.clock = clock
        self.wall_clock = wall_clock
        self.sleep = sleep
        self._mismatch_logged = False
        self._in_gate = 0  # requests of this crawler inside process_request now
        self._in_gate_max = 0

    @classmethod
    def from_crawler(cls, crawler: Crawler, **kwargs: Any) -> Self:
        return cls(crawler, **kwargs)

    @property
    def stats(self) -> StatsCollector:
        stats = self.crawler.stats
        assert stats is not None
        return stats

    # -- before the request goes out --------------------------------------------------------------------------

    async def process_request(self, request: Request) -> Request | None:
        """Wait until the request's bucket may send and its host is not paused, then let it through."""
        request.meta.pop(TICKET_META, None)  # a retry or redirect copies the meta of the request before it
        if request.meta.get("dont_ratelimit"):
            return None
        host, bucket = request_key(request)
        self._in_gate += 1
        if self._in_gate > self._in_gate_max:
            self._in_gate_max = self._in_gate
            self.stats.max_value(f"{STATS_PREFIX}/waiting_max", self._in_gate)
        try:
            return await self._wait_for_slot(request, host, bucket)
        finally:
            self._in_gate -= 1

    async def _wait_for_slot(self, request: Request, host: str, bucket: str) -> Request | None:
        async with self.limits.queue(host, bucket):
            waited = False
            while True:
                now = self.clock()
                ready_at, seq = self.pacing.try_send(host, bucket, now)
                if seq is not None:
                    break
                if self._stopping():
                    if request.meta.get(UNSCHEDULED_META):
                        self.stats.inc_value(f"{STATS_PREFIX}/dropped_on_shutdown")
                        raise IgnoreRequest("the crawl is stopping")
                    self.stats.inc_value(f"{STATS_PREFIX}/requeued_on_shutdown")
                    return request.replace(dont_filter=True)
                if not waited:
                    waited = True
                    self.stats.inc_value(f"{STATS_PREFIX}/waits")
                    logger.debug(
                        "Waiting %(seconds).2f s before %(url)s (%(bucket)s bucket: %(pacer)s)",
                        {
                            "seconds": ready_at - now, "url": request.url, "bucket": bucket,
                            "pacer": self.pacing.describe(host, bucket),
                        },
                    )  # fmt: skip
                await self.sleep(min(ready_at - now, RECHECK_SECONDS))
        request.meta[TICKET_META] = (host, bucket, seq)
        return None

    def _stopping(self) -> bool:
        """True once a graceful stop began (the engine no longer runs)."""
        try:
            engine = self.crawler.engine
        except RuntimeError:  # Scrapy 2.19 raises for an engine that is not set yet: not crawling at all
            return False
        return not engine.running

    # -- after it came back -----------------------------------------------------------------------------------

    def process_response(self, request: Request, response: Response) -> Request | Response:
        ticket = request.meta.pop(TICKET_META, None)
        if ticket is None or request.meta.get("dont_ratelimit"):
            return response  # not sent through this middleware (opted out, or answered from a cache)
        host, bucket, seq = ticket
        now = self.clock()
        ratelimit = parse_ratelimit(_header(response, b"RateLimit"))
        policy = parse_ratelimit_policy(_header(response, b"RateLimit-Policy"))
        if ratelimit is None:
            self.pacing.forget(host, bucket, seq)
        elif ratelimit.bucket != bucket:
            self.pacing.forget(host, bucket, seq)
            self._bucket_mismatch(response, bucket, ratelimit.bucket)
        else:
            if policy is not None and policy.bucket != bucket:
                policy = None
            self.pacing.observed(
                host,
                bucket,
                seq,
                now,
                ratelimit.remaining,
                ratelimit.reset,
                quota=policy.quota if policy else None,
                window=policy.window if policy else None,
            )
            self.stats.set_value(f"{STATS_PREFIX}/{bucket}/remaining", ratelimit.remaining)
            known = self.limits.budgets.get((host.rpartition("@")[2], bucket))
            self.limits.saw_budget(
                host,
                bucket,
                SeenBudget(
                    remaining=ratelimit.remaining,
                    reset=float(ratelimit.reset),
                    quota=policy.quota if policy else (known.quota if known else None),
                    window=float(policy.window) if policy else (known.window if known else None),
                    seen_at=self.wall_clock(),
                    seen_mono=now,
                ),
            )
            if policy is not None:
                self.stats.set_value(f"{STATS_PREFIX}/{bucket}/quota", policy.quota)
                self.stats.set_value(f"{STATS_PREFIX}/{bucket}/window", policy.window)
        if response.status != 429:
            self.pacing.answered(host)
            return response
        return self._after_429(request, response, host, bucket, now, ratelimit)

    def process_exception(self, request: Request, exception: Exception) -> None:
        ticket = request.meta.pop(TICKET_META, None)
        if ticket is not None:
            host, bucket, seq = ticket
            self.pacing.forget(host, bucket, seq)

    def _after_429(
        self,
        request: Request,
        response: Response,
        host: str,
        bucket: str,
        now: float,
        ratelimit: Any,
    ) -> Request | Response:
        self.stats.inc_value(f"{STATS_PREFIX}/429")
        seconds, why = pause_after_429(
            retry_after=_header(response, b"Retry-After"),
            remaining=ratelimit.remaining if ratelimit is not None else None,
            reset=ratelimit.reset if ratelimit is not None else None,
            attempt=self.pacing.rate_limited(host),
            max_wait=self.max_wait,
            now_wall=self.wall_clock(),
        )
        added, was_paused = self.pacing.pause_for(host, now, seconds)
        if added > 0:
            self.stats.inc_value(f"{STATS_PREFIX}/paused_seconds", round(added, 3), start=0)
            log = logger.debug if was_paused else logger.info
            log(
                "Rate limited (429) on the %(bucket)s bucket of %(host)s: pausing every request to it for "
                "%(seconds).1f s (%(why)s)",
                {"bucket": bucket, "host": host, "seconds": seconds, "why": why},
            )
        if request.meta.get("dont_retry", False):
            return response
        done = request.meta.get(RETRIES_META, 0)
        budget = request.meta.get("max_retry_times")
        if budget is None:
            budget = self.max_429_retries
        retry_times = request.meta.get("retry_times", 0)
        spider = self.crawler.spider
        assert spider is not None
        retry = get_retry_request(
            request,
            spider=spider,
            reason="429",
            # get_retry_request counts in meta["retry_times"], shared with RetryMiddleware: offset the budget
            # by what is already there so that only 429 retries count against it.
            max_retry_times=retry_times + max(0, budget - done),
            priority_adjust=0,
            logger=logger,
            stats_base_key=STATS_PREFIX,
        )
        if retry is None:
            # Out of 429 retries: the 429 goes to the spider's errback; RetryMiddleware must not retry it again.
            request.meta["dont_retry"] = True
            return response
        retry.meta["retry_times"] = retry_times
        retry.meta[RETRIES_META] = done + 1
        return retry

    def _bucket_mismatch(self, response: Response, expected: str, named: str) -> None:
        self.stats.inc_value(f"{STATS_PREFIX}/bucket_mismatch")
        log = logger.debug if self._mismatch_logged else logger.warning
        self._mismatch_logged = True
        log(
            "RateLimit header of %(url)s names the %(named)s bucket, not %(expected)s; not pacing by it",
            {"url": response.url, "named": named, "expected": expected},
        )


def _header(response: Response, name: bytes) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value is not None else None


def _asyncio_reactor() -> bool:
    try:
        return is_asyncio_available()
    except RuntimeError:  # no reactor installed yet: Scrapy installs its default, the asyncio one
        return True
