"""Per-dataset outcomes of the previews stage in the crawl state (`hfscraper.state`): the `previews` table.

One row per entity whose preview the dataset viewer was asked for, replaced each time it is asked:

- `status`: `ok` (the viewer shows a preview), `definitive` (its final answer: no preview, and why) or
  `transient` (an answer that asking again later may change: no answer, a timeout, a 5xx without the viewer's
  error code, a 429, not computed yet);
- `reason`: why there is no final preview (`unavailable.reason` of `preview_info.json`, or the reason of the
  endpoint that failed), null for `ok`;
- `sha`: the version asked about; `attempts`: how often this version was asked (a new sha starts at 1);
- `last_attempt`, and for a transient outcome `next_attempt`: before then the previews stage does not ask the
  viewer again about this version (exponential backoff, HFSCRAPER_PREVIEWS_RETRY_MIN doubling up to
  HFSCRAPER_PREVIEWS_RETRY_MAX, as set when it was recorded; a crawl decides with its own settings, so
  `-s HFSCRAPER_PREVIEWS_RETRY_MIN=0` asks at once).

The table belongs to this module, not to the state's schema: `ensure_table` creates it when the previews stage
opens the state, and readers (`scrapy status`) treat a state file without it as having no outcomes.

Blocking functions over a `StateStore`; inside a crawl, run them through `SharedStateStore.call`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from hfscraper.items import format_hub_datetime

if TYPE_CHECKING:
    from hfscraper.state import StateStore

OK: Final = "ok"
DEFINITIVE: Final = "definitive"
TRANSIENT: Final = "transient"

_TABLE: Final = """
CREATE TABLE IF NOT EXISTS previews (
    repo_type TEXT NOT NULL,
    id TEXT NOT NULL,
    sha TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    attempts INTEGER NOT NULL,
    last_attempt TEXT NOT NULL,
    next_attempt TEXT,
    PRIMARY KEY (repo_type, id)
) WITHOUT ROWID
"""
_COLUMNS: Final = ("sha", "status", "reason", "attempts", "last_attempt", "next_attempt")


@dataclass(frozen=True)
class PreviewRecord:
    """The last outcome of asking the viewer about one entity (see the module docstring)."""

    sha: str | None
    status: str
    reason: str | None
    attempts: int
    last_attempt: str
    next_attempt: str | None

    def due(self, retry_min: float, retry_max: float) -> str:
        """When the backoff after this outcome ends, with these settings (a changed setting applies at once)."""
        last = datetime.fromisoformat(self.last_attempt.replace("Z", "+00:00"))
        return format_hub_datetime(last + timedelta(seconds=backoff(self.attempts, retry_min, retry_max)))

    def deferred(self, sha: str | None, now: datetime, retry_min: float, retry_max: float) -> bool:
        """True while a transient outcome of this same version waits for its backoff: do not ask yet."""
        return (
            self.status == TRANSIENT
            and sha is not None
            and sha == self.sha
            and format_hub_datetime(now) < self.due(retry_min, retry_max)
        )


def ensure_table(store: StateStore) -> None:
    store.db.execute(_TABLE)


def _has_table(store: StateStore) -> bool:
    found = store.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'previews'").fetchone()
    return found is not None


def backoff(attempts: int, retry_min: float, retry_max: float) -> float:
    """Seconds to wait after the *attempts*-th transient answer: *retry_min*, doubling, at most *retry_max*."""
    return min(retry_max, retry_min * 2.0 ** min(max(attempts - 1, 0), 62))


def preview_record(store: StateStore, repo_type: str, repo_id: str) -> PreviewRecord | None:
    if not _has_table(store):
        return None
    row = store.db.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM previews WHERE repo_type = ? AND id = ?", (repo_type, repo_id)
    ).fetchone()
    return PreviewRecord(*row) if row is not None else None


def record_preview(
    store: StateStore,
    repo_type: str,
    repo_id: str,
    sha: str | None,
    status: str,
    reason: str | None,
    now: datetime,
    retry_min: float,
    retry_max: float,
) -> PreviewRecord:
    """Replace the entity's outcome with this ask's; returns the row (with its next attempt if transient)."""
    with store.transaction():
        previous = preview_record(store, repo_type, repo_id)
        attempts = previous.attempts + 1 if previous is not None and sha is not None and previous.sha == sha else 1
        record = PreviewRecord(sha, status, reason, attempts, format_hub_datetime(now), None)
        if status == TRANSIENT:
            record = dataclasses.replace(record, next_attempt=record.due(retry_min, retry_max))
        store.db.execute(
            f"INSERT OR REPLACE INTO previews (repo_type, id, {', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (repo_type, repo_id, *(getattr(record, c) for c in _COLUMNS)),
        )
    return record


def previews_summary(store: StateStore) -> dict[str, dict[str, Any]]:
    """Per entity type: outcomes `ok`, `definitive` (with `definitive_by_reason`) and `pending` (transient, with
    `pending_by_reason` and the earliest `next_retry`). Entities marked deleted are left out."""
    if not _has_table(store):
        return {}
    summary: dict[str, dict[str, Any]] = {}
    cursor = store.db.execute(
        "SELECT p.repo_type, p.status, p.reason, count(*), min(p.next_attempt) FROM previews p "
        "LEFT JOIN entities e ON e.repo_type = p.repo_type AND e.id = p.id "
        "WHERE e.deleted_at IS NULL GROUP BY p.repo_type, p.status, p.reason"
    )
    for repo_type, status, reason, count, next_attempt in cursor:
        entry = summary.setdefault(
            repo_type,
            {OK: 0, DEFINITIVE: 0, "pending": 0, "definitive_by_reason": {}, "pending_by_reason": {}},
        )
        entry.setdefault("next_retry", None)
        if status == OK:
            entry[OK] += count
            continue
        key = "pending" if status == TRANSIENT else DEFINITIVE
        entry[key] += count
        by_reason = entry[f"{key}_by_reason"]
        by_reason[reason or "unknown"] = by_reason.get(reason or "unknown", 0) + count
        if status == TRANSIENT and next_attempt is not None:
            entry["next_retry"] = min(filter(None, (entry["next_retry"], next_attempt)))
    return summary


def due_pending(
    store: StateStore, repo_type: str, crawl_id: int, now: datetime, retry_min: float, retry_max: float
) -> int:
    """How many entities this crawl saw have a transient outcome whose backoff (with these settings) is over by *now*:
    a run that resumes after the pages that listed them would not reach them."""
    if not _has_table(store):
        return 0
    rows = store.db.execute(
        f"SELECT {', '.join('p.' + c for c in _COLUMNS)} FROM previews p "
        "JOIN entities e ON e.repo_type = p.repo_type AND e.id = p.id "
        "WHERE p.repo_type = ? AND p.status = ? AND e.seen_crawl_id = ? AND e.deleted_at IS NULL",
        (repo_type, TRANSIENT, crawl_id),
    )
    moment = format_hub_datetime(now)
    return sum(1 for row in rows if PreviewRecord(*row).due(retry_min, retry_max) <= moment)
