"""Hub-shaped responses: the headers, error bodies and redirect texts huggingface.co sends.

Handlers build a :class:`Reply` (status, headers, body or a file slice) rather
than an aiohttp response, so that the fault injector can rewrite or break it and
one writer (``server.send``) puts it on the wire.  Header names and values follow
the recorded responses (``tests/data/hub_fixtures/``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"

# The 2026 value (2025 cassettes list the X-Xet-Access-Token family instead of X-Linked-*).
EXPOSE_HEADERS = (
    "X-Repo-Commit,X-Request-Id,X-Error-Code,X-Error-Message,X-Total-Count,ETag,Link,Accept-Ranges,"
    "Content-Range,X-Linked-Size,X-Linked-ETag,X-Xet-Hash"
)

# Sent by the Hub origin on every response (recorded in every cassette and capture).
COMMON_HEADERS = (
    ("Access-Control-Allow-Origin", "https://huggingface.co"),
    ("Access-Control-Expose-Headers", EXPOSE_HEADERS),
    ("Access-Control-Max-Age", "86400"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("X-Powered-By", "huggingface-moon"),
)


@dataclass
class Reply:
    """A response before it is written.

    Either ``body`` holds the bytes, or ``file`` plus ``start``/``end`` name a slice
    of a repo file to stream.  ``kind`` says what it is, for the fault injector:
    ``listing``, ``json`` (other API JSON), ``tree``, ``file``, ``redirect``,
    ``error``, ``page``.
    """

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    kind: str = "page"
    file: Any = None
    start: int = 0
    end: int = 0
    has_cursor: bool = False

    @property
    def length(self) -> int:
        return self.end - self.start if self.file is not None else len(self.body)

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        lowered = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != lowered]
        self.headers.append((name, value))


def dumps(payload: Any) -> bytes:
    """Compact JSON with raw UTF-8, like the Hub's Express ``JSON.stringify``."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def weak_etag(body: bytes) -> str:
    """Express's weak ETag: ``W/"<length hex>-<27 chars of base64 sha1>"``."""
    digest = base64.b64encode(hashlib.sha1(body).digest()).decode("ascii")[:27]
    return f'W/"{len(body):x}-{digest}"'


def request_id() -> str:
    """``Root=1-<8 hex epoch>-<24 hex>;<uuid4>``, the Hub's (AWS X-Ray style) request id."""
    return f"Root=1-{int(time.time()):08x}-{os.urandom(12).hex()};{uuid.uuid4()}"


def json_reply(
    payload: Any, status: int = 200, kind: str = "json", headers: list[tuple[str, str]] | None = None
) -> Reply:
    body = dumps(payload)
    all_headers = [("Content-Type", JSON_TYPE), ("ETag", weak_etag(body)), ("Vary", "Origin")]
    all_headers.extend(headers or [])
    return Reply(status=status, headers=all_headers, body=body, kind=kind)


def error_reply(
    status: int,
    message: str,
    *,
    code: str | None = None,
    header_message: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    """A Hub error: ``{"error": message}`` plus ``X-Error-Code`` / ``X-Error-Message`` headers."""
    body = dumps({"error": message})
    all_headers = [("Content-Type", JSON_TYPE), ("ETag", weak_etag(body)), ("Vary", "Origin")]
    if code is not None:
        all_headers.append(("X-Error-Code", code))
    all_headers.append(("X-Error-Message", header_message if header_message is not None else message))
    all_headers.extend(headers or [])
    return Reply(status=status, headers=all_headers, body=body, kind="error")


def redirect_reply(status: int, location: str, headers: list[tuple[str, str]] | None = None) -> Reply:
    """The Hub's (Express) redirect: plain-text body naming the target, ``Vary: Origin, Accept``."""
    word = {301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect", 308: "Permanent Redirect"}[status]
    body = f"{word}. Redirecting to {location}".encode()
    all_headers = [("Content-Type", TEXT_TYPE), ("Location", location), ("Vary", "Origin, Accept")]
    all_headers.extend(headers or [])
    return Reply(status=status, headers=all_headers, body=body, kind="redirect")


def html_reply(status: int, html: str) -> Reply:
    return Reply(status=status, headers=[("Content-Type", HTML_TYPE), ("Vary", "Origin")], body=html.encode("utf-8"))


# Bodies for injected failures.  The 5xx page is what CloudFront in front of the Hub answers when the origin fails.
def cloudfront_error_page(status: int) -> str:
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">\n'
        '<HTML><HEAD><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n'
        "<TITLE>ERROR: The request could not be satisfied</TITLE>\n"
        f"</HEAD><BODY>\n<H1>{status} ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n"
        '<HR noshade size="1px">\n'
        "We can't connect to the server for this app or website at this time. There might be too much traffic or a "
        'configuration error. Try again later, or contact the app or website owner.\n<BR clear="all">\n'
        '<HR noshade size="1px">\n<PRE>\nGenerated by cloudfront (CloudFront)\n</PRE>\n</BODY></HTML>'
    )


SERVER_ERROR_MESSAGES = {
    500: "Internal Error - We're working hard to fix this as soon as possible!",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

HTML_200_PAGE = (
    '<!doctype html>\n<html class="">\n<head>\n<meta charset="utf-8" />\n'
    "<title>Hugging Face - The AI community building the future.</title>\n</head>\n<body>\n"
    "<main><h1>We had to rate limit your IP or something went wrong</h1>\n"
    "<p>Please retry in a moment. If the problem persists, check https://status.huggingface.co</p></main>\n"
    "</body>\n</html>\n"
)

NOT_FOUND_PAGE = (
    '<!doctype html>\n<html>\n<head><meta charset="utf-8" /><title>404 - Hugging Face</title></head>\n'
    "<body><h1>404</h1><p>Sorry, we can't find the page you are looking for.</p></body>\n</html>\n"
)

HOME_PAGE = (
    '<!doctype html>\n<html>\n<head><meta charset="utf-8" /><title>Hugging Face (hfscraper replica)</title></head>\n'
    "<body><h1>Hub replica</h1><p>A local, synthetic stand-in for the Hugging Face Hub.</p></body>\n</html>\n"
)
