"""`python -m hfscraper.ipfs`: the real command line, its exact output, its one-line errors and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfscraper.ipfs import directory_cid, read_car
from hfscraper.ipfs.__main__ import main
from tests.support.ipfs_data import probe_bytes, tree_files, write_random_tree

PROG = "python -m hfscraper.ipfs"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hfscraper.ipfs", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_cid_of_a_file_for_each_profile(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(probe_bytes(262145))
    assert run("cid", str(path)).stdout == "bafkreidhdlyyujjdmyuosq35pxncm3i4k3i2cmpxinmfynco47z6jlj43i\n"
    proc = run("cid", "--profile", "unixfs-v0-2015", str(path))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "QmfPV3utDYFyAQU95Wu8jo3yCLYEdHcMa7y8qY4YfR9vaS\n", "")
    proc = run("cid", "--profile", "kubo-cidv1", str(path))
    assert proc.stdout == "bafybeicggd6pk7qqe6rwc2hixpwgpfmgcbrsofy7vtefqh7xzbur66st5y\n"


def test_car_and_unpack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_random_tree(tmp_path / "in", seed=4)
    (folder / "ipfs_cid.txt").write_text("old")
    expected = directory_cid(folder, "unixfs-v0-2015", exclude={"ipfs_cid.txt"})
    assert main(["cid", "--profile", "unixfs-v0-2015", "--exclude", "ipfs_cid.txt", str(folder)]) == 0
    assert capsys.readouterr().out == expected + "\n"
    car = tmp_path / "x.car"
    assert main(["car", "--profile", "unixfs-v0-2015", "--exclude", "ipfs_cid.txt", str(folder), str(car)]) == 0
    assert capsys.readouterr().out == expected + "\n"
    assert read_car(car)[0] == [expected]
    assert main(["unpack", str(car), str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out == expected + "\n"
    (folder / "ipfs_cid.txt").unlink()
    assert tree_files(tmp_path / "out") == tree_files(folder)


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["cid", "{tmp}/missing"], f"{PROG} cid: error: {{tmp}}/missing: No such file or directory\n"),
        (["car", "{tmp}/missing", "{tmp}/x.car"], f"{PROG} car: error: {{tmp}}/missing: No such file or directory\n"),
        (["cid", "--profile", "nope", "{tmp}"],
         f"{PROG} cid: error: argument --profile: invalid choice: 'nope' "
         "(choose from 'kubo-cidv1', 'unixfs-v0-2015', 'unixfs-v1-2025')\n"),
        (["unpack", "{tmp}/bad.car", "{tmp}/out"],
         f"{PROG} unpack: error: {{tmp}}/bad.car: not a CAR (bad header: header is not a map with a version) "
         "at byte 0\n"),
        (["cid", "{tmp}/fifo"], f"{PROG} cid: error: {{tmp}}/fifo: not a regular file or a folder\n"),
        ([], f"{PROG}: error: the following arguments are required: {{cid,car,unpack}}\n"),
        (["cid"], f"{PROG} cid: error: the following arguments are required: PATH\n"),
        (["frobnicate"], f"{PROG}: error: argument {{cid,car,unpack}}: invalid choice: 'frobnicate' "
                         "(choose from 'cid', 'car', 'unpack')\n"),
    ],
    ids=["missing", "car-missing", "bad-profile", "bad-car", "fifo", "no-command", "no-path", "bad-command"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args: list[str], stderr: str, tmp_path: Path) -> None:
    (tmp_path / "bad.car").write_bytes(b"\x01\x01")
    os.mkfifo(tmp_path / "fifo")
    proc = run(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == stderr.replace("{tmp}", str(tmp_path))


def test_help() -> None:
    proc = run("--help")
    assert proc.returncode == 0 and "cid" in proc.stdout and "car" in proc.stdout and "unpack" in proc.stdout
    proc = run("car", "--help")
    assert proc.returncode == 0 and "unixfs-v1-2025" in proc.stdout and "OUT.car" in proc.stdout
