"""QuietLogFormatter: no log record per scraped item unless the log level shows it."""

from __future__ import annotations

import logging

from scrapy.http import Request, TextResponse
from scrapy.utils.test import get_crawler

from hfscraper.items import ModelItem
from hfscraper.logformatter import QuietLogFormatter


def _scraped(level: str) -> object:
    crawler = get_crawler(settings_dict={"LOG_LEVEL": level})
    formatter = QuietLogFormatter.from_crawler(crawler)
    response = TextResponse("http://127.0.0.1/api/models", body=b"[]", request=Request("http://127.0.0.1/api/models"))
    return formatter.scraped(ModelItem(id="a/b"), response, None)


def test_items_are_logged_only_at_debug() -> None:
    assert _scraped("INFO") is None
    assert _scraped("WARNING") is None
    shown = _scraped("DEBUG")
    assert isinstance(shown, dict) and shown["level"] == logging.DEBUG and "Scraped from" in shown["msg"]


def test_the_project_uses_it() -> None:
    from hfscraper import settings

    assert settings.LOG_FORMATTER == "hfscraper.logformatter.QuietLogFormatter"
