"""Verify benchmark: how fast `scrapy verify`'s checks (`hfscraper.verify.Verifier`) read an archive, against plain
sha256 of the same bytes.

The archive is generated as a crawl with files and IPFS on leaves it: `BENCH_VERIFY_ENTITIES` (default 48) model
folders, each with one large file of random bytes (2, 4, 8 or 16 MiB in turn, SHA-256 recorded as for an LFS file),
three small ones (4 to 64 KiB, one with only its git blob SHA-1 recorded as for a file kept in git), `metadata.json`,
`ipfs_cid.txt` and a CAR; the state file holds what the pipelines record (files, the folders' CIDs with the default
profile, the pins). About 370 MiB in all, in `/dev/shm` when it has room (else the system's temp folder;
`BENCH_VERIFY_TMP` names another): the page cache is warm, so both sides are bound by hashing, not the disk.

Timed, best of `BENCH_VERIFY_REPEATS` (default 3) interleaved rounds:
- the baseline: `hashlib.sha256` of every file in the entity folders, one after the other, read with `readinto`
  into one reused 1 MiB buffer, on one core;
- the verifier with its default thread pool (`hfscraper.verify.WORKERS`), and with one thread. It reads each file
  once and computes from it both the file's SHA-256 (or blob SHA-1) and its UnixFS CID, then the folder's CID,
  and reads each CAR's header: twice the hashing of the baseline per byte.

Rows:
- `speed_ratio`: baseline time / verifier time (default pool). Goal: at least 0.45, i.e. at least the rate one core
  gets for its two hashes per byte, whatever the pool adds (on a machine with two free cores about 0.9).
- `speed_ratio_one_thread` (informative), `throughput`, `throughput_one_thread` and `sha256_throughput` in MB/s
  (informative).
- `problems`: what the verifier reported on the generated (clean) archive. Goal: 0.

`run(smoke=True)` uses 4 entities and one round: it only checks that the benchmark works.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import BenchResult, Row

NAME = "verify"
GOAL_RATIO = 0.45
MiB = 1024 * 1024
LARGE_MIB = (2, 4, 8, 16)
SMALL_KIB = (4, 17, 64)
SHM = "/dev/shm"
WHEN = "2026-11-26T00:00:00.000Z"


def settings(*, smoke: bool) -> dict[str, Any]:
    if smoke:
        return {"entities": 4, "repeats": 1}
    entities = int(os.environ.get("BENCH_VERIFY_ENTITIES", "48"))
    repeats = int(os.environ.get("BENCH_VERIFY_REPEATS", "3"))
    if entities < 1 or repeats < 1:
        raise ValueError("BENCH_VERIFY_ENTITIES and BENCH_VERIFY_REPEATS must be >= 1")
    return {"entities": entities, "repeats": repeats}


def generate(root: Path, entities: int) -> tuple[Path, Path, list[Path]]:
    """Write the archive under *root*: (output folder, state file, every file in the entity folders)."""
    from hfscraper.file_records import record_files
    from hfscraper.hub import entity_folder_name
    from hfscraper.ipfs import DEFAULT_PROFILE, directory_cid, file_cid, write_car
    from hfscraper.ipfs.pins import FOLDER_PATH, CidRecord, PinRow, record_cids, record_pin
    from hfscraper.repofiles import git_blob_sha1
    from hfscraper.state import EntityRecord, StateStore, state_file_path
    from hfscraper.verify import CID_FILE, NOT_ADDRESSED

    output = root / "output"
    state_path = state_file_path(root / "state", output)
    store = StateStore(state_path)
    files: list[Path] = []
    try:
        crawl = store.create_crawl(
            spider="models",
            repo_type="model",
            listing_key="bench",
            scope_key="bench",
            listing={"sort": "createdAt"},
            mode="full",
            since=None,
            max_items=0,
            sweep=True,
        )
        records = []
        for i in range(entities):
            repo_id = f"bench-org/model-{i:04d}"
            folder = output / "models" / entity_folder_name(repo_id)
            folder.mkdir(parents=True)
            (folder / "metadata.json").write_text(json.dumps({"id": repo_id, "sha": f"{i:040x}"}, indent=2) + "\n")
            results = []
            large = os.urandom(LARGE_MIB[i % len(LARGE_MIB)] * MiB)
            (folder / "model.safetensors").write_bytes(large)
            results.append({"path": "model.safetensors", "status": "downloaded", "size": len(large),
                            "sha256": hashlib.sha256(large).hexdigest()})  # fmt: skip
            for k, kib in enumerate(SMALL_KIB):
                data = os.urandom(kib * 1024)
                name = f"sub/part-{k}.json" if k == 2 else f"config-{k}.json"
                (folder / name).parent.mkdir(exist_ok=True)
                (folder / name).write_bytes(data)
                entry: dict[str, Any] = {"path": name, "status": "downloaded", "size": len(data)}
                entry["blob_sha1" if k == 0 else "sha256"] = (
                    git_blob_sha1(data) if k == 0 else hashlib.sha256(data).hexdigest()
                )
                results.append(entry)
            record_files(store, "model", repo_id, results, WHEN)
            car = output / "car" / "models" / f"{folder.name}.car"
            car.parent.mkdir(parents=True, exist_ok=True)
            root_cid = write_car(folder, car, DEFAULT_PROFILE, NOT_ADDRESSED)
            assert root_cid == directory_cid(folder, DEFAULT_PROFILE, NOT_ADDRESSED)
            (folder / CID_FILE).write_text(f"{root_cid}\n", encoding="ascii")
            cids = [CidRecord(r["path"], file_cid(folder / r["path"]), r["size"]) for r in results]
            cids.append(CidRecord(FOLDER_PATH, root_cid, sum(r["size"] for r in results)))
            record_cids(store, "model", repo_id, DEFAULT_PROFILE.name, cids, WHEN)
            record_pin(store, PinRow("embedded", "model", repo_id, root_cid, DEFAULT_PROFILE.name, str(car), WHEN))
            records.append(EntityRecord("model", repo_id, f"{i:040x}", WHEN, "expand",
                                        ("stored", "files", "ipfs")))  # fmt: skip
            files += [folder / "metadata.json", *(folder / r["path"] for r in results)]
        store.record_entities(crawl.crawl_id, records)
    finally:
        store.close()
    return output, state_path, files


def sha256_files(paths: list[Path]) -> int:
    """The baseline: sha256 of each file, streamed through one reused buffer; the bytes read."""
    view = memoryview(bytearray(MiB))
    total = 0
    for path in paths:
        h = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(view):
                h.update(view[:n])
                total += n
    return total


def verify_archive(output: Path, state_path: Path, workers: int) -> tuple[int, int, int]:
    """One verifier run: (problems, files, bytes read)."""
    from hfscraper.state import StateStore
    from hfscraper.verify import Verifier

    store = StateStore(state_path, create=False)
    try:
        verifier = Verifier(output, store, ["model"], workers=workers)
        problems = list(verifier)
    finally:
        store.close()
    for problem in problems[:5]:
        print(f"bench verify: {problem}")
    return len(problems), verifier.summary.files, verifier.summary.bytes


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def scratch(need: int) -> str | None:
    if os.environ.get("BENCH_VERIFY_TMP"):
        return os.environ["BENCH_VERIFY_TMP"]
    try:
        st = os.statvfs(SHM)
    except OSError:
        return None
    return SHM if st.f_bavail * st.f_frsize > 2 * need + 2**30 else None


def run(*, smoke: bool = False) -> BenchResult:
    from hfscraper.verify import WORKERS

    config = settings(smoke=smoke)
    n = config["entities"]
    need = sum(LARGE_MIB[i % len(LARGE_MIB)] * MiB for i in range(n))
    where = scratch(need)
    tmp = tempfile.mkdtemp(prefix="hfscraper-bench-verify-", dir=where)
    try:
        started = time.monotonic()
        output, state_path, files = generate(Path(tmp), n)
        generated = time.monotonic() - started
        sha256_files(files)  # warm the page cache
        best = {"sha256": float("inf"), "pool": float("inf"), "one": float("inf")}
        counts: dict[str, Any] = {}
        for _ in range(config["repeats"]):
            seconds, total = timed(sha256_files, files)
            best["sha256"] = min(best["sha256"], seconds)
            for key, workers in (("pool", WORKERS), ("one", 1)):
                seconds, counts[key] = timed(verify_archive, output, state_path, workers)
                best[key] = min(best[key], seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mb = total / 1e6
    problems = max(counts["pool"][0], counts["one"][0])
    ratio, ratio_one = best["sha256"] / best["pool"], best["sha256"] / best["one"]
    details = {
        **config, "smoke": smoke, "workers": WORKERS, "bytes": total, "files": len(files),
        "verified_files": counts["pool"][1], "verified_bytes": counts["pool"][2],
        "scratch": where or tempfile.gettempdir(),
        "generate_seconds": round(generated, 2), "seconds": {k: round(v, 4) for k, v in best.items()},
    }  # fmt: skip
    rows = [
        Row(NAME, "speed_ratio", round(ratio, 3), f"x sha256 ({WORKERS} threads)", f">= {GOAL_RATIO:.2f}",
            ratio >= GOAL_RATIO),
        Row(NAME, "speed_ratio_one_thread", round(ratio_one, 3), "x sha256"),
        Row(NAME, "throughput", round(mb / best["pool"]), "MB/s"),
        Row(NAME, "throughput_one_thread", round(mb / best["one"]), "MB/s"),
        Row(NAME, "sha256_throughput", round(mb / best["sha256"]), "MB/s"),
        Row(NAME, "problems", problems, "count", "== 0", problems == 0),
    ]  # fmt: skip
    return BenchResult(rows, details)


if __name__ == "__main__":
    import sys

    for row in run(smoke="--smoke" in sys.argv).rows:
        print(f"{row.metric}: {row.value} {row.unit}")
