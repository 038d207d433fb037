"""`hfscraper.repofiles`: which files, where they may land, how they are checked (pure functions)."""

from __future__ import annotations

import doctest
import hashlib

import pytest

from hfscraper import repofiles
from hfscraper.repofiles import (
    RESERVED_NAMES,
    FileHasher,
    UnsafePathError,
    check_repo_path,
    etag_from_location,
    git_blob_sha1,
    matches,
    resolve_url,
    select_files,
    strip_etag,
)


def test_doctests() -> None:
    assert doctest.testmod(repofiles).failed == 0


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("config.json", ("config.json",)),
        ("1_Pooling/config.json", ("1_Pooling", "config.json")),
        ("spaces in name.txt", ("spaces in name.txt",)),
        ("percent%2e%2e%2fname.txt", ("percent%2e%2e%2fname.txt",)),  # literal percent signs, not an escape
        ("question?mark.txt", ("question?mark.txt",)),
        ("unicode-caf\u00e9.txt", ("unicode-caf\u00e9.txt",)),
        (".gitattributes", (".gitattributes",)),
        ("...", ("...",)),  # three dots is a name, not a parent reference
        ("sub/metadata.json", ("sub", "metadata.json")),  # reserved only at the top of the entity folder
    ],
)
def test_safe_paths(path: str, segments: tuple[str, ...]) -> None:
    assert check_repo_path(path) == segments


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty"),
        (None, "empty"),
        ("/etc/passwd", "absolute"),
        ("/abs/path.txt", "absolute"),
        ("../escape.txt", "dot_segment"),
        ("../../etc/passwd-copy", "dot_segment"),
        ("./dot.txt", "dot_segment"),
        ("sub/./x.txt", "dot_segment"),
        ("sub/../../y.txt", "dot_segment"),
        ("a//b.txt", "empty_segment"),
        ("trailing/", "empty_segment"),
        ("back\\slash.txt", "backslash"),
        ("..\\..\\windows.txt", "backslash"),
        ("nul\x00byte.txt", "control_character"),
        ("ctrl\x01char.txt", "control_character"),
        ("newline\nname.txt", "control_character"),
        ("del\x7f.txt", "control_character"),
        ("bad\ud800surrogate", "invalid_unicode"),
        ("x" * 300 + ".txt", "too_long"),
        ("/".join(["d" * 200] * 6), "too_long"),
        (".hfscraper-tmp-1-2-3.part", "temp_name"),
        ("metadata.json", "reserved_name"),
        ("METADATA.JSON", "reserved_name"),
        ("Preview_Info.json", "reserved_name"),
        ("ipfs_cid.txt", "reserved_name"),
        ("tombstone.json/inner.txt", "reserved_name"),
        ("thumbnail_info.json", "reserved_name"),
        ("relationships.json", "reserved_name"),
    ],
)
def test_unsafe_paths(path: object, reason: str) -> None:
    with pytest.raises(UnsafePathError) as caught:
        check_repo_path(path)
    assert caught.value.reason == reason


def test_every_reserved_name_is_refused() -> None:
    for name in RESERVED_NAMES:
        with pytest.raises(UnsafePathError):
            check_repo_path(name)


def test_patterns_work_like_allow_patterns() -> None:
    assert matches("config.json", ["config.json"])
    assert not matches("unet/config.json", ["config.json"])  # a plain name is the top-level file
    assert matches("unet/config.json", ["*.json"])  # `*` crosses folders, as in fnmatch
    assert matches("data/train/x.csv", ["data/"])  # a folder pattern takes everything below it
    assert not matches("README.md", ["readme.md"])  # case-sensitive, as the Hub's paths are
    siblings = [{"rfilename": "README.md"}, {"rfilename": "config.json"}, {"rfilename": "model.safetensors"},
                {"rfilename": "README.md"}, {"nope": 1}, "junk", {"rfilename": 7}]  # fmt: skip
    assert select_files(siblings, ["*.md", "config.json"]) == ["README.md", "config.json"]
    assert select_files(siblings, []) == []
    assert select_files(None, ["*"]) == []


def test_resolve_urls_quote_each_segment() -> None:
    sha = "a" * 40
    assert resolve_url("https://huggingface.co/", "model", "gpt2", sha, "config.json") == (
        f"https://huggingface.co/gpt2/resolve/{sha}/config.json"
    )
    space = resolve_url("http://h:1", "space", "o/s", sha, "a b/c#d?.py")
    assert space == f"http://h:1/spaces/o/s/resolve/{sha}/a%20b/c%23d%3F.py"
    dataset = resolve_url("http://h:1", "dataset", "o/d", sha, "x%2e.txt")
    assert dataset == f"http://h:1/datasets/o/d/resolve/{sha}/x%252e.txt"


def test_etags() -> None:
    sha256 = "ab" * 32
    assert strip_etag(f'"{sha256.upper()}"') == sha256
    assert strip_etag(b'W/"abc"') == "abc"
    assert strip_etag('""') is None
    sha1 = "cd" * 20
    query = f"%2Fo%2Fm%2Fresolve%2Fmain%2Fconfig.json=&etag=%22{sha1}%22"
    location = f"/api/resolve-cache/models/o/m/{'e' * 40}/config.json?{query}"
    assert etag_from_location(location) == sha1
    assert etag_from_location("/api/resolve-cache/models/o/m/x/config.json") is None
    assert etag_from_location("/x?etag=%22not-a-sha%22") is None


def test_hashes() -> None:
    data = b"hello world\n" * 1000
    assert git_blob_sha1(data) == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    hasher = FileHasher(len(data))
    for start in range(0, len(data), 777):
        hasher.update(data[start : start + 777])
    assert hasher.sha256 == hashlib.sha256(data).hexdigest()
    assert hasher.git_sha1 == git_blob_sha1(data)
    short = FileHasher(len(data) + 1)  # the size given up front was wrong: no git hash rather than a wrong one
    short.update(data)
    assert short.git_sha1 is None
