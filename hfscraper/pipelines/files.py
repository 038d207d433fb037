"""`RepoFilesPipeline`: download each entity's chosen files into its folder, verified, at the listed commit.

For every Hub item it picks, from the listing's `siblings`, the files matching the type's patterns
(`HFSCRAPER_FILES_MODELS|DATASETS|SPACES`, `hfscraper.repofiles.select_files`), and stores each at
`output_dir/<type>/<folder>/<path in repo>` (sub-folders kept). It runs after `EntityStorePipeline` (so the
folder and its `metadata.json` exist) and before the IPFS pipeline (which needs every file in place).

**How a file is fetched.** `GET {endpoint}/{prefix}{id}/resolve/{sha}/{path}` at the entity's commit (its
`sha`, so the bytes match `metadata.json`), through Scrapy's downloader (so the rate-limit and token middlewares
apply: `resolvers` bucket, token only to the Hub's origin), with redirects handled here:

- `302` (LFS): `X-Linked-Size` and `X-Linked-Etag` (the SHA-256) come before any byte. A file above
  HFSCRAPER_FILES_MAX_SIZE is skipped there; a file already on disk with that size and SHA-256 is kept as it is
  (`unchanged`); otherwise the `Location` (the CDN, another origin: the token is never sent there) is fetched:
  up to HFSCRAPER_FILES_STREAM_THRESHOLD through Scrapy, above it streamed to disk by `BodyStreamer` with bounded
  memory (`hfscraper.streaming`), at most HFSCRAPER_FILES_STREAMS at once. Scrapy holds a body in memory, so
  what goes through it is bounded: the threshold for CDN bodies, and for bodies from the Hub's own origin (files
  kept in git, which the Hub limits to 10 MB; a mirror that serves large files itself) HFSCRAPER_FILES_MAX_SIZE.
- `307` to `/api/resolve-cache/...` (a file kept in git): the `Location` names the blob's SHA-1 (`etag=`); a file
  on disk with that git blob SHA-1 is `unchanged`, else the `Location` is fetched (same origin: the token goes
  along for gated repos); its `ETag` is the SHA-1 checked. A `Content-Length` above the size limit stops the
  download at its headers (`too_large`).
- `200` at once (older Hub versions, mirrors): the body, checked against `X-Linked-Etag` or `ETag`.
- `401`/`403`/`404` from the Hub: skipped with `hfscraper.middlewares.auth.hub_refusal`'s reason (`gated`,
  `repo_not_found`, `disabled`) or `not_found` (`EntryNotFound`); never retried. A repo that moved on since it
  was listed still serves the listed commit (the Hub keeps old commits readable), so its files are still those
  of the `sha` in `metadata.json`; a `RevisionNotFound` means that commit is gone (history rewritten, e.g.
  squashed): the file fails and the next run sees the new commit. A plain 404 (no `X-Error-Code`) is a failed
  file (`http_404`), never taken for a repo that is gone (only `RepoNotFound` says that).

With HFSCRAPER_FILES_SIZES_FROM = `paths-info`, one `POST /api/<type>s/<id>/paths-info/<sha>` first gives the
sizes and hashes of the chosen files: oversized and unchanged ones then cost no `resolvers` request at all.

**Verification.** Every byte is checked before a file is kept: an LFS file's SHA-256 against `X-Linked-Etag`
(or the tree's `lfs.oid`), a git file's blob SHA-1 (`sha1(b"blob <size>\\0" + bytes)`) against its `ETag`. A
mismatch, a short body or a lost download is discarded and the file fetched again (HFSCRAPER_FILES_RETRIES more
times; stats `hfscraper/files/mismatch`, `hfscraper/files/retries`). Bodies are written to
`output_dir/.tmp/` (never inside an entity folder, whose CID must be computable at any moment) and moved into
place with `os.replace` only once verified: an entity folder never holds a partial or unverified file. What a
killed run left in `.tmp` is removed by the next run. Checking, writing and placing a body is one call in a
worker thread (`store_verified`; a body is checked before it is written), and the calls made during one
event-loop turn share one thread hop (`hfscraper.batching.ThreadBatcher`).

**Paths.** Only plain repository ids get files (`non_plain_id` otherwise: the real Hub has no other ids, and
such an id must not build a URL). A path is refused, the file skipped and the entity kept, when
`hfscraper.repofiles.check_repo_path` rejects it (absolute, `.`/`..` or empty segments, backslashes, control
characters, names the crawl writes itself such as `metadata.json`, ...), when two paths differ only in letter
case, or when on disk it would pass through a symlink or resolve outside the entity folder
(`hfscraper/files/skipped/unsafe_path`, one WARNING line each).

**The folder is a snapshot.** After a stage in which no file failed, an entity folder holds the crawl's own files
(`hfscraper.repofiles.RESERVED_NAMES`) and exactly the chosen files of the listed commit that were downloaded or
found unchanged; any other file (a file the repo no longer has, a pattern no longer chosen, an older version
that could not be fetched again) is removed (`hfscraper/files/pruned`). When a file failed nothing is removed: the
verified copy of an earlier run stays in place.

**Outcome.** `item.files` lists, per chosen file, `{"path", "size", "sha256", "blob_sha1", "lfs", "status",
"reason"}` (status `downloaded`, `unchanged`, `skipped` or `failed`). If any file failed, the entity is dropped
with `hfscraper.pipelines.StageFailed` after the others are in place: no later pipeline and no feed sees it, its
listing page is held back, the crawl ends incomplete (exit code 1) and the next run tries the entity again.
Skipped files do not fail an entity: they are the outcome (the crawl state records the stage as done).

Settings (read once): HFSCRAPER_FILES_ENABLED (off: NotConfigured), HFSCRAPER_FILES_MODELS,
HFSCRAPER_FILES_DATASETS, HFSCRAPER_FILES_SPACES, HFSCRAPER_FILES_MAX_SIZE, HFSCRAPER_FILES_STREAM_THRESHOLD,
HFSCRAPER_FILES_STREAMS, HFSCRAPER_FILES_RETRIES, HFSCRAPER_FILES_SIZES_FROM, HFSCRAPER_OUTPUT_DIR,
HFSCRAPER_HUB_ENDPOINT, HFSCRAPER_STORE_FSYNC; Scrapy's USER_AGENT, DOWNLOAD_TIMEOUT, HTTPPROXY_ENABLED.

Stats (prefix hfscraper/files/): entities, chosen, downloaded, downloaded_bytes, streamed, unchanged,
skipped/<reason>, mismatch, retries, failed, failed/<reason>, pruned, no_siblings, paths_info/requests,
paths_info/failed, interrupted (files not downloaded because the crawl was stopping) and interrupted_entities;
thread_calls (worker-thread hops of the disk work: each entity folder's look, each file's hash-check-write-place,
each prune, grouped per event-loop turn) and state_writes (transactions of file outcomes, several entities each).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar
from urllib.parse import urljoin

from scrapy import Request, signals
from scrapy.exceptions import CloseSpider, IgnoreRequest, NotConfigured, StopDownload
from scrapy.http import Headers, Response

from hfscraper import constants
from hfscraper.batching import ThreadBatcher
from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.extensions.checkpoint import state_location
from hfscraper.file_records import record_files_batch
from hfscraper.fsutil import TEMP_PREFIX, fsync_directory, sweep_dead_temp_files
from hfscraper.hub import entity_folder_name, is_plain_id, normalize_endpoint
from hfscraper.items import HubEntityItem
from hfscraper.middlewares.auth import hub_refusal, origin_of
from hfscraper.middlewares.ratelimit import UNSCHEDULED_META
from hfscraper.pipelines import StageFailed
from hfscraper.repofiles import (
    RESERVED_NAMES,
    FileHasher,
    UnsafePathError,
    check_repo_path,
    etag_from_location,
    is_sha1,
    is_sha256,
    quote_repo_path,
    resolve_url,
    select_files,
    strip_etag,
)
from hfscraper.resources import RESOURCE_REASONS, ResourceGuard
from hfscraper.state import SharedStateStore, utc_now
from hfscraper.streaming import BodyStreamer, StreamError, remove_quietly

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

STAGE: Final = "files"
STATS: Final = "hfscraper/files"
#: Where bodies are written before they are verified and moved into an entity folder (under output_dir).
TMP_DIR: Final = ".tmp"
#: Request meta key: the largest body this file request accepts (its headers are checked against it).
LIMIT_META: Final = "hfscraper_file_limit"
#: Redirects the pipeline follows itself for one file (resolve -> resolve-cache or CDN, plus slack).
MAX_HOPS: Final = 5
#: Paths per paths-info request (the Hub's limit, 2000, as third-party clients observe it).
PATHS_INFO_BATCH: Final = 2000
#: Calls grouped into one worker-thread hop (`hfscraper.batching.ThreadBatcher`), and the stage's disk threads.
BATCH_SIZE: Final = 64
DISK_THREADS: Final = 2
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_TMP_NAMES = itertools.count()
_PATTERN_SETTINGS: Final = {
    constants.REPO_TYPE_MODEL: "HFSCRAPER_FILES_MODELS",
    constants.REPO_TYPE_DATASET: "HFSCRAPER_FILES_DATASETS",
    constants.REPO_TYPE_SPACE: "HFSCRAPER_FILES_SPACES",
}

_A = TypeVar("_A")

DOWNLOADED, UNCHANGED, SKIPPED, FAILED = "downloaded", "unchanged", "skipped", "failed"
#: The reason of a file the crawl stopped before it was downloaded (a requested stop, not a failure).
SHUTDOWN: Final = "shutdown"


@dataclass
class FileResult:
    """What the stage did with one chosen file (`item.files` holds these as dicts)."""

    path: str
    status: str = FAILED
    size: int | None = None
    sha256: str | None = None
    blob_sha1: str | None = None
    lfs: bool | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "blob_sha1": self.blob_sha1,
            "lfs": self.lfs,
            "status": self.status,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class KnownFile:
    """Size and hashes of a file as the Hub's paths-info names them."""

    size: int
    blob_sha1: str | None
    sha256: str | None  # LFS files only
    lfs: bool


@dataclass
class _Entity:
    """One item's job: where its files go and what is known about them."""

    item: HubEntityItem
    repo_type: str
    repo_id: str
    sha: str
    folder: Path
    known: dict[str, KnownFile] | None = None
    lower_paths: dict[str, str] = field(default_factory=dict)
    #: What the folder held when the stage began (`list_entity_folder`): which files to look at for `unchanged`
    #: (only those) and whether the folder needs pruning at the end.
    existing: dict[str, int | None] | None = None


@dataclass
class _StoreJob:
    """One verified placement, run in a worker thread (`store_verified`): hash, check, write, move into place."""

    folder: Path
    segments: tuple[str, ...]
    tmp: Path
    #: The body to write to *tmp*; None when *tmp* already holds it (streamed) and *hasher* has its hashes.
    body: bytes | None
    hasher: FileHasher | None
    sha256: str | None  # the expected hash: the SHA-256 if known, else the git blob SHA-1
    blob_sha1: str | None
    git: bool  # compute the git blob SHA-1 as well (files kept in git: item.files names it)
    fsync: bool


class _Skip(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class _Fail(Exception):
    """A failure another attempt cannot fix (the run can: the next one tries the entity again)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class _Retry(Exception):
    """A failure another attempt may fix (bad bytes, a lost download, a 5xx after Scrapy's retries)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


class RepoFilesPipeline:
    """Download, verify and place each entity's chosen files (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("HFSCRAPER_FILES_ENABLED", True):
            raise NotConfigured("HFSCRAPER_FILES_ENABLED is off")
        self.crawler = crawler
        assert crawler.stats is not None
        self.stats = crawler.stats
        self.patterns: dict[str, list[str]] = {
            repo_type: [str(p) for p in settings.getlist(name)] for repo_type, name in _PATTERN_SETTINGS.items()
        }
        self.max_size: int = settings.getint("HFSCRAPER_FILES_MAX_SIZE", 10 * 1024 * 1024)
        self.threshold: int = settings.getint("HFSCRAPER_FILES_STREAM_THRESHOLD", 8 * 1024 * 1024)
        self.retries: int = settings.getint("HFSCRAPER_FILES_RETRIES", 2)
        self.sizes_from: str = settings.get("HFSCRAPER_FILES_SIZES_FROM") or "resolve"
        self.fsync: bool = settings.getbool("HFSCRAPER_STORE_FSYNC", False)
        if self.max_size < 0 or self.threshold < 0 or self.retries < 0:
            raise NotConfigured("HFSCRAPER_FILES_MAX_SIZE, _STREAM_THRESHOLD and _RETRIES must not be negative")
        if self.sizes_from not in ("resolve", "paths-info"):
            raise NotConfigured(f"HFSCRAPER_FILES_SIZES_FROM must be resolve or paths-info, not {self.sizes_from!r}")
        self.endpoint: str = normalize_endpoint(settings.get("HFSCRAPER_HUB_ENDPOINT") or constants.HF_ENDPOINT)
        self.hub_origin = origin_of(self.endpoint)
        output = settings.get("HFSCRAPER_OUTPUT_DIR") or "output"
        self.output_dir = Path(os.path.realpath(Path(output).expanduser()))
        self.tmp_dir = self.output_dir / TMP_DIR
        self.state_file, _ = state_location(settings)
        self.state: SharedStateStore | None = None
        self.streamer = BodyStreamer(
            hub_origin=self.hub_origin,
            user_agent=str(settings.get("USER_AGENT") or "hfscraper"),
            max_streams=max(1, settings.getint("HFSCRAPER_FILES_STREAMS", 4)),
            read_timeout=settings.getfloat("DOWNLOAD_TIMEOUT", 180.0),
            trust_env=settings.getbool("HTTPPROXY_ENABLED", True),
        )
        # Files in flight at once, across entities: the downloader's slot queue is FIFO, and a file's body request
        # should not wait behind the redirects of every file of every entity in the pipeline (AutoThrottle only
        # lowers its delay on 200s, so a queue of nothing but redirects crawls at AUTOTHROTTLE_START_DELAY).
        self._in_flight = asyncio.Semaphore(max(1, settings.getint("CONCURRENT_REQUESTS", 16)))
        self._warned: set[str] = set()
        self.guard = ResourceGuard.of(crawler)
        self._roots: dict[str, Path] = {}
        # Disk work in worker threads, the calls of one event-loop turn grouped into one thread hop (a 2 KB file
        # costs less to hash and write than to hand over to a thread): the look at each entity folder, each
        # verified file's placement, each prune; and the file outcomes of many entities in one state transaction.
        self._executor = concurrent.futures.ThreadPoolExecutor(DISK_THREADS, thread_name_prefix="hfscraper-files")
        self._inspections = ThreadBatcher(self._inspect, BATCH_SIZE, submit=self._hop)
        self._stores = ThreadBatcher(store_verified, BATCH_SIZE, submit=self._hop)
        self._prunes = ThreadBatcher(_prune_job, BATCH_SIZE, submit=self._hop)
        self._hashes = ThreadBatcher(_hash_in_place, BATCH_SIZE, submit=self._hop)
        self._records: ThreadBatcher[tuple[str, str, list[dict[str, Any]], str], None] | None = None
        crawler.signals.connect(self._headers_received, signal=signals.headers_received)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def open_spider(self) -> None:
        try:
            self.state = await asyncio.to_thread(SharedStateStore.acquire, self.state_file, fsync=self.fsync)
        except Exception as exc:
            logger.error(
                "Files: cannot open the crawl state %(file)s: %(error)s", {"file": self.state_file, "error": exc}
            )
            raise CloseSpider("state_error") from exc
        state = self.state
        self._records = ThreadBatcher(
            None, BATCH_SIZE, batch_func=lambda entries: _record_batch(state.store, entries),
            submit=lambda run, entries: self._state_hop(state, run, entries),
        )  # fmt: skip
        try:
            await asyncio.to_thread(self._sweep)
        except OSError as exc:
            failure = self.guard.handle(exc)
            if failure is None:
                raise
            raise CloseSpider(failure.reason) from None

    def _sweep(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        removed = sweep_temp_dir(self.tmp_dir)
        if removed:
            logger.info(
                "Removed %(n)d partial download(s) of earlier runs from %(dir)s", {"n": removed, "dir": self.tmp_dir}
            )

    async def close_spider(self) -> None:
        interrupted = self.stats.get_value(f"{STATS}/interrupted_entities", 0)
        if interrupted:
            logger.info(
                "The crawl stopped before %(files)d file(s) of %(n)d %(type)s(s) were downloaded: not failures; the "
                "same command does them",
                {
                    "files": self.stats.get_value(f"{STATS}/interrupted", 0), "n": interrupted,
                    "type": getattr(self.crawler.spider, "repo_type", "entity"),
                },
            )  # fmt: skip
        await self.streamer.close()
        self._executor.shutdown(wait=True)
        if self.state is not None:
            state, self.state = self.state, None
            await asyncio.to_thread(state.release)

    def _hop(
        self, run: Callable[[list[_A]], list[tuple[bool, Any]]], args: list[_A]
    ) -> concurrent.futures.Future[list[tuple[bool, Any]]]:
        self.stats.inc_value(f"{STATS}/thread_calls")
        return self._executor.submit(run, args)

    def _state_hop(
        self, state: SharedStateStore, run: Callable[[list[_A]], list[tuple[bool, Any]]], args: list[_A]
    ) -> concurrent.futures.Future[list[tuple[bool, Any]]]:
        self.stats.inc_value(f"{STATS}/state_writes")
        return state.submit(lambda _store: run(args))

    def _headers_received(self, headers: Headers, body_length: int, request: Request, spider: Any = None) -> None:
        """Stop a file download at its headers when its body is larger than that request accepts."""
        limit = request.meta.get(LIMIT_META)
        if limit is not None and body_length is not None and body_length > limit:
            raise StopDownload(fail=False)

    # -- the item -------------------------------------------------------------------------------------------

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, HubEntityItem):
            return item
        self.stats.inc_value(f"{STATS}/entities")
        if item.siblings is None:  # the listing does not say which files the entity has: leave its folder alone
            self._no_siblings(item)
            return item
        paths = select_files(item.siblings, self.patterns.get(item.repo_type, []))
        if paths:
            self.stats.inc_value(f"{STATS}/chosen", len(paths))
        job = await self._job(item, paths)
        if not isinstance(job, _Entity):
            results = [FileResult(p, SKIPPED, reason=job) for p in paths]
            for _ in results:
                self.stats.inc_value(f"{STATS}/skipped/{job}")
        else:
            if paths and self.sizes_from == "paths-info":
                job.known = await self._paths_info(job, [p for p in paths if _is_safe(p)])
            results = list(await asyncio.gather(*(self._one_file(job, path) for path in paths)))
            if self.guard.stopped and any(r.status == FAILED for r in results):
                # A full disk or a vanished output folder: logged once, the crawl stops, the entity is redone later.
                self.guard.dropped()
                raise StageFailed(STAGE, f"{item.repo_type} {item.id}: the crawl stopped ({self.guard.stopped.reason})")
            # Only a folder whose every file succeeded becomes the listed commit's snapshot: after a failure the
            # copy already on disk (verified when it was placed) stays until a later run replaces it.
            if not any(r.status == FAILED for r in results):
                kept = frozenset(r.path for r in results if r.status in (DOWNLOADED, UNCHANGED))
                # A folder that held nothing but the crawl's own files and the kept ones has nothing to prune.
                if job.existing is None or any(path not in kept for path in job.existing):
                    await self._prune(job, kept)
        item.files = [r.to_dict() for r in results]
        failed = [r for r in results if r.status == FAILED]
        if failed and all(r.reason == SHUTDOWN for r in failed):
            # A requested stop (Ctrl-C, SIGTERM, a scrapyd cancel) is no failure: the outcomes an earlier run
            # recorded stay, one line at the end sums it up (close_spider), and the next run does the entity.
            self.stats.inc_value(f"{STATS}/interrupted_entities")
            raise StageFailed(STAGE, f"{item.repo_type} {item.id}: the crawl is stopping")
        await self._record(item)
        if failed:
            first = failed[0]
            message = (
                f"{len(failed)} of {len(results)} file(s) of {item.repo_type} {item.id} failed (first: {first.path}: "
                f"{first.reason}); the entity is left for the next run"
            )
            logger.error("%(message)s", {"message": message})
            raise StageFailed(STAGE, message)
        return item

    async def _record(self, item: HubEntityItem) -> None:
        """Keep the entity's file outcomes in the crawl state, for `scrapy status` (failures included)."""
        if self._records is None:
            return
        try:
            await self._records((item.repo_type, item.id, item.files or [], utc_now()))
        except Exception as exc:  # the files are in place; only the report would miss them
            self.stats.inc_value(f"{STATS}/state_errors")
            if self.guard.handle(exc) is not None:
                return  # the state's disk is full or its folder gone: logged once, the crawl stops
            logger.warning(
                "Could not record the files of %(type)s %(id)s in the crawl state: %(error)s",
                {"type": item.repo_type, "id": item.id, "error": exc},
            )

    def _no_siblings(self, item: HubEntityItem) -> None:
        self.stats.inc_value(f"{STATS}/no_siblings")
        if "siblings" not in self._warned:
            self._warned.add("siblings")
            logger.warning(
                "The %(type)s listing gives no `siblings` (not among the expand fields?): no files are downloaded",
                {"type": item.repo_type},
            )

    async def _job(self, item: HubEntityItem, paths: list[str]) -> _Entity | str:
        """The entity's job, or the reason none of its files can be fetched."""
        repo_id = item.id
        if not is_plain_id(repo_id):
            return "non_plain_id"
        sha = item.sha
        if not is_sha1(sha if isinstance(sha, str) else None):
            if paths and "sha" not in self._warned:
                self._warned.add("sha")
                logger.warning(
                    "The %(type)s listing gives no commit `sha` (not among the expand fields?): files cannot be pinned "
                    "to the listed version and are not downloaded",
                    {"type": item.repo_type},
                )
            return "no_sha"
        found = await self._inspections((item.repo_type, entity_folder_name(repo_id)))
        if found is None:
            return "no_entity_folder"  # the store refused it or a symlink points elsewhere: nothing is written
        assert isinstance(sha, str)
        folder, existing = found
        return _Entity(item, item.repo_type, repo_id, sha, folder, existing=existing)

    def _inspect(self, job: tuple[str, str]) -> tuple[Path, dict[str, int | None] | None] | None:
        """(worker thread) The entity folder and what it holds (`list_entity_folder`; None if it cannot be
        listed), or None when it is not a real folder directly inside the resolved type folder (missing, a
        symlink, a file)."""
        repo_type, name = job
        root = self._roots.get(repo_type)
        if root is None:  # resolved once, as the entity store does; then one lstat per entity instead of realpath's
            root = self._roots[repo_type] = Path(os.path.realpath(self.output_dir / OUTPUT_FOLDERS[repo_type]))
        folder = root / name
        try:
            info = os.lstat(folder)
        except OSError:
            return None
        if not stat.S_ISDIR(info.st_mode):
            return None
        try:
            return folder, list_entity_folder(folder)
        except OSError:  # each file is then looked at on disk, and the folder pruned
            return folder, None

    # -- one file -------------------------------------------------------------------------------------------

    async def _one_file(self, job: _Entity, path: str) -> FileResult:
        result = FileResult(path)
        try:  # before any await: the first of two paths that differ only in case is the one kept
            segments = check_repo_path(path)
            other = job.lower_paths.setdefault(path.casefold(), path)
            if other != path:
                raise UnsafePathError("case_collision", path, f"{path!r} and {other!r} differ only in letter case")
        except UnsafePathError as exc:
            return self._skipped(job, result, "unsafe_path", f"{exc} (kept out of {job.folder})", warn=True)
        async with self._in_flight:
            return await self._fetch_file(job, path, segments, result)

    async def _fetch_file(self, job: _Entity, path: str, segments: tuple[str, ...], result: FileResult) -> FileResult:
        attempts = self.retries + 1
        last: _Retry | None = None
        for attempt in range(1, attempts + 1):
            try:
                await self._attempt(job, path, segments, result)
                return result
            except _Skip as exc:
                return self._skipped(job, result, exc.reason, str(exc), warn=exc.reason == "unsafe_path")
            except _Fail as exc:
                return self._failed(job, result, exc.reason, str(exc))
            except OSError as exc:  # the temporary folder (a full disk, permissions)
                failure = self.guard.handle(exc)
                return self._failed(job, result, failure.reason if failure else "disk", f"{type(exc).__name__}: {exc}")
            except _Retry as exc:
                last = exc
                if exc.reason == "mismatch":
                    self.stats.inc_value(f"{STATS}/mismatch")
                if attempt < attempts:
                    self.stats.inc_value(f"{STATS}/retries")
                    logger.warning(
                        "File %(path)s of %(type)s %(id)s: %(error)s; fetching it again (attempt %(n)d of %(max)d)",
                        {"path": path, "type": job.repo_type, "id": job.repo_id, "error": exc, "n": attempt + 1,
                         "max": attempts},
                    )  # fmt: skip
        assert last is not None
        return self._failed(job, result, last.reason, f"{last} (after {attempts} attempt(s))")

    def _skipped(self, job: _Entity, result: FileResult, reason: str, detail: str, *, warn: bool = False) -> FileResult:
        result.status, result.reason = SKIPPED, reason
        self.stats.inc_value(f"{STATS}/skipped/{reason}")
        (logger.warning if warn else logger.debug)(
            "Skipped file %(path)r of %(type)s %(id)s (%(reason)s): %(detail)s",
            {"path": result.path, "type": job.repo_type, "id": job.repo_id, "reason": reason, "detail": detail},
        )
        return result

    def _failed(self, job: _Entity, result: FileResult, reason: str, detail: str) -> FileResult:
        result.status, result.reason = FAILED, reason
        if reason == SHUTDOWN:
            self.stats.inc_value(f"{STATS}/interrupted")
            logger.debug(
                "File %(path)s of %(type)s %(id)s not downloaded: the crawl is stopping",
                {"path": result.path, "type": job.repo_type, "id": job.repo_id},
            )
            return result
        self.stats.inc_value(f"{STATS}/failed")
        self.stats.inc_value(f"{STATS}/failed/{reason}")
        quiet = reason in RESOURCE_REASONS or self.guard.stopped is not None
        (logger.info if quiet else logger.error)(
            "File %(path)s of %(type)s %(id)s not downloaded (%(reason)s): %(detail)s",
            {"path": result.path, "type": job.repo_type, "id": job.repo_id, "reason": reason, "detail": detail},
        )
        return result

    async def _attempt(self, job: _Entity, path: str, segments: tuple[str, ...], result: FileResult) -> None:
        """One try at one file: fills *result* and returns, or raises _Skip, _Fail or _Retry."""
        known = job.known.get(path) if job.known is not None else None
        if job.known is not None and known is None:
            raise _Skip("not_found", "paths-info does not list it at this commit")
        if known is not None:
            result.size, result.lfs = known.size, known.lfs
            result.blob_sha1, result.sha256 = known.blob_sha1, known.sha256
            if known.size > self.max_size:
                raise _Skip("too_large", f"{known.size} bytes (HFSCRAPER_FILES_MAX_SIZE {self.max_size})")
            if await self._on_disk(job, segments, known.size, sha256=known.sha256, blob_sha1=known.blob_sha1):
                self._unchanged(result)
                return
        url = resolve_url(self.endpoint, job.repo_type, job.repo_id, job.sha, path)
        response = await self._fetch(url, limit=self.max_size)
        for _ in range(MAX_HOPS):
            if response.status in _REDIRECTS and response.headers.get(b"Location"):
                location = urljoin(response.url, response.headers[b"Location"].decode("latin-1"))
                if response.headers.get(b"X-Linked-Etag") is not None or response.headers.get(b"X-Linked-Size"):
                    await self._lfs_redirect(job, segments, response, location, result)
                    return
                blob = etag_from_location(location)
                if blob is not None:
                    result.lfs, result.blob_sha1 = False, blob
                    if await self._on_disk(job, segments, None, blob_sha1=blob):
                        self._unchanged(result)
                        return
                response = await self._fetch(location, limit=self.max_size)
                continue
            await self._final_response(job, segments, response, result)
            return
        raise _Fail("redirect_loop", f"more than {MAX_HOPS} redirects from {url}")

    async def _lfs_redirect(
        self, job: _Entity, segments: tuple[str, ...], response: Response, location: str, result: FileResult
    ) -> None:
        sha256 = strip_etag(response.headers.get(b"X-Linked-Etag"))
        size_text = (response.headers.get(b"X-Linked-Size") or b"").decode("latin-1").strip()
        size = int(size_text) if size_text.isdigit() else None
        result.lfs = True
        if not is_sha256(sha256):
            sha256 = result.sha256 if is_sha256(result.sha256) else None
        if sha256 is None or size is None:
            raise _Fail("no_checksum", "the Hub's redirect names no SHA-256 or size (X-Linked-Etag, X-Linked-Size)")
        result.sha256, result.size = sha256, size
        if size > self.max_size:
            raise _Skip("too_large", f"{size} bytes (HFSCRAPER_FILES_MAX_SIZE {self.max_size})")
        if await self._on_disk(job, segments, size, sha256=sha256):
            self._unchanged(result)
            return
        tmp = self._tmp_path()
        body: bytes | None = None
        streamed: FileHasher | None = None
        # A body on the Hub's own origin (a mirror without a CDN) goes through Scrapy: it may need the token.
        if size > self.threshold and origin_of(location) != self.hub_origin:
            try:
                streamed = await self.streamer.download(location, tmp, expected_size=size)
            except StreamError as exc:
                remove_quietly(tmp)
                if exc.retry:
                    raise _Retry(exc.reason, str(exc)) from None
                raise _Fail(exc.reason, str(exc)) from None
            except BaseException:
                remove_quietly(tmp)
                raise
            self.stats.inc_value(f"{STATS}/streamed")
        else:
            body_response = await self._fetch(location, limit=size, follow=True)
            if body_response.status != 200:
                self._bad_status(body_response, "the CDN")
            body = body_response.body
            if len(body) != size or "download_stopped" in body_response.flags:
                raise _Retry("size_mismatch", f"{len(body)} bytes from {location[:80]}, expected {size}")
        store = _StoreJob(job.folder, segments, tmp, body, streamed, sha256, None, git=False, fsync=self.fsync)
        hasher = await self._store(store, segments)
        self._downloaded(result, hasher, blob=False)

    async def _final_response(
        self, job: _Entity, segments: tuple[str, ...], response: Response, result: FileResult
    ) -> None:
        """The body of a file (a git file from resolve-cache, or any file a Hub answers 200 to at once)."""
        if response.status != 200:
            self._bad_status(response, "the Hub")
        declared = _content_length(response)
        if "download_stopped" in response.flags:
            raise _Skip("too_large", f"Content-Length {declared} (HFSCRAPER_FILES_MAX_SIZE {self.max_size})")
        body = response.body
        if declared is not None and declared != len(body):
            raise _Retry("size_mismatch", f"{len(body)} bytes, Content-Length {declared}")
        linked = strip_etag(response.headers.get(b"X-Linked-Etag"))
        etag = strip_etag(response.headers.get(b"ETag"))
        expected_sha256 = linked if is_sha256(linked) else etag if is_sha256(etag) else None
        expected_sha1 = etag if is_sha1(etag) else result.blob_sha1 if is_sha1(result.blob_sha1) else None
        if expected_sha256 is None and expected_sha1 is None:
            expected_sha256 = result.sha256 if is_sha256(result.sha256) else None
        if expected_sha256 is None and expected_sha1 is None:
            raise _Fail("no_checksum", f"no ETag to check the {len(body)} bytes against")
        store = _StoreJob(
            job.folder, segments, self._tmp_path(), body, None, expected_sha256,
            None if expected_sha256 is not None else expected_sha1, git=True, fsync=self.fsync,
        )  # fmt: skip
        hasher = await self._store(store, segments)
        result.lfs = expected_sha256 is not None and result.lfs is not False
        self._downloaded(result, hasher, blob=True)

    def _bad_status(self, response: Response, where: str) -> None:
        status = response.status
        refusal = hub_refusal(status, response.headers)
        if refusal is not None:
            raise _Skip(refusal, f"HTTP {status} from {where}")
        code = (response.headers.get(b"X-Error-Code") or b"").decode("latin-1")
        if status == 404 and code == "EntryNotFound":
            raise _Skip("not_found", f"HTTP 404 EntryNotFound from {where}")
        if status == 404 and code == "RevisionNotFound":
            raise _Fail("revision_not_found", "the listed commit is no longer on the Hub (history rewritten?)")
        if status >= 500 or status == 408:
            raise _Retry(f"http_{status}", f"HTTP {status} from {where}")
        if status == 403 and where == "the CDN":
            raise _Retry("http_403", "HTTP 403 from the CDN (an expired signed URL?)")
        raise _Fail(f"http_{status}", f"HTTP {status} from {where} ({code or 'no error code'})")

    def _unchanged(self, result: FileResult) -> None:
        result.status = UNCHANGED
        self.stats.inc_value(f"{STATS}/unchanged")

    def _downloaded(self, result: FileResult, hasher: FileHasher, *, blob: bool) -> None:
        result.status = DOWNLOADED
        result.size, result.sha256 = hasher.size, hasher.sha256
        if blob and hasher.git_sha1 is not None and not result.lfs:
            result.blob_sha1 = hasher.git_sha1
        self.stats.inc_value(f"{STATS}/downloaded")
        self.stats.inc_value(f"{STATS}/downloaded_bytes", hasher.size)

    # -- requests -------------------------------------------------------------------------------------------

    async def _fetch(self, url: str, *, limit: int | None, follow: bool = False, **kwargs: Any) -> Response:
        """One request through Scrapy's downloader (middlewares included); redirects are ours unless *follow*.

        A body above *limit* bytes is not downloaded: its headers stop it (`download_stopped` in the response's
        flags) when they declare the size, Scrapy's `download_maxsize` cancels it otherwise.
        """
        # No cookies: file downloads need none, and the cookie jar costs every request (both ways) its time.
        meta: dict[str, Any] = {
            "dont_redirect": not follow, "dont_merge_cookies": True, "download_warnsize": 0, UNSCHEDULED_META: True,
        }  # fmt: skip
        if limit is not None:
            meta["download_maxsize"] = max(limit, 1)  # 0 would mean "no limit" to Scrapy
            meta[LIMIT_META] = limit
        request = Request(url, meta=meta, dont_filter=True, **kwargs)
        engine = self.crawler.engine
        assert engine is not None
        if not engine.running:
            raise _Fail(SHUTDOWN, "the crawl is stopping")
        if self.guard.stopped is not None:
            raise _Fail(self.guard.stopped.reason, "the crawl is stopping")
        try:
            return await engine.download_async(request)
        except IgnoreRequest as exc:  # the crawl is stopping, the auth middleware refused the token, ...
            if not engine.running:
                raise _Fail(SHUTDOWN, "the crawl is stopping") from None
            raise _Fail(type(exc).__name__, str(exc) or type(exc).__name__) from None
        except Exception as exc:  # lost connections, timeouts, data loss: after Scrapy's own retries
            raise _Retry("network", f"{type(exc).__name__}: {exc}") from None

    async def _paths_info(self, job: _Entity, paths: list[str]) -> dict[str, KnownFile] | None:
        """Sizes and hashes of *paths* from `POST .../paths-info/<sha>`; None when the Hub did not answer."""
        known: dict[str, KnownFile] = {}
        plural = OUTPUT_FOLDERS[job.repo_type]
        url = f"{self.endpoint}/api/{plural}/{job.repo_id}/paths-info/{job.sha}"
        for start in range(0, len(paths), PATHS_INFO_BATCH):
            body = json.dumps({"paths": paths[start : start + PATHS_INFO_BATCH], "expand": False})
            self.stats.inc_value(f"{STATS}/paths_info/requests")
            try:
                response = await self._fetch(
                    url, limit=None, method="POST", body=body, headers={"Content-Type": "application/json"}
                )
                data = json.loads(response.body) if response.status == 200 else None
            except (_Fail, _Retry, ValueError):
                data = None
            if not isinstance(data, list):
                # Refusals (gated, ...) and failures: the resolve requests say what they are, file by file.
                self.stats.inc_value(f"{STATS}/paths_info/failed")
                return None
            for entry in data:
                parsed = _known_file(entry)
                if parsed is not None:
                    known[entry["path"]] = parsed
        return known

    # -- disk -----------------------------------------------------------------------------------------------

    def _tmp_path(self) -> Path:
        # One counter per process: `scrapy crawlall` runs three of these pipelines, writing into the same .tmp.
        return self.tmp_dir / f"{os.getpid()}-{next(_TMP_NAMES)}.part"

    async def _on_disk(
        self,
        job: _Entity,
        segments: tuple[str, ...],
        size: int | None,
        *,
        sha256: str | None = None,
        blob_sha1: str | None = None,
    ) -> bool:
        """True when the file is already in place with this content (a regular file, not a symlink)."""
        if sha256 is None and blob_sha1 is None:
            return False
        if job.existing is not None:
            # The folder's listing from the start of the stage: no disk access for a file that was not there.
            listed = job.existing.get("/".join(segments))
            if listed is None or (size is not None and listed != size):  # absent, or not a regular file
                return False
        hasher = await self._hashes((job.folder.joinpath(*segments), size, sha256 is None))
        if hasher is None:
            return False
        if sha256 is not None:
            return hasher.sha256 == sha256
        return hasher.git_sha1 == blob_sha1

    async def _store(self, store: _StoreJob, segments: tuple[str, ...]) -> FileHasher:
        """Verify a body and move it into place (`store_verified`, in a worker thread)."""
        try:
            return await self._stores(store)
        except UnsafePathError as exc:
            raise _Skip("unsafe_path", str(exc)) from None
        except OSError as exc:
            failure = self.guard.handle(exc)
            raise _Fail(failure.reason if failure else "disk", f"cannot write {'/'.join(segments)}: {exc}") from None

    async def _prune(self, job: _Entity, kept: frozenset[str]) -> None:
        removed = await self._prunes((job.folder, kept))
        if removed:
            self.stats.inc_value(f"{STATS}/pruned", removed)


# ---------------------------------------------------------------------------------------------------------
# Blocking helpers (worker threads)
# ---------------------------------------------------------------------------------------------------------


def _is_safe(path: str) -> bool:
    try:
        check_repo_path(path)
    except UnsafePathError:
        return False
    return True


def _content_length(response: Response) -> int | None:
    value = response.headers.get(b"Content-Length")
    text = value.decode("latin-1").strip() if value else ""
    return int(text) if text.isdigit() else None


def _known_file(entry: object) -> KnownFile | None:
    if not isinstance(entry, dict) or entry.get("type") != "file" or not isinstance(entry.get("path"), str):
        return None
    size = entry.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    lfs = entry.get("lfs")
    oid = strip_etag(entry.get("oid")) if isinstance(entry.get("oid"), str) else None
    if isinstance(lfs, dict):
        sha256 = strip_etag(lfs.get("oid")) if isinstance(lfs.get("oid"), str) else None
        return KnownFile(size, None, sha256 if is_sha256(sha256) else None, True)
    return KnownFile(size, oid if is_sha1(oid) else None, None, False)


def store_verified(job: _StoreJob) -> FileHasher:
    """Hash the body, check it against the expected hash, write it to the temporary file and move that into
    place (`place_file`): one worker-thread call per file. Raises _Retry on a mismatch (nothing is written),
    UnsafePathError or OSError; the temporary file never outlives a failure."""
    try:
        if job.body is not None:
            hasher = FileHasher(len(job.body), git=job.git)
            hasher.update(job.body)
        else:
            assert job.hasher is not None
            hasher = job.hasher
        if job.sha256 is not None and hasher.sha256 != job.sha256:
            raise _Retry("mismatch", f"SHA-256 {hasher.sha256} of the bytes, expected {job.sha256}")
        if job.sha256 is None and hasher.git_sha1 != job.blob_sha1:
            raise _Retry("mismatch", f"git blob SHA-1 {hasher.git_sha1} of the bytes, expected {job.blob_sha1}")
        if job.body is not None:
            fd = os.open(job.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            with os.fdopen(fd, "wb") as handle:
                handle.write(job.body)
        place_file(job.folder, job.segments, job.tmp, fsync=job.fsync)
    except BaseException:
        remove_quietly(job.tmp)
        raise
    return hasher


def list_entity_folder(folder: Path) -> dict[str, int | None]:
    """What an entity folder holds besides the crawl's own files: relative path -> size of each regular file,
    None for anything else (a symlink, a sub-folder as `path/`). Symlinks are not followed."""
    found: dict[str, int | None] = {}
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        with os.scandir(current) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if not prefix and (entry.name in RESERVED_NAMES or entry.name.startswith(TEMP_PREFIX)):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    found[rel + "/"] = None
                    pending.append((Path(entry.path), rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    found[rel] = entry.stat(follow_symlinks=False).st_size
                else:
                    found[rel] = None
    return found


def _hash_in_place(job: tuple[Path, int | None, bool]) -> FileHasher | None:
    """The hashes of the regular file at *path* (None if it is missing, not a regular file or not *size*);
    *git*: its git blob SHA-1 as well."""
    path, size, git = job
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode) or (size is not None and info.st_size != size):
        return None
    return _hash_file(path, info.st_size, git)


def _prune_job(job: tuple[Path, frozenset[str]]) -> int:
    return prune_entity_folder(*job)


def _record_batch(store: Any, entries: list[tuple[str, str, list[dict[str, Any]], str]]) -> list[tuple[bool, Any]]:
    """(the state's thread) The file outcomes of several entities, in one transaction."""
    try:
        record_files_batch(store, entries)
    except Exception as exc:  # every entity of the batch gets it
        return [(False, exc)] * len(entries)
    return [(True, None)] * len(entries)


def _hash_file(path: Path, size: int, git: bool) -> FileHasher:
    hasher = FileHasher(size, git=git)
    with open(path, "rb") as handle:
        # Pieces under the mmap threshold (hfscraper.extensions.memory): they come from the heap and reuse it.
        while piece := handle.read(64 * 1024):
            hasher.update(piece)
    return hasher


def place_file(folder: Path, segments: tuple[str, ...], tmp: Path, *, fsync: bool = False) -> Path:
    """Move the verified *tmp* to `folder/<segments>`, creating sub-folders; refuse to pass a symlink.

    *folder* is the resolved entity folder (its parent resolved, itself checked by the caller); it must still be
    a real folder, not a symlink put in its place since. Each sub-folder is created if missing and must be a
    real folder too (not a symlink, not a file): one lstat per level, so the file lands inside *folder*
    without os.path.realpath's walk over every component of the path. Raises UnsafePathError otherwise,
    OSError on disk errors (a directory where the file goes, a full disk).
    """
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a folder"
        raise UnsafePathError("outside_folder", "/".join(segments), f"the entity folder {folder} is {kind}")
    parent = folder
    for segment in segments[:-1]:
        parent = parent / segment
        with contextlib.suppress(FileExistsError):
            os.mkdir(parent)
        info = os.lstat(parent)
        if not stat.S_ISDIR(info.st_mode):
            kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a folder"
            raise UnsafePathError("symlink" if stat.S_ISLNK(info.st_mode) else "not_a_folder", "/".join(segments),
                                  f"{parent} is {kind}")  # fmt: skip
    target = parent / segments[-1]
    if fsync:
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    os.replace(tmp, target)  # replaces a file or a symlink itself, never what a symlink points to
    if fsync:
        fsync_directory(parent)
    return target


def prune_entity_folder(folder: Path, kept: Iterable[str]) -> int:
    """Remove every file under *folder* that is neither a kept path nor the crawl's own; returns how many.

    Top-level `RESERVED_NAMES` and leftovers of atomic writes (`TEMP_PREFIX...`, swept elsewhere) stay; so do
    the kept relative paths. Folders left empty are removed. Nothing is followed through a symlink.
    """
    keep = set(kept)
    removed = 0
    for current, dirnames, filenames in os.walk(folder, topdown=False, followlinks=False):
        relative = Path(current).relative_to(folder)
        top = relative == Path(".")
        for name in [*filenames, *(d for d in dirnames if os.path.islink(os.path.join(current, d)))]:
            rel = name if top else f"{relative.as_posix()}/{name}"
            if top and (name in RESERVED_NAMES or name.startswith(TEMP_PREFIX)):
                continue
            if rel in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(current, name))
                removed += 1
        if not top:
            with contextlib.suppress(OSError):
                os.rmdir(current)  # only succeeds when empty
    return removed


def sweep_temp_dir(tmp_dir: Path) -> int:
    """Remove the partial downloads (`<pid>-<n>.part`) of processes that are no longer running."""
    return sweep_dead_temp_files(tmp_dir, prefixes=("",), suffix=".part")


__all__ = [
    "FileResult",
    "RepoFilesPipeline",
    "place_file",
    "prune_entity_folder",
    "quote_repo_path",
    "sweep_temp_dir",
]
