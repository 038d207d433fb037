"""Every provenance output stays well-formed for every id the crawl accepts (issue 13, item 12).

A model card may name bases and datasets with characters XML 1.0 forbids (U+FFFE and U+FFFF pass `check_repo_id`);
the replica's `hostile_cards` model names such ids. The GraphML must parse with ElementTree and networkx, every
edge endpoint must name a node written, and the JSON files, the Parquet edges and `scrapy lineage` (text, json,
dot, mermaid) must stay well-formed too. `xml_safe` is checked on every forbidden range."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import networkx as nx
import pyarrow.parquet as pq
import pytest

from hfscraper.hub import entity_folder_name
from hfscraper.provenance.documents import document_for_path
from hfscraper.provenance.lineage import render_dot, render_json, render_mermaid, render_text, select
from hfscraper.provenance.text import json_text, xml_safe, xml_unsafe
from hfscraper.replica.synth import HOSTILE_CARD_BASES, HOSTILE_CARD_DATASETS, HOSTILE_CARDS_MODEL
from tests.support.crawl import REPO_ROOT, crawl, crawl_command, crawl_env, metadata_only
from tests.support.replica import ReplicaHandle, run_replica

SETTINGS = {"HFSCRAPER_IPFS_ENABLED": "false"}
GRAPHML_NS = "{http://graphml.graphdrawing.org/xmlns}"
#: Every character XML 1.0 forbids (its `Char` production's complement below U+10000).
FORBIDDEN = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0xD800, 0xE000))] + [
    "\ufffe",
    "\uffff",
]
#: The ids of the hostile card the crawl keeps (controls are refused as ids, and counted as skipped).
KEPT_BASES = [b for b in HOSTILE_CARD_BASES if "\x01" not in b]
KEPT_DATASETS = [d for d in HOSTILE_CARD_DATASETS if "\x0b" not in d]


@pytest.fixture(autouse=True)
def _metadata_only(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata_only(monkeypatch)


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=20, datasets=5, spaces=5, seed=3, hostile_cards=True
    ) as hub:
        yield hub


@pytest.fixture(scope="module")
def crawled(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crawl") / "out"
    # every text file asked for: their formats are what is checked here
    settings = {**SETTINGS, "HFSCRAPER_PROVENANCE_GRAPH_FILES": "json,graphml,relationships"}
    result = crawl(replica, "models", out, settings=settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stat("hfscraper/provenance/skipped/card/base_model/bad_id") == 1
    assert result.stat("hfscraper/provenance/skipped/card/datasets/bad_id") == 1
    assert "Provenance: " in result.stderr
    return out


def test_xml_safe_escapes_every_forbidden_character_and_round_trips() -> None:
    allowed = ["\t", "\n", "\r", " ", "\ud7ff", "\ue000", "\ufffd", "\ufeff", "\U0001f600", "\U0010ffff", "é"]
    for char in FORBIDDEN + allowed:
        text = f"org/a{char}b"
        safe = xml_safe(text)
        assert xml_unsafe(safe) == text
        if char in allowed:
            assert safe == text
        else:
            assert safe == f"org/a\\u{ord(char):04x}b"
        # well-formed as an attribute and as text
        ET.fromstring(f"<r a={json.dumps(safe)}>{safe}</r>".encode("utf-8", "strict"))
    # collision-free: an id that spells another's escape stays apart from it, and the backslash round-trips
    ids = ["a\ufffeb", "a\\ufffeb", "a\\\\ufffeb", "a\\b", "a\\\\b", "a\\", "\\"]
    assert len({xml_safe(i) for i in ids}) == len(ids)
    assert all(xml_unsafe(xml_safe(i)) == i for i in ids)
    assert xml_safe("meta-llama/Llama-3.1-8B") == "meta-llama/Llama-3.1-8B"


def test_json_text_writes_lone_surrogates_as_escapes() -> None:
    value = {"id": "org/lone\ud800x", "k\udfff": ["\ud83d", "ok \U0001f600 \ufffe"]}
    text = json_text(value, indent=2)
    assert json.loads(text.encode("utf-8").decode("utf-8")) == value
    assert "\\ud800" in text and "\U0001f600" in text  # only the lone ones are escaped
    assert json_text({"a": "é"}) == '{"a": "é"}'


def test_graphml_parses_and_every_edge_names_a_node(crawled: Path) -> None:
    path = crawled / "provenance" / "provenance_graph.graphml"
    root = ET.parse(path).getroot()  # raised "not well-formed" before the fix
    graph_el = root.find(f"{GRAPHML_NS}graph")
    assert graph_el is not None
    nodes = {n.get("id") for n in graph_el.iter(f"{GRAPHML_NS}node")}
    edges = [(e.get("source"), e.get("target")) for e in graph_el.iter(f"{GRAPHML_NS}edge")]
    assert edges and all(u in nodes and v in nodes for u, v in edges)
    graphml = nx.read_graphml(path)
    src = f"model:{HOSTILE_CARDS_MODEL}"
    wanted = {f"model:{b}" for b in KEPT_BASES} | {f"dataset:{d}" for d in KEPT_DATASETS}
    assert {xml_unsafe(v) for v in graphml.successors(src)} == wanted
    for key in graphml.nodes:
        assert graphml.nodes[key]["id"] == key.split(":", 1)[1]  # the `id` value is cleaned like the key
    # the JSON graph and the GraphML hold the same nodes and edges once the escapes are undone
    data = json.loads((crawled / "provenance" / "provenance_graph.json").read_bytes().decode("utf-8"))
    assert {xml_unsafe(k) for k in graphml.nodes} == {n["id"] for n in data["nodes"]}
    assert {(xml_unsafe(u), xml_unsafe(v)) for u, v in graphml.edges} == {
        (e["source"], e["target"]) for e in data["edges"]
    }


def test_json_and_parquet_keep_the_ids_exactly(crawled: Path) -> None:
    folder = crawled / "provenance"
    data = json.loads((folder / "provenance_graph.json").read_bytes().decode("utf-8"))
    keys = {n["id"] for n in data["nodes"]}
    assert all(e["source"] in keys and e["target"] in keys for e in data["edges"])
    src = f"model:{HOSTILE_CARDS_MODEL}"
    targets = {e["target"] for e in data["edges"] if e["source"] == src}
    assert targets == {f"model:{b}" for b in KEPT_BASES} | {f"dataset:{d}" for d in KEPT_DATASETS}
    relationships = json.loads((folder / "entity_relationships.json").read_bytes().decode("utf-8"))
    assert set(relationships["entities"]) == keys
    path = f"model_relationships/{entity_folder_name(HOSTILE_CARDS_MODEL)}.json"
    doc = json.loads((document_for_path(crawled, path) or b"null").decode("utf-8"))
    assert {d["id"] for d in doc["depends_on"]} == set(KEPT_BASES) | set(KEPT_DATASETS)
    table = pq.read_table(folder / "provenance_edges.parquet").to_pylist()
    assert {r["dst_id"] for r in table if r["src_id"] == HOSTILE_CARDS_MODEL} == set(KEPT_BASES) | set(KEPT_DATASETS)
    nodes = pq.read_table(folder / "provenance_nodes.parquet").to_pylist()
    assert [r["key"] for r in nodes] == [n["id"] for n in data["nodes"]]  # the same keys, in the same order
    assert all(r["key"] == f"{r['type']}:{r['id']}" for r in nodes)


@pytest.mark.parametrize("output_format", ["text", "json", "dot", "mermaid"])
def test_lineage_of_the_hostile_card_in_every_format(replica: ReplicaHandle, crawled: Path, output_format: str) -> None:
    command = crawl_command("", crawled, command_name="lineage", page_size=None)
    command += [HOSTILE_CARDS_MODEL, "--ancestors", "--format", output_format]
    proc = subprocess.run(command, cwd=REPO_ROOT, env=crawl_env(replica, crawled), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout.decode("utf-8")  # strict: the output is UTF-8
    for char in ("\ufffe", "\uffff"):
        assert char not in text or output_format == "json"
    if output_format == "json":
        doc = json.loads(text)
        assert {e["target"] for e in doc["edges"]} >= {f"model:{b}" for b in KEPT_BASES}
    elif output_format == "text":
        # a terminal shows U+FFFE as a visible escape (the JSON format is the exact one)
        assert text.count("removed-org/nonchar\\ufffe-base") == 2 and "removed-org/max\\uffff" in text


def test_renderers_write_forbidden_characters_visibly() -> None:
    graph = nx.DiGraph()
    ids = ["org/child", "org/lone\ud800", "org/non\ufffe", "org/max\uffff"]
    for repo_id in ids:
        graph.add_node(f"model:{repo_id}", type="model", id=repo_id, scraped=True, deleted=False)
    for repo_id in ids[1:]:
        graph.add_edge("model:org/child", f"model:{repo_id}", kind="base_model", relation="finetune", sources=["card"])
    lineage = select(graph, "model:org/child")
    for render in (render_text, render_dot, render_mermaid):
        out = render(lineage)
        out.encode("utf-8")  # no lone surrogate left
        assert not any(c in out for c in "\ufffe\uffff")
        assert "&#65534;" not in out and "&#55296;" not in out  # Graphviz refuses these references
    doc = json.loads(render_json(lineage).encode("utf-8"))
    assert {n["id"] for n in doc["nodes"]} == set(ids)
