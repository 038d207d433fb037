"""Unit tests of the files stage's disk rules and of the streamer (no crawl; see test_pipeline_files.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.pipelines.files import list_entity_folder, place_file, prune_entity_folder, sweep_temp_dir
from hfscraper.repofiles import UnsafePathError
from hfscraper.streaming import CHUNK_SIZE, BodyStreamer, HubOriginError, StreamError

# -- placing a verified file -----------------------------------------------------------------------------------


def _tmp_file(directory: Path, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{os.getpid()}-1.part"
    path.write_bytes(data)
    return path


def test_place_file_creates_sub_folders(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "o__m"
    folder.mkdir(parents=True)
    tmp = _tmp_file(tmp_path / ".tmp", b"{}")
    target = place_file(folder, ("1_Pooling", "config.json"), tmp)
    assert target == folder / "1_Pooling" / "config.json" and target.read_bytes() == b"{}"
    assert not tmp.exists()


def test_place_file_never_passes_a_symlinked_folder(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "models" / "o__m"
    folder.mkdir(parents=True)
    (folder / "sub").symlink_to(outside, target_is_directory=True)
    tmp = _tmp_file(tmp_path / ".tmp", b"x")
    with pytest.raises(UnsafePathError) as caught:
        place_file(folder, ("sub", "config.json"), tmp)
    assert caught.value.reason == "symlink"
    assert list(outside.iterdir()) == []


def test_place_file_replaces_a_symlink_not_its_target(tmp_path: Path) -> None:
    outside = tmp_path / "victim.txt"
    outside.write_bytes(b"precious")
    folder = tmp_path / "models" / "o__m"
    folder.mkdir(parents=True)
    (folder / "config.json").symlink_to(outside)
    place_file(folder, ("config.json",), _tmp_file(tmp_path / ".tmp", b"new"))
    assert outside.read_bytes() == b"precious"
    assert not (folder / "config.json").is_symlink() and (folder / "config.json").read_bytes() == b"new"


def test_place_file_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    folder = tmp_path / "e"
    folder.mkdir()
    (folder / "sub").write_bytes(b"a file where a folder should be")
    with pytest.raises(UnsafePathError) as caught:
        place_file(folder, ("sub", "x.txt"), _tmp_file(tmp_path / ".tmp", b"x"))
    assert caught.value.reason == "not_a_folder"


def test_place_file_refuses_an_entity_folder_swapped_for_a_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "models" / "o__m"
    folder.parent.mkdir()
    folder.symlink_to(outside, target_is_directory=True)  # after the stage checked the folder
    tmp = _tmp_file(tmp_path / ".tmp", b"x")
    with pytest.raises(UnsafePathError) as caught:
        place_file(folder, ("config.json",), tmp)
    assert caught.value.reason == "outside_folder"
    assert list(outside.iterdir()) == []


# -- what a folder holds ---------------------------------------------------------------------------------------


def test_list_entity_folder_names_what_is_not_the_crawls_own(tmp_path: Path) -> None:
    folder = tmp_path / "e"
    (folder / "sub" / "deep").mkdir(parents=True)
    for name in ("metadata.json", "ipfs_cid.txt", f"{TEMP_PREFIX}9-1-1.part"):
        (folder / name).write_bytes(b"crawl's own")
    (folder / "README.md").write_bytes(b"12345")
    (folder / "sub" / "deep" / "config.json").write_bytes(b"{}")
    (folder / "link").symlink_to(tmp_path)  # listed, never followed
    assert list_entity_folder(folder) == {
        "README.md": 5, "sub/": None, "sub/deep/": None, "sub/deep/config.json": 2, "link": None,
    }  # fmt: skip
    assert list_entity_folder(tmp_path / "e" / "sub" / "deep") == {"config.json": 2}


# -- pruning ---------------------------------------------------------------------------------------------------


def test_prune_keeps_the_crawls_files_and_the_kept_ones(tmp_path: Path) -> None:
    folder = tmp_path / "e"
    (folder / "old" / "deep").mkdir(parents=True)
    (folder / "keep").mkdir()
    for name in ("metadata.json", "preview_info.json", "ipfs_cid.txt", "tombstone.json", f"{TEMP_PREFIX}9-1-1.part"):
        (folder / name).write_bytes(b"crawl's own")
    (folder / "README.md").write_bytes(b"kept")
    (folder / "keep" / "config.json").write_bytes(b"kept")
    (folder / "stale.txt").write_bytes(b"gone")
    (folder / "old" / "deep" / "x.bin").write_bytes(b"gone")
    (folder / "link").symlink_to(tmp_path)  # a planted symlink is removed, never followed
    removed = prune_entity_folder(folder, {"README.md", "keep/config.json"})
    assert removed == 3
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    assert left == sorted(
        ["README.md", "keep", "keep/config.json", "metadata.json", "preview_info.json", "ipfs_cid.txt",
         "tombstone.json", f"{TEMP_PREFIX}9-1-1.part"]
    )  # fmt: skip
    assert tmp_path.exists()


def test_sweep_removes_partial_downloads_of_dead_processes_only(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f"{dead_pid}-3.part").write_bytes(b"partial")
    (tmp_path / f"{os.getpid()}-4.part").write_bytes(b"mine, in progress")
    (tmp_path / f"{os.getppid()}-5.part").write_bytes(b"a live process's")
    (tmp_path / "other.txt").write_bytes(b"not ours")
    assert sweep_temp_dir(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{os.getpid()}-4.part", f"{os.getppid()}-5.part", "other.txt"]
    )


# -- the streamer ----------------------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


DATA = os.urandom(3 * CHUNK_SIZE + 12345)


def test_stream_writes_and_hashes_the_body_without_credentials(tmp_path: Path) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        response = web.StreamResponse()
        response.content_length = len(DATA)
        await response.prepare(request)
        for start in range(0, len(DATA), 100_000):
            await response.write(DATA[start : start + 100_000])
        return response

    async def go() -> None:
        async with _server(handler) as url:
            streamer = BodyStreamer(hub_origin=("http", "127.0.0.1", 1), user_agent="test-agent")
            try:
                hasher = await streamer.download(url + "/blob", tmp_path / "out", expected_size=len(DATA))
            finally:
                await streamer.close()
        assert hasher.sha256 == hashlib.sha256(DATA).hexdigest() and hasher.size == len(DATA)

    _run(go())
    assert (tmp_path / "out").read_bytes() == DATA
    assert "Authorization" not in seen[0] and seen[0]["User-Agent"] == "test-agent"
    assert seen[0]["Accept-Encoding"] == "identity"


@pytest.mark.parametrize(
    ("body", "declared", "reason"),
    [
        (DATA[:-1], None, "size_mismatch"),  # one byte short, no Content-Length
        (DATA + b"x", None, "too_long"),  # longer than promised
        (DATA, len(DATA) - 1, "size_mismatch"),  # the server declares another size
    ],
)
def test_stream_refuses_a_body_of_the_wrong_size(
    tmp_path: Path, body: bytes, declared: int | None, reason: str
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if declared is not None:
            response.content_length = declared
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(body[: declared] if declared is not None else body)
        return response

    async def go() -> None:
        async with _server(handler) as url:
            streamer = BodyStreamer(hub_origin=("http", "127.0.0.1", 1), user_agent="t")
            try:
                with pytest.raises(StreamError) as caught:
                    await streamer.download(url + "/blob", tmp_path / "out", expected_size=len(DATA))
            finally:
                await streamer.close()
        assert caught.value.reason == reason and caught.value.retry

    _run(go())


def test_stream_reports_http_errors(tmp_path: Path) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=403, text="expired")

    async def go() -> None:
        async with _server(handler) as url:
            streamer = BodyStreamer(hub_origin=("http", "127.0.0.1", 1), user_agent="t")
            try:
                with pytest.raises(StreamError) as caught:
                    await streamer.download(url + "/blob", tmp_path / "out", expected_size=5)
            finally:
                await streamer.close()
        assert caught.value.reason == "http_403" and caught.value.retry  # a signed URL that expired: resolve again

    _run(go())


def test_stream_refuses_the_hub_origin(tmp_path: Path) -> None:
    streamer = BodyStreamer(hub_origin=("https", "huggingface.co", 443), user_agent="t")
    with pytest.raises(HubOriginError):
        _run(streamer.download("https://HuggingFace.co:443/gpt2/resolve/main/x", tmp_path / "o", expected_size=1))
    streamer.check_url("https://cdn-lfs.hf.co/x")  # another host: fine
    streamer.check_url("http://huggingface.co/x")  # another scheme (so another port): fine
