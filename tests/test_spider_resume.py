"""`HubListingSpider`'s side of resume and incremental crawls, driven by hand with a stand-in crawl session."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from scrapy import Request
from scrapy.exceptions import CloseSpider
from scrapy.http import TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from hfscraper.extensions.checkpoint import listing_keys
from hfscraper.spiders.base import CHAIN_META, PAGE_META, RESUMED_META, HubListingSpider
from hfscraper.spiders.models import ModelsSpider
from hfscraper.spiders.spaces import SpacesSpider

ENDPOINT = "http://127.0.0.1:9"


@dataclass
class FakeSession:
    """The parts of `CrawlSession` the spider uses."""

    chain_id: str = "chain-1"
    resume: tuple[str, int, int] | None = None
    chain_done: bool = False
    since: str | None = None
    chain_complete: bool = False
    failed: bool = False
    pages: list[tuple[Any, ...]] = field(default_factory=list)
    restarts: int = 0

    def is_current(self, chain: object) -> bool:
        return chain == self.chain_id

    def page_parsed(self, *args: Any) -> None:
        self.pages.append(args)

    def restart_chain(self) -> str:
        self.restarts += 1
        self.chain_id = f"chain-{self.restarts + 1}"
        return self.chain_id


class FakeEngine:
    def __init__(self) -> None:
        self.crawled: list[Request] = []

    def crawl(self, request: Request) -> None:
        self.crawled.append(request)


def make_spider(
    cls: type[HubListingSpider] = ModelsSpider, session: FakeSession | None = None, **args: Any
) -> HubListingSpider:
    crawler = get_crawler(cls, {"HFSCRAPER_HUB_ENDPOINT": ENDPOINT, "HFSCRAPER_CRAWL_PAGE_SIZE": 2})
    spider = cls.from_crawler(crawler, **args)
    crawler.spider = spider
    spider._checkpoint = SimpleNamespace(session=session)  # type: ignore[assignment]
    return spider


def start_requests(spider: HubListingSpider) -> list[Request]:
    async def collect() -> list[Request]:
        return [r async for r in spider.start()]

    return asyncio.run(collect())


def entity(i: int, modified: str = "2024-01-01T00:00:00.000Z") -> dict[str, Any]:
    return {"_id": f"{i:024x}", "id": f"org/m-{i}", "sha": "a" * 40, "lastModified": modified}


def listing_page(request: Request, entries: list[Any], next_url: str | None = None) -> TextResponse:
    headers = {"Content-Type": "application/json"}
    if next_url:
        headers["Link"] = f'<{next_url}>; rel="next"'
    return TextResponse(request.url, body=json.dumps(entries).encode(), headers=headers, request=request)


def http_failure(request: Request, status: int, code: str | None = None) -> Failure:
    headers = {"X-Error-Code": code} if code else {}
    response = TextResponse(request.url, status=status, body=b'{"error": "x"}', headers=headers, request=request)
    failure = Failure(HttpError(response))
    failure.request = request  # type: ignore[attr-defined]
    return failure


def test_listing_requests_carry_chain_and_page_and_pass_the_duplicate_filter() -> None:
    spider = make_spider(session=FakeSession())
    (first,) = start_requests(spider)
    assert first.meta[CHAIN_META] == "chain-1" and first.meta[PAGE_META] == 0 and first.dont_filter
    out = list(spider.parse(listing_page(first, [entity(1), entity(2)], f"{ENDPOINT}/api/models?cursor=a")))
    (next_request,) = [o for o in out if isinstance(o, Request)]
    assert next_request.meta[PAGE_META] == 1 and next_request.dont_filter
    items = [o for o in out if not isinstance(o, Request)]
    assert [i._crawl_page for i in items] == [("chain-1", 0), ("chain-1", 0)]
    assert "_crawl_page" not in items[0].to_api()
    # the page told the session what it yields, and where the chain goes on
    assert spider._checkpoint.session.pages == [  # type: ignore[union-attr]
        ("chain-1", 0, 2, f"{ENDPOINT}/api/models?cursor=a", 2, "2024-01-01T00:00:00.000Z")
    ]


def test_start_continues_a_saved_cursor() -> None:
    saved = f"{ENDPOINT}/api/models?sort=createdAt&cursor=xyz"
    spider = make_spider(session=FakeSession(resume=(saved, 7, 14)))
    (request,) = start_requests(spider)
    assert request.url == saved and request.meta[PAGE_META] == 7 and request.meta[RESUMED_META]
    assert spider._emitted == 14
    assert start_requests(make_spider(session=FakeSession(chain_done=True))) == []


def test_pages_of_an_older_chain_are_ignored() -> None:
    spider = make_spider(session=FakeSession(chain_id="new"))
    stale = Request(f"{ENDPOINT}/api/models?cursor=a", meta={CHAIN_META: "old", PAGE_META: 3})
    assert list(spider.parse(listing_page(stale, [entity(1)], f"{ENDPOINT}/api/models?cursor=b"))) == []
    assert spider.crawler.stats.get_value("hfscraper/spider/stale_listing_request") == 1
    # a failed request of an older chain does not make this run's listing incomplete
    spider.listing_failed(http_failure(stale, 503))
    assert spider.crawler.stats.get_value("hfscraper/spider/incomplete") is None


@pytest.mark.parametrize(
    ("status", "code", "restarted"),
    [(400, "InvalidCursor", True), (404, None, True), (410, None, True), (429, None, False), (401, None, False)],
)
def test_a_refused_saved_cursor_restarts_from_the_top(status: int, code: str | None, restarted: bool) -> None:
    session = FakeSession(resume=(f"{ENDPOINT}/api/models?cursor=old", 7, 14))
    spider = make_spider(session=session)
    engine = FakeEngine()
    spider.crawler.engine = engine  # type: ignore[assignment]
    (resumed,) = start_requests(spider)
    spider.listing_failed(http_failure(resumed, status, code))
    stats = spider.crawler.stats
    if restarted:
        (again,) = engine.crawled
        assert again.url == spider.start_url and again.meta[PAGE_META] == 0
        assert again.meta[CHAIN_META] == session.chain_id == "chain-2" and session.restarts == 1
        assert spider._emitted == 0 and stats.get_value("hfscraper/resume/cursor_refused") == 1
        assert stats.get_value("hfscraper/spider/incomplete") is None
    else:
        assert engine.crawled == [] and stats.get_value("hfscraper/spider/incomplete") == 1


def test_an_unfinished_chain_at_idle_is_incomplete() -> None:
    spider = make_spider(session=FakeSession(chain_complete=False))
    with pytest.raises(CloseSpider):
        spider._spider_idle()
    spider = make_spider(session=FakeSession(chain_complete=True))
    spider.stats.set_value("hfscraper/spider/pages", 1)
    assert spider._spider_idle() is None
    spider = make_spider(session=FakeSession(chain_complete=True, failed=True))
    with pytest.raises(CloseSpider):
        spider._spider_idle()


def test_a_crawl_that_parsed_no_listing_page_is_incomplete() -> None:
    spider = make_spider(session=FakeSession(chain_complete=True))
    with pytest.raises(CloseSpider):
        spider._spider_idle()
    assert spider.stats.get_value("hfscraper/spider/incomplete") == 1


def test_a_resumed_crawl_whose_every_page_is_stored_completes_without_parsing_one() -> None:
    # Killed between its last checkpoint and its completion: the next run has nothing to fetch.
    spider = make_spider(session=FakeSession(chain_done=True, chain_complete=True))
    assert start_requests(spider) == []
    assert spider._spider_idle() is None
    assert not spider.stats.get_value("hfscraper/spider/incomplete")


# -- since --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("auto", "auto"),
        ("2024-06-01", "2024-06-01T00:00:00.000Z"),
        ("2024-06-01T12:00:00Z", "2024-06-01T12:00:00.000Z"),
    ],
)
def test_since_argument(value: str, parsed: str) -> None:
    assert ModelsSpider.validate_arguments({"since": value}) == {"since": parsed}
    assert ModelsSpider.validate_arguments({"since": value, "sort": "lastModified"})["since"] == parsed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"since": "yesterday"}, "must be auto or an ISO 8601 date"),
        ({"since": ""}, "must be auto or an ISO 8601 date"),
        ({"since": "auto", "sort": "likes"}, "lists by lastModified; drop -a sort=likes"),
    ],
)
def test_since_argument_refused(args: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpacesSpider.validate_arguments(args)


def test_since_lists_by_last_modified_and_stops_at_the_watermark() -> None:
    spider = make_spider(session=FakeSession(since="2024-03-01T00:00:00.000Z"), since="auto")
    assert "sort=lastModified" in spider.start_url
    (first,) = start_requests(spider)
    entries = [
        entity(1, "2024-05-01T00:00:00.000Z"),
        entity(2, "2024-03-01T00:00:00.000Z"),  # exactly at the watermark: checked again
        entity(3, "2024-02-01T00:00:00.000Z"),  # older: the crawl stops here
        entity(4, "2024-04-01T00:00:00.000Z"),
    ]
    out = list(spider.parse(listing_page(first, entries, f"{ENDPOINT}/api/models?cursor=a")))
    assert [o.id for o in out] == ["org/m-1", "org/m-2"]  # and no next-page request
    assert spider.crawler.stats.get_value("hfscraper/spider/since_reached") == 1
    assert spider._checkpoint.session.pages[0][3] is None  # type: ignore[union-attr]


def test_since_needs_last_modified_among_the_fields() -> None:
    crawler = get_crawler(ModelsSpider, {"HFSCRAPER_CRAWL_EXPAND_MODELS": ["author", "sha"]})
    with pytest.raises(ValueError, match="needs lastModified"):
        ModelsSpider.from_crawler(crawler, since="auto")


def test_listing_identity_names_the_query_never_the_cursor() -> None:
    a = make_spider(author="org", max_items="5").listing_identity()
    b = make_spider(author="org", max_items="5", limit="50").listing_identity()  # page size: same listing
    c = make_spider(author="org", max_items="5", sort="likes").listing_identity()
    assert a == b and listing_keys(a)[0] != listing_keys(c)[0]
    assert listing_keys(a)[1] == listing_keys(c)[1]  # same entities and fields: same scope
    assert "cursor" not in json.dumps(a)
