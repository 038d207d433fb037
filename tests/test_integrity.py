"""Integrity: what the crawl state calls complete is on disk and verified, exactly once (issue 13).

Real `scrapy crawl` subprocesses against the replica, with its fault injection, tampering with the output and
real signals: a failed re-download never removes a verified file and leaves its entity incomplete; refused
cursors never put an entity into a feed twice; a tampered or lost entity folder is noticed on the next run and
redone; a Ctrl-C is a stop, not a failure.
"""

from __future__ import annotations

import collections
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfscraper.hub import entity_folder_name
from tests.support.crawl import (
    METADATA_ONLY,
    REPO_ROOT,
    CrawlResult,
    crawl,
    crawl_command,
    crawl_env,
)
from tests.support.replica import ReplicaHandle, run_replica

LISTING = r"^/api/models\?"


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=40, datasets=8, spaces=8, seed=5) as hub:
        yield hub


@pytest.fixture(scope="module")
def big_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=900, datasets=2, spaces=2, seed=8) as hub:
        yield hub


def feed_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def model_folder(output: Path, repo_id: str) -> Path:
    return output / "models" / entity_folder_name(repo_id)


def status(replica: ReplicaHandle, output: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*crawl_command("", output, command_name="status")[:2], *args]
    command += ["-s", f"HFSCRAPER_OUTPUT_DIR={output}", "-s", f"HFSCRAPER_STATE_DIR={output.parent / 'state'}"]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=crawl_env(replica, output), capture_output=True, text=True, timeout=120, check=False
    )


def assert_complete(result: CrawlResult) -> None:
    assert result.returncode == 0 and result.stat("finish_reason") == "finished", result.stderr[-3000:]


# -- at most once per feed ------------------------------------------------------------------------------------


def test_refused_cursors_mid_run_put_no_entity_into_the_feed_twice(big_replica: ReplicaHandle, tmp_path: Path) -> None:
    # Pages overlap in the pipeline: an entity of a page restarted from the top can finish while the state is
    # asked about it. The feed must still get every entity at most once.
    feed = tmp_path / "feed.jsonl"
    big_replica.set_faults([{"kind": "expire_cursor", "rate": 0.08, "path": LISTING}])
    try:
        result = crawl(
            big_replica, "models", tmp_path / "out", settings=METADATA_ONLY, page_size=30, options=["-O", str(feed)]
        )
    finally:
        big_replica.set_faults([])
    assert result.stat("hfscraper/spider/listing_restarts", 0) >= 1, result.stderr[-3000:]
    ids = feed_ids(feed)
    repeated = [i for i, n in collections.Counter(ids).items() if n > 1]
    assert not repeated, f"{len(repeated)} ids twice in {len(ids)} rows, e.g. {repeated[:3]}"
    assert result.stat("item_scraped_count") == len(ids)


# -- never lose a verified byte --------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under an output folder (bar the crawl's scratch space), by relative path."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.relative_to(root).as_posix().startswith(".tmp/")
    }


def test_a_failed_redownload_keeps_the_verified_copy_and_the_entity_is_redone(
    replica: ReplicaHandle, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert_complete(crawl(replica, "models", out))
    before = snapshot(out)
    configs = {path: data for path, data in before.items() if path.endswith("/config.json")}
    assert len(configs) >= 10

    replica.set_faults([{"kind": "5xx", "status": 503, "rate": 1.0, "path": r"/config\.json($|\?)"}])
    try:
        failed = crawl(replica, "models", out, settings={"DELTAFETCH_ENABLED": "false"})
    finally:
        replica.set_faults([])
    assert failed.returncode == 1 and failed.stat("hfscraper/files/failed") >= len(configs), failed.stderr[-3000:]
    # every verified config.json is still there, byte for byte
    assert {path: data for path, data in snapshot(out).items() if path.endswith("/config.json")} == configs

    # a plain run (deltafetch on) redoes the entities that failed: nothing is "unchanged" about them
    again = crawl(replica, "models", out)
    assert_complete(again)
    assert again.stat("hfscraper/files/entities", 0) >= len(configs), again.stderr[-3000:]
    after = snapshot(out)
    assert {p: d for p, d in after.items() if p in configs} == configs
    assert after == before  # the whole tree: files, CIDs, CARs, provenance
    shown = status(replica, out)
    assert shown.returncode == 0, shown.stdout + shown.stderr
