"""`scrapy verify`'s checks: the output folder against what the crawl state says is stored there (no Scrapy here).

For every entity of the chosen types in the state (`entities`), in id order, its folder
(`output/<type>/<folder name>`) is read once, file by file, in big sequential reads:

- every chosen file the `files` table records as stored (`downloaded` or `unchanged`) must be there with its
  recorded size, SHA-256 (or, when only that is known, git blob SHA-1);
- `metadata.json` must parse as a JSON object whose `id` is the entity's;
- nothing else may be in the folder but the crawl's own files at the top (`hfscraper.repofiles.RESERVED_NAMES`),
  files whose download failed (a later run retries them and keeps the verified copy meanwhile) and leftovers of
  interrupted writes (`.hfscraper-tmp-*`, swept by the next crawl): anything else is a stray file;
- when the entity's folder was content-addressed by its last processing (stage `ipfs`), the folder's CID is
  recomputed with the recorded profile in the same pass over the bytes (as `ipfs add -r --hidden` gives it, without
  `ipfs_cid.txt` and `tombstone.json`) and must be the CID the state recorded; `ipfs_cid.txt` must hold it; each CAR
  the `pins` table names (else the default `<car dir>/<type>/<folder>.car`) must be there: an entity's own CAR with
  that single root (its header is read, not its blocks), a pack with that root in its header and the entity's
  recorded byte range holding its blocks (each hash checked), the root's block last. A pin with no CAR file (the
  `filestore` layout) has its CAR built from the folder on demand: the folder's CID is the whole check, and a
  folder that no longer gives it is reported as having no CAR until a re-crawl;
- an entity the state calls stored (stage `stored`) must have its folder.

One problem is reported per cause: a file that fails its hash also changes the folder's CID, which is then not
reported again (the CID is compared only when every file checked out, so it catches what nothing else can, such
as an edited `preview_info.json`).

Entities a full sweep marked deleted (tombstoned) are the last copy of something the Hub no longer has, and no
crawl can bring back what they lack: nothing is required of them (folder, files, `metadata.json`, CID file, CAR
may be missing), but what is there is checked like any other (hashes, `metadata.json`, stray files, the CID when
no recorded file is missing, a CAR's root).

`Verifier` runs the checks in a thread pool (hashing releases the GIL) and yields `Problem`s in entity order.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.hub import HostileIdError, entity_folder_name
from hfscraper.ipfs.car import CarReadError, read_car
from hfscraper.ipfs.packs import check_range
from hfscraper.ipfs.profiles import Profile, get_profile
from hfscraper.ipfs.unixfs import Importer, Link, UnsupportedFileError
from hfscraper.repofiles import RESERVED_NAMES
from hfscraper.state import TOMBSTONE_FILE, StateStore

#: As `hfscraper.pipelines.ipfs` names them (that module loads Scrapy).
CID_FILE: Final = "ipfs_cid.txt"
DEFAULT_CAR_FOLDER: Final = "car"
METADATA_FILE: Final = "metadata.json"
#: Top-level files left out of the folder's CID.
NOT_ADDRESSED: Final = frozenset({CID_FILE, TOMBSTONE_FILE})
#: `files` statuses of a file that is in the folder, verified.
STORED_STATUSES: Final = frozenset({"downloaded", "unchanged"})
#: Read size when no CID is computed (the importer reads a chunk of the profile at a time).
READ_SIZE: Final = 1024 * 1024
#: Hash and read in this many threads (hashlib releases the GIL for large buffers).
WORKERS: Final = max(1, min(4, os.cpu_count() or 1))
HASH_SHOWN: Final = 16


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one entity: `kind` is a slug (`hash`, `size`, `missing_file`, `stray_file`,
    `unreadable`, `metadata`, `metadata_id`, `cid`, `cid_file`, `car`, `missing_folder`), `what` the sentence."""

    repo_type: str
    id: str
    folder: Path
    kind: str
    what: str

    def __str__(self) -> str:
        return f"{OUTPUT_FOLDERS[self.repo_type]} {self.id} ({self.folder}): {self.what}"

    def to_dict(self) -> dict[str, str]:
        return {"type": self.repo_type, "id": self.id, "folder": str(self.folder), "kind": self.kind,
                "problem": self.what}  # fmt: skip


@dataclass(frozen=True)
class EntityCheck:
    """What the state says about one entity, gathered on the thread that owns the state connection."""

    repo_type: str
    id: str
    folder: Path
    stored: bool
    deleted: bool
    files: dict[str, dict[str, object]]
    profile: Profile | None
    cid: str | None
    #: (path, byte offset, length) of each CAR; offset and length are None for the entity's own CAR.
    cars: tuple[tuple[Path, int | None, int | None], ...]
    #: A pin has no CAR file: its CAR is built from the folder (`hfscraper.ipfs.filestore`).
    car_on_demand: bool = False


@dataclass
class EntityResult:
    problems: list[Problem] = field(default_factory=list)
    checked: bool = False
    files: int = 0
    bytes: int = 0


@dataclass
class Summary:
    """Totals of a run: entities whose folder was checked, recorded files rehashed, bytes read, problems, and
    entities by what the state says (`pending`: live but not stored, e.g. marked for the next crawl)."""

    entities: int = 0
    files: int = 0
    bytes: int = 0
    problems: int = 0
    deleted: int = 0
    pending: int = 0
    problem_entities: dict[str, set[str]] = field(default_factory=dict)
    deleted_problem_entities: dict[str, set[str]] = field(default_factory=dict)


def _short(digest: object) -> str:
    text = str(digest)
    return text if len(text) <= HASH_SHOWN else text[:HASH_SHOWN] + "…"


class _Progress:
    """Bytes read so far by every worker (for the progress line only; the summary adds up exact results)."""

    def __init__(self) -> None:
        self.bytes = 0


class _HashingReader:
    """A `readinto` reader that feeds what passes through to a SHA-256 (and a git blob SHA-1), so that a file's
    checksums and its UnixFS CID come from one read."""

    def __init__(self, raw: BinaryIO, sha1_size: int | None, progress: _Progress) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1(b"blob %d\0" % sha1_size) if sha1_size is not None else None
        self.size = 0
        self.progress = progress

    def readinto(self, view: memoryview) -> int:
        n = self.raw.readinto(view)  # type: ignore[attr-defined]
        if n:
            chunk = view[:n]
            self.sha256.update(chunk)
            if self.sha1 is not None:
                self.sha1.update(chunk)
            self.size += n
            self.progress.bytes += n
        return n or 0


_buffers = threading.local()


def _read_all(reader: _HashingReader) -> None:
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = memoryview(bytearray(READ_SIZE))
    while reader.readinto(buffer):
        pass


class _FolderCheck:
    """One pass over one entity folder (runs on a worker thread; touches no state)."""

    def __init__(self, check: EntityCheck, progress: _Progress) -> None:
        self.check = check
        self.progress = progress
        self.result = EntityResult(checked=True)
        #: None once the CID cannot or need not be computed.
        self.importer = Importer(check.profile) if check.profile is not None and check.cid is not None else None
        self.seen: set[str] = set()

    def problem(self, kind: str, what: str) -> None:
        c = self.check
        self.result.problems.append(Problem(c.repo_type, c.id, c.folder, kind, what))

    def content_problem(self, kind: str, what: str) -> None:
        self.importer = None  # the folder's CID differs for this reason already: not reported again
        self.problem(kind, what)

    def run(self) -> EntityResult:
        c = self.check
        if not c.folder.is_dir():
            if c.stored and not c.deleted:
                self.problem("missing_folder", "folder missing (the state records the entity as stored)")
            self.result.checked = False
            return self.result
        try:
            root = self.walk(c.folder, "")
        except OSError as exc:
            self.content_problem("unreadable", f"cannot read the folder: {exc}")
            root = None
        missing = sorted(p for p, row in c.files.items() if row["status"] in STORED_STATUSES and p not in self.seen)
        for path in missing:
            if c.deleted:
                self.importer = None
            else:
                self.content_problem("missing_file", f"{path}: missing")
        self.check_metadata()
        self.check_cid(root)
        self.check_cars()
        return self.result

    # -- the walk: every file read once ---------------------------------------------------------------------

    def walk(self, path: Path, rel: str) -> Link | None:
        with os.scandir(path) as it:
            items = sorted(it, key=lambda e: os.fsencode(e.name))
        links: list[tuple[bytes, Link]] = []
        for entry in items:
            relname = f"{rel}/{entry.name}" if rel else entry.name
            if entry.name.startswith(TEMP_PREFIX) or relname in NOT_ADDRESSED:
                continue
            link: Link | None = None
            if entry.is_symlink():
                self.content_problem("stray_file", f"{relname}: a symlink (the crawl writes none)")
            elif entry.is_dir(follow_symlinks=False):
                link = self.walk(Path(entry.path), relname)
            elif entry.is_file(follow_symlinks=False):
                link = self.file(Path(entry.path), relname, entry.stat(follow_symlinks=False).st_size)
            else:
                self.content_problem("stray_file", f"{relname}: not a regular file")
            if link is not None and self.importer is not None:
                links.append((os.fsencode(entry.name), link))
        return self.importer.directory_node(links) if self.importer is not None else None

    def file(self, path: Path, rel: str, size: int) -> Link | None:
        row = self.check.files.get(rel)
        own = "/" not in rel and rel in RESERVED_NAMES
        if row is None and not own:
            self.content_problem("stray_file", f"{rel}: not a file of the entity (the state records none)")
            return None
        if row is not None and row["status"] not in STORED_STATUSES and row["status"] != "failed":
            self.content_problem("stray_file", f"{rel}: a file the crawl did not keep ({row['status']})")
            return None
        stored = row is not None and row["status"] in STORED_STATUSES
        if stored:
            self.seen.add(rel)
            self.result.files += 1
            assert row is not None
            expected = row["size"]
            if isinstance(expected, int) and size != expected:
                self.content_problem("size", f"{rel}: {size} bytes, expected {expected}")
                return None
        if not stored and self.importer is None:
            return None  # the crawl's own file, with no CID to compute: nothing to hash it against
        sha256 = row["sha256"] if stored and row is not None else None
        sha1 = row["blob_sha1"] if stored and row is not None and not sha256 else None
        with open(path, "rb", buffering=0) as raw:
            reader = _HashingReader(raw, size if sha1 else None, self.progress)
            importer = self.importer
            link = importer.add_reader(reader) if importer is not None else None  # type: ignore[arg-type]
            if importer is None:
                _read_all(reader)
        self.result.bytes += reader.size
        if reader.size != size:
            self.content_problem("size", f"{rel}: changed while it was read ({size} bytes, then {reader.size})")
            return None
        if sha256 and reader.sha256.hexdigest() != sha256:
            got = reader.sha256.hexdigest()
            self.content_problem("hash", f"{rel}: SHA-256 {_short(got)} expected {_short(sha256)}")
            return None
        if sha1 and reader.sha1 is not None and reader.sha1.hexdigest() != sha1:
            got = reader.sha1.hexdigest()
            self.content_problem("hash", f"{rel}: git blob SHA-1 {_short(got)} expected {_short(sha1)}")
            return None
        return link

    # -- the crawl's own files ------------------------------------------------------------------------------

    def check_metadata(self) -> None:
        c = self.check
        path = c.folder / METADATA_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if not c.deleted:
                self.content_problem("metadata", f"{METADATA_FILE}: missing")
            return
        except OSError as exc:
            self.content_problem("unreadable", f"{METADATA_FILE}: cannot read: {exc}")
            return
        try:
            payload = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self.content_problem("metadata", f"{METADATA_FILE}: not valid JSON ({exc})")
            return
        if not isinstance(payload, dict):
            self.content_problem("metadata", f"{METADATA_FILE}: not a JSON object")
        elif payload.get("id") != c.id:
            self.content_problem("metadata_id", f"{METADATA_FILE}: names id {payload.get('id')!r}, expected {c.id!r}")

    def check_cid(self, root: Link | None) -> None:
        c = self.check
        if c.cid is None:
            return
        if root is not None and self.importer is not None and str(root) != c.cid:
            lost = "; its CAR, built from the folder, is gone until a re-crawl" if c.car_on_demand else ""
            self.problem("cid", f"the folder's CID is {root}, the state recorded {c.cid} (a file changed{lost})")
        try:
            held = (c.folder / CID_FILE).read_bytes()
        except FileNotFoundError:
            if not c.deleted:
                self.problem("cid_file", f"{CID_FILE}: missing (expected {c.cid})")
            return
        except OSError as exc:
            self.problem("unreadable", f"{CID_FILE}: cannot read: {exc}")
            return
        if held != f"{c.cid}\n".encode("ascii"):
            shown = held[:80].decode("utf-8", "replace").strip()
            self.problem("cid_file", f"{CID_FILE}: holds {shown!r}, expected {c.cid}")

    def check_cars(self) -> None:
        c = self.check
        if c.cid is None:
            return
        for car, offset, length in c.cars:
            if offset is not None and length is not None:
                self.check_pack(car, offset, length)
                continue
            try:
                roots, blocks = read_car(car)
            except FileNotFoundError:
                if not c.deleted:
                    self.problem("car", f"CAR {car}: missing")
                continue
            except (OSError, CarReadError) as exc:
                self.problem("car", f"CAR {car}: unreadable ({exc})")
                continue
            blocks.close()
            if roots != [c.cid]:
                self.problem("car", f"CAR {car}: root {', '.join(roots) or 'none'}, expected {c.cid}")

    def check_pack(self, car: Path, offset: int, length: int) -> None:
        c = self.check
        assert c.cid is not None
        try:
            check_range(car, offset, length, c.cid)
        except FileNotFoundError:
            if not c.deleted:
                self.problem("car", f"CAR pack {car}: missing")
        except (OSError, CarReadError) as exc:
            self.problem("car", f"CAR pack {car}: {exc}")


def check_entity(check: EntityCheck, progress: _Progress | None = None) -> EntityResult:
    """Every check of one entity folder (blocking; no state access)."""
    try:
        return _FolderCheck(check, progress or _Progress()).run()
    except (OSError, UnsupportedFileError) as exc:
        result = EntityResult(checked=True)
        result.problems.append(Problem(check.repo_type, check.id, check.folder, "unreadable", f"cannot check: {exc}"))
        return result


# ---------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------


def _entity_check(
    store: StateStore, output_dir: Path, car_dir: Path, row: tuple[str, str, str, str | None]
) -> EntityCheck | None:
    repo_type, repo_id, stages_json, deleted_at = row
    try:
        name = entity_folder_name(repo_id)
    except HostileIdError:
        return None  # never stored: the crawl refuses such ids
    stages = set(json.loads(stages_json or "[]"))
    files = {
        path: {"status": status, "size": size, "sha256": sha256, "blob_sha1": blob_sha1}
        for path, status, size, sha256, blob_sha1 in store.db.execute(
            "SELECT path, status, size, sha256, blob_sha1 FROM files WHERE repo_type = ? AND id = ?",
            (repo_type, repo_id),
        )
    }
    profile = cid = None
    cars: tuple[tuple[Path, int | None, int | None], ...] = ()
    on_demand = False
    # A folder addressed by an older processing and processed since without the IPFS stage has a stale record;
    # an entity with no stage (never finished, or marked for the next crawl) keeps its last record to check.
    if "ipfs" in stages or not stages:
        found = store.db.execute(
            "SELECT cid, profile FROM cids WHERE repo_type = ? AND id = ? AND path = ''", (repo_type, repo_id)
        ).fetchone()
        if found is not None:
            cid = found[0]
            try:
                profile = get_profile(found[1])
            except ValueError:
                profile = None  # a profile this version does not know: the CID cannot be recomputed
            pinned = store.db.execute(
                "SELECT DISTINCT car_path, car_offset, car_length FROM pins WHERE repo_type = ? AND id = ? "
                "ORDER BY car_path",
                (repo_type, repo_id),
            ).fetchall()
            # relative to the CAR folder (older rows: absolute)
            cars = tuple((car_dir / p, offset, length) for p, offset, length in pinned if p is not None)
            on_demand = any(p is None for p, _, _ in pinned)
            if not pinned:
                cars = ((car_dir / OUTPUT_FOLDERS[repo_type] / f"{name}.car", None, None),)
    return EntityCheck(
        repo_type=repo_type, id=repo_id, folder=output_dir / OUTPUT_FOLDERS[repo_type] / name,
        stored="stored" in stages, deleted=deleted_at is not None, files=files, profile=profile, cid=cid, cars=cars,
        car_on_demand=on_demand,
    )  # fmt: skip


class Verifier:
    """Check the output folder of *store* for *types* (`model`, `dataset`, `space`); iterate to get the
    problems, then read `summary`. *progress* is called on the iterating thread about every
    *progress_interval* seconds with the summary so far and the bytes read."""

    def __init__(
        self,
        output_dir: Path,
        store: StateStore,
        types: Iterable[str],
        *,
        car_dir: Path | None = None,
        workers: int = WORKERS,
        progress: Callable[[Summary, int], None] | None = None,
        progress_interval: float = 5.0,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.store = store
        self.types = [t for t in OUTPUT_FOLDERS if t in set(types)]
        self.car_dir = Path(car_dir) if car_dir is not None else self.output_dir / DEFAULT_CAR_FOLDER
        self.workers = max(1, workers)
        self.progress = progress
        self.progress_interval = progress_interval
        self.summary = Summary()
        self._read = _Progress()

    def _rows(self) -> Iterator[tuple[str, str, str, str | None]]:
        for repo_type in self.types:
            rows = self.store.db.execute(
                "SELECT repo_type, id, stages, deleted_at FROM entities WHERE repo_type = ? ORDER BY id", (repo_type,)
            ).fetchall()
            for row in rows:
                yield row[0], row[1], row[2], row[3]

    def _add(self, check: EntityCheck, result: EntityResult) -> list[Problem]:
        s = self.summary
        s.entities += result.checked
        s.files += result.files
        s.bytes += result.bytes
        s.problems += len(result.problems)
        if result.problems:
            target = s.deleted_problem_entities if check.deleted else s.problem_entities
            target.setdefault(check.repo_type, set()).add(check.id)
        return result.problems

    def __iter__(self) -> Iterator[Problem]:
        pending: collections.deque[tuple[EntityCheck, concurrent.futures.Future[EntityResult]]] = collections.deque()
        next_report = time.monotonic() + self.progress_interval
        with concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="hfscraper-verify") as pool:
            for row in self._rows():
                check = _entity_check(self.store, self.output_dir, self.car_dir, row)
                if check is None:
                    continue
                self.summary.deleted += check.deleted
                self.summary.pending += not check.stored and not check.deleted
                pending.append((check, pool.submit(check_entity, check, self._read)))
                while len(pending) > 2 * self.workers or (pending and pending[0][1].done()):
                    done, future = pending.popleft()
                    yield from self._add(done, future.result())
                if self.progress is not None and time.monotonic() >= next_report:
                    self.progress(self.summary, self._read.bytes)
                    next_report = time.monotonic() + self.progress_interval
            while pending:
                done, future = pending.popleft()
                yield from self._add(done, future.result())
                if self.progress is not None and time.monotonic() >= next_report:
                    self.progress(self.summary, self._read.bytes)
                    next_report = time.monotonic() + self.progress_interval


def foreign_metadata(folder: Path) -> bool:
    """True when *folder*'s `metadata.json` names an entity that cannot live in this folder, not even on a file
    system that ignores letter case: the entity store never overwrites another entity's `metadata.json`, so a
    crawl would keep it forever."""
    try:
        payload = json.loads((folder / METADATA_FILE).read_bytes().decode("utf-8"))
        other = payload.get("id") if isinstance(payload, dict) else None
        return entity_folder_name(other).casefold() != folder.name.casefold()
    except (OSError, UnicodeDecodeError, ValueError, HostileIdError):
        return False


def repair(store: StateStore, summary: Summary, problems: Iterable[Problem]) -> tuple[int, int]:
    """Mark every live entity with a problem so that the next crawl that lists it processes it again (its
    completed stages and stored crawl forgotten), and remove a `metadata.json` that names an entity that cannot
    be in its folder (the crawl would refuse to replace it). Stray files are left to the crawl's own prune, which
    runs when it processes the entity again. Entities marked deleted are left alone: no crawl lists them.
    Returns (entities marked, files removed)."""
    removed = 0
    for problem in problems:
        live = problem.id in summary.problem_entities.get(problem.repo_type, ())
        if problem.kind == "metadata_id" and live and foreign_metadata(problem.folder):
            os.unlink(problem.folder / METADATA_FILE)
            removed += 1
    for repo_type, ids in summary.problem_entities.items():
        store.invalidate_entities(repo_type, sorted(ids))
    return sum(len(ids) for ids in summary.problem_entities.values()), removed
