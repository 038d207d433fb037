"""A real IPFS node that serves the kubo RPC API, for the tests of hfscraper's kubo backend.

By default the node is js-ipfs (npm `ipfs@0.66.1`, installed by `.ci/run` with `npm ci --prefix tests/js-ipfs`),
started offline; with `HFSCRAPER_TEST_KUBO=/path/to/ipfs` it is that kubo binary instead. Either way the node:

- gets a fresh repository in a temporary folder (`init --profile test`, which empties `Bootstrap` and turns
  MDNS off), then a config with no swarm address and its API, gateway (and js-ipfs's gRPC) on 127.0.0.1 with
  ports the OS picks (read back from the daemon's output);
- runs `daemon --offline`, and is ready once it prints `Daemon is ready`;
- is stopped (SIGTERM, then SIGKILL) when the test session ends.

Network safety: even offline, the node makes DNS look-ups. It is only ever started inside a network namespace
that has nothing but loopback: the one `scripts/hermetic.sh` makes for `make test` (it sets
`HFSCRAPER_IN_NETNS=1`), checked again here by listing the interfaces of this process's namespace. Anywhere
else the tests that need the node skip with the reason (and fail under `CI`, where they must run); so do they
where node, npm's install of js-ipfs, or the kubo binary is missing.

Use: `ipfs_node = ipfs_node_fixture()` in a test module; every module shares one node per test session.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
JS_IPFS_DIR = REPO_ROOT / "tests" / "js-ipfs"
JS_IPFS_CLI = JS_IPFS_DIR / "node_modules" / "ipfs" / "src" / "cli.js"
POLYFILL = JS_IPFS_DIR / "polyfill.cjs"
#: Run these tests against a kubo binary instead of js-ipfs.
KUBO_ENV = "HFSCRAPER_TEST_KUBO"
#: How long a node may take from `init` to `Daemon is ready`.
START_TIMEOUT = 90.0

_API_LINE = re.compile(r"(?:HTTP API|RPC API server|API server) listening on /ip4/([0-9.]+)/tcp/(\d+)")


class NodeUnavailable(Exception):
    """No IPFS node can be run here; the message says why."""


def loopback_only_problem() -> str | None:
    """Why this process is not in a loopback-only network namespace (None when it is)."""
    if os.environ.get("HFSCRAPER_IN_NETNS") != "1":
        return (
            "not inside a loopback-only network namespace (run the tests with `make test`, i.e. "
            "scripts/hermetic.sh): the IPFS node is never started where it could reach the network"
        )
    try:
        # This process's own network namespace (sysfs may still show the host's interfaces).
        interfaces = sorted(name for _, name in socket.if_nameindex())
    except OSError as exc:
        return f"cannot list the network interfaces ({exc}); not starting an IPFS node"
    others = [name for name in interfaces if name != "lo"]
    if others:
        return f"the network namespace has interfaces besides lo ({', '.join(others)}); not starting an IPFS node"
    return None


def unavailable(reason: str) -> None:
    """Skip the calling test with *reason*, or fail it under CI, where the IPFS node tests must run."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"IPFS node tests must run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass
class NodeSpec:
    """How to run one kind of node."""

    kind: str  # "js-ipfs" or "kubo"
    argv: list[str]  # the node's command, before `init` / `daemon`
    env: dict[str, str] = field(default_factory=dict)
    init_args: tuple[str, ...] = ()


def node_spec() -> NodeSpec:
    """The node to run here: the kubo binary named by HFSCRAPER_TEST_KUBO, else js-ipfs; NodeUnavailable if
    neither can run."""
    kubo = os.environ.get(KUBO_ENV, "").strip()
    if kubo:
        path = shutil.which(kubo) or kubo
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise NodeUnavailable(f"{KUBO_ENV}={kubo} is not an executable file")
        return NodeSpec("kubo", [path], init_args=("--profile", "test"))
    node = shutil.which("node")
    if node is None:
        raise NodeUnavailable("node (Node.js) is not installed; js-ipfs needs it")
    if not JS_IPFS_CLI.is_file():
        raise NodeUnavailable(f"js-ipfs is not installed: run `npm ci --prefix {JS_IPFS_DIR.relative_to(REPO_ROOT)}`")
    options = " ".join(filter(None, [os.environ.get("NODE_OPTIONS", ""), f"--require {POLYFILL}"]))
    return NodeSpec(
        "js-ipfs", [node, str(JS_IPFS_CLI)], {"NODE_OPTIONS": options}, init_args=("--profile", "test", "--empty-repo")
    )


@dataclass
class IpfsNode:
    """A running node. `api_url` is the RPC base (`http://127.0.0.1:PORT`, without `/api/v0`)."""

    kind: str
    api_url: str
    repo: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    version: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def rpc(self, path: str, **params: str) -> Any:
        """POST `/api/v0/<path>` with query *params*, for tests' own checks; the JSON answer (the last line of
        a streamed one). Raises RuntimeError with the node's message on an error status."""
        import urllib.error
        import urllib.parse
        import urllib.request

        url = f"{self.api_url}/api/v0/{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, data=b"", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
                body = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
        lines = [line for line in body.splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def _edit_config(repo: Path, kind: str) -> None:
    path = repo / "config"
    config = json.loads(path.read_text(encoding="utf-8"))
    addresses = config.setdefault("Addresses", {})
    # No swarm address: the node talks to no peer (js-ipfs's transports also refuse any address here).
    addresses["Swarm"] = []
    addresses["API"] = "/ip4/127.0.0.1/tcp/0"
    addresses["Gateway"] = "/ip4/127.0.0.1/tcp/0"
    if "RPC" in addresses:  # js-ipfs's gRPC endpoint, by default on the fixed port 5003
        addresses["RPC"] = "/ip4/127.0.0.1/tcp/0"
    addresses["Announce"] = []
    config["Bootstrap"] = []
    config.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    if kind == "kubo":
        config.setdefault("Routing", {})["Type"] = "none"
        swarm = config.setdefault("Swarm", {})
        swarm["DisableNatPortMap"] = True
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def start_node(base: Path, timeout: float = START_TIMEOUT) -> IpfsNode:
    """Init a repository under *base* and start the node (see the module docstring); NodeUnavailable when it
    cannot run here, RuntimeError when it fails to start."""
    problem = loopback_only_problem()
    if problem is not None:
        raise NodeUnavailable(problem)
    spec = node_spec()
    base.mkdir(parents=True, exist_ok=True)
    repo = base / "repo"
    env = {**os.environ, **spec.env, "IPFS_PATH": str(repo)}
    init = subprocess.run(
        [*spec.argv, "init", *spec.init_args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    if init.returncode != 0:
        raise RuntimeError(f"{spec.kind} init failed ({init.returncode}): {init.stdout}{init.stderr}")
    _edit_config(repo, spec.kind)
    log_path = base / "daemon.log"
    log = open(log_path, "wb")  # noqa: SIM115 - the daemon writes to it until it stops
    process = subprocess.Popen(
        [*spec.argv, "daemon", "--offline"], env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    log.close()
    node = IpfsNode(spec.kind, "", repo, process, log_path)
    deadline = time.monotonic() + timeout
    while True:
        text = node.log()
        if "Daemon is ready" in text:
            match = _API_LINE.search(text)
            if match is None:
                node.stop()
                raise RuntimeError(f"{spec.kind} is ready but printed no API address:\n{text}")
            node.api_url = f"http://{match.group(1)}:{match.group(2)}"
            break
        if process.poll() is not None:
            raise RuntimeError(f"{spec.kind} daemon exited with {process.returncode}:\n{text}")
        if time.monotonic() > deadline:
            node.stop()
            raise RuntimeError(f"{spec.kind} daemon not ready after {timeout:.0f}s:\n{text}")
        time.sleep(0.1)
    node.version = node.rpc("version")
    return node


@contextlib.contextmanager
def run_node(base: Path | None = None) -> Iterator[IpfsNode]:
    """A node for the duration of the block (in a temporary folder unless *base* is given)."""
    with contextlib.ExitStack() as stack:
        folder = base or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hfscraper-ipfs-")))
        node = start_node(folder)
        stack.callback(node.stop)
        yield node


_shared_lock = threading.Lock()
_shared: dict[str, Any] = {}


def shared_node(config: pytest.Config, base: Path) -> IpfsNode:
    """The test session's one node, started on first use and stopped when the session ends; skips (or fails
    under CI) when it cannot run here."""
    with _shared_lock:
        if "node" in _shared:
            return _shared["node"]
        if "unavailable" in _shared:
            unavailable(_shared["unavailable"])
        try:
            node = start_node(base)
        except NodeUnavailable as exc:
            _shared["unavailable"] = str(exc)
            unavailable(str(exc))
        _shared["node"] = node
        config.add_cleanup(_stop_shared)
        return node


def _stop_shared() -> None:
    node = _shared.pop("node", None)
    if node is not None:
        node.stop()


def ipfs_node_fixture() -> Callable[..., IpfsNode]:
    """A module's `ipfs_node` fixture: the session's shared node (see `shared_node`)."""

    @pytest.fixture(scope="module")
    def _ipfs_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> IpfsNode:
        return shared_node(request.config, tmp_path_factory.getbasetemp() / "ipfs-node")

    return _ipfs_node


def free_port() -> int:
    """A loopback port that nothing listens on (for "node unreachable" tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
