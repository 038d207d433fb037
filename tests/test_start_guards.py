"""No side effects before the lock; one output folder, one crawl state, one Hub (issue 13, items 3, 6 and 11).

Real `scrapy` processes against real replicas: a second start of a running crawl, a second state folder and a
second Hub must each be refused without touching the running crawl's feed, the output folder or the state folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from hfscraper.output_owner import OWNER_FILE
from tests.support.crawl import (
    METADATA_ONLY,
    REPO_ROOT,
    _scrapy_command,
    crawl,
    crawl_command,
    crawl_env,
    public,
)
from tests.support.replica import run_replica


def status(output: Path, state: Path) -> tuple[int, dict[str, Any], str]:
    """`scrapy status`, as JSON and as text."""
    base = [*_scrapy_command(), "status", "-s", f"HFSCRAPER_OUTPUT_DIR={output}", "-s", f"HFSCRAPER_STATE_DIR={state}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HFSCRAPER_", "HF_")) or k == "HFSCRAPER_IN_NETNS"}
    as_json = subprocess.run([*base, "--json"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    text = subprocess.run(base, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    assert as_json.returncode in (0, 1), as_json.stderr
    return as_json.returncode, json.loads(as_json.stdout), text.stdout


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """{path: (size, mtime)} of every file and folder under *roots* (absent roots: nothing)."""
    seen: dict[str, tuple[int, int]] = {}
    for root in roots:
        for top, dirs, files in os.walk(root):
            for name in dirs + files:
                st = os.stat(os.path.join(top, name))
                seen[os.path.join(top, name)] = (st.st_size if name in files else 0, st.st_mtime_ns)
    return seen


def hfscraper_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("hfscraper:")]


def test_a_refused_second_start_leaves_the_running_crawls_feed_and_state_alone(tmp_path: Path) -> None:
    with run_replica(tmp_dir=tmp_path / "replica", models=60, datasets=1, spaces=1, seed=31, latency_ms=250) as hub:
        out, feed, state = tmp_path / "out", tmp_path / "feed.jsonl", tmp_path / "state"
        command = crawl_command("models", out, settings=METADATA_ONLY, page_size=2, options=["-O", str(feed)])
        with open(tmp_path / "first.log", "wb") as log:
            first = subprocess.Popen(command, cwd=REPO_ROOT, env=crawl_env(hub, out), stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while not (feed.is_file() and feed.stat().st_size > 0):
                assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
                time.sleep(0.05)
            before = {p.name for p in state.iterdir()}
            second = subprocess.run(
                command, cwd=REPO_ROOT, env=crawl_env(hub, out), capture_output=True, text=True, timeout=120,
                check=False,
            )  # fmt: skip
            assert first.poll() is None, "the first crawl ended before the second start was refused"
            assert second.returncode == 1, second.stderr[-3000:]
            assert "finish reason already_running" in second.stderr
            assert {p.name for p in state.iterdir()} == before  # no new state, WAL or lock file
            assert first.wait(timeout=120) == 0, (tmp_path / "first.log").read_text()[-3000:]
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        data = feed.read_bytes()
        assert b"\0" not in data
        ids = [json.loads(line)["id"] for line in data.decode("utf-8").splitlines()]
        assert sorted(ids) == sorted(e["id"] for e in public(hub.truth, "model"))


def test_a_second_state_folder_for_one_output_is_refused(tmp_path: Path) -> None:
    with run_replica(tmp_dir=tmp_path / "replica", models=20, datasets=1, spaces=1, seed=32) as hub:
        out, feed = tmp_path / "out", tmp_path / "feed.jsonl"
        first = crawl(hub, "models", out, settings=METADATA_ONLY)
        assert first.returncode == 0, first.stderr[-3000:]
        record = json.loads((out / OWNER_FILE).read_text())
        assert record["endpoint"] == hub.url and Path(record["state_file"]).parent == tmp_path / "state"

        feed.write_text('{"id": "kept"}\n')
        before = snapshot(out, tmp_path / "state", feed)
        other = tmp_path / "other-state"
        second = crawl(
            hub, "models", out, settings={**METADATA_ONLY, "HFSCRAPER_STATE_DIR": str(other)}, options=["-O", str(feed)]
        )
        assert second.returncode == 2, second.stderr[-3000:]
        (line,) = hfscraper_lines(second.stderr)
        assert record["state_file"] in line and str(other) in line and "HFSCRAPER_STATE_ADOPT_OUTPUT" in line
        assert "Traceback" not in second.stderr
        assert not other.exists()  # no state folder, no state file, no lock file
        assert snapshot(out, tmp_path / "state", feed) == before  # not a byte written, the feed not truncated

        # a state folder moved on purpose takes the output over
        (tmp_path / "state").rename(other)
        adopted = crawl(
            hub, "models", out, settings={**METADATA_ONLY, "HFSCRAPER_STATE_DIR": str(other),
                                          "HFSCRAPER_STATE_ADOPT_OUTPUT": "true"},
        )  # fmt: skip
        assert adopted.returncode == 0, adopted.stderr[-3000:]
        # the moved state still knows every entity
        assert adopted.stat("deltafetch/skipped") == len(public(hub.truth, "model"))
        assert Path(json.loads((out / OWNER_FILE).read_text())["state_file"]).parent == other


def test_another_endpoint_is_refused_unless_allowed_and_status_names_each(tmp_path: Path) -> None:
    with (
        run_replica(tmp_dir=tmp_path / "replica-a", models=30, datasets=1, spaces=1, seed=33) as hub_a,
        run_replica(tmp_dir=tmp_path / "replica-b", models=10, datasets=1, spaces=1, seed=34) as hub_b,
    ):
        out, state = tmp_path / "out", tmp_path / "state"
        first = crawl(hub_a, "models", out, settings=METADATA_ONLY)
        assert first.returncode == 0, first.stderr[-3000:]
        before = snapshot(out, state)

        refused = crawl(hub_b, "models", out, settings=METADATA_ONLY)
        assert refused.returncode == 2, refused.stderr[-3000:]
        (line,) = hfscraper_lines(refused.stderr)
        assert hub_a.url in line and hub_b.url in line and "HFSCRAPER_CRAWL_ALLOW_OTHER_ENDPOINT" in line
        assert "Traceback" not in refused.stderr
        assert snapshot(out, state) == before
        assert "deleted" not in refused.stderr

        # on purpose (and accepting that the second Hub's sweep marks the first one's models deleted)
        allowed = crawl(
            hub_b, "models", out, settings={**METADATA_ONLY, "HFSCRAPER_CRAWL_ALLOW_OTHER_ENDPOINT": "true",
                                            "HFSCRAPER_TOMBSTONE_MAX_FRACTION": "1"},
        )  # fmt: skip
        assert allowed.returncode == 0, allowed.stderr[-3000:]
        assert json.loads((out / OWNER_FILE).read_text())["endpoint"] == hub_b.url

        code, report, text = status(out, state)
        assert {entry["endpoint"] for entry in report["listings"]} == {hub_a.url, hub_b.url}
        headings = [line for line in text.splitlines() if line.startswith("models (")]
        assert len(headings) == 2 and len(set(headings)) == 2
        assert any(hub_a.url in h for h in headings) and any(hub_b.url in h for h in headings)


def test_an_output_crawled_before_it_had_a_record_keeps_its_hub(tmp_path: Path) -> None:
    """A state file from before the record: the endpoint its crawls listed still guards the output."""
    with (
        run_replica(tmp_dir=tmp_path / "replica-a", models=10, datasets=1, spaces=1, seed=35) as hub_a,
        run_replica(tmp_dir=tmp_path / "replica-b", models=5, datasets=1, spaces=1, seed=36) as hub_b,
    ):
        out = tmp_path / "out"
        assert crawl(hub_a, "models", out, settings=METADATA_ONLY).returncode == 0
        (out / OWNER_FILE).unlink()
        refused = crawl(hub_b, "models", out, settings=METADATA_ONLY)
        assert refused.returncode == 1, refused.stderr[-3000:]
        assert "finish reason other_endpoint" in refused.stderr and hub_a.url in refused.stderr
        assert not (out / OWNER_FILE).exists() and not list(out.glob("models/*/tombstone.json"))
