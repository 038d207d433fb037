"""The per-repo endpoints beside info, tree and paths-info: refs, commits, likers, discussions, parquet, treesize.

- ``GET /api/{type}s/{id}/refs[?include_prs=1]``: ``{"branches", "converts", "tags"[, "pullRequests"]}``, each a list
  of ``{"name", "ref", "targetCommit"}`` (huggingface_hub's ``list_repo_refs``; ``hfscraper.replica.history``).
- ``GET /api/{type}s/{id}/commits/{rev}``: ``[{"id", "title", "message", "authors": [{"user", "avatar"}], "date"}]``,
  newest first, paged by ``Link: <...>; rel="next"`` (``list_repo_commits``; ``expand[]=formatted`` adds
  ``formatted: {"title", "message"}``).
- ``GET /api/{type}s/{id}/likers``: ``[{"user", "fullname", "avatarUrl", "type"}]``, as many as the repo's ``likes``
  (up to LIKERS_SHOWN), paged by ``Link`` (``list_repo_likers`` reads ``user``, ``fullname``, ``avatarUrl``).
- ``GET /api/{type}s/{id}/discussions?p=&type=&status=&author=``: ``{"discussions", "count", "start",
  "numClosedDiscussions"}``, 50 a page (``get_repo_discussions`` reads ``count``/``start`` to page, and per
  discussion ``title``, ``num``, ``author.name``, ``createdAt``, ``status``, ``repo.name``, ``repo.type``,
  ``isPullRequest``). A repo with a ``refs/pr/1`` has pull request #1; some repos have a discussion or two.
- ``GET /api/datasets/{id}/parquet[/{config}[/{split}]]``: ``{config: {split: [url]}}``, ``{split: [url]}``,
  ``[url]`` with ``url = {hub}/api/datasets/{id}/parquet/{config}/{split}/{n}.parquet`` (https://huggingface.co/docs/dataset-viewer/parquet);
  ``.../{n}.parquet`` answers 302 to that file of ``refs/convert/parquet``.
- ``GET /api/{type}s/{id}/treesize/{rev}[/{path}]``: ``{"path", "size"}``, the bytes of the files under the path.

Not known, chosen here [I]: only the parquet listing's shape is documented. The likers' page size and
``type`` key, the discussions' page size and extra keys (``numComments``, ``pinned``, ``topReactions``), the
``.../{n}.parquet`` redirect, the 404 of a dataset without a parquet export and the whole treesize shape are
plausible guesses (huggingface_hub 2.4.0 has no treesize method), made to the client's parsers where it has one.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from hfscraper.replica.history import CONVERT_PARQUET, PARQUET_CONFIG, RepoHistory
from hfscraper.replica.responses import Reply, error_reply, json_reply, redirect_reply
from hfscraper.replica.synth import hub_date

ENDPOINTS = frozenset({"refs", "commits", "likers", "discussions", "parquet", "treesize"})
COMMITS_PAGE = 50
LIKERS_PAGE = 1000
LIKERS_SHOWN = 5000
DISCUSSIONS_PAGE = 50
NOT_FOUND = "Sorry, we can't find the page you are looking for."


def _draw(seed: int, entity: Any, what: str) -> float:
    digest = hashlib.blake2b(
        f"{seed}:{entity.repo_type}:{entity.id}:{what}".encode("utf-8", "surrogatepass"), digest_size=8
    )
    return int.from_bytes(digest.digest(), "big") / 2**64


def _page_number(query: Any, key: str) -> int:
    raw = query.get(key) or "0"
    if not raw.isdigit():
        raise ValueError(f'"{key}" must be a number')
    return int(raw)


def _paged(request: Any, query: Any, items: list[Any], size: int) -> Reply:
    """A page of *items* from ``p`` on, with ``Link: rel="next"`` when more follow (the client follows the Link)."""
    try:
        page = _page_number(query, "p")
    except ValueError as exc:
        return error_reply(400, str(exc))
    chosen = items[page * size : (page + 1) * size]
    headers = []
    if (page + 1) * size < len(items):
        pieces = [p for p in query.raw.split("&") if p and not p.startswith("p=")] + [f"p={page + 1}"]
        path = request.raw_path.partition("?")[0]
        headers.append(("Link", f'<http://{request.host}{path}?{"&".join(pieces)}>; rel="next"'))
    return json_reply(chosen, headers=headers)


def reply(
    replica: Any, request: Any, repo_type: str, repo_id: str, entity: Any, tail: list[str], query: Any, auth: Any
) -> Reply:
    """The answer to ``/api/{type}s/{id}/<tail>`` for the endpoints in ENDPOINTS (``tail[0]``)."""
    denied = replica._denied(repo_type, repo_id, entity, auth, files=False)
    if denied is not None:
        return denied
    history: RepoHistory = replica.history
    name = tail[0]
    if name == "refs" and len(tail) == 1:
        include = (query.get("include_prs") or "") not in ("", "0", "false", "False")
        return json_reply(history.refs(entity, include))
    if name == "commits" and len(tail) == 2:
        chain = history.chain(entity, tail[1])
        if chain is None:
            return replica._revision_error(tail[1])
        formatted = "formatted" in query.getall("expand", "expand[]")
        items = []
        for commit in chain:
            item = commit.to_json()
            if formatted:
                item["formatted"] = {"title": commit.title, "message": ""}
            items.append(item)
        return _paged(request, query, items, COMMITS_PAGE)
    if name == "likers" and len(tail) == 1:
        return _paged(request, query, likers(entity, replica.options.seed), LIKERS_PAGE)
    if name == "discussions" and len(tail) == 1:
        return _discussions(history, entity, query)
    if name == "parquet" and repo_type == "dataset" and 1 <= len(tail) <= 4:
        return _parquet(replica, entity, tail[1:])
    if name == "treesize" and len(tail) >= 2:
        return _treesize(replica, repo_type, entity, tail[1], "/".join(tail[2:]).strip("/"))
    return error_reply(404, NOT_FOUND)


def likers(entity: Any, seed: int) -> list[dict[str, Any]]:
    count = min(int(entity.sort_value("likes") or 0), LIKERS_SHOWN)
    out = []
    for k in range(count):
        digest = hashlib.blake2b(f"{seed}:{entity.id}:liker:{k}".encode("utf-8", "surrogatepass"), digest_size=4)
        user = f"user-{digest.hexdigest()}"
        out.append(
            {
                "user": user,
                "fullname": user.replace("-", " ").title(),
                "avatarUrl": f"/avatars/{user}.svg",
                "type": "user",
            }
        )
    return out


def discussions(history: RepoHistory, entity: Any) -> list[dict[str, Any]]:
    """The repo's discussions and pull requests, newest (highest ``num``) first."""
    seed = history.seed
    found: list[dict[str, Any]] = []
    base = history.base_chain(entity)
    repo = {"name": entity.id, "type": entity.repo_type}
    for _, commit in history.pull_requests(entity, base):
        found.append({"num": 1, "title": "Update README.md", "status": "open", "isPullRequest": True,
                      "author": {"name": "contributor"}, "createdAt": hub_date(commit.date)})  # fmt: skip
    for k in range(int(_draw(seed, entity, "discussions") * 3)):
        num = len(found) + 1
        closed = _draw(seed, entity, f"discussion:{num}") < 0.4
        created = entity.created + int((entity.modified - entity.created) * _draw(seed, entity, f"date:{num}"))
        found.append({"num": num, "title": f"Question {k + 1} about {entity.id.rsplit('/', 1)[-1]}",
                      "status": "closed" if closed else "open", "isPullRequest": False,
                      "author": {"name": f"asker-{num}"}, "createdAt": hub_date(created)})  # fmt: skip
    for item in found:
        item.update({"repo": repo, "numComments": 1, "pinned": False, "topReactions": []})
    return sorted(found, key=lambda d: -d["num"])


def _discussions(history: RepoHistory, entity: Any, query: Any) -> Reply:
    wanted_type = query.get("type") or "all"
    wanted_status = query.get("status") or "all"
    author = query.get("author")
    if wanted_type not in ("all", "discussion", "pull_request") or wanted_status not in ("all", "open", "closed"):
        return error_reply(400, '"type" must be all, discussion or pull_request; "status" all, open or closed')
    try:
        page = _page_number(query, "p")
    except ValueError as exc:
        return error_reply(400, str(exc))
    items = [
        d for d in discussions(history, entity)
        if (wanted_type == "all" or d["isPullRequest"] == (wanted_type == "pull_request"))
        and (wanted_status == "all" or d["status"] == wanted_status)
        and (author is None or d["author"]["name"] == author)
    ]  # fmt: skip
    start = page * DISCUSSIONS_PAGE
    return json_reply({
        "discussions": items[start : start + DISCUSSIONS_PAGE],
        "count": len(items),
        "start": start,
        "numClosedDiscussions": sum(d["status"] == "closed" for d in items),
    })  # fmt: skip


def _parquet(replica: Any, entity: Any, rest: list[str]) -> Reply:
    history: RepoHistory = replica.history
    if not history.converts(entity, history.base_chain(entity)):
        return error_reply(404, NOT_FOUND)
    splits = history.parquet_splits(entity)
    base = f"{replica.hub_url}/api/datasets/{entity.id}/parquet"
    listing = {PARQUET_CONFIG: {s: [f"{base}/{PARQUET_CONFIG}/{s}/0.parquet"] for s in splits}}
    if not rest:
        return json_reply(listing)
    if rest[0] not in listing:
        return error_reply(404, NOT_FOUND)
    if len(rest) == 1:
        return json_reply(listing[rest[0]])
    if rest[1] not in listing[rest[0]]:
        return error_reply(404, NOT_FOUND)
    if len(rest) == 2:
        return json_reply(listing[rest[0]][rest[1]])
    if rest[2] != "0.parquet":
        return error_reply(404, NOT_FOUND)
    target = f"/datasets/{entity.id}/resolve/{quote(CONVERT_PARQUET, safe='')}/{rest[0]}/{rest[1]}/0000.parquet"
    return redirect_reply(302, target)


def _treesize(replica: Any, repo_type: str, entity: Any, revision: str, path: str) -> Reply:
    view = replica.history.at(entity, revision)
    if view is None:
        return replica._revision_error(revision)
    tree = replica._tree_of(repo_type, view)
    if not tree.is_folder(path) and path not in tree.by_path:
        return error_reply(404, f'Entry not found: "{path}" does not exist on "{revision}"', code="EntryNotFound")
    prefix = path + "/" if path else ""
    size = sum(f.size for f in view.files if not prefix or f.path == path or f.path.startswith(prefix))
    return json_reply({"path": path, "size": size})
