"""`scrapy lineage --format mermaid|dot` read back by the real parsers: Mermaid's own flowchart parser (mermaid
12.3.0 under jsdom 26.1.0, the parser GitHub and the Hub render with) and Graphviz 14 itself (WebAssembly build,
@hpcc-js/wasm-graphviz 1.29.2), through `tests/js-mermaid/check.mjs`. They are pinned by
`tests/js-mermaid/package-lock.json`; install them with `npm ci --prefix tests/js-mermaid` (`.ci/run` does).
Without them these tests skip, and fail under `CI`. Each output must parse, and the parsed nodes, labels and edges
must be exactly the selected subgraph's (hostile ids included: quotes, backslashes, unicode, newlines, `-->`)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from hfscraper.provenance.lineage import Lineage, render_dot, render_mermaid, safe_text, select
from tests.test_lineage import HOSTILE, add, family, hostile_graph, link

JS_DIR = Path(__file__).resolve().parent / "js-mermaid"
INSTALL = "npm ci --prefix tests/js-mermaid"


def require_parsers() -> None:
    if shutil.which("node") is None:
        reason = f"node is not installed (install Node.js 20+, then run `{INSTALL}`)"
    else:
        missing = [p for p in ("mermaid", "jsdom", "@hpcc-js/wasm-graphviz")
                   if not (JS_DIR / "node_modules" / p / "package.json").is_file()]  # fmt: skip
        reason = f"tests/js-mermaid/node_modules/{missing[0]} is missing (run `{INSTALL}`)" if missing else None
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the lineage parser tests must run, but {reason}", pytrace=False)
    pytest.skip(reason)


def parse(jobs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    require_parsers()
    payload = "".join(json.dumps({"format": f, "text": t}) + "\n" for f, t in jobs)
    proc = subprocess.run(["node", "check.mjs"], input=payload, capture_output=True, text=True, cwd=JS_DIR,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(answers) == len(jobs)
    return answers


def lineages() -> dict[str, Lineage]:
    big = family()
    for i in range(30):
        link(big, add(big, f"model:fan/child-{i}"), "model:org/q", "finetune")
    return {
        "family-both": select(family(), "model:org/ft"),
        "diamond": select(family(), "model:org/base", directions=("descendants",)),
        "cycle": select(family(), "model:c1"),
        "depth": select(family(), "model:org/q", depth=1),
        "fan-out": select(big, "model:org/q", limit=5),
        "hostile": select(hostile_graph(), "model:plain/root"),
        "lonely": select(hostile_graph(), f"model:{HOSTILE[0]}", directions=("ancestors",), relations=frozenset({"x"})),
    }


def unmermaid(text: str) -> str:
    """A label as mermaid's parser stores it (entities kept as `ﬂ°°35¶ß`/`ﬂ°quot¶ß` until rendering), decoded."""
    text = re.sub(r"ﬂ°(\w+)¶ß", lambda m: html.unescape(f"&{m.group(1)};"), text)
    return re.sub(r"ﬂ°°(\d+)¶ß", lambda m: chr(int(m.group(1))), text)


def expected_labels(lineage: Lineage) -> dict[str, str]:
    names = {key: f"n{i}" for i, key in enumerate(sorted(lineage.graph.nodes))}
    return {names[key]: safe_text(lineage.graph.nodes[key]["id"]) for key in lineage.graph.nodes}


def expected_edges(lineage: Lineage) -> set[tuple[str, str, str]]:
    names = {key: f"n{i}" for i, key in enumerate(sorted(lineage.graph.nodes))}
    return {(names[u], names[v], d["relation"]) for u, v, d in lineage.graph.edges(data=True)}


def test_mermaid_parses_to_the_selected_graph() -> None:
    cases = lineages()
    answers = parse([("mermaid", render_mermaid(lineage)) for lineage in cases.values()])
    for (name, lineage), answer in zip(cases.items(), answers, strict=True):
        assert answer["ok"], f"{name}: {answer.get('error')}"
        assert answer["type"].startswith("flowchart"), name
        labels = {node: unmermaid(text) for node, text, _classes in answer["nodes"] if node.startswith("n")}
        wanted = expected_labels(lineage)
        for node, label in wanted.items():  # a label is the id, then the marks in brackets
            assert labels[node] == label or labels[node].startswith(label + " ("), (name, node, labels[node], label)
        edges = {(a, b, unmermaid(text)) for a, b, text in answer["edges"] if not b.startswith("more")
                 and not a.startswith("more")}  # fmt: skip
        assert edges == expected_edges(lineage), name
        classes = {node: set(c) for node, _text, c in answer["nodes"]}
        root = expected_names(lineage)[lineage.root]
        assert "root" in classes[root], name
    fan = answers[list(cases).index("fan-out")]
    assert any(unmermaid(text) == "… and 26 more" for _node, text, _c in fan["nodes"])


def expected_names(lineage: Lineage) -> dict[str, str]:
    return {key: f"n{i}" for i, key in enumerate(sorted(lineage.graph.nodes))}


def test_dot_parses_to_the_selected_graph() -> None:
    cases = lineages()
    answers = parse([("dot", render_dot(lineage)) for lineage in cases.values()])
    for (name, lineage), answer in zip(cases.items(), answers, strict=True):
        assert answer["ok"], f"{name}: {answer.get('error')}"
        labels = {node: html.unescape(label) for node, label in answer["nodes"]}
        for node, label in expected_labels(lineage).items():
            assert labels[node] == label or labels[node].startswith(label + "<BR/>"), (name, node, labels[node])
        edges = {(a, b, html.unescape(label or "")) for a, b, label in answer["edges"]
                 if not a.startswith("more") and not b.startswith("more")}  # fmt: skip
        assert edges == expected_edges(lineage), name


def test_the_parsers_do_reject_broken_text() -> None:
    """The checks have teeth: what an unescaped renderer would write is refused."""
    answers = parse([
        ("mermaid", 'flowchart BT\n  n0["evil/quo"te"]\n'),
        ("mermaid", "flowchart BT\n  n0[evil/arrow-->x]\n  n1 -->|finetune| n0\n  n2[a]]]\n"),
        ("dot", 'digraph { "evil/back\\slash\\" -> "b" }'),
        ("dot", "digraph { n0 [label=<a<b>]; }"),
    ])  # fmt: skip
    assert [a["ok"] for a in answers] == [False, False, False, False], answers
