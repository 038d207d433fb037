"""End to end: real `scrapy crawl` subprocesses against the Hub replica, checked against its ground truth."""

from __future__ import annotations

import collections
import json
import math
import os
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfscraper.constants import DEFAULT_EXPAND, OUTPUT_FOLDERS
from hfscraper.hub import HostileIdError, entity_folder_name
from hfscraper.output_owner import OWNER_FILE
from hfscraper.replica import shapes
from tests.support.crawl import PAGE_SIZE, CrawlResult, crawl, public
from tests.support.replica import ReplicaHandle, run_replica

REPO_ROOT = Path(__file__).resolve().parent.parent
SPIDER_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def split_path(entry: dict[str, Any]) -> tuple[str, str]:
    """(path, query) of a request-log entry (its `path` carries the query string)."""
    path, _, query = entry["path"].partition("?")
    return path, query


def listing_requests(replica: ReplicaHandle, since: int, repo_type: str) -> list[dict[str, Any]]:
    """The listing requests since `since`, each with a `query` key added."""
    found = []
    for entry in replica.requests(since=since, origin="hub"):
        path, query = split_path(entry)
        if path == f"/api/{repo_type}s":
            found.append({**entry, "query": query})
    return found


def assert_matches_truth(result: CrawlResult, repo_type: str, expected: list[dict[str, Any]]) -> None:
    written = result.metadata(repo_type)
    by_folder = {entity_folder_name(e["id"]): e for e in expected}
    assert set(written) == set(by_folder)
    wanted_keys = set(DEFAULT_EXPAND[repo_type]) | {"_id", "id"}
    for folder, metadata in written.items():
        truth_api = by_folder[folder]["api"]
        assert metadata["id"] == by_folder[folder]["id"]
        for key, value in metadata.items():
            assert key in truth_api, (folder, key)
            assert value == shapes.listing_value(key, truth_api[key]), (folder, key)
        missing = (wanted_keys & set(truth_api)) - set(metadata)
        assert not missing, (folder, missing)


# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=320, datasets=180, spaces=160, seed=7
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def hostile_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=40, datasets=20, spaces=20, seed=3, hostile_ids=True
    ) as handle:
        yield handle


# -- full crawls --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spider", ["models", "datasets", "spaces"])
def test_crawl_mirrors_every_public_entity(replica: ReplicaHandle, tmp_path: Path, spider: str) -> None:
    repo_type = SPIDER_TYPES[spider]
    expected = public(replica.truth, repo_type)
    private_ids = {e["id"] for e in replica.truth[f"{repo_type}s"] if e["private"]}
    assert private_ids, "the replica should have private entities to leave out"
    mark = replica.mark()

    result = crawl(replica, spider, tmp_path / "out", settings={"HFSCRAPER_IPFS_CAR_LAYOUT": "pack"})

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stat("finish_reason") == "finished"
    assert_matches_truth(result, repo_type, expected)
    written_ids = {m["id"] for m in result.metadata(repo_type).values()}
    assert not written_ids & private_ids
    n = len(expected)
    assert result.stat("item_scraped_count") == n
    assert result.stat("hfscraper/spider/items") == n
    assert result.stat("hfscraper/store/written") == n
    assert result.stat("hfscraper/spider/pages") == math.ceil(n / PAGE_SIZE)
    assert result.stat("hfscraper/spider/incomplete") is None
    assert not [k for k in result.stats if "/bad_page/" in k or "/bad_item/" in k or "/refused/" in k]
    # a healthy Hub and the defaults: nothing for the user to act on (no start-up warning either) but the previews
    # the replica's dataset viewer keeps pending on purpose
    alarms = re.findall(r"^\S+ \S+ \[\S+\] (?:WARNING|ERROR|CRITICAL): .*$", result.stderr, re.M)
    assert not [line for line in alarms if "dataset(s) are pending" not in line], alarms
    # only the other folders of the tree stay empty: besides the type's folder there are only its CAR packs
    # (car/packs/<type>) and the downloads' scratch folder (.tmp/), the provenance graph (provenance/) and the
    # folder's record (OWNER_FILE); every entity folder has its metadata.json and ipfs_cid.txt
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [OUTPUT_FOLDERS[repo_type], "car", ".tmp", "provenance", OWNER_FILE]
    )
    assert {p.name for p in (tmp_path / "out" / "car").iterdir()} == {"packs", ".tmp"}
    assert [p.name for p in (tmp_path / "out" / "car" / "packs").iterdir()] == [OUTPUT_FOLDERS[repo_type]]
    assert not os.listdir(tmp_path / "out" / "car" / ".tmp")
    for folder in (tmp_path / "out" / OUTPUT_FOLDERS[repo_type]).iterdir():
        assert {"metadata.json", "ipfs_cid.txt"} <= {p.name for p in folder.iterdir()}

    # pagination: the first URL carries no cursor, every later one came from the previous Link header
    requests = listing_requests(replica, mark, repo_type)
    assert len(requests) == math.ceil(n / PAGE_SIZE)
    queries = [r.get("query") or "" for r in requests]
    assert "cursor=" not in queries[0] and all("cursor=" in q for q in queries[1:])
    assert not any(re.search(r"(^|&)(page|skip|offset)=", q) for q in queries)


def test_recrawl_rewrites_nothing(replica: ReplicaHandle, tmp_path: Path) -> None:
    first = crawl(replica, "datasets", tmp_path / "out")
    assert first.returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("metadata.json")}
    mark = replica.mark()
    second = crawl(replica, "datasets", tmp_path / "out")
    assert second.returncode == 0, second.stderr[-3000:]
    n = len(public(replica.truth, "dataset"))
    # datasets whose preview the viewer has not made yet stay pending: processed again (rewriting nothing), never
    # taken for complete; the viewer is not asked again before their backoff
    pending = sum(e.get("viewer") == "not_ready" for e in public(replica.truth, "dataset"))
    # unchanged entities are skipped before the store (deltafetch over the crawl state): nothing rewritten
    assert second.stat("deltafetch/skipped") == n - pending and second.stat("hfscraper/store/written") is None
    assert second.stat("item_scraped_count") == (pending or None)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("metadata.json")} == before
    served = replica.requests(since=mark)
    assert {split_path(r)[0] for r in served if "/resolve/" not in r["path"]} == {"/api/datasets"}

    # without deltafetch every entity goes through the store again, which still rewrites nothing
    third = crawl(replica, "datasets", tmp_path / "out", settings={"DELTAFETCH_ENABLED": "false"})
    assert third.returncode == 0, third.stderr[-3000:]
    assert third.stat("hfscraper/store/unchanged") == n and third.stat("hfscraper/store/written") is None
    assert third.stat("deltafetch/skipped") is None
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("metadata.json")} == before

    # DELTAFETCH_RESET forgets which entities are complete: all go through the store once more, then are skipped
    reset = crawl(replica, "datasets", tmp_path / "out", settings={"DELTAFETCH_RESET": "true"})
    assert reset.returncode == 0 and reset.stat("hfscraper/store/unchanged") == n
    assert reset.stat("deltafetch/skipped") is None and reset.stat("deltafetch/stored") == n


# -- spider arguments ---------------------------------------------------------------------------------------


def test_author_argument(replica: ReplicaHandle, tmp_path: Path) -> None:
    counts = collections.Counter(e["api"].get("author") for e in public(replica.truth, "model"))
    author, n = counts.most_common(1)[0]
    assert n > 1
    result = crawl(replica, "models", tmp_path / "out", f"author={author}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_matches_truth(
        result, "model", [e for e in public(replica.truth, "model") if e["api"].get("author") == author]
    )
    assert result.stat("item_scraped_count") == n


def test_filter_argument_requires_every_tag(replica: ReplicaHandle, tmp_path: Path) -> None:
    entities = public(replica.truth, "model")
    tag_counts = collections.Counter(t for e in entities for t in e["api"].get("tags", []))
    # two tags that overlap without one implying the other
    pair = next(
        (a, b)
        for (a, na), (b, nb) in ((x, y) for x in tag_counts.most_common(40) for y in tag_counts.most_common(40))
        if a < b and 2 <= sum(1 for e in entities if {a, b} <= set(e["api"].get("tags", []))) < min(na, nb)
    )
    expected = [e for e in entities if set(pair) <= set(e["api"].get("tags", []))]
    result = crawl(replica, "models", tmp_path / "out", f"filter={pair[0]},{pair[1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_matches_truth(result, "model", expected)


def test_search_argument(replica: ReplicaHandle, tmp_path: Path) -> None:
    entities = public(replica.truth, "space")
    term = next(
        t
        for t in ("demo", "chat", "app", "gradio", "arena", "rag", "a")
        if 1 < sum(1 for e in entities if t in e["id"].lower()) < len(entities)
    )
    result = crawl(replica, "spaces", tmp_path / "out", f"search={term}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_matches_truth(result, "space", [e for e in entities if term in e["id"].lower()])


def test_max_items_stops_paging(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    result = crawl(replica, "models", tmp_path / "out", "max_items=7", "limit=5", "sort=likes")
    assert result.returncode == 0, result.stderr[-3000:]
    written = result.metadata("model")
    assert len(written) == 7 and result.stat("item_scraped_count") == 7
    assert result.stat("hfscraper/spider/max_items_reached") == 7
    requests = listing_requests(replica, mark, "model")
    assert len(requests) == 2 and all(
        "limit=5" in r.get("query", "") and "sort=likes" in r.get("query", "") for r in requests
    )
    # the seven most liked public models (ties broken by _id, as the Hub's cursor does)
    ranked = sorted(public(replica.truth, "model"), key=lambda e: (-(e["api"].get("likes") or 0), e["api"]["_id"]))
    assert {m["id"] for m in written.values()} == {e["id"] for e in ranked[:7]}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["limit=0"], "-a limit='0'"),
        (["limit=5000"], "-a limit='5000'"),
        (["max_items=-3"], "-a max_items='-3'"),
        (["sort=downloads"], "-a sort='downloads'"),  # spaces have no downloads
        (["author=a/b"], "-a author='a/b'"),
        (["filter=a,,b"], "-a filter='a,,b'"),
        (["colour=blue"], "unknown spider argument 'colour'"),
    ],
)
def test_bad_arguments_exit_with_one_line(replica: ReplicaHandle, tmp_path: Path, args: list[str], needle: str) -> None:
    if not (REPO_ROOT / "hfscraper" / "commands" / "crawl.py").exists():
        pytest.xfail("the validating `crawl` command (hfscraper/commands/crawl.py) is not there yet")
    mark = replica.mark()
    result = crawl(replica, "spaces", tmp_path / "out", *args, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if needle in line]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert listing_requests(replica, mark, "space") == []


# -- failures -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "stat_prefix"),
    [
        ({"kind": "5xx", "status": 503}, "hfscraper/spider/bad_page/http_503"),
        ({"kind": "html200"}, "hfscraper/spider/bad_page/html"),
        ({"kind": "not_a_list"}, "hfscraper/spider/bad_page/not_a_list"),
        ({"kind": "malformed_json"}, "hfscraper/spider/bad_page/invalid_json"),
    ],
)
def test_lost_listing_page_is_not_a_silent_success(
    replica: ReplicaHandle, tmp_path: Path, fault: dict[str, Any], stat_prefix: str
) -> None:
    # The second page of the dataset listing always fails; the first page is stored, the crawl says so.
    replica.set_faults([{**fault, "rate": 1.0, "path": r"^/api/datasets\?.*cursor="}])
    try:
        result = crawl(replica, "datasets", tmp_path / "out", settings={"RETRY_TIMES": "1"})
    finally:
        replica.set_faults([])
    assert result.stat("finish_reason") == "listing_incomplete", result.stderr[-3000:]
    assert result.stat("hfscraper/spider/incomplete") >= 1
    assert result.stat(stat_prefix) >= 1
    assert result.returncode != 0
    assert len(result.metadata("dataset")) == PAGE_SIZE
    assert "INCOMPLETE" in result.stderr or "incomplete" in result.stderr


# -- base models --------------------------------------------------------------------------------------------


def test_fetch_base_models(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    result = crawl(replica, "models", tmp_path / "out", settings={"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": "true"})
    assert result.returncode == 0, result.stderr[-3000:]
    entities = public(replica.truth, "model")
    with_base = [e for e in entities if any(t.startswith("base_model:") for t in e["api"].get("tags", []))]
    assert with_base
    assert result.stat("hfscraper/spider/base_models/requested") == len(with_base)
    assert result.stat("item_scraped_count") == len(entities)
    detail_paths = {
        split_path(r)[0]
        for r in replica.requests(since=mark, origin="hub")
        if split_path(r)[0].startswith("/api/models/")
    }
    # plus the provenance stage's one look-up per id only a card names (docs/PROVENANCE.md, "Renamed ids")
    card_only = {
        f"/api/models/{r['target']}" for e in entities for r in e["relations"] if r["source"] == "card"
    }  # fmt: skip
    assert detail_paths == {f"/api/models/{e['id']}" for e in with_base} | card_only
    assert result.stat("hfscraper/provenance/renames/unknown", 0) == len(card_only)

    written = result.metadata("model")
    merged = 0
    for e in with_base:
        metadata = written[entity_folder_name(e["id"])]
        if "baseModels" not in metadata:
            continue
        merged += 1
        assert list(metadata)[-1] == "baseModels"
        with _NO_PROXY.open(f"{replica.url}/api/models/{e['id']}?expand=baseModels", timeout=30) as response:
            assert metadata["baseModels"] == json.load(response)["baseModels"]
        tag_bases = {t.split(":")[-1] for t in e["api"]["tags"] if t.startswith("base_model:")}
        assert {m["id"] for m in metadata["baseModels"]["models"]} <= tag_bases
        assert {k: v for k, v in metadata.items() if k != "baseModels"} == {
            k: e["api"][k] for k in metadata if k != "baseModels"
        }
    assert merged == result.stat("hfscraper/spider/base_models/merged") and merged > 0
    without = [e for e in entities if e not in with_base]
    assert all("baseModels" not in written[entity_folder_name(e["id"])] for e in without)

    # again: unchanged models are skipped before their per-model request is even made
    mark = replica.mark()
    again = crawl(replica, "models", tmp_path / "out", settings={"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": "true"})
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stat("deltafetch/skipped") == len(entities) and again.stat("item_scraped_count") is None
    assert not [r for r in replica.requests(since=mark, origin="hub") if split_path(r)[0].startswith("/api/models/")]


# -- hostile ids --------------------------------------------------------------------------------------------


def _tree(root: Path) -> set[Path]:
    return {Path(d) / n for d, dirs, files in os.walk(root) for n in dirs + files}


@pytest.mark.parametrize("spider", ["models", "datasets", "spaces"])
def test_hostile_ids_stay_inside_the_output_folder(hostile_replica: ReplicaHandle, tmp_path: Path, spider: str) -> None:
    repo_type = SPIDER_TYPES[spider]
    sandbox = tmp_path / "sandbox"
    (sandbox / "etc").mkdir(parents=True)
    parent_before = set(os.listdir(tmp_path.parent))
    repo_before = set(os.listdir(REPO_ROOT))
    output = sandbox / "deep" / "out"

    # the crawl state is the harness's to place: beside the sandbox, not in it
    settings = {"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": "true", "HFSCRAPER_STATE_DIR": str(tmp_path / "state")}
    result = crawl(hostile_replica, spider, output, settings=settings)
    assert result.stat("finish_reason") == "finished", result.stderr[-3000:]

    entities = public(hostile_replica.truth, repo_type)
    stored, refused = {}, collections.Counter()
    for e in entities:
        try:
            stored[entity_folder_name(e["id"])] = e
        except HostileIdError as exc:
            refused[exc.reason] += 1
    if repo_type == "model":  # the replica serves its whole hostile list as models, a subset elsewhere
        assert refused, "the hostile replica should serve ids that must be refused"
    # every storable id has its own folder holding its real id; nothing else was written
    written = result.metadata(repo_type)
    assert set(written) == set(stored)
    for folder, metadata in written.items():
        assert metadata["id"] == stored[folder]["id"]
        assert all(metadata[k] == stored[folder]["api"][k] for k in metadata if k != "baseModels")
    encoded = sum(1 for f in stored if f.startswith("~"))
    assert encoded and result.stat("hfscraper/store/encoded") == encoded
    for reason, count in refused.items():
        assert result.stat(f"hfscraper/store/refused/{reason}") == count
    assert sum(v for k, v in result.stats.items() if k.startswith("hfscraper/store/refused/")) == sum(refused.values())
    assert result.stat("item_scraped_count") == len(stored)

    # nothing outside the output folder: not in the sandbox, not next to it, not in the repository
    created = _tree(sandbox) - {sandbox / "etc"}
    outside = {p for p in created if p != output and output not in p.parents and p not in output.parents}
    assert not outside, sorted(outside)
    assert os.listdir(sandbox / "etc") == []
    assert set(os.listdir(tmp_path)) - {"hf-home", "state"} == {"sandbox"}
    assert set(os.listdir(tmp_path.parent)) == parent_before
    # (the repository may gain files from other work meanwhile: none of them may hold a hostile entity)
    hostile_ids = {e["id"] for e in entities}
    for name in set(os.listdir(REPO_ROOT)) - repo_before:
        for found in (REPO_ROOT / name).rglob("metadata.json"):
            assert json.loads(found.read_text(encoding="utf-8")).get("id") not in hostile_ids, found
    assert not (sandbox / "etc" / "passwd").exists() and not Path("/etc/passwd/metadata.json").exists()
