"""Start the Hub replica as a real subprocess for integration tests.

    with run_replica(models=300, datasets=100, spaces=100, seed=1) as hub:
        hub.url           # "http://127.0.0.1:PORT" (the Hub origin; use as HF_ENDPOINT)
        hub.cdn_url       # "http://127.0.0.2:PORT" (where LFS downloads are redirected)
        hub.datasets_server_url  # "http://127.0.0.1:PORT2" (the dataset viewer; HFSCRAPER_DATASETS_SERVER)
        hub.truth         # the ground truth (parsed lazily from --truth)
        hub.requests()    # the request log, list of dicts (see hfscraper/replica/requestlog.py)
        hub.set_faults([{"kind": "5xx", "rate": 0.5, "path": "^/api/models"}])
        hub.reset_quota()
        hub.mutate("model", touch=[...], delete=[...], restore=[...])

Options (keyword arguments) map to the command line: ``models``, ``datasets``,
``spaces``, ``seed``, ``latency_ms``, ``quota_api``, ``quota_resolvers``,
``quota_pages``, ``quota_window``, ``faults`` (list of ``"KIND:RATE[:REGEX]"``
strings or rule dicts), ``approved_tokens`` (list), ``hostile_ids`` (bool), ``hostile_files`` (bool),
``hostile_cards`` (bool),
``big_file_mib``, ``cdn_host``, ``cdn_port``, ``cdn_ttl``, ``port``,
``extra_args`` (list), plus ``tmp_dir`` (where truth, request log and stderr go;
default: a fresh temporary directory), ``ready_timeout`` (seconds, default 120),
``env`` (extra environment variables for the child) and ``truth`` (default True;
False skips writing the ground truth, which takes most of the start-up time of a
100,000-entity hub).

For pytest, ``replica_fixture(scope="module", **options)`` makes a fixture::

    replica = replica_fixture(models=300, datasets=100, spaces=100)

    def test_something(replica): ...
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

_FLAGS = {
    "models": "--models",
    "datasets": "--datasets",
    "spaces": "--spaces",
    "seed": "--seed",
    "latency_ms": "--latency-ms",
    "quota_api": "--quota-api",
    "quota_resolvers": "--quota-resolvers",
    "quota_pages": "--quota-pages",
    "quota_window": "--quota-window",
    "big_file_mib": "--big-file-mib",
    "cdn_host": "--cdn-host",
    "cdn_port": "--cdn-port",
    "viewer_port": "--viewer-port",
    "cdn_ttl": "--cdn-ttl",
    "port": "--port",
    "host": "--host",
}
_DEFAULTS = {"models": 300, "datasets": 100, "spaces": 100, "seed": 0, "port": 0}

# Never route loopback requests to a proxy the environment may name.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ReplicaError(RuntimeError):
    """The replica did not start (the message carries its stderr)."""


class ReplicaHandle:
    """A running replica: its URLs, ground truth, request log and admin endpoints."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], tmp_dir: Path, truth_path: Path) -> None:
        self.url = url
        self.process = process
        self.tmp_dir = tmp_dir
        self.truth_path = truth_path
        self.request_log_path = tmp_dir / "requests.jsonl"
        self.stderr_path = tmp_dir / "replica.stderr"
        self._truth: dict[str, Any] | None = None
        self._info: dict[str, Any] | None = None

    # Admin endpoints ---------------------------------------------------------
    def _call(self, method: str, path: str, payload: Any = None) -> bytes:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with _OPENER.open(request, timeout=30) as response:
            return response.read()

    def info(self) -> dict[str, Any]:
        return json.loads(self._call("GET", "/_replica/info"))

    @property
    def cdn_url(self) -> str:
        if self._info is None:
            self._info = self.info()
        return str(self._info["cdn_url"])

    @property
    def datasets_server_url(self) -> str:
        if self._info is None:
            self._info = self.info()
        return str(self._info["datasets_server_url"])

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def truth(self) -> dict[str, Any]:
        if self._truth is None:
            if not self.truth_path.exists():
                raise ReplicaError("this replica was started with truth=False: it wrote no ground truth")
            self._truth = json.loads(self.truth_path.read_text(encoding="utf-8"))
        return self._truth

    def requests(self, since: int = 0, origin: str | None = None) -> list[dict[str, Any]]:
        """The request log from entry ``since`` on, optionally only ``origin`` ``"hub"`` or ``"cdn"``."""
        query = f"?since={since}" + (f"&origin={origin}" if origin else "")
        text = self._call("GET", "/_replica/requests" + query).decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def mark(self) -> int:
        """The current length of the request log: pass it as ``since`` to see only later requests."""
        return int(self.info()["requests"]["total"])

    def set_faults(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace the fault rules (an empty list removes all); returns them as the replica parsed them."""
        return json.loads(self._call("POST", "/_replica/faults", rules))

    def faults(self) -> list[dict[str, Any]]:
        return json.loads(self._call("GET", "/_replica/faults"))

    def reset_quota(self) -> None:
        self._call("POST", "/_replica/reset-quota", {})

    def mutate(
        self,
        repo_type: str,
        *,
        touch: Iterable[str] = (),
        delete: Iterable[str] = (),
        restore: Iterable[str] = (),
        edit: dict[str, dict[str, str] | None] | None = None,
    ) -> dict[str, Any]:
        """Change the Hub: touched repos get a new sha and the newest lastModified, edited ones too with new bytes
        for files (``{id: {path: text}}``; None: a line appended to README.md), deleted ones vanish, restored ones
        come back (see `POST /_replica/mutate`); old commits stay readable; the truth file keeps the original Hub."""
        change: dict[str, Any] = {
            "type": repo_type, "touch": list(touch), "delete": list(delete), "restore": list(restore),
        }  # fmt: skip
        if edit:
            change["edit"] = {repo_id: files or {} for repo_id, files in edit.items()}
        return json.loads(self._call("POST", "/_replica/mutate", change))

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def build_command(truth_path: Path | None, request_log: Path, options: dict[str, Any]) -> list[str]:
    opts = {**_DEFAULTS, **options}
    command = [sys.executable, "-m", "hfscraper.replica", "--host", str(opts.pop("host", "127.0.0.1"))]
    for key, flag in _FLAGS.items():
        if key in opts and opts[key] is not None and key != "host":
            command += [flag, str(opts[key])]
    for rule in opts.get("faults") or ():
        command += ["--fault", rule if isinstance(rule, str) else json.dumps(rule)]
    for token in opts.get("approved_tokens") or ():
        command += ["--approved-token", token]
    if opts.get("hostile_ids"):
        command.append("--hostile-ids")
    if opts.get("hostile_files"):
        command.append("--hostile-files")
    if opts.get("hostile_cards"):
        command.append("--hostile-cards")
    if truth_path is not None:
        command += ["--truth", str(truth_path)]
    command += ["--request-log", str(request_log)]
    command += list(opts.get("extra_args") or ())
    return command


_KNOWN = set(_FLAGS) | {"faults", "approved_tokens", "hostile_ids", "hostile_files", "hostile_cards", "extra_args"}


@contextmanager
def run_replica(
    *,
    tmp_dir: str | Path | None = None,
    ready_timeout: float = 120.0,
    env: dict[str, str] | None = None,
    truth: bool = True,
    **options: Any,
) -> Iterator[ReplicaHandle]:
    """Run ``python -m hfscraper.replica`` until the block exits; yields a :class:`ReplicaHandle`."""
    unknown = set(options) - _KNOWN
    if unknown:
        raise TypeError(f"unknown replica options: {sorted(unknown)}")
    own_tmp = tmp_dir is None
    directory = Path(tempfile.mkdtemp(prefix="hf-replica-")) if own_tmp else Path(tmp_dir)  # type: ignore[arg-type]
    directory.mkdir(parents=True, exist_ok=True)
    truth_path = directory / "truth.json"
    request_log = directory / "requests.jsonl"
    stderr_path = directory / "replica.stderr"
    command = build_command(truth_path if truth else None, request_log, options)
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), child_env.get("PYTHONPATH", "")]))
    child_env.update(env or {})
    stderr_file = open(stderr_path, "wb")  # noqa: SIM115 (the child owns it; closed on stop)
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=stderr_file, stdin=subprocess.DEVNULL, env=child_env
    )
    handle: ReplicaHandle | None = None
    try:
        line = _read_ready_line(process, ready_timeout, stderr_path, command)
        if not line.startswith("ready "):
            raise ReplicaError(_failure(f"unexpected first line {line!r}", process, stderr_path, command))
        handle = ReplicaHandle(line.split(" ", 1)[1].strip(), process, directory, truth_path)
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        stderr_file.close()
        if own_tmp:
            shutil.rmtree(directory, ignore_errors=True)


def _read_ready_line(process: subprocess.Popen[bytes], timeout: float, stderr_path: Path, command: list[str]) -> str:
    result: list[bytes] = []

    def reader() -> None:
        assert process.stdout is not None
        result.append(process.stdout.readline())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        process.kill()
        process.wait(timeout=10)
        thread.join(5)
        raise ReplicaError(_failure(f"printed no ready line within {timeout:.0f}s", process, stderr_path, command))
    line = result[0].decode("utf-8", "replace") if result else ""
    if not line:
        process.wait(timeout=10)
        raise ReplicaError(_failure("exited before it was ready", process, stderr_path, command))
    return line.strip()


def _failure(reason: str, process: subprocess.Popen[bytes], stderr_path: Path, command: list[str]) -> str:
    stderr = ""
    if stderr_path.exists():
        stderr = stderr_path.read_text(encoding="utf-8", errors="replace")[-8000:]
    return f"Hub replica {reason} (exit code {process.poll()}).\ncommand: {' '.join(command)}\nstderr:\n{stderr}"


def replica_fixture(scope: str = "module", **options: Any) -> Callable[..., Any]:
    """A pytest fixture (module-scoped by default) that runs one replica with these options."""
    import pytest

    @pytest.fixture(scope=scope)  # type: ignore[misc]
    def _replica(tmp_path_factory: Any) -> Iterator[ReplicaHandle]:
        with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), **options) as handle:
            yield handle

    return _replica
