"""The Hub replica over real HTTP: listings, entities, trees, downloads, errors, rate limits, faults, logs.

Every test talks to a real ``python -m hfscraper.replica`` subprocess (see
tests/support/replica.py) and checks it against the ground truth it wrote and
against what huggingface.co does (tests/data/hub_fixtures, huggingface_hub's client code).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import time
import urllib.error
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urljoin, urlsplit

import pytest

from tests.support.http import Fetched, fetch, follow
from tests.support.replica import ReplicaError, replica_fixture, run_replica

APPROVED = "hf_approved_token_for_tests"
USER = "hf_plain_user_token"
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
SORTS = {
    "model": ("trendingScore", "lastModified", "createdAt", "downloads", "likes"),
    "dataset": ("trendingScore", "lastModified", "createdAt", "downloads", "likes"),
    "space": ("trendingScore", "lastModified", "createdAt", "likes"),
}
LINK_RE = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')
REQUEST_ID_RE = re.compile(
    r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
)
RATELIMIT_RE = re.compile(r'^"(?P<bucket>api|resolvers|pages)";r=(?P<r>\d+);t=(?P<t>\d+)$')
POLICY_RE = re.compile(r'^"fixed window";"(?P<bucket>api|resolvers|pages)";q=(?P<q>\d+);w=(?P<w>\d+)$')

replica = replica_fixture(models=300, datasets=100, spaces=100, seed=7, approved_tokens=[APPROVED])


# ------------------------------------------------------------------------------------------------ helpers
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def entities(hub: Any, repo_type: str) -> list[dict[str, Any]]:
    return hub.truth[PLURAL[repo_type]]


def pick(
    hub: Any, repo_type: str, *, lfs: bool | None = None, small: bool | None = None, **status: Any
) -> dict[str, Any]:
    """The first truth entity with these statuses (private/gated/disabled) and, if asked, an LFS or small file."""
    defaults = {"private": False, "gated": False, "disabled": False}
    defaults.update(status)
    for entity in entities(hub, repo_type):
        if any(entity[key] != value and not (value is True and entity[key]) for key, value in defaults.items()):
            continue
        if lfs and not any(f["lfs"] for f in entity["files"]):
            continue
        if small and not any(not f["lfs"] for f in entity["files"]):
            continue
        return entity
    pytest.fail(f"the synthetic hub has no {repo_type} with {defaults} lfs={lfs} small={small}")


def prefix(repo_type: str) -> str:
    return "" if repo_type == "model" else PLURAL[repo_type] + "/"


def expected_order(hub: Any, repo_type: str, sort: str, private: bool = False) -> list[str]:
    """Descending on the sort value, ties by ascending _id, missing values last (the Hub's keyset order)."""

    def number(value: Any) -> float:
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        return float(value)

    chosen = [e for e in entities(hub, repo_type) if private or not e["private"]]

    def key(entity: dict[str, Any]) -> tuple[int, float, str]:
        value = entity["api"].get(sort)
        return (1, 0.0, entity["api"]["_id"]) if value is None else (0, -number(value), entity["api"]["_id"])

    return [e["id"] for e in sorted(chosen, key=key)]


def crawl(url: str, headers: dict[str, str] | None = None, max_pages: int = 500) -> tuple[list[Any], list[Fetched]]:
    """Follow Link rel=next like huggingface_hub's paginate(); returns all items and every page response."""
    items: list[Any] = []
    pages: list[Fetched] = []
    next_url: str | None = url
    while next_url is not None:
        page = fetch(next_url, headers=headers)
        assert page.status == 200, (page.status, page.body[:300], next_url)
        pages.append(page)
        body = page.json()
        assert isinstance(body, list)
        items.extend(body)
        link = page.header("Link")
        next_url = None
        if link is not None:
            match = LINK_RE.match(link)
            assert match, link
            next_url = match.group("url")
        assert len(pages) <= max_pages
    return items, pages


def assert_hub_headers(response: Fetched, bucket: str | None = None) -> None:
    assert response.header("X-Powered-By") == "huggingface-moon"
    assert REQUEST_ID_RE.match(response.header("X-Request-Id") or ""), response.header("X-Request-Id")
    assert "X-Error-Code" in (response.header("Access-Control-Expose-Headers") or "")
    limit = RATELIMIT_RE.match(response.header("RateLimit") or "")
    policy = POLICY_RE.match(response.header("RateLimit-Policy") or "")
    assert limit and policy, (response.url, response.header("RateLimit"), response.header("RateLimit-Policy"))
    assert limit.group("bucket") == policy.group("bucket")
    if bucket is not None:
        assert limit.group("bucket") == bucket


def assert_error(response: Fetched, status: int, code: str | None, message: str | None = None) -> None:
    assert response.status == status, (response.status, response.body[:300])
    assert response.header("X-Error-Code") == code
    assert response.header("Content-Type") == "application/json; charset=utf-8"
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    if message is not None:
        assert response.header("X-Error-Message") == message
    assert_hub_headers(response)


# ---------------------------------------------------------------------------------------------- the basics
def test_ready_info_and_truth(replica: Any) -> None:
    info = replica.info()
    assert info["hub_url"] == replica.url
    assert urlsplit(info["cdn_url"]).hostname == "127.0.0.2"
    assert info["seed"] == 7
    assert info["counts"] == replica.truth["counts"] == {"models": 300, "datasets": 100, "spaces": 100}
    assert set(info["quotas"]) == {"api", "resolvers", "pages"}
    assert len(replica.truth["models"]) == 300


def test_home_page_is_in_the_pages_bucket(replica: Any) -> None:
    page = fetch(replica.url + "/")
    assert page.status == 200 and page.header(
        "Content-Type",
    ).startswith("text/html")
    assert_hub_headers(page, "pages")
    missing = fetch(replica.url + "/some/unknown/page")
    assert missing.status == 404
    assert_hub_headers(missing, "pages")


# ---------------------------------------------------------------------------------------------- listings
@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_listing_covers_every_public_entity_once_for_each_sort(replica: Any, repo_type: str) -> None:
    for sort in SORTS[repo_type]:
        items, pages = crawl(f"{replica.url}/api/{PLURAL[repo_type]}?sort={sort}&limit=37")
        ids = [item["id"] for item in items]
        assert ids == expected_order(replica, repo_type, sort), sort
        assert len(pages) == -(-len(ids) // 37)
        assert pages[-1].header("Link") is None
        for page in pages:
            assert_hub_headers(page, "api")
            assert page.header("Content-Type") == "application/json; charset=utf-8"
            assert (page.header("ETag") or "").startswith('W/"')


def test_listing_default_sort_is_trending_and_link_repeats_the_query(replica: Any) -> None:
    first = fetch(f"{replica.url}/api/models?limit=10&full=true&config=false")
    link = LINK_RE.match(first.header("Link") or "")
    assert link, first.header("Link")
    url = link.group("url")
    assert url.startswith(replica.url + "/api/models?")
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    keys = [k for k, _ in pairs]
    # The original query in order, then the sort the server added, then the cursor.
    assert keys == ["limit", "full", "config", "sort", "cursor"]
    assert dict(pairs)["sort"] == "trendingScore"
    assert "%3D" in url or "=" not in dict(pairs)["cursor"]
    # The cursor is opaque, but it is Hub-like base64 JSON keyset.
    decoded = json.loads(base64.b64decode(dict(pairs)["cursor"]))
    assert "$or" in decoded
    items, _ = crawl(f"{replica.url}/api/models?limit=50")
    assert [i["id"] for i in items] == expected_order(replica, "model", "trendingScore")


def test_listing_limit_default_and_bad_values(replica: Any) -> None:
    everything = fetch(f"{replica.url}/api/models")
    assert everything.status == 200 and everything.header("Link") is None
    assert len(everything.json()) == len(expected_order(replica, "model", "trendingScore"))
    assert fetch(f"{replica.url}/api/models?limit=abc").status == 400
    assert fetch(f"{replica.url}/api/models?limit=0").status == 400
    assert_error(fetch(f"{replica.url}/api/spaces?sort=downloads"), 400, None)
    # direction is legacy: accepted and ignored (always descending).
    a = fetch(f"{replica.url}/api/models?sort=likes&direction=1&limit=20").json()
    b = fetch(f"{replica.url}/api/models?sort=likes&direction=-1&limit=20").json()
    assert a == b


def test_listing_limit_is_clamped_to_1000() -> None:
    with run_replica(models=1100, datasets=1, spaces=1, seed=3) as hub:
        page = fetch(f"{hub.url}/api/models?limit=5000")
        assert page.status == 200
        assert len(page.json()) == 1000
        assert "limit=5000" in (page.header("Link") or "")
        items, pages = crawl(f"{hub.url}/api/models?limit=5000")
        public = [e["id"] for e in hub.truth["models"] if not e["private"]]
        assert sorted(i["id"] for i in items) == sorted(public)
        assert len(pages) == 2


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_listing_filters_author_and_search(replica: Any, repo_type: str) -> None:
    public = [e for e in entities(replica, repo_type) if not e["private"]]
    tag_counts: dict[str, int] = {}
    for entity in public:
        for tag in entity["api"].get("tags", []):
            tag_counts[tag] = tag_counts.get(tag, 0) + 1
    common = sorted(tag_counts, key=lambda t: (-tag_counts[t], t))[:2]
    for tags in ([common[0]], common):
        query = "&".join(f"filter={quote(t, safe='')}" for t in tags)
        items, _ = crawl(f"{replica.url}/api/{PLURAL[repo_type]}?{query}&limit=7&sort=likes")
        expected = {e["id"] for e in public if set(tags) <= set(e["api"].get("tags", []))}
        assert [i["id"] for i in items] == [i for i in expected_order(replica, repo_type, "likes") if i in expected]
    owner = next(e["id"].split("/")[0] for e in public if "/" in e["id"])
    items, _ = crawl(f"{replica.url}/api/{PLURAL[repo_type]}?author={quote(owner)}&limit=3")
    assert {i["id"] for i in items} == {e["id"] for e in public if e["id"].split("/")[0] == owner and "/" in e["id"]}
    # search: case-insensitive substring of the id, repeatable (all must match).
    sample = public[len(public) // 2]["id"]
    term = sample.split("/")[-1][:4].upper()
    items, _ = crawl(f"{replica.url}/api/{PLURAL[repo_type]}?search={quote(term)}&limit=5")
    assert {i["id"] for i in items} == {e["id"] for e in public if term.lower() in e["id"].lower()}
    assert sample in {i["id"] for i in items}
    items, _ = crawl(f"{replica.url}/api/{PLURAL[repo_type]}?search={quote(term)}&search={quote(owner)}&limit=5")
    assert {i["id"] for i in items} == {
        e["id"] for e in public if term.lower() in e["id"].lower() and owner.lower() in e["id"].lower()
    }
    empty = fetch(f"{replica.url}/api/{PLURAL[repo_type]}?filter=no-such-tag-anywhere")
    assert empty.status == 200 and empty.json() == [] and empty.header("Link") is None


def test_private_entities_are_listed_only_for_approved_tokens(replica: Any) -> None:
    private = [e["id"] for e in entities(replica, "model") if e["private"]]
    assert private, "the synthetic hub should have private models"
    anonymous, _ = crawl(f"{replica.url}/api/models?limit=1000")
    user, _ = crawl(f"{replica.url}/api/models?limit=1000", headers=bearer(USER))
    approved, _ = crawl(f"{replica.url}/api/models?limit=100", headers=bearer(APPROVED))
    assert not set(private) & {i["id"] for i in anonymous}
    assert not set(private) & {i["id"] for i in user}
    assert [i["id"] for i in approved] == expected_order(replica, "model", "trendingScore", private=True)


def test_listing_expand_shapes_and_errors(replica: Any) -> None:
    page = fetch(f"{replica.url}/api/models?expand=author&expand[]=likes&expand=downloads&limit=20")
    assert page.status == 200
    for item in page.json():
        assert list(item)[:2] == ["_id", "id"]
        assert set(item) <= {"_id", "id", "author", "likes", "downloads"}
        assert "modelId" not in item and "likes" in item
    assert "expand[]=likes" in (page.header("Link") or "")
    bad = fetch(f"{replica.url}/api/models?expand=notAProperty")
    assert_error(bad, 400, None)
    for refused in ("baseModels", "childrenModelCount", "usedStorage"):
        assert_error(fetch(f"{replica.url}/api/models?expand[]={refused}"), 400, None)
    assert fetch(f"{replica.url}/api/datasets?expand=usedStorage").status == 200
    # expand with full: expand wins (documented in server.py).
    both = fetch(f"{replica.url}/api/models?expand=author&full=true&limit=5").json()
    assert all(set(item) <= {"_id", "id", "author"} for item in both)


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_listing_full_accepts_the_boolean_spellings(replica: Any, value: str) -> None:
    full = fetch(f"{replica.url}/api/models?full={value}&limit=5").json()
    plain = fetch(f"{replica.url}/api/models?full=False&limit=5").json()
    assert [i["id"] for i in full] == [i["id"] for i in plain]
    assert all("siblings" in item for item in full)
    assert not any("siblings" in item for item in plain)


def test_listing_bad_cursor_is_a_400(replica: Any) -> None:
    assert_error(fetch(f"{replica.url}/api/models?cursor=not-a-cursor"), 400, "InvalidCursor")
    # A cursor made for another sort is refused too.
    link = LINK_RE.match(fetch(f"{replica.url}/api/models?limit=3&sort=likes").header("Link") or "")
    assert link
    cursor = dict(parse_qsl(urlsplit(link.group("url")).query))["cursor"]
    assert fetch(f"{replica.url}/api/models?sort=downloads&cursor={quote(cursor, safe='')}").status == 400


# ------------------------------------------------------------------------------------------- single entity
def listing_expand_keys(hub: Any, repo_type: str) -> list[str]:
    from hfscraper.replica import shapes

    return [k for k in shapes.EXPANDABLE[repo_type] if k not in shapes.LIST_REFUSED[repo_type]]


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_info_matches_the_truth(replica: Any, repo_type: str) -> None:
    keys = listing_expand_keys(replica, repo_type)
    for entity in [e for e in entities(replica, repo_type) if not e["private"]][:5]:
        query = "&".join(f"expand={quote(k)}" for k in keys)
        info = fetch(f"{replica.url}/api/{PLURAL[repo_type]}/{quote(entity['id'])}?{query}")
        assert info.status == 200
        assert info.json() == entity["api"]
        assert_hub_headers(info, "api")
        default = fetch(f"{replica.url}/api/{PLURAL[repo_type]}/{quote(entity['id'])}")
        assert default.status == 200 and default.json()["id"] == entity["id"]
        assert default.header("X-Repo-Commit") is None  # not on /api/models/{id} (tests/data/hub_fixtures)


def test_info_revision_and_errors(replica: Any) -> None:
    entity = pick(replica, "model")
    base = f"{replica.url}/api/models/{quote(entity['id'])}"
    sha = entity["api"]["sha"]
    assert fetch(f"{base}/revision/main").status == 200
    assert fetch(f"{base}/revision/{sha}").json()["sha"] == sha
    assert_error(fetch(f"{base}/revision/not-a-branch"), 404, "RevisionNotFound")
    assert_error(fetch(f"{base}/revision/{quote('refs/pr/1', safe='')}"), 404, "RevisionNotFound")
    assert_error(fetch(f"{base}?expand=nope"), 400, None)
    blobs = fetch(f"{base}?blobs=true").json()
    assert blobs["siblings"] and all("blobId" in s for s in blobs["siblings"])


def test_info_expand_base_models_for_a_child(replica: Any) -> None:
    child = next(
        e
        for e in entities(replica, "model")
        if not e["private"] and any(r["kind"] == "base_model" for r in e["relations"])
    )
    info = fetch(f"{replica.url}/api/models/{quote(child['id'])}?expand=baseModels&expand=childrenModelCount")
    assert info.status == 200
    body = info.json()
    assert "baseModels" in body and "childrenModelCount" in body


def test_legacy_ids_without_owner(replica: Any) -> None:
    legacy = [e for e in entities(replica, "model") if "/" not in e["id"] and not e["private"]]
    if not legacy:
        pytest.skip("no legacy (owner-less) model ids in this synthetic hub")
    info = fetch(f"{replica.url}/api/models/{quote(legacy[0]['id'])}/revision/main")
    assert info.status == 200 and info.json()["id"] == legacy[0]["id"]


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_renamed_repos_redirect_with_307(replica: Any, repo_type: str) -> None:
    renamed = next((e for e in entities(replica, repo_type) if e["renamed_from"]), None)
    if renamed is None:
        pytest.skip(f"no renamed {repo_type} in this synthetic hub")
    old = renamed["renamed_from"][0]
    response = fetch(f"{replica.url}/api/{PLURAL[repo_type]}/{quote(old)}?expand=likes")
    assert response.status == 307
    new_path = f"/api/{PLURAL[repo_type]}/{quote(renamed['id'])}"
    assert response.header("Location") == new_path + "?expand=likes"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.body.decode() == f"Temporary Redirect. Redirecting to {new_path}?expand=likes"
    assert_hub_headers(response, "api")
    tree = fetch(f"{replica.url}/api/{PLURAL[repo_type]}/{quote(old)}/tree/main")
    assert tree.status == 307 and tree.header("Location") == f"{new_path}/tree/main"
    final = follow(f"{replica.url}/api/{PLURAL[repo_type]}/{quote(old)}")[-1]
    if not renamed["private"]:
        assert final.status == 200 and final.json()["id"] == renamed["id"]


# ------------------------------------------------------------------------------------------------- trees
def test_tree_listing_and_paging(replica: Any) -> None:
    entity = max(
        (e for e in entities(replica, "model") if not e["private"] and not e["disabled"]), key=lambda e: len(e["files"])
    )
    base = f"{replica.url}/api/models/{quote(entity['id'])}/tree/main"
    items, pages = crawl(f"{base}?recursive=true&limit=2")
    files = [i for i in items if i["type"] == "file"]
    assert sorted(f["path"] for f in files) == sorted(f["path"] for f in entity["files"])
    assert len(pages) == -(-len(items) // 2)
    truth = {f["path"]: f for f in entity["files"]}
    for item in files:
        assert item["size"] == truth[item["path"]]["size"]
        assert item["oid"] == truth[item["path"]]["blob_sha1"]
        if truth[item["path"]]["lfs"]:
            assert item["lfs"]["oid"] == truth[item["path"]]["sha256"]
    for page in pages:
        assert page.header("X-Repo-Commit") == entity["api"]["sha"]
        assert_hub_headers(page, "api")
    top = fetch(f"{base}?recursive=false&expand=false").json()
    assert {i["path"] for i in top} == {p.split("/")[0] for p in truth}
    folders = [i["path"] for i in items if i["type"] == "directory"]
    if folders:
        inside = fetch(f"{base}/{quote(folders[0])}").json()
        assert inside and all(i["path"].startswith(folders[0] + "/") for i in inside)
    assert_error(fetch(f"{base}/no/such/folder"), 404, "EntryNotFound")
    assert_error(fetch(f"{replica.url}/api/models/{quote(entity['id'])}/tree/nope"), 404, "RevisionNotFound")


def test_tree_expand_pages_hold_at_most_50(replica: Any) -> None:
    entity = max(
        (e for e in entities(replica, "model") if not e["private"] and not e["disabled"]), key=lambda e: len(e["files"])
    )
    page = fetch(f"{replica.url}/api/models/{quote(entity['id'])}/tree/main?recursive=true&expand=true&limit=1000")
    assert page.status == 200 and len(page.json()) <= 50
    assert any("lastCommit" in i for i in page.json() if i["type"] == "file")


# ---------------------------------------------------------------------------------------------- downloads
@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
def test_small_file_307_to_resolve_cache_then_bytes(replica: Any, repo_type: str) -> None:
    entity = pick(replica, repo_type, small=True)
    file = next(f for f in entity["files"] if not f["lfs"])
    url = f"{replica.url}/{prefix(repo_type)}{quote(entity['id'])}/resolve/main/{quote(file['path'])}"
    head = fetch(url, method="HEAD")
    assert head.status == 307
    location = head.header("Location") or ""
    sha = entity["api"]["sha"]
    assert location.startswith(
        f"/api/resolve-cache/{PLURAL[repo_type]}/{quote(entity['id'])}/{sha}/{quote(file['path'])}?"
    )
    original = f"/{prefix(repo_type)}{entity['id']}/resolve/main/{file['path']}"
    assert location.endswith(f"?{quote(original, safe='')}=&etag=%22{file['blob_sha1']}%22")
    assert head.header("X-Repo-Commit") is None and head.header("ETag") is None  # the recorded 307 has neither
    assert_hub_headers(head, "resolvers")
    hops = follow(url)
    final = hops[-1]
    assert final.status == 200
    assert final.header("ETag") == f'"{file["blob_sha1"]}"'
    assert final.header("X-Repo-Commit") == sha
    assert int(final.header("Content-Length") or -1) == file["size"]
    assert hashlib.sha256(final.body).hexdigest() == file["sha256"]
    assert_hub_headers(final, "resolvers")
    cache_head = fetch(urljoin(url, location), method="HEAD")
    assert cache_head.status == 200 and int(cache_head.header("Content-Length") or -1) == file["size"]


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_lfs_file_302_to_signed_cdn_with_ranges(replica: Any, repo_type: str) -> None:
    entity = pick(replica, repo_type, lfs=True)
    file = next(f for f in entity["files"] if f["lfs"])
    url = f"{replica.url}/{prefix(repo_type)}{quote(entity['id'])}/resolve/main/{quote(file['path'])}"
    head = fetch(url, method="HEAD")
    assert head.status == 302
    location = head.header("Location") or ""
    assert location.startswith(f"{replica.cdn_url}/xet-bridge-us/{entity['api']['_id']}/{file['sha256']}?")
    assert "Expires=" in location and "Signature=" in location
    assert head.header("X-Linked-Etag") == f'"{file["sha256"]}"'
    assert int(head.header("X-Linked-Size") or -1) == file["size"]
    assert head.header("X-Repo-Commit") == entity["api"]["sha"]
    assert head.header("Accept-Ranges") == "bytes"
    assert head.header("X-Xet-Hash") is None
    assert_hub_headers(head, "resolvers")
    body = fetch(location)
    assert body.status == 200 and hashlib.sha256(body.body).hexdigest() == file["sha256"]
    assert body.header("RateLimit") is None and body.header("RateLimit-Policy") is None
    size = file["size"]
    ranged = fetch(location, headers={"Range": "bytes=1-10"})
    assert ranged.status == 206 and ranged.header("Content-Range") == f"bytes 1-10/{size}"
    assert ranged.body == body.body[1:11]
    suffix = fetch(location, headers={"Range": "bytes=-5"})
    assert suffix.status == 206 and suffix.body == body.body[-5:]
    assert fetch(location, headers={"Range": f"bytes={size}-"}).status == 416
    assert fetch(location, method="HEAD").header("Content-Length") == str(size)


def test_cdn_refuses_tampered_and_expired_signatures(replica: Any) -> None:
    entity = pick(replica, "model", lfs=True)
    file = next(f for f in entity["files"] if f["lfs"])
    location = fetch(f"{replica.url}/{quote(entity['id'])}/resolve/main/{quote(file['path'])}", method="HEAD").header(
        "Location"
    )
    assert location
    tampered_sig = re.sub(r"Signature=[^&]+", "Signature=AAAA", location)
    assert fetch(tampered_sig).status == 403
    later = re.sub(r"Expires=(\d+)", lambda m: f"Expires={int(m.group(1)) + 10}", location)
    assert fetch(later).status == 403
    other_file = location.replace(file["sha256"], "0" * 64)
    assert fetch(other_file).status == 403
    assert fetch(location.split("?")[0]).status == 403
    with run_replica(models=30, datasets=5, spaces=5, extra_args=["--cdn-ttl", "-5"]) as hub:
        entity = pick(hub, "model", lfs=True)
        file = next(f for f in entity["files"] if f["lfs"])
        head = fetch(f"{hub.url}/{quote(entity['id'])}/resolve/main/{quote(file['path'])}", method="HEAD")
        expired = fetch(head.header("Location") or "")
        assert expired.status == 403 and b"expired" in expired.body


def test_missing_file_and_bad_revision_on_resolve(replica: Any) -> None:
    entity = pick(replica, "model")
    missing = fetch(f"{replica.url}/{quote(entity['id'])}/resolve/main/no-such-file.txt", method="HEAD")
    assert missing.status == 404 and missing.header("X-Error-Code") == "EntryNotFound"
    assert missing.header("X-Repo-Commit") == entity["api"]["sha"]
    assert_error(fetch(f"{replica.url}/{quote(entity['id'])}/resolve/main/no-such-file.txt"), 404, "EntryNotFound")
    assert_error(fetch(f"{replica.url}/{quote(entity['id'])}/resolve/nope/README.md"), 404, "RevisionNotFound")
    sha = entity["api"]["sha"]
    path = entity["files"][0]["path"]
    assert follow(f"{replica.url}/{quote(entity['id'])}/resolve/{sha}/{quote(path)}")[-1].status == 200


def test_if_none_match_on_resolve_gives_304(replica: Any) -> None:
    entity = pick(replica, "model", small=True)
    file = next(f for f in entity["files"] if not f["lfs"])
    url = f"{replica.url}/{quote(entity['id'])}/resolve/main/{quote(file['path'])}"
    response = fetch(url, method="HEAD", headers={"If-None-Match": f'"{file["blob_sha1"]}"'})
    assert response.status == 304


# -------------------------------------------------------------------------------------------- auth errors
def test_missing_and_private_repos(replica: Any) -> None:
    for url in (f"{replica.url}/api/models/nobody/nothing", f"{replica.url}/nobody/nothing/resolve/main/x.json"):
        assert_error(fetch(url), 401, "RepoNotFound", "Invalid username or password.")
        assert_error(fetch(url, headers=bearer(USER)), 404, "RepoNotFound")
    private = pick(replica, "model", private=True)
    url = f"{replica.url}/api/models/{quote(private['id'])}"
    assert_error(fetch(url), 401, "RepoNotFound", "Invalid username or password.")
    assert_error(fetch(url, headers=bearer(USER)), 404, "RepoNotFound")
    assert fetch(url, headers=bearer(APPROVED)).status == 200
    file = private["files"][0]
    resolve = f"{replica.url}/{quote(private['id'])}/resolve/main/{quote(file['path'])}"
    assert_error(fetch(resolve), 401, "RepoNotFound")
    final = follow(resolve, headers=bearer(APPROVED))[-1]
    assert final.status == 200 and hashlib.sha256(final.body).hexdigest() == file["sha256"]


@pytest.mark.parametrize("repo_type", ["model", "dataset"])
def test_gated_repos(replica: Any, repo_type: str) -> None:
    gated = pick(replica, repo_type, gated=True, lfs=True)
    info = fetch(f"{replica.url}/api/{PLURAL[repo_type]}/{quote(gated['id'])}")
    assert info.status == 200 and info.json()["gated"] in ("auto", "manual")
    assert fetch(f"{replica.url}/api/{PLURAL[repo_type]}/{quote(gated['id'])}/tree/main").status == 200
    file = next(f for f in gated["files"] if f["lfs"])
    url = f"{replica.url}/{prefix(repo_type)}{quote(gated['id'])}/resolve/main/{quote(file['path'])}"
    anonymous = fetch(url)
    assert_error(anonymous, 401, "GatedRepo")
    assert f"Access to {repo_type} {gated['id']} is restricted" in anonymous.json()["error"]
    user = fetch(url, headers=bearer(USER))
    assert_error(user, 403, "GatedRepo")
    assert "not in the authorized list" in user.json()["error"]
    hops = follow(url, headers=bearer(APPROVED))
    assert [h.status for h in hops] == [302, 200]
    assert hashlib.sha256(hops[-1].body).hexdigest() == file["sha256"]


def test_disabled_repos(replica: Any) -> None:
    disabled = pick(replica, "dataset", disabled=True)
    info = fetch(f"{replica.url}/api/datasets/{quote(disabled['id'])}")
    assert info.status == 200 and info.json()["disabled"] is True
    file = disabled["files"][0]
    refused = fetch(f"{replica.url}/datasets/{quote(disabled['id'])}/resolve/main/{quote(file['path'])}")
    assert_error(refused, 403, None, "Access to this resource is disabled.")


def test_invalid_token(replica: Any) -> None:
    for url in (f"{replica.url}/api/models", f"{replica.url}/api/models/{quote(pick(replica, 'model')['id'])}"):
        response = fetch(url, headers=bearer("not-a-hub-token"))
        assert_error(response, 401, None, "Invalid credentials in Authorization header")
    assert fetch(f"{replica.url}/api/models?limit=1", headers=bearer(USER)).status == 200


# ------------------------------------------------------------------------------------------- rate limits
def test_rate_limit_headers_on_every_hub_response(replica: Any) -> None:
    mark = replica.mark()
    entity = pick(replica, "model", lfs=True, small=True)
    urls = {
        f"{replica.url}/api/models?limit=2": "api",
        f"{replica.url}/api/models/{quote(entity['id'])}": "api",
        f"{replica.url}/api/models/nobody/nothing": "api",
        f"{replica.url}/api/models?expand=bad": "api",
        f"{replica.url}/{quote(entity['id'])}/resolve/main/{quote(entity['files'][0]['path'])}": "resolvers",
        f"{replica.url}/": "pages",
    }
    for url, bucket in urls.items():
        assert_hub_headers(fetch(url), bucket)
        assert_hub_headers(fetch(url, method="HEAD"), bucket)
    log = replica.requests(since=mark)
    assert [e["bucket"] for e in log] == [b for b in urls.values() for _ in range(2)]


def test_quota_exhaustion_gives_429_and_windows_are_per_identity() -> None:
    with run_replica(
        models=20, datasets=5, spaces=5, quota_api=5, quota_resolvers=3, quota_pages=2, quota_window=3
    ) as hub:
        remaining = []
        for _ in range(5):
            response = fetch(f"{hub.url}/api/models?limit=1")
            assert response.status == 200
            remaining.append(int(RATELIMIT_RE.match(response.header("RateLimit") or "").group("r")))  # type: ignore[union-attr]
        assert remaining == [4, 3, 2, 1, 0]
        limited = fetch(f"{hub.url}/api/models?limit=1")
        assert limited.status == 429
        match = RATELIMIT_RE.match(limited.header("RateLimit") or "")
        assert match and match.group("r") == "0" and 1 <= int(match.group("t")) <= 3
        assert limited.header("Retry-After") is None  # the Hub's 429 says when only in RateLimit (see ratelimit.py)
        assert limited.json()["error"].startswith("We had to rate limit your IP (127.0.0.1).")
        assert POLICY_RE.match(limited.header("RateLimit-Policy") or "").group("q") == "5"  # type: ignore[union-attr]
        assert "error" in limited.json()
        # Another bucket and another identity are counted apart.
        assert fetch(f"{hub.url}/").status == 200
        assert fetch(f"{hub.url}/api/models?limit=1", headers=bearer(USER)).status == 200
        hub.reset_quota()
        assert fetch(f"{hub.url}/api/models?limit=1").status == 200
        for _ in range(4):
            fetch(f"{hub.url}/api/models?limit=1")
        assert fetch(f"{hub.url}/api/models?limit=1").status == 429
        time.sleep(int(match.group("t")) + 0.2)
        assert fetch(f"{hub.url}/api/models?limit=1").status == 200
        # The request log shows the 429s.
        assert [e["status"] for e in hub.requests() if e["status"] == 429]


# ------------------------------------------------------------------------------------------------ faults
@pytest.fixture
def faults(replica: Any):  # type: ignore[no-untyped-def]
    yield replica.set_faults
    replica.set_faults([])


def test_fault_5xx_html_and_json(replica: Any, faults: Any) -> None:
    faults([{"kind": "5xx", "status": 503, "body": "json", "path": "^/api/spaces\\?", "count": 1}])
    failed = fetch(f"{replica.url}/api/spaces?limit=1")
    assert failed.status == 503 and "error" in failed.json()
    assert_hub_headers(failed, "api")
    assert fetch(f"{replica.url}/api/spaces?limit=1").status == 200  # count=1: fired once
    faults([{"kind": "5xx", "status": 502, "body": "html", "path": "^/api/spaces\\?", "count": 1}])
    html = fetch(f"{replica.url}/api/spaces?limit=1")
    assert html.status == 502 and html.header("Content-Type").startswith("text/html") and b"<HTML>" in html.body


def test_fault_latency(replica: Any, faults: Any) -> None:
    faults([{"kind": "latency", "ms": 400, "path": "^/api/datasets\\?limit=2$"}])
    started = time.monotonic()
    assert fetch(f"{replica.url}/api/datasets?limit=2").status == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    fetch(f"{replica.url}/api/datasets?limit=3")
    assert time.monotonic() - started < 0.4


def test_fault_reset_and_truncate(replica: Any, faults: Any) -> None:
    faults([{"kind": "reset", "path": "^/api/models\\?limit=50$", "count": 1}])
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        fetch(f"{replica.url}/api/models?limit=50")
    assert fetch(f"{replica.url}/api/models?limit=50").status == 200
    faults([{"kind": "truncate", "fraction": 0.3, "path": "^/api/models\\?limit=60$", "count": 1}])
    with pytest.raises(http.client.IncompleteRead):
        fetch(f"{replica.url}/api/models?limit=60")
    log = replica.requests(since=replica.mark() - 3)
    assert {e["fault"] for e in log} >= {"truncate"}


def test_fault_malformed_json_html200_not_a_list(replica: Any, faults: Any) -> None:
    faults([{"kind": "malformed_json", "path": "^/api/models\\?limit=4$", "count": 1}])
    broken = fetch(f"{replica.url}/api/models?limit=4")
    assert broken.status == 200 and broken.header("Content-Type") == "application/json; charset=utf-8"
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.body)
    faults([{"kind": "html200", "path": "^/api/models\\?limit=4$", "count": 1}])
    html = fetch(f"{replica.url}/api/models?limit=4")
    assert html.status == 200 and html.header("Content-Type").startswith("text/html")
    faults([{"kind": "not_a_list", "path": "^/api/models\\?limit=4$", "count": 1}])
    wrapped = fetch(f"{replica.url}/api/models?limit=4")
    assert wrapped.status == 200 and isinstance(wrapped.json(), dict)
    assert isinstance(fetch(f"{replica.url}/api/models?limit=4").json(), list)


def test_fault_corrupt_keeps_size_changes_bytes(replica: Any, faults: Any) -> None:
    entity = pick(replica, "model", lfs=True, small=True)
    lfs = next(f for f in entity["files"] if f["lfs"])
    small = next(f for f in entity["files"] if not f["lfs"] and f["size"] > 0)
    faults([{"kind": "corrupt", "count": 2}])
    for file in (lfs, small):
        final = follow(f"{replica.url}/{quote(entity['id'])}/resolve/main/{quote(file['path'])}")[-1]
        assert final.status == 200 and len(final.body) == file["size"]
        assert hashlib.sha256(final.body).hexdigest() != file["sha256"]
    final = follow(f"{replica.url}/{quote(entity['id'])}/resolve/main/{quote(lfs['path'])}")[-1]
    assert hashlib.sha256(final.body).hexdigest() == lfs["sha256"]


def test_fault_expire_cursor(replica: Any, faults: Any) -> None:
    faults([{"kind": "expire_cursor", "path": "^/api/datasets", "count": 1}])
    first = fetch(f"{replica.url}/api/datasets?limit=5")
    assert first.status == 200  # no cursor: not affected
    link = LINK_RE.match(first.header("Link") or "")
    assert link
    expired = fetch(link.group("url"))
    assert_error(expired, 400, "InvalidCursor")
    assert fetch(link.group("url")).status == 200


def test_fault_redirect_loop_and_forced_429(replica: Any, faults: Any) -> None:
    faults([{"kind": "redirect_loop", "path": "^/api/spaces\\?limit=9$"}])
    looping = fetch(f"{replica.url}/api/spaces?limit=9")
    assert looping.status == 307 and looping.header("Location") == "/api/spaces?limit=9"
    with pytest.raises(RuntimeError):
        follow(f"{replica.url}/api/spaces?limit=9")
    faults([{"kind": "429", "retry_after": 2, "path": "^/api/spaces\\?limit=9$", "count": 1}])
    limited = fetch(f"{replica.url}/api/spaces?limit=9")
    assert limited.status == 429 and limited.header("Retry-After") == "2"
    assert RATELIMIT_RE.match(limited.header("RateLimit") or "").group("r") == "0"  # type: ignore[union-attr]
    assert fetch(f"{replica.url}/api/spaces?limit=9").status == 200


def test_faults_are_deterministic_for_a_seed(replica: Any, faults: Any) -> None:
    urls = [f"{replica.url}/api/models?limit=1&n={n}" for n in range(40)]

    def run() -> list[int]:
        faults([{"kind": "5xx", "rate": 0.5, "status": 500, "path": "&n="}])
        return [fetch(u).status for u in urls]

    first, second = run(), run()
    assert first == second
    assert 5 < first.count(500) < 35
    rules = replica.faults()
    assert rules[0]["fired"] == first.count(500)


def test_fault_rules_from_the_command_line_and_validation() -> None:
    with run_replica(
        models=20,
        datasets=5,
        spaces=5,
        latency_ms=150,
        faults=["5xx=503:1:^/api/spaces", '{"kind": "latency", "ms": 1}'],
    ) as hub:
        assert fetch(f"{hub.url}/api/spaces").status == 503
        started = time.monotonic()
        assert fetch(f"{hub.url}/api/models").status == 200
        assert time.monotonic() - started >= 0.15  # --latency-ms delays every Hub response
        assert [r["kind"] for r in hub.faults()] == ["5xx", "latency"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            hub.set_faults([{"kind": "no-such-kind"}])
        assert refused.value.code == 400
        assert hub.stop() == 0  # SIGTERM stops it cleanly
    with pytest.raises(ReplicaError, match="unknown fault kind"), run_replica(
        models=5, datasets=1, spaces=1, faults=["explode:1"]
    ):
        pass


# ------------------------------------------------------------------------------------------- request log
def test_request_log_records_every_request_without_tokens(replica: Any) -> None:
    mark = replica.mark()
    entity = pick(replica, "model", lfs=True)
    file = next(f for f in entity["files"] if f["lfs"])
    follow(f"{replica.url}/{quote(entity['id'])}/resolve/main/{quote(file['path'])}", headers=bearer(APPROVED))
    fetch(f"{replica.url}/api/models?limit=1&search=x")
    log = replica.requests(since=mark)
    assert [(e["origin"], e["method"], e["status"], e["auth"]) for e in log] == [
        ("hub", "GET", 302, True),
        ("cdn", "GET", 200, False),
        ("hub", "GET", 200, False),
    ]
    assert log[0]["path"] == f"/{quote(entity['id'])}/resolve/main/{quote(file['path'])}"
    assert log[2]["path"] == "/api/models?limit=1&search=x" and log[2]["bucket"] == "api"
    assert log[1]["bucket"] is None
    assert {"seq", "time", "origin", "method", "path", "status", "bucket", "auth", "fault", "ms"} <= set(log[0])
    assert replica.requests(since=mark, origin="cdn") == [log[1]]
    on_disk = replica.request_log_path.read_text(encoding="utf-8")
    assert APPROVED not in on_disk and USER not in on_disk
    assert [json.loads(line) for line in on_disk.splitlines()][-3:] == log


# ------------------------------------------------------------------------------------------- performance
def test_listing_index_serves_pages_of_1000_fast_on_100k_entities() -> None:
    from types import SimpleNamespace

    from hfscraper.replica.listing import ListingIndex, ListQuery, decode_cursor

    many = []
    for n in range(100_000):
        fields = {
            "trendingScore": n % 97,
            "likes": n % 1013,
            "downloads": (n * 7919) % 100_003,
            "createdAt": f"20{20 + n % 6}-0{1 + n % 9}-1{n % 9}T00:00:00.000Z",
            "lastModified": f"2025-0{1 + n % 9}-2{n % 9}T00:00:00.000Z",
            "tags": ["license:mit" if n % 3 else "license:apache-2.0", f"dataset:org/d{n % 50}"],
        }
        many.append(
            SimpleNamespace(id=f"owner{n % 500}/repo-{n}", mongo_id=f"{n:024x}", private=n % 101 == 0, fields=fields)
        )
    started = time.monotonic()
    index = ListingIndex("model", many)
    build = time.monotonic() - started
    query = ListQuery(sort="downloads", include_private=False)
    started = time.monotonic()
    after = None
    seen = 0
    for _ in range(20):
        page, more = index.page(query, after, 1000)
        seen += len(page)
        after = decode_cursor("downloads", index.cursor_after(query, page[-1]))
    per_page = (time.monotonic() - started) / 20
    assert seen == 20_000
    assert per_page < 0.05, per_page  # bisect + slice; generous for loaded CI machines
    filtered = ListQuery(sort="likes", include_private=False, filters=frozenset({"dataset:org/d7"}), search=("repo-1",))
    started = time.monotonic()
    index.page(filtered, None, 1000)
    first = time.monotonic() - started
    started = time.monotonic()
    page, _ = index.page(
        filtered, decode_cursor("likes", index.cursor_after(filtered, index.page(filtered, None, 10)[0][-1])), 1000
    )
    assert time.monotonic() - started < 0.05
    assert first < 0.5 and build < 30
    assert all("repo-1" in e.id and "dataset:org/d7" in e.fields["tags"] for e in page)
