"""scrapyd deployment, end to end: a real scrapyd (the pinned one in the venv) on loopback, the project deployed to it
with `make deploy`, `models` scheduled against the Hub replica, and a job cancelled once and resumed.

scrapyd's environment carries HF_ENDPOINT (the fast replica) and HF_TOKEN; every job gets it. The cancel/resume jobs
name a slower replica with `setting=HFSCRAPER_HUB_ENDPOINT=...`, as a user could per job.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import string
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.hub import entity_folder_name
from hfscraper.replica import shapes
from tests.support.crawl import crawl_env, parse_stats, public
from tests.support.replica import ReplicaHandle, run_replica
from tests.support.scrapyd import PROJECT, REPO_ROOT, ScrapydHandle, deploy, run_scrapyd

# built at run time, so no secret scanner flags it
TOKEN = "hf_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(37))
LITTER = ("setup.py", "build", "project.egg-info", "hfscraper.egg-info")
PAGE_SIZE = 20
METADATA_ONLY = {"HFSCRAPER_FILES_ENABLED": "false", "HFSCRAPER_PREVIEWS_ENABLED": "false"}


@dataclass
class Deployed:
    server: ScrapydHandle
    answer: dict[str, Any]
    litter_before: set[str]
    litter_after: set[str]


def litter() -> set[str]:
    return {name for name in LITTER if (REPO_ROOT / name).exists()}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=40, datasets=5, spaces=5, seed=3, approved_tokens=[TOKEN]
    ) as handle:
        yield handle


@pytest.fixture(scope="module")
def slow_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    # enough pages (30 of 20) and latency that a cancel lands mid-listing
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("slow-replica"),
        models=600, datasets=5, spaces=5, seed=4, latency_ms=40, approved_tokens=[TOKEN],
    ) as handle:  # fmt: skip
        yield handle


@pytest.fixture(scope="module")
def deployed(hub: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    base = tmp_path_factory.mktemp("scrapyd")
    env = crawl_env(hub, base / "out", {"HF_TOKEN": TOKEN})
    with run_scrapyd(base / "server", env) as server:
        before = litter()
        result = deploy(server.url)
        assert result.returncode == 0, result.stdout + result.stderr
        # scrapyd-deploy prints the server's answer as the last line of stdout
        answer = json.loads(result.stdout.strip().splitlines()[-1])
        yield Deployed(server, answer, before, litter())


def wait_for_listing_pages(replica: ReplicaHandle, since: int, pages: int, server: ScrapydHandle, job: str) -> None:
    deadline = time.monotonic() + 30
    while len(listing_requests(replica, since)) < pages:
        found = server.state(job)
        assert found is None or found[0] != "finished", "the job ended before it could be cancelled"
        assert time.monotonic() < deadline, f"fewer than {pages} listing pages in 30 s"
        time.sleep(0.01)


def listing_requests(replica: ReplicaHandle, since: int) -> list[dict[str, Any]]:
    return [r for r in replica.requests(since=since, origin="hub") if r["path"].partition("?")[0] == "/api/models"]


def feed_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def written_metadata(output: Path) -> dict[str, dict[str, Any]]:
    root = output / OUTPUT_FOLDERS["model"]
    return {d.name: json.loads((d / "metadata.json").read_text(encoding="utf-8")) for d in root.iterdir()}


def scrapyd_verdicts(server: ScrapydHandle, job: str) -> list[str]:
    """scrapyd's own lines about *job*'s process: how it ended and what the crawl printed on stderr."""
    ending = re.compile(rf"Process (finished|died: exitstatus=\d+):? .*job='{job}'")
    deadline = time.monotonic() + 5
    while True:  # listjobs.json may list the job as finished a moment before its line reaches the log file
        text = (server.workdir / "scrapyd.stderr").read_text(encoding="utf-8", errors="replace")
        if ending.search(text) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    pid = re.search(rf"Process started: .*job='{job}' pid=(\d+)", text)
    assert pid, f"scrapyd never started job {job}"
    said = re.findall(rf"\[Launcher,{pid.group(1)}/stderr\] (hfscraper: .*)", text)
    return ending.findall(text) + said


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if re.match(r"\S+ \S+ \[[^\]]+\] (ERROR|CRITICAL):", line)]


def assert_no_token(*roots: Path) -> None:
    needles = {TOKEN.encode(), quote(TOKEN, safe="").encode()}
    hits = []
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            hits += [str(path) for needle in needles if needle in data]
    assert not hits, f"the token was written to {hits}"


# -- deploy -------------------------------------------------------------------------------------------------


def test_make_deploy_ships_the_package_without_litter(deployed: Deployed) -> None:
    server = deployed.server
    assert deployed.answer["status"] == "ok" and deployed.answer["project"] == PROJECT
    assert deployed.answer["spiders"] == 3
    # the egg is built in a throwaway copy: no setup.py, build/ or *.egg-info appear in the work tree
    assert deployed.litter_after == deployed.litter_before
    assert server.call("listprojects.json")["projects"] == [PROJECT]
    spiders = server.call("listspiders.json", [("project", PROJECT)])["spiders"]
    assert sorted(spiders) == ["datasets", "models", "spaces"]

    (egg,) = (server.workdir / "eggs" / PROJECT).glob("*.egg")
    with zipfile.ZipFile(egg) as archive:
        names = set(archive.namelist())
        entry_points = archive.read("EGG-INFO/entry_points.txt").decode()
    shipped = {n for n in names if not n.startswith("EGG-INFO/")}
    # every module and data file of the package (the packaged defaults included), and nothing else: no tests/
    source = {
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / "hfscraper").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".") and p.suffix != ".pyc"
    }
    assert "hfscraper/defaults.toml" in shipped
    assert shipped == source, (sorted(source - shipped), sorted(shipped - source))
    assert re.search(r"^settings = hfscraper\.settings$", entry_points, re.M)


# -- schedule -----------------------------------------------------------------------------------------------


def test_scheduled_models_crawl_mirrors_the_replica(deployed: Deployed, hub: ReplicaHandle, tmp_path: Path) -> None:
    server = deployed.server
    out, state, jobdir = tmp_path / "out", tmp_path / "state", tmp_path / "job"
    mark = hub.mark()
    job = server.schedule(
        "models", {"JOBDIR": str(jobdir), "HFSCRAPER_OUTPUT_DIR": str(out), "HFSCRAPER_STATE_DIR": str(state)}
    )
    entry = server.wait(job, timeout=60)
    assert entry["spider"] == "models"

    expected = {entity_folder_name(e["id"]): e for e in public(hub.truth, "model")}
    written = written_metadata(out)
    assert set(written) == set(expected)
    for folder, metadata in written.items():
        truth_api = expected[folder]["api"]
        assert metadata["id"] == expected[folder]["id"]
        assert all(metadata[key] == shapes.listing_value(key, truth_api[key]) for key in metadata), folder
        assert (out / OUTPUT_FOLDERS["model"] / folder / "ipfs_cid.txt").is_file()
    # written by a child process (python -m hfscraper.provenance), which must find the package in the egg too
    assert (out / "provenance" / "provenance_nodes.parquet").is_file()
    assert sorted(feed_ids(server.items_path("models", job))) == sorted(e["id"] for e in expected.values())

    log = server.log("models", job)
    stats = parse_stats(log)
    assert stats["finish_reason"] == "finished"
    assert stats["item_scraped_count"] == len(expected)
    assert "hfscraper/spider/incomplete" not in stats
    assert "Crawl #1 of the model listing is complete" in log
    assert not error_lines(log), error_lines(log)
    assert scrapyd_verdicts(server, job) == [
        "finished", f"hfscraper: models: complete (finish reason finished, {len(expected)} items)"
    ]  # fmt: skip
    # the token from scrapyd's environment reached the Hub, and was written nowhere
    assert all(r["auth"] for r in hub.requests(since=mark, origin="hub"))
    assert_no_token(server.workdir, out, state, jobdir)


def test_cancel_once_then_reschedule_resumes(deployed: Deployed, slow_hub: ReplicaHandle, tmp_path: Path) -> None:
    server = deployed.server
    out, state, jobdir = tmp_path / "out", tmp_path / "state", tmp_path / "job"
    settings = {
        "JOBDIR": str(jobdir), "HFSCRAPER_OUTPUT_DIR": str(out), "HFSCRAPER_STATE_DIR": str(state),
        "HFSCRAPER_HUB_ENDPOINT": slow_hub.url, "HFSCRAPER_CRAWL_PAGE_SIZE": str(PAGE_SIZE), **METADATA_ONLY,
    }  # fmt: skip
    expected = {e["id"] for e in public(slow_hub.truth, "model")}

    mark = slow_hub.mark()
    first = server.schedule("models", settings)
    wait_for_listing_pages(slow_hub, mark, 8, server, first)
    assert server.cancel(first)["prevstate"] == "running"  # one SIGINT: a graceful stop
    server.wait(first, timeout=30)
    log = server.log("models", first)
    stats = parse_stats(log)
    assert stats["finish_reason"] == "shutdown"
    assert "stopped on request (finish reason shutdown)" in log
    first_ids = feed_ids(server.items_path("models", first))
    assert 0 < len(first_ids) < len(expected)
    assert scrapyd_verdicts(server, first) == [
        "died: exitstatus=1", f"hfscraper: models: stopped (finish reason shutdown, {len(first_ids)} items)"
    ]  # fmt: skip

    mark = slow_hub.mark()
    second = server.schedule("models", settings)
    server.wait(second, timeout=60)
    log = server.log("models", second)
    stats = parse_stats(log)
    assert stats["finish_reason"] == "finished"
    assert "Resuming crawl" in log and "Crawl #1 of the model listing is complete" in log
    # continued from the checkpoint, not from the first page; the page the JOBDIR still queued was dropped
    page = stats["hfscraper/resume/page"]
    assert stats["hfscraper/resume/resumed"] == 1 and page >= 2
    assert stats["hfscraper/spider/stale_listing_request"] == 1
    assert len(listing_requests(slow_hub, mark)) <= math.ceil(len(expected) / PAGE_SIZE) - page + 2
    # nothing lost, nothing repeated: every public model in exactly one of the two jobs' feeds, and on disk
    assert sorted(first_ids + feed_ids(server.items_path("models", second))) == sorted(expected)
    assert {m["id"] for m in written_metadata(out).values()} == expected
    assert not error_lines(log), error_lines(log)
    assert scrapyd_verdicts(server, second)[0] == "finished"
    assert_no_token(server.workdir, out, state, jobdir)
