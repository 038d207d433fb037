"""`EntityStorePipeline`: write each Hub entity's `metadata.json` into the entity tree.

`output_dir/{models,datasets,spaces}/<folder>/metadata.json`, where `<folder>` is
`hfscraper.hub.entity_folder_name(id)` (the rule is in that module's docstring). The file holds
`item.to_api()` as `json.dumps(..., ensure_ascii=False, indent=2)` plus a newline, in UTF-8 (rendered by orjson
wherever that gives the same bytes, see `render_metadata`). It is written
atomically (a temporary file in the same folder, then `os.replace`), and not at all when it already holds
the same bytes. Disk work (and the JSON encoding) runs in worker threads, off the reactor: the items that
arrive in the same event-loop turn (up to 64) share one thread hop, which costs more CPU than an
unchanged file's whole check when paid per item.

Nothing is ever written outside the output folder: ids are refused or encoded by the folder rule, and the
resolved target folder must also be a direct child of the resolved `output_dir/<type>` folder (so a
symlink planted in the tree cannot redirect a write either).

Settings (read once):

HFSCRAPER_OUTPUT_DIR - the entity tree's root (default `output`, resolved to an absolute path at start)
HFSCRAPER_STORE_FSYNC - flush each file and its folder to disk before counting it written (default False)

Stats: hfscraper/store/written, hfscraper/store/unchanged, hfscraper/store/encoded (ids stored under an
encoded folder name), hfscraper/store/refused/<reason> (items dropped: `not_a_string`, `empty`,
`too_long`, `control_character`, `invalid_unicode`, `outside_output_dir`, `folder_collision`),
hfscraper/store/ascii_fallback (values that are not valid Unicode, written with JSON escapes),
hfscraper/store/failed (disk errors; the error is raised and logged by Scrapy).

Items other than hfscraper's Hub items pass through untouched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Self

import orjson
from scrapy.exceptions import CloseSpider, DropItem
from scrapy.utils.asyncio import is_asyncio_available, run_in_thread

from hfscraper.batching import ThreadBatcher
from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.fsutil import fsync_directory, same_content, write_file
from hfscraper.hub import HostileIdError, entity_folder_name, is_encoded_folder_name
from hfscraper.items import HubEntityItem
from hfscraper.pipelines import StageFailed
from hfscraper.resources import ResourceGuard

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
DEFAULT_OUTPUT_DIR = "output"
#: The most items one worker-thread call stores.
BATCH_SIZE = 64
#: Groups written at once: one keeps the GIL for the reactor (the work is mostly Python), the second overlaps its
#: system calls.
STORE_THREADS = 2
#: Seconds between two checks that the output and state folders are still the crawl's (not renamed away).
FOLDER_CHECK_INTERVAL = 1.0


def _shown(repo_id: object, limit: int = 200) -> str:
    """A repr of an id fit for one log line (a hostile id may be thousands of characters long)."""
    shown = repr(repo_id)
    return shown if len(shown) <= limit else shown[:limit] + "..."


class OutsideOutputDirError(Exception):
    """A target path that resolves outside `output_dir/<type>` (never written)."""


class FolderCollisionError(Exception):
    """The target folder already holds another entity's `metadata.json` (never overwritten).

    Distinct ids never map to the same folder name, but on a case-insensitive file system (macOS, Windows)
    `Org/Model` and `org/model` share a folder. The Hub treats names case-insensitively, so it should never
    list both; if a server does, the second is refused rather than overwriting the first.
    """


#: The smallest float magnitude (besides zero) that orjson prints as `repr` (and so json.dumps) does. Below it the
#: forms differ (`1e-7` against `1e-07`, `0.000015` against `1.5e-05`); every finite float from it up prints alike.
_SMALLEST_ALIKE_FLOAT = 1e-4
_INFINITY = float("inf")
#: Payloads with more values than this are left to json.dumps (it also ends the walk over a self-referencing one).
_MAX_ALIKE_VALUES = 1_000_000
_ALIKE_SCALARS = frozenset((str, int, bool, type(None)))


def _prints_alike(payload: dict[str, Any]) -> bool:
    """True when orjson's indented output of *payload* is json.dumps's, byte for byte (or orjson refuses it).

    That holds for plain JSON values: dicts with `str` keys, lists, `str`, `int`, `bool`, None, and the floats that
    orjson formats like `repr`. Anything else (subclasses, tuples, datetimes, small or non-finite floats, which orjson
    would print as `null`) goes to json.dumps. orjson refuses, with an error, what it cannot print the same way among
    these: lone surrogates and integers beyond 64 bits."""
    stack: list[Any] = [payload]
    pop, extend = stack.pop, stack.extend
    budget = _MAX_ALIKE_VALUES
    while stack:
        value = pop()
        kind = type(value)
        if kind in _ALIKE_SCALARS:
            continue
        budget -= 1
        if budget < 0:
            return False
        if kind is dict:
            for key in value:
                if type(key) is not str:
                    return False
            extend(value.values())
        elif kind is list:
            extend(value)
        elif kind is float:
            if not (value == 0.0 or _SMALLEST_ALIKE_FLOAT <= abs(value) < _INFINITY):
                return False
        else:
            return False
    return True


def render_metadata(payload: dict[str, Any]) -> tuple[bytes, bool]:
    """The bytes of a `metadata.json`, and whether JSON escapes had to replace invalid Unicode.

    The format is `json.dumps(payload, ensure_ascii=False, indent=2)` plus a newline. Python's encoder is pure Python
    once `indent` is set (tens of microseconds per entity); orjson writes the same bytes in a few, so it renders every
    payload `_prints_alike` accepts, and json.dumps the rest (and whatever orjson refuses)."""
    if _prints_alike(payload):
        try:
            return orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE), False
        except orjson.JSONEncodeError:  # a lone surrogate, an integer beyond 64 bits: json.dumps below
            pass
    try:
        return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8"), False
    except UnicodeEncodeError:  # lone surrogates from the Hub's JSON: keep them as \\udXXX escapes
        return (json.dumps(payload, ensure_ascii=True, indent=2) + "\n").encode("ascii"), True


class EntityStorePipeline:
    """Store each `HubEntityItem` as `metadata.json` in its entity folder (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        assert crawler.stats is not None
        self.stats = crawler.stats
        settings = crawler.settings
        output = settings.get("HFSCRAPER_OUTPUT_DIR") or DEFAULT_OUTPUT_DIR
        self.output_dir: Path = Path(os.path.realpath(Path(output).expanduser()))
        self.fsync: bool = settings.getbool("HFSCRAPER_STORE_FSYNC", False)
        self._roots: dict[str, Path] = {}
        self._batcher: ThreadBatcher[tuple[str, str, dict[str, Any], str], tuple[bool, bool]] | None = None
        self.guard = ResourceGuard.of(crawler)
        self._folders_checked = 0.0

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def open_spider(self) -> None:
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            failure = self.guard.handle(exc)
            if failure is None:
                raise
            raise CloseSpider(failure.reason) from None
        self.guard.remember_folders()

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, HubEntityItem):
            return item
        self._check_folders()
        repo_id = item.id  # (not ItemAdapter: it lists the dataclass fields for every entity)
        try:
            folder = entity_folder_name(repo_id)
        except HostileIdError as exc:
            self._refuse(exc.reason, repo_id, str(exc))
        if is_encoded_folder_name(folder):
            self.stats.inc_value("hfscraper/store/encoded")
            logger.info("Storing id %(id)s under encoded folder %(folder)s", {"id": _shown(repo_id), "folder": folder})
        job = (item.repo_type, folder, item.to_api(), repo_id)
        try:
            written, escaped = await self._run_in_thread(job)
        except OutsideOutputDirError as exc:
            self._refuse("outside_output_dir", repo_id, str(exc))
        except FolderCollisionError as exc:
            self._refuse("folder_collision", repo_id, str(exc))
        except OSError as exc:
            if self.guard.handle(exc) is not None:  # logged once, and the crawl stops: the entity is redone later
                self.guard.dropped()
                raise StageFailed("stored", f"not stored: {exc}") from None
            self.stats.inc_value("hfscraper/store/failed")
            logger.error("Could not store %(id)s: %(error)s", {"id": _shown(repo_id), "error": exc})
            raise
        if escaped:
            self.stats.inc_value("hfscraper/store/ascii_fallback")
        self.stats.inc_value("hfscraper/store/written" if written else "hfscraper/store/unchanged")
        return item

    def _check_folders(self) -> None:
        """Drop the item if the crawl stopped for a resource failure, or its folders went away meanwhile (a folder
        renamed away that a later write would silently make again)."""
        failure = self.guard.stopped
        now = time.monotonic()
        if failure is None and now - self._folders_checked >= FOLDER_CHECK_INTERVAL:
            self._folders_checked = now
            failure = self.guard.check_folders()
            if failure is not None:
                self.guard.stop(failure)
        if failure is not None:
            self.guard.dropped()
            raise StageFailed("stored", f"the crawl stopped ({failure.reason})")

    async def _run_in_thread(self, job: tuple[str, str, dict[str, Any], str]) -> tuple[bool, bool]:
        batcher = self._batcher
        if batcher is None and is_asyncio_available():  # asked once: the check costs more than a store
            batcher = self._batcher = ThreadBatcher(self._store_job, max_size=BATCH_SIZE, max_in_flight=STORE_THREADS)
        if batcher is not None:
            return await batcher(job)
        return await run_in_thread(self._store_job, job)

    def _refuse(self, reason: str, repo_id: object, message: str) -> NoReturn:
        self.stats.inc_value(f"hfscraper/store/refused/{reason}")
        shown = _shown(repo_id)
        logger.warning("Not storing entity %(id)s: %(message)s", {"id": shown, "message": message})
        # Logged once above, id shortened; Scrapy's own "Dropped:" line (with the whole item) only at DEBUG.
        raise DropItem(f"{message} (id {shown})", log_level="DEBUG")

    # -- blocking part (runs in a thread) -------------------------------------------------------------------

    def _store_job(self, job: tuple[str, str, dict[str, Any], str]) -> tuple[bool, bool]:
        repo_type, folder, payload, repo_id = job
        data, escaped = render_metadata(payload)
        return self.store(repo_type, folder, data, repo_id), escaped

    def type_root(self, repo_type: str) -> Path:
        """The resolved `output_dir/<type>` folder, created on first use."""
        root = self._roots.get(repo_type)
        if root is None:
            root = self.output_dir / OUTPUT_FOLDERS[repo_type]
            root.mkdir(parents=True, exist_ok=True)
            root = Path(os.path.realpath(root))
            self._roots[repo_type] = root
        return root

    def entity_dir(self, repo_type: str, folder: str) -> Path:
        """The entity folder for *folder*, after proving that it resolves to a direct child of the type
        root; raises OutsideOutputDirError otherwise."""
        root = self.type_root(repo_type)
        candidate = root / folder
        if folder in ("", ".", "..") or os.sep in folder or (os.altsep and os.altsep in folder):
            raise OutsideOutputDirError(f"{candidate} is not a folder name inside {root}")
        # The root is resolved and *folder* is one plain name, so only the folder itself can lead elsewhere: one
        # lstat instead of os.path.realpath's walk over every component (it runs for every entity).
        try:
            is_link = stat.S_ISLNK(os.lstat(candidate).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return candidate
        if is_link:
            raise OutsideOutputDirError(f"{candidate} is a symbolic link (to {os.path.realpath(candidate)})")
        return candidate

    def store(self, repo_type: str, folder: str, data: bytes, repo_id: str) -> bool:
        """Write `metadata.json` unless unchanged; True if written. Raises OutsideOutputDirError or
        FolderCollisionError instead of writing where it must not."""
        path = self.entity_dir(repo_type, folder) / METADATA_FILE
        try:
            size: int | None = os.stat(path).st_size
        except (FileNotFoundError, NotADirectoryError):
            size = None
        if size is not None:
            if size == len(data) and same_content(path, data):
                return False
            stored = stored_id(path)
            if stored is not None and stored != repo_id:
                raise FolderCollisionError(f"{path.parent} already holds {stored!r}")
        created = False
        if size is None:
            # Not its parents: a type folder (or the output folder) that vanished is an error, not made again.
            with contextlib.suppress(FileExistsError):
                os.mkdir(path.parent)
                created = True
                if self.fsync:
                    fsync_directory(path.parent.parent)
        try:
            write_file(path, data, fsync=self.fsync)
        except OSError:
            if created:  # a folder without its metadata.json is no entity folder: leave none behind (a full disk)
                with contextlib.suppress(OSError):
                    os.rmdir(path.parent)
            raise
        return True


def stored_id(path: Path) -> str | None:
    """The `id` inside an existing `metadata.json`, or None (missing, unreadable or without an id)."""
    try:
        with open(path, "rb") as f:
            value = json.load(f).get("id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
