"""Pacing for the Hub's fixed-window quotas: pure logic, no Scrapy, no I/O, the clock passed in.

The Hub counts requests per client in three buckets (hub-docs rate-limits.md,
https://huggingface.co/docs/hub/rate-limits) and reports, on every response,

    RateLimit: "api";r=<remaining>;t=<seconds until the window resets>
    RateLimit-Policy: "fixed window";"api";q=<quota>;w=<window seconds>

`QuotaPacer` keeps, for one bucket of one host, an estimate of what is left of the current window and when
the window ends, and says when the next request may go so that the remaining budget is spread evenly over
the time left. `RateLimitDownloaderMiddleware` (hfscraper/middlewares/ratelimit.py) feeds it: `sent()` when a
request leaves for the network, `observed()` with the headers of its response, `forget()` when it failed
without one. Times are seconds on one monotonic clock.

How the estimate works
----------------------
Every request gets a sequence number when it is sent. A response to request *k* that says `r` remaining was
counted by the server before the requests sent after *k* arrived, so what is left now is at most
`r - (sent - k)`: the requests in flight have already spent budget the header does not show yet. With
several requests in flight the server may count them in another order than they were sent; the pacer keeps
the lowest of these estimates within a window, which errs on the safe side (it can count a request twice,
never zero times, for requests sent after the answered one).

`t` is rounded up to whole seconds by the server and the response arrives after the server wrote it, so
`now + t` is never earlier than the real reset; the pacer keeps the smallest such bound seen in the window,
which gets close to the real reset as responses arrive at different fractions of a second. Once the clock
passes that bound the window has certainly rolled over: the estimate becomes the quota, minus the requests
still in flight (the server may count them in the new window), and answers to requests sent before the
rollover no longer count. A fixed window starts with the first request after a reset, so until the first
response of the new window the pacer assumes it ends one window length after that first request.

Spreading: when *n* requests may still be sent (the estimate minus the reserve) and the window ends at *E*,
the next request goes at `last + (E - last) / (n + 1)`: the *n* requests and the gap after the last one
share the time left equally, so a window's budget lasts exactly to its end. With nothing left the next
request waits for *E*. Without any header seen yet nothing is paced: the first response tells the policy.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

__all__ = [
    "BUCKETS",
    "QuotaPacer",
    "backoff_seconds",
    "bucket_for_url",
    "parse_retry_after",
    "pause_after_429",
]

BUCKETS = ("api", "resolvers", "pages")

#: First wait of the exponential backoff used when a 429 carries no usable Retry-After or RateLimit.
BACKOFF_BASE_SECONDS = 1.0


def bucket_for_url(url: str) -> str:
    """The Hub's bucket of a request URL, by the Hub's own rule.

    >>> bucket_for_url("https://huggingface.co/gpt2/resolve/main/config.json")
    'resolvers'
    >>> bucket_for_url("https://huggingface.co/api/resolve-cache/models/gpt2/abc/config.json")
    'resolvers'
    >>> bucket_for_url("https://huggingface.co/api/models?limit=1000")
    'api'
    >>> bucket_for_url("https://huggingface.co/gpt2")
    'pages'
    """
    path = urlsplit(url).path
    if "/resolve/" in path or path.startswith("/api/resolve-cache/"):
        return "resolvers"
    if path == "/api" or path.startswith("/api/"):
        return "api"
    return "pages"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a `Retry-After` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).

    *now* is the wall clock (`time.time()`), needed for the date form; a date in the past means 0.
    None for a missing or unusable value.

    >>> parse_retry_after("120", now=0)
    120.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0)
    0.0
    >>> parse_retry_after("soon", now=0) is None, parse_retry_after("-5", now=0) is None
    (True, True)
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:  # RFC 9110 dates are always GMT; a zone-less one is not HTTP-date
        return None
    return max(0.0, when.timestamp() - now)


def backoff_seconds(attempt: int, cap: float) -> float:
    """The exponential backoff before retry number *attempt* (1, 2, 4, ... seconds), at most *cap*.

    >>> [backoff_seconds(n, cap=10) for n in (1, 2, 3, 4, 5)]
    [1.0, 2.0, 4.0, 8.0, 10.0]
    """
    exponent = min(max(attempt, 1) - 1, 62)
    return float(min(cap, BACKOFF_BASE_SECONDS * 2**exponent))


def pause_after_429(
    *,
    retry_after: str | None,
    remaining: int | None,
    reset: int | None,
    attempt: int,
    max_wait: float,
    now_wall: float,
) -> tuple[float, str]:
    """How long to pause a host after a 429, and why (for the log line).

    In order: `Retry-After` (seconds or HTTP-date); else the `RateLimit` reset `t` when it says the window
    is used up (`r=0`; a 429 with budget left is some other limit, whose end `t` does not tell); else
    exponential backoff by *attempt*, the number of 429s in a row from this host. Never more than *max_wait*.

    >>> pause_after_429(retry_after="7", remaining=0, reset=30, attempt=1, max_wait=600, now_wall=0)
    (7.0, 'Retry-After')
    >>> pause_after_429(retry_after=None, remaining=0, reset=30, attempt=1, max_wait=600, now_wall=0)
    (30.0, 'RateLimit reset')
    >>> pause_after_429(retry_after="later", remaining=5, reset=30, attempt=3, max_wait=600, now_wall=0)
    (4.0, 'backoff')
    >>> pause_after_429(retry_after="3600", remaining=None, reset=None, attempt=1, max_wait=600, now_wall=0)
    (600.0, 'Retry-After, capped by HFSCRAPER_RATELIMIT_MAX_WAIT')
    """
    seconds = parse_retry_after(retry_after, now_wall)
    why = "Retry-After"
    if seconds is None and remaining == 0 and reset is not None:
        seconds, why = float(reset), "RateLimit reset"
    if seconds is None:
        seconds, why = backoff_seconds(attempt, max_wait), "backoff"
    if seconds > max_wait:
        seconds, why = float(max_wait), f"{why}, capped by HFSCRAPER_RATELIMIT_MAX_WAIT"
    return seconds, why


class QuotaPacer:
    """The quota of one bucket of one host: what is left, when the window ends, when to send next.

    Attributes:
        reserve: requests of each window never spent (see HFSCRAPER_RATELIMIT_RESERVE).
        quota: the window's quota (`q` of RateLimit-Policy), None until seen.
        window: the window's length in seconds (`w`), None until seen.
        window_end: when the current window ends at the latest, None when unknown.
        sent: how many requests were sent (the sequence number of the last one).
        last_remaining: the `r` of the last response, as the server said it.
    """

    def __init__(self, reserve: int = 0) -> None:
        if reserve < 0:
            raise ValueError(f"reserve must be 0 or more, not {reserve}")
        self.reserve = reserve
        self.quota: int | None = None
        self.window: float | None = None
        self.window_end: float | None = None
        self.sent = 0
        self.last_sent_at: float | None = None
        self.last_remaining: int | None = None
        # True while window_end is only a guess (one window after the first request of a new window).
        self._end_is_guess = False
        # Answers to requests up to this sequence number predate the current window.
        self._window_first_seq = 0
        # (remaining, seq): `remaining` was left right after request `seq` was counted.
        self._anchor: tuple[int, int] | None = None
        self._in_flight: set[int] = set()

    # -- what the pacer knows -------------------------------------------------------------------------------

    def remaining(self, now: float) -> int | None:
        """The estimate of requests left in the current window at *now*, None when unknown."""
        self._roll(now)
        return self._estimate()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def _estimate(self) -> int | None:
        if self._anchor is None:
            return None
        remaining, seq = self._anchor
        return remaining - (self.sent - seq)

    def _roll(self, now: float) -> None:
        """Start a new window once *now* is past the end of the current one."""
        if self.window_end is None or now < self.window_end:
            return
        self.window_end = None
        self._end_is_guess = False
        self._window_first_seq = self.sent
        self._anchor = None if self.quota is None else (self.quota - len(self._in_flight), self.sent)

    # -- when to send -----------------------------------------------------------------------------------------

    def next_send_at(self, now: float) -> float:
        """The earliest time (at least *now*) the next request may be sent."""
        self._roll(now)
        left = self._estimate()
        if left is None or self.window_end is None:
            return now  # nothing known yet, or a fresh window: the next request discovers it
        usable = left - self.reserve
        if usable <= 0:
            return self.window_end
        start = self.last_sent_at if self.last_sent_at is not None else now
        return max(now, start + (self.window_end - start) / (usable + 1))

    # -- events -----------------------------------------------------------------------------------------------

    def sent_one(self, now: float) -> int:
        """Record a request sent at *now*; returns its sequence number (give it back to `observed`)."""
        self._roll(now)
        self.sent += 1
        self._in_flight.add(self.sent)
        self.last_sent_at = now
        if self.window_end is None and self._anchor is not None and self.window is not None:
            # The first request after a reset opens the window; until its answer, assume it ends one
            # window length from now (a little early, which only spreads the budget a little faster).
            self.window_end = now + self.window
            self._end_is_guess = True
        return self.sent

    def forget(self, seq: int) -> None:
        """Request *seq* ended without rate-limit headers (a network error, a response without them)."""
        self._in_flight.discard(seq)

    def observed(
        self,
        seq: int,
        now: float,
        remaining: int,
        reset: float,
        quota: int | None = None,
        window: float | None = None,
    ) -> None:
        """Take in the RateLimit (and RateLimit-Policy) headers of the answer to request *seq*, received at *now*."""
        self._in_flight.discard(seq)
        if quota is not None:
            self.quota = quota
        if window is not None:
            self.window = float(window)
        self.last_remaining = remaining
        self._roll(now)
        if seq <= self._window_first_seq:
            return  # sent before the current window began: its numbers describe an older window
        end = now + max(0.0, float(reset))
        estimate = remaining - (self.sent - seq)
        current = self._estimate()
        if self.window_end is None or self._end_is_guess:
            # The first answer of a window: its numbers replace the guesses.
            self._open_window(seq, remaining, end)
        elif (current is not None and estimate > current + len(self._in_flight) + 1) or (
            end > self.window_end + self._same_window_tolerance()
        ):
            # More left than reordering can explain, or a reset a window later: the server has already
            # begun the next window (the first requests after a reset open it before the bound here passes).
            self._open_window(seq, remaining, end)
        else:
            self.window_end = min(self.window_end, end)
            if current is None or estimate < current:
                self._anchor = (remaining, seq)

    def _open_window(self, seq: int, remaining: int, end: float) -> None:
        self.window_end, self._end_is_guess = end, False
        self._window_first_seq = seq - 1
        # Requests sent before this one and still unanswered may be counted after it.
        earlier = sum(1 for s in self._in_flight if s < seq)
        self._anchor = (remaining - earlier, seq)

    def _same_window_tolerance(self) -> float:
        # Bounds of one window differ by the rounding of `t` (up to a second) plus network time; the next
        # window's end is a whole window later.
        return max(self.window / 2 if self.window else 0.0, 1.5)

    def __repr__(self) -> str:
        return (
            f"<QuotaPacer quota={self.quota} window={self.window} estimate={self._estimate()} "
            f"window_end={self.window_end} sent={self.sent} in_flight={self.in_flight}>"
        )
