"""`LoggingRetryDownloaderMiddleware`: Scrapy's RetryMiddleware, with one visible line per retry.

Scrapy logs a retry at DEBUG only, so a crawl at the usual INFO level that rode out a burst of 5xx answers,
connection resets or truncated bodies shows nothing but a stats key. This subclass keeps every behaviour of
RetryMiddleware (RETRY_TIMES, RETRY_HTTP_CODES, RETRY_EXCEPTIONS, `dont_retry`, `max_retry_times`, the
`retry/...` stats, the give-up line at RETRY_GIVE_UP_LOG_LEVEL) and adds a WARNING for each retry it
schedules: what failed, which try comes next, and the URL. It replaces RetryMiddleware at the same
priority (550) in DOWNLOADER_MIDDLEWARES.

Settings: Scrapy's RETRY_* settings, read by RetryMiddleware.
Stats: Scrapy's retry/count, retry/reason_count/<reason>, retry/max_reached.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import Request
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.utils.python import global_object_name
from scrapy.utils.response import response_status_message

if TYPE_CHECKING:
    from scrapy.http import Response

logger = logging.getLogger(__name__)


class LoggingRetryDownloaderMiddleware(RetryMiddleware):
    """RetryMiddleware that logs each retry at WARNING."""

    def process_response(self, request: Request, response: Response) -> Request | Response:  # type: ignore[override]
        result = super().process_response(request, response)
        if isinstance(result, Request):
            message = response_status_message(response.status)  # "429 Unknown Status": Twisted lacks the name
            self._log_retry(result, f"HTTP {response.status if message.endswith('Unknown Status') else message}")
        return result

    def process_exception(self, request: Request, exception: Exception) -> Request | Response | None:  # type: ignore[override]
        result = super().process_exception(request, exception)
        if isinstance(result, Request):
            detail = str(exception).strip()
            reason = global_object_name(type(exception))
            self._log_retry(result, f"{reason}: {detail}" if detail else reason)
        return result

    def _log_retry(self, retry: Request, reason: str) -> None:
        limit = retry.meta.get("max_retry_times", self.max_retry_times)
        logger.warning(
            "Retrying after %(reason)s (retry %(n)d of %(max)d): %(url)s",
            {"reason": reason, "n": retry.meta.get("retry_times", 0), "max": limit, "url": retry.url},
        )
