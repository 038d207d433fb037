"""The CID benchmark still runs (smoke mode: one small file, no performance asserted)."""

from __future__ import annotations

from bench import cid
from bench.run import BENCHMARKS


def test_cid_bench_smoke() -> None:
    assert BENCHMARKS["cid"] == "bench.cid"
    result = cid.run(smoke=True)
    metrics = {row.metric: row for row in result.rows}
    for profile in ("unixfs-v1-2025", "unixfs-v0-2015", "kubo-cidv1"):
        assert metrics[f"speed_ratio/{profile}/8MiB"].goal == ">= 0.70"
        assert metrics[f"speed_ratio/{profile}/8MiB"].value > 0
        assert metrics[f"peak_memory/{profile}"].met is True
        assert f"car_throughput/{profile}" in metrics
    assert result.details["smoke"] is True
