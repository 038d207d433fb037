"""The Hub's 429 has no `Retry-After`: the crawler waits from `RateLimit`'s `t` alone, and still honours
`Retry-After` when a proxy adds one (the replica's `--retry-after`, or a fault rule's `retry_after`).

Real `scrapy` subprocesses against the replica; what the crawl did is read from the replica's request log (when
each request arrived, and its status) and from the crawl's log and stats.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.support.crawl import crawl
from tests.support.http import fetch
from tests.support.replica import run_replica

RATELIMIT = re.compile(r'^"(?P<bucket>\w+)";r=(?P<r>\d+);t=(?P<t>\d+)$')
WINDOW = 4


def exhaust(hub: Any) -> tuple[Any, int]:
    """Spend the API window from this process (the crawl's IP): returns the first 429 and its `t`."""
    for _ in range(50):
        response = fetch(f"{hub.url}/api/spaces?limit=1")
        if response.status == 429:
            match = RATELIMIT.match(response.header("RateLimit") or "")
            assert match and match["r"] == "0" and match["bucket"] == "api"
            return response, int(match["t"])
    raise AssertionError("the window never ran out")


def crawl_api_requests(hub: Any, since: int) -> list[dict[str, Any]]:
    return [
        e for e in hub.requests(since=since, origin="hub") if e["bucket"] == "api" and "/api/spaces" not in e["path"]
    ]


def test_the_hubs_429_has_no_retry_after_and_the_crawl_waits_for_ratelimit_t(tmp_path: Path) -> None:
    # The replica's own quota 429 has the Hub's shape: RateLimit r=0 and t, the Hub's message, no Retry-After.
    with run_replica(tmp_dir=tmp_path / "spent", models=3, datasets=1, spaces=1, seed=4, quota_api=6,
                     quota_window=WINDOW) as hub:  # fmt: skip
        limited, t = exhaust(hub)
        assert limited.header("Retry-After") is None
        assert limited.json()["error"].startswith("We had to rate limit your IP (127.0.0.1).")
        assert 1 <= t <= WINDOW
    # A crawl that meets such a 429 (the window spent by another client of its IP; a fault rule, so that how long
    # the crawl takes to start cannot let the window pass first) waits for the announced reset and sends nothing
    # before it, so it gets no second 429.
    t = 3
    rule = {"kind": "429", "count": 1, "reset_seconds": t, "path": r"^/api/models\?"}
    with run_replica(tmp_dir=tmp_path / "replica", models=30, datasets=1, spaces=1, seed=4, faults=[rule]) as hub:
        mark = hub.mark()
        result = crawl(hub, "models", tmp_path / "out", page_size=10)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stat("finish_reason") == "finished"
        requests = crawl_api_requests(hub, mark)
        assert requests[0]["status"] == 429 and requests[0]["fault"] == "429"
        assert [e["status"] for e in requests[1:]] == [200] * (len(requests) - 1)
        window_end = requests[0]["time"] + t - 0.1
        assert [e for e in requests[1:] if e["time"] < window_end] == []
        assert result.stat("hfscraper/ratelimit/429") == 1
        assert re.search(r"pausing every request to it for 3\.0 s \(RateLimit reset\)", result.stderr)


def test_retry_after_is_honoured_when_a_proxy_adds_it(tmp_path: Path) -> None:
    # A proxy's 429 that says Retry-After: 3 while RateLimit says t=1: the crawl waits the 3 seconds.
    rule = {"kind": "429", "count": 1, "retry_after": 3, "reset_seconds": 1, "path": r"^/api/models\?"}
    with run_replica(tmp_dir=tmp_path / "replica", models=20, datasets=1, spaces=1, seed=4, faults=[rule],
                     quota_api=40, quota_window=WINDOW, extra_args=["--retry-after"]) as hub:  # fmt: skip
        mark = hub.mark()
        result = crawl(hub, "models", tmp_path / "out", page_size=10)
        assert result.returncode == 0, result.stderr[-3000:]
        requests = crawl_api_requests(hub, mark)
        assert requests[0]["status"] == 429 and requests[1]["status"] == 200
        assert requests[1]["time"] - requests[0]["time"] >= 3 - 0.1
        assert "pausing every request to it for 3.0 s (Retry-After)" in result.stderr
        # With --retry-after the replica's own quota 429 carries it too, equal to RateLimit's t.
        hub.set_faults([])
        hub.reset_quota()
        limited, t = exhaust(hub)
        assert limited.header("Retry-After") == str(t)
