"""CIDs and pins in the crawl state (`hfscraper.state`): the `cids` and `pins` tables.

- `cids`: per entity, the CID of every file in its folder (`path` relative to the folder, `/`-separated) and of
  the folder itself (`path` = ""), with the profile that computed them and the file's size (for the folder: the
  bytes of all its files). Replaced as a whole whenever the entity is content-addressed again.
- `pins`: per backend and entity, the root CID pinned for the entity's current folder, where its CAR is, and
  when the backend confirmed it. One row per entity and backend: a new version replaces the old root.

Blocking functions over a `StateStore`; inside a crawl, run them through `SharedStateStore.call`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from hfscraper.state import StateStore

#: The `path` of an entity folder's own row in `cids`.
FOLDER_PATH = ""


@dataclass(frozen=True)
class CidRecord:
    """One file's CID: *path* relative to the entity folder (`FOLDER_PATH` for the folder itself)."""

    path: str
    cid: str
    size: int


@dataclass(frozen=True)
class PinRow:
    """One row of `pins`."""

    backend: str
    repo_type: str
    id: str
    root_cid: str
    profile: str
    car_path: str | None
    pinned_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PinRow:
        return cls(**dict(row))


def record_cids(
    store: StateStore, repo_type: str, repo_id: str, profile: str, records: Iterable[CidRecord], when: str
) -> None:
    """Replace the entity's CIDs with *records* (one transaction)."""
    rows = [(repo_type, repo_id, r.path, r.cid, r.size, profile, when) for r in records]
    with store.transaction():
        store.db.execute("DELETE FROM cids WHERE repo_type = ? AND id = ?", (repo_type, repo_id))
        store.db.executemany(
            "INSERT INTO cids (repo_type, id, path, cid, size, profile, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def entity_cids(store: StateStore, repo_type: str, repo_id: str) -> dict[str, str]:
    """{path: CID} of an entity (the folder under `FOLDER_PATH`)."""
    return {
        row[0]: row[1]
        for row in store.db.execute("SELECT path, cid FROM cids WHERE repo_type = ? AND id = ?", (repo_type, repo_id))
    }


def pin_of(store: StateStore, backend: str, repo_type: str, repo_id: str) -> PinRow | None:
    row = store.db.execute(
        "SELECT * FROM pins WHERE backend = ? AND repo_type = ? AND id = ?", (backend, repo_type, repo_id)
    ).fetchone()
    return PinRow.from_row(row) if row else None


def pins_of_root(store: StateStore, root: str, backend: str | None = None) -> list[PinRow]:
    """Every pin of *root* (of one backend, if given)."""
    if backend is None:
        cursor = store.db.execute("SELECT * FROM pins WHERE root_cid = ?", (root,))
    else:
        cursor = store.db.execute("SELECT * FROM pins WHERE root_cid = ? AND backend = ?", (root, backend))
    return [PinRow.from_row(row) for row in cursor]


def record_pin(store: StateStore, pin: PinRow) -> None:
    """Record (or replace) the entity's pin on a backend."""
    with store.transaction():
        store.db.execute(
            "INSERT OR REPLACE INTO pins (backend, repo_type, id, root_cid, profile, car_path, pinned_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pin.backend, pin.repo_type, pin.id, pin.root_cid, pin.profile, pin.car_path, pin.pinned_at),
        )


def remove_pin(store: StateStore, backend: str, repo_type: str, repo_id: str, root: str) -> bool:
    """Forget the entity's pin of *root* on a backend (not a newer root recorded meanwhile); True if removed."""
    with store.transaction():
        return (
            store.db.execute(
                "DELETE FROM pins WHERE backend = ? AND repo_type = ? AND id = ? AND root_cid = ?",
                (backend, repo_type, repo_id, root),
            ).rowcount
            > 0
        )


def deleted_pins(store: StateStore, backend: str) -> list[PinRow]:
    """The backend's pins of entities that a full sweep marked deleted (tombstoned)."""
    return [
        PinRow.from_row(row)
        for row in store.db.execute(
            "SELECT p.* FROM pins p JOIN entities e ON e.repo_type = p.repo_type AND e.id = p.id "
            "WHERE p.backend = ? AND e.deleted_at IS NOT NULL ORDER BY p.repo_type, p.id",
            (backend,),
        )
    ]


def ipfs_summary(store: StateStore) -> dict[str, Any]:
    """What `scrapy status` reports: CIDs computed (files and folders, per profile) and pins per backend, with
    how many of them belong to entities marked deleted."""
    files = folders = 0
    profiles: dict[str, int] = {}
    for path_is_folder, profile, count in store.db.execute(
        "SELECT path = '', profile, count(*) FROM cids GROUP BY path = '', profile"
    ):
        if path_is_folder:
            folders += count
            profiles[profile] = profiles.get(profile, 0) + count
        else:
            files += count
    pins: dict[str, dict[str, int]] = {}
    for backend, count, deleted in store.db.execute(
        "SELECT p.backend, count(*), sum(e.deleted_at IS NOT NULL) FROM pins p LEFT JOIN entities e "
        "ON e.repo_type = p.repo_type AND e.id = p.id GROUP BY p.backend ORDER BY p.backend"
    ):
        pins[backend] = {"pinned": int(count), "of_deleted_entities": int(deleted or 0)}
    return {"cids": {"files": files, "folders": folders, "folders_by_profile": profiles}, "pins": pins}
