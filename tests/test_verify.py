"""`scrapy verify` against a real crawl of the replica (files and CARs on): clean on a clean tree; every kind of
tampering found exactly once, naming its entity; `--repair` and one plain re-crawl restore the tree byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.hub import entity_folder_name
from hfscraper.state import StateStore, state_file_path, write_tombstone
from hfscraper.verify import Verifier
from tests.support.crawl import REPO_ROOT, _scrapy_command, crawl
from tests.support.replica import ReplicaHandle, replica_fixture

replica = replica_fixture(models=30, datasets=6, spaces=0, seed=5)
SPIDERS = ("models", "datasets")
PAGE_SIZE = 10


@dataclass
class Archive:
    root: Path
    out: Path
    state_dir: Path

    @property
    def state_file(self) -> Path:
        return state_file_path(self.state_dir, self.out)

    def folder(self, repo_type: str, repo_id: str) -> Path:
        return self.out / OUTPUT_FOLDERS[repo_type] / entity_folder_name(repo_id)

    def car(self, repo_type: str, repo_id: str) -> Path:
        return self.out / "car" / OUTPUT_FOLDERS[repo_type] / f"{entity_folder_name(repo_id)}.car"


#: One CAR per entity here (what these tests tamper with); tests/test_verify_packs.py checks the packs.
ENTITY_LAYOUT = {"HFSCRAPER_IPFS_CAR_LAYOUT": "entity"}


def run_crawls(hub: ReplicaHandle, out: Path, settings: dict[str, str] | None = None) -> None:
    for spider in SPIDERS:
        result = crawl(hub, spider, out, page_size=PAGE_SIZE, settings=ENTITY_LAYOUT if settings is None else settings)
        assert result.returncode == 0, result.stderr[-3000:]


def verify(archive: Archive, *options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [*_scrapy_command(), "verify", *options, "-s", f"HFSCRAPER_OUTPUT_DIR={archive.out}",
               "-s", f"HFSCRAPER_STATE_DIR={archive.state_dir}"]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("HFSCRAPER_", "HF_"))}
    return subprocess.run(command, cwd=REPO_ROOT, env={**environment, **(env or {})}, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def tree(root: Path, leave_out: tuple[str, ...] = ("provenance/", ".tmp/", "car/.tmp/")) -> dict[str, bytes]:
    """Every file under *root* by relative path (the provenance rebuild's files left out)."""
    files = {}
    for top, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(top, name), root).replace(os.sep, "/")
            if not rel.startswith(leave_out):
                files[rel] = Path(top, name).read_bytes()
    return files


def stored_files(archive: Archive, repo_type: str) -> dict[str, list[tuple[str, int]]]:
    """{id: [(path, size)]} of the downloaded files the state records for live entities of a type."""
    db = sqlite3.connect(archive.state_file)
    try:
        rows = db.execute(
            "SELECT id, path, size FROM files WHERE repo_type = ? AND status IN ('downloaded', 'unchanged') "
            "AND size > 0 ORDER BY id, path",
            (repo_type,),
        ).fetchall()
    finally:
        db.close()
    found: dict[str, list[tuple[str, int]]] = {}
    for repo_id, path, size in rows:
        found.setdefault(repo_id, []).append((path, size))
    return found


def entity_ids(archive: Archive, repo_type: str) -> list[str]:
    db = sqlite3.connect(archive.state_file)
    try:
        return [r[0] for r in db.execute("SELECT id FROM entities WHERE repo_type = ? ORDER BY id", (repo_type,))]
    finally:
        db.close()


@pytest.fixture(scope="module")
def archive(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    root = tmp_path_factory.mktemp("verify")
    result = Archive(root, root / "out", root / "state")
    run_crawls(replica, result.out)
    yield result


def test_a_clean_tree_has_no_problem(archive: Archive) -> None:
    proc = verify(archive)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = proc.stdout.splitlines()
    n = len(entity_ids(archive, "model")) + len(entity_ids(archive, "dataset"))
    files = sum(len(v) for t in ("model", "dataset") for v in stored_files(archive, t).values())
    assert line.startswith(f"verify: {n} entities checked, ") and ": 0 problems" in line
    assert files and f" {files} files" in line or files == 0
    assert proc.stderr == ""
    report = json.loads(verify(archive, "--json", "--type", "dataset").stdout)
    assert report["problems"] == [] and report["entities"] == len(entity_ids(archive, "dataset"))
    assert report["types"] == ["dataset"]


def test_progress_is_reported_while_reading(archive: Archive) -> None:
    seen: list[tuple[int, int]] = []
    store = StateStore(archive.state_file, create=False)
    try:
        verifier = Verifier(archive.out, store, ["model"], workers=1, progress_interval=0,
                            progress=lambda summary, read: seen.append((summary.entities, read)))  # fmt: skip
        assert list(verifier) == []
    finally:
        store.close()
    assert len(seen) >= 2 and seen == sorted(seen) and seen[-1][1] <= verifier.summary.bytes
    assert verifier.summary.entities == len(entity_ids(archive, "model"))


def test_bad_usage_exits_2(archive: Archive) -> None:
    for options in (["--type", "widgets"], ["--type", "model,bogus"], ["--no-such-option"], ["extra-argument"]):
        proc = verify(archive, *options)
        assert proc.returncode == 2, (options, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert "unknown type widgets" in verify(archive, "--type", "widgets").stderr


def test_no_or_damaged_state_is_one_line_exit_1(archive: Archive, tmp_path: Path) -> None:
    other = Archive(tmp_path, tmp_path / "out", tmp_path / "state")
    proc = verify(other)
    assert proc.returncode == 1 and proc.stdout == ""
    assert (
        len(proc.stderr.splitlines()) == 1 and "no crawl state" in proc.stderr and str(other.state_file) in proc.stderr
    )
    other.state_dir.mkdir()
    data = bytearray(archive.state_file.read_bytes())
    data[:4096] = b"\x5a" * 4096  # the header page: not a database any more
    other.state_file.write_bytes(bytes(data))
    proc = verify(other)
    assert proc.returncode == 1 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert str(other.state_file) in proc.stderr and "Traceback" not in proc.stderr


def test_tampering_found_once_each_and_repaired_by_a_crawl(archive: Archive, replica: ReplicaHandle) -> None:
    before = tree(archive.out)
    with_files = stored_files(archive, "model")
    models = [i for i in entity_ids(archive, "model") if i in with_files]
    assert len(models) >= 10, "the replica should give enough models with downloaded files"
    (changed, truncated, deleted_file, no_car, wrong_car, garbled, other_id, wrong_cid, extra, no_folder) = models[:10]
    with_preview = [
        i for i in entity_ids(archive, "dataset") if (archive.folder("dataset", i) / "preview_info.json").exists()
    ]
    assert with_preview, "the replica's datasets should have previews"
    dataset = with_preview[0]

    def first_file(repo_id: str) -> tuple[Path, str, int]:
        path, size = with_files[repo_id][0]
        return archive.folder("model", repo_id) / path, path, size

    target, _, size = first_file(changed)
    data = bytearray(target.read_bytes())
    data[size // 2] ^= 0x01
    target.write_bytes(bytes(data))
    target, _, size = first_file(truncated)
    os.truncate(target, size - 1)
    first_file(deleted_file)[0].unlink()
    archive.car("model", no_car).unlink()
    shutil.copyfile(archive.car("model", wrong_cid), archive.car("model", wrong_car))
    (archive.folder("model", garbled) / "metadata.json").write_text('{"id": "trunc', encoding="utf-8")
    meta = archive.folder("model", other_id) / "metadata.json"
    payload = json.loads(meta.read_text(encoding="utf-8"))
    payload["id"] = "someone-else/entirely"
    meta.write_text(json.dumps(payload), encoding="utf-8")
    cid_file = archive.folder("model", wrong_cid) / "ipfs_cid.txt"
    cid_file.write_bytes((archive.folder("model", changed) / "ipfs_cid.txt").read_bytes())
    (archive.folder("model", extra) / "notes.txt").write_text("not from the Hub\n", encoding="utf-8")
    shutil.rmtree(archive.folder("model", no_folder))
    preview = archive.folder("dataset", dataset) / "preview_info.json"  # written by the crawl: only the CID shows it
    preview.write_bytes(preview.read_bytes().replace(b"{", b"{ ", 1))

    expected = {
        (changed, "hash"), (truncated, "size"), (deleted_file, "missing_file"), (no_car, "car"), (wrong_car, "car"),
        (garbled, "metadata"), (other_id, "metadata_id"), (wrong_cid, "cid_file"), (extra, "stray_file"),
        (no_folder, "missing_folder"),
    }  # fmt: skip
    proc = verify(archive, "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    found = [(p["id"], p["kind"]) for p in report["problems"] if p["type"] == "model"]
    assert sorted(found) == sorted(expected)
    by_dataset = [(p["id"], p["kind"]) for p in report["problems"] if p["type"] == "dataset"]
    assert by_dataset == [(dataset, "cid")]

    text = verify(archive)
    assert text.returncode == 1
    lines = text.stdout.splitlines()
    assert len(lines) == len(report["problems"]) + 1 and "problems in" in lines[-1]
    path, rel, size = first_file(changed)
    assert f"models {changed} ({archive.folder('model', changed)}): {rel}: SHA-256 " in text.stdout
    assert f"models {no_folder} ({archive.folder('model', no_folder)}): folder missing" in text.stdout
    assert f"{first_file(truncated)[1]}: {first_file(truncated)[2] - 1} bytes, expected" in text.stdout

    repaired = verify(archive, "--repair")
    assert repaired.returncode == 1
    n = len(expected) + len(by_dataset)
    assert f"marked {n} entities for the next `scrapy crawl`" in repaired.stdout.splitlines()[-1]
    run_crawls(replica, archive.out)  # plain runs: DELTAFETCH_ENABLED as by default
    clean = verify(archive)
    assert clean.returncode == 0, clean.stdout
    assert tree(archive.out) == before


def test_tombstoned_entities_need_not_be_whole(archive: Archive, tmp_path: Path) -> None:
    # A copy of the archive whose state marks two models deleted: what they lack is not a problem, what they
    # hold is still checked; --repair does not mark them (no crawl lists them).
    copy = Archive(tmp_path, tmp_path / "out", tmp_path / "state")
    shutil.copytree(archive.out, copy.out)
    copy.state_dir.mkdir()
    shutil.copyfile(archive.state_file, copy.state_file)
    with_files = stored_files(copy, "model")
    gone, damaged = sorted(with_files)[:2]
    store = StateStore(copy.state_file)
    try:
        crawl_id = store.crawls()[-1].crawl_id
        store.db.execute("UPDATE entities SET seen_crawl_id = NULL WHERE repo_type = 'model' AND id IN (?, ?)",
                         (gone, damaged))  # fmt: skip
        assert store.tombstone("model", crawl_id, [gone, damaged], "2026-01-01T00:00:00.000Z") == 2
        store.db.execute("UPDATE pins SET car_path = replace(car_path, ?, ?)", (str(archive.out), str(copy.out)))
    finally:
        store.close()
    for repo_id in (gone, damaged):
        assert write_tombstone(copy.out, "model", repo_id, "2026-01-01T00:00:00.000Z")
    # The first: its CAR and a file gone (nothing to report); the second: a file changed (reported).
    copy.car("model", gone).unlink()
    (copy.folder("model", gone) / with_files[gone][0][0]).unlink()
    target = copy.folder("model", damaged) / with_files[damaged][0][0]
    target.write_bytes(b"x" * with_files[damaged][0][1])
    proc = verify(copy, "--repair", "--type", "models")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (problem, summary) = proc.stdout.splitlines()
    assert problem.startswith(f"models {damaged} (") and "SHA-256" in problem
    assert "marked 0 entities" in summary and "1 deleted on the Hub cannot be restored" in summary
    shutil.rmtree(copy.folder("model", gone))
    assert verify(copy, "--type", "model").stdout.count("\n") == 2
