"""Scale benchmark: a whole-Hub-sized crawl (issue 14) against the lazy replica, and what it leaves on disk.

The Hub: `python -m hfscraper.replica --lazy` (hfscraper/replica/lazy.py: constant memory at any size, listings
computed from the cursor) with `BENCH_SCALE_N` entities (default 1,500,000), split 4:1:1 into models, datasets and
spaces (1,000,000 + 250,000 + 250,000). The crawl: `scrapy crawlall` with the product's defaults minus files and
previews (`-s HFSCRAPER_FILES_ENABLED=false -s HFSCRAPER_PREVIEWS_ENABLED=false`: CIDs, `ipfs_cid.txt`, CARs and
provenance on; `BENCH_CRAWL_SETTINGS="NAME=VALUE ..."` adds settings, as for bench/crawl.py).

Steps, each measured process started through bench/crawl.py's launcher (`measure`: wall time, CPU, `ru_maxrss` of
the process and its children via `wait4`, and each one's own peak sampled from /proc):
1. `small`: a crawl of N/10 (its own lazy replica, same seed), for the memory ratio.
2. `full`: the crawl of N into an empty output folder.
3. The disk left by it (before anything else runs): every inode under the output folder and the state folder.
4. `baseline`: huggingface_hub's `list_models(full=True)`, `list_datasets(full=True)` and `list_spaces(full=True)`,
   each item dumped as a JSON line into one file, on the same replica (what a user would write instead).
5. `export`: `scrapy export` of the full crawl (Parquet files, their CARs, the data card) into another folder.
6. `incremental`: 1% of each type changed on the replica (`POST /_replica/mutate {"changed_fraction": 0.01}`: a
   new sha, a lastModified newer than every other), then `scrapy crawlall -a since=auto` into the same folders.

Rows:
- `crawl/entities_per_s`: entities stored (all three types) over the full crawl's wall time (interpreter and
  Scrapy start-up and the provenance rebuild at the end included). Goal >= 3,500.
- `crawl/<type>/entities_per_s`: that type's items over the seconds from the crawl's first log line to the line
  saying its listing is complete (the three spiders run at once in one process, so each is below the overall
  rate); `crawl/entities`, `crawl/cpu_s`.
- `baseline/entities_per_s`; `ratio/hfscraper_vs_baseline`: the two rates. Goal >= 0.75.
- `memory/peak_rss_n<N>` and `memory/peak_rss_n<N/10>`: `ru_maxrss` of the crawl, the largest of the process and
  every child (the provenance rebuild), MiB. Goal <= 300 MiB at N. `memory/peak_rss_ratio`: N over N/10. Goal
  <= 1.10. `memory/own_peak_rss_n<N>` and `memory/children_peak_rss_n<N>`: the crawl process alone and its
  largest child, sampled (informative).
- `disk/inodes_per_entity`: files and folders under the output and state folders over N (3 decimals; the
  handful that do not grow with N round away). Goal <= 3.
- `disk/bytes_ratio`: apparent bytes (file sizes; folders count as inodes, not bytes) of everything under the
  output and state folders per entity, over `metadata.json`'s own apparent bytes per entity. Goal <= 1.3. The goal
  uses apparent bytes because allocated blocks are floored by the file system (4 KiB per small file or folder on
  ext4: three inodes cost 12 KiB whatever their content); `disk/allocated_ratio` gives the allocated blocks
  (`st_blocks`, folders included) over the same denominator (informative). `disk/metadata_json_bytes_per_entity`
  is the denominator.
- `disk/<part>/inodes_per_entity`, `disk/<part>/bytes_per_entity` (apparent), `disk/<part>/allocated_per_entity`
  for each part: `entities` (the models/, datasets/ and spaces/ folders), every other top-level folder of the
  output under its own name (`car`, `provenance`, ...: so a new layout is measured as it is), and `state`.
- `provenance/rebuild_time`: the rebuild's seconds at the end of the full crawl (its log line "Provenance: ...
  nodes ... (S s)"; one decimal); `provenance/rebuild_peak_rss`: the crawl's largest child, sampled, MiB.
- `export/time`, `export/peak_rss`: `scrapy export`'s wall time and `ru_maxrss` (MiB).
- `incremental/time`: the incremental crawl's wall time. Goal <= 120 s at N = 1,500,000 (informative below);
  `incremental/requests`: Hub requests it made; `incremental/changed`: entities it stored anew.
- `replica/peak_rss_n<N>`, `replica/peak_rss_n<N/10>`: the lazy replica's own peak RSS (VmHWM) right after the
  crawlall of N or N/10 (the same work: flat in N; its peak at the end of the run is in the details);
  `replica/serving_entities_per_s`: models per second of 1,000-item listing pages with the crawl's `expand`, one
  client (this process, parsing the JSON too), sequential; `replica/serving_entities_per_cpu_s`: the same models per
  CPU second of the replica (steadier than wall time on a shared machine); `replica/crawl_cpu_s`: the replica's CPU
  seconds during the full crawl (it shares the machine with the crawl).

Everything goes to a temporary folder in the system's temp folder (`BENCH_SCALE_TMP` names another), removed at the
end. On ext4 without a journal (as on some VM disks: `/sys/fs/ext4/<dev>/journal_task` says `<none>`), creating
files within minutes of deleting many others is several times slower (the allocator skips recently freed inodes):
nothing is deleted before the last crawl, and a run right after another one's cleanup measures that, not the crawl.
`run(smoke=True)` crawls 1,200 entities (120 for the small run): it only checks that the benchmark works.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import BenchResult, Row
from bench.crawl import _loadavg, child_env, extra_settings, measure, request_summary, scrapy_stats

NAME = "scale"
REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = 14
DEFAULT_N = 1_500_000
SMOKE_N = 1200
GOAL_RATE = 3500
GOAL_BASELINE_RATIO = 0.75
GOAL_RSS_MIB = 300
GOAL_RSS_RATIO = 1.10
GOAL_INODES = 3
GOAL_BYTES_RATIO = 1.3
GOAL_INCREMENTAL_S = 120
INCREMENTAL_GOAL_N = 1_500_000
CHANGED_FRACTION = 0.01
CRAWL_SETTINGS = {"HFSCRAPER_FILES_ENABLED": "false", "HFSCRAPER_PREVIEWS_ENABLED": "false"}
ENTITY_FOLDERS = ("models", "datasets", "spaces")
TYPES = ("model", "dataset", "space")
SERVING_PAGES = 5


def split(total: int) -> dict[str, int]:
    """`total` entities split 4:1:1 into models, datasets and spaces."""
    models = total * 4 // 6
    datasets = total // 6
    return {"models": models, "datasets": datasets, "spaces": total - models - datasets}


@dataclass
class Folders:
    root: Path

    @property
    def output(self) -> Path:
        return self.root / "out"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def export(self) -> Path:
        return self.root / "export"


def scrapy_base() -> list[str]:
    scrapy = Path(sys.executable).with_name("scrapy")
    return [str(scrapy)] if scrapy.exists() else [sys.executable, "-m", "scrapy"]


def crawlall_command(folders: Folders, *args: str) -> list[str]:
    command = [*scrapy_base(), "crawlall", "-s", "LOG_LEVEL=INFO"]
    base = {"HFSCRAPER_OUTPUT_DIR": str(folders.output), "HFSCRAPER_STATE_DIR": str(folders.state)}
    for name, value in {**base, **CRAWL_SETTINGS, **extra_settings()}.items():
        command += ["-s", f"{name}={value}"]
    for arg in args:
        command += ["-a", arg]
    return command


def export_command(folders: Folders) -> list[str]:
    command = [*scrapy_base(), "export", "-s", "LOG_LEVEL=INFO"]
    for name, value in (
        ("HFSCRAPER_OUTPUT_DIR", folders.output),
        ("HFSCRAPER_STATE_DIR", folders.state),
        ("HFSCRAPER_EXPORT_DIR", folders.export),
    ):
        command += ["-s", f"{name}={value}"]
    return command


def all_stats(log: str) -> list[dict[str, Any]]:
    """Every stats dump of a `crawlall` log (one per spider; they may come in any order)."""
    starts = [m.start() for m in re.finditer(r"\[scrapy\.statscollectors\] INFO: Dumping Scrapy stats:", log)]
    return [scrapy_stats(log[start:]) for start in starts]


def per_type(log: str) -> dict[str, dict[str, Any]]:
    """Each type's outcome line (`hfscraper: models: complete (finish reason finished, 2000 items)`) and the seconds
    from the log's first line to its listing's "Crawl #K of the <type> listing is complete" line (one-second
    resolution; the stats dumps do not say which spider they belong to)."""
    first = re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ", log, re.M)
    out: dict[str, dict[str, Any]] = {}
    for plural, status, reason, items in re.findall(
        r"^hfscraper: (models|datasets|spaces): (\S+) \(finish reason (\S+), (\d+) items\)", log, re.M
    ):
        repo_type = plural[:-1]
        done = re.search(rf"^(\S+ \S+) \[hfscraper\.extensions\.checkpoint\] INFO: Crawl #\d+ of the {repo_type} "
                         r"listing is complete", log, re.M)  # fmt: skip
        elapsed = _seconds_between(first.group(1), done.group(1)) if first and done else None
        out[repo_type] = {
            "items": int(items),
            "status": status,
            "finish_reason": reason,
            "elapsed_s": elapsed,
            "entities_per_s": round(int(items) / elapsed, 1) if elapsed else None,
        }
    return out


def _seconds_between(start: str, end: str) -> float:
    fmt = "%Y-%m-%d %H:%M:%S"
    return (datetime.datetime.strptime(end, fmt) - datetime.datetime.strptime(start, fmt)).total_seconds()


def crawl_run(replica: Any, folders: Folders, timeout: float, *args: str) -> dict[str, Any]:
    """One `crawlall` (with `-a` *args*) into *folders*; what was measured, and the replica's side."""
    folders.root.mkdir(parents=True, exist_ok=True)
    env = child_env(replica, folders.root)
    mark = replica.mark()
    cpu_before = process_cpu_s(replica.process.pid)
    measured = measure(crawlall_command(folders, *args), cwd=folders.root, env=env, timeout=timeout)
    cpu_after = process_cpu_s(replica.process.pid)
    entries = [e for e in replica.requests(since=mark) if e["origin"] == "hub"]
    dumps = all_stats(measured.stderr)
    by_type = per_type(measured.stderr)
    # The rebuild runs after the last spider's stats are dumped: its log line says how long it took.
    rebuild = re.findall(r"Provenance: \d+ nodes \(\d+ stubs\), \d+ edges in .* \(([\d.]+)s\)$", measured.stderr, re.M)
    result: dict[str, Any] = {
        "returncode": measured.returncode,
        "wall_s": round(measured.wall_s, 3),
        "cpu_s": round(measured.cpu_s, 3),
        "peak_rss_mib": round(measured.peak_rss_mib, 1),
        "own_peak_rss_mib_sampled": measured.own_peak_rss_mib,
        "children_peak_rss_mib_sampled": measured.children_peak_rss_mib,
        "by_type": by_type,
        "entities": sum(int(s.get("item_scraped_count", 0)) for s in dumps),
        "stored": sum(int(s.get("deltafetch/stored", 0)) for s in dumps),
        "provenance_rebuild_s": float(rebuild[-1]) if rebuild else None,
        "requests": request_summary(entries),
        "replica_cpu_s": round(cpu_after - cpu_before, 2),
    }
    complete = len(by_type) == 3 and all(t["status"] == "complete" for t in by_type.values())
    if measured.returncode != 0 or not complete:
        raise RuntimeError(
            f"scale benchmark crawl failed (exit code {measured.returncode}):\n{measured.stderr[-4000:]}"
        )
    result["entities_per_s"] = round(result["entities"] / measured.wall_s, 1) if measured.wall_s > 0 else 0.0
    return result


def export_run(replica: Any, folders: Folders, timeout: float) -> dict[str, Any]:
    measured = measure(export_command(folders), cwd=folders.root, env=child_env(replica, folders.root), timeout=timeout)
    if measured.returncode != 0:
        raise RuntimeError(
            f"scale benchmark export failed (exit code {measured.returncode}):\n{measured.stderr[-4000:]}"
        )
    return {
        "wall_s": round(measured.wall_s, 3),
        "cpu_s": round(measured.cpu_s, 3),
        "peak_rss_mib": round(measured.peak_rss_mib, 1),
    }


def baseline_run(replica: Any, folder: Path, timeout: float) -> dict[str, Any]:
    folder.mkdir(parents=True)
    command = [sys.executable, "-m", "bench.scale", "--baseline", str(folder)]
    mark = replica.mark()
    measured = measure(command, cwd=REPO_ROOT, env=child_env(replica, folder), timeout=timeout)
    try:
        report = json.loads(measured.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        report = {}
    if measured.returncode != 0 or not report:
        raise RuntimeError(
            f"scale benchmark baseline failed (exit code {measured.returncode}):\n{measured.stderr[-4000:]}"
        )
    entities = sum(report["counts"].values())
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "wall_s": round(measured.wall_s, 3),
        "cpu_s": round(measured.cpu_s, 3),
        "peak_rss_mib": round(measured.peak_rss_mib, 1),
        "counts": report["counts"],
        "entities": entities,
        "inner_seconds": report["seconds"],
        "bytes": report["bytes"],
        "requests": request_summary([e for e in replica.requests(since=mark) if e["origin"] == "hub"]),
        "entities_per_s": round(entities / measured.wall_s, 1) if measured.wall_s > 0 else 0.0,
    }


def baseline(folder: Path) -> dict[str, Any]:
    """What a user of huggingface_hub would write to keep every entity's metadata: one JSON line each."""
    from dataclasses import asdict

    from huggingface_hub import HfApi

    started = time.monotonic()
    api = HfApi()
    counts = {}
    path = folder / "entities.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for name, listing in (
            ("models", api.list_models),
            ("datasets", api.list_datasets),
            ("spaces", api.list_spaces),
        ):
            n = 0
            for info in listing(full=True):
                out.write(json.dumps(asdict(info), default=str) + "\n")
                n += 1
            counts[name] = n
    return {"counts": counts, "seconds": round(time.monotonic() - started, 3), "bytes": path.stat().st_size}


# ------------------------------------------------------------------------------------------------------ disk
def tree_usage(root: Path) -> dict[str, int]:
    """Inodes (files and folders, *root* excluded), apparent bytes of files, allocated bytes of both, and the count
    and apparent bytes of files named metadata.json, under *root*."""
    usage = {"inodes": 0, "files": 0, "bytes": 0, "allocated": 0, "metadata_json": 0, "metadata_json_bytes": 0}
    stack = [str(root)] if root.is_dir() else []
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                usage["inodes"] += 1
                usage["allocated"] += info.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                usage["files"] += 1
                usage["bytes"] += info.st_size
                if entry.name == "metadata.json":
                    usage["metadata_json"] += 1
                    usage["metadata_json_bytes"] += info.st_size
    return usage


def disk_usage(folders: Folders) -> dict[str, dict[str, int]]:
    """`tree_usage` per part: `entities` (the three entity folders), each other top-level folder of the output
    under its own name, `other` (top-level files), and `state`."""
    parts: dict[str, dict[str, int]] = {}

    def add(part: str, usage: dict[str, int]) -> None:
        total = parts.setdefault(part, dict.fromkeys(usage, 0))
        for key, value in usage.items():
            total[key] += value

    for entry in sorted(folders.output.iterdir()) if folders.output.is_dir() else ():
        info = entry.stat(follow_symlinks=False)
        own = {"inodes": 1, "files": 0, "bytes": 0, "allocated": info.st_blocks * 512, "metadata_json": 0,
               "metadata_json_bytes": 0}  # fmt: skip
        if entry.is_dir():
            add("entities" if entry.name in ENTITY_FOLDERS else entry.name, own)
            add("entities" if entry.name in ENTITY_FOLDERS else entry.name, tree_usage(entry))
        else:
            add("other", {**own, "files": 1, "bytes": info.st_size})
    add("state", tree_usage(folders.state))
    return parts


# ------------------------------------------------------------------------------------------------------ replica
def process_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_peak_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def serving_rate(replica: Any, pages: int) -> dict[str, Any]:
    """Models per second of 1,000-item listing pages with the crawl's `expand`, one client following the cursor."""
    from hfscraper.constants import DEFAULT_EXPAND
    from tests.support.http import fetch

    url = f"{replica.url}/api/models?sort=createdAt&limit=1000&" + "&".join(
        f"expand={e}" for e in DEFAULT_EXPAND["model"]
    )
    served = 0
    cpu = process_cpu_s(replica.process.pid)
    started = time.monotonic()
    for _ in range(pages):
        got = fetch(url, timeout=120)
        if got.status != 200:
            raise RuntimeError(f"replica answered {got.status} to {url}")
        served += len(got.json())
        link = got.header("Link")
        if not link:
            break
        url = link[1 : link.index(">")]
    seconds = time.monotonic() - started
    cpu = process_cpu_s(replica.process.pid) - cpu
    return {
        "entities": served,
        "seconds": round(seconds, 3),
        "entities_per_s": round(served / seconds, 1),
        "replica_cpu_s": round(cpu, 2),
        "entities_per_cpu_s": round(served / cpu, 1) if cpu > 0 else None,
    }


# ------------------------------------------------------------------------------------------------------ run
def config(*, smoke: bool) -> dict[str, Any]:
    total = SMOKE_N if smoke else int(os.environ.get("BENCH_SCALE_N", str(DEFAULT_N)))
    small = max(6, total // 10)
    # A floor of 50 entities/s: today's crawl does about 200/s, so a full-size run takes about two hours.
    return {
        "n": total,
        "small_n": small,
        "timeout": max(1800.0, total / 50),
        "serving_pages": 1 if smoke else SERVING_PAGES,
    }


def run(*, smoke: bool = False) -> BenchResult:
    from tests.support.replica import run_replica

    cfg = config(smoke=smoke)
    n, small_n, timeout = cfg["n"], cfg["small_n"], cfg["timeout"]
    started = time.monotonic()
    load_before = _loadavg()
    details: dict[str, Any] = {"smoke": smoke, "n": n, "small_n": small_n, "split": split(n), "seed": SEED,
                               "settings": {**CRAWL_SETTINGS, **extra_settings()}}  # fmt: skip
    tmp_root = os.environ.get("BENCH_SCALE_TMP") or None
    with tempfile.TemporaryDirectory(prefix="hfscraper-bench-scale-", dir=tmp_root) as tmp:
        root = Path(tmp)
        details["tmp"] = tmp_root or tempfile.gettempdir()
        lazy = ["--lazy"]
        with run_replica(
            tmp_dir=root / "replica-small", seed=SEED, extra_args=lazy, truth=False, **split(small_n)
        ) as replica:
            print(f"bench scale: crawlall of {small_n} entities (memory baseline)", file=sys.stderr, flush=True)
            details["small"] = crawl_run(replica, Folders(root / "small"), timeout)
            details["replica_small_peak_rss_mib"] = process_peak_mib(replica.process.pid)
            _progress("small", details["small"])
        # The small run's tree stays until the end: deleting it here would slow the full crawl's file creation on
        # ext4 without a journal, which skips inodes freed in the last minutes (the kernel's recently_deleted()).
        with run_replica(tmp_dir=root / "replica", seed=SEED, extra_args=lazy, truth=False, **split(n)) as replica:
            print(f"bench scale: crawlall of {n} entities", file=sys.stderr, flush=True)
            folders = Folders(root / "full")
            details["full"] = crawl_run(replica, folders, timeout)
            # After the same work as the small replica's: one crawlall.
            details["replica_peak_rss_mib"] = process_peak_mib(replica.process.pid)
            _progress("full", details["full"])
            details["serving"] = serving_rate(replica, cfg["serving_pages"])
            t0 = time.monotonic()
            details["disk"] = disk_usage(folders)
            details["disk_walk_s"] = round(time.monotonic() - t0, 1)
            print("bench scale: huggingface_hub baseline", file=sys.stderr, flush=True)
            details["baseline"] = baseline_run(replica, root / "baseline", timeout)
            print("bench scale: scrapy export", file=sys.stderr, flush=True)
            details["export"] = export_run(replica, folders, timeout)
            answer = replica._call("POST", "/_replica/mutate", {"changed_fraction": CHANGED_FRACTION})
            details["changed"] = json.loads(answer)["changed"]
            print(f"bench scale: incremental crawlall after {details['changed']} changed", file=sys.stderr, flush=True)
            details["incremental"] = crawl_run(replica, folders, timeout, "since=auto")
            _progress("incremental", details["incremental"])
            details["replica_peak_rss_end_mib"] = process_peak_mib(replica.process.pid)
        cleanup = time.monotonic()
    details["cleanup_s"] = round(time.monotonic() - cleanup, 1)
    total = time.monotonic() - started
    details.update(run_time_s=round(total, 1), load_before=load_before, load_after=_loadavg())
    rows = build_rows(details)
    rows.append(Row(NAME, "run_time", round(total, 1), "s"))
    return BenchResult(rows, details)


def _progress(label: str, result: dict[str, Any]) -> None:
    print(
        f"bench scale:   {label}: {result['entities']} entities in {result['wall_s']:.1f}s "
        f"({result['entities_per_s']}/s), {result['requests']['total']} requests, {result['peak_rss_mib']} MiB "
        f"(own {result['own_peak_rss_mib_sampled']}, children {result['children_peak_rss_mib_sampled']})",
        file=sys.stderr,
        flush=True,
    )


def build_rows(d: dict[str, Any]) -> list[Row]:
    n, small_n = d["n"], d["small_n"]
    full, small, base = d["full"], d["small"], d["baseline"]
    rows = [
        Row(NAME, "crawl/entities_per_s", full["entities_per_s"], f"entities/s ({n}: 4:1:1)", f">= {GOAL_RATE:,}",
            full["entities_per_s"] >= GOAL_RATE),
        Row(NAME, "crawl/entities", full["entities"], "entities"),
        Row(NAME, "crawl/cpu_s", full["cpu_s"], "CPU s (crawl and children)"),
    ]  # fmt: skip
    for repo_type in TYPES:
        part = full["by_type"][repo_type]
        rows.append(Row(NAME, f"crawl/{repo_type}/entities_per_s", part["entities_per_s"],
                        f"{repo_type}s/s ({part['items']} in {part['elapsed_s']}s)"))  # fmt: skip
    ratio = full["entities_per_s"] / max(base["entities_per_s"], 1e-9)
    rows += [
        Row(NAME, "baseline/entities_per_s", base["entities_per_s"],
            "entities/s (huggingface_hub, full=True, JSON lines)"),
        Row(NAME, "ratio/hfscraper_vs_baseline", round(ratio, 3), "x", f">= {GOAL_BASELINE_RATIO}",
            ratio >= GOAL_BASELINE_RATIO),
    ]  # fmt: skip
    rss_ratio = full["peak_rss_mib"] / max(small["peak_rss_mib"], 1e-9)
    rows += [
        Row(NAME, f"memory/peak_rss_n{n}", full["peak_rss_mib"], "MiB (crawl and children)", f"<= {GOAL_RSS_MIB}",
            full["peak_rss_mib"] <= GOAL_RSS_MIB),
        Row(NAME, f"memory/peak_rss_n{small_n}", small["peak_rss_mib"], "MiB (crawl and children)"),
        Row(NAME, "memory/peak_rss_ratio", round(rss_ratio, 3), f"x (n{n} / n{small_n})", f"<= {GOAL_RSS_RATIO:.2f}",
            rss_ratio <= GOAL_RSS_RATIO),
        Row(NAME, f"memory/own_peak_rss_n{n}", full["own_peak_rss_mib_sampled"], "MiB (crawl process, sampled)"),
        Row(NAME, f"memory/children_peak_rss_n{n}", full["children_peak_rss_mib_sampled"],
            "MiB (largest child, sampled)"),
    ]  # fmt: skip
    parts = d["disk"]
    inodes = sum(p["inodes"] for p in parts.values())
    apparent = sum(p["bytes"] for p in parts.values())
    allocated = sum(p["allocated"] for p in parts.values())
    meta = parts.get("entities", {}).get("metadata_json_bytes", 0) / n
    rows += [
        # Judged as shown (3 decimals): the few files that do not grow with N (state, provenance, the type folders)
        # are no inode per entity.
        Row(NAME, "disk/inodes_per_entity", round(inodes / n, 3), f"inodes (output and state: {inodes} for {n})",
            f"<= {GOAL_INODES}", round(inodes / n, 3) <= GOAL_INODES),
        Row(NAME, "disk/metadata_json_bytes_per_entity", round(meta), "B (apparent)"),
        Row(NAME, "disk/bytes_ratio", round(apparent / n / max(meta, 1e-9), 3),
            f"x ({round(apparent / n)} apparent B per entity / metadata.json's)", f"<= {GOAL_BYTES_RATIO}",
            apparent / n / max(meta, 1e-9) <= GOAL_BYTES_RATIO),
        Row(NAME, "disk/allocated_ratio", round(allocated / n / max(meta, 1e-9), 3),
            f"x ({round(allocated / n)} allocated B per entity / metadata.json's apparent)"),
    ]  # fmt: skip
    for part, usage in parts.items():
        rows += [
            Row(NAME, f"disk/{part}/inodes_per_entity", round(usage["inodes"] / n, 3), "inodes"),
            Row(NAME, f"disk/{part}/bytes_per_entity", round(usage["bytes"] / n), "B (apparent)"),
            Row(NAME, f"disk/{part}/allocated_per_entity", round(usage["allocated"] / n), "B (allocated)"),
        ]
    inc = d["incremental"]
    inc_met = inc["wall_s"] <= GOAL_INCREMENTAL_S if n >= INCREMENTAL_GOAL_N else None
    rows += [
        Row(NAME, "provenance/rebuild_time", full["provenance_rebuild_s"], "s (at the end of the full crawl)"),
        Row(NAME, "provenance/rebuild_peak_rss", full["children_peak_rss_mib_sampled"], "MiB (sampled)"),
        Row(NAME, "export/time", d["export"]["wall_s"], "s (scrapy export)"),
        Row(NAME, "export/peak_rss", d["export"]["peak_rss_mib"], "MiB"),
        Row(NAME, "incremental/time", inc["wall_s"], f"s ({inc['stored']} changed of {n})",
            f"<= {GOAL_INCREMENTAL_S} (at {INCREMENTAL_GOAL_N:,})", inc_met),
        Row(NAME, "incremental/requests", inc["requests"]["total"], "Hub requests"),
        Row(NAME, "incremental/changed", inc["stored"], "entities stored anew"),
        Row(NAME, f"replica/peak_rss_n{n}", d["replica_peak_rss_mib"], "MiB (lazy replica, VmHWM)"),
        Row(NAME, f"replica/peak_rss_n{small_n}", d["replica_small_peak_rss_mib"], "MiB (lazy replica, VmHWM)"),
        Row(NAME, "replica/serving_entities_per_s", d["serving"]["entities_per_s"], "models/s (1,000-item pages)"),
        Row(NAME, "replica/serving_entities_per_cpu_s", d["serving"]["entities_per_cpu_s"],
            "models per replica CPU second (1,000-item pages)"),
        Row(NAME, "replica/crawl_cpu_s", full["replica_cpu_s"], "CPU s (replica, during the full crawl)"),
    ]  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--baseline", type=Path, help="run the huggingface_hub baseline in this folder")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.baseline is not None:
        sys.stdout.write(json.dumps(baseline(args.baseline)) + "\n")
        return 0
    result = run(smoke=args.smoke)
    for row in result.rows:
        sys.stdout.write(f"{row.metric}: {row.value} {row.unit}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
