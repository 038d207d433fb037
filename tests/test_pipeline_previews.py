"""Dataset previews and space details end to end: `scrapy crawl` against the replica's Hub and dataset viewer.

`preview_info.json` holds exactly what the viewer answered (compared with the replica's own answers), an
unavailable preview carries its reason (never a stub), the token never reaches the viewer, and a re-crawl of an
unchanged Hub asks the viewer nothing (before the backoff of its transient answers; tests/test_previews_transient.py
covers what happens after).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from hfscraper.hub import entity_folder_name
from tests.support.crawl import CrawlResult, crawl, public
from tests.support.replica import ReplicaHandle, run_replica

SEED = 25  # every viewer behaviour occurs among these 40 datasets
TOKEN = "hf_previews_token"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(
        tmp_dir=tmp_path_factory.mktemp("replica"), models=6, datasets=40, spaces=12, seed=SEED, approved_tokens=[TOKEN]
    ) as hub:
        yield hub


@pytest.fixture(scope="module")
def crawled(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("previews")
    mark = replica.mark()
    datasets = crawl(replica, "datasets", root / "out")
    spaces = crawl(replica, "spaces", root / "out")
    return {"root": root, "datasets": datasets, "spaces": spaces, "requests": replica.requests(since=mark)}


def viewer(replica: ReplicaHandle, endpoint: str, **params: str) -> tuple[int, dict[str, Any]]:
    url = f"{replica.datasets_server_url}{endpoint}?{urlencode(params)}"
    try:
        with _NO_PROXY.open(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def preview_of(result: CrawlResult, repo_id: str) -> dict[str, Any]:
    path = result.output / "datasets" / entity_folder_name(repo_id) / "preview_info.json"
    return json.loads(path.read_text(encoding="utf-8"))


def by_status(replica: ReplicaHandle) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for entity in public(replica.truth, "dataset"):
        groups.setdefault(entity["viewer"], []).append(entity)
    return groups


def test_the_seed_covers_every_viewer_behaviour(replica: ReplicaHandle) -> None:
    assert set(by_status(replica)) == {
        "ok", "preview_only", "rows_error", "not_ready", "error", "unauthorized", "not_found"
    }  # fmt: skip


def test_preview_info_holds_what_the_viewer_said(replica: ReplicaHandle, crawled: dict[str, Any]) -> None:
    result = crawled["datasets"]
    assert result.returncode == 0, result.stderr[-3000:]
    groups = by_status(replica)
    for entity in groups["ok"] + groups["preview_only"] + groups["rows_error"]:
        repo_id = entity["id"]
        preview = preview_of(result, repo_id)
        assert preview["dataset"] == repo_id and preview["unavailable"] is None
        assert (200, preview["is_valid"]) == viewer(replica, "/is-valid", dataset=repo_id)
        assert (200, preview["splits"]) == viewer(replica, "/splits", dataset=repo_id)
        assert (200, preview["info"]) == viewer(replica, "/info", dataset=repo_id)
        assert (200, preview["size"]) == viewer(replica, "/size", dataset=repo_id)
        splits = [s["split"] for s in preview["splits"]["splits"]]
        assert list(preview["first_rows"]) == [f"default/{s}" for s in splits]
        for split in splits:
            status, body = viewer(replica, "/first-rows", dataset=repo_id, config="default", split=split)
            if status == 200:
                assert preview["first_rows"][f"default/{split}"] == body
            else:
                error = {"status": status, "error_code": "StreamingRowsError", "error": body["error"]}
                assert preview["first_rows"][f"default/{split}"] == {"error": error}
                assert preview["errors"] == {f"/first-rows default/{split}": error}
        if entity["viewer"] != "rows_error":
            assert preview["errors"] == {}
        assert preview["is_valid"]["viewer"] is (entity["viewer"] != "preview_only")
        assert preview["info"]["partial"] is (entity["viewer"] == "preview_only")


@pytest.mark.parametrize(
    ("behaviour", "reason", "endpoint", "status", "code"),
    [
        ("not_ready", "not_ready", "/splits", 500, "ResponseNotReadyError"),
        ("error", "error", "/splits", 500, "UnexpectedError"),
        ("unauthorized", "unauthorized", "/is-valid", 401, "ExternalUnauthenticatedError"),
        ("not_found", "not_found", "/is-valid", 404, "ResponseNotFound"),
    ],
)
def test_an_unavailable_preview_carries_its_reason(
    replica: ReplicaHandle, crawled: dict[str, Any], behaviour: str, reason: str, endpoint: str, status: int,
    code: str,
) -> None:  # fmt: skip
    result = crawled["datasets"]
    for entity in by_status(replica)[behaviour]:
        preview = preview_of(result, entity["id"])
        unavailable = preview["unavailable"]
        expected_status, body = viewer(replica, endpoint, dataset=entity["id"])
        assert unavailable == {
            "reason": reason, "endpoint": endpoint, "status": status, "error_code": code, "error": body["error"],
        }  # fmt: skip
        assert expected_status == status and unavailable["error"]  # a reason, never a stub
        assert preview["splits"] is None and preview["first_rows"] == {} and preview["info"] is None
        if endpoint == "/splits":
            assert preview["is_valid"] == {"preview": False, "viewer": False, "search": False, "filter": False,
                                           "statistics": False}  # fmt: skip
    assert result.stat(f"hfscraper/previews/unavailable/{reason}") == len(by_status(replica)[behaviour])


def test_the_viewer_never_gets_the_token(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    result = crawl(replica, "datasets", tmp_path / "out", env_overrides={"HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr[-3000:]
    requests = replica.requests(since=mark)
    asked = [e for e in requests if e["origin"] == "viewer"]
    assert asked and not any(e["auth"] for e in asked)
    assert any(e["auth"] for e in requests if e["origin"] == "hub")  # the Hub did get it
    # Without the token the viewer cannot see gated datasets either: the reason says so.
    for entity in by_status(replica)["unauthorized"]:
        assert preview_of(result, entity["id"])["unavailable"]["reason"] == "unauthorized"


def test_space_details_come_from_the_listing(replica: ReplicaHandle, crawled: dict[str, Any]) -> None:
    result = crawled["spaces"]
    assert result.returncode == 0, result.stderr[-3000:]
    for entity in public(replica.truth, "space"):
        folder = result.output / "spaces" / entity_folder_name(entity["id"])
        api = entity["api"]
        card = api.get("cardData") or {}
        thumbnail = json.loads((folder / "thumbnail_info.json").read_text(encoding="utf-8"))
        assert thumbnail == {
            "id": entity["id"], "title": card.get("title"), "emoji": card.get("emoji"),
            "colorFrom": card.get("colorFrom"), "colorTo": card.get("colorTo"),
            "short_description": card.get("short_description"), "thumbnail": card.get("thumbnail"),
            "sdk": api.get("sdk"), "subdomain": api.get("subdomain"), "host": None,
        }  # fmt: skip
        relationships = json.loads((folder / "relationships.json").read_text(encoding="utf-8"))
        expected = {"id": entity["id"], "models": api.get("models", []), "datasets": api.get("datasets", [])}
        assert relationships == expected
    assert any(json.loads((result.output / "spaces" / entity_folder_name(e["id"]) / "relationships.json").read_text())
               ["models"] for e in public(replica.truth, "space"))  # fmt: skip
    assert not [p for p in (result.output / "datasets").rglob("thumbnail_info.json")]
    assert not [p for p in result.output.rglob("*") if p.name == "preview_info.json" and "spaces" in p.parts]


def test_a_recrawl_of_an_unchanged_hub_asks_the_viewer_nothing(replica: ReplicaHandle, crawled: dict[str, Any]) -> None:
    first = crawled["datasets"]
    not_ready = len(by_status(replica)["not_ready"])
    assert first.stat("hfscraper/previews/retry_later") == not_ready
    mark = replica.mark()
    again = crawl(replica, "datasets", crawled["root"] / "out")
    assert again.returncode == 0, again.stderr[-3000:]
    # Only the datasets whose preview is not computed yet are processed again (their stage is pending), and
    # their backoff is not due: the viewer is asked nothing.
    assert again.stat("hfscraper/previews/datasets") == again.stat("hfscraper/previews/deferred") == not_ready
    assert again.stat("deltafetch/skipped") == again.stat("hfscraper/spider/items") - not_ready
    assert [e for e in replica.requests(since=mark) if e["origin"] == "viewer"] == []
    # Asked again on request: DELTAFETCH_RESET.
    reset = crawl(replica, "datasets", crawled["root"] / "out", settings={"DELTAFETCH_RESET": "true"})
    assert reset.returncode == 0 and reset.stat("hfscraper/previews/datasets") == len(public(replica.truth, "dataset"))


def test_a_viewer_hiccup_is_retried_and_a_lasting_one_recorded(replica: ReplicaHandle, tmp_path: Path) -> None:
    rules = [
        {"kind": "5xx", "status": 503, "rate": 1.0, "count": 2, "origin": "viewer", "path": "^/is-valid"},
        {"kind": "5xx", "status": 502, "rate": 1.0, "origin": "viewer", "path": "^/size"},
    ]
    replica.set_faults(rules)
    try:
        result = crawl(replica, "datasets", tmp_path / "out")
    finally:
        replica.set_faults([])
    assert result.returncode == 0, result.stderr[-3000:]  # the viewer is not the Hub: the crawl is complete
    groups = by_status(replica)
    with_preview = groups["ok"] + groups["preview_only"] + groups["rows_error"]
    for entity in with_preview:
        preview = preview_of(result, entity["id"])
        assert preview["unavailable"] is None and preview["size"] is None
        assert preview["errors"]["/size"]["status"] == 502
        assert preview["final"] is False  # a gateway's 502 is not the viewer's last word: asked again later
    assert result.stat("hfscraper/previews/retry_later") == len(with_preview) + len(groups["not_ready"])
    assert result.stat("hfscraper/previews/endpoint_errors/size") == len(with_preview)
