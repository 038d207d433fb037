"""No per-entity SQL statement scans a table that grows with the Hub (issue 14: a whole-Hub mirror).

A statement that runs once per entity and scans `pins` costs O(N) each time, O(N^2) over a crawl: invisible on a
replica of hundreds, hours at 5 million. Real `scrapy` subprocesses (a full crawlall with files, previews, IPFS and
provenance; the same again with nothing changed; an incremental one after the Hub changed; verify and export) run
with every SQLite statement traced (a `sitecustomize` on the children's path wraps `sqlite3.connect`); every
statement that ran at least once per entity is then planned (`EXPLAIN QUERY PLAN`) against the state the crawls
left, and none may scan a per-entity table.
"""

from __future__ import annotations

import collections
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hfscraper.ipfs.backends import BACKENDS
from hfscraper.ipfs.pins import PIN_BACKENDS
from tests.support.crawl import REPO_ROOT, _scrapy_command, crawl, crawl_env, public
from tests.support.replica import ReplicaHandle, run_replica

MODELS, DATASETS, SPACES = 90, 30, 30
ENTITIES = MODELS + DATASETS + SPACES
#: Tables with a row (or more) per entity or per file.
GROWING = ("entities", "cids", "pins", "files", "request_keys", "provenance_nodes", "provenance_edges")

SITECUSTOMIZE = """
import atexit, os, sqlite3, threading
_lock = threading.Lock()
_log = open(os.path.join(os.environ["SQL_TRACE_DIR"], f"{os.getpid()}.sql"), "a", encoding="utf-8")
atexit.register(_log.close)
_connect = sqlite3.connect


def _trace(statement):
    with _lock:
        _log.write(" ".join(statement.split()) + "\\n")


def connect(*args, **kwargs):
    db = _connect(*args, **kwargs)
    db.set_trace_callback(_trace)
    return db


sqlite3.connect = connect
"""


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=MODELS, datasets=DATASETS, spaces=SPACES, seed=21
    ) as hub:
        yield hub


def shape(statement: str) -> str:
    """The statement with its literals replaced, so one statement with different values counts as one."""
    statement = re.sub(r"'(?:[^']|'')*'", "?", statement)
    statement = re.sub(r"\bX'[0-9A-Fa-f]*'", "?", statement)
    statement = re.sub(r"(?<![\w.])-?\d+(?:\.\d+)?\b", "?", statement)
    return re.sub(r"\((?:\?, )+\?\)", "(?...)", statement)


def scanned_tables(db: sqlite3.Connection, statement: str) -> list[str]:
    """The per-entity tables (or their indexes) the statement's plan walks from end to end."""
    try:
        plan = db.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
    except sqlite3.Error:
        return []  # a temporary table or a statement of another database: not the state's
    return [table for *_, detail in plan for table in GROWING if re.match(rf"SCAN {table}\b", detail)]


def test_the_backends_a_pin_can_name_are_the_backends() -> None:
    assert set(PIN_BACKENDS) == {cls.name for cls in BACKENDS.values()}


def test_no_statement_run_per_entity_scans_a_table_that_grows_with_the_hub(
    replica: ReplicaHandle, tmp_path: Path
) -> None:
    trace = tmp_path / "trace"
    trace.mkdir()
    (trace / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    env = {"PYTHONPATH": f"{trace}:{REPO_ROOT}", "SQL_TRACE_DIR": str(trace)}
    output = tmp_path / "out"

    def crawlall(*args: str) -> None:
        result = crawl(replica, "", output, *args, command_name="crawlall", env_overrides=env)
        assert result.returncode == 0, result.stderr[-3000:]

    crawlall()
    crawlall()  # nothing changed: every entity's seal is checked
    replica.mutate("model", touch=[m["id"] for m in public(replica.truth, "model")[:20]])
    crawlall("since=auto")
    settings = ["-s", f"HFSCRAPER_OUTPUT_DIR={output}", "-s", f"HFSCRAPER_STATE_DIR={tmp_path / 'state'}"]
    for command in (["verify"], ["export", "-s", f"HFSCRAPER_EXPORT_DIR={tmp_path / 'export'}"]):
        done = subprocess.run(
            [*_scrapy_command(), *command, *settings], cwd=REPO_ROOT, env={**crawl_env(replica, output), **env},
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]

    runs: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}
    for log in trace.glob("*.sql"):
        for line in log.read_text(encoding="utf-8").splitlines():
            key = shape(line)
            runs[key] += 1
            example.setdefault(key, line)
    per_entity = [key for key, count in runs.items() if count >= ENTITIES]
    assert len(per_entity) >= 10, f"the trace caught too few statements to mean anything: {runs.most_common(5)}"

    (state_file,) = (tmp_path / "state").glob("*.sqlite3")
    db = sqlite3.connect(f"file:{state_file}?mode=ro", uri=True)
    scans = {key: (runs[key], scanned) for key in per_entity if (scanned := scanned_tables(db, example[key]))}
    assert not scans, "statements run once per entity or more that scan a table growing with the Hub:\n" + "\n".join(
        f"{count}x scans {', '.join(tables)}: {key}" for key, (count, tables) in scans.items()
    )
