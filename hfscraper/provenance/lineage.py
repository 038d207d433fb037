"""The family tree of one Hub entity, read from the provenance graph: selection and renderers.

The graph (`output_dir/provenance/provenance_graph.json`, node-link JSON of a `networkx.DiGraph`) has one node per
entity, keyed `"{type}:{id}"`, and edges from the dependent to what it depends on (a fine-tune to its base model, a
model to a dataset it was trained on, a space to a model or dataset it uses), each with a `relation`. Ancestors of X
are reached along out-edges, descendants along in-edges.

`select()` walks from one entity (ancestors, descendants or both; a depth limit; a relation filter; a cap on the
children listed per entity) and returns a `Lineage`; `render_text`, `render_json`, `render_dot` and
`render_mermaid` turn it into the four output formats of `scrapy lineage`. Nothing here prints or exits: the
command (`hfscraper/commands/lineage.py`) does.
"""

from __future__ import annotations

import difflib
import heapq
import html
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from hfscraper.provenance.extract import fold_id
from hfscraper.provenance.freshness import NODES_PARQUET, PROVENANCE_FOLDER
from hfscraper.provenance.text import json_text

Direction = Literal["ancestors", "descendants"]

GRAPH_FILE = Path("provenance") / "provenance_graph.json"
TYPES = ("model", "dataset", "space")
#: Every relation an edge can carry, in the order children are listed.
RELATIONS = ("base", "finetune", "adapter", "quantized", "merge", "dataset", "model")
#: The default cap on the children listed under one entity (0 lifts it).
DEFAULT_LIMIT = 25

_RELATION_RANK = {relation: rank for rank, relation in enumerate(RELATIONS)}


class LineageError(Exception):
    """The lineage cannot be shown (no graph, unreadable graph, unknown entity)."""


class GraphNotFoundError(LineageError):
    """There is no provenance graph in the output folder yet."""


class UnknownEntityError(LineageError):
    """The entity asked for is not in the graph; `suggestions` are close matches (node keys)."""

    def __init__(self, message: str, suggestions: list[str]) -> None:
        super().__init__(message)
        self.suggestions = suggestions


# ---------------------------------------------------------------------------------------------------------------
# Loading


def graph_path(output_dir: Path) -> Path:
    return Path(output_dir) / GRAPH_FILE


def _read_node_link(output_dir: Path) -> nx.DiGraph:
    """The graph file as written by the provenance pipeline (node-link JSON, edges under "edges")."""
    with graph_path(output_dir).open(encoding="utf-8") as fh:
        data = json.load(fh)
    graph = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
    return graph if isinstance(graph, nx.DiGraph) else nx.DiGraph(graph)


def load_graph(output_dir: Path) -> nx.DiGraph:
    """The provenance graph of *output_dir*. Raises GraphNotFoundError when there is none yet, LineageError when
    the file cannot be read. Uses `hfscraper.provenance.graph.read_graph` when that module provides it."""
    path = graph_path(output_dir)
    if not path.is_file():
        raise GraphNotFoundError(
            f"no provenance graph at {path}: crawl first (`scrapy crawlall` or `scrapy crawl models`) "
            "with the provenance pipeline on, or point HFSCRAPER_OUTPUT_DIR (-s HFSCRAPER_OUTPUT_DIR=...) "
            "at a crawled output folder"
        )
    try:
        from hfscraper.provenance.graph import read_graph  # the provenance pipeline's own reader
    except ImportError:
        read_graph = _read_node_link
    try:
        return read_graph(Path(output_dir))
    except (OSError, ValueError, KeyError, TypeError, nx.NetworkXError) as exc:
        raise LineageError(f"cannot read the provenance graph {path}: {exc}") from exc


def load_lineage(
    output_dir: Path,
    entity_id: str,
    entity_type: str = "model",
    *,
    directions: tuple[Direction, ...] = ("ancestors", "descendants"),
    depth: int | None = None,
    relations: frozenset[str] | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> tuple[nx.DiGraph, str]:
    """`(graph, root key)` for `select(graph, root, ...)` with the same arguments: from the Parquet files of
    *output_dir*, only the neighbourhood the walk reads (`neighbourhood`); from `provenance_graph.json` (the whole
    graph) when the folder has no Parquet node file (a rebuild by an older version). Raises GraphNotFoundError,
    LineageError, UnknownEntityError as `load_graph` and `resolve` do."""
    from hfscraper.provenance.columnar import GraphFiles, GraphFilesMissing

    folder = Path(output_dir) / PROVENANCE_FOLDER
    if not (folder / NODES_PARQUET).is_file() and graph_path(output_dir).is_file():
        graph = load_graph(output_dir)
        return graph, resolve(graph, entity_id, entity_type)
    try:
        files = GraphFiles(folder)
        return neighbourhood(files, entity_id, entity_type, directions=directions, depth=depth, relations=relations,
                             limit=limit)  # fmt: skip
    except GraphFilesMissing:
        raise GraphNotFoundError(
            f"no provenance graph at {folder / NODES_PARQUET}: crawl first (`scrapy crawlall` or `scrapy crawl "
            "models`) with the provenance pipeline on, or point HFSCRAPER_OUTPUT_DIR (-s HFSCRAPER_OUTPUT_DIR=...) "
            "at a crawled output folder"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # pyarrow's errors are ValueErrors or OSErrors
        raise LineageError(f"cannot read the provenance graph {folder}: {exc}") from exc


def neighbourhood(
    files: Any,
    entity_id: str,
    entity_type: str = "model",
    *,
    directions: tuple[Direction, ...] = ("ancestors", "descendants"),
    depth: int | None = None,
    relations: frozenset[str] | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> tuple[nx.DiGraph, str]:
    """The part of the graph of *files* (`columnar.GraphFiles`) that `select` and the renderers read for this
    lineage, and the root's key: the walk of `select` (breadth-first, a level at a time) is run here first, and
    each entity it lists gets every edge in the walked direction and every neighbour's attributes (they order
    its children), read from the Parquet files a level at a time; then the edges between the selected entities.
    `select` on this graph gives what it gives on the whole graph. Raises UnknownEntityError (with close
    matches, from one scan of the node keys)."""
    from hfscraper.provenance.columnar import edge_attributes, node_attributes

    root = node_key(entity_type, entity_id)
    graph = nx.DiGraph()
    rows = files.node_rows([root])
    if root not in rows:
        # Another case of the id (the Hub's ids are case-insensitive): one scan of the node keys.
        other = case_match((row["key"] for row in files.nodes.scan(["key"])), entity_id, entity_type)
        if other is None:
            raise unknown_entity((row["key"] for row in files.nodes.scan(["key"])), entity_id, entity_type)
        root = other
        rows = files.node_rows([root])
    graph.add_node(root, **node_attributes(rows[root]))
    loaded: dict[Direction, set[str]] = {"ancestors": set(), "descendants": set()}

    def load(nodes: list[str], direction: Direction) -> None:
        todo = [n for n in nodes if n not in loaded[direction]]
        loaded[direction].update(todo)
        if not todo:
            return
        table, end = (files.out_edges, "dst") if direction == "ancestors" else (files.in_edges, "src")
        edges = list(table.rows(todo))
        for key, row in files.node_rows({e[end] for e in edges if e[end] not in graph}).items():
            graph.add_node(key, **node_attributes(row))
        for e in edges:
            graph.add_edge(e["src"], e["dst"], **edge_attributes(e))

    selected = {root}
    for direction in directions:
        level = {root: 0}
        frontier = [root]
        while frontier:
            load(frontier, direction)
            following: list[str] = []
            for node in frontier:
                near = neighbours(graph, node, direction, relations)
                if not near or (depth is not None and level[node] >= depth):
                    continue
                for other, _attrs in near[:limit] if limit is not None else near:
                    selected.add(other)
                    if other not in level:
                        level[other] = level[node] + 1
                        following.append(other)
            frontier = following
    # The edges between selected entities that no walk read (say from a descendant to an ancestor).
    for e in files.out_edges.rows(sorted(selected - loaded["ancestors"])):
        if e["dst"] in selected:
            graph.add_edge(e["src"], e["dst"], **edge_attributes(e))
    return graph, root


# ---------------------------------------------------------------------------------------------------------------
# Finding the entity


def node_key(entity_type: str, entity_id: str) -> str:
    return f"{entity_type}:{entity_id}"


def _split_key(key: str) -> tuple[str, str]:
    entity_type, _, entity_id = key.partition(":")
    return entity_type, entity_id


def resolve(graph: nx.DiGraph, entity_id: str, entity_type: str = "model") -> str:
    """The node key of *entity_id* (of *entity_type*), named in any case. Raises UnknownEntityError with up to five
    close matches (case-insensitive, then by name without the owner, then by similarity; the same type first)."""
    key = node_key(entity_type, entity_id)
    if key in graph:
        return key
    other = case_match((str(node) for node in graph.nodes), entity_id, entity_type)
    if other is not None:
        return other
    raise unknown_entity((str(node) for node in graph.nodes), entity_id, entity_type)


def case_match(keys: Iterable[str], entity_id: str, entity_type: str) -> str | None:
    """The one node key of *keys* that names *entity_id* of *entity_type* in another case (Hub ids are
    case-insensitive), or None: none, or several (case twins only a hostile server serves: no guess)."""
    wanted = node_key(entity_type, fold_id(entity_id))
    found = [key for key in keys if fold_id(key) == wanted]
    return found[0] if len(found) == 1 else None


#: Matches at least this similar are suggested (`difflib.get_close_matches`' default cutoff).
_CUTOFF = 0.6


def _close(wanted: str, keys_by_text: dict[str, tuple[float, list[str]]], n: int = 5) -> list[str]:
    """The keys of the *n* closest texts, as `difflib.get_close_matches(wanted, texts, n)` ranks them."""
    best = heapq.nlargest(n, ((score, text) for text, (score, _) in keys_by_text.items()))
    return [key for _, text in best for key in keys_by_text[text][1]]


def unknown_entity(keys: Iterable[str], entity_id: str, entity_type: str) -> UnknownEntityError:
    """The error for an id of *entity_type* that no node key of *keys* (streamed once, in key order) names, with
    up to five close matches; memory for the matches only, not for every key."""
    key = node_key(entity_type, entity_id)
    wanted = entity_id.casefold()
    wanted_name = wanted.rsplit("/", 1)[-1]
    exact: list[str] = []
    by_name: list[str] = []
    # Only texts at least _CUTOFF similar are kept (with their keys): what `difflib.get_close_matches` ranks.
    similar_ids: dict[str, tuple[float, list[str]]] = {}
    similar_names: dict[str, tuple[float, list[str]]] = {}
    by_id, by_last = difflib.SequenceMatcher(), difflib.SequenceMatcher()
    by_id.set_seq2(wanted)
    by_last.set_seq2(wanted)

    def score(matcher: difflib.SequenceMatcher[str], text: str) -> float | None:
        matcher.set_seq1(text)
        if matcher.real_quick_ratio() >= _CUTOFF and matcher.quick_ratio() >= _CUTOFF:
            ratio = matcher.ratio()
            return ratio if ratio >= _CUTOFF else None
        return None

    def remember(found: dict[str, tuple[float, list[str]]], matcher: difflib.SequenceMatcher[str], text: str,
                 other: str) -> None:  # fmt: skip
        if text in found:
            found[text][1].append(other)
            return
        ratio = score(matcher, text)
        if ratio is not None:
            found[text] = (ratio, [other])

    for other in keys:
        _other_type, other_id = _split_key(other)
        low = other_id.casefold()
        name = low.rsplit("/", 1)[-1]
        if low == wanted:
            exact.append(other)
        elif name == wanted_name:
            by_name.append(other)
        remember(similar_ids, by_id, low, other)
        if "/" not in wanted:
            remember(similar_names, by_last, name, other)
    similar = _close(wanted, similar_ids) + (_close(wanted, similar_names) if "/" not in wanted else [])

    def rank(candidates: list[str]) -> list[str]:  # the asked-for type first, then stable by key
        return sorted(candidates, key=lambda k: (_split_key(k)[0] != entity_type, k))

    suggestions: list[str] = []
    for candidate in [*rank(exact), *rank(by_name), *similar]:
        if candidate not in suggestions and candidate != key:
            suggestions.append(candidate)
    suggestions = suggestions[:5]
    message = f"no {entity_type} {entity_id!r} in the provenance graph"
    if suggestions:
        shown = ", ".join(_suggestion(s, entity_type) for s in suggestions)
        message += f"; did you mean {shown}?"
    return UnknownEntityError(message, suggestions)


def _suggestion(key: str, asked_type: str) -> str:
    entity_type, entity_id = _split_key(key)
    text = safe_text(entity_id)
    return text if entity_type == asked_type else f"{text} (--type {entity_type})"


# ---------------------------------------------------------------------------------------------------------------
# Selection


@dataclass
class Lineage:
    """What `select()` found: the root, the selected subgraph and what was left out.

    Attributes:
        root: the node key of the entity asked for.
        graph: the selected subgraph (a copy; node and edge attributes as in the provenance graph).
        directions: "ancestors", "descendants" or both, in that order.
        depth: the depth limit (None: unlimited).
        relations: the relations followed (None: all).
        limit: the cap on children listed per entity (None: no cap).
        hidden: (node key, direction) -> how many of its neighbours in that direction the cap left out.
        beyond_depth: (node key, direction) -> how many neighbours lie past the depth limit.
        full: the whole provenance graph, for the text renderer's walk.
    """

    root: str
    graph: nx.DiGraph
    directions: tuple[Direction, ...]
    depth: int | None
    relations: frozenset[str] | None
    limit: int | None
    hidden: dict[tuple[str, Direction], int] = field(default_factory=dict)
    beyond_depth: dict[tuple[str, Direction], int] = field(default_factory=dict)
    full: nx.DiGraph | None = None


def _follows(attrs: dict[str, Any], relations: frozenset[str] | None) -> bool:
    return relations is None or str(attrs.get("relation")) in relations


def neighbours(
    graph: nx.DiGraph, node: str, direction: Direction, relations: frozenset[str] | None
) -> list[tuple[str, dict[str, Any]]]:
    """`(neighbour, edge attributes)` of *node* in *direction* along the followed relations, in listing order:
    by relation, then most downloaded first, then by key (a stable order for every output)."""
    if direction == "ancestors":
        pairs = [(v, attrs) for _, v, attrs in graph.out_edges(node, data=True)]
    else:
        pairs = [(u, attrs) for u, _, attrs in graph.in_edges(node, data=True)]
    pairs = [(str(n), a) for n, a in pairs if _follows(a, relations) and n != node]

    def order(pair: tuple[str, dict[str, Any]]) -> tuple[int, int, str]:
        other, attrs = pair
        downloads = graph.nodes[other].get("downloads")
        return (
            _RELATION_RANK.get(str(attrs.get("relation")), len(RELATIONS)),
            -downloads if isinstance(downloads, int) else 1,
            other,
        )

    return sorted(pairs, key=order)


def select(
    graph: nx.DiGraph,
    root: str,
    *,
    directions: tuple[Direction, ...] = ("ancestors", "descendants"),
    depth: int | None = None,
    relations: frozenset[str] | None = None,
    limit: int | None = DEFAULT_LIMIT,
) -> Lineage:
    """Walk breadth-first from *root* in each direction, at most *depth* edges away (None: no limit), along the
    *relations* (None: all), listing at most *limit* neighbours per entity (None: all; the rest are counted in
    `Lineage.hidden`). The selected subgraph holds the walked nodes and every followed edge between them."""
    lineage = Lineage(root, nx.DiGraph(), directions, depth, relations, limit, full=graph)
    selected: set[str] = {root}
    for direction in directions:
        level = {root: 0}
        queue = [root]
        while queue:
            node = queue.pop(0)
            near = neighbours(graph, node, direction, relations)
            if not near:
                continue
            if depth is not None and level[node] >= depth:
                lineage.beyond_depth[(node, direction)] = len(near)
                continue
            if limit is not None and len(near) > limit:
                lineage.hidden[(node, direction)] = len(near) - limit
                near = near[:limit]
            for other, _attrs in near:
                selected.add(other)
                if other not in level:
                    level[other] = level[node] + 1
                    queue.append(other)
    sub = graph.subgraph(selected)
    out = nx.DiGraph()
    out.add_nodes_from(sorted((n, dict(sub.nodes[n])) for n in sub.nodes))
    for u, v, attrs in sorted(sub.edges(data=True), key=lambda e: (e[0], e[1])):
        if _follows(attrs, relations) and u != v:
            out.add_edge(u, v, **attrs)
    lineage.graph = out
    return lineage


# ---------------------------------------------------------------------------------------------------------------
# Text

#: Controls, line and bidi marks, and what XML forbids (lone surrogates, U+FFFE, U+FFFF: a Graphviz HTML label
#: refuses even their character references).
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)


def safe_text(text: Any) -> str:
    """*text* for a terminal or a label: control characters (newlines, ESC, bidi overrides) as visible escapes."""

    def escape(match: re.Match[str]) -> str:
        char = match.group()
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or f"\\u{ord(char):04x}"

    return _CONTROL.sub(escape, str(text))


def _marks(attrs: dict[str, Any]) -> list[str]:
    marks = []
    if attrs.get("type") and attrs.get("type") != "model":
        marks.append(str(attrs["type"]))
    if not attrs.get("scraped", True):
        marks.append("stub: not crawled")
    if attrs.get("deleted"):
        marks.append("deleted")
    return marks


def _label(graph: nx.DiGraph, key: str) -> str:
    attrs = graph.nodes[key] if key in graph else {}
    entity_id = attrs.get("id") or _split_key(key)[1]
    marks = _marks(attrs)
    return safe_text(entity_id) + (f"  [{', '.join(marks)}]" if marks else "")


def _count(value: Any) -> str:
    if not isinstance(value, int):
        return "?"
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def _headline(graph: nx.DiGraph, key: str) -> str:
    attrs = graph.nodes[key]
    entity_type, entity_id = _split_key(key)
    details = [safe_text(attrs[name]) for name in ("author", "pipeline_tag", "library_name") if attrs.get(name)]
    if attrs.get("scraped", True):
        details.append(f"{_count(attrs.get('downloads'))} downloads, {_count(attrs.get('likes'))} likes")
    marks = [m for m in _marks(attrs) if m not in TYPES]
    head = f"{attrs.get('type') or entity_type} {safe_text(attrs.get('id') or entity_id)}"
    if marks:
        head += f"  [{', '.join(marks)}]"
    return head + (f"  ({' · '.join(details)})" if details else "")


def render_text(lineage: Lineage) -> str:
    """A family tree for the terminal: ancestors above the entity, descendants below, one branch per edge with
    its relation (`→` points at what an entity is built on, `←` at what is built on it). An entity met again is
    shown once more, marked, without its subtree; an edge back into the current branch is marked as a cycle."""
    graph = lineage.full if lineage.full is not None else lineage.graph
    root = lineage.root
    lines: list[str] = []
    titles = {
        "ancestors": "built on (ancestors, → points at what it depends on):",
        "descendants": "built on it (descendants, ← points at what depends on it):",
    }
    if "ancestors" in lineage.directions:
        lines.append(titles["ancestors"])
        lines.extend(_tree(lineage, graph, "ancestors") or ["    (none)"])
        lines.append("")
    lines.append(_headline(graph, root))
    if "descendants" in lineage.directions:
        lines.append("")
        lines.append(titles["descendants"])
        lines.extend(_tree(lineage, graph, "descendants") or ["    (none)"])
    return "\n".join(lines)


def _tree(lineage: Lineage, graph: nx.DiGraph, direction: Direction) -> list[str]:
    arrow = "→" if direction == "ancestors" else "←"
    lines: list[str] = []
    expanded: set[str] = {lineage.root}

    def walk(node: str, prefix: str, path: tuple[str, ...], level: int) -> None:
        near = neighbours(graph, node, direction, lineage.relations)
        if not near:
            return
        rows: list[tuple[str, str | None, dict[str, Any] | None]] = []
        if lineage.depth is not None and level >= lineage.depth:
            rows.append((f"… {len(near)} more beyond --depth {lineage.depth}", None, None))
        else:
            shown = near
            if lineage.limit is not None and len(near) > lineage.limit:
                shown = near[: lineage.limit]
            rows.extend((other, other, attrs) for other, attrs in shown)
            if len(shown) < len(near):
                rows.append((f"… and {len(near) - len(shown)} more (--limit 0 lists all)", None, None))
        for index, (text, other, attrs) in enumerate(rows):
            last = index == len(rows) - 1
            branch, extend = ("└── ", "    ") if last else ("├── ", "│   ")
            if other is None or attrs is None:
                lines.append(f"{prefix}{branch}{text}")
                continue
            relation = safe_text(attrs.get("relation") or attrs.get("kind") or "?")
            line = f"{prefix}{branch}{relation} {arrow} {_label(graph, other)}"
            if other in path:
                lines.append(line + "  (cycle: already in this branch)")
                continue
            if other in expanded:
                has_more = bool(neighbours(graph, other, direction, lineage.relations))
                lines.append(line + ("  (repeat: its lineage is shown above)" if has_more else ""))
                continue
            expanded.add(other)
            lines.append(line)
            walk(other, prefix + extend, (*path, other), level + 1)

    walk(lineage.root, "    ", (lineage.root,), 0)
    return lines


# ---------------------------------------------------------------------------------------------------------------
# JSON


def render_json(lineage: Lineage) -> str:
    """The selected subgraph: `root`, the query, `nodes` (sorted by key, every attribute, plus `hidden` and
    `beyond_depth` counts where something was left out) and `edges` (sorted by source then target)."""
    graph = lineage.graph
    nodes = []
    for key in sorted(graph.nodes):
        entry: dict[str, Any] = {"key": key, **graph.nodes[key]}
        for name, counts in (("hidden", lineage.hidden), ("beyond_depth", lineage.beyond_depth)):
            left = {d: counts[(key, d)] for d in lineage.directions if (key, d) in counts}
            if left:
                entry[name] = left
        nodes.append(entry)
    edges = [{"source": u, "target": v, **attrs} for u, v, attrs in sorted(graph.edges(data=True), key=lambda e: e[:2])]
    document = {
        "root": lineage.root,
        "directions": list(lineage.directions),
        "depth": lineage.depth,
        "relations": sorted(lineage.relations) if lineage.relations is not None else None,
        "limit": lineage.limit,
        "nodes": nodes,
        "edges": edges,
    }
    return json_text(document, indent=2, sort_keys=False, default=str)


# ---------------------------------------------------------------------------------------------------------------
# Graphviz DOT and Mermaid: nodes are named n0, n1, ... (in key order) and labelled with their escaped id.

_STYLE = {  # fill colour per type
    "model": "#dbeafe",
    "dataset": "#dcfce7",
    "space": "#fef3c7",
}


def _numbering(lineage: Lineage) -> dict[str, str]:
    return {key: f"n{index}" for index, key in enumerate(sorted(lineage.graph.nodes))}


def _left_out(lineage: Lineage) -> list[tuple[str, Direction, str]]:
    """(node key, direction, text) of every "… N more" placeholder, in a stable order."""
    out = []
    for (key, direction), count in sorted(lineage.hidden.items()):
        out.append((key, direction, f"… and {count} more"))
    for (key, direction), count in sorted(lineage.beyond_depth.items()):
        out.append((key, direction, f"… {count} more beyond depth {lineage.depth}"))
    return out


def _html(text: str) -> str:
    """Graphviz HTML-label text: XML-escaped, backslashes and non-ASCII as character references."""
    out = []
    for char in safe_text(text):
        if char in "&<>\"'\\[]{}|" or ord(char) > 126:
            out.append(f"&#{ord(char)};")
        else:
            out.append(char)
    return "".join(out)


def render_dot(lineage: Lineage) -> str:
    """A Graphviz digraph (bottom to top: what an entity is built on sits above it). Nodes are boxes filled by
    type (model, dataset, space), dashed when a stub, struck through (grey, dotted) when deleted; the entity asked
    for is bold. Edges point from the dependent to what it depends on, labelled with their relation."""
    graph = lineage.graph
    names = _numbering(lineage)
    lines = [
        "digraph lineage {",
        '  graph [rankdir="BT", fontname="Helvetica"];',
        '  node [shape="box", style="rounded,filled", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize="10"];',
    ]
    for key in sorted(graph.nodes):
        attrs = graph.nodes[key]
        entity_type = str(attrs.get("type") or _split_key(key)[0])
        styles = ["rounded", "filled"]
        if not attrs.get("scraped", True):
            styles.append("dashed")
        if attrs.get("deleted"):
            styles.append("dotted")
        if key == lineage.root:
            styles.append("bold")
        label = _html(str(attrs.get("id") or _split_key(key)[1]))
        marks = _marks(attrs)
        if marks:
            label += "<BR/><I>" + _html(", ".join(marks)) + "</I>"
        colour = "#e5e7eb" if attrs.get("deleted") else _STYLE.get(entity_type, "#f3f4f6")
        lines.append(f'  {names[key]} [label=<{label}>, fillcolor="{colour}", style="{",".join(styles)}"];')
    for u, v, attrs in sorted(graph.edges(data=True), key=lambda e: e[:2]):
        relation = _html(str(attrs.get("relation") or attrs.get("kind") or ""))
        lines.append(f"  {names[u]} -> {names[v]} [label=<{relation}>];")
    for index, (key, direction, text) in enumerate(_left_out(lineage)):
        more = f"more{index}"
        lines.append(f'  {more} [label=<{_html(text)}>, shape="plaintext", style=""];')
        edge = f"{more} -> {names[key]}" if direction == "descendants" else f"{names[key]} -> {more}"
        lines.append(f'  {edge} [style="dashed"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Text for a quoted Mermaid label: Mermaid's `#name;`/`#code;` entities for every character that its
    parser, its HTML sanitiser or Markdown could read as syntax."""
    out = []
    for char in safe_text(text):
        if char in '"#&<>`[](){}|\\:;*_~' or ord(char) > 126:
            out.append(f"#{ord(char)};")
        else:
            out.append(char)
    return "".join(out)


def render_mermaid(lineage: Lineage) -> str:
    """A Mermaid `flowchart BT` (renders in a GitHub README and on a Hub model card inside a ```mermaid block):
    nodes n0, n1, ... with quoted, entity-escaped labels, classed by type (plus stub, deleted and root), edges
    from the dependent to what it depends on, labelled with their relation."""
    graph = lineage.graph
    names = _numbering(lineage)
    lines = ["flowchart BT"]
    for key in sorted(graph.nodes):
        attrs = graph.nodes[key]
        label = _mermaid_text(str(attrs.get("id") or _split_key(key)[1]))
        marks = _marks(attrs)
        if marks:
            label += " (" + _mermaid_text(", ".join(marks)) + ")"
        lines.append(f'  {names[key]}["{label}"]')
    for u, v, attrs in sorted(graph.edges(data=True), key=lambda e: e[:2]):
        relation = _mermaid_text(str(attrs.get("relation") or attrs.get("kind") or ""))
        lines.append(f'  {names[u]} -->|"{relation}"| {names[v]}')
    for index, (key, direction, text) in enumerate(_left_out(lineage)):
        more = f"more{index}"
        lines.append(f'  {more}["{_mermaid_text(text)}"]')
        edge = f"{more} -.-> {names[key]}" if direction == "descendants" else f"{names[key]} -.-> {more}"
        lines.append(f"  {edge}")
    lines.append("  classDef model fill:#dbeafe,stroke:#1d4ed8")
    lines.append("  classDef dataset fill:#dcfce7,stroke:#15803d")
    lines.append("  classDef space fill:#fef3c7,stroke:#b45309")
    lines.append("  classDef stub stroke-dasharray:4 3")
    lines.append("  classDef deleted fill:#e5e7eb,color:#6b7280")
    lines.append("  classDef root stroke-width:3px")
    classes: dict[str, list[str]] = {}
    for key in sorted(graph.nodes):
        attrs = graph.nodes[key]
        entity_type = str(attrs.get("type") or _split_key(key)[0])
        if entity_type in TYPES:
            classes.setdefault(entity_type, []).append(names[key])
        if not attrs.get("scraped", True):
            classes.setdefault("stub", []).append(names[key])
        if attrs.get("deleted"):
            classes.setdefault("deleted", []).append(names[key])
    classes["root"] = [names[lineage.root]]
    for name in ("model", "dataset", "space", "stub", "deleted", "root"):
        if classes.get(name):
            lines.append(f"  class {','.join(classes[name])} {name}")
    return "\n".join(lines) + "\n"


RENDERERS = {"text": render_text, "json": render_json, "dot": render_dot, "mermaid": render_mermaid}


def decode_mermaid(text: str) -> str:
    """The label text a Mermaid entity-escaped label stands for (used by the tests)."""
    return html.unescape(re.sub(r"#(\d+);", r"&#\1;", text))
