"""The kubo RPC API (`/api/v0/...`) over aiohttp, and the `kubo` IPFS backend built on it.

Any node that serves the kubo RPC works: kubo itself, js-ipfs (what the tests run), or an IPFS Cluster peer's
kubo-compatible proxy (port 9095 by default), which pins cluster-wide on `dag/import` and `pin/add` with no
change here. `ipfshttpclient` is not used: it refuses every kubo since 0.8 and is unmaintained;
the few calls needed are plain HTTP.

What the client does, for every call:

- POST (the RPC refuses GET), arguments in the query string, files as `multipart/form-data` (field `file`),
  streamed from disk; no header but `User-Agent`, so no credential of any kind (the node is not the Hub).
- `cid-base=base32` for CIDv1 arguments and answers; CIDv0 stays base58btc (`Qm...`; js-ipfs refuses to write
  a v0 in base32). Every CID the node answers is parsed and compared as a CID (version, codec, multihash),
  never as text.
- Errors become `IpfsError` (node unreachable, timed out, an error answer with the node's own message, an
  answer that is not the expected JSON), `IpfsPinError` (pinning or unpinning failed, or `pin/ls` does not
  list a root afterwards) and `IpfsCidMismatchError` (the node's CID differs from ours). A connection
  refused or dropped before the answer is retried (`retries` times, one second apart); a timeout or
  an error answer is not.

`KuboBackend.add_car` is the primary path: `dag/import?pin-roots=true` of the CAR hfscraper wrote, then the
root the node pinned must equal ours, and `pin/ls?arg=<root>&type=recursive` must list it. `add_file` (`add`
with the profile's `cid-version`, `raw-leaves`, `chunker=size-N` and `hash`, `only-hash=true`) is a
cross-check, valid only where the node can build the profile's DAG: js-ipfs (and kubo before 0.35) put at
most 174 links in a file node, so for `unixfs-v1-2025` (1024 links) a file of more than 174 chunks gets
another DAG there (`node_builds_same_dag`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self
from urllib.parse import urlsplit

import aiohttp

from hfscraper import __version__
from hfscraper.exceptions import IpfsCidMismatchError, IpfsError, IpfsPinError
from hfscraper.ipfs.multiformats import CID, parse_cid

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

    from hfscraper.ipfs.profiles import Profile

logger = logging.getLogger(__name__)

DEFAULT_API = "http://127.0.0.1:5001"
#: Children per file node that every kubo-RPC node supports for `add` (kubo's default; js-ipfs's only value).
NODE_MAX_LINKS = 174
#: The most bytes of an RPC answer read (answers here are a few lines of JSON).
MAX_ANSWER = 16 * 1024 * 1024
#: Concurrent connections to the node.
MAX_CONNECTIONS = 8


def normalize_cid(text: str) -> str:
    """The canonical string of a CID (base58btc for v0, base32 for v1); ValueError when *text* is not one."""
    return str(parse_cid(text))


def same_block(a: str | CID, b: str | CID) -> bool:
    """True when two CIDs name the same block: same codec and multihash (`Qm...` equals its dag-pb CIDv1, which
    a node may print in place of a v0 when asked for base32)."""
    ca = a if isinstance(a, CID) else parse_cid(a)
    cb = b if isinstance(b, CID) else parse_cid(b)
    return (ca.codec, ca.multihash) == (cb.codec, cb.multihash)


def node_builds_same_dag(size: int, profile: Profile, node_max_links: int = NODE_MAX_LINKS) -> bool:
    """Whether a node whose file nodes hold at most *node_max_links* children builds the same DAG for a file
    of *size* bytes as *profile* (chunking and leaves are passed to `add`; the width cannot be)."""
    if profile.max_links == node_max_links:
        return True
    leaves = max(1, math.ceil(size / profile.chunk_size))
    return leaves <= min(profile.max_links, node_max_links)


def add_params(profile: Profile) -> dict[str, str]:
    """The `add` arguments that make a kubo-RPC node chunk and encode a file as *profile* does."""
    return {
        "cid-version": str(profile.cid_version),
        "raw-leaves": "true" if profile.raw_leaves else "false",
        "chunker": f"size-{profile.chunk_size}",
        "hash": "sha2-256",
    }


def _cid_base(cid: str | None) -> dict[str, str]:
    """`cid-base=base32`, except for CIDv0 arguments (js-ipfs cannot write a v0 in base32)."""
    if cid is not None and cid.startswith("Qm"):
        return {}
    return {"cid-base": "base32"}


def check_api_url(url: str) -> str:
    """An RPC base URL without `/api/v0` and trailing slash; ValueError for anything but http(s)://host[:port]."""
    url = url.strip().rstrip("/")
    if url.endswith("/api/v0"):
        url = url[: -len("/api/v0")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"not an IPFS RPC URL (http://host:port): {url!r}")
    if parts.username or parts.password:
        raise ValueError("an IPFS RPC URL must not carry credentials")
    return url


class KuboRpcClient:
    """A small async client of the kubo RPC API (see the module docstring).

    *api* is the node's RPC base URL (`http://127.0.0.1:5001`); *timeout* bounds one whole call (an upload
    included), *connect_timeout* the connection. Use `async with KuboRpcClient(...)`, or `close()` it.
    """

    def __init__(self, api: str, *, timeout: float = 600.0, connect_timeout: float = 10.0, retries: int = 2) -> None:
        self.api = check_api_url(api)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.retries = retries
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.connect_timeout),
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                headers={"User-Agent": f"hfscraper/{__version__}"},
                # Never a proxy from the environment: the node is addressed directly, as configured.
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the transport --------------------------------------------------------------------------------------

    async def call(
        self, command: str, params: Mapping[str, str] | None = None, *, file: Path | None = None
    ) -> list[Any]:
        """POST `/api/v0/<command>` and return the answer's JSON values (a streamed answer has one per line).

        *file* is sent as the multipart field `file`, read from disk as it is sent. Raises IpfsError.
        """
        url = f"{self.api}/api/v0/{command}"
        attempt = 0
        while True:
            try:
                return await self._post(command, url, params or {}, file)
            except TimeoutError as exc:  # not retried: a slow import would only start over
                raise self._transport_error(command, exc) from exc
            except aiohttp.ClientError as exc:
                retriable = isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError))
                if not retriable or attempt >= self.retries:
                    raise self._transport_error(command, exc) from exc
                attempt += 1
                logger.warning(
                    "IPFS node %(api)s: %(command)s failed (%(error)s); retrying (%(n)d of %(max)d)",
                    {"api": self.api, "command": command, "error": _describe(exc), "n": attempt, "max": self.retries},
                )
                await asyncio.sleep(1.0)

    async def _post(self, command: str, url: str, params: Mapping[str, str], file: Path | None) -> list[Any]:
        with contextlib.ExitStack() as stack:
            data: aiohttp.FormData | None = None
            if file is not None:
                data = aiohttp.FormData()
                handle = stack.enter_context(open(file, "rb"))  # noqa: SIM115 - aiohttp reads it in a thread
                data.add_field("file", handle, filename=file.name, content_type="application/octet-stream")
            async with self._client().post(url, params=dict(params), data=data) as response:
                body = await response.content.read(MAX_ANSWER + 1)
                status = response.status
        if len(body) > MAX_ANSWER:
            raise IpfsError(f"{command}: the node's answer is larger than {MAX_ANSWER} bytes", api=self.api)
        values = _json_values(body)
        if status >= 400:
            raise IpfsError(
                f"the IPFS node at {self.api} refused {command} (HTTP {status}): {_message(values, body)}",
                api=self.api,
                status=status,
            )
        if values is None:
            raise IpfsError(
                f"the IPFS node at {self.api} answered {command} with something that is not JSON: {body[:200]!r}",
                api=self.api,
                status=status,
            )
        for value in values:
            if isinstance(value, dict) and value.get("Type") == "error" and "Message" in value:
                raise IpfsError(f"the IPFS node at {self.api} failed {command}: {value['Message']}", api=self.api)
        return values

    def _transport_error(self, command: str, exc: BaseException) -> IpfsError:
        if isinstance(exc, asyncio.TimeoutError):
            return IpfsError(
                f"the IPFS node at {self.api} did not answer {command} within {self.timeout:g}s "
                "(HFSCRAPER_IPFS_TIMEOUT)",
                api=self.api,
            )
        if isinstance(exc, aiohttp.ClientConnectorError):
            return IpfsError(
                f"cannot reach the IPFS node at {self.api} ({_describe(exc)}): is its daemon running, and is "
                "HFSCRAPER_IPFS_API its RPC address?",
                api=self.api,
            )
        return IpfsError(f"{command} on the IPFS node at {self.api} failed: {_describe(exc)}", api=self.api)

    # -- the calls ------------------------------------------------------------------------------------------

    async def version(self) -> dict[str, Any]:
        values = await self.call("version")
        value = values[-1] if values else None
        if not isinstance(value, dict) or "Version" not in value:
            raise IpfsError(f"the node at {self.api} answered version without a Version: {value!r}", api=self.api)
        return value

    async def add(self, path: Path, params: Mapping[str, str], *, pin: bool = False, only_hash: bool = False) -> str:
        """`add` one file with *params* (see `add_params`); the CID the node gave it."""
        query = {
            **params,
            "pin": "true" if pin else "false",
            "only-hash": "true" if only_hash else "false",
            "progress": "false",
            "wrap-with-directory": "false",
            **({"cid-base": "base32"} if params.get("cid-version") == "1" else {}),
        }
        values = await self.call("add", query, file=path)
        hashes = [v["Hash"] for v in values if isinstance(v, dict) and isinstance(v.get("Hash"), str)]
        if len(hashes) != 1:
            raise IpfsError(f"add {path.name}: expected one CID from the node, got {values!r}", api=self.api)
        return _checked_cid(hashes[0], "add", self.api)

    async def dag_import(self, car: Path, *, root: str | None = None, pin_roots: bool = True) -> list[tuple[str, str]]:
        """`dag/import` a CAR; `(root CID, pin error message or "")` per root the node reports. *root*, the CAR's
        root when known, only chooses the answer's CID base."""
        params = {"pin-roots": "true" if pin_roots else "false", **_cid_base(root)}
        values = await self.call("dag/import", params, file=car)
        roots: list[tuple[str, str]] = []
        for value in values:
            root = value.get("Root") if isinstance(value, dict) else None
            if root is None:
                continue  # stats lines
            try:
                cid = root["Cid"]["/"]
            except (KeyError, TypeError):
                raise IpfsError(f"dag/import: an unusable root in the node's answer: {value!r}", api=self.api) from None
            roots.append((_checked_cid(cid, "dag/import", self.api), str(root.get("PinErrorMsg") or "")))
        return roots

    async def pin_add(self, cid: str) -> None:
        await self.call("pin/add", {"arg": cid, "recursive": "true", **_cid_base(cid)})

    async def pin_rm(self, cid: str) -> None:
        await self.call("pin/rm", {"arg": cid, "recursive": "true", **_cid_base(cid)})

    async def pin_ls(self, cid: str) -> bool:
        """Whether *cid* is pinned recursively. A node answers an unpinned CID with an error saying so."""
        try:
            values = await self.call("pin/ls", {"arg": cid, "type": "recursive", **_cid_base(cid)})
        except IpfsError as exc:
            if exc.status is not None and "not pinned" in exc.message:
                return False
            raise
        wanted = parse_cid(cid)
        for value in values:
            keys = value.get("Keys") if isinstance(value, dict) else None
            if isinstance(keys, dict):
                candidates = list(keys)
            elif isinstance(value, dict) and isinstance(value.get("Cid"), str):  # one streamed entry
                candidates = [value["Cid"]]
            else:
                continue
            for key in candidates:
                with contextlib.suppress(ValueError):
                    if same_block(key, wanted):
                        return True
        return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, ConnectionRefusedError):
            return "connection refused"
        return exc.os_error.strerror or str(exc.os_error) if exc.os_error else str(exc)
    return str(exc) or type(exc).__name__


def _json_values(body: bytes) -> list[Any] | None:
    """The JSON value of *body*, or one per line of a streamed answer; None when it is not JSON."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return []
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None


def _message(values: list[Any] | None, body: bytes) -> str:
    for value in values or ():
        if isinstance(value, dict) and isinstance(value.get("Message"), str):
            return value["Message"]
    return body[:200].decode("utf-8", "replace").strip() or "(empty answer)"


def _checked_cid(text: str, command: str, api: str) -> str:
    try:
        return normalize_cid(text)
    except ValueError:
        raise IpfsError(f"{command}: the node answered {text!r}, which is not a CID", api=api) from None


class KuboBackend:
    """`ipfs.backend = "kubo"`: CARs imported and pinned on a node through its kubo RPC API."""

    name: ClassVar[str] = "kubo"

    def __init__(self, client: KuboRpcClient) -> None:
        self.client = client
        self.api = client.api

    @classmethod
    def from_settings(cls, settings: BaseSettings, **_: Any) -> Self:
        return cls(
            KuboRpcClient(
                settings.get("HFSCRAPER_IPFS_API") or DEFAULT_API,
                timeout=settings.getfloat("HFSCRAPER_IPFS_TIMEOUT", 600.0),
                connect_timeout=settings.getfloat("HFSCRAPER_IPFS_CONNECT_TIMEOUT", 10.0),
            )
        )

    def describe(self) -> str:
        return f"kubo RPC at {self.api}"

    async def open(self) -> dict[str, Any]:
        return await self.client.version()

    async def close(self) -> None:
        await self.client.close()

    async def version(self) -> dict[str, Any]:
        return await self.client.version()

    async def add_car(self, car_path: Path, root: str, entity: str | None = None) -> str:
        roots = await self.client.dag_import(car_path, root=root, pin_roots=True)
        if len(roots) != 1:
            raise IpfsPinError(
                f"dag/import of {car_path.name}: the node reported {len(roots)} roots, expected 1",
                cid=root, entity=entity, api=self.api,
            )  # fmt: skip
        got, pin_error = roots[0]
        if not same_block(got, root):
            raise IpfsCidMismatchError(
                f"the node's root for {car_path.name} differs", expected=root, got=got, entity=entity, api=self.api
            )
        if pin_error:
            raise IpfsPinError(
                f"the node imported {car_path.name} but did not pin its root: {pin_error}",
                cid=root, entity=entity, api=self.api,
            )  # fmt: skip
        if not await self.client.pin_ls(root):
            raise IpfsPinError(
                "the node does not list the imported root as pinned (pin/ls)", cid=root, entity=entity, api=self.api
            )
        return root

    async def add_pack(self, car_path: Path, roots: list[str]) -> dict[str, str]:
        """`dag/import` a CAR with several roots (a pack); {root: why it is not pinned} for the roots that are not
        (empty: every root imported, pinned and listed by `pin/ls`). IpfsError when the import itself fails."""
        answered = await self.client.dag_import(car_path, root=roots[0] if roots else None, pin_roots=True)
        reported = {parse_cid(cid).bytes: error for cid, error in answered}
        problems: dict[str, str] = {}
        for root in roots:
            error = reported.get(parse_cid(root).bytes)
            if error is None:
                # js-ipfs reports only some roots of a CAR with several: its blocks were imported all the same
                try:
                    await self.client.pin_add(root)
                except IpfsError as exc:
                    problems[root] = f"dag/import of {car_path.name}: the root is not pinned ({exc.message})"
                    continue
                error = ""
            if error:
                problems[root] = f"the node imported {car_path.name} but did not pin the root: {error}"
            elif not await self.client.pin_ls(root):
                problems[root] = "the node does not list the imported root as pinned (pin/ls)"
        return problems

    async def add_file(self, path: Path, profile: Profile) -> str:
        return await self.client.add(path, add_params(profile), only_hash=True)

    async def pin(self, root: str, entity: str | None = None) -> None:
        try:
            await self.client.pin_add(root)
        except IpfsError as exc:
            raise IpfsPinError(exc.message, cid=root, entity=entity, api=self.api, status=exc.status) from exc
        if not await self.client.pin_ls(root):
            raise IpfsPinError(
                "pin/add succeeded but pin/ls does not list the root", cid=root, entity=entity, api=self.api
            )

    async def unpin(self, root: str, entity: str | None = None) -> None:
        try:
            await self.client.pin_rm(root)
        except IpfsError as exc:
            if exc.status is not None and "not pinned" in exc.message:
                return  # already gone: what unpinning wants
            raise IpfsPinError(exc.message, cid=root, entity=entity, api=self.api, status=exc.status) from exc

    async def is_pinned(self, root: str) -> bool:
        return await self.client.pin_ls(root)
