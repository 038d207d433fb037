"""The chaos soak, short (issue 13, "Proof"): `scrapy crawlall` with files, CIDs/CARs and previews on, under faults
at a few percent (5xx, resets, truncated bodies, corrupt bytes, refused cursors, the dataset viewer failing),
killed with SIGKILL at random moments, then re-run plainly until it exits 0. The soak itself is
`bench.chaos.soak` (the `chaos` benchmark runs it at full size); this test runs 5 kills over ~120 entities.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.chaos import report, soak
from tests.support import report as test_report

KILLS = 5


@pytest.mark.slow
def test_sigkills_under_faults_then_plain_reruns_equal_a_clean_crawl(tmp_path: Path) -> None:
    seed = int(os.environ.get("CHAOS_SEED", "20261207"))
    found = soak(tmp_path, models=70, datasets=25, spaces=25, kills=KILLS, reruns=5, fault_rate=0.03, seed=seed,
                 timeout=240)  # fmt: skip
    why = report(found)

    assert found.kills == KILLS, why
    assert sum(found.faults_fired.values()) > 0, found.faults_fired
    assert found.converged, why  # a plain run exits 0 once the faults are gone
    assert found.verify_exit == 0, why
    assert found.status_exit == 0, why
    assert not found.duplicates, why  # at most once per feed
    assert not found.foreign_ids, why
    test_report.record(
        f"chaos: {found.kills} SIGKILLs, {len(found.runs)} runs ({found.reruns} after the faults), "
        f"{sum(found.faults_fired.values())} faults fired, {found.feed_rows} feed rows in {found.feeds} feeds, "
        f"{found.tree_differences} files differ from a clean crawl; {found.seconds:.1f} s"
    )
    assert found.tree_differences == 0, why  # byte for byte, provenance/ included
