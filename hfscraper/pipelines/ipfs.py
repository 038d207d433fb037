"""`IpfsPipeline`: content-address every stored entity folder, write its CAR and pin its root.

It runs at ITEM_PIPELINES 300, after every pipeline that writes into the entity folder (`metadata.json`, the
downloaded files, the previews), so it sees the folder as the crawl leaves it. The items that reach it in the same
event-loop turn (Scrapy runs up to CONCURRENT_ITEMS of a page through the pipelines at once) are addressed as one
batch: one worker-thread call hashes them, writes their CAR pack (if the layout keeps CARs) and `ipfs_cid.txt`, has
the backend pin them and records them in the crawl state in one transaction. For each Hub item:

1. **File CIDs.** Every file in the folder gets the CID `ipfs add` gives it with the profile
   (`HFSCRAPER_IPFS_PROFILE`); each entry of `item.files` (the files stage's list) whose file is in the folder
   gets it as `"cid"`, and all of them go to the crawl state's `cids` table. They come from the same read of
   each file as the folder's DAG.
2. **The folder's CID**, as `ipfs add -r --hidden` with the profile's parameters gives the folder without
   `ipfs_cid.txt` itself, `tombstone.json` (crawl bookkeeping: a full sweep no longer found the entity; adding or
   removing it must not change the address of the content) and leftovers of interrupted writes
   (`.hfscraper-tmp-*`). Written to `ipfs_cid.txt` in the folder (the CID and a newline, atomically; not
   rewritten when unchanged) and to the state (path ""). The folder must be a real folder (one `lstat`: a
   symlink is refused) holding `metadata.json`.
3. **The CAR** (`HFSCRAPER_IPFS_CAR_LAYOUT`): with `filestore` (the default with the embedded backend;
   `hfscraper.ipfs.filestore`) none is written: a CAR is determined by the folder and the profile, so `scrapy car
   TYPE ID` builds it from the folder when asked for (refusing when the folder no longer hashes to the recorded
   root). With `pack` (`hfscraper.ipfs.packs`; what `filestore` becomes with the kubo backend, which imports the
   blocks from CARs), the batch's DAGs go into one CARv1 with one root per entity,
   `<car_dir>/packs/<type>/<time>-<pid>-<n>.car`; with `entity`, each folder gets its own single-root
   `<car_dir>/<type>/<folder>.car` as in earlier versions (`HFSCRAPER_IPFS_CAR_DIR`, default
   `<output_dir>/car`). Either is written in `<car_dir>/.tmp/` and renamed into place, so a kill leaves only
   scratch there (swept by the next run). An entity whose root is unchanged and whose recorded CAR still holds it
   is not written again. `ipfs dag import` takes packs and entity CARs as they are; `scrapy car TYPE ID` writes
   one entity's own CAR, byte for byte the `entity` layout's, in every layout. Switching layouts between runs of
   one output: an entity moves to the new layout when it is next addressed (to `filestore`: its pin loses its
   CAR, a pack no pin points into any more is deleted; from `filestore`: its blocks go into a new pack or CAR);
   until then its recorded CAR, or its folder, serves it.
4. **The pin** on the backend (`HFSCRAPER_IPFS_BACKEND`, `hfscraper.ipfs.backends`): the backend must confirm
   exactly this root as pinned (`add_pack`: the embedded backend reads the pack's header back, kubo imports the
   pack with `dag/import` and checks each root; with `filestore`, the embedded pin is the record alone). A pin
   already recorded for the same root and still in place is not redone; the root of an older version of the same
   entity is unpinned once the new one is pinned. Every pin is recorded in the state's `pins` table (root CID,
   entity, backend, CAR with the entity's byte range or none, time).
5. **Garbage collection**: the state counts the pins pointing into each CAR (`car_packs`); a CAR left with none
   (every entity of a pack moved on to newer packs) is deleted once that is committed. At the end of a crawl,
   packs with at most a quarter of their entities still live are compacted: the live entities' byte ranges are
   copied into a new pack, their pins moved, the old packs deleted. So the packs hold at most about four times
   the live entities' CAR bytes, whatever the number of daily runs.
6. With `HFSCRAPER_IPFS_VERIFY_ADD` and the `kubo` backend, each file is also `add`ed on the node
   (`only-hash`) and the node's CID must equal ours, before the entity is pinned.

A failure (the node unreachable or refusing, a CID that differs from ours, a file that cannot be read) is one
ERROR line and `StageFailed` for that entity only: the item goes no further, its listing page is not
checkpointed, the crawl is incomplete (exit code 1) and the next run does the entity again. A kubo node that
does not answer when the crawl starts closes the spider at once (finish reason `ipfs_unavailable`).

With `HFSCRAPER_IPFS_UNPIN_DELETED`, the pins of entities that a full sweep marked deleted are removed from the
backend and the state when the crawl that marked them ends (`engine_stopped`) and when any later crawl starts
(their CARs stay on disk, like their folders).

Settings (read once): HFSCRAPER_IPFS_ENABLED, HFSCRAPER_IPFS_PROFILE, HFSCRAPER_IPFS_BACKEND, HFSCRAPER_IPFS_API,
HFSCRAPER_IPFS_CAR_DIR, HFSCRAPER_IPFS_CAR_LAYOUT, HFSCRAPER_IPFS_UNPIN_DELETED, HFSCRAPER_IPFS_VERIFY_ADD,
HFSCRAPER_IPFS_TIMEOUT, HFSCRAPER_IPFS_CONNECT_TIMEOUT; HFSCRAPER_OUTPUT_DIR, HFSCRAPER_STATE_DIR,
HFSCRAPER_STORE_FSYNC.

Stats: hfscraper/ipfs/entities, hfscraper/ipfs/files (file CIDs computed), hfscraper/ipfs/bytes (bytes in the
addressed folders), hfscraper/ipfs/batches, hfscraper/ipfs/cid_file/written|unchanged,
hfscraper/ipfs/car/written|unchanged|on_demand (per entity; on_demand: the filestore layout, no CAR file),
hfscraper/ipfs/car/bytes (the written entities' own CAR
bytes), hfscraper/ipfs/pack/written (CAR files written), hfscraper/ipfs/pack/deleted (no longer referenced),
hfscraper/ipfs/pack/compacted, hfscraper/ipfs/pin/pinned|unchanged, hfscraper/ipfs/unpin/superseded,
hfscraper/ipfs/unpin/failed, hfscraper/ipfs/verify/matched, hfscraper/ipfs/verify/skipped,
hfscraper/ipfs/failed and hfscraper/ipfs/failed/<reason> (`node`, `mismatch`, `pin`, `disk`, `folder`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import sqlite3
import stat
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, Self, TypeVar

from scrapy import signals
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.utils.asyncio import is_asyncio_available

from hfscraper.batching import ThreadBatcher
from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.exceptions import IpfsCidMismatchError, IpfsError, IpfsPinError
from hfscraper.extensions.checkpoint import state_location
from hfscraper.fsutil import TEMP_PREFIX, ensure_directory, process_alive, sweep_dead_temp_files, write_if_changed
from hfscraper.hub import HostileIdError, entity_folder_name
from hfscraper.ipfs.backends import IpfsBackend, build_backend, pack_roots_or_none
from hfscraper.ipfs.car import CarReadError
from hfscraper.ipfs.filestore import LAYOUT as FILESTORE
from hfscraper.ipfs.kubo import node_builds_same_dag
from hfscraper.ipfs.multiformats import cid_to_str, parse_cid
from hfscraper.ipfs.packs import PackWriter, check_range, pack_name, pack_pid, read_range
from hfscraper.ipfs.pins import (
    FOLDER_PATH,
    Addressing,
    CidRecord,
    PinRow,
    deleted_pins,
    known_cars,
    move_pins,
    pins_in_cars,
    pins_of_root,
    previous_pins,
    record_batch,
    remove_pin,
    sparse_packs,
)
from hfscraper.ipfs.profiles import get_profile
from hfscraper.ipfs.unixfs import BlockSink, Importer
from hfscraper.items import HubEntityItem
from hfscraper.pipelines import StageFailed
from hfscraper.resources import ResourceGuard
from hfscraper.state import TOMBSTONE_FILE, SharedStateStore, StateStore, utc_now

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from hfscraper.ipfs.profiles import Profile

logger = logging.getLogger(__name__)

STAGE: Final = "ipfs"
#: The file in each entity folder that holds the folder's CID.
CID_FILE: Final = "ipfs_cid.txt"
#: The file every stored entity folder has.
METADATA_FILE: Final = "metadata.json"
#: Files of an entity folder that are not part of its content address (besides temporary files).
NOT_ADDRESSED: Final = frozenset({CID_FILE, TOMBSTONE_FILE})
#: Folder (under the output folder) of the CARs when HFSCRAPER_IPFS_CAR_DIR is unset.
DEFAULT_CAR_FOLDER: Final = "car"
#: The folder under the CAR folder where CARs are written before they are renamed into place.
SCRATCH_FOLDER: Final = ".tmp"
#: CAR layouts (HFSCRAPER_IPFS_CAR_LAYOUT); the first is the default.
LAYOUTS: Final = (FILESTORE, "pack", "entity")
#: Worker threads hashing and writing CARs (one batch each).
HASH_WORKERS: Final = 2
#: The most entities one batch (and so one pack) holds.
BATCH_SIZE: Final = 128
#: Packs with at most this share of their entities still pinned are compacted at the end of a crawl.
COMPACT_LIVE_SHARE: Final = 0.25
#: Packs written with fewer entities than this (items that reached the stage one by one, as in a files crawl or
#: a small incremental run) are merged at the end of a crawl.
COMPACT_MIN_ENTITIES: Final = 8
#: Packs compacted at most per crawl end (each is read once), and the most entities a compacted pack holds.
COMPACT_MAX_PACKS: Final = 1000
COMPACT_PACK_ENTITIES: Final = 4096

_T = TypeVar("_T")


@dataclass(frozen=True)
class Job:
    """One entity to address: its folder (`output/<type>/<folder name>`, not resolved)."""

    repo_type: str
    repo_id: str
    folder: Path

    @property
    def label(self) -> str:
        return entity_label(self.repo_type, self.repo_id)


@dataclass(frozen=True)
class Addressed:
    """What the batch computed and wrote for one entity folder."""

    root: str
    files: tuple[CidRecord, ...]
    total_size: int
    cid_file_written: bool
    car_path: Path | None  # None: no CAR file (the filestore layout)
    car_written: bool
    car_size: int
    pinned: bool


@dataclass(frozen=True)
class Failed:
    """An entity the batch could not address: the reason slug (`folder`, `disk`, `pin`, `mismatch`, `node`)."""

    reason: str
    error: BaseException


@dataclass
class _Entity:
    job: Job
    root: str = ""
    records: tuple[CidRecord, ...] = ()
    total: int = 0
    car: str | None = None  # relative to the CAR folder
    offset: int | None = None
    length: int | None = None
    written: bool = False  # its blocks went into a new CAR
    repin: bool = False  # a new pin row to record
    previous: PinRow | None = None
    failed: Failed | None = None
    cid_file_written: bool = False
    files: list[tuple[str, int]] = field(default_factory=list)


def entity_label(repo_type: str, repo_id: str) -> str:
    return f"{repo_type}:{repo_id}"


def sweep_scratch(scratch_dir: Path) -> int:
    """Remove what killed processes left in the CAR scratch folder (names start with their pid, or with the
    atomic-write prefix and the pid); how many files were removed."""
    return sweep_dead_temp_files(scratch_dir, prefixes=(TEMP_PREFIX, ""))


class IpfsPipeline:
    """Give every stored entity folder its CIDs, `ipfs_cid.txt`, a CAR and a pin (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("HFSCRAPER_IPFS_ENABLED", True):
            raise NotConfigured("HFSCRAPER_IPFS_ENABLED is off")
        self.crawler = crawler
        assert crawler.stats is not None
        self.stats = crawler.stats
        self.profile: Profile = get_profile(settings.get("HFSCRAPER_IPFS_PROFILE") or "unixfs-v1-2025")
        self.backend_name: str = settings.get("HFSCRAPER_IPFS_BACKEND") or "embedded"
        self.layout: str = settings.get("HFSCRAPER_IPFS_CAR_LAYOUT") or FILESTORE
        if self.layout not in LAYOUTS:
            raise NotConfigured(f"HFSCRAPER_IPFS_CAR_LAYOUT must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
        if self.layout == FILESTORE and self.backend_name != "embedded":
            self.layout = "pack"  # a node imports the blocks from CARs: they reach it in packs
        self.state_file, self.output_dir = state_location(settings)
        car_dir = settings.get("HFSCRAPER_IPFS_CAR_DIR")
        self.car_dir = (
            Path(os.path.abspath(os.path.expanduser(car_dir))) if car_dir else self.output_dir / DEFAULT_CAR_FOLDER
        )
        #: CARs being written (`<pid>-<n>.car`).
        self.scratch_dir = self.car_dir / SCRATCH_FOLDER
        self.fsync: bool = settings.getbool("HFSCRAPER_STORE_FSYNC", False)
        self.unpin_deleted_enabled: bool = settings.getbool("HFSCRAPER_IPFS_UNPIN_DELETED", False)
        self.verify_add: bool = settings.getbool("HFSCRAPER_IPFS_VERIFY_ADD", False) and self.backend_name != "embedded"
        self.state: SharedStateStore | None = None
        self.backend: IpfsBackend | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._batcher: ThreadBatcher[Job, Addressed | Failed] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._roots: dict[str, Path] = {}
        self._scratch_counter = 0
        self.guard = ResourceGuard.of(crawler)
        crawler.signals.connect(self.engine_stopped, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    # -- start and end --------------------------------------------------------------------------------------

    async def open_spider(self) -> None:
        if not is_asyncio_available():
            raise IpfsError("IpfsPipeline needs Scrapy's asyncio reactor (TWISTED_REACTOR)")
        self._loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="hfscraper-ipfs")
        executor = self._executor
        self._batcher = ThreadBatcher(
            None, BATCH_SIZE, batch_func=self._address_batch, submit=lambda fn, args: executor.submit(fn, args)
        )
        swept = await asyncio.to_thread(sweep_scratch, self.scratch_dir)
        if swept:
            logger.info("IPFS: removed %(n)d unfinished CAR(s) of killed runs", {"n": swept})
        try:
            self.state = SharedStateStore.acquire(self.state_file, fsync=self.fsync)
        except Exception as exc:
            logger.error(
                "IPFS: cannot open the crawl state %(file)s: %(error)s", {"file": self.state_file, "error": exc}
            )
            raise CloseSpider("state_error") from exc
        self.backend = build_backend(self.backend_name, self.crawler.settings, state=self.state)
        try:
            version = await self.backend.open()
        except IpfsError as exc:
            logger.error("IPFS backend unavailable: %(error)s", {"error": exc})
            raise CloseSpider("ipfs_unavailable") from exc
        logger.info(
            "IPFS: profile %(profile)s, pins on %(backend)s (%(version)s), CARs (%(layout)s) in %(cars)s"
            + (" (none written: built from the folders on demand)" if self.layout == FILESTORE else ""),
            {
                "profile": self.profile.name, "backend": self.backend.describe(),
                "version": version.get("Version"), "cars": self.car_dir, "layout": self.layout,
            },
        )  # fmt: skip
        orphans = await self.state.call(self._sweep_orphans)
        if orphans:
            logger.info("IPFS: removed %(n)d CAR pack(s) that killed runs wrote but never recorded", {"n": orphans})
        if self.unpin_deleted_enabled:
            try:
                await self.unpin_deleted()
            except IpfsError as exc:  # the crawl itself can go on; the next one tries again
                logger.error("IPFS: could not unpin deleted entities: %(error)s", {"error": exc})

    async def close_spider(self) -> None:
        # The backend and the state stay open until engine_stopped: the crawl state marks entities deleted after
        # the pipelines closed (spider_closed), and their pins are removed then.
        return None

    async def engine_stopped(self) -> None:
        try:
            if self.backend is not None and self.state is not None:
                if self.unpin_deleted_enabled:
                    try:
                        await self.unpin_deleted()
                    except IpfsError as exc:
                        logger.error("IPFS: could not unpin deleted entities: %(error)s", {"error": exc})
                # Not after a full disk or a vanished folder: compaction writes, and the stop was said once already.
                if self.layout == "pack" and self._executor is not None and self.guard.stopped is None:
                    try:
                        await asyncio.wrap_future(self._executor.submit(self.compact))
                    except (OSError, sqlite3.Error, CarReadError, IpfsError) as exc:
                        # Nothing is lost: the packs stay as they are, and the next crawl's end tries again.
                        logger.warning(
                            "IPFS: could not compact the CAR packs (they stay as they are): %(error)s", {"error": exc}
                        )
        finally:
            await self._release()

    async def _release(self) -> None:
        if self.backend is not None:
            await self.backend.close()
            self.backend = None
        if self.state is not None:
            state, self.state = self.state, None
            await asyncio.to_thread(state.release)
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    # -- items ----------------------------------------------------------------------------------------------

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, HubEntityItem):
            return item
        repo_type, repo_id = item.repo_type, item.id
        label = entity_label(repo_type, repo_id)
        if self.backend is None or self.state is None or self._batcher is None:
            self._fail("node", label, IpfsError("the IPFS pipeline is not open"))
        try:
            folder = self.output_dir / OUTPUT_FOLDERS[repo_type] / entity_folder_name(repo_id)
        except HostileIdError as exc:
            self._fail("folder", label, exc)
        outcome = await self._batcher(Job(repo_type, repo_id, folder))
        if isinstance(outcome, Failed):
            self._fail(outcome.reason, label, outcome.error)
        self._count(outcome)
        cids = {r.path: r.cid for r in outcome.files}
        files = item.files  # (not ItemAdapter: it lists the dataclass fields for every entity)
        for entry in files or ():
            if isinstance(entry, dict) and entry.get("path") in cids:
                entry["cid"] = cids[entry["path"]]
        return item

    def _count(self, done: Addressed) -> None:
        inc = self.stats.inc_value
        inc("hfscraper/ipfs/entities")
        inc("hfscraper/ipfs/files", len(done.files) - 1)
        inc("hfscraper/ipfs/bytes", done.total_size)
        inc(f"hfscraper/ipfs/cid_file/{'written' if done.cid_file_written else 'unchanged'}")
        if done.car_path is None:
            inc("hfscraper/ipfs/car/on_demand")
        else:
            inc(f"hfscraper/ipfs/car/{'written' if done.car_written else 'unchanged'}")
        inc(f"hfscraper/ipfs/pin/{'pinned' if done.pinned else 'unchanged'}")
        if done.car_written:
            inc("hfscraper/ipfs/car/bytes", done.car_size)

    def _count_later(self, key: str, n: int = 1) -> None:
        """Count from a worker thread (the stats are the loop's)."""
        if n and self._loop is not None:
            self._loop.call_soon_threadsafe(self.stats.inc_value, key, n)

    def _on_loop(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine (a call to the node) on the crawl's loop from a worker thread, and wait for it."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # -- one batch (a worker thread) -------------------------------------------------------------------------

    def _address_batch(self, jobs: list[Job]) -> list[tuple[bool, Any]]:
        """Address *jobs*: one state read, the DAGs and CARs, the pins, one state transaction. Each job gets its
        `Addressed` or `Failed`."""
        state, backend = self.state, self.backend
        if state is None or backend is None:
            error = IpfsError("the IPFS pipeline is closed")
            return [(True, Failed("node", error)) for _ in jobs]
        entities = [_Entity(job) for job in jobs]
        try:
            previous = state.submit(previous_pins, backend.name, [(j.repo_type, j.repo_id) for j in jobs]).result()
        except (sqlite3.Error, OSError) as exc:
            return [(True, Failed("disk", exc)) for _ in jobs]
        for entity in entities:
            entity.previous = previous.get((entity.job.repo_type, entity.job.repo_id))
        self._count_later("hfscraper/ipfs/batches")
        cars: list[tuple[str, int, int]] = []
        by_type: dict[str, list[_Entity]] = {}
        for entity in entities:
            by_type.setdefault(entity.job.repo_type, []).append(entity)
        for repo_type, group in by_type.items():
            if self.layout == FILESTORE:
                for entity in group:
                    self._address_only(entity)
            elif self.layout == "pack":
                cars += self._write_cars(repo_type, group, pack=True)
            else:
                for entity in group:
                    cars += self._write_cars(repo_type, [entity], pack=False)
        live = [e for e in entities if e.failed is None]
        for entity in live:
            try:
                data = f"{entity.root}\n".encode("ascii")
                entity.cid_file_written = write_if_changed(entity.job.folder / CID_FILE, data, fsync=self.fsync)
            except OSError as exc:
                entity.failed = Failed("disk", exc)
        self._pin(entities)
        self._record(entities, cars)
        return [(True, self._outcome(e)) for e in entities]

    def _outcome(self, e: _Entity) -> Addressed | Failed:
        if e.failed is not None:
            return e.failed
        size = e.length or 0
        car = self.car_dir / e.car if e.car is not None else None
        return Addressed(e.root, e.records, e.total, e.cid_file_written, car, e.written, size, e.repin)

    def _type_root(self, repo_type: str) -> Path:
        root = self._roots.get(repo_type)
        if root is None:
            root = self._roots[repo_type] = Path(os.path.realpath(self.output_dir / OUTPUT_FOLDERS[repo_type]))
        return root

    def _write_cars(self, repo_type: str, group: list[_Entity], *, pack: bool) -> list[tuple[str, int, int]]:
        """Build every DAG of *group* into one CAR (a pack, or the one entity's CAR); the CARs written."""
        ensure_directory(self.scratch_dir)
        self._scratch_counter += 1
        scratch = self.scratch_dir / f"{os.getpid()}-{id(group)}-{self._scratch_counter}.car"
        try:
            writer = PackWriter(scratch, len(group), self.profile.dag_pb_cid_len, fsync=self.fsync)
        except OSError as exc:
            for entity in group:
                entity.failed = Failed("disk", exc)
            return []
        held: dict[str, list[str]] = {}
        try:
            for entity in group:
                self._build(entity, writer, held)
            written = [e for e in group if e.failed is None and e.written]
            if not written:
                writer.abort()
                return []
            folder = OUTPUT_FOLDERS[repo_type]
            name = pack_name(folder) if pack else f"{folder}/{written[0].job.folder.name}.car"
            size = writer.finish(self.car_dir / name)
        except OSError as exc:
            writer.abort()
            for entity in group:
                if entity.failed is None and entity.written:
                    entity.failed = Failed("disk", exc)
            return []
        for entity in written:
            entity.car = name
        self._count_later("hfscraper/ipfs/pack/written")
        return [(name, len(written), size)]

    def _build(self, entity: _Entity, writer: PackWriter, held: dict[str, list[str]]) -> None:
        writer.begin()
        cid = self._import(entity, writer.sink)
        if cid is None:
            writer.rollback()
            return
        prev = entity.previous
        if prev is not None and prev.root_cid == entity.root and self._holds(prev, held):
            writer.rollback()  # the recorded CAR already holds this DAG
            entity.car, entity.offset, entity.length = prev.car_path, prev.car_offset, prev.car_length
            return
        placed = writer.commit(cid)
        entity.offset, entity.length, entity.written, entity.repin = placed.offset, placed.length, True, True

    def _address_only(self, entity: _Entity) -> None:
        """The filestore layout: the DAG is hashed, no block written; a new pin (no CAR file) unless the recorded
        one already is that root without a CAR (a pin into a pack or own CAR is replaced: its CAR is released)."""
        if self._import(entity, None) is None:
            return
        prev = entity.previous
        entity.repin = not (
            prev is not None and prev.root_cid == entity.root and prev.car_path is None
            and prev.profile == self.profile.name
        )  # fmt: skip

    def _import(self, entity: _Entity, sink: BlockSink | None) -> bytes | None:
        """Check the entity's folder and build its DAG into *sink* (None: hash only), recording its CIDs; the
        root CID, or None with `entity.failed` set."""
        job = entity.job
        root_dir = self._type_root(job.repo_type)
        folder = root_dir / job.folder.name
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            mode = 0
        except OSError as exc:
            entity.failed = Failed("disk", exc)
            return None
        if stat.S_ISLNK(mode):
            entity.failed = Failed("folder", IpfsError(f"{folder} is a symbolic link; nothing to address"))
            return None
        if not stat.S_ISDIR(mode):
            entity.failed = Failed(
                "folder", IpfsError(f"{folder} is not a stored entity folder (no metadata.json); nothing to address")
            )
            return None
        importer = Importer(self.profile, sink, exclude=NOT_ADDRESSED, skip_prefix=TEMP_PREFIX)
        importer.files = []
        try:
            link = importer.add_directory(folder)
        except (OSError, ValueError) as exc:
            entity.failed = Failed("disk" if isinstance(exc, OSError) else "folder", exc)
            return None
        if not any(rel == METADATA_FILE for rel, _, _ in importer.files):
            entity.failed = Failed(
                "folder", IpfsError(f"{folder} is not a stored entity folder (no metadata.json); nothing to address")
            )
            return None
        entity.job = Job(job.repo_type, job.repo_id, folder)
        entity.root = cid_to_str(link.cid)
        records = [CidRecord(rel, cid_to_str(lk.cid), size) for rel, lk, size in importer.files]
        records.sort(key=lambda r: r.path.encode("utf-8", "surrogateescape"))
        entity.total = sum(r.size for r in records)
        entity.records = (*records, CidRecord(FOLDER_PATH, entity.root, entity.total))
        return link.cid

    def _holds(self, pin: PinRow, held: dict[str, list[str]]) -> bool:
        """Whether the CAR a pin names is on disk with the pin's root: a pack's header names it and the entity's
        range holds its blocks, hashes checked (an entity comes back with the same root after a repair); an own
        CAR's header names it (headers read once a batch)."""
        if not pin.car_path or pin.profile != self.profile.name:
            return False
        path = self.car_dir / pin.car_path
        if pin.car_offset is not None and pin.car_length is not None:
            try:
                check_range(path, pin.car_offset, pin.car_length, pin.root_cid)
            except (OSError, CarReadError):
                return False
            return True
        key = str(path)
        if key not in held:
            held[key] = pack_roots_or_none(path)
        return held[key] == [pin.root_cid]

    def _pin(self, entities: list[_Entity]) -> None:
        """Have the backend pin the new roots (one call per CAR); unchanged roots are confirmed on a node."""
        backend = self.backend
        assert backend is not None
        new: dict[str, list[_Entity]] = {}
        for e in entities:
            if e.failed is None and e.written and e.car is not None:
                new.setdefault(e.car, []).append(e)
        if self.verify_add:
            for e in [e for group in new.values() for e in group]:
                try:
                    self._on_loop(self._verify_add(e))
                except IpfsCidMismatchError as exc:
                    e.failed = Failed("mismatch", exc)
                except IpfsError as exc:
                    e.failed = Failed("node", exc)
        for car, group in new.items():
            group = [e for e in group if e.failed is None]
            if not group:
                continue
            path = self.car_dir / car
            try:
                problems = self._on_loop(backend.add_pack(path, [e.root for e in group]))
            except IpfsCidMismatchError as exc:
                problems, reason = {e.root: exc for e in group}, "mismatch"
            except IpfsError as exc:
                problems, reason = {e.root: exc for e in group}, "node"
            else:
                reason = "pin"
            for e in group:
                problem = problems.get(e.root)
                if problem is not None:
                    error = (
                        problem
                        if isinstance(problem, BaseException)
                        else IpfsPinError(problem, cid=e.root, entity=e.job.label)
                    )
                    e.failed = Failed(reason, error)
        if backend.name == "embedded":
            return
        for e in entities:  # unchanged roots: still pinned on the node?
            if e.failed is not None or e.written:
                continue
            try:
                if not self._on_loop(backend.is_pinned(e.root)):
                    self._on_loop(backend.pin(e.root, e.job.label))
            except IpfsPinError as exc:
                e.failed = Failed("pin", exc)
            except IpfsError as exc:
                e.failed = Failed("node", exc)

    async def _verify_add(self, e: _Entity) -> None:
        assert self.backend is not None
        for record in e.records[:-1]:
            if not node_builds_same_dag(record.size, self.profile):
                self.stats.inc_value("hfscraper/ipfs/verify/skipped")
                continue
            got = await self.backend.add_file(e.job.folder / record.path, self.profile)
            if got != record.cid:
                raise IpfsCidMismatchError(
                    f"`add` of {record.path} on the node gives another CID", expected=record.cid, got=got,
                    entity=e.job.label,
                )  # fmt: skip
            self.stats.inc_value("hfscraper/ipfs/verify/matched")

    def _record(self, entities: list[_Entity], cars: list[tuple[str, int, int]]) -> None:
        """One state transaction for the batch; then the CARs no pin points into are deleted, superseded roots
        unpinned."""
        state, backend = self.state, self.backend
        assert state is not None and backend is not None
        when = utc_now()
        done: list[Addressing] = []
        for e in entities:
            if e.failed is not None:
                continue
            pin = None
            if e.repin:
                pin = PinRow(backend.name, e.job.repo_type, e.job.repo_id, e.root, self.profile.name, e.car, when,
                             e.offset, e.length)  # fmt: skip
            done.append(Addressing(e.job.repo_type, e.job.repo_id, e.records, pin))
        try:
            outcome = state.submit(record_batch, backend.name, self.profile.name, done, cars, when).result()
        except (sqlite3.Error, OSError) as exc:
            for e in entities:
                if e.failed is None:
                    e.failed = Failed("disk", exc)
            return
        self._delete_cars(outcome.dead_cars)
        for root, label in outcome.unpin:
            try:
                self._on_loop(backend.unpin(root, label))
            except IpfsError as exc:
                self._count_later("hfscraper/ipfs/unpin/failed")
                logger.warning(
                    "IPFS: could not unpin the superseded root of %(entity)s: %(error)s",
                    {"entity": label, "error": exc},
                )
                continue
            self._count_later("hfscraper/ipfs/unpin/superseded")

    def _delete_cars(self, names: list[str]) -> None:
        deleted = 0
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.car_dir / name)
                deleted += 1
        self._count_later("hfscraper/ipfs/pack/deleted", deleted)

    # -- maintenance ------------------------------------------------------------------------------------------

    def _sweep_orphans(self, store: StateStore) -> int:
        """On the state's thread: delete packs that no state row knows and whose writer is dead (killed between
        the rename and the commit)."""
        packs = self.car_dir / "packs"
        if not packs.is_dir():
            return 0
        known = known_cars(store)
        removed = 0
        for top, _, names in os.walk(packs):
            for name in names:
                rel = os.path.relpath(os.path.join(top, name), self.car_dir).replace(os.sep, "/")
                pid = pack_pid(rel)
                if rel in known or pid is None or (pid != os.getpid() and process_alive(pid)):
                    continue
                if pid == os.getpid():
                    continue  # this run's own: recorded or failed, its batch decides
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(top, name))
                    removed += 1
        return removed

    def compact(self) -> int:
        """Copy the live entities of sparse packs into new packs, move their pins, delete the old packs (blocking;
        a worker thread). How many packs were compacted."""
        state = self.state
        assert state is not None
        sparse = state.submit(sparse_packs, COMPACT_LIVE_SHARE, COMPACT_MIN_ENTITIES, COMPACT_MAX_PACKS).result()
        if len(sparse) < 2 and not any(refs * 4 <= entities for _, refs, entities in sparse):
            return 0  # one small pack alone: copying it would give the same pack
        by_type: dict[str, list[str]] = {}
        for name, _, _ in sparse:
            parts = name.split("/")
            if len(parts) == 3:
                by_type.setdefault(parts[1], []).append(name)
        compacted = 0
        for folder, names in by_type.items():
            # One scan of the pins for every sparse pack of the type, not one per pack (5M rows each at Hub scale).
            pinned = state.submit(pins_in_cars, names).result()
            pins: list[PinRow] = []
            group: list[str] = []
            for name in names:
                group.append(name)
                pins += [p for p in pinned[name] if p.in_pack]
                if len(pins) >= COMPACT_PACK_ENTITIES or name == names[-1]:
                    compacted += self._compact_packs(folder, group, pins)
                    pins, group = [], []
        self._count_later("hfscraper/ipfs/pack/compacted", compacted)
        return compacted

    def _compact_packs(self, folder: str, names: list[str], pins: list[PinRow]) -> int:
        state = self.state
        assert state is not None
        ensure_directory(self.scratch_dir)
        moved: list[PinRow] = []
        target = pack_name(folder)
        if pins:
            scratch = self.scratch_dir / f"{os.getpid()}-compact-{id(pins)}.car"
            writer = PackWriter(scratch, len(pins), self.profile.dag_pb_cid_len, fsync=self.fsync)
            try:
                for pin in pins:
                    assert pin.car_path is not None and pin.car_offset is not None and pin.car_length is not None
                    writer.begin()
                    for chunk in read_range(self.car_dir / pin.car_path, pin.car_offset, pin.car_length, pin.root_cid):
                        writer.out.write(chunk)
                    placed = writer.commit(parse_cid(pin.root_cid).bytes)
                    moved.append(PinRow(pin.backend, pin.repo_type, pin.id, pin.root_cid, pin.profile, target,
                                        pin.pinned_at, placed.offset, placed.length))  # fmt: skip
                size = writer.finish(self.car_dir / target)
            except BaseException:
                writer.abort()
                raise
        else:
            size = 0
        dead = state.submit(move_pins, names, moved, target, size, utc_now(), self.output_dir, self.car_dir).result()
        self._delete_cars(dead)
        return len(names)

    async def unpin_deleted(self) -> int:
        """Unpin every pin of an entity marked deleted, and forget it; how many were removed."""
        backend, state = self.backend, self.state
        assert backend is not None and state is not None
        removed = 0
        for row in await state.call(deleted_pins, backend.name):
            label = entity_label(row.repo_type, row.id)
            others = [p for p in await state.call(pins_of_root, row.root_cid, row.backend) if p != row]
            if not others:
                await backend.unpin(row.root_cid, label)
            if await state.call(remove_pin, row.backend, row.repo_type, row.id, row.root_cid):
                removed += 1
        if removed:
            self.stats.inc_value("hfscraper/ipfs/unpin/deleted", removed)
            logger.info(
                "IPFS: unpinned %(n)d deleted entit%(ies)s from %(backend)s",
                {"n": removed, "ies": "y" if removed == 1 else "ies", "backend": backend.describe()},
            )
        return removed

    def _fail(self, reason: str, label: str, exc: BaseException) -> NoReturn:
        # Any failure may be a consequence (a CAR gone with its folder): the guard looks at the folders too.
        if self.guard.handle(exc) is not None:
            # A full disk, or the output or state folder gone: logged once, the crawl stops, the entity is redone.
            self.guard.dropped()
            raise StageFailed(STAGE, f"IPFS stage stopped for {label}: {exc}")
        self.stats.inc_value("hfscraper/ipfs/failed")
        self.stats.inc_value(f"hfscraper/ipfs/failed/{reason}")
        logger.error("IPFS: %(entity)s not addressed and pinned: %(error)s", {"entity": label, "error": exc})
        raise StageFailed(STAGE, f"IPFS stage failed for {label}: {exc}")
