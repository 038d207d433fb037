"""Crash-safe resume and incremental re-crawls, end to end: real `scrapy crawl` processes against the replica,
stopped gracefully, killed with SIGKILL, resumed with the same command, and run again over an unchanged or
changed Hub."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfscraper.hub import entity_folder_name
from hfscraper.output_owner import OWNER_FILE
from hfscraper.state import TOMBSTONE_FILE
from tests.support import report
from tests.support.crawl import (
    PAGE_SIZE,
    REPO_ROOT,
    _scrapy_command,
    crawl,
    crawl_command,
    crawl_env,
    feed_ids,
    metadata_only,
    parse_stats,
    public,
)
from tests.support.replica import ReplicaHandle, run_replica
from tests.support.trees import output_files


@pytest.fixture(autouse=True)
def _metadata_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Resume, cursors and deltafetch over thousands of entities; files have their own kill -9 test.
    metadata_only(monkeypatch)


def listing_requests(replica: ReplicaHandle, since: int, path: str = "/api/models") -> list[dict[str, Any]]:
    return [r for r in replica.requests(since=since, origin="hub") if r["path"].partition("?")[0] == path]


def status(output: Path, state: Path | None = None) -> tuple[int, dict[str, Any]]:
    """`scrapy status --json` for an output folder (and the state dir `crawl()` uses for it)."""
    state = state or output.parent / "state"
    command = [*_scrapy_command(), "status", "--json", "-s", f"HFSCRAPER_OUTPUT_DIR={output}"]
    command += ["-s", f"HFSCRAPER_STATE_DIR={state}"]
    proc = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def start(replica: ReplicaHandle, spider: str, output: Path, log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start `scrapy crawl` like `crawl()` would, without waiting; its stderr goes to *log*."""
    command = crawl_command(spider, output, **kwargs)
    with open(log, "wb") as stderr:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=crawl_env(replica, output), stdout=subprocess.DEVNULL, stderr=stderr
        )


def wait_for_pages(replica: ReplicaHandle, since: int, pages: int, process: subprocess.Popen[bytes], path: str) -> bool:
    """Wait until the replica has served *pages* listing pages since *since*; False if the crawl ended first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(listing_requests(replica, since, path)) >= pages:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError(f"the crawl fetched fewer than {pages} pages in 60 s")


def tree(root: Path) -> dict[str, bytes]:
    """Every file of an output folder but its record (`OWNER_FILE`, which names the folder's own state file); CAR
    packs by the entities they hold."""
    return output_files(root, skip=(OWNER_FILE,), scratch=True)


# -- graceful stops -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=600, datasets=200, spaces=20, seed=4, latency_ms=40
    ) as handle:
        yield handle


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_graceful_stop_then_the_same_command_resumes(slow_replica: ReplicaHandle, tmp_path: Path, sig: int) -> None:
    replica, out = slow_replica, tmp_path / "out"
    options = {"settings": {"JOBDIR": str(tmp_path / "job"), "HFSCRAPER_CRAWL_PAGE_SIZE": "20"}}
    mark = replica.mark()
    feed1 = ["-O", str(tmp_path / "feed1.jsonl")]
    process = start(replica, "models", out, tmp_path / "run1.log", options=feed1, **options)
    assert wait_for_pages(replica, mark, 8, process, "/api/models")
    process.send_signal(sig)
    assert process.wait(timeout=60) == 1
    log = (tmp_path / "run1.log").read_text()
    first = parse_stats(log)
    assert first["finish_reason"] == "shutdown"
    assert "hfscraper: models: stopped (finish reason shutdown" in log
    code, report_ = status(out)
    (entry,) = report_["listings"]
    assert code == 1 and entry["complete"] is False and entry["finish_reason"] == "shutdown"
    assert entry["cursor"]["next_url"] and entry["cursor"]["page"] >= 2

    mark = replica.mark()
    second = crawl(replica, "models", out, options=["-O", str(tmp_path / "feed2.jsonl")], **options)
    assert second.returncode == 0, second.stderr[-3000:]
    expected = {e["id"] for e in public(replica.truth, "model")}
    assert {m["id"] for m in second.metadata("model").values()} == expected
    # continued where the checkpoint was: not from the first page, and the JOBDIR's queued page was ignored
    assert second.stat("hfscraper/resume/resumed") == 1 and second.stat("hfscraper/resume/page") >= 2
    assert second.stat("hfscraper/spider/stale_listing_request") == 1
    assert len(listing_requests(replica, mark)) <= len(expected) // 20 + 1 - entry["cursor"]["page"] + 2
    # a graceful stop loses nothing and repeats nothing: every entity in exactly one feed row
    ids = feed_ids(tmp_path / "feed1.jsonl", tmp_path / "feed2.jsonl")
    assert sorted(ids) == sorted(expected)
    code, report_ = status(out)
    assert code == 0 and report_["listings"][0]["complete"] is True and report_["listings"][0]["cursor"] is None
    assert report_["listings"][0]["runs"] == 2


def test_refused_cursor_on_resume_restarts_from_the_top(slow_replica: ReplicaHandle, tmp_path: Path) -> None:
    replica, out = slow_replica, tmp_path / "out"
    n = len(public(replica.truth, "dataset"))
    # Run 1: every page after the first fails, so only page 0 is stored and its next cursor saved.
    replica.set_faults([{"kind": "5xx", "status": 503, "rate": 1.0, "path": r"^/api/datasets\?.*cursor="}])
    try:
        first = crawl(replica, "datasets", out, options=["-O", str(tmp_path / "feed1.jsonl")],
                      settings={"RETRY_TIMES": "0"})  # fmt: skip
    finally:
        replica.set_faults([])
    assert first.returncode == 1 and first.stat("finish_reason") == "listing_incomplete"
    assert len(first.metadata("dataset")) == PAGE_SIZE
    # Run 2: the Hub refuses the saved cursor once (it expired while the crawl was stopped).
    replica.set_faults([{"kind": "expire_cursor", "rate": 1.0, "count": 1, "path": r"^/api/datasets\?"}])
    try:
        second = crawl(replica, "datasets", out, options=["-O", str(tmp_path / "feed2.jsonl")])
    finally:
        replica.set_faults([])
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stat("hfscraper/resume/cursor_refused") == 1
    assert [line for line in second.stderr.splitlines() if "WARNING" in line and "refused the saved" in line]
    # from the top: page 0 again, its entities skipped as this crawl's own; the rest stored once
    assert second.stat("hfscraper/state/duplicate") == PAGE_SIZE
    assert second.stat("hfscraper/store/written") == n - PAGE_SIZE
    assert len(second.metadata("dataset")) == n
    ids = feed_ids(tmp_path / "feed1.jsonl", tmp_path / "feed2.jsonl")
    assert len(ids) == len(set(ids)) == n


def test_a_second_process_on_the_same_listing_is_refused(slow_replica: ReplicaHandle, tmp_path: Path) -> None:
    replica, out = slow_replica, tmp_path / "out"
    mark = replica.mark()
    # Slow listing pages keep the first crawl running while the second starts, however loaded the machine.
    replica.set_faults([{"kind": "latency", "ms": 1000, "rate": 1.0, "path": r"^/api/models\?"}])
    process = start(replica, "models", out, tmp_path / "run1.log", settings={"HFSCRAPER_CRAWL_PAGE_SIZE": "10"})
    try:
        assert wait_for_pages(replica, mark, 1, process, "/api/models")
        code, report_ = status(out)
        assert code == 1 and report_["listings"][0]["running"] is True
        second = crawl(replica, "models", out, settings={"HFSCRAPER_CRAWL_PAGE_SIZE": "10"})
        assert second.returncode == 1 and second.stat("finish_reason") == "already_running", second.stderr[-2500:]
        assert "Another process is crawling this model listing" in second.stderr
    finally:
        replica.set_faults([])
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


# -- re-crawls ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_unchanged_hub_recrawl_and_since_auto_at_10000_models(tmp_path: Path) -> None:
    with run_replica(tmp_dir=tmp_path / "replica", models=10_000, datasets=10, spaces=10, seed=8, truth=False) as hub:
        out = tmp_path / "out"
        first = crawl(hub, "models", out, page_size=None)
        assert first.returncode == 0, first.stderr[-3000:]
        n = first.stat("item_scraped_count")
        assert n > 9_900
        # Files only: the provenance folder is swapped in whole by every rebuild (its unchanged files hard-linked).
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

        mark = hub.mark()
        second = crawl(hub, "models", out, page_size=None)
        assert second.returncode == 0, second.stderr[-3000:]
        assert second.stat("deltafetch/skipped") == n
        assert second.stat("hfscraper/store/written") is None and second.stat("item_scraped_count") is None
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
        # nothing but listing pages: no per-entity request, no file download
        assert {r["path"].partition("?")[0] for r in hub.requests(since=mark)} == {"/api/models"}
        assert not hub.requests(since=mark, origin="cdn")

        for page_size in (None, PAGE_SIZE):
            mark = hub.mark()
            since = crawl(hub, "models", out, "since=auto", page_size=page_size)
            assert since.returncode == 0, since.stderr[-3000:]
            requests = listing_requests(hub, mark)
            assert 1 <= len(requests) <= 2
            assert all("sort=lastModified" in r["path"] for r in requests)
            assert since.stat("hfscraper/spider/since_reached") == 1
            assert since.stat("hfscraper/store/written") is None and since.stat("deltafetch/skipped") >= 1
            report.record(
                f"resume: since=auto over an unchanged replica of 10,000 models: {len(requests)} list request(s) "
                f"(page size {page_size or 1000}); a full re-crawl skipped {second.stat('deltafetch/skipped')} "
                "entities and rewrote 0 folders"
            )
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
        code, report_ = status(out)
        assert code == 0 and len(report_["listings"]) == 2 and report_["entities"]["model"]["live"] == n


def test_changed_deleted_and_restored_entities(tmp_path: Path) -> None:
    with run_replica(tmp_dir=tmp_path / "replica", models=300, datasets=10, spaces=10, seed=9) as hub:
        out = tmp_path / "out"
        first = crawl(hub, "models", out)
        assert first.returncode == 0, first.stderr[-3000:]
        ids = sorted(e["id"] for e in public(hub.truth, "model"))
        n = len(ids)
        touched, deleted = ids[10:13], ids[20:24]
        changes = hub.mutate("model", touch=touched, delete=deleted)
        assert not changes["unknown"]

        second = crawl(hub, "models", out)
        assert second.returncode == 0, second.stderr[-3000:]
        assert second.stat("hfscraper/store/written") == len(touched)
        assert second.stat("deltafetch/skipped") == n - len(touched) - len(deleted)
        assert second.stat("hfscraper/state/tombstoned") == len(deleted)
        for repo_id in touched:
            metadata = json.loads((out / "models" / entity_folder_name(repo_id) / "metadata.json").read_text())
            assert metadata["sha"] == changes["touched"][repo_id]["sha"]
        for repo_id in deleted:
            folder = out / "models" / entity_folder_name(repo_id)
            tombstone = json.loads((folder / TOMBSTONE_FILE).read_text())
            assert tombstone["id"] == repo_id and tombstone["deletedAt"] and (folder / "metadata.json").exists()
        assert len(list(out.rglob(TOMBSTONE_FILE))) == len(deleted)
        code, report_ = status(out)
        assert report_["entities"]["model"] == {"live": n - len(deleted), "deleted": len(deleted)}

        # an incremental crawl fetches only what changed since the last complete crawl
        again = ids[30:32]
        hub.mutate("model", touch=again)
        mark = hub.mark()
        since = crawl(hub, "models", out, "since=auto")
        assert since.returncode == 0, since.stderr[-3000:]
        assert since.stat("hfscraper/store/written") == len(again) and len(listing_requests(hub, mark)) == 1
        assert since.stat("hfscraper/state/tombstoned") is None  # only full sweeps tombstone

        # an entity seen again loses its tombstone; a subset listing never tombstones anything
        hub.mutate("model", restore=deleted[:2])
        third = crawl(hub, "models", out)
        assert third.returncode == 0, third.stderr[-3000:]
        assert third.stat("hfscraper/state/restored") == 2 and third.stat("hfscraper/state/tombstoned") is None
        assert sorted(p.parent.name for p in out.rglob(TOMBSTONE_FILE)) == sorted(
            entity_folder_name(i) for i in deleted[2:]
        )
        author = ids[0].split("/")[0] if "/" in ids[0] else None
        if author:
            subset = crawl(hub, "models", out, f"author={author}")
            assert subset.returncode == 0 and subset.stat("hfscraper/state/tombstoned") is None
        code, report_ = status(out)
        assert report_["entities"]["model"] == {"live": n - 2, "deleted": 2}


# -- the chaos test -------------------------------------------------------------------------------------------

CHAOS_KILLS = 6


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_a_clean_run(tmp_path: Path) -> None:
    """SIGKILL a crawl of 2,000 models at 6 random moments, resume it each time with the same command (same
    JOBDIR, a new feed file per run); the result must equal one uninterrupted crawl."""
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "20261126")))
    with run_replica(tmp_dir=tmp_path / "replica", models=2000, datasets=10, spaces=10, seed=11, latency_ms=40) as hub:
        started = time.monotonic()
        clean_dir, chaos_dir = tmp_path / "clean", tmp_path / "chaos"
        clean_dir.mkdir()
        chaos_dir.mkdir()
        clean = crawl(hub, "models", clean_dir / "out", options=["-O", str(clean_dir / "feed.jsonl")],
                      settings={"JOBDIR": str(clean_dir / "job")})  # fmt: skip
        assert clean.returncode == 0, clean.stderr[-3000:]
        clean_seconds = time.monotonic() - started
        pages = clean.stat("hfscraper/spider/pages")

        out = chaos_dir / "out"
        options = {"settings": {"JOBDIR": str(chaos_dir / "job")}}
        # Kill moments spread over the whole crawl: at these listing pages (counted from the first page of the
        # listing, not of the run), a few milliseconds into processing the page; one in five runs is instead
        # killed at a random time during its start-up.
        targets = sorted(rng.sample(range(2, pages - 1), CHAOS_KILLS))
        moments: list[str] = []
        stored = 0  # pages completely stored, as the saved cursor says
        run = 0
        for target in targets:
            run += 1
            feed = chaos_dir / f"feed-{run}.jsonl"
            mark = hub.mark()
            process = start(hub, "models", out, chaos_dir / f"run-{run}.log", options=["-O", str(feed)], **options)
            if rng.random() < 0.2:
                delay = rng.uniform(0.2, 1.0)
                time.sleep(delay)
                moment = f"{delay:.2f} s after start"
            else:
                need = max(1, target - stored)
                if not wait_for_pages(hub, mark, need, process, "/api/models"):
                    log = (chaos_dir / f"run-{run}.log").read_text()[-3000:]
                    pytest.fail(f"run {run} ended (exit {process.returncode}) before its kill moment:\n{log}")
                extra = rng.uniform(0.0, 0.06)
                time.sleep(extra)
                moment = f"page {stored + need} + {extra * 1000:.0f} ms"
            assert process.poll() is None, f"run {run} ended before the kill"
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            code, report_ = status(out)
            cursor = report_["listings"][0]["cursor"] if report_["listings"] else None
            assert code == 1 and not (report_["listings"] and report_["listings"][0]["complete"])
            stored = cursor["page"] if cursor and cursor["page"] else 0
            moments.append(f"{moment} ({stored} stored)")
        run += 1
        final = crawl(hub, "models", out, options=["-O", str(chaos_dir / f"feed-{run}.jsonl")], **options)
        assert final.returncode == 0, final.stderr[-3000:]
        total_seconds = time.monotonic() - started

        expected = {e["id"] for e in public(hub.truth, "model")}
        clean_tree, chaos_tree = tree(clean_dir / "out"), tree(out)
        assert set(chaos_tree) == set(clean_tree)  # the same folders, nothing else (no leftover temp files)
        assert chaos_tree == clean_tree  # byte-identical metadata.json
        assert {p.parent.name for p in out.rglob("metadata.json")} == {entity_folder_name(i) for i in expected}
        ids = feed_ids(*sorted(chaos_dir.glob("feed-*.jsonl")))
        twice = [i for i, c in collections.Counter(ids).items() if c > 1]
        assert not twice, f"ids in more than one feed row: {twice[:5]}"
        assert set(ids) <= expected
        code, report_ = status(out)
        (entry,) = report_["listings"]
        # (a run killed before its crawl state opened is not counted as a run)
        assert code == 0 and entry["complete"] is True and entry["runs"] <= run and entry["cursor"] is None
        assert final.stat("hfscraper/resume/resumed") == 1
        assert final.stat("hfscraper/resume/jobdir_discarded") == 1  # the run before it was killed
        report.record(
            f"resume: chaos: {len(moments)} SIGKILLs ({'; '.join(moments)}) over a {pages}-page crawl of "
            f"{len(expected)} models; {run} runs; output identical to a clean run ({clean_seconds:.1f} s); "
            f"feed rows {len(ids)} (no duplicates; {len(expected) - len(set(ids))} lost with killed runs' "
            f"unflushed feed buffers); {total_seconds:.1f} s in all"
        )
