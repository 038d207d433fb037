"""The main job at the size the foundation issue names: `scrapy crawlall` over a replica of 3,000 models,
1,000 datasets and 1,000 spaces with the default page size, checked against the replica's ground truth;
and a crawl that loses a listing page must say so in its exit code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hfscraper.hub import entity_folder_name
from tests.support.crawl import crawl, metadata_only, public
from tests.support.replica import ReplicaHandle, run_replica


@pytest.fixture(autouse=True)
def _metadata_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # The listing at the size; `crawlall` with files is tested at a smaller size in test_pipeline_files.py.
    metadata_only(monkeypatch)

TYPES = {"model": "models", "dataset": "datasets", "space": "spaces"}


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    tmp = tmp_path_factory.mktemp("replica")
    with run_replica(tmp_dir=tmp, models=3000, datasets=1000, spaces=1000, seed=1) as hub:
        yield hub


@pytest.mark.slow
def test_crawlall_writes_exactly_the_public_entities(replica: ReplicaHandle, tmp_path: Path) -> None:
    result = crawl(replica, "", tmp_path / "out", command_name="crawlall", page_size=None)

    assert result.returncode == 0, result.stderr[-3000:]
    for repo_type, folder in TYPES.items():
        expected = {entity_folder_name(e["id"]): e for e in public(replica.truth, repo_type)}
        assert len(expected) < len(replica.truth[f"{repo_type}s"]), "the replica should hold private repos"
        written = result.metadata(repo_type)
        assert set(written) == set(expected), repo_type
        for name, metadata in written.items():
            api = expected[name]["api"]
            assert {k: api.get(k) for k in metadata} == metadata, (repo_type, name)
        assert f"hfscraper: {folder}: complete (finish reason finished, {len(expected)} items)" in result.stderr


def test_crawlall_exits_1_when_a_listing_page_is_lost(replica: ReplicaHandle, tmp_path: Path) -> None:
    # Every dataset listing page after the first answers 503, past Scrapy's retries.
    replica.set_faults([{"kind": "5xx", "rate": 1.0, "path": r"^/api/datasets\?.*cursor="}])
    try:
        result = crawl(replica, "", tmp_path / "out", command_name="crawlall", page_size=200)
    finally:
        replica.set_faults([])
    assert result.returncode == 1
    assert "hfscraper: datasets: INCOMPLETE (finish reason listing_incomplete" in result.stderr
    assert "hfscraper: models: complete" in result.stderr
