"""The provenance graph of real crawls of the replica, checked against its ground truth: every relation exactly
(renamed bases, the card-only unknown base as a stub), `childrenModelCount`, the output files, a crawl killed with
SIGKILL and resumed, and crawls over a changed Hub (no duplicate, no stale edge)."""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import pyarrow.parquet as pq
import pytest

from hfscraper.hub import entity_folder_name
from hfscraper.provenance.documents import document_for_path, document_text
from hfscraper.provenance.freshness import GRAPH_FILES, OUTPUT_FILES
from hfscraper.provenance.graph import graph_from_state, read_graph
from hfscraper.provenance.lineage import RENDERERS, load_graph, load_lineage, resolve, select
from hfscraper.provenance.outputs import EDGE_SCHEMA, ENTITY_FOLDERS, NODE_SCHEMA
from hfscraper.state import state_file_path
from tests.support.crawl import REPO_ROOT, crawl, crawl_command, crawl_env, metadata_only, parse_stats, public
from tests.support.replica import ReplicaHandle, run_replica

#: Metadata only, no IPFS: the graph needs neither files nor CIDs, and this keeps the module fast.
SETTINGS = {"HFSCRAPER_IPFS_ENABLED": "false"}
DEFAULT_RELATION = {"base_model": "base", "dataset": "dataset", "model": "model"}


@pytest.fixture(autouse=True)
def _metadata_only(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata_only(monkeypatch)


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    # seed 7: a card-only unknown base, bases renamed (cards keeping their old ids), spaces using models
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=300, datasets=100, spaces=100, seed=7, latency_ms=15
    ) as hub:
        yield hub


@pytest.fixture(scope="module")
def crawled(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crawl") / "out"
    result = crawl(replica, "", out, command_name="crawlall", settings=SETTINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert stat_sum(result.stderr, "hfscraper/provenance/renames/unknown") == 1
    assert "Provenance: " in result.stderr
    return out


def stat_sum(log: str, key: str) -> int:
    """A stat summed over every spider's stats dump of a `crawlall` log."""
    total = 0
    for dump in re.findall(r"Dumping Scrapy stats:\n(\{.*?\})\n\d{4}-\d\d-\d\d ", log, re.S):
        total += parse_stats(f"Dumping Scrapy stats:\n{dump}\n2026-01-01 ").get(key, 0)
    return total


def expected_edges(truth: dict[str, Any], deleted: set[str] = frozenset()) -> set[tuple[str, str, str, str]]:
    """(source key, target key, kind, relation) of every relation of the public entities of the truth."""
    edges = set()
    for repo_type in ("model", "dataset", "space"):
        for entity in public(truth, repo_type):
            src = f"{repo_type}:{entity['id']}"
            if src in deleted:
                continue
            for r in entity["relations"]:
                if r["kind"] == "space":
                    continue
                relation = r["relation"] or DEFAULT_RELATION[r["kind"]]
                edges.add((src, f"{r['target_type']}:{r['target']}", r["kind"], relation))
    return edges


def graph_edges(graph: nx.DiGraph) -> set[tuple[str, str, str, str]]:
    return {(u, v, a["kind"], a["relation"]) for u, v, a in graph.edges(data=True)}


def folded(edges: set[tuple[str, str, str, str]]) -> set[tuple[str, str, str, str]]:
    """The edges with their ends' ids in lower case (Hub ids are case-insensitive)."""
    return {(src.lower(), dst.lower(), kind, relation) for src, dst, kind, relation in edges}


def raw_edges(out: Path) -> list[tuple[str, str]]:
    table = pq.read_table(out / "provenance" / "provenance_edges.parquet", columns=["src", "dst"])
    return list(zip(table.column("src").to_pylist(), table.column("dst").to_pylist(), strict=True))


def graph_command(out: Path, graph_format: str, target: Path) -> None:
    """`python -m hfscraper.provenance graph --format F TARGET` over the crawl's folder."""
    done = subprocess.run(
        [sys.executable, "-m", "hfscraper.provenance", "graph", "--format", graph_format, "--output-dir", str(out),
         str(target)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and target.is_file(), done.stderr


def state_rows(out: Path) -> int:
    db = sqlite3.connect(state_file_path(out.parent / "state", out))
    try:
        return db.execute("SELECT count(*) FROM provenance_edges").fetchone()[0]
    finally:
        db.close()


def test_graph_equals_the_truths_relations(replica: ReplicaHandle, crawled: Path) -> None:
    graph = read_graph(crawled)
    truth = replica.truth
    assert graph_edges(graph) == expected_edges(truth)  # precision and recall 100%
    # renamed bases: cards naming an old id, edges to the current one
    renamed = {old: e["id"] for e in truth["models"] for old in e["renamed_from"]}
    card_old = 0
    for model in public(truth, "model"):
        card = model["api"].get("cardData") or {}
        names = card.get("base_model")
        for name in [names] if isinstance(names, str) else names or []:
            if name in renamed:
                card_old += 1
                assert graph.has_edge(f"model:{model['id']}", f"model:{renamed[name]}")
                assert f"model:{name}" not in graph
    assert card_old >= 1
    # the card-only unknown base: a stub, relation `base`, source `card`
    (unknown,) = [
        (f"model:{m['id']}", f"model:{r['target']}")
        for m in public(truth, "model") for r in m["relations"] if r["source"] == "card"
    ]  # fmt: skip
    assert graph.nodes[unknown[1]]["scraped"] is False and graph.nodes[unknown[1]]["type"] == "model"
    assert graph.edges[unknown]["relation"] == "base" and graph.edges[unknown]["sources"] == ["card"]
    # node attributes of crawled entities
    model = public(truth, "model")[0]
    node = graph.nodes[f"model:{model['id']}"]
    assert node["scraped"] is True and node["deleted"] is False and node["id"] == model["id"]
    assert (node["author"], node["downloads"], node["likes"]) == (
        model["api"]["author"],
        model["api"]["downloads"],
        model["api"]["likes"],
    )
    assert node["created_at"] == model["api"]["createdAt"] and node["last_modified"] == model["api"]["lastModified"]
    crawled_count = sum(len(public(truth, t)) for t in ("model", "dataset", "space"))
    assert sum(1 for _, a in graph.nodes(data=True) if a["scraped"]) == crawled_count


def test_direct_children_equal_children_model_count(replica: ReplicaHandle, crawled: Path) -> None:
    # `childrenModelCount` is refused by the listing; only `GET /api/models/{id}?expand=childrenModelCount` has it.
    graph = read_graph(crawled)
    for model in public(replica.truth, "model"):
        with urllib.request.urlopen(f"{replica.url}/api/models/{model['id']}?expand=childrenModelCount") as answer:
            expected = json.load(answer)["childrenModelCount"]
        key = f"model:{model['id']}"
        children = sum(1 for _, _, a in graph.in_edges(key, data=True) if a["kind"] == "base_model")
        assert children == expected, key


def test_output_files_parse_and_agree(replica: ReplicaHandle, crawled: Path, tmp_path: Path) -> None:
    folder = crawled / "provenance"
    # a default crawl writes the Parquet files only; every node, crawled or stub, in the declared schema
    assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUT_FILES)
    graph = read_graph(crawled)
    nodes = pq.read_table(folder / "provenance_nodes.parquet")
    assert nodes.schema.equals(NODE_SCHEMA, check_metadata=True)
    assert pq.ParquetFile(folder / "provenance_nodes.parquet").schema_arrow.equals(NODE_SCHEMA, check_metadata=True)
    state = graph_from_state(state_file_path(crawled.parent / "state", crawled))
    rows = nodes.to_pylist()
    assert [r["key"] for r in rows] == sorted(state.nodes)
    assert {r.pop("key"): r for r in rows} == dict(state.nodes(data=True))
    assert any(not a["scraped"] for _, a in state.nodes(data=True))  # stubs too
    assert set(graph.edges) == set(state.edges)
    # the text files, asked for on demand
    for graph_format in ("graphml", "relationships"):
        graph_command(crawled, graph_format, tmp_path / GRAPH_FILES[graph_format])
    graphml = nx.read_graphml(tmp_path / "provenance_graph.graphml")
    assert set(graphml.nodes) == set(graph.nodes) and set(graphml.edges) == set(graph.edges)
    u, v = next(iter(graph.edges))
    assert graphml.edges[u, v]["sources"] == ",".join(graph.edges[u, v]["sources"])
    table = pq.read_table(folder / "provenance_edges.parquet")
    assert table.schema.equals(EDGE_SCHEMA, check_metadata=False)
    assert {(r["src"], r["dst"], r["kind"], r["relation"]) for r in table.to_pylist()} == graph_edges(graph)
    relationships = json.loads((tmp_path / "entity_relationships.json").read_text(encoding="utf-8"))
    assert relationships["counts"] == {
        "nodes": graph.number_of_nodes(), "edges": graph.number_of_edges(),
        "stubs": sum(1 for _, a in graph.nodes(data=True) if not a["scraped"]),
    }  # fmt: skip
    assert set(relationships["entities"]) == set(graph.nodes)
    # no file per entity: each crawled entity's document is answered from entity_relationships.json
    assert not any((folder / sub).exists() for sub in ENTITY_FOLDERS.values())
    for repo_type in ("model", "dataset", "space"):
        for entity in public(replica.truth, repo_type):
            path = f"{ENTITY_FOLDERS[repo_type]}/{entity_folder_name(entity['id'])}.json"
            assert json.loads(document_for_path(crawled, path) or b"null")["id"] == entity["id"]
    model = next(m for m in public(replica.truth, "model") if m["relations"])
    doc = json.loads(document_text(crawled, "model", model["id"]) or b"null")
    assert {(d["type"], d["id"]) for d in doc["depends_on"]} == {
        (r["target_type"], r["target"]) for r in model["relations"]
    }
    assert not list(folder.rglob(".hfscraper-tmp-*"))


def test_graph_files_on_request_and_answers_without_them(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    asked = {**SETTINGS, "HFSCRAPER_PROVENANCE_GRAPH_FILES": "json,graphml,relationships"}
    result = crawl(replica, "models", out, settings=asked)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = out / "provenance"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*OUTPUT_FILES, *GRAPH_FILES.values()])
    # the on-demand command writes the same bytes as the rebuild asked for them
    for graph_format, name in GRAPH_FILES.items():
        graph_command(out, graph_format, tmp_path / name)
        assert (tmp_path / name).read_bytes() == (folder / name).read_bytes(), name
    # the same folder without its text files answers every document and lineage as the text files do
    bare = tmp_path / "bare"
    (bare / "provenance").mkdir(parents=True)
    for name in OUTPUT_FILES:
        shutil.copy2(folder / name, bare / "provenance" / name)
    whole = load_graph(out)
    keys = sorted(whole.nodes)
    assert len(keys) > 300 and any(not whole.nodes[k]["scraped"] for k in keys)
    for key in keys:
        repo_type, repo_id = key.split(":", 1)
        assert document_text(bare, repo_type, repo_id) == document_text(out, repo_type, repo_id), key
    busiest = sorted(keys, key=lambda k: -whole.degree(k))[:15]
    for key in [*busiest, *keys[::25]]:
        repo_type, repo_id = key.split(":", 1)
        for directions, depth, limit in ((("ancestors", "descendants"), None, 25), (("descendants",), 1, 2)):
            root = resolve(whole, repo_id, repo_type)
            expected = select(whole, root, directions=directions, depth=depth, limit=limit)
            graph, root = load_lineage(bare, repo_id, repo_type, directions=directions, depth=depth, limit=limit)
            got = select(graph, root, directions=directions, depth=depth, limit=limit)
            for name, render in RENDERERS.items():
                assert render(got) == render(expected), (key, name)
    assert graph_edges(read_graph(bare)) == graph_edges(whole)


def test_sigkill_then_resume_gives_the_same_graph(replica: ReplicaHandle, crawled: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = crawl_command("models", out, settings=SETTINGS)
    mark = replica.mark()
    with open(tmp_path / "killed.log", "wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=crawl_env(replica, out), stderr=log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            pages = [r for r in replica.requests(since=mark, origin="hub") if r["path"].startswith("/api/models?")]
            # some relations recorded (however loaded the machine), and the listing still going
            if len(pages) >= 3 and state_file_path(out.parent / "state", out).exists() and state_rows(out) > 0:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the crawl ended before it could be killed"
    assert state_rows(out) > 0  # the killed run recorded some relations
    resumed = crawl(replica, "models", out, settings=SETTINGS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    graph = read_graph(out)
    # models only: their own edges, and the spaces each model lists (a model's `spaces`) as stubs using it. A
    # dataset the crawl did not fetch is a stub spelled as the models' tags write it, possibly in another case than
    # its id (ids are case-insensitive; one node per dataset whatever the case).
    expected = {e for e in expected_edges(replica.truth) if e[0].startswith("model:") or e[2] == "model"}
    assert folded(graph_edges(graph)) == folded(expected)
    assert len({k.lower() for k in graph.nodes}) == graph.number_of_nodes()
    assert not any(a["scraped"] for k, a in graph.nodes(data=True) if not k.startswith("model:"))
    edges = raw_edges(out)
    assert len(edges) == len(set(edges))
    # the state holds one row per declared edge: nothing twice after the kill
    again = crawl(replica, "models", out, settings={**SETTINGS, "DELTAFETCH_RESET": "true"})
    assert again.returncode == 0, again.stderr[-3000:]
    rows = state_rows(out)
    assert rows == again.stat("hfscraper/provenance/edges")
    assert folded(graph_edges(read_graph(out))) == folded(expected)


def test_changed_hub_replaces_edges(replica: ReplicaHandle, crawled: Path) -> None:
    """Runs last in this module: it changes the replica (and restores it)."""
    truth = replica.truth
    graph = read_graph(crawled)
    derived = [m["id"] for m in public(truth, "model") if any(r["kind"] == "base_model" for r in m["relations"])]
    bases = [v.split(":", 1)[1] for _, v, a in graph.edges(data=True) if a["kind"] == "base_model"]
    base = next(b for b in Counter(bases) if graph.nodes[f"model:{b}"]["scraped"] and b not in derived[:2])
    space = next(s["id"] for s in public(truth, "space") if s["relations"])
    deleted_models = [*derived[:2], base]
    replica.mutate("model", delete=deleted_models, touch=derived[2:4])
    replica.mutate("space", delete=[space])
    try:
        second = crawl(replica, "", crawled, command_name="crawlall", settings=SETTINGS)
        assert second.returncode == 0, second.stderr[-3000:]
        assert stat_sum(second.stderr, "hfscraper/state/tombstoned") == len(deleted_models) + 1
        graph = read_graph(crawled)
        gone = {f"model:{m}" for m in deleted_models} | {f"space:{space}"}
        assert graph_edges(graph) == expected_edges(truth, deleted=gone)
        for key in gone:
            assert graph.nodes[key]["deleted"] is True and graph.out_degree(key) == 0
        assert graph.in_degree(f"model:{base}") > 0  # its fine-tunes still name it
        edges = raw_edges(crawled)
        assert len(edges) == len(set(edges))
        # an incremental crawl over touched models: their edges replaced, nothing doubled
        replica.mutate("model", touch=derived[4:6])
        since = crawl(replica, "models", crawled, "since=auto", settings=SETTINGS)
        assert since.returncode == 0, since.stderr[-3000:]
        assert since.stat("hfscraper/provenance/entities") == 2
        assert graph_edges(read_graph(crawled)) == expected_edges(truth, deleted=gone)
    finally:
        replica.mutate("model", restore=deleted_models)
        replica.mutate("space", restore=[space])
    third = crawl(replica, "", crawled, command_name="crawlall", settings=SETTINGS)
    assert third.returncode == 0, third.stderr[-3000:]
    graph = read_graph(crawled)
    assert graph_edges(graph) == expected_edges(truth)
    assert not any(a["deleted"] for _, a in graph.nodes(data=True))


# -- `scrapy lineage` over the crawled graph -------------------------------------------------------------------


def _closure(edges: set[tuple[str, str, str, str]], start: str, *, up: bool) -> set[str]:
    """Keys reachable from *start* along the truth's edges (up: towards bases; else towards dependents)."""
    step: dict[str, set[str]] = {}
    for src, dst, _kind, _relation in edges:
        a, b = (src, dst) if up else (dst, src)
        step.setdefault(a, set()).add(b)
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in step.get(todo.pop(), ()):
            if nxt not in seen and nxt != start:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_lineage_of_a_model_three_levels_deep(replica: ReplicaHandle, crawled: Path) -> None:
    from tests.support.crawl import _scrapy_command
    from tests.test_lineage_parsers import parse

    edges = expected_edges(replica.truth)
    base_edges = {e for e in edges if e[2] == "base_model"}

    def depth(key: str) -> int:
        parents = [dst for src, dst, _k, _r in base_edges if src == key]
        return 1 + max(map(depth, parents)) if parents else 0

    deep = [
        f"model:{e['id']}" for e in public(replica.truth, "model")
        if depth(f"model:{e['id']}") >= 3 and _closure(base_edges, f"model:{e['id']}", up=False)
    ]  # fmt: skip
    assert deep, "seed 7 should have a model with three levels of bases and children of its own"
    key = deep[0]
    repo_id = key.split(":", 1)[1]
    env = {**crawl_env(replica, crawled), "HFSCRAPER_OUTPUT_DIR": str(crawled)}

    def lineage(*args: str) -> str:
        proc = subprocess.run(
            [*_scrapy_command(), "lineage", repo_id, "--limit", "0", *args],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    document = json.loads(lineage("--format", "json"))
    shown = {n["key"] for n in document["nodes"]} - {key}
    ancestors, descendants = _closure(edges, key, up=True), _closure(edges, key, up=False)
    assert shown == ancestors | descendants
    assert {(e["source"], e["target"]) for e in document["edges"]} >= {
        (s, d) for s, d, _k, _r in base_edges if {s, d} <= ancestors | descendants | {key}
    }
    base_ancestors = _closure(base_edges, key, up=True)
    assert len(base_ancestors) >= 3
    text = lineage("--ancestors", "--relation", "finetune,adapter,quantized,merge,base")
    for ancestor in base_ancestors:
        assert ancestor.split(":", 1)[1] in text
    assert lineage("--format", "dot").startswith("digraph lineage {")
    mermaid = lineage("--format", "mermaid")
    (answer,) = parse([("mermaid", mermaid)])
    assert answer["ok"], answer.get("error")
    assert len([n for n, _t, _c in answer["nodes"] if n.startswith("n")]) == len(shown) + 1
