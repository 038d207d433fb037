"""The official client (huggingface_hub 2.4.0) against the replica: if it works here, the replica is faithful.

The client is pointed at the replica with ``endpoint=`` (``HfApi(endpoint=...)``,
``hf_hub_download(endpoint=...)``); anonymous calls pass ``token=False`` so that
no token stored on the developer's machine leaks in.  Listings are made to span
several pages by having more than 1,000 entities per type (the server's page
size): huggingface_hub sends ``limit`` as the page size and then stops after
``limit`` items, so a small ``limit`` alone never makes it follow a ``Link``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from huggingface_hub import HfApi, hf_hub_download  # noqa: E402
from huggingface_hub.errors import (  # noqa: E402
    DisabledRepoError,
    GatedRepoError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from tests.support.replica import replica_fixture  # noqa: E402

APPROVED = "hf_approved_client_token"
USER = "hf_unapproved_client_token"
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}

replica = replica_fixture(models=2100, datasets=1050, spaces=1020, seed=11, approved_tokens=[APPROVED])


pytestmark = pytest.mark.usefixtures("isolated_hf_client")


def api(replica: Any, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=replica.url, token=token)


def public(replica: Any, repo_type: str) -> list[dict[str, Any]]:
    return [e for e in replica.truth[PLURAL[repo_type]] if not e["private"]]


def order(entities: list[dict[str, Any]], sort: str) -> list[str]:
    def key(e: dict[str, Any]) -> tuple[int, float, str]:
        value = e["api"].get(sort)
        if value is None:
            return (1, 0.0, e["api"]["_id"])
        number = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if isinstance(value, str) else value
        return (0, -float(number), e["api"]["_id"])

    return [e["id"] for e in sorted(entities, key=key)]


# ------------------------------------------------------------------------------------------------- listings
def test_list_models_across_pages(replica: Any) -> None:
    mark = replica.mark()
    models = list(api(replica).list_models())
    expected = order(public(replica, "model"), "trendingScore")
    assert [m.id for m in models] == expected
    assert len(expected) > 2000
    pages = [e for e in replica.requests(since=mark) if e["path"].startswith("/api/models")]
    assert len(pages) == 3 and "cursor=" in pages[1]["path"] and "sort=trendingScore" in pages[1]["path"]


def test_list_models_sort_filter_expand(replica: Any) -> None:
    entities = public(replica, "model")
    counts: dict[str, int] = {}
    for e in entities:
        for tag in e["api"].get("tags", []):
            counts[tag] = counts.get(tag, 0) + 1
    tag = max(sorted(counts), key=lambda t: counts[t])
    models = list(api(replica).list_models(filter=tag, sort="downloads", expand=["author", "downloads", "tags"]))
    assert [m.id for m in models] == order([e for e in entities if tag in e["api"].get("tags", [])], "downloads")
    truth = {e["id"]: e["api"] for e in entities}
    for model in models[:50]:
        assert model.author == truth[model.id]["author"]
        assert model.downloads == truth[model.id]["downloads"]
        assert tag in (model.tags or [])
    limited = list(api(replica).list_models(sort="likes", limit=1500))
    assert [m.id for m in limited] == order(entities, "likes")[:1500]
    with pytest.raises(huggingface_hub.errors.HfHubHTTPError) as excinfo:
        list(api(replica).list_models(expand=["baseModels"]))  # type: ignore[list-item]
    assert excinfo.value.response.status_code == 400


def test_list_datasets_and_spaces_across_pages(replica: Any) -> None:
    datasets = list(api(replica).list_datasets(sort="createdAt", expand=["likes", "createdAt", "gated"]))
    assert [d.id for d in datasets] == order(public(replica, "dataset"), "createdAt")
    assert len(datasets) > 1000
    spaces = list(api(replica).list_spaces(sort="likes"))
    assert [s.id for s in spaces] == order(public(replica, "space"), "likes")
    assert len(spaces) > 1000
    owner = public(replica, "space")[0]["id"].split("/")[0]
    mine = list(api(replica).list_spaces(author=owner))
    assert {s.id for s in mine} == {e["id"] for e in public(replica, "space") if e["id"].split("/")[0] == owner}


# ------------------------------------------------------------------------------------------------- entities
def test_model_dataset_space_info(replica: Any) -> None:
    client = api(replica)
    child = next(
        e
        for e in public(replica, "model")
        if not e["gated"] and any(r["kind"] == "base_model" and r["target_type"] == "model" for r in e["relations"])
    )
    info = client.model_info(child["id"])
    assert info.id == child["id"] and info.sha == child["api"]["sha"]
    assert {s.rfilename for s in info.siblings or []} == {f["path"] for f in child["files"]}
    bases = client.model_info(child["id"], expand=["baseModels"])
    assert bases.base_models is not None or getattr(bases, "baseModels", None) is not None
    with_blobs = client.model_info(child["id"], files_metadata=True)
    sizes = {s.rfilename: s.size for s in with_blobs.siblings or []}
    assert sizes == {f["path"]: f["size"] for f in child["files"]}
    dataset = public(replica, "dataset")[0]
    assert client.dataset_info(dataset["id"]).id == dataset["id"]
    space = public(replica, "space")[0]
    space_info = client.space_info(space["id"])
    assert space_info.id == space["id"] and space_info.sha == space["api"]["sha"]
    renamed = next((e for e in public(replica, "model") if e["renamed_from"]), None)
    if renamed is not None:
        assert client.model_info(renamed["renamed_from"][0]).id == renamed["id"]


def test_list_repo_tree(replica: Any) -> None:
    entity = max(
        (e for e in public(replica, "model") if not e["disabled"] and not e["gated"]), key=lambda e: len(e["files"])
    )
    entries = list(api(replica).list_repo_tree(entity["id"], recursive=True))
    files = {e.path: e for e in entries if e.__class__.__name__ == "RepoFile"}
    assert set(files) == {f["path"] for f in entity["files"]}
    for truth_file in entity["files"]:
        entry = files[truth_file["path"]]
        assert entry.size == truth_file["size"] and entry.blob_id == truth_file["blob_sha1"]
        if truth_file["lfs"]:
            assert entry.lfs is not None and entry.lfs.sha256 == truth_file["sha256"]
    expanded = list(api(replica).list_repo_tree(entity["id"], recursive=True, expand=True))
    assert {e.path for e in expanded} == {e.path for e in entries}


# ------------------------------------------------------------------------------------------------ downloads
def test_hf_hub_download_small_and_lfs(replica: Any, tmp_path: Path) -> None:
    entity = next(
        e
        for e in public(replica, "model")
        if not e["gated"]
        and not e["disabled"]
        and any(f["lfs"] for f in e["files"])
        and any(not f["lfs"] for f in e["files"])
    )
    for file in (next(f for f in entity["files"] if not f["lfs"]), next(f for f in entity["files"] if f["lfs"])):
        path = hf_hub_download(
            entity["id"], file["path"], endpoint=replica.url, cache_dir=tmp_path / "cache", token=False
        )
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == file["sha256"]
    dataset = next(e for e in public(replica, "dataset") if not e["gated"] and not e["disabled"] and e["files"])
    file = dataset["files"][0]
    path = hf_hub_download(
        dataset["id"], file["path"], repo_type="dataset", endpoint=replica.url, cache_dir=tmp_path / "c2", token=False
    )
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == file["sha256"]


def test_gated_lfs_download_with_approved_token_sends_no_auth_to_the_cdn(replica: Any, tmp_path: Path) -> None:
    gated = next(
        e for e in public(replica, "model") if e["gated"] and not e["disabled"] and any(f["lfs"] for f in e["files"])
    )
    file = next(f for f in gated["files"] if f["lfs"])
    kwargs = {"endpoint": replica.url, "cache_dir": tmp_path / "cache"}
    with pytest.raises(GatedRepoError):
        hf_hub_download(gated["id"], file["path"], token=False, **kwargs)
    with pytest.raises(GatedRepoError) as excinfo:
        hf_hub_download(gated["id"], file["path"], token=USER, **kwargs)
    assert excinfo.value.response.status_code == 403
    mark = replica.mark()
    path = hf_hub_download(gated["id"], file["path"], token=APPROVED, **kwargs)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == file["sha256"]
    log = replica.requests(since=mark)
    hub_requests = [e for e in log if e["origin"] == "hub"]
    cdn_requests = [e for e in log if e["origin"] == "cdn"]
    assert hub_requests and all(e["auth"] for e in hub_requests)
    assert cdn_requests and not any(e["auth"] for e in cdn_requests)
    assert all(e["status"] == 200 for e in cdn_requests)


def test_client_errors(replica: Any, tmp_path: Path) -> None:
    anonymous, user = api(replica), api(replica, USER)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info("nobody/nothing-here")
    with pytest.raises(RepositoryNotFoundError):
        user.model_info("nobody/nothing-here")
    private = next(e for e in replica.truth["models"] if e["private"])
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(private["id"])
    with pytest.raises(RepositoryNotFoundError):
        user.model_info(private["id"])
    assert api(replica, APPROVED).model_info(private["id"]).id == private["id"]
    entity = next(e for e in public(replica, "model") if not e["gated"] and not e["disabled"] and e["files"])
    with pytest.raises(RevisionNotFoundError):
        anonymous.model_info(entity["id"], revision="no-such-branch")
    kwargs = {"endpoint": replica.url, "cache_dir": tmp_path / "cache", "token": False}
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(entity["id"], "no/such/file.bin", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(entity["id"], entity["files"][0]["path"], revision="no-such-branch", **kwargs)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/nothing-here", "config.json", **kwargs)
    disabled = next((e for e in public(replica, "dataset") if e["disabled"] and e["files"]), None)
    if disabled is not None:
        # huggingface_hub treats a 403 on the HEAD like an outage and looks in its cache; the cause is kept.
        with pytest.raises(LocalEntryNotFoundError) as refused:
            hf_hub_download(disabled["id"], disabled["files"][0]["path"], repo_type="dataset", **kwargs)
        assert isinstance(refused.value.__cause__, DisabledRepoError)
    with pytest.raises(huggingface_hub.errors.HfHubHTTPError) as excinfo:
        api(replica, "not-a-valid-token").model_info(entity["id"])
    assert excinfo.value.response.status_code == 401
