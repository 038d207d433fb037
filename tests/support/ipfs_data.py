"""Deterministic inputs for the content-addressing tests of `hfscraper.ipfs`.

- `probe_bytes(n)`: the probe data of tests/test_ipfs_vectors.py: the first
  *n* bytes of the stream sha256(b"ipfs-test-" + i.to_bytes(8, "big")), i = 0, 1, ...
- `KuboRandomReader(size, seed)`: kubo's `testutils.DeterministicRandomReaderBytes` (ChaCha20 keyed with
  sha256(seed), zero nonce), the input of kubo's own CID fixtures (`test/cli/add_test.go`,
  `cid_profiles_test.go`); a reader with `readinto`, so a 1 GiB input never sits in memory.
- `make_kubo_hamt_dir(...)`: kubo's `createDeterministicFiles`: files holding `x` whose names come from that
  stream mapped onto `abcdefghijklmnopqrstuvwxyz01234567890-_`.
- `chacha_bytes(n, seed)` and `write_random_tree(...)`: fast seeded data and random folders for the oracle tests.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

KUBO_ALPHABET = "abcdefghijklmnopqrstuvwxyz01234567890-_"


def probe_bytes(n: int) -> bytes:
    """The first *n* bytes of the test stream sha256(b"ipfs-test-" + i.to_bytes(8, "big")), i = 0, 1, ...."""
    blocks = (n + 31) // 32
    return b"".join(hashlib.sha256(b"ipfs-test-" + i.to_bytes(8, "big")).digest() for i in range(blocks))[:n]


def _chacha(seed: str):  # noqa: ANN202 - a cryptography CipherContext
    key = hashlib.sha256(seed.encode()).digest()
    return Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None).encryptor()


def chacha_bytes(n: int, seed: str) -> bytes:
    """*n* bytes of kubo's deterministic stream for *seed* (held in memory: use for small inputs)."""
    return _chacha(seed).update(bytes(n))


class KuboRandomReader(io.RawIOBase):
    """Exactly *size* bytes of kubo's deterministic stream for *seed*, generated as they are read."""

    def __init__(self, size: int, seed: str) -> None:
        self.remaining = size
        self.cipher = _chacha(seed)
        self.zeros = bytes(4 * 1024 * 1024)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.remaining, len(self.zeros))
        if n <= 0:
            return 0
        view[:n] = self.cipher.update(memoryview(self.zeros)[:n])
        self.remaining -= n
        return n


def write_file(path: Path, size: int, seed: str) -> Path:
    """A file of *size* bytes of the stream for *seed*, written in pieces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    reader = KuboRandomReader(size, seed)
    buf = bytearray(4 * 1024 * 1024)
    with open(path, "wb") as out:
        while n := reader.readinto(buf):
            out.write(memoryview(buf)[:n])
    return path


def kubo_names(count: int, name_len: int, last_len: int, seed: str) -> list[str]:
    """The file names kubo's `createDeterministicFiles` makes (its stream is 1 MiB long)."""
    stream = chacha_bytes(1024 * 1024, seed)
    names, pos = [], 0
    for i in range(count):
        length = last_len if i == count - 1 else name_len
        names.append("".join(KUBO_ALPHABET[b % len(KUBO_ALPHABET)] for b in stream[pos : pos + length]))
        pos += length
    return names


def make_kubo_hamt_dir(path: Path, count: int, name_len: int, last_len: int, seed: str) -> Path:
    """kubo's HAMT fixture folder: *count* files holding `x`, names from `kubo_names`."""
    path.mkdir(parents=True)
    for name in kubo_names(count, name_len, last_len or name_len, seed):
        (path / name).write_bytes(b"x")
    return path


def make_names_dir(path: Path, names: list[str], content: bytes = b"x") -> Path:
    """A folder holding one file with *content* per name."""
    path.mkdir(parents=True)
    for name in names:
        (path / name).write_bytes(content)
    return path


NAME_PARTS = ["a", "B", "model", "config", "Ünïcödé", "日本語", "emoji-🦀", "with space", "-dash", "_u", "z9"]


def write_random_tree(root: Path, seed: int, *, max_files: int = 25, max_size: int = 600_000) -> Path:
    """A random folder (seeded): nested folders, hidden files, empty files, empty folders, unicode names."""
    rnd = random.Random(seed)
    root.mkdir(parents=True)
    folders = [root]
    for i in range(rnd.randint(1, 5)):
        parent = rnd.choice(folders)
        name = ("." if rnd.random() < 0.2 else "") + rnd.choice(NAME_PARTS) + f"-d{i}"
        folder = parent / name
        folder.mkdir()
        folders.append(folder)
    for i in range(rnd.randint(1, max_files)):
        parent = rnd.choice(folders)
        name = ("." if rnd.random() < 0.2 else "") + rnd.choice(NAME_PARTS) + f"-{i}"
        roll = rnd.random()
        size = 0 if roll < 0.15 else rnd.randint(1, 64) if roll < 0.5 else rnd.randint(1, max_size)
        (parent / name).write_bytes(chacha_bytes(size, f"tree-{seed}-{i}"))
    (rnd.choice(folders) / f"empty-{seed}").mkdir(exist_ok=True)
    return root


def tree_files(root: Path) -> dict[str, bytes | None]:
    """Relative path -> bytes (None for a folder) of everything under *root*, to compare two trees."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), root)] = None
        for name in filenames:
            full = os.path.join(dirpath, name)
            out[os.path.relpath(full, root)] = Path(full).read_bytes()
    return out
