"""Every revision of a repo, readable: its commits, branches, tags, pull-request and convert refs.

The Hub keeps old commits readable: ``/api/{type}s/{id}/revision/{rev}``, ``.../tree/{rev}``, ``.../paths-info/{rev}``
and ``/resolve/{rev}/...`` answer at an old commit sha as at ``main``, a branch, a tag, ``refs/pr/N`` or
``refs/convert/parquet`` (URL-quoted with ``safe=""`` in paths, as huggingface_hub hf_api.py sends them).
This module says which commit a revision names and what the repo looked like there, so the server can render an
entity *view* (a copy of the entity with that commit's ``sha``, ``lastModified`` and files) with its usual code.

**Derived history (no storage).** A repo's history is a function of the entity, so a Hub of millions of entities
(``hfscraper.replica.lazy``) holds nothing per entity for it. The chain of ``main``, oldest first:

- the initial commit (``.gitattributes`` only, author ``system``; the client documents the Hub's initial commit so),
  with the id the ``.gitattributes`` file's ``lastCommit`` names;
- one commit per other file, in the order of the dates its ``lastCommit`` gives (``"Upload <name>"``, the same id),
  each adding that file: the tree's ``expand=true`` ``lastCommit`` of every file names a commit that exists;
- the repo's ``sha`` (the ``README.md`` commit) with every file: the head before any change.

Refs, drawn from ``(seed, type, id)``: every repo has ``main``; about one in four a tag ``v1.0`` on the commit before
the head (one in twelve also ``v0.1`` on the initial commit); about one in five an open pull request ``refs/pr/1``
whose commit appends a line to ``README.md``; every dataset the dataset viewer converts (``viewer`` ``ok``,
``preview_only``, ``rows_error``) has ``refs/convert/parquet``, a commit on top of the head whose tree is
``.gitattributes`` and ``default/{split}/0000.parquet`` per split (the layout the viewer's ``/parquet`` URLs name,
https://huggingface.co/docs/dataset-viewer/parquet), the parquet bytes pseudo-random.

**Changes.** ``POST /_replica/mutate``'s ``touch`` (a new commit, same files) and ``edit`` (a new commit that changes
files) go through :meth:`RepoHistory.before_change`/:meth:`RepoHistory.committed`: the repo's state before its first
change is kept (its sha, date and pinned files), and each change appends a state (sha, date, the files it replaced).
Only changed repos hold anything. A lazy Hub's changed entity (``lazy.LazyHub.original``) gets one change commit on top
of its original head, derived too (a lazy Hub keeps only the newest sha of a changed entity).

Not known, chosen here [I]: the exact ``name`` of a pull-request ref (``refs/pr/1`` here), whether ``/refs`` omits
``pullRequests`` without ``include_prs`` (omitted here; huggingface_hub reads it only when it asked for it), the
commit listing's page size and paging parameter (50 per page, ``p=<page>``, ``Link: rel="next"``; the client follows
the Link), and the commit ``message`` texts (empty).
"""

from __future__ import annotations

import calendar
import copy
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from hfscraper.replica.synth import RepoFile, hub_date

MAIN = "main"
HEADS = "refs/heads/"
TAGS = "refs/tags/"
PR_PREFIX = "refs/pr/"
CONVERT_PARQUET = "refs/convert/parquet"
PARQUET_CONFIG = "default"
CONVERTING = frozenset({"ok", "preview_only", "rows_error"})  # viewer statuses whose datasets get a parquet branch
PARQUET_BOT = "parquet-converter"


@dataclass(frozen=True)
class State:
    """A full tree: the repo's sha and lastModified there, and the files that differ from the generated ones."""

    sha: str
    modified: int
    replaced: tuple[tuple[str, RepoFile], ...] = ()  # (path, file) that replace the generated file of that path
    tree: tuple[RepoFile, ...] | None = None  # a whole tree of its own (the parquet branch), generated ones unused


@dataclass(frozen=True)
class Commit:
    """One commit: what ``/commits/{rev}`` lists, and the tree it names (``state``, maybe only ``paths`` of it)."""

    id: str
    title: str
    date: int
    authors: tuple[str, ...]
    state: State
    paths: frozenset[str] | None = None  # None: every file of the state

    def to_json(self) -> dict[str, Any]:
        authors = [{"user": a, "avatar": f"/avatars/{hashlib.md5(a.encode()).hexdigest()}.svg"} for a in self.authors]
        return {"id": self.id, "title": self.title, "message": "", "authors": authors, "date": hub_date(self.date)}


@dataclass
class _Changes:
    """What a changed repo keeps: its state before the first change, its pinned files then, the changes since."""

    base: State
    pinned: list[RepoFile] | None
    states: list[tuple[State, str]] = field(default_factory=list)  # (state, commit title), oldest first


def _parse_date(text: str) -> int:
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S.000Z"))


def _hex(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def _draw(seed: int, entity: Any, what: str) -> float:
    digest = hashlib.blake2b(
        f"{seed}:{entity.repo_type}:{entity.id}:{what}".encode("utf-8", "surrogatepass"), digest_size=8
    )
    return int.from_bytes(digest.digest(), "big") / 2**64


def is_commit_id(text: str) -> bool:
    return len(text) == 40 and all(c in "0123456789abcdef" for c in text)


class RepoHistory:
    """Commits and refs of every repo of one Hub (derived, plus the changes ``mutate`` made)."""

    def __init__(self, hub: Any, seed: int) -> None:
        self.hub = hub
        self.seed = seed
        self._changes: dict[tuple[str, str], _Changes] = {}

    # ------------------------------------------------------------------ changes
    def before_change(self, entity: Any) -> None:
        """Keep the repo's current state (call before a mutation changes its sha)."""
        key = (entity.repo_type, entity.id)
        if key not in self._changes:
            self._changes[key] = _Changes(State(entity.sha, entity.modified), entity._files)

    def committed(self, entity: Any, title: str, replace: dict[str, bytes] | None = None) -> list[str]:
        """Record the entity's new head (its sha and modified already set); *replace* gives new bytes for existing
        paths. Returns the paths replaced; the entity's files are pinned to the new tree when any file differs."""
        changes = self._changes[(entity.repo_type, entity.id)]
        previous = changes.states[-1][0] if changes.states else changes.base
        replaced = dict(previous.replaced)
        commit = {"id": entity.sha, "title": title, "date": hub_date(entity.modified)}
        changed: list[str] = []
        if replace:
            current = {f.path: f for f in self._state_files(entity, changes, previous)}
            for path, data in replace.items():
                old = current.get(path)
                if old is None:
                    raise ValueError(f"{entity.id} has no file {path!r} (an edit changes existing files)")
                replaced[path] = RepoFile.from_bytes(path, data, lfs=old.lfs, last_commit=commit)
                changed.append(path)
        state = State(entity.sha, entity.modified, tuple(sorted(replaced.items())))
        changes.states.append((state, title))
        if replaced:
            entity._files = self._state_files(entity, changes, state)
        return changed

    @staticmethod
    def appended(data: bytes, line: str) -> bytes:
        return data.rstrip(b"\n") + b"\n\n" + line.encode() + b"\n"

    # ------------------------------------------------------------------ trees
    def _view(self, entity: Any, state: State, files: list[RepoFile] | None) -> Any:
        view = copy.copy(entity)
        view.sha, view.modified, view._files = state.sha, state.modified, files
        return view

    def _state_files(self, entity: Any, changes: _Changes | None, state: State) -> list[RepoFile]:
        if state.tree is not None:
            return list(state.tree)
        pinned = changes.pinned if changes is not None else entity._files
        files = list(pinned) if pinned is not None else self._view(entity, state, None).files
        if not state.replaced:
            return files
        replaced = dict(state.replaced)
        return [replaced.get(f.path, f) for f in files]

    def files_at(self, entity: Any, commit: Commit) -> list[RepoFile]:
        files = self._state_files(entity, self._changes.get((entity.repo_type, entity.id)), commit.state)
        if commit.paths is None:
            return files
        return [f for f in files if f.path in commit.paths]

    def view(self, entity: Any, commit: Commit) -> Any:
        """The entity as it was at *commit*: sha, lastModified and files of then (``fields`` regenerate from them)."""
        if commit.id == entity.sha:
            return entity
        state = commit.state
        at = State(commit.id, commit.date, state.replaced, state.tree)
        return self._view(entity, at, self.files_at(entity, commit))

    # ------------------------------------------------------------------ commits
    def _base(self, entity: Any) -> tuple[State, list[tuple[State, str]]]:
        """The state before any change and the changes since (oldest first)."""
        changes = self._changes.get((entity.repo_type, entity.id))
        if changes is not None:
            return changes.base, list(changes.states)
        original = getattr(self.hub, "original", None)
        before = original(entity) if original is not None else None
        if before is not None:  # a lazy Hub's changed entity
            return State(*before), [(State(entity.sha, entity.modified), "Update README.md")]
        return State(entity.sha, entity.modified), []

    def base_chain(self, entity: Any) -> list[Commit]:
        """The commits up to the head before any change, newest first."""
        base, _ = self._base(entity)
        files = self._state_files(entity, self._changes.get((entity.repo_type, entity.id)), base)
        initial_id = _hex(f"{entity.mongo_id}:initial")
        uploads: dict[str, tuple[int, str, set[str]]] = {}
        initial_paths: set[str] = set()
        head_paths: set[str] = set()
        for f in files:
            commit = f.last_commit or {}
            cid = commit.get("id")
            if f.path == ".gitattributes" and cid:
                initial_id = cid
                initial_paths.add(f.path)
            elif not cid or cid == base.sha or commit.get("title") == "initial commit":
                (initial_paths if commit.get("title") == "initial commit" else head_paths).add(f.path)
            else:
                date, title, paths = uploads.setdefault(cid, (_parse_date(commit["date"]), commit["title"], set()))
                paths.add(f.path)
        chain = [Commit(initial_id, "initial commit", entity.created, ("system",), base, frozenset(initial_paths))]
        present = set(initial_paths)
        for cid, (date, title, paths) in sorted(uploads.items(), key=lambda item: (item[1][0], item[0])):
            present |= paths
            chain.append(
                Commit(cid, title, max(date, entity.created), (entity.author or "system",), base, frozenset(present))
            )
        chain.append(Commit(base.sha, "Update README.md", base.modified, (entity.author or "system",), base))
        chain.reverse()
        return chain

    def main_chain(self, entity: Any) -> list[Commit]:
        """The commits of ``main``, newest first."""
        _, states = self._base(entity)
        author = (entity.author or "system",)
        changed = [Commit(s.sha, title, s.modified, author, s) for s, title in reversed(states)]
        return changed + self.base_chain(entity)

    # ------------------------------------------------------------------ refs
    def tags(self, entity: Any, base: list[Commit]) -> list[tuple[str, Commit]]:
        out = []
        if len(base) >= 2 and _draw(self.seed, entity, "tag") < 0.25:
            out.append(("v1.0", base[1]))
            if _draw(self.seed, entity, "tag0") < 1 / 3:
                out.append(("v0.1", base[-1]))
        return out

    def pull_requests(self, entity: Any, base: list[Commit]) -> list[tuple[str, Commit]]:
        if _draw(self.seed, entity, "pr") >= 0.2:
            return []
        head = base[0]
        files = self.files_at(entity, head)
        readme = next((f for f in files if f.path == "README.md"), None)
        if readme is None:
            return []
        pr_id = _hex(f"{entity.mongo_id}:pr:1")
        date = head.date + 3600
        commit_info = {"id": pr_id, "title": "Update README.md", "date": hub_date(date)}
        data = self.appended(readme.read(), "A proposed change (pull request #1).")
        changed = RepoFile.from_bytes("README.md", data, last_commit=commit_info)
        state = State(pr_id, date, tree=tuple(changed if f.path == "README.md" else f for f in files))
        return [(f"{PR_PREFIX}1", Commit(pr_id, "Update README.md", date, ("contributor",), state))]

    def converts(self, entity: Any, base: list[Commit]) -> list[tuple[str, Commit]]:
        if entity.repo_type != "dataset" or entity._extra == "hostile":
            return []
        from hfscraper.replica.viewer import viewer_status  # viewer imports nothing of this module; kept local

        if viewer_status(entity, self.seed) not in CONVERTING:
            return []
        splits = self.parquet_splits(entity)
        if not splits:
            return []
        head = base[0]
        convert_id = _hex(f"{entity.mongo_id}:convert:parquet")
        date = head.date + 600
        info = {"id": convert_id, "title": "Update parquet files", "date": hub_date(date)}
        gitattributes = next((f for f in self.files_at(entity, head) if f.path == ".gitattributes"), None)
        tree: list[RepoFile] = [gitattributes] if gitattributes is not None else []
        root = f"{self.seed}:{entity.repo_type}:{entity.mongo_id}:parquet"
        for split in splits:
            size = 4096 + int(_draw(self.seed, entity, f"parquet:{split}") * 60000)
            path = f"{PARQUET_CONFIG}/{split}/0000.parquet"
            tree.append(RepoFile.pseudo_random(path, size, f"{root}:{path}", lfs=True, last_commit=info))
        state = State(convert_id, date, tree=tuple(tree))
        return [(CONVERT_PARQUET, Commit(convert_id, "Update parquet files", date, (PARQUET_BOT,), state))]

    @staticmethod
    def parquet_splits(entity: Any) -> list[str]:
        from hfscraper.replica.synth import _DatasetGen  # the generator that draws the dataset's splits

        return list(_DatasetGen(entity).splits)

    def refs(self, entity: Any, include_prs: bool) -> dict[str, Any]:
        """The body of ``GET /api/{type}s/{id}/refs`` (huggingface_hub's ``GitRefs``)."""
        base = self.base_chain(entity)

        def ref(name: str, full: str, commit: Commit) -> dict[str, str]:
            return {"name": name, "ref": full, "targetCommit": commit.id}

        body: dict[str, Any] = {
            "branches": [{"name": MAIN, "ref": HEADS + MAIN, "targetCommit": entity.sha}],
            "converts": [ref(full.rsplit("/", 1)[-1], full, c) for full, c in self.converts(entity, base)],
            "tags": [ref(name, TAGS + name, c) for name, c in self.tags(entity, base)],
        }
        if include_prs:
            body["pullRequests"] = [ref(full, full, c) for full, c in self.pull_requests(entity, base)]
        return body

    # ------------------------------------------------------------------ revisions
    def chain(self, entity: Any, revision: str) -> list[Commit] | None:
        """The commits reachable from *revision*, newest first (None: the Hub's RevisionNotFound)."""
        if revision in (MAIN, HEADS + MAIN):
            return self.main_chain(entity)
        base = self.base_chain(entity)
        name = revision[len(TAGS) :] if revision.startswith(TAGS) else revision
        for tag, commit in self.tags(entity, base):
            if tag == name:
                return base[base.index(commit) :]
        if revision.startswith(PR_PREFIX):
            for full, commit in self.pull_requests(entity, base):
                if full == revision:
                    return [commit, *base]
            return None
        if revision == CONVERT_PARQUET:
            found = self.converts(entity, base)
            return [found[0][1], *base] if found else None
        if not is_commit_id(revision):
            return None
        main = self.main_chain(entity)
        for n, commit in enumerate(main):
            if commit.id == revision:
                return main[n:]
        for _, commit in self.pull_requests(entity, base) + self.converts(entity, base):
            if commit.id == revision:
                return [commit, *base]
        return None

    def at(self, entity: Any, revision: str) -> Any | None:
        """The entity as it was at *revision* (itself for ``main`` or its sha), or None if no such revision."""
        if revision in (MAIN, HEADS + MAIN, entity.sha):
            return entity
        found = self.chain(entity, revision)
        return self.view(entity, found[0]) if found else None

    def find_lfs(self, entity: Any, sha256: str) -> RepoFile | None:
        """An LFS file of any revision of the repo with this SHA-256 (what the CDN serves)."""
        base = self.base_chain(entity)
        states = [c.state for c in self.main_chain(entity)] + [
            c.state for _, c in self.pull_requests(entity, base) + self.converts(entity, base)
        ]
        seen: set[str] = set()
        for state in states:
            if state.sha in seen:
                continue
            seen.add(state.sha)
            for f in self._state_files(entity, self._changes.get((entity.repo_type, entity.id)), state):
                if f.lfs and f.sha256 == sha256:
                    return f
        return None
