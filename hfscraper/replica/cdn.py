"""Helpers for the replica's CDN origin: signed URLs and byte ranges.

The Hub answers ``/resolve/`` of an LFS file with a 302 to a signed, expiring
URL on another host (``https://us.aws.cdn.hf.co/xet-bridge-us/{repo _id}/{sha256}
?...&Expires=...&Signature=...``, tests/data/hub_fixtures).  The replica's CDN origin
listens on another loopback address and refuses (403) a URL whose signature is
wrong or whose ``Expires`` has passed, so a client that edits, caches past expiry
or forges such URLs fails the way it would against the real CDN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote, quote_plus

CDN_PREFIX = "/xet-bridge-us/"


class UrlSigner:
    """HMAC-SHA256 over path, expiry and the requested content disposition."""

    def __init__(self, secret: bytes, ttl: int = 3600) -> None:
        self.secret = secret
        self.ttl = ttl

    @classmethod
    def for_seed(cls, seed: int, ttl: int = 3600) -> UrlSigner:
        # Derived from the seed: a URL stays valid until it expires even across a replica restart, as on the real CDN.
        return cls(hashlib.sha256(f"hfscraper-replica-cdn:{seed}".encode()).digest(), ttl)

    def signature(self, path: str, expires: int, disposition: str) -> str:
        message = f"{path}\n{expires}\n{disposition}".encode()
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def sign(self, base_url: str, path: str, filename: str, now: float | None = None) -> str:
        expires = int(now if now is not None else time.time()) + self.ttl
        safe_name = filename.rsplit("/", 1)[-1]
        disposition = f"inline; filename*=UTF-8''{quote(safe_name, safe='')}; filename=\"{safe_name}\";"
        signature = self.signature(path, expires, disposition)
        query = (
            f"X-Xet-Cas-Uid=public&response-content-disposition={quote_plus(disposition, safe='*')}"
            f"&Expires={expires}&Signature={signature}"
        )
        return f"{base_url}{path}?{query}"

    def check(
        self, path: str, expires: str | None, disposition: str, signature: str | None, now: float | None = None
    ) -> str | None:
        """``None`` when the URL is valid, else the reason it is refused."""
        if not expires or not signature:
            return "Missing Expires or Signature query parameter"
        try:
            expiry = int(expires)
        except ValueError:
            return "Malformed Expires"
        expected = self.signature(path, expiry, disposition)
        if not hmac.compare_digest(expected, signature):
            return "Invalid signature"
        if (now if now is not None else time.time()) > expiry:
            return "Request has expired"
        return None


def access_denied_xml(reason: str) -> bytes:
    """The body CloudFront/S3 send with a 403 on a bad signed URL."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>{reason}</Message></Error>'
    ).encode()


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """Parse a single ``Range: bytes=...`` against a size.

    Returns ``(start, end_exclusive)``, ``None`` to serve the whole body (no or
    unsupported header, as RFC 9110 allows), or ``"unsatisfiable"``.

    >>> parse_range("bytes=0-0", 10)
    (0, 1)
    >>> parse_range("bytes=5-", 10)
    (5, 10)
    >>> parse_range("bytes=-3", 10)
    (7, 10)
    >>> parse_range("bytes=10-", 10)
    'unsatisfiable'
    >>> parse_range("bytes=0-1,4-5", 10) is None
    True
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            suffix = int(last)
            if suffix <= 0 or size == 0:
                return "unsatisfiable"
            return (max(0, size - suffix), size)
        start = int(first)
        end = int(last) if last != "" else size - 1
    except ValueError:
        return None
    if start < 0:
        return None
    if start >= size:
        return "unsatisfiable"
    if end < start:
        return None
    return (start, min(end, size - 1) + 1)
