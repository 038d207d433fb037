"""Bad input and faults, end to end: real `scrapy crawl` subprocesses against the replica's fault injection.

A burst of each fault on listing pages is ridden out (retried, every entity stored, a WARNING line and a
stats counter per retry); a fault that does not go away loses the page and the crawl says so (finish reason
`listing_incomplete`, exit code 1, an ERROR line); a refused cursor restarts the listing; hostile ids are
logged one clear line each.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.project import get_project_settings

from hfscraper.hub import HostileIdError, entity_folder_name, parse_link_next
from tests.support.crawl import PAGE_SIZE, REPO_ROOT, CrawlResult, _scrapy_command, crawl, public
from tests.support.replica import ReplicaHandle, run_replica

LISTING = r"^/api/datasets\?"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    # 3 dataset listing pages of 50
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=10, datasets=130, spaces=10, seed=11) as hub:
        yield hub


def crawl_with(replica: ReplicaHandle, tmp_path: Path, rules: list[dict[str, Any]], **kwargs: Any) -> CrawlResult:
    """Crawl the datasets with these fault rules in force; afterwards `rule["fired"]` says how often each fired."""
    replica.set_faults(rules)
    try:
        result = crawl(replica, "datasets", tmp_path / "out", **kwargs)
    finally:
        fired = [r["fired"] for r in replica.faults()]
        replica.set_faults([])
    for rule, count in zip(rules, fired, strict=True):
        rule["fired"] = count
    return result


def folders(entities: list[dict[str, Any]]) -> set[str]:
    return {entity_folder_name(e["id"]) for e in entities}


def lines(result: CrawlResult, level: str, needle: str) -> list[str]:
    return [line for line in result.stderr.splitlines() if f"] {level}: " in line and needle in line]


def listing_pages(replica: ReplicaHandle) -> list[tuple[str, list[dict[str, Any]]]]:
    """The dataset listing as the crawl asks for it: [(URL, entities)] page by page."""
    url: str | None = f"{replica.url}/api/datasets?sort=createdAt&limit={PAGE_SIZE}"
    pages = []
    while url:
        with _NO_PROXY.open(url, timeout=30) as response:
            pages.append((url, json.load(response)))
            target = parse_link_next(response.headers.get_all("Link") or [])
        url = target and urllib.request.urljoin(url, target)
    return pages


def assert_complete(result: CrawlResult, replica: ReplicaHandle) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stat("finish_reason") == "finished"
    assert set(result.metadata("dataset")) == folders(public(replica.truth, "dataset"))
    assert result.stat("hfscraper/spider/incomplete") is None
    assert "hfscraper: datasets: complete (finish reason finished" in result.stderr
    code, report = status(result.output)
    assert code == 0 and report["complete"] is True


def status(output: Path) -> tuple[int, dict[str, Any]]:
    """`scrapy status --json` for the crawl that wrote *output* (its state is in `output.parent / "state"`)."""
    command = [*_scrapy_command(), "status", "--json", "-s", f"HFSCRAPER_OUTPUT_DIR={output}"]
    command += ["-s", f"HFSCRAPER_STATE_DIR={output.parent / 'state'}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HFSCRAPER_", "HF_")) or k == "HFSCRAPER_IN_NETNS"}
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, json.loads(proc.stdout)


def assert_incomplete(result: CrawlResult) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stat("finish_reason") == "listing_incomplete"
    assert result.stat("hfscraper/spider/incomplete") >= 1
    assert "hfscraper: datasets: INCOMPLETE (finish reason listing_incomplete" in result.stderr
    assert lines(result, "ERROR", "The dataset listing is incomplete")
    assert "Traceback" not in result.stderr
    code, report = status(result.output)
    assert code == 1 and report["complete"] is False
    assert [(e["complete"], e["finish_reason"]) for e in report["listings"]] == [(False, "listing_incomplete")]


# Bad 200 bodies: retried by the spider (reason, the retry's log line).
BAD_BODIES = {"malformed_json": "invalid_json", "html200": "html", "not_a_list": "not_a_list"}
# Failures Scrapy's RetryMiddleware retries: the retry's log line.
TRANSIENT = {
    "5xx": "Retrying after HTTP 50",
    "reset": "Retrying after scrapy.exceptions.ResponseDataLossError",
    "truncate": "Retrying after scrapy.exceptions.ResponseDataLossError",
}


@pytest.mark.parametrize("kind", [*BAD_BODIES, *TRANSIENT])
def test_burst_on_listing_pages_is_retried(replica: ReplicaHandle, tmp_path: Path, kind: str) -> None:
    # At most RETRY_TIMES (3) firings in all, so no page can run out of retries.
    rule = {"kind": kind, "rate": 0.6, "count": 3, "path": LISTING}
    pages = len(listing_pages(replica))
    mark = replica.mark()
    result = crawl_with(replica, tmp_path, [rule])

    assert_complete(result, replica)
    fired = rule["fired"]
    assert fired >= 1, "the burst should have hit the crawl"
    served = [r for r in replica.requests(since=mark, origin="hub") if r["path"].startswith("/api/datasets?")]
    assert len(served) == pages + fired and sum(1 for r in served if r["fault"] == kind) == fired
    if kind in BAD_BODIES:
        reason = BAD_BODIES[kind]
        assert result.stat(f"hfscraper/spider/bad_page/{reason}") == fired
        assert result.stat(f"hfscraper/spider/retry/reason_count/bad_page/{reason}") == fired
        assert result.stat("hfscraper/spider/retry/count") == fired
        assert result.stat("hfscraper/spider/pages") == pages + fired
        retried = lines(result, "WARNING", f"Unusable listing page ({reason}: ")
        assert len(retried) == fired and all(re.search(r"retrying \(\d of 3\): http://", line) for line in retried)
        assert not [k for k in result.stats if k.startswith("retry/")]
    else:
        assert result.stat("retry/count") == fired
        assert sum(v for k, v in result.stats.items() if k.startswith("retry/reason_count/")) == fired
        if kind != "5xx":  # a cut body is never taken for a page (DOWNLOAD_FAIL_ON_DATALOSS)
            assert result.stat("retry/reason_count/scrapy.exceptions.ResponseDataLossError") == fired
        assert len(lines(result, "WARNING", TRANSIENT[kind])) == fired
        assert result.stat("hfscraper/spider/pages") == pages
        assert not [k for k in result.stats if "/bad_page/" in k]


@pytest.mark.parametrize("kind", [*BAD_BODIES, *TRANSIENT])
def test_permanent_fault_on_one_listing_page(replica: ReplicaHandle, tmp_path: Path, kind: str) -> None:
    pages = listing_pages(replica)
    second_url, second = pages[1]
    cursor = re.search(r"cursor=[^&]+", second_url).group(0)  # type: ignore[union-attr]
    rule = {"kind": kind, "rate": 1.0, "path": re.escape(cursor)}
    result = crawl_with(replica, tmp_path, [rule], settings={"RETRY_TIMES": "2"})

    assert_incomplete(result)
    assert rule["fired"] == 3  # the first try and 2 retries
    written = set(result.metadata("dataset"))
    assert folders(pages[0][1]) <= written
    assert not written & folders(second)
    if kind in BAD_BODIES:
        reason = BAD_BODIES[kind]
        assert result.stat("hfscraper/spider/retry/max_reached") == 1
        assert result.stat(f"hfscraper/spider/bad_page/{reason}") == 3
        assert len(lines(result, "ERROR", f"Unusable listing page ({reason}: ")) == 1
    else:
        assert result.stat("retry/max_reached") == 1
        assert len(lines(result, "ERROR", "Listing page lost (")) == 1
    assert len(lines(result, "ERROR", "Gave up retrying")) == 1
    # The crawl goes on where it can: a cut JSON body still carries the Hub's Link header, so the pages
    # after the lost one are fetched; an HTML page, an object or a failed fetch has no link to follow.
    later = set().union(*(folders(p) for _, p in pages[2:]))
    if kind == "malformed_json":
        assert later <= written
    else:
        assert not later & written


def test_redirect_loop_on_a_listing_page(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    rule = {"kind": "redirect_loop", "rate": 1.0, "path": LISTING + ".*cursor="}
    result = crawl_with(replica, tmp_path, [rule])

    assert_incomplete(result)
    assert rule["fired"] == 21  # the first request and REDIRECT_MAX_TIMES (20) redirects
    looped = [r for r in replica.requests(since=mark, origin="hub") if r["fault"] == "redirect_loop"]
    assert len({r["path"] for r in looped}) == 1  # one page, fetched again and again
    assert result.stat("hfscraper/redirect/max_reached") == 1
    assert result.stat("hfscraper/spider/bad_page/IgnoreRequest") == 1
    assert len(lines(result, "WARNING", "Redirect limit reached (20 redirects, REDIRECT_MAX_TIMES=20)")) == 1
    assert len(lines(result, "ERROR", "Listing page lost (max redirections reached): http://")) == 1
    assert len(result.metadata("dataset")) == PAGE_SIZE


def test_429_storm_completes(replica: ReplicaHandle, tmp_path: Path) -> None:
    # More 429s in a row than RETRY_TIMES allows retries: only pacing (hfscraper.middlewares.ratelimit)
    # waits them out; Scrapy's RetryMiddleware alone would give up on the first page.
    rule = {"kind": "429", "rate": 1.0, "count": 5, "retry_after": 1, "path": LISTING}
    mark = replica.mark()
    started = time.monotonic()
    result = crawl_with(replica, tmp_path, [rule])

    assert_complete(result, replica)
    assert rule["fired"] == 5
    served = replica.requests(since=mark, origin="hub")
    assert sum(1 for r in served if r["status"] == 429) == 5
    assert time.monotonic() - started >= 4  # each 429 asked for a second's pause


def test_refused_cursor_restarts_the_listing(replica: ReplicaHandle, tmp_path: Path) -> None:
    pages = listing_pages(replica)
    third = re.search(r"cursor=[^&]+", pages[2][0]).group(0)  # type: ignore[union-attr]
    rule = {"kind": "expire_cursor", "rate": 1.0, "count": 1, "path": re.escape(third)}
    mark = replica.mark()
    result = crawl_with(replica, tmp_path, [rule])

    assert_complete(result, replica)
    assert rule["fired"] == 1
    assert result.stat("hfscraper/spider/listing_restarts") == 1
    assert result.stat("hfscraper/spider/bad_page/cursor_refused") == 1
    warned = lines(result, "WARNING", "The Hub refused the dataset listing cursor (HTTP 400 InvalidCursor)")
    assert len(warned) == 1 and "restart 1 of 3" in warned[0]
    # the first two pages came twice, their entities were written once (the second time they are
    # unchanged, or skipped as this crawl's own duplicates)
    served = [r["path"] for r in replica.requests(since=mark, origin="hub") if r["path"].startswith("/api/datasets?")]
    assert collections.Counter(served).most_common(2)[1][1] == 2 and len(served) == len(pages) + 3
    assert result.stat("hfscraper/store/written") == len(public(replica.truth, "dataset"))


def test_cursor_refused_for_good_ends_incomplete(replica: ReplicaHandle, tmp_path: Path) -> None:
    rule = {"kind": "expire_cursor", "rate": 1.0, "path": LISTING}
    result = crawl_with(replica, tmp_path, [rule])

    assert_incomplete(result)
    assert rule["fired"] == 4  # the first refusal and one after each of the 3 restarts
    assert result.stat("hfscraper/spider/listing_restarts") == 3
    assert len(lines(result, "ERROR", "The Hub refused the dataset listing cursor again after 3 restarts")) == 1
    assert set(result.metadata("dataset")) == folders(listing_pages(replica)[0][1])


def test_truncated_bodies_are_never_pages() -> None:
    # Scrapy's default, which the project must keep: a body shorter than its Content-Length is an error
    # (retried), not a page. Set nowhere in hfscraper: settings.py and defaults.toml leave it alone.
    assert get_project_settings().getbool("DOWNLOAD_FAIL_ON_DATALOSS") is True


# -- hostile ids --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=20, datasets=5, spaces=5, seed=3, hostile_ids=True
    ) as handle:
        yield handle


def test_hostile_ids_are_logged_one_clear_line_each(hostile_replica: ReplicaHandle, tmp_path: Path) -> None:
    result = crawl(hostile_replica, "models", tmp_path / "out")
    assert result.returncode == 0 and result.stat("finish_reason") == "finished", result.stderr[-3000:]
    refused = collections.Counter()
    for entity in public(hostile_replica.truth, "model"):
        try:
            entity_folder_name(entity["id"])
        except HostileIdError as exc:
            refused[exc.reason] += 1
    assert refused
    warned = lines(result, "WARNING", "Not storing entity ")
    assert len(warned) == sum(refused.values())
    for reason, n in refused.items():
        assert sum(1 for line in warned if f"refused repository id ({reason})" in line) == n
        assert result.stat(f"hfscraper/store/refused/{reason}") == n
    # ids are shown escaped: no control character reaches the log, and every line stays one line
    assert not any(ch in line for line in warned for ch in "\x00\x01\x1b\r\t\u202e")
