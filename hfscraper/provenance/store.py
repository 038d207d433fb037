"""The provenance graph's rows in the crawl state (`hfscraper.state`, schema version 4).

- `provenance_nodes`: one row per crawled entity (its node attributes).
- `provenance_edges`: the edges each entity's metadata declares, keyed by that entity (the *origin*): usually the
  edge's source, but for the reverse links the Hub gives (a model's `spaces`) the origin is the edge's target.
  `record_entity` replaces an origin's node and edges as a whole in one transaction, so a resumed or incremental
  crawl never duplicates an edge, and an entity whose metadata changed loses its old edges.
- `provenance_aliases`: renamed ids resolved by the crawl (`old_id` -> `current_id`; NULL: the Hub knows no such
  repo). Applied when the graph is built, so an alias learnt later also fixes edges recorded earlier.

`resolved_edges` reads the graph's edges back in a stable order, streamed: aliases applied, the out-edges of
tombstoned entities dropped, reverse links dropped when their source was crawled itself (its own list is the
authority), and one edge per `(source, target, kind)` with the union of its sources.

Blocking functions over a `StateStore` (or a bare `sqlite3.Connection` for reads); inside a crawl, run them
through `SharedStateStore.call`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from hfscraper.provenance.extract import NODE_ATTRIBUTES, Extraction

if TYPE_CHECKING:
    from hfscraper.state import StateStore

#: Columns of `provenance_nodes` for `NODE_ATTRIBUTES` (the Hub's `author` is stored as `owner`: no column of the
#: state may look like a credential, see tests/test_state.py).
NODE_COLUMNS: Final = tuple("owner" if name == "author" else name for name in NODE_ATTRIBUTES)
#: Most entities `record_entity_batch` is given at once by the crawl (one transaction each batch).
RECORD_BATCH: Final = 256
#: Source precedence when two sources of one edge disagree on its relation.
_SOURCE_RANK: Final = {"tag": 0, "api": 1, "card": 2}


class GraphEdge(NamedTuple):
    """One edge of the built graph."""

    src_type: str
    src_id: str
    dst_type: str
    dst_id: str
    kind: str
    relation: str
    sources: tuple[str, ...]


def record_entity(store: StateStore, extraction: Extraction, when: str) -> None:
    """Replace the node and every edge *extraction*'s entity declares, in one transaction."""
    with store.transaction():
        _write_entity(store.db, extraction, when)


def record_entity_batch(store: StateStore, jobs: list[tuple[Extraction, str]]) -> list[tuple[bool, Any]]:
    """`record_entity` for each `(extraction, when)` of *jobs*, all in one transaction (one commit for a crawl's
    many small entities); `(True, None)` or `(False, exception)` per job. When the whole fails, each job is
    recorded on its own, so that only a bad entity fails."""
    try:
        with store.transaction():
            for extraction, when in jobs:
                _write_entity(store.db, extraction, when)
    except Exception:
        results: list[tuple[bool, Any]] = []
        for extraction, when in jobs:
            try:
                record_entity(store, extraction, when)
            except Exception as exc:  # handed to that entity's caller
                results.append((False, exc))
            else:
                results.append((True, None))
        return results
    return [(True, None)] * len(jobs)


def _write_entity(db: sqlite3.Connection, e: Extraction, when: str) -> None:
    node = [e.node.get(name) for name in NODE_ATTRIBUTES]
    rows = [
        (e.repo_type, e.id, x.src_type, x.src_id, x.dst_type, x.dst_id, x.kind, x.relation, x.source) for x in e.edges
    ]
    db.execute("DELETE FROM provenance_edges WHERE origin_type = ? AND origin_id = ?", (e.repo_type, e.id))
    db.execute(
        f"INSERT OR REPLACE INTO provenance_nodes (repo_type, id, {', '.join(NODE_COLUMNS)}, updated_at) "
        f"VALUES (?, ?, {', '.join('?' * len(NODE_ATTRIBUTES))}, ?)",
        (e.repo_type, e.id, *node, when),
    )
    db.executemany(
        "INSERT OR REPLACE INTO provenance_edges (origin_type, origin_id, src_type, src_id, dst_type, dst_id, "
        "kind, relation, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


def known_alias(store: StateStore, repo_type: str, old_id: str) -> tuple[bool, str | None]:
    """`(checked, current id)` of an id the rename check has seen (current id None: no such repo)."""
    row = store.db.execute(
        "SELECT current_id FROM provenance_aliases WHERE repo_type = ? AND old_id = ?", (repo_type, old_id)
    ).fetchone()
    return (False, None) if row is None else (True, row[0])


def is_crawled(store: StateStore, repo_type: str, repo_id: str) -> bool:
    """True when the entity has a node of its own (the provenance stage processed it)."""
    return (
        store.db.execute(
            "SELECT 1 FROM provenance_nodes WHERE repo_type = ? AND id = ?", (repo_type, repo_id)
        ).fetchone()
        is not None
    )


def record_alias(store: StateStore, repo_type: str, old_id: str, current_id: str | None, when: str) -> None:
    """Remember what the Hub said of *old_id*: renamed to *current_id*, or (None) unknown."""
    with store.transaction():
        store.db.execute(
            "INSERT OR REPLACE INTO provenance_aliases (repo_type, old_id, current_id, checked_at) VALUES (?, ?, ?, ?)",
            (repo_type, old_id, current_id, when),
        )


# ---------------------------------------------------------------------------------------------------------
# Reading the graph back (streamed)
# ---------------------------------------------------------------------------------------------------------

_EDGES_QUERY: Final = """
SELECT e.src_type, e.src_id, e.dst_type, coalesce(a.current_id, e.dst_id) AS dst, e.kind, e.relation, e.source
FROM provenance_edges e
LEFT JOIN entities o ON o.repo_type = e.origin_type AND o.id = e.origin_id
LEFT JOIN provenance_aliases a ON a.repo_type = e.dst_type AND a.old_id = e.dst_id AND a.current_id IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM provenance_nodes k WHERE k.repo_type = e.dst_type AND k.id = e.dst_id)
WHERE o.deleted_at IS NULL
  AND ((e.origin_type = e.src_type AND e.origin_id = e.src_id)
       OR NOT EXISTS (SELECT 1 FROM provenance_nodes n WHERE n.repo_type = e.src_type AND n.id = e.src_id))
ORDER BY e.src_type, e.src_id, e.dst_type, dst, e.kind
"""


def resolved_edges(db: sqlite3.Connection) -> Iterator[GraphEdge]:
    """Every edge of the graph, sorted by (source, target, kind), one per triple (see the module docstring)."""
    group: list[Any] | None = None
    sources: set[str] = set()
    rank = 99
    for src_type, src_id, dst_type, dst_id, kind, relation, source in db.execute(_EDGES_QUERY):
        if src_type == dst_type and src_id == dst_id:
            continue
        key = (src_type, src_id, dst_type, dst_id, kind)
        if group is None or tuple(group[:5]) != key:
            if group is not None:
                yield GraphEdge(*group[:6], tuple(sorted(sources)))
            group, sources, rank = [*key, relation], set(), 99
        sources.add(source)
        r = _SOURCE_RANK.get(source, 9)
        # The best source decides the relation; a known relation beats `base` from an equal source.
        if r < rank or (r == rank and group[5] == "base"):
            group[5], rank = relation, r
    if group is not None:
        yield GraphEdge(*group[:6], tuple(sorted(sources)))


class NodeRow(NamedTuple):
    """One node of the built graph (a crawled entity or a stub)."""

    type: str
    id: str
    scraped: bool
    deleted: bool
    attributes: dict[str, Any]


def crawled_nodes(db: sqlite3.Connection) -> Iterator[NodeRow]:
    """The nodes of crawled entities, sorted by (type, id); `deleted` from the state's tombstones."""
    cols = ", ".join(f"n.{c}" for c in NODE_COLUMNS)
    for row in db.execute(
        f"SELECT n.repo_type, n.id, e.deleted_at IS NOT NULL, {cols} FROM provenance_nodes n "
        "LEFT JOIN entities e ON e.repo_type = n.repo_type AND e.id = n.id ORDER BY n.repo_type, n.id"
    ):
        yield NodeRow(row[0], row[1], True, bool(row[2]), dict(zip(NODE_ATTRIBUTES, row[3:], strict=True)))
