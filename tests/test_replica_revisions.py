"""Old revisions and the per-repo endpoints, through huggingface_hub 2.4.0 against the replica.

On the Hub a commit stays readable after the repo moved on: ``model_info``, ``list_repo_tree``, ``get_paths_info``
and ``hf_hub_download`` at an old sha give what the repo held then; branches, tags, ``refs/pr/N`` and
``refs/convert/parquet`` are revisions too. ``list_repo_refs``, ``list_repo_commits``, ``list_repo_likers`` and
``get_repo_discussions`` work; the dataset parquet listing answers; an unknown sub-path of an existing repo is the
Hub's plain 404, never ``RepoNotFound`` (which says the repo is gone).
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

huggingface_hub = pytest.importorskip("huggingface_hub")

from huggingface_hub import HfApi, hf_hub_download  # noqa: E402
from huggingface_hub.errors import RevisionNotFoundError  # noqa: E402
from huggingface_hub.hf_api import RepoFile  # noqa: E402

from hfscraper.middlewares.auth import hub_refusal  # noqa: E402
from tests.support.replica import ReplicaHandle, replica_fixture, run_replica  # noqa: E402

SEED = 15
replica = replica_fixture(models=40, datasets=30, spaces=6, seed=SEED)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


pytestmark = pytest.mark.usefixtures("isolated_hf_client")


def api(hub: ReplicaHandle) -> HfApi:
    return HfApi(endpoint=hub.url, token=False)


def ordinary(hub: ReplicaHandle, plural: str) -> list[dict[str, Any]]:
    """Public, ungated, enabled repos with a plain owner/name id and a README.md."""
    return [
        e for e in hub.truth[plural]
        if not e["private"] and not e["gated"] and not e["disabled"] and e["id"].count("/") == 1
        and any(f["path"] == "README.md" for f in e["files"])
    ]  # fmt: skip


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with _OPENER.open(url, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_an_old_commit_stays_readable_after_touch(replica: ReplicaHandle, tmp_path: Path) -> None:
    client = api(replica)
    entity = ordinary(replica, "models")[1]
    repo_id, old_sha = entity["id"], entity["api"]["sha"]
    new_sha = replica.mutate("model", touch=[repo_id])["touched"][repo_id]["sha"]
    assert client.model_info(repo_id).sha == new_sha != old_sha
    old = client.model_info(repo_id, revision=old_sha)
    assert old.sha == old_sha and old.last_modified.isoformat().startswith(entity["api"]["lastModified"][:19])
    tree = client.list_repo_tree(repo_id, revision=old_sha, recursive=True)
    assert {e.path: e.blob_id for e in tree if isinstance(e, RepoFile)} == {
        f["path"]: f["blob_sha1"] for f in entity["files"]
    }
    for file in entity["files"]:
        path = hf_hub_download(
            repo_id, file["path"], revision=old_sha, endpoint=replica.url, cache_dir=tmp_path, token=False
        )
        assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == file["sha256"]
    assert [c.commit_id for c in client.list_repo_commits(repo_id)][:2] == [new_sha, old_sha]


def test_an_old_commit_stays_readable_after_touch_and_edit(replica: ReplicaHandle, tmp_path: Path) -> None:
    client = api(replica)
    entity = ordinary(replica, "models")[0]
    repo_id, old_sha = entity["id"], entity["api"]["sha"]
    readme = next(f for f in entity["files"] if f["path"] == "README.md")
    replica.mutate("model", touch=[repo_id])
    edited = replica.mutate("model", edit={repo_id: None})["touched"][repo_id]
    assert edited["edited"] == ["README.md"] and edited["sha"] != old_sha

    # info, tree, paths-info and download at the old sha: what the repo held then.
    old = client.model_info(repo_id, revision=old_sha, files_metadata=True)
    assert old.sha == old_sha and old.last_modified is not None
    assert {s.rfilename for s in old.siblings} == {f["path"] for f in entity["files"]}
    tree = {
        e.path: e for e in client.list_repo_tree(repo_id, revision=old_sha, recursive=True) if isinstance(e, RepoFile)
    }
    assert tree["README.md"].blob_id == readme["blob_sha1"]
    (info,) = client.get_paths_info(repo_id, ["README.md"], revision=old_sha)
    assert info.blob_id == readme["blob_sha1"]
    path = hf_hub_download(
        repo_id, "README.md", revision=old_sha, endpoint=replica.url, cache_dir=tmp_path / "c", token=False
    )
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == readme["sha256"]

    # main has the edited README.
    head = client.model_info(repo_id)
    assert head.sha == edited["sha"]
    new_path = hf_hub_download(repo_id, "README.md", endpoint=replica.url, cache_dir=tmp_path / "d", token=False)
    new_bytes = Path(new_path).read_bytes()
    assert hashlib.sha256(new_bytes).hexdigest() != readme["sha256"] and new_bytes.endswith(b".\n")

    # The commit list: the edit, the touch, then the original head and its history down to the initial commit.
    commits = client.list_repo_commits(repo_id)
    ids = [c.commit_id for c in commits]
    assert ids[0] == edited["sha"] and ids[2] == old_sha and len(set(ids)) == len(ids)
    assert commits[-1].title == "initial commit" and commits[-1].authors == ["system"]
    assert [c.created_at for c in commits] == sorted((c.created_at for c in commits), reverse=True)
    # Every file's lastCommit (tree expand) names a commit of the list.
    expanded = client.list_repo_tree(repo_id, revision=old_sha, recursive=True, expand=True)
    assert {e.last_commit.oid for e in expanded if isinstance(e, RepoFile)} <= set(ids)
    # A commit in the middle of the history has only the files uploaded by then.
    middle = client.list_repo_commits(repo_id, revision=ids[3]) if len(ids) > 4 else commits[3:]
    assert [c.commit_id for c in middle] == ids[3:]
    initial = client.model_info(repo_id, revision=ids[-1])
    assert [s.rfilename for s in initial.siblings] == [".gitattributes"]

    with pytest.raises(RevisionNotFoundError):
        client.model_info(repo_id, revision="f" * 40)


def test_list_repo_refs_with_tags_prs_and_parquet(replica: ReplicaHandle, tmp_path: Path) -> None:
    client = api(replica)
    models = ordinary(replica, "models")
    refs = {m["id"]: client.list_repo_refs(m["id"], include_pull_requests=True) for m in models}
    for repo_id, found in refs.items():
        assert [(b.name, b.ref) for b in found.branches] == [("main", "refs/heads/main")]
        assert found.branches[0].target_commit == client.model_info(repo_id).sha
    tagged = [r for r in refs if refs[r].tags]
    with_pr = [r for r in refs if refs[r].pull_requests]
    assert tagged and with_pr, "the seed gives some repos a tag and a pull request"
    assert client.list_repo_refs(with_pr[0]).pull_requests is None  # asked for without PRs

    # A tag is a revision: its commit, its files.
    tag = refs[tagged[0]].tags[0]
    assert tag.ref == f"refs/tags/{tag.name}"
    assert client.model_info(tagged[0], revision=tag.name).sha == tag.target_commit
    assert client.list_repo_commits(tagged[0], revision=tag.name)[0].commit_id == tag.target_commit

    # refs/pr/1, URL-quoted as the client sends it: README.md with the proposed change.
    pr = refs[with_pr[0]].pull_requests[0]
    assert pr.ref == "refs/pr/1"
    assert client.model_info(with_pr[0], revision=pr.ref).sha == pr.target_commit
    path = hf_hub_download(
        with_pr[0], "README.md", revision=pr.ref, endpoint=replica.url, cache_dir=tmp_path, token=False
    )
    assert Path(path).read_bytes().endswith(b"A proposed change (pull request #1).\n")
    discussions = list(client.get_repo_discussions(with_pr[0]))
    assert [d.num for d in discussions if d.is_pull_request] == [1]
    assert all(d.repo_id == with_pr[0] and d.repo_type == "model" for d in discussions)
    only_prs = list(client.get_repo_discussions(with_pr[0], discussion_type="pull_request"))
    assert [d.num for d in only_prs] == [1] and only_prs[0].status == "open"

    # Datasets the viewer converts have refs/convert/parquet, readable as a revision.
    datasets = [d for d in ordinary(replica, "datasets") if d.get("viewer") == "ok"]
    assert datasets
    dataset = datasets[0]["id"]
    converts = client.list_repo_refs(dataset, repo_type="dataset").converts
    assert [(c.name, c.ref) for c in converts] == [("parquet", "refs/convert/parquet")]
    files = [
        e.path
        for e in client.list_repo_tree(dataset, repo_type="dataset", revision="refs/convert/parquet", recursive=True)
        if isinstance(e, RepoFile)
    ]
    assert files and all(p == ".gitattributes" or p.endswith("/0000.parquet") for p in files)
    parquet = next(p for p in files if p.endswith(".parquet"))
    local = hf_hub_download(
        dataset, parquet, repo_type="dataset", revision="refs/convert/parquet", endpoint=replica.url,
        cache_dir=tmp_path / "p", token=False,
    )  # fmt: skip
    assert Path(local).stat().st_size > 0


def test_likers_discussions_parquet_listing_and_treesize(replica: ReplicaHandle) -> None:
    client = api(replica)
    model = max(ordinary(replica, "models"), key=lambda e: e["api"].get("likes") or 0)
    likes = model["api"]["likes"]
    assert likes > 0
    likers = list(client.list_repo_likers(model["id"]))
    assert len(likers) == min(likes, 5000) and len({u.username for u in likers}) == len(likers)
    assert all(u.fullname and u.avatar_url for u in likers)
    for entity in ordinary(replica, "models")[:10]:
        found = list(client.get_repo_discussions(entity["id"]))
        assert sorted((d.num for d in found), reverse=True) == [d.num for d in found] == list(range(len(found), 0, -1))

    dataset = next(d for d in ordinary(replica, "datasets") if d.get("viewer") == "ok")["id"]
    status, _, body = get(f"{replica.url}/api/datasets/{dataset}/parquet")
    assert status == 200
    listing = json.loads(body)
    (config,) = listing
    split, urls = next(iter(listing[config].items()))
    assert urls == [f"{replica.url}/api/datasets/{dataset}/parquet/{config}/{split}/0.parquet"]
    status, _, body = get(urls[0])  # the redirect leads to the file of refs/convert/parquet
    assert status == 200 and len(body) > 0

    model_id = model["id"]
    status, _, body = get(f"{replica.url}/api/models/{model_id}/treesize/main")
    assert status == 200 and json.loads(body) == {"path": "", "size": sum(f["size"] for f in model["files"])}


@pytest.mark.parametrize("tail", ["bogus", "treesize", "settings/webhooks", "likers/extra"])
def test_an_unknown_sub_path_of_an_existing_repo_is_a_plain_404(replica: ReplicaHandle, tail: str) -> None:
    repo_id = ordinary(replica, "models")[0]["id"]
    status, headers, body = get(f"{replica.url}/api/models/{repo_id}/{tail}")
    assert status == 404 and "X-Error-Code" not in headers, (tail, headers)
    assert hub_refusal(status, {b"X-Error-Code": headers.get("X-Error-Code", "").encode()}) is None
    # A known endpoint of a missing repo still says RepoNotFound.
    status, headers, _ = get(f"{replica.url}/api/models/nobody/{quote('missing-repo')}/likers")
    assert status == 401 and headers.get("X-Error-Code") == "RepoNotFound"


def test_a_lazy_hub_keeps_the_previous_commit_of_a_changed_entity(tmp_path: Path) -> None:
    # The lazy Hub (150k+ entities in the scale bench) keeps nothing per entity for history: the previous commit of a
    # changed entity is derived from its index.
    with run_replica(
        tmp_dir=tmp_path, models=60, datasets=5, spaces=5, seed=4, extra_args=["--lazy"], truth=False
    ) as lazy:
        client = api(lazy)
        repo_id = next(m.id for m in client.list_models(limit=10) if not m.gated and not m.disabled)
        old = client.model_info(repo_id, files_metadata=True)
        new_sha = lazy.mutate("model", touch=[repo_id])["touched"][repo_id]["sha"]
        assert client.model_info(repo_id).sha == new_sha != old.sha
        again = client.model_info(repo_id, revision=old.sha, files_metadata=True)
        assert again.sha == old.sha and again.last_modified == old.last_modified
        assert [(s.rfilename, s.blob_id) for s in again.siblings] == [(s.rfilename, s.blob_id) for s in old.siblings]
        assert [c.commit_id for c in client.list_repo_commits(repo_id)][:2] == [new_sha, old.sha]
        readme = hf_hub_download(
            repo_id, "README.md", revision=old.sha, endpoint=lazy.url, cache_dir=tmp_path / "c", token=False
        )
        assert Path(readme).stat().st_size > 0
