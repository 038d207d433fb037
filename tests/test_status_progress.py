"""`scrapy status` and the progress line, end to end: crawls of the replica (which sends RateLimit headers on
every response) with a short progress interval, then `scrapy status --json` and its text."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.crawl import METADATA_ONLY, REPO_ROOT, _scrapy_command, crawl, crawl_env, public
from tests.support.replica import ReplicaHandle, run_replica

TOKEN = "hf_" + "statusProgressSecretToken0123456789"  # built at run time: not a secret-scanner match
PAGE = 10
PROGRESS = re.compile(
    r"INFO: hfscraper: (?P<spider>\w+): (?P<stored>[\d,]+) stored, (?P<skipped>[\d,]+) skipped "
    r"\((?P<rate>[\d,]+) entities/s, (?P<now>[\d,]+)/s now\), (?P<pages>[\d,]+) pages(?P<rest>.*)$"
)


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=60, datasets=35, spaces=3, seed=21, latency_ms=20,
        quota_api=1000, quota_window=60, approved_tokens=[TOKEN],
    ) as hub:  # fmt: skip
        yield hub


def run(replica: ReplicaHandle, spider: str, out: Path, **settings: str) -> Any:
    return crawl(
        replica, spider, out, settings={**METADATA_ONLY, **settings}, page_size=PAGE, env_overrides={"HF_TOKEN": TOKEN}
    )


def status(replica: ReplicaHandle, out: Path, *options: str) -> tuple[int, str]:
    command = [*_scrapy_command(), "status", *options, "-s", f"HFSCRAPER_OUTPUT_DIR={out}"]
    command += ["-s", f"HFSCRAPER_STATE_DIR={out.parent / 'state'}"]
    proc = subprocess.run(
        command, cwd=REPO_ROOT, env=crawl_env(replica, out), capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, proc.stdout


def status_json(replica: ReplicaHandle, out: Path) -> tuple[int, dict[str, Any]]:
    code, text = status(replica, out, "--json")
    return code, json.loads(text)


def assert_no_token(out: Path, *logs: str) -> None:
    for log in logs:
        assert TOKEN not in log
    state_files = [p for p in (out.parent / "state").iterdir() if p.is_file()]
    assert state_files
    for path in state_files:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_progress_lines_and_status_after_a_complete_crawl(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    n = len(public(replica.truth, "model"))
    first = run(replica, "models", out, HFSCRAPER_PROGRESS_INTERVAL="0.05")
    assert first.returncode == 0, first.stderr[-3000:]
    progress = [m for m in map(PROGRESS.search, first.stderr.splitlines()) if m]
    assert len(progress) >= 2, first.stderr[-3000:]
    stored = [int(m["stored"].replace(",", "")) for m in progress]
    pages = [int(m["pages"].replace(",", "")) for m in progress]
    assert all(m["spider"] == "models" for m in progress)
    assert stored == sorted(stored) and pages == sorted(pages) and 0 <= stored[-1] <= n
    assert pages[-1] <= n // PAGE + 1 and stored[-1] > 0
    budgets = [re.search(r"api ([\d,]+)/1,000 left \(resets in (\d+) s\)", m["rest"]) for m in progress]
    seen = [b for b in budgets if b]
    assert seen, progress[-1].group(0)
    assert all(0 <= int(b[1].replace(",", "")) < 1000 and 0 <= int(b[2]) <= 60 for b in seen)
    # ours replaces Scrapy's bare LogStats line
    assert "Crawled 0 pages (at" not in first.stderr

    code, report = status_json(replica, out)
    assert code == 0 and report["complete"] is True
    (listing,) = report["listings"]
    assert listing["entities"] == {"listed": n, "stored": n, "skipped": 0}
    assert listing["last_checkpoint"] == listing["finished"]
    assert report["types"]["model"] == {
        "discovered": n, "live": n, "deleted": 0,
        "last_crawl": {"crawl": listing["crawl"], "listed": n, "stored": n, "skipped": 0},
    }  # fmt: skip
    (api,) = [r for r in report["ratelimits"] if r["bucket"] == "api"]
    assert api["host"] == replica.url.removeprefix("http://")
    assert api["quota"] == 1000 and api["window"] == 60 and 0 <= api["remaining"] < 1000
    assert 0 <= api["resets_in"] <= 60 and api["seen"] <= api["resets_at"]
    assert set(api) == {"host", "bucket", "remaining", "quota", "window", "resets_in", "resets_at", "seen"}

    # again over an unchanged Hub, with the progress line off: every entity skipped, Scrapy's LogStats line back
    second = run(replica, "models", out, HFSCRAPER_PROGRESS_INTERVAL="0")
    assert second.returncode == 0, second.stderr[-3000:]
    assert not [line for line in second.stderr.splitlines() if PROGRESS.search(line)]
    assert "Crawled 0 pages (at 0 pages/min)" in second.stderr
    code, report = status_json(replica, out)
    assert code == 0
    latest = report["listings"][0]
    assert latest["crawl"] == listing["crawl"] + 1
    assert latest["entities"] == {"listed": n, "stored": 0, "skipped": n}
    assert report["types"]["model"]["last_crawl"]["skipped"] == n
    code, text = status(replica, out)
    assert code == 0
    assert f"  entities: {n} listed, 0 stored, {n} skipped" in text
    assert f"  models: {n} discovered, 0 deleted; last crawl #{latest['crawl']}: {n} listed, 0 stored" in text
    budget = r"^rate limit 127\.0\.0\.1:\d+ api: \d+/1000 left, window 60 s, resets \S+ \(seen \S+\)$"
    assert re.search(budget, text, re.M)
    assert_no_token(out, first.stderr, second.stderr, text)


def test_status_of_an_incomplete_crawl(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # every listing page after the first fails: only the first page is stored, its next cursor saved
    replica.set_faults([{"kind": "5xx", "status": 503, "rate": 1.0, "path": r"^/api/datasets\?.*cursor="}])
    try:
        result = run(replica, "datasets", out, RETRY_TIMES="0", HFSCRAPER_PROGRESS_INTERVAL="0.2")
    finally:
        replica.set_faults([])
    assert result.returncode == 1 and result.stat("finish_reason") == "listing_incomplete"
    code, report = status_json(replica, out)
    assert code == 1 and report["complete"] is False
    (listing,) = report["listings"]
    assert listing["complete"] is False and listing["finish_reason"] == "listing_incomplete"
    assert listing["cursor"]["page"] == 1 and listing["cursor"]["entities_listed"] == PAGE
    assert listing["last_checkpoint"] == listing["cursor"]["saved"]
    assert listing["entities"] == {"listed": PAGE, "stored": PAGE, "skipped": 0}
    assert report["types"]["dataset"]["discovered"] == PAGE
    assert {r["bucket"] for r in report["ratelimits"]} >= {"api"}
    code, text = status(replica, out)
    assert code == 1 and "complete: false" in text and f"  entities: {PAGE} listed, {PAGE} stored, 0 skipped" in text
    assert_no_token(out, result.stderr, text)
