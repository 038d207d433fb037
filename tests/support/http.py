"""A tiny HTTP client for tests: one request, no redirect following, no proxy, raw headers kept.

Tests of the replica need to see exactly what a server sent (a 307's ``Location``,
a HEAD's ``Content-Length``, a cut body), which higher-level clients hide.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urljoin, urlsplit


@dataclass
class Fetched:
    status: int
    headers: Message
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        return json.loads(self.body)

    def header_names(self) -> set[str]:
        return {name.lower() for name in self.headers}


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 30.0) -> Fetched:
    """One request; raises what ``http.client`` raises on a broken connection (reset, truncated body)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    try:
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        return Fetched(response.status, response.headers, body, url)
    finally:
        connection.close()


def follow(url: str, method: str = "GET", headers: dict[str, str] | None = None, max_hops: int = 5) -> list[Fetched]:
    """Follow redirects like a browser-grade client, dropping ``Authorization`` when the host changes.

    Returns every hop, the final response last.
    """
    hops: list[Fetched] = []
    current_headers = dict(headers or {})
    for _ in range(max_hops):
        response = fetch(url, method, current_headers)
        hops.append(response)
        location = response.header("Location")
        if response.status not in (301, 302, 303, 307, 308) or location is None:
            return hops
        target = urljoin(url, location)
        if urlsplit(target).netloc != urlsplit(url).netloc:
            current_headers = {k: v for k, v in current_headers.items() if k.lower() != "authorization"}
        url = target
    raise RuntimeError(f"more than {max_hops} redirects from {hops[0].url}")
