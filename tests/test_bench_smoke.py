"""The quota benchmark still runs (smoke mode: a few seconds, no performance asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_quota_bench_smoke(tmp_path: Path) -> None:
    results, markdown = tmp_path / "results", tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--only", "quota", "--results-dir", str(results),
         "--markdown", str(markdown)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (written,) = results.glob("*.json")
    payload = json.loads(written.read_text(encoding="utf-8"))
    metrics = {row["metric"]: row for row in payload["rows"] if row["benchmark"] == "quota"}
    assert {"api_rate_share", "http_429", "full_windows", "finish_reason", "run_time"} <= set(metrics)
    assert metrics["finish_reason"]["value"] == "finished"
    assert payload["details"]["quota"]["smoke"] is True
    assert "| quota | api_rate_share |" in markdown.read_text(encoding="utf-8")


def test_graph_bench_smoke(tmp_path: Path) -> None:
    results, markdown = tmp_path / "results", tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--only", "graph", "--results-dir", str(results),
         "--markdown", str(markdown)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (written,) = results.glob("*.json")
    payload = json.loads(written.read_text(encoding="utf-8"))
    metrics = {row["metric"]: row for row in payload["rows"] if row["benchmark"] == "graph"}
    assert {"peak_rss", "extract_store_rate", "rebuild_time", "nodes", "edges"} <= set(metrics)
    assert metrics["edges"]["value"] > 1000
    assert payload["details"]["graph"]["smoke"] is True
