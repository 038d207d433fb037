"""`scrapy lineage` end to end: the real command as a subprocess from the repository root, reading a
provenance_graph.json written with networkx into a temporary HFSCRAPER_OUTPUT_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from tests.test_lineage import add, family, link

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRAPY = Path(sys.executable).parent / "scrapy"


def write_graph(output: Path, graph: nx.DiGraph) -> None:
    folder = output / "provenance"
    folder.mkdir(parents=True, exist_ok=True)
    data = nx.node_link_data(graph, edges="edges")
    (folder / "provenance_graph.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lineage-out")
    graph = family()
    add(graph, "model:Org/Ünï\"code")
    link(graph, "model:Org/Ünï\"code", "model:org/q", "adapter")
    write_graph(out, graph)
    return out


def lineage(output: Path, *args: str, settings: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HFSCRAPER_OUTPUT_DIR": str(output), "SCRAPY_SETTINGS_MODULE": "hfscraper.settings"}
    command = [str(SCRAPY), "lineage", *args]
    if settings:  # the folder given with -s instead of the environment
        env["HFSCRAPER_OUTPUT_DIR"] = "/nonexistent"
        command += ["-s", f"HFSCRAPER_OUTPUT_DIR={output}"]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_text_both_directions(output: Path) -> None:
    proc = lineage(output, "org/ft")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    root = next(i for i, line in enumerate(lines) if line.startswith("model org/ft"))
    assert lines.index("    ├── finetune → org/base") < root < lines.index("    ├── quantized ← org/q")
    assert "    │   ├── adapter ← Org/Ünï\"code" in lines
    assert "    └── merge ← org/merged" in lines
    assert proc.stderr == ""


def test_ancestors_depth_and_relation(output: Path) -> None:
    proc = lineage(output, "org/q", "--ancestors", "--depth", "1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert [n["key"] for n in document["nodes"]] == ["model:org/ft", "model:org/q"]
    assert document["depth"] == 1 and document["directions"] == ["ancestors"]
    proc = lineage(output, "org/base", "--descendants", "--relation", "adapter,merge", "--format", "json")
    keys = [n["key"] for n in json.loads(proc.stdout)["nodes"]]
    assert keys == ["model:org/base", "model:org/d2", "model:org/m"]
    proc = lineage(output, "org/base", "--descendants", "--relation", "adapter", "--relation", "finetune")
    assert "adapter ← org/d2" in proc.stdout and "finetune ← org/d1" in proc.stdout and "merge" not in proc.stdout


def test_type_and_settings_override(output: Path) -> None:
    proc = lineage(output, "org/data", "--type", "dataset", "--descendants", settings=True)
    assert proc.returncode == 0, proc.stderr
    assert "dataset ← org/ft" in proc.stdout and proc.stdout.startswith("dataset org/data")


def test_dot_and_mermaid_formats(output: Path) -> None:
    dot = lineage(output, "org/ft", "--format", "dot")
    assert dot.returncode == 0 and dot.stdout.startswith("digraph lineage {")
    mermaid = lineage(output, "org/ft", "--format", "mermaid")
    assert mermaid.returncode == 0 and mermaid.stdout.startswith("flowchart BT\n")


def test_id_in_another_case_is_the_entity(output: Path) -> None:
    proc = lineage(output, "ORG/FT")  # Hub ids are case-insensitive
    assert proc.returncode == 0 and proc.stdout == lineage(output, "org/ft").stdout and proc.stderr == ""


def test_unknown_id_suggests_close_matches(output: Path) -> None:
    proc = lineage(output, "ORG/FTS")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "hfscraper: no model 'ORG/FTS' in the provenance graph; did you mean org/ft, org/q, org/m, org/data (--type dataset), org/base?\n"  # noqa: E501
    proc = lineage(output, "org/bsae")
    assert proc.returncode == 2 and "did you mean org/base" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_bad_arguments(output: Path) -> None:
    proc = lineage(output, "org/ft", "--relation", "cousin")
    assert proc.returncode == 2
    assert proc.stderr == (
        "hfscraper: unknown relation cousin (known: base, finetune, adapter, quantized, merge, dataset, model)\n"
    )
    assert lineage(output, "org/ft", "--depth", "-1").returncode == 2
    assert lineage(output).returncode == 2


def test_missing_graph(tmp_path: Path) -> None:
    proc = lineage(tmp_path, "org/ft")
    assert proc.returncode == 1 and proc.stdout == ""
    where = tmp_path / "provenance" / "provenance_nodes.parquet"
    assert proc.stderr.startswith(f"hfscraper: no provenance graph at {where}: crawl first")
    assert len(proc.stderr.splitlines()) == 1
