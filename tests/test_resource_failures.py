"""A full disk, a read-only or vanished output folder, a folder that cannot be created: the crawl stops at once with
one ERROR line, finish reason `disk_full` or `output_unavailable`, exit 1 and no traceback; a later run with the
cause gone completes and leaves the same tree as a clean crawl.

The small disks are tmpfs mounts made in the crawl's own mount namespace (`unshare -rm`, or `unshare -m` as root),
so nothing outside the test sees them. Where the OS allows no such namespace the tests skip with the reason, except
under CI (`CI=true`), where they fail.

This module doubles as the driver that runs inside the namespace: `python -m tests.test_resource_failures PLAN`.
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
from tests.support.crawl import REPO_ROOT, crawl, crawl_command, crawl_env, parse_stats
from tests.support.replica import ReplicaHandle, replica_fixture
from tests.support.trees import output_files

MODELS = 200
PAGE_SIZE = 4
replica = replica_fixture(models=MODELS, datasets=60, spaces=60, seed=13)


# ---------------------------------------------------------------------------------------------------------
# The mount namespace
# ---------------------------------------------------------------------------------------------------------

_PREFIX: list[str] | None = None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI is set, so the disk-full tests must run, but {reason}", pytrace=False)
    pytest.skip(reason)


def namespace_prefix(tmp_path: Path) -> list[str]:
    """The command prefix that runs a process in a new mount namespace where it may mount a tmpfs."""
    global _PREFIX
    if _PREFIX is not None:
        return _PREFIX
    if shutil.which("unshare") is None:
        _skip_or_fail("no `unshare` command here")
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    errors = []
    candidates = [["unshare", "-rm"]] + ([["unshare", "-m"]] if os.geteuid() == 0 else [])
    for prefix in candidates:
        proc = subprocess.run(
            [*prefix, "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$0"', str(probe)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode == 0:
            _PREFIX = prefix
            return prefix
        errors.append(f"{' '.join(prefix)}: {proc.stderr.strip() or proc.returncode}")
    _skip_or_fail(f"cannot mount a tmpfs in a new mount namespace ({'; '.join(errors)})")
    raise AssertionError("unreachable")


def run_plan(tmp_path: Path, plan: dict[str, Any], timeout: float = 300) -> None:
    """Run *plan* (see `driver`) inside a new mount namespace."""
    prefix = namespace_prefix(tmp_path)
    path = tmp_path / f"plan-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(plan))
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "tests.test_resource_failures", str(path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"the namespace driver failed:\n{proc.stdout}\n{proc.stderr}"


def driver(plan_path: str) -> None:
    """Inside the namespace: mount the tmpfs, then run the plan's steps in order.

    Steps: `{"run": argv, "env": {...}, "log": file}` (the command's stderr to *log*, its exit code to *log*.rc),
    optionally with `"during": {"when_files": N, "remount": OPTIONS}` (remount once N `metadata.json` exist);
    `{"remount": OPTIONS}`; `{"copy": folder}` (the tmpfs tree, copied out).
    """
    plan = json.loads(Path(plan_path).read_text())
    out = plan["out"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", plan["options"], "tmpfs", out], check=True)
    for step in plan["steps"]:
        if "remount" in step:
            subprocess.run(["mount", "-o", f"remount,{step['remount']}", out], check=True)
        elif "copy" in step:
            shutil.copytree(out, step["copy"], symlinks=True)
        else:
            with open(step["log"], "w") as log:
                proc = subprocess.Popen(step["run"], env=step["env"], cwd=REPO_ROOT, stdout=log, stderr=log)
                during = step.get("during")
                if during:
                    while proc.poll() is None and _count_metadata(Path(out)) < during["when_files"]:
                        time.sleep(0.05)
                    # A remount read-only is refused while a file is open for writing: try until it passes.
                    while proc.poll() is None:
                        done = subprocess.run(
                            ["mount", "-o", f"remount,{during['remount']}", out], capture_output=True, check=False
                        )
                        if done.returncode == 0:
                            break
                        time.sleep(0.01)
                code = proc.wait()
            Path(step["log"] + ".rc").write_text(str(code))


def _count_metadata(out: Path) -> int:
    root = out / "models"
    try:
        return sum(1 for d in os.scandir(root) if os.path.exists(os.path.join(d.path, "metadata.json")))
    except OSError:
        return 0


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def _settings(**extra: str) -> dict[str, str]:
    # Files on, previews off (the viewer is not what these tests are about); no capacity check: these disks are
    # meant to fill up (tests/test_capacity.py tests the check).
    return {"HFSCRAPER_PREVIEWS_ENABLED": "false", "HFSCRAPER_CAPACITY_CHECK_INTERVAL": "0", **extra}


def _step(replica: ReplicaHandle, out: Path, log: Path, spider: str = "models", **extra: Any) -> dict[str, Any]:
    command = crawl_command(
        spider, out, settings=_settings(), page_size=PAGE_SIZE, command_name="crawl" if spider else "crawlall"
    )
    return {"run": command, "env": crawl_env(replica, out), "log": str(log), **extra}


def _result(log: Path) -> tuple[int, str, dict[str, Any]]:
    text = log.read_text()
    return int(Path(f"{log}.rc").read_text()), text, parse_stats(text)


def _error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "] ERROR:" in line]


def _tree(root: Path) -> dict[str, bytes]:
    # Bar the folder's record (it names the folder's own state file); CAR packs by the entities they hold.
    return output_files(root, skip=(OWNER_FILE,), scratch=True)


def _assert_stopped(rc: int, log: str, stats: dict[str, Any], reason: str) -> None:
    assert "Traceback" not in log, log[-3000:]
    assert rc == 1, log[-3000:]
    assert stats.get("finish_reason") == reason, log[-3000:]
    errors = _error_lines(log)
    assert len(errors) == 1, "\n".join(errors[:10])
    assert f"Stopping the crawl ({reason})" in errors[0]


def _assert_nothing_partial(tree: Path) -> None:
    for folder in (tree / "models").iterdir():
        json.loads((folder / "metadata.json").read_text())  # every metadata.json there is whole
        assert not [p for p in folder.rglob("*") if p.name.startswith(TEMP_PREFIX)], folder


# ---------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------


def test_disk_full_stops_at_once_and_a_rerun_with_room_equals_a_clean_crawl(
    replica: ReplicaHandle, tmp_path: Path
) -> None:
    clean = crawl(replica, "models", tmp_path / "clean" / "out", settings=_settings(), page_size=PAGE_SIZE)
    assert clean.returncode == 0, clean.stderr[-3000:]

    out = tmp_path / "full" / "out"
    out.mkdir(parents=True)
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    run_plan(tmp_path, {
        "out": str(out), "options": "size=1m",
        "steps": [
            _step(replica, out, first), {"copy": str(tmp_path / "after-stop")},
            {"remount": "size=256m"}, _step(replica, out, second), {"copy": str(tmp_path / "after-rerun")},
        ],
    })  # fmt: skip

    rc, log, stats = _result(first)
    _assert_stopped(rc, log, stats, "disk_full")
    assert f"no space left on device at {out};" in _error_lines(log)[0]
    assert "models: INCOMPLETE (finish reason disk_full" in log
    # Stopped at once, not after walking the listing: far fewer listing pages than the whole listing has.
    pages = MODELS // PAGE_SIZE
    listed = stats["hfscraper/spider/pages"]
    assert listed < pages * 0.75, f"{listed} listing pages of {pages}"
    _assert_nothing_partial(tmp_path / "after-stop")

    rc, log, _ = _result(second)
    assert rc == 0, log[-3000:]
    assert "Traceback" not in log
    assert _tree(tmp_path / "after-rerun") == _tree(clean.output)


def test_out_of_inodes_is_a_full_disk(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "crawl.log"
    run_plan(tmp_path, {"out": str(out), "options": "size=256m,nr_inodes=300", "steps": [_step(replica, out, log)]})
    rc, text, stats = _result(log)
    _assert_stopped(rc, text, stats, "disk_full")


def test_output_made_read_only_mid_crawl(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "crawl.log"
    step = _step(replica, out, log, during={"when_files": 30, "remount": "ro"})
    run_plan(tmp_path, {"out": str(out), "options": "size=256m", "steps": [step]})
    rc, text, stats = _result(log)
    _assert_stopped(rc, text, stats, "output_unavailable")
    assert "read-only file system" in _error_lines(text)[0]


def test_crawlall_stops_all_three_spiders(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "crawl.log"
    run_plan(tmp_path, {"out": str(out), "options": "size=1m", "steps": [_step(replica, out, log, spider="")]})
    rc, text, _ = _result(log)
    assert "Traceback" not in text, text[-3000:]
    assert rc == 1
    assert len(_error_lines(text)) == 1, "\n".join(_error_lines(text)[:10])
    for spider in ("models", "datasets", "spaces"):
        assert f"hfscraper: {spider}: INCOMPLETE (finish reason disk_full" in text, text[-2000:]


def test_output_folder_renamed_away_mid_crawl(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = crawl_command("models", out, settings=_settings(), page_size=PAGE_SIZE)
    with open(tmp_path / "crawl.log", "w") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=crawl_env(replica, out), stdout=log, stderr=log)
        while proc.poll() is None and _count_metadata(out) < 30:
            time.sleep(0.05)
        out.rename(tmp_path / "moved")
        rc = proc.wait(timeout=300)
    text = (tmp_path / "crawl.log").read_text()
    _assert_stopped(rc, text, parse_stats(text), "output_unavailable")
    assert str(out) in _error_lines(text)[0]


def test_a_full_state_folder_stops_the_crawl(replica: ReplicaHandle, tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state"
    state.mkdir()
    log = tmp_path / "crawl.log"
    # The state's own disk: big enough for the schema, too small for the crawl's records.
    run_plan(tmp_path, {"out": str(state), "options": "size=160k", "steps": [_step(replica, out, log)]})
    rc, text, stats = _result(log)
    _assert_stopped(rc, text, stats, "disk_full")
    assert f"at {state};" in _error_lines(text)[0]


@pytest.mark.parametrize("which", ["HFSCRAPER_OUTPUT_DIR", "HFSCRAPER_STATE_DIR"])
@pytest.mark.parametrize("command_name", ["crawl", "crawlall"])
def test_a_folder_that_cannot_be_created_is_one_line_and_exit_2(
    replica: ReplicaHandle, tmp_path: Path, which: str, command_name: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    out, state = tmp_path / "out", tmp_path / "state"
    folders = {"HFSCRAPER_OUTPUT_DIR": out, "HFSCRAPER_STATE_DIR": state}
    folders[which] = blocker / "sub"
    feed = tmp_path / "feed.jsonl"
    result = crawl(
        replica, "models" if command_name == "crawl" else "", folders["HFSCRAPER_OUTPUT_DIR"],
        settings={"HFSCRAPER_STATE_DIR": str(folders["HFSCRAPER_STATE_DIR"])}, command_name=command_name,
        options=["-O", str(feed)],
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert which in lines[0] and str(blocker) in lines[0] and "is a file" in lines[0]
    assert not feed.exists()
    assert not out.exists() and not state.exists(), sorted(p.name for p in tmp_path.iterdir())


def test_a_read_only_output_folder_is_one_line_and_exit_2(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "crawl.log"
    run_plan(tmp_path, {"out": str(out), "options": "size=1m,ro", "steps": [_step(replica, out, log)]})
    rc, text, _ = _result(log)
    assert rc == 2, text
    assert text.strip().splitlines() == [text.strip()]
    assert "read-only file system" in text and "HFSCRAPER_OUTPUT_DIR" in text
    assert not (tmp_path / "state").exists()


if __name__ == "__main__":
    driver(sys.argv[1])
