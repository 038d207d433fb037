"""The crash-safe crawl state: an embedded SQLite database in WAL mode, one file per output folder.

What it holds (schema version 8, in the `meta` table; an older file gets the new tables and indexes when opened):

- `crawls`: one row per crawl of one listing. A crawl may take several runs (a run ends with a finish
  reason, or is killed); it is `complete` once a run finished with every page stored. Columns: the listing
  (`listing_key`, `scope_key`, the listing as JSON), `mode` (`full` or `incremental`), `since` (the
  watermark an incremental crawl stops at), `max_items`, `sweep` (a full sweep of the whole listing, the only
  kind that may tombstone), times, the last run's `finish_reason`, `runs`, `run_pid`, and what the next
  incremental crawl needs (`clock_floor`, `newest_seen`, `watermark`).
- `cursors`: per listing with an unfinished crawl, the `rel="next"` URL after the last page whose items
  are all stored (`next_url`, `page_seq`, `items_seen`), or `done` when the last page is.
- `entities`: per `(repo_type, id)`: `sha`, `last_modified`, `shape` (which fields were asked for), the
  pipeline `stages` completed for that version (JSON list), the crawl that first saw it, last stored it,
  last saw it, `deleted_at` (a tombstone: a full sweep no longer found it) and `seal` (since version 6: what its
  folder looked like when it was recorded, `hfscraper.seal`).
- `request_keys`: `meta["deltafetch_key"]` values whose response produced a stored item.
- `cids` and `pins` (since version 2): the CID of every file and folder of an entity, and each backend's pin of
  the folder's root (see `hfscraper.ipfs.pins`).
- `files` (since version 3): the files stage's outcome for every chosen file of an entity (status, reason, size,
  checksums; see `hfscraper.file_records`).
- `provenance_nodes`, `provenance_edges`, `provenance_aliases` (since version 4): per entity, the node attributes
  and the edges its metadata declares (replaced as a whole each time the provenance stage processes it), and the
  renamed ids the crawl resolved (see `hfscraper.provenance.store`).
- `ratelimits` (since version 5): per host and bucket, the last rate-limit budget a crawl saw (the numbers of the
  `RateLimit` and `RateLimit-Policy` headers: remaining, seconds to the reset, quota, window) and when; written
  every few seconds during a crawl and when it closes (`hfscraper.extensions.progress`), shown by `scrapy status`.
- `car_packs` (since version 7), and `pins.car_offset`/`car_length`: the CAR packs of the IPFS stage, how many pins
  still point into each, and where each entity's blocks lie in its pack (see `hfscraper.ipfs.packs`).
- Case-insensitive indexes (since version 8): Hub repo ids are case-insensitive, so `entities`,
  `provenance_nodes` and `provenance_aliases` are also indexed by `id COLLATE NOCASE` (ASCII case, as Hub ids are
  ASCII): a reference in another case finds the entity (`hfscraper.provenance.store`), and an entity the listing
  now spells in another case takes over its old spelling's row and folder (`StateStore.respell`).

It never holds a token or request headers: only listing URLs (which carry no credentials) and Hub metadata.

Durability: WAL with `synchronous=NORMAL` survives a crash of the crawling process (kill -9) at any moment: a
transaction is either in the database afterwards or not at all. A power loss may lose the last transactions
(never corrupt the file); `HFSCRAPER_STORE_FSYNC` switches to `synchronous=FULL`, which makes every commit
durable at the price of an fsync per transaction. Writes are batched (one transaction per group of items, one
per checkpoint), so either mode keeps up with thousands of entities per second.

Threads: `StateStore` is a plain, blocking object. Inside a crawl every call goes through `SharedStateStore`,
which runs them one at a time on a single worker thread (off the reactor), so the spiders of one `crawlall`
process share one connection and never contend for SQLite's write lock.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.fsutil import TEMP_PREFIX, write_atomic
from hfscraper.hub import HostileIdError, entity_folder_name
from hfscraper.items import HubEntityItem, format_hub_datetime

SCHEMA_VERSION: Final = 8
#: State files are named `hfscraper-<output folder name>-<8 hex digits of its resolved path>.sqlite3`.
STATE_FILE_PREFIX: Final = "hfscraper-"
STATE_FILE_SUFFIX: Final = ".sqlite3"
#: Rows per `IN (...)` query (well under SQLite's variable limit).
_CHUNK: Final = 500
#: The file that marks an entity folder whose entity a full sweep no longer found.
TOMBSTONE_FILE: Final = "tombstone.json"
#: Pipeline stages recorded per entity, and the pipeline whose success completes each. An entity is
#: skipped as unchanged only when every stage the current crawl runs has completed for its version (later
#: stages, such as file downloads, add themselves here).
STAGE_PIPELINES: Final[dict[str, str]] = {
    "stored": "hfscraper.pipelines.entity_store.EntityStorePipeline",
    "files": "hfscraper.pipelines.files.RepoFilesPipeline",
    "previews": "hfscraper.pipelines.previews.PreviewsPipeline",
    "ipfs": "hfscraper.pipelines.ipfs.IpfsPipeline",
    "provenance": "hfscraper.pipelines.provenance.ProvenancePipeline",
}


def __getattr__(name: str) -> Any:
    # `StageFailed` lived here: still importable from this module, without loading Scrapy for the many users of
    # the state that need none of it (the provenance rebuild child, `scrapy status`, the export).
    if name == "StageFailed":
        from hfscraper.pipelines import StageFailed

        return StageFailed
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_T = TypeVar("_T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS crawls (
    crawl_id INTEGER PRIMARY KEY AUTOINCREMENT,
    spider TEXT NOT NULL,
    repo_type TEXT NOT NULL,
    listing_key TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    listing TEXT NOT NULL,
    mode TEXT NOT NULL,
    since TEXT,
    max_items INTEGER NOT NULL,
    sweep INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    finish_reason TEXT,
    complete INTEGER NOT NULL DEFAULT 0,
    runs INTEGER NOT NULL DEFAULT 0,
    run_pid INTEGER,
    run_started_at TEXT,
    clock_floor TEXT,
    newest_seen TEXT,
    watermark TEXT,
    tombstoned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS crawls_by_listing ON crawls (listing_key, complete);
CREATE INDEX IF NOT EXISTS crawls_by_scope ON crawls (scope_key, complete);
CREATE TABLE IF NOT EXISTS cursors (
    listing_key TEXT PRIMARY KEY,
    crawl_id INTEGER NOT NULL,
    chain_id TEXT NOT NULL,
    next_url TEXT,
    page_seq INTEGER NOT NULL,
    items_seen INTEGER NOT NULL,
    done INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entities (
    repo_type TEXT NOT NULL,
    id TEXT NOT NULL,
    sha TEXT,
    last_modified TEXT,
    shape TEXT,
    stages TEXT NOT NULL DEFAULT '[]',
    first_crawl_id INTEGER,
    stored_crawl_id INTEGER,
    seen_crawl_id INTEGER,
    deleted_at TEXT,
    seal TEXT,
    PRIMARY KEY (repo_type, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entities_nocase ON entities (repo_type, id COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS request_keys (
    spider TEXT NOT NULL,
    key TEXT NOT NULL,
    stored_at TEXT NOT NULL,
    PRIMARY KEY (spider, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cids (
    repo_type TEXT NOT NULL,
    id TEXT NOT NULL,
    path TEXT NOT NULL,
    cid TEXT NOT NULL,
    size INTEGER NOT NULL,
    profile TEXT NOT NULL,
    computed_at TEXT NOT NULL,
    PRIMARY KEY (repo_type, id, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pins (
    backend TEXT NOT NULL,
    repo_type TEXT NOT NULL,
    id TEXT NOT NULL,
    root_cid TEXT NOT NULL,
    profile TEXT NOT NULL,
    car_path TEXT,
    pinned_at TEXT NOT NULL,
    PRIMARY KEY (backend, repo_type, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS pins_by_root ON pins (root_cid);
CREATE TABLE IF NOT EXISTS files (
    repo_type TEXT NOT NULL,
    id TEXT NOT NULL,
    path TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    size INTEGER,
    sha256 TEXT,
    blob_sha1 TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (repo_type, id, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS provenance_nodes (
    repo_type TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT,
    pipeline_tag TEXT,
    library_name TEXT,
    downloads INTEGER,
    likes INTEGER,
    created_at TEXT,
    last_modified TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (repo_type, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS provenance_nodes_nocase ON provenance_nodes (repo_type, id COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS provenance_edges (
    origin_type TEXT NOT NULL,
    origin_id TEXT NOT NULL,
    src_type TEXT NOT NULL,
    src_id TEXT NOT NULL,
    dst_type TEXT NOT NULL,
    dst_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    relation TEXT NOT NULL,
    source TEXT NOT NULL,
    PRIMARY KEY (origin_type, origin_id, src_type, src_id, dst_type, dst_id, kind, source)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS provenance_edges_by_src ON provenance_edges (src_type, src_id);
CREATE TABLE IF NOT EXISTS provenance_aliases (
    repo_type TEXT NOT NULL,
    old_id TEXT NOT NULL,
    current_id TEXT,
    checked_at TEXT NOT NULL,
    PRIMARY KEY (repo_type, old_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS provenance_aliases_nocase ON provenance_aliases (repo_type, old_id COLLATE NOCASE);
CREATE TABLE IF NOT EXISTS car_packs (
    name TEXT PRIMARY KEY,
    refs INTEGER NOT NULL,
    entities INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ratelimits (
    host TEXT NOT NULL,
    bucket TEXT NOT NULL,
    remaining INTEGER NOT NULL,
    reset_seconds REAL NOT NULL,
    quota INTEGER,
    window REAL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (host, bucket)
) WITHOUT ROWID;
"""


#: Columns added to existing tables since version 1: `(table, column, type)` (`entities.seal` since version 6,
#: `pins.car_offset` and `pins.car_length` since version 7).
_ADDED_COLUMNS: Final = (
    ("entities", "seal", "TEXT"),
    ("pins", "car_offset", "INTEGER"),
    ("pins", "car_length", "INTEGER"),
)


class StateError(Exception):
    """The state file cannot be used (made by a newer hfscraper, not a database, unwritable)."""


class StateDamagedError(StateError):
    """The state file is damaged (SQLite finds it malformed, or it is not a database at all): its message names the
    file, its companions and what to do."""

    def __init__(self, path: Path, detail: str) -> None:
        self.path = path
        companions = [path, *(p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())]
        names = " and ".join(str(p) for p in companions)
        detail = " ".join(detail.split())
        super().__init__(
            f"the crawl state {path} is damaged ({detail}); move {names} aside (e.g. add .damaged to the name"
            f"{'s' if len(companions) > 1 else ''}) and run the crawl again: it starts a new state and keeps the files "
            "already on disk that still verify"
        )


#: SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGE_CODES: Final = frozenset({11, 26})


def is_damage(exc: BaseException) -> bool:
    """True when a SQLite error says the database file itself is damaged (not locked, full or read-only)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    text = str(exc)
    return code in _DAMAGE_CODES or "malformed" in text or "not a database" in text


def check_state_file(path: str | os.PathLike[str]) -> None:
    """Raise StateDamagedError if the state file at *path* exists and is damaged; creates nothing.

    `PRAGMA quick_check` reads every page once (about 0.15 s for the state of 100,000 entities with their files
    and CIDs, 122 MiB, from the page cache): a damaged page anywhere is found before a crawl trusts the file.
    """
    path = Path(path)
    if not path.is_file():
        return
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error:
        return  # unreadable for another reason (permissions): opening the store says so
    problem = None
    try:
        # SQLite 3.40 reports a false "NULL value in provenance_edges.relation" for every row of that WITHOUT ROWID
        # table (its NOT NULL check misreads the rearranged columns); the pages themselves are what matters here.
        for (row,) in db.execute("PRAGMA quick_check(1000000000)"):
            if row != "ok" and not str(row).startswith("NULL value in "):
                problem = str(row)
                break
    except sqlite3.DatabaseError as exc:
        if is_damage(exc):
            raise StateDamagedError(path, str(exc)) from None
        return
    finally:
        db.close()
    if problem is not None:
        raise StateDamagedError(path, f"quick_check: {problem}")


def utc_now() -> str:
    """Now, in the Hub's date form (`2026-11-26T03:39:53.123Z`): the state's timestamps sort as text."""
    return format_hub_datetime(datetime.now(UTC))


def parse_time(text: str | None) -> datetime | None:
    """A timestamp of the state (or any ISO 8601 text), as an aware UTC datetime; None for None."""
    if text is None:
        return None
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def state_file_path(state_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> Path:
    """The state file of an output folder: one per resolved output path, so that crawls into two folders never
    share (and never skip each other's) entities. For `/data/output`: `<state_dir>/hfscraper-output-<8 hex>.sqlite3`.
    """
    resolved = os.path.realpath(os.path.expanduser(os.fspath(output_dir)))
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(resolved.rstrip(os.sep)))[:40].strip("._") or "root"
    digest = hashlib.sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return Path(os.path.expanduser(os.fspath(state_dir))) / f"{STATE_FILE_PREFIX}{slug}-{digest}{STATE_FILE_SUFFIX}"


def item_version(item: HubEntityItem) -> tuple[str | None, str | None]:
    """`(sha, lastModified)` of an item, the date in the Hub's normalised form (comparable as text)."""
    sha = item.sha if isinstance(item.sha, str) else None
    modified = item.last_modified
    return sha, (format_hub_datetime(modified) if modified is not None else None)


# ---------------------------------------------------------------------------------------------------------
# The entity tree: tombstones and leftovers of interrupted writes
# ---------------------------------------------------------------------------------------------------------


def entity_folder(output_dir: Path, repo_type: str, repo_id: str) -> Path | None:
    """The folder of an entity in the tree (None for an id the store refuses)."""
    try:
        return output_dir / OUTPUT_FOLDERS[repo_type] / entity_folder_name(repo_id)
    except (HostileIdError, KeyError):
        return None


_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _fold(repo_id: str) -> str:
    """The case-insensitive key of an id, as SQLite's NOCASE compares (ASCII letters)."""
    return repo_id.translate(_ASCII_LOWER)


def _rename_folder(output_dir: Path, repo_type: str, old: str, new: str) -> bool:
    """Move an entity's folder to its new spelling's name (`StateStore.respell`); False when there is nothing to move
    or the new name is taken (then the pipelines write the new folder, and the old one stays)."""
    source, target = entity_folder(output_dir, repo_type, old), entity_folder(output_dir, repo_type, new)
    if source is None or target is None or not source.is_dir():
        return False
    if target.exists() and not os.path.samefile(source, target):  # samefile: a case-insensitive file system
        return False
    os.rename(source, target)
    return True


def write_tombstone(output_dir: Path, repo_type: str, repo_id: str, when: str) -> bool:
    """Write `tombstone.json` (`{"id": ..., "deletedAt": ...}`) into an existing entity folder; True if written."""
    folder = entity_folder(output_dir, repo_type, repo_id)
    if folder is None or not folder.is_dir():
        return False
    sweep_leftovers(output_dir, repo_type, repo_id)
    data = (json.dumps({"id": repo_id, "deletedAt": when}, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    write_atomic(folder / TOMBSTONE_FILE, data)
    return True


def remove_tombstone(output_dir: Path, repo_type: str, repo_id: str) -> bool:
    """Remove an entity's `tombstone.json`; True if there was one."""
    folder = entity_folder(output_dir, repo_type, repo_id)
    if folder is None:
        return False
    try:
        os.unlink(folder / TOMBSTONE_FILE)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def sweep_leftovers(output_dir: Path, repo_type: str, repo_id: str) -> int:
    """Remove the temporary files that writes of another (killed) process left in an entity folder.

    `hfscraper.fsutil.write_atomic` names them `TEMP_PREFIX<pid>-...`; those of this process are left
    alone (one may be in the middle of its rename). Returns how many were removed.
    """
    folder = entity_folder(output_dir, repo_type, repo_id)
    if folder is None:
        return 0
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    mine = f"{TEMP_PREFIX}{os.getpid()}-"
    removed = 0
    for name in names:
        if name.startswith(TEMP_PREFIX) and not name.startswith(mine):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(folder / name)
                removed += 1
    return removed


# ---------------------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrawlRow:
    """One row of `crawls` (see the module docstring)."""

    crawl_id: int
    spider: str
    repo_type: str
    listing_key: str
    scope_key: str
    listing: dict[str, Any]
    mode: str
    since: str | None
    max_items: int
    sweep: bool
    started_at: str
    finished_at: str | None
    finish_reason: str | None
    complete: bool
    runs: int
    run_pid: int | None
    run_started_at: str | None
    clock_floor: str | None
    newest_seen: str | None
    watermark: str | None
    tombstoned: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CrawlRow:
        data = dict(row)
        data["listing"] = json.loads(data["listing"])
        data["sweep"] = bool(data["sweep"])
        data["complete"] = bool(data["complete"])
        return cls(**data)


@dataclass(frozen=True)
class CursorRow:
    """One row of `cursors`: where an unfinished crawl of a listing continues."""

    listing_key: str
    crawl_id: int
    chain_id: str
    next_url: str | None
    page_seq: int
    items_seen: int
    done: bool
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CursorRow:
        data = dict(row)
        data["done"] = bool(data["done"])
        return cls(**data)


@dataclass(frozen=True)
class EntityState:
    """What the state knows about one entity."""

    repo_type: str
    id: str
    sha: str | None
    last_modified: str | None
    shape: str | None
    stages: frozenset[str]
    first_crawl_id: int | None
    stored_crawl_id: int | None
    seen_crawl_id: int | None
    deleted_at: str | None
    seal: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> EntityState:
        data = dict(row)
        data["stages"] = frozenset(json.loads(data["stages"] or "[]"))
        return cls(**data)

    def same_version(self, sha: str | None, last_modified: str | None, shape: str | None) -> bool:
        """True when the entity is at the version recorded here (a missing sha is never the same)."""
        return sha is not None and (self.sha, self.last_modified, self.shape) == (sha, last_modified, shape)


@dataclass(frozen=True)
class EntityRecord:
    """An entity that went through every pipeline stage of this crawl, to be recorded."""

    repo_type: str
    id: str
    sha: str | None
    last_modified: str | None
    shape: str | None
    stages: tuple[str, ...]
    #: `hfscraper.seal.folder_seal` of the entity's folder once every stage wrote it (None: not sealed).
    seal: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A listing's progress, saved once every item of page `page_seq` (and of all before it) is stored.

    Attributes:
        next_url: the page to fetch next (None: the chain has ended, `done`).
        items_seen: listing items accepted up to and including this page (for `max_items` across runs).
        newest_seen: the newest `lastModified` among them (feeds the next incremental crawl's watermark).
        seen: `(repo_type, id)` of entities skipped as unchanged or duplicate on those pages: still seen.
        request_keys: deltafetch keys whose items were stored meanwhile.
    """

    listing_key: str
    crawl_id: int
    chain_id: str
    next_url: str | None
    page_seq: int
    items_seen: int
    newest_seen: str | None = None
    seen: tuple[tuple[str, str], ...] = ()
    request_keys: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RateLimitRow:
    """The last rate-limit budget seen for one bucket of one host: `remaining` requests (`r`) and
    `reset_seconds` to the window's reset (`t`) as of `seen_at`, and the policy's `quota` and `window` (`q`, `w`;
    None until a `RateLimit-Policy` header was seen)."""

    host: str
    bucket: str
    remaining: int
    reset_seconds: float
    quota: int | None
    window: float | None
    seen_at: str


# ---------------------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------------------


class StateStore:
    """The state database (blocking; see `SharedStateStore` for use inside a crawl)."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = False, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StateError(f"no state file at {self.path}")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self.db.row_factory = sqlite3.Row
            mode = self.db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(f"{self.path}: SQLite refused WAL mode (got {mode!r})")
            self.db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._setup()
        except sqlite3.DatabaseError as exc:
            if is_damage(exc):
                raise StateDamagedError(self.path, str(exc)) from None
            raise StateError(f"{self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def _setup(self) -> None:
        version = None
        has_meta = self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if has_meta:
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise StateError(
                f"{self.path} has state schema version {version}; this hfscraper understands up to {SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION:
            return
        with self.transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self.db.execute(statement)
            for table, column, kind in _ADDED_COLUMNS:  # to tables an older version created without them
                if column not in {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?), ('created_at', ?)",
                (str(SCHEMA_VERSION), utc_now()),
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (`BEGIN IMMEDIATE` ... `COMMIT`, rolled back on any exception)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- meta -----------------------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        return {row["key"]: row["value"] for row in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def journal_mode(self) -> str:
        return str(self.db.execute("PRAGMA journal_mode").fetchone()[0])

    # -- crawls ---------------------------------------------------------------------------------------------

    def crawl(self, crawl_id: int) -> CrawlRow | None:
        row = self.db.execute("SELECT * FROM crawls WHERE crawl_id = ?", (crawl_id,)).fetchone()
        return CrawlRow.from_row(row) if row else None

    def unfinished_crawl(self, listing_key: str) -> CrawlRow | None:
        """The newest crawl of this listing that has not completed (the one a new run continues)."""
        row = self.db.execute(
            "SELECT * FROM crawls WHERE listing_key = ? AND complete = 0 ORDER BY crawl_id DESC LIMIT 1",
            (listing_key,),
        ).fetchone()
        return CrawlRow.from_row(row) if row else None

    def last_cover(self, scope_key: str) -> CrawlRow | None:
        """The newest completed crawl that saw every entity of this scope changed since its `since` (a full
        listing, or an incremental one), without `max_items`: its watermark is where the next incremental
        crawl may stop."""
        row = self.db.execute(
            "SELECT * FROM crawls WHERE scope_key = ? AND complete = 1 AND max_items = 0 AND watermark IS NOT NULL "
            "ORDER BY finished_at DESC, crawl_id DESC LIMIT 1",
            (scope_key,),
        ).fetchone()
        return CrawlRow.from_row(row) if row else None

    def newest_modified(self, repo_type: str) -> str | None:
        """The newest `lastModified` recorded for any entity of this type."""
        row = self.db.execute("SELECT max(last_modified) FROM entities WHERE repo_type = ?", (repo_type,)).fetchone()
        return row[0] if row else None

    def create_crawl(
        self,
        *,
        spider: str,
        repo_type: str,
        listing_key: str,
        scope_key: str,
        listing: Mapping[str, Any],
        mode: str,
        since: str | None,
        max_items: int,
        sweep: bool,
    ) -> CrawlRow:
        """A new crawl of a listing (its `clock_floor` is the newest `lastModified` known before it starts)."""
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO crawls (spider, repo_type, listing_key, scope_key, listing, mode, since, max_items, "
                "sweep, started_at, clock_floor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    spider, repo_type, listing_key, scope_key, json.dumps(listing, sort_keys=True), mode, since,
                    max_items, int(sweep), utc_now(), self.newest_modified(repo_type),
                ),
            )  # fmt: skip
            crawl_id = int(cursor.lastrowid or 0)
        crawl = self.crawl(crawl_id)
        assert crawl is not None
        return crawl

    def start_run(self, crawl_id: int, pid: int) -> CrawlRow:
        """Record that a run of this crawl starts (its finish is not known until `finish_run`)."""
        with self.transaction():
            self.db.execute(
                "UPDATE crawls SET runs = runs + 1, run_pid = ?, run_started_at = ?, finished_at = NULL, "
                "finish_reason = NULL WHERE crawl_id = ?",
                (pid, utc_now(), crawl_id),
            )
        crawl = self.crawl(crawl_id)
        assert crawl is not None
        return crawl

    def finish_run(self, crawl_id: int, reason: str) -> None:
        """Record how an incomplete run ended; the crawl and its cursor stay for the next run."""
        with self.transaction():
            self.db.execute(
                "UPDATE crawls SET finished_at = ?, finish_reason = ? WHERE crawl_id = ?", (utc_now(), reason, crawl_id)
            )

    def complete_crawl(self, crawl_id: int, reason: str, watermark_margin: float) -> CrawlRow:
        """Mark a crawl complete, clear its cursor and compute its watermark.

        The watermark is a time before which every change is in the state: `newest_seen` minus the crawl's
        wall-clock duration and *watermark_margin* seconds (an entity changed while the crawl ran was
        modified after it started, which is after `newest_seen - duration`), but never less than the newest
        `lastModified` known before the crawl started (`clock_floor`), which the Hub's clock had passed then.
        """
        crawl = self.crawl(crawl_id)
        if crawl is None:
            raise StateError(f"no crawl #{crawl_id} in {self.path}")
        finished = utc_now()
        watermark = crawl.clock_floor
        newest = crawl.newest_seen
        if newest is not None:
            started, ended = parse_time(crawl.started_at), parse_time(finished)
            newest_time = parse_time(newest)
            assert started is not None and ended is not None and newest_time is not None
            slack = (ended - started).total_seconds() + watermark_margin
            candidate = format_hub_datetime(datetime.fromtimestamp(newest_time.timestamp() - slack, UTC))
            watermark = max(watermark, candidate) if watermark is not None else candidate
        with self.transaction():
            self.db.execute(
                "UPDATE crawls SET finished_at = ?, finish_reason = ?, complete = 1, watermark = ? WHERE crawl_id = ?",
                (finished, reason, watermark, crawl.crawl_id),
            )
            self.db.execute("DELETE FROM cursors WHERE listing_key = ?", (crawl.listing_key,))
        done = self.crawl(crawl.crawl_id)
        assert done is not None
        return done

    def crawls(self) -> list[CrawlRow]:
        return [CrawlRow.from_row(r) for r in self.db.execute("SELECT * FROM crawls ORDER BY crawl_id")]

    # -- cursors --------------------------------------------------------------------------------------------

    def cursor(self, listing_key: str) -> CursorRow | None:
        row = self.db.execute("SELECT * FROM cursors WHERE listing_key = ?", (listing_key,)).fetchone()
        return CursorRow.from_row(row) if row else None

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Save a listing's progress, and what was seen on its pages, in one transaction."""
        c = checkpoint
        with self.transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO cursors (listing_key, crawl_id, chain_id, next_url, page_seq, items_seen, "
                "done, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.listing_key, c.crawl_id, c.chain_id, c.next_url, c.page_seq, c.items_seen,
                    int(c.next_url is None), utc_now(),
                ),
            )  # fmt: skip
            if c.newest_seen is not None:
                self.db.execute(
                    "UPDATE crawls SET newest_seen = ? WHERE crawl_id = ? AND (newest_seen IS NULL OR newest_seen < ?)",
                    (c.newest_seen, c.crawl_id, c.newest_seen),
                )
            if c.seen:
                self.db.executemany(
                    "UPDATE entities SET seen_crawl_id = ? WHERE repo_type = ? AND id = ?",
                    [(c.crawl_id, repo_type, repo_id) for repo_type, repo_id in c.seen],
                )
            if c.request_keys:
                now = utc_now()
                self.db.executemany(
                    "INSERT OR REPLACE INTO request_keys (spider, key, stored_at) VALUES (?, ?, ?)",
                    [(spider, key, now) for spider, key in c.request_keys],
                )

    def save_seen(self, crawl_id: int, seen: Iterable[tuple[str, str]], keys: Iterable[tuple[str, str]]) -> None:
        """Record entities seen (skipped as unchanged) and stored deltafetch keys, without a checkpoint."""
        with self.transaction():
            self.db.executemany(
                "UPDATE entities SET seen_crawl_id = ? WHERE repo_type = ? AND id = ?",
                [(crawl_id, repo_type, repo_id) for repo_type, repo_id in seen],
            )
            now = utc_now()
            self.db.executemany(
                "INSERT OR REPLACE INTO request_keys (spider, key, stored_at) VALUES (?, ?, ?)",
                [(spider, key, now) for spider, key in keys],
            )

    # -- entities -------------------------------------------------------------------------------------------

    def entities(self, repo_type: str, ids: Iterable[str]) -> dict[str, EntityState]:
        """The recorded state of these entities (absent ones are left out)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, EntityState] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT * FROM entities WHERE repo_type = ? AND id IN ({marks})", (repo_type, *chunk)
            ):
                state = EntityState.from_row(row)
                found[state.id] = state
        return found

    def record_entities(self, crawl_id: int, records: Iterable[EntityRecord]) -> list[tuple[str, str]]:
        """Record entities stored by this crawl (one transaction); returns `(repo_type, id)` of those that
        had a tombstone, which is now cleared."""
        records = list(records)
        restored: list[tuple[str, str]] = []
        with self.transaction():
            by_type: dict[str, list[str]] = {}
            for r in records:
                by_type.setdefault(r.repo_type, []).append(r.id)
            for repo_type, ids in by_type.items():
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    restored += [
                        (repo_type, row[0])
                        for row in self.db.execute(
                            "SELECT id FROM entities WHERE repo_type = ? AND deleted_at IS NOT NULL "
                            f"AND id IN ({marks})",
                            (repo_type, *chunk),
                        )
                    ]
            self.db.executemany(
                "INSERT INTO entities (repo_type, id, sha, last_modified, shape, stages, first_crawl_id, "
                "stored_crawl_id, seen_crawl_id, deleted_at, seal) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) "
                "ON CONFLICT (repo_type, id) DO UPDATE SET sha = excluded.sha, last_modified = excluded.last_modified, "
                "shape = excluded.shape, stages = excluded.stages, stored_crawl_id = excluded.stored_crawl_id, "
                "seen_crawl_id = excluded.seen_crawl_id, deleted_at = NULL, seal = excluded.seal",
                [
                    (
                        r.repo_type, r.id, r.sha, r.last_modified, r.shape, json.dumps(sorted(set(r.stages))),
                        crawl_id, crawl_id, crawl_id, r.seal,
                    )
                    for r in records
                ],
            )  # fmt: skip
        return restored

    def respell(self, repo_type: str, ids: Iterable[str], crawl_id: int, output_dir: Path) -> list[tuple[str, str]]:
        """Give entities the Hub now spells in another case their new spelling; `[(old id, new id)]`.

        Hub ids are case-insensitive and the Hub may change an id's case (an owner renamed `Org` to `org`): the
        listing then gives the new spelling of an entity the state holds under the old one. One entity, one row
        and one folder: for each of *ids* (a listing page's) with no row of its own but a row under another case
        that this crawl has neither seen nor stored (a case twin listed in the same crawl is another repo, which
        only a hostile server serves), the old row takes the new id in every table keyed by the entity, its
        folder is renamed, and its stages are forgotten so the pipelines run for it again (its `metadata.json`
        must carry the new id) without downloading the files that are still there.
        """
        wanted = list(dict.fromkeys(ids))
        moves: list[tuple[str, str]] = []
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            spellings: dict[str, list[tuple[str, Any, Any]]] = {}
            for row in self.db.execute(
                # INDEXED BY: without it SQLite prefers the primary key (repo_type only): a scan of the type.
                f"SELECT id, seen_crawl_id, stored_crawl_id FROM entities INDEXED BY entities_nocase "
                f"WHERE repo_type = ? AND id COLLATE NOCASE IN ({marks})",
                (repo_type, *chunk),
            ):
                spellings.setdefault(_fold(row[0]), []).append(tuple(row))
            on_page = collections.Counter(_fold(repo_id) for repo_id in chunk)
            for repo_id in chunk:
                rows = spellings.get(_fold(repo_id), [])
                if len(rows) != 1 or rows[0][0] == repo_id or crawl_id in rows[0][1:] or on_page[_fold(repo_id)] > 1:
                    continue  # its own row, none, twins (held, or on this page), or seen by this crawl already
                moves.append((rows[0][0], repo_id))
        if not moves:
            return moves
        with self.transaction():
            for old, new in moves:
                self.db.execute(
                    "UPDATE entities SET id = ?, stages = '[]', stored_crawl_id = NULL, seal = NULL "
                    "WHERE repo_type = ? AND id = ?",
                    (new, repo_type, old),
                )
                for table in ("cids", "pins", "files", "provenance_nodes"):
                    self.db.execute(f"UPDATE {table} SET id = ? WHERE repo_type = ? AND id = ?", (new, repo_type, old))
                self.db.execute(
                    "UPDATE provenance_edges SET origin_id = ?, src_id = CASE WHEN src_id = ? THEN ? ELSE src_id END "
                    "WHERE origin_type = ? AND origin_id = ?",
                    (new, old, new, repo_type, old),
                )
        for old, new in moves:
            _rename_folder(output_dir, repo_type, old, new)
        return moves

    def mark_stage(self, repo_type: str, repo_id: str, stage: str) -> None:
        """Add a completed stage to an entity's current version (for pipeline stages that finish later)."""
        with self.transaction():
            row = self.db.execute(
                "SELECT stages FROM entities WHERE repo_type = ? AND id = ?", (repo_type, repo_id)
            ).fetchone()
            if row is not None:
                stages = sorted(set(json.loads(row[0] or "[]")) | {stage})
                self.db.execute(
                    "UPDATE entities SET stages = ? WHERE repo_type = ? AND id = ?",
                    (json.dumps(stages), repo_type, repo_id),
                )

    def invalidate_entities(self, repo_type: str, ids: Iterable[str]) -> int:
        """Forget that these entities are stored: no stage complete, stored by no crawl. The next crawl that lists
        them processes them again (a stage failed, or their folder failed a check); returns how many changed."""
        ids = list(dict.fromkeys(ids))
        changed = 0
        with self.transaction():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                changed += self.db.execute(
                    f"UPDATE entities SET stages = '[]', stored_crawl_id = NULL, seal = NULL WHERE repo_type = ? "
                    f"AND (stages != '[]' OR stored_crawl_id IS NOT NULL) AND id IN ({marks})",
                    (repo_type, *chunk),
                ).rowcount
        return changed

    def complete_entities(self, repo_type: str, crawl_id: int | None = None) -> Iterator[tuple[str, str | None]]:
        """`(id, seal)` of the live entities of this type with completed stages (only those this crawl saw, given
        *crawl_id*)."""
        query = "SELECT id, seal FROM entities WHERE repo_type = ? AND deleted_at IS NULL AND stages != '[]'"
        args: tuple[Any, ...] = (repo_type,)
        if crawl_id is not None:
            query += " AND seen_crawl_id = ?"
            args += (crawl_id,)
        yield from self.db.execute(query, args)

    def complete_ids(self, repo_type: str) -> Iterator[str]:
        """Ids of the live entities of this type with completed stages, streamed."""
        query = "SELECT id FROM entities WHERE repo_type = ? AND deleted_at IS NULL AND stages != '[]'"
        for (repo_id,) in self.db.execute(query, (repo_type,)):
            yield repo_id

    def reset_stages(self, repo_type: str, spider: str) -> int:
        """Forget every completed stage of this type and the spider's request keys (DELTAFETCH_RESET)."""
        with self.transaction():
            count = self.db.execute(
                "UPDATE entities SET stages = '[]' WHERE repo_type = ? AND stages != '[]'", (repo_type,)
            ).rowcount
            self.db.execute("DELETE FROM request_keys WHERE spider = ?", (spider,))
        return count

    def unseen_live(self, repo_type: str, crawl_id: int) -> list[str]:
        """Ids of live entities of this type that the crawl did not see (what a complete sweep tombstones)."""
        return [
            row[0]
            for row in self.db.execute(
                "SELECT id FROM entities WHERE repo_type = ? AND deleted_at IS NULL "
                "AND (seen_crawl_id IS NULL OR seen_crawl_id != ?)",
                (repo_type, crawl_id),
            )
        ]

    def tombstone(self, repo_type: str, crawl_id: int, ids: Iterable[str], when: str) -> int:
        """Mark entities deleted at *when* (only those still live and unseen by the crawl)."""
        ids = list(ids)
        with self.transaction():
            changed = 0
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                changed += self.db.execute(
                    f"UPDATE entities SET deleted_at = ? WHERE repo_type = ? AND deleted_at IS NULL "
                    f"AND (seen_crawl_id IS NULL OR seen_crawl_id != ?) AND id IN ({marks})",
                    (when, repo_type, crawl_id, *chunk),
                ).rowcount
            self.db.execute("UPDATE crawls SET tombstoned = tombstoned + ? WHERE crawl_id = ?", (changed, crawl_id))
        return changed

    def entity_counts(self) -> dict[str, dict[str, int]]:
        """Per type: entities `live` and `deleted`."""
        counts: dict[str, dict[str, int]] = {}
        for row in self.db.execute(
            "SELECT repo_type, count(*), sum(deleted_at IS NOT NULL) FROM entities GROUP BY repo_type"
        ):
            deleted = int(row[2] or 0)
            counts[row[0]] = {"live": int(row[1]) - deleted, "deleted": deleted}
        return counts

    def crawl_entity_counts(self) -> dict[int, dict[str, int]]:
        """Per crawl id: the entities it last `stored`, and those it last saw without storing them (`skipped`:
        unchanged, or already complete). An entity counts for the crawl that stored or saw it last, so an older
        crawl of an overlapping listing loses the entities a newer one saw again."""
        counts: dict[int, dict[str, int]] = {}
        for crawl_id, stored, skipped in self.db.execute(
            "SELECT crawl_id, sum(stored), sum(skipped) FROM ("
            "SELECT stored_crawl_id AS crawl_id, 1 AS stored, 0 AS skipped FROM entities "
            "WHERE stored_crawl_id IS NOT NULL AND seen_crawl_id = stored_crawl_id "
            "UNION ALL SELECT seen_crawl_id, 0, 1 FROM entities "
            "WHERE seen_crawl_id IS NOT NULL AND (stored_crawl_id IS NULL OR seen_crawl_id != stored_crawl_id)"
            ") GROUP BY crawl_id"
        ):
            counts[int(crawl_id)] = {"stored": int(stored or 0), "skipped": int(skipped or 0)}
        return counts

    # -- rate-limit budgets ---------------------------------------------------------------------------------

    def record_ratelimits(self, budgets: Iterable[RateLimitRow]) -> None:
        """Record (or replace) the last budget seen per host and bucket (one transaction)."""
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO ratelimits (host, bucket, remaining, reset_seconds, quota, window, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(b.host, b.bucket, b.remaining, b.reset_seconds, b.quota, b.window, b.seen_at) for b in budgets],
            )

    def ratelimits(self) -> list[RateLimitRow]:
        return [RateLimitRow(**dict(row)) for row in self.db.execute("SELECT * FROM ratelimits ORDER BY host, bucket")]

    # -- request keys (deltafetch) --------------------------------------------------------------------------

    def known_request_keys(self, spider: str, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self.db.execute(
                    f"SELECT key FROM request_keys WHERE spider = ? AND key IN ({marks})", (spider, *chunk)
                )
            )
        return found


# ---------------------------------------------------------------------------------------------------------
# One store per file and process, on one worker thread
# ---------------------------------------------------------------------------------------------------------


class SharedStateStore:
    """A `StateStore` used by every crawler of this process that writes to the same state file.

    Calls run one at a time, in submission order, on one worker thread: `await shared.call(fn, *args)` runs
    `fn(store, *args)` there. `acquire()` opens (or reuses) the store of a path; every `acquire` is paired
    with one `release()`, and the last release closes the database.
    """

    _lock = threading.Lock()
    _open: dict[str, SharedStateStore] = {}  # noqa: RUF012 - process-wide registry

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self._users = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="hfscraper-state")
        try:
            self.store: StateStore = self._executor.submit(StateStore, path, fsync=fsync).result()
        except BaseException:
            self._executor.shutdown(wait=False)
            raise

    @classmethod
    def acquire(cls, path: str | os.PathLike[str], *, fsync: bool = False) -> SharedStateStore:
        key = os.path.realpath(path)
        with cls._lock:
            shared = cls._open.get(key)
            if shared is None:
                shared = cls._open[key] = cls(Path(key), fsync)
            shared._users += 1
            return shared

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0:
                return
            self._open.pop(str(self.path), None)
        self._executor.submit(self.store.close).result()
        self._executor.shutdown(wait=True)

    def submit(self, fn: Callable[..., _T], *args: Any) -> concurrent.futures.Future[_T]:
        return self._executor.submit(fn, self.store, *args)

    def call_blocking(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run `fn(store, *args)` on the store's thread and wait for it (outside the event loop only)."""
        return self.submit(fn, *args).result()

    async def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run `fn(store, *args)` on the store's thread without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))


# ---------------------------------------------------------------------------------------------------------
# Which pages are completely stored
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Page:
    pending: int = 0
    registered: bool = False
    failed: bool = False
    next_url: str | None = None
    items_seen: int = 0


@dataclass
class PageTracker:
    """The pages of one cursor chain, and the longest run of completely stored pages from its start.

    A chain's pages are parsed in order (each page's request comes from the one before), but their items
    finish in any order. `register` is called when a page is parsed, with the number of items it will
    produce; `item_done` or `item_failed` once per item. `advance()` returns the last page of the
    longest prefix whose pages are all registered and done, once per new such page; a failed item blocks
    its page (and so every later one) for the rest of the run.
    """

    first_seq: int = 0
    _pages: dict[int, _Page] = field(default_factory=dict)
    _next: int | None = None  # the first page not yet part of the completed prefix
    _ended: bool = False

    def __post_init__(self) -> None:
        self._next = self.first_seq

    @property
    def ended(self) -> bool:
        """True once the prefix reached a page without a next page: the whole chain is stored."""
        return self._ended

    @property
    def blocked(self) -> bool:
        """True when a failed item holds the prefix back."""
        page = self._pages.get(self._next) if self._next is not None else None
        return page is not None and page.failed

    def register(self, seq: int, n_items: int, next_url: str | None, items_seen: int) -> None:
        page = self._pages.setdefault(seq, _Page())
        page.pending += n_items
        page.registered = True
        page.next_url = next_url
        page.items_seen = items_seen

    def item_done(self, seq: int) -> None:
        if self._next is not None and seq < self._next:
            return  # a page already checkpointed (cannot happen unless an item is reported twice)
        self._pages.setdefault(seq, _Page()).pending -= 1

    def item_failed(self, seq: int) -> None:
        if self._next is not None and seq < self._next:
            return
        page = self._pages.setdefault(seq, _Page())
        page.pending -= 1
        page.failed = True

    def advance(self) -> tuple[int, _Page] | None:
        """The last page of the completed prefix, if the prefix grew since the last call."""
        last: tuple[int, _Page] | None = None
        while self._next is not None:
            page = self._pages.get(self._next)
            if page is None or not page.registered or page.failed or page.pending > 0:
                break
            del self._pages[self._next]
            last = (self._next, page)
            if page.next_url is None:
                self._ended = True
                self._next = None
            else:
                self._next += 1
        return last

    @property
    def pages_in_flight(self) -> int:
        return len(self._pages)
