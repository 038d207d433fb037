"""The quota benchmark still runs (smoke mode: a few seconds, no performance asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def _smoke(tmp_path: Path, name: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]], str]:
    """Run `bench.run --smoke --only NAME` into *tmp_path*: (the JSON written, its NAME rows by metric, the table)."""
    results, markdown = tmp_path / "results", tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--only", name, "--results-dir", str(results),
         "--markdown", str(markdown)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (written,) = results.glob("*.json")
    payload = json.loads(written.read_text(encoding="utf-8"))
    metrics = {row["metric"]: row for row in payload["rows"] if row["benchmark"] == name}
    assert payload["details"][name]["smoke"] is True
    return payload, metrics, markdown.read_text(encoding="utf-8")


def test_quota_bench_smoke(tmp_path: Path) -> None:
    payload, metrics, table = _smoke(tmp_path, "quota")
    assert {"api_rate_share", "http_429", "full_windows", "finish_reason", "run_time"} <= set(metrics)
    assert metrics["finish_reason"]["value"] == "finished"
    assert "| quota | api_rate_share |" in table


def test_graph_bench_smoke(tmp_path: Path) -> None:
    payload, metrics, table = _smoke(tmp_path, "graph")
    assert {"peak_rss", "peak_rss_growth", "extract_store_rate", "rebuild_time", "nodes", "edges"} <= set(metrics)
    assert metrics["edges"]["value"] > 1000
    assert metrics["provenance_inodes"]["value"] == 4 and metrics["document_lookup_ms"]["value"] > 0


def test_export_bench_smoke(tmp_path: Path) -> None:
    payload, metrics, table = _smoke(tmp_path, "export")
    expected = "rows export_time rows_per_second peak_rss peak_rss_ratio incremental_time incremental_rows"
    assert {*expected.split(), "peak_rss_incremental", "generate_time"} <= set(metrics)
    details = payload["details"]["export"]
    assert metrics["rows"]["value"] == details["entities"] == 3000 and metrics["rows"]["met"] is True
    assert details["small"]["rows"] == details["small_entities"] == 300
    assert metrics["incremental_rows"]["met"] is True
    changes = details["incremental_changes"]
    assert changes["modified"] > 0 and changes["new"] > 0 and changes["deleted"] > 0
    by_type = details["incremental"]["by_type"]
    assert sum(c["deleted"] for c in by_type.values()) == changes["deleted"]
    assert "| export | peak_rss |" in table


def test_crawl_bench_smoke(tmp_path: Path) -> None:
    payload, metrics, table = _smoke(tmp_path, "crawl")
    for run in ("hfscraper_meta", "hfscraper_files", "baseline_meta", "baseline_seq", "baseline_pool8"):
        assert {f"lat0/{run}/{what}" for what in ("entities_per_s", "requests", "cpu_s", "peak_rss")} <= set(metrics)
    assert {"lat0/ratio/hfscraper_files_vs_baseline_pool8", "memory/peak_rss_ratio"} <= set(metrics)
    details = payload["details"]["crawl"]
    runs = details["runs"]["lat0"]
    # Every model listed, the baselines over their prefix; both sides fetched files and the replica counted them.
    assert (
        runs["hfscraper_meta"]["entities"] == runs["hfscraper_files"]["entities"] == runs["baseline_meta"]["entities"]
    )
    assert runs["baseline_seq"]["entities"] == runs["baseline_seq"]["prefix"]
    for run in ("hfscraper_files", "baseline_seq", "baseline_pool8"):
        assert runs[run]["files"] > 0 and runs[run]["requests"]["total"] > runs[run]["files"]
    assert runs["hfscraper_files"]["cids"] == runs["hfscraper_files"]["entities"]
    assert "| crawl | memory/peak_rss_ratio |" in table


def test_only_replaces_its_own_rows_in_the_day_s_results(tmp_path: Path) -> None:
    from bench import Row
    from bench.run import merge_previous

    earlier = {
        "date": "2026-01-02T10:00:00+00:00", "command": "python -m bench.run", "smoke": False,
        "rows": [Row("quota", "api_rate_share", 0.99).to_dict(), Row("cid", "speed", 0.5).to_dict(),
                 Row("crawl", "rate", 1000).to_dict()],
        "details": {"quota": {"q": 1}, "cid": {"c": 1}, "crawl": {"r": 1}},
    }  # fmt: skip
    path = tmp_path / "2026-01-02.json"
    path.write_text(json.dumps(earlier))
    run = {"cid": {"date": "2026-01-02T11:00:00+00:00", "command": "python -m bench.run --only cid"}}
    rows, details, runs = merge_previous(path, ["cid"], [Row("cid", "speed", 0.9)], {"cid": {"c": 2}}, run)
    assert [(r.benchmark, r.value) for r in rows] == [("quota", 0.99), ("cid", 0.9), ("crawl", 1000)]
    assert details == {"quota": {"q": 1}, "cid": {"c": 2}, "crawl": {"r": 1}}
    assert runs["quota"]["command"] == "python -m bench.run" and runs["cid"] == run["cid"]
    # A smoke run's file (or none) is not merged.
    path.write_text(json.dumps({**earlier, "smoke": True}))
    assert merge_previous(path, ["cid"], [Row("cid", "speed", 0.9)], {}, run)[0] == [Row("cid", "speed", 0.9)]
    assert merge_previous(tmp_path / "none.json", ["cid"], [], {}, run) == ([], {}, run)


def test_verify_bench_smoke(tmp_path: Path) -> None:
    payload, metrics, table = _smoke(tmp_path, "verify")
    assert {"speed_ratio", "speed_ratio_one_thread", "throughput", "sha256_throughput", "problems"} <= set(metrics)
    details = payload["details"]["verify"]
    # The generated archive is clean, and the verifier rehashed every recorded file (four per entity).
    assert metrics["problems"]["value"] == 0 and metrics["problems"]["met"] is True
    assert details["verified_files"] == 4 * details["entities"] and details["verified_bytes"] >= details["bytes"] * 0.99
    assert "| verify | speed_ratio |" in table


def test_chaos_bench_smoke(tmp_path: Path) -> None:
    payload, metrics, table = _smoke(tmp_path, "chaos")
    expected = "result kills runs reruns faults_fired tree_differences verify_exit status_exit duplicate_feed_ids"
    assert {*expected.split(), "foreign_feed_ids", "soak_time"} <= set(metrics)
    details = payload["details"]["chaos"]
    # One SIGKILL, a plain run to exit 0, the checks written down (the short soak's own test is test_chaos.py).
    assert metrics["kills"]["value"] == 1 and details["converged"] is True
    assert metrics["verify_exit"]["value"] == 0 and metrics["duplicate_feed_ids"]["value"] == 0
    assert {run["exit"] for run in details["runs"]} >= {"SIGKILL", 0}
    assert "| chaos | result |" in table


def test_scale_bench_smoke(tmp_path: Path) -> None:
    payload, metrics, table = _smoke(tmp_path, "scale")
    expected = (
        "crawl/entities_per_s baseline/entities_per_s ratio/hfscraper_vs_baseline memory/peak_rss_ratio "
        "disk/inodes_per_entity disk/bytes_ratio disk/allocated_ratio provenance/rebuild_time export/time "
        "incremental/time incremental/requests replica/serving_entities_per_s"
    )
    assert {*expected.split(), *(f"crawl/{t}/entities_per_s" for t in ("model", "dataset", "space"))} <= set(metrics)
    details = payload["details"]["scale"]
    n = details["n"]
    # Every entity crawled and listed by the baseline; the disk measured by part; 1% changed, only those re-stored.
    assert details["full"]["entities"] == details["baseline"]["entities"] == n == 1200
    assert {"entities", "state"} <= set(details["disk"]) and details["disk"]["entities"]["metadata_json"] == n
    changed = sum(details["changed"].values())
    assert changed == 12 and changed <= details["incremental"]["stored"] < changed + 10
    assert metrics["provenance/rebuild_time"]["value"] is not None
    assert "| scale | crawl/entities_per_s |" in table
