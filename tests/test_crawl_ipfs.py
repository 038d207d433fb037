"""Content addressing end to end: real `scrapy crawl` runs against the Hub replica, with the embedded backend and
with the kubo backend on a real IPFS node (js-ipfs, or kubo with HFSCRAPER_TEST_KUBO).

Done means: every entity folder's `ipfs_cid.txt` is the CID `ipfs add -r --hidden` gives the folder (without
`ipfs_cid.txt`), its CAR reads back to the folder's bytes, and on a node every CAR imports and pins under exactly
that root.
"""

from __future__ import annotations

import asyncio
import http.client
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfscraper.hub import entity_folder_name
from hfscraper.ipfs import directory_cid, read_car, unpack_car
from hfscraper.ipfs.kubo import KuboRpcClient
from hfscraper.ipfs.pins import write_entity_car
from hfscraper.pipelines.ipfs import CID_FILE
from hfscraper.state import StateStore, state_file_path
from tests.support.crawl import REPO_ROOT, _scrapy_command, crawl, public
from tests.support.ipfs_data import tree_files
from tests.support.ipfs_node import IpfsNode, ipfs_node_fixture
from tests.support.js_oracle import ipfs_car_unpack, require_js
from tests.support.replica import ReplicaHandle, replica_fixture

TOKEN = "hf_" + "ipfsCanaryTokenNeverSentToTheNode0123"  # built at run time: not a secret-scanner match

replica = replica_fixture(models=40, datasets=10, spaces=10, seed=11, approved_tokens=[TOKEN])
ipfs_node = ipfs_node_fixture()


def folders(output: Path, type_folder: str = "models") -> list[Path]:
    return sorted(p for p in (output / type_folder).iterdir() if p.is_dir())


def tree_bytes(root: Path, leave_out: frozenset[str] = frozenset()) -> dict[str, bytes]:
    out = {}
    for top, _, names in os.walk(root):
        for name in names:
            rel = os.path.relpath(os.path.join(top, name), root).replace(os.sep, "/")
            if rel not in leave_out:
                out[rel] = Path(top, name).read_bytes()
    return out


def status_output(output: Path, *options: str) -> str:
    command = [*_scrapy_command(), "status", *options, "-s", f"HFSCRAPER_OUTPUT_DIR={output}"]
    command += ["-s", f"HFSCRAPER_STATE_DIR={output.parent / 'state'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HFSCRAPER_", "HF_")) or k == "HFSCRAPER_IN_NETNS"}
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    return proc.stdout


def status_json(output: Path) -> dict[str, Any]:
    return json.loads(status_output(output, "--json"))


def offline_command(output: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`scrapy ARGS` (car, verify) on an output folder, bytes out."""
    command = [*_scrapy_command(), *args, "-s", f"HFSCRAPER_OUTPUT_DIR={output}"]
    command += ["-s", f"HFSCRAPER_STATE_DIR={output.parent / 'state'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HFSCRAPER_", "HF_")) or k == "HFSCRAPER_IN_NETNS"}
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, timeout=120, check=False)


def entity_car(out: Path, folder_name: str, dest: Path) -> Path:
    """The entity's own CAR, cut from its pack or built from its folder (what `scrapy car` writes), at *dest*."""
    repo_id = json.loads((out / "models" / folder_name / "metadata.json").read_text(encoding="utf-8"))["id"]
    store = StateStore(state_file_path(out.parent / "state", out), create=False)
    try:
        with open(dest, "wb") as f:
            write_entity_car(store, out / "car", "model", repo_id, f, output_dir=out)
    finally:
        store.close()
    return dest


PACK_LAYOUT = {"HFSCRAPER_IPFS_CAR_LAYOUT": "pack"}


def test_embedded_backend(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = crawl(replica, "models", out, settings=PACK_LAYOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    n = len(public(replica.truth, "model"))
    assert result.stat("hfscraper/ipfs/entities") == n and result.stat("hfscraper/ipfs/pin/pinned") == n
    assert result.stat("hfscraper/ipfs/failed") is None
    entity_folders = folders(out)
    assert len(entity_folders) == n
    (tmp_path / "unpacked").mkdir()
    with_files = 0
    for folder in entity_folders:
        root = (folder / CID_FILE).read_text(encoding="ascii")
        assert root.endswith("\n")
        root = root.strip()
        assert root == directory_cid(folder, exclude={CID_FILE}), folder.name
        car = entity_car(out, folder.name, tmp_path / f"{folder.name}.car")
        roots, _ = read_car(car)
        assert roots == [root]
        unpack_car(car, tmp_path / "unpacked" / folder.name)
        assert tree_bytes(tmp_path / "unpacked" / folder.name) == tree_bytes(folder, frozenset({CID_FILE}))
        with_files += len(tree_bytes(folder)) > 2
    assert with_files, "the replica's models should have downloaded files besides metadata.json"
    # the CARs are packs (files crawls reach the stage an item at a time: the small packs are merged at the end)
    packs = list((out / "car" / "packs" / "models").iterdir())
    assert len(packs) == 1 and not (out / "car" / "models").exists()
    assert set(read_car(packs[0])[0]) == {(f / CID_FILE).read_text(encoding="ascii").strip() for f in entity_folders}

    report = status_json(out)
    assert report["ipfs"]["cids"]["folders"] == n and report["ipfs"]["cids"]["folders_by_profile"] == {
        "unixfs-v1-2025": n
    }
    assert report["ipfs"]["cids"]["files"] == sum(len(tree_bytes(f, frozenset({CID_FILE}))) for f in entity_folders)
    assert report["ipfs"]["pins"] == {"embedded": {"pinned": n, "of_deleted_entities": 0}}
    text = status_output(out)
    files = report["ipfs"]["cids"]["files"]
    assert f"CIDs: {files} files, {n} entity folders ({n} unixfs-v1-2025)" in text
    assert f"pins on embedded: {n}" in text
    assert report["ipfs"]["cars"] == {"on_demand": 0, "in_packs": n, "own_files": 0}

    # a second pass over every entity (deltafetch off) rewrites no ipfs_cid.txt and no CAR
    before = {p: p.stat().st_mtime_ns for p in [*out.rglob(CID_FILE), *(out / "car").rglob("*.car")]}
    again = crawl(replica, "models", out, settings={"DELTAFETCH_ENABLED": "false", **PACK_LAYOUT})
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stat("hfscraper/ipfs/car/unchanged") == n and again.stat("hfscraper/ipfs/pin/unchanged") == n
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_default_layout_writes_no_car_and_scrapy_car_builds_it(
    replica: ReplicaHandle, ipfs_node: IpfsNode, tmp_path: Path
) -> None:
    out, reference = tmp_path / "filestore" / "out", tmp_path / "entity" / "out"
    result = crawl(replica, "models", out)
    assert result.returncode == 0, result.stderr[-3000:]
    n = len(public(replica.truth, "model"))
    assert result.stat("hfscraper/ipfs/car/on_demand") == n and result.stat("hfscraper/ipfs/pin/pinned") == n
    assert result.stat("hfscraper/ipfs/car/written") is None and not (out / "car").exists()  # no CAR byte
    report = status_json(out)
    assert report["ipfs"]["pins"] == {"embedded": {"pinned": n, "of_deleted_entities": 0}}
    assert report["ipfs"]["cars"] == {"on_demand": n, "in_packs": 0, "own_files": 0}
    assert f"CARs: {n} built from their folders on demand" in status_output(out)
    # the same Hub crawled with one CAR per entity: `scrapy car` gives those CARs byte for byte
    entity = crawl(replica, "models", reference, settings={"HFSCRAPER_IPFS_CAR_LAYOUT": "entity"})
    assert entity.returncode == 0, entity.stderr[-3000:]
    entity_folders = folders(out)
    assert len(entity_folders) == n and [f.name for f in folders(reference)] == [f.name for f in entity_folders]
    for folder in entity_folders:
        car = entity_car(out, folder.name, tmp_path / f"{folder.name}.car")
        assert car.read_bytes() == (reference / "car" / "models" / f"{folder.name}.car").read_bytes(), folder.name
    folder = max(entity_folders, key=lambda f: len(tree_bytes(f)))  # one with downloaded files
    repo_id = json.loads((folder / "metadata.json").read_bytes())["id"]
    root = (folder / CID_FILE).read_text(encoding="ascii").strip()
    piped = offline_command(out, "car", "model", repo_id)
    assert piped.returncode == 0 and piped.stderr.decode() == f"{root}\n"
    assert piped.stdout == (reference / "car" / "models" / f"{folder.name}.car").read_bytes()
    (tmp_path / "piped.car").write_bytes(piped.stdout)
    # ipfs-car reads it back to the folder's bytes, and a node imports it and pins exactly the root
    require_js()
    ipfs_car_unpack(tmp_path / "piped.car", tmp_path / "unpacked")
    assert tree_files(tmp_path / "unpacked") == {k: v for k, v in tree_files(folder).items() if k != CID_FILE}

    async def import_it(client: KuboRpcClient) -> list[tuple[str, str]]:
        return await client.dag_import(tmp_path / "piped.car", root=root)

    assert node_call(ipfs_node, import_it) == [(root, "")]

    # a damaged metadata.json: no CAR of the recorded root any more; `scrapy car` refuses, `scrapy verify` says so
    metadata = folder / "metadata.json"
    damaged = metadata.read_bytes().rstrip()
    assert damaged.endswith(b"}")
    metadata.write_bytes(damaged[:-1] + b" }\n")  # still the entity's JSON, not its bytes
    for options in ([], ["-o", str(tmp_path / "refused.car")]):
        refused = offline_command(out, "car", "model", repo_id, *options)
        message = refused.stderr.decode()
        assert refused.returncode == 1 and not refused.stdout and message.count("\n") == 1, message
        assert message.startswith(f"hfscraper: no CAR of model {repo_id}: ") and "Traceback" not in message
        assert f"no longer hashes to its recorded root {root}" in message and "re-crawl" in message
    assert not (tmp_path / "refused.car").exists()
    verified = offline_command(out, "verify", "--json")
    assert verified.returncode == 1
    problems = json.loads(verified.stdout)["problems"]
    assert [(p["id"], p["kind"]) for p in problems] == [(repo_id, "cid")], problems
    assert "its CAR, built from the folder, is gone until a re-crawl" in problems[0]["problem"]


class _RecordingProxy(http.server.BaseHTTPRequestHandler):
    """Forwards every request to the IPFS node and records what the crawler sent (path, headers, body)."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)
    seen: list[dict[str, Any]] = []  # noqa: RUF012

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self) -> None:
        body = self._body()
        self.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "connection", "host")
        }
        headers["Content-Length"] = str(len(body))
        connection = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            status, content_type = response.status, response.getheader("Content-Type", "application/json")
        finally:
            connection.close()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = _forward  # noqa: N815
    do_GET = _forward  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def node_proxy(ipfs_node: IpfsNode) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    host, port = ipfs_node.api_url.removeprefix("http://").rsplit(":", 1)
    handler = type("Proxy", (_RecordingProxy,), {"upstream": (host, int(port)), "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.seen
    finally:
        server.shutdown()
        server.server_close()


def node_call(node: IpfsNode, fn: Any) -> Any:
    async def go() -> Any:
        async with KuboRpcClient(node.api_url, timeout=120) as client:
            return await fn(client)

    return asyncio.run(go())


def test_kubo_backend_on_a_real_node(
    replica: ReplicaHandle, ipfs_node: IpfsNode, node_proxy: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    proxy_url, seen = node_proxy
    out = tmp_path / "out"
    settings = {"HFSCRAPER_IPFS_BACKEND": "kubo", "HFSCRAPER_IPFS_API": proxy_url, "HFSCRAPER_IPFS_VERIFY_ADD": "true"}
    result = crawl(replica, "models", out, settings=settings, env_overrides={"HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr[-3000:]
    n = len(public(replica.truth, "model"))
    assert result.stat("hfscraper/ipfs/pin/pinned") == n and result.stat("hfscraper/ipfs/failed") is None
    assert result.stat("hfscraper/ipfs/verify/matched") == result.stat("hfscraper/ipfs/files")
    entity_folders = folders(out)
    assert len(entity_folders) == n

    # every folder's root is pinned on the node, and importing its CAR again gives exactly ipfs_cid.txt
    roots = {f.name: (f / CID_FILE).read_text(encoding="ascii").strip() for f in entity_folders}
    assert all(roots[name] == directory_cid(out / "models" / name, exclude={CID_FILE}) for name in roots)

    async def check(client: KuboRpcClient) -> tuple[list[bool], list[str]]:
        pinned = [await client.pin_ls(root) for root in roots.values()]
        imported = []
        for name, root in roots.items():
            car = entity_car(out, name, out.parent / f"{name}.car")
            ((got, pin_error),) = await client.dag_import(car, root=root)
            assert pin_error == ""
            imported.append(got)
        return pinned, imported

    pinned, imported = node_call(ipfs_node, check)
    assert all(pinned)
    assert imported == list(roots.values())
    keys = ipfs_node.rpc("pin/ls", type="recursive", **{"cid-base": "base32"})["Keys"]
    assert set(roots.values()) <= set(keys)

    # the crawler sent the node only POSTs to the RPC, and never the Hub token (the node is not the Hub)
    assert seen and all(r["method"] == "POST" and r["path"].startswith("/api/v0/") for r in seen)
    commands = {r["path"].split("?")[0] for r in seen}
    assert {"/api/v0/version", "/api/v0/dag/import", "/api/v0/pin/ls", "/api/v0/add"} <= commands
    for request in seen:
        assert TOKEN not in request["path"]
        assert not any(TOKEN in value for value in request["headers"].values())
        assert TOKEN.encode() not in request["body"]
        assert not {k.lower() for k in request["headers"]} & {"authorization", "cookie"}

    report = status_json(out)
    assert report["ipfs"]["pins"] == {"kubo": {"pinned": n, "of_deleted_entities": 0}}


def test_kubo_unpins_entities_the_hub_deleted(ipfs_node: IpfsNode, tmp_path: Path) -> None:
    from tests.support.replica import run_replica

    out = tmp_path / "out"
    settings = {
        "HFSCRAPER_IPFS_BACKEND": "kubo", "HFSCRAPER_IPFS_API": ipfs_node.api_url,
        "HFSCRAPER_IPFS_UNPIN_DELETED": "true", "HFSCRAPER_FILES_ENABLED": "false",
    }  # fmt: skip
    with run_replica(tmp_dir=tmp_path / "replica", models=30, datasets=1, spaces=1, seed=23) as hub:
        first = crawl(hub, "models", out, settings=settings)
        assert first.returncode == 0, first.stderr[-3000:]
        ids = sorted(e["id"] for e in public(hub.truth, "model"))
        gone = ids[:3]
        roots = {
            i: (out / "models" / entity_folder_name(i) / CID_FILE).read_text(encoding="ascii").strip() for i in ids
        }
        hub.mutate("model", delete=gone)
        second = crawl(hub, "models", out, settings=settings)
        assert second.returncode == 0, second.stderr[-3000:]
        assert second.stat("hfscraper/state/tombstoned") == len(gone)

    async def pinned(client: KuboRpcClient) -> dict[str, bool]:
        return {i: await client.pin_ls(root) for i, root in roots.items()}

    state = node_call(ipfs_node, pinned)
    assert {i for i, is_pinned in state.items() if not is_pinned} == set(gone)
    report = status_json(out)
    assert report["ipfs"]["pins"] == {"kubo": {"pinned": len(ids) - len(gone), "of_deleted_entities": 0}}


def test_a_node_that_does_not_answer_stops_the_crawl(replica: ReplicaHandle, tmp_path: Path) -> None:
    from tests.support.ipfs_node import free_port

    port = free_port()
    settings = {
        "HFSCRAPER_IPFS_BACKEND": "kubo", "HFSCRAPER_IPFS_API": f"http://127.0.0.1:{port}",
        "HFSCRAPER_IPFS_CONNECT_TIMEOUT": "2",
    }  # fmt: skip
    result = crawl(replica, "models", tmp_path / "out", settings=settings)
    assert result.returncode == 1
    assert result.stat("finish_reason") == "ipfs_unavailable"
    assert f"cannot reach the IPFS node at http://127.0.0.1:{port} (connection refused)" in result.stderr
    assert result.stat("item_scraped_count") is None
