"""Per-entity relationship documents, answered on demand from the provenance folder (no file per entity).

The seed wrote one file per crawled entity, `provenance/<type>_relationships/<folder>.json`: five million inodes
for the whole Hub. The rebuild's Parquet files hold every node's attributes (`provenance_nodes.parquet`, sorted by
key), its out-edges (`provenance_edges.parquet`, sorted by source) and its in-edges
(`provenance_edges_by_target.parquet`, sorted by target), so a document is three look-ups that each read only the
row groups whose statistics can hold the key (`hfscraper.provenance.columnar`: memory per look-up does not grow
with the graph). When the folder holds `entity_relationships.json` too (HFSCRAPER_PROVENANCE_GRAPH_FILES asked for
it, or a rebuild by an older version wrote it), the document is found there instead by a binary search over the
file's lines (one per node, sorted by key: about 30 reads of one line for five million nodes, and no pyarrow).
Either way it is written out with `indent=2`: byte for byte the file the seed wrote (the same `json_text` of the
same dictionary, keys in the same order). The rebuild writes the per-entity files only with
HFSCRAPER_PROVENANCE_ENTITY_FILES.

- `document_text(output_dir, type, id)`: the document of one crawled entity, or None (a stub, an unknown id).
- `document_for_path(output_dir, path)`: the document the seed's path `<type>_relationships/<folder>.json` held.
- `python -m hfscraper.provenance relationships (PATH | TYPE ID)` prints either.

No networkx here, and pyarrow only for a look-up in the Parquet files.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final

from hfscraper.hub import HostileIdError, entity_folder_name, is_plain_id
from hfscraper.provenance.extract import TYPES
from hfscraper.provenance.freshness import ENTITY_RELATIONSHIPS, provenance_dir
from hfscraper.provenance.text import json_text

#: The seed's per-entity folders, by type (written only with HFSCRAPER_PROVENANCE_ENTITY_FILES).
ENTITY_FOLDERS: Final = {t: f"{t}_relationships" for t in TYPES}
_TYPE_OF_FOLDER: Final = {folder: t for t, folder in ENTITY_FOLDERS.items()}
_DECODER: Final = json.JSONDecoder()
#: Bytes of a line decoded to read its key (a longer key, a hostile id, decodes the whole line).
_KEY_BYTES: Final = 4096


class DocumentsUnavailable(FileNotFoundError):
    """There are no provenance files to answer from (no rebuild yet), or none this version reads."""


def document_bytes(doc: dict[str, Any]) -> bytes:
    """A per-entity file's bytes: the document as JSON, two-space indent, UTF-8, one final newline."""
    return (json_text(doc, indent=2) + "\n").encode("utf-8")


def has_document(doc: dict[str, Any]) -> bool:
    """True for the nodes the seed wrote a per-entity file for: crawled entities of a known type whose id has a
    folder name."""
    if not doc.get("scraped") or doc.get("type") not in ENTITY_FOLDERS:
        return False
    try:
        entity_folder_name(doc.get("id"))
    except HostileIdError:
        return False
    return True


def _line_key(line: bytes) -> str | None:
    """The node key an entity line starts with; None for the file's first line (the head)."""
    if not line.startswith(b'"'):
        return None
    for head in (line[:_KEY_BYTES], line):
        try:
            key, _end = _DECODER.raw_decode(head.decode("utf-8", errors="ignore"))
        except ValueError:
            continue
        return key if isinstance(key, str) else None
    return None


def _line_from(f: IO[bytes], pos: int) -> bytes:
    """The line starting at the first line start at or after *pos* (b"" past the end)."""
    if pos > 0:
        f.seek(pos - 1)
        f.readline()  # to the end of the line *pos* - 1 is on: the next line starts at or after pos
    else:
        f.seek(0)
    return f.readline()


def _after(line: bytes, wanted: str) -> bool:
    """True when *line* sorts at or after the entity line of *wanted* (the closing line sorts last)."""
    if not line or line.startswith(b"}"):
        return True
    key = _line_key(line)
    return key is not None and key >= wanted


def _find_line(f: IO[bytes], size: int, key: str) -> bytes | None:
    """The entity line of *key* in the sorted file, by binary search over byte offsets."""
    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        if _after(_line_from(f, mid), key):
            hi = mid
        else:
            lo = mid + 1
    line = _line_from(f, lo)
    return line if line.startswith(b'"') and _line_key(line) == key else None


def _parse_line(line: bytes) -> tuple[str, dict[str, Any]]:
    text = line.decode("utf-8", errors="surrogateescape").rstrip("\n")
    key, end = _DECODER.raw_decode(text)
    if text[end : end + 1] != ":":
        raise ValueError("not an entity line")
    doc, _ = _DECODER.raw_decode(text, end + 1)
    return key, doc


def _open(output_dir: Path) -> tuple[IO[bytes], int] | None:
    """`entity_relationships.json` of *output_dir* and its size; None when there is none."""
    path = provenance_dir(Path(output_dir)) / ENTITY_RELATIONSHIPS
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not f.readline().startswith(b'{"format":"hfscraper-provenance/'):
        f.close()
        raise DocumentsUnavailable(f"{path} is not a provenance file this version reads")
    return f, os.fstat(f.fileno()).st_size


def _graph_files(output_dir: Path) -> Any:
    """The Parquet files of *output_dir* (`columnar.GraphFiles`); DocumentsUnavailable when there are none."""
    from hfscraper.provenance.columnar import GraphFiles, GraphFilesMissing

    folder = provenance_dir(Path(output_dir))
    try:
        return GraphFiles(folder)
    except (GraphFilesMissing, NotADirectoryError) as exc:
        raise DocumentsUnavailable(
            f"{exc}: rebuild the provenance files (`python -m hfscraper.provenance rebuild`) or crawl first"
        ) from None


def node_document(output_dir: Path, repo_type: str, repo_id: str) -> dict[str, Any] | None:
    """The document of a node (crawled or stub) in the last rebuild, or None."""
    key = f"{repo_type}:{repo_id}"
    opened = _open(output_dir)
    if opened is None:
        return _graph_files(output_dir).document(key)
    f, size = opened
    with f:
        line = _find_line(f, size, key)
    return None if line is None else _parse_line(line)[1]


def document_text(output_dir: Path, repo_type: str, repo_id: str) -> bytes | None:
    """The bytes of `<type>_relationships/<folder of id>.json` as the seed wrote it; None when the seed wrote no
    such file (not a crawled entity of the last rebuild)."""
    doc = node_document(output_dir, repo_type, repo_id)
    return document_bytes(doc) if doc is not None and has_document(doc) else None


def id_from_folder_name(name: str) -> str | None:
    """The id whose folder name is *name* (`org__name`, `~<base32>`); None for a name no id gives, and for the
    hashed names of very long ids (`~h<sha256>`: `document_for_path` finds those by a scan)."""
    if name.startswith("~"):
        text = name[1:].upper()
        try:
            repo_id = base64.b32decode(text + "=" * (-len(text) % 8)).decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            return None
    else:
        repo_id = name.replace("__", "/")
    try:
        return repo_id if entity_folder_name(repo_id) == name else None
    except HostileIdError:
        return None


def _scan_for_folder(output_dir: Path, repo_type: str, name: str) -> str | None:
    """The id of *repo_type* whose folder name is the hashed *name* (a scan of every line: rare, ids of more than
    about 120 bytes)."""
    prefix = f"{repo_type}:"
    opened = _open(output_dir)
    if opened is None:
        keys: Iterator[str | None] = (row["key"] for row in _graph_files(output_dir).nodes.scan(["key"]))
    else:
        keys = (_line_key(line) for line in opened[0])
    try:
        for key in keys:
            if key is None or not key.startswith(prefix) or is_plain_id(key[len(prefix) :]):
                continue
            repo_id = key[len(prefix) :]
            try:
                if entity_folder_name(repo_id) == name:
                    return repo_id
            except HostileIdError:
                continue
    finally:
        if opened is not None:
            opened[0].close()
    return None


def parse_document_path(path: str) -> tuple[str, str]:
    """`(type, folder name)` of a seed path: `[.../provenance/]<type>_relationships/<folder>.json`. Raises
    ValueError when *path* names no per-entity document."""
    parts = Path(path).parts
    if len(parts) < 2 or parts[-2] not in _TYPE_OF_FOLDER or not parts[-1].endswith(".json"):
        folders = ", ".join(f"{f}/<folder>.json" for f in ENTITY_FOLDERS.values())
        raise ValueError(f"{path!r} is not a per-entity document path ({folders})")
    return _TYPE_OF_FOLDER[parts[-2]], parts[-1][: -len(".json")]


def document_for_path(output_dir: Path, path: str) -> bytes | None:
    """The bytes the seed's `<type>_relationships/<folder>.json` held; None when it held no such file. Raises
    ValueError for a path of another shape, DocumentsUnavailable when there is nothing to answer from."""
    repo_type, name = parse_document_path(path)
    repo_id = id_from_folder_name(name)
    if repo_id is None and name.startswith("~h"):
        repo_id = _scan_for_folder(output_dir, repo_type, name)
    if repo_id is None:
        return None
    return document_text(output_dir, repo_type, repo_id)


__all__ = [
    "ENTITY_FOLDERS",
    "DocumentsUnavailable",
    "document_bytes",
    "document_for_path",
    "document_text",
    "has_document",
    "id_from_folder_name",
    "node_document",
    "parse_document_path",
]
