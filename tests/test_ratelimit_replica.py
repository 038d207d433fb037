"""RateLimitDownloaderMiddleware end to end: real `scrapy` subprocesses against a replica that enforces quotas.

Nothing here measures time: what a crawl did is read from the replica's request log (statuses, and the order
in which requests reached it) and from the crawl's stats and output.
"""

from __future__ import annotations

import datetime
import re
import signal
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hfscraper.hub import entity_folder_name
from tests.support.crawl import REPO_ROOT, CrawlResult, crawl, crawl_command, crawl_env, public
from tests.support.replica import ReplicaHandle, run_replica

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
#: Requests of the "other client" (same IP, so the same quota as the crawl) carry this in their query.
OTHER = "search=other-client"


def all_stats(log: str) -> list[dict[str, Any]]:
    """Every stats dump of a log (`crawlall` writes one per spider)."""
    dumps = re.findall(r"Dumping Scrapy stats:\n(\{.*?\})\n\d{4}-\d\d-\d\d ", log, re.S)
    return [eval(d, {"__builtins__": {}, "datetime": datetime}) for d in dumps]


def assert_every_entity_written(result: CrawlResult, replica: ReplicaHandle, repo_type: str) -> None:
    expected = {entity_folder_name(e["id"]) for e in public(replica.truth, repo_type)}
    assert expected
    assert set(result.metadata(repo_type)) == expected


def crawl_requests(replica: ReplicaHandle) -> list[dict[str, Any]]:
    return [e for e in replica.requests(origin="hub") if OTHER not in e["path"]]


# -- 1. a quota the crawl must stay inside ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def quota_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    # 100 API requests per 2-second window; the crawl below makes about 280, so it spans several windows.
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"),
        models=400,
        datasets=400,
        spaces=300,
        seed=11,
        quota_api=100,
        quota_window=2,
    ) as handle:
        yield handle


def test_a_crawl_stays_inside_the_quota(quota_replica: ReplicaHandle, tmp_path: Path) -> None:
    # Three spiders in one process share the quota; base-model requests make many of them concurrent.
    result = crawl(
        quota_replica,
        "",
        tmp_path / "out",
        command_name="crawlall",
        page_size=10,
        settings={"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": "true", "CONCURRENT_REQUESTS": "4"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = quota_replica.requests(origin="hub")
    assert len(log) > 250
    assert [e for e in log if e["status"] == 429] == []
    for repo_type in ("model", "dataset", "space"):
        assert_every_entity_written(result, quota_replica, repo_type)
    stats = all_stats(result.stderr)
    assert len(stats) == 3
    for spider_stats in stats:
        assert spider_stats["finish_reason"] == "finished"
        assert spider_stats["hfscraper/ratelimit/api/quota"] == 100
        assert spider_stats.get("hfscraper/ratelimit/429") is None
        # Requests waiting in the middleware count as active in Scrapy's downloader, so no more than
        # CONCURRENT_REQUESTS of them ever wait at once; the files stage, which sends its requests past the
        # scheduler (engine.download_async), keeps at most CONCURRENT_REQUESTS files in flight besides.
        assert spider_stats["hfscraper/ratelimit/waiting_max"] <= 2 * 4
    assert sum(s.get("hfscraper/ratelimit/waits", 0) for s in stats) > 0


# -- 2. another client spends the quota mid-crawl --------------------------------------------------------------


def burn_quota(replica: ReplicaHandle) -> None:
    """Spend what is left of the API quota from this process (the crawl's IP) until the replica says 429."""
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            try:
                with _NO_PROXY.open(f"{replica.url}/api/spaces?limit=1&{OTHER}", timeout=10) as response:
                    response.read()
            except urllib.error.HTTPError as exc:
                if exc.code == 429:
                    done.set()
                else:
                    raise

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(hammer) for _ in range(8)]:
            future.result()


def test_another_client_spends_the_quota(tmp_path: Path) -> None:
    with run_replica(
        tmp_dir=tmp_path / "replica", models=2000, datasets=10, spaces=10, seed=5, quota_api=50, quota_window=2
    ) as replica:
        outcome: list[CrawlResult] = []
        runner = threading.Thread(
            target=lambda: outcome.append(crawl(replica, "models", tmp_path / "out", page_size=10)), daemon=True
        )
        runner.start()
        # Let the crawl get going, then spend the quota behind its back, until one of its requests meets a 429
        # (if the crawl itself happens to take the last request of a window, try again in a later window).
        while runner.is_alive() and len(crawl_requests(replica)) < 40:
            runner.join(0.05)
        for _ in range(5):
            if not runner.is_alive():
                break
            burn_quota(replica)
            burnt = replica.mark()
            while runner.is_alive() and not [e for e in crawl_requests(replica)[-3:] if e["seq"] >= burnt]:
                runner.join(0.05)
            if any(e["status"] == 429 for e in crawl_requests(replica)):
                break
        runner.join(300)
        assert outcome, "the crawl did not finish"
        result = outcome[0]
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stat("finish_reason") == "finished"
        assert_every_entity_written(result, replica, "model")

        requests = crawl_requests(replica)
        limited = [i for i, e in enumerate(requests) if e["status"] == 429]
        assert limited, "no request of the crawl met the exhausted quota"
        assert result.stat("hfscraper/ratelimit/429") == len(limited)
        assert result.stat("hfscraper/ratelimit/count") == len(limited)
        assert result.stat("hfscraper/ratelimit/paused_seconds") > 0
        # After a 429 the quota stays spent until the window resets, so any request the crawl sent before the
        # reset would have met a 429 too. The crawl's next request of that bucket succeeded: it waited for the
        # reset. (The listing is one request at a time, so the log's order of `api` requests is the crawl's
        # sending order; file downloads run alongside in the `resolvers` bucket, which has its own quota.)
        api_requests = [e for e in requests if e["bucket"] == "api"]
        assert all(e["bucket"] == "api" for e in requests if e["status"] == 429)
        for i, entry in enumerate(api_requests):
            if entry["status"] == 429:
                assert api_requests[i + 1]["status"] == 200, api_requests[i : i + 2]
        assert "pausing every request to it for" in result.stderr


# -- 3. a storm of 429s that are not about the window ----------------------------------------------------------


def test_a_429_storm_still_completes(tmp_path: Path) -> None:
    with run_replica(
        tmp_dir=tmp_path / "replica",
        models=120,
        datasets=10,
        spaces=10,
        seed=3,
        faults=[{"kind": "429", "rate": 0.3, "path": "^/api/models"}],
    ) as replica:
        result = crawl(replica, "models", tmp_path / "out", page_size=10)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stat("finish_reason") == "finished"
        assert_every_entity_written(result, replica, "model")
        storm = [e for e in replica.requests(origin="hub") if e["status"] == 429]
        assert storm
        assert result.stat("hfscraper/ratelimit/429") == len(storm)
        assert result.stat("hfscraper/ratelimit/count") == len(storm)  # every one retried here ...
        assert not [k for k in result.stats if k.startswith("retry/")]  # ... none by RetryMiddleware


# -- Scrapy's side of the design --------------------------------------------------------------------------------


def test_waiting_does_not_count_against_the_download_timeout(tmp_path: Path) -> None:
    # One API request per 2-second window: the second listing page waits about 2 s, longer than the timeout.
    with run_replica(
        tmp_dir=tmp_path / "replica", models=20, datasets=1, spaces=1, seed=2, quota_api=1, quota_window=2
    ) as replica:
        result = crawl(
            replica,
            "models",
            tmp_path / "out",
            page_size=10,
            settings={"DOWNLOAD_TIMEOUT": "1", "HFSCRAPER_RATELIMIT_RESERVE": "0"},
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert_every_entity_written(result, replica, "model")
        assert result.stat("hfscraper/ratelimit/waits", 0) >= 1
        assert not [e for e in replica.requests(origin="hub") if e["status"] == 429]
        assert not [k for k in result.stats if "TimeoutError" in k]


def test_a_graceful_stop_does_not_wait_for_the_quota(tmp_path: Path) -> None:
    # One API request per 10 minutes: the second page would wait that long. A stop hands it back instead.
    with run_replica(
        tmp_dir=tmp_path / "replica", models=30, datasets=1, spaces=1, seed=2, quota_api=1, quota_window=600
    ) as replica:
        env = crawl_env(replica, tmp_path / "out")
        command = crawl_command(
            "models", tmp_path / "out", page_size=10,
            settings={"HFSCRAPER_RATELIMIT_RESERVE": "0", "LOG_LEVEL": "DEBUG"},
        )
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
        try:
            stderr_lines: list[str] = []
            assert process.stderr is not None
            for line in process.stderr:
                stderr_lines.append(line)
                if "[hfscraper.middlewares.ratelimit] DEBUG: Waiting" in line:
                    break
            process.send_signal(signal.SIGINT)
            _, rest = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stats = all_stats("".join(stderr_lines) + rest)
        assert stats and stats[0]["finish_reason"] == "shutdown"
        assert stats[0]["hfscraper/ratelimit/requeued_on_shutdown"] == 1
        # One API request (the first page); the files of its entities use the resolvers bucket, which is not limited.
        assert len([r for r in replica.requests(origin="hub") if r["bucket"] == "api"]) == 1
