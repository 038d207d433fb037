"""RateLimitDownloaderMiddleware and its pacing logic (hfscraper/ratelimit_pacer.py), on a fake clock.

Integration tests against the replica are in tests/test_ratelimit_replica.py.
"""

from __future__ import annotations

import asyncio
import doctest
import heapq
import logging
import math
import random
from datetime import UTC, datetime
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy import Request, Spider
from scrapy.core.downloader.middleware import DownloaderMiddlewareManager
from scrapy.exceptions import NotConfigured
from scrapy.http import Response
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from hfscraper import ratelimit_pacer
from hfscraper import settings as project_settings
from hfscraper.middlewares.ratelimit import (
    RETRIES_META,
    TICKET_META,
    RateLimitDownloaderMiddleware,
    SharedLimits,
)
from hfscraper.ratelimit_pacer import QuotaPacer, bucket_for_url, parse_retry_after, pause_after_429

HUB = "https://hub.test"
MW_PATH = "hfscraper.middlewares.ratelimit.RateLimitDownloaderMiddleware"


def test_doctests() -> None:
    assert doctest.testmod(ratelimit_pacer).failed == 0


# -- helpers ------------------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would

    @property
    def slept(self) -> float:
        return sum(self.sleeps)


def headers(
    remaining: int, reset: int, quota: int = 100, window: int = 60, bucket: str = "api", **extra: str
) -> dict[str, str]:
    return {
        "RateLimit": f'"{bucket}";r={remaining};t={reset}',
        "RateLimit-Policy": f'"fixed window";"{bucket}";q={quota};w={window}',
        **extra,
    }


class Harness:
    """One middleware on a fake clock, with its crawler, spider and stats."""

    WALL = 1_700_000_000.0

    def __init__(self, settings: dict[str, Any] | None = None, limits: SharedLimits | None = None) -> None:
        self.crawler = get_crawler(Spider, settings_dict=settings or {})
        self.crawler.spider = self.crawler._create_spider("test")
        self.clock = FakeClock()
        self.limits = limits if limits is not None else SharedLimits()
        self.mw: RateLimitDownloaderMiddleware = build_from_crawler(
            RateLimitDownloaderMiddleware,
            self.crawler,
            limits=self.limits,
            clock=self.clock,
            wall_clock=lambda: self.WALL + self.clock.now,
            sleep=self.clock.sleep,
        )

    def stat(self, key: str) -> Any:
        return self.crawler.stats.get_value(f"hfscraper/ratelimit/{key}")

    def send(self, request: Request) -> Request | None:
        """Run process_request to its end; returns what it returned."""
        return asyncio.run(self.mw.process_request(request))

    def answer(self, request: Request, status: int = 200, **kw: Any) -> Request | Response:
        response = Response(request.url, status=status, headers=kw.pop("hdrs", None) or {}, request=request)
        return self.mw.process_response(request, response)

    def waited(self, request: Request) -> float:
        before = self.clock.slept
        assert self.send(request) is None
        return self.clock.slept - before


def api(path: str = "/api/models", **kw: Any) -> Request:
    return Request(HUB + path, **kw)


# -- the pure parts ------------------------------------------------------------------------------------------


class TestBuckets:
    @pytest.mark.parametrize(
        ("url", "bucket"),
        [
            ("https://huggingface.co/api/models?limit=1000&expand=sha", "api"),
            ("https://huggingface.co/api/datasets/squad/tree/main", "api"),
            ("https://huggingface.co/api", "api"),
            ("https://huggingface.co/gpt2/resolve/main/config.json", "resolvers"),
            ("https://huggingface.co/datasets/squad/resolve/main/x.json", "resolvers"),
            ("https://huggingface.co/api/resolve-cache/models/gpt2/abc/config.json", "resolvers"),
            ("https://huggingface.co/gpt2", "pages"),
            ("https://huggingface.co/apiary/x", "pages"),
            ("https://huggingface.co/", "pages"),
        ],
    )
    def test_bucket_for_url(self, url: str, bucket: str) -> None:
        assert bucket_for_url(url) == bucket


class TestRetryAfter:
    NOW = 1_445_412_470.0  # Wed, 21 Oct 2015 07:27:50 GMT

    def test_seconds(self) -> None:
        assert parse_retry_after("120", self.NOW) == 120.0
        assert parse_retry_after(" 0 ", self.NOW) == 0.0

    def test_http_date(self) -> None:
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", self.NOW) == 10.0
        date = format_datetime(datetime.fromtimestamp(self.NOW + 42, UTC), usegmt=True)
        assert parse_retry_after(date, self.NOW) == pytest.approx(42.0)

    def test_date_in_the_past_is_zero(self) -> None:
        assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", self.NOW) == 0.0

    @pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5", "12abc", "Wed, 99 Oct 2015 07:28:00 GMT", "٣"])
    def test_garbage(self, value: str | None) -> None:
        assert parse_retry_after(value, self.NOW) is None

    def test_pause_prefers_retry_after_then_reset_then_backoff(self) -> None:
        common = {"attempt": 1, "max_wait": 600.0, "now_wall": self.NOW}
        assert pause_after_429(retry_after="9", remaining=0, reset=30, **common) == (9.0, "Retry-After")
        assert pause_after_429(retry_after="nonsense", remaining=0, reset=30, **common) == (30.0, "RateLimit reset")
        # A 429 with budget left is some other limit: its window reset says nothing about it.
        assert pause_after_429(retry_after=None, remaining=12, reset=30, **common) == (1.0, "backoff")
        assert pause_after_429(retry_after=None, remaining=None, reset=None, **common) == (1.0, "backoff")

    def test_backoff_doubles_up_to_the_cap(self) -> None:
        waits = [
            pause_after_429(retry_after=None, remaining=None, reset=None, attempt=n, max_wait=20, now_wall=0)[0]
            for n in range(1, 8)
        ]
        assert waits == [1, 2, 4, 8, 16, 20, 20]

    def test_over_the_cap(self) -> None:
        seconds, why = pause_after_429(
            retry_after="86400", remaining=0, reset=300, attempt=1, max_wait=600, now_wall=self.NOW
        )
        assert seconds == 600
        assert "capped" in why
        far = "Wed, 21 Oct 2015 09:00:00 GMT"
        assert (
            pause_after_429(retry_after=far, remaining=None, reset=None, attempt=1, max_wait=60, now_wall=self.NOW)[0]
            == 60
        )


class TestQuotaPacer:
    def test_nothing_known_means_no_wait(self) -> None:
        pacer = QuotaPacer()
        assert pacer.next_send_at(5.0) == 5.0
        assert pacer.remaining(5.0) is None

    def test_spreads_what_remains_over_what_remains_of_the_window(self) -> None:
        pacer = QuotaPacer(reserve=0)
        seq = pacer.sent_one(0.0)
        pacer.observed(seq, 0.0, remaining=9, reset=10, quota=10, window=10)
        # 9 requests and the gap after the last share the 10 s left: one every second.
        assert pacer.next_send_at(0.0) == pytest.approx(1.0)
        pacer.sent_one(1.0)
        assert pacer.next_send_at(1.0) == pytest.approx(2.0)
        # A caller that comes late is not made to wait.
        assert pacer.next_send_at(7.5) == 7.5

    def test_in_flight_requests_are_subtracted(self) -> None:
        pacer = QuotaPacer()
        seqs = [pacer.sent_one(0.0) for _ in range(4)]
        pacer.observed(seqs[0], 0.1, remaining=50, reset=60, quota=100, window=60)
        # r=50 was counted before the three requests sent after the first one.
        assert pacer.remaining(0.1) == 47
        assert pacer.in_flight == 3

    def test_the_lowest_estimate_wins_when_answers_come_out_of_order(self) -> None:
        pacer = QuotaPacer()
        a, b, c = (pacer.sent_one(0.0) for _ in range(3))
        pacer.observed(a, 0.1, remaining=22, reset=60, quota=100, window=60)
        assert pacer.remaining(0.1) == 20
        # c was counted before b: its answer alone would say 21 are left; the estimate never goes up.
        pacer.observed(c, 0.2, remaining=21, reset=60)
        assert pacer.remaining(0.2) == 20
        # b, counted last, says 20 after b: 19 once c is subtracted again (c is counted twice: safe side).
        pacer.observed(b, 0.3, remaining=20, reset=60)
        assert pacer.remaining(0.3) == 19

    def test_first_answer_of_a_window_subtracts_earlier_requests_in_flight(self) -> None:
        pacer = QuotaPacer()
        a, b, c = (pacer.sent_one(0.0) for _ in range(3))
        pacer.observed(c, 0.1, remaining=20, reset=60, quota=100, window=60)
        assert pacer.remaining(0.1) == 18  # a and b may still be counted after c

    def test_another_client_spending_the_quota_shows_up(self) -> None:
        pacer = QuotaPacer()
        pacer.observed(pacer.sent_one(0.0), 0.0, remaining=80, reset=60, quota=100, window=60)
        pacer.observed(pacer.sent_one(1.0), 1.0, remaining=3, reset=59)
        assert pacer.remaining(1.0) == 3

    def test_nothing_left_means_waiting_for_the_reset(self) -> None:
        pacer = QuotaPacer(reserve=0)
        pacer.observed(pacer.sent_one(0.0), 0.0, remaining=0, reset=42, quota=100, window=60)
        assert pacer.next_send_at(1.0) == pytest.approx(42.0)

    def test_reserve(self) -> None:
        pacer = QuotaPacer(reserve=2)
        pacer.observed(pacer.sent_one(0.0), 0.0, remaining=2, reset=30, quota=100, window=60)
        assert pacer.next_send_at(0.0) == pytest.approx(30.0)
        pacer = QuotaPacer(reserve=2)
        pacer.observed(pacer.sent_one(0.0), 0.0, remaining=3, reset=30, quota=100, window=60)
        assert pacer.next_send_at(0.0) == pytest.approx(15.0)
        with pytest.raises(ValueError):
            QuotaPacer(reserve=-1)

    def test_window_end_is_the_tightest_bound(self) -> None:
        pacer = QuotaPacer()
        pacer.observed(pacer.sent_one(0.0), 0.3, remaining=90, reset=60, quota=100, window=60)
        assert pacer.window_end == pytest.approx(60.3)
        pacer.observed(pacer.sent_one(0.4), 0.9, remaining=89, reset=60)
        assert pacer.window_end == pytest.approx(60.3)
        pacer.observed(pacer.sent_one(1.0), 1.2, remaining=88, reset=59)
        assert pacer.window_end == pytest.approx(60.2)

    def test_window_rollover(self) -> None:
        pacer = QuotaPacer(reserve=0)
        pacer.observed(pacer.sent_one(0.0), 0.0, remaining=0, reset=10, quota=100, window=10)
        late = pacer.sent_one(9.9)  # in flight across the reset: it may count in the new window
        assert pacer.next_send_at(9.95) == pytest.approx(10.0)
        assert pacer.remaining(10.0) == 99
        assert pacer.window_end is None and pacer.next_send_at(10.0) == 10.0
        # An answer to a request sent before the reset says nothing about the new window.
        pacer.observed(late, 10.01, remaining=0, reset=1)
        assert pacer.remaining(10.01) == 99
        # The first request of the window opens it; until its answer the window is assumed to end w later.
        first = pacer.sent_one(10.5)
        assert pacer.window_end == pytest.approx(20.5)
        pacer.observed(first, 10.6, remaining=98, reset=10)
        assert pacer.window_end == pytest.approx(20.6)
        assert pacer.remaining(10.6) == 98

    def test_a_later_window_than_expected_is_followed(self) -> None:
        pacer = QuotaPacer()
        pacer.observed(pacer.sent_one(0.0), 0.0, remaining=5, reset=10, quota=100, window=60)
        pacer.observed(pacer.sent_one(1.0), 1.0, remaining=99, reset=60)
        assert pacer.window_end == pytest.approx(61.0)
        assert pacer.remaining(1.0) == 99

    def test_a_short_429_reset_inside_a_long_window(self) -> None:
        # The Hub's per-action limits (and the replica's "429" fault) answer r=0;t=1 while the window has
        # plenty left: wait that second, then go on with the quota.
        pacer = QuotaPacer(reserve=0)
        pacer.observed(pacer.sent_one(0.0), 0.0, remaining=900, reset=250, quota=1000, window=300)
        pacer.observed(pacer.sent_one(1.0), 1.0, remaining=0, reset=1)
        assert pacer.next_send_at(1.0) == pytest.approx(2.0)
        assert pacer.remaining(2.0) == 1000
        assert pacer.next_send_at(2.0) == 2.0

    def test_without_a_policy_a_rollover_forgets_everything(self) -> None:
        pacer = QuotaPacer(reserve=0)
        pacer.observed(pacer.sent_one(0.0), 0.0, remaining=0, reset=5)
        assert pacer.next_send_at(0.0) == pytest.approx(5.0)
        assert pacer.remaining(5.0) is None and pacer.next_send_at(5.0) == 5.0


class FixedWindowHub:
    """The replica's limiter in miniature: a window opens at the first request after the previous one ended."""

    def __init__(self, quota: int, window: int) -> None:
        self.quota, self.window = quota, window
        self.started: float | None = None
        self.used = 0
        self.per_window: list[int] = []

    def hit(self, now: float) -> tuple[bool, int, int]:
        if self.started is None or now >= self.started + self.window:
            self.started, self.used = now, 0
            self.per_window.append(0)
        allowed = self.used < self.quota
        if allowed:
            self.used += 1
            self.per_window[-1] += 1
        reset = max(1, math.ceil(self.started + self.window - now))
        return allowed, self.quota - self.used, reset


def simulate(
    pacer: QuotaPacer, hub: FixedWindowHub, *, duration: float, concurrency: int, latency: float, seed: int = 1
) -> list[bool]:
    """Run `concurrency` workers through the pacer for `duration` seconds; each request takes a random share
    of up to `latency` to reach the hub and as long again to come back. Returns allowed/denied per answer."""
    rng = random.Random(seed)
    now, free, events, answers, order = 0.0, concurrency, [], [], 0
    while True:
        send_at = pacer.next_send_at(now) if free else math.inf
        next_event = events[0][0] if events else math.inf
        if min(send_at, next_event) >= duration:
            return answers
        order += 1
        if send_at <= next_event:
            now = send_at
            free -= 1
            seq = pacer.sent_one(now)
            heapq.heappush(events, (now + rng.uniform(0.1, 1) * latency, order, "arrive", seq, None))
        else:
            now, _, kind, seq, result = heapq.heappop(events)
            if kind == "arrive":
                answer = hub.hit(now)
                heapq.heappush(events, (now + rng.uniform(0.1, 1) * latency, order, "answer", seq, answer))
            else:
                allowed, remaining, reset = result
                pacer.observed(seq, now, remaining, reset, quota=hub.quota, window=hub.window)
                answers.append(allowed)
                free += 1


class TestPacingAgainstAFixedWindow:
    @pytest.mark.parametrize(
        ("quota", "window", "concurrency", "latency"),
        [(50, 5, 1, 0.01), (50, 5, 4, 0.2), (100, 10, 16, 0.5), (500, 300, 8, 0.3), (20, 1, 3, 0.05)],
    )
    def test_never_denied_and_nearly_all_of_the_quota_used(
        self, quota: int, window: int, concurrency: int, latency: float
    ) -> None:
        hub = FixedWindowHub(quota, window)
        pacer = QuotaPacer(reserve=1)
        duration = window * 12
        answers = simulate(pacer, hub, duration=duration, concurrency=concurrency, latency=latency)
        assert all(answers), f"{answers.count(False)} requests denied"
        full = hub.per_window[1:-1]  # the first discovers the policy, the last is cut short
        assert min(full) >= quota - 1 - concurrency, hub.per_window
        assert len(answers) >= 0.85 * quota * duration / window

    def test_another_client_burning_the_quota_causes_no_denial_after_the_first_answer(self) -> None:
        hub = FixedWindowHub(50, 5)
        pacer = QuotaPacer(reserve=1)
        simulate(pacer, hub, duration=7.0, concurrency=2, latency=0.02)
        for _ in range(hub.quota - hub.used - 3):  # someone else leaves three requests of this window
            hub.hit(7.0)
        answers = simulate(pacer, hub, duration=30.0, concurrency=1, latency=0.02, seed=2)
        assert answers.count(False) == 0


# -- the middleware ----------------------------------------------------------------------------------------


class TestConfiguration:
    def test_registered_between_the_retry_and_auth_middlewares(self) -> None:
        priority = project_settings.DOWNLOADER_MIDDLEWARES[MW_PATH]
        # process_response runs from the highest priority down: before retries (550) and redirects (600)
        assert priority > 610
        # ... and after every default middleware's process_request (HttpCache is the last at 900)
        assert priority > 900
        auth = project_settings.DOWNLOADER_MIDDLEWARES.get("hfscraper.middlewares.auth.HubAuthDownloaderMiddleware")
        if auth is not None:
            assert priority < auth, "the token must be added after the wait, so a requeued request carries none"

    def test_disabled(self) -> None:
        crawler = get_crawler(Spider, settings_dict={"HFSCRAPER_RATELIMIT_ENABLED": False})
        with pytest.raises(NotConfigured):
            build_from_crawler(RateLimitDownloaderMiddleware, crawler, sleep=FakeClock().sleep)

    @pytest.mark.parametrize(
        "name", ["HFSCRAPER_RATELIMIT_MAX_WAIT", "HFSCRAPER_RATELIMIT_RESERVE", "HFSCRAPER_RATELIMIT_MAX_429_RETRIES"]
    )
    def test_negative_values_are_refused(self, name: str) -> None:
        crawler = get_crawler(Spider, settings_dict={name: -1})
        with pytest.raises(NotConfigured, match=name):
            build_from_crawler(RateLimitDownloaderMiddleware, crawler, sleep=FakeClock().sleep)

    def test_defaults(self) -> None:
        mw = Harness().mw
        assert (mw.max_wait, mw.reserve, mw.max_429_retries) == (600.0, 1, 10)


class TestPacing:
    def test_first_request_is_not_blocked(self) -> None:
        h = Harness()
        request = api()
        assert h.waited(request) == 0
        assert request.meta[TICKET_META] == ("hub.test", "api", 1)
        assert h.stat("waits") is None

    def test_headers_are_read_and_counted(self) -> None:
        h = Harness()
        request = api()
        h.send(request)
        assert h.answer(request, hdrs=headers(remaining=57, reset=40, quota=60, window=50)).status == 200
        assert (h.stat("api/remaining"), h.stat("api/quota"), h.stat("api/window")) == (57, 60, 50)
        assert TICKET_META not in request.meta

    def test_requests_are_spread_over_the_window(self) -> None:
        h = Harness({"HFSCRAPER_RATELIMIT_RESERVE": 0})
        end = h.clock.now + 10
        left = 5

        def answer(request: Request) -> None:
            nonlocal left
            left -= 1
            h.answer(request, hdrs=headers(remaining=left, reset=math.ceil(end - h.clock.now), quota=5, window=10))

        first = api()
        h.send(first)
        answer(first)
        waits = []
        for _ in range(4):
            request = api()
            waits.append(h.waited(request))
            answer(request)
        # Four requests left in 10 s: one every 2 s, and the gap after the last one is the window's end.
        assert waits == pytest.approx([2.0, 2.0, 2.0, 2.0])
        assert h.waited(api()) == pytest.approx(2.0)  # the window's end: the quota is back
        assert h.clock.now == pytest.approx(end)
        assert h.stat("waits") == 5

    def test_concurrent_requests_share_the_budget(self) -> None:
        h = Harness({"HFSCRAPER_RATELIMIT_RESERVE": 0})
        first = api()
        h.send(first)
        h.answer(first, hdrs=headers(remaining=3, reset=8, quota=4, window=8))

        async def three() -> list[float]:
            sent_at: list[float] = []

            async def one() -> None:
                await h.mw.process_request(api())
                sent_at.append(h.clock.now)

            await asyncio.gather(one(), one(), one(), one())
            return sent_at

        sent_at = asyncio.run(three())
        start = h.clock.now - h.clock.slept
        # Three requests left in 8 s: at 2, 4 and 6 s; the fourth waits for the reset at 8 s.
        assert [round(t - start, 6) for t in sent_at] == [2.0, 4.0, 6.0, 8.0]
        assert h.stat("waiting_max") == 4

    def test_pacers_are_per_host_and_bucket(self) -> None:
        h = Harness({"HFSCRAPER_RATELIMIT_RESERVE": 0})
        first = api()
        h.send(first)
        h.answer(first, hdrs=headers(remaining=0, reset=30))
        assert h.waited(Request(HUB + "/gpt2/resolve/main/config.json")) == 0
        assert h.waited(Request("https://mirror.test/api/models")) == 0
        assert h.waited(api()) == pytest.approx(30.0)

    def test_limits_are_shared_by_the_crawlers_of_a_process(self) -> None:
        limits = SharedLimits()
        models = Harness({"HFSCRAPER_RATELIMIT_RESERVE": 0}, limits=limits)
        datasets = Harness({"HFSCRAPER_RATELIMIT_RESERVE": 0}, limits=limits)
        datasets.clock = models.clock
        datasets.mw.clock, datasets.mw.sleep = models.clock, models.clock.sleep
        request = api()
        models.send(request)
        models.answer(request, hdrs=headers(remaining=0, reset=20))
        assert datasets.waited(api("/api/datasets")) == pytest.approx(20.0)

    def test_exception_forgets_the_request(self) -> None:
        h = Harness()
        request = api()
        h.send(request)
        pacer = h.limits.pacers[("hub.test", "api")]
        assert pacer.in_flight == 1
        assert h.mw.process_exception(request, OSError("reset")) is None
        assert pacer.in_flight == 0 and TICKET_META not in request.meta

    def test_bucket_mismatch_is_counted_and_ignored(self, caplog: pytest.LogCaptureFixture) -> None:
        h = Harness()
        request = api()
        h.send(request)
        h.answer(request, hdrs=headers(remaining=0, reset=30, bucket="pages"))
        assert h.stat("bucket_mismatch") == 1
        assert h.waited(api()) == 0
        assert "names the pages bucket" in caplog.text


class Test429:
    def test_retry_after_pauses_the_whole_host(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="hfscraper.middlewares.ratelimit")
        h = Harness()
        request = api(headers={"Authorization": "Bearer hf_DoNotLogMe"})
        h.send(request)
        result = h.answer(request, status=429, hdrs={**headers(remaining=0, reset=40), "Retry-After": "5"})
        assert isinstance(result, Request) and result.url == request.url
        assert result.dont_filter and result.meta[RETRIES_META] == 1
        assert result.meta.get("retry_times", 0) == 0  # RETRY_TIMES stays for real failures
        assert result.priority == request.priority
        assert h.stat("429") == 1
        assert h.stat("count") == 1 and h.stat("reason_count/429") == 1
        assert h.stat("paused_seconds") == pytest.approx(5.0)
        # every bucket of that host waits, other hosts do not
        assert h.waited(Request(HUB + "/gpt2/resolve/main/x.bin")) == pytest.approx(5.0)
        assert h.waited(Request("https://cdn.test/a.bin")) == 0
        infos = [r for r in caplog.records if r.levelno == logging.INFO]
        assert len(infos) == 1
        assert "pausing every request to it for 5.0 s (Retry-After)" in infos[0].getMessage()
        assert "hf_DoNotLogMe" not in caplog.text

    def test_reset_when_there_is_no_retry_after(self) -> None:
        h = Harness()
        request = api()
        h.send(request)
        h.answer(request, status=429, hdrs=headers(remaining=0, reset=17))
        assert h.stat("paused_seconds") == pytest.approx(17.0)

    def test_http_date(self) -> None:
        h = Harness()
        request = api()
        h.send(request)
        when = format_datetime(datetime.fromtimestamp(h.WALL + h.clock.now + 8, UTC), usegmt=True)
        h.answer(request, status=429, hdrs={"Retry-After": when})
        assert h.stat("paused_seconds") == pytest.approx(8.0)

    def test_garbage_falls_back_to_backoff(self) -> None:
        h = Harness()
        pauses = []
        for _ in range(3):
            request = api()
            h.send(request)
            before = h.stat("paused_seconds") or 0
            h.answer(request, status=429, hdrs={"Retry-After": "in a while"})
            pauses.append(h.stat("paused_seconds") - before)
        assert pauses == pytest.approx([1.0, 2.0, 4.0])
        request = api()
        h.send(request)
        h.answer(request, hdrs=headers(remaining=10, reset=40))
        request = api()
        h.send(request)
        before = h.stat("paused_seconds")
        h.answer(request, status=429)
        assert h.stat("paused_seconds") - before == pytest.approx(1.0)  # a success resets the backoff

    def test_capped(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="hfscraper.middlewares.ratelimit")
        h = Harness({"HFSCRAPER_RATELIMIT_MAX_WAIT": 30})
        request = api()
        h.send(request)
        h.answer(request, status=429, hdrs={**headers(remaining=0, reset=300), "Retry-After": "3600"})
        assert h.stat("paused_seconds") == pytest.approx(30.0)
        assert "capped by HFSCRAPER_RATELIMIT_MAX_WAIT" in caplog.text

    def test_overlapping_429s_extend_one_pause(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="hfscraper.middlewares.ratelimit")
        h = Harness()
        a, b = api("/api/models?a"), api("/api/models?b")
        h.send(a)
        h.send(b)
        h.answer(a, status=429, hdrs={"Retry-After": "10"})
        h.clock.now += 1
        h.answer(b, status=429, hdrs={"Retry-After": "10"})
        assert h.stat("429") == 2
        assert h.stat("paused_seconds") == pytest.approx(11.0)
        assert len([r for r in caplog.records if r.levelno == logging.INFO]) == 1

    def test_own_budget_then_give_up(self) -> None:
        h = Harness({"HFSCRAPER_RATELIMIT_MAX_429_RETRIES": 2, "RETRY_TIMES": 1})
        request = api(meta={"retry_times": 1})  # already retried once for a 503
        for n in (1, 2):
            h.send(request)
            request = h.answer(request, status=429, hdrs={"Retry-After": "1"})
            assert isinstance(request, Request) and request.meta[RETRIES_META] == n
            assert request.meta["retry_times"] == 1
        h.send(request)
        result = h.answer(request, status=429, hdrs={"Retry-After": "1"})
        assert isinstance(result, Response) and result.status == 429
        assert request.meta["dont_retry"] is True  # the retry middleware must not start over
        assert h.stat("max_reached") == 1 and h.stat("count") == 2

    def test_max_retry_times_meta_is_the_budget(self) -> None:
        h = Harness()
        request = api(meta={"max_retry_times": 0})
        h.send(request)
        result = h.answer(request, status=429, hdrs={"Retry-After": "1"})
        assert isinstance(result, Response)
        assert h.stat("max_reached") == 1

    def test_dont_retry_still_pauses(self) -> None:
        h = Harness()
        request = api(meta={"dont_retry": True})
        h.send(request)
        result = h.answer(request, status=429, hdrs={"Retry-After": "3"})
        assert isinstance(result, Response) and result.status == 429
        assert h.stat("count") is None
        assert h.waited(api()) == pytest.approx(3.0)

    def test_opt_out(self) -> None:
        h = Harness()
        request = api()
        h.send(request)
        h.answer(request, status=429, hdrs={"Retry-After": "60"})
        free = api(meta={"dont_ratelimit": True})
        assert h.waited(free) == 0
        result = h.answer(free, status=429, hdrs={"Retry-After": "60"})
        assert isinstance(result, Response) and result.status == 429  # left to the retry middleware
        assert h.stat("429") == 1

    def test_429_from_a_short_lived_limit_does_not_stall_the_window(self) -> None:
        # The replica's "429" fault (and the Hub's per-action limits) say r=0;t=1 with the window far from done.
        h = Harness()
        request = api()
        h.send(request)
        h.answer(request, hdrs=headers(remaining=999_000, reset=250, quota=1_000_000, window=300))
        request = api()
        h.send(request)
        retry = h.answer(
            request, status=429, hdrs={**headers(remaining=0, reset=1, quota=1_000_000, window=300), "Retry-After": "1"}
        )
        assert isinstance(retry, Request)
        assert h.waited(retry) == pytest.approx(1.0)
        assert h.waited(api()) < 0.001  # a million requests over 300 s


class TestShutdown:
    def test_waiting_requests_go_back_to_the_scheduler(self) -> None:
        h = Harness()
        request = api()
        h.send(request)
        h.answer(request, status=429, hdrs={"Retry-After": "300"})
        h.crawler.engine = SimpleNamespace(running=False)  # a graceful stop began
        waiting = api("/api/models?cursor=x")
        result = h.send(waiting)
        assert isinstance(result, Request) and result.url == waiting.url and result.dont_filter
        assert "Authorization" not in result.headers
        assert h.stat("requeued_on_shutdown") == 1
        assert h.clock.slept == 0


class TestScrapyContract:
    """What the design relies on in Scrapy itself. If one of these fails after a Scrapy upgrade, the
    middleware's waiting needs another home (see the module docstring of hfscraper/middlewares/ratelimit.py).
    tests/test_ratelimit_replica.py checks the other two against a real crawl: the wait does not count against
    DOWNLOAD_TIMEOUT, and waiting requests count as active (at most CONCURRENT_REQUESTS of them wait)."""

    def test_the_manager_awaits_process_request_before_downloading(self) -> None:
        h = Harness({"HFSCRAPER_RATELIMIT_RESERVE": 0})
        manager = DownloaderMiddlewareManager(h.mw, crawler=h.crawler)
        downloaded_at: list[float] = []

        async def download(request: Request) -> Response:
            downloaded_at.append(h.clock.now)
            return Response(request.url, status=200, headers=headers(remaining=0, reset=30), request=request)

        async def two() -> None:
            await manager.download_async(download, api())
            await manager.download_async(download, api())

        asyncio.run(two())
        assert downloaded_at[1] - downloaded_at[0] == pytest.approx(30.0)
