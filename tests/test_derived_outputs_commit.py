"""The all-or-nothing bookkeeping of the derived outputs, on real files and a real state: the provenance freshness
states `scrapy status` reports (`hfscraper.provenance.freshness`), the staging folders a killed rebuild leaves, and
the export's commit journal finishing a half-done replacement (`hfscraper.exporters.unified`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfscraper.exporters.unified import COMMIT_JOURNAL, finish_interrupted_commit
from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.provenance.extract import extract
from hfscraper.provenance.freshness import (
    BEING_REBUILT,
    MISSING,
    OUT_OF_DATE,
    UP_TO_DATE,
    begin_rebuild,
    mark_stale,
    outputs_status,
)
from hfscraper.provenance.outputs import rebuild, sweep_dead_staging
from hfscraper.provenance.store import record_entity
from hfscraper.state import StateStore, state_file_path


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(state_file_path(tmp_path / "state", tmp_path / "out"))
    yield s
    s.close()


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def state_of(store: StateStore, out: Path) -> str | None:
    report = outputs_status(store, out)
    return None if report is None else report["state"]


def test_freshness_states(store: StateStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert state_of(store, out) is None  # this state never recorded relations: nothing to report
    record_entity(store, extract("model", {"id": "o/m", "tags": ["base_model:finetune:o/base"]}), "t")
    mark_stale(store)
    assert state_of(store, out) == MISSING
    rebuild(store.path, out)
    assert state_of(store, out) == UP_TO_DATE
    assert outputs_status(store, out)["built"]["generation"] == 1
    mark_stale(store)  # a crawl opened: relations may change
    assert state_of(store, out) == OUT_OF_DATE
    # a rebuild killed before its swap: its marker names a dead process
    begin_rebuild(store, "t")
    store.set_meta("provenance_rebuild", json.dumps({"pid": dead_pid(), "started": "t"}))
    assert state_of(store, out) == OUT_OF_DATE
    # a live rebuild (a process whose command line names it)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "hfscraper.provenance"])
    try:
        store.set_meta("provenance_rebuild", json.dumps({"pid": child.pid, "started": "t"}))
        assert state_of(store, out) == BEING_REBUILT
    finally:
        child.kill()
        child.wait()
    assert state_of(store, out) == OUT_OF_DATE
    rebuild(store.path, out)
    assert state_of(store, out) == UP_TO_DATE
    (out / "provenance" / "provenance_nodes.parquet").unlink()  # the folder lost a file
    assert state_of(store, out) == MISSING
    # text files asked for are part of the set: losing one is losing a file of the folder
    rebuild(store.path, out, graph_files=("graphml",))
    assert state_of(store, out) == UP_TO_DATE
    (out / "provenance" / "provenance_graph.graphml").unlink()
    assert state_of(store, out) == MISSING
    rebuild(store.path, out)  # not asked for any more: the folder is complete without it
    assert state_of(store, out) == UP_TO_DATE and not (out / "provenance" / "provenance_graph.graphml").exists()


def test_staging_folders_of_dead_rebuilds_are_swept(store: StateStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = out / f"{TEMP_PREFIX}{dead_pid()}-provenance"
    (dead / "model_relationships").mkdir(parents=True)
    (dead / "provenance_graph.json").write_text("{")
    live = out / f"{TEMP_PREFIX}{os.getppid()}-provenance"
    live.mkdir()
    other = out / f"{TEMP_PREFIX}{dead_pid()}-something-else"
    other.mkdir()
    assert sweep_dead_staging(out) == 1
    assert not dead.exists() and live.exists() and other.exists()
    record_entity(store, extract("model", {"id": "o/m"}), "t")
    rebuild(store.path, out)  # sweeps too, and leaves no staging folder of its own
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, other.name, "provenance"])


def test_an_interrupted_export_commit_is_finished(tmp_path: Path) -> None:
    exp = tmp_path / "exp"
    (exp / "car").mkdir(parents=True)
    for name in ("a.parquet", "car/a.car", "README.md"):
        (exp / name).write_text(f"old {name}")
    temps = {
        name: f"{TEMP_PREFIX}{dead_pid()}-{Path(name).name}.part" for name in ("a.parquet", "car/a.car", "README.md")
    }
    for name, tmp in temps.items():
        (exp / name).with_name(tmp).write_text(f"new {name}")
    # the killed run had renamed the first file already
    os.replace((exp / "a.parquet").with_name(temps["a.parquet"]), exp / "a.parquet")
    journal = {"replace": [[tmp, name] for name, tmp in temps.items()] + [["x.part", "../outside"]]}
    (exp / COMMIT_JOURNAL).write_text(json.dumps(journal))
    (tmp_path / "outside").write_text("untouched")
    assert finish_interrupted_commit(exp) is True
    assert {n: (exp / n).read_text() for n in temps} == {n: f"new {n}" for n in temps}
    assert not (exp / COMMIT_JOURNAL).exists() and not list(exp.rglob(f"{TEMP_PREFIX}*"))
    assert (tmp_path / "outside").read_text() == "untouched"
    assert finish_interrupted_commit(exp) is False
    (exp / COMMIT_JOURNAL).write_text('{"replace": [["a')  # never complete (it is written atomically): ignored
    assert finish_interrupted_commit(exp) is False and not (exp / COMMIT_JOURNAL).exists()
    assert (exp / "README.md").read_text() == "new README.md"
