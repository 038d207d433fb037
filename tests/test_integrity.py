"""Integrity: what the crawl state calls complete is on disk and verified, exactly once (issue 13).

Real `scrapy crawl` subprocesses against the replica, with its fault injection, tampering with the output and
real signals: a failed re-download never removes a verified file and leaves its entity incomplete; refused
cursors never put an entity into a feed twice; a tampered or lost entity folder is noticed on the next run and
redone; a Ctrl-C is a stop, not a failure.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfscraper.hub import entity_folder_name, parse_link_next
from hfscraper.ipfs.packs import pack_roots
from hfscraper.output_owner import OWNER_FILE
from tests.support.crawl import (
    METADATA_ONLY,
    REPO_ROOT,
    CrawlResult,
    crawl,
    crawl_command,
    crawl_env,
    feed_ids,
    parse_stats,
    public,
)
from tests.support.replica import ReplicaHandle, run_replica
from tests.support.trees import output_files

LISTING = r"^/api/models\?"


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=40, datasets=8, spaces=8, seed=5) as hub:
        yield hub


@pytest.fixture(scope="module")
def big_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=900, datasets=2, spaces=2, seed=8) as hub:
        yield hub


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
    """Every file under an output folder (bar the crawl's scratch space), by relative path; CAR packs by entity."""
    return output_files(root, skip=(".tmp/", OWNER_FILE))


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


# -- a cheap self-check on every run ---------------------------------------------------------------------------


def test_tampering_is_noticed_by_the_next_plain_run_and_repaired(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    entity_cars = {"HFSCRAPER_IPFS_CAR_LAYOUT": "entity"}  # one CAR per entity: exactly one entity loses its CAR
    assert_complete(crawl(replica, "models", out, settings=entity_cars))
    clean = snapshot(out)
    configs = sorted(p for p in clean if p.endswith("/config.json"))
    cars = sorted(p for p in clean if p.startswith("car/models/"))
    metadata = sorted(p for p in clean if p.endswith("/metadata.json"))
    changed, deleted, car, garbled = out / configs[0], out / configs[1], out / cars[2], out / metadata[3]
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte, same size
    changed.write_bytes(bytes(data))
    deleted.unlink()
    car.unlink()
    garbled.write_text("{not json", encoding="utf-8")

    again = crawl(replica, "models", out, settings=entity_cars)
    assert_complete(again)
    touched = {
        Path(p).parent.name if p.startswith("models/") else Path(p).stem for p in (*configs[:2], cars[2], metadata[3])
    }
    assert again.stat("hfscraper/files/entities") == len(touched), again.stderr[-3000:]  # those folders, nothing else
    assert again.stat("hfscraper/files/downloaded") == 2  # the changed byte and the deleted file
    assert snapshot(out) == clean
    assert status(replica, out).returncode == 0


def test_a_lost_pack_is_noticed_and_its_entities_are_stored_again(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    packed = {**METADATA_ONLY, "HFSCRAPER_IPFS_CAR_LAYOUT": "pack"}
    assert_complete(crawl(replica, "models", out, settings=packed, page_size=10))
    clean = snapshot(out)
    packs = sorted((out / "car" / "packs" / "models").glob("*.car"))
    # Usually several packs (one per IPFS batch); end-of-crawl compaction merges batches smaller than 8, which a
    # loaded machine can make of every one: then the one pack is lost and all its entities are redone.
    assert packs
    lost = packs[len(packs) // 2]
    roots = set(pack_roots(lost))
    held = {p for p, data in clean.items() if p.endswith("/ipfs_cid.txt") and data.strip().decode() in roots}
    lost.unlink()

    again = crawl(replica, "models", out, settings=packed, page_size=10)
    assert_complete(again)
    assert again.stat("hfscraper/ipfs/entities") == len(held)  # the pack's entities, nothing else
    assert snapshot(out) == clean
    assert status(replica, out).returncode == 0


def listing_cursor(replica: ReplicaHandle, page: int, page_size: int) -> str:
    """The `cursor=...` of a page of the models listing (pages count from 0)."""
    url: str | None = f"{replica.url}/api/models?sort=createdAt&limit={page_size}"
    for _ in range(page):
        assert url is not None
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=30) as response:
            target = parse_link_next(response.headers.get_all("Link") or [])
        url = target and urllib.request.urljoin(url, target)
    assert url is not None
    return re.search(r"cursor=[^&]+", url).group(0)  # type: ignore[union-attr]


def test_folders_lost_before_a_resume_checkpoint_are_noticed_and_restored(
    replica: ReplicaHandle, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    third = listing_cursor(replica, 2, 10)
    replica.set_faults([{"kind": "5xx", "status": 503, "rate": 1.0, "path": re.escape(third)}])
    try:
        first = crawl(replica, "models", out, settings=METADATA_ONLY, page_size=10)
    finally:
        replica.set_faults([])
    assert first.returncode == 1 and first.stat("finish_reason") == "listing_incomplete", first.stderr[-3000:]
    stored = sorted(d for d in (out / "models").iterdir())
    assert len(stored) >= 15  # the two pages before the lost one
    for folder in stored[:5]:
        shutil.rmtree(folder)

    resumed = crawl(replica, "models", out, settings=METADATA_ONLY, page_size=10)
    assert_complete(resumed)
    warned = [line for line in resumed.stderr.splitlines() if "] WARNING: " in line and "are missing from" in line]
    assert len(warned) == 1 and warned[0].split("WARNING: ")[1].startswith("5 model(s)"), resumed.stderr[-3000:]
    assert resumed.stat("hfscraper/state/lost") == 5
    assert {d.name for d in (out / "models").iterdir()} == {
        entity_folder_name(e["id"]) for e in public(replica.truth, "model")
    }
    assert status(replica, out).returncode == 0


# -- a requested stop is not a failure -------------------------------------------------------------------------


def test_ctrl_c_is_a_stop_not_a_failure_and_the_same_command_continues(replica: ReplicaHandle, tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "run1.log"
    # Slow file requests: many are in flight when the signal comes.
    replica.set_faults([{"kind": "latency", "ms": 400, "rate": 1.0, "path": "/resolve"}])
    mark = replica.mark()
    try:
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                crawl_command("models", out, page_size=10),
                cwd=REPO_ROOT, env=crawl_env(replica, out), stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while sum("/resolve/" in r["path"] for r in replica.requests(since=mark)) < 20:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 1
    finally:
        replica.set_faults([])
    text = log.read_text(encoding="utf-8")
    stats = parse_stats(text)
    assert stats["finish_reason"] == "shutdown"
    assert stats.get("hfscraper/files/interrupted", 0) >= 1 and not stats.get("hfscraper/files/failed")
    assert "not downloaded (shutdown)" not in text
    assert not [line for line in text.splitlines() if "] ERROR: " in line], text[-3000:]
    summary = [line for line in text.splitlines() if "] INFO: The crawl stopped before" in line]
    assert len(summary) == 1 and "not failures" in summary[0]
    assert "hfscraper: models: stopped (finish reason shutdown" in text

    shown = status(replica, out)
    assert shown.returncode == 1
    assert "stopped on request" in shown.stdout and "shutdown" not in shown.stdout.split("files")[-1], shown.stdout

    assert_complete(crawl(replica, "models", out, page_size=10))
    clean = tmp_path / "clean"
    assert_complete(
        crawl(replica, "models", clean, page_size=10, settings={"HFSCRAPER_STATE_DIR": str(tmp_path / "s2")})
    )
    assert snapshot(out) == snapshot(clean)


def test_a_run_killed_after_its_last_page_was_stored_is_completed_by_the_next(
    replica: ReplicaHandle, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    assert_complete(crawl(replica, "models", out, settings=METADATA_ONLY))
    # What a kill -9 between the last checkpoint and the completion leaves: every page stored, no finish.
    (state_file,) = (tmp_path / "state").glob("*.sqlite3")
    with sqlite3.connect(state_file) as db:
        crawl_id, listing_key = db.execute("SELECT crawl_id, listing_key FROM crawls").fetchone()
        db.execute(
            "UPDATE crawls SET complete = 0, finished_at = NULL, finish_reason = NULL, run_pid = 999999999 "
            "WHERE crawl_id = ?",
            (crawl_id,),
        )
        db.execute(
            "INSERT INTO cursors (listing_key, crawl_id, chain_id, next_url, page_seq, items_seen, done, updated_at) "
            "VALUES (?, ?, 'killed', NULL, 0, 40, 1, '2026-01-01T00:00:00.000Z')",
            (listing_key, crawl_id),
        )
    assert status(replica, out).returncode == 1
    again = crawl(replica, "models", out, settings=METADATA_ONLY)
    assert_complete(again)
    assert not again.stat("hfscraper/spider/pages")  # nothing left to fetch
    assert status(replica, out).returncode == 0
