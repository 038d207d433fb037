"""`ProvenancePipeline`: the relations each entity declares, kept in the crawl state; the graph files at the end.

It runs at ITEM_PIPELINES 350, after the IPFS stage and before the state-recording pipeline. For each Hub item it
extracts the node attributes and the edges the entity's JSON declares (`hfscraper.provenance.extract`: base models
with their relation, model -> dataset, space -> model and dataset, a model's `spaces`) and replaces the entity's
rows in the crawl state in one transaction (`hfscraper.provenance.store`), so resumes after a kill and incremental
crawls never duplicate an edge and a changed entity's old edges go.

Renamed ids: the Hub's tags and API fields carry current ids. An id only the card names (no `base_model:` or
`dataset:` tag) may be a renamed repo's old name: with HFSCRAPER_PROVENANCE_RESOLVE_RENAMES, it is looked up once
(`GET /api/<type>s/<id>`, redirects not followed: the Hub answers an old name with a 307 to the current one, an
unknown one with 404), unless it is a crawled entity; the answer is kept in the state and never asked again. A
failed look-up (network, 429, 5xx) is asked again by a later crawl. Ids are case-insensitive on the Hub: an id crawled
or looked up in another case is not looked up, and a 200 whose `id` is the card's id in another case records that
canonical spelling as its alias.

When the last crawler of the process that uses this output folder stops (`engine_stopped`; after the crawl state
tombstoned what a full sweep no longer found), the files under `output_dir/provenance/` are rebuilt from the state
(`hfscraper.provenance.outputs.rebuild`, all or nothing) in a child process, `python -m hfscraper.provenance
rebuild`. Opening bumps the state's provenance generation (`hfscraper.provenance.freshness`): until a rebuild of
it completes, `scrapy status` reports the files out of date, and every run rebuilds them, changed entities or not.

Settings (read once): HFSCRAPER_PROVENANCE_ENABLED, HFSCRAPER_PROVENANCE_RESOLVE_RENAMES,
HFSCRAPER_PROVENANCE_REBUILD, HFSCRAPER_PROVENANCE_ENTITY_FILES; HFSCRAPER_OUTPUT_DIR, HFSCRAPER_STATE_DIR,
HFSCRAPER_STORE_FSYNC.

Stats: hfscraper/provenance/entities, hfscraper/provenance/edges, hfscraper/provenance/edges/<kind>,
hfscraper/provenance/skipped/<reason> (untrusted values left out: `card/base_model/wrong_type`, `.../bad_id`,
`.../too_many`, ...), hfscraper/provenance/renames/resolved|recased|unknown|cached|failed (recased: the Hub spells
a card's id in another case), hfscraper/provenance/failed,
hfscraper/provenance/rebuild/nodes|edges|stubs|seconds, hfscraper/provenance/rebuild/failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self
from urllib.parse import unquote, urlsplit

from scrapy import Request, signals
from scrapy.exceptions import CloseSpider, IgnoreRequest, NotConfigured

from hfscraper import constants
from hfscraper.batching import ThreadBatcher
from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.extensions.checkpoint import state_location
from hfscraper.hub import build_entity_url, normalize_endpoint
from hfscraper.items import _MISSING, HubEntityItem
from hfscraper.middlewares.ratelimit import UNSCHEDULED_META
from hfscraper.pipelines import StageFailed
from hfscraper.provenance.extract import Extraction, extract, fold_id
from hfscraper.provenance.freshness import mark_stale
from hfscraper.provenance.store import RECORD_BATCH, is_crawled, known_alias, record_alias, record_entity_batch
from hfscraper.resources import ResourceGuard
from hfscraper.state import SharedStateStore, StateError, utc_now

if TYPE_CHECKING:
    from collections.abc import Callable

    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

STAGE: Final = "provenance"
STATS: Final = "hfscraper/provenance"


def current_id_from_redirect(response: Response, repo_type: str) -> str | None:
    """The current id a 307 of `/api/<type>s/<old id>` names (its `Location`, relative or absolute)."""
    location = response.headers.get(b"Location")
    if not location:
        return None
    path = unquote(urlsplit(location.decode("latin-1")).path)
    prefix = f"/api/{OUTPUT_FOLDERS[repo_type]}/"
    if not path.startswith(prefix):
        return None
    new_id = path[len(prefix) :].strip("/")
    return new_id or None


class ProvenancePipeline:
    """Record each entity's relations in the crawl state; rebuild the graph files when the crawl ends."""

    #: Users per output folder in this process (`crawlall` runs three crawlers; the last one rebuilds).
    _users: ClassVar[dict[str, int]] = {}
    _users_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("HFSCRAPER_PROVENANCE_ENABLED", True):
            raise NotConfigured("HFSCRAPER_PROVENANCE_ENABLED is off")
        self.crawler = crawler
        self.guard = ResourceGuard.of(crawler)
        assert crawler.stats is not None
        self.stats = crawler.stats
        self.resolve_renames: bool = settings.getbool("HFSCRAPER_PROVENANCE_RESOLVE_RENAMES", True)
        self.rebuild_enabled: bool = settings.getbool("HFSCRAPER_PROVENANCE_REBUILD", True)
        self.entity_files: bool = settings.getbool("HFSCRAPER_PROVENANCE_ENTITY_FILES", False)
        self.fsync: bool = settings.getbool("HFSCRAPER_STORE_FSYNC", False)
        self.endpoint: str = normalize_endpoint(settings.get("HFSCRAPER_HUB_ENDPOINT") or constants.HF_ENDPOINT)
        self.state_file, self.output_dir = state_location(settings)
        self.state: SharedStateStore | None = None
        #: The entities of one event-loop turn are recorded in one transaction on the state's thread.
        self._record: ThreadBatcher[Extraction, tuple[list[tuple[str, str]], int] | None] = ThreadBatcher(
            None, max_size=RECORD_BATCH, batch_func=self._record_batch, submit=self._submit_batch
        )
        self._registered = False
        #: Look-ups of this run: (type, id) -> its task (one request per id, even for concurrent items).
        self._lookups: dict[tuple[str, str], asyncio.Future[str | None]] = {}
        crawler.signals.connect(self.engine_stopped, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    # -- start and end --------------------------------------------------------------------------------------

    async def open_spider(self) -> None:
        try:
            self.state = SharedStateStore.acquire(self.state_file, fsync=self.fsync)
            # From here on the state may hold relations the files lack: `scrapy status` says so until a rebuild of
            # this generation completes (the one at the end of this run, or the next run's).
            await self.state.call(mark_stale)
        except Exception as exc:
            logger.error(
                "Provenance: cannot open the crawl state %(file)s: %(error)s", {"file": self.state_file, "error": exc}
            )
            raise CloseSpider("state_error") from exc
        with self._users_lock:
            key = str(self.output_dir)
            self._users[key] = self._users.get(key, 0) + 1
            self._registered = True

    async def close_spider(self) -> None:
        # The state stays open until engine_stopped: tombstones are written after the pipelines closed.
        return None

    async def engine_stopped(self) -> None:
        last = False
        if self._registered:
            with self._users_lock:
                key = str(self.output_dir)
                self._users[key] -= 1
                last = self._users[key] == 0
                if last:
                    del self._users[key]
            self._registered = False
        try:
            if last and self.rebuild_enabled and self.state is not None:
                if self.guard.stopped is not None:
                    # The disk is full or the folder gone: the rebuild would fail too; the next run writes the files.
                    logger.info("Provenance: graph files not rebuilt (the crawl stopped: %(r)s)",
                                {"r": self.guard.stopped.reason})  # fmt: skip
                else:
                    await self.rebuild_outputs()
        finally:
            if self.state is not None:
                state, self.state = self.state, None
                await asyncio.to_thread(state.release)

    async def rebuild_outputs(self) -> None:
        """Rebuild `output_dir/provenance/` from the state in a child process (`python -m hfscraper.provenance
        rebuild`: the crawl process never loads pyarrow nor holds the build's buffers); a failure is logged and
        counted, the state stays intact and the next crawl (or `rebuild`) writes the files."""
        command = [
            sys.executable, "-m", "hfscraper.provenance", "rebuild", "--json",
            "--output-dir", str(self.output_dir), "--state-file", str(self.state_file),
            "--fsync" if self.fsync else "--no-fsync", "--entity-files" if self.entity_files else "--no-entity-files",
            "--graph-files", ",".join(self.crawler.settings.getlist("HFSCRAPER_PROVENANCE_GRAPH_FILES", [])),
        ]  # fmt: skip
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_child_environment()
            )
            out, err = await proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"exit code {proc.returncode}: {err.decode(errors='replace').strip()[-2000:]}")
            summary = json.loads(out.decode().strip().splitlines()[-1])
        except Exception as exc:  # the child failed, or could not start
            self.stats.inc_value(f"{STATS}/rebuild/failed")
            logger.error("Provenance: could not write the graph files: %(error)s", {"error": exc})
            return
        for name in ("nodes", "edges", "stubs"):
            self.stats.set_value(f"{STATS}/rebuild/{name}", summary[name])
        self.stats.set_value(f"{STATS}/rebuild/seconds", summary["seconds"])
        logger.info(
            "Provenance: %(nodes)d nodes (%(stubs)d stubs), %(edges)d edges in %(dir)s (%(s).1fs)",
            {
                "nodes": summary["nodes"], "stubs": summary["stubs"], "edges": summary["edges"],
                "dir": self.output_dir / "provenance", "s": summary["seconds"],
            },
        )  # fmt: skip

    # -- items ----------------------------------------------------------------------------------------------

    def _record_batch(self, jobs: list[Extraction]) -> list[tuple[bool, Any]]:
        """Record a batch of entities in one transaction, on the state's thread (`_submit_batch`), and answer for
        each the card-only ids still to look up (neither crawled nor looked up before) and how many were known:
        the common case costs the reactor no hand-off beyond the batch's one."""
        assert self.state is not None
        store = self.state.store
        when = utc_now()
        results = record_entity_batch(store, [(extraction, when) for extraction in jobs])
        if not self.resolve_renames:
            return results
        for n, (extraction, (ok, _)) in enumerate(zip(jobs, results, strict=True)):
            if not ok or not extraction.card_only:
                continue
            try:
                unknown, cached = [], 0
                for repo_type, repo_id in dict.fromkeys(extraction.card_only):
                    if is_crawled(store, repo_type, repo_id):
                        continue
                    if known_alias(store, repo_type, repo_id)[0]:
                        cached += 1
                    else:
                        unknown.append((repo_type, repo_id))
                results[n] = (True, (unknown, cached))
            except Exception as exc:  # handed to that entity's caller
                results[n] = (False, exc)
        return results

    def _submit_batch(self, run: Callable[[list[Any]], Any], jobs: list[Any]) -> concurrent.futures.Future[Any]:
        if self.state is None:
            raise StateError("the provenance pipeline is not open")
        return self.state.submit(lambda _store, batch: run(batch), jobs)

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, HubEntityItem):
            return item
        state = self.state
        label = f"{item.repo_type}:{item.id}"
        if state is None:
            self._fail(label, "the provenance pipeline is not open")
        extraction = extract(item.repo_type, _ApiFields(item))
        stats = self.stats
        for reason, count in extraction.skipped.items():
            stats.inc_value(f"{STATS}/skipped/{reason}", count)
        try:
            renames = await self._record(extraction)
            if renames is not None:
                unknown, cached = renames
                if cached:
                    stats.inc_value(f"{STATS}/renames/cached", cached)
                for repo_type, repo_id in unknown:
                    await self._check_rename(state, repo_type, repo_id)
        except (OSError, StateError) as exc:
            self._fail(label, str(exc), exc)
        except Exception as exc:  # sqlite3 errors and the like: the entity is redone by the next run
            self._fail(label, f"{type(exc).__name__}: {exc}", exc)
        stats.inc_value(f"{STATS}/entities")
        edges = extraction.edges
        stats.inc_value(f"{STATS}/edges", len(edges))
        if edges:
            for kind, count in Counter(edge.kind for edge in edges).items():
                stats.inc_value(f"{STATS}/edges/{kind}", count)
        return item

    async def _check_rename(self, state: SharedStateStore, repo_type: str, repo_id: str) -> None:
        """Look up an id neither crawled nor looked up before (once per id in this run) and remember the answer."""
        key = (repo_type, repo_id)
        task = self._lookups.get(key)
        if task is None:
            task = self._lookups[key] = asyncio.ensure_future(self._lookup(repo_type, repo_id))
        current = await task
        if current is not None:
            await state.call(record_alias, repo_type, repo_id, current or None, utc_now())

    async def _lookup(self, repo_type: str, repo_id: str) -> str | None:
        """ "" for an unknown id, the current id for a renamed (or existing) one, None when the Hub did not say."""
        engine = self.crawler.engine
        if engine is None or not engine.running:
            return None
        try:
            url = build_entity_url(self.endpoint, repo_type, repo_id, expand=["author"])
        except ValueError:
            return ""
        meta = {
            "dont_redirect": True, "dont_retry": False, "handle_httpstatus_all": True, "download_warnsize": 0,
            "download_maxsize": 1 << 20, UNSCHEDULED_META: True,
        }  # fmt: skip
        try:
            response = await engine.download_async(Request(url, meta=meta, dont_filter=True))
        except (IgnoreRequest, Exception):
            self.stats.inc_value(f"{STATS}/renames/failed")
            return None
        if response.status in (301, 302, 307, 308):
            current = current_id_from_redirect(response, repo_type)
            if current:
                self.stats.inc_value(f"{STATS}/renames/resolved")
                logger.info("Provenance: %(old)s was renamed %(new)s", {"old": repo_id, "new": current})
                return current
        elif response.status == 200:
            # It exists (not crawled: private, gated or outside the crawl). Ids are case-insensitive: the body
            # names it under its canonical id, which then stands for the spelling the card wrote.
            current = canonical_id_from_body(response, repo_id)
            if current != repo_id:
                self.stats.inc_value(f"{STATS}/renames/recased")
            return current
        elif response.status in (401, 404, 410):
            self.stats.inc_value(f"{STATS}/renames/unknown")
            return ""
        self.stats.inc_value(f"{STATS}/renames/failed")
        return None

    def _fail(self, label: str, message: str, exc: BaseException | None = None) -> Any:
        if exc is not None and self.guard.handle(exc) is not None:
            self.guard.dropped()  # a full disk or a vanished folder: logged once, the crawl stops
            raise StageFailed(STAGE, f"provenance stage stopped for {label}: {message}")
        self.stats.inc_value(f"{STATS}/failed")
        logger.error("Provenance: relations of %(entity)s not recorded: %(error)s", {"entity": label, "error": message})
        raise StageFailed(STAGE, f"provenance stage failed for {label}: {message}")


def canonical_id_from_body(response: Response, repo_id: str) -> str:
    """The `id` of a 200 answer for *repo_id* when it is *repo_id* in another case (the Hub's canonical spelling);
    else *repo_id* (an unreadable body, or one about another repo, changes nothing)."""
    try:
        current = json.loads(response.body).get("id")
    except (ValueError, AttributeError):
        return repo_id
    if isinstance(current, str) and current != repo_id and fold_id(current) == fold_id(repo_id):
        return current
    return repo_id


class _ApiFields(Mapping[str, Any]):
    """The Hub JSON keys of an item that extraction reads, each converted when read (`item.to_api()` would build
    and format every field of the entity, dates included, for a handful of keys): what `to_api()` would hold."""

    __slots__ = ("_fmap", "_item")

    def __init__(self, item: HubEntityItem) -> None:
        self._item = item
        self._fmap = item._field_map()

    def get(self, key: str, default: Any = None) -> Any:
        item = self._item
        if key == "id":
            return item.id
        attr = self._fmap.api_to_attr.get(key)
        if attr is None:
            value = item.extra.get(key)
        elif key in self._fmap.dates:
            value = item._api_value(key, self._fmap)  # to_api()'s own conversion: the Hub's text kept
        else:
            value = getattr(item, attr)
        return default if value is None or value is _MISSING else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._item.to_api())

    def __len__(self) -> int:
        return len(self._item.to_api())


def _child_environment() -> dict[str, str]:
    """This process's environment, with the folder (or egg) hfscraper was imported from first on PYTHONPATH: under
    scrapyd the package lives in an egg that only the job's own process has on `sys.path`."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(constants.__file__)))
    paths = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}
