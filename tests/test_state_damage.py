"""A damaged crawl state file (4 KiB overwritten in the middle of a real one): every command says so in one line
naming the file and what to do, exits 1, shows no traceback, and no crawl reports anything complete."""

from __future__ import annotations

import random
import shutil
import sqlite3
from pathlib import Path

import pytest

from hfscraper.state import state_file_path
from tests.support.crawl import METADATA_ONLY, crawl
from tests.support.replica import ReplicaHandle, replica_fixture

replica = replica_fixture(models=30, datasets=15, spaces=15, seed=10)


@pytest.fixture(scope="module")
def crawled(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding `out/` and `state/` of a complete crawlall (files on: the state has every table filled)."""
    base = tmp_path_factory.mktemp("crawled")
    result = crawl(replica, "", base / "out", command_name="crawlall", settings={"HFSCRAPER_PREVIEWS_ENABLED": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    return base


def _real_problems(path: Path) -> list[str]:
    # SQLite 3.40 reports a false "NULL value in ..." for a WITHOUT ROWID table; only the other answers count.
    try:
        db = sqlite3.connect(path)
        try:
            rows = [r[0] for r in db.execute("PRAGMA integrity_check(1000000)")]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [r for r in rows if r != "ok" and not r.startswith("NULL value in ")]


def damage(state_file: Path) -> None:
    """Overwrite 4 KiB in the middle of the file with random bytes, on a page SQLite uses (checked)."""
    original = state_file.read_bytes()
    pages = len(original) // 4096
    rng = random.Random(4096)
    for page in sorted(range(1, pages), key=lambda p: abs(p - pages // 2)):
        data = bytearray(original)
        data[page * 4096 : (page + 1) * 4096] = rng.randbytes(4096)
        state_file.write_bytes(bytes(data))
        if _real_problems(state_file):
            return
    raise AssertionError(f"no page of {state_file} is checked by SQLite")


@pytest.fixture
def damaged(crawled: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the crawl's output and a damaged copy of its state: `(output folder, state file)`."""
    shutil.copytree(crawled / "out", tmp_path / "out", symlinks=True)
    (original,) = (crawled / "state").glob("*.sqlite3")
    # The state file is named after the output folder's path: the copy's state is the one of the copied folder.
    state_file = state_file_path(tmp_path / "state", tmp_path / "out")
    state_file.parent.mkdir()
    shutil.copyfile(original, state_file)  # the crawl checkpointed its WAL into the file when it closed
    damage(state_file)
    return tmp_path / "out", state_file


def _assert_one_line(stderr: str, state_file: Path) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr[-3000:]
    assert str(state_file) in lines[0] and "damaged" in lines[0] and "aside" in lines[0], lines[0]


@pytest.mark.parametrize(
    ("command_name", "spider", "options"),
    [
        ("status", "", []),
        ("status", "", ["--json"]),
        ("export", "", []),
        ("lineage", "", ["some/model"]),
        ("crawl", "models", []),
        ("crawlall", "", []),
    ],
)
def test_a_damaged_state_gives_one_line_and_exit_1(
    replica: ReplicaHandle, damaged: tuple[Path, Path], command_name: str, spider: str, options: list[str]
) -> None:
    out, state_file = damaged
    settings = {**METADATA_ONLY, "HFSCRAPER_EXPORT_DIR": str(out.parent / "export")}
    result = crawl(replica, spider, out, settings=settings, command_name=command_name, options=options)
    assert result.returncode == 1, result.stderr[-3000:]
    _assert_one_line(result.stderr, state_file)
    assert "complete (" not in result.stderr  # no crawl reports a type complete
    assert not (out.parent / "export").exists()
