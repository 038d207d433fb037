"""Crawl-throughput benchmark: hfscraper against the client a user would pick instead, on the same replica.

For each replica latency (0 and 50 ms per Hub response; one replica of `BENCH_N` models, default 20,000, per
latency, same seed, so the same Hub), five runs one after another, each a subprocess measured the same way:

- `hfscraper_meta`: `scrapy crawl models`, metadata only (files, previews and IPFS off; provenance on, as by
  default): one `metadata.json` per model.
- `hfscraper_files`: the same plus the files stage (`HFSCRAPER_FILES_MODELS=README.md,config.json`) and CIDs
  (IPFS on, embedded backend: each file's and folder's CID, `ipfs_cid.txt`, a CAR per model).
- `baseline_meta`: huggingface_hub 2.4.0, `HfApi().list_models(full=True)`, each `ModelInfo` written as a JSON
  line (a mirror has to keep it).
- `baseline_seq`: the same plus `hf_hub_download(repo_id, name, revision=sha)` of each of `README.md` and
  `config.json` that the model's `siblings` list, one after another.
- `baseline_pool8`: the same downloads through a `ThreadPoolExecutor(8)` (one task per file; listing in the main
  thread).

Both sides fetch the same files, at the listed commit: each of `README.md` and `config.json` that a model's
`siblings` list (on the 20,000-model replica 98% of models have a README and 75% a config: 1.72 files per model);
a gated, disabled or missing repo's file is skipped by both (hfscraper counts it under
`hfscraper/files/skipped/<reason>`, the baseline catches the 401/403/404). Both list newest first
(`sort=createdAt`), so a prefix is the same models on both sides. The baseline runs with progress bars off
(`HF_HUB_DISABLE_PROGRESS_BARS=1`) and telemetry off, its cache in a fresh `HF_HOME`; hfscraper with the
product's defaults (`BENCH_CRAWL_SETTINGS="NAME=VALUE ..."` adds `-s` settings, to try other defaults).

Runs whose full length would blow the time budget cover a prefix of the listing instead: the first K models
(`-a max_items=K` for hfscraper, a `break` for the baseline); the row's unit says so ("first 600 of 20000").
Defaults (`PREFIXES`): the files runs and the baselines with files cover a prefix, the metadata-only ones all N.
Override with `BENCH_CRAWL_PREFIX_<RUN>_<LATENCY>` (e.g. `BENCH_CRAWL_PREFIX_BASELINE_SEQ_50=200`).

Measured per run, the same way for both sides: each run is a subprocess started by a tiny launcher (not by this
big process: Linux counts the forking process's RSS into a child's `ru_maxrss`) that reaps it with `wait4`:
- wall time, start to exit (interpreter and Scrapy start-up included);
- CPU seconds: user + system of the process and every child it waited for (the crawl's provenance rebuild);
- peak RSS: `ru_maxrss`, the largest of the process and its children; polling `/proc/<pid>/status` (VmHWM) also
  tells the process's own peak from its children's (details `own_peak_rss_mib_sampled`,
  `children_peak_rss_mib_sampled`);
- requests: the replica's own request log (Hub and CDN origins) between the run's start and end, with counts by
  method, status and bucket in the details, and `span_s` (first request to last answer).

Rows (metric `lat<L>/<run>/<what>`):
- `.../entities_per_s`: models done over the process's wall time (interpreter and Scrapy start-up included).
- `.../requests`, `.../cpu_s`, `.../peak_rss` (MiB).
- `lat<L>/ratio/<hfscraper run>_vs_<baseline run>`: entities per second of the two.
Goals:
- `lat50/ratio/hfscraper_files_vs_baseline_seq` >= 5 and `lat50/ratio/hfscraper_files_vs_baseline_pool8` >= 1.5
  (the same files on both sides).
- `lat0/hfscraper_meta/entities_per_s` >= 1,000.
- `memory/peak_rss_ratio`: peak RSS of a metadata-only crawl of `BENCH_CRAWL_MEM_LARGE` (100,000) models over that
  of `BENCH_CRAWL_MEM_SMALL` (10,000), at latency 0, each on its own replica: within 10% (<= 1.10).
  `memory/own_peak_rss_ratio` and `memory/children_peak_rss_ratio` (informative) split it: the crawler process
  alone, and its largest child (the provenance graph's rebuild at the end of the crawl).

The throughput runs' output folders go to the system's temp folder (`BENCH_CRAWL_TMP` names another), on disk as a
user's would; the memory runs' to /dev/shm when it has room (`BENCH_CRAWL_MEM_TMP` names another; see `_shm_dir`).

`run(smoke=True)` runs every step at latency 0 on a few hundred models: it only checks that the benchmark works.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import BenchResult, Row

NAME = "crawl"
REPO_ROOT = Path(__file__).resolve().parent.parent
FILES = ("README.md", "config.json")
LATENCIES = (0, 50)
RUNS = ("hfscraper_meta", "hfscraper_files", "baseline_meta", "baseline_seq", "baseline_pool8")
POOL_THREADS = 8
GOAL_SEQ = 5.0
GOAL_POOL = 1.5
GOAL_META_RATE = 1000
GOAL_RSS_RATIO = 1.10
SEED = 7
PROXY_VARS = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})
#: Default prefixes (first K models) of the runs that would take too long over all N; the others cover all N.
PREFIXES: dict[tuple[str, int], int] = {
    ("hfscraper_files", 0): 3000,
    ("baseline_seq", 0): 1000,
    ("baseline_pool8", 0): 2000,
    ("hfscraper_files", 50): 600,
    ("baseline_seq", 50): 80,
    ("baseline_pool8", 50): 500,
}
SMOKE_PREFIXES: dict[tuple[str, int], int] = {("baseline_seq", 0): 60, ("baseline_pool8", 0): 100}
METADATA_ONLY = {
    "HFSCRAPER_FILES_ENABLED": "false",
    "HFSCRAPER_PREVIEWS_ENABLED": "false",
    "HFSCRAPER_IPFS_ENABLED": "false",
}
WITH_FILES = {
    "HFSCRAPER_FILES_ENABLED": "true",
    "HFSCRAPER_FILES_MODELS": ",".join(FILES),
    "HFSCRAPER_PREVIEWS_ENABLED": "false",
    "HFSCRAPER_IPFS_ENABLED": "true",
}


@dataclass
class Measured:
    """One finished subprocess: its exit code, wall time, CPU seconds and peak RSS (with its children)."""

    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    stdout: str
    stderr: str
    #: Sampled from /proc while it ran: the measured process's own peak RSS (MiB) and the largest of its children's.
    own_peak_rss_mib: float | None = None
    children_peak_rss_mib: float | None = None


# Linux counts the RSS of the process that forks into the child's ru_maxrss (exec keeps the old memory's high-water
# mark), so a measured process is started by this tiny launcher, not by the benchmark's big process: the launcher
# reaps it with wait4 (its own CPU and peak RSS plus those of every child it waited for) and writes them down.
_LAUNCHER = """
import json, os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"status": status, "cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss}, out)
"""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found


def _hwm_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


class TreeSampler(threading.Thread):
    """Polls the launcher's process tree for each process's peak RSS (VmHWM), to tell the measured process's own
    peak from its children's (wait4 gives only the largest of all). A child's last growth before it exits can be
    missed by up to one interval; the wait4 figure is the authoritative one."""

    def __init__(self, launcher_pid: int, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.launcher_pid, self.interval = launcher_pid, interval
        self.own: float | None = None
        self.children: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for main in _children(self.launcher_pid):
                self.own = max(self.own or 0.0, _hwm_mib(main) or 0.0)
                stack = _children(main)
                while stack:
                    pid = stack.pop()
                    self.children = max(self.children or 0.0, _hwm_mib(pid) or 0.0)
                    stack += _children(pid)
            self.done.wait(self.interval)


def measure(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> Measured:
    """Run *command* under the launcher; its wall time, exit code, CPU seconds and peak RSS (with its children)."""
    with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        usage_path, out_path, err_path = Path(tmp, "usage.json"), Path(tmp, "stdout"), Path(tmp, "stderr")
        launcher = [sys.executable, "-S", "-c", _LAUNCHER, str(usage_path), *command]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            started = time.monotonic()
            # Own session: a timeout kills the whole group (scrapy's helper processes too).
            proc = subprocess.Popen(
                launcher, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
            )
            sampler = TreeSampler(proc.pid)
            sampler.start()
            try:
                proc.wait(timeout=timeout)
            except BaseException:  # timed out or interrupted: leave no crawl running behind
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise
            finally:
                sampler.done.set()
            wall = time.monotonic() - started
            sampler.join()
        stdout = out_path.read_text(encoding="utf-8", errors="replace")
        stderr = err_path.read_text(encoding="utf-8", errors="replace")
        if not usage_path.exists():
            raise RuntimeError(f"{command[:3]} left no resource usage (launcher exit code {proc.returncode})")
        usage = json.loads(usage_path.read_text(encoding="utf-8"))
        return Measured(
            returncode=os.waitstatus_to_exitcode(usage["status"]),
            wall_s=wall,
            cpu_s=usage["cpu_s"],
            peak_rss_mib=usage["maxrss_kib"] / 1024,  # KiB on Linux
            stdout=stdout,
            stderr=stderr,
            own_peak_rss_mib=None if sampler.own is None else round(sampler.own, 1),
            children_peak_rss_mib=None if sampler.children is None else round(sampler.children, 1),
        )


def child_env(replica: Any, home: Path) -> dict[str, str]:
    """The environment of both sides: the replica as the Hub, nothing from the developer's HF or proxy setup."""
    drop = ("HF_", "HFSCRAPER_", "HUGGINGFACE_")
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith(drop) or k == "HFSCRAPER_IN_NETNS") and k.lower() not in PROXY_VARS
    }
    env.update(
        {
            "HF_ENDPOINT": replica.url,
            "HF_HOME": str(home / "hf-home"),
            "HF_TOKEN": "",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HFSCRAPER_DATASETS_SERVER": replica.datasets_server_url,
            "PYTHONPATH": str(REPO_ROOT),
            # The crawl runs outside the project folder: name the settings module instead of finding scrapy.cfg.
            "SCRAPY_SETTINGS_MODULE": "hfscraper.settings",
        }
    )
    return env


def scrapy_command(folder: Path, settings: dict[str, str], prefix: int | None) -> list[str]:
    scrapy = Path(sys.executable).with_name("scrapy")
    command = [str(scrapy)] if scrapy.exists() else [sys.executable, "-m", "scrapy"]
    command += ["crawl", "models", "-s", "LOG_LEVEL=INFO"]
    base = {"HFSCRAPER_OUTPUT_DIR": str(folder / "out"), "HFSCRAPER_STATE_DIR": str(folder / "state")}
    for name, value in {**base, **settings, **extra_settings()}.items():
        command += ["-s", f"{name}={value}"]
    if prefix is not None:
        command += ["-a", f"max_items={prefix}"]
    return command


def extra_settings() -> dict[str, str]:
    """`BENCH_CRAWL_SETTINGS="NAME=VALUE NAME=VALUE"`: Scrapy settings added to every hfscraper run (to try
    other defaults, e.g. concurrency); recorded in the details. Empty by default: the product's defaults run."""
    pairs = (item.partition("=") for item in os.environ.get("BENCH_CRAWL_SETTINGS", "").split())
    return {name: value for name, _, value in pairs if name}


def baseline_command(folder: Path, *, threads: int, files: bool, prefix: int | None) -> list[str]:
    command = [sys.executable, "-m", "bench.crawl", "--baseline", str(folder), "--threads", str(threads)]
    if files:
        command += ["--files", ",".join(FILES)]
    if prefix is not None:
        command += ["--limit", str(prefix)]
    return command


def scrapy_stats(log: str) -> dict[str, Any]:
    from tests.support.crawl import parse_stats

    return parse_stats(log)


def request_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of the replica's request log entries of one run."""
    # From the first request's arrival to the last answer: the crawl's steady part, without start-up and exit.
    span = max(e["time"] for e in entries) - min(e["time"] - e["ms"] / 1000 for e in entries) if entries else 0.0
    return {
        "total": len(entries),
        "span_s": round(span, 3),
        "by_origin": dict(Counter(e["origin"] for e in entries)),
        "by_method": dict(Counter(e["method"] for e in entries)),
        "by_status": {str(k): v for k, v in sorted(Counter(e["status"] for e in entries).items())},
        "by_bucket": {str(k): v for k, v in Counter(e["bucket"] for e in entries).items()},
    }


def one_run(replica: Any, folder: Path, run_name: str, prefix: int | None, timeout: float) -> dict[str, Any]:
    """Run one of RUNS against *replica* in its own fresh folder; return what was measured."""
    folder.mkdir(parents=True)
    env = child_env(replica, folder)
    if run_name.startswith("hfscraper"):
        settings = WITH_FILES if run_name == "hfscraper_files" else METADATA_ONLY
        command = scrapy_command(folder, settings, prefix)
    else:
        threads = POOL_THREADS if run_name == "baseline_pool8" else 1
        command = baseline_command(folder, threads=threads, files=run_name != "baseline_meta", prefix=prefix)
    mark = replica.mark()
    measured = measure(command, cwd=folder, env=env, timeout=timeout)
    entries = replica.requests(since=mark)
    entries = [e for e in entries if e["origin"] in ("hub", "cdn")]
    result: dict[str, Any] = {
        "run": run_name,
        "prefix": prefix,
        "returncode": measured.returncode,
        "wall_s": round(measured.wall_s, 3),
        "cpu_s": round(measured.cpu_s, 3),
        "peak_rss_mib": round(measured.peak_rss_mib, 1),
        "own_peak_rss_mib_sampled": measured.own_peak_rss_mib,
        "children_peak_rss_mib_sampled": measured.children_peak_rss_mib,
        "requests": request_summary(entries),
    }
    if run_name.startswith("hfscraper"):
        stats = scrapy_stats(measured.stderr)
        result["entities"] = int(stats.get("item_scraped_count", 0))
        result["files"] = int(stats.get("hfscraper/files/downloaded", 0))
        result["files_skipped"] = sum(v for k, v in stats.items() if k.startswith("hfscraper/files/skipped/"))
        result["cids"] = int(stats.get("hfscraper/ipfs/entities", 0))
        result["finish_reason"] = stats.get("finish_reason")
        ok = measured.returncode == 0 and result["finish_reason"] == "finished"
    else:
        try:
            report = json.loads(measured.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            report = {}
        result["entities"] = int(report.get("models", 0))
        result["files"] = int(report.get("files", 0))
        result["files_skipped"] = int(report.get("skipped", 0))
        result["inner_seconds"] = report.get("seconds")
        ok = measured.returncode == 0 and bool(report)
    if not ok:
        raise RuntimeError(
            f"crawl benchmark run {run_name} failed (exit code {measured.returncode}):\n{measured.stderr[-4000:]}"
        )
    result["entities_per_s"] = round(result["entities"] / measured.wall_s, 1) if measured.wall_s > 0 else 0.0
    span = result["requests"]["span_s"]
    result["entities_per_request_span_s"] = round(result["entities"] / span, 1) if span > 0 else None
    # Each run's tree goes at once (not with the temp folder at the end), so that the disk holds one at a time.
    cleanup = time.monotonic()
    shutil.rmtree(folder, ignore_errors=True)
    result["cleanup_s"] = round(time.monotonic() - cleanup, 2)
    return result


def config(*, smoke: bool) -> dict[str, Any]:
    env = os.environ
    if smoke:
        return {
            "n": 300, "latencies": [0], "mem_small": 200, "mem_large": 600, "prefixes": dict(SMOKE_PREFIXES),
            "timeout": 300.0,
        }  # fmt: skip
    n = int(env.get("BENCH_N", "20000"))
    prefixes: dict[tuple[str, int], int] = {}
    for run_name in RUNS:
        for latency in LATENCIES:
            raw = env.get(f"BENCH_CRAWL_PREFIX_{run_name.upper()}_{latency}")
            chosen = int(raw) if raw else PREFIXES.get((run_name, latency))
            if chosen is not None and chosen < n:
                prefixes[(run_name, latency)] = chosen
    return {
        "n": n,
        "latencies": list(LATENCIES),
        "mem_small": int(env.get("BENCH_CRAWL_MEM_SMALL", "10000")),
        "mem_large": int(env.get("BENCH_CRAWL_MEM_LARGE", "100000")),
        "prefixes": prefixes,
        "timeout": 1800.0,
    }


def run(*, smoke: bool = False) -> BenchResult:
    from tests.support.replica import run_replica

    cfg = config(smoke=smoke)
    n = cfg["n"]
    started = time.monotonic()
    load_before = _loadavg()
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    replicas: dict[str, float] = {}
    memory: dict[str, dict[str, Any]] = {}
    tmp_root = os.environ.get("BENCH_CRAWL_TMP") or None
    with tempfile.TemporaryDirectory(prefix="hfscraper-bench-crawl-", dir=tmp_root) as tmp:
        root = Path(tmp)
        for latency in cfg["latencies"]:
            t0 = time.monotonic()
            with run_replica(
                tmp_dir=root / f"replica-{latency}", models=n, datasets=0, spaces=0, seed=SEED,
                latency_ms=latency, truth=False,
            ) as replica:  # fmt: skip
                replicas[f"lat{latency}_n{n}_start_s"] = round(time.monotonic() - t0, 2)
                runs[latency] = {}
                for run_name in RUNS:
                    prefix = cfg["prefixes"].get((run_name, latency))
                    print(f"bench crawl: latency {latency} ms, {run_name}, {prefix or n} models", file=sys.stderr)
                    result = one_run(replica, root / f"lat{latency}-{run_name}", run_name, prefix, cfg["timeout"])
                    runs[latency][run_name] = result
                    _progress(result)
    mem_root = os.environ.get("BENCH_CRAWL_MEM_TMP") or _shm_dir(cfg["mem_large"])
    with tempfile.TemporaryDirectory(prefix="hfscraper-bench-crawl-mem-", dir=mem_root) as tmp:
        root = Path(tmp)
        for label, size in (("small", cfg["mem_small"]), ("large", cfg["mem_large"])):
            t0 = time.monotonic()
            with run_replica(
                tmp_dir=root / f"replica-mem-{label}", models=size, datasets=0, spaces=0, seed=SEED, truth=False
            ) as replica:
                replicas[f"lat0_n{size}_start_s"] = round(time.monotonic() - t0, 2)
                print(f"bench crawl: memory, hfscraper_meta, {size} models", file=sys.stderr)
                memory[label] = one_run(replica, root / f"mem-{label}", "hfscraper_meta", None, cfg["timeout"])
                memory[label]["n"] = size
                memory[label]["tmp"] = mem_root or tempfile.gettempdir()
                _progress(memory[label])
    total = time.monotonic() - started
    rows = build_rows(runs, memory, n)
    rows.append(Row(NAME, "run_time", round(total, 1), "s"))
    details = {
        "smoke": smoke, "n": n, "files": list(FILES), "seed": SEED, "runs": {f"lat{k}": v for k, v in runs.items()},
        "memory": memory, "replica_start": replicas, "run_time_s": round(total, 1), "load_before": load_before,
        "load_after": _loadavg(), "extra_settings": extra_settings(),
    }  # fmt: skip
    return BenchResult(rows, details)


def _shm_dir(entities: int) -> str | None:
    """/dev/shm when it has room for *entities* folders (and 1 GiB to spare), else None (the system's temp).

    The memory runs' trees go there because removing a 100,000-entity tree from the benchmark VM's disk takes
    about a minute (about as long as the crawl); tmpfs pages are not in any process's RSS, so the peak is the same.
    """
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    return "/dev/shm" if stat.f_bavail * stat.f_frsize > entities * 16384 + (1 << 30) else None


def _progress(result: dict[str, Any]) -> None:
    print(
        f"bench crawl:   {result['entities']} models in {result['wall_s']:.1f}s ({result['entities_per_s']}/s), "
        f"{result['requests']['total']} requests, {result['cpu_s']:.1f} CPU s, {result['peak_rss_mib']} MiB "
        f"(own {result['own_peak_rss_mib_sampled']}, children {result['children_peak_rss_mib_sampled']})",
        file=sys.stderr,
        flush=True,
    )


def _loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _scope(result: dict[str, Any], n: int) -> str:
    return f"first {result['entities']} of {n}" if result["prefix"] else f"all {n}"


def build_rows(runs: dict[int, dict[str, dict[str, Any]]], memory: dict[str, dict[str, Any]], n: int) -> list[Row]:
    rows: list[Row] = []
    for latency, by_run in runs.items():
        for run_name, result in by_run.items():
            key = f"lat{latency}/{run_name}"
            rate_goal, rate_met = "", None
            if latency == 0 and run_name == "hfscraper_meta":
                rate_goal, rate_met = f">= {GOAL_META_RATE}", result["entities_per_s"] >= GOAL_META_RATE
            rows += [
                Row(NAME, f"{key}/entities_per_s", result["entities_per_s"], f"models/s ({_scope(result, n)})",
                    rate_goal, rate_met),
                Row(NAME, f"{key}/requests", result["requests"]["total"], "requests"),
                Row(NAME, f"{key}/cpu_s", result["cpu_s"], "CPU s"),
                Row(NAME, f"{key}/peak_rss", result["peak_rss_mib"], "MiB"),
            ]  # fmt: skip
        for ours, theirs in (
            ("hfscraper_meta", "baseline_meta"),
            ("hfscraper_files", "baseline_seq"),
            ("hfscraper_files", "baseline_pool8"),
        ):
            if ours not in by_run or theirs not in by_run:
                continue
            ratio = by_run[ours]["entities_per_s"] / max(by_run[theirs]["entities_per_s"], 1e-9)
            goal, met = "", None
            if latency == 50 and theirs == "baseline_seq":
                goal, met = f">= {GOAL_SEQ:g}", ratio >= GOAL_SEQ
            elif latency == 50 and theirs == "baseline_pool8":
                goal, met = f">= {GOAL_POOL:g}", ratio >= GOAL_POOL
            rows.append(Row(NAME, f"lat{latency}/ratio/{ours}_vs_{theirs}", round(ratio, 2), "x", goal, met))
    if "small" in memory and "large" in memory:
        small, large = memory["small"], memory["large"]
        ratio = large["peak_rss_mib"] / max(small["peak_rss_mib"], 1e-9)
        rows += [
            Row(NAME, f"memory/peak_rss_n{small['n']}", small["peak_rss_mib"], "MiB (metadata only, latency 0)"),
            Row(NAME, f"memory/peak_rss_n{large['n']}", large["peak_rss_mib"], "MiB (metadata only, latency 0)"),
            Row(NAME, "memory/peak_rss_ratio", round(ratio, 3), f"x (n{large['n']} / n{small['n']})",
                f"<= {GOAL_RSS_RATIO:.2f}", ratio <= GOAL_RSS_RATIO),
            Row(NAME, f"memory/entities_per_s_n{large['n']}", large["entities_per_s"], "models/s"),
        ]  # fmt: skip
        # Which process holds the peak: the crawler itself, or a child (the provenance graph's rebuild).
        for part in ("own", "children"):
            low, high = small[f"{part}_peak_rss_mib_sampled"], large[f"{part}_peak_rss_mib_sampled"]
            if low and high:
                rows.append(Row(NAME, f"memory/{part}_peak_rss_ratio", round(high / low, 3),
                                f"x ({high} / {low} MiB, sampled)"))  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------------- baseline
def baseline(folder: Path, *, threads: int, files: list[str], limit: int | None) -> dict[str, Any]:
    """What a user of huggingface_hub would write: list every model, keep its metadata, download its files."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
    from dataclasses import asdict

    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    def fetch(repo_id: str, name: str, sha: str | None) -> bool:
        # Gated (401), disabled (403) and missing (404) repos are skipped, as hfscraper skips them
        # (`hfscraper/files/skipped/<reason>`); hf_hub_download wraps some in LocalEntryNotFoundError.
        try:
            hf_hub_download(repo_id, name, revision=sha)
        except (HfHubHTTPError, LocalEntryNotFoundError) as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, HfHubHTTPError):
                cause = cause.__cause__
            status = cause.response.status_code if isinstance(cause, HfHubHTTPError) else None
            if status not in (401, 403, 404):
                raise
            return False
        return True

    started = time.monotonic()
    wanted = set(files)
    api = HfApi()
    models = downloaded = skipped = 0
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    pending: set[Future[bool]] = set()

    def settle(done: set[Future[bool]]) -> tuple[int, int]:
        got = [future.result() for future in done]  # any other failure fails the run
        return sum(got), len(got) - sum(got)

    with open(folder / "models.jsonl", "w", encoding="utf-8") as out:
        # The crawl's order (newest first), so that both sides' prefixes are the same models.
        for info in api.list_models(full=True, sort="created_at"):
            if limit is not None and models >= limit:
                break
            out.write(json.dumps(asdict(info), default=str) + "\n")
            models += 1
            for sibling in info.siblings or ():
                if sibling.rfilename not in wanted:
                    continue
                if pool is None:
                    ok = fetch(info.id, sibling.rfilename, info.sha)
                    downloaded, skipped = downloaded + ok, skipped + (not ok)
                    continue
                pending.add(pool.submit(fetch, info.id, sibling.rfilename, info.sha))
                # A bounded queue, as a careful user keeps it: memory stays flat however long the listing.
                if len(pending) >= threads * 4:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    got, refused = settle(done)
                    downloaded, skipped = downloaded + got, skipped + refused
    if pool is not None:
        got, refused = settle(wait(pending).done)
        downloaded, skipped = downloaded + got, skipped + refused
        pool.shutdown()
    seconds = round(time.monotonic() - started, 3)
    return {"models": models, "files": downloaded, "skipped": skipped, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crawl")
    parser.add_argument("--baseline", type=Path, help="run the huggingface_hub baseline in this folder")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--files", default="")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    if args.baseline is not None:
        files = [name for name in args.files.split(",") if name]
        report = baseline(args.baseline, threads=args.threads, files=files, limit=args.limit)
        sys.stdout.write(json.dumps(report) + "\n")
        return 0
    result = run(smoke=args.smoke)
    for row in result.rows:
        sys.stdout.write(f"{row.metric}: {row.value} {row.unit}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
