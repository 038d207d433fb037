"""The mass-deletion guard (issue 13): a full sweep that would mark too many of a type's live entities deleted
marks none, says so once, and ends incomplete with finish reason `tombstone_guard`, unless overridden.

Real `scrapy` processes against a real replica whose models are deleted with `mutate`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from hfscraper.hub import entity_folder_name
from hfscraper.state import TOMBSTONE_FILE
from tests.support.crawl import METADATA_ONLY, REPO_ROOT, _scrapy_command, crawl, public
from tests.support.replica import run_replica


def status(output: Path) -> tuple[int, dict[str, Any], str]:
    base = [*_scrapy_command(), "status", "-s", f"HFSCRAPER_OUTPUT_DIR={output}"]
    base += ["-s", f"HFSCRAPER_STATE_DIR={output.parent / 'state'}"]
    as_json = subprocess.run([*base, "--json"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    text = subprocess.run(base, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert as_json.returncode in (0, 1), as_json.stderr
    return as_json.returncode, json.loads(as_json.stdout), text.stdout


def tombstones(output: Path) -> set[str]:
    return {p.parent.name for p in (output / "models").glob(f"*/{TOMBSTONE_FILE}")}


def test_a_mass_deletion_is_held_until_overridden_and_a_small_one_is_not(tmp_path: Path) -> None:
    with run_replica(tmp_dir=tmp_path / "replica", models=40, datasets=1, spaces=1, seed=41) as hub:
        out = tmp_path / "out"
        first = crawl(hub, "models", out, settings=METADATA_ONLY)
        assert first.returncode == 0, first.stderr[-3000:]
        ids = sorted(e["id"] for e in public(hub.truth, "model"))
        n = len(ids)
        _, before, _ = status(out)

        gone = ids[:10]
        hub.mutate("model", delete=gone)
        held = crawl(hub, "models", out, settings=METADATA_ONLY)
        assert held.returncode == 1, held.stderr[-3000:]
        assert held.stat("finish_reason") == "tombstone_guard"
        assert held.stat("hfscraper/state/tombstoned") is None and held.stat("hfscraper/state/tombstone_guarded") == 10
        assert "models: INCOMPLETE (finish reason tombstone_guard" in held.stderr
        warnings = [line for line in held.stderr.splitlines() if "[hfscraper.extensions.checkpoint] WARNING: " in line]
        assert len(warnings) == 1, warnings
        assert f"10 of {n}" in warnings[0] and "HFSCRAPER_TOMBSTONE_MAX_FRACTION=1" in warnings[0]
        assert not tombstones(out)
        code, report, text = status(out)
        assert code == 1 and report["entities"] == before["entities"]  # nothing marked deleted in the state
        (listing,) = report["listings"]
        assert listing["finish_reason"] == "tombstone_guard" and not listing["complete"]
        assert "finish reason tombstone_guard" in text and "HFSCRAPER_TOMBSTONE_MAX_FRACTION=1" in text

        # the same command, held again; then overridden once
        again = crawl(hub, "models", out, settings=METADATA_ONLY)
        assert again.returncode == 1 and again.stat("finish_reason") == "tombstone_guard"
        accepted = crawl(hub, "models", out, settings={**METADATA_ONLY, "HFSCRAPER_TOMBSTONE_MAX_FRACTION": "1"})
        assert accepted.returncode == 0, accepted.stderr[-3000:]
        assert accepted.stat("hfscraper/state/tombstoned") == len(gone)
        assert tombstones(out) == {entity_folder_name(i) for i in gone}
        code, report, _ = status(out)
        assert code == 0 and report["entities"]["model"] == {"live": n - 10, "deleted": 10}

        # a small deletion (one entity, 1 of 30) goes through without any override
        hub.mutate("model", delete=[ids[20]])
        small = crawl(hub, "models", out, settings=METADATA_ONLY)
        assert small.returncode == 0, small.stderr[-3000:]
        assert small.stat("hfscraper/state/tombstoned") == 1 and small.stat("finish_reason") == "finished"
        assert entity_folder_name(ids[20]) in tombstones(out)


def test_a_small_type_may_lose_a_few_entities(tmp_path: Path) -> None:
    """3 of 12 is 25%, but no more than HFSCRAPER_TOMBSTONE_GUARD_MIN (3): marked; 4 would be held."""
    with run_replica(tmp_dir=tmp_path / "replica", models=12, datasets=1, spaces=1, seed=42) as hub:
        out = tmp_path / "out"
        assert crawl(hub, "models", out, settings=METADATA_ONLY).returncode == 0
        ids = sorted(e["id"] for e in public(hub.truth, "model"))
        hub.mutate("model", delete=ids[:3])
        few = crawl(hub, "models", out, settings=METADATA_ONLY)
        assert few.returncode == 0, few.stderr[-3000:]
        assert few.stat("hfscraper/state/tombstoned") == 3
        hub.mutate("model", delete=ids[3:7])
        many = crawl(hub, "models", out, settings=METADATA_ONLY)
        assert many.returncode == 1 and many.stat("finish_reason") == "tombstone_guard"
        assert len(tombstones(out)) == 3
