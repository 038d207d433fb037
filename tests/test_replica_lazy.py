"""The lazy replica (`python -m hfscraper.replica --lazy`, hfscraper/replica/lazy.py): a Hub of millions of entities
in constant memory, whose listings are computed from the keyset cursor.

Real replica processes on loopback; the official client and a real crawl where it matters.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from hfscraper.replica.listing import sort_key
from tests.support.crawl import METADATA_ONLY, crawl
from tests.support.http import fetch
from tests.support.replica import REPO_ROOT, ReplicaHandle, replica_fixture, run_replica

LAZY = ["--lazy"]
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
COUNTS = {"model": 130, "dataset": 70, "space": 70}  # 12% legacy: a createdAt tie (15, 8, 8) across pages of 7
SORTS = ("createdAt", "lastModified", "trendingScore")

small = replica_fixture(models=130, datasets=70, spaces=70, seed=3, extra_args=LAZY, truth=False)


def _get(replica: ReplicaHandle, path: str) -> Any:
    got = fetch(replica.url + path)
    assert got.status == 200, (path, got.status, got.body[:300])
    return got


def walk(replica: ReplicaHandle, repo_type: str, sort: str | None, limit: int = 7) -> tuple[list[dict], list[bytes]]:
    """Every item of a listing, following `Link: rel="next"`; and the raw pages with the cursors they point to."""
    path = f"/api/{PLURAL[repo_type]}?limit={limit}&expand=lastModified&expand=createdAt&expand=sha"
    if sort:
        path += f"&sort={sort}"
    items: list[dict] = []
    pages: list[bytes] = []
    while True:
        got = _get(replica, path)
        items += got.json()
        link = got.header("Link")
        cursor = parse_qs(urlsplit(link[1 : link.index(">")]).query)["cursor"][0] if link else ""
        pages.append(got.body + b"\n" + cursor.encode())
        if not link:
            return items, pages
        url = link[1 : link.index(">")]
        path = url[len(replica.url) :]


def keyset(sort: str, item: dict) -> tuple[int, float, str]:
    return sort_key(sort, item.get(sort, 0) if sort == "trendingScore" else item[sort], item["_id"])


@pytest.mark.parametrize("repo_type", ["model", "dataset", "space"])
@pytest.mark.parametrize("sort", [*SORTS, None])
def test_cursors_walk_every_entity_once_in_keyset_order(small: ReplicaHandle, repo_type: str, sort: str | None) -> None:
    items, pages = walk(small, repo_type, sort)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == COUNTS[repo_type] and len(pages) == -(-COUNTS[repo_type] // 7)
    # Entity i's id ends with -i: the walk met every index.
    assert sorted(int(i.rsplit("-", 1)[1]) for i in ids) == list(range(COUNTS[repo_type]))
    order = sort or "trendingScore"  # the Hub's default order
    keys = [keyset(order, item) for item in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    if order == "createdAt":
        # The legacy repos share one createdAt: a tie ordered by _id that spans page boundaries.
        tie = [item for item in items if item["createdAt"] == "2022-03-02T23:29:04.000Z"]
        assert len(tie) == COUNTS[repo_type] * 12 // 100 and len(tie) > 7
        assert [item["_id"] for item in tie] == sorted(item["_id"] for item in tie)


def test_pages_are_identical_after_a_restart(small: ReplicaHandle, tmp_path: Path) -> None:
    first = {(t, s): walk(small, t, s)[1] for t in COUNTS for s in SORTS}
    entity = walk(small, "model", "createdAt")[0][40]["id"]
    detail = _get(small, f"/api/models/{quote(entity)}").body
    with run_replica(
        tmp_dir=tmp_path, models=130, datasets=70, spaces=70, seed=3, extra_args=LAZY, truth=False
    ) as again:
        for key, pages in first.items():
            assert walk(again, *key)[1] == pages, key
        assert _get(again, f"/api/models/{quote(entity)}").body == detail


@pytest.mark.parametrize(
    "query",
    ["sort=likes", "sort=downloads", "search=llama", "author=someone", "filter=pytorch", "pipeline_tag=fill-mask"],
)
def test_other_sorts_and_filters_are_refused(small: ReplicaHandle, query: str) -> None:
    got = fetch(f"{small.url}/api/models?{query}")
    assert got.status == 400
    assert "--lazy" in got.json()["error"]


def test_deleting_is_refused(small: ReplicaHandle) -> None:
    request = json.dumps({"type": "model", "delete": ["x/y-1"]}).encode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(urllib.request.Request(small.url + "/_replica/mutate", data=request, method="POST"), timeout=10)
    assert caught.value.code == 400 and b"--lazy" in caught.value.read()


def test_entity_endpoints_answer_for_listed_entities(small: ReplicaHandle) -> None:
    for repo_type in COUNTS:
        items, _ = walk(small, repo_type, "createdAt", limit=50)
        for item in items[::9]:
            info = _get(small, f"/api/{PLURAL[repo_type]}/{quote(item['id'])}").json()
            assert (info["id"], info["_id"], info["sha"]) == (item["id"], item["_id"], item["sha"])
        owner, _, name = items[0]["id"].rpartition("/")
        stem, _, index = name.rpartition("-")
        # Another index, a leading zero, another owner: no such repo (the Hub's anonymous answer is 401).
        for wrong in (f"{stem}-{int(index) + 1}", f"{stem}-0{index}", f"{stem}-{index}x"):
            assert fetch(f"{small.url}/api/{PLURAL[repo_type]}/{quote(owner)}/{quote(wrong)}").status == 401
        assert fetch(f"{small.url}/api/{PLURAL[repo_type]}/not-{quote(owner)}/{quote(name)}").status == 401


def test_relations_point_at_other_lazy_entities(small: ReplicaHandle) -> None:
    models = {m["id"]: m for m in walk(small, "model", "createdAt", limit=200)[0]}
    datasets = {d["id"] for d in walk(small, "dataset", "createdAt", limit=200)[0]}
    full = _get(small, "/api/models?limit=200&full=true&sort=createdAt").json()
    bases = [t.split(":", 1)[1] for m in full for t in m["tags"] if t.startswith("base_model:") and t.count(":") == 1]
    used = [t.split(":", 1)[1] for m in full for t in m["tags"] if t.startswith("dataset:")]
    assert len(bases) > 20 and set(bases) <= set(models)
    assert len(used) > 10 and set(used) <= datasets
    spaces = _get(small, "/api/spaces?limit=200&expand=models&expand=datasets").json()
    linked = [m for s in spaces for m in s.get("models", ())]
    assert len(linked) > 10 and set(linked) <= set(models)


def test_lfs_files_resolve_through_the_cdn(small: ReplicaHandle) -> None:
    for item in walk(small, "model", "createdAt", limit=200)[0]:
        tree = fetch(f"{small.url}/api/models/{quote(item['id'])}/tree/main")
        lfs = [f for f in tree.json() if f.get("lfs")] if tree.status == 200 else []
        if lfs:
            break
    else:
        pytest.fail("no model with an LFS file")
    redirect = fetch(f"{small.url}/{quote(item['id'])}/resolve/main/{quote(lfs[0]['path'])}")
    assert redirect.status == 302
    body = fetch(redirect.header("Location")).body
    assert hashlib.sha256(body).hexdigest() == lfs[0]["lfs"]["oid"]


def test_the_official_client_lists_every_type_in_full(tmp_path: Path) -> None:
    hub = pytest.importorskip("huggingface_hub")
    counts = {"model": 2100, "dataset": 1050, "space": 1020}  # more than one 1,000-item page each
    with run_replica(tmp_dir=tmp_path, models=2100, datasets=1050, spaces=1020, extra_args=LAZY, truth=False) as lazy:
        api = hub.HfApi(endpoint=lazy.url, token=False)
        for repo_type, listing in (
            ("model", api.list_models),
            ("dataset", api.list_datasets),
            ("space", api.list_spaces),
        ):
            infos = list(listing(full=True))
            assert len({i.id for i in infos}) == len(infos) == counts[repo_type]
            assert all(i.sha and i.last_modified and i.created_at for i in infos)
        by_date = [m.id for m in api.list_models(full=True, sort="created_at")]
        assert len(by_date) == len(set(by_date)) == counts["model"]


def test_changed_entities_list_first_and_a_restart_changes_the_same(tmp_path: Path) -> None:
    options = {"models": 200, "datasets": 50, "spaces": 50, "seed": 5, "truth": False}
    with run_replica(tmp_dir=tmp_path / "a", extra_args=LAZY, **options) as live:
        before = {t: walk(live, t, "lastModified", limit=30)[0] for t in COUNTS}
        answer = live._call("POST", "/_replica/mutate", {"changed_fraction": 0.05})
        assert json.loads(answer)["changed"] == {"models": 10, "datasets": 2, "spaces": 2}
        after = {t: walk(live, t, "lastModified", limit=30) for t in COUNTS}
        # A touch by id (the regular replica's mutate) puts that one first, with its new sha.
        last = after["dataset"][0][-1]["id"]
        touched = live.mutate("dataset", touch=[last])["touched"][last]
        head = _get(live, "/api/datasets?sort=lastModified&limit=1&expand=sha&expand=lastModified").json()[0]
        assert (head["id"], head["sha"], head["lastModified"]) == (last, touched["sha"], touched["lastModified"])
        assert _get(live, f"/api/datasets/{quote(last)}").json()["sha"] == touched["sha"]
    changed_models = 10
    for repo_type, (items, _) in after.items():
        n = changed_models if repo_type == "model" else 2
        old = {i["id"]: i for i in before[repo_type]}
        head, rest = items[:n], items[n:]
        newest_before = max(i["lastModified"] for i in before[repo_type])
        assert all(i["lastModified"] > newest_before and i["sha"] != old[i["id"]]["sha"] for i in head)
        # The others keep their order, sha and date; nothing is lost or listed twice.
        assert rest == [i for i in before[repo_type] if i["id"] not in {h["id"] for h in head}]
        assert sorted(i["id"] for i in items) == sorted(old)
    with run_replica(tmp_dir=tmp_path / "b", extra_args=[*LAZY, "--changed-fraction", "0.05"], **options) as again:
        for repo_type in COUNTS:
            assert walk(again, repo_type, "lastModified", limit=30)[1] == after[repo_type][1]


def test_an_incremental_crawl_fetches_only_the_changed_entities(tmp_path: Path) -> None:
    with run_replica(tmp_dir=tmp_path / "replica", models=150, datasets=0, spaces=0, seed=9, extra_args=LAZY,
                     truth=False) as lazy:  # fmt: skip
        output = tmp_path / "out"
        first = crawl(lazy, "models", output, settings=METADATA_ONLY)
        assert first.returncode == 0 and first.stat("item_scraped_count") == 150, first.stderr[-3000:]
        lazy._call("POST", "/_replica/mutate", {"type": "model", "changed_fraction": 0.02})
        mark = lazy.mark()
        second = crawl(lazy, "models", output, "since=auto", settings=METADATA_ONLY)
        assert second.returncode == 0, second.stderr[-3000:]
        assert second.stat("deltafetch/stored") == 3 and second.stat("hfscraper/spider/since_reached") == 1
        assert len([r for r in lazy.requests(since=mark) if r["path"].startswith("/api/models?")]) == 1


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_memory_does_not_grow_with_the_hub(tmp_path: Path) -> None:
    """A 2,000,000-entity lazy replica starts (generous bound: the regular one takes minutes and GBs at that size)
    and serves deep pages in about the memory of a 1,500-entity one."""
    peaks = {}
    for label, models in (("small", 1000), ("large", 1_500_000)):
        with run_replica(tmp_dir=tmp_path / label, models=models, datasets=models // 4, spaces=models // 4,
                         extra_args=LAZY, truth=False, ready_timeout=30) as lazy:  # fmt: skip
            for repo_type in COUNTS:
                for sort in ("createdAt", "lastModified"):
                    first = fetch(f"{lazy.url}/api/{PLURAL[repo_type]}?sort={sort}&limit=100")
                    link = first.header("Link")
                    assert first.status == 200 and link
                    assert fetch(link[1 : link.index(">")]).status == 200  # a cursor: a binary search over N keys
            peaks[label] = _rss_kib(lazy.process.pid)
    assert peaks["large"] < 100 * 1024, peaks
    assert peaks["large"] <= peaks["small"] + 8 * 1024, peaks


def test_lazy_refuses_what_it_cannot_serve() -> None:
    for extra in (["--truth", "t.json"], ["--hostile-ids"], ["--big-file-mib", "2"]):
        proc = subprocess.run(
            [sys.executable, "-m", "hfscraper.replica", "--lazy", *extra],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 2 and "not available with --lazy" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "hfscraper.replica", "--changed-fraction", "0.1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "needs --lazy" in proc.stderr
