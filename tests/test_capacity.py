"""The capacity check (`hfscraper.capacity`): a crawl stops with `disk_full` before its disk runs out, a start
without room is refused with no side effects, and `scrapy status` shows the disks and the usage per type.

The small disks are tmpfs mounts in the crawl's own mount namespace (as in tests/test_resource_failures.py, whose
`namespace_prefix` this module uses); this module is also the driver that runs inside the namespace:
`python -m tests.test_capacity PLAN`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.output_owner import OWNER_FILE
from tests.support.crawl import (
    METADATA_ONLY,
    REPO_ROOT,
    CrawlResult,
    _scrapy_command,
    crawl,
    crawl_command,
    crawl_env,
    parse_stats,
)
from tests.support.replica import ReplicaHandle, replica_fixture
from tests.support.trees import output_files
from tests.test_resource_failures import namespace_prefix

MODELS = 100
PAGE_SIZE = 5
replica = replica_fixture(models=MODELS, datasets=10, spaces=10, seed=21)

#: A reserve of inodes only, checked often: the tmpfs below has room for some of the listing, not all of it.
RESERVE_INODES = 100
CAPACITY = {
    "HFSCRAPER_CAPACITY_MIN_FREE_BYTES": "0",
    "HFSCRAPER_CAPACITY_MIN_FREE_INODES": str(RESERVE_INODES),
    "HFSCRAPER_CAPACITY_MIN_FREE_FRACTION": "0",
    "HFSCRAPER_CAPACITY_CHECK_INTERVAL": "0.02",
    # A metadata crawl has one listing request in flight; fewer slots leave a smaller margin to the stop, so that
    # a small disk is enough to see the crawl store part of the listing and stop.
    "CONCURRENT_REQUESTS": "4",
}


@pytest.fixture(scope="module")
def clean(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> CrawlResult:
    """A metadata crawl of the whole listing on an ordinary disk (CARs in packs: their usage is reported)."""
    out = tmp_path_factory.mktemp("clean") / "out"
    packed = {**METADATA_ONLY, "HFSCRAPER_IPFS_CAR_LAYOUT": "pack"}
    result = crawl(replica, "models", out, settings=packed, page_size=PAGE_SIZE)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def driver(plan_path: str) -> None:
    """Inside the namespace: mount a tmpfs at the plan's `mount` with its `options`, then run its steps in order:
    `{"run": argv, "env": {...}, "log": file}` (stdout and stderr to *log*, the exit code to *log*.rc),
    `{"statvfs": file}` (the tmpfs's free inodes and bytes, as JSON), `{"remount": OPTIONS}`, `{"copy": folder}`."""
    plan = json.loads(Path(plan_path).read_text())
    mount = plan["mount"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", plan["options"], "tmpfs", mount], check=True)
    for step in plan["steps"]:
        if "remount" in step:
            subprocess.run(["mount", "-o", f"remount,{step['remount']}", mount], check=True)
        elif "copy" in step:
            shutil.copytree(mount, step["copy"], symlinks=True)
        elif "statvfs" in step:
            st = os.statvfs(mount)
            free = {"inodes": st.f_favail, "bytes": st.f_bavail * st.f_frsize}
            Path(step["statvfs"]).write_text(json.dumps(free))
        else:
            with open(step["log"], "w") as log:
                code = subprocess.run(step["run"], env=step["env"], cwd=REPO_ROOT, stdout=log, stderr=log).returncode
            Path(step["log"] + ".rc").write_text(str(code))


def run_plan(tmp_path: Path, plan: dict[str, Any]) -> None:
    prefix = namespace_prefix(tmp_path)
    path = tmp_path / f"plan-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(plan))
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "tests.test_capacity", str(path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"the namespace driver failed:\n{proc.stdout}\n{proc.stderr}"


def _step(replica: ReplicaHandle, out: Path, log: Path, settings: dict[str, str], **extra: Any) -> dict[str, Any]:
    packed = {**METADATA_ONLY, "HFSCRAPER_IPFS_CAR_LAYOUT": "pack"}  # as `clean`, whose tree they are compared with
    command = crawl_command("models", out, settings={**packed, **settings}, page_size=PAGE_SIZE)
    return {"run": command + extra.pop("options", []), "env": crawl_env(replica, out), "log": str(log), **extra}


def _result(log: Path) -> tuple[int, str, dict[str, Any]]:
    text = log.read_text()
    return int(Path(f"{log}.rc").read_text()), text, parse_stats(text)


def _tree(root: Path) -> dict[str, bytes]:
    # Bar the owner file (it names the folder's own state file); CAR packs by the entities they hold.
    return output_files(root, skip=(OWNER_FILE,))


def test_a_crawl_stops_before_the_inodes_run_out_and_continues_once_there_is_room(
    replica: ReplicaHandle, clean: CrawlResult, tmp_path: Path
) -> None:
    inodes_needed = sum(1 for _ in clean.output.rglob("*"))

    out = tmp_path / "full" / "out"
    out.mkdir(parents=True)
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    # Room for about 3/4 of the listing's inodes above the reserve (the check keeps a margin: what the crawl may
    # store before a stop takes effect, at a cost per entity never below the prior while few are stored).
    total = RESERVE_INODES + inodes_needed * 3 // 4
    run_plan(tmp_path, {
        "mount": str(out), "options": f"size=256m,nr_inodes={total}",
        "steps": [
            _step(replica, out, first, CAPACITY), {"statvfs": str(tmp_path / "free.json")},
            {"copy": str(tmp_path / "after-stop")},
            {"remount": f"nr_inodes={total + 3 * inodes_needed}"}, _step(replica, out, second, CAPACITY),
            {"copy": str(tmp_path / "after-rerun")},
        ],
    })  # fmt: skip

    rc, log, stats = _result(first)
    assert "Traceback" not in log, log[-3000:]
    assert rc == 1, log[-3000:]
    assert stats.get("finish_reason") == "disk_full", log[-3000:]
    assert stats.get("hfscraper/capacity/stopped") == 1
    # Stopped by the check, before any write failed: no ENOSPC anywhere, one ERROR line (entities that reach the
    # store after the stop are dropped before they write anything, as after any resource stop).
    assert "No space left" not in log and "no space left" not in log
    errors = [line for line in log.splitlines() if "] ERROR:" in line]
    assert len(errors) == 1, "\n".join(errors[:10])
    line = errors[0]
    assert f"Stopping the crawl (disk_full): the file system is nearly full at {out} (output)" in line, line
    assert f"inodes free, the reserve is 0 B and {RESERVE_INODES} inodes; at " in line, line
    assert "inodes per entity there is room for about " in line, line
    # Above the reserve when the crawl ended, with part of the listing stored, every entity whole.
    free = json.loads((tmp_path / "free.json").read_text())
    assert free["inodes"] >= RESERVE_INODES, free
    stored = stats["hfscraper/state/recorded"]
    assert 0 < stored < MODELS, stats
    folders = list((tmp_path / "after-stop" / "models").iterdir())
    assert len(folders) == stored
    for folder in folders:
        json.loads((folder / "metadata.json").read_text())
        assert (folder / "ipfs_cid.txt").is_file(), folder
        assert not [p for p in folder.rglob("*") if p.name.startswith(TEMP_PREFIX)], folder

    rc, log, stats = _result(second)
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log
    assert _tree(tmp_path / "after-rerun") == _tree(clean.output)


def test_crawlall_stops_all_three_spiders_before_their_shared_disk_is_full(
    replica: ReplicaHandle, clean: CrawlResult, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "crawl.log"
    command = crawl_command(
        "", out, settings={**METADATA_ONLY, **CAPACITY, "HFSCRAPER_CRAWL_MAX_ITEMS": "90"}, command_name="crawlall",
        page_size=PAGE_SIZE,
    )  # fmt: skip
    total = RESERVE_INODES + sum(1 for _ in clean.output.rglob("*")) // 2
    run_plan(tmp_path, {
        "mount": str(out), "options": f"size=256m,nr_inodes={total}",
        "steps": [{"run": command, "env": crawl_env(replica, out), "log": str(log)},
                  {"statvfs": str(tmp_path / "free.json")}],
    })  # fmt: skip
    rc, text, _ = _result(log)
    assert "Traceback" not in text and "no space left" not in text.lower(), text[-3000:]
    assert rc == 1, text[-3000:]
    errors = [line for line in text.splitlines() if "] ERROR:" in line]
    assert len(errors) == 1 and "Stopping the crawl (disk_full): the file system is nearly full" in errors[0], errors
    # With max_items the crawls know what they still have to store (at most).
    assert "; the crawl has up to " in errors[0] and " more to store (max_items), about " in errors[0], errors[0]
    for spider in ("models", "datasets", "spaces"):
        assert f"hfscraper: {spider}: INCOMPLETE (finish reason disk_full" in text, text[-2000:]
    assert json.loads((tmp_path / "free.json").read_text())["inodes"] >= RESERVE_INODES


@pytest.mark.parametrize("which", ["output", "state"])
@pytest.mark.parametrize("command_name", ["crawl", "crawlall"])
def test_a_start_without_room_is_refused_with_one_line_and_no_side_effects(
    replica: ReplicaHandle, tmp_path: Path, which: str, command_name: str
) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    small = out if which == "output" else state
    small.mkdir()
    feed, log = tmp_path / "feed.jsonl", tmp_path / "crawl.log"
    # 40 inodes on that disk, fewer than the reserve: refused however small a page is.
    command = crawl_command(
        "models" if command_name == "crawl" else "", out, settings={**METADATA_ONLY, **CAPACITY},
        command_name=command_name, page_size=PAGE_SIZE, options=["-O", str(feed)],
    )  # fmt: skip
    step = {"run": command, "env": crawl_env(replica, out), "log": str(log)}
    copy = tmp_path / "after"
    run_plan(tmp_path, {"mount": str(small), "options": "size=64m,nr_inodes=40", "steps": [step, {"copy": str(copy)}]})

    rc, text, _ = _result(log)
    assert rc == 2, text[-3000:]
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith(f"hfscraper: not starting: {small} (the file system of the {which} folder) is too full")
    assert f"inodes free, the reserve is 0 B and {RESERVE_INODES} inodes" in lines[0], lines[0]
    assert not feed.exists()
    assert list(copy.iterdir()) == []  # nothing written on the small disk
    assert sorted(p.name for p in (out, state) if p.exists() and any(p.iterdir())) == []


def test_a_start_below_the_default_reserve_is_refused(replica: ReplicaHandle, tmp_path: Path) -> None:
    # The defaults: at least 1 GiB and 100,000 inodes free. A 64 MiB disk has neither.
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "crawl.log"
    run_plan(tmp_path, {"mount": str(out), "options": "size=64m", "steps": [_step(replica, out, log, {})]})
    rc, text, _ = _result(log)
    assert rc == 2, text[-3000:]
    assert "is too full for the crawl" in text and "the reserve is 1.0 GiB" in text, text
    assert not (tmp_path / "state").exists()


def test_status_shows_the_disks_and_with_usage_bytes_and_inodes_per_type(
    replica: ReplicaHandle, clean: CrawlResult
) -> None:
    out = clean.output
    status = [*_scrapy_command(), "status", "-s", f"HFSCRAPER_OUTPUT_DIR={out}"]
    status += ["-s", f"HFSCRAPER_STATE_DIR={out.parent / 'state'}"]
    env = crawl_env(replica, out)

    plain = subprocess.run(status, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    assert plain.returncode == 0, plain.stderr
    assert "(output and state): " in plain.stdout and " free (reserve " in plain.stdout, plain.stdout
    assert "usage per type: run `scrapy status --usage`" in plain.stdout

    report = json.loads(
        subprocess.run([*status, "--usage", "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True).stdout
    )
    usage = report["usage"]
    folders = out / "models"
    assert usage["model folders"]["inodes"] == 1 + sum(1 for _ in folders.rglob("*"))
    entities = len(list(folders.iterdir()))
    assert usage["model folders"]["entities"] == entities == report["entities"]["model"]["live"]
    assert usage["model CARs"]["inodes"] == 1 + sum(1 for _ in (out / "car" / "packs" / "models").rglob("*"))
    assert usage["provenance"]["inodes"] == 1 + sum(1 for _ in (out / "provenance").rglob("*"))
    assert usage["state"]["bytes"] > 0
    blocks = sum(p.lstat().st_blocks * 512 for p in [folders, *folders.rglob("*")])
    assert usage["model folders"]["bytes"] == blocks
    text = subprocess.run([*status, "--usage"], cwd=REPO_ROOT, env=env, capture_output=True, text=True).stdout
    per_entity = usage["model folders"]["inodes"] / entities
    assert "usage model folders: " in text and f"{per_entity:.1f} inodes per entity" in text, text


if __name__ == "__main__":
    driver(sys.argv[1])
