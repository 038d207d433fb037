"""Distributed crawling on a real redis-server: one discovery and two workers as `scrapy crawl` subprocesses.

Checked against a single-process crawl of the same replica: every public entity processed exactly once (the
per-entity completion counter in Redis, and the workers' stats), the same outputs (metadata.json, downloaded files,
ipfs_cid.txt per entity folder), the combined request rate inside the replica's quota (its request log: at most
`quota` requests per window of each bucket, no 429), and both workers did work. The second test SIGKILLs a worker
in the middle and starts a fresh one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfscraper.distributed.keys import WorkKeys
from hfscraper.hub import entity_folder_name
from tests.support.crawl import REPO_ROOT, _scrapy_command, crawl, crawl_command, crawl_env, parse_stats, public
from tests.support.redis_server import RedisServer, redis_available, run_redis
from tests.support.replica import ReplicaHandle, run_replica

# Skipped only outside CI: under CI (`.ci/run` installs redis-server) a missing server fails the tests instead.
pytestmark = pytest.mark.skipif(
    not redis_available() and not os.environ.get("CI"), reason="redis-server is not installed (.ci/run installs it)"
)

MODELS = 48
QUOTA_API = 40
QUOTA_RESOLVERS = 80
QUOTA_WINDOW = 4
#: Small files, a few patterns: every model has a config.json and a README.md in the replica.
FILE_SETTINGS = {
    "HFSCRAPER_FILES_MODELS": "config.json,README.md",
    "HFSCRAPER_CRAWL_FETCH_BASE_MODELS": "true",  # a per-entity API call, made by the workers
    "HFSCRAPER_PROGRESS_INTERVAL": "0",
}
WORKER = {
    "HFSCRAPER_DISTRIBUTED_ROLE": "worker",
    "HFSCRAPER_DISTRIBUTED_MAX_IN_FLIGHT": "4",
    "HFSCRAPER_DISTRIBUTED_POLL_INTERVAL": "0.2",
    "HFSCRAPER_DISTRIBUTED_LEASE": "3",
}
DISCOVERY = {"HFSCRAPER_DISTRIBUTED_ROLE": "discovery"}


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        models=MODELS, datasets=0, spaces=0, seed=7, quota_api=QUOTA_API, quota_resolvers=QUOTA_RESOLVERS,
        quota_window=QUOTA_WINDOW, tmp_dir=tmp_path_factory.mktemp("replica"),
    ) as hub:  # fmt: skip
        yield hub


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with run_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture(scope="module")
def single(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The outputs of a single-process crawl of the same replica (the reference)."""
    out = tmp_path_factory.mktemp("single") / "out"
    result = crawl(replica, "models", out, settings=FILE_SETTINGS, page_size=16, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stat("finish_reason") == "finished"
    return out


def _start(replica: ReplicaHandle, out: Path, state: Path, redis_url: str, role: dict[str, str], log: Path) -> Any:
    settings = {**FILE_SETTINGS, **role, "HFSCRAPER_REDIS_URL": redis_url, "HFSCRAPER_STATE_DIR": str(state)}
    command = crawl_command("models", out, settings=settings, page_size=16)
    handle = log.open("w")
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=crawl_env(replica, out), stdout=subprocess.DEVNULL, stderr=handle
    ), handle


def _finish(proc: Any, timeout: float = 150) -> tuple[int, dict[str, Any], str]:
    process, handle = proc
    code = process.wait(timeout)
    handle.close()
    text = Path(handle.name).read_text(encoding="utf-8", errors="replace")
    return code, parse_stats(text), text


def _tree(out: Path, folder: str = "models") -> dict[str, str]:
    """{relative path: sha256} of every file under *folder* of an output folder: for `models`, every metadata.json,
    downloaded file and ipfs_cid.txt of the entity folders."""
    files: dict[str, str] = {}
    root = out / folder
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def _assert_quota(replica: ReplicaHandle, since: int) -> dict[str, int]:
    """No 429, and at most the quota per window in each bucket (windows as the replica opens them: at the first
    request of a bucket after the last window ended). Returns the most requests seen in one window per bucket."""
    entries = [e for e in replica.requests(since=since, origin="hub")]
    assert not [e for e in entries if e.get("status") == 429]
    quotas = {"api": QUOTA_API, "resolvers": QUOTA_RESOLVERS}
    most: dict[str, int] = {}
    for bucket, quota in quotas.items():
        times = sorted(e["time"] for e in entries if e.get("bucket") == bucket)
        start, count, worst = None, 0, 0
        for t in times:
            if start is None or t >= start + QUOTA_WINDOW:
                start, count = t, 0
            count += 1
            worst = max(worst, count)
        assert worst <= quota, (bucket, worst, quota)
        most[bucket] = worst
    return most


def _expected_ids(replica: ReplicaHandle) -> set[str]:
    return {e["id"] for e in public(replica.truth, "model")}


def _completions(server: RedisServer) -> tuple[Counter[str], dict[str, int]]:
    keys = WorkKeys.of("hfscraper", "models")
    client = server.client()
    done = Counter({k.decode(): int(v) for k, v in client.hgetall(keys.completions).items()})
    per_worker = {k.decode(): int(v) for k, v in client.hgetall(keys.by_worker).items()}
    return done, per_worker


def test_discovery_and_two_workers_match_a_single_crawl(
    replica: ReplicaHandle, single: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    replica.reset_quota()
    time.sleep(QUOTA_WINDOW)  # the single crawl's windows end: the distributed crawl starts on a fresh quota
    mark = replica.mark()
    out, state = tmp_path / "out", tmp_path / "state"
    url = redis_server.url
    discovery = _start(replica, out, state, url, DISCOVERY, tmp_path / "discovery.log")
    workers = [_start(replica, out, state, url, WORKER, tmp_path / f"worker{i}.log") for i in (1, 2)]
    code, stats, log = _finish(discovery)
    assert code == 0 and stats.get("finish_reason") == "finished", log[-3000:]
    results = [_finish(w) for w in workers]
    for code, wstats, wlog in results:
        assert code == 0 and wstats.get("finish_reason") == "finished", wlog[-3000:]
        assert not wstats.get("hfscraper/ratelimit/429")

    expected = _expected_ids(replica)
    done, per_worker = _completions(redis_server)
    assert set(done) == {f"model/{i}" for i in expected}
    assert set(done.values()) == {1}, [k for k, v in done.items() if v != 1]
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values()), per_worker
    assert sum(r[1].get("hfscraper/distributed/completed", 0) for r in results) == len(expected)
    assert stats.get("hfscraper/distributed/pushed") == len(expected)

    assert _tree(out) == _tree(single)
    # Workers sharing one state file: each rebuilds the provenance graph when it ends, which is only once every
    # entity is done, so every rebuild sees all of them.
    assert _tree(out, "provenance") == _tree(single, "provenance")
    assert {entity_folder_name(i) for i in expected} == {p.name for p in (out / "models").iterdir()}
    most = _assert_quota(replica, mark)
    print(f"entities per worker {per_worker}; most requests in one window {most}")

    # `scrapy status` over the shared state: the discovery's listing crawl and the workers' crawl, both complete.
    report = _status(replica, out, state)
    assert report["complete"] is True
    modes = {listing["mode"]: listing for listing in report["listings"]}
    assert set(modes) == {"full", "worker"}
    assert modes["worker"]["entities"]["stored"] == len(expected)
    assert report["types"]["model"]["live"] == len(expected)


def test_killed_worker_work_is_picked_up(
    replica: ReplicaHandle, single: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    replica.reset_quota()
    time.sleep(QUOTA_WINDOW)
    mark = replica.mark()
    url = redis_server.url
    # Across machines: each worker has its own output folder and state file.
    outs = [tmp_path / f"out{i}" for i in range(3)]
    discovery = _start(replica, tmp_path / "disc", tmp_path / "disc-state", url, DISCOVERY, tmp_path / "d.log")
    victim = _start(replica, outs[0], tmp_path / "s0", url, WORKER, tmp_path / "w0.log")
    steady = _start(replica, outs[1], tmp_path / "s1", url, WORKER, tmp_path / "w1.log")
    keys = WorkKeys.of("hfscraper", "models")
    client = redis_server.client()
    deadline = time.monotonic() + 60
    held = 0
    while time.monotonic() < deadline:  # kill it while it holds claimed entities, after it finished some
        name = _worker_of(client, keys, victim[0].pid)
        held = client.llen(keys.processing(name)) if name else 0
        if held and int(client.hget(keys.by_worker, name) or 0) >= 3:
            break
        time.sleep(0.02)
    os.kill(victim[0].pid, signal.SIGKILL)
    assert held, "the worker to kill never held claimed entities"
    victim[0].wait()
    victim[1].close()
    fresh = _start(replica, outs[2], tmp_path / "s2", url, WORKER, tmp_path / "w2.log")
    code, _, log = _finish(discovery)
    assert code == 0, log[-3000:]
    reclaimed = 0
    for proc in (steady, fresh):
        code, wstats, wlog = _finish(proc)
        assert code == 0 and wstats.get("finish_reason") == "finished", wlog[-3000:]
        reclaimed += wstats.get("hfscraper/distributed/reclaimed", 0)
    assert reclaimed >= held  # the killed worker's claimed entities went back to the queue

    expected = _expected_ids(replica)
    done, per_worker = _completions(redis_server)
    assert set(done) == {f"model/{i}" for i in expected}
    assert set(done.values()) == {1}
    assert len([n for n in per_worker.values() if n]) == 3, per_worker
    # The outputs of the three workers together are the single crawl's; no entity folder is in two of them
    # except the ones the killed worker had begun (re-done by another worker, identically).
    reference = _tree(single)
    combined: dict[str, str] = {}
    for out in outs:
        if (out / "models").is_dir():
            for path, digest in _tree(out).items():
                assert combined.setdefault(path, digest) == digest, path
    assert set(combined) <= set(reference)  # nothing but the reference's files, even in the killed worker's folders
    finished = {p for p in combined if p.endswith("/ipfs_cid.txt")}
    assert {p for p in reference if p.endswith("/ipfs_cid.txt")} == finished
    for path in finished:  # every completed folder is the reference's, file by file
        folder = path.rpartition("/")[0]
        assert {p: d for p, d in combined.items() if p.startswith(folder + "/")} == {
            p: d for p, d in reference.items() if p.startswith(folder + "/")
        }
    most = _assert_quota(replica, mark)
    print(f"killed a worker holding {held}; {reclaimed} reclaimed; per worker {per_worker}; most per window {most}")


def _status(replica: ReplicaHandle, out: Path, state: Path) -> dict[str, Any]:
    command = [*_scrapy_command(), "status", "--json"]
    command += ["-s", f"HFSCRAPER_OUTPUT_DIR={out}", "-s", f"HFSCRAPER_STATE_DIR={state}"]
    proc = subprocess.run(
        command, cwd=REPO_ROOT, env=crawl_env(replica, out), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _worker_of(client: Any, keys: WorkKeys, pid: int) -> str:
    for raw in client.smembers(keys.workers):
        name = raw.decode()
        if name.split(":")[-2] == str(pid):
            return name
    return ""


def test_two_processes_share_one_quota(redis_server: RedisServer) -> None:
    """Two `RedisPacing`s (two processes) on one bucket: together they never send more than the quota allows."""
    from hfscraper.distributed.ratelimit import RedisPacing

    a = RedisPacing(redis_server.client(), "q", reserve=0)
    b = RedisPacing(redis_server.client(), "q", reserve=0)
    seq, now = None, time.monotonic()
    ready, seq = a.try_send("hub", "api", now)
    assert seq == 1
    assert b.try_send("hub", "api", now)[1] is None  # one probe in flight until the policy is known
    a.observed("hub", "api", seq, now, remaining=9, reset=2, quota=10, window=2)
    sent = 1
    deadline = time.monotonic() + 1.9  # inside the first window
    while time.monotonic() < deadline:
        for pacing in (a, b):
            _, got = pacing.try_send("hub", "api", time.monotonic())
            if got is not None:
                sent += 1
                left = math.ceil(now + 2 - time.monotonic())  # what the server says: seconds to its reset
                pacing.observed("hub", "api", got, time.monotonic(), remaining=10 - got, reset=left, quota=10, window=2)
        time.sleep(0.01)
    assert 8 <= sent <= 10  # the window's budget spread over it, and not one request more
    added, was_paused = b.pause_for("hub", 0.0, 0.3)
    assert added == pytest.approx(0.3, abs=0.01) and not was_paused
    assert a.try_send("hub", "api", 0.0)[1] is None  # the 429 pause holds for every process
    assert a.rate_limited("hub") == 1 and b.rate_limited("hub") == 2


def test_recrawl_skips_unchanged_and_only_the_discovery_tombstones(redis_server: RedisServer, tmp_path: Path) -> None:
    """A second crawl over one shared output folder: the worker skips unchanged entities (acked, no completion),
    redoes the changed one, and the discovery's full sweep tombstones the deleted one."""
    settings = {"HFSCRAPER_FILES_ENABLED": "false", "HFSCRAPER_PREVIEWS_ENABLED": "false"}
    with run_replica(models=20, datasets=0, spaces=0, seed=3, tmp_dir=tmp_path / "hub") as hub:
        out, state, url = tmp_path / "out", tmp_path / "state", redis_server.url

        def run(tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
            procs = [_start(hub, out, state, url, {**settings, **DISCOVERY}, tmp_path / f"{tag}-discovery.log")]
            # Redis still says the first crawl is done: a worker started now would end at once, so the worker
            # starts once the discovery has begun the new crawl (as the README says).
            listing, client = WorkKeys.of("hfscraper", "models").listing, redis_server.client()
            deadline = time.monotonic() + 30
            while client.hget(listing, "state") != b"running" and time.monotonic() < deadline:
                time.sleep(0.05)
            procs.append(_start(hub, out, state, url, {**settings, **WORKER}, tmp_path / f"{tag}-worker.log"))
            results = [_finish(p) for p in procs]
            for code, stats, log in results:
                assert code == 0 and stats.get("finish_reason") == "finished", log[-3000:]
            return results[0][1], results[1][1]

        run("first")
        ids = sorted(_expected_ids(hub))
        gone, touched = ids[0], ids[1]
        hub.mutate("model", delete=[gone], touch=[touched])
        discovery, worker = run("second")
        done, _ = _completions(redis_server)
        assert done == Counter({f"model/{touched}": 1})
        assert worker.get("hfscraper/distributed/skipped/unchanged") == len(ids) - 2
        assert discovery.get("hfscraper/state/tombstoned") == 1
        tombstones = {p.parent.name for p in (out / "models").glob("*/tombstone.json")}
        assert tombstones == {entity_folder_name(gone)}
