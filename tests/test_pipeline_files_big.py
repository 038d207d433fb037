"""A 200 MiB LFS file: streamed to disk with bounded memory, and never left half-written in an entity folder.

The crawl runs as a real `scrapy crawl` subprocess under a small wrapper that reports the child's peak resident
memory (`getrusage(RUSAGE_CHILDREN).ru_maxrss`, which covers that one child only).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfscraper.hub import entity_folder_name
from tests.support import report
from tests.support.crawl import REPO_ROOT, crawl, crawl_command, crawl_env, parse_stats
from tests.support.replica import ReplicaHandle, run_replica

MIB = 1 << 20
BIG_MIB = 200
#: Peak resident memory allowed to the whole crawl process (Python, Scrapy, Twisted, aiohttp and the download).
PEAK_LIMIT = 150 * 1000 * 1000
# Provenance off: its end-of-crawl rebuild runs in a child process (pyarrow and numpy: ~160 MB, whatever the
# files' size) that RUSAGE_CHILDREN would count; this test measures the crawl's streaming, and bench/graph.py
# measures the provenance rebuild.
SETTINGS = {
    "HFSCRAPER_FILES_MODELS": "*.safetensors,config.json",
    "HFSCRAPER_FILES_MAX_SIZE": str(300 * MIB),
    "HFSCRAPER_PROVENANCE_ENABLED": "false",
}
_PEAK_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "sys.stdout.write('peak_kib=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=2, datasets=0, spaces=0, seed=4,
                     big_file_mib=BIG_MIB) as hub:  # fmt: skip
        yield hub


def big_entity(replica: ReplicaHandle) -> tuple[dict[str, Any], dict[str, Any]]:
    entity = next(e for e in replica.truth["models"] if e["id"].startswith("big-files/"))
    return entity, next(f for f in entity["files"] if f["path"] == "model.safetensors")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while piece := handle.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


def test_a_200_mib_file_streams_with_bounded_memory(replica: ReplicaHandle, tmp_path: Path) -> None:
    entity, big = big_entity(replica)
    assert big["size"] == BIG_MIB * MIB and big["lfs"]
    out = tmp_path / "out"
    command = [sys.executable, "-c", _PEAK_WRAPPER, *crawl_command("models", out, settings=SETTINGS)]
    started = time.monotonic()
    proc = subprocess.run(
        command, cwd=REPO_ROOT, env=crawl_env(replica, out), capture_output=True, text=True, timeout=600, check=False
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    peak = int(proc.stdout.rsplit("peak_kib=", 1)[1]) * 1024
    stats = parse_stats(proc.stderr)
    assert stats["hfscraper/files/streamed"] == 1
    path = out / "models" / entity_folder_name(entity["id"]) / "model.safetensors"
    assert path.stat().st_size == big["size"] and sha256_of(path) == big["sha256"]
    report.record(
        f"files: a {BIG_MIB} MiB LFS file streamed in {elapsed:.1f} s (whole crawl); peak RSS of the crawl "
        f"process {peak / 1e6:.0f} MB (limit {PEAK_LIMIT / 1e6:.0f} MB)"
    )
    assert peak < PEAK_LIMIT, f"peak resident memory {peak / 1e6:.0f} MB"


def _part_sizes(partials: Path) -> list[int]:
    """Sizes of the partial downloads now in *partials* (small files are renamed away between listing and stat)."""
    sizes = []
    for part in partials.glob("*.part") if partials.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            sizes.append(part.stat().st_size)
    return sizes


def test_a_download_killed_midway_leaves_no_partial_file(replica: ReplicaHandle, tmp_path: Path) -> None:
    entity, big = big_entity(replica)
    out = tmp_path / "out"
    folder = out / "models" / entity_folder_name(entity["id"])
    partials = out / ".tmp"
    log = (tmp_path / "killed.log").open("wb")
    proc = subprocess.Popen(
        crawl_command("models", out, settings=SETTINGS), cwd=REPO_ROOT, env=crawl_env(replica, out),
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        caught = 0
        while time.monotonic() < deadline and proc.poll() is None:
            sizes = _part_sizes(partials)
            if sizes and max(sizes) > 10 * MIB:
                caught = max(sizes)
                break
            time.sleep(0.002)
        assert caught, "the crawl ended before the stream could be interrupted"
        proc.kill()  # kill -9, mid-stream
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    assert caught < big["size"]
    # The entity folder never saw the partial bytes: they stay in output_dir/.tmp until a run sweeps them.
    assert not (folder / "model.safetensors").exists()
    assert all(p.stat().st_size < big["size"] for p in partials.glob("*.part"))
    again = crawl(replica, "models", out, settings=SETTINGS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Removed 1 partial download(s) of earlier runs" in again.stderr
    assert list(partials.iterdir()) == []  # swept
    path = folder / "model.safetensors"
    assert path.stat().st_size == big["size"] and sha256_of(path) == big["sha256"]
    assert os.stat(path).st_nlink == 1
