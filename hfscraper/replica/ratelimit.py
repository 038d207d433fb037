"""Fixed-window rate limiting with the Hub's bucket names and header format.

The Hub (hub-docs rate-limits.md, https://huggingface.co/docs/hub/rate-limits) counts requests per client in three
buckets, each with a
fixed 5-minute window, and reports the state on *every* response:

    RateLimit: "api";r=<remaining>;t=<seconds until the window resets>
    RateLimit-Policy: "fixed window";"api";q=<quota>;w=<window seconds>

Buckets: ``resolvers`` for any URL containing ``/resolve/`` (and for the
``/api/resolve-cache/`` hop the small-file redirect leads to), ``api`` for other
``/api/...`` URLs, ``pages`` for everything else.  A window starts at the first
request a client identity (its token, else its IP) makes in a bucket, so windows
are aligned per identity.  Past the quota the replica answers 429 with ``r=0``.

The 429 is the Hub's shape: ``RateLimit`` (``r=0;t=<seconds to the reset>``) and
``RateLimit-Policy``, and no ``Retry-After`` (none has been seen on the Hub itself:
huggingface_hub issue #3553 waits from ``RateLimit`` alone; #4460 parses
``Retry-After`` only for proxies in front of the Hub).  ``--retry-after`` on the
command line (``ReplicaOptions.retry_after``) adds ``Retry-After: <t>`` the way such
a proxy would.  The message is the one users have quoted from the Hub
(:func:`quota_message`); whether it comes as JSON ``error`` plus ``X-Error-Message``
(what the replica sends, like every other Hub error) is not recorded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BUCKETS = ("api", "resolvers", "pages")

# Defaults are far above anything a test does, but still reported in headers so
# that clients always see the headers they would see on the real Hub.
DEFAULT_QUOTAS = {"api": 1_000_000, "resolvers": 5_000_000, "pages": 100_000}
DEFAULT_WINDOW = 300


def bucket_for_path(path: str) -> str:
    """The Hub's bucket for a request path (without the query string).

    >>> bucket_for_path("/gpt2/resolve/main/config.json")
    'resolvers'
    >>> bucket_for_path("/api/resolve-cache/models/gpt2/abc/config.json")
    'resolvers'
    >>> bucket_for_path("/api/models")
    'api'
    >>> bucket_for_path("/")
    'pages'
    """
    if "/resolve/" in path or path.startswith("/api/resolve-cache/"):
        return "resolvers"
    if path == "/api" or path.startswith("/api/"):
        return "api"
    return "pages"


@dataclass(frozen=True)
class RateLimitState:
    """The outcome of counting one request: what the headers must say."""

    bucket: str
    allowed: bool
    remaining: int
    reset_seconds: int
    quota: int
    window: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit": f'"{self.bucket}";r={self.remaining};t={self.reset_seconds}',
            "RateLimit-Policy": f'"fixed window";"{self.bucket}";q={self.quota};w={self.window}',
        }


@dataclass
class _Window:
    started: float
    used: int = 0


@dataclass
class RateLimiter:
    """Per-identity, per-bucket fixed windows.  Not thread-safe: used from one event loop."""

    quotas: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_QUOTAS))
    window: int = DEFAULT_WINDOW
    clock: Callable[[], float] = time.monotonic
    _windows: dict[tuple[str, str], _Window] = field(default_factory=dict)

    def hit(self, identity: str, bucket: str) -> RateLimitState:
        """Count one request and say whether it is allowed."""
        now = self.clock()
        quota = self.quotas[bucket]
        key = (identity, bucket)
        win = self._windows.get(key)
        if win is None or now >= win.started + self.window:
            win = _Window(started=now)
            self._windows[key] = win
        allowed = win.used < quota
        if allowed:
            win.used += 1
        return RateLimitState(
            bucket=bucket,
            allowed=allowed,
            remaining=max(0, quota - win.used),
            reset_seconds=self._reset_seconds(win, now),
            quota=quota,
            window=self.window,
        )

    def peek(self, identity: str, bucket: str) -> RateLimitState:
        """The state without counting a request (for responses forced by faults)."""
        now = self.clock()
        quota = self.quotas[bucket]
        win = self._windows.get((identity, bucket))
        if win is None or now >= win.started + self.window:
            return RateLimitState(bucket, True, quota, self.window, quota, self.window)
        return RateLimitState(
            bucket, win.used < quota, max(0, quota - win.used), self._reset_seconds(win, now), quota, self.window
        )

    def reset(self) -> None:
        self._windows.clear()

    def _reset_seconds(self, win: _Window, now: float) -> int:
        # Whole seconds, rounded up and at least 1, so a client sleeping `t` never wakes inside the old window.
        return max(1, math.ceil(win.started + self.window - now))


def quota_message(state: RateLimitState, anonymous: bool, ip: str | None) -> str:
    """The Hub's text for a used-up window, as users have quoted it (2025-26).

    The anonymous wording names the client's IP; the authenticated one the quota and bucket. The
    Hub's window is 5 minutes; another window length is spelled out the same way (an inference).

    >>> quota_message(RateLimitState("api", False, 0, 55, 1000, 300), False, None)[:75]
    'We had to rate limit you, you hit the quota of 1000 api requests per 5 minu'
    >>> quota_message(RateLimitState("api", False, 0, 55, 500, 300), True, "127.0.0.1")[:45]
    'We had to rate limit your IP (127.0.0.1). To '
    """
    if anonymous:
        return (
            f"We had to rate limit your IP ({ip}). To continue using our service, create a HF account or login "
            "to your existing account, and make sure you pass a HF_TOKEN if you're using the API."
        )
    period = f"{state.window // 60} minutes" if state.window % 60 == 0 else f"{state.window} seconds"
    return (
        f"We had to rate limit you, you hit the quota of {state.quota} {state.bucket} requests per {period} "
        "period. Upgrade to a PRO user or Team/Enterprise organization account (https://hf.co/pricing) to get "
        "higher limits. See https://huggingface.co/docs/hub/rate-limits"
    )
