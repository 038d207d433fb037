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
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from hfscraper.fsutil import TEMP_PREFIX, ensure_directory, fsync_directory, process_alive, same_content
from hfscraper.hub import entity_folder_name
from hfscraper.provenance.columnar import (
    EDGE_SCHEMA,
    FORMAT,
    NODE_SCHEMA,
    PLAIN_COLUMNS,
    ROW_GROUP,
    GraphFiles,
)
from hfscraper.provenance.documents import ENTITY_FOLDERS, document_bytes, has_document
from hfscraper.provenance.extract import NODE_ATTRIBUTES
from hfscraper.provenance.freshness import (
    EDGES_BY_TARGET_PARQUET,
    EDGES_PARQUET,
    GRAPH_FILES,
    GRAPH_JSON,
    NODES_PARQUET,
    OUTPUT_FILES,
    PROVENANCE_FOLDER,
    begin_rebuild,
    finish_rebuild,
    provenance_dir,
    read_generation,
)
from hfscraper.provenance.graphfiles import WRITERS, entity_documents
from hfscraper.provenance.store import NODE_COLUMNS, resolved_edges
from hfscraper.state import StateError, StateStore, utc_now

logger = logging.getLogger(__name__)

#: Rows per insert batch (memory per batch stays a few MB whatever the graph's size).
BATCH: Final = 5_000
#: Rows converted from SQLite to Arrow at a time (divides `columnar.ROW_GROUP`).
_CONVERT_ROWS: Final = 1_024
#: SQLite page cache per database (main and temporary), KiB: enough for the ordered scans, which read sequentially.
CACHE_KIB: Final = 2048


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
    # Crawled nodes straight from the state in SQL (no Python per row), in key order: `type:id` sorts as (type, id).
    db.execute(
        f"INSERT INTO g_nodes SELECT n.repo_type || ':' || n.id, n.repo_type, n.id, 1, e.deleted_at IS NOT NULL, "
        f"{', '.join(f'n.{c}' for c in NODE_COLUMNS)} FROM provenance_nodes n "
        "LEFT JOIN entities e ON e.repo_type = n.repo_type AND e.id = n.id ORDER BY n.repo_type, n.id"
    )
    for end in ("src", "dst"):
        db.execute(
            f"INSERT OR IGNORE INTO g_nodes (key, type, id, scraped, deleted) "
            f"SELECT DISTINCT {end}, {end}_type, {end}_id, 0, 0 FROM g_edges"
        )


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


# ---------------------------------------------------------------------------------------------------------
# The Parquet files
# ---------------------------------------------------------------------------------------------------------

_NODES_QUERY: Final = f"SELECT key, type, id, scraped, deleted, {', '.join(NODE_ATTRIBUTES)} FROM g_nodes ORDER BY key"
_EDGES_QUERY: Final = (
    "SELECT e.src, e.src_type, e.src_id, e.dst, e.dst_type, e.dst_id, e.kind, e.relation, e.sources, "
    "s.scraped, d.scraped FROM g_edges e JOIN g_nodes s ON s.key = e.src JOIN g_nodes d ON d.key = e.dst "
)
_EDGES_BY_SOURCE: Final = _EDGES_QUERY + "ORDER BY e.src, e.dst, e.kind"
_EDGES_BY_TARGET: Final = _EDGES_QUERY + "ORDER BY e.dst, e.src, e.kind"


def _write_table(
    db: sqlite3.Connection, query: str, schema: pa.Schema, path: Path, *, previous: Path | None, fsync: bool
) -> None:
    """The rows of *query* (in *schema*'s column order) as a Parquet file, row groups of `ROW_GROUP` rows."""
    lists = [schema.get_field_index(f.name) for f in schema if pa.types.is_list(f.type)]  # stored "a,b"
    flags = [schema.get_field_index(f.name) for f in schema if pa.types.is_boolean(f.type)]  # stored 0/1
    plain = [name for name in PLAIN_COLUMNS if name in schema.names]
    with _staged(path, previous, fsync=fsync) as f:
        writer = pq.ParquetWriter(
            f, schema, compression="zstd", use_dictionary=[n for n in schema.names if n not in plain]
        )
        try:
            cursor = db.execute(query)
            # Rows become Arrow arrays a small slice at a time (Python tuples of a whole row group would be ten
            # times the size of its Arrow buffers); a row group is written once it is full.
            pending: list[pa.RecordBatch] = []
            held = 0
            while rows := cursor.fetchmany(_CONVERT_ROWS):
                columns: list[list[Any]] = [list(column) for column in zip(*rows, strict=True)]
                for index in lists:
                    columns[index] = [value.split(",") for value in columns[index]]
                for index in flags:  # SQLite has no booleans
                    columns[index] = [bool(value) for value in columns[index]]
                pending.append(pa.RecordBatch.from_arrays(columns, schema=schema))
                held += len(rows)
                if held >= ROW_GROUP:
                    writer.write_table(pa.Table.from_batches(pending), row_group_size=ROW_GROUP)
                    pending, held = [], 0
            if pending:
                writer.write_table(pa.Table.from_batches(pending), row_group_size=ROW_GROUP)
        finally:
            writer.close()


def write_nodes(db: sqlite3.Connection, path: Path, *, previous: Path | None = None, fsync: bool = False) -> None:
    """`provenance_nodes.parquet`: every node sorted by key, schema `NODE_SCHEMA`."""
    _write_table(db, _NODES_QUERY, NODE_SCHEMA, path, previous=previous, fsync=fsync)


def write_parquet(db: sqlite3.Connection, path: Path, *, previous: Path | None = None, fsync: bool = False) -> None:
    """`provenance_edges.parquet`: every edge sorted by (source, target, kind), schema `EDGE_SCHEMA`."""
    _write_table(db, _EDGES_BY_SOURCE, EDGE_SCHEMA, path, previous=previous, fsync=fsync)


def write_edges_by_target(
    db: sqlite3.Connection, path: Path, *, previous: Path | None = None, fsync: bool = False
) -> None:
    """`provenance_edges_by_target.parquet`: the same edges sorted by (target, source, kind)."""
    _write_table(db, _EDGES_BY_TARGET, EDGE_SCHEMA, path, previous=previous, fsync=fsync)


# ---------------------------------------------------------------------------------------------------------
# The text files and the per-entity files, from the staged Parquet files
# ---------------------------------------------------------------------------------------------------------


def write_graph_file(
    files: GraphFiles, graph_format: str, path: Path, *, previous: Path | None = None, fsync: bool = False
) -> None:
    """One whole-graph text file (`graph_format` a key of `GRAPH_FILES`) from the Parquet files *files*."""
    with _staged(path, previous, fsync=fsync) as f:
        WRITERS[graph_format](files, f)


def write_entity_files(
    files: GraphFiles, folder: Path, *, previous: Path | None = None, fsync: bool = False
) -> tuple[int, int]:
    """The per-entity documents `<type>_relationships/<folder name>.json` into *folder* (the staging folder), each
    unchanged one linked from *previous* (the current folder); `(files new or changed, previous files left
    out)`."""
    # The names written, kept in SQLite (not in memory) to count the previous files left out afterwards.
    names = sqlite3.connect("")  # a temporary database on disk: bounded memory
    names.execute(
        "CREATE TABLE written (type TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (type, name)) WITHOUT ROWID"
    )
    written = 0
    # Plain strings for the per-entity paths (pathlib interns every name it parses); the folders are made once.
    sub_dirs = {t: str(folder / sub) for t, sub in ENTITY_FOLDERS.items()}
    old_dirs = {t: str(previous / sub) if previous is not None else None for t, sub in ENTITY_FOLDERS.items()}
    for sub_dir in sub_dirs.values():
        ensure_directory(Path(sub_dir))
    try:
        for _key, doc in entity_documents(files):
            if not has_document(doc):
                continue
            name = entity_folder_name(doc["id"]) + ".json"
            names.execute("INSERT OR IGNORE INTO written VALUES (?, ?)", (doc["type"], name))
            data = document_bytes(doc)
            path = os.path.join(sub_dirs[doc["type"]], name)
            old_dir = old_dirs[doc["type"]]
            old = os.path.join(old_dir, name) if old_dir is not None else None
            if old is not None and same_content(old, data):
                _link_or_copy(old, path, data)
            else:
                _write_new(path, data, fsync=fsync)
                written += 1
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
                    known = "SELECT 1 FROM written WHERE type = ? AND name = ?"
                    if names.execute(known, (t, entry.name)).fetchone() is None:
                        removed += 1
    finally:
        names.close()
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


def rebuild(
    state_file: Path,
    output_dir: Path,
    *,
    fsync: bool = False,
    entity_files: bool = False,
    graph_files: tuple[str, ...] = (),
) -> Summary:
    """Rebuild every provenance file of *output_dir* from its crawl state *state_file* (blocking).

    All or nothing: the files are written to a staging folder (linked from the current folder where unchanged),
    which replaces `provenance/` in one swap once complete; only then does the state record the rebuild as done
    (`hfscraper.provenance.freshness`). A kill at any moment leaves the previous complete folder (or none) and
    the state saying so. Raises StateError when there is no state file, ValueError for an unknown graph file
    format. Safe to run while nothing else rebuilds the same folder; a crawl may be writing the state meanwhile
    (SQLite WAL: the rebuild reads one snapshot). The Parquet files are always written; *graph_files* names the
    whole-graph text files wanted too (`json`, `graphml`, `relationships`: `GRAPH_FILES`), written from the
    staged Parquet files; with *entity_files*, the per-entity documents are written as files too (one inode
    each); without, they are answered on demand (`hfscraper.provenance.documents`).
    """
    unknown = sorted(set(graph_files) - set(GRAPH_FILES))
    if unknown:
        raise ValueError(f"unknown graph file format {', '.join(unknown)} (known: {', '.join(GRAPH_FILES)})")
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
            write_nodes(db, staging / NODES_PARQUET, previous=_in(previous, NODES_PARQUET), fsync=fsync)
            write_parquet(db, staging / EDGES_PARQUET, previous=_in(previous, EDGES_PARQUET), fsync=fsync)
            write_edges_by_target(
                db, staging / EDGES_BY_TARGET_PARQUET, previous=_in(previous, EDGES_BY_TARGET_PARQUET), fsync=fsync
            )
            summary = Summary(
                nodes=db.execute("SELECT count(*) FROM g_nodes").fetchone()[0],
                stubs=db.execute("SELECT count(*) FROM g_nodes WHERE scraped = 0").fetchone()[0],
                edges=db.execute("SELECT count(*) FROM g_edges").fetchone()[0],
                by_kind=dict(db.execute("SELECT kind, count(*) FROM g_edges GROUP BY kind")),
            )
        finally:
            db.execute("ROLLBACK")  # only temporary tables were written
        db.execute("DROP TABLE IF EXISTS temp.g_edges")
        db.execute("DROP TABLE IF EXISTS temp.g_nodes")
        written = [*OUTPUT_FILES]
        if graph_files or entity_files:
            files = GraphFiles(staging)
            for graph_format in sorted(set(graph_files)):
                name = GRAPH_FILES[graph_format]
                write_graph_file(files, graph_format, staging / name, previous=_in(previous, name), fsync=fsync)
                written.append(name)
            if entity_files:
                summary.entity_files_written, summary.entity_files_removed = write_entity_files(
                    files, staging, previous=previous, fsync=fsync
                )
        if not entity_files and previous is not None:
            summary.entity_files_removed = _count_entity_files(previous)  # switched off: the files go
        swap_in(staging, current, fsync=fsync)
        finish_rebuild(store, generation, utc_now(), summary.nodes, summary.edges, tuple(written))
    except BaseException:
        _remove(staging)
        raise
    finally:
        store.close()
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


def _count_entity_files(folder: Path) -> int:
    count = 0
    for sub in ENTITY_FOLDERS.values():
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(folder / sub) as entries:
            count += sum(1 for e in entries if e.name.endswith(".json") and not e.name.startswith(TEMP_PREFIX))
    return count


def _in(folder: Path | None, name: str) -> Path | None:
    return folder / name if folder is not None else None


__all__ = [
    "EDGE_SCHEMA",
    "ENTITY_FOLDERS",
    "FORMAT",
    "GRAPH_JSON",
    "NODE_SCHEMA",
    "StateError",
    "Summary",
    "entity_documents",
    "provenance_dir",
    "rebuild",
]
