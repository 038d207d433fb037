"""The provenance graph as a `networkx.DiGraph` (the contract other commands rely on; docs/PROVENANCE.md).

- Nodes: key `f"{type}:{id}"` (type `model`, `dataset` or `space`; id the current Hub id), attributes `type`,
  `id`, `scraped` (False for a stub: named by an edge, never crawled), `deleted` (tombstoned by a full sweep),
  `author`, `pipeline_tag`, `library_name`, `downloads`, `likes`, `created_at`, `last_modified` (ISO 8601 text
  or None).
- Edges point from the dependent entity to what it depends on (fine-tune -> base, model -> dataset, space ->
  model or dataset), attributes `kind` (`base_model`, `dataset`, `model`), `relation` (`finetune`, `adapter`,
  `quantized`, `merge`, `base` for base models; `dataset`; `model`) and `sources` (sorted list of `tag`, `card`,
  `api`).

`read_graph(output_dir)` loads the whole graph of the last rebuild: from `provenance_graph.json` when the folder
holds it (HFSCRAPER_PROVENANCE_GRAPH_FILES asked for it), else from the Parquet files (`hfscraper.provenance.
columnar`); either way the same nodes, edges and attributes. It holds every node in memory (networkx: roughly a
kilobyte per node): for one entity's family `hfscraper.provenance.lineage.load_lineage` reads only its
neighbourhood. `graph_from_state(state_file)` builds the same graph straight from the crawl state.
"""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx

from hfscraper.provenance.columnar import GraphFiles, GraphFilesMissing, edge_attributes, node_attributes
from hfscraper.provenance.freshness import GRAPH_JSON, provenance_dir
from hfscraper.provenance.store import crawled_nodes, resolved_edges
from hfscraper.state import StateStore


class ProvenanceGraphMissing(FileNotFoundError):
    """There is no provenance graph in the output folder (no crawl wrote one, or it was removed)."""


def read_graph(output_dir: Path) -> nx.DiGraph:
    """The whole graph of `output_dir/provenance/` (see the module docstring); raises ProvenanceGraphMissing when
    the folder holds neither the Parquet files nor `provenance_graph.json`."""
    folder = provenance_dir(Path(output_dir))
    path = folder / GRAPH_JSON
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        try:
            files = GraphFiles(folder)
        except GraphFilesMissing:
            raise ProvenanceGraphMissing(
                f"no provenance graph in {folder}: crawl into {output_dir} first, or rebuild it from the crawl "
                "state with `python -m hfscraper.provenance rebuild`"
            ) from None
        graph = nx.DiGraph()
        graph.add_nodes_from((row["key"], node_attributes(row)) for row in files.nodes.scan())
        graph.add_edges_from((e["src"], e["dst"], edge_attributes(e)) for e in files.out_edges.scan())
        return graph
    graph = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
    for key, attrs in graph.nodes(data=True):
        # node-link data keeps the key under "id"; the attribute `id` is the Hub id.
        attrs["id"] = key.split(":", 1)[1]
    return graph


def graph_from_state(state_file: Path) -> nx.DiGraph:
    """The same graph, built in memory from the crawl state (for tests and small folders)."""
    store = StateStore(state_file, create=False)
    try:
        graph = nx.DiGraph()
        for node in crawled_nodes(store.db):
            graph.add_node(
                f"{node.type}:{node.id}", type=node.type, id=node.id, scraped=True, deleted=node.deleted,
                **node.attributes,
            )  # fmt: skip
        for e in resolved_edges(store.db):
            for t, i in ((e.src_type, e.src_id), (e.dst_type, e.dst_id)):
                key = f"{t}:{i}"
                if key not in graph:
                    graph.add_node(key, type=t, id=i, scraped=False, deleted=False,
                                   **dict.fromkeys(("author", "pipeline_tag", "library_name", "downloads", "likes",
                                                    "created_at", "last_modified")))  # fmt: skip
            graph.add_edge(
                f"{e.src_type}:{e.src_id}", f"{e.dst_type}:{e.dst_id}", kind=e.kind, relation=e.relation,
                sources=list(e.sources),
            )  # fmt: skip
        return graph
    finally:
        store.close()
