"""Where hfscraper's IPFS pins live: the `IpfsBackend` protocol and its implementations, by scheme name.

`BACKENDS` maps `HFSCRAPER_IPFS_BACKEND` to a class, as Scrapy's `FilesPipeline.STORE_SCHEMES` maps URI
schemes to stores:

- `embedded` (default): no node. A pin is the record (root CID, profile, entity, time) in the crawl state's `pins`
  table, and the entity's CAR: built from its folder on demand (`HFSCRAPER_IPFS_CAR_LAYOUT=filestore`, the
  default: `scrapy car TYPE ID`), or kept on disk in packs or files of its own (`HFSCRAPER_IPFS_CAR_DIR`). Any
  IPFS node can take the CARs later (`scrapy car model ID | ipfs dag import`, `ipfs dag import
  output/car/packs/models/*.car`).
- `kubo`: a node's kubo RPC API (`hfscraper.ipfs.kubo`): kubo, js-ipfs, or an IPFS Cluster proxy.

Every backend that stores blocks receives the CAR the pipeline wrote and the root CID computed locally, and must
either confirm that exact root as pinned or raise (`hfscraper.exceptions`): a mismatch is never accepted silently.
The pipeline records each confirmed pin in the state (`hfscraper.ipfs.pins`), whatever the backend.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

from hfscraper import __version__
from hfscraper.exceptions import IpfsCidMismatchError, IpfsError, IpfsPinError
from hfscraper.ipfs.car import CarReadError, read_car
from hfscraper.ipfs.kubo import KuboBackend, same_block
from hfscraper.ipfs.multiformats import parse_cid
from hfscraper.ipfs.packs import pack_roots
from hfscraper.ipfs.pins import PinRow, pins_of_root

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

    from hfscraper.ipfs.profiles import Profile
    from hfscraper.state import SharedStateStore


@runtime_checkable
class IpfsBackend(Protocol):
    """What the IPFS pipeline needs from a place that pins.

    CIDs are strings as `hfscraper.ipfs` writes them (base58btc `Qm...` for v0, base32 `b...` for v1). *entity*
    (`"model:owner/name"`) only names the entity in errors.
    """

    #: The scheme name (`HFSCRAPER_IPFS_BACKEND`), also the `backend` column of the state's `pins` table.
    name: ClassVar[str]

    @classmethod
    def from_settings(cls, settings: BaseSettings, *, state: SharedStateStore | None = None) -> Self: ...

    def describe(self) -> str:
        """One line for logs: which backend, where."""
        ...

    async def open(self) -> dict[str, Any]:
        """Check that the backend can be used (the node answers); its version. Raises IpfsError."""
        ...

    async def close(self) -> None: ...

    async def version(self) -> dict[str, Any]: ...

    async def add_car(self, car_path: Path, root: str, entity: str | None = None) -> str:
        """Import the CAR at *car_path*, whose header root is *root*, and pin that root; return the root once the
        backend confirms it pinned. Raises IpfsCidMismatchError when the backend's root differs, IpfsPinError when
        it cannot pin or confirm, IpfsError for anything else."""
        ...

    async def add_pack(self, car_path: Path, roots: list[str]) -> dict[str, str]:
        """Import the CAR at *car_path* whose header names *roots* (a pack: several entities) and pin every root;
        {root: why it is not pinned} for the roots that are not (empty: all confirmed). IpfsError when the CAR
        cannot be imported at all."""
        ...

    async def add_file(self, path: Path, profile: Profile) -> str:
        """The CID the backend gives a single file with *profile*'s parameters (a cross-check; stores nothing)."""
        ...

    async def pin(self, root: str, entity: str | None = None) -> None:
        """Pin a root whose blocks the backend already has (or can get); IpfsPinError otherwise."""
        ...

    async def unpin(self, root: str, entity: str | None = None) -> None:
        """Remove the pin of *root* (no error when it was not pinned)."""
        ...

    async def is_pinned(self, root: str) -> bool: ...


def car_root(path: Path) -> str | None:
    """The single root of the CAR at *path*, or None when there is no readable CAR with one root there."""
    try:
        roots, blocks = read_car(path)
    except (OSError, CarReadError):
        return None
    try:
        next(blocks, None)  # reads (and verifies) the first block; closing the started reader closes the file
    except CarReadError:
        return None
    finally:
        blocks.close()
    return roots[0] if len(roots) == 1 else None


class EmbeddedBackend:
    """`ipfs.backend = "embedded"`: a root is pinned when it is recorded in the state with no CAR file (the
    `filestore` layout: the CAR is the folder's, built on demand) or with its CAR on disk.

    `unpin` removes nothing from disk: the CAR, like the entity folder it mirrors, stays part of the output; the
    pipeline drops the record.
    """

    name: ClassVar[str] = "embedded"

    def __init__(self, state: SharedStateStore | None = None) -> None:
        self.state = state

    @classmethod
    def from_settings(cls, settings: BaseSettings, *, state: SharedStateStore | None = None) -> Self:
        return cls(state)

    def describe(self) -> str:
        return "embedded (pins in the crawl state)"

    async def open(self) -> dict[str, Any]:
        return await self.version()

    async def close(self) -> None:
        return None

    async def version(self) -> dict[str, Any]:
        return {"Version": __version__, "Backend": self.name}

    async def add_car(self, car_path: Path, root: str, entity: str | None = None) -> str:
        got = await asyncio.to_thread(car_root, car_path)
        if got is None:
            raise IpfsPinError(f"no readable single-root CAR at {car_path}", cid=root, entity=entity)
        if not same_block(got, root):
            raise IpfsCidMismatchError(f"the root of {car_path} differs", expected=root, got=got, entity=entity)
        return root

    async def add_pack(self, car_path: Path, roots: list[str]) -> dict[str, str]:
        return await asyncio.to_thread(pack_problems, car_path, roots)

    async def add_file(self, path: Path, profile: Profile) -> str:
        from hfscraper.ipfs import file_cid

        return await asyncio.to_thread(file_cid, path, profile)

    async def _rows(self, root: str) -> list[PinRow]:
        if self.state is None:
            return []
        return await self.state.call(pins_of_root, root, self.name)

    async def pin(self, root: str, entity: str | None = None) -> None:
        if not await self.is_pinned(root):
            raise IpfsPinError("the embedded backend has no CAR for this root", cid=root, entity=entity)

    async def unpin(self, root: str, entity: str | None = None) -> None:
        return None

    async def is_pinned(self, root: str) -> bool:
        rows = await self._rows(root)
        if any(row.car_path is None for row in rows):
            return True
        return bool(rows) and await asyncio.to_thread(_has_car, rows, root)


def pack_problems(car_path: Path, roots: list[str]) -> dict[str, str]:
    """{root: problem} for the *roots* that the header of the CAR at *car_path* does not name (all of them when
    it cannot be read): the embedded backend's "pin" of a pack."""
    try:
        held = {parse_cid(r).bytes for r in pack_roots(car_path)}
    except (OSError, CarReadError) as exc:
        return dict.fromkeys(roots, f"no readable CAR at {car_path}: {exc}")
    return {root: f"{car_path} does not hold this root" for root in roots if parse_cid(root).bytes not in held}


def _has_car(rows: list[PinRow], root: str) -> bool:
    # Rows of the pipeline name their CAR relative to the CAR folder: the pipeline checks those itself.
    return any(
        row.car_path and os.path.isabs(row.car_path) and os.path.isfile(row.car_path)
        and (root in pack_roots_or_none(Path(row.car_path)))
        for row in rows
    )  # fmt: skip


def pack_roots_or_none(path: Path) -> list[str]:
    try:
        return pack_roots(path)
    except (OSError, CarReadError):
        return []


#: The backends by `HFSCRAPER_IPFS_BACKEND` value.
BACKENDS: dict[str, type[IpfsBackend]] = {
    EmbeddedBackend.name: EmbeddedBackend,
    KuboBackend.name: KuboBackend,
}


def build_backend(name: str, settings: BaseSettings, *, state: SharedStateStore | None = None) -> IpfsBackend:
    """The backend called *name*, configured from *settings*; IpfsError naming the known ones otherwise."""
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise IpfsError(f"unknown IPFS backend {name!r} (known: {', '.join(BACKENDS)})") from None
    return cls.from_settings(settings, state=state)
