"""`IpfsPipeline`: content-address every stored entity folder, write its CAR and pin its root.

It runs at ITEM_PIPELINES 300, after every pipeline that writes into the entity folder (`metadata.json`, the
downloaded files, the previews), so it sees the folder as the crawl leaves it. For each Hub item:

1. **File CIDs.** Every file in the folder gets the CID `ipfs add` gives it with the profile
   (`HFSCRAPER_IPFS_PROFILE`); each entry of `item.files` (the files stage's list) whose file is in the folder
   gets it as `"cid"`, and all of them go to the crawl state's `cids` table.
2. **The folder's CID**, as `ipfs add -r --hidden` with the profile's parameters gives the folder without
   `ipfs_cid.txt` itself, `tombstone.json` (crawl bookkeeping: a full sweep no longer found the entity; adding or
   removing it must not change the address of the content) and leftovers of interrupted writes
   (`.hfscraper-tmp-*`). Written to `ipfs_cid.txt` in the folder (the CID and a newline, atomically; not
   rewritten when unchanged) and to the state (path "").
3. **The CAR**: CARv1 with that single root at `<car_dir>/<type>/<folder>.car` (`HFSCRAPER_IPFS_CAR_DIR`,
   default `<output_dir>/car`), outside the entity folder, atomically; not rewritten when its root is unchanged.
   `ipfs dag import` takes it as it is.
4. **The pin** on the backend (`HFSCRAPER_IPFS_BACKEND`, `hfscraper.ipfs.backends`): the backend must confirm
   exactly this root as pinned. A pin already recorded for the same root and still in place is not redone; the
   root of an older version of the same entity is unpinned once the new one is pinned. Every pin is recorded in
   the state's `pins` table (root CID, entity, backend, CAR, time).
5. With `HFSCRAPER_IPFS_VERIFY_ADD` and the `kubo` backend, each file is also `add`ed on the node
   (`only-hash`) and the node's CID must equal ours.

Hashing and disk work run in worker threads, never on the reactor; the node is called with aiohttp.

A failure (the node unreachable or refusing, a CID that differs from ours, a file that cannot be read) is one
ERROR line and `StageFailed`: the item goes no further, its listing page is not checkpointed, the crawl is
incomplete (exit code 1) and the next run does the entity again. A kubo node that does not answer when the
crawl starts closes the spider at once (finish reason `ipfs_unavailable`).

With `HFSCRAPER_IPFS_UNPIN_DELETED`, the pins of entities that a full sweep marked deleted are removed from the
backend and the state when the crawl that marked them ends (`engine_stopped`) and when any later crawl starts.

Settings (read once): HFSCRAPER_IPFS_ENABLED, HFSCRAPER_IPFS_PROFILE, HFSCRAPER_IPFS_BACKEND, HFSCRAPER_IPFS_API,
HFSCRAPER_IPFS_CAR_DIR, HFSCRAPER_IPFS_UNPIN_DELETED, HFSCRAPER_IPFS_VERIFY_ADD, HFSCRAPER_IPFS_TIMEOUT,
HFSCRAPER_IPFS_CONNECT_TIMEOUT; HFSCRAPER_OUTPUT_DIR, HFSCRAPER_STATE_DIR, HFSCRAPER_STORE_FSYNC.

Stats: hfscraper/ipfs/entities, hfscraper/ipfs/files (file CIDs computed), hfscraper/ipfs/bytes (bytes in the
addressed folders), hfscraper/ipfs/cid_file/written|unchanged, hfscraper/ipfs/car/written|unchanged,
hfscraper/ipfs/car/bytes (written), hfscraper/ipfs/pin/pinned|unchanged, hfscraper/ipfs/unpin/superseded,
hfscraper/ipfs/unpin/failed, hfscraper/ipfs/verify/matched, hfscraper/ipfs/verify/skipped,
hfscraper/ipfs/failed and hfscraper/ipfs/failed/<reason> (`node`, `mismatch`, `pin`, `disk`, `folder`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn, Self

from itemadapter import ItemAdapter
from scrapy import signals
from scrapy.exceptions import CloseSpider, NotConfigured
from scrapy.utils.asyncio import is_asyncio_available

from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.exceptions import IpfsCidMismatchError, IpfsError, IpfsPinError
from hfscraper.extensions.checkpoint import state_location
from hfscraper.fsutil import (
    TEMP_PREFIX,
    ensure_directory,
    fsync_directory,
    sweep_dead_temp_files,
    write_if_changed,
)
from hfscraper.hub import HostileIdError, entity_folder_name
from hfscraper.ipfs import directory_cid, file_cid, write_car
from hfscraper.ipfs.backends import IpfsBackend, build_backend, car_root
from hfscraper.ipfs.kubo import node_builds_same_dag
from hfscraper.ipfs.pins import (
    FOLDER_PATH,
    CidRecord,
    PinRow,
    deleted_pins,
    pin_of,
    pins_of_root,
    record_cids,
    record_pin,
    remove_pin,
)
from hfscraper.ipfs.profiles import get_profile
from hfscraper.items import HubEntityItem
from hfscraper.pipelines import StageFailed
from hfscraper.resources import ResourceGuard
from hfscraper.state import TOMBSTONE_FILE, SharedStateStore, utc_now

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

    from hfscraper.ipfs.profiles import Profile

logger = logging.getLogger(__name__)

STAGE: Final = "ipfs"
#: The file in each entity folder that holds the folder's CID.
CID_FILE: Final = "ipfs_cid.txt"
#: Files of an entity folder that are not part of its content address (besides temporary files).
NOT_ADDRESSED: Final = frozenset({CID_FILE, TOMBSTONE_FILE})
#: Folder (under the output folder) of the CARs when HFSCRAPER_IPFS_CAR_DIR is unset.
DEFAULT_CAR_FOLDER: Final = "car"
#: The folder under the CAR folder where CARs are written before they are renamed into place.
SCRATCH_FOLDER: Final = ".tmp"
#: Worker threads hashing and writing CARs.
HASH_WORKERS: Final = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Addressed:
    """What `address_folder` computed and wrote for one entity folder."""

    root: str
    files: tuple[CidRecord, ...]
    total_size: int
    cid_file_written: bool
    car_path: Path
    car_written: bool
    car_size: int


def entity_label(repo_type: str, repo_id: str) -> str:
    return f"{repo_type}:{repo_id}"


def not_addressed(folder: Path) -> tuple[frozenset[str], list[tuple[str, Path, int]]]:
    """The relative paths of *folder* left out of its CID, and `(relative path, path, size)` of every regular file
    that is in it, sorted by path."""
    excluded = set(NOT_ADDRESSED)
    files: list[tuple[str, Path, int]] = []
    for top, dirs, names in os.walk(folder):
        rel_top = os.path.relpath(top, folder)
        prefix = "" if rel_top == "." else rel_top.replace(os.sep, "/") + "/"
        for name in [*dirs, *names]:
            if name.startswith(TEMP_PREFIX):
                excluded.add(prefix + name)
        dirs[:] = [d for d in dirs if not d.startswith(TEMP_PREFIX)]
        for name in names:
            rel = prefix + name
            if rel in excluded:
                continue
            path = Path(top) / name
            st = path.lstat()
            if path.is_file() and not path.is_symlink():
                files.append((rel, path, st.st_size))
    files.sort(key=lambda f: f[0].encode("utf-8", "surrogateescape"))
    return frozenset(excluded), files


def address_folder(
    folder: Path, car_path: Path, profile: Profile, *, scratch: Path | None = None, fsync: bool = False
) -> Addressed:
    """Compute the CIDs of *folder* and its files, write `ipfs_cid.txt` and the CAR at *car_path* (each only when
    changed); blocking. The CAR is written at *scratch* (default: beside *car_path*) and then renamed into place.
    Raises OSError, or IpfsError when the folder changed while it was being read."""
    excluded, listed = not_addressed(folder)
    records = tuple(CidRecord(rel, file_cid(path, profile), size) for rel, path, size in listed)
    previous = car_root(car_path)
    car_written = False
    root = None if previous is None else directory_cid(folder, profile, excluded)
    if root is None or root != previous:
        written = _write_car(folder, car_path, scratch or car_path, profile, excluded, fsync)
        if root is not None and written != root:
            raise IpfsError(f"{folder} changed while it was being addressed ({root}, then {written})")
        root, car_written = written, True
    cid_file_written = write_if_changed(folder / CID_FILE, f"{root}\n".encode("ascii"), fsync=fsync)
    total = sum(r.size for r in records)
    return Addressed(root, records, total, cid_file_written, car_path, car_written, car_path.stat().st_size)


def _write_car(
    folder: Path, car_path: Path, scratch: Path, profile: Profile, excluded: frozenset[str], fsync: bool
) -> str:
    root = write_car(folder, scratch, profile, excluded, fsync=fsync)
    if scratch != car_path:
        os.replace(scratch, car_path)
        if fsync:
            fsync_directory(car_path.parent)
    return root


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
        self.state_file, self.output_dir = state_location(settings)
        car_dir = settings.get("HFSCRAPER_IPFS_CAR_DIR")
        self.car_dir = (
            Path(os.path.abspath(os.path.expanduser(car_dir))) if car_dir else self.output_dir / DEFAULT_CAR_FOLDER
        )
        #: CARs being written (`<pid>-<type>-<folder>.car` and the writer's own temporary files).
        self.scratch_dir = self.car_dir / SCRATCH_FOLDER
        self.fsync: bool = settings.getbool("HFSCRAPER_STORE_FSYNC", False)
        self.unpin_deleted_enabled: bool = settings.getbool("HFSCRAPER_IPFS_UNPIN_DELETED", False)
        self.verify_add: bool = settings.getbool("HFSCRAPER_IPFS_VERIFY_ADD", False) and self.backend_name != "embedded"
        self.state: SharedStateStore | None = None
        self.backend: IpfsBackend | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._roots: dict[str, Path] = {}
        self.guard = ResourceGuard.of(crawler)
        crawler.signals.connect(self.engine_stopped, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    # -- start and end --------------------------------------------------------------------------------------

    async def open_spider(self) -> None:
        if not is_asyncio_available():
            raise IpfsError("IpfsPipeline needs Scrapy's asyncio reactor (TWISTED_REACTOR)")
        self._executor = concurrent.futures.ThreadPoolExecutor(HASH_WORKERS, thread_name_prefix="hfscraper-ipfs")
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
            "IPFS: profile %(profile)s, pins on %(backend)s (%(version)s), CARs in %(cars)s",
            {
                "profile": self.profile.name, "backend": self.backend.describe(),
                "version": version.get("Version"), "cars": self.car_dir,
            },
        )  # fmt: skip
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
            if self.unpin_deleted_enabled and self.backend is not None and self.state is not None:
                try:
                    await self.unpin_deleted()
                except IpfsError as exc:
                    logger.error("IPFS: could not unpin deleted entities: %(error)s", {"error": exc})
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
        if self.backend is None or self.state is None or self._executor is None:
            self._fail("node", label, IpfsError("the IPFS pipeline is not open"))
        try:
            folder = self._folder(repo_type, repo_id)
        except (HostileIdError, IpfsError) as exc:
            self._fail("folder", label, exc)
        car_path = self.car_dir / OUTPUT_FOLDERS[repo_type] / f"{folder.name}.car"
        loop = asyncio.get_running_loop()
        try:
            done = await loop.run_in_executor(self._executor, self._address, folder, car_path)
        except IpfsError as exc:
            self._fail("folder", label, exc)
        except OSError as exc:
            self._fail("disk", label, exc)
        self._count(done)
        cids = {r.path: r.cid for r in done.files}
        files = ItemAdapter(item).get("files")
        for entry in files or ():
            if isinstance(entry, dict) and entry.get("path") in cids:
                entry["cid"] = cids[entry["path"]]
        records = (*done.files, CidRecord(FOLDER_PATH, done.root, done.total_size))
        try:
            await self.state.call(record_cids, repo_type, repo_id, self.profile.name, records, utc_now())
            if self.verify_add:
                await self._verify_add(folder, done, label)
            await self._pin(repo_type, repo_id, done, label)
        except IpfsCidMismatchError as exc:
            self._fail("mismatch", label, exc)
        except IpfsPinError as exc:
            self._fail("pin", label, exc)
        except IpfsError as exc:
            self._fail("node", label, exc)
        except OSError as exc:  # the state file
            self._fail("disk", label, exc)
        except sqlite3.OperationalError as exc:  # the state file's disk is full or read-only, or anything else
            self._fail("disk", label, exc)
        return item

    def _folder(self, repo_type: str, repo_id: str) -> Path:
        root = self._roots.get(repo_type)
        if root is None:
            root = self._roots[repo_type] = Path(os.path.realpath(self.output_dir / OUTPUT_FOLDERS[repo_type]))
        folder = root / entity_folder_name(repo_id)
        resolved = Path(os.path.realpath(folder))
        if resolved.parent != root or not (resolved / "metadata.json").is_file():
            raise IpfsError(f"{folder} is not a stored entity folder (no metadata.json); nothing to address")
        return resolved

    def _address(self, folder: Path, car_path: Path) -> Addressed:
        ensure_directory(car_path.parent)
        ensure_directory(self.scratch_dir)
        # Written in the scratch folder, then renamed into place: what a kill -9 leaves is only ever there.
        scratch = self.scratch_dir / f"{os.getpid()}-{car_path.parent.name}-{car_path.name}"
        return address_folder(folder, car_path, self.profile, scratch=scratch, fsync=self.fsync)

    def _count(self, done: Addressed) -> None:
        inc = self.stats.inc_value
        inc("hfscraper/ipfs/entities")
        inc("hfscraper/ipfs/files", len(done.files))
        inc("hfscraper/ipfs/bytes", done.total_size)
        inc(f"hfscraper/ipfs/cid_file/{'written' if done.cid_file_written else 'unchanged'}")
        inc(f"hfscraper/ipfs/car/{'written' if done.car_written else 'unchanged'}")
        if done.car_written:
            inc("hfscraper/ipfs/car/bytes", done.car_size)

    async def _verify_add(self, folder: Path, done: Addressed, label: str) -> None:
        assert self.backend is not None
        for record in done.files:
            if not node_builds_same_dag(record.size, self.profile):
                self.stats.inc_value("hfscraper/ipfs/verify/skipped")
                continue
            got = await self.backend.add_file(folder / record.path, self.profile)
            if got != record.cid:
                raise IpfsCidMismatchError(
                    f"`add` of {record.path} on the node gives another CID", expected=record.cid, got=got, entity=label
                )
            self.stats.inc_value("hfscraper/ipfs/verify/matched")

    async def _pin(self, repo_type: str, repo_id: str, done: Addressed, label: str) -> None:
        backend, state = self.backend, self.state
        assert backend is not None and state is not None
        previous: PinRow | None = await state.call(pin_of, backend.name, repo_type, repo_id)
        if previous is not None and previous.root_cid == done.root and await backend.is_pinned(done.root):
            self.stats.inc_value("hfscraper/ipfs/pin/unchanged")
            if previous.car_path != str(done.car_path) or previous.profile != self.profile.name:
                await state.call(record_pin, self._pin_row(repo_type, repo_id, done, previous.pinned_at))
            return
        await backend.add_car(done.car_path, done.root, label)
        await state.call(record_pin, self._pin_row(repo_type, repo_id, done, utc_now()))
        self.stats.inc_value("hfscraper/ipfs/pin/pinned")
        if previous is not None and previous.root_cid != done.root:
            await self._unpin_superseded(previous, label)

    def _pin_row(self, repo_type: str, repo_id: str, done: Addressed, when: str) -> PinRow:
        assert self.backend is not None
        return PinRow(self.backend.name, repo_type, repo_id, done.root, self.profile.name, str(done.car_path), when)

    async def _unpin_superseded(self, old: PinRow, label: str) -> None:
        assert self.backend is not None and self.state is not None
        if await self.state.call(pins_of_root, old.root_cid, old.backend):
            return  # another entity (or this one again) still pins the same root
        try:
            await self.backend.unpin(old.root_cid, label)
        except IpfsError as exc:
            self.stats.inc_value("hfscraper/ipfs/unpin/failed")
            logger.warning(
                "IPFS: could not unpin the superseded root of %(entity)s: %(error)s", {"entity": label, "error": exc}
            )
            return
        self.stats.inc_value("hfscraper/ipfs/unpin/superseded")

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
