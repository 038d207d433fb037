"""Transient viewer answers are not final: real crawls of the replica with the dataset viewer unreachable,
rate-limiting or not ready, then plain re-runs.

A transient answer leaves the dataset's previews stage pending (one WARNING line per run with the numbers, the
crawl still complete), `preview_info.json` says `"final": false`, `scrapy status` shows the previews pending;
within the backoff a re-run asks the viewer nothing, after it the plain re-run asks again and gets what a clean
crawl gets; a definitive answer is never asked again, a new version of the dataset at once.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from hfscraper.hub import entity_folder_name, parse_link_next
from tests.support.crawl import REPO_ROOT, CrawlResult, _scrapy_command, crawl, crawl_env, public
from tests.support.replica import ReplicaHandle, run_replica

SEED = 25  # every viewer behaviour occurs among these datasets
#: Crawls of datasets with their previews only: files, CIDs and provenance have tests of their own.
SETTINGS = {"HFSCRAPER_FILES_ENABLED": "false", "HFSCRAPER_IPFS_ENABLED": "false"}
WARNING = re.compile(r"WARNING: Previews of (\d+) dataset\(s\) are pending \((.*)\); they do not make the crawl")
WITH_PREVIEW = ("ok", "preview_only", "rows_error")
DEFINITIVE = {"unauthorized": "unauthorized", "not_found": "not_found", "error": "error"}


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=2, datasets=40, spaces=0, seed=SEED) as hub:
        yield hub


@pytest.fixture(scope="module")
def clean(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> CrawlResult:
    """A crawl with the viewer up all along: what every re-run must end up with."""
    result = crawl(replica, "datasets", tmp_path_factory.mktemp("clean") / "out", settings=SETTINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def closed_port_url() -> str:
    """A loopback URL where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def run(replica: ReplicaHandle, out: Path, viewer: str | None = None, **settings: str) -> CrawlResult:
    env = {"HFSCRAPER_DATASETS_SERVER": viewer} if viewer else None
    return crawl(replica, "datasets", out, settings={**SETTINGS, **settings}, env_overrides=env)


def status(replica: ReplicaHandle, out: Path, *options: str) -> tuple[int, str]:
    command = [*_scrapy_command(), "status", *options, "-s", f"HFSCRAPER_OUTPUT_DIR={out}"]
    command += ["-s", f"HFSCRAPER_STATE_DIR={out.parent / 'state'}"]
    env = crawl_env(replica, out)
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, proc.stdout


def status_json(replica: ReplicaHandle, out: Path) -> tuple[int, dict[str, Any]]:
    code, text = status(replica, out, "--json")
    return code, json.loads(text)


def groups(replica: ReplicaHandle) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entity in public(replica.truth, "dataset"):
        found.setdefault(entity["viewer"], []).append(entity["id"])
    return found


def previews(out: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted((out / "datasets").glob("*/preview_info.json"))}


def preview(out: Path, repo_id: str) -> dict[str, Any]:
    return json.loads((out / "datasets" / entity_folder_name(repo_id) / "preview_info.json").read_text("utf-8"))


def warnings(result: CrawlResult) -> list[tuple[int, str]]:
    return [(int(m.group(1)), m.group(2)) for m in WARNING.finditer(result.stderr)]


def viewer_asked(replica: ReplicaHandle, since: int) -> set[str]:
    """The datasets the viewer was asked about since *since*."""
    asked = set()
    for entry in replica.requests(since=since):
        if entry["origin"] == "viewer":
            asked.update(parse_qs(urlsplit(entry["path"]).query).get("dataset", []))
    return asked


def test_an_unreachable_viewer_leaves_previews_pending_until_a_later_run_gets_them(
    replica: ReplicaHandle, clean: CrawlResult, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    datasets = [e["id"] for e in public(replica.truth, "dataset")]
    by = groups(replica)

    # 1. The viewer is unreachable: the crawl completes, but says so once, and nothing claims to be final.
    unreachable = closed_port_url()
    down = run(replica, out, viewer=unreachable)
    assert down.returncode == 0, down.stderr[-3000:]
    assert warnings(down) == [
        (len(datasets), f"no final answer from the dataset viewer {unreachable}: network {len(datasets)}")
    ]
    assert down.stderr.count("Previews of") == 1  # one line per run, not one per dataset
    for repo_id in datasets:
        info = preview(out, repo_id)
        assert info["final"] is False and info["unavailable"]["reason"] == "network"
    code, report = status_json(replica, out)
    assert code == 0 and report["complete"] is True  # a viewer outage does not make the mirror incomplete
    pending = report["previews"]["dataset"]
    assert pending["pending"] == len(datasets) and pending["pending_by_reason"] == {"network": len(datasets)}
    assert pending["ok"] == 0 and pending["definitive"] == 0 and pending["next_retry"]
    text = status(replica, out)[1]
    assert f"previews of datasets: 0 ok, 0 without a preview (final), {len(datasets)} pending" in text
    assert f"  pending: network {len(datasets)}; next retry from {pending['next_retry']}" in text

    # 2. The viewer is back, but the backoff (10 minutes by default) is not due: the viewer is asked nothing,
    #    the files stay as they are, the previews stay pending.
    before = previews(out)
    mark = replica.mark()
    waiting = run(replica, out)
    assert waiting.returncode == 0, waiting.stderr[-3000:]
    assert viewer_asked(replica, mark) == set()
    assert waiting.stat("hfscraper/previews/deferred") == len(datasets)
    assert warnings(waiting) == [(len(datasets), f"not asked again before their backoff: {len(datasets)}")]
    assert previews(out) == before
    assert status_json(replica, out)[1]["previews"]["dataset"]["pending"] == len(datasets)

    # 3. The backoff has elapsed (a tiny one): the plain re-run asks again and gets what a clean crawl got.
    mark = replica.mark()
    back = run(replica, out, HFSCRAPER_PREVIEWS_RETRY_MIN="0.01")
    assert back.returncode == 0, back.stderr[-3000:]
    assert viewer_asked(replica, mark) == set(datasets)
    assert previews(out) == previews(clean.output)
    code, report = status_json(replica, out)
    summary = report["previews"]["dataset"]
    assert code == 0
    assert summary["ok"] == sum(len(by.get(b, [])) for b in WITH_PREVIEW)
    assert summary["definitive_by_reason"] == {reason: len(by[b]) for b, reason in DEFINITIVE.items()}
    # Not computed yet is transient too: still pending, and said so.
    assert summary["pending"] == len(by["not_ready"])
    assert summary["pending_by_reason"] == {"not_ready": len(by["not_ready"])}
    not_ready = len(by["not_ready"])
    viewer = replica.datasets_server_url
    assert warnings(back) == [(not_ready, f"no final answer from the dataset viewer {viewer}: not_ready {not_ready}")]
    for repo_id in by["not_ready"]:
        assert preview(out, repo_id)["final"] is False
    for behaviour in (*WITH_PREVIEW, *DEFINITIVE):
        for repo_id in by.get(behaviour, []):
            assert preview(out, repo_id)["final"] is True


def test_a_definitive_answer_is_not_asked_again_a_transient_one_is(replica: ReplicaHandle, tmp_path: Path) -> None:
    out = tmp_path / "out"
    by = groups(replica)
    limited = by["ok"][0]  # the viewer rate-limits this one dataset for the whole first run
    replica.set_faults(
        [
            {
                "kind": "429",
                "rate": 1.0,
                "origin": "viewer",
                "path": re.escape(urlencode({"dataset": limited})) + "(&|$)",
                "retry_after": 0,
            }
        ]
    )
    try:
        first = run(replica, out)
    finally:
        replica.set_faults([])
    assert first.returncode == 0, first.stderr[-3000:]
    assert preview(out, limited)["unavailable"]["reason"] == "http_429" and preview(out, limited)["final"] is False
    assert warnings(first) == [
        (1 + len(by["not_ready"]), f"no final answer from the dataset viewer {replica.datasets_server_url}: "
                                   f"http_429 1, not_ready {len(by['not_ready'])}")
    ]  # fmt: skip

    mark = replica.mark()
    again = run(replica, out, HFSCRAPER_PREVIEWS_RETRY_MIN="0")
    assert again.returncode == 0, again.stderr[-3000:]
    # Only the transient ones are asked again; the viewer's final answers (and the previews it gave) stand.
    assert viewer_asked(replica, mark) == {limited, *by["not_ready"]}
    assert preview(out, limited)["unavailable"] is None and preview(out, limited)["final"] is True
    summary = status_json(replica, out)[1]["previews"]["dataset"]
    assert summary["pending_by_reason"] == {"not_ready": len(by["not_ready"])}


def test_a_new_version_is_asked_at_once(replica: ReplicaHandle, tmp_path: Path) -> None:
    # Last in this module: it changes the replica's Hub.
    out = tmp_path / "out"
    datasets = [e["id"] for e in public(replica.truth, "dataset")]
    down = run(replica, out, viewer=closed_port_url())
    assert down.returncode == 0, down.stderr[-3000:]
    changed = groups(replica)["ok"][-1]
    replica.mutate("dataset", touch=[changed])
    mark = replica.mark()
    after = run(replica, out)  # the backoff of the others is not due
    assert after.returncode == 0, after.stderr[-3000:]
    assert viewer_asked(replica, mark) == {changed}
    assert preview(out, changed)["final"] is True
    assert after.stat("hfscraper/previews/deferred") == len(datasets) - 1


def test_a_resumed_crawl_reaches_due_previews_listed_before_its_checkpoint(
    replica: ReplicaHandle, clean: CrawlResult, tmp_path: Path
) -> None:
    # The first run has the viewer down and loses its third listing page: it stops with a checkpoint after page 2,
    # and the datasets of pages 1-2 have pending previews. The resumed run must still reach them.
    out = tmp_path / "out"
    url: str | None = f"{replica.url}/api/datasets?sort=createdAt&limit=10"
    for _ in range(2):
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=30) as response:
            target = parse_link_next(response.headers.get_all("Link") or [])
        url = urllib.request.urljoin(url, target)
    third = re.search(r"cursor=[^&]+", url).group(0)  # type: ignore[union-attr,arg-type]
    replica.set_faults([{"kind": "5xx", "status": 503, "rate": 1.0, "path": re.escape(third)}])
    try:
        first = crawl(
            replica, "datasets", out, settings=SETTINGS, page_size=10,
            env_overrides={"HFSCRAPER_DATASETS_SERVER": closed_port_url()},
        )  # fmt: skip
    finally:
        replica.set_faults([])
    assert first.returncode == 1 and first.stat("finish_reason") == "listing_incomplete", first.stderr[-3000:]
    assert len(previews(out)) == 20

    resumed = crawl(replica, "datasets", out, settings={**SETTINGS, "HFSCRAPER_PREVIEWS_RETRY_MIN": "0"}, page_size=10)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "have a pending preview that is due again" in resumed.stderr
    # every preview is final but those the viewer has not made yet (as in a crawl with the viewer up all along; other
    # tests of this module change the Hub, so the files themselves are not compared with that crawl's)
    pending = {r for r in (e["id"] for e in public(replica.truth, "dataset")) if not preview(out, r)["final"]}
    assert pending == set(groups(replica)["not_ready"])
