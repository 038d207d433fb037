"""The capacity check: a crawl stops cleanly before the output or state file system runs out of space or inodes.

`hfscraper.resources` reacts to a write that already failed (ENOSPC); this module keeps it from happening. It
watches `os.statvfs` of the file systems the output folder and the state folder live on (once when both are on
the same one, told apart by `st_dev`):

- Before a crawl starts (`start_refusal(settings)`, called by the crawl commands with the other folder checks):
  a file system with less free space or fewer free inodes than the reserve plus room for the first listing page
  (at the conservative prior per entity below) refuses the start with one line and exit 2, before any feed,
  state file or folder is created.
- During the crawl (`CapacityExtension`): every HFSCRAPER_CAPACITY_CHECK_INTERVAL seconds (two statvfs calls, never
  per write) it estimates the bytes and inodes one stored entity costs on each file system (what the file system
  lost since the crawl started / the entities stored since; the larger of that and the prior while fewer than
  `SETTLED` entities are stored), and how many more entities fit above the reserve. When fewer fit than the crawl
  may still store before a stop takes effect (each spider's page in flight, whose items are all stored when the
  spider closes, one request per slot, plus two check intervals at the fastest rate seen), it stops the crawl
  through the ResourceGuard with finish reason `disk_full` and one line: the file system's mount point, the free
  bytes and inodes, the reserve, the cost per entity and the room left ("room for about N more entities"; with
  max_items also what the crawl still has to store). The stop is like any `disk_full` stop: nothing is
  half-written and the same command continues once there is room.

The reserve of a file system is max(HFSCRAPER_CAPACITY_MIN_FREE_BYTES, HFSCRAPER_CAPACITY_MIN_FREE_FRACTION of its
size) bytes and max(HFSCRAPER_CAPACITY_MIN_FREE_INODES, the same fraction of its inodes) inodes; a file system
without an inode limit (statvfs reports 0 inodes, as btrfs does) is only checked for bytes. An interval of 0 turns
the whole check off.

Every crawler of a process that writes into the same folders (`scrapy crawlall`) shares one watch: the usage of
the file system is divided by the entities all of them stored.

Stats: hfscraper/capacity/checks, hfscraper/capacity/room (entities that fit at the last check),
hfscraper/capacity/bytes_per_entity and hfscraper/capacity/inodes_per_entity (the estimate of the fullest file
system at the last check), hfscraper/capacity/stopped (1 when the check stopped the crawl).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from scrapy import signals
from scrapy.exceptions import NotConfigured

from hfscraper.resources import DISK_FULL, ResourceFailure, ResourceGuard

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings
    from scrapy.spiders import Spider

logger = logging.getLogger(__name__)

#: What one entity is assumed to cost before the crawl has measured it: more than a metadata crawl with CIDs,
#: CARs and provenance costs today (23 KiB and 5 inodes on the output file system, 1.5 KB of state).
PRIOR_OUTPUT_BYTES: Final = 64 * 1024
PRIOR_OUTPUT_INODES: Final = 8
PRIOR_STATE_BYTES: Final = 4 * 1024
#: Below this many stored entities the estimate is never less than the prior (a few entities say little).
SETTLED: Final = 100
ADVICE: Final = (
    "free some space there, point the crawl at a bigger disk, or lower HFSCRAPER_CAPACITY_MIN_FREE_BYTES / "
    "_MIN_FREE_INODES / _MIN_FREE_FRACTION"
)


def _size(count: float) -> str:
    n = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Reserve:
    """What must stay free on every file system the crawl writes to."""

    min_bytes: int
    min_inodes: int
    fraction: float

    @classmethod
    def from_settings(cls, settings: BaseSettings) -> Self:
        return cls(
            min_bytes=settings.getint("HFSCRAPER_CAPACITY_MIN_FREE_BYTES", 1024**3),
            min_inodes=settings.getint("HFSCRAPER_CAPACITY_MIN_FREE_INODES", 100_000),
            fraction=settings.getfloat("HFSCRAPER_CAPACITY_MIN_FREE_FRACTION", 0.01),
        )

    def bytes_of(self, total: int) -> int:
        return max(self.min_bytes, math.ceil(self.fraction * total))

    def inodes_of(self, total: int) -> int:
        return max(self.min_inodes, math.ceil(self.fraction * total)) if total else 0


@dataclass(frozen=True)
class Usage:
    """One statvfs reading: what is free to an unprivileged writer, and the totals."""

    free_bytes: int
    free_inodes: int
    total_bytes: int
    total_inodes: int

    @classmethod
    def of(cls, path: Path) -> Self:
        st = os.statvfs(path)
        return cls(
            free_bytes=st.f_bavail * st.f_frsize,
            free_inodes=st.f_favail,
            total_bytes=st.f_blocks * st.f_frsize,
            total_inodes=st.f_files,
        )


def existing_ancestor(path: Path) -> Path:
    """*path*, or its closest ancestor that exists (a folder the crawl will create lives on that one's file system)."""
    current = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    while not os.path.lexists(current) and current.parent != current:
        current = current.parent
    return current


def mount_point(path: Path) -> Path:
    current = Path(os.path.realpath(path))
    while not os.path.ismount(current) and current.parent != current:
        current = current.parent
    return current


@dataclass
class FileSystem:
    """A file system the crawl writes to, with the roles it holds (`output`, `state`) and what an entity costs."""

    probe: Path
    mount: Path
    roles: list[str]
    prior_bytes: int = 0
    prior_inodes: int = 0
    baseline: Usage | None = None

    @property
    def label(self) -> str:
        folders = " and ".join(self.roles) + (" folders" if len(self.roles) > 1 else " folder")
        return f"{self.mount} (the file system of the {folders})"

    def per_entity(self, now: Usage, entities: int) -> tuple[float, float]:
        """(bytes, inodes) one stored entity costs here: measured since the baseline, never below the prior
        before `SETTLED` entities."""
        assert self.baseline is not None
        if entities <= 0:
            return float(self.prior_bytes), float(self.prior_inodes)
        used_bytes = max(0, self.baseline.free_bytes - now.free_bytes) / entities
        used_inodes = max(0, self.baseline.free_inodes - now.free_inodes) / entities
        if entities < SETTLED:
            return max(used_bytes, self.prior_bytes), max(used_inodes, self.prior_inodes)
        return used_bytes, used_inodes


def file_systems(settings: BaseSettings) -> list[FileSystem]:
    """The file systems of the output and state folders (one entry when they share one), with their priors."""
    folders = (
        ("output", settings.get("HFSCRAPER_OUTPUT_DIR") or "output", PRIOR_OUTPUT_BYTES, PRIOR_OUTPUT_INODES),
        ("state", settings.get("HFSCRAPER_STATE_DIR") or "state", PRIOR_STATE_BYTES, 0),
    )
    found: dict[int, FileSystem] = {}
    for role, folder, prior_bytes, prior_inodes in folders:
        probe = existing_ancestor(Path(folder))
        device = os.stat(probe).st_dev
        fs = found.get(device)
        if fs is None:
            fs = found[device] = FileSystem(probe=probe, mount=mount_point(probe), roles=[])
        fs.roles.append(role)
        fs.prior_bytes += prior_bytes
        fs.prior_inodes += prior_inodes
    return list(found.values())


def _fit(above_reserve: int, per_entity: float) -> float:
    """Entities that fit in what is left above the reserve (none once below it, even at no cost per entity)."""
    if above_reserve < 0:
        return 0
    return above_reserve / per_entity if per_entity > 0 else math.inf


@dataclass(frozen=True)
class Room:
    """How many more entities fit on one file system above its reserve, and the numbers that say so."""

    fs: FileSystem
    usage: Usage
    reserve_bytes: int
    reserve_inodes: int
    bytes_per_entity: float
    inodes_per_entity: float
    entities: int

    @classmethod
    def measure(cls, fs: FileSystem, usage: Usage, reserve: Reserve, per_entity: tuple[float, float]) -> Self:
        reserve_bytes, reserve_inodes = reserve.bytes_of(usage.total_bytes), reserve.inodes_of(usage.total_inodes)
        per_bytes, per_inodes = per_entity
        fits = [_fit(usage.free_bytes - reserve_bytes, per_bytes)]
        if usage.total_inodes:
            fits.append(_fit(usage.free_inodes - reserve_inodes, per_inodes))
        room = min(fits)
        entities = max(0, math.floor(room)) if room != math.inf else 2**62
        return cls(fs, usage, reserve_bytes, reserve_inodes, per_bytes, per_inodes, entities)

    def numbers(self) -> str:
        """`12.0 MiB and 350 inodes free, the reserve is ...; at ... per entity there is room for about N more`."""
        inodes = bool(self.usage.total_inodes)
        free = _size(self.usage.free_bytes) + (f" and {self.usage.free_inodes:,} inodes" if inodes else "")
        reserve = _size(self.reserve_bytes) + (f" and {self.reserve_inodes:,} inodes" if inodes else "")
        cost = _size(self.bytes_per_entity) + (f" and {self.inodes_per_entity:.1f} inodes" if inodes else "")
        return (
            f"{free} free, the reserve is {reserve}; at {cost} per entity there is room for about "
            f"{self.entities:,} more entities"
        )


def start_refusal(settings: BaseSettings) -> str | None:
    """Why a crawl must not start for lack of room (one line), or None; reads statvfs only, creates nothing."""
    interval = settings.getfloat("HFSCRAPER_CAPACITY_CHECK_INTERVAL", 1.0)
    if interval <= 0:
        return None
    reserve = Reserve.from_settings(settings)
    first_page = settings.getint("HFSCRAPER_CRAWL_PAGE_SIZE", 1000)
    for fs in file_systems(settings):
        try:
            usage = Usage.of(fs.probe)
        except OSError:
            continue  # the folder checks before this one say what is wrong with the folder
        room = Room.measure(fs, usage, reserve, (float(fs.prior_bytes), float(fs.prior_inodes)))
        if room.entities < first_page:
            return (
                f"not starting: {fs.label} is too full for the crawl: {room.numbers()}, fewer than one listing "
                f"page ({first_page:,}); {ADVICE}"
            )
    return None


@dataclass
class _Watch:
    """The file systems of one pair of folders, shared by every crawler of the process writing into them."""

    systems: list[FileSystem]
    crawlers: list[Crawler] = field(default_factory=list)
    #: The most entities stored between two checks so far.
    burst: int = 0
    last_entities: int = 0


_WATCHES: dict[tuple[Path, ...], _Watch] = {}


def _stored(crawler: Crawler) -> int:
    stats = crawler.stats
    return int(stats.get_value("hfscraper/state/recorded", 0) or 0) if stats is not None else 0


class CapacityExtension:
    """Stops the crawl with `disk_full` before the output or state file system falls below its reserve."""

    def __init__(self, crawler: Crawler, interval: float) -> None:
        self.crawler = crawler
        self.interval = interval
        self.reserve = Reserve.from_settings(crawler.settings)
        self.guard = ResourceGuard.of(crawler)
        self.watch: _Watch | None = None
        self._task: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        interval = crawler.settings.getfloat("HFSCRAPER_CAPACITY_CHECK_INTERVAL", 1.0)
        if interval <= 0:
            raise NotConfigured("HFSCRAPER_CAPACITY_CHECK_INTERVAL is 0: no capacity check")
        extension = cls(crawler, interval)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider: Spider) -> None:
        key = self.guard.folders
        watch = _WATCHES.get(key)
        if watch is None:
            systems = file_systems(self.crawler.settings)
            for fs in systems:
                fs.baseline = Usage.of(fs.probe)
            watch = _WATCHES[key] = _Watch(systems)
        watch.crawlers.append(self.crawler)
        self.watch = watch
        self._task = asyncio.ensure_future(self._loop())

    def spider_closed(self, spider: Spider) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        watch = self.watch
        if watch is not None and self.crawler in watch.crawlers:
            watch.crawlers.remove(self.crawler)
            if not watch.crawlers:
                _WATCHES.pop(self.guard.folders, None)

    async def _loop(self) -> None:
        while self.guard.stopped is None:
            watch = self.watch
            # One check per interval for the whole watch: the first crawler still open makes it.
            if watch is not None and watch.crawlers and watch.crawlers[0] is self.crawler:
                try:
                    self.check()
                except OSError as exc:  # a folder gone: the ResourceGuard's business, not a capacity problem
                    logger.debug("capacity check skipped: %(error)s", {"error": exc})
            await asyncio.sleep(self.interval)

    @staticmethod
    def lookahead(crawlers: list[Crawler], burst: int) -> int:
        """Entities the crawl may still store after a stop is decided: per spider, the page in flight (every item
        of a page already received is stored before the spider closes) and one request per slot; and two
        intervals' worth at the fastest rate seen."""
        in_flight = 0
        for crawler in crawlers:
            page = getattr(crawler.spider, "page_size", 0) or crawler.settings.getint("HFSCRAPER_CRAWL_PAGE_SIZE")
            in_flight += int(page) + crawler.settings.getint("CONCURRENT_REQUESTS", 16)
        return in_flight + 2 * burst

    def check(self) -> Room | None:
        """One check; stops the crawl (and returns the tightest Room) when too little is left, else None."""
        watch = self.watch
        if watch is None:
            return None
        entities = sum(_stored(c) for c in watch.crawlers)
        watch.burst = max(watch.burst, entities - watch.last_entities)
        watch.last_entities = entities
        rooms = [
            Room.measure(fs, usage, self.reserve, fs.per_entity(usage, entities))
            for fs in watch.systems
            for usage in (Usage.of(fs.probe),)
        ]
        tightest = min(rooms, key=lambda r: r.entities)
        stats = self.crawler.stats
        if stats is not None:
            stats.inc_value("hfscraper/capacity/checks")
            stats.set_value("hfscraper/capacity/room", tightest.entities)
            stats.set_value("hfscraper/capacity/bytes_per_entity", round(tightest.bytes_per_entity))
            stats.set_value("hfscraper/capacity/inodes_per_entity", round(tightest.inodes_per_entity, 2))
        if tightest.entities >= self.lookahead(watch.crawlers, watch.burst):
            return None
        for crawler in watch.crawlers:
            if crawler.stats is not None:
                crawler.stats.set_value("hfscraper/capacity/stopped", 1)
        self.guard.stop(
            ResourceFailure(
                DISK_FULL, str(tightest.fs.mount), "the file system is nearly full", detail=self._detail(tightest),
                advice=ADVICE,
            )
        )  # fmt: skip
        return tightest

    def _detail(self, room: Room) -> str:
        text = f" ({' and '.join(room.fs.roles)}): {room.numbers()}"
        left = _left(self.watch.crawlers if self.watch is not None else [self.crawler])
        if left is not None:
            text += (
                f"; the crawl has up to {left:,} more to store (max_items), about "
                f"{_size(left * room.bytes_per_entity)}"
                + (f" and {math.ceil(left * room.inodes_per_entity):,} inodes" if room.usage.total_inodes else "")
            )
        return text + ", and the crawl stops before it gets below the reserve"


def _left(crawlers: list[Crawler]) -> int | None:
    """Entities these crawls still have to store when each has a max_items, else None (a listing's length is not
    known before its last page)."""
    left = 0
    for crawler in crawlers:
        max_items = int(getattr(crawler.spider, "max_items", 0) or 0)
        if not max_items or crawler.stats is None:
            return None
        get = crawler.stats.get_value
        left += max(0, max_items - sum(int(get(k, 0) or 0) for k in ("hfscraper/state/recorded", "deltafetch/skipped")))
    return left


# ---------------------------------------------------------------------------------------------------------
# What the mirror uses (`scrapy status`)
# ---------------------------------------------------------------------------------------------------------


def file_system_totals(settings: BaseSettings) -> list[dict[str, Any]]:
    """Per file system of the output and state folders: mount point, roles, used and free bytes and inodes, and the
    reserve the capacity check keeps (statvfs only: as cheap at 5M entities as at 5)."""
    reserve = Reserve.from_settings(settings)
    rows = []
    for fs in file_systems(settings):
        usage = Usage.of(fs.probe)
        st = os.statvfs(fs.probe)
        rows.append(
            {
                "mount": str(fs.mount), "roles": fs.roles,
                "bytes_total": usage.total_bytes, "bytes_used": (st.f_blocks - st.f_bfree) * st.f_frsize,
                "bytes_free": usage.free_bytes, "bytes_reserve": reserve.bytes_of(usage.total_bytes),
                "inodes_total": usage.total_inodes, "inodes_used": st.f_files - st.f_ffree,
                "inodes_free": usage.free_inodes, "inodes_reserve": reserve.inodes_of(usage.total_inodes),
            }
        )  # fmt: skip
    return rows


def _walk(root: Path) -> tuple[int, int]:
    """(bytes on disk, inodes) of everything under *root*, itself included; (0, 0) when it does not exist.

    One lstat per entry (os.scandir), following no symlink; a hard-linked file counts once per name."""
    try:
        st = os.lstat(root)
    except OSError:
        return 0, 0
    size, inodes = st.st_blocks * 512, 1
    stack = [root] if os.path.isdir(root) and not os.path.islink(root) else []
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # vanished or unreadable while walking: what is left is still counted
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                size += st.st_blocks * 512
                inodes += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
    return size, inodes


def mirror_usage(output: Path, car_dir: Path, state_file: Path) -> dict[str, dict[str, int]]:
    """Bytes on disk and inodes per part of the mirror, by walking it (one lstat per file: minutes at 5M entities,
    so `scrapy status` does it only when asked with --usage): `<type> folders` per output type, `<type> CARs`
    per CAR subfolder, `provenance`, `state` (the state file with its WAL), `other` (the rest of the output
    folder)."""
    from hfscraper.constants import OUTPUT_FOLDERS
    from hfscraper.ipfs.packs import PACK_FOLDER
    from hfscraper.provenance.freshness import PROVENANCE_FOLDER

    usage: dict[str, dict[str, int]] = {}

    def add(part: str, path: Path) -> None:
        size, inodes = _walk(path)
        entry = usage.setdefault(part, {"bytes": 0, "inodes": 0})
        entry["bytes"] += size
        entry["inodes"] += inodes

    type_of_folder = {folder: repo_type for repo_type, folder in OUTPUT_FOLDERS.items()}
    known = {output / folder for folder in OUTPUT_FOLDERS.values()} | {car_dir, output / PROVENANCE_FOLDER}
    for folder, repo_type in type_of_folder.items():
        add(f"{repo_type} folders", output / folder)
    try:
        car_entries = sorted(os.scandir(car_dir), key=lambda e: e.name)
    except OSError:
        car_entries = []
    for entry in car_entries:
        if entry.name == PACK_FOLDER and entry.is_dir(follow_symlinks=False):
            # Packs (the default layout), packs/<type>/: counted per type, as the per-entity layout's <type>/ is.
            usage.setdefault("CARs (other)", {"bytes": 0, "inodes": 0})["inodes"] += 1  # the packs folder itself
            for sub in sorted(os.scandir(entry.path), key=lambda e: e.name):
                repo_type = type_of_folder.get(sub.name)
                add(f"{repo_type} CARs" if repo_type else "CARs (other)", Path(sub.path))
            continue
        repo_type = type_of_folder.get(entry.name)
        add(f"{repo_type} CARs" if repo_type else "CARs (other)", Path(entry.path))
    add(PROVENANCE_FOLDER, output / PROVENANCE_FOLDER)
    for suffix in ("", "-wal", "-shm"):
        add("state", state_file.with_name(state_file.name + suffix))
    try:
        rest = [Path(e.path) for e in os.scandir(output) if Path(e.path) not in known]
    except OSError:
        rest = []
    for path in rest:
        add("other", path)
    return {part: counts for part, counts in usage.items() if counts["inodes"]}
