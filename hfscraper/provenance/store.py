"""The provenance graph's rows in the crawl state (`hfscraper.state`, schema version 4).

- `provenance_nodes`: one row per crawled entity (its node attributes).
- `provenance_edges`: the edges each entity's metadata declares, keyed by that entity (the *origin*): usually the
  edge's source, but for the reverse links the Hub gives (a model's `spaces`) the origin is the edge's target.
  `record_entity` replaces an origin's node and edges as a whole in one transaction, so a resumed or incremental
  crawl never duplicates an edge, and an entity whose metadata changed loses its old edges.
- `provenance_aliases`: renamed ids resolved by the crawl (`old_id` -> `current_id`; NULL: the Hub knows no such
  repo). Applied when the graph is built, so an alias learnt later also fixes edges recorded earlier.

Repo ids are case-insensitive on the Hub (an owner may write `Org/Model` for `org/model`, and the Hub serves it), so
every look-up here ignores ASCII case (SQLite's `NOCASE`, over `COLLATE NOCASE` indexes of the state): a reference in
another case is the crawled entity's, under its canonical id, and an id another case of which is crawled or looked up
is never looked up again.

`resolved_edges` reads the graph's edges back in a stable order, streamed: each end's id canonical (the crawled
entity's id in any case; else an alias's current id; else, for a stub named in several cases, one spelling of them:
the Hub's when a look-up gave it, else the one written most), the out-edges of tombstoned entities dropped, reverse
links dropped when their source was crawled itself (its own list is the authority), and one edge per
`(source, target, kind)` with the union of its sources.

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
    """`(checked, current id)` of an id the rename check has seen, in any case (current id None: no such repo)."""
    exact = "SELECT current_id FROM provenance_aliases WHERE repo_type = ? AND old_id = ?"
    row = store.db.execute(exact, (repo_type, old_id)).fetchone()
    if row is None:
        row = store.db.execute(_ALIAS_NOCASE + " LIMIT 1", (repo_type, old_id)).fetchone()
    return (False, None) if row is None else (True, row[0])


def crawled_id(db: sqlite3.Connection, repo_type: str, repo_id: str) -> str | None:
    """The id of the crawled entity *repo_id* names in any case (its exact spelling first), or None."""
    row = db.execute(_CRAWLED_ID, {"type": repo_type, "id": repo_id}).fetchone()
    return None if row is None else row[0]


def is_crawled(store: StateStore, repo_type: str, repo_id: str) -> bool:
    """True when the entity, named in any case, has a node of its own (the provenance stage processed it)."""
    return crawled_id(store.db, repo_type, repo_id) is not None


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


def _node_of(t: str, i: str) -> str:
    """SQL: the crawled node id that id *i* of type *t* names, its exact spelling first, then in any case (NULL:
    none). Two index look-ups (the primary key, then `provenance_nodes_nocase`)."""
    return (
        f"coalesce((SELECT k.id FROM provenance_nodes k WHERE k.repo_type = {t} AND k.id = {i}), "
        f"(SELECT min(k.id) FROM provenance_nodes k WHERE k.repo_type = {t} AND k.id = {i} COLLATE NOCASE))"
    )


def _alias_of(t: str, i: str) -> str:
    """SQL: the current id an alias gives id *i* of type *t* (its exact spelling first, then in any case)."""
    exact = f"SELECT a.current_id FROM provenance_aliases a WHERE a.repo_type = {t} AND a.old_id = {i}"
    nocase = f"SELECT a.current_id FROM provenance_aliases a INDEXED BY provenance_aliases_nocase WHERE a.repo_type = {t} AND a.old_id = {i} COLLATE NOCASE"  # noqa: E501
    return f"coalesce(({exact} AND a.current_id IS NOT NULL), ({nocase} AND a.current_id IS NOT NULL LIMIT 1))"


def _spelling_of(t: str, i: str) -> str:
    return f"(SELECT s.spelling FROM temp.g_spelling s WHERE s.type = {t} AND s.folded = {i})"


def _canonical(t: str, i: str) -> str:
    """SQL: the id the graph gives id *i* of type *t* (see the module docstring)."""
    alias = _alias_of(t, i)
    return f"coalesce({_node_of(t, i)}, {_node_of(t, alias)}, {_spelling_of(t, alias)}, {_spelling_of(t, i)}, {i})"


_CRAWLED_ID: Final = f"SELECT {_node_of(':type', ':id')}"
#: INDEXED BY: SQLite would otherwise prefer the primary key on `repo_type` alone (a scan of the type's aliases).
_ALIAS_NOCASE: Final = (
    "SELECT current_id FROM provenance_aliases INDEXED BY provenance_aliases_nocase "
    "WHERE repo_type = ? AND old_id = ? COLLATE NOCASE"
)

_REVERSE: Final = "NOT (e.origin_type = e.src_type AND e.origin_id = e.src_id)"

#: One spelling per id of a stub named in several cases (table `temp.g_spelling`, filled by `_SPELLINGS`): the
#: Hub's (an alias's current id) first, else the one written most often, else the first in binary order. Ids of
#: crawled entities are left out.
_SPELLING_TABLE: Final = (
    "CREATE TEMP TABLE g_spelling (type TEXT NOT NULL, folded TEXT NOT NULL COLLATE NOCASE, spelling TEXT NOT NULL, "
    "PRIMARY KEY (type, folded)) WITHOUT ROWID"
)
_SPELLINGS: Final = f"""
INSERT OR IGNORE INTO temp.g_spelling (type, folded, spelling)
SELECT r.type, r.id, r.id FROM (
    SELECT a.repo_type AS type, a.current_id AS id, 1 AS hub FROM provenance_aliases a WHERE a.current_id IS NOT NULL
    UNION ALL SELECT e.dst_type, e.dst_id, 0 FROM provenance_edges e
    UNION ALL SELECT e.src_type, e.src_id, 0 FROM provenance_edges e WHERE {_REVERSE}
) r
WHERE NOT EXISTS (SELECT 1 FROM provenance_nodes k WHERE k.repo_type = r.type AND k.id = r.id COLLATE NOCASE)
GROUP BY r.type, r.id
ORDER BY max(r.hub) DESC, count(*) DESC, r.type, r.id
"""

_EDGES_QUERY: Final = f"""
SELECT e.src_type, CASE WHEN {_REVERSE} THEN {_canonical("e.src_type", "e.src_id")} ELSE e.src_id END AS src,
    e.dst_type, {_canonical("e.dst_type", "e.dst_id")} AS dst, e.kind, e.relation, e.source
FROM provenance_edges e
LEFT JOIN entities o ON o.repo_type = e.origin_type AND o.id = e.origin_id
WHERE o.deleted_at IS NULL
  AND (NOT {_REVERSE} OR NOT EXISTS (
      SELECT 1 FROM provenance_nodes n WHERE n.repo_type = e.src_type AND n.id = e.src_id COLLATE NOCASE))
ORDER BY e.src_type, src, e.dst_type, dst, e.kind
"""


def resolved_edges(db: sqlite3.Connection) -> Iterator[GraphEdge]:
    """Every edge of the graph, sorted by (source, target, kind), one per triple (see the module docstring).
    Uses a temporary table (`temp.g_spelling`), dropped when the edges have been read."""
    db.execute("DROP TABLE IF EXISTS temp.g_spelling")
    db.execute(_SPELLING_TABLE)
    db.execute(_SPELLINGS)
    try:
        yield from _grouped(db)
    finally:
        db.execute("DROP TABLE IF EXISTS temp.g_spelling")


def _grouped(db: sqlite3.Connection) -> Iterator[GraphEdge]:
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
