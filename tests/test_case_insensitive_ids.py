"""Hub repo ids are case-insensitive (huggingface_hub issues #1453, #2090): the replica and the crawler agree.

The real Hub answers `model_info("mbzuai/bactrian-x")` with the repo `MBZUAI/Bactrian-X` under its canonical id, and
owners write links in any case (a card's `datasets:`, hence the `dataset:` tags; a space's `models`). The replica
does both (every default replica names some repos in another case); the crawl keeps one node per repo, under its
canonical id, whatever case the links use; `scrapy lineage` finds an entity named in another case; and an entity
the Hub now spells in another case keeps one row and one folder in the crawl state.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi, hf_hub_download

from hfscraper.hub import entity_folder_name
from hfscraper.state import state_file_path
from tests.support.crawl import REPO_ROOT, _scrapy_command, crawl, crawl_env, metadata_only, public
from tests.support.replica import ReplicaHandle, run_replica

SETTINGS = {"HFSCRAPER_IPFS_ENABLED": "false"}
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


def fold(repo_id: str) -> str:
    return repo_id.lower()


def miscased(repo_id: str) -> str:
    """Another case of the id (never the id itself)."""
    other = repo_id.swapcase()
    assert other != repo_id
    return other


@pytest.fixture(autouse=True)
def _metadata_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    metadata_only(monkeypatch)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=40, datasets=15, spaces=15, seed=3) as hub:
        yield hub


@pytest.fixture(scope="module")
def crawled(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crawl") / "out"
    result = crawl(replica, "", out, command_name="crawlall", settings=SETTINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def miscased_links(truth: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source key, the link as written, the target key) of every link the replica writes in another case than the
    target's id: `dataset:` tags of models, `models`/`datasets` of spaces."""
    ids = {t: {fold(e["id"]): e["id"] for e in truth[PLURAL[t]]} for t in PLURAL}
    links = []
    for model in public(truth, "model"):
        for tag in model["api"].get("tags", []):
            if tag.startswith("dataset:"):
                written = tag[len("dataset:") :]
                target = ids["dataset"].get(fold(written))
                if target is not None and target != written:
                    links.append((f"model:{model['id']}", written, f"dataset:{target}"))
    for space in public(truth, "space"):
        for field, target_type in (("models", "model"), ("datasets", "dataset")):
            for written in space["api"].get(field, []):
                target = ids[target_type].get(fold(written))
                if target is not None and target != written:
                    links.append((f"space:{space['id']}", written, f"{target_type}:{target}"))
    return links


# ------------------------------------------------------------------------------------ the replica, through the client


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_info_in_another_case_answers_the_canonical_id(replica: ReplicaHandle, repo_type: str) -> None:
    api = HfApi(endpoint=replica.url, token=False)
    entity = next(e for e in public(replica.truth, repo_type) if not e["gated"] and not e["disabled"])
    info = api.repo_info(miscased(entity["id"]), repo_type=repo_type)
    assert info.id == entity["id"] and info.sha == entity["api"]["sha"]
    raw = json.loads(OPENER.open(f"{replica.url}/api/{PLURAL[repo_type]}/{miscased(entity['id'])}").read())
    assert raw["id"] == entity["id"] and raw.get("modelId", entity["id"]) == entity["id"]
    files = api.list_repo_files(miscased(entity["id"]), repo_type=repo_type)
    assert files == [f["path"] for f in entity["files"]]


def test_download_in_another_case(replica: ReplicaHandle, tmp_path: Path) -> None:
    entity = next(e for e in public(replica.truth, "model") if not e["gated"] and not e["disabled"])
    for file in [
        next(f for f in entity["files"] if not f["lfs"]),
        next((f for f in entity["files"] if f["lfs"]), None),
    ]:
        if file is None:
            continue
        path = hf_hub_download(
            miscased(entity["id"]), file["path"], endpoint=replica.url, token=False, cache_dir=tmp_path / "cache"
        )
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == file["sha256"]


def test_every_default_replica_writes_links_in_another_case(replica: ReplicaHandle) -> None:
    links = miscased_links(replica.truth)
    assert any(src.startswith("model:") for src, _w, _t in links)
    assert any(src.startswith("space:") for src, _w, _t in links)


# ------------------------------------------------------------------------------------------------------ the crawl


def test_graph_has_one_node_per_repo_and_links_reach_it(replica: ReplicaHandle, crawled: Path) -> None:
    folder = crawled / "provenance"
    nodes = pq.read_table(folder / "provenance_nodes.parquet", columns=["key", "scraped"]).to_pylist()
    by_fold: dict[str, list[str]] = {}
    for node in nodes:
        by_fold.setdefault(fold(node["key"]), []).append(node["key"])
    assert not [keys for keys in by_fold.values() if len(keys) > 1]
    edges = {(e["src"], e["dst"]): e for e in pq.read_table(folder / "provenance_edges.parquet").to_pylist()}
    links = miscased_links(replica.truth)
    assert links
    for src, written, target in links:
        assert (src, target) in edges, (src, written, target)
        assert edges[(src, target)]["dst_scraped"] is True
        assert target.split(":", 1)[0] + ":" + written not in {n["key"] for n in nodes}


def test_lineage_of_an_id_in_another_case(replica: ReplicaHandle, crawled: Path) -> None:
    src, _written, target = miscased_links(replica.truth)[0]
    target_type, target_id = target.split(":", 1)
    env = {**crawl_env(replica, crawled), "HFSCRAPER_OUTPUT_DIR": str(crawled)}
    proc = subprocess.run(
        [*_scrapy_command(), "lineage", miscased(target_id), "--type", target_type, "--format", "json"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    document = json.loads(proc.stdout)
    keys = {n["key"] for n in document["nodes"]}
    assert target in keys and src in keys


def test_an_entity_spelled_in_another_case_keeps_one_row_and_folder(replica: ReplicaHandle, tmp_path: Path) -> None:
    """The Hub changed a repo's case since the last crawl (an owner renamed `Org` to `org`): the state holds it under
    the old spelling, the listing gives the new one. Simulated by giving the state and the folder the old spelling
    after a first crawl; the second crawl must move them, not store a second entity and tombstone the first."""
    out = tmp_path / "out"
    settings = {**SETTINGS, "HFSCRAPER_FILES_ENABLED": "true"}
    first = crawl(replica, "models", out, settings=settings)
    assert first.returncode == 0, first.stderr[-3000:]
    entity = next(e for e in public(replica.truth, "model") if not e["gated"] and not e["disabled"])
    new, old = entity["id"], miscased(entity["id"])
    models = out / "models"
    (models / entity_folder_name(new)).rename(models / entity_folder_name(old))
    state = state_file_path(out.parent / "state", out)
    db = sqlite3.connect(state)
    try:
        with db:
            for table in ("entities", "cids", "pins", "files", "provenance_nodes"):
                db.execute(f"UPDATE {table} SET id = ? WHERE repo_type = 'model' AND id = ?", (old, new))
            db.execute(
                "UPDATE provenance_edges SET origin_id = ? WHERE origin_type = 'model' AND origin_id = ?", (old, new)
            )
    finally:
        db.close()
    second = crawl(replica, "models", out, settings=settings)  # a full sweep: what it does not see is tombstoned
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{old} is now spelled {new}" in second.stderr
    folders = [p.name for p in models.iterdir() if fold(p.name) == fold(entity_folder_name(new))]
    assert folders == [entity_folder_name(new)]
    assert json.loads((models / entity_folder_name(new) / "metadata.json").read_text(encoding="utf-8"))["id"] == new
    assert not (models / entity_folder_name(new) / "tombstone.json").exists()
    db = sqlite3.connect(state)
    try:
        rows = db.execute(
            "SELECT id, deleted_at FROM entities WHERE repo_type = 'model' AND id = ? COLLATE NOCASE", (new,)
        ).fetchall()
        assert rows == [(new, None)]
        assert db.execute("SELECT count(*) FROM provenance_nodes WHERE id = ?", (old,)).fetchone()[0] == 0
    finally:
        db.close()
    # Only that entity was processed again, and its files were still there (nothing downloaded again).
    assert second.stat("item_scraped_count") == 1
    assert second.stat("hfscraper/files/downloaded", 0) == 0
