"""The files stage end to end: real `scrapy crawl` subprocesses against the replica, checked against its truth.

Every downloaded file's SHA-256 equals the replica's ground truth; a file the replica corrupts is never kept
(retried, counted, and the crawl says it is incomplete); hostile file names never lead outside the entity
folder; the token goes to the Hub only; an unchanged Hub costs no file request on the next crawl.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfscraper.hub import entity_folder_name, is_plain_id
from hfscraper.repofiles import RESERVED_NAMES, UnsafePathError, check_repo_path, matches, quote_repo_path
from tests.support.crawl import (
    REPO_ROOT,
    CrawlResult,
    _scrapy_command,
    crawl,
    crawl_command,
    crawl_env,
    parse_stats,
    public,
)
from tests.support.replica import ReplicaHandle, run_replica

SEED = 21
TOKEN = "hf_approved_files_token"
ALL = {"HFSCRAPER_FILES_MODELS": "*"}  # every file of a model, LFS weights included
DEFAULTS = {
    "model": ["README.md", "config.json", "generation_config.json", "tokenizer_config.json"],
    "dataset": ["README.md", "dataset_info.json", "dataset_infos.json"],
    "space": ["README.md", "app.py", "requirements.txt"],
}
HOSTILE_MODEL = "hostile-files/paths"
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=40, datasets=24, spaces=16, seed=SEED,
        hostile_files=True, approved_tokens=[TOKEN],
    ) as hub:  # fmt: skip
        yield hub


# -- helpers ---------------------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_on_disk(folder: Path) -> dict[str, Path]:
    """Relative path -> file, for every file under an entity folder but the crawl's own."""
    found = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in RESERVED_NAMES:
            found[rel] = path
    return found


def safe(path: str, seen: set[str]) -> bool:
    try:
        check_repo_path(path)
    except UnsafePathError:
        return False
    if path.casefold() in seen:
        return False
    seen.add(path.casefold())
    return True


def expected_files(entity: dict[str, Any], patterns: list[str], *, token: bool = False) -> dict[str, dict[str, Any]]:
    """What a crawl must have stored for this entity: its matching files with safe names, unless the Hub refuses."""
    if entity["disabled"] or (entity["gated"] and not token):
        return {}
    seen: set[str] = set()
    chosen = [f for f in entity["files"] if matches(f["path"], patterns)]
    return {f["path"]: f for f in sorted(chosen, key=lambda f: f["path"]) if safe(f["path"], seen)}


def assert_matches_truth(result: CrawlResult, truth: dict[str, Any], repo_type: str, patterns: list[str],
                         *, token: bool = False) -> int:  # fmt: skip
    """Every public entity's folder holds exactly its expected files, byte for byte; returns how many."""
    checked = 0
    for entity in public(truth, repo_type):
        folder = result.output / PLURAL[repo_type] / entity_folder_name(entity["id"])
        if not (folder / "metadata.json").is_file():
            continue  # a hostile id the store refused
        on_disk = files_on_disk(folder)
        expected = expected_files(entity, patterns, token=token) if is_plain_id(entity["id"]) else {}
        on_disk = {k: v for k, v in on_disk.items() if k not in ("preview_info.json",)}
        assert set(on_disk) == set(expected), (entity["id"], sorted(on_disk), sorted(expected))
        for rel, path in on_disk.items():
            assert path.stat().st_size == expected[rel]["size"], (entity["id"], rel)
            assert sha256_of(path) == expected[rel]["sha256"], (entity["id"], rel)
            checked += 1
    return checked


def feed(result: CrawlResult, name: str = "feed.jsonl") -> dict[str, dict[str, Any]]:
    path = result.output.parent / name
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {row["id"]: row for row in rows}


def status_of(replica: ReplicaHandle, result: CrawlResult) -> tuple[int, dict[str, Any]]:
    """`scrapy status --json` of the crawl's output folder: (exit code, report)."""
    status = subprocess.run(
        [*_scrapy_command(), "status", "--json", "-s", f"HFSCRAPER_OUTPUT_DIR={result.output}",
         "-s", f"HFSCRAPER_STATE_DIR={result.output.parent / 'state'}"],
        cwd=REPO_ROOT, env=crawl_env(replica, result.output), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return status.returncode, json.loads(status.stdout)


def file_requests(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests for file bytes or their redirects: resolve, resolve-cache, the CDN."""
    return [
        e for e in entries
        if e["origin"] == "cdn" or "/resolve/" in e["path"] or e["path"].startswith("/api/resolve-cache/")
    ]  # fmt: skip


def run(replica: ReplicaHandle, spider: str, out: Path, settings: dict[str, str] | None = None,
        **kwargs: Any) -> CrawlResult:  # fmt: skip
    return crawl(replica, spider, out, settings=settings, options=["-O", f"{out.parent / 'feed.jsonl'}:jsonlines"],
                 **kwargs)  # fmt: skip


# -- a whole mirror, then again ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirror(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("mirror")
    mark = replica.mark()
    results = {
        "model": run(replica, "models", root / "out", ALL),
        "dataset": crawl(replica, "datasets", root / "out"),
        "space": crawl(replica, "spaces", root / "out"),
    }
    return {"root": root, "results": results, "requests": replica.requests(since=mark)}


def test_every_downloaded_file_equals_the_truth(replica: ReplicaHandle, mirror: dict[str, Any]) -> None:
    truth = replica.truth
    checked = 0
    for repo_type, result in mirror["results"].items():
        assert result.returncode == 0, result.stderr[-3000:]
        patterns = ["*"] if repo_type == "model" else DEFAULTS[repo_type]
        checked += assert_matches_truth(result, truth, repo_type, patterns)
        assert result.stat("hfscraper/files/downloaded") > 0
        assert result.stat("hfscraper/files/failed") is None and result.stat("hfscraper/files/mismatch") is None
    assert checked == sum(r.stat("hfscraper/files/downloaded") for r in mirror["results"].values())
    lfs = [f for e in public(truth, "model") for f in expected_files(e, ["*"]).values() if f["lfs"]]
    assert lfs, "the mirror should hold LFS files (from the CDN) too"


def test_item_files_record_what_was_done(replica: ReplicaHandle, mirror: dict[str, Any]) -> None:
    rows = feed(mirror["results"]["model"])
    truth = {e["id"]: e for e in public(replica.truth, "model")}
    statuses: dict[str, int] = {}
    for repo_id, row in rows.items():
        for record in row["files"] or ():
            statuses[record["status"]] = statuses.get(record["status"], 0) + 1
            if record["status"] == "downloaded":
                known = next(f for f in truth[repo_id]["files"] if f["path"] == record["path"])
                assert [record[k] for k in ("size", "sha256", "lfs")] == [known[k] for k in ("size", "sha256", "lfs")]
                if not known["lfs"]:
                    assert record["blob_sha1"] == known["blob_sha1"]
            else:
                assert record["reason"], record
        assert "files" not in json.loads(
            (mirror["results"]["model"].output / "models" / entity_folder_name(repo_id) / "metadata.json").read_text()
        ), "metadata.json stays the Hub's own JSON"
    assert statuses["downloaded"] == mirror["results"]["model"].stat("hfscraper/files/downloaded")
    assert statuses["skipped"] >= 1
    # The crawl state keeps the same outcomes, for `scrapy status`.
    returncode, report = status_of(replica, mirror["results"]["model"])
    assert returncode == 0, report
    files = report["files"]["model"]
    assert {k: files[k] for k in statuses} == statuses and files["failed"] == 0
    assert sum(files["skipped_by_reason"].values()) == statuses["skipped"]
    assert files["skipped_by_reason"]["gated"] == mirror["results"]["model"].stat("hfscraper/files/skipped/gated")
    assert files["bytes"] == sum(
        r["size"] for row in rows.values() for r in row["files"] or () if r["status"] in ("downloaded", "unchanged")
    )


def test_gated_and_disabled_files_are_skipped_with_their_reason(replica: ReplicaHandle, mirror: dict[str, Any]) -> None:
    result = mirror["results"]["model"]
    rows = feed(result)
    entities = [e for e in public(replica.truth, "model") if e["gated"] or e["disabled"]]
    assert any(e["gated"] for e in entities) and any(e["disabled"] for e in entities)
    for entity in entities:
        reason = "disabled" if entity["disabled"] else "gated"
        records = rows[entity["id"]]["files"]
        assert records and {(r["status"], r["reason"]) for r in records} == {("skipped", reason)}, records
        folder = result.output / "models" / entity_folder_name(entity["id"])
        assert (folder / "metadata.json").is_file() and not files_on_disk(folder)
    gated_files = sum(len(e["files"]) for e in entities if e["gated"] and not e["disabled"])
    assert result.stat("hfscraper/files/skipped/gated") == gated_files
    # Never retried: one resolve request per refused file.
    refused = [
        e for e in mirror["requests"]
        if e["status"] in (401, 403) and "/resolve/" in e["path"]
        and not e["path"].startswith(("/datasets/", "/spaces/"))
    ]  # fmt: skip
    assert len(refused) == sum(len(e["files"]) for e in entities)


def test_hostile_file_names_stay_inside_the_entity_folder(replica: ReplicaHandle, mirror: dict[str, Any]) -> None:
    result = mirror["results"]["model"]
    root: Path = mirror["root"]
    folder = result.output / "models" / entity_folder_name(HOSTILE_MODEL)
    truth = next(e for e in replica.truth["models"] if e["id"] == HOSTILE_MODEL)
    stored = files_on_disk(folder)
    expected = expected_files(truth, ["*"])
    assert set(stored) == set(expected)
    assert {"ok/nested/deep/file.json", "spaces in name.txt", "percent%2e%2e%2fname.txt", "question?mark.txt",
            "hash#mark.txt", "unicode-caf\u00e9.txt", "CaseName.txt"} <= set(stored)  # fmt: skip
    assert json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["id"] == HOSTILE_MODEL
    assert not (folder / "Preview_Info.json").exists()
    for name in RESERVED_NAMES:  # none holds the hostile file of that name (ipfs_cid.txt is the IPFS stage's)
        assert not (folder / name).exists() or not (folder / name).read_bytes().startswith(b"hostile file")
    records = {r["path"]: r for r in feed(result)[HOSTILE_MODEL]["files"]}
    refused = [p for p, r in records.items() if r["reason"] == "unsafe_path"]
    assert len(refused) == len(truth["files"]) - len(expected)
    assert result.stat("hfscraper/files/skipped/unsafe_path") == len(refused)
    warnings = re.findall(r"WARNING: Skipped file .* of model hostile-files/paths \(unsafe_path\)", result.stderr)
    assert len(warnings) == len(refused)
    # Nothing anywhere but in the output, the state and the feed: walk everything the crawls wrote.
    allowed = (root / "out", root / "state", root / "hf-home")
    for path in root.rglob("*"):
        assert path.parent == root or any(path.is_relative_to(a) for a in allowed), path
    assert not any(p.name in ("escape.txt", "passwd-copy", "y.txt", "x.txt") for p in root.rglob("*"))
    assert list((result.output / ".tmp").iterdir()) == []  # no partial download is left behind


def test_the_token_goes_to_the_hub_only(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    result = run(replica, "models", tmp_path / "out", ALL, env_overrides={"HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr[-3000:]
    assert_matches_truth(result, replica.truth, "model", ["*"], token=True)
    gated = [e for e in public(replica.truth, "model") if e["gated"] and not e["disabled"]]
    assert all(files_on_disk(result.output / "models" / entity_folder_name(e["id"])) for e in gated)
    requests = file_requests(replica.requests(since=mark))
    hub = [e for e in requests if e["origin"] == "hub"]
    cdn = [e for e in requests if e["origin"] == "cdn"]
    assert hub and all(e["auth"] for e in hub), "the Hub's resolve and resolve-cache requests carry the token"
    assert cdn and not any(e["auth"] for e in cdn), "the CDN (another host) never gets the token"
    assert result.stat("hfscraper/auth/withheld") is None
    assert TOKEN not in result.stderr and TOKEN not in (tmp_path / "feed.jsonl").read_text(encoding="utf-8")


def test_a_token_without_access_gets_gated_files_skipped(replica: ReplicaHandle, tmp_path: Path) -> None:
    result = run(replica, "models", tmp_path / "out", ALL, env_overrides={"HF_TOKEN": "hf_valid_but_not_granted"})
    assert result.returncode == 0, result.stderr[-3000:]
    gated = [e for e in public(replica.truth, "model") if e["gated"] and not e["disabled"]]
    assert result.stat("hfscraper/files/skipped/gated") == sum(len(e["files"]) for e in gated)


def test_a_second_crawl_of_an_unchanged_hub_fetches_no_file(replica: ReplicaHandle, mirror: dict[str, Any]) -> None:
    out = mirror["root"] / "out"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    mark = replica.mark()
    result = run(replica, "models", out, ALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stat("hfscraper/files/downloaded") is None and result.stat("hfscraper/files/entities") is None
    assert result.stat("deltafetch/skipped") == result.stat("hfscraper/spider/items")
    assert file_requests(replica.requests(since=mark)) == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p in before} == before


def test_a_new_commit_with_the_same_files_fetches_no_bytes(replica: ReplicaHandle, mirror: dict[str, Any]) -> None:
    truth = replica.truth
    entity = next(
        e for e in public(truth, "model")
        if not e["gated"] and not e["disabled"] and any(f["lfs"] for f in e["files"]) and e["id"] != HOSTILE_MODEL
        and any(not f["lfs"] for f in expected_files(e, ["*"]).values())
    )  # fmt: skip
    replica.mutate("model", touch=[entity["id"]])
    out = mirror["root"] / "out"
    mark = replica.mark()
    result = run(replica, "models", out, ALL)
    assert result.returncode == 0, result.stderr[-3000:]
    n = len(expected_files(entity, ["*"]))
    assert result.stat("hfscraper/files/unchanged") == n and result.stat("hfscraper/files/downloaded") is None
    requests = file_requests(replica.requests(since=mark))
    # One resolve request per file (its redirect names the checksum); no resolve-cache, no CDN request.
    assert len(requests) == n and all("/resolve/" in e["path"] and e["status"] in (302, 307) for e in requests)
    assert_matches_truth(result, truth, "model", ["*"])


def test_disk_work_goes_to_worker_threads_in_groups(mirror: dict[str, Any]) -> None:
    # Hashing, writing and placing a file is one call in a worker thread, and the calls of one event-loop turn
    # share a thread hop: fewer hops than entities and files (it was two per file and one per entity), and the
    # file outcomes of several entities share a state transaction.
    result = mirror["results"]["model"]
    entities, files = result.stat("hfscraper/files/entities"), result.stat("hfscraper/files/downloaded")
    assert entities and files
    hops = result.stat("hfscraper/files/thread_calls")
    assert hops is not None and 1 <= hops < entities + files, (hops, entities, files)
    writes = result.stat("hfscraper/files/state_writes")
    assert writes is not None and 1 <= writes <= entities, (writes, entities)


def test_a_folder_is_pruned_to_the_listed_commit(replica: ReplicaHandle, mirror: dict[str, Any]) -> None:
    # Files the listed commit does not have (and a planted symlink) go; the chosen files stay, unchanged.
    truth = replica.truth
    entity = next(
        e for e in public(truth, "model")
        if not e["gated"] and not e["disabled"] and e["id"] != HOSTILE_MODEL and expected_files(e, ["*"])
    )  # fmt: skip
    out = mirror["root"] / "out"
    folder = out / "models" / entity_folder_name(entity["id"])
    (folder / "stale.txt").write_bytes(b"not in the repo")
    (folder / "old" / "deep").mkdir(parents=True)
    (folder / "old" / "deep" / "x.json").write_bytes(b"{}")
    (folder / "elsewhere").symlink_to(mirror["root"], target_is_directory=True)
    replica.mutate("model", touch=[entity["id"]])
    result = run(replica, "models", out, ALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stat("hfscraper/files/pruned") == 3
    assert not (folder / "stale.txt").exists() and not (folder / "old").exists()
    assert not (folder / "elsewhere").is_symlink() and mirror["root"].is_dir()
    assert set(files_on_disk(folder)) == set(expected_files(entity, ["*"]))
    assert_matches_truth(result, truth, "model", ["*"])


# -- failures ----------------------------------------------------------------------------------------------------


def _victims(truth: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(entity, git file) and (entity, LFS file) of two ordinary public models."""
    models = [
        e for e in public(truth, "model")
        if not e["gated"] and not e["disabled"] and e["id"] != HOSTILE_MODEL and "/" in e["id"]
    ]  # fmt: skip
    git_owner = next(e for e in models if any(f["path"] == "config.json" for f in e["files"]))
    lfs_owner = next(e for e in models if e is not git_owner and any(f["lfs"] for f in e["files"]))
    git_file = next(f for f in git_owner["files"] if f["path"] == "config.json")
    lfs_file = next(f for f in lfs_owner["files"] if f["lfs"])
    return git_owner, git_file, lfs_owner, lfs_file


def _corrupt_rules(truth: dict[str, Any], count: int | None) -> list[dict[str, Any]]:
    git_owner, _git_file, lfs_owner, lfs_file = _victims(truth)
    return [
        {"kind": "corrupt", "rate": 1.0, "count": count, "origin": "hub",
         "path": f"^/api/resolve-cache/models/{re.escape(git_owner['id'])}/[0-9a-f]{{40}}/config\\.json"},
        {"kind": "corrupt", "rate": 1.0, "count": count, "origin": "cdn",
         "path": f"/{lfs_owner['api']['_id']}/{lfs_file['sha256']}"},
    ]  # fmt: skip


@pytest.mark.parametrize("threshold", ["8388608", "0"], ids=["through-scrapy", "streamed"])
def test_a_corrupted_file_is_never_kept(replica: ReplicaHandle, tmp_path: Path, threshold: str) -> None:
    truth = replica.truth
    git_owner, git_file, lfs_owner, lfs_file = _victims(truth)
    settings = {**ALL, "HFSCRAPER_FILES_STREAM_THRESHOLD": threshold}
    replica.set_faults(_corrupt_rules(truth, None))
    try:
        result = run(replica, "models", tmp_path / "out", settings)
    finally:
        fired = [r["fired"] for r in replica.faults()]
        replica.set_faults([])
    attempts = 3  # HFSCRAPER_FILES_RETRIES = 2
    assert fired == [attempts, attempts]
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stat("hfscraper/files/mismatch") == 2 * attempts
    assert result.stat("hfscraper/files/retries") == 2 * (attempts - 1)
    assert result.stat("hfscraper/files/failed") == 2 and result.stat("hfscraper/files/failed/mismatch") == 2
    if threshold == "0":
        assert result.stat("hfscraper/files/streamed") > 0
    for owner, known in ((git_owner, git_file), (lfs_owner, lfs_file)):
        folder = result.output / "models" / entity_folder_name(owner["id"])
        assert not (folder / known["path"]).exists(), "a file that failed its checksum is never kept"
        assert owner["id"] not in feed(result), "an entity with a failed file is not passed on"
        assert re.search(rf"ERROR: File {re.escape(known['path'])} of model {re.escape(owner['id'])} not downloaded "
                         r"\(mismatch\)", result.stderr)  # fmt: skip
    assert "hfscraper: models: INCOMPLETE" in result.stderr
    returncode, report = status_of(replica, result)
    assert returncode == 1 and report["complete"] is False
    assert report["files"]["model"]["failed"] == 2 and report["files"]["model"]["failed_by_reason"] == {"mismatch": 2}
    assert list((result.output / ".tmp").iterdir()) == []
    # Every file elsewhere is fine, and the next run (the Hub healed) completes what is missing.
    again = run(replica, "models", tmp_path / "out", settings)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stat("hfscraper/files/downloaded") == 2
    assert_matches_truth(again, truth, "model", ["*"])
    returncode, report = status_of(replica, again)
    assert returncode == 0 and report["files"]["model"]["failed"] == 0


def test_a_file_corrupted_once_is_fetched_again(replica: ReplicaHandle, tmp_path: Path) -> None:
    truth = replica.truth
    replica.set_faults(_corrupt_rules(truth, 1))
    try:
        result = run(replica, "models", tmp_path / "out", ALL)
    finally:
        fired = [r["fired"] for r in replica.faults()]
        replica.set_faults([])
    assert fired == [1, 1]
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stat("hfscraper/files/mismatch") == 2 and result.stat("hfscraper/files/retries") == 2
    assert result.stat("hfscraper/files/failed") is None
    assert len(re.findall(r"WARNING: File .* fetching it again \(attempt 2 of 3\)", result.stderr)) == 2
    assert_matches_truth(result, truth, "model", ["*"])


def test_oversized_files_are_skipped_before_their_bytes(replica: ReplicaHandle, tmp_path: Path) -> None:
    limit = 4096
    mark = replica.mark()
    result = run(replica, "models", tmp_path / "out", {**ALL, "HFSCRAPER_FILES_MAX_SIZE": str(limit)})
    assert result.returncode == 0, result.stderr[-3000:]
    truth = replica.truth
    chosen = [f for e in public(truth, "model") for f in expected_files(e, ["*"]).values()]
    big_lfs = [f for f in chosen if f["lfs"] and f["size"] > limit]
    big_git = [f for f in chosen if not f["lfs"] and f["size"] > limit]
    assert big_lfs and result.stat("hfscraper/files/skipped/too_large") == len(big_lfs) + len(big_git)
    requests = replica.requests(since=mark)
    cdn = [e for e in requests if e["origin"] == "cdn"]
    assert len(cdn) == sum(1 for f in chosen if f["lfs"] and f["size"] <= limit), "no CDN request for a big file"
    for entity in public(truth, "model"):
        folder = result.output / "models" / entity_folder_name(entity["id"])
        assert all(p.stat().st_size <= limit for p in files_on_disk(folder).values())


def test_paths_info_names_sizes_and_hashes_up_front(replica: ReplicaHandle, tmp_path: Path) -> None:
    limit = 4096
    settings = {**ALL, "HFSCRAPER_FILES_MAX_SIZE": str(limit), "HFSCRAPER_FILES_SIZES_FROM": "paths-info"}
    mark = replica.mark()
    result = run(replica, "models", tmp_path / "out", settings)
    assert result.returncode == 0, result.stderr[-3000:]
    truth = replica.truth
    requests = replica.requests(since=mark)
    posts = [e for e in requests if e["method"] == "POST" and "/paths-info/" in e["path"]]
    with_files = [e for e in public(truth, "model") if e["files"] and is_plain_id(e["id"])]
    assert len(posts) == len(with_files) == result.stat("hfscraper/files/paths_info/requests")
    chosen = {(e["id"], f["path"]): f for e in public(truth, "model") for f in expected_files(e, ["*"]).values()}
    big = {f"/{repo_id}/resolve/" + "{sha}/" + quote_repo_path(path) for (repo_id, path), f in chosen.items()
           if f["size"] > limit}  # fmt: skip
    resolved = {
        re.sub(r"/resolve/[0-9a-f]{40}/", "/resolve/{sha}/", e["path"]) for e in requests if "/resolve/" in e["path"]
    }
    assert big and not big & resolved, "an oversized file costs no resolve request"
    # Again, with every file in place: paths-info alone says they are unchanged.
    mark = replica.mark()
    again = run(replica, "models", tmp_path / "out", {**settings, "DELTAFETCH_ENABLED": "false"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stat("hfscraper/files/unchanged") == result.stat("hfscraper/files/downloaded")
    assert [e for e in file_requests(replica.requests(since=mark)) if e["status"] not in (401, 403)] == []


def test_files_can_be_turned_off(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    result = crawl(replica, "spaces", tmp_path / "out", settings={"HFSCRAPER_FILES_ENABLED": "false"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert file_requests(replica.requests(since=mark)) == []
    assert all(set(os.listdir(d)) <= RESERVED_NAMES for d in (result.output / "spaces").iterdir())


def test_crawlall_runs_three_files_stages_side_by_side(replica: ReplicaHandle, tmp_path: Path) -> None:
    # Three spiders in one process share output_dir/.tmp: their partial downloads must never collide.
    settings = {**ALL, "HFSCRAPER_FILES_STREAM_THRESHOLD": "0"}  # every LFS file streams, beside Scrapy's downloads
    result = crawl(replica, "", tmp_path / "out", command_name="crawlall", settings=settings)
    assert result.returncode == 0, result.stderr[-3000:]
    truth = replica.truth
    for repo_type in ("model", "dataset", "space"):
        assert_matches_truth(result, truth, repo_type, ["*"] if repo_type == "model" else DEFAULTS[repo_type])
    assert "ERROR" not in result.stderr.replace("log_count/ERROR", "")
    assert list((result.output / ".tmp").iterdir()) == []


def test_a_graceful_stop_does_not_wait_for_the_resolvers_quota(tmp_path: Path) -> None:
    # Two resolver requests per 10 minutes: the third file would wait that long. A stop fails it instead (nothing
    # can hand a pipeline's request back to the scheduler), and the entity is left for the next run.
    with run_replica(tmp_dir=tmp_path / "replica", models=8, datasets=0, spaces=0, seed=2, quota_resolvers=2,
                     quota_window=600) as hub:  # fmt: skip
        out = tmp_path / "out"
        command = crawl_command("models", out, settings={"HFSCRAPER_RATELIMIT_RESERVE": "0", "LOG_LEVEL": "DEBUG"})
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=crawl_env(hub, out), stderr=subprocess.PIPE, text=True)
        try:
            lines: list[str] = []
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line)
                if "[hfscraper.middlewares.ratelimit] DEBUG: Waiting" in line:
                    break
            started = time.monotonic()
            process.send_signal(signal.SIGINT)
            _, rest = process.communicate(timeout=60)
            stopped_in = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        stats = parse_stats("".join(lines) + rest)
        assert stats["finish_reason"] == "shutdown" and stopped_in < 30
        assert stats["hfscraper/ratelimit/dropped_on_shutdown"] >= 1
        assert stats.get("hfscraper/ratelimit/requeued_on_shutdown") is None
        assert "Traceback" not in rest and "ERROR: File" not in rest
        for entity in public(hub.truth, "model"):  # whatever is on disk is verified and complete
            folder = out / "models" / entity_folder_name(entity["id"])
            known = {f["path"]: f["sha256"] for f in entity["files"]}
            for rel, path in files_on_disk(folder).items() if folder.is_dir() else ():
                assert sha256_of(path) == known[rel]
        assert list((out / ".tmp").iterdir()) == []
