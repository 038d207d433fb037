"""Import profiles: the few parameters that fully determine the CID kubo gives a file or a folder.

Three named profiles (the design's contract; IPIP-499 and kubo's `Import.*` settings are the sources):

| name | what it reproduces | CID | leaves | chunk | links/node | HAMT estimation |
| --- | --- | --- | --- | --- | --- | --- |
| `unixfs-v1-2025` (default) | IPIP-499, kubo `--profile=unixfs-v1-2025` | v1 | raw | 1 MiB | 1024 | `block` |
| `unixfs-v0-2015` | plain `ipfs add` (kubo's default to this day) | v0 | UnixFS File | 256 KiB | 174 | `links` |
| `kubo-cidv1` | `ipfs add --cid-version=1` | v1 | raw | 256 KiB | 174 | `links` |

All use sha2-256, the balanced layout and HAMT sharding with fanout 256 once a directory's size estimate
*exceeds* 256 KiB. `links` estimates Σ(len(name) + len(CID bytes)); `block` is the size of the serialized dag-pb
directory block. The comparison is `>` (kubo >= 0.40, boxo#1088): a directory exactly at the threshold stays
flat. Kubo 0.39 and older (and aleph-cid) used `>=`; `Profile.hamt_inclusive=True` reproduces that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

HamtEstimation = Literal["links", "block", "disabled"]

#: The largest chunk kubo's `size-N` chunker accepts (`Import.UnixFSChunker`, docs/config.md): a leaf and its
#: protobuf wrapper then stay within the 2 MiB block limit that `ipfs dag import` enforces.
MAX_CHUNK_SIZE = 2 * 1024 * 1024 - 256


@dataclass(frozen=True)
class Profile:
    """The import parameters that decide a CID.

    Attributes:
        name: the profile's name (`unixfs-v1-2025`).
        cid_version: 0 (base58btc `Qm...`, dag-pb only) or 1 (base32 `b...`).
        raw_leaves: leaves are raw blocks (codec 0x55) instead of UnixFS File dag-pb nodes. Needs CIDv1.
        chunk_size: fixed chunk size in bytes (kubo `--chunker=size-N`).
        max_links: children per file node in the balanced layout (kubo `Import.UnixFSFileMaxLinks`).
        hamt_threshold: directories whose size estimate exceeds this many bytes become HAMT shards; 0 disables.
        hamt_estimation: `links`, `block` or `disabled` (kubo `Import.UnixFSHAMTDirectorySizeEstimation`).
        hamt_fanout: children per HAMT shard node (a power of two, multiple of 8, at most 1024).
        hamt_inclusive: shard at an estimate equal to the threshold too (`>=`, kubo <= 0.39) instead of `>`.
    """

    name: str
    cid_version: int
    raw_leaves: bool
    chunk_size: int
    max_links: int
    hamt_threshold: int = 256 * 1024
    hamt_estimation: HamtEstimation = "links"
    hamt_fanout: int = 256
    hamt_inclusive: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.cid_version not in (0, 1):
            problems.append(f"cid_version must be 0 or 1, not {self.cid_version!r}")
        if self.raw_leaves and self.cid_version == 0:
            problems.append("raw_leaves needs cid_version 1 (a CIDv0 is always dag-pb)")
        if not 1 <= self.chunk_size <= MAX_CHUNK_SIZE:
            problems.append(f"chunk_size must be 1 to {MAX_CHUNK_SIZE} bytes, not {self.chunk_size!r}")
        if self.max_links < 2:
            problems.append(f"max_links must be at least 2, not {self.max_links!r}")
        if self.hamt_threshold < 0:
            problems.append(f"hamt_threshold must be >= 0, not {self.hamt_threshold!r}")
        if self.hamt_estimation not in ("links", "block", "disabled"):
            problems.append(f"hamt_estimation must be links, block or disabled, not {self.hamt_estimation!r}")
        fanout = self.hamt_fanout
        if not (8 <= fanout <= 1024 and fanout & (fanout - 1) == 0):
            problems.append(f"hamt_fanout must be a power of two from 8 to 1024, not {fanout!r}")
        if problems:
            raise ValueError(f"invalid profile {self.name!r}: " + "; ".join(problems))

    @property
    def dag_pb_cid_len(self) -> int:
        """Length of the binary CID of a dag-pb node under this profile (34 for v0, 36 for v1)."""
        return 34 if self.cid_version == 0 else 36

    def with_(self, **changes: object) -> Profile:
        """A copy with some parameters changed (validated again); give it a new `name` too."""
        return replace(self, **changes)  # type: ignore[arg-type]


UNIXFS_V1_2025 = Profile(
    name="unixfs-v1-2025",
    cid_version=1,
    raw_leaves=True,
    chunk_size=1024 * 1024,
    max_links=1024,
    hamt_estimation="block",
)
UNIXFS_V0_2015 = Profile(
    name="unixfs-v0-2015",
    cid_version=0,
    raw_leaves=False,
    chunk_size=256 * 1024,
    max_links=174,
    hamt_estimation="links",
)
KUBO_CIDV1 = Profile(
    name="kubo-cidv1",
    cid_version=1,
    raw_leaves=True,
    chunk_size=256 * 1024,
    max_links=174,
    hamt_estimation="links",
)

#: The named profiles, by name.
PROFILES: dict[str, Profile] = {p.name: p for p in (UNIXFS_V1_2025, UNIXFS_V0_2015, KUBO_CIDV1)}

#: The profile used when none is given: IPIP-499's `unixfs-v1-2025`.
DEFAULT_PROFILE: Profile = UNIXFS_V1_2025


def get_profile(profile: Profile | str) -> Profile:
    """*profile* itself, or the named profile; ValueError naming the known ones for an unknown name."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except (KeyError, TypeError):
        known = ", ".join(PROFILES)
        raise ValueError(f"unknown IPFS profile {profile!r} (known: {known})") from None
