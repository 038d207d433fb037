"""`KeepRedirectsDownloaderMiddleware`: a redirect never vanishes in the duplicate filter.

Scrapy's RedirectMiddleware gives the redirected request the ``dont_filter`` of the original. For an
ordinary request (``dont_filter`` false) a redirect to a URL the crawl has already fetched, above all a
redirect loop (a URL that redirects to itself), is then dropped by the scheduler's duplicate filter: the
original request never reaches its callback or its errback, nothing is logged above DEBUG, and a crawl that
lost a listing page that way finished "complete". This middleware marks the request of every redirect
response ``dont_filter`` before RedirectMiddleware copies it, so the redirect is always followed and a loop
ends at Scrapy's own limit (REDIRECT_MAX_TIMES): an ``IgnoreRequest("max redirections reached")`` that
reaches the request's errback (for a listing page: lost, the crawl ends ``listing_incomplete``).

It must run before RedirectMiddleware (600) in ``process_response``, i.e. with a higher priority (610).

`HubRedirectMiddleware` is Scrapy's RedirectMiddleware in its place (600) for a crawl that sends no Referer: the
Referer spider middleware is off (settings.py), so a redirect drops the header instead of looking that middleware up
and warning at every start that it is missing.

Settings (Scrapy's, read once): REDIRECT_ENABLED (off: this middleware is off too), REDIRECT_MAX_TIMES.
Stats: hfscraper/redirect/max_reached - redirect chains that hit the limit.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final, Self

from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.exceptions import NotConfigured

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})


class KeepRedirectsDownloaderMiddleware:
    """Keeps redirected requests out of the duplicate filter, so a redirect loop fails loudly."""

    def __init__(self, crawler: Crawler) -> None:
        if not crawler.settings.getbool("REDIRECT_ENABLED"):
            raise NotConfigured
        self.crawler = crawler
        self.max_redirects = crawler.settings.getint("REDIRECT_MAX_TIMES")

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if response.status not in _REDIRECT_STATUSES or b"Location" not in response.headers:
            return response
        if request.meta.get("dont_redirect"):
            return response
        request.dont_filter = True
        # RedirectMiddleware's own test: is this redirect one too many?
        hops = request.meta.get("redirect_times", 0)
        if not request.meta.get("redirect_ttl", self.max_redirects) or hops + 1 > self.max_redirects:
            self.crawler.stats.inc_value("hfscraper/redirect/max_reached")
            logger.warning(
                "Redirect limit reached (%(n)d redirects, REDIRECT_MAX_TIMES=%(max)d); giving up on %(url)s",
                {"n": hops, "max": self.max_redirects, "url": request.meta.get("redirect_urls", [request.url])[0]},
            )
        return response


class HubRedirectMiddleware(RedirectMiddleware):
    """RedirectMiddleware without the Referer hand-off (no RefererMiddleware to hand it to)."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        middleware = cls(crawler.settings)
        middleware.crawler = crawler
        return middleware

    def handle_referer(self, request: Request, response: Response) -> None:
        request.headers.pop("Referer", None)
