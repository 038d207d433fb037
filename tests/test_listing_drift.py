"""Sort values that move while a crawl pages (issue 15): the replica's `--drift` and the crawler's answer to it.

On the real Hub `downloads`, `likes` and `trendingScore` change all the time, so keyset paging over them lists a
repo twice when its value falls behind the cursor and never when it rises past it. `--drift N` makes the replica do
that deterministically. The crawler must then store and count no entity twice, mark nothing deleted after a walk
in such an order (only a createdAt sweep can tell an entity is gone), and say so in one line. Real `scrapy`
processes against a real replica, compared with its ground truth.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from hfscraper.state import TOMBSTONE_FILE
from tests.support.crawl import METADATA_ONLY, REPO_ROOT, _scrapy_command, crawl, feed_ids, public
from tests.support.replica import ReplicaHandle, run_replica

MODELS = 60
PAGE = 10
SEED = 15
CAVEAT = "sorted by downloads: entities that moved during the crawl may be missing"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def walk(hub: ReplicaHandle, query: str) -> list[str]:
    """Every id a client following the Link headers of `/api/models?{query}` is given, in order."""
    url: str | None = f"{hub.url}/api/models?{query}"
    ids: list[str] = []
    while url:
        with _OPENER.open(url, timeout=30) as response:
            ids += [item["id"] for item in json.loads(response.read())]
            link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    return ids


def status(output: Path) -> dict[str, Any]:
    command = [*_scrapy_command(), "status", "--json", "-s", f"HFSCRAPER_OUTPUT_DIR={output}"]
    command += ["-s", f"HFSCRAPER_STATE_DIR={output.parent / 'state'}"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return json.loads(done.stdout)


def test_drift_makes_keyset_paging_repeat_and_skip_deterministically(tmp_path: Path) -> None:
    walks = []
    for n in range(2):
        with run_replica(tmp_dir=tmp_path / f"r{n}", models=MODELS, datasets=1, spaces=1, seed=SEED,
                         extra_args=["--drift", "2"]) as hub:  # fmt: skip
            expected = {e["id"] for e in public(hub.truth, "model")}
            by_downloads = walk(hub, f"sort=downloads&limit={PAGE}")
            by_likes = walk(hub, f"sort=likes&limit={PAGE}")
            by_created = walk(hub, f"sort=createdAt&limit={PAGE}")
            walks.append((by_downloads, by_likes))
        for ids in (by_downloads, by_likes):
            repeated = [i for i, count in Counter(ids).items() if count > 1]
            assert repeated and expected - set(ids), "drift should both repeat and skip repos"
            assert set(ids) <= expected
        # createdAt never moves: every repo exactly once.
        assert sorted(by_created) == sorted(expected)
    assert walks[0] == walks[1]  # the same seed drifts the same way


@pytest.fixture
def drifting(tmp_path: Path) -> Any:
    with run_replica(tmp_dir=tmp_path / "replica", models=MODELS, datasets=1, spaces=1, seed=SEED,
                     extra_args=["--drift", "2"]) as hub:  # fmt: skip
        yield hub


def test_a_crawl_in_a_moving_order_stores_each_entity_once_and_marks_nothing_deleted(
    drifting: ReplicaHandle, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    expected = {e["id"] for e in public(drifting.truth, "model")}
    # A createdAt sweep first: every entity, exactly once, even while counters drift.
    feed = tmp_path / "sweep.jsonl"
    first = crawl(drifting, "models", out, settings=METADATA_ONLY, page_size=PAGE, options=["-o", str(feed)])
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(feed_ids(feed)) == sorted(expected)
    assert first.stat("hfscraper/spider/items") == len(expected)
    assert CAVEAT not in first.stderr

    # Then by downloads: the Hub lists some models twice and skips others.
    moving = tmp_path / "downloads.jsonl"
    settings = {**METADATA_ONLY, "DELTAFETCH_ENABLED": "false"}  # store every entity listed again
    second = crawl(
        drifting, "models", out, "sort=downloads", settings=settings, page_size=PAGE, options=["-o", str(moving)]
    )
    assert second.returncode == 0, second.stderr[-3000:]
    ids = feed_ids(moving)
    assert len(ids) == len(set(ids)), "an entity was stored twice"
    assert set(ids) < expected, "drift should have hidden some models from this walk"
    assert second.stat("hfscraper/spider/relisted", 0) > 0
    assert second.stat("hfscraper/spider/items") == len(ids)
    assert second.stat("hfscraper/state/duplicate") is None
    # Nothing marked deleted although the walk missed models that still exist.
    assert second.stat("hfscraper/state/tombstoned") is None
    assert not list(out.rglob(TOMBSTONE_FILE))
    lines = [line for line in second.stderr.splitlines() if CAVEAT in line]
    assert len(lines) == 1 and "createdAt sweep" in lines[0], lines
    report = status(out)
    (by_downloads,) = [entry for entry in report["listings"] if entry["query"]["sort"] == "downloads"]
    assert by_downloads["complete"] and not by_downloads["sweep"] and CAVEAT in by_downloads["caveat"]
    assert by_downloads["watermark"] is None  # no cover for `since=auto`: it may have missed unchanged models
    assert report["entities"]["model"]["deleted"] == 0

    # A createdAt sweep still tells a deleted model: it is the one that may mark it.
    gone = sorted(expected)[3]
    drifting.mutate("model", delete=[gone])
    third = crawl(drifting, "models", out, settings=METADATA_ONLY, page_size=PAGE)
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.stat("hfscraper/state/tombstoned") == 1
    assert [p.parent.name for p in out.rglob(TOMBSTONE_FILE)] and status(out)["entities"]["model"]["deleted"] == 1


def test_drift_is_refused_where_it_cannot_work() -> None:
    for argv in (["--lazy", "--drift", "1"], ["--drift", "-1"]):
        done = subprocess.run(
            [sys.executable, "-m", "hfscraper.replica", "--port", "0", *argv],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2 and "--drift" in done.stderr and "Traceback" not in done.stderr
