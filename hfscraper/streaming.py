"""`BodyStreamer`: stream a large download to disk with bounded memory, hashing it on the way.

Scrapy holds every response body in memory (and DOWNLOAD_MAXSIZE defaults to 1 GiB), which does not fit model
weights. `hfscraper.pipelines.files` hands the signed CDN URL of an LFS file above its stream threshold to a
`BodyStreamer` instead: one aiohttp GET that writes the body in pieces of at most `CHUNK_SIZE` bytes to a
temporary file, hashing each piece (SHA-256 and, when the size is known, the git blob SHA-1) in a worker
thread. Memory per stream is about one piece plus aiohttp's read buffer, whatever the file's size.

Credentials never travel this way: a streamer has no token, sets no `Authorization` header and refuses any URL
on the Hub's own origin (`HubOriginError`), so a download that needs the token can only go through Scrapy's
downloader, where `HubAuthDownloaderMiddleware` decides. aiohttp itself drops headers it was given on a redirect
to another host, and this one is given none that matter.

At most `max_streams` downloads run at once (the others wait their turn).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import IO, Final

import aiohttp

from hfscraper.middlewares.auth import origin_of
from hfscraper.repofiles import FileHasher

#: Bytes handed to the disk-and-hash thread at a time (and about the most a stream holds in memory).
CHUNK_SIZE: Final = 1 << 20
#: Redirects a CDN URL may take before the bytes.
MAX_REDIRECTS: Final = 5


class StreamError(Exception):
    """A stream that did not deliver the expected bytes.

    Attributes:
        reason: a short slug for stats (`http_<status>`, `size_mismatch`, `too_long`, `network`).
        retry: whether another attempt may succeed.
    """

    def __init__(self, reason: str, detail: str, *, retry: bool) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.retry = retry


class HubOriginError(ValueError):
    """A URL on the Hub's own origin was handed to the streamer (which never carries the token)."""


def _write(handle: IO[bytes], hasher: FileHasher, pieces: list[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)
        handle.write(piece)


class BodyStreamer:
    """Streams GET bodies to files (see the module docstring).

    Attributes:
        hub_origin: `(scheme, host, port)` of the Hub; URLs on it are refused.
    """

    def __init__(
        self,
        *,
        hub_origin: tuple[str, str, int | None],
        user_agent: str,
        max_streams: int = 4,
        read_timeout: float = 180.0,
        trust_env: bool = False,
    ) -> None:
        self.hub_origin = hub_origin
        self.user_agent = user_agent
        self.read_timeout = read_timeout
        self.trust_env = trust_env
        self._semaphore = asyncio.Semaphore(max_streams)
        self._session: aiohttp.ClientSession | None = None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=self.read_timeout),
                trust_env=self.trust_env,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def check_url(self, url: str) -> None:
        """Raise HubOriginError for a URL on the Hub's origin (the streamer must never need the token)."""
        if origin_of(url) == self.hub_origin:
            raise HubOriginError(f"refusing to stream {url}: it is on the Hub's origin, which needs the token")

    async def download(self, url: str, destination: Path, *, expected_size: int) -> FileHasher:
        """GET *url* into *destination* (created or truncated); returns the hashes of what was written.

        Raises StreamError when the status is not 200 or the body is not exactly *expected_size* bytes
        (*destination* then holds a partial body: the caller deletes it), HubOriginError for a Hub URL.
        """
        self.check_url(url)
        async with self._semaphore:
            session = await self._client()
            headers = {"Accept-Encoding": "identity", "User-Agent": self.user_agent}
            try:
                async with session.get(url, headers=headers, allow_redirects=True, max_redirects=MAX_REDIRECTS) as r:
                    # A redirect that ended on the Hub's origin was followed without a token (none is ever set).
                    if r.status != 200:
                        retry = r.status >= 500 or r.status in (403, 408, 429)  # 403: an expired signed URL
                        raise StreamError(f"http_{r.status}", f"HTTP {r.status} from {r.url.host}", retry=retry)
                    if r.content_length is not None and r.content_length != expected_size:
                        raise StreamError(
                            "size_mismatch",
                            f"Content-Length {r.content_length}, expected {expected_size}",
                            retry=True,
                        )
                    return await self._copy(r, destination, expected_size)
            except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
                raise StreamError("network", f"{type(exc).__name__}: {exc}", retry=True) from None

    async def _copy(self, response: aiohttp.ClientResponse, destination: Path, expected_size: int) -> FileHasher:
        hasher = FileHasher(expected_size, git=False)  # LFS files are checked by their SHA-256
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as handle:
            pending: list[bytes] = []
            buffered = 0
            received = 0
            async for piece in response.content.iter_chunked(CHUNK_SIZE):
                received += len(piece)
                if received > expected_size:
                    raise StreamError("too_long", f"more than the expected {expected_size} bytes", retry=True)
                pending.append(piece)
                buffered += len(piece)
                if buffered >= CHUNK_SIZE:
                    await asyncio.to_thread(_write, handle, hasher, pending)
                    pending, buffered = [], 0
            if pending:
                await asyncio.to_thread(_write, handle, hasher, pending)
        if hasher.size != expected_size:
            raise StreamError("size_mismatch", f"{hasher.size} bytes, expected {expected_size}", retry=True)
        return hasher


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
