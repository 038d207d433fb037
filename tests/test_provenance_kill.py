"""A kill during the provenance rebuild never leaves a partial `provenance/` as the current one (issue 13, item 9).

The rebuild child is paused at a known moment (graph JSON, GraphML and Parquet written to the staging folder, the
per-entity files not yet) by a `sitecustomize` on the crawl's PYTHONPATH that only acts in that child; then it is
killed with SIGKILL, alone or with the whole crawl (its process group). `provenance/` must hold the previous
complete set (or nothing, the first time), `scrapy status` must say so and exit 1, and a plain re-run (every entity
unchanged) must rebuild it: status exit 0 and the graph equal to the state's."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfscraper.provenance.freshness import OUTPUT_FILES
from hfscraper.provenance.graph import graph_from_state, read_graph
from hfscraper.state import state_file_path
from tests.support.crawl import REPO_ROOT, crawl, crawl_command, crawl_env, metadata_only
from tests.support.replica import ReplicaHandle, run_replica

SETTINGS = {"HFSCRAPER_IPFS_ENABLED": "false"}

#: Pauses `python -m hfscraper.provenance rebuild` (only that process) before it writes its last Parquet file:
#: it writes its pid to $PROVENANCE_PAUSE_MARK and sleeps.
PAUSE_HOOK = """
import os
import sys

if "hfscraper.provenance" in sys.orig_argv and "rebuild" in sys.orig_argv and os.environ.get("PROVENANCE_PAUSE_MARK"):
    import importlib.abc
    import importlib.util
    import time

    class _PauseRebuild(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "hfscraper.provenance.outputs":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)

                def paused(*args, **kwargs):
                    with open(os.environ["PROVENANCE_PAUSE_MARK"] + ".tmp", "w") as f:
                        f.write(str(os.getpid()))
                    os.replace(os.environ["PROVENANCE_PAUSE_MARK"] + ".tmp", os.environ["PROVENANCE_PAUSE_MARK"])
                    time.sleep(600)

                module.write_edges_by_target = paused

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _PauseRebuild())
"""


@pytest.fixture(autouse=True)
def _metadata_only(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata_only(monkeypatch)


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=30, datasets=5, spaces=5, seed=7) as hub:
        yield hub


def status(replica: ReplicaHandle, out: Path) -> subprocess.CompletedProcess[str]:
    command = crawl_command("", out, command_name="status", page_size=None)
    return subprocess.run(command, cwd=REPO_ROOT, env=crawl_env(replica, out), capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def crawl_paused_in_rebuild(replica: ReplicaHandle, out: Path, tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start `scrapy crawl models` with the pause hook; return it and the rebuild child's pid once it paused."""
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK, encoding="utf-8")
    mark = tmp_path / "paused.pid"
    mark.unlink(missing_ok=True)
    env = crawl_env(replica, out, {"PYTHONPATH": str(hook), "PROVENANCE_PAUSE_MARK": str(mark)})
    with open(tmp_path / "crawl.log", "ab") as log:
        process = subprocess.Popen(crawl_command("models", out, settings=SETTINGS), cwd=REPO_ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert process.poll() is None, (tmp_path / "crawl.log").read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "the rebuild never paused"
        time.sleep(0.02)
    return process, int(mark.read_text())


def assert_complete_and_equal_to_the_state(replica: ReplicaHandle, out: Path) -> None:
    done = status(replica, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "provenance: up to date" in done.stdout
    folder = out / "provenance"
    assert all((folder / name).is_file() for name in OUTPUT_FILES)
    graph, truth = read_graph(out), graph_from_state(state_file_path(out.parent / "state", out))
    assert set(graph.edges) == set(truth.edges) and set(graph.nodes) == set(truth.nodes)
    assert dict(graph.nodes(data=True)) == dict(truth.nodes(data=True))
    assert not list(out.glob(".hfscraper-tmp-*")) and not list(folder.rglob(".hfscraper-tmp-*"))


def test_killed_first_rebuild_leaves_no_folder_and_status_says_missing(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    process, child = crawl_paused_in_rebuild(replica, out, tmp_path)
    try:
        during = status(replica, out)
        assert during.returncode == 1 and "provenance: being rebuilt" in during.stdout, during.stdout
        assert not (out / "provenance").exists()  # the partial set is only in the staging folder
        os.kill(child, signal.SIGKILL)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # before the fix: `provenance/` held the graph files of the killed rebuild, status exited 0
    assert not (out / "provenance").exists()
    after = status(replica, out)
    assert after.returncode == 1, after.stdout
    assert "provenance: missing" in after.stdout and "complete: true" in after.stdout  # the listing itself is
    # a plain re-run, every entity unchanged, rebuilds it
    again = crawl(replica, "models", out, settings=SETTINGS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Provenance: " in again.stderr  # the rebuild ran (its summary line)
    assert_complete_and_equal_to_the_state(replica, out)


def test_crawl_killed_during_rebuild_keeps_the_previous_set(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = crawl(replica, "models", out, settings=SETTINGS)
    assert first.returncode == 0, first.stderr[-3000:]
    assert_complete_and_equal_to_the_state(replica, out)
    before = snapshot(out / "provenance")
    touched = [e["id"] for e in replica.truth["models"] if not e["private"]][:3]
    replica.mutate("model", touch=touched)  # the next rebuild would write other files
    process, _child = crawl_paused_in_rebuild(replica, out, tmp_path)
    os.killpg(process.pid, signal.SIGKILL)  # the crawl and its rebuild child
    process.wait(timeout=60)
    assert snapshot(out / "provenance") == before  # the previous complete set, untouched
    after = status(replica, out)
    assert after.returncode == 1 and "provenance: out of date" in after.stdout, after.stdout
    again = crawl(replica, "models", out, settings=SETTINGS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_complete_and_equal_to_the_state(replica, out)
    assert snapshot(out / "provenance") != before
