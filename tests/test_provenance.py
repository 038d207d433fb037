"""Relation extraction (on the real recorded Hub responses and on hostile cards), the state's replace-per-entity
rows, the rules of the built graph, and the output files (unit level; crawls are in test_provenance_crawl.py)."""

from __future__ import annotations

import asyncio
import glob
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from scrapy.http import Response
from scrapy.utils.test import get_crawler

from hfscraper.items import ModelItem, item_class_for
from hfscraper.pipelines.provenance import ProvenancePipeline, _ApiFields, current_id_from_redirect
from hfscraper.provenance.extract import MAX_LINKS, Edge, extract
from hfscraper.provenance.graph import ProvenanceGraphMissing, graph_from_state, read_graph
from hfscraper.provenance.outputs import rebuild
from hfscraper.provenance.store import record_alias, record_entity, record_entity_batch
from hfscraper.state import StateStore, state_file_path


def recorded(hub_fixtures: Path, name: str) -> dict[str, Any]:
    return json.loads((hub_fixtures / "huggingface_hub_cassettes" / name).read_text(encoding="utf-8"))


def edges_of(api: dict[str, Any], repo_type: str = "model") -> set[tuple[str, str, str, str]]:
    return {(e.dst_type, e.dst_id, e.relation, e.source) for e in extract(repo_type, api).edges if not e.reverse}


# -- extraction on recorded responses -------------------------------------------------------------------------


class TestRecorded:
    def test_finetune_with_datasets(self, hub_fixtures: Path) -> None:
        api = recorded(hub_fixtures, "api_models_HuggingFaceH4_zephyr-7b-beta.json")["response"]["body_json"]
        assert edges_of(api) == {
            ("model", "mistralai/Mistral-7B-v0.1", "finetune", "tag"),
            ("dataset", "HuggingFaceH4/ultrachat_200k", "dataset", "tag"),
            ("dataset", "HuggingFaceH4/ultrafeedback_binarized", "dataset", "tag"),
        }
        result = extract("model", api)
        reverse = [e for e in result.edges if e.reverse]
        assert len(reverse) == len(api["spaces"]) and all(
            e.src_type == "space" and e.dst_id == api["id"] for e in reverse
        )
        assert result.node["author"] == "HuggingFaceH4" and result.node["created_at"] == api["createdAt"]

    def test_tags_carry_the_renamed_base_and_the_card_the_old_one(self, hub_fixtures: Path) -> None:
        api = recorded(hub_fixtures, "api_models_meta-llama_Llama-3.1-8B-Instruct.json")["response"]["body_json"]
        assert api["cardData"]["base_model"] == "meta-llama/Meta-Llama-3.1-8B"
        assert edges_of(api) == {("model", "meta-llama/Llama-3.1-8B", "finetune", "tag")}
        assert extract("model", api).card_only == []

    def test_every_recorded_body_extracts(self, hub_fixtures: Path) -> None:
        bodies = 0
        for path in sorted(glob.glob(str(hub_fixtures / "huggingface_hub_cassettes" / "api_*.json"))):
            body = json.loads(Path(path).read_text(encoding="utf-8"))["response"]["body_json"]
            if not isinstance(body, dict) or "id" not in body:
                continue
            repo_type = "space" if "/api/spaces/" in path or "api_spaces_" in path else "model"
            result = extract(repo_type, body)
            bodies += 1
            assert not result.skipped, (path, result.skipped)
            for edge in result.edges:
                assert edge.relation in ("finetune", "adapter", "quantized", "merge", "base", "dataset", "model")
        assert bodies >= 30

    def test_the_stage_extracts_from_an_item_what_its_json_declares(self, hub_fixtures: Path) -> None:
        # The stage reads only the keys extraction needs from the item (no to_api()): the same extraction.
        bodies = []
        for path in sorted(glob.glob(str(hub_fixtures / "huggingface_hub_cassettes" / "api_*.json"))):
            body = json.loads(Path(path).read_text(encoding="utf-8"))["response"]["body_json"]
            if isinstance(body, dict) and isinstance(body.get("id"), str):
                repo_type = "space" if "/api/spaces/" in path or "api_spaces_" in path else "model"
                bodies.append((repo_type, body))
        bodies += [
            ("model", {"id": "o/m", "createdAt": "2024-01-02T03:04:05Z", "lastModified": None, "downloads": "7",
                       "pipeline_tag": None, "baseModels": {"relation": "merge", "models": [{"id": "o/b"}]}}),
            ("space", {"id": "o/s", "models": ["o/m", 3], "datasets": "o/d", "likes": True}),
        ]  # fmt: skip
        for repo_type, body in bodies:
            item = item_class_for(repo_type).from_api(body)
            item.set_api_value("lastModified", datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC))
            expected = extract(repo_type, {**item.to_api(), "id": item.id})
            got = extract(repo_type, _ApiFields(item))
            assert (got.node, got.edges, got.skipped, got.card_only) == (
                expected.node, expected.edges, expected.skipped, expected.card_only,
            ), body["id"]  # fmt: skip
            assert got.node["last_modified"] == "2025-01-02T03:04:05.678Z"

    @pytest.mark.parametrize(
        ("name", "new"),
        [
            ("api_models_bert-base-uncased.json", "google-bert/bert-base-uncased"),
            ("api_models_meta-llama_Meta-Llama-3.1-8B-Instruct_expand_inferenceProviderMapping.json",
             "meta-llama/Llama-3.1-8B-Instruct"),
        ],
    )  # fmt: skip
    def test_a_recorded_307_names_the_current_id(self, hub_fixtures: Path, name: str, new: str) -> None:
        data = recorded(hub_fixtures, name)
        headers = {k: v for k, v in data["response"]["headers"].items()}
        response = Response(data["request"]["uri"], status=307, headers=headers)
        assert current_id_from_redirect(response, "model") == new


# -- rules -------------------------------------------------------------------------------------------------


def test_card_fallback_only_without_tags() -> None:
    card = {"base_model": ["org/a", "org/b"], "base_model_relation": "merge", "datasets": "org/data"}
    api = {"id": "me/m", "tags": ["license:mit"], "cardData": card}
    assert edges_of(api) == {
        ("model", "org/a", "merge", "card"), ("model", "org/b", "merge", "card"),
        ("dataset", "org/data", "dataset", "card"),
    }  # fmt: skip
    assert extract("model", api).card_only == [("model", "org/a"), ("model", "org/b"), ("dataset", "org/data")]
    tagged = {**api, "tags": ["base_model:org/c", "base_model:quantized:org/c", "dataset:org/d"]}
    assert edges_of(tagged) == {("model", "org/c", "quantized", "tag"), ("dataset", "org/d", "dataset", "tag")}
    unknown = {"id": "me/m", "cardData": {"base_model": "gone/x", "base_model_relation": "remix"}}
    result = extract("model", unknown)
    assert edges_of(unknown) == {("model", "gone/x", "base", "card")}
    assert result.skipped["card/bad_base_model_relation"] == 1


def test_base_models_from_the_api_add_their_source() -> None:
    api = {
        "id": "me/m", "tags": ["base_model:org/a", "base_model:adapter:org/a"],
        "baseModels": {"relation": "adapter", "models": [{"_id": "1", "id": "org/a"}, {"_id": "2", "id": "org/b"}]},
    }  # fmt: skip
    assert edges_of(api) == {
        ("model", "org/a", "adapter", "tag"),
        ("model", "org/a", "adapter", "api"),
        ("model", "org/b", "adapter", "api"),
    }


def test_space_links() -> None:
    api = {"id": "me/s", "models": ["org/m", "org/m", 7], "datasets": "org/d"}
    result = extract("space", api)
    assert edges_of(api, "space") == {("model", "org/m", "model", "api"), ("dataset", "org/d", "dataset", "api")}
    assert result.skipped == {"api/models/bad_id": 1}


HOSTILE_CARDS: list[Any] = [
    "not a mapping", ["a", "list"], 42, None,
    {"base_model": 5}, {"base_model": [None, 3, {"id": "x/y"}, ["n"], "", " pad/ded"]},
    {"base_model": "../../etc/passwd"}, {"base_model": "a\x00b"}, {"base_model": "x" * 5000},
    {"base_model": ["org/m"] * (MAX_LINKS * 3)}, {"base_model": [f"org/m{n}" for n in range(MAX_LINKS + 5)]},
    {"base_model": "org/m", "base_model_relation": ["finetune"]}, {"base_model": "org/m", "base_model_relation": {}},
    {"datasets": {"org/d": 1}}, {"datasets": [1.5, True, "org/d"]}, {"base_model": {"$ref": "#"}},
]  # fmt: skip


@pytest.mark.parametrize("card", HOSTILE_CARDS)
def test_hostile_card_data_never_raises(card: Any) -> None:
    api = {"id": "evil/m", "cardData": card, "tags": "not-a-list", "spaces": {"x": 1}, "baseModels": ["x"],
           "downloads": "many", "likes": 10**30, "author": ["x"]}  # fmt: skip
    result = extract("model", api)
    assert len(result.edges) <= 2 * MAX_LINKS
    assert all(isinstance(e.dst_id, str) and e.dst_id and "\x00" not in e.dst_id for e in result.edges)
    assert result.node["downloads"] is None and result.node["likes"] is None and result.node["author"] is None
    assert result.skipped["tags/wrong_type"] == 1 and result.skipped["api/spaces/wrong_type"] == 1
    if card not in (None,) and not isinstance(card, dict):
        assert result.skipped["card/wrong_type"] == 1


def test_hostile_item_through_the_pipeline(tmp_path: Path) -> None:
    settings = {
        "HFSCRAPER_OUTPUT_DIR": str(tmp_path / "out"), "HFSCRAPER_STATE_DIR": str(tmp_path / "state"),
        "HFSCRAPER_PROVENANCE_RESOLVE_RENAMES": False,
    }  # fmt: skip
    crawler = get_crawler(settings_dict=settings)
    pipeline = ProvenancePipeline.from_crawler(crawler)
    item = ModelItem.from_api(
        {"id": "evil/m", "tags": ["base_model:finetune:org/base", 12], "cardData": {"base_model": [None] * 5000}}
    )

    async def run() -> None:
        await pipeline.open_spider()
        assert await pipeline.process_item(item) is item
        await pipeline.engine_stopped()

    asyncio.run(run())
    stats = crawler.stats.get_stats()
    assert stats["hfscraper/provenance/entities"] == 1 and stats["hfscraper/provenance/edges/base_model"] == 1
    assert stats["hfscraper/provenance/skipped/tags/bad_tag"] == 1
    graph = read_graph(tmp_path / "out")
    assert graph.edges["model:evil/m", "model:org/base"]["relation"] == "finetune"
    assert graph.nodes["model:org/base"]["scraped"] is False


# -- the state and the built graph --------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(state_file_path(tmp_path / "state", tmp_path / "out"))
    yield s
    s.close()


def _edges(store: StateStore) -> set[tuple[str, str, str, tuple[str, ...]]]:
    graph = graph_from_state(store.path)
    return {(u, v, a["relation"], tuple(a["sources"])) for u, v, a in graph.edges(data=True)}


def test_an_entity_s_edges_are_replaced_as_a_whole(store: StateStore) -> None:
    record_entity(store, extract("model", {"id": "me/m", "tags": ["base_model:finetune:org/a", "dataset:o/d"]}), "t1")
    record_entity(store, extract("model", {"id": "me/m", "tags": ["base_model:finetune:org/a", "dataset:o/d"]}), "t2")
    assert store.db.execute("SELECT count(*) FROM provenance_edges").fetchone()[0] == 2
    record_entity(store, extract("model", {"id": "me/m", "tags": ["base_model:quantized:org/b"]}), "t3")
    assert _edges(store) == {("model:me/m", "model:org/b", "quantized", ("tag",))}


def test_a_batch_is_one_transaction_and_a_bad_entity_fails_alone(store: StateStore) -> None:
    good = [extract("model", {"id": f"o/m{n}", "tags": [f"base_model:finetune:o/b{n}"]}) for n in range(3)]
    assert record_entity_batch(store, [(e, "t1") for e in good]) == [(True, None)] * 3
    assert store.db.execute("SELECT count(*) FROM provenance_nodes").fetchone()[0] == 3
    # A node attribute SQLite cannot store: the batch's transaction fails, then each entity is recorded alone.
    bad = extract("model", {"id": "o/bad"})
    bad.node["downloads"] = {"not": "a number"}
    again = [extract("model", {"id": "o/m0", "tags": ["base_model:quantized:o/q"]}), bad, good[2]]
    results = record_entity_batch(store, [(e, "t2") for e in again])
    assert [ok for ok, _ in results] == [True, False, True]
    assert "not supported" in str(results[1][1])
    assert not store.db.in_transaction
    ids = [r[0] for r in store.db.execute("SELECT id FROM provenance_nodes ORDER BY id")]
    assert ids == ["o/m0", "o/m1", "o/m2"]
    assert ("model:o/m0", "model:o/q", "quantized", ("tag",)) in _edges(store)
    assert not any(u == "model:o/m0" and v == "model:o/b0" for u, v, _, _ in _edges(store))


def test_reverse_links_yield_to_the_space_s_own_list(store: StateStore) -> None:
    record_entity(store, extract("model", {"id": "org/m", "spaces": ["u/s1", "u/s2"]}), "t")
    assert _edges(store) == {
        ("space:u/s1", "model:org/m", "model", ("api",)), ("space:u/s2", "model:org/m", "model", ("api",)),
    }  # fmt: skip
    record_entity(store, extract("space", {"id": "u/s1", "models": ["org/other"]}), "t")
    assert _edges(store) == {
        ("space:u/s1", "model:org/other", "model", ("api",)), ("space:u/s2", "model:org/m", "model", ("api",)),
    }  # fmt: skip


def test_aliases_and_tombstones(store: StateStore) -> None:
    record_entity(store, extract("model", {"id": "me/m", "cardData": {"base_model": "old/name"}}), "t")
    record_entity(store, extract("model", {"id": "me/n", "tags": ["base_model:merge:me/m"]}), "t")
    record_alias(store, "model", "old/name", "new/name", "t")
    assert _edges(store) == {
        ("model:me/m", "model:new/name", "base", ("card",)), ("model:me/n", "model:me/m", "merge", ("tag",)),
    }  # fmt: skip
    with store.transaction():
        store.db.execute("INSERT INTO entities (repo_type, id, deleted_at) VALUES ('model', 'me/m', 'now')")
    graph = graph_from_state(store.path)
    assert set(graph.edges) == {("model:me/n", "model:me/m")}  # out-edges of the deleted entity dropped
    assert graph.nodes["model:me/m"]["deleted"] is True


def test_rebuild_writes_atomically_and_removes_stale_entity_files(store: StateStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ProvenanceGraphMissing):
        read_graph(out)
    for n in range(3):
        record_entity(store, extract("model", {"id": f"o/m{n}", "tags": [f"base_model:finetune:o/m{n + 1}"]}), "t")
    first = rebuild(store.path, out, entity_files=True)  # the per-entity files, on request
    assert (first.nodes, first.stubs, first.edges) == (4, 1, 3)
    # a rebuild swaps in a new folder, whose unchanged files are the previous ones (same bytes, same mtime)
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "provenance").rglob("*") if p.is_file()}
    assert rebuild(store.path, out, entity_files=True).entity_files_written == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "provenance").rglob("*") if p.is_file()} == files
    assert sorted(p.name for p in (out / "provenance" / "model_relationships").iterdir()) == [
        "o__m0.json", "o__m1.json", "o__m2.json",
    ]  # fmt: skip
    with store.transaction():
        store.db.execute("DELETE FROM provenance_nodes WHERE id = 'o/m0'")
        store.db.execute("DELETE FROM provenance_edges WHERE origin_id = 'o/m0'")
    second = rebuild(store.path, out, entity_files=True)
    assert second.entity_files_removed == 1 and second.entity_files_written == 1  # o/m1 lost a dependent
    graph = read_graph(out)
    assert isinstance(graph, nx.DiGraph) and set(graph.edges) == {
        ("model:o/m1", "model:o/m2"),
        ("model:o/m2", "model:o/m3"),
    }
    assert graph.nodes["model:o/m1"]["id"] == "o/m1"
    assert not list((out / "provenance").rglob(".hfscraper-tmp-*"))
    assert not list(out.glob(".hfscraper-tmp-*"))  # no staging folder left


# -- the rebuild command (`python -m hfscraper.provenance rebuild`) ------------------------------------------

_RUN_REBUILD = """
import json, runpy, sys
sys.argv = ["hfscraper.provenance", *sys.argv[1:]]
try:
    runpy.run_module("hfscraper.provenance", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "scrapy_loaded": "scrapy" in sys.modules}))
"""


def _rebuild_cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str, str]:
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("HFSCRAPER_")}
    clean["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)  # run outside the project folder
    done = subprocess.run(
        [sys.executable, "-c", _RUN_REBUILD, "rebuild", *args], cwd=tmp_path, env={**clean, **(env or {})},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return json.loads(lines[-1]), "\n".join(lines[:-1]), done.stderr


def test_rebuild_command_as_the_crawl_runs_it_reads_no_configuration(store: StateStore, tmp_path: Path) -> None:
    record_entity(store, extract("model", {"id": "o/m", "tags": ["base_model:finetune:o/base"]}), "t")
    out = tmp_path / "out"
    # A settings file the child must not read: the crawl passes everything it needs.
    (tmp_path / "scrapy.cfg").write_text("[settings]\ndefault = hfscraper.settings\n")
    (tmp_path / "settings.toml").write_text("[progress]\ninterval = -1\n")
    args = ("--output-dir", str(out), "--state-file", str(store.path), "--no-fsync", "--no-entity-files", "--json")
    result, stdout, stderr = _rebuild_cli(tmp_path, *args)
    assert result == {"code": 0, "scrapy_loaded": False}, stderr
    summary = json.loads(stdout)
    assert (summary["nodes"], summary["stubs"], summary["edges"]) == (2, 1, 1)
    assert read_graph(out).has_edge("model:o/m", "model:o/base")
    assert not (out / "provenance" / "model_relationships").exists()  # no file per entity by default
    result, _, stderr = _rebuild_cli(tmp_path, *args[:5], "--entity-files")
    assert result["code"] == 0 and (out / "provenance" / "model_relationships" / "o__m.json").is_file(), stderr
    # Leave out one of the four and the configuration is read (here: invalid, exit code 2, one line).
    result, _, stderr = _rebuild_cli(tmp_path, *args[:4])
    assert result["code"] == 2 and "interval" in stderr and len(stderr.strip().splitlines()) == 1


def test_rebuild_command_from_the_configuration(store: StateStore, tmp_path: Path) -> None:
    record_entity(store, extract("model", {"id": "o/m"}), "t")
    env = {"HFSCRAPER_OUTPUT_DIR": str(tmp_path / "out"), "HFSCRAPER_STATE_DIR": str(tmp_path / "state")}
    result, stdout, stderr = _rebuild_cli(tmp_path, env=env)
    assert result["code"] == 0, stderr
    assert stdout.startswith(f"{tmp_path / 'out' / 'provenance'}: 1 nodes (0 stubs), 0 edges")
    result, _, stderr = _rebuild_cli(tmp_path, env={**env, "HFSCRAPER_OUTPUT_DIR": str(tmp_path / "elsewhere")})
    assert result["code"] == 1 and stderr.startswith(f"no crawl state for {tmp_path / 'elsewhere'}")


def test_edge_tuple_shape() -> None:
    assert Edge._fields[:7] == ("src_type", "src_id", "dst_type", "dst_id", "kind", "relation", "source")


class _Engine:
    """Answers the rename look-ups as the Hub does (recorded shapes: 307 + relative Location, 404)."""

    running = True

    def __init__(self) -> None:
        self.urls: list[str] = []

    async def download_async(self, request: Any) -> Response:
        self.urls.append(request.url)
        assert request.meta["dont_redirect"] is True
        if "/api/models/old-org/base" in request.url:
            return Response(request.url, status=307, headers={"Location": "/api/models/new-org/base"})
        return Response(request.url, status=404)


def test_card_only_ids_are_looked_up_once(tmp_path: Path) -> None:
    settings = {
        "HFSCRAPER_OUTPUT_DIR": str(tmp_path / "out"), "HFSCRAPER_STATE_DIR": str(tmp_path / "state"),
        "HFSCRAPER_HUB_ENDPOINT": "http://127.0.0.1:9",
    }  # fmt: skip
    crawler = get_crawler(settings_dict=settings)
    crawler.engine = _Engine()  # type: ignore[assignment]
    pipeline = ProvenancePipeline.from_crawler(crawler)
    items = [
        ModelItem.from_api({"id": "me/a", "cardData": {"base_model": "old-org/base", "datasets": ["gone/data"]}}),
        ModelItem.from_api({"id": "me/b", "cardData": {"base_model": ["old-org/base", "me/a"]}}),
    ]

    async def run() -> None:
        await pipeline.open_spider()
        for item in items:
            await pipeline.process_item(item)
        await pipeline.engine_stopped()

    asyncio.run(run())
    assert sorted(u.split("/api/")[1] for u in crawler.engine.urls) == [  # type: ignore[attr-defined]
        "datasets/gone/data?expand=author",
        "models/old-org/base?expand=author",
    ]  # fmt: skip  (me/a is crawled: never asked)
    stats = crawler.stats.get_stats()
    assert stats["hfscraper/provenance/renames/resolved"] == 1 and stats["hfscraper/provenance/renames/unknown"] == 1
    assert stats["hfscraper/provenance/renames/cached"] == 1
    graph = read_graph(tmp_path / "out")
    assert set(graph.edges) == {
        ("model:me/a", "model:new-org/base"), ("model:me/a", "dataset:gone/data"),
        ("model:me/b", "model:new-org/base"), ("model:me/b", "model:me/a"),
    }  # fmt: skip
    assert "model:old-org/base" not in graph and graph.nodes["model:new-org/base"]["scraped"] is False


def test_recording_costs_one_state_hand_off_per_batch(tmp_path: Path) -> None:
    # Card-only ids already looked up, and the entities of one event-loop turn: one hand-off to the state's thread
    # for all of them (records and rename checks together), not one per item nor per id.
    settings = {
        "HFSCRAPER_OUTPUT_DIR": str(tmp_path / "out"), "HFSCRAPER_STATE_DIR": str(tmp_path / "state"),
        "HFSCRAPER_HUB_ENDPOINT": "http://127.0.0.1:9",
    }  # fmt: skip
    crawler = get_crawler(settings_dict=settings)
    crawler.engine = _Engine()  # type: ignore[assignment]
    pipeline = ProvenancePipeline.from_crawler(crawler)
    card = {"base_model": ["old-org/base", "me/m0"]}
    items = [ModelItem.from_api({"id": f"me/m{n}", "cardData": card}) for n in range(40)]

    async def run() -> int:
        await pipeline.open_spider()
        await pipeline.process_item(items[0])  # the one look-up, remembered in the state
        assert pipeline.state is not None
        submit = pipeline.state.submit
        handoffs = 0

        def counted(fn: Any, *args: Any) -> Any:
            nonlocal handoffs
            handoffs += 1
            return submit(fn, *args)

        pipeline.state.submit = counted  # type: ignore[method-assign]
        try:
            await asyncio.gather(*(pipeline.process_item(item) for item in items[1:]))
        finally:
            pipeline.state.submit = submit  # type: ignore[method-assign]
        await pipeline.engine_stopped()
        return handoffs

    assert asyncio.run(run()) == 1
    assert crawler.engine.urls == ["http://127.0.0.1:9/api/models/old-org/base?expand=author"]  # type: ignore[attr-defined]
    stats = crawler.stats.get_stats()
    assert stats["hfscraper/provenance/renames/cached"] == 39 and stats["hfscraper/provenance/entities"] == 40
    assert stats["hfscraper/provenance/edges/base_model"] == 79  # me/m0 names itself: no self-link
    graph = read_graph(tmp_path / "out")
    assert graph.has_edge("model:me/m39", "model:new-org/base") and graph.has_edge("model:me/m39", "model:me/m0")
