"""Header names: the replica's responses carry the headers real huggingface.co responses carry.

Every recorded response in tests/data/hub_fixtures that has a header set
(huggingface_hub's vcrpy cassettes, and the third-party captures of resolve
redirects and of rate-limited API answers) is replayed as the corresponding
request against the replica: same endpoint and query shape, on a synthetic repo
in the same situation (plain, renamed, a Space's runtime, a small or an LFS
file).  The header *names* must match case-insensitively, apart from the ones
listed below with the reason they are left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.support.http import Fetched, fetch
from tests.support.replica import replica_fixture

FIXTURES = Path(__file__).resolve().parent / "data" / "hub_fixtures"

# Recorded, but not something the Hub application sends (or not comparable on loopback).
IGNORED_RECORDED = {
    "via": "added by CloudFront, the CDN in front of huggingface.co",
    "x-amz-cf-pop": "CloudFront edge location",
    "x-amz-cf-id": "CloudFront request id",
    "x-cache": "CloudFront cache status",
    "date": "set by whatever HTTP server answers; aiohttp sends it too, not worth comparing",
    "connection": "hop-by-hop (keep-alive) header, depends on the client's connection handling",
    "transfer-encoding": "hop-by-hop: chunked vs Content-Length depends on the proxy and compression",
    "content-encoding": "CloudFront gzips for clients that accept it; the replica never compresses",
    "content-length": "absent from chunked captures; the replica always declares it (checked elsewhere)",
}

# Sent by the replica although absent from (some) recordings, with the reason.
ALLOWED_EXTRA = {
    "server": "added by aiohttp (the real origin's is dropped by CloudFront)",
    "date": "added by aiohttp",
    "content-length": "the replica never chunks",
    "ratelimit": "sent on every response since Sept 2025 (hub-docs rate-limits.md); the 2025 cassettes predate it",
    "ratelimit-policy": "as RateLimit",
    "access-control-max-age": "present in the 2026 captures, not in the 2025 cassettes",
    "etag": "the replica's error answers are JSON with a weak ETag like every other JSON answer",
}


replica = replica_fixture(models=120, datasets=40, spaces=40, seed=5)


def names(headers: Any) -> set[str]:
    if isinstance(headers, dict):
        return {k.lower() for k in headers}
    return {k.lower() for k, _ in headers}


def compare(recorded: set[str], response: Fetched, context: str, subset: bool = False) -> None:
    got = response.header_names()
    wanted = recorded - set(IGNORED_RECORDED)
    missing = wanted - got
    assert not missing, f"{context}: replica lacks recorded headers {sorted(missing)}"
    if not subset:
        extra = got - recorded - set(ALLOWED_EXTRA)
        assert not extra, f"{context}: replica sends headers no recording has {sorted(extra)}"


def cassettes() -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    return sorted((FIXTURES / "huggingface_hub_cassettes").glob("*.json"))


def public(hub: Any, kind: str, **want: Any) -> dict[str, Any]:
    for entity in hub.truth[kind]:
        if entity["private"] or entity["gated"] or entity["disabled"]:
            continue
        if want.get("renamed") and not entity["renamed_from"]:
            continue
        if want.get("lfs") is not None and not any(f["lfs"] == want["lfs"] for f in entity["files"]):
            continue
        return entity
    pytest.fail(f"no public {kind} with {want} in this synthetic hub (the seed must hold one)")


def replica_url_for(hub: Any, uri: str, status: int) -> str:
    """The replica request that corresponds to a recorded one."""
    parts = urlsplit(uri)
    query = f"?{parts.query}" if parts.query else ""
    segments = parts.path.split("/")
    kind = segments[2]  # models | spaces
    if status == 307:
        entity = public(hub, kind, renamed=True)
        return f"{hub.url}/api/{kind}/{quote(entity['renamed_from'][0])}{query}"
    entity = public(hub, kind)
    if parts.path.endswith("/runtime"):
        return f"{hub.url}/api/{kind}/{quote(entity['id'])}/runtime{query}"
    if "/revision/" in parts.path:
        return f"{hub.url}/api/{kind}/{quote(entity['id'])}/revision/main{query}"
    return f"{hub.url}/api/{kind}/{quote(entity['id'])}{query}"


@pytest.mark.parametrize("path", cassettes(), ids=lambda p: p.stem)
def test_cassette_header_names(replica: Any, path: Path) -> None:
    recorded = json.loads(path.read_text(encoding="utf-8"))
    status = recorded["response"]["status"]["code"]
    url = replica_url_for(replica, recorded["request"]["uri"], status)
    response = fetch(url)
    assert response.status == status, (url, response.body[:200])
    compare(names(recorded["response"]["headers"]), response, path.name)
    recorded_type = recorded["response"]["headers"]["Content-Type"][0]
    assert response.header("Content-Type") == recorded_type


def captures(name: str) -> list[dict[str, Any]]:
    path = FIXTURES / "third_party_captures" / name
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["examples"]


def test_api_json_headers_match_the_2026_capture(replica: Any) -> None:
    example = next(e for e in captures("ratelimit_header_examples.json") if "full_header_list" in e)
    entity = public(replica, "models")
    response = fetch(f"{replica.url}/api/models/{quote(entity['id'])}")
    compare(names(example["full_header_list"]), response, "API JSON 200 (2026)")
    assert (
        response.header("Access-Control-Expose-Headers")
        == dict(example["full_header_list"])["Access-Control-Expose-Headers"]
    )


def test_small_file_resolve_307_headers_match_the_capture(replica: Any) -> None:
    example = next(
        e for e in captures("resolve_header_examples.json") if e["status"] == 307 and len(e.get("headers", [])) > 3
    )
    entity = public(replica, "models", lfs=False)
    file = next(f for f in entity["files"] if not f["lfs"])
    response = fetch(f"{replica.url}/{quote(entity['id'])}/resolve/main/{quote(file['path'])}", method="HEAD")
    assert response.status == 307
    compare(names(example["headers"]), response, "resolve 307")
    assert response.header("Content-Type") == dict(example["headers"])["Content-Type"]


def test_lfs_resolve_302_headers_match_the_captures(replica: Any) -> None:
    examples = [e for e in captures("resolve_header_examples.json") if e["status"] == 302]
    assert examples
    entity = public(replica, "models", lfs=True)
    file = next(f for f in entity["files"] if f["lfs"])
    response = fetch(f"{replica.url}/{quote(entity['id'])}/resolve/main/{quote(file['path'])}", method="HEAD")
    assert response.status == 302
    for example in examples:
        recorded = names(example.get("headers") or example.get("headers_subset") or [])
        # These captures list only some headers: check that each recorded one is there.
        compare(recorded, response, f"resolve 302 ({example['source'][:40]})", subset=True)
    assert "x-xet-hash" not in response.header_names()  # no Xet in the replica (huggingface_hub _xet.py)


def test_ratelimit_header_shapes_match_the_captures(replica: Any) -> None:
    for example in captures("ratelimit_header_examples.json"):
        lowered = {k.lower(): v for k, v in example.items() if isinstance(v, str)}
        if "ratelimit" not in lowered:
            continue
        bucket = lowered["ratelimit"].split(";")[0].strip('"')
        url = {"api": "/api/models?limit=1", "resolvers": None, "pages": "/"}[bucket]
        if url is None:
            entity = public(replica, "models", lfs=False)
            file = next(f for f in entity["files"] if not f["lfs"])
            url = f"/{quote(entity['id'])}/resolve/main/{quote(file['path'])}"
        response = fetch(replica.url + url, method="HEAD")
        got = response.header("RateLimit") or ""
        policy = response.header("RateLimit-Policy") or ""
        assert got.split(";")[0] == lowered["ratelimit"].split(";")[0]
        assert [p.split("=")[0] for p in got.split(";")] == [p.split("=")[0] for p in lowered["ratelimit"].split(";")]
        recorded_policy = lowered["ratelimit-policy"]
        assert [p.split("=")[0] for p in policy.split(";")] == [p.split("=")[0] for p in recorded_policy.split(";")]


def test_error_headers_carry_the_recorded_codes(replica: Any) -> None:
    examples = {e["case"]: e for e in captures("error_examples.json")}
    missing = fetch(f"{replica.url}/api/models/nobody/nothing")
    case = examples["repo does not exist, anonymous"]
    assert missing.status == case["status"] and missing.header("X-Error-Message") == case["x-error-message"]
    rename = examples["renamed repo on API"]
    entity = public(replica, "models", renamed=True)
    redirect = fetch(f"{replica.url}/api/models/{quote(entity['renamed_from'][0])}")
    assert redirect.status == rename["status"]
    assert redirect.header("Content-Type") == rename["headers"]["Content-Type"]
    assert redirect.header("Vary") == rename["headers"]["Vary"]
    assert redirect.body.decode().startswith("Temporary Redirect. Redirecting to /api/models/")
