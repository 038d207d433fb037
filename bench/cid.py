"""CID benchmark: how fast `hfscraper.ipfs` content-addresses a large file, against plain sha256 of the same file.

For each file size (64 MiB and 256 MiB of random bytes, page cache warm) the run times, best of `BENCH_CID_REPEATS`
(default 5) interleaved rounds, on one core:

- the baseline: `hashlib.sha256` over the file, read with `readinto` into one reused 1 MiB buffer;
- `file_cid(path, profile)` for each profile (reading, chunking, hashing every leaf and node, the DAG).

Rows:
- `speed_ratio/<profile>/<size>`: sha256 time / CID time (1.0 = as fast as sha256 alone). Goal: at least 0.70.
- `throughput/<profile>/<size>` and `sha256_throughput/<size>`: MB/s (informative).
- `car_throughput/<profile>`: MB/s of `write_car` on the largest file, CAR written to the same disk (informative).
- `peak_memory/<profile>`: the most memory Python allocated during one `file_cid` of the largest file, in MiB
  (tracemalloc), in a new thread (so its chunk buffer counts). Goal: under 4 MiB, whatever the file size
  (streaming: one chunk buffer per thread).

Sizes can be chosen with `BENCH_CID_MIB=64,1024`. `run(smoke=True)` uses one 8 MiB file and one round: it only
checks that the benchmark works; its numbers mean little.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench import BenchResult, Row
from hfscraper.ipfs import PROFILES, file_cid, write_car

NAME = "cid"
GOAL_RATIO = 0.70
GOAL_PEAK_MIB = 4.0
MiB = 1024 * 1024


def settings(*, smoke: bool) -> dict[str, Any]:
    if smoke:
        return {"sizes_mib": [8], "repeats": 1}
    sizes = [int(s) for s in os.environ.get("BENCH_CID_MIB", "64,256").split(",") if s.strip()]
    repeats = int(os.environ.get("BENCH_CID_REPEATS", "5"))
    if not sizes or min(sizes) < 1 or repeats < 1:
        raise ValueError("BENCH_CID_MIB must list sizes >= 1 and BENCH_CID_REPEATS must be >= 1")
    return {"sizes_mib": sizes, "repeats": repeats}


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        left = size
        while left:
            n = min(left, 16 * MiB)
            out.write(os.urandom(n))
            left -= n


def sha256_file(path: Path) -> str:
    """The baseline: sha256 of the whole file, streamed through one reused buffer."""
    buf = bytearray(MiB)
    view = memoryview(buf)
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h.hexdigest()


def timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run(*, smoke: bool = False, workdir: Path | None = None) -> BenchResult:
    config = settings(smoke=smoke)
    rows: list[Row] = []
    details: dict[str, Any] = {**config, "smoke": smoke, "seconds": {}}
    with tempfile.TemporaryDirectory(prefix="bench-cid-", dir=workdir) as tmp:
        largest = None
        for size_mib in config["sizes_mib"]:
            path = Path(tmp) / f"{size_mib}MiB.bin"
            write_random(path, size_mib * MiB)
            sha256_file(path)  # warm the page cache
            largest = path
            best = {"sha256": float("inf"), **{name: float("inf") for name in PROFILES}}
            for _ in range(config["repeats"]):
                best["sha256"] = min(best["sha256"], timed(sha256_file, path))
                for name in PROFILES:
                    best[name] = min(best[name], timed(file_cid, path, name))
            details["seconds"][f"{size_mib}MiB"] = {k: round(v, 4) for k, v in best.items()}
            mb = size_mib * MiB / 1e6
            rows.append(Row(NAME, f"sha256_throughput/{size_mib}MiB", round(mb / best["sha256"]), "MB/s"))
            for name in PROFILES:
                ratio = best["sha256"] / best[name]
                rows.append(Row(NAME, f"speed_ratio/{name}/{size_mib}MiB", round(ratio, 3), "x sha256",
                                f">= {GOAL_RATIO:.2f}", ratio >= GOAL_RATIO))  # fmt: skip
                rows.append(Row(NAME, f"throughput/{name}/{size_mib}MiB", round(mb / best[name]), "MB/s"))
        assert largest is not None
        mb = largest.stat().st_size / 1e6
        for name in PROFILES:
            car = Path(tmp) / "out.car"
            seconds = timed(write_car, largest, car, name)
            car.unlink()
            rows.append(Row(NAME, f"car_throughput/{name}", round(mb / seconds), "MB/s"))
        for name in PROFILES:
            # In a new thread: importers keep one chunk buffer per thread, and a fresh one counts it.
            worker = threading.Thread(target=file_cid, args=(largest, name))
            tracemalloc.start()
            try:
                worker.start()
                worker.join()
                peak = tracemalloc.get_traced_memory()[1] / MiB
            finally:
                tracemalloc.stop()
            rows.append(Row(NAME, f"peak_memory/{name}", round(peak, 2), "MiB", f"< {GOAL_PEAK_MIB:.0f}",
                            peak < GOAL_PEAK_MIB))  # fmt: skip
    return BenchResult(rows, details)
