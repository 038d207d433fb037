"""The file tree of one repo revision, as ``/api/{type}s/{id}/tree/{rev}[/{path}]`` pages it.

A repo's files are a flat list of paths; folders are implied.  Entries are
ordered like a depth-first walk with names compared byte-wise (git's tree
order is close to that), so a recursive listing shows a folder right before its
content.  Paging is by position, with the Hub's cursor shape (real ``Link`` headers of tree listings,
tests/data/hub_fixtures):
``base64("<base64 JSON {"file_name", "tree_oid"}>:<page>")``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PAGE_SIZE = 1000
PAGE_SIZE_EXPANDED = 50


@dataclass(frozen=True)
class Folder:
    """An implied folder: what a tree listing shows as ``{"type": "directory"}``."""

    path: str
    oid: str


def _key(path: str) -> tuple[bytes, ...]:
    return tuple(part.encode("utf-8", "surrogatepass") for part in path.split("/"))


class RepoTree:
    """All entries (files and folders) of one revision, sorted, with quick child lookup."""

    def __init__(self, commit: str, files: Sequence[Any]) -> None:
        self.commit = commit
        entries: dict[str, Any] = {}
        for file in files:
            entries[file.path] = file
            parts = file.path.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in entries:
                    oid = hashlib.sha1(f"tree\0{commit}\0{folder}".encode("utf-8", "surrogatepass")).hexdigest()
                    entries[folder] = Folder(folder, oid)
        self.paths = sorted(entries, key=_key)
        self.keys = [_key(p) for p in self.paths]
        self.entries = [entries[p] for p in self.paths]
        self.by_path = entries
        self.root_oid = hashlib.sha1(f"tree\0{commit}\0".encode()).hexdigest()

    def is_folder(self, path: str) -> bool:
        return path == "" or isinstance(self.by_path.get(path), Folder)

    def listing(self, path: str, recursive: bool) -> list[Any]:
        """Entries under ``path`` ('' for the root): direct children, or everything below if recursive."""
        if path == "":
            start, stop = 0, len(self.entries)
            depth = 1
        else:
            prefix = _key(path)
            start = bisect.bisect_right(self.keys, prefix)
            # Everything whose key starts with the folder's parts, i.e. until the first key past that prefix.
            stop = start
            n = len(prefix)
            while stop < len(self.keys) and self.keys[stop][:n] == prefix:
                stop += 1
            depth = n + 1
        chosen = self.entries[start:stop]
        if recursive:
            return chosen
        return [e for e, k in zip(chosen, self.keys[start:stop], strict=True) if len(k) == depth]

    def folder_oid(self, path: str) -> str:
        if path == "":
            return self.root_oid
        entry = self.by_path[path]
        return entry.oid


def encode_tree_cursor(last_path: str, tree_oid: str, page: int) -> str:
    inner = base64.b64encode(json.dumps({"file_name": last_path, "tree_oid": tree_oid}).encode()).decode()
    return base64.b64encode(f"{inner}:{page}".encode()).decode()


def decode_tree_cursor(cursor: str) -> tuple[str, int]:
    """``(last path of the previous page, page number)``; ``ValueError`` if malformed."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        outer = base64.b64decode(padded).decode()
        inner, _, page = outer.rpartition(":")
        data = json.loads(base64.b64decode(inner))
        return str(data["file_name"]), int(page)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError) as exc:
        raise ValueError(f"invalid tree cursor: {exc}") from exc
