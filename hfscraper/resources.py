"""Resource failures: a full disk, or an output or state folder that is read-only, gone or unusable.

Such a failure is not an entity's problem: every later write fails the same way, so going on only walks the rest of
the listing into a wall of errors. Whichever component meets one first stops the crawl at once, honestly:

- `resource_failure(exc, folders)` tells a resource failure from any other error: an OSError (or a SQLite error
  from the state store) saying ENOSPC or EDQUOT (`disk_full`; running out of inodes is ENOSPC too), EROFS
  (`output_unavailable`), or any error while one of the crawl's folders is gone, replaced or not writable any more
  (`output_unavailable`).
- `ResourceGuard.of(crawler)` is a crawler's guard. `guard.handle(exc)` classifies an error; the first resource
  failure logs one ERROR line (the cause, the path, what to do) and closes every crawler of this process that
  writes into the same folders (`scrapy crawlall` stops all three spiders) with the finish reason `disk_full` or
  `output_unavailable`, which makes the command exit 1. The component then drops its entity quietly
  (`hfscraper.pipelines.StageFailed`): it is not recorded as stored, so the next run redoes it, and nothing else
  is logged for the errors that follow from the same cause.
- `folder_unusable(path)` says why a folder cannot be created or written before any crawler starts (the crawl
  commands refuse with one line and exit 2, creating nothing).

Stats: hfscraper/resources/stopped (the finish reason the guard closed the crawl with), hfscraper/resources/dropped
(entities a stage gave up because of it).
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

DISK_FULL: Final = "disk_full"
OUTPUT_UNAVAILABLE: Final = "output_unavailable"
#: The finish reasons of a crawl stopped by a resource failure.
RESOURCE_REASONS: Final = frozenset({DISK_FULL, OUTPUT_UNAVAILABLE})

_SPACE: Final = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
#: SQLite's primary result codes for a full disk and a read-only database (sqlite3.Error.sqlite_errorcode & 0xFF).
_SQLITE_FULL: Final = 13
_SQLITE_READONLY: Final = 8


@dataclass(frozen=True)
class ResourceFailure:
    """Why the crawl must stop: the finish reason, the path concerned and the cause in words."""

    reason: str
    path: str
    cause: str
    #: Numbers after the path (the capacity check's), and advice in place of the usual one.
    detail: str = ""
    advice: str = ""

    def message(self) -> str:
        if self.advice:
            advice = self.advice
        elif self.reason == DISK_FULL:
            advice = "free some space there (or point the crawl at a bigger disk)"
        else:
            advice = "make the folder available and writable again"
        return (
            f"Stopping the crawl ({self.reason}): {self.cause} at {self.path}{self.detail}; {advice}, then run the "
            "same command again: it continues where this one stopped"
        )


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def resource_failure(exc: BaseException, folders: tuple[Path, ...] = ()) -> ResourceFailure | None:
    """The resource failure *exc* is (or was caused by), or None for any other error.

    *folders* are the crawl's own folders (output, state): any error while one of them is missing or not writable
    is theirs (a folder renamed away mid-crawl shows up as ENOENT on whatever file was written next).
    """
    failure = _error_failure(exc, folders)
    if failure is not None:
        return failure
    for folder in folders:
        problem = folder_problem(folder)
        if problem is not None:
            return ResourceFailure(OUTPUT_UNAVAILABLE, str(folder), problem)
    return None


def _error_failure(exc: BaseException, folders: tuple[Path, ...]) -> ResourceFailure | None:
    """The resource failure *exc* says it is by itself (its errno, SQLite's result code), or None."""
    for error in _causes(exc):
        if isinstance(error, OSError) and error.errno in _SPACE:
            return ResourceFailure(DISK_FULL, _where(error, folders), os.strerror(error.errno).lower())
        if isinstance(error, OSError) and error.errno == errno.EROFS:
            return ResourceFailure(OUTPUT_UNAVAILABLE, _where(error, folders), "read-only file system")
        if isinstance(error, sqlite3.Error):
            code = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
            if code == _SQLITE_FULL or "disk is full" in str(error):
                return ResourceFailure(DISK_FULL, _where(error, folders[1:] or folders), "database or disk is full")
            if code == _SQLITE_READONLY:
                return ResourceFailure(OUTPUT_UNAVAILABLE, _where(error, folders[1:] or folders), str(error))
    return None


def _where(error: BaseException, folders: tuple[Path, ...]) -> str:
    """The crawl folder the failed write was in (what the user acts on), else the file itself."""
    filename = getattr(error, "filename", None)
    if filename:
        path = Path(os.path.abspath(os.fsdecode(filename)))
        return next((str(f) for f in folders if path == f or f in path.parents), str(path))
    return str(folders[0]) if folders else "?"


def folder_problem(folder: Path) -> str | None:
    """Why an existing crawl folder cannot be written any more (gone, not a folder, not writable), or None."""
    try:
        if not folder.is_dir():
            return "the folder is gone" if not os.path.lexists(folder) else "it is not a folder any more"
    except OSError as exc:
        return os.strerror(exc.errno or errno.EIO).lower()
    if not os.access(folder, os.W_OK | os.X_OK):
        return "the folder is not writable"
    return None


def folder_unusable(path: str | os.PathLike[str]) -> str | None:
    """Why *path* cannot be used as a folder to write into (created if missing), or None; creates nothing."""
    target = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    current = target
    while not os.path.lexists(current) and current.parent != current:
        current = current.parent
    if not current.is_dir():
        return f"{current} is not a folder" if current == target else f"{current} is a file, not a folder"
    if not os.access(current, os.W_OK | os.X_OK):
        try:
            read_only = os.statvfs(current).f_flag & os.ST_RDONLY
        except OSError:
            read_only = False
        what = "on a read-only file system" if read_only else "not writable"
        return f"{current} is {what}" if current == target else f"it cannot be created: {current} is {what}"
    return None


class ResourceGuard:
    """One crawler's watch on its folders; stops the crawl (and its siblings) at the first resource failure."""

    _guards: ClassVar[weakref.WeakKeyDictionary[Crawler, ResourceGuard]] = weakref.WeakKeyDictionary()

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        output = settings.get("HFSCRAPER_OUTPUT_DIR") or "output"
        state = settings.get("HFSCRAPER_STATE_DIR") or "state"
        self.folders: tuple[Path, ...] = (
            Path(os.path.realpath(os.path.expanduser(output))),
            Path(os.path.abspath(os.path.expanduser(state))),
        )
        self.failure: ResourceFailure | None = None
        self._identities: dict[Path, tuple[int, int]] = {}

    @classmethod
    def of(cls, crawler: Crawler) -> ResourceGuard:
        guard = cls._guards.get(crawler)
        if guard is None:
            guard = cls._guards[crawler] = cls(crawler)
        return guard

    @property
    def stopped(self) -> ResourceFailure | None:
        """The failure that stopped this crawl, or None while it runs."""
        return self.failure

    def remember_folders(self) -> None:
        """Note which folders the crawl writes into (a folder replaced later is not the crawl's any more)."""
        for folder in self.folders:
            try:
                st = os.stat(folder)
            except OSError:
                continue
            self._identities.setdefault(folder, (st.st_dev, st.st_ino))

    def check_folders(self) -> ResourceFailure | None:
        """A resource failure if one of the folders is gone, replaced or not writable (no error needed).

        A folder counts once it was seen (the state folder appears when the first spider opens)."""
        self.remember_folders()
        for folder, identity in self._identities.items():
            problem = folder_problem(folder)
            if problem is None:
                try:
                    st = os.stat(folder)
                except OSError:
                    problem = "the folder is gone"
                else:
                    if (st.st_dev, st.st_ino) != identity:
                        problem = "the folder was replaced by another one"
            if problem is not None:
                return ResourceFailure(OUTPUT_UNAVAILABLE, str(folder), problem)
        return None

    def classify(self, exc: BaseException) -> ResourceFailure | None:
        return _error_failure(exc, self.folders) or self.check_folders()

    def handle(self, exc: BaseException) -> ResourceFailure | None:
        """If *exc* is a resource failure, or the crawl already stopped for one: stop (once) and return it."""
        if self.failure is not None:
            return self.failure
        failure = self.classify(exc)
        if failure is not None:
            self.stop(failure)
        return failure

    def stop(self, failure: ResourceFailure) -> None:
        """Log the failure once and close this crawler and every crawler of the process writing into the same
        folders, with the failure's finish reason."""
        siblings = [g for g in list(self._guards.values()) if g.folders == self.folders]
        if not any(g.failure is not None for g in siblings):
            logger.error("%(message)s", {"message": failure.message()})
        for guard in siblings:
            if guard.failure is None:
                guard.failure = failure
                guard._close(failure.reason)

    def _close(self, reason: str) -> None:
        from scrapy.utils.defer import deferred_from_coro

        crawler = self.crawler
        if crawler.stats is not None:
            crawler.stats.set_value("hfscraper/resources/stopped", reason)
        engine = crawler.engine
        if engine is None or engine.spider is None:
            return
        deferred = deferred_from_coro(engine.close_spider_async(reason=reason))
        deferred.addErrback(lambda _failure: None)  # the spider was closing already (or closed meanwhile)

    def dropped(self) -> None:
        """Count an entity a stage gave up because the crawl stopped."""
        if self.crawler.stats is not None:
            self.crawler.stats.inc_value("hfscraper/resources/dropped")
