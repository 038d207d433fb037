"""Quota benchmark: how much of the Hub's API quota a crawl gets to use, and whether it ever hits a 429.

A replica enforces a fixed-window API quota (`BENCH_QUOTA` requests per `BENCH_WINDOW` seconds; 100 per 10 s by
default, the real Hub's anonymous 500 per 300 s scaled down in time) and `scrapy crawl models` lists enough
models at a small page size to span several windows (`BENCH_WINDOWS`, default 4). Everything is counted from
the replica's request log, the way the replica itself counts: windows open with the first request after the
previous one ended, as on the Hub.

The crawl is metadata-only (files, previews and IPFS off): this measures the pacer on the listing's `api`
bucket. With files on, 20,000 models' downloads and CIDs (about 100,000 `resolvers` requests, a separate quota)
take longer than the listing's quota allows, so the listing waits for its pipeline, not for the quota, and the
share would measure the files stage's speed instead (the crawl-throughput benchmark measures that).

Rows:
- `api_rate_share`: API requests per second over the full windows (the last, partial one left out; the gaps
  between windows included), as a share of the quota's rate. Goal: at least 0.90.
- `http_429`: responses with status 429. Goal: 0.
- `full_windows`: how many full windows the crawl spanned. Goal: at least 3 (else the share means little).
- `finish_reason`: the crawl's. Goal: `finished`.
- `run_time`: the crawl's wall time, start to exit, in seconds (informative).

`--smoke` (`run(smoke=True)`) runs a few seconds' version (20 requests per 1-second window) that only checks
the benchmark still works; its numbers mean little.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import BenchResult, Row
from tests.support.crawl import crawl
from tests.support.replica import run_replica

NAME = "quota"
GOAL_SHARE = 0.90
GOAL_WINDOWS = 3
METADATA_ONLY = {
    "HFSCRAPER_FILES_ENABLED": "false",
    "HFSCRAPER_PREVIEWS_ENABLED": "false",
    "HFSCRAPER_IPFS_ENABLED": "false",
}


def settings(*, smoke: bool) -> dict[str, int]:
    """The benchmark's parameters: environment overrides (`BENCH_QUOTA`, `BENCH_WINDOW`, `BENCH_WINDOWS`,
    `BENCH_MODELS`), else the defaults of the full or the smoke run."""
    defaults = {"quota": 20, "window": 1, "windows": 3, "models": 300} if smoke else {}
    defaults = {"quota": 100, "window": 10, "windows": 4, "models": 20_000} | defaults
    chosen = {key: int(os.environ.get(f"BENCH_{key.upper()}", value)) for key, value in defaults.items()}
    if min(chosen.values()) < 1:
        raise ValueError(f"every BENCH_* value must be at least 1: {chosen}")
    # A page size that makes about `windows` windows' worth of listing requests.
    chosen["page_size"] = max(1, min(1000, chosen["models"] // (chosen["windows"] * chosen["quota"])))
    return chosen


def windows_of(entries: list[dict[str, Any]], window: float) -> list[tuple[float, int]]:
    """(start, requests counted) of each fixed window, replayed from request-log entries of one bucket.

    A request reached the replica at `time - ms/1000` (the log writes `time` once it answered); a window opens
    with the first request at or after the end of the previous one. 429s are not counted, as the replica
    does not count them.
    """
    arrivals = sorted((e["time"] - e["ms"] / 1000, e["status"]) for e in entries)
    found: list[tuple[float, int]] = []
    start = None
    for arrived, status in arrivals:
        if start is None or arrived >= start + window:
            start = arrived
            found.append((start, 0))
        if status != 429:
            found[-1] = (start, found[-1][1] + 1)
    return found


def rate_share(found: list[tuple[float, int]], quota: int, window: float) -> float | None:
    """Requests per second over the full windows (all but the last), gaps included, as a share of quota/window."""
    if len(found) < 2:
        return None
    counted = sum(count for _, count in found[:-1])
    spanned = found[-1][0] - found[0][0]
    return (counted / spanned) / (quota / window)


def run(*, smoke: bool = False, workdir: Path | None = None) -> BenchResult:
    config = settings(smoke=smoke)
    with tempfile.TemporaryDirectory(prefix="bench-quota-", dir=workdir) as tmp:
        out = Path(tmp) / "out"
        with run_replica(
            tmp_dir=Path(tmp) / "replica",
            models=config["models"],
            datasets=1,
            spaces=1,
            seed=1,
            quota_api=config["quota"],
            quota_window=config["window"],
            truth=False,
        ) as replica:
            started = time.monotonic()
            result = crawl(
                replica, "models", out, page_size=config["page_size"], timeout=3600, settings=METADATA_ONLY
            )
            run_time = time.monotonic() - started
            api = [e for e in replica.requests(origin="hub") if e["bucket"] == "api"]
    found = windows_of(api, config["window"])
    share = rate_share(found, config["quota"], config["window"])
    limited = sum(1 for e in api if e["status"] == 429)
    finish = str(result.stat("finish_reason", f"none (exit code {result.returncode})"))
    rows = [
        Row(NAME, "api_rate_share", round(share, 3) if share is not None else "n/a", "share of quota",
            f">= {GOAL_SHARE:.2f}", share is not None and share >= GOAL_SHARE),
        Row(NAME, "http_429", limited, "responses", "== 0", limited == 0),
        Row(NAME, "full_windows", max(0, len(found) - 1), "windows", f">= {GOAL_WINDOWS}",
            len(found) - 1 >= GOAL_WINDOWS),
        Row(NAME, "finish_reason", finish, "", "finished", finish == "finished"),
        Row(NAME, "run_time", round(run_time, 1), "s"),
    ]  # fmt: skip
    details = {
        **config,
        "smoke": smoke,
        "api_requests": len(api),
        "per_window": [count for _, count in found],
        "items": result.stat("item_scraped_count"),
        "ratelimit_stats": {k: v for k, v in result.stats.items() if k.startswith("hfscraper/ratelimit/")},
    }
    return BenchResult(rows, details)
