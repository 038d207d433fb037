"""The unified export: the entity tree(s) and crawl state merged into four Parquet files and their data card.

`export(sources, export_dir, ...)` writes, under *export_dir*:

- `all_entities_metadata.parquet` (schema `ALL_SCHEMA`, a `type` column), `all_models_metadata.parquet`,
  `all_datasets_metadata.parquet`, `all_spaces_metadata.parquet` (the per-type schemas);
- `car/<file stem>.car`: a CARv1 of each Parquet file, root = the file's CID (the IPFS profile's);
- `README.md`: the data card (YAML front matter with `configs:` for `datasets.load_dataset`, counts, the crawl's time
  range, the schema table, each file's CID and CAR).

Merge rule: one row per `(type, id)` across what the export folder already holds and what the sources hold now; the
row with the newest `last_modified` wins, then the newest `crawled_at`, then the new one. Entities a full sweep
tombstoned are kept with `deleted = true` (or dropped, `drop_deleted`). Entities only the old files hold stay.

Bounded memory: the rows of the sources are streamed into a temporary Parquet file in row groups; only the key
columns (`type`, `id`, `last_modified`, `crawled_at`, `deleted`) of old and new are held to pick the winners
(pyarrow compute), then both files are streamed again, batch by batch, into the four outputs in one pass.

Crash safety: every output is written to a temporary file in the export folder (`.hfscraper-tmp-<pid>-...`),
fsynced, then renamed over the old one (and the folder fsynced); a SIGKILL at any moment leaves each file either
the old complete one or the new complete one. Temporary files of dead processes are removed by the next run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.exporters.schema import ALL_SCHEMA, SCHEMAS, TYPES, RowBuilder, describe
from hfscraper.fsutil import TEMP_PREFIX, ensure_directory, fsync_directory, process_alive, write_atomic
from hfscraper.hub import HostileIdError
from hfscraper.ipfs import DEFAULT_PROFILE, file_cid, write_car
from hfscraper.state import entity_folder

logger = logging.getLogger(__name__)

#: The output files, by `type` (`all` = every entity).
FILES: Final[dict[str, str]] = {
    "all": "all_entities_metadata.parquet",
    "model": "all_models_metadata.parquet",
    "dataset": "all_datasets_metadata.parquet",
    "space": "all_spaces_metadata.parquet",
}
CONFIG_NAMES: Final = {"all": "all_entities", "model": "models", "dataset": "datasets", "space": "spaces"}
CARD: Final = "README.md"
CAR_FOLDER: Final = "car"
DEFAULT_BATCH_SIZE: Final = 10_000
_KEYS: Final = ["type", "id", "last_modified", "crawled_at", "deleted"]


@dataclass(frozen=True)
class Source:
    """One crawl output folder and its state file (which may not exist: the tree alone is then read)."""

    output_dir: Path
    state_file: Path | None = None


@dataclass
class FileInfo:
    name: str
    rows: int
    size: int
    cid: str | None = None
    car: str | None = None


@dataclass
class ExportSummary:
    rows: int = 0
    by_type: dict[str, dict[str, int]] = field(default_factory=dict)
    new_rows: int = 0
    kept_old: int = 0
    crawl_range: tuple[datetime | None, datetime | None] = (None, None)
    modified_range: tuple[datetime | None, datetime | None] = (None, None)
    files: dict[str, FileInfo] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    profile: str = DEFAULT_PROFILE
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------------
# Reading the sources
# ---------------------------------------------------------------------------------------------------------


def _state_rows(state_file: Path) -> Iterator[tuple[str, str, str | None, str | None]]:
    """(repo_type, id, deleted_at, crawl start) of every entity of a state file, streamed."""
    db = sqlite3.connect(f"file:{state_file}?mode=ro", uri=True)
    try:
        yield from db.execute(
            "SELECT e.repo_type, e.id, e.deleted_at, c.started_at FROM entities e "
            "LEFT JOIN crawls c ON c.crawl_id = e.stored_crawl_id ORDER BY e.repo_type, e.id"
        )
    finally:
        db.close()


def _files_of(db: sqlite3.Connection | None, repo_type: str, repo_id: str) -> list[dict[str, Any]] | None:
    if db is None:
        return None
    try:
        rows = db.execute("SELECT path, size, sha256 FROM files WHERE repo_type = ? AND id = ?", (repo_type, repo_id))
        return [{"path": p, "size": s, "sha256": h} for p, s, h in rows]
    except sqlite3.Error:
        return None


def _tree_rows(output_dir: Path) -> Iterator[tuple[str, str | None, Path]]:
    """(repo_type, None, folder) of every entity folder of a tree without a state file."""
    for repo_type in TYPES:
        root = output_dir / OUTPUT_FOLDERS[repo_type]
        if not root.is_dir():
            continue
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    yield repo_type, None, Path(entry.path)


def _read_json(path: Path, counts: Counter[str], what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        counts[f"skipped/{what}_missing"] += 1
    except (OSError, ValueError):
        counts[f"skipped/{what}_unreadable"] += 1
    return None


def source_rows(source: Source, builder: RowBuilder) -> Iterator[dict[str, Any]]:
    """Rows of `ALL_SCHEMA` for every entity of one source (state-driven when its state file exists)."""
    counts = builder.counts
    if source.state_file is not None and source.state_file.is_file():
        files_db = sqlite3.connect(f"file:{source.state_file}?mode=ro", uri=True)
        try:
            for repo_type, repo_id, deleted_at, crawled_at in _state_rows(source.state_file):
                if repo_type not in TYPES:
                    counts["skipped/unknown_type"] += 1
                    continue
                try:
                    folder = entity_folder(source.output_dir, repo_type, repo_id)
                except HostileIdError:
                    folder = None
                if folder is None:
                    counts["skipped/hostile_id"] += 1
                    continue
                payload = _read_json(folder / "metadata.json", counts, "metadata")
                row = _row(builder, repo_type, payload, _files_of(files_db, repo_type, repo_id), deleted_at,
                           crawled_at)  # fmt: skip
                if row is not None:
                    yield row
        finally:
            files_db.close()
        return
    for repo_type, _, folder in _tree_rows(source.output_dir):
        meta = folder / "metadata.json"
        payload = _read_json(meta, counts, "metadata")
        tomb = folder / "tombstone.json"
        deleted_at = None
        if tomb.exists():
            data = _read_json(tomb, counts, "tombstone")
            deleted_at = data.get("deletedAt") if isinstance(data, dict) else None
            deleted_at = deleted_at or datetime.fromtimestamp(tomb.stat().st_mtime, UTC)
        crawled = datetime.fromtimestamp(meta.stat().st_mtime, UTC) if payload is not None else None
        row = _row(builder, repo_type, payload, None, deleted_at, crawled)
        if row is not None:
            yield row


def _row(
    builder: RowBuilder, repo_type: str, payload: Any, files: Any, deleted_at: Any, crawled_at: Any
) -> dict[str, Any] | None:
    if not isinstance(payload, dict):
        if payload is not None:
            builder.counts["skipped/metadata_not_an_object"] += 1
        return None
    try:
        return builder.row(repo_type, payload, files=files, deleted_at=deleted_at, crawled_at=crawled_at)
    except ValueError:
        builder.counts["skipped/no_id"] += 1
        return None


# ---------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------


def sweep_temp_files(folder: Path) -> int:
    """Remove temporary files that killed exports left in *folder* (and its CAR folder); how many."""
    removed = 0
    for path in [*folder.glob(f"{TEMP_PREFIX}*"), *(folder / CAR_FOLDER).glob(f"{TEMP_PREFIX}*")]:
        digits = path.name.removeprefix(TEMP_PREFIX).split("-", 1)[0]
        if digits.isdigit() and int(digits) != os.getpid() and not process_alive(int(digits)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


class _TempParquet:
    """A Parquet file written to a temporary name beside its target; `commit()` fsyncs and renames it over."""

    def __init__(self, target: Path, schema: pa.Schema) -> None:
        self.target = target
        self.tmp = target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{target.name}.part")
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish()/abort()
        self.writer = pq.ParquetWriter(self.file, schema, compression="zstd")
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.writer.write_batch(batch)
            self.rows += batch.num_rows

    def finish(self) -> None:
        """Close and fsync the temporary file (not yet renamed)."""
        self.writer.close()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def commit(self) -> None:
        os.replace(self.tmp, self.target)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """*batch* with exactly *schema*'s columns (missing ones null, `deleted` false; types cast)."""
    arrays = []
    for f in schema:
        idx = batch.schema.get_field_index(f.name)
        if idx < 0:
            n = batch.num_rows
            arrays.append(pa.array([False] * n) if f.name == "deleted" else pa.nulls(n, f.type))
            continue
        column = batch.column(idx)
        if not column.type.equals(f.type):
            column = column.cast(f.type)
        if not f.nullable and column.null_count:
            column = pc.fill_null(column, False if f.name == "deleted" else "")
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _old_file(path: Path, counts: Counter[str]) -> pq.ParquetFile | None:
    if not path.is_file():
        return None
    try:
        pf = pq.ParquetFile(path)
        missing = set(_KEYS[:2]) - set(pf.schema_arrow.names)
        if missing:
            raise ValueError(f"no column {', '.join(sorted(missing))}")
        return pf
    except (OSError, ValueError, pa.ArrowException) as exc:
        counts["old_file_unreadable"] += 1
        logger.warning("Ignoring the previous export %(path)s: %(error)s", {"path": path, "error": exc})
        return None


def _keys(pf: pq.ParquetFile, src: int) -> pa.Table:
    names = pf.schema_arrow.names
    cols = [n for n in _KEYS if n in names]
    table = pf.read(columns=cols)
    n = table.num_rows
    out = {}
    for name in _KEYS:
        f = ALL_SCHEMA.field(name)
        if name in cols:
            column = table.column(name)
            out[name] = column.cast(f.type) if not column.type.equals(f.type) else column
        else:
            out[name] = pa.array([False] * n) if name == "deleted" else pa.nulls(n, f.type)
    out["src"] = pa.array([src] * n, pa.int8())
    out["pos"] = pa.array(range(n), pa.int64())
    return pa.table(out)


def _winners(keys: pa.Table) -> pa.Table:
    """The key rows that win the merge: per (type, id) the newest last_modified, then crawled_at, then src."""
    if keys.num_rows == 0:
        return keys
    order = pc.sort_indices(
        keys,
        sort_keys=[("type", "ascending", "at_end"), ("id", "ascending", "at_end"),
                   ("last_modified", "descending", "at_end"), ("crawled_at", "descending", "at_end"),
                   ("src", "descending", "at_end")],
    )  # fmt: skip
    ordered = keys.take(order)
    types, ids = ordered.column("type").combine_chunks(), ordered.column("id").combine_chunks()
    same = pc.and_(pc.equal(types[1:], types[:-1]), pc.equal(ids[1:], ids[:-1]))
    first = pa.concat_arrays([pa.array([True]), pc.invert(same)])
    return ordered.filter(first)


def _masks(winners: pa.Table, src: int, n: int) -> pa.ChunkedArray | pa.Array:
    positions = winners.filter(pc.equal(winners.column("src"), src)).column("pos")
    return pc.is_in(pa.array(range(n), pa.int64()), value_set=positions.combine_chunks())


def export(
    sources: Sequence[Source],
    export_dir: Path,
    *,
    drop_deleted: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    profile: str = DEFAULT_PROFILE,
    car: bool = True,
) -> ExportSummary:
    """Merge *sources* into the export folder (see the module docstring). Raises OSError when a file cannot be
    written, sqlite3.Error when a state file cannot be read."""
    started = time.monotonic()
    summary = ExportSummary(profile=profile)
    builder = RowBuilder()
    export_dir = Path(export_dir)
    ensure_directory(export_dir)
    sweep_temp_files(export_dir)
    new_tmp = _TempParquet(export_dir / ".new-rows.parquet", ALL_SCHEMA)
    outputs: dict[str, _TempParquet] = {}
    try:
        # 1. the sources' rows, streamed into a temporary file
        rows: list[dict[str, Any]] = []
        for source in sources:
            for row in source_rows(source, builder):
                rows.append(row)
                if len(rows) >= batch_size:
                    new_tmp.write(pa.RecordBatch.from_pylist(rows, schema=ALL_SCHEMA))
                    rows = []
        if rows:
            new_tmp.write(pa.RecordBatch.from_pylist(rows, schema=ALL_SCHEMA))
        rows = []
        new_tmp.finish()
        summary.new_rows = new_tmp.rows
        new_pf = pq.ParquetFile(new_tmp.tmp)
        old_pf = _old_file(export_dir / FILES["all"], builder.counts)
        # 2. the winners, from the key columns only
        key_tables = [_keys(new_pf, 1)] + ([_keys(old_pf, 0)] if old_pf is not None else [])
        winners = _winners(pa.concat_tables(key_tables))
        if drop_deleted:
            winners = winners.filter(pc.invert(winners.column("deleted")))
        # 3. one streaming pass over both into the four files
        outputs = {kind: _TempParquet(export_dir / name, SCHEMAS[kind]) for kind, name in FILES.items()}
        for src, pf in ((0, old_pf), (1, new_pf)):
            if pf is None:
                continue
            mask = _masks(winners, src, pf.metadata.num_rows)
            offset = 0
            for raw in pf.iter_batches(batch_size=batch_size):
                batch = conform(raw, ALL_SCHEMA)
                keep = mask.slice(offset, batch.num_rows)
                offset += batch.num_rows
                batch = batch.filter(keep)
                if not batch.num_rows:
                    continue
                if src == 0:
                    summary.kept_old += batch.num_rows
                outputs["all"].write(batch)
                for kind in TYPES:
                    part = batch.filter(pc.equal(batch.column("type"), kind))
                    if part.num_rows:
                        schema = SCHEMAS[kind]
                        outputs[kind].write(pa.RecordBatch.from_arrays(
                            [part.column(f.name) for f in schema], schema=schema))  # fmt: skip
        for out in outputs.values():
            out.finish()
        # 4. the renames (each file is old or new, never partial), then the folder
        for out in outputs.values():
            out.commit()
        fsync_directory(export_dir)
    except BaseException:
        for out in [new_tmp, *outputs.values()]:
            out.abort()
        raise
    new_tmp.abort()  # the temporary new rows are no longer needed
    _summarise(summary, winners)
    summary.counts = builder.counts
    # 5. content addresses and the data card
    for kind, name in FILES.items():
        path = export_dir / name
        info = FileInfo(name=name, rows=outputs[kind].rows, size=path.stat().st_size)
        if car:
            car_path = export_dir / CAR_FOLDER / (path.stem + ".car")
            ensure_directory(car_path.parent)
            info.cid = write_car(path, car_path, profile, fsync=True)
            info.car = f"{CAR_FOLDER}/{car_path.name}"
        else:
            info.cid = file_cid(path, profile)
        summary.files[kind] = info
    summary.seconds = time.monotonic() - started
    write_atomic(export_dir / CARD, data_card(summary).encode("utf-8"), fsync=True)
    return summary


def _summarise(summary: ExportSummary, winners: pa.Table) -> None:
    summary.rows = winners.num_rows
    for kind in TYPES:
        of_type = winners.filter(pc.equal(winners.column("type"), kind))
        deleted = pc.sum(of_type.column("deleted")).as_py() or 0
        summary.by_type[kind] = {"rows": of_type.num_rows, "deleted": deleted, "live": of_type.num_rows - deleted}
    for name, attr in (("crawled_at", "crawl_range"), ("last_modified", "modified_range")):
        bounds = pc.min_max(winners.column(name)).as_py() if winners.num_rows else {"min": None, "max": None}
        setattr(summary, attr, (bounds["min"], bounds["max"]))


# ---------------------------------------------------------------------------------------------------------
# The data card
# ---------------------------------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "n/a"


def data_card(summary: ExportSummary) -> str:
    """The README.md of the export folder (YAML front matter for the Hub, then the card)."""
    lines = ["---", "pretty_name: Hugging Face Hub metadata (hfscraper)", "license: other",
             "tags:", "- huggingface-hub", "- metadata", "configs:"]  # fmt: skip
    for kind, name in FILES.items():
        lines += [f"- config_name: {CONFIG_NAMES[kind]}", "  data_files:", "  - split: train", f"    path: {name}"]
        if kind == "all":
            lines.append("  default: true")
    lines += ["---", "", "# Hugging Face Hub metadata", ""]
    lines += [
        "The public metadata of the Hugging Face Hub's models, datasets and spaces as the Hub's API returns it, "
        "one row per repository, written by hfscraper's `scrapy export`. Each row is the newest "
        "version crawled (by `last_modified`, then `crawled_at`); repositories that a full crawl no longer found "
        "have `deleted = true`. `card_data` is the repository's card header as JSON text: untrusted content, "
        "never evaluate it.",
        "",
        "## Counts",
        "",
        "| type | rows | live | deleted |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind in TYPES:
        c = summary.by_type.get(kind, {"rows": 0, "live": 0, "deleted": 0})
        lines.append(f"| {kind} | {c['rows']} | {c['live']} | {c['deleted']} |")
    lines += [
        "",
        f"Crawl time range (`crawled_at`): {_when(summary.crawl_range[0])} to {_when(summary.crawl_range[1])}.  ",
        f"Last modified range: {_when(summary.modified_range[0])} to {_when(summary.modified_range[1])}.",
        "",
        "## Files",
        "",
        f"CIDs are those `ipfs add` gives each file with the `{summary.profile}` profile; each CAR holds the file's "
        "DAG with that CID as its root (`ipfs dag import`).",
        "",
        "| config | file | rows | bytes | CID | CAR |",
        "| --- | --- | ---: | ---: | --- | --- |",
    ]
    for kind, info in summary.files.items():
        lines.append(f"| {CONFIG_NAMES[kind]} | `{info.name}` | {info.rows} | {info.size} | `{info.cid}` | "
                     f"{f'`{info.car}`' if info.car else '-'} |")  # fmt: skip
    lines += [
        "",
        "## Schema",
        "",
        "Declared, never inferred (`hfscraper/exporters/schema.py`). Timestamps are UTC milliseconds. The "
        "per-type files have the columns marked for their type, in this order; `all_entities_metadata.parquet` has "
        "them all.",
        "",
        "| column | type | model | dataset | space | description |",
        "| --- | --- | :-: | :-: | :-: | --- |",
    ]
    for f in ALL_SCHEMA:
        marks = " | ".join("✓" if f.name in SCHEMAS[t].names else "" for t in TYPES)
        nullable = "" if f.nullable else ", not null"
        lines.append(f"| `{f.name}` | `{f.type}`{nullable} | {marks} | {describe(f.name)} |")
    lines += [
        "",
        "## Querying",
        "",
        "```sql",
        "-- DuckDB",
        "SELECT pipeline_tag, count(*) FROM 'all_models_metadata.parquet' WHERE NOT deleted GROUP BY 1 ORDER BY 2;",
        "SELECT id FROM 'all_models_metadata.parquet' WHERE list_contains(tags, 'gguf');",
        "```",
        "",
    ]
    return "\n".join(lines)
