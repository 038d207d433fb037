"""The listing spiders, driven by hand-built responses (no network)."""

from __future__ import annotations

import asyncio
import json
import pickle
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
from scrapy import Request
from scrapy.exceptions import CloseSpider
from scrapy.http import HtmlResponse, Response, TextResponse
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.request import request_from_dict
from scrapy.utils.test import get_crawler
from twisted.internet.error import TimeoutError as TxTimeoutError
from twisted.python.failure import Failure

from hfscraper.constants import DEFAULT_EXPAND
from hfscraper.items import DatasetItem, ModelItem, SpaceItem
from hfscraper.spiders.base import HubListingSpider, load_json
from hfscraper.spiders.datasets import DatasetsSpider
from hfscraper.spiders.models import ModelsSpider
from hfscraper.spiders.spaces import SpacesSpider

ENDPOINT = "http://127.0.0.1:9"
SPIDERS: list[type[HubListingSpider]] = [ModelsSpider, DatasetsSpider, SpacesSpider]


def make_spider(
    cls: type[HubListingSpider] = ModelsSpider, settings: dict[str, Any] | None = None, **args: Any
) -> HubListingSpider:
    crawler = get_crawler(cls, {"HFSCRAPER_HUB_ENDPOINT": ENDPOINT, **(settings or {})})
    spider = cls.from_crawler(crawler, **args)
    crawler.spider = spider
    return spider


def page(
    url: str, entries: Any, *, next_url: str | None = None, body: bytes | None = None, **kwargs: Any
) -> TextResponse:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if next_url:
        headers["Link"] = f'<{next_url}>; rel="next"'
    raw = body if body is not None else json.dumps(entries).encode()
    return TextResponse(url, body=raw, headers=headers, request=Request(url), **kwargs)


def entity(i: int, **extra: Any) -> dict[str, Any]:
    return {"_id": f"{i:024x}", "id": f"org/model-{i}", "likes": i, "createdAt": "2024-01-01T00:00:00.000Z", **extra}


def run(spider: HubListingSpider, response: Response) -> tuple[list[Any], list[Request]]:
    out = list(spider.parse(response))
    return [o for o in out if not isinstance(o, Request)], [o for o in out if isinstance(o, Request)]


def stat(spider: HubListingSpider, key: str) -> Any:
    return spider.crawler.stats.get_value(key)


def start_requests_of(spider: HubListingSpider) -> list[Request]:
    async def collect() -> list[Request]:
        return [r async for r in spider.start()]

    return asyncio.run(collect())


# -- the subclasses -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "name", "repo_type", "item_class", "path"),
    [
        (ModelsSpider, "models", "model", ModelItem, "/api/models"),
        (DatasetsSpider, "datasets", "dataset", DatasetItem, "/api/datasets"),
        (SpacesSpider, "spaces", "space", SpaceItem, "/api/spaces"),
    ],
)
def test_subclasses(cls: type[HubListingSpider], name: str, repo_type: str, item_class: type, path: str) -> None:
    spider = make_spider(cls)
    assert (spider.name, spider.repo_type, spider.item_class) == (name, repo_type, item_class)
    (request,) = start_requests_of(spider)
    parts = urlsplit(request.url)
    assert f"{parts.scheme}://{parts.netloc}" == ENDPOINT and parts.path == path
    query = parse_qs(parts.query)
    assert query["limit"] == ["1000"] and query["sort"] == ["createdAt"]
    assert query["expand"] == list(DEFAULT_EXPAND[repo_type])
    assert request.callback == spider.parse and request.errback == spider.listing_failed


def test_start_requests_is_not_used() -> None:
    assert "start_requests" not in HubListingSpider.__dict__


def test_settings_are_read() -> None:
    spider = make_spider(
        SpacesSpider,
        {
            "HFSCRAPER_CRAWL_PAGE_SIZE": 50,
            "HFSCRAPER_CRAWL_SORT": "likes",
            "HFSCRAPER_CRAWL_MAX_ITEMS": 7,
            "HFSCRAPER_CRAWL_EXPAND_SPACES": "sdk,author",
        },
    )
    query = parse_qsl(urlsplit(spider.start_url).query)
    assert query == [("sort", "likes"), ("limit", "50"), ("expand", "sdk"), ("expand", "author")]
    assert spider.max_items == 7


def test_arguments_override_settings() -> None:
    spider = make_spider(
        ModelsSpider,
        {"HFSCRAPER_CRAWL_PAGE_SIZE": 50, "HFSCRAPER_CRAWL_MAX_ITEMS": 7},
        search="llama 3",
        author="meta-llama",
        filter="gguf, license:mit",
        sort="downloads",
        limit="10",
        max_items="3",
    )
    query = parse_qsl(urlsplit(spider.start_url).query)
    assert query[:6] == [
        ("search", "llama 3"),
        ("author", "meta-llama"),
        ("filter", "gguf"),
        ("filter", "license:mit"),
        ("sort", "downloads"),
        ("limit", "10"),
    ]
    assert spider.max_items == 3


def test_endpoint_falls_back_to_constants(monkeypatch: pytest.MonkeyPatch) -> None:
    from hfscraper import constants

    monkeypatch.setattr(constants, "HF_ENDPOINT", "http://127.0.0.5:1")
    crawler = get_crawler(ModelsSpider, {})
    spider = ModelsSpider.from_crawler(crawler)
    assert spider.start_url.startswith("http://127.0.0.5:1/api/models?")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"HFSCRAPER_CRAWL_EXPAND_MODELS": ["baseModels"]},
            "HFSCRAPER_CRAWL_EXPAND_MODELS: expand value 'baseModels' is only valid",
        ),
        ({"HFSCRAPER_CRAWL_EXPAND_MODELS": ["nope"]}, "unknown expand value 'nope'"),
        ({"HFSCRAPER_CRAWL_PAGE_SIZE": 5000}, "HFSCRAPER_CRAWL_PAGE_SIZE"),
        ({"HFSCRAPER_CRAWL_SORT": "stars"}, "HFSCRAPER_CRAWL_SORT"),
        ({"HFSCRAPER_CRAWL_MAX_ITEMS": -1}, "HFSCRAPER_CRAWL_MAX_ITEMS"),
        ({"HFSCRAPER_HUB_ENDPOINT": "ftp://x"}, "endpoint"),
    ],
)
def test_bad_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spider(ModelsSpider, settings)


# -- arguments ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        ({}, {}),
        ({"search": "qwen"}, {"search": "qwen"}),
        ({"author": "meta-llama"}, {"author": "meta-llama"}),
        ({"filter": "gguf"}, {"filters": ("gguf",)}),
        ({"filter": "a, b,a"}, {"filters": ("a", "b")}),
        ({"filter": "base_model:finetune:org/x"}, {"filters": ("base_model:finetune:org/x",)}),
        ({"sort": "likes"}, {"sort": "likes"}),
        ({"sort": "likes30d"}, {"sort": "likes30d"}),  # the Hub accepts it too (huggingface.js PR #1977)
        ({"limit": "1"}, {"limit": 1}),
        ({"limit": "1000"}, {"limit": 1000}),
        ({"limit": 20}, {"limit": 20}),
        ({"max_items": "1"}, {"max_items": 1}),
        ({"max_items": "5000000"}, {"max_items": 5000000}),
        ({"_job": "abc"}, {}),
    ],
)
def test_validate_arguments_accepts(args: dict[str, Any], parsed: dict[str, Any]) -> None:
    assert ModelsSpider.validate_arguments(args) == parsed


@pytest.mark.parametrize(
    ("cls", "args", "message"),
    [
        (ModelsSpider, {"limit": "0"}, "-a limit='0': must be a whole number from 1 to 1000"),
        (ModelsSpider, {"limit": "1001"}, "-a limit='1001'"),
        (ModelsSpider, {"limit": "ten"}, "-a limit='ten'"),
        (ModelsSpider, {"limit": "-5"}, "-a limit='-5'"),
        (ModelsSpider, {"limit": "1.5"}, "-a limit='1.5'"),
        (ModelsSpider, {"limit": ""}, "-a limit=''"),
        (ModelsSpider, {"max_items": "0"}, "-a max_items='0': must be a whole number of at least 1"),
        (ModelsSpider, {"max_items": "x"}, "-a max_items='x'"),
        (ModelsSpider, {"sort": "stars"}, "-a sort='stars': must be one of createdAt, downloads"),
        (SpacesSpider, {"sort": "downloads"}, "-a sort='downloads': must be one of createdAt, lastModified"),
        (ModelsSpider, {"author": "a/b"}, "-a author='a/b'"),
        (ModelsSpider, {"author": ""}, "-a author=''"),
        (ModelsSpider, {"author": "../x"}, "-a author='../x'"),
        (ModelsSpider, {"search": ""}, "-a search=''"),
        (ModelsSpider, {"search": "a\x00"}, "-a search="),
        (ModelsSpider, {"search": "x" * 251}, "-a search="),
        (ModelsSpider, {"filter": ""}, "-a filter=''"),
        (ModelsSpider, {"filter": "a,,b"}, "-a filter='a,,b'"),
        (ModelsSpider, {"filter": "a\nb"}, "-a filter="),
        (ModelsSpider, {"autor": "x"}, "unknown spider argument 'autor'"),
        (ModelsSpider, {"expand": "x"}, "unknown spider argument 'expand'"),
    ],
)
def test_validate_arguments_refuses(cls: type[HubListingSpider], args: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as info:
        cls.validate_arguments(args)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_init_validates_too() -> None:
    with pytest.raises(ValueError, match="limit"):
        ModelsSpider(limit="0")
    with pytest.raises(ValueError, match="max_items"):
        make_spider(ModelsSpider, max_items="-1")


# -- pages --------------------------------------------------------------------------------------------------


def test_page_items_and_next_link() -> None:
    spider = make_spider()
    url = spider.start_url
    entries = [entity(i) for i in range(3)]
    items, requests = run(spider, page(url, entries, next_url=f"{ENDPOINT}/api/models?cursor=abc"))
    assert [type(i) for i in items] == [ModelItem] * 3
    assert [i.to_api() for i in items] == entries
    (nxt,) = requests
    assert nxt.url == f"{ENDPOINT}/api/models?cursor=abc" and nxt.callback == spider.parse
    assert stat(spider, "hfscraper/spider/pages") == 1 and stat(spider, "hfscraper/spider/items") == 3


def test_last_page_has_no_next() -> None:
    spider = make_spider()
    items, requests = run(spider, page(spider.start_url, [entity(1)]))
    assert len(items) == 1 and requests == []
    assert stat(spider, "hfscraper/spider/incomplete") is None


def test_relative_next_link_is_resolved() -> None:
    spider = make_spider()
    _, (nxt,) = run(spider, page(spider.start_url, [], next_url="/api/models?cursor=r"))
    assert nxt.url == f"{ENDPOINT}/api/models?cursor=r"


def test_several_links_and_rel_forms() -> None:
    spider = make_spider()
    response = page(spider.start_url, [])
    response = response.replace(
        headers={"Link": [f'<{ENDPOINT}/api/models?c=p,q>; rel="prev"', f"<{ENDPOINT}/api/models?c=n,m>; REL=next"]}
    )
    _, (nxt,) = run(spider, response)
    assert nxt.url == f"{ENDPOINT}/api/models?c=n,m"


def test_foreign_next_link_is_not_followed() -> None:
    spider = make_spider()
    items, requests = run(spider, page(spider.start_url, [entity(1)], next_url="http://evil.example/api/models?c=1"))
    assert len(items) == 1 and requests == []
    assert stat(spider, "hfscraper/spider/bad_page/foreign_next_link") == 1
    assert stat(spider, "hfscraper/spider/incomplete") == 1


def test_unusable_next_link() -> None:
    spider = make_spider()
    items, requests = run(spider, page(spider.start_url, [entity(1)], next_url="http://[::1/api/models?c=1"))
    assert len(items) == 1 and requests == []
    assert stat(spider, "hfscraper/spider/bad_page/bad_next_link") == 1


def test_next_link_loop_is_detected() -> None:
    spider = make_spider()
    start_requests_of(spider)
    _, requests = run(spider, page(spider.start_url, [entity(1)], next_url=spider.start_url))
    assert requests == [] and stat(spider, "hfscraper/spider/bad_page/next_link_loop") == 1


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "invalid_json"),
        (b"", "application/json", "invalid_json"),
        (b"\xff\xfe\x00garbage", "application/json", "invalid_json"),
        (b"<!doctype html><html><body>Hugging Face is down</body></html>", "text/html", "html"),
        (b"  <html>", "application/json", "html"),
        (b'{"error": "Internal Error"}', "application/json", "not_a_list"),
        (b'"a string"', "application/json", "not_a_list"),
        (b"null", "application/json", "not_a_list"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "invalid_json"),  # nested too deep to parse
    ],
)
def test_bad_pages_are_counted_not_fatal(body: bytes, content_type: str, reason: str) -> None:
    # With no retries left (tests/test_spider_bad_pages.py has the retries themselves).
    spider = make_spider(settings={"RETRY_TIMES": 0})
    cls = HtmlResponse if "html" in content_type else TextResponse
    response = cls(
        spider.start_url,
        body=body,
        headers={"Content-Type": content_type, "Link": f'<{ENDPOINT}/api/models?c=2>; rel="next"'},
        request=Request(spider.start_url),
    )
    items, requests = run(spider, response)
    assert items == []
    assert [r.url for r in requests] == [f"{ENDPOINT}/api/models?c=2"]  # the rest of the listing is still walked
    assert stat(spider, f"hfscraper/spider/bad_page/{reason}") == 1
    assert stat(spider, "hfscraper/spider/incomplete") == 1
    with pytest.raises(CloseSpider) as info:
        spider._spider_idle()
    assert info.value.reason == "listing_incomplete"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps([entity(1), entity(2)]).encode(),
        b'[{"id": "a/b", "x": 1e400, "n": 123456789012345678901234567890}]',  # beyond float and 64 bits
        b'[{"id": "a/\\ud800"}]',  # a lone surrogate escape
        b'[{"id": "a/b", "v": NaN, "w": -Infinity}]',
        b"\xef\xbb\xbf[1]",  # a UTF-8 byte-order mark
        "[1, 2]".encode("utf-16"),
        b'[{"a": 1, "a": 2}]',  # the last duplicate wins in both
        b'[-0.0, 0.1, 1.7976931348623157e308, 5e-324, "\\u00e9", "\xc3\xa9"]',
        b"[" * 900 + b"]" * 900,
    ],
)
def test_page_parser_equals_json_loads(body: bytes) -> None:
    # orjson parses pages where it can; the values (and their types) must be json.loads' own.
    expected = json.loads(body)
    got = load_json(body)
    assert repr(got) == repr(expected)


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe\x00garbage", b"[1,]", b"[" * 100_000 + b"]" * 100_000])
def test_page_parser_refuses_what_json_loads_refuses(body: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)):
        load_json(body)


def test_binary_response_is_handled() -> None:
    spider = make_spider()
    response = Response(spider.start_url, body=json.dumps([entity(1)]).encode(), request=Request(spider.start_url))
    items, _ = run(spider, response)
    assert len(items) == 1


def test_bad_items_are_skipped() -> None:
    spider = make_spider()
    entries = [entity(1), "x", None, [1], {"_id": "a"}, {"id": ""}, {"id": 5}, entity(2)]
    items, _ = run(spider, page(spider.start_url, entries))
    assert [i.id for i in items] == ["org/model-1", "org/model-2"]
    assert stat(spider, "hfscraper/spider/bad_item/not_an_object") == 3
    assert stat(spider, "hfscraper/spider/bad_item/missing_id") == 3
    assert stat(spider, "hfscraper/spider/items") == 2
    assert stat(spider, "hfscraper/spider/incomplete") is None


def test_private_repos_are_skipped_unless_asked_for() -> None:
    entries = [entity(1, private=False), entity(2, private=True), entity(3)]
    spider = make_spider()
    items, _ = run(spider, page(spider.start_url, entries))
    assert [i.id for i in items] == ["org/model-1", "org/model-3"]
    assert stat(spider, "hfscraper/spider/skipped/private") == 1

    spider = make_spider(settings={"HFSCRAPER_CRAWL_INCLUDE_PRIVATE": True})
    items, _ = run(spider, page(spider.start_url, entries))
    assert [i.id for i in items] == ["org/model-1", "org/model-2", "org/model-3"]
    assert stat(spider, "hfscraper/spider/skipped/private") is None


def test_hostile_ids_are_emitted_for_the_store_to_judge() -> None:
    spider = make_spider()
    items, _ = run(spider, page(spider.start_url, [{"id": "../../etc/passwd"}, {"id": "a\x00b"}]))
    assert [i.id for i in items] == ["../../etc/passwd", "a\x00b"]


def test_max_items_stops_paging() -> None:
    spider = make_spider(max_items="4")
    first, req1 = run(
        spider, page(spider.start_url, [entity(i) for i in range(3)], next_url=f"{ENDPOINT}/api/models?c=2")
    )
    assert len(first) == 3 and len(req1) == 1
    second, req2 = run(
        spider, page(req1[0].url, [entity(i) for i in range(3, 6)], next_url=f"{ENDPOINT}/api/models?c=3")
    )
    assert [i.id for i in second] == ["org/model-3"] and req2 == []
    assert stat(spider, "hfscraper/spider/items") == 4
    assert stat(spider, "hfscraper/spider/max_items_reached") == 4
    spider._spider_idle()  # complete: no CloseSpider


def test_max_items_exactly_at_page_end() -> None:
    spider = make_spider(max_items="2")
    items, requests = run(spider, page(spider.start_url, [entity(1), entity(2)], next_url=f"{ENDPOINT}/api/models?c=2"))
    assert len(items) == 2 and requests == []


# -- failures -----------------------------------------------------------------------------------------------


def _failure(exc: Exception, request: Request) -> Failure:
    failure = Failure(exc)
    failure.request = request  # type: ignore[attr-defined]
    return failure


@pytest.mark.parametrize("status", [404, 500, 503, 429])
def test_lost_listing_page_marks_incomplete(status: int) -> None:
    spider = make_spider()
    (request,) = start_requests_of(spider)
    response = TextResponse(request.url, status=status, body=b"", request=request)
    result = spider.listing_failed(_failure(HttpError(response), request))
    assert result is None
    assert stat(spider, f"hfscraper/spider/bad_page/http_{status}") == 1
    assert stat(spider, "hfscraper/spider/incomplete") == 1
    with pytest.raises(CloseSpider) as info:
        spider._spider_idle()
    assert info.value.reason == "listing_incomplete"


def test_download_error_marks_incomplete() -> None:
    spider = make_spider()
    (request,) = start_requests_of(spider)
    spider.listing_failed(_failure(TxTimeoutError("took too long"), request))
    assert stat(spider, "hfscraper/spider/bad_page/TimeoutError") == 1
    with pytest.raises(CloseSpider):
        spider._spider_idle()


def test_complete_crawl_closes_normally() -> None:
    spider = make_spider()
    run(spider, page(spider.start_url, [entity(1)]))
    assert spider._spider_idle() is None


# -- base models --------------------------------------------------------------------------------------------

BASE_TAGS = ["transformers", "base_model:org/base", "base_model:finetune:org/base"]


def test_base_models_off_by_default() -> None:
    spider = make_spider()
    items, requests = run(spider, page(spider.start_url, [entity(1, tags=BASE_TAGS)]))
    assert len(items) == 1 and requests == []


def test_base_models_fetched_and_merged() -> None:
    spider = make_spider(settings={"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": True})
    entries = [
        entity(1, tags=BASE_TAGS),
        entity(2, tags=["transformers"]),
        entity(3),
        {"id": "../x", "tags": BASE_TAGS},
    ]
    items, requests = run(spider, page(spider.start_url, entries))
    assert [i.id for i in items] == ["org/model-2", "org/model-3", "../x"]
    (detail,) = requests
    assert detail.url == f"{ENDPOINT}/api/models/org/model-1?expand=baseModels"
    assert detail.callback == spider.parse_base_models and detail.errback == spider.base_models_failed
    assert detail.dont_filter and detail.priority > 0
    assert stat(spider, "hfscraper/spider/base_models/skipped_non_plain_id") == 1
    assert stat(spider, "hfscraper/spider/items") == 3

    base = {"relation": "finetune", "models": [{"_id": "b" * 24, "id": "org/base"}]}
    body = json.dumps({"_id": "1" * 24, "id": "org/model-1", "baseModels": base}).encode()
    response = TextResponse(detail.url, body=body, request=detail)
    (merged,) = list(spider.parse_base_models(response, **detail.cb_kwargs))
    api = merged.to_api()
    assert api["baseModels"] == base and list(api)[-1] == "baseModels"
    assert list(api)[:-1] == list(entries[0])
    assert stat(spider, "hfscraper/spider/base_models/merged") == 1
    assert stat(spider, "hfscraper/spider/items") == 4


def test_base_models_absent_or_bad() -> None:
    spider = make_spider(settings={"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": True})
    _, (detail,) = run(spider, page(spider.start_url, [entity(1, tags=BASE_TAGS)]))
    (item,) = spider.parse_base_models(
        TextResponse(detail.url, body=b'{"id": "org/model-1"}', request=detail), **detail.cb_kwargs
    )
    assert "baseModels" not in item.to_api()
    (item,) = spider.parse_base_models(TextResponse(detail.url, body=b"<html>", request=detail), **detail.cb_kwargs)
    assert stat(spider, "hfscraper/spider/base_models/absent") == 1
    assert stat(spider, "hfscraper/spider/base_models/bad_response") == 1


def test_base_models_failure_keeps_item() -> None:
    spider = make_spider(settings={"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": True})
    _, (detail,) = run(spider, page(spider.start_url, [entity(1, tags=BASE_TAGS)]))
    response = TextResponse(detail.url, status=500, body=b"", request=detail)
    (item,) = list(spider.base_models_failed(_failure(HttpError(response), detail)))
    assert item.id == "org/model-1" and "baseModels" not in item.to_api()
    assert stat(spider, "hfscraper/spider/base_models/failed") == 1
    assert stat(spider, "hfscraper/spider/incomplete") is None


def test_base_models_only_for_models() -> None:
    spider = make_spider(DatasetsSpider, {"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": True})
    items, requests = run(spider, page(spider.start_url, [entity(1, tags=BASE_TAGS)]))
    assert len(items) == 1 and requests == []


def test_max_items_counts_pending_base_model_items() -> None:
    spider = make_spider(settings={"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": True}, max_items="2")
    entries = [entity(1, tags=BASE_TAGS), entity(2, tags=BASE_TAGS), entity(3)]
    items, requests = run(spider, page(spider.start_url, entries, next_url=f"{ENDPOINT}/api/models?c=2"))
    assert items == [] and len(requests) == 2 and all(r.callback == spider.parse_base_models for r in requests)


# -- JOBDIR: requests must serialise -------------------------------------------------------------------------


def test_requests_serialise_for_jobdir() -> None:
    spider = make_spider(settings={"HFSCRAPER_CRAWL_FETCH_BASE_MODELS": True})
    (start,) = start_requests_of(spider)
    _, requests = run(
        spider, page(spider.start_url, [entity(1, tags=BASE_TAGS)], next_url=f"{ENDPOINT}/api/models?c=2")
    )
    for request in [start, *requests]:
        restored = request_from_dict(pickle.loads(pickle.dumps(request.to_dict(spider=spider))), spider=spider)
        assert restored.url == request.url and restored.callback == request.callback
        assert restored.errback == request.errback
    detail = next(r for r in requests if r.cb_kwargs)
    restored = request_from_dict(pickle.loads(pickle.dumps(detail.to_dict(spider=spider))), spider=spider)
    assert restored.cb_kwargs["item"].to_api() == detail.cb_kwargs["item"].to_api()
