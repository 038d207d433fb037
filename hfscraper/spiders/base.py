"""`HubListingSpider`: walk one Hub listing (`/api/models`, `/api/datasets`, `/api/spaces`) page by page.

To make a spider, subclass it and set `name`, `repo_type`, `item_class` and `expand_setting`.

The spider asks for the first page (`build_list_url`) and then follows only the `Link: rel="next"` header;
it never builds page numbers or cursors. Each element of a page becomes one item (`item_class.from_api`).
When `HFSCRAPER_CRAWL_FETCH_BASE_MODELS` is on, models whose tags contain `base_model:` get one extra
request, `/api/models/{id}?expand=baseModels` (a field no listing gives), merged into the item before it
is yielded.

Settings (read once, when the crawler creates the spider):

HFSCRAPER_HUB_ENDPOINT - the Hub's base URL (default: `HF_ENDPOINT` from the environment, else
    https://huggingface.co)
HFSCRAPER_CRAWL_PAGE_SIZE - entities per listing page, 1..1000 (default 1000)
HFSCRAPER_CRAWL_SORT - listing order, one of createdAt, downloads (not spaces), lastModified, likes,
    trendingScore (default createdAt: new repositories only ever appear before the cursor, so a long crawl
    neither skips nor repeats entities the way a moving order such as trendingScore can). In a moving order
    (`MOVING_SORTS`) an entity whose value changes between two pages is listed twice or never: the spider
    yields each id once per run (`hfscraper/spider/relisted` counts the repeats it dropped; about 100 bytes of
    memory per entity listed), and the end of such a crawl marks nothing deleted (`hfscraper.extensions.
    checkpoint`: only a createdAt sweep can tell an entity is gone)
HFSCRAPER_CRAWL_MAX_ITEMS - stop after this many entities, 0 = no limit (default 0)
HFSCRAPER_CRAWL_FETCH_BASE_MODELS - fetch `baseModels` per model that has a base (default False)
HFSCRAPER_CRAWL_EXPAND_MODELS / _DATASETS / _SPACES - the `expand` values of each listing (defaults in
    hfscraper.constants)

Spider arguments (`-a name=value`, checked by `validate_arguments` before the crawl starts):
search, author, filter (comma-separated tags, all must match), sort, limit (page size, overrides
HFSCRAPER_CRAWL_PAGE_SIZE), max_items (overrides HFSCRAPER_CRAWL_MAX_ITEMS), since (`auto` or an ISO 8601
date: an incremental crawl that lists by lastModified and stops paging at the first entity modified before
the watermark; `auto` is the watermark of the last complete crawl of the same listing).

Resume (with `hfscraper.extensions.checkpoint`): `start()` continues the listing's unfinished crawl at its
saved cursor, on a fresh cursor chain; every listing request carries its chain id and page number, and
responses of another chain (restored from a JOBDIR) are ignored. Each parsed page is registered with the
number of items it yields, and each item carries its page (`item._crawl_page`), so the cursor is saved only
once a page's items are all stored. A saved cursor that the Hub refuses (any 4xx but 401, 403, 407, 408 and
429) restarts the listing from the top; entities this crawl already stored are skipped as duplicates.

Stats:
hfscraper/spider/pages - listing pages received; hfscraper/spider/items - items yielded;
hfscraper/spider/relisted - entities a moving order listed again in the same run, not yielded twice;
hfscraper/spider/bad_page/<reason> - pages whose body or fetch failed (`invalid_json`, `html`,
`not_a_list`, `http_<status>`, `<exception name>`, `bad_next_link`, `foreign_next_link`, `next_link_loop`,
`cursor_refused`), counted for every such response, retried or not;
hfscraper/spider/retry/count, hfscraper/spider/retry/reason_count/bad_page/<reason>,
hfscraper/spider/retry/max_reached - retries of listing pages with a bad 200 body (`invalid_json`, `html`,
`not_a_list`), which share RETRY_TIMES (or the `max_retry_times` meta key) with Scrapy's own retries;
hfscraper/spider/listing_restarts - listings walked again from the first page after the Hub refused a cursor;
hfscraper/resume/cursor_refused - saved cursors the Hub refused on resume (the listing restarts from the top);
hfscraper/spider/stale_listing_request, hfscraper/spider/base_models/stale - responses of an older cursor
chain (from a JOBDIR), ignored; hfscraper/spider/since_reached - an incremental crawl reached its watermark;
hfscraper/spider/bad_item/<reason> - page elements skipped (`not_an_object`, `missing_id`);
hfscraper/spider/base_models/<event> - `requested`, `merged`, `absent`, `failed`, `bad_response`,
`skipped_non_plain_id`; hfscraper/spider/max_items_reached; hfscraper/spider/incomplete - listing pages
lost. When a listing page is lost the crawl still drains, then closes with reason `listing_incomplete`.

Distributed crawls (HFSCRAPER_DISTRIBUTED_ROLE, `hfscraper.distributed`): as `discovery` the spider walks the
listing as above but leaves the `baseModels` requests to the workers (its items go to Redis); as `worker` it walks
no listing: `start()` yields the entities the discovery queued (`RedisEntityWorker`) until the listing is done and
drained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import urlsplit

import orjson
from scrapy import Request, Spider, signals
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import CloseSpider
from scrapy.spidermiddlewares.httperror import HttpError

from hfscraper import constants
from hfscraper.distributed import ROLE_DISCOVERY, ROLE_WORKER, role_of
from hfscraper.extensions.checkpoint import CheckpointExtension, CrawlSession
from hfscraper.hub import (
    accepted_expand,
    build_entity_url,
    build_list_url,
    check_expand,
    is_plain_id,
    normalize_endpoint,
    parse_link_next,
)
from hfscraper.items import HubEntityItem, format_hub_datetime, parse_hub_datetime
from hfscraper.middlewares.auth import InvalidTokenError
from hfscraper.state import item_version

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

#: The finish reason of a crawl that lost at least one listing page.
INCOMPLETE_REASON = "listing_incomplete"

#: Request meta keys of listing requests: the cursor chain (one per run) and the page's number in it, and
#: the flag of the request that continues a saved cursor.
CHAIN_META = "hfscraper_chain"
PAGE_META = "hfscraper_page"
RESUMED_META = "hfscraper_resumed"
#: Listing orders whose values move while a crawl pages (counters; the Hub's default order is trendingScore):
#: keyset paging over them lists an entity twice when its value falls behind the cursor, never when it rises past.
MOVING_SORTS = frozenset({None, "downloads", "likes", "trendingScore", "likes30d"})
#: Statuses of a refused saved cursor that are not about the cursor (auth, timeouts, rate limits).
_NOT_A_CURSOR_REFUSAL = frozenset({401, 403, 407, 408, 429})

_AUTHOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_MAX_SEARCH_LENGTH = 250
_MAX_FILTERS = 50


def _has_control(value: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in value)


def _text_argument(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"-a {name}={value!r}: must be text")
    return value


def _int_argument(name: str, value: object, low: int, high: int | None) -> int:
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
    bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
    if text is None or not re.fullmatch(r"[0-9]+", text) or not low <= int(text) <= (high or int(text)):
        raise ValueError(f"-a {name}={value!r}: must be a whole number {bounds}")
    return int(text)


def load_json(body: bytes) -> Any:
    """`json.loads(body)`, parsed by orjson (4x faster on a 1,000-entity page) whenever orjson accepts the body.

    Where both accept a body they give equal values; what orjson refuses (UTF-16, a byte-order mark, NaN, a lone
    surrogate escape, an integer beyond 64 bits, nesting past 1,024) goes to json.loads. One difference: nesting of
    1,000 to 1,024 levels, past json.loads' recursion limit, parses, and then fails the page's or entity's checks.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


class HubListingSpider(Spider):
    """Crawl one Hub listing; subclasses set the four class attributes below.

    Attributes:
        repo_type: `model`, `dataset` or `space` (hfscraper.constants.REPO_TYPE_*).
        item_class: the item built from each listing element (`ModelItem`, ...).
        expand_setting: the name of the setting that lists this type's `expand` values.
    """

    repo_type: ClassVar[str]
    item_class: ClassVar[type[HubEntityItem]]
    expand_setting: ClassVar[str]

    #: HFSCRAPER_DISTRIBUTED_ROLE (read in `_configure`), and the worker role's source of items.
    distributed_role: str = "off"
    work_source: Any = None

    #: The spider arguments this spider accepts (arguments starting with `_`, such as scrapyd's `_job`,
    #: are passed through untouched).
    ARGUMENTS: ClassVar[tuple[str, ...]] = ("search", "author", "filter", "sort", "limit", "max_items", "since")

    # -- arguments --------------------------------------------------------------------------------------------

    @classmethod
    def validate_arguments(cls, args: Mapping[str, Any]) -> dict[str, Any]:
        """Check spider arguments (as `-a` gives them, all text) and return them parsed.

        The result has the keys that were given among `search`, `author`, `filters` (a tuple), `sort`,
        `limit` and `max_items`. Raises ValueError with one line naming the argument on the first bad one.
        """
        unknown = sorted(k for k in args if k not in cls.ARGUMENTS and not k.startswith("_"))
        if unknown:
            raise ValueError(f"unknown spider argument {unknown[0]!r} (accepted: {', '.join(cls.ARGUMENTS)})")
        parsed: dict[str, Any] = {}
        if "search" in args:
            search = _text_argument("search", args["search"])
            if not search.strip() or len(search) > _MAX_SEARCH_LENGTH or _has_control(search):
                raise ValueError(
                    f"-a search={search!r}: must be non-empty text of at most {_MAX_SEARCH_LENGTH} "
                    "characters without control characters"
                )
            parsed["search"] = search
        if "author" in args:
            author = _text_argument("author", args["author"]).strip()
            if not _AUTHOR.fullmatch(author):
                raise ValueError(
                    f"-a author={args['author']!r}: must be a Hub user or organisation name "
                    "(letters, digits, '.', '_', '-'; no '/')"
                )
            parsed["author"] = author
        if "filter" in args:
            raw = args["filter"]
            pieces = raw.split(",") if isinstance(raw, str) else list(raw) if isinstance(raw, list | tuple) else None
            if pieces is None or not all(isinstance(p, str) for p in pieces):
                raise ValueError(f"-a filter={raw!r}: must be comma-separated tags")
            filters = tuple(p.strip() for p in pieces)
            if not filters or any(not f or _has_control(f) for f in filters) or len(filters) > _MAX_FILTERS:
                raise ValueError(
                    f"-a filter={raw!r}: must be 1 to {_MAX_FILTERS} comma-separated, non-empty tags "
                    "(e.g. filter=gguf,license:mit)"
                )
            parsed["filters"] = tuple(dict.fromkeys(filters))
        if "sort" in args:
            sort = _text_argument("sort", args["sort"]).strip()
            allowed = constants.SORT_VALUES[cls.repo_type]
            if sort not in allowed:
                raise ValueError(f"-a sort={args['sort']!r}: must be one of {', '.join(sorted(allowed))}")
            parsed["sort"] = sort
        if "limit" in args:
            parsed["limit"] = _int_argument("limit", args["limit"], 1, constants.MAX_PAGE_SIZE)
        if "max_items" in args:
            parsed["max_items"] = _int_argument("max_items", args["max_items"], 1, None)
        if "since" in args:
            since = _text_argument("since", args["since"]).strip()
            if since != "auto":
                moment = parse_hub_datetime(since) if since else None
                if moment is None:
                    raise ValueError(
                        f"-a since={args['since']!r}: must be auto or an ISO 8601 date "
                        "(2024-06-01 or 2024-06-01T12:00:00Z)"
                    )
                since = format_hub_datetime(moment)
            if parsed.get("sort", "lastModified") != "lastModified":
                raise ValueError(
                    f"-a since={args['since']!r}: an incremental crawl lists by lastModified; "
                    f"drop -a sort={parsed['sort']} (or make it lastModified)"
                )
            parsed["since"] = since
        return parsed

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        spider_args = {k: kwargs.pop(k) for k in list(kwargs) if not k.startswith("_")}
        self.arguments: dict[str, Any] = self.validate_arguments(spider_args)
        super().__init__(name, **kwargs)
        self._emitted = 0
        self._incomplete: list[str] = []
        self._page_urls: set[str] = set()
        self._checkpoint: CheckpointExtension | None = None
        self._since_time: datetime | None = None
        #: Ids this run's listing gave, in a moving order only (see MOVING_SORTS); None otherwise.
        self._listed: set[str] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider._configure(crawler)
        crawler.signals.connect(spider._spider_idle, signal=signals.spider_idle)
        return spider

    def _configure(self, crawler: Crawler) -> None:
        """Read the settings once and merge them with the spider arguments (arguments win)."""
        settings = crawler.settings
        self.distributed_role: str = role_of(settings)
        self.endpoint: str = normalize_endpoint(settings.get("HFSCRAPER_HUB_ENDPOINT") or constants.HF_ENDPOINT)
        origin = urlsplit(self.endpoint)
        self._origin = (origin.scheme, origin.netloc.lower())

        args = self.arguments
        self.page_size: int = args.get("limit") or settings.getint("HFSCRAPER_CRAWL_PAGE_SIZE", constants.MAX_PAGE_SIZE)
        if not 1 <= self.page_size <= constants.MAX_PAGE_SIZE:
            raise ValueError(
                f"HFSCRAPER_CRAWL_PAGE_SIZE must be from 1 to {constants.MAX_PAGE_SIZE}, not {self.page_size}"
            )
        self.sort: str | None = args.get("sort") or settings.get("HFSCRAPER_CRAWL_SORT", constants.DEFAULT_SORT) or None
        if args.get("since"):
            self.sort = "lastModified"  # an incremental crawl walks the newest changes first
        if self.sort is not None and self.sort not in constants.SORT_VALUES[self.repo_type]:
            raise ValueError(f"HFSCRAPER_CRAWL_SORT={self.sort!r} is not a sort order of the {self.repo_type} listing")
        self._listed = set() if self.sort in MOVING_SORTS else None
        self.max_items: int = args.get("max_items") or settings.getint("HFSCRAPER_CRAWL_MAX_ITEMS", 0)
        if self.max_items < 0:
            raise ValueError(f"HFSCRAPER_CRAWL_MAX_ITEMS must be 0 (no limit) or more, not {self.max_items}")
        self.include_private: bool = settings.getbool("HFSCRAPER_CRAWL_INCLUDE_PRIVATE", False)
        self.fetch_base_models: bool = self.repo_type == constants.REPO_TYPE_MODEL and settings.getbool(
            "HFSCRAPER_CRAWL_FETCH_BASE_MODELS", False
        )
        try:
            self.expand: tuple[str, ...] = check_expand(
                self.repo_type, settings.getlist(self.expand_setting, list(constants.DEFAULT_EXPAND[self.repo_type]))
            )
        except ValueError as exc:
            raise ValueError(f"{self.expand_setting}: {exc}") from None
        if args.get("since") and "lastModified" not in self.expand:
            raise ValueError(f"{self.expand_setting}: -a since needs lastModified among the expand fields")
        # What the listing asks of each entity: an entity stored under another shape is stored again.
        self.shape: str = hashlib.sha256(
            json.dumps({"expand": sorted(self.expand), "base_models": self.fetch_base_models}).encode()
        ).hexdigest()[:12]
        self.start_url: str = build_list_url(
            self.endpoint,
            self.repo_type,
            search=args.get("search"),
            author=args.get("author"),
            filters=args.get("filters", ()),
            sort=self.sort,
            limit=self.page_size,
            expand=self.expand,
        )

    def listing_identity(self) -> dict[str, Any]:
        """What identifies this crawl's listing in the crawl state (`hfscraper.extensions.checkpoint`): the
        Hub, the type, the query, the order, the fields asked, `max_items` and `since`; never the cursor."""
        args = self.arguments
        return {
            "endpoint": self.endpoint,
            "type": self.repo_type,
            "search": args.get("search"),
            "author": args.get("author"),
            "filters": sorted(args.get("filters", ())),
            "sort": self.sort,
            "expand": sorted(self.expand),
            "base_models": self.fetch_base_models,
            "include_private": self.include_private,
            "max_items": self.max_items,
            "since": args.get("since"),
        }

    def _crawl_session(self) -> CrawlSession | None:
        """This run's crawl session, when the checkpoint extension runs (not in bare unit tests)."""
        if self._checkpoint is None:
            with contextlib.suppress(RuntimeError, AttributeError):
                self._checkpoint = self.crawler.get_extension(CheckpointExtension)
        return self._checkpoint.session if self._checkpoint is not None else None

    @property
    def stats(self) -> StatsCollector:
        # Crawler.stats exists only once the crawl starts (Scrapy 2.19 builds the spider before it).
        stats = self.crawler.stats
        assert stats is not None
        return stats

    # -- requests -------------------------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Any]:
        if self.distributed_role == ROLE_WORKER:
            if self.work_source is None:
                # Built here, not in from_crawler: Scrapy creates the spider before add-ons (DistributedAddon)
                # complete the settings. Imported here: scrapy-redis is needed only by distributed crawls.
                from hfscraper.distributed.worker import RedisEntityWorker

                self.work_source = RedisEntityWorker(self, self.crawler)
            async for output in self.work_source.start():
                yield output
            return
        session = self._crawl_session()
        since = session.since if session is not None else self.arguments.get("since")
        self._since_time = parse_hub_datetime(since) if since and since != "auto" else None
        if session is not None and session.chain_done:
            logger.info("Every page of this %(type)s crawl is stored already; completing it", {"type": self.repo_type})
            return
        if session is not None and session.resume is not None:
            url, seq, self._emitted = session.resume
            logger.info(
                "Continuing the %(type)s listing at page %(seq)d: %(url)s",
                {"type": self.repo_type, "seq": seq, "url": url},
            )
            yield self._listing_request(url, seq, resumed=True)
            return
        logger.info("Listing %(type)ss from %(url)s", {"type": self.repo_type, "url": self.start_url})
        yield self._listing_request(self.start_url)

    def _listing_request(self, url: str, seq: int = 0, *, resumed: bool = False) -> Request:
        """A listing page request: page *seq* of this run's cursor chain (*resumed*: a saved cursor)."""
        self._page_urls.add(url)
        session = self._crawl_session()
        meta: dict[str, Any] = {
            "hfscraper_listing": True,
            CHAIN_META: session.chain_id if session is not None else None,
            PAGE_META: seq,
        }
        if resumed:
            meta[RESUMED_META] = True
        return Request(
            url,
            callback=self.parse,
            errback=self.listing_failed,
            headers={"Accept": "application/json"},
            meta=meta,
            # Never dropped by the duplicate filter: a resumed crawl or a restarted listing fetches URLs again
            # that an earlier run's JOBDIR remembers. Loops are caught by next_page_url instead.
            dont_filter=True,
        )

    def _base_models_request(self, item: HubEntityItem) -> Request:
        url = build_entity_url(self.endpoint, self.repo_type, item.id, expand=["baseModels"])
        return Request(
            url,
            callback=self.parse_base_models,
            errback=self.base_models_failed,
            headers={"Accept": "application/json"},
            cb_kwargs={"item": item},
            # Drain details before the next page so at most about one page of items waits in memory,
            # and never let the duplicate filter swallow an entity listed twice.
            priority=1,
            dont_filter=True,
        )

    # -- listing pages --------------------------------------------------------------------------------------

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        """Turn one listing page into items (and base-model requests) and follow `rel="next"`.

        The next page is requested before this page's items are yielded, so that fetching it overlaps
        with storing them (the cursor chain is otherwise strictly sequential).
        """
        if self._is_stale(response.meta.get(CHAIN_META)):
            self.stats.inc_value("hfscraper/spider/stale_listing_request")
            logger.info("Ignoring a listing page of an earlier run's cursor chain: %(url)s", {"url": response.url})
            return
        self.stats.inc_value("hfscraper/spider/pages")
        seq: int = response.meta.get(PAGE_META, 0)
        entries = self.check_page(response)
        accepted: list[HubEntityItem] = []
        since_reached = False
        for entry in entries or ():
            if self._limit_reached():
                break
            item = self.check_item(entry, response)
            if item is None or self._relisted(item):
                continue
            if self._since_time is not None and (item.last_modified is None or item.last_modified < self._since_time):
                since_reached = True
                break
            accepted.append(item)
            self._emitted += 1
        followed = None
        if self._limit_reached():
            self.stats.set_value("hfscraper/spider/max_items_reached", self.max_items)
            logger.info("Reached max_items=%(n)d; not following further pages", {"n": self.max_items})
        elif since_reached:
            self.stats.set_value("hfscraper/spider/since_reached", 1)
            logger.info(
                "Reached entities not modified since %(since)s; not following further pages",
                {"since": format_hub_datetime(self._since_time) if self._since_time else None},
            )
        else:
            followed = self.next_page_url(response)
            if followed is not None:
                yield self._listing_request(followed, seq + 1)
        if entries is not None:
            self._page_parsed(response, seq, accepted, followed)
        for item in accepted:
            yield self.entity_output(item)

    def check_page(self, response: Response) -> list[Any] | None:
        """The page's elements, or None (logged, counted, crawl marked incomplete) when the page is unusable.

        This is the one place that decides whether a listing body is acceptable.
        """
        body = response.body
        try:
            data = load_json(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
            looks_html = "html" in content_type or body.lstrip()[:1] == b"<"
            self._bad_page(
                response,
                "html" if looks_html else "invalid_json",
                f"{len(body)} bytes of {content_type or 'unknown type'}",
                retry=True,
            )
            return None
        if not isinstance(data, list):
            self._bad_page(response, "not_a_list", f"a JSON {type(data).__name__}, not a list", retry=True)
            return None
        return data

    def check_item(self, entry: Any, response: Response) -> HubEntityItem | None:
        """The item for one page element, or None (logged, counted) when the element is unusable."""
        if not isinstance(entry, dict):
            self._bad_item(response, "not_an_object", f"a JSON {type(entry).__name__}")
            return None
        repo_id = entry.get("id")
        if not isinstance(repo_id, str) or not repo_id:
            self._bad_item(response, "missing_id", f"id={repo_id!r}, _id={entry.get('_id')!r}")
            return None
        if entry.get("private") is True and not self.include_private:
            # Listings show private repos only to a token that can read them; they are not public metadata.
            self.stats.inc_value("hfscraper/spider/skipped/private")
            return None
        return self.item_class.from_api(entry)

    def next_page_url(self, response: Response) -> str | None:
        """The absolute `rel="next"` URL, if any and if it stays on the Hub's origin and is new."""
        header = [v.decode("latin-1") for v in response.headers.getlist(b"Link")]
        target = parse_link_next(header)
        if target is None:
            return None
        try:
            url = response.urljoin(target)
            parts = urlsplit(url)
        except ValueError:
            self._bad_page(response, "bad_next_link", f"unusable next link {target!r}")
            return None
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            self._bad_page(response, "foreign_next_link", f"next link {url!r} leaves {self.endpoint}")
            return None
        if url in self._page_urls:
            self._bad_page(response, "next_link_loop", f"next link {url!r} was already fetched")
            return None
        return url

    def listing_failed(self, failure: Failure) -> None:
        """Errback of listing pages: after the retries, a lost page makes the crawl incomplete."""
        if self._is_stale(failure.request.meta.get(CHAIN_META)):  # type: ignore[attr-defined]
            self.stats.inc_value("hfscraper/spider/stale_listing_request")
            return  # an earlier run's chain (from a JOBDIR): this run walks its own
        if failure.check(InvalidTokenError) or self.resume_refused(failure) or self.restart_listing(failure):
            return  # the auth middleware has said why and is stopping the crawl; or the listing restarted
        request = failure.request  # type: ignore[attr-defined]
        if failure.check(HttpError) and self._expand_refused(failure.value.response):
            return
        if failure.check(HttpError):
            status = failure.value.response.status
            reason, detail = f"http_{status}", f"HTTP {status}"
        else:
            reason, detail = type(failure.value).__name__, str(failure.value) or repr(failure.value)
        self.stats.inc_value(f"hfscraper/spider/bad_page/{reason}")
        self._mark_incomplete(f"{reason} on {request.url}")
        logger.error("Listing page lost (%(detail)s): %(url)s", {"detail": detail, "url": request.url})

    def _expand_refused(self, response: Response) -> bool:
        """A 400 refusing `expand` values (the Hub dropped or renamed a field the crawl asks for): one line naming
        them and the setting to change, and the listing is incomplete. False for any other answer."""
        if response.status != 400:
            return False
        try:
            message = json.loads(response.body).get("error")
        except (ValueError, AttributeError, RecursionError):
            return False
        accepted = accepted_expand(message)
        if accepted is None:
            return False
        refused = [value for value in self.expand if value not in accepted] or ["(none it names)"]
        self.stats.inc_value("hfscraper/spider/bad_page/expand_refused")
        self._mark_incomplete(f"expand_refused: {', '.join(refused)}")
        logger.error(
            "The Hub refused the %(type)s listing's expand field(s) %(refused)s (HTTP 400); take them out of "
            "%(setting)s (`scrapy hubcheck` shows what the Hub accepts)",
            {"type": self.repo_type, "refused": ", ".join(refused), "setting": self.expand_setting},
        )
        return True

    # -- base models ----------------------------------------------------------------------------------------

    def _wants_base_models(self, item: HubEntityItem) -> bool:
        if not self.fetch_base_models or self.distributed_role == ROLE_DISCOVERY:
            return False  # (a discovery's workers make the per-entity requests)
        tags = item.tags if isinstance(item.tags, list) else ()
        if not any(isinstance(t, str) and t.startswith(constants.BASE_MODEL_TAG_PREFIX) for t in tags):
            return False
        if not is_plain_id(item.id):
            self.stats.inc_value("hfscraper/spider/base_models/skipped_non_plain_id")
            return False
        return True

    def parse_base_models(self, response: Response, item: HubEntityItem) -> Iterator[HubEntityItem]:
        """Merge `baseModels` from `/api/models/{id}?expand=baseModels` into the item, then yield it."""
        if self._stale_item(item):
            return
        try:
            data = json.loads(response.body)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            self.stats.inc_value("hfscraper/spider/base_models/bad_response")
            logger.warning("Unusable baseModels answer for %(id)s: %(url)s", {"id": item.id, "url": response.url})
        elif "baseModels" in data:
            item.set_api_value("baseModels", data["baseModels"])
            self.stats.inc_value("hfscraper/spider/base_models/merged")
        else:
            self.stats.inc_value("hfscraper/spider/base_models/absent")
        yield self._emit(item)

    def base_models_failed(self, failure: Failure) -> Iterator[HubEntityItem]:
        """Errback of base-model requests: keep the listing's item, without `baseModels`."""
        item: HubEntityItem = failure.request.cb_kwargs["item"]  # type: ignore[attr-defined]
        if self._stale_item(item):
            return
        self.stats.inc_value("hfscraper/spider/base_models/failed")
        logger.warning(
            "Could not fetch baseModels of %(id)s (%(error)s); storing it without them",
            {"id": item.id, "error": failure.getErrorMessage()},
        )
        yield self._emit(item)

    # -- bookkeeping ----------------------------------------------------------------------------------------

    def entity_output(self, item: HubEntityItem) -> HubEntityItem | Request:
        """What the spider yields for an entity it accepted: the item, or first the request that adds its
        `baseModels` (then the item follows from `parse_base_models`). Also the distributed worker's hook."""
        if self._wants_base_models(item):
            self.stats.inc_value("hfscraper/spider/base_models/requested")
            return self._base_models_request(item)
        return self._emit(item)

    def _emit(self, item: HubEntityItem) -> HubEntityItem:
        self.stats.inc_value("hfscraper/spider/items")
        return item

    def _is_stale(self, chain: object) -> bool:
        """True for a request of another run's cursor chain (None: made without a crawl session)."""
        session = self._crawl_session()
        return session is not None and chain is not None and not session.is_current(chain)

    def _stale_item(self, item: HubEntityItem) -> bool:
        if item._crawl_page is None or not self._is_stale(item._crawl_page[0]):
            return False
        self.stats.inc_value("hfscraper/spider/base_models/stale")
        return True

    def _page_parsed(self, response: Response, seq: int, items: list[HubEntityItem], followed: str | None) -> None:
        """Tag the page's items with their page and tell the crawl session what the page yields."""
        session = self._crawl_session()
        if session is None:
            return
        chain = response.meta.get(CHAIN_META)
        newest = None
        for item in items:
            item._crawl_page = (chain, seq)
            modified = item_version(item)[1]
            if modified is not None and (newest is None or modified > newest):
                newest = modified
        session.page_parsed(chain, seq, len(items), followed, self._emitted, newest)

    def _relisted(self, item: HubEntityItem) -> bool:
        """True for an entity this run's listing gave already (a moving order repeats one whose value fell behind
        the cursor): it is neither yielded nor counted again."""
        if self._listed is None:
            return False
        if item.id in self._listed:
            self.stats.inc_value("hfscraper/spider/relisted")
            logger.debug("%(id)s was listed again (its %(sort)s moved): skipped", {"id": item.id, "sort": self.sort})
            return True
        self._listed.add(item.id)
        return False

    def _limit_reached(self) -> bool:
        return bool(self.max_items) and self._emitted >= self.max_items

    def _bad_page(self, response: Response, reason: str, detail: str, *, retry: bool = False) -> None:
        """Count an unusable listing page; retry it when *retry* allows and retries are left, else the
        listing is incomplete."""
        self.stats.inc_value(f"hfscraper/spider/bad_page/{reason}")
        if retry and self.retry_bad_page(response, reason, detail):
            return
        self._mark_incomplete(f"{reason} on {response.url}")
        logger.error(
            "Unusable listing page (%(reason)s: %(detail)s): %(url)s",
            {"reason": reason, "detail": detail, "url": response.url},
        )

    # -- bad pages: retry, restart --------------------------------------------------------------------------

    #: Stats prefix of the retries of listing pages whose 200 body was unusable.
    BAD_PAGE_RETRY_STATS: ClassVar[str] = "hfscraper/spider/retry"
    #: Meta key set on a listing request whose response was unusable and which is being fetched again.
    BAD_PAGE_RETRIED_META: ClassVar[str] = "hfscraper_bad_page_retried"
    #: How often one run walks a listing again from its first page after the Hub refused a cursor.
    MAX_LISTING_RESTARTS: ClassVar[int] = 3
    _listing_restarts: int = 0

    def retry_bad_page(self, response: Response, reason: str, detail: str) -> bool:
        """Fetch a listing page with an unusable 200 body again; False when no retry is left (or allowed).

        A truncated JSON body, an HTML error page with status 200 or a JSON object instead of the list is
        what a proxy, a CDN hiccup or an overloaded backend returns; the next try usually succeeds. The retry
        goes through Scrapy's `get_retry_request`, so it shares RETRY_TIMES (or the request's
        `max_retry_times` meta key) with the retries of 5xx answers and broken connections, honours
        `dont_retry`, and is counted under BAD_PAGE_RETRY_STATS (`.../reason_count/bad_page/<reason>`).

        The page's `Link` header is dropped: the retried page brings its own, and following this one now
        as well would fetch the next page twice (a `next_link_loop`). The old request's meta gets
        BAD_PAGE_RETRIED_META: page bookkeeping must not take this response for the listing's last page.
        """
        request = response.request
        if request is None or request.meta.get("dont_retry"):
            return False
        retry = get_retry_request(
            request, spider=self, reason=f"bad_page/{reason}", stats_base_key=self.BAD_PAGE_RETRY_STATS
        )
        if retry is None:
            return False
        response.headers.pop(b"Link", None)
        request.meta[self.BAD_PAGE_RETRIED_META] = True
        limit = request.meta.get("max_retry_times")
        logger.warning(
            "Unusable listing page (%(reason)s: %(detail)s), retrying (%(n)d of %(max)d): %(url)s",
            {
                "reason": reason,
                "detail": detail,
                "n": retry.meta["retry_times"],
                "max": limit if limit is not None else self.crawler.settings.getint("RETRY_TIMES"),
                "url": response.url,
            },
        )
        assert self.crawler.engine is not None
        self.crawler.engine.crawl(retry)
        return True

    def restart_listing(self, failure: Failure) -> bool:
        """After the Hub refused a listing cursor, walk the listing again from its first page.

        The refused cursor is a `400` with `X-Error-Code: InvalidCursor` (or an error naming the cursor) on a
        page fetched with `cursor=`: the cursor chain is broken, and the Hub gives no other way back into it.
        Walking the listing again from the top is safe because storing an entity is idempotent (an unchanged
        `metadata.json` is not rewritten; entities this crawl already stored are skipped as duplicates) and
        cheap next to losing the rest of the listing. The walk is a new cursor chain (`_restart_from_top`):
        the `next_link_loop` guard starts afresh and `max_items` counts from zero again. At most
        MAX_LISTING_RESTARTS restarts per run; after that the listing is incomplete (`cursor_refused`).

        Returns True when the failure was a refused cursor (restarted, or marked incomplete), False for any
        other failure. A saved cursor refused when a run resumes is `resume_refused`'s (checked first).
        """
        request = failure.request  # type: ignore[attr-defined]
        if not failure.check(HttpError) or "cursor=" not in urlsplit(request.url).query:
            return False
        response = failure.value.response
        if response.status != 400:
            return False
        code = (response.headers.get(b"X-Error-Code") or b"").decode("latin-1")
        if code != "InvalidCursor" and b"cursor" not in response.body[:2000].lower():
            return False
        self.stats.inc_value("hfscraper/spider/bad_page/cursor_refused")
        if self._listing_restarts >= self.MAX_LISTING_RESTARTS:
            self._mark_incomplete(f"cursor_refused on {request.url}")
            logger.error(
                "The Hub refused the %(type)s listing cursor again after %(n)d restarts; giving up: %(url)s",
                {"type": self.repo_type, "n": self._listing_restarts, "url": request.url},
            )
            return True
        self._listing_restarts += 1
        self.stats.inc_value("hfscraper/spider/listing_restarts")
        logger.warning(
            "The Hub refused the %(type)s listing cursor (HTTP 400 %(code)s); walking the listing again from its "
            "first page (restart %(n)d of %(max)d; stored entities are rewritten only if changed): %(url)s",
            {
                "type": self.repo_type,
                "code": code or "invalid cursor",
                "n": self._listing_restarts,
                "max": self.MAX_LISTING_RESTARTS,
                "url": request.url,
            },
        )
        self._restart_from_top()
        return True

    def resume_refused(self, failure: Failure) -> bool:
        """The Hub refused the saved cursor this run continued from: restart the listing from the top.

        Any 4xx on the resumed request counts (a cursor may expire, or its format change, while a crawl is
        stopped), except the statuses that are about something else (401, 403, 407, 408, 429). Entities this
        crawl already stored are then skipped as duplicates. Returns False for any other failure.
        """
        request = failure.request  # type: ignore[attr-defined]
        if not request.meta.get(RESUMED_META) or not failure.check(HttpError):
            return False
        status = failure.value.response.status
        if not 400 <= status < 500 or status in _NOT_A_CURSOR_REFUSAL:
            return False
        self.stats.inc_value("hfscraper/resume/cursor_refused")
        logger.warning(
            "The Hub refused the saved %(type)s cursor (HTTP %(status)d); restarting the listing from the top "
            "(entities this crawl already stored are skipped): %(url)s",
            {"type": self.repo_type, "status": status, "url": request.url},
        )
        self._restart_from_top()
        return True

    def _restart_from_top(self) -> None:
        """Walk the listing again from its first page, on a new cursor chain."""
        self._page_urls.clear()
        self._emitted = 0
        if self._listed is not None:
            self._listed.clear()
        session = self._crawl_session()
        if session is not None:
            session.restart_chain()
        assert self.crawler.engine is not None
        self.crawler.engine.crawl(self._listing_request(self.start_url))

    def _bad_item(self, response: Response, reason: str, detail: str) -> None:
        self.stats.inc_value(f"hfscraper/spider/bad_item/{reason}")
        logger.warning(
            "Skipped a listing element (%(reason)s: %(detail)s) on %(url)s",
            {"reason": reason, "detail": detail, "url": response.url},
        )

    def _mark_incomplete(self, why: str) -> None:
        self._incomplete.append(why)
        self.stats.inc_value("hfscraper/spider/incomplete")

    def _spider_idle(self) -> None:
        if self.distributed_role == ROLE_WORKER:
            return  # a worker walks no listing: it is idle only once its queue is done and drained
        session = self._crawl_session()
        if session is not None and not self._incomplete and session.failed:
            self._mark_incomplete("the crawl state could not be written")
        elif session is not None and not self._incomplete and not session.chain_complete:
            self._mark_incomplete("a listing page whose items were not all stored (an item failed)")
        elif (
            not self._incomplete
            and not self.stats.get_value("hfscraper/spider/pages")
            and not (session is not None and session.chain_done)  # an earlier run stored every page
        ):
            # Every real crawl parses at least its first page; none means the chain never ran (a broken
            # queue, a start-up problem swallowed somewhere), which must not pass for a complete crawl.
            self._mark_incomplete("no listing page was parsed")
        if self._incomplete:
            logger.error(
                "The %(type)s listing is incomplete (%(n)d problem(s), first: %(first)s)",
                {"type": self.repo_type, "n": len(self._incomplete), "first": self._incomplete[0]},
            )
            raise CloseSpider(INCOMPLETE_REASON)
