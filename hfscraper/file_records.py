"""Per-file outcomes of the files stage in the crawl state (`hfscraper.state`): the `files` table.

One row per chosen file of an entity, replaced as a whole each time the files stage processes the entity:
its status (`downloaded`, `unchanged`, `skipped`, `failed`), the reason of a skip or failure, and what the
stage learnt of the file (size, SHA-256, git blob SHA-1). `scrapy status` counts them per entity type; an
entity whose files failed keeps its failed rows until a later run gets them.

Blocking functions over a `StateStore`; inside a crawl, run them through `SharedStateStore.call`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from hfscraper.state import StateStore

#: The statuses `scrapy status` reports, in its order.
STATUSES = ("downloaded", "unchanged", "skipped", "failed")


def record_files(
    store: StateStore, repo_type: str, repo_id: str, results: Iterable[Mapping[str, Any]], when: str
) -> None:
    """Replace the entity's file outcomes with *results* (dicts as on `item.files`), in one transaction."""
    record_files_batch(store, [(repo_type, repo_id, results, when)])


def record_files_batch(
    store: StateStore, entities: Iterable[tuple[str, str, Iterable[Mapping[str, Any]], str]]
) -> None:
    """`record_files` of several entities (`(repo_type, id, results, when)`), in one transaction: the crawl
    records the entities of a page together instead of one transaction each."""
    entities = list(entities)
    rows = [
        (
            repo_type, repo_id, r["path"], r["status"], r.get("reason"), r.get("size"), r.get("sha256"),
            r.get("blob_sha1"), when,
        )
        for repo_type, repo_id, results, when in entities
        for r in results
    ]  # fmt: skip
    with store.transaction():
        keys = [(repo_type, repo_id) for repo_type, repo_id, _, _ in entities]
        store.db.executemany("DELETE FROM files WHERE repo_type = ? AND id = ?", keys)
        store.db.executemany(
            "INSERT OR REPLACE INTO files (repo_type, id, path, status, reason, size, sha256, blob_sha1, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def entity_files(store: StateStore, repo_type: str, repo_id: str) -> dict[str, dict[str, Any]]:
    """{path: row} of an entity's recorded outcomes."""
    columns = ("status", "reason", "size", "sha256", "blob_sha1", "updated_at")
    cursor = store.db.execute(
        f"SELECT path, {', '.join(columns)} FROM files WHERE repo_type = ? AND id = ?", (repo_type, repo_id)
    )
    return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in cursor}


def files_summary(store: StateStore) -> dict[str, dict[str, Any]]:
    """Per entity type: files per status, bytes on disk (downloaded and unchanged), and skips and failures per
    reason. Files of entities marked deleted are left out."""
    summary: dict[str, dict[str, Any]] = {}
    cursor = store.db.execute(
        "SELECT f.repo_type, f.status, f.reason, count(*), coalesce(sum(f.size), 0) FROM files f "
        "LEFT JOIN entities e ON e.repo_type = f.repo_type AND e.id = f.id "
        "WHERE e.deleted_at IS NULL GROUP BY f.repo_type, f.status, f.reason"
    )
    for repo_type, status, reason, count, size in cursor:
        entry = summary.setdefault(
            repo_type, {**dict.fromkeys(STATUSES, 0), "bytes": 0, "skipped_by_reason": {}, "failed_by_reason": {}}
        )
        entry[status] = entry.get(status, 0) + count
        if status in ("downloaded", "unchanged"):
            entry["bytes"] += int(size)
        elif status in ("skipped", "failed"):
            by_reason = entry[f"{status}_by_reason"]
            by_reason[reason or "unknown"] = by_reason.get(reason or "unknown", 0) + count
    return summary
