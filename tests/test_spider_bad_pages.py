"""HubListingSpider's bad-page paths, driven by hand-built responses (no network): the retry of an unusable
200 body (`retry_bad_page`) and the restart after a refused cursor (`restart_listing`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from scrapy import Request
from scrapy.http import Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.python.failure import Failure

from hfscraper.middlewares.auth import InvalidTokenError
from hfscraper.spiders.base import HubListingSpider
from hfscraper.spiders.models import ModelsSpider

ENDPOINT = "http://127.0.0.1:9"
NEXT = f"{ENDPOINT}/api/models?cursor=abc"


class _Engine:
    """Records what the spider hands to the engine."""

    def __init__(self) -> None:
        self.crawled: list[Request] = []

    def crawl(self, request: Request) -> None:
        self.crawled.append(request)


def make_spider(**settings: Any) -> HubListingSpider:
    crawler = get_crawler(ModelsSpider, {"HFSCRAPER_HUB_ENDPOINT": ENDPOINT, "RETRY_TIMES": 2, **settings})
    spider = ModelsSpider.from_crawler(crawler)
    crawler.spider = spider
    crawler.engine = _Engine()
    return spider


def engine(spider: HubListingSpider) -> _Engine:
    return spider.crawler.engine  # type: ignore[return-value]


def stat(spider: HubListingSpider, key: str) -> Any:
    return spider.crawler.stats.get_value(key)


def bad_page(request: Request, body: bytes = b"<html>Bad gateway</html>") -> TextResponse:
    headers = {"Content-Type": "text/html", "Link": f'<{NEXT}>; rel="next"'}
    return TextResponse(request.url, body=body, headers=headers, request=request)


def listing_request(spider: HubListingSpider, url: str | None = None) -> Request:
    return spider._listing_request(url or spider.start_url)


def test_bad_page_is_retried_before_it_counts_as_lost(caplog: pytest.LogCaptureFixture) -> None:
    spider = make_spider()
    request = listing_request(spider)
    out = list(spider.parse(bad_page(request)))

    assert out == []  # no items, and the bad page's Link is not followed: the retry brings it
    (retry,) = engine(spider).crawled
    assert retry.url == request.url and retry.dont_filter and retry.meta["retry_times"] == 1
    assert retry.callback == spider.parse and retry.errback == spider.listing_failed
    assert retry.meta["hfscraper_listing"] and not retry.meta.get(HubListingSpider.BAD_PAGE_RETRIED_META)
    assert request.meta[HubListingSpider.BAD_PAGE_RETRIED_META] is True
    assert stat(spider, "hfscraper/spider/bad_page/html") == 1
    assert stat(spider, "hfscraper/spider/retry/reason_count/bad_page/html") == 1
    assert stat(spider, "hfscraper/spider/incomplete") is None and spider._incomplete == []
    assert any("retrying (1 of 2)" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")

    # the retried page is good: items and the next page follow as usual
    good = TextResponse(
        retry.url,
        body=json.dumps([{"_id": "a" * 24, "id": "org/m"}]).encode(),
        headers={"Content-Type": "application/json", "Link": f'<{NEXT}>; rel="next"'},
        request=retry,
    )
    out = list(spider.parse(good))
    assert [o.url for o in out if isinstance(o, Request)] == [NEXT]
    assert [o.id for o in out if not isinstance(o, Request)] == ["org/m"]


def test_retries_run_out_then_the_page_is_lost() -> None:
    spider = make_spider()
    request = listing_request(spider)
    for n in (1, 2):
        list(spider.parse(bad_page(request, b'{"error": "x"}')))
        request = engine(spider).crawled[-1]
        assert request.meta["retry_times"] == n
    out = list(spider.parse(bad_page(request, b'{"error": "x"}')))
    assert len(engine(spider).crawled) == 2
    assert [o.url for o in out if isinstance(o, Request)] == [NEXT]  # the listing goes on where it can
    assert stat(spider, "hfscraper/spider/bad_page/not_a_list") == 3
    assert stat(spider, "hfscraper/spider/retry/max_reached") == 1
    assert stat(spider, "hfscraper/spider/incomplete") == 1


@pytest.mark.parametrize("meta", [{"dont_retry": True}, {"max_retry_times": 0}])
def test_retry_opt_outs(meta: dict[str, Any]) -> None:
    spider = make_spider()
    request = listing_request(spider).replace(meta={"hfscraper_listing": True, **meta})
    list(spider.parse(bad_page(request, b"{not json")))
    assert engine(spider).crawled == []
    assert stat(spider, "hfscraper/spider/incomplete") == 1


def _http_error(request: Request, status: int, body: bytes = b"", **headers: str) -> Failure:
    response = Response(request.url, status=status, body=body, headers=headers, request=request)
    failure = Failure(HttpError(response))
    failure.request = request  # type: ignore[attr-defined]
    return failure


def test_refused_cursor_restarts_the_listing() -> None:
    spider = make_spider()
    spider._emitted = 120
    request = listing_request(spider, f"{spider.start_url}&cursor=xyz")
    refused = _http_error(request, 400, b'{"error": "Invalid cursor"}', **{"X-Error-Code": "InvalidCursor"})
    spider.listing_failed(refused)

    (restart,) = engine(spider).crawled
    assert restart.url == spider.start_url and restart.dont_filter
    assert spider._page_urls == {spider.start_url} and spider._emitted == 0
    assert stat(spider, "hfscraper/spider/listing_restarts") == 1
    assert stat(spider, "hfscraper/spider/incomplete") is None
    # from now on the cursor URLs that come again pass the duplicate filter
    assert listing_request(spider, NEXT).dont_filter


def test_refused_cursor_restarts_at_most_max_times() -> None:
    spider = make_spider()
    request = listing_request(spider, f"{spider.start_url}&cursor=xyz")
    for _ in range(HubListingSpider.MAX_LISTING_RESTARTS + 1):
        spider.listing_failed(_http_error(request, 400, **{"X-Error-Code": "InvalidCursor"}))
    assert len(engine(spider).crawled) == HubListingSpider.MAX_LISTING_RESTARTS
    assert stat(spider, "hfscraper/spider/incomplete") == 1
    assert spider._incomplete[0].startswith("cursor_refused on ")


@pytest.mark.parametrize(
    ("url_suffix", "status", "body", "headers", "reason"),
    [
        ("", 400, b'{"error": "Invalid cursor"}', {"X-Error-Code": "InvalidCursor"}, "http_400"),  # no cursor
        ("&cursor=xyz", 400, b'{"error": "Bad request"}', {}, "http_400"),  # another 400
        # The Hub refusing an expand field: named in one line (tests/test_hubcheck.py), no restart either.
        ("&cursor=xyz", 400, b'{"error": "\\"expand\\" must be one of [author, sha]"}', {}, "expand_refused"),
        ("&cursor=xyz", 503, b"", {}, "http_503"),
    ],
)
def test_other_failures_are_not_a_refused_cursor(
    url_suffix: str, status: int, body: bytes, headers: dict[str, str], reason: str
) -> None:
    spider = make_spider()
    request = listing_request(spider, spider.start_url + url_suffix)
    spider.listing_failed(_http_error(request, status, body, **headers))
    assert engine(spider).crawled == []
    assert stat(spider, f"hfscraper/spider/bad_page/{reason}") == 1
    assert stat(spider, "hfscraper/spider/incomplete") == 1


def test_invalid_token_failure_adds_no_second_line(caplog: pytest.LogCaptureFixture) -> None:
    spider = make_spider()
    failure = Failure(InvalidTokenError("the Hub refused the token from HF_TOKEN"))
    failure.request = listing_request(spider)  # type: ignore[attr-defined]
    spider.listing_failed(failure)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert engine(spider).crawled == []
