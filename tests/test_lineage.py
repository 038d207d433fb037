"""`hfscraper.provenance.lineage`: selection and the four renderers on hand-built provenance graphs (chains three
levels deep, merges with several bases, diamonds, cycles, stubs, deleted entities, hostile ids, big fan-out)."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from hfscraper.provenance.lineage import (
    UnknownEntityError,
    decode_mermaid,
    render_dot,
    render_json,
    render_mermaid,
    render_text,
    resolve,
    select,
)

HOSTILE = [
    'evil/quo"te',
    "evil/back\\slash\\",
    "evil/ünï-cödé.模型",
    "evil/new\nline",
    "evil/arrow-->x",
    "evil/esc\x1b[31mred",
    "evil/pipe|]];end",
    "evil/#quot;ent&amp;<b>",
    "evil/non\ufffechar\uffff",  # XML forbids both: a Graphviz HTML label refuses even their references
]


def add(graph: nx.DiGraph, key: str, **attrs: object) -> str:
    entity_type, _, entity_id = key.partition(":")
    defaults = {"type": entity_type, "id": entity_id, "scraped": True, "deleted": False, "author": None,
                "pipeline_tag": None, "library_name": None, "downloads": 0, "likes": 0,
                "created_at": None, "last_modified": None}  # fmt: skip
    graph.add_node(key, **{**defaults, **attrs})
    return key


def link(graph: nx.DiGraph, child: str, parent: str, relation: str) -> None:
    kind = {"dataset": "dataset", "model": "model"}.get(relation, "base_model")
    graph.add_edge(child, parent, kind=kind, relation=relation, sources=["tag"])


def family() -> nx.DiGraph:
    """base <- ft <- q (three levels), a merge of ft and other, a diamond (d1, d2 both from base, m from both),
    a dataset, a space using q, a stub base of `base`, a deleted fine-tune, and a cycle c1 <-> c2."""
    g = nx.DiGraph()
    for key in ["model:org/base", "model:org/ft", "model:org/q", "model:org/other", "model:org/merged",
                "model:org/d1", "model:org/d2", "model:org/m", "dataset:org/data", "space:org/demo",
                "model:org/gone", "model:c1", "model:c2"]:  # fmt: skip
        add(g, key, downloads=100)
    add(g, "model:root/stub", scraped=False, downloads=None)
    g.nodes["model:org/gone"]["deleted"] = True
    link(g, "model:org/base", "model:root/stub", "finetune")
    link(g, "model:org/ft", "model:org/base", "finetune")
    link(g, "model:org/q", "model:org/ft", "quantized")
    link(g, "model:org/merged", "model:org/ft", "merge")
    link(g, "model:org/merged", "model:org/other", "merge")
    link(g, "model:org/d1", "model:org/base", "finetune")
    link(g, "model:org/d2", "model:org/base", "adapter")
    link(g, "model:org/m", "model:org/d1", "merge")
    link(g, "model:org/m", "model:org/d2", "merge")
    link(g, "model:org/ft", "dataset:org/data", "dataset")
    link(g, "space:org/demo", "model:org/q", "model")
    link(g, "model:org/gone", "model:org/base", "finetune")
    link(g, "model:c1", "model:c2", "finetune")
    link(g, "model:c2", "model:c1", "finetune")
    return g


def test_ancestors_three_levels_and_dataset() -> None:
    lineage = select(family(), "model:org/q", directions=("ancestors",))
    assert set(lineage.graph.nodes) == {"model:org/q", "model:org/ft", "model:org/base", "model:root/stub",
                                         "dataset:org/data"}  # fmt: skip
    text = render_text(lineage)
    lines = text.splitlines()
    assert "    └── quantized → org/ft" in lines
    assert "        ├── finetune → org/base" in lines
    assert "        │   └── finetune → root/stub  [stub: not crawled]" in lines
    assert "        └── dataset → org/data  [dataset]" in lines
    root = next(i for i, line in enumerate(lines) if line.startswith("model org/q"))
    assert lines.index("    └── quantized → org/ft") < root


def test_descendants_diamond_marks_the_repeat() -> None:
    text = render_text(select(family(), "model:org/base", directions=("descendants",)))
    assert sum(line.endswith("merge ← org/m") for line in text.splitlines()) == 2  # reached through d1 and through d2
    assert text.count("(repeat") == 0  # org/m has no descendants of its own: nothing to repeat
    assert "adapter ← org/d2" in text
    assert "finetune ← org/gone  [deleted]" in text
    assert "model ← org/demo  [space]" in text
    # a repeat with a subtree is shown once and marked the second time
    g = family()
    link(g, add(g, "model:org/m-child"), "model:org/m", "finetune")
    text = render_text(select(g, "model:org/base", directions=("descendants",)))
    assert text.count("finetune ← org/m-child") == 1
    assert "merge ← org/m  (repeat: its lineage is shown above)" in text


def test_merge_with_two_bases() -> None:
    lineage = select(family(), "model:org/merged", directions=("ancestors",))
    text = render_text(lineage)
    assert "├── merge → org/ft" in text and "└── merge → org/other" in text
    assert {(u, v) for u, v in lineage.graph.edges} >= {("model:org/merged", "model:org/ft"),
                                                        ("model:org/merged", "model:org/other")}  # fmt: skip


def test_cycle_terminates_and_is_marked() -> None:
    for direction in ("ancestors", "descendants"):
        lineage = select(family(), "model:c1", directions=(direction,))
        text = render_text(lineage)
        assert "(cycle: already in this branch)" in text
        assert set(lineage.graph.nodes) == {"model:c1", "model:c2"}
    assert json.loads(render_json(select(family(), "model:c1")))["edges"] == [
        {"source": "model:c1", "target": "model:c2", "kind": "base_model", "relation": "finetune", "sources": ["tag"]},
        {"source": "model:c2", "target": "model:c1", "kind": "base_model", "relation": "finetune", "sources": ["tag"]},
    ]


def test_self_loop_is_ignored() -> None:
    g = family()
    link(g, "model:org/ft", "model:org/ft", "finetune")
    lineage = select(g, "model:org/ft")
    assert ("model:org/ft", "model:org/ft") not in lineage.graph.edges
    render_text(lineage)


def test_depth_limit() -> None:
    lineage = select(family(), "model:org/q", directions=("ancestors",), depth=1)
    assert set(lineage.graph.nodes) == {"model:org/q", "model:org/ft"}
    assert lineage.beyond_depth == {("model:org/ft", "ancestors"): 2}
    assert "… 2 more beyond --depth 1" in render_text(lineage)
    document = json.loads(render_json(lineage))
    assert [n for n in document["nodes"] if n["key"] == "model:org/ft"][0]["beyond_depth"] == {"ancestors": 2}
    assert set(select(family(), "model:org/q", directions=("ancestors",), depth=0).graph.nodes) == {"model:org/q"}


def test_relation_filter() -> None:
    lineage = select(family(), "model:org/base", directions=("descendants",), relations=frozenset({"adapter"}))
    assert set(lineage.graph.nodes) == {"model:org/base", "model:org/d2"}
    lineage = select(family(), "model:org/q", directions=("ancestors",), relations=frozenset({"quantized", "dataset"}))
    assert set(lineage.graph.nodes) == {"model:org/q", "model:org/ft", "dataset:org/data"}
    assert {d["relation"] for *_, d in lineage.graph.edges(data=True)} == {"quantized", "dataset"}


def test_fan_out_is_truncated_and_can_be_lifted() -> None:
    g = nx.DiGraph()
    add(g, "model:big/base")
    for i in range(40):
        link(g, add(g, f"model:fan/child-{i:02d}", downloads=i), "model:big/base", "finetune")
    lineage = select(g, "model:big/base", directions=("descendants",), limit=10)
    text = render_text(lineage)
    assert "└── … and 30 more (--limit 0 lists all)" in text
    assert "fan/child-39" in text and "fan/child-29" not in text  # most downloaded first
    assert len(lineage.graph) == 11 and lineage.hidden == {("model:big/base", "descendants"): 30}
    assert "#8230; and 30 more" in render_mermaid(lineage) and "&#8230; and 30 more" in render_dot(lineage)
    assert len(select(g, "model:big/base", limit=None).graph) == 41
    assert "more" not in render_text(select(g, "model:big/base", limit=None))


def test_json_is_stable_and_complete() -> None:
    g1, g2 = family(), nx.DiGraph()
    for key in reversed(list(g1.nodes)):  # same graph, other insertion order
        g2.add_node(key, **g1.nodes[key])
    for u, v, d in reversed(list(g1.edges(data=True))):
        g2.add_edge(u, v, **d)
    one, two = render_json(select(g1, "model:org/ft")), render_json(select(g2, "model:org/ft"))
    assert one == two
    document = json.loads(one)
    keys = [n["key"] for n in document["nodes"]]
    assert keys == sorted(keys) and document["root"] == "model:org/ft"
    assert document["directions"] == ["ancestors", "descendants"]
    stub = next(n for n in document["nodes"] if n["key"] == "model:root/stub")
    assert stub["scraped"] is False and stub["id"] == "root/stub" and stub["type"] == "model"
    assert [(e["source"], e["target"]) for e in document["edges"]] == sorted(
        (e["source"], e["target"]) for e in document["edges"]
    )


def hostile_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    add(g, "model:plain/root")
    for i, entity_id in enumerate(HOSTILE):
        link(g, add(g, f"model:{entity_id}", downloads=i), "model:plain/root", "finetune")
    return g


def test_text_escapes_control_characters() -> None:
    text = render_text(select(hostile_graph(), "model:plain/root"))
    assert "\x1b" not in text and "evil/esc\\u001b[31mred" in text
    assert "evil/new\\nline" in text and "evil/ünï-cödé.模型" in text


def test_mermaid_labels_are_escaped() -> None:
    out = render_mermaid(select(hostile_graph(), "model:plain/root"))
    assert out.startswith("flowchart BT\n")
    for line in out.splitlines()[1:]:
        assert line.isascii()
        if '["' in line:  # a node: nN["..."] with no raw quote, bracket or pipe inside the label
            name, label = line.strip().split("[", 1)
            assert name.isidentifier() and label.startswith('"') and label.endswith('"]')
            assert not any(c in label[1:-2] for c in '"[]|<>`')
    labels = [decode_mermaid(line.strip().split('["', 1)[1][:-2]) for line in out.splitlines() if '["' in line]
    assert "evil/back\\slash\\" in labels and "evil/#quot;ent&amp;<b>" in labels and 'evil/quo"te' in labels


def test_dot_labels_are_escaped() -> None:
    out = render_dot(select(hostile_graph(), "model:plain/root"))
    assert out.startswith("digraph lineage {\n") and out.endswith("}\n")
    for line in out.splitlines()[1:-1]:
        assert line.isascii() and "\\" not in line and line.rstrip().endswith(";")


def test_resolve_and_close_matches() -> None:
    g = family()
    assert resolve(g, "org/base") == "model:org/base"
    assert resolve(g, "org/data", "dataset") == "dataset:org/data"
    assert resolve(g, "ORG/Base") == "model:org/base"  # Hub ids are case-insensitive
    twins = family()
    add(twins, "model:ORG/base")  # case twins (only a hostile server has them)
    with pytest.raises(UnknownEntityError) as caught:
        resolve(twins, "Org/Base")
    assert caught.value.suggestions[:2] == ["model:ORG/base", "model:org/base"]
    with pytest.raises(UnknownEntityError) as caught:
        resolve(g, "org/bsae")
    assert "model:org/base" in caught.value.suggestions
    with pytest.raises(UnknownEntityError) as caught:
        resolve(g, "org/data")  # a dataset asked for as a model
    assert "did you mean org/data (--type dataset), " in str(caught.value)
    with pytest.raises(UnknownEntityError) as caught:
        resolve(g, "base")  # without the owner
    assert caught.value.suggestions[0] == "model:org/base"
    with pytest.raises(UnknownEntityError) as caught:
        resolve(g, "zzzzzzzzzz/qqqqqqq")
    assert caught.value.suggestions == [] and "did you mean" not in str(caught.value)
