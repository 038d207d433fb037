"""Run a real scrapyd (the venv's) on loopback for integration tests, and deploy to it as `make deploy` does.

    with run_scrapyd(tmp_path / "scrapyd", env=crawl_env(replica, out)) as server:
        deploy(server.url)                       # `make deploy SCRAPYD_URL=...`
        job = server.schedule("models", {"JOBDIR": "/abs/job"})
        server.wait(job)                         # the listjobs.json entry of the finished job
        server.log("models", job)                # the job's log (logs_dir/hfscraper/models/JOB.log)

scrapyd runs with its own scrapyd.conf in its working directory: bound to 127.0.0.1 on a free port, every
directory (eggs, logs, items, dbs) under that directory, a short poll interval so a scheduled job starts at
once. It is a session leader, so stopping it also ends any crawl it still runs.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "hfscraper"
VENV_BIN = Path(sys.executable).parent

# Never route loopback requests to a proxy the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ScrapydError(RuntimeError):
    """scrapyd did not start, refused a call, or a job did not end in time (the message carries its log)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrapyd_conf(workdir: Path, port: int) -> str:
    # jobstorage in SQLite, so listjobs.json is what a production server (README) would answer
    return (
        "[scrapyd]\n"
        "bind_address = 127.0.0.1\n"
        f"http_port = {port}\n"
        "poll_interval = 0.2\n"
        "max_proc = 2\n"
        f"eggs_dir = {workdir / 'eggs'}\n"
        f"logs_dir = {workdir / 'logs'}\n"
        f"items_dir = {workdir / 'items'}\n"
        f"dbs_dir = {workdir / 'dbs'}\n"
        "jobstorage = scrapyd.jobstorage.SqliteJobStorage\n"
    )


class ScrapydHandle:
    """A running scrapyd: its URL, its folders and its JSON API."""

    def __init__(self, url: str, workdir: Path, process: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.workdir = workdir
        self.process = process

    def call(self, endpoint: str, params: list[tuple[str, str]] | None = None, post: bool = False) -> dict[str, Any]:
        query = urllib.parse.urlencode(params or [])
        url = f"{self.url}/{endpoint}"
        if post:
            request = urllib.request.Request(url, data=query.encode(), method="POST")
        else:
            request = urllib.request.Request(f"{url}?{query}" if query else url)
        with _OPENER.open(request, timeout=30) as response:
            answer = json.loads(response.read())
        if answer.get("status") != "ok":
            raise ScrapydError(f"{endpoint} {params}: {answer}\n{self.stderr()}")
        return answer

    def schedule(self, spider: str, settings: dict[str, str]) -> str:
        params = [("project", PROJECT), ("spider", spider)]
        params += [("setting", f"{name}={value}") for name, value in settings.items()]
        return str(self.call("schedule.json", params, post=True)["jobid"])

    def cancel(self, job: str) -> dict[str, Any]:
        return self.call("cancel.json", [("project", PROJECT), ("job", job)], post=True)

    def jobs(self) -> dict[str, Any]:
        return self.call("listjobs.json", [("project", PROJECT)])

    def state(self, job: str) -> tuple[str, dict[str, Any]] | None:
        """("pending" | "running" | "finished", the job's entry), or None if scrapyd does not know it."""
        listing = self.jobs()
        for state in ("pending", "running", "finished"):
            for entry in listing[state]:
                if entry["id"] == job:
                    return state, entry
        return None

    def wait(self, job: str, *states: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until *job* is in one of *states* (default: finished); returns its listjobs.json entry."""
        wanted = states or ("finished",)
        deadline = time.monotonic() + timeout
        while True:
            found = self.state(job)
            if found and found[0] in wanted:
                return found[1]
            if time.monotonic() > deadline:
                raise ScrapydError(
                    f"job {job} is {found and found[0]}, not {wanted}, after {timeout:.0f}s\n{self.log_of(job)[-4000:]}"
                )
            time.sleep(0.1)

    def log_path(self, spider: str, job: str) -> Path:
        return self.workdir / "logs" / PROJECT / spider / f"{job}.log"

    def items_path(self, spider: str, job: str) -> Path:
        return self.workdir / "items" / PROJECT / spider / f"{job}.jl"

    def log(self, spider: str, job: str) -> str:
        path = self.log_path(spider, job)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def log_of(self, job: str) -> str:
        logs = list((self.workdir / "logs").rglob(f"{job}.log"))
        return logs[0].read_text(encoding="utf-8", errors="replace") if logs else ""

    def stderr(self) -> str:
        path = self.workdir / "scrapyd.stderr"
        return path.read_text(encoding="utf-8", errors="replace")[-4000:] if path.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is not None:
            return
        # scrapyd is its own session leader: the signal reaches it and any crawl it still runs
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=timeout)


@contextmanager
def run_scrapyd(workdir: Path, env: dict[str, str], ready_timeout: float = 30.0) -> Iterator[ScrapydHandle]:
    """Run the venv's `scrapyd` in *workdir* (its scrapyd.conf is written there) with *env* until the block exits.

    *env* is the whole environment scrapyd and so every job it runs gets: HF_ENDPOINT, HF_TOKEN and the like.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (workdir / "scrapyd.conf").write_text(scrapyd_conf(workdir, port), encoding="utf-8")
    with open(workdir / "scrapyd.stderr", "wb") as log:
        process = subprocess.Popen(
            [str(VENV_BIN / "scrapyd")],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = ScrapydHandle(f"http://127.0.0.1:{port}", workdir, process)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                handle.call("daemonstatus.json")
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    message = f"scrapyd did not start (exit code {process.poll()}): {exc}\n{handle.stderr()}"
                    raise ScrapydError(message) from exc
                time.sleep(0.1)
        yield handle
    finally:
        handle.stop()


def deploy(url: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`make deploy SCRAPYD_URL=url`, with this interpreter's venv (`-o install`: never pip inside the tests)."""
    command = ["make", "--no-print-directory", "-o", "install", "deploy", f"SCRAPYD_URL={url}"]
    command.append(f"VENV={VENV_BIN.parent}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKEFLAGS", "MFLAGS"))}
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
