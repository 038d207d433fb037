"""Chaos soak: `scrapy crawlall` with files, CIDs/CARs and previews on, under faults, killed with SIGKILL at
random moments, then re-run plainly until it exits 0; the result must equal a clean crawl (issue 13, "Proof").

Against one replica (`BENCH_CHAOS_MODELS`/`_DATASETS`/`_SPACES`, default 200/80/80 entities, page size 20 so
every listing walks a cursor chain):

1. A clean crawl: `scrapy crawlall` into its own folder (its own state and JOBDIR), no faults; its wall time
   bounds the kill delays below.
2. Faults on (`POST /_replica/faults`, `FAULTS`), each at about `BENCH_CHAOS_FAULT_RATE` (default 0.03) of the
   requests it matches: 5xx, connection resets, truncated bodies, corrupt file bytes, refused listing/tree cursors
   (`expire_cursor`), and the dataset viewer failing transiently (5xx and resets at `VIEWER_RATE`).
3. `BENCH_CHAOS_KILLS` (default 20) times: the same command (with `-s JOBDIR`, as `make crawl` runs it, and a
   feed file of its own per run and spider, `-O feeds/run-NN-%(name)s.jsonl`) is started and its process group
   is sent SIGKILL after a random delay (RNG seeded by `BENCH_CHAOS_SEED`): one kill in five during Scrapy's
   start-up (0.3 s up to the clean crawl's start-up time), the others after the run's first request to the
   replica plus a random share of the clean crawl's work (its time after start-up), up to `WORK_SPREAD` (8) times
   the work divided by the number of kills (at most all of it): each resumed run goes on where the last one
   stopped but loses time to start-up and to re-checking what is stored, so the kills land all over the crawl.
   A run that ends before its moment is just a run, and the later moments are drawn within the work it took
   (the crawl is complete or nearly so: the kills now hit runs that redo what the faults left failed or
   pending). The soak goes on until it has killed that many (at most four times as many runs).
4. The faults are cleared and the same command runs until it exits 0, at most `BENCH_CHAOS_RERUNS` (default 5)
   times.

Checks (each a row with its goal; `result` is `pass` only if all hold):
- `tree_differences`: files that differ between the two output folders, byte for byte (missing, extra or
  changed). Left out: `.hfscraper-output.json` (names each folder's own state file) and any `.tmp/` (scratch
  space). `provenance/` is compared: it is rebuilt from the crawl state at the end of every crawl and holds no
  time stamp, so a converged state must give the very same graph files (two clean crawls do).
- `verify_exit`: `scrapy verify` on the soaked folder (every file rehashed, CIDs, CARs, `metadata.json`).
- `status_exit`: `scrapy status` on the soaked folder (every listing complete).
- `duplicate_feed_ids`: ids that occur twice in one feed file (a killed run's last, cut row is not a row). Also
  `foreign_feed_ids` must be 0: every feed id is a public entity of the replica. The union of the feeds need not
  cover every entity: SIGKILL loses the rows a run had not flushed yet, and a later run skips those entities as
  unchanged (tests/test_resume.py's chaos test says the same); `feed_ids_missing` counts them (informative).
- `reruns`: plain runs after the faults were cleared until exit 0. Goal: at most `BENCH_CHAOS_RERUNS`.

Informative: `kills`, `runs` (every start of the command, the clean crawl left out), `faults_fired` (by kind in
the details), `soak_time` (s). The details also hold each run's exit code and kill delay, and the command.

The whole soak shares one replica seed (`REPLICA_SEED`) and one RNG seed, so a failure can be replayed (timing
still varies): `BENCH_CHAOS_SEED=<seed> python -m bench.chaos`. A failed soak keeps its folder (logs, feeds,
both outputs and states) and names it; `BENCH_CHAOS_KEEP=1` keeps it anyway, `BENCH_CHAOS_TMP` says where.

Every preview retry is allowed at once (`HFSCRAPER_PREVIEWS_RETRY_MIN=0`, in every run, the clean one included):
the soak compresses hours of re-runs into minutes, and the default ten-minute backoff would leave previews
pending that a later run would fetch. `tests/test_chaos.py` runs a short soak with the same checks.

`run(smoke=True)`: one kill on a few dozen entities, to check that the benchmark works.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import BenchResult, Row

NAME = "chaos"
REPLICA_SEED = 13
PAGE_SIZE = 20
VIEWER_RATE = 0.25
#: The fault rules, with a rate relative to BENCH_CHAOS_FAULT_RATE (`scale`) or a fixed one (`rate`).
FAULTS: tuple[dict[str, Any], ...] = (
    {"kind": "5xx", "scale": 1.0},
    {"kind": "reset", "scale": 1.0},
    {"kind": "truncate", "scale": 1.0},
    {"kind": "corrupt", "scale": 1.0},
    # A cursor request is one in twenty: twice the rate, so a soak sees a few listings restarted.
    {"kind": "expire_cursor", "scale": 2.0},
    {"kind": "5xx", "origin": "viewer", "rate": VIEWER_RATE},
    {"kind": "reset", "origin": "viewer", "rate": VIEWER_RATE / 5},
)
#: Every run's settings (with the page size): see the module docstring for the preview retries.
SETTINGS = {"HFSCRAPER_PREVIEWS_RETRY_MIN": "0"}
MIN_DELAY = 0.3
STARTUP_KILLS = 0.2
WORK_SPREAD = 8
RUNS_PER_KILL = 4


@dataclass
class Soak:
    """What a soak did and found (see the module docstring); `passed` is the verdict."""

    config: dict[str, Any]
    clean_seconds: float = 0.0
    clean_startup: float = 0.0
    kills: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)
    reruns: int = 0
    converged: bool = False
    faults_fired: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    tmp_leftovers: int = 0
    verify_exit: int | None = None
    verify_output: str = ""
    status_exit: int | None = None
    feeds: int = 0
    feed_rows: int = 0
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    foreign_ids: list[str] = field(default_factory=list)
    feed_ids_missing: int = 0
    #: Datasets of the soaked folder whose `preview_info.json` says `"final": false` (a transient answer pending).
    pending_previews: list[str] = field(default_factory=list)
    one_more_run_exit: int | None = None
    one_more_run_differences: int | None = None
    command: str = ""
    seconds: float = 0.0
    workdir: str = ""

    @property
    def tree_differences(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.changed)

    @property
    def passed(self) -> bool:
        return (
            self.converged
            and self.tree_differences == 0
            and self.verify_exit == 0
            and self.status_exit == 0
            and not self.duplicates
            and not self.foreign_ids
        )

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        # What is committed names no path of this machine: the work folder and the venv's scripts are left out.
        del found["workdir"]
        found["command"] = self.command.replace(self.workdir, "$WORKDIR").replace(
            os.path.dirname(sys.executable) + os.sep, ""
        )
        for name in ("missing", "extra", "changed", "foreign_ids"):  # the first few are enough to start from
            found[name] = found[name][:20]
        return found | {"tree_differences": self.tree_differences, "passed": self.passed}


def settings(*, smoke: bool) -> dict[str, Any]:
    """The soak's parameters: `BENCH_CHAOS_*` overrides, else the defaults of the full or the smoke run."""
    if smoke:
        return {"models": 20, "datasets": 6, "spaces": 6, "kills": 1, "reruns": 5, "fault_rate": 0.03, "seed": 1}
    defaults = {"models": 200, "datasets": 80, "spaces": 80, "kills": 20, "reruns": 5}
    chosen: dict[str, Any] = {k: int(os.environ.get(f"BENCH_CHAOS_{k.upper()}", v)) for k, v in defaults.items()}
    if min(chosen.values()) < 1:
        raise ValueError(f"every BENCH_CHAOS_* count must be at least 1: {chosen}")
    chosen["fault_rate"] = float(os.environ.get("BENCH_CHAOS_FAULT_RATE", "0.03"))
    chosen["seed"] = int(os.environ.get("BENCH_CHAOS_SEED", "20261207"))
    if not 0.0 <= chosen["fault_rate"] <= 0.5:
        raise ValueError("BENCH_CHAOS_FAULT_RATE must be within 0..0.5")
    return chosen


def fault_rules(rate: float) -> list[dict[str, Any]]:
    rules = []
    for spec in FAULTS:
        rule = {k: v for k, v in spec.items() if k != "scale"}
        if "scale" in spec:
            rule["rate"] = min(1.0, rate * spec["scale"])
        rules.append(rule)
    return rules


def tree(root: Path) -> tuple[dict[str, bytes], int]:
    """Every file of an output folder by relative path (CAR packs by the entities they hold), bar its owner file
    and scratch space; and how many files the scratch space (any `.tmp/`) holds."""
    from hfscraper.output_owner import OWNER_FILE
    from tests.support.trees import output_files

    scratch = sum(1 for p in root.rglob("*") if p.is_file() and ".tmp" in p.relative_to(root).parts[:-1])
    return output_files(root, skip=(OWNER_FILE,)), scratch


def pending_previews(out: Path) -> list[str]:
    """The folders of datasets whose `preview_info.json` is not final (the viewer's last answer was transient)."""
    pending = []
    for info in sorted((out / "datasets").glob("*/preview_info.json")):
        if json.loads(info.read_text(encoding="utf-8")).get("final") is False:
            pending.append(info.parent.name)
    return pending


def _offline(command: str, replica: Any, out: Path) -> subprocess.CompletedProcess[str]:
    """`scrapy verify` or `scrapy status` on *out* (and the state folder `crawl_command` gives it)."""
    from tests.support.crawl import REPO_ROOT, _scrapy_command, crawl_env

    argv = [*_scrapy_command(), command, "-s", f"HFSCRAPER_OUTPUT_DIR={out}"]
    argv += ["-s", f"HFSCRAPER_STATE_DIR={out.parent / 'state'}"]
    return subprocess.run(argv, cwd=REPO_ROOT, env=crawl_env(replica, out), capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip


class Runner:
    """Starts the soak's command (one feed file per run and spider) and kills its process group."""

    def __init__(self, replica: Any, folder: Path) -> None:
        from tests.support.crawl import crawl_command

        self.replica, self.folder = replica, folder
        self.out, self.feeds, self.logs = folder / "out", folder / "feeds", folder / "logs"
        self.feeds.mkdir(parents=True)
        self.logs.mkdir()
        self.count = 0
        self.base = crawl_command("", self.out, command_name="crawlall", page_size=PAGE_SIZE,
                                  settings={**SETTINGS, "JOBDIR": str(folder / "job")})  # fmt: skip

    def start(self) -> subprocess.Popen[bytes]:
        from tests.support.crawl import REPO_ROOT, crawl_env

        self.count += 1
        feed = self.feeds / f"run-{self.count:02d}-%(name)s.jsonl"
        with open(self.logs / f"run-{self.count:02d}.log", "wb") as log:
            # Its own session: SIGKILL goes to the whole job, the provenance rebuild's child process included.
            return subprocess.Popen([*self.base, "-O", str(feed)], cwd=REPO_ROOT, env=crawl_env(self.replica, self.out),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                    start_new_session=True)  # fmt: skip

    def log(self, run: int) -> str:
        return (self.logs / f"run-{run:02d}.log").read_text(encoding="utf-8", errors="replace")


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def soak(folder: Path, *, models: int, datasets: int, spaces: int, kills: int, reruns: int, fault_rate: float,
         seed: int, timeout: float = 1800) -> Soak:  # fmt: skip
    """Run the soak in *folder* (see the module docstring) and check its result."""
    from tests.support.crawl import feed_ids, public
    from tests.support.replica import run_replica

    config = {"models": models, "datasets": datasets, "spaces": spaces, "kills": kills, "reruns": reruns,
              "fault_rate": fault_rate, "seed": seed, "replica_seed": REPLICA_SEED, "page_size": PAGE_SIZE,
              "faults": fault_rules(fault_rate)}  # fmt: skip
    found = Soak(config, workdir=str(folder))
    rng = random.Random(seed)
    started = time.monotonic()
    deadline = started + timeout
    with run_replica(tmp_dir=folder / "replica", models=models, datasets=datasets, spaces=spaces,
                     seed=REPLICA_SEED) as hub:  # fmt: skip
        clean = Runner(hub, folder / "clean")
        mark = hub.mark()
        process = clean.start()
        began = time.monotonic()
        while process.poll() is None and hub.mark() == mark:
            time.sleep(0.02)
        found.clean_startup = round(time.monotonic() - began, 2)
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        found.clean_seconds = round(time.monotonic() - began, 2)
        if code != 0:
            raise RuntimeError(f"the clean crawl exited {code}:\n{clean.log(1)[-3000:]}")

        chaos = Runner(hub, folder / "chaos")
        found.command = " ".join([*chaos.base, "-O", str(chaos.feeds / "run-NN-%(name)s.jsonl")])
        hub.set_faults(config["faults"])
        # Kill moments: one in five during Scrapy's start-up (before the first request to the replica), the rest
        # after a random share of the clean crawl's work (its wall time after its own start-up), up to WORK_SPREAD
        # times the share each kill would get: a resumed run loses time to re-checking what is stored, so this
        # spreads the kills over the whole crawl.
        work = max(0.5, found.clean_seconds - found.clean_startup)
        bound = min(work, WORK_SPREAD * work / kills)
        while found.kills < kills and chaos.count < kills * RUNS_PER_KILL:
            mark = hub.mark()
            process = chaos.start()
            began = time.monotonic()
            if rng.random() < STARTUP_KILLS:
                moment, delay = "start-up", rng.uniform(MIN_DELAY, max(MIN_DELAY, found.clean_startup))
            else:
                moment, delay = "work", rng.uniform(0.0, bound)
                while process.poll() is None and hub.mark() == mark:
                    time.sleep(0.02)
                first_request = time.monotonic() - began
                delay += first_request
            try:
                code = process.wait(timeout=max(0.0, delay - (time.monotonic() - began)))
                found.runs.append({"run": chaos.count, "exit": code})
                if moment == "work":  # the crawl needs less than that now: kill the next runs within it
                    bound = min(bound, max(0.2, time.monotonic() - began - first_request))
            except subprocess.TimeoutExpired:
                _kill(process)
                found.kills += 1
                found.runs.append({"run": chaos.count, "exit": "SIGKILL", "moment": moment, "after_s": round(delay, 2)})
        for rule in hub.faults():
            kind = rule["kind"] + (f"/{rule['origin']}" if rule["origin"] else "")
            found.faults_fired[kind] = found.faults_fired.get(kind, 0) + rule["fired"]
        hub.set_faults([])

        while found.reruns < reruns and not found.converged:
            found.reruns += 1
            process = chaos.start()
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            found.runs.append({"run": chaos.count, "exit": code, "after_faults": True})
            found.converged = code == 0

        clean_files, _ = tree(clean.out)
        chaos_files, found.tmp_leftovers = tree(chaos.out)
        found.missing = sorted(set(clean_files) - set(chaos_files))
        found.extra = sorted(set(chaos_files) - set(clean_files))
        found.changed = sorted(p for p in set(clean_files) & set(chaos_files) if clean_files[p] != chaos_files[p])
        found.pending_previews = pending_previews(chaos.out)
        verified = _offline("verify", hub, chaos.out)
        found.verify_exit, found.verify_output = verified.returncode, (verified.stdout + verified.stderr)[-4000:]
        found.status_exit = _offline("status", hub, chaos.out).returncode

        expected = {e["id"] for kind in ("model", "dataset", "space") for e in public(hub.truth, kind)}
        seen: set[str] = set()
        for feed in sorted(chaos.feeds.glob("*.jsonl")):
            ids = feed_ids(feed)
            found.feeds += 1
            found.feed_rows += len(ids)
            twice = sorted(i for i, n in collections.Counter(ids).items() if n > 1)
            if twice:
                found.duplicates[feed.name] = twice[:20]
            seen.update(ids)
        found.foreign_ids = sorted(seen - expected)
        found.feed_ids_missing = len(expected - seen)
        if found.converged and found.tree_differences:
            # Not part of the verdict: whether one more plain run would have closed the gap (for the report).
            process = chaos.start()
            found.one_more_run_exit = process.wait(timeout=max(1.0, deadline - time.monotonic()))
            after, _ = tree(chaos.out)
            found.one_more_run_differences = len(set(after) ^ set(clean_files)) + sum(
                1 for p in set(after) & set(clean_files) if after[p] != clean_files[p]
            )
    found.seconds = round(time.monotonic() - started, 1)
    return found


def report(found: Soak) -> str:
    """A few lines on what went wrong, to start a reproduction from."""
    lines = [f"chaos soak in {found.workdir} (seed {found.config['seed']}): {'pass' if found.passed else 'FAIL'}"]
    if not found.converged:
        lines.append(f"no exit 0 within {found.reruns} plain re-runs: {found.runs[-3:]}")
    for name in ("missing", "extra", "changed"):
        if getattr(found, name):
            lines.append(f"{name} ({len(getattr(found, name))}): {getattr(found, name)[:10]}")
    if found.verify_exit != 0:
        lines.append(f"scrapy verify exit {found.verify_exit}:\n{found.verify_output[-2000:]}")
    if found.status_exit != 0:
        lines.append(f"scrapy status exit {found.status_exit}")
    if found.duplicates or found.foreign_ids:
        lines.append(f"duplicates {found.duplicates}; foreign ids {found.foreign_ids[:10]}")
    lines.append(f"command: {found.command}")
    return "\n".join(lines)


def run(*, smoke: bool = False) -> BenchResult:
    config = settings(smoke=smoke)
    folder = Path(tempfile.mkdtemp(prefix="hfscraper-bench-chaos-", dir=os.environ.get("BENCH_CHAOS_TMP")))
    keep = os.environ.get("BENCH_CHAOS_KEEP") == "1"
    found: Soak | None = None
    try:
        found = soak(folder, **config)
    finally:
        if found is None or not found.passed or keep:
            print(f"bench chaos: kept {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if not found.passed:
        print(report(found), flush=True)
    fired = sum(found.faults_fired.values())
    dupes = sum(len(ids) for ids in found.duplicates.values())
    rows = [
        Row(NAME, "result", "pass" if found.passed else "fail", "", "pass", found.passed),
        Row(NAME, "kills", found.kills, "SIGKILL", f">= {config['kills']}", found.kills >= config["kills"]),
        Row(NAME, "runs", len(found.runs), "runs (kills and re-runs)"),
        Row(NAME, "reruns", found.reruns, "plain runs after the faults, to exit 0", f"<= {config['reruns']}",
            found.converged),
        Row(NAME, "faults_fired", fired, "responses"),
        Row(NAME, "tree_differences", found.tree_differences, "files vs a clean crawl", "== 0",
            found.tree_differences == 0),
        Row(NAME, "verify_exit", found.verify_exit, "exit code", "== 0", found.verify_exit == 0),
        Row(NAME, "status_exit", found.status_exit, "exit code", "== 0", found.status_exit == 0),
        Row(NAME, "duplicate_feed_ids", dupes, f"ids (in {found.feeds} feeds, {found.feed_rows} rows)", "== 0",
            dupes == 0),
        Row(NAME, "foreign_feed_ids", len(found.foreign_ids), "ids", "== 0", not found.foreign_ids),
        Row(NAME, "feed_ids_missing", found.feed_ids_missing, "entities in no feed (rows lost to SIGKILL)"),
        Row(NAME, "soak_time", found.seconds, "s", ""),
        Row(NAME, "clean_crawl_time", found.clean_seconds, "s"),
    ]  # fmt: skip
    return BenchResult(rows, {**found.to_dict(), "smoke": smoke})


if __name__ == "__main__":
    import sys

    for row in run(smoke="--smoke" in sys.argv).rows:
        print(f"{row.metric}: {row.value} {row.unit}")
