"""Content addressing exactly as kubo does it, offline: UnixFS import, CIDs, CARs (and, in other modules of this
package, the backends that pin).

The public API::

    from hfscraper.ipfs import (PROFILES, DEFAULT_PROFILE, Profile, file_cid, bytes_cid, directory_cid,
                                write_car, read_car, CarReadError)

    file_cid("model.safetensors")                          # 'bafybei...' (unixfs-v1-2025, the default)
    file_cid("model.safetensors", "unixfs-v0-2015")       # 'Qm...', what plain `ipfs add` prints
    directory_cid("output/models/gpt2", exclude={"ipfs_cid.txt"})
    write_car("output/models/gpt2", "gpt2.car", exclude={"ipfs_cid.txt"})   # returns the root CID
    roots, blocks = read_car("gpt2.car")                   # every block's hash checked as it is read

Profiles are given as a `Profile` or by name (`unixfs-v1-2025`, `unixfs-v0-2015`, `kubo-cidv1`; see
`hfscraper.ipfs.profiles`). Everything streams with bounded memory: one chunk buffer per file, blocks written to
the CAR as they are made. Functions are blocking and thread-safe (no shared state); call them from a worker
thread inside a crawl. The command line is `python -m hfscraper.ipfs cid|car|unpack`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from hfscraper.ipfs.car import CarIndex, CarReadError, CarWriter, atomic_output, header_section, read_car
from hfscraper.ipfs.multiformats import cid_to_str, parse_cid
from hfscraper.ipfs.profiles import DEFAULT_PROFILE, PROFILES, Profile, get_profile
from hfscraper.ipfs.unixfs import DagError, Importer, UnsupportedFileError, export

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "CarReadError",
    "DagError",
    "Profile",
    "UnsupportedFileError",
    "bytes_cid",
    "directory_cid",
    "file_cid",
    "path_cid",
    "read_car",
    "unpack_car",
    "write_car",
]

PathLike = str | os.PathLike[str]
Exclude = Iterable[PathLike]


def file_cid(path: PathLike, profile: Profile | str = DEFAULT_PROFILE) -> str:
    """The CID kubo gives the regular file *path* (`ipfs add FILE` with the profile's options), streaming it.

    Raises OSError when it cannot be read (IsADirectoryError for a folder).
    """
    if os.path.isdir(path):
        raise IsADirectoryError(f"{os.fspath(path)}: is a folder (use directory_cid)")
    return str(Importer(get_profile(profile)).add_file(path))


def bytes_cid(data: bytes | bytearray | memoryview, profile: Profile | str = DEFAULT_PROFILE) -> str:
    """The CID kubo gives a file holding *data*."""
    return str(Importer(get_profile(profile)).add_bytes(data))


def directory_cid(path: PathLike, profile: Profile | str = DEFAULT_PROFILE, exclude: Exclude = frozenset()) -> str:
    """The CID of folder *path* as `ipfs add -r --hidden` gives it, leaving out the relative paths in *exclude*
    (`{"ipfs_cid.txt", "sub/file"}`; an excluded folder is left out whole).

    Raises NotADirectoryError for a file, UnsupportedFileError for a socket, FIFO or device inside, OSError when
    something cannot be read.
    """
    return str(Importer(get_profile(profile), exclude=exclude).add_directory(path))


def path_cid(path: PathLike, profile: Profile | str = DEFAULT_PROFILE, exclude: Exclude = frozenset()) -> str:
    """`file_cid` or `directory_cid`, whichever *path* is (a symlink given here is followed)."""
    return str(Importer(get_profile(profile), exclude=exclude).add_path(path))


def write_car(
    path: PathLike,
    out_path: PathLike,
    profile: Profile | str = DEFAULT_PROFILE,
    exclude: Exclude = frozenset(),
    *,
    fsync: bool = False,
) -> str:
    """Write the DAG of file or folder *path* as a CARv1 at *out_path* with that single root; return the root CID.

    Atomic (a temporary file beside *out_path*, renamed over it at the end) and streaming: blocks go to the file as
    they are made, each distinct block once. If *out_path* lies inside the folder, neither it nor the temporary
    file is part of the DAG (so the root equals `directory_cid(path, exclude=exclude | {that name})`). With
    *fsync*, the file and the rename are flushed to disk before returning.
    """
    chosen = get_profile(profile)
    target = Path(out_path)
    skip: set[tuple[int, int]] = set()
    if target.exists():
        st = target.stat()
        skip.add((st.st_dev, st.st_ino))
    with atomic_output(target, fsync=fsync) as (out, tmp):
        st = os.fstat(out.fileno())
        skip.add((st.st_dev, st.st_ino))
        reserved = len(header_section(b"\0" * chosen.dag_pb_cid_len))
        out.write(b"\0" * reserved)
        writer = CarWriter(out)
        root = Importer(chosen, writer, exclude=exclude, skip_inodes=skip).add_path(path)
        header = header_section(root.cid)
        if len(header) != reserved:  # a root CID of another length than the profile's (cannot happen)
            raise AssertionError(f"CAR header is {len(header)} bytes, {reserved} were reserved")
        out.seek(0)
        out.write(header)
    return str(root)


def unpack_car(car_path: PathLike, dest: PathLike, root: str | None = None) -> str:
    """Write the UnixFS DAG of a CAR (its single header root, or *root*) to *dest* (must not exist): a file, a
    folder or a symlink. Every block's hash is verified, file sizes are checked against the DAG; returns the root.

    Raises CarReadError for a damaged CAR, DagError for a DAG that is incomplete or not UnixFS.
    """
    with CarIndex(car_path) as index:
        if root is None:
            if len(index.roots) != 1:
                raise CarReadError(f"the CAR has {len(index.roots)} roots; name the one to unpack")
            root_cid = index.roots[0]
        else:
            root_cid = parse_cid(root).bytes
        export(root_cid, index.get, dest)
    return cid_to_str(root_cid)
