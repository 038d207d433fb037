"""HubAuthDownloaderMiddleware, KeepRedirectsDownloaderMiddleware and LoggingRetryDownloaderMiddleware as
units: built from a crawler, fed requests and responses the way Scrapy's middleware manager does."""

from __future__ import annotations

import base64
import logging
import pickle
from typing import Any

import pytest
from scrapy import Request, Spider
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.http import Headers, Response
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler
from twisted.internet.error import ConnectionLost

from hfscraper.config import ConfigError
from hfscraper.middlewares.auth import (
    INVALID_TOKEN_REASON,
    HubAuthDownloaderMiddleware,
    InvalidTokenError,
    hub_refusal,
    origin_of,
    token_source,
)
from hfscraper.middlewares.redirects import KeepRedirectsDownloaderMiddleware
from hfscraper.middlewares.retry import LoggingRetryDownloaderMiddleware

HUB = "http://127.0.0.1:8000"
CDN = "http://127.0.0.2:9000"
TOKEN = "hf_" + "UnitTestTokenThatMustNeverLeak0123456789"  # built, so no scanner mistakes it for a real token


def leaks(data: bytes) -> bool:
    """Whether *data* holds the token, raw or base64-encoded."""
    raw = TOKEN.encode()
    return raw in data or base64.b64encode(raw)[:-4] in data


class _Engine:
    """Stands in for the engine: records close_spider_async calls (synchronously: no reactor runs here)."""

    def __init__(self) -> None:
        self.reasons: list[str] = []

    def close_spider_async(self, *, reason: str = "cancelled") -> None:
        self.reasons.append(reason)


def make_crawler(monkeypatch: pytest.MonkeyPatch, tmp_path: Any, token: str | None = TOKEN, **settings: Any) -> Any:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    crawler = get_crawler(Spider, {"HFSCRAPER_HUB_ENDPOINT": HUB, **settings})
    crawler.spider = crawler._create_spider("unit")
    crawler.engine = _Engine()
    return crawler


@pytest.fixture
def crawler(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    return make_crawler(monkeypatch, tmp_path)


@pytest.fixture
def auth(crawler: Any) -> HubAuthDownloaderMiddleware:
    return build_from_crawler(HubAuthDownloaderMiddleware, crawler)


def send(auth: HubAuthDownloaderMiddleware, request: Request, response: Response) -> tuple[bool, Response]:
    """process_request, then process_response; returns whether the header was on the request when sent."""
    assert auth.process_request(request) is None
    sent = "Authorization" in request.headers
    return sent, auth.process_response(request, response)


class TestHubAuthDownloaderMiddleware:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            (f"{HUB}/api/models?limit=5", True),
            ("HTTP://127.0.0.1:8000/api/models", True),
            (f"{CDN}/xet-bridge-us/abc/def", False),  # the CDN a resolve URL redirects to
            ("http://127.0.0.1:8001/api/models", False),  # another port
            ("https://127.0.0.1:8000/api/models", False),  # another scheme
            ("http://localhost:8000/api/models", False),  # another host name, even for the same machine
            ("http://127.0.0.1.evil.example:8000/api", False),
            ("http://user@127.0.0.2:8000/api", False),
        ],
    )
    def test_header_only_for_the_hub_origin(self, auth: HubAuthDownloaderMiddleware, url: str, expected: bool) -> None:
        request = Request(url)
        auth.process_request(request)
        assert ("Authorization" in request.headers) is expected
        if expected:
            assert request.headers["Authorization"] == f"Bearer {TOKEN}".encode()

    def test_default_ports(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        crawler = make_crawler(monkeypatch, tmp_path, HFSCRAPER_HUB_ENDPOINT="https://huggingface.co")
        auth = build_from_crawler(HubAuthDownloaderMiddleware, crawler)
        for url, expected in [
            ("https://huggingface.co/api/models", True),
            ("https://huggingface.co:443/api/models", True),
            ("http://huggingface.co/api/models", False),
            ("https://cas-bridge.xethub.hf.co/xet-bridge-us/x", False),
            ("https://us.aws.cdn.hf.co/x", False),
        ]:
            request = Request(url)
            auth.process_request(request)
            assert ("Authorization" in request.headers) is expected, url

    def test_response_takes_the_header_off(self, auth: HubAuthDownloaderMiddleware, crawler: Any) -> None:
        request = Request(f"{HUB}/api/models")
        sent, response = send(auth, request, Response(request.url, status=200, request=request))
        assert sent and "Authorization" not in request.headers
        assert crawler.stats.get_value("hfscraper/auth/sent") == 1
        assert not leaks(pickle.dumps(request.to_dict()))

    def test_exception_takes_the_header_off(self, auth: HubAuthDownloaderMiddleware) -> None:
        request = Request(f"{HUB}/api/models")
        auth.process_request(request)
        assert auth.process_exception(request, ConnectionLost()) is None
        assert "Authorization" not in request.headers

    def test_retried_request_carries_no_token(self, auth: HubAuthDownloaderMiddleware, crawler: Any) -> None:
        retry = LoggingRetryDownloaderMiddleware.from_crawler(crawler)
        request = Request(f"{HUB}/api/models")
        # Scrapy calls process_response from the highest priority down: auth (950) before retry (550).
        sent, response = send(auth, request, Response(request.url, status=503, request=request))
        retried = retry.process_response(request, response)
        assert sent and isinstance(retried, Request)
        assert "Authorization" not in retried.headers
        assert not leaks(pickle.dumps(retried.to_dict())) and not leaks(pickle.dumps(retried))
        # and after an exception (connection lost)
        auth.process_request(retried)
        auth.process_exception(retried, ConnectionLost())
        again = retry.process_exception(retried, ConnectionLost())
        assert isinstance(again, Request) and "Authorization" not in again.headers
        assert not leaks(pickle.dumps(again.to_dict()))

    @pytest.mark.parametrize(
        ("status", "location", "same_host"),
        [
            (302, f"{CDN}/xet-bridge-us/abc/def?Expires=1&Signature=x", False),
            (307, "/api/resolve-cache/models/o/m/abc/config.json", True),  # same host: Scrapy would keep it
        ],
    )
    def test_redirected_request_carries_no_token(
        self, auth: HubAuthDownloaderMiddleware, crawler: Any, status: int, location: str, same_host: bool
    ) -> None:
        keep = build_from_crawler(KeepRedirectsDownloaderMiddleware, crawler)
        redirect = build_from_crawler(RedirectMiddleware, crawler)
        request = Request(f"{HUB}/o/m/resolve/main/model.safetensors")
        response = Response(request.url, status=status, headers={"Location": location}, request=request)
        sent, response = send(auth, request, response)
        response = keep.process_response(request, response)
        redirected = redirect.process_response(request, response)
        assert sent and isinstance(redirected, Request)
        assert "Authorization" not in redirected.headers
        assert redirected.dont_filter  # KeepRedirects: never dropped by the duplicate filter
        assert not leaks(pickle.dumps(redirected.to_dict()))
        # On its way out again, the header comes back only for the Hub's own origin.
        auth.process_request(redirected)
        assert ("Authorization" in redirected.headers) is same_host

    def test_stray_copy_to_another_origin_is_removed(self, auth: HubAuthDownloaderMiddleware, crawler: Any) -> None:
        request = Request(f"{CDN}/x", headers={"Authorization": f"Bearer {TOKEN}"})
        auth.process_request(request)
        assert "Authorization" not in request.headers
        assert crawler.stats.get_value("hfscraper/auth/withheld") == 1
        other = Request(f"{CDN}/x", headers={"Authorization": "Basic c29tZW9uZTplbHNl"})
        auth.process_request(other)
        assert other.headers["Authorization"] == b"Basic c29tZW9uZTplbHNl"

    def test_invalid_token_stops_the_crawl(
        self, auth: HubAuthDownloaderMiddleware, crawler: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        headers = {"X-Error-Message": "Invalid credentials in Authorization header", "Content-Type": "application/json"}
        for _ in range(2):
            request = Request(f"{HUB}/api/models")
            response = Response(request.url, status=401, headers=headers, body=b'{"error":"x"}', request=request)
            with caplog.at_level(logging.INFO), pytest.raises(InvalidTokenError) as raised:
                send(auth, request, response)
            assert isinstance(raised.value, IgnoreRequest)
            assert "Authorization" not in request.headers
            assert TOKEN not in str(raised.value) and "HF_TOKEN" in str(raised.value)
        assert crawler.engine.reasons == [INVALID_TOKEN_REASON]  # closed once
        assert crawler.stats.get_value("hfscraper/auth/invalid_token") == 2
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "refused the token from HF_TOKEN" in errors[0].getMessage()
        assert all(TOKEN not in r.getMessage() for r in caplog.records)

    def test_other_401_does_not_stop_the_crawl(self, auth: HubAuthDownloaderMiddleware, crawler: Any) -> None:
        request = Request(f"{HUB}/api/models/o/gated")
        headers = {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model o/gated is restricted."}
        _, response = send(auth, request, Response(request.url, status=401, headers=headers, request=request))
        assert response.status == 401 and crawler.engine.reasons == []

    def test_no_token_disables_it(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        crawler = make_crawler(monkeypatch, tmp_path, token=None)
        with pytest.raises(NotConfigured):
            build_from_crawler(HubAuthDownloaderMiddleware, crawler)

    def test_token_file(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        crawler = make_crawler(monkeypatch, tmp_path, token="")
        (tmp_path / "hf-home").mkdir()
        (tmp_path / "hf-home" / "token").write_text(TOKEN + "\n", encoding="utf-8")
        auth = build_from_crawler(HubAuthDownloaderMiddleware, crawler)
        request = Request(f"{HUB}/api/models")
        auth.process_request(request)
        assert request.headers["Authorization"] == f"Bearer {TOKEN}".encode()
        assert token_source(crawler.settings) == f"the token file {tmp_path / 'hf-home' / 'token'}"

    def test_bad_token_is_a_config_error_without_it(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        crawler = make_crawler(monkeypatch, tmp_path, token="hf_has a space")
        with pytest.raises(ConfigError) as raised:
            build_from_crawler(HubAuthDownloaderMiddleware, crawler)
        assert "has a space" not in str(raised.value) and "HF_TOKEN" in str(raised.value)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (401, {"X-Error-Message": "Invalid credentials in Authorization header"}, "invalid_token"),
        (401, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model x is restricted."}, "gated"),
        (403, {"X-Error-Code": "GatedRepo"}, "gated"),
        (401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Invalid username or password."}, "repo_not_found"),
        (404, {"X-Error-Code": "RepoNotFound"}, "repo_not_found"),
        (403, {"X-Error-Message": "Access to this resource is disabled."}, "disabled"),
        (404, {"X-Error-Code": "EntryNotFound"}, None),
        (200, {"X-Error-Code": "GatedRepo"}, None),
        (503, {}, None),
    ],
)
def test_hub_refusal(status: int, headers: dict[str, str], expected: str | None) -> None:
    assert hub_refusal(status, Headers(headers)) == expected


def test_origin_of() -> None:
    assert origin_of("https://HuggingFace.co") == ("https", "huggingface.co", 443)
    assert origin_of("http://127.0.0.2:9000/x") == ("http", "127.0.0.2", 9000)


class TestKeepRedirects:
    def test_redirect_limit_is_counted(self, crawler: Any, caplog: pytest.LogCaptureFixture) -> None:
        keep = build_from_crawler(KeepRedirectsDownloaderMiddleware, crawler)
        redirect = build_from_crawler(RedirectMiddleware, crawler)
        request = Request(f"{HUB}/api/models?cursor=x")
        with caplog.at_level(logging.WARNING):
            for _ in range(crawler.settings.getint("REDIRECT_MAX_TIMES") + 1):
                response = Response(request.url, status=307, headers={"Location": request.url}, request=request)
                try:
                    request = redirect.process_response(request, keep.process_response(request, response))
                except IgnoreRequest:
                    break
            else:
                pytest.fail("RedirectMiddleware never gave up")
        assert crawler.stats.get_value("hfscraper/redirect/max_reached") == 1
        assert any("Redirect limit reached" in r.getMessage() for r in caplog.records)

    def test_off_with_redirects(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        crawler = make_crawler(monkeypatch, tmp_path, REDIRECT_ENABLED=False)
        with pytest.raises(NotConfigured):
            build_from_crawler(KeepRedirectsDownloaderMiddleware, crawler)


def test_retry_is_logged(crawler: Any, caplog: pytest.LogCaptureFixture) -> None:
    retry = LoggingRetryDownloaderMiddleware.from_crawler(crawler)
    request = Request(f"{HUB}/api/models")
    with caplog.at_level(logging.WARNING):
        retried = retry.process_response(request, Response(request.url, status=429, request=request))
    assert isinstance(retried, Request) and retried.meta["retry_times"] == 1
    assert crawler.stats.get_value("retry/count") == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"Retrying after HTTP 429 (retry 1 of {crawler.settings.getint('RETRY_TIMES')}): {request.url}"
    ]
    # same contract as Scrapy's: dont_retry, give-up returns None
    assert retry.process_response(Request(request.url, meta={"dont_retry": True}), Response(request.url, status=503)) \
        .status == 503
    assert get_retry_request(Request(request.url, meta={"retry_times": 9}), spider=crawler.spider) is None
