"""The independent oracles of the content-addressing tests: npm `ipfs-unixfs-importer` (through
`tests/js/oracle.mjs`) and `ipfs-car unpack`, both pinned by `tests/js/package-lock.json`.

Install them with `npm ci --prefix tests/js` (`.ci/run` does, before the tests). Where node or that install is
missing, the tests that need them skip with the reason and that command; under `CI` (set by the CI runner)
they fail instead, so a skip can never hide there.

`JsOracle.run(jobs)` answers many jobs with one node process (see oracle.mjs for the job format).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
JS_DIR = REPO_ROOT / "tests" / "js"
ORACLE = JS_DIR / "oracle.mjs"
IPFS_CAR = JS_DIR / "node_modules" / "ipfs-car" / "bin.js"
INSTALL = "npm ci --prefix tests/js"


def unavailable_reason() -> str | None:
    """Why the JS oracles cannot run here, or None when they can."""
    if shutil.which("node") is None:
        return f"node is not installed (install Node.js 20+, then run `{INSTALL}`)"
    for needed in ("ipfs-unixfs-importer", "blockstore-core", "ipfs-car", "@ipld/car", "multiformats"):
        if not (JS_DIR / "node_modules" / needed / "package.json").is_file():
            return f"tests/js/node_modules/{needed} is missing (run `{INSTALL}`)"
    return None


def require_js() -> None:
    """Skip the calling test (fail it under CI) when the JS oracles are not installed."""
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set, so the JS oracle tests must run, but {reason}", pytrace=False)
    pytest.skip(reason)


class OracleError(AssertionError):
    """The oracle itself failed (not a disagreement)."""


class JsOracle:
    """Batches of jobs for `tests/js/oracle.mjs --batch`, one node process per batch."""

    def __init__(self, timeout: float = 600) -> None:
        self.timeout = timeout
        self.answered = 0

    def run(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The answers to *jobs*, in order. Raises OracleError when node fails or answers an error."""
        payload = "".join(json.dumps(job) + "\n" for job in jobs)
        proc = subprocess.run(
            ["node", str(ORACLE), "--batch"],
            input=payload, capture_output=True, text=True, timeout=self.timeout, cwd=JS_DIR, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise OracleError(f"oracle.mjs exited {proc.returncode}: {proc.stderr[-2000:]}")
        answers = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        if len(answers) != len(jobs):
            raise OracleError(f"oracle.mjs answered {len(answers)} of {len(jobs)} jobs: {proc.stderr[-2000:]}")
        for job, answer in zip(jobs, answers, strict=True):
            if "error" in answer:
                raise OracleError(f"oracle.mjs failed on {job}: {answer['error']}")
        self.answered += len(jobs)
        return answers

    def cids(self, paths: list[Path], profile: str, **extra: Any) -> list[str]:
        """The importer's CID of each path under *profile*."""
        jobs = [{"op": "add", "path": str(p), "profile": profile, **extra} for p in paths]
        return [answer["cid"] for answer in self.run(jobs)]


def ipfs_car_unpack(car: Path, output: Path, timeout: float = 600) -> None:
    """`ipfs-car unpack CAR --output OUTPUT` (verifying every block); AssertionError when it fails."""
    proc = subprocess.run(
        ["node", str(IPFS_CAR), "unpack", str(car), "--output", str(output)],
        capture_output=True, text=True, timeout=timeout, cwd=JS_DIR, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"ipfs-car unpack {car.name} exited {proc.returncode}: {proc.stderr[-2000:]}")
