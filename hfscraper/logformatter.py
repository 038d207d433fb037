"""`QuietLogFormatter`: Scrapy's log formatter, without a log record per scraped item when nobody shows it.

Scrapy logs every scraped item at DEBUG ("Scraped from <200 ...>"). Below DEBUG the line is dropped by the
handler, but only after a `LogRecord` was built for it: a few microseconds for each of a whole-Hub crawl's
5 million entities, for nothing. At LOG_LEVEL=DEBUG the lines are there as before.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Self

from scrapy.logformatter import LogFormatter

if TYPE_CHECKING:
    from scrapy.crawler import Crawler


class QuietLogFormatter(LogFormatter):
    def __init__(self, log_level: int = logging.DEBUG) -> None:
        super().__init__()
        self.items_shown = log_level <= logging.DEBUG

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        level = crawler.settings.get("LOG_LEVEL") or "DEBUG"
        number = level if isinstance(level, int) else logging.getLevelName(str(level).upper())
        return cls(number if isinstance(number, int) else logging.DEBUG)

    def scraped(self, item: Any, response: Any, spider: Any) -> Any:
        return super().scraped(item, response, spider) if self.items_shown else None
