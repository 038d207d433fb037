"""Start a real redis-server (Debian's package) on loopback, for the distributed-crawl tests.

    with run_redis(tmp_dir) as server:
        server.url        # "redis://127.0.0.1:PORT/0"
        server.client()   # a redis-py client (bytes responses)

The server listens on 127.0.0.1 only, on a free port, keeps no data on disk (no RDB snapshots, no AOF), runs in
*tmp_dir* (its log goes there), and is stopped (SIGTERM, then SIGKILL) when the block ends. It is never the system
service. `redis_available()` says whether the binary is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis


def redis_available() -> bool:
    return shutil.which("redis-server") is not None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port = port
        self.process = process
        self.log = log
        self.url = f"redis://127.0.0.1:{port}/0"

    def client(self) -> redis.Redis[Any]:
        return redis.Redis.from_url(self.url)


@contextmanager
def run_redis(tmp_dir: Path, *, ready_timeout: float = 20.0) -> Iterator[RedisServer]:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    log = tmp_dir / "redis.log"
    for _ in range(3):  # a free port can be taken between the probe and the bind: try another
        port = _free_port()
        command = [
            "redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
            "--dir", str(tmp_dir), "--logfile", str(log), "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=tmp_dir)
        server = RedisServer(port, process, log)
        client = server.client()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        client.close()
        if process.poll() is None:
            break
    else:
        raise RuntimeError(f"redis-server did not start: {log.read_text(errors='replace') if log.exists() else ''}")
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
