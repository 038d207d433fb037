"""The whole-graph text files, written from the Parquet files (`hfscraper.provenance.columnar`) when asked.

- `provenance_graph.json` (`write_node_link`): networkx node-link data (`networkx.node_link_data(G, edges="edges")`).
- `provenance_graph.graphml` (`write_graphml`): GraphML 1.0 for Gephi and Cytoscape.
- `entity_relationships.json` (`write_relationships`): every node's document, one node per line, sorted by key.

One code path for both users, so their bytes are the same: the rebuild writes the files asked for
(HFSCRAPER_PROVENANCE_GRAPH_FILES) from the Parquet files it has just staged, and `python -m hfscraper.provenance
graph --format json|graphml|relationships` writes one from the Parquet files of the current folder. Each is
streamed from ordered scans (nodes by key, edges by source, edges by target: no query per node), written link by
link: memory stays bounded whatever the graph's size and an entity's number of dependents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final, Protocol
from xml.sax.saxutils import escape, quoteattr

from hfscraper.provenance.columnar import FORMAT, GraphFiles, in_link, out_link
from hfscraper.provenance.text import json_text, xml_safe


class Writable(Protocol):
    def write(self, data: str, /) -> Any: ...


#: `xml.sax.saxutils.escape` leaves CR alone, and parsers read a raw CR in text as a newline.
_XML_TEXT_ENTITIES: Final = {"\r": "&#13;"}
_NODE_KEYS: Final = (
    ("type", "string"), ("id", "string"), ("scraped", "boolean"), ("deleted", "boolean"), ("author", "string"),
    ("pipeline_tag", "string"), ("library_name", "string"), ("downloads", "long"), ("likes", "long"),
    ("created_at", "string"), ("last_modified", "string"),
)  # fmt: skip
_EDGE_KEYS: Final = (("kind", "string"), ("relation", "string"), ("sources", "string"))
#: Links written to a document's line at a time.
_LINK_CHUNK: Final = 512


def _dumps(value: Any) -> str:
    return json_text(value, separators=(",", ":"))


def _nodes(files: GraphFiles) -> Iterator[dict[str, Any]]:
    return files.nodes.scan()


def write_node_link(files: GraphFiles, f: Writable) -> None:
    """`provenance_graph.json`: exactly what `networkx.node_link_data(G, edges="edges")` gives for the graph
    (node-link's `id` is the node key; the node attribute `id` is restored by `read_graph`)."""
    f.write('{"directed": true, "multigraph": false, "graph": ')
    f.write(_dumps({"format": FORMAT}))
    f.write(', "nodes": [')
    for n, node in enumerate(_nodes(files)):
        key = node.pop("key")
        node["id"] = key
        f.write(("," if n else "") + "\n" + _dumps(node))
    f.write('\n], "edges": [')
    for n, e in enumerate(files.out_edges.scan(["src", "dst", "kind", "relation", "sources"])):
        edge = {"kind": e["kind"], "relation": e["relation"], "sources": e["sources"], "source": e["src"],
                "target": e["dst"]}  # fmt: skip
        f.write(("," if n else "") + "\n" + _dumps(edge))
    f.write("\n]}\n")


#: What `_xml` changes: XML's specials, CR, and what `xml_safe` escapes. Most values hold none of them.
_XML_SPECIAL: Final = re.compile("[&<>\r\\\\\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(value: Any) -> str:
    text = str(value)
    if _XML_SPECIAL.search(text) is None:
        return text
    return escape(xml_safe(text), _XML_TEXT_ENTITIES)


def write_graphml(files: GraphFiles, f: Writable) -> None:
    """`provenance_graph.graphml` (GraphML 1.0, typed keys; `sources` as `api,tag`; None values left out)."""
    f.write(
        "<?xml version='1.0' encoding='utf-8'?>\n"
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
        'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
    )
    for n, (name, kind) in enumerate(_NODE_KEYS):
        f.write(f'<key id="n{n}" for="node" attr.name="{name}" attr.type="{kind}"/>\n')
    for n, (name, kind) in enumerate(_EDGE_KEYS):
        f.write(f'<key id="e{n}" for="edge" attr.name="{name}" attr.type="{kind}"/>\n')
    f.write('<graph edgedefault="directed">\n')
    for node in _nodes(files):
        parts = [f"<node id={quoteattr(xml_safe(node['key']))}>"]
        for n, (name, kind) in enumerate(_NODE_KEYS):
            value = node.get(name)
            if value is None:
                continue
            text = ("true" if value else "false") if kind == "boolean" else _xml(value)
            parts.append(f'<data key="n{n}">{text}</data>')
        f.write("".join(parts) + "</node>\n")
    for e in files.out_edges.scan(["src", "dst", "kind", "relation", "sources"]):
        f.write(
            f"<edge source={quoteattr(xml_safe(e['src']))} target={quoteattr(xml_safe(e['dst']))}>"
            f'<data key="e0">{_xml(e["kind"])}</data><data key="e1">{_xml(e["relation"])}</data>'
            f'<data key="e2">{_xml(",".join(e["sources"]))}</data></edge>\n'
        )
    f.write("</graph>\n</graphml>\n")


class _Links:
    """The edges of each node of an ordered node scan, from an edge scan ordered by the same key, advanced
    alongside it: one scan for all nodes instead of one look-up per node."""

    def __init__(self, rows: Iterator[dict[str, Any]], by: str) -> None:
        self._rows, self._by = rows, by
        self._next = next(self._rows, None)

    def of(self, key: str) -> Iterator[dict[str, Any]]:
        """The edges of *key*, streamed (a base with a million dependents is never a list); consume them before
        asking for the next key."""
        by = self._by
        while self._next is not None and self._next[by] < key:  # an edge end that is no node: never, by build
            self._next = next(self._rows, None)
        while self._next is not None and self._next[by] == key:
            yield self._next
            self._next = next(self._rows, None)


def _links(files: GraphFiles) -> tuple[_Links, _Links]:
    return _Links(files.out_edges.scan(), "src"), _Links(files.in_edges.scan(), "dst")


def counts(files: GraphFiles) -> dict[str, int]:
    return {"nodes": files.nodes.num_rows, "edges": files.out_edges.num_rows,
            "stubs": files.nodes.count("scraped", False)}  # fmt: skip


def entity_documents(files: GraphFiles) -> Iterator[tuple[str, dict[str, Any]]]:
    """`(key, document)` of every node in key order (each document a whole dictionary: for the per-entity files)."""
    out, into = _links(files)
    for node in _nodes(files):
        key = node.pop("key")
        node["depends_on"] = [out_link(e) for e in out.of(key)]
        node["dependents"] = [in_link(e) for e in into.of(key)]
        yield key, node


def write_relationships(files: GraphFiles, f: Writable) -> None:
    """`entity_relationships.json`: `{"format", "counts", "entities": {key: document}}`, one node per line sorted
    by key (`hfscraper.provenance.documents` finds a line by a binary search), each line written link by link."""
    f.write(_dumps({"format": FORMAT, "counts": counts(files)})[:-1] + ',"entities":{')
    out, into = _links(files)
    for n, node in enumerate(_nodes(files)):
        key = node.pop("key")
        f.write(("," if n else "") + "\n" + _dumps(key) + ":" + _dumps(node)[:-1] + ',"depends_on":[')
        _write_links(f, (out_link(e) for e in out.of(key)))
        f.write('],"dependents":[')
        _write_links(f, (in_link(e) for e in into.of(key)))
        f.write("]}")
    f.write("\n}}\n")


def _write_links(f: Writable, links: Iterator[dict[str, Any]]) -> None:
    chunk: list[str] = []
    first = True
    for link in links:
        chunk.append(_dumps(link))
        if len(chunk) >= _LINK_CHUNK:
            f.write(("" if first else ",") + ",".join(chunk))
            chunk, first = [], False
    if chunk:
        f.write(("" if first else ",") + ",".join(chunk))


#: The writer of each format (`GRAPH_FILES` names its file).
WRITERS: Final = {"json": write_node_link, "graphml": write_graphml, "relationships": write_relationships}

__all__ = ["WRITERS", "entity_documents", "write_graphml", "write_node_link", "write_relationships"]
