"""`HubAuthDownloaderMiddleware`: the Hub token goes to the Hub, and only while a request is on the wire.

The token (``hfscraper.config.resolve_token``: ``HF_TOKEN``, the huggingface token file, then ``hub.token``
of a settings file) is read once, when the crawler builds this middleware, and kept as a ``Secret``.

- ``process_request`` adds ``Authorization: Bearer <token>`` to a request only when its scheme, host and port
  equal those of the Hub endpoint (``HFSCRAPER_HUB_ENDPOINT``). Never to another host: not to the CDN a
  ``resolve`` URL redirects to, not to a mirror on another port, not over another scheme.
- ``process_response`` and ``process_exception`` take the header off the request again. This middleware sits
  close to the downloader (priority 950), so both run before RetryMiddleware (550) and RedirectMiddleware
  (600) copy the request: a retried or redirected request, like every request the scheduler holds (and
  JOBDIR pickles), carries no token. Requests are created without it, and a header that matches the token
  on a request to another host is removed (defence in depth, counted).
- A 401 whose ``X-Error-Message`` is ``Invalid credentials in Authorization header`` (huggingface_hub errors.py and its
  tests)
  stops the crawl: one error line naming where the token came from (never the token), and the finish
  reason ``invalid_token`` (so ``scrapy crawl``/``crawlall`` exit 1). The request itself fails with
  ``InvalidTokenError``.

Without a token the middleware is disabled (``NotConfigured``) and every request goes out anonymously.

Settings (read once): HFSCRAPER_HUB_ENDPOINT - the Hub's base URL; HFSCRAPER_HUB_TOKEN - the last-resort
token (a Secret; see hfscraper/config.py).

Stats: hfscraper/auth/sent - requests sent with the token; hfscraper/auth/withheld - requests to another
origin from which a copy of the token was removed; hfscraper/auth/invalid_token - 401 answers refusing it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import TYPE_CHECKING, Final, Self
from urllib.parse import urlsplit

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.defer import deferred_from_coro
from scrapy.utils.httpobj import urlparse_cached

from hfscraper import constants
from hfscraper.config import ConfigError, resolve_token, token_file_path
from hfscraper.hub import normalize_endpoint

if TYPE_CHECKING:
    from collections.abc import Mapping

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Headers, Response
    from scrapy.settings import BaseSettings

logger = logging.getLogger(__name__)

#: The finish reason of a crawl stopped because the Hub refused the token.
INVALID_TOKEN_REASON: Final = "invalid_token"
#: What the Hub says (``X-Error-Message``) when it refuses a token (huggingface_hub errors.py).
INVALID_CREDENTIALS: Final = "Invalid credentials in Authorization header"

_AUTHORIZATION: Final = b"Authorization"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class InvalidTokenError(IgnoreRequest):
    """The Hub refused the token (HTTP 401, invalid credentials); the crawl is being stopped.

    Its text names where the token came from, never the token.
    """


def origin_of(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of *url*, lower-cased, with the scheme's default port filled in.

    >>> origin_of("https://HuggingFace.co/api/models")
    ('https', 'huggingface.co', 443)
    >>> origin_of("http://127.0.0.1:8080") == origin_of("http://127.0.0.1:8080/x?y=1")
    True
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


def hub_refusal(status: int, headers: Headers | Mapping[bytes, bytes]) -> str | None:
    """Why the Hub refused a request, from its status and error headers (``X-Error-Code``, as huggingface_hub errors.py
    reads them), or None.

    ``invalid_token`` (401, invalid credentials), ``gated`` (401/403 ``X-Error-Code: GatedRepo``: a gated repo
    without granted access), ``repo_not_found`` (401/404 ``RepoNotFound``: missing, or private and not ours),
    ``disabled`` (403, access to the resource disabled).

    This is the hook for per-repo requests (files, trees): a gated repo without access is recorded as gated
    (its listing metadata is kept as it is, with its ``gated`` field; its files are skipped with this
    reason), not retried. 401 and 403 are not in RETRY_HTTP_CODES, so Scrapy never retries them.
    """
    if status not in (401, 403, 404):
        return None
    code = _header_text(headers, b"X-Error-Code")
    message = _header_text(headers, b"X-Error-Message")
    if status == 401 and INVALID_CREDENTIALS.lower() in message.lower():
        return INVALID_TOKEN_REASON
    if code == "GatedRepo" and status in (401, 403):
        return "gated"
    if code == "RepoNotFound":
        return "repo_not_found"
    if status == 403 and "disabled" in message.lower():
        return "disabled"
    return None


def _header_text(headers: Headers | Mapping[bytes, bytes], name: bytes) -> str:
    value = headers.get(name)
    return value.decode("latin-1").strip() if isinstance(value, bytes) else ""


def token_source(settings: BaseSettings | Mapping[str, object] | None, environ: Mapping[str, str] | None = None) -> str:
    """Where ``resolve_token`` found the token, for messages: ``HF_TOKEN``, the token file, or the settings."""
    env = os.environ if environ is None else environ
    if env.get("HF_TOKEN", "").strip():
        return "HF_TOKEN"
    path = token_file_path(env)
    try:
        if path.read_text(encoding="utf-8").strip():
            return f"the token file {path}"
    except (OSError, UnicodeDecodeError):
        pass
    return "hub.token of the settings file"


class HubAuthDownloaderMiddleware:
    """Adds the Hub token to requests for the Hub's origin as they are sent, and removes it afterwards."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        settings = crawler.settings
        token = resolve_token(settings)
        if token is None:
            logger.info("No Hub token (HF_TOKEN, the huggingface token file or hub.token): requests are anonymous")
            raise NotConfigured
        self._source = token_source(settings)
        endpoint = normalize_endpoint(settings.get("HFSCRAPER_HUB_ENDPOINT") or constants.HF_ENDPOINT)
        self.origin = origin_of(endpoint)
        try:
            self._bearer: bytes = b"Bearer " + token.reveal().encode("ascii")
        except UnicodeEncodeError:
            raise ConfigError(self._source, "the token must be ASCII text, as every Hub token is") from None
        self._closing = False
        self._close: object = None
        scheme, host, _ = self.origin
        if scheme != "https" and not _is_loopback(host):
            logger.warning(
                "The Hub endpoint %(endpoint)s is plain http: the token from %(source)s crosses the network "
                "unencrypted",
                {"endpoint": endpoint, "source": self._source},
            )
        logger.info(
            "Sending the Hub token from %(source)s to %(endpoint)s only", {"source": self._source, "endpoint": endpoint}
        )

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        return cls(crawler)

    def _stat(self, key: str) -> None:
        self.crawler.stats.inc_value(key)

    def _for_hub(self, request: Request) -> bool:
        parts = urlparse_cached(request)
        scheme = (parts.scheme or "").lower()
        return (scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)) == self.origin

    def _carries_token(self, request: Request) -> bool:
        return self._bearer in request.headers.getlist(_AUTHORIZATION)

    def process_request(self, request: Request) -> None:
        if self._for_hub(request):
            request.headers[_AUTHORIZATION] = self._bearer
            self._stat("hfscraper/auth/sent")
        elif self._carries_token(request):
            # Only a bug elsewhere (a copy made while the header was on) can bring it here.
            del request.headers[_AUTHORIZATION]
            self._stat("hfscraper/auth/withheld")
            logger.warning("Removed the Hub token from a request to another origin: %(url)s", {"url": request.url})

    def process_response(self, request: Request, response: Response) -> Response:
        sent = self._strip(request)
        if sent and response.status == 401 and hub_refusal(response.status, response.headers) == INVALID_TOKEN_REASON:
            self._refused(request)
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        self._strip(request)

    # -- internals ------------------------------------------------------------------------------------------

    def _strip(self, request: Request) -> bool:
        """Remove the token from *request*; True when it was there."""
        if not self._carries_token(request):
            return False
        del request.headers[_AUTHORIZATION]
        return True

    def _refused(self, request: Request) -> None:
        self._stat("hfscraper/auth/invalid_token")
        message = (
            f"the Hub refused the token from {self._source} (HTTP 401 {INVALID_CREDENTIALS}); "
            "renew it or unset it to crawl anonymously"
        )
        if not self._closing:
            self._closing = True
            logger.error("Stopping the crawl: %(message)s", {"message": message})
            # Not awaited: closing waits for the downloads in flight, this one included.
            self._close = deferred_from_coro(self.crawler.engine.close_spider_async(reason=INVALID_TOKEN_REASON))
        raise InvalidTokenError(message)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = [
    "INVALID_CREDENTIALS",
    "INVALID_TOKEN_REASON",
    "HubAuthDownloaderMiddleware",
    "InvalidTokenError",
    "hub_refusal",
    "origin_of",
    "token_source",
]
