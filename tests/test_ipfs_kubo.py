"""The kubo RPC client and the `kubo` backend against a real IPFS node (js-ipfs, or kubo with HFSCRAPER_TEST_KUBO).

The node runs offline inside the test's loopback-only network namespace (tests/support/ipfs_node.py); the
tests that need it skip with the reason where it cannot run (and fail under CI).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfscraper.exceptions import HfScraperError, IpfsCidMismatchError, IpfsError, IpfsPinError
from hfscraper.ipfs import PROFILES, directory_cid, file_cid, write_car
from hfscraper.ipfs.backends import BACKENDS, EmbeddedBackend, IpfsBackend, build_backend
from hfscraper.ipfs.kubo import (
    KuboBackend,
    KuboRpcClient,
    add_params,
    check_api_url,
    node_builds_same_dag,
    normalize_cid,
    same_block,
)
from hfscraper.ipfs.multiformats import CID, DAG_PB, RAW, parse_cid
from hfscraper.ipfs.profiles import KUBO_CIDV1, UNIXFS_V0_2015, UNIXFS_V1_2025
from tests.support.ipfs_node import IpfsNode, free_port, ipfs_node_fixture

ipfs_node = ipfs_node_fixture()

MIB = 1024 * 1024


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def data(size: int, seed: int = 0) -> bytes:
    """Deterministic, incompressible test bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "metadata.json").write_text('{"id": "org/model"}\n')
    (root / ".gitattributes").write_bytes(b"*.bin filter=lfs\n")  # hidden: `ipfs add -r --hidden` keeps it
    (root / "README.md").write_bytes(data(300_000, 1))
    (root / "sub" / "weights.bin").write_bytes(data(1 * MIB + 17, 2))
    (root / "empty").mkdir()
    return root


async def with_backend(node: IpfsNode, fn: Any) -> Any:
    backend = KuboBackend(KuboRpcClient(node.api_url, timeout=120))
    try:
        return await fn(backend)
    finally:
        await backend.close()


# -- without a node -------------------------------------------------------------------------------------------


def test_exception_hierarchy_and_messages() -> None:
    assert issubclass(IpfsPinError, IpfsError) and issubclass(IpfsError, HfScraperError)
    assert issubclass(IpfsCidMismatchError, IpfsError)
    error = IpfsPinError("not pinned", cid="bafyx", entity="model:a/b", api="http://127.0.0.1:5001")
    assert str(error) == "not pinned (entity model:a/b, cid bafyx)" and error.api == "http://127.0.0.1:5001"
    mismatch = IpfsCidMismatchError("root differs", expected="bafya", got="bafyb", entity="model:a/b")
    assert (mismatch.expected, mismatch.got, mismatch.cid) == ("bafya", "bafyb", None)
    assert "computed bafya, the node answered bafyb" in str(mismatch)


def test_cid_normalisation() -> None:
    v1 = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    v0 = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert normalize_cid("B" + v1[1:].upper()) == v1  # multibase base32 upper case
    assert normalize_cid(" " + v0) == v0
    # a CIDv0 and its dag-pb CIDv1 name the same block (a node may print one for the other); a raw block with the
    # same digest does not
    parsed = parse_cid(v0)
    as_v1 = str(CID(1, DAG_PB, parsed.multihash, parsed.hash_code, parsed.digest))
    as_raw = str(CID(1, RAW, parsed.multihash, parsed.hash_code, parsed.digest))
    assert as_v1.startswith("bafybei") and as_v1 != v0
    assert same_block(v0, as_v1) and not same_block(v0, as_raw)
    with pytest.raises(ValueError):
        normalize_cid("not-a-cid")


def test_api_url_checks() -> None:
    assert check_api_url("http://127.0.0.1:5001/") == "http://127.0.0.1:5001"
    assert check_api_url("http://127.0.0.1:5001/api/v0") == "http://127.0.0.1:5001"
    for bad in ("ftp://x", "127.0.0.1:5001", "http://user:pw@127.0.0.1:5001", "http://h:1/?a=b"):
        with pytest.raises(ValueError):
            check_api_url(bad)


def test_add_params_and_width_rule() -> None:
    assert add_params(UNIXFS_V1_2025) == {
        "cid-version": "1", "raw-leaves": "true", "chunker": "size-1048576", "hash": "sha2-256",
    }  # fmt: skip
    assert add_params(UNIXFS_V0_2015)["cid-version"] == "0" and add_params(UNIXFS_V0_2015)["raw-leaves"] == "false"
    assert add_params(KUBO_CIDV1)["chunker"] == "size-262144"
    # 174 links per node on the node's side: the same DAG up to 174 chunks for the 1024-link profile, always else
    assert node_builds_same_dag(174 * MIB, UNIXFS_V1_2025)
    assert not node_builds_same_dag(174 * MIB + 1, UNIXFS_V1_2025)
    assert node_builds_same_dag(10**12, UNIXFS_V0_2015) and node_builds_same_dag(0, UNIXFS_V1_2025)


def test_scheme_map() -> None:
    assert set(BACKENDS) == {"embedded", "kubo"}
    from scrapy.settings import Settings

    kubo = build_backend("kubo", Settings({"HFSCRAPER_IPFS_API": "http://127.0.0.1:9095", "HFSCRAPER_IPFS_TIMEOUT": 5}))
    assert isinstance(kubo, KuboBackend) and isinstance(kubo, IpfsBackend) and kubo.api == "http://127.0.0.1:9095"
    assert kubo.client.timeout == 5.0
    assert isinstance(build_backend("embedded", Settings()), EmbeddedBackend)
    with pytest.raises(IpfsError, match="unknown IPFS backend 'ipfs-cluster' \\(known: embedded, kubo\\)"):
        build_backend("ipfs-cluster", Settings())


def test_unreachable_node_is_a_clear_error() -> None:
    port = free_port()

    async def go() -> None:
        async with KuboRpcClient(f"http://127.0.0.1:{port}", retries=1, connect_timeout=2) as client:
            await client.version()

    with pytest.raises(IpfsError) as info:
        run(go())
    message = str(info.value)
    assert f"cannot reach the IPFS node at http://127.0.0.1:{port} (connection refused)" in message
    assert "HFSCRAPER_IPFS_API" in message


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in that records what a client sends (never an IPFS node: only for what goes on the wire)."""

    seen: list[dict[str, Any]] = []  # noqa: RUF012
    reply: tuple[int, bytes] = (200, b'{"Version": "0.0.0-recorder"}')

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
        status, payload = self.reply
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append({"method": "GET", "path": self.path})
        self.send_error(405)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"seen": [], "reply": _Recorder.reply})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_requests_are_posts_without_credentials(recorder: tuple[str, type[_Recorder]], tmp_path: Path) -> None:
    url, handler = recorder
    (tmp_path / "f").write_bytes(b"hello")
    os.environ["HF_TOKEN_CANARY_NOT_SENT"] = "1"

    async def go() -> None:
        async with KuboRpcClient(url) as client:
            await client.version()
            handler.reply = (
                200,
                b'{"Name": "f", "Hash": "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"}',
            )
            await client.add(tmp_path / "f", add_params(UNIXFS_V1_2025), only_hash=True)

    try:
        run(go())
    finally:
        os.environ.pop("HF_TOKEN_CANARY_NOT_SENT")
    assert [r["method"] for r in handler.seen] == ["POST", "POST"]
    assert handler.seen[0]["path"] == "/api/v0/version"
    add = handler.seen[1]
    assert add["path"].startswith("/api/v0/add?") and "chunker=size-1048576" in add["path"]
    assert "only-hash=true" in add["path"] and "cid-base=base32" in add["path"]
    assert add["headers"]["Content-Type"].startswith("multipart/form-data")
    assert b'name="file"' in add["body"] and b"hello" in add["body"]
    for request in handler.seen:
        names = {name.lower() for name in request["headers"]}
        assert not names & {"authorization", "cookie", "proxy-authorization"}
        assert request["headers"]["User-Agent"].startswith("hfscraper/")


def test_error_answers_are_errors(recorder: tuple[str, type[_Recorder]]) -> None:
    url, handler = recorder
    handler.reply = (500, b'{"Message": "blockstore: block not found", "Code": 0, "Type": "error"}')

    async def go() -> None:
        async with KuboRpcClient(url) as client:
            await client.pin_add("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")

    with pytest.raises(IpfsError, match=r"refused pin/add \(HTTP 500\): blockstore: block not found") as info:
        run(go())
    assert info.value.status == 500
    handler.reply = (200, b"<html>not the RPC</html>")

    async def version() -> None:
        async with KuboRpcClient(url) as client:
            await client.version()

    with pytest.raises(IpfsError, match="something that is not JSON"):
        run(version())


# -- against the real node ------------------------------------------------------------------------------------


def test_version(ipfs_node: IpfsNode) -> None:
    version = run(with_backend(ipfs_node, lambda b: b.version()))
    assert isinstance(version["Version"], str) and version["Version"]


SIZES = [0, 1, 262_144, 262_145, 1_048_576, 1_048_577, 3 * MIB + 5]


@pytest.mark.parametrize("profile", list(PROFILES))
def test_add_gives_our_file_cid(ipfs_node: IpfsNode, tmp_path: Path, profile: str) -> None:
    """`add` with the profile's parameters (only-hash) on the node equals `file_cid`, across chunk boundaries."""
    chosen = PROFILES[profile]
    paths = []
    for size in SIZES:
        path = tmp_path / f"f{size}"
        path.write_bytes(data(size, size))
        paths.append(path)

    async def go(backend: KuboBackend) -> list[str]:
        return [await backend.add_file(p, chosen) for p in paths]

    theirs = run(with_backend(ipfs_node, go))
    ours = [file_cid(p, chosen) for p in paths]
    assert theirs == ours
    assert all(node_builds_same_dag(size, chosen) for size in SIZES)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_dag_import_pins_our_root_then_unpin(ipfs_node: IpfsNode, tmp_path: Path, profile: str) -> None:
    tree = make_tree(tmp_path / "entity")
    car = tmp_path / "entity.car"
    root = write_car(tree, car, profile)
    assert root == directory_cid(tree, profile)

    async def go(backend: KuboBackend) -> tuple[str, bool, bool, bool]:
        pinned = await backend.add_car(car, root, "model:org/model")
        listed = await backend.is_pinned(root)
        await backend.unpin(root, "model:org/model")
        after = await backend.is_pinned(root)
        await backend.unpin(root)  # unpinning what is not pinned is not an error
        await backend.pin(root)  # the blocks are still on the node: pin/add works without a CAR
        again = await backend.is_pinned(root)
        await backend.unpin(root)
        return pinned, listed, after, again

    pinned, listed, after, again = run(with_backend(ipfs_node, go))
    assert pinned == root and listed and not after and again
    # the node lists the root under the same CID (pin/ls, compared as text once normalised)
    keys = ipfs_node.rpc("pin/ls", type="recursive", **({"cid-base": "base32"} if root.startswith("b") else {}))
    assert not any(normalize_cid(k) == root for k in (keys or {}).get("Keys", {}))


def test_root_mismatch_is_an_error(ipfs_node: IpfsNode, tmp_path: Path) -> None:
    """A CAR whose root is not the CID computed for the folder is refused, never accepted."""
    tree = make_tree(tmp_path / "entity")
    car = tmp_path / "entity.car"
    write_car(tree, car)
    other = directory_cid(tree, "kubo-cidv1")  # the same folder under another profile: another DAG, another root

    async def go(backend: KuboBackend) -> None:
        await backend.add_car(car, other, "model:org/model")

    with pytest.raises(IpfsCidMismatchError) as info:
        run(with_backend(ipfs_node, go))
    assert info.value.expected == other and info.value.got == directory_cid(tree)
    assert "model:org/model" in str(info.value)


def test_node_error_message_reaches_the_caller(ipfs_node: IpfsNode) -> None:
    async def go(backend: KuboBackend) -> None:
        await backend.client.call("pin/ls", {"arg": "this-is-not-a-cid", "type": "recursive"})

    with pytest.raises(IpfsError) as info:
        run(with_backend(ipfs_node, go))
    assert info.value.status is not None and info.value.status >= 400
    assert f"the IPFS node at {ipfs_node.api_url} refused pin/ls" in str(info.value)


def test_embedded_and_kubo_agree(ipfs_node: IpfsNode, tmp_path: Path) -> None:
    """The embedded backend accepts the CAR for its own root and refuses another, as the node does."""
    tree = make_tree(tmp_path / "entity")
    car = tmp_path / "entity.car"
    root = write_car(tree, car)
    embedded = EmbeddedBackend()
    assert run(embedded.add_car(car, root)) == root
    with pytest.raises(IpfsCidMismatchError):
        run(embedded.add_car(car, directory_cid(tree, "unixfs-v0-2015")))
    assert run(with_backend(ipfs_node, lambda b: b.add_car(car, root))) == root
    assert json.loads(json.dumps(run(embedded.version())))["Backend"] == "embedded"
