"""Pure functions about a repository's files: which to download, where they may land, how to verify them.

Nothing here does network I/O or imports Scrapy; `hfscraper.pipelines.files` uses these.

Choosing files (`select_files`)
-------------------------------
Patterns work like huggingface_hub's `allow_patterns`: `fnmatch` on the whole path in the repository, where
`*` also matches `/` (`*.json` matches `unet/config.json`), a plain name matches only that path
(`config.json` is the top-level file), and a pattern ending in `/` matches everything below that folder.

Where a file may land (`check_repo_path`)
-----------------------------------------
A file is stored at `<entity folder>/<path in repo>`, sub-folders kept. A path is refused (the file is skipped,
never the entity) when it is not a string or is empty (`empty`), starts with `/` (`absolute`), has an empty
segment (`empty_segment`: `a//b`, a trailing `/`), a `.` or `..` segment (`dot_segment`), a backslash
(`backslash`), a control character or NUL (`control_character`), a lone surrogate (`invalid_unicode`), a
segment longer than 255 bytes or more than 1,024 bytes in all (`too_long`), a segment that starts with the
atomic-write prefix `.hfscraper-tmp-` (`temp_name`), or when its first segment is one of the names the crawl
itself writes into an entity folder, in any letter case (`reserved_name`: `RESERVED_NAMES`). Whether the
path also *resolves* inside the entity folder (no symlinked folder on the way) is checked on disk, by the
pipeline, right before the file is moved into place.

Verification
------------
An LFS file is checked against its SHA-256 (`X-Linked-Etag` of the Hub's 302, or the tree's `lfs.oid`); a
file kept in git (small files) against its git blob SHA-1, `sha1(b"blob <size>\\0" + bytes)`, which is the
`ETag` the Hub sends for it (and the tree's `oid`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import parse_qsl, quote, urlsplit

from hfscraper.constants import REPO_TYPE_DATASET, REPO_TYPE_SPACE
from hfscraper.fsutil import TEMP_PREFIX

#: Files the crawl writes into an entity folder itself (never a downloaded file's top-level name). Any other
#: file in an entity folder is a downloaded file of the entity's current commit.
RESERVED_NAMES: Final = frozenset(
    {
        "metadata.json",  # EntityStorePipeline
        "tombstone.json",  # the crawl state
        "preview_info.json",  # PreviewsPipeline (datasets)
        "thumbnail_info.json",  # PreviewsPipeline (spaces)
        "relationships.json",  # PreviewsPipeline (spaces)
        "ipfs_cid.txt",  # the IPFS pipeline
    }
)
_RESERVED_FOLDED: Final = frozenset(n.casefold() for n in RESERVED_NAMES)

MAX_SEGMENT_BYTES: Final = 255
MAX_PATH_BYTES: Final = 1024

#: URL prefix of a repository type in `resolve` URLs (huggingface_hub constants.py: models have none).
RESOLVE_PREFIX: Final = {REPO_TYPE_DATASET: "datasets/", REPO_TYPE_SPACE: "spaces/"}

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class UnsafePathError(ValueError):
    """A repository path that must not become a file on disk.

    Attributes:
        reason: a short slug for stats and logs (see the module docstring).
        path: the offending value.
    """

    def __init__(self, reason: str, path: object, detail: str) -> None:
        super().__init__(f"unsafe path ({reason}): {detail}")
        self.reason = reason
        self.path = path


def check_repo_path(path: object) -> tuple[str, ...]:
    """The segments of *path* if a file may be stored under it, else raise UnsafePathError.

    >>> check_repo_path("1_Pooling/config.json")
    ('1_Pooling', 'config.json')
    >>> for bad in ("../x", "/etc/passwd", "a//b", "a\\\\b", "metadata.json", "METADATA.JSON", "x\\x00"):
    ...     try:
    ...         check_repo_path(bad)
    ...     except UnsafePathError as exc:
    ...         print(exc.reason)
    dot_segment
    absolute
    empty_segment
    backslash
    reserved_name
    reserved_name
    control_character
    """
    if not isinstance(path, str) or not path:
        raise UnsafePathError("empty", path, "not a non-empty string")
    if path.startswith("/"):
        raise UnsafePathError("absolute", path, f"{path[:80]!r} is absolute")
    for position, char in enumerate(path):
        if unicodedata.category(char) == "Cc":
            raise UnsafePathError("control_character", path, f"U+{ord(char):04X} at position {position}")
        if 0xD800 <= ord(char) <= 0xDFFF:
            raise UnsafePathError("invalid_unicode", path, f"lone surrogate at position {position}")
    if "\\" in path:
        raise UnsafePathError("backslash", path, f"{path[:80]!r} holds a backslash")
    segments = tuple(path.split("/"))
    for segment in segments:
        if segment == "":
            raise UnsafePathError("empty_segment", path, f"{path[:80]!r} has an empty segment")
        if segment in (".", ".."):
            raise UnsafePathError("dot_segment", path, f"{path[:80]!r} has a {segment!r} segment")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise UnsafePathError("too_long", path, f"a segment of more than {MAX_SEGMENT_BYTES} bytes")
        if segment.startswith(TEMP_PREFIX):
            raise UnsafePathError("temp_name", path, f"{segment[:80]!r} looks like an interrupted write")
    if len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise UnsafePathError("too_long", path, f"more than {MAX_PATH_BYTES} bytes")
    if segments[0].casefold() in _RESERVED_FOLDED:
        raise UnsafePathError("reserved_name", path, f"{segments[0]!r} is written by the crawl itself")
    return segments


# ---------------------------------------------------------------------------------------------------------
# Choosing files
# ---------------------------------------------------------------------------------------------------------


def _normalize_pattern(pattern: str) -> str:
    return pattern + "*" if pattern.endswith("/") else pattern


def matches(path: str, patterns: Iterable[str]) -> bool:
    """True when *path* matches one of *patterns* (huggingface_hub's `allow_patterns` rule).

    >>> matches("unet/config.json", ["*.json"]), matches("unet/config.json", ["config.json"])
    (True, False)
    >>> matches("data/train.csv", ["data/"])
    True
    """
    return any(fnmatch.fnmatchcase(path, _normalize_pattern(p)) for p in patterns)


def select_files(siblings: object, patterns: Sequence[str]) -> list[str]:
    """The `rfilename`s of a listing's `siblings` that match *patterns*, in listing order, without repeats.

    Elements that are not `{"rfilename": <str>}` are ignored (the caller counts them if it cares).

    >>> select_files([{"rfilename": "README.md"}, {"rfilename": "model.bin"}, {"x": 1}], ["README.md"])
    ['README.md']
    """
    if not isinstance(siblings, list) or not patterns:
        return []
    chosen: dict[str, None] = {}
    for sibling in siblings:
        name = sibling.get("rfilename") if isinstance(sibling, dict) else None
        if isinstance(name, str) and name not in chosen and matches(name, patterns):
            chosen[name] = None
    return list(chosen)


# ---------------------------------------------------------------------------------------------------------
# URLs and headers
# ---------------------------------------------------------------------------------------------------------


def quote_repo_path(path: str) -> str:
    """URL-quote each segment of a repository path (so `#`, `?`, `%` and spaces stay part of the name).

    >>> quote_repo_path("dir/a b#1.json")
    'dir/a%20b%231.json'
    """
    return "/".join(quote(segment, safe="") for segment in path.split("/"))


def resolve_url(endpoint: str, repo_type: str, repo_id: str, revision: str, path: str) -> str:
    """`{endpoint}/{prefix}{id}/resolve/{revision}/{path}` (huggingface_hub ``hf_hub_url``); the id must be a plain id.

    >>> resolve_url("https://huggingface.co", "dataset", "org/ds", "a" * 40, "data/x.csv")[:56]
    'https://huggingface.co/datasets/org/ds/resolve/aaaaaaaaa'
    """
    return (
        f"{endpoint.rstrip('/')}/{RESOLVE_PREFIX.get(repo_type, '')}{repo_id}/resolve/"
        f"{quote(revision, safe='')}/{quote_repo_path(path)}"
    )


def strip_etag(value: str | bytes | None) -> str | None:
    """An ETag's value without `W/` and quotes, lower-cased; None for a missing or empty one.

    >>> strip_etag('"ABC123"'), strip_etag(b'W/"x"'), strip_etag(None)
    ('abc123', 'x', None)
    """
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip().strip('"').strip().lower()
    return text or None


def is_sha256(value: str | None) -> bool:
    return value is not None and _HEX64.fullmatch(value) is not None


def is_sha1(value: str | None) -> bool:
    return value is not None and _HEX40.fullmatch(value) is not None


def etag_from_location(location: str) -> str | None:
    """The `etag` query parameter of the Hub's small-file 307 `Location` (`...?...&etag=%22<sha1>%22`).

    >>> etag_from_location('/api/resolve-cache/models/a/b/c/x.json?%2Fa=&etag=%22' + 'ab' * 20 + '%22')[:6]
    'ababab'
    """
    for key, value in parse_qsl(urlsplit(location).query, keep_blank_values=True):
        if key == "etag":
            tag = strip_etag(value)
            return tag if is_sha1(tag) else None
    return None


# ---------------------------------------------------------------------------------------------------------
# Hashes
# ---------------------------------------------------------------------------------------------------------


class FileHasher:
    """SHA-256 and git blob SHA-1 of bytes fed in pieces (the git header needs the size up front; `git=False`
    skips the SHA-1 for LFS files, which are checked by their SHA-256 only).

    >>> h = FileHasher(5); h.update(b"hello"); h.git_sha1 == git_blob_sha1(b"hello")
    True
    """

    def __init__(self, size: int | None, *, git: bool = True) -> None:
        self.size = 0
        self._declared = size
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1(b"blob %d\0" % size) if size is not None and git else None

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._sha256.update(chunk)
        if self._sha1 is not None:
            self._sha1.update(chunk)

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def git_sha1(self) -> str | None:
        """The git blob SHA-1, if the size given up front was the real one (else None)."""
        if self._sha1 is None or self.size != self._declared:
            return None
        return self._sha1.hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a blob: `sha1(b"blob <size>\\0" + data)`.

    >>> git_blob_sha1(b"")
    'e69de29bb2d1d6434b8b29ae775ad8c2e48c5391'
    """
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
