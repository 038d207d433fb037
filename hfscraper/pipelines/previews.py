"""`PreviewsPipeline`: dataset-viewer previews for datasets, thumbnail and links for spaces.

**Datasets: `preview_info.json`.** What the dataset viewer (HFSCRAPER_DATASETS_SERVER,
https://huggingface.co/docs/dataset-viewer) says about
the dataset, asked in this order: `/is-valid`; then, when it offers a preview, `/splits`, `/first-rows` for the
first HFSCRAPER_PREVIEWS_MAX_SPLITS splits, `/info` and `/size`. When it offers none, `/splits` is asked anyway
(one request) because its error says why (`ResponseNotReadyError`: not computed yet; an error of the dataset
itself). The file holds each answer's JSON body unchanged:

```
{"dataset": <id>,
 "is_valid": {...} | null, "splits": {...} | null,
 "first_rows": {"<config>/<split>": {...first-rows body...} | {"error": ERROR}, ...},
 "info": {...} | null, "size": {...} | null,
 "errors": {"<endpoint>": ERROR, ...},
 "unavailable": null | {"reason": REASON, "endpoint": "/is-valid", "status": 401, "error_code": ..., "error": ...},
 "final": true | false}
ERROR = {"status": <HTTP status or null>, "error_code": <X-Error-Code or null>, "error": <the body's "error",
         or what went wrong>}
```

`unavailable` is null when the viewer shows a preview; otherwise it names the reason, never a stub:
`unauthorized` (401: private, gated or missing without a token), `not_found` (404), `no_preview` (is-valid says
no preview although the splits exist), `not_ready` (500 `ResponseNotReadyError`), `error` (any other 5xx, with the
viewer's message), `not_implemented` (501), `bad_response` (a 200 that is not the JSON object expected),
`network` (no answer after the retries). `errors` lists the endpoints that failed while a preview exists (a
split whose rows cannot be streamed, sizes not computed yet). `final` is false when any answer in the file is
transient (see below): it is not the viewer's last word, and a later run asks again.

A crawl that stops (Ctrl-C, SIGTERM) while a dataset's preview is being asked for drops that entity
(`hfscraper.pipelines.StageFailed`): nothing half-asked is recorded, and the next run asks again.

The token is never sent to the viewer (`HubAuthDownloaderMiddleware` adds it to the Hub's origin only; a viewer
URL on the Hub's own origin is refused at start). Requests go through Scrapy's downloader with `dont_retry`:
502/503/504/408/429 and lost connections are retried here (twice, then `network`/`error`/`http_429`); a 500 is
not hammered within the run.

**Transient is not final.** An answer is transient when asking again later may change it: no answer (`network`),
a body that is not the JSON expected, 408, 429, 502/503/504, a 5xx without the viewer's `X-Error-Code` (a
gateway's), `ResponseNotReadyError`, or a 200 whose `pending` lists configs still being computed. The viewer's
own answers are definitive: 401/404, 501, other 4xx, a 5xx with its error code (`UnexpectedError`: the dataset
cannot be read; `StreamingRowsError` on one split), and `no_preview`. Each ask's outcome (`ok`, `definitive`
with its reason, `transient` with its reason) goes to the crawl state (`hfscraper.preview_records`).

A definitive outcome completes the stage: the dataset is not asked again until it changes (a re-crawl of an
unchanged Hub makes no request beyond the listing; `-s DELTAFETCH_RESET=true` asks again). A transient one
leaves the stage pending (`item._pending_stages`): the entity is stored and the crawl completes (the viewer is
not the Hub), but the entity is not recorded as complete, so the next crawl processes it again. It then asks
the viewer only once the backoff is due (HFSCRAPER_PREVIEWS_RETRY_MIN, doubling after each transient answer
about the same version, at most HFSCRAPER_PREVIEWS_RETRY_MAX); before that the existing `preview_info.json` is
kept as it is and the stage stays pending. A new version of the dataset (another sha) is asked at once. At the
end of a run with pending previews, one WARNING line gives their numbers per reason.

**Spaces: `thumbnail_info.json` and `relationships.json`,** from the listing alone (no request):
`{"id", "title", "emoji", "colorFrom", "colorTo", "short_description", "thumbnail", "sdk", "subdomain", "host"}`
(the card's `title`, `emoji`, `colorFrom`, `colorTo`, `short_description`, `thumbnail`; the listing's `sdk`,
falling back to the card's, `subdomain` and `host`; null where absent) and `{"id", "models", "datasets"}` (the
listing's lists; `[]` when the listing was asked for them and has none, null when it was not asked).

Files are written atomically and only when their bytes change, into the entity folder `EntityStorePipeline`
made (nothing is written for an entity the store refused). Models pass through untouched.

Settings (read once): HFSCRAPER_PREVIEWS_ENABLED (off: NotConfigured), HFSCRAPER_DATASETS_SERVER,
HFSCRAPER_PREVIEWS_MAX_SPLITS, HFSCRAPER_PREVIEWS_RETRY_MIN, HFSCRAPER_PREVIEWS_RETRY_MAX, HFSCRAPER_OUTPUT_DIR,
HFSCRAPER_STATE_DIR, HFSCRAPER_STORE_FSYNC, DELTAFETCH_RESET (every dataset is asked again, backoffs included).

Stats (prefix hfscraper/previews/): datasets, available, unavailable/<reason>, requests, endpoint_errors/<endpoint>,
retry_later (datasets asked whose outcome is transient: pending), deferred (not asked: their backoff is not due;
pending too), state_errors, spaces, written, unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import urlencode

from scrapy import Request
from scrapy.exceptions import NotConfigured
from scrapy.http import Response

from hfscraper import constants
from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.extensions.checkpoint import state_location
from hfscraper.fsutil import write_if_changed
from hfscraper.hub import HostileIdError, entity_folder_name, normalize_endpoint
from hfscraper.items import DatasetItem, HubEntityItem, SpaceItem
from hfscraper.middlewares.auth import origin_of
from hfscraper.middlewares.ratelimit import UNSCHEDULED_META
from hfscraper.pipelines import StageFailed
from hfscraper.preview_records import DEFINITIVE, OK, TRANSIENT, ensure_table, preview_record, record_preview
from hfscraper.resources import ResourceGuard
from hfscraper.state import SharedStateStore

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

STAGE: Final = "previews"
STATS: Final = "hfscraper/previews"
PREVIEW_FILE: Final = "preview_info.json"
THUMBNAIL_FILE: Final = "thumbnail_info.json"
RELATIONSHIPS_FILE: Final = "relationships.json"
#: Statuses retried here (the viewer's 500 is an answer, not a hiccup); transient whatever their body says.
RETRY_STATUSES: Final = frozenset({502, 503, 504, 408, 429})
#: The viewer's error codes for "not computed yet" (the spec's example says the header "contains ResponseNotReady").
NOT_READY_CODES: Final = frozenset({"ResponseNotReadyError", "ResponseNotReady"})
RETRIES: Final = 2
#: The largest viewer answer read (a first-rows page of images is a few hundred KB).
MAX_BODY: Final = 16 * 1024 * 1024
_CARD_KEYS: Final = ("title", "emoji", "colorFrom", "colorTo", "short_description", "thumbnail")


class _Answer:
    """One viewer answer: the parsed body, or what went wrong."""

    __slots__ = ("body", "error", "reason")

    def __init__(self, body: dict[str, Any] | None, error: dict[str, Any] | None, reason: str | None) -> None:
        self.body = body
        self.error = error
        self.reason = reason


def render_json(payload: Any) -> bytes:
    return (json.dumps(payload, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


class PreviewsPipeline:
    """Write dataset previews and space details into entity folders (see the module docstring)."""

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("HFSCRAPER_PREVIEWS_ENABLED", True):
            raise NotConfigured("HFSCRAPER_PREVIEWS_ENABLED is off")
        self.crawler = crawler
        self.guard = ResourceGuard.of(crawler)
        assert crawler.stats is not None
        self.stats = crawler.stats
        self.server = normalize_endpoint(
            settings.get("HFSCRAPER_DATASETS_SERVER") or "https://datasets-server.huggingface.co"
        )
        hub = normalize_endpoint(settings.get("HFSCRAPER_HUB_ENDPOINT") or constants.HF_ENDPOINT)
        if origin_of(self.server) == origin_of(hub):
            raise NotConfigured(
                f"HFSCRAPER_DATASETS_SERVER ({self.server}) must not be the Hub's own origin: the token would go there"
            )
        self.max_splits: int = max(0, settings.getint("HFSCRAPER_PREVIEWS_MAX_SPLITS", 5))
        self.fsync: bool = settings.getbool("HFSCRAPER_STORE_FSYNC", False)
        output = settings.get("HFSCRAPER_OUTPUT_DIR") or "output"
        self.output_dir = Path(os.path.realpath(Path(output).expanduser()))
        self.retry_min: float = max(0.0, settings.getfloat("HFSCRAPER_PREVIEWS_RETRY_MIN", 600.0))
        self.retry_max: float = max(self.retry_min, settings.getfloat("HFSCRAPER_PREVIEWS_RETRY_MAX", 86400.0))
        self.reset: bool = settings.getbool("DELTAFETCH_RESET", False)  # ask everything again, backoffs included
        self.state_file, _ = state_location(settings)
        self.state: SharedStateStore | None = None
        # This run's pending previews, for the one WARNING line at the end.
        self._transient: Counter[str] = Counter()
        self._deferred = 0
        self._next_retry: str | None = None
        self._state_warned = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def open_spider(self) -> None:
        try:
            self.state = await asyncio.to_thread(SharedStateStore.acquire, self.state_file, fsync=self.fsync)
            await self.state.call(ensure_table)
        except Exception as exc:
            # Without the state every dataset is asked (no backoff), and a transient answer still stays pending.
            logger.warning(
                "Previews: cannot open the crawl state %(file)s (%(error)s); transient viewer answers are retried "
                "without backoff", {"file": self.state_file, "error": exc},
            )  # fmt: skip
            if self.state is not None:
                state, self.state = self.state, None
                await asyncio.to_thread(state.release)

    async def close_spider(self) -> None:
        pending = sum(self._transient.values()) + self._deferred
        if pending:
            parts = []
            if self._transient:
                reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self._transient.items()))
                parts.append(f"no final answer from the dataset viewer {self.server}: {reasons}")
            if self._deferred:
                parts.append(f"not asked again before their backoff: {self._deferred}")
            logger.warning(
                "Previews of %(n)d dataset(s) are pending (%(parts)s); they do not make the crawl incomplete, and "
                "a later run asks the viewer again%(when)s (at once: -s HFSCRAPER_PREVIEWS_RETRY_MIN=0)",
                {
                    "n": pending,
                    "parts": "; ".join(parts),
                    "when": f" from {self._next_retry}" if self._next_retry else "",
                },
            )
        if self.state is not None:
            state, self.state = self.state, None
            await asyncio.to_thread(state.release)

    async def process_item(self, item: Any) -> Any:
        if isinstance(item, DatasetItem):
            await self._dataset(item)
        elif isinstance(item, SpaceItem):
            await self._space(item)
        return item

    # -- spaces ---------------------------------------------------------------------------------------------

    async def _space(self, item: SpaceItem) -> None:
        folder = self._folder(item)
        if folder is None:
            return
        self.stats.inc_value(f"{STATS}/spaces")
        card = item.card_data if isinstance(item.card_data, dict) else {}
        thumbnail: dict[str, Any] = {"id": item.id}
        for key in _CARD_KEYS:
            thumbnail[key] = card.get(key)
        thumbnail["sdk"] = item.sdk if item.sdk is not None else card.get("sdk")
        thumbnail["subdomain"] = item.subdomain
        thumbnail["host"] = item.host
        # What the listing was asked for: an absent list then means "none", not "unknown".
        expand = set(getattr(self.crawler.spider, "expand", ()) or ())
        relationships = {
            "id": item.id,
            "models": item.models if isinstance(item.models, list) else ([] if "models" in expand else None),
            "datasets": item.datasets if isinstance(item.datasets, list) else ([] if "datasets" in expand else None),
        }
        await self._write(folder, {THUMBNAIL_FILE: thumbnail, RELATIONSHIPS_FILE: relationships})

    # -- datasets -------------------------------------------------------------------------------------------

    async def _dataset(self, item: DatasetItem) -> None:
        folder = self._folder(item)
        if folder is None:
            return
        self.stats.inc_value(f"{STATS}/datasets")
        sha = item.sha if isinstance(item.sha, str) else None
        record = await self._state_call(preview_record, item.repo_type, item.id)
        if (
            record is not None
            and not self.reset
            and record.deferred(sha, datetime.now(UTC), self.retry_min, self.retry_max)
            and (folder / PREVIEW_FILE).is_file()
        ):
            # Asked about this version lately and got no final answer: the file stays as it is until the backoff.
            item._pending_stages.add(STAGE)
            self.stats.inc_value(f"{STATS}/deferred")
            self._deferred += 1
            due = record.due(self.retry_min, self.retry_max)
            self._note_retry(due)
            logger.debug("Preview of dataset %(id)s: not asked again before %(t)s", {"id": item.id, "t": due})
            return
        preview = await self.preview(item.id)
        status, reason = outcome(preview)
        preview["final"] = status != TRANSIENT
        unavailable = preview["unavailable"]
        if unavailable is None:
            self.stats.inc_value(f"{STATS}/available")
        else:
            self.stats.inc_value(f"{STATS}/unavailable/{unavailable['reason']}")
            logger.debug("No preview of dataset %(id)s: %(reason)s", {"id": item.id, "reason": unavailable["reason"]})
        for endpoint in preview["errors"]:
            self.stats.inc_value(f"{STATS}/endpoint_errors/{endpoint.strip('/').split(' ')[0]}")
        await self._write(folder, {PREVIEW_FILE: preview})
        saved = await self._state_call(
            record_preview, item.repo_type, item.id, sha, status, reason, datetime.now(UTC), self.retry_min,
            self.retry_max,
        )  # fmt: skip
        if status == TRANSIENT:
            # Not the viewer's final word: the stage stays pending, so the next crawl processes the dataset again.
            item._pending_stages.add(STAGE)
            self.stats.inc_value(f"{STATS}/retry_later")
            self._transient[reason or "error"] += 1
            self._note_retry(saved.next_attempt if saved is not None else None)

    def _note_retry(self, when: str | None) -> None:
        if when is not None and (self._next_retry is None or when < self._next_retry):
            self._next_retry = when

    async def _state_call(self, fn: Any, *args: Any) -> Any:
        """`fn(store, *args)` on the crawl state; None without a state (or when it fails: warned once)."""
        if self.state is None:
            return None
        try:
            return await self.state.call(fn, *args)
        except Exception as exc:
            self.stats.inc_value(f"{STATS}/state_errors")
            if not self._state_warned:
                self._state_warned = True
                logger.warning(
                    "Previews: the crawl state %(file)s failed (%(error)s); backoffs are not kept",
                    {"file": self.state_file, "error": exc},
                )
            return None

    async def preview(self, dataset: str) -> dict[str, Any]:
        """The contents of `preview_info.json` for *dataset* (see the module docstring)."""
        preview: dict[str, Any] = {
            "dataset": dataset, "is_valid": None, "splits": None, "first_rows": {}, "info": None, "size": None,
            "errors": {}, "unavailable": None, "final": True,
        }  # fmt: skip
        valid = await self._ask("/is-valid", dataset=dataset)
        if valid.body is None:
            preview["unavailable"] = _unavailable(valid, "/is-valid")
            return preview
        preview["is_valid"] = valid.body
        splits = await self._ask("/splits", dataset=dataset)
        if not valid.body.get("preview"):
            if splits.body is not None:
                preview["splits"] = splits.body
                preview["unavailable"] = {
                    "reason": "no_preview", "endpoint": "/is-valid", "status": 200, "error_code": None,
                    "error": "the viewer offers no preview of this dataset",
                }  # fmt: skip
            else:
                preview["unavailable"] = _unavailable(splits, "/splits")
            return preview
        if splits.body is None:
            preview["unavailable"] = _unavailable(splits, "/splits")
            return preview
        preview["splits"] = splits.body
        listed = [s for s in splits.body.get("splits") or () if isinstance(s, dict) and {"config", "split"} <= set(s)]
        chosen = listed[: self.max_splits]
        first_rows = [
            self._ask("/first-rows", dataset=dataset, config=str(s["config"]), split=str(s["split"])) for s in chosen
        ]
        rows, info, size = await asyncio.gather(
            asyncio.gather(*first_rows), self._ask("/info", dataset=dataset), self._ask("/size", dataset=dataset)
        )
        for split, answer in zip(chosen, rows, strict=True):
            key = f"{split['config']}/{split['split']}"
            preview["first_rows"][key] = answer.body if answer.body is not None else {"error": answer.error}
            if answer.body is None:
                preview["errors"][f"/first-rows {key}"] = answer.error
        for endpoint, answer in (("/info", info), ("/size", size)):
            if answer.body is not None:
                preview[endpoint.strip("/")] = answer.body
            else:
                preview["errors"][endpoint] = answer.error
        return preview

    async def _ask(self, endpoint: str, **params: str) -> _Answer:
        """GET one viewer endpoint; retries 502/503/504/408/429 and lost connections twice."""
        url = f"{self.server}{endpoint}?{urlencode(params)}"
        meta = {
            "dont_retry": True, "dont_redirect": False, "download_maxsize": MAX_BODY, "download_warnsize": 0,
            UNSCHEDULED_META: True,
        }  # fmt: skip
        engine = self.crawler.engine
        assert engine is not None
        failure: _Answer | None = None
        for _attempt in range(RETRIES + 1):
            if not engine.running:  # a stop: this answer is not the viewer's, so nothing is recorded
                raise StageFailed(STAGE, "the crawl is stopping")
            self.stats.inc_value(f"{STATS}/requests")
            try:
                response = await engine.download_async(Request(url, meta=dict(meta), dont_filter=True))
            except Exception as exc:
                if not engine.running:
                    raise StageFailed(STAGE, "the crawl is stopping") from None
                failure = _Answer(None, {"status": None, "error_code": None, "error": f"{type(exc).__name__}: {exc}"},
                                  "network")  # fmt: skip
                continue
            answer = _answer(response)
            if answer.body is None and response.status in RETRY_STATUSES:
                failure = answer
                continue
            return answer
        assert failure is not None
        return failure

    # -- disk -----------------------------------------------------------------------------------------------

    def _folder(self, item: HubEntityItem) -> Path | None:
        """The entity's folder if the store made it (and it is where it must be), else None."""
        try:
            name = entity_folder_name(item.id)
        except HostileIdError:
            return None
        root = Path(os.path.realpath(self.output_dir / OUTPUT_FOLDERS[item.repo_type]))
        folder = Path(os.path.realpath(root / name))
        if folder.parent != root or folder.name != name or not folder.is_dir():
            return None
        return folder

    async def _write(self, folder: Path, files: dict[str, Any]) -> None:
        def write() -> list[bool]:
            return [write_if_changed(folder / name, render_json(p), fsync=self.fsync) for name, p in files.items()]

        try:
            results = await asyncio.to_thread(write)
        except OSError as exc:
            if self.guard.handle(exc) is None:
                raise
            self.guard.dropped()  # logged once, the crawl stops, the entity is redone by the next run
            raise StageFailed(STAGE, f"not written: {exc}") from None
        for written in results:
            self.stats.inc_value(f"{STATS}/written" if written else f"{STATS}/unchanged")


def _answer(response: Response) -> _Answer:
    status = response.status
    code = (response.headers.get(b"X-Error-Code") or b"").decode("latin-1") or None
    try:
        data = json.loads(response.body) if response.body else None
    except (ValueError, RecursionError):
        data = None
    if status == 200:
        if isinstance(data, dict):
            return _Answer(data, None, None)
        return _Answer(None, {"status": 200, "error_code": None, "error": "not a JSON object"}, "bad_response")
    message = data.get("error") if isinstance(data, dict) and isinstance(data.get("error"), str) else None
    if message is None:
        message = response.body[:200].decode("utf-8", "replace").strip() or f"HTTP {status}"
    error = {"status": status, "error_code": code, "error": message}
    return _Answer(None, error, _reason(status, code))


def _reason(status: int | None, code: str | None) -> str:
    """The reason a viewer answer gives no body (see the module docstring)."""
    if status is None:
        return "network"
    if status == 200:
        return "bad_response"
    if status == 401:
        return "unauthorized"
    if status in (403, 404):
        return "not_found"
    if status == 500 and code in NOT_READY_CODES:
        return "not_ready"
    if status == 501:
        return "not_implemented"
    if status >= 500:
        return "error"
    return f"http_{status}"


def _unavailable(answer: _Answer, endpoint: str) -> dict[str, Any]:
    error = answer.error or {}
    return {
        "reason": answer.reason or "error",
        "endpoint": endpoint,
        "status": error.get("status"),
        "error_code": error.get("error_code"),
        "error": error.get("error"),
    }


def _transient(problem: dict[str, Any] | None) -> bool:
    """Whether asking again later may give another answer: no answer, a body that is not the JSON expected, a
    timeout or 429, not computed yet, a gateway's 5xx (502/503/504, or a 5xx without the viewer's error code).
    A 5xx with the viewer's own code (`UnexpectedError`, `StreamingRowsError`), a 501 and a 4xx are its answer."""
    if not problem:
        return False
    status, code = problem.get("status"), problem.get("error_code")
    if status is None or code in NOT_READY_CODES or status in RETRY_STATUSES:
        return True
    if status == 200:  # a body that is not the JSON expected; `no_preview` (also a 200) is the viewer's answer
        return problem.get("reason", "bad_response") == "bad_response"
    return isinstance(status, int) and status >= 500 and status != 501 and not code


def outcome(preview: dict[str, Any]) -> tuple[str, str | None]:
    """`(status, reason)` of a preview for the crawl state: `ok`, `definitive` or `transient` (see
    `hfscraper.preview_records`). Transient when any answer in it is; an answer whose `pending` lists configs
    still being computed is `in_progress`."""
    unavailable = preview["unavailable"]
    if _transient(unavailable):
        return TRANSIENT, unavailable["reason"]
    for problem in preview["errors"].values():
        if _transient(problem):
            return TRANSIENT, _reason(problem.get("status"), problem.get("error_code"))
    for key in ("splits", "info", "size"):
        body = preview[key]
        if isinstance(body, dict) and isinstance(body.get("pending"), list) and body["pending"]:
            return TRANSIENT, "in_progress"
    if unavailable is not None:
        return DEFINITIVE, unavailable["reason"]
    return OK, None
