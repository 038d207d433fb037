"""CIDs and pins in the crawl state (`hfscraper.state`): the `cids` and `pins` tables.

- `cids`: per entity, the CID of every file in its folder (`path` relative to the folder, `/`-separated) and of
  the folder itself (`path` = ""), with the profile that computed them and the file's size (for the folder: the
  bytes of all its files). Replaced as a whole whenever the entity is content-addressed again.
- `pins`: per backend and entity, the root CID pinned for the entity's current folder, where its CAR is, and
  when the backend confirmed it. One row per entity and backend: a new version replaces the old root. `car_path`
  is relative to the CAR folder (older rows: absolute); for a pack (`hfscraper.ipfs.packs`) `car_offset` and
  `car_length` give the entity's byte range in it (NULL: the CAR is the entity's own). `car_path` NULL: no CAR
  file (the `filestore` layout): the CAR is built from the entity folder on demand (`hfscraper.ipfs.filestore`).
- `car_packs`: per CAR written by the IPFS stage (pack or entity CAR, by `car_path`), how many pins point into it
  (`refs`), how many entities it was written with and its size. A CAR whose `refs` reach 0 is deleted.

Blocking functions over a `StateStore`; inside a crawl, run them through `SharedStateStore.call`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

    from hfscraper.state import StateStore

#: The `path` of an entity folder's own row in `cids`.
FOLDER_PATH = ""
#: Every backend name a `pins` row can carry (the `name` of each class in backends.BACKENDS; a test keeps them
#: equal). Look-ups of an entity's pin under any backend name them all, so SQLite searches the primary key
#: (backend, repo_type, id) once per name instead of scanning every pin (one scan per entity is quadratic).
PIN_BACKENDS = ("embedded", "kubo")
_ANY_BACKEND = f"backend IN ({', '.join('?' * len(PIN_BACKENDS))})"


def entity_pin(db: sqlite3.Connection, repo_type: str, repo_id: str) -> PinRow | None:
    """The entity's pin (the first backend by name), or None. Its `car_path` names its CAR file; None: its CAR
    is built from the folder on demand (`hfscraper.ipfs.filestore`)."""
    db_row = db.execute(
        f"SELECT backend, repo_type, id, root_cid, profile, car_path, pinned_at, car_offset, car_length FROM pins "
        f"WHERE {_ANY_BACKEND} AND repo_type = ? AND id = ? ORDER BY backend LIMIT 1",
        (*PIN_BACKENDS, repo_type, repo_id),
    ).fetchone()
    return None if db_row is None else PinRow(*db_row)


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
    car_offset: int | None = None
    car_length: int | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PinRow:
        return cls(**dict(row))

    @property
    def in_pack(self) -> bool:
        return self.car_offset is not None and self.car_length is not None


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


_INSERT_PIN = (
    "INSERT OR REPLACE INTO pins (backend, repo_type, id, root_cid, profile, car_path, pinned_at, car_offset, "
    "car_length) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _pin_values(pin: PinRow) -> tuple[Any, ...]:
    return (pin.backend, pin.repo_type, pin.id, pin.root_cid, pin.profile, pin.car_path, pin.pinned_at,
            pin.car_offset, pin.car_length)  # fmt: skip


def record_pin(store: StateStore, pin: PinRow) -> None:
    """Record (or replace) the entity's pin on a backend (no pack bookkeeping: see `record_batch`)."""
    with store.transaction():
        store.db.execute(_INSERT_PIN, _pin_values(pin))


def remove_pin(store: StateStore, backend: str, repo_type: str, repo_id: str, root: str) -> bool:
    """Forget the entity's pin of *root* on a backend (not a newer root recorded meanwhile); True if removed.

    The reference of its CAR is kept: the CAR of a deleted entity stays part of the output, like its folder."""
    with store.transaction():
        return (
            store.db.execute(
                "DELETE FROM pins WHERE backend = ? AND repo_type = ? AND id = ? AND root_cid = ?",
                (backend, repo_type, repo_id, root),
            ).rowcount
            > 0
        )


def previous_pins(store: StateStore, backend: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], PinRow]:
    """{(repo_type, id): pin} of the entities *keys* on *backend* (those with one)."""
    found: dict[tuple[str, str], PinRow] = {}
    for repo_type, repo_id in keys:
        row = store.db.execute(
            "SELECT * FROM pins WHERE backend = ? AND repo_type = ? AND id = ?", (backend, repo_type, repo_id)
        ).fetchone()
        if row is not None:
            found[(repo_type, repo_id)] = PinRow.from_row(row)
    return found


@dataclass(frozen=True)
class Addressing:
    """One entity's outcome of a batch, to record: its CIDs, and its pin (None: the recorded one stays)."""

    repo_type: str
    id: str
    records: tuple[CidRecord, ...]
    pin: PinRow | None


@dataclass(frozen=True)
class BatchOutcome:
    """What recording a batch leaves to do once committed: roots no pin of the backend names any more (to
    unpin), and CARs no pin points into any more (to delete)."""

    unpin: list[tuple[str, str]]  # (root, entity label)
    dead_cars: list[str]


def record_batch(
    store: StateStore,
    backend: str,
    profile: str,
    done: list[Addressing],
    cars: list[tuple[str, int, int]],
    when: str,
) -> BatchOutcome:
    """Record a batch in one transaction: every entity's CIDs and new pin, the new CARs (`(car_path, entities,
    bytes)`) with their references, the references the replaced pins drop."""
    unpin: list[tuple[str, str]] = []
    released: list[str] = []
    with store.transaction():
        db = store.db
        db.executemany(
            "INSERT INTO car_packs (name, refs, entities, bytes, created_at) VALUES (?, 0, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET entities = excluded.entities, bytes = excluded.bytes, "
            "created_at = excluded.created_at",
            [(name, entities, size, when) for name, entities, size in cars],
        )
        for entry in done:
            db.execute("DELETE FROM cids WHERE repo_type = ? AND id = ?", (entry.repo_type, entry.id))
            db.executemany(
                "INSERT INTO cids (repo_type, id, path, cid, size, profile, computed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(entry.repo_type, entry.id, r.path, r.cid, r.size, profile, when) for r in entry.records],
            )
            pin = entry.pin
            if pin is None:
                continue
            old = db.execute(
                "SELECT root_cid, car_path FROM pins WHERE backend = ? AND repo_type = ? AND id = ?",
                (backend, entry.repo_type, entry.id),
            ).fetchone()
            db.execute(_INSERT_PIN, _pin_values(pin))
            if pin.car_path is not None:  # a filestore pin has no CAR to count
                db.execute("UPDATE car_packs SET refs = refs + 1 WHERE name = ?", (pin.car_path,))
            if old is not None:
                released.append(old[1])
                if (
                    old[0] != pin.root_cid
                    and not db.execute(
                        "SELECT 1 FROM pins WHERE root_cid = ? AND backend = ? LIMIT 1", (old[0], backend)
                    ).fetchone()
                ):
                    unpin.append((old[0], f"{entry.repo_type}:{entry.id}"))
        dead = _release_cars(store, released)
    return BatchOutcome(unpin, dead)


def _release_cars(store: StateStore, names: Iterable[str | None]) -> list[str]:
    """Drop one reference to each CAR of *names* (inside a transaction); the names left with none (forgotten)."""
    dead: list[str] = []
    for name in names:
        if name is None:
            continue
        row = store.db.execute("SELECT refs FROM car_packs WHERE name = ?", (name,)).fetchone()
        if row is None:
            continue  # a CAR of an older version, not counted
        if row[0] <= 1:
            store.db.execute("DELETE FROM car_packs WHERE name = ?", (name,))
            dead.append(name)
        else:
            store.db.execute("UPDATE car_packs SET refs = refs - 1 WHERE name = ?", (name,))
    return dead


def known_cars(store: StateStore) -> set[str]:
    """The `car_path` of every CAR the state counts."""
    return {row[0] for row in store.db.execute("SELECT name FROM car_packs")}


def sparse_packs(store: StateStore, max_live: float, min_entities: int, limit: int) -> list[tuple[str, int, int]]:
    """Packs (`(name, refs, entities)`) worth compacting: at most *max_live* of their entities still pinned, or
    written with fewer than *min_entities*; sparsest first."""
    return [
        (row[0], row[1], row[2])
        for row in store.db.execute(
            "SELECT name, refs, entities FROM car_packs WHERE name LIKE 'packs/%' "
            "AND (refs <= entities * ? OR entities < ?) ORDER BY refs * 1.0 / entities LIMIT ?",
            (max_live, min_entities, limit),
        )
    ]


def pins_in_cars(store: StateStore, names: list[str]) -> dict[str, list[PinRow]]:
    """The pins pointing into each of the CARs *names*, in one scan of the pins (there is no index by CAR: it would
    cost every entity its bytes, for maintenance that runs once per crawl)."""
    found: dict[str, list[PinRow]] = {name: [] for name in names}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in store.db.execute(f"SELECT * FROM pins WHERE car_path IN ({marks})", chunk):
            pin = PinRow.from_row(row)
            found[pin.car_path].append(pin)  # type: ignore[index]
    return found


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
    """What `scrapy status` reports: CIDs computed (files and folders, per profile), pins per backend with how
    many of them belong to entities marked deleted, and where the pins' CARs are (`on_demand`: none on disk, built
    from the folder; `in_packs`; `own_files`: a CAR file each)."""
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
    cars = {"on_demand": 0, "in_packs": 0, "own_files": 0}
    for backend, count, deleted, on_demand, in_packs in store.db.execute(
        "SELECT p.backend, count(*), sum(e.deleted_at IS NOT NULL), sum(p.car_path IS NULL), "
        "sum(p.car_offset IS NOT NULL) FROM pins p LEFT JOIN entities e "
        "ON e.repo_type = p.repo_type AND e.id = p.id GROUP BY p.backend ORDER BY p.backend"
    ):
        pins[backend] = {"pinned": int(count), "of_deleted_entities": int(deleted or 0)}
        cars["on_demand"] += int(on_demand or 0)
        cars["in_packs"] += int(in_packs or 0)
        cars["own_files"] += int(count) - int(on_demand or 0) - int(in_packs or 0)
    return {"cids": {"files": files, "folders": folders, "folders_by_profile": profiles}, "pins": pins, "cars": cars}


def move_pins(
    store: StateStore,
    old: list[str],
    moved: list[PinRow],
    target: str,
    size: int,
    when: str,
    output_dir: Path | None = None,
    car_dir: Path | None = None,
) -> list[str]:
    """Compaction, in one transaction: point each of *moved* at the new pack *target* (unless its pin changed
    meanwhile), drop their references to the *old* packs, reseal the moved entities (their CAR is part of the seal);
    the CARs no pin points into any more, to delete once this returned."""
    from hfscraper.seal import entity_seal

    released: list[str] = []
    resealed: list[tuple[str, str]] = []
    with store.transaction():
        db = store.db
        if moved:
            db.execute(
                "INSERT INTO car_packs (name, refs, entities, bytes, created_at) VALUES (?, 0, ?, ?, ?)",
                (target, len(moved), size, when),
            )
        for pin in moved:
            row = db.execute(
                "SELECT car_path FROM pins WHERE backend = ? AND repo_type = ? AND id = ? AND root_cid = ? "
                "AND car_path IN (" + ",".join("?" * len(old)) + ")",
                (pin.backend, pin.repo_type, pin.id, pin.root_cid, *old),
            ).fetchone()
            if row is None:
                continue  # changed meanwhile: its new pin points elsewhere already
            db.execute(
                "UPDATE pins SET car_path = ?, car_offset = ?, car_length = ? WHERE backend = ? AND repo_type = ? "
                "AND id = ?",
                (target, pin.car_offset, pin.car_length, pin.backend, pin.repo_type, pin.id),
            )
            db.execute("UPDATE car_packs SET refs = refs + 1 WHERE name = ?", (target,))
            released.append(row[0])
            resealed.append((pin.repo_type, pin.id))
        dead = _release_cars(store, released)
        if moved and not resealed:
            db.execute("DELETE FROM car_packs WHERE name = ?", (target,))
            dead.append(target)
        if output_dir is not None:
            for repo_type, repo_id in resealed:
                db.execute(
                    "UPDATE entities SET seal = ? WHERE repo_type = ? AND id = ? AND seal IS NOT NULL",
                    (entity_seal(output_dir, car_dir, repo_type, repo_id, store), repo_type, repo_id),
                )
    return dead


def write_entity_car(
    store: StateStore,
    car_dir: Path,
    repo_type: str,
    repo_id: str,
    out: BinaryIO,
    *,
    output_dir: Path,
    discardable: bool = False,
) -> str:
    """Write the entity's own single-root CAR (byte for byte what the `entity` layout writes) to *out*, from its
    pack, its own CAR or (no CAR file: the `filestore` layout) its folder in *output_dir*; its root.

    *discardable*: *out* is thrown away on an error (an atomic output), so a folder is hashed once, while its CAR
    is written, instead of once before too. LookupError when the state has no pin of the entity;
    FolderChangedError (a LookupError, one line) when its folder no longer hashes to the recorded root;
    CarReadError, OSError."""
    from hfscraper.ipfs.filestore import FolderChangedError, folder_car
    from hfscraper.ipfs.packs import COPY_SIZE, standalone_car
    from hfscraper.state import entity_folder

    pin = entity_pin(store.db, repo_type, repo_id)
    if pin is None:
        raise LookupError(f"the crawl state has no CAR of {repo_type} {repo_id}")
    if pin.car_path is None:
        folder = entity_folder(output_dir, repo_type, repo_id)
        if folder is None:
            raise LookupError(f"the crawl state has no CAR of {repo_type} {repo_id}")
        try:
            folder_car(folder, pin.root_cid, pin.profile, out, check_first=not discardable)
        except FolderChangedError as exc:
            raise FolderChangedError(
                f"no CAR of {repo_type} {repo_id}: {exc}: the folder changed or was damaged since the crawl; a "
                f"re-crawl of the entity restores it (`scrapy verify --repair` marks it for the next crawl)"
            ) from None
        return pin.root_cid
    path = car_dir / pin.car_path
    if pin.car_offset is not None and pin.car_length is not None:
        standalone_car(path, pin.car_offset, pin.car_length, pin.root_cid, out)
        return pin.root_cid
    with open(path, "rb") as f:
        while chunk := f.read(COPY_SIZE):
            out.write(chunk)
    return pin.root_cid
