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

Order and bounded memory: every file is sorted by (`type`, `id`) (`SORTED_BY`, declared in each row group's
metadata). Each source yields its rows in that order (a state file lists its entities so; a tree without one is
sorted through a temporary SQLite file on disk), and the previous export is read back in it, so the merge is one
streaming pass over all of them at once that holds at most a batch per stream, whatever the number of entities. A
previous export that declares no order (an earlier hfscraper) is read whole and sorted once.

Crash safety, all or nothing: every output (the Parquet files, their CARs, the data card naming their CIDs) is first
written complete to a temporary file beside it (`.hfscraper-tmp-<pid>-...`) and fsynced; then a journal
(`COMMIT_JOURNAL`) names them, and they are renamed over the old ones, the data card last. A SIGKILL before the
journal leaves the previous export untouched; one after it is finished by the next export before anything else, so a
data card never stays beside files it does not describe. Temporary files of dead processes are removed by the next
run.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import pickle
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
from hfscraper.fsutil import TEMP_PREFIX, ensure_directory, fsync_directory, sweep_dead_temp_files, write_atomic
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
#: The order of every output file (declared in its row groups' metadata), and so of the previous export.
SORTED_BY: Final = ("type", "id")
_SRC: Final = "__src"  # which stream a row came from: 0 the previous export, 1.. the sources in order


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
    #: An earlier export was killed while it replaced the files; this one finished its renames first.
    finished_interrupted: bool = False


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


def _read_json(path: Path, counts: Counter[str], what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        counts[f"skipped/{what}_missing"] += 1
    except (OSError, ValueError):
        counts[f"skipped/{what}_unreadable"] += 1
    return None


def source_rows(source: Source, builder: RowBuilder, scratch: Path) -> Iterator[dict[str, Any]]:
    """Rows of `ALL_SCHEMA` for every entity of one source, sorted by (type, id), each key once.

    State-driven when the source's state file exists (the state lists its entities in that order); a tree without a
    state is first indexed into a temporary SQLite file at *scratch* (SQLite sorts on disk: bounded memory)."""
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
                if isinstance(payload, dict) and payload.get("id") != repo_id:
                    # Not the entity the state stored there (the file was replaced): its row would be another's.
                    counts["skipped/id_mismatch"] += 1
                    continue
                row = _row(builder, repo_type, payload, _files_of(files_db, repo_type, repo_id), deleted_at,
                           crawled_at)  # fmt: skip
                if row is not None:
                    yield row
        finally:
            files_db.close()
        return
    yield from _tree_rows_sorted(source.output_dir, builder, scratch)


def _tree_rows_sorted(output_dir: Path, builder: RowBuilder, scratch: Path) -> Iterator[dict[str, Any]]:
    counts = builder.counts
    with contextlib.suppress(FileNotFoundError):
        scratch.unlink()
    db = sqlite3.connect(scratch)
    try:
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("CREATE TABLE rows (type TEXT, id TEXT, row BLOB, PRIMARY KEY (type, id)) WITHOUT ROWID")
        for repo_type, folder in _tree_folders(output_dir):
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
            if row is None:
                continue
            inserted = db.execute("INSERT OR IGNORE INTO rows VALUES (?, ?, ?)",
                                  (repo_type, row["id"], pickle.dumps(row, protocol=5)))  # fmt: skip
            if not inserted.rowcount:
                counts["skipped/duplicate_id"] += 1
        db.commit()
        for (blob,) in db.execute("SELECT row FROM rows ORDER BY type, id"):
            yield pickle.loads(blob)  # noqa: S301 - our own rows, written above by this process
    finally:
        db.close()
        with contextlib.suppress(OSError):
            scratch.unlink()


def _tree_folders(output_dir: Path) -> Iterator[tuple[str, Path]]:
    """(repo_type, folder) of every entity folder of a tree without a state file."""
    for repo_type in TYPES:
        root = output_dir / OUTPUT_FOLDERS[repo_type]
        if not root.is_dir():
            continue
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    yield repo_type, Path(entry.path)


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
    return sweep_dead_temp_files(folder) + sweep_dead_temp_files(folder / CAR_FOLDER)


class _TempParquet:
    """A Parquet file written to a temporary name beside its target; `commit()` fsyncs and renames it over."""

    def __init__(self, target: Path, schema: pa.Schema) -> None:
        self.target = target
        self.tmp = target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{target.name}.part")
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in finish()/abort()
        # Declared in every row group's metadata: the next export trusts (and checks) it to merge in one pass.
        sorting = [pq.SortingColumn(schema.get_field_index(name)) for name in SORTED_BY if name in schema.names]
        self.writer = pq.ParquetWriter(self.file, schema, compression="zstd", sorting_columns=sorting)
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


class UnsortedInputError(ValueError):
    """A stream the merge relies on is not sorted by (type, id) with each key once."""


class _SortedStream:
    """Batches of `ALL_SCHEMA` sorted by (type, id), each key once (checked as they come), consumed by key."""

    def __init__(self, batches: Iterator[pa.RecordBatch], src: int, what: str) -> None:
        self._batches = batches
        self.src = src
        self.what = what
        self.batch: pa.RecordBatch | None = None
        self.keys: list[tuple[str, str]] = []
        self._last: tuple[str, str] | None = None
        self.done = False

    def fill(self) -> None:
        """Read the next batch once the current one is used up."""
        while not self.keys and not self.done:
            batch = next(self._batches, None)
            if batch is None:
                self.done, self.batch = True, None
                return
            keys = list(zip(batch.column("type").to_pylist(), batch.column("id").to_pylist(), strict=True))
            previous = self._last
            for key in keys:
                if previous is not None and not previous < key:
                    raise UnsortedInputError(f"{self.what} is not sorted by (type, id): {key!r} after {previous!r}")
                previous = key
            if keys:
                self._last = previous
                self.batch, self.keys = batch, keys

    def take_through(self, bound: tuple[str, str]) -> pa.RecordBatch | None:
        """The buffered rows with a key up to *bound*, removed from the buffer."""
        n = bisect.bisect_right(self.keys, bound)
        if n == 0 or self.batch is None:
            return None
        head = self.batch.slice(0, n)
        self.batch, self.keys = self.batch.slice(n), self.keys[n:]
        return head.append_column(_SRC, pa.repeat(pa.scalar(self.src, pa.int16()), n))


def _merged(streams: Sequence[_SortedStream]) -> Iterator[pa.Table]:
    """The merge of sorted streams, chunk by chunk, sorted by (type, id): per key the winning row (newest
    last_modified, then crawled_at, then the stream with the highest `src`), with its `src` column.

    Each step takes every buffered row up to the smallest last buffered key: no later batch of any stream can hold a
    key at or below it, so the chunk is final. At most one batch per stream is held."""
    while True:
        for stream in streams:
            stream.fill()
        live = [s for s in streams if s.keys]
        if not live:
            return
        bound = min(s.keys[-1] for s in live)
        parts = [part for s in live if (part := s.take_through(bound)) is not None]
        chunk = pa.Table.from_batches(parts) if len(parts) > 1 else pa.Table.from_batches(parts[:1])
        yield _winners(chunk) if len(parts) > 1 else chunk


def _winners(chunk: pa.Table) -> pa.Table:
    """Per (type, id) of *chunk* the row that wins the merge, sorted by (type, id)."""
    order = pc.sort_indices(
        chunk,
        sort_keys=[("type", "ascending", "at_end"), ("id", "ascending", "at_end"),
                   ("last_modified", "descending", "at_end"), ("crawled_at", "descending", "at_end"),
                   (_SRC, "descending", "at_end")],
    )  # fmt: skip
    ordered = chunk.take(order)
    types, ids = ordered.column("type").combine_chunks(), ordered.column("id").combine_chunks()
    same = pc.and_(pc.equal(types[1:], types[:-1]), pc.equal(ids[1:], ids[:-1]))
    first = pa.concat_arrays([pa.array([True]), pc.invert(same)])
    return ordered.filter(first)


def _old_batches(path: Path, batch_size: int, counts: Counter[str]) -> Iterator[pa.RecordBatch] | None:
    """The previous export's rows, conformed to `ALL_SCHEMA`, sorted by (type, id); None when there is none."""
    if not path.is_file():
        return None
    try:
        pf = pq.ParquetFile(path)
        missing = {"type", "id"} - set(pf.schema_arrow.names)
        if missing:
            raise ValueError(f"no column {', '.join(sorted(missing))}")
        declared = [pq.SortingColumn(i) for i in range(len(SORTED_BY))]
        sorted_ = all(list(pf.metadata.row_group(i).sorting_columns) == declared
                      for i in range(pf.metadata.num_row_groups))  # fmt: skip
    except (OSError, ValueError, pa.ArrowException) as exc:
        counts["old_file_unreadable"] += 1
        logger.warning("Ignoring the previous export %(path)s: %(error)s", {"path": path, "error": exc})
        return None
    if sorted_:
        return (conform(batch, ALL_SCHEMA) for batch in pf.iter_batches(batch_size=batch_size))
    # Written without the order (an earlier hfscraper): read whole and sorted once; the files written now declare it.
    counts["old_file_sorted_in_memory"] += 1
    logger.warning("The previous export %(path)s declares no sort order: reading it whole once", {"path": path})
    table = pa.Table.from_batches([conform(b, ALL_SCHEMA) for b in pf.iter_batches(batch_size=batch_size)],
                                  schema=ALL_SCHEMA)  # fmt: skip
    table = _winners(table.append_column(_SRC, pa.repeat(pa.scalar(0, pa.int16()), table.num_rows))).drop_columns(_SRC)
    return iter(table.to_batches(max_chunksize=batch_size))


def _row_batches(rows: Iterator[dict[str, Any]], batch_size: int) -> Iterator[pa.RecordBatch]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            yield pa.RecordBatch.from_pylist(batch, schema=ALL_SCHEMA)
            batch = []
    if batch:
        yield pa.RecordBatch.from_pylist(batch, schema=ALL_SCHEMA)


class _Tally:
    """Counts and time ranges of the rows written, for the summary and the data card."""

    def __init__(self, summary: ExportSummary) -> None:
        self.summary = summary
        summary.by_type = {kind: {"rows": 0, "deleted": 0, "live": 0} for kind in TYPES}
        self._ranges: dict[str, list[datetime]] = {"crawled_at": [], "last_modified": []}

    def add(self, kind: str, part: pa.RecordBatch) -> None:
        counts = self.summary.by_type[kind]
        deleted = pc.sum(part.column("deleted")).as_py() or 0
        counts["rows"] += part.num_rows
        counts["deleted"] += deleted
        counts["live"] += part.num_rows - deleted
        self.summary.rows += part.num_rows
        for name, seen in self._ranges.items():
            bounds = pc.min_max(part.column(name)).as_py()
            seen.extend(v for v in (bounds["min"], bounds["max"]) if v is not None)
            if len(seen) > 2:
                seen[:] = [min(seen), max(seen)]

    def close(self) -> None:
        for name, attr in (("crawled_at", "crawl_range"), ("last_modified", "modified_range")):
            seen = self._ranges[name]
            setattr(self.summary, attr, (min(seen), max(seen)) if seen else (None, None))


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
    written, sqlite3.Error when a state file cannot be read, UnsortedInputError when the previous export is not in
    the order it declares."""
    started = time.monotonic()
    summary = ExportSummary(profile=profile)
    builder = RowBuilder()
    export_dir = Path(export_dir)
    ensure_directory(export_dir)
    summary.finished_interrupted = finish_interrupted_commit(export_dir)
    sweep_temp_files(export_dir)
    outputs: dict[str, _TempParquet] = {}
    staged: list[tuple[Path, Path]] = []  # (temporary file, target) of every output, the data card last
    tally = _Tally(summary)
    try:
        streams = []
        old = _old_batches(export_dir / FILES["all"], batch_size, builder.counts)
        if old is not None:
            streams.append(_SortedStream(old, 0, f"the previous export {FILES['all']}"))
        for index, source in enumerate(sources, start=1):
            scratch = export_dir / f"{TEMP_PREFIX}{os.getpid()}-tree-{index}.sqlite"
            rows = source_rows(source, builder, scratch)
            streams.append(_SortedStream(_row_batches(rows, batch_size), index, f"the source {source.output_dir}"))
        outputs = {kind: _TempParquet(export_dir / name, SCHEMAS[kind]) for kind, name in FILES.items()}
        for chunk in _merged(streams):
            summary.kept_old += pc.sum(pc.equal(chunk.column(_SRC), 0)).as_py() or 0
            summary.new_rows += pc.sum(pc.not_equal(chunk.column(_SRC), 0)).as_py() or 0
            table = chunk.drop_columns(_SRC)
            if drop_deleted:
                table = table.filter(pc.invert(table.column("deleted")))
            for batch in table.to_batches(max_chunksize=batch_size):
                outputs["all"].write(batch)
                for kind in TYPES:
                    part = batch.filter(pc.equal(batch.column("type"), kind))
                    if part.num_rows:
                        tally.add(kind, part)
                        schema = SCHEMAS[kind]
                        outputs[kind].write(pa.RecordBatch.from_arrays(
                            [part.column(f.name) for f in schema], schema=schema))  # fmt: skip
        for out in outputs.values():
            out.finish()
            staged.append((out.tmp, out.target))
        tally.close()
        summary.counts = builder.counts
        # Content addresses and CARs of the temporary files (a file's CID does not depend on its name), then the
        # data card naming them: the whole set is complete before any of it replaces the previous export.
        for kind, name in FILES.items():
            tmp = outputs[kind].tmp
            info = FileInfo(name=name, rows=outputs[kind].rows, size=tmp.stat().st_size)
            if car:
                car_path = export_dir / CAR_FOLDER / (Path(name).stem + ".car")
                car_tmp = car_path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{car_path.name}.part")
                ensure_directory(car_path.parent)
                info.cid = write_car(tmp, car_tmp, profile, fsync=True)
                info.car = f"{CAR_FOLDER}/{car_path.name}"
                staged.append((car_tmp, car_path))
            else:
                info.cid = file_cid(tmp, profile)
            summary.files[kind] = info
        summary.seconds = time.monotonic() - started
        card_tmp = export_dir / f"{TEMP_PREFIX}{os.getpid()}-{CARD}.part"
        write_atomic(card_tmp, data_card(summary).encode("utf-8"), fsync=True)
        staged.append((card_tmp, export_dir / CARD))
        commit(export_dir, staged)
    except BaseException:
        if not (export_dir / COMMIT_JOURNAL).exists():  # a started commit is finished (next run), never undone
            for out in outputs.values():
                out.abort()
            for tmp, _target in staged:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        raise
    return summary


# ---------------------------------------------------------------------------------------------------------
# Replacing the previous export: a journal, then the renames
# ---------------------------------------------------------------------------------------------------------

#: Names the complete, fsynced temporary files of an export and their targets while they replace the previous
#: ones; a kill during the renames leaves it, and the next export finishes them first (`finish_interrupted_commit`).
COMMIT_JOURNAL: Final = ".hfscraper-export-commit.json"


def commit(export_dir: Path, staged: Sequence[tuple[Path, Path]]) -> None:
    """Replace each target by its temporary file: the journal first (so a kill at any point is finished by the next
    export, never left half done), then the renames, the folders flushed, and the journal removed."""
    pairs = [[tmp.name, str(target.relative_to(export_dir))] for tmp, target in staged]
    for (tmp, _), (_, target) in zip(staged, pairs, strict=True):
        if tmp.parent != (export_dir / target).parent:
            raise ValueError(f"{tmp} is not beside {target}")
    write_atomic(export_dir / COMMIT_JOURNAL, json.dumps({"replace": pairs}).encode("utf-8"), fsync=True)
    _apply_commit(export_dir, pairs)


def _apply_commit(export_dir: Path, pairs: Sequence[Sequence[str]]) -> int:
    done = 0
    folders = {export_dir}
    for tmp_name, target_name in pairs:
        target = export_dir / target_name
        tmp = target.with_name(tmp_name)
        if tmp.exists():  # else already renamed by the interrupted run
            os.replace(tmp, target)
            done += 1
        folders.add(target.parent)
    for folder in folders:
        fsync_directory(folder)
    (export_dir / COMMIT_JOURNAL).unlink()
    fsync_directory(export_dir)
    return done


def finish_interrupted_commit(export_dir: Path) -> bool:
    """Finish the renames of an export killed while it replaced the files (its journal names them); True if there
    was one. A journal that does not parse was never complete (it is written atomically): it is ignored."""
    path = export_dir / COMMIT_JOURNAL
    try:
        pairs = json.loads(path.read_bytes())["replace"]
    except FileNotFoundError:
        return False
    except (ValueError, KeyError, TypeError):
        path.unlink()
        return False
    safe = [
        (str(tmp), str(target))
        for tmp, target in pairs
        if isinstance(tmp, str) and isinstance(target, str) and "/" not in tmp and ".." not in Path(target).parts
    ]
    _apply_commit(export_dir, safe)
    return True


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
