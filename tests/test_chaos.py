"""The chaos soak, short (issue 13, "Proof"): `scrapy crawlall` with files, CIDs/CARs and previews on, under faults
at a few percent (5xx, resets, truncated bodies, corrupt bytes, refused cursors, the dataset viewer failing),
killed with SIGKILL at random moments, then re-run plainly until it exits 0. The soak itself is
`bench.chaos.soak` (the `chaos` benchmark runs it at full size); this test runs 5 kills over ~120 entities.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.chaos import Soak, report, soak
from tests.support import report as test_report

KILLS = 5


def differing_entities(found: Soak) -> set[str]:
    """`datasets/<folder>` of every entity whose folder or CAR differs from the clean crawl's (other paths as is)."""
    entities = set()
    for path in [*found.missing, *found.extra, *found.changed]:
        parts = path.split("/")
        if parts[0] == "car" and len(parts) == 3:
            entities.add(f"{parts[1]}/{parts[2].removesuffix('.car')}")
        elif len(parts) >= 3 and parts[0] in ("models", "datasets", "spaces"):
            entities.add(f"{parts[0]}/{parts[1]}")
        else:
            entities.add(path)
    return entities


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
    if found.tree_differences and differing_entities(found) <= {f"datasets/{d}" for d in found.pending_previews}:
        # A known gap (reported with issue 13): a resumed run does not retry the due transient previews of the
        # datasets before its checkpoint, so it exits 0 with them pending; the next run, which lists from the
        # top, retries them. It shows only when the last kill left such a resumable listing.
        assert found.one_more_run_exit == 0 and found.one_more_run_differences == 0, why
        pytest.xfail(f"previews left pending by a resumed run (one more run: {found.one_more_run_differences} "
                     f"files differ): {why}")  # fmt: skip
    assert found.tree_differences == 0, why  # byte for byte, provenance/ included
