"""`scrapy hubcheck` against the replica: every check holds on it, a fault that changes one assumption is reported
as DRIFT naming that check (exit 1), an unreachable Hub is exit 2, and the token goes to the Hub's origin only."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.support.crawl import crawl
from tests.support.replica import ReplicaHandle, replica_fixture

replica = replica_fixture(models=30, datasets=8, spaces=8, seed=3)

TOKEN = "hf_" + "hubcheckTokenThatMustStayOnTheHub0123"  # built at run time: not a secret-scanner match


def hubcheck(replica: ReplicaHandle, tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> Any:
    return crawl(
        replica, "", tmp_path / "out", command_name="hubcheck", page_size=None, options=list(options), env_overrides=env
    )


@pytest.fixture(autouse=True)
def _no_faults(replica: ReplicaHandle) -> None:
    replica.set_faults([])


def checks(result: Any) -> dict[str, dict[str, Any]]:
    payload = json.loads(result.stdout)
    return {c["name"]: c for c in payload["checks"]}


def test_every_check_holds_on_the_replica(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    result = hubcheck(replica, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"hubcheck of {replica.url}")
    assert "DRIFT" not in result.stdout
    assert lines[-1].startswith("all ") and " checks hold; " in lines[-1]
    sent = replica.requests(mark)
    # It says what it cost, and that is what the Hub (and its viewer and CDN) saw.
    assert f"; {len(sent)} requests (" in lines[-1]
    assert len(sent) <= 22
    table = result.stdout
    for name in (
        "models listing",
        'Link rel="next" cursor',
        "expand vocabulary",
        "case-insensitive id",
        "missing repo",
        "renamed repo",
        "unknown sub-path",
        "gated file, anonymous",
        "small file 307",
        "small file bytes",
        "LFS file 302",
        "CDN download",
        "viewer is-valid",
        "viewer first-rows",
        "RateLimit (api)",
        "RateLimit (resolvers)",
    ):
        assert name in table


@pytest.mark.parametrize(
    ("rule", "drifted"),
    [
        ({"kind": "corrupt", "origin": "hub", "path": "^/api/resolve-cache/"}, {"small file bytes"}),
        ({"kind": "corrupt", "origin": "cdn"}, {"CDN download"}),
        ({"kind": "not_a_list", "origin": "hub", "path": "^/api/spaces"}, {"spaces listing (expand as the crawler)"}),
        (
            {"kind": "expire_cursor", "origin": "hub", "path": "^/api/models"},
            {"models listing, next page", "cursor paging"},
        ),
        ({"kind": "html200", "origin": "viewer", "path": "^/is-valid"}, {"viewer is-valid"}),
    ],
)
def test_a_changed_assumption_is_drift_naming_the_check(
    replica: ReplicaHandle, tmp_path: Path, rule: dict[str, Any], drifted: set[str]
) -> None:
    replica.set_faults([rule])
    result = hubcheck(replica, tmp_path, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    found = checks(result)
    assert {name for name, c in found.items() if not c["ok"]} == drifted


def test_unreachable_hub_is_exit_2_in_one_line(replica: ReplicaHandle, tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = hubcheck(replica, tmp_path, env={"HF_ENDPOINT": f"http://127.0.0.1:{port}"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"could not reach http://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_token_goes_to_the_hub_only_and_is_never_printed(replica: ReplicaHandle, tmp_path: Path) -> None:
    mark = replica.mark()
    result = hubcheck(replica, tmp_path, env={"HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stdout + result.stderr
    sent = replica.requests(mark)
    assert {r["origin"] for r in sent} == {"hub", "cdn", "viewer"}
    assert not [r for r in sent if r["origin"] != "hub" and r["auth"]]
    hub = [r for r in sent if r["origin"] == "hub"]
    # Every Hub request carried it except the one that checks what an anonymous caller gets for a gated file.
    assert [r["path"] for r in hub if not r["auth"]] == [r["path"] for r in hub if "/resolve/main/" in r["path"]]
    assert TOKEN not in result.stdout + result.stderr


withdrawn = replica_fixture(models=12, datasets=3, spaces=3, seed=4, extra_args=["--withdraw-expand", "gguf"])


def test_a_dropped_expand_field_is_named_by_hubcheck_and_the_crawl(withdrawn: ReplicaHandle, tmp_path: Path) -> None:
    # The Hub stops accepting a field the crawler asks for: hubcheck names it, and a crawl stops its listing with
    # one line naming it and the setting to change (not "Listing page lost (HTTP 400)").
    result = hubcheck(withdrawn, tmp_path, "--json")
    assert result.returncode == 1
    found = checks(result)
    assert not found["expand vocabulary"]["ok"]
    assert found["expand vocabulary"]["observed"] == "missing: gguf"

    crawled = crawl(withdrawn, "models", tmp_path / "crawl", settings={"HFSCRAPER_FILES_ENABLED": "false"})
    assert crawled.returncode == 1
    errors = [line for line in crawled.stderr.splitlines() if "ERROR" in line]
    refusal = [line for line in errors if "expand field(s) gguf" in line]
    assert len(refusal) == 1, errors
    assert "HFSCRAPER_CRAWL_EXPAND_MODELS" in refusal[0]
    assert "Listing page lost" not in crawled.stderr
    assert "Traceback" not in crawled.stderr
    assert crawled.stat("finish_reason") == "listing_incomplete"
    assert crawled.stat("hfscraper/spider/bad_page/expand_refused") == 1
