"""A repo that moves on while it is crawled: the files stored are those of the commit its metadata.json names.

The listing gives a model's ``sha``; the files stage fetches ``/resolve/{sha}/...`` at that commit. Between the two
the replica gets a new commit that changes ``README.md`` and an LFS file (``mutate edit``). On the Hub the listed
commit stays readable, so the crawl completes with the listed commit's bytes (not a ``RevisionNotFound`` failure,
and not the new bytes under the old sha); the next crawl brings the new commit's bytes and sha.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from hfscraper.hub import entity_folder_name
from tests.support.crawl import REPO_ROOT, crawl, crawl_command, crawl_env, parse_stats, public
from tests.support.replica import ReplicaHandle, replica_fixture

replica = replica_fixture(models=12, datasets=1, spaces=1, seed=27)
FILES = {"HFSCRAPER_FILES_MODELS": "*", "HFSCRAPER_PREVIEWS_ENABLED": "false"}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_files_are_those_of_the_listed_commit_when_the_repo_moves_on_mid_crawl(
    replica: ReplicaHandle, tmp_path: Path
) -> None:
    entity = next(
        e for e in public(replica.truth, "model")
        if not e["gated"] and not e["disabled"] and e["id"].count("/") == 1
        and any(f["path"] == "README.md" for f in e["files"]) and any(f["lfs"] for f in e["files"])
    )  # fmt: skip
    repo_id, listed_sha = entity["id"], entity["api"]["sha"]
    lfs_path = next(f["path"] for f in entity["files"] if f["lfs"])
    out, log = tmp_path / "out", tmp_path / "run1.log"
    # The target's resolve answers are computed at once and held back 3 s: the new commit lands in between.
    replica.set_faults([{"kind": "latency", "ms": 3000, "origin": "hub", "path": f"^/{re.escape(repo_id)}/resolve/"}])
    try:
        with open(log, "wb") as stderr:
            process = subprocess.Popen(
                crawl_command("models", out, settings=FILES), cwd=REPO_ROOT, env=crawl_env(replica, out),
                stdout=subprocess.DEVNULL, stderr=stderr,
            )  # fmt: skip
        deadline = time.monotonic() + 120
        while not replica.faults()[0]["fired"]:
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)
        edit = {repo_id: {"README.md": "# moved on\n", lfs_path: "new weights\n"}}
        # Two new commits: an empty one, then the edit (the answer names the newest).
        new_sha = replica.mutate("model", touch=[repo_id], edit=edit)["touched"][repo_id]["sha"]
        assert process.wait(timeout=300) == 0, log.read_text()[-3000:]
    finally:
        replica.set_faults([])
    stats = parse_stats(log.read_text(encoding="utf-8"))
    assert not stats.get("hfscraper/files/failed"), stats

    folder = out / "models" / entity_folder_name(repo_id)
    assert json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["sha"] == listed_sha != new_sha
    for file in entity["files"]:
        assert sha256_of(folder / file["path"]) == file["sha256"], file["path"]

    # The next crawl sees the new commit: its sha and its bytes.
    again = crawl(replica, "models", out, settings=FILES)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["sha"] == new_sha
    assert (folder / "README.md").read_bytes() == b"# moved on\n"
    assert (folder / lfs_path).read_bytes() == b"new weights\n"
    unchanged: dict[str, Any] = {f["path"]: f for f in entity["files"] if f["path"] not in ("README.md", lfs_path)}
    for path, file in unchanged.items():
        assert sha256_of(folder / path) == file["sha256"], path
