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
    neither skips nor repeats entities the way a moving order such as trendingScore can)
HFSCRAPER_CRAWL_MAX_ITEMS - stop after this many entities, 0 = no limit (default 0)
HFSCRAPER_CRAWL_FETCH_BASE_MODELS - fetch `baseModels` per model that has a base (default False)
HFSCRAPER_CRAWL_EXPAND_MODELS / _DATASETS / _SPACES - the `expand` values of each listing (defaults in
    hfscraper.constants)

Spider arguments (`-a name=value`, checked by `validate_arguments` before the crawl starts):
search, author, filter (comma-separated tags, all must match), sort, limit (page size, overrides
HFSCRAPER_CRAWL_PAGE_SIZE), max_items (overrides HFSCRAPER_CRAWL_MAX_ITEMS).

Stats:
hfscraper/spider/pages - listing pages received; hfscraper/spider/items - items yielded;
hfscraper/spider/bad_page/<reason> - pages whose body or fetch failed (`invalid_json`, `html`,
`not_a_list`, `http_<status>`, `<exception name>`, `bad_next_link`, `foreign_next_link`, `next_link_loop`);
hfscraper/spider/bad_item/<reason> - page elements skipped (`not_an_object`, `missing_id`);
hfscraper/spider/base_models/<event> - `requested`, `merged`, `absent`, `failed`, `bad_response`,
`skipped_non_plain_id`; hfscraper/spider/max_items_reached; hfscraper/spider/incomplete - listing pages
lost. When a listing page is lost the crawl still drains, then closes with reason `listing_incomplete`.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import urlsplit

from scrapy import Request, Spider, signals
from scrapy.exceptions import CloseSpider
from scrapy.spidermiddlewares.httperror import HttpError

from hfscraper import constants
from hfscraper.hub import (
    build_entity_url,
    build_list_url,
    check_expand,
    is_plain_id,
    normalize_endpoint,
    parse_link_next,
)
from hfscraper.items import HubEntityItem

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.statscollectors import StatsCollector
    from twisted.python.failure import Failure

logger = logging.getLogger(__name__)

#: The finish reason of a crawl that lost at least one listing page.
INCOMPLETE_REASON = "listing_incomplete"

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

    #: The spider arguments this spider accepts (arguments starting with `_`, such as scrapyd's `_job`,
    #: are passed through untouched).
    ARGUMENTS: ClassVar[tuple[str, ...]] = ("search", "author", "filter", "sort", "limit", "max_items")

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
        return parsed

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        spider_args = {k: kwargs.pop(k) for k in list(kwargs) if not k.startswith("_")}
        self.arguments: dict[str, Any] = self.validate_arguments(spider_args)
        super().__init__(name, **kwargs)
        self._emitted = 0
        self._incomplete: list[str] = []
        self._page_urls: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> Self:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider._configure(crawler)
        crawler.signals.connect(spider._spider_idle, signal=signals.spider_idle)
        return spider

    def _configure(self, crawler: Crawler) -> None:
        """Read the settings once and merge them with the spider arguments (arguments win)."""
        settings = crawler.settings
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
        if self.sort is not None and self.sort not in constants.SORT_VALUES[self.repo_type]:
            raise ValueError(f"HFSCRAPER_CRAWL_SORT={self.sort!r} is not a sort order of the {self.repo_type} listing")
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

    @property
    def stats(self) -> StatsCollector:
        # Crawler.stats exists only once the crawl starts (Scrapy 2.19 builds the spider before it).
        stats = self.crawler.stats
        assert stats is not None
        return stats

    # -- requests -------------------------------------------------------------------------------------------

    async def start(self) -> AsyncIterator[Request]:
        logger.info("Listing %(type)ss from %(url)s", {"type": self.repo_type, "url": self.start_url})
        yield self._listing_request(self.start_url)

    def _listing_request(self, url: str) -> Request:
        self._page_urls.add(url)
        return Request(
            url,
            callback=self.parse,
            errback=self.listing_failed,
            headers={"Accept": "application/json"},
            meta={"hfscraper_listing": True},
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
        self.stats.inc_value("hfscraper/spider/pages")
        entries = self.check_page(response)
        accepted: list[HubEntityItem] = []
        for entry in entries or ():
            if self._limit_reached():
                break
            item = self.check_item(entry, response)
            if item is not None:
                accepted.append(item)
                self._emitted += 1
        if self._limit_reached():
            self.stats.set_value("hfscraper/spider/max_items_reached", self.max_items)
            logger.info("Reached max_items=%(n)d; not following further pages", {"n": self.max_items})
        else:
            next_url = self.next_page_url(response)
            if next_url is not None:
                yield self._listing_request(next_url)
        for item in accepted:
            if self._wants_base_models(item):
                self.stats.inc_value("hfscraper/spider/base_models/requested")
                yield self._base_models_request(item)
            else:
                yield self._emit(item)

    def check_page(self, response: Response) -> list[Any] | None:
        """The page's elements, or None (logged, counted, crawl marked incomplete) when the page is unusable.

        This is the one place that decides whether a listing body is acceptable.
        """
        body = response.body
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").lower()
            looks_html = "html" in content_type or body.lstrip()[:1] == b"<"
            self._bad_page(
                response,
                "html" if looks_html else "invalid_json",
                f"{len(body)} bytes of {content_type or 'unknown type'}",
            )
            return None
        if not isinstance(data, list):
            self._bad_page(response, "not_a_list", f"a JSON {type(data).__name__}, not a list")
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
        request = failure.request  # type: ignore[attr-defined]
        if failure.check(HttpError):
            status = failure.value.response.status
            reason, detail = f"http_{status}", f"HTTP {status}"
        else:
            reason, detail = type(failure.value).__name__, str(failure.value) or repr(failure.value)
        self.stats.inc_value(f"hfscraper/spider/bad_page/{reason}")
        self._mark_incomplete(f"{reason} on {request.url}")
        logger.error("Listing page lost (%(detail)s): %(url)s", {"detail": detail, "url": request.url})

    # -- base models ----------------------------------------------------------------------------------------

    def _wants_base_models(self, item: HubEntityItem) -> bool:
        if not self.fetch_base_models:
            return False
        tags = item.tags if isinstance(item.tags, list) else ()
        if not any(isinstance(t, str) and t.startswith(constants.BASE_MODEL_TAG_PREFIX) for t in tags):
            return False
        if not is_plain_id(item.id):
            self.stats.inc_value("hfscraper/spider/base_models/skipped_non_plain_id")
            return False
        return True

    def parse_base_models(self, response: Response, item: HubEntityItem) -> Iterator[HubEntityItem]:
        """Merge `baseModels` from `/api/models/{id}?expand=baseModels` into the item, then yield it."""
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
        self.stats.inc_value("hfscraper/spider/base_models/failed")
        logger.warning(
            "Could not fetch baseModels of %(id)s (%(error)s); storing it without them",
            {"id": item.id, "error": failure.getErrorMessage()},
        )
        yield self._emit(item)

    # -- bookkeeping ----------------------------------------------------------------------------------------

    def _emit(self, item: HubEntityItem) -> HubEntityItem:
        self.stats.inc_value("hfscraper/spider/items")
        return item

    def _limit_reached(self) -> bool:
        return bool(self.max_items) and self._emitted >= self.max_items

    def _bad_page(self, response: Response, reason: str, detail: str) -> None:
        self.stats.inc_value(f"hfscraper/spider/bad_page/{reason}")
        self._mark_incomplete(f"{reason} on {response.url}")
        logger.error(
            "Unusable listing page (%(reason)s: %(detail)s): %(url)s",
            {"reason": reason, "detail": detail, "url": response.url},
        )

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
        if self._incomplete:
            logger.error(
                "The %(type)s listing is incomplete (%(n)d problem(s), first: %(first)s)",
                {"type": self.repo_type, "n": len(self._incomplete), "first": self._incomplete[0]},
            )
            raise CloseSpider(INCOMPLETE_REASON)
