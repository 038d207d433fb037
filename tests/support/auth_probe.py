"""A spider for `scrapy runspider` that drives requests through the project's whole middleware chain and
records every request as it enters the scheduler, to show that none of them carries the Hub token.

Spider arguments: `urls` (JSON list of absolute URLs to fetch) and `record` (a directory). It writes
`record/scheduled.pickles` (each scheduled request, pickled as JOBDIR would: `Request.to_dict` then pickle,
one after another) and `record/scheduled.jsonl` (`url`, `authorization` (whether the header was present),
`redirect_urls`, `retry_times`), and `record/responses.jsonl` (`url`, `status`) for every response.

Not a project spider (it lives outside SPIDER_MODULES); tests run it with the project's settings.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from scrapy import Request, Spider, signals


class AuthProbeSpider(Spider):
    name = "auth_probe"

    def __init__(self, urls: str = "[]", record: str = ".", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.urls: list[str] = json.loads(urls)
        self.record = Path(record)
        self.record.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> AuthProbeSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.scheduled, signal=signals.request_scheduled)
        return spider

    async def start(self) -> AsyncIterator[Request]:
        for url in self.urls:
            yield Request(url, callback=self.parse, errback=self.failed, dont_filter=True)

    def scheduled(self, request: Request, spider: Spider) -> None:
        with open(self.record / "scheduled.pickles", "ab") as f:
            f.write(pickle.dumps(request.to_dict(spider=self), protocol=4))
        entry = {
            "url": request.url,
            "authorization": "Authorization" in request.headers,
            "redirect_urls": request.meta.get("redirect_urls", []),
            "retry_times": request.meta.get("retry_times", 0),
        }
        with open(self.record / "scheduled.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def parse(self, response: Any) -> None:
        self._response(response.url, response.status)

    def failed(self, failure: Any) -> None:
        self._response(failure.request.url, getattr(getattr(failure.value, "response", None), "status", None))

    def _response(self, url: str, status: int | None) -> None:
        with open(self.record / "responses.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"url": url, "status": status}) + "\n")
