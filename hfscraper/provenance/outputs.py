"""The provenance files under `output_dir/provenance/`, rebuilt from the crawl state (streamed, bounded memory).

`rebuild(state_file, output_dir)` writes, all or nothing (a staging folder `output_dir/.hfscraper-tmp-<pid>-provenance`
that replaces `provenance/` in one swap once complete; the crawl state then records the rebuild as done, see
`hfscraper.provenance.freshness`), and with an unchanged file keeping its bytes and mtime (a hard link to the
previous one; the files hold no timestamp):

- `provenance_graph.json`: the graph as networkx node-link data (`networkx.node_link_data(G, edges="edges")`);
  `hfscraper.provenance.graph.read_graph` loads it.
- `provenance_graph.graphml`: the same graph for Gephi and Cytoscape (`sources` as a comma-separated string).
- `provenance_edges.parquet`: one row per edge, schema `EDGE_SCHEMA` (declared, never inferred).
- `entity_relationships.json`: every node (crawled or stub) with its attributes, what it depends on and what
  depends on it.
- `model_relationships/`, `dataset_relationships/`, `space_relationships/`, only with `entity_files`
  (HFSCRAPER_PROVENANCE_ENTITY_FILES): the same document for each crawled entity, one file per entity named
  `hub.entity_folder_name(id) + ".json"` (files of entities no longer in the state are left out). Without them
  (the default: an inode per entity is too many at Hub scale), `hfscraper.provenance.documents` answers each
  document on demand, byte for byte, from `entity_relationships.json`.

Nothing is held in memory beyond one batch: the state's rows are resolved into temporary SQLite tables, and every
file is written from ordered queries over them. Layout and rules: docs/PROVENANCE.md.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final
from xml.sax.saxutils import escape, quoteattr

import pyarrow as pa
import pyarrow.parquet as pq

from hfscraper.fsutil import TEMP_PREFIX, ensure_directory, fsync_directory, process_alive, same_content
from hfscraper.hub import entity_folder_name
from hfscraper.provenance.documents import ENTITY_FOLDERS, document_bytes, has_document
from hfscraper.provenance.extract import NODE_ATTRIBUTES
from hfscraper.provenance.freshness import (
    EDGES_PARQUET,
    ENTITY_RELATIONSHIPS,
    GRAPH_GRAPHML,
    GRAPH_JSON,
    PROVENANCE_FOLDER,
    begin_rebuild,
    finish_rebuild,
    provenance_dir,
    read_generation,
)
from hfscraper.provenance.store import crawled_nodes, resolved_edges
from hfscraper.provenance.text import json_text, xml_safe
from hfscraper.state import StateError, StateStore, utc_now

logger = logging.getLogger(__name__)

#: Format tag of the JSON documents.
FORMAT: Final = "hfscraper-provenance/1"
#: Rows per insert batch and per Parquet row group (memory per batch stays a few MB whatever the graph's size).
BATCH: Final = 5_000
PARQUET_ROW_GROUP: Final = 8_192
#: Rows converted from SQLite to Arrow at a time (divides PARQUET_ROW_GROUP).
_CONVERT_ROWS: Final = 1_024
#: SQLite page cache per database (main and temporary), KiB: enough for the ordered scans, which read sequentially.
CACHE_KIB: Final = 2048

#: The Parquet edge list (declared; `sources` is sorted).
EDGE_SCHEMA: Final = pa.schema(
    [
        pa.field("src", pa.string(), nullable=False),
        pa.field("src_type", pa.string(), nullable=False),
        pa.field("src_id", pa.string(), nullable=False),
        pa.field("dst", pa.string(), nullable=False),
        pa.field("dst_type", pa.string(), nullable=False),
        pa.field("dst_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("relation", pa.string(), nullable=False),
        pa.field("sources", pa.list_(pa.string()), nullable=False),
        pa.field("src_scraped", pa.bool_(), nullable=False),
        pa.field("dst_scraped", pa.bool_(), nullable=False),
    ],
    metadata={"format": FORMAT},
)

#: `xml.sax.saxutils.escape` leaves CR alone, and parsers read a raw CR in text as a newline.
_XML_TEXT_ENTITIES: Final = {"\r": "&#13;"}
_NODE_KEYS: Final = (
    ("type", "string"), ("id", "string"), ("scraped", "boolean"), ("deleted", "boolean"), ("author", "string"),
    ("pipeline_tag", "string"), ("library_name", "string"), ("downloads", "long"), ("likes", "long"),
    ("created_at", "string"), ("last_modified", "string"),
)  # fmt: skip
_EDGE_KEYS: Final = (("kind", "string"), ("relation", "string"), ("sources", "string"))


@dataclass
class Summary:
    """What `rebuild` wrote."""

    nodes: int = 0
    stubs: int = 0
    edges: int = 0
    entity_files_written: int = 0
    entity_files_removed: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# Resolving the state into temporary tables
# ---------------------------------------------------------------------------------------------------------


def _prepare(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE IF EXISTS temp.g_edges")
    db.execute("DROP TABLE IF EXISTS temp.g_nodes")
    db.execute("DROP TABLE IF EXISTS temp.g_files")
    db.execute(
        "CREATE TEMP TABLE g_edges (src TEXT NOT NULL, src_type TEXT NOT NULL, src_id TEXT NOT NULL, "
        "dst TEXT NOT NULL, dst_type TEXT NOT NULL, dst_id TEXT NOT NULL, kind TEXT NOT NULL, "
        "relation TEXT NOT NULL, sources TEXT NOT NULL)"
    )
    batch: list[tuple[Any, ...]] = []
    insert = "INSERT INTO g_edges VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    for e in resolved_edges(db):
        batch.append(
            (f"{e.src_type}:{e.src_id}", e.src_type, e.src_id, f"{e.dst_type}:{e.dst_id}", e.dst_type, e.dst_id,
             e.kind, e.relation, ",".join(e.sources))
        )  # fmt: skip
        if len(batch) >= BATCH:
            db.executemany(insert, batch)
            batch.clear()
    db.executemany(insert, batch)
    db.execute("CREATE INDEX temp.g_edges_src ON g_edges (src, dst, kind)")
    db.execute("CREATE INDEX temp.g_edges_dst ON g_edges (dst, src, kind)")
    cols = ", ".join(NODE_ATTRIBUTES)
    db.execute(
        f"CREATE TEMP TABLE g_nodes (key TEXT PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL, "
        f"scraped INTEGER NOT NULL, deleted INTEGER NOT NULL, {cols}) WITHOUT ROWID"
    )
    db.executemany(
        f"INSERT INTO g_nodes VALUES (?, ?, ?, 1, ?, {', '.join('?' * len(NODE_ATTRIBUTES))})",
        (
            (f"{n.type}:{n.id}", n.type, n.id, int(n.deleted), *(n.attributes[c] for c in NODE_ATTRIBUTES))
            for n in crawled_nodes(db)
        ),
    )
    for end in ("src", "dst"):
        db.execute(
            f"INSERT OR IGNORE INTO g_nodes (key, type, id, scraped, deleted) "
            f"SELECT DISTINCT {end}, {end}_type, {end}_id, 0, 0 FROM g_edges"
        )


def _node_rows(db: sqlite3.Connection) -> Iterator[dict[str, Any]]:
    cols = ", ".join(NODE_ATTRIBUTES)
    for row in db.execute(f"SELECT key, type, id, scraped, deleted, {cols} FROM g_nodes ORDER BY key"):
        node = {"key": row[0], "type": row[1], "id": row[2], "scraped": bool(row[3]), "deleted": bool(row[4])}
        node.update(zip(NODE_ATTRIBUTES, row[5:], strict=True))
        yield node


def _edge_rows(db: sqlite3.Connection) -> Iterator[tuple[str, str, str, str, list[str]]]:
    for src, dst, kind, relation, sources in db.execute(
        "SELECT src, dst, kind, relation, sources FROM g_edges ORDER BY src, dst, kind"
    ):
        yield src, dst, kind, relation, sources.split(",")


# ---------------------------------------------------------------------------------------------------------
# Atomic streamed writes
# ---------------------------------------------------------------------------------------------------------


def _link_or_copy(previous: str | os.PathLike[str], path: str | os.PathLike[str], data: bytes | None) -> None:
    """*path* as a hard link to *previous* (same bytes, same mtime, no copy); where the file system has no hard
    links, a copy that keeps the mtime (or *data*, when given)."""
    try:
        os.link(previous, path)
    except OSError:
        if data is None:
            shutil.copy2(previous, path)
        else:
            with open(path, "wb") as f:
                f.write(data)


def _write_new(path: str, data: bytes, *, fsync: bool) -> None:
    with open(path, "xb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


class _StagedFile:
    """A write-only binary (or text: str is encoded as UTF-8) file *path* of the staging folder, compared with
    *previous* (the current folder's file) as it is written: while the bytes equal the previous file's, nothing is
    written; at the first difference the equal prefix is copied to *path* and the rest follows. When the content
    is the same throughout, *path* becomes a hard link to *previous* (an unchanged file keeps its bytes and
    mtime)."""

    def __init__(self, path: Path, *, previous: Path | None, fsync: bool = False) -> None:
        self.path, self.previous, self.fsync = path, previous, fsync
        self._old: IO[bytes] | None = None
        if previous is not None:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                self._old = open(previous, "rb")  # noqa: SIM115 - closed in finish()/abort()
        self._new: IO[bytes] | None = None
        self._pos = 0
        self.closed = False
        self.changed = False

    def _diverge(self) -> IO[bytes]:
        new = self._new = open(self.path, "xb")  # noqa: SIM115
        if self._old is not None:
            self._old.seek(0)
            left = self._pos
            while left:
                chunk = self._old.read(min(left, 1 << 20))
                new.write(chunk)
                left -= len(chunk)
        return new

    def write(self, data: bytes | str) -> int:
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if self._new is None and self._old is not None and self._old.read(len(data)) == data:
            self._pos += len(data)
            return len(data)
        new = self._new or self._diverge()
        new.write(data)
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        return None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True

    def finish(self) -> bool:
        """Complete *path*; True if its content differs from the previous file's."""
        self.closed = True
        if self._new is None and (self._old is None or self._old.read(1)):
            self._diverge()  # a new file, or the old one is longer
        if self._old is not None:
            self._old.close()
        if self._new is None:
            assert self.previous is not None
            _link_or_copy(self.previous, self.path, None)
            return False
        if self.fsync:
            self._new.flush()
            os.fsync(self._new.fileno())
        self._new.close()
        self.changed = True
        return True

    def abort(self) -> None:
        if self._old is not None:
            self._old.close()
        if self._new is not None:
            self._new.close()


@contextmanager
def _staged(path: Path, previous: Path | None, *, fsync: bool = False) -> Iterator[_StagedFile]:
    f = _StagedFile(path, previous=previous, fsync=fsync)
    try:
        yield f
    except BaseException:
        f.abort()
        raise
    f.finish()


def _dumps(value: Any) -> str:
    return json_text(value, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------------
# The files
# ---------------------------------------------------------------------------------------------------------


def write_node_link(db: sqlite3.Connection, path: Path, *, previous: Path | None = None, fsync: bool = False) -> None:
    """`provenance_graph.json`: exactly what `networkx.node_link_data(G, edges="edges")` gives for the graph
    (node-link's `id` is the node key; the node attribute `id` is restored by `read_graph`)."""
    with _staged(path, previous, fsync=fsync) as f:
        f.write('{"directed": true, "multigraph": false, "graph": ')
        f.write(_dumps({"format": FORMAT}))
        f.write(', "nodes": [')
        for n, node in enumerate(_node_rows(db)):
            key = node.pop("key")
            node["id"] = key
            f.write(("," if n else "") + "\n" + _dumps(node))
        f.write('\n], "edges": [')
        for n, (src, dst, kind, relation, sources) in enumerate(_edge_rows(db)):
            edge = {"kind": kind, "relation": relation, "sources": sources, "source": src, "target": dst}
            f.write(("," if n else "") + "\n" + _dumps(edge))
        f.write("\n]}\n")


#: What `_xml` changes: XML's specials, CR, and what `xml_safe` escapes. Most values hold none of them.
_XML_SPECIAL: Final = re.compile("[&<>\r\\\\\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml(value: Any) -> str:
    text = str(value)
    if _XML_SPECIAL.search(text) is None:
        return text
    return escape(xml_safe(text), _XML_TEXT_ENTITIES)


def write_graphml(db: sqlite3.Connection, path: Path, *, previous: Path | None = None, fsync: bool = False) -> None:
    """`provenance_graph.graphml` (GraphML 1.0, typed keys; `sources` as `api,tag`; None values left out)."""
    with _staged(path, previous, fsync=fsync) as f:
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
        for node in _node_rows(db):
            parts = [f"<node id={quoteattr(xml_safe(node['key']))}>"]
            for n, (name, kind) in enumerate(_NODE_KEYS):
                value = node.get(name)
                if value is None:
                    continue
                text = ("true" if value else "false") if kind == "boolean" else _xml(value)
                parts.append(f'<data key="n{n}">{text}</data>')
            f.write("".join(parts) + "</node>\n")
        for src, dst, kind, relation, sources in _edge_rows(db):
            f.write(
                f"<edge source={quoteattr(xml_safe(src))} target={quoteattr(xml_safe(dst))}>"
                f'<data key="e0">{_xml(kind)}</data><data key="e1">{_xml(relation)}</data>'
                f'<data key="e2">{_xml(",".join(sources))}</data></edge>\n'
            )
        f.write("</graph>\n</graphml>\n")


def write_parquet(db: sqlite3.Connection, path: Path, *, previous: Path | None = None, fsync: bool = False) -> None:
    """`provenance_edges.parquet`, schema `EDGE_SCHEMA`, row groups of `PARQUET_ROW_GROUP` edges."""
    query = (
        "SELECT e.src, e.src_type, e.src_id, e.dst, e.dst_type, e.dst_id, e.kind, e.relation, e.sources, "
        "s.scraped, d.scraped FROM g_edges e JOIN g_nodes s ON s.key = e.src JOIN g_nodes d ON d.key = e.dst "
        "ORDER BY e.src, e.dst, e.kind"
    )
    sources = EDGE_SCHEMA.get_field_index("sources")
    flags = [EDGE_SCHEMA.get_field_index(name) for name in ("src_scraped", "dst_scraped")]
    with _staged(path, previous, fsync=fsync) as f:
        writer = pq.ParquetWriter(f, EDGE_SCHEMA, compression="zstd")
        try:
            cursor = db.execute(query)
            # Rows become Arrow arrays a small slice at a time (Python tuples of a whole row group would be ten
            # times the size of its Arrow buffers); a row group is written once it is full.
            pending: list[pa.RecordBatch] = []
            held = 0
            while rows := cursor.fetchmany(_CONVERT_ROWS):
                columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
                columns[sources] = [value.split(",") for value in columns[sources]]
                for index in flags:  # SQLite has no booleans
                    columns[index] = [bool(value) for value in columns[index]]
                pending.append(pa.RecordBatch.from_arrays(columns, schema=EDGE_SCHEMA))
                held += len(rows)
                if held >= PARQUET_ROW_GROUP:
                    writer.write_table(pa.Table.from_batches(pending), row_group_size=PARQUET_ROW_GROUP)
                    pending, held = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=PARQUET_ROW_GROUP)
        finally:
            writer.close()


_OUT: Final = "SELECT src, dst_type, dst_id, kind, relation, sources FROM g_edges ORDER BY src, dst, kind"
_IN: Final = "SELECT dst, src_type, src_id, kind, relation, sources FROM g_edges ORDER BY dst, src, kind"


def _link_rows(db: sqlite3.Connection, query: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for node, t, i, kind, relation, sources in db.execute(query):
        yield node, {"type": t, "id": i, "kind": kind, "relation": relation, "sources": sources.split(",")}


class _Links:
    """The links of each node of an ordered node scan, from an ordered edge scan (by the same key) advanced
    alongside it: one scan of an index for all nodes instead of one query per node."""

    def __init__(self, db: sqlite3.Connection, query: str) -> None:
        self._rows = _link_rows(db, query)
        self._next = next(self._rows, None)

    def of(self, key: str) -> Iterator[dict[str, Any]]:
        """The links of *key*, streamed (a base with a million dependents is never a list); consume them before
        asking for the next key."""
        while self._next is not None and self._next[0] < key:  # an edge end that is no node: never, by build
            self._next = next(self._rows, None)
        while self._next is not None and self._next[0] == key:
            yield self._next[1]
            self._next = next(self._rows, None)


def entity_documents(db: sqlite3.Connection) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """`(node, document)` of every node in key order: the node's attributes, `depends_on` (out-edges) and
    `dependents` (in-edges). Three ordered scans merged (nodes, edges by source, edges by target)."""
    out, into = _Links(db, _OUT), _Links(db, _IN)
    for node in _node_rows(db):
        key = node["key"]
        doc = {k: v for k, v in node.items() if k != "key"}
        doc["depends_on"] = list(out.of(key))
        doc["dependents"] = list(into.of(key))
        yield node, doc


#: Links written to a document's line at a time.
_LINK_CHUNK: Final = 512


def _write_streamed_documents(db: sqlite3.Connection, f: _StagedFile) -> None:
    """Each node's line of `entity_relationships.json` (the same bytes as `_dumps` of its document), written
    link by link: memory stays bounded whatever an entity's number of dependents."""
    out, into = _Links(db, _OUT), _Links(db, _IN)
    for n, node in enumerate(_node_rows(db)):
        key = node.pop("key")
        f.write(("," if n else "") + "\n" + _dumps(key) + ":" + _dumps(node)[:-1] + ',"depends_on":[')
        _write_links(f, out.of(key))
        f.write('],"dependents":[')
        _write_links(f, into.of(key))
        f.write("]}")


def _write_links(f: _StagedFile, links: Iterator[dict[str, Any]]) -> None:
    chunk: list[str] = []
    first = True
    for link in links:
        chunk.append(_dumps(link))
        if len(chunk) >= _LINK_CHUNK:
            f.write(("" if first else ",") + ",".join(chunk))
            chunk, first = [], False
    if chunk:
        f.write(("" if first else ",") + ",".join(chunk))


def write_entities(
    db: sqlite3.Connection,
    folder: Path,
    *,
    previous: Path | None = None,
    fsync: bool = False,
    entity_files: bool = False,
) -> tuple[int, int]:
    """`entity_relationships.json` into *folder* (the staging folder), and with *entity_files* the per-entity
    files too, each unchanged one linked from *previous* (the current folder); `(entity files new or changed,
    previous entity files left out)`. Without *entity_files*, each document is answered on demand from
    `entity_relationships.json` (`hfscraper.provenance.documents`)."""
    counts = dict(db.execute("SELECT 'nodes', count(*) FROM g_nodes UNION ALL SELECT 'edges', count(*) FROM g_edges"))
    counts["stubs"] = db.execute("SELECT count(*) FROM g_nodes WHERE scraped = 0").fetchone()[0]
    # The names written, kept in SQLite (not in memory) to count the previous files left out afterwards.
    db.execute("DROP TABLE IF EXISTS temp.g_files")
    db.execute(
        "CREATE TEMP TABLE g_files (type TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (type, name)) WITHOUT ROWID"
    )
    written = 0
    # Plain strings for the per-entity paths (pathlib interns every name it parses); the folders are made once.
    sub_dirs = {t: str(folder / sub) for t, sub in ENTITY_FOLDERS.items()}
    old_dirs = {t: str(previous / sub) if previous is not None else None for t, sub in ENTITY_FOLDERS.items()}
    if entity_files:
        for sub_dir in sub_dirs.values():
            ensure_directory(Path(sub_dir))
    old_entities = previous / ENTITY_RELATIONSHIPS if previous is not None else None
    with _staged(folder / ENTITY_RELATIONSHIPS, old_entities, fsync=fsync) as f:
        head = {"format": FORMAT, "counts": counts}
        f.write(_dumps(head)[:-1] + ',"entities":{')
        # One line per node, sorted by key: `documents` finds a node by a binary search over the lines.
        if not entity_files:
            _write_streamed_documents(db, f)
        for n, (node, doc) in enumerate(entity_documents(db) if entity_files else ()):
            f.write(("," if n else "") + "\n" + _dumps(node["key"]) + ":" + _dumps(doc))
            if not has_document(doc):
                continue
            name = entity_folder_name(node["id"]) + ".json"
            db.execute("INSERT OR IGNORE INTO g_files VALUES (?, ?)", (node["type"], name))
            data = document_bytes(doc)
            path = os.path.join(sub_dirs[node["type"]], name)
            old_dir = old_dirs[node["type"]]
            old = os.path.join(old_dir, name) if old_dir is not None else None
            if old is not None and same_content(old, data):
                _link_or_copy(old, path, data)
            else:
                _write_new(path, data, fsync=fsync)
                written += 1
        f.write("\n}}\n")
    removed = 0
    for t, old_dir in old_dirs.items():
        if old_dir is None:
            continue
        try:
            entries = os.scandir(old_dir)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with entries:
            for entry in entries:
                if not entry.name.endswith(".json") or entry.name.startswith(TEMP_PREFIX):
                    continue
                if db.execute("SELECT 1 FROM g_files WHERE type = ? AND name = ?", (t, entry.name)).fetchone() is None:
                    removed += 1
    return written, removed


# ---------------------------------------------------------------------------------------------------------
# All or nothing: a staging folder, then one swap
# ---------------------------------------------------------------------------------------------------------

_STAGING_SUFFIXES: Final = (f"-{PROVENANCE_FOLDER}", f"-{PROVENANCE_FOLDER}-old")
_AT_FDCWD: Final = -100
_RENAME_EXCHANGE: Final = 2


def staging_dir(output_dir: Path) -> Path:
    """This process's staging folder: `output_dir/.hfscraper-tmp-<pid>-provenance`."""
    return Path(output_dir) / f"{TEMP_PREFIX}{os.getpid()}-{PROVENANCE_FOLDER}"


def sweep_dead_staging(output_dir: Path) -> int:
    """Remove the staging folders (and old sets) that killed rebuilds left in *output_dir*; how many."""
    removed = 0
    try:
        entries = os.scandir(output_dir)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    with entries:
        for entry in entries:
            name = entry.name
            if not name.startswith(TEMP_PREFIX) or not name.endswith(_STAGING_SUFFIXES):
                continue
            digits, dash, _ = name[len(TEMP_PREFIX) :].partition("-")
            if not dash or not digits.isdigit() or int(digits) == os.getpid() or process_alive(int(digits)):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
    return removed


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths in one step (Linux `renameat2(RENAME_EXCHANGE)`); OSError where it is not available."""
    try:
        renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except (OSError, TypeError):  # no C library to load by that name (not a POSIX system)
        renameat2 = None
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(b))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def swap_in(staging: Path, current: Path, *, fsync: bool = False) -> None:
    """Make the complete *staging* folder the *current* one and remove the previous set. Readers see the old
    folder or the new one: one exchange of the two (Linux); elsewhere two renames, and a kill between them leaves
    no folder at all (never a partial one), which the crawl state reports as missing until the next rebuild."""
    if fsync:
        for sub in ENTITY_FOLDERS.values():
            fsync_directory(staging / sub)
        fsync_directory(staging)
    try:
        os.rename(staging, current)  # no current folder (or an empty one): done
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise
        try:
            _exchange(staging, current)
            old = staging
        except OSError:
            old = current.with_name(f"{TEMP_PREFIX}{os.getpid()}-{PROVENANCE_FOLDER}-old")
            os.rename(current, old)
            os.rename(staging, current)
        _remove(old)
    if fsync:
        fsync_directory(current.parent)


def rebuild(state_file: Path, output_dir: Path, *, fsync: bool = False, entity_files: bool = False) -> Summary:
    """Rebuild every provenance file of *output_dir* from its crawl state *state_file* (blocking).

    All or nothing: the files are written to a staging folder (linked from the current folder where unchanged),
    which replaces `provenance/` in one swap once complete; only then does the state record the rebuild as done
    (`hfscraper.provenance.freshness`). A kill at any moment leaves the previous complete folder (or none) and
    the state saying so. Raises StateError when there is no state file. Safe to run while nothing else rebuilds
    the same folder; a crawl may be writing the state meanwhile (SQLite WAL: the rebuild reads one snapshot).
    With *entity_files*, the per-entity documents are written as files too (one inode each); without, they are
    answered on demand from `entity_relationships.json` (`hfscraper.provenance.documents`).
    """
    started = time.monotonic()
    store = StateStore(state_file, create=False)
    db = store.db
    output_dir = Path(output_dir)
    staging = staging_dir(output_dir)
    try:
        current = provenance_dir(output_dir)
        ensure_directory(output_dir)
        sweep_dead_staging(output_dir)
        begin_rebuild(store, utc_now())
        _remove(staging)
        staging.mkdir()
        # Temporary tables and sorts spill to disk beyond a small cache: memory stays bounded at any size. The
        # temporary database has a cache of its own, and a sort's in-memory run is sized by the cache.
        db.execute("PRAGMA temp_store = FILE")
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute(f"PRAGMA temp.cache_size = -{CACHE_KIB}")
        previous = current if current.is_dir() else None
        db.execute("BEGIN")  # one snapshot for every file, and for the generation they reflect
        try:
            generation = read_generation(db)
            _prepare(db)
            write_node_link(db, staging / GRAPH_JSON, previous=_in(previous, GRAPH_JSON), fsync=fsync)
            write_graphml(db, staging / GRAPH_GRAPHML, previous=_in(previous, GRAPH_GRAPHML), fsync=fsync)
            write_parquet(db, staging / EDGES_PARQUET, previous=_in(previous, EDGES_PARQUET), fsync=fsync)
            written, removed = write_entities(db, staging, previous=previous, fsync=fsync, entity_files=entity_files)
            summary = Summary(
                nodes=db.execute("SELECT count(*) FROM g_nodes").fetchone()[0],
                stubs=db.execute("SELECT count(*) FROM g_nodes WHERE scraped = 0").fetchone()[0],
                edges=db.execute("SELECT count(*) FROM g_edges").fetchone()[0],
                entity_files_written=written,
                entity_files_removed=removed,
                by_kind=dict(db.execute("SELECT kind, count(*) FROM g_edges GROUP BY kind")),
            )
        finally:
            db.execute("ROLLBACK")  # only temporary tables were written
        swap_in(staging, current, fsync=fsync)
        finish_rebuild(store, generation, utc_now(), summary.nodes, summary.edges)
    except BaseException:
        _remove(staging)
        raise
    finally:
        store.close()
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _in(folder: Path | None, name: str) -> Path | None:
    return folder / name if folder is not None else None


__all__ = ["EDGE_SCHEMA", "ENTITY_FOLDERS", "StateError", "Summary", "entity_documents", "provenance_dir", "rebuild"]
