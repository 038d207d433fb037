"""The per-entity relationship documents without an inode each: the rebuild writes none by default, and every
document the seed wrote as `provenance/<type>_relationships/<folder>.json` is answered on demand, byte for byte,
from the Parquet files (the default folder) or from `entity_relationships.json` (when asked for)
(`hfscraper.provenance.documents`, `python -m hfscraper.provenance relationships`). The whole-graph text files are
written only when asked, and `python -m hfscraper.provenance graph` writes the same bytes on demand. The reference
is the seed's own output, recorded in tests/data/provenance/."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hfscraper.provenance.documents import (
    ENTITY_FOLDERS,
    document_for_path,
    document_text,
    id_from_folder_name,
    node_document,
)
from hfscraper.provenance.extract import extract
from hfscraper.provenance.freshness import GRAPH_FILES
from hfscraper.provenance.outputs import rebuild
from hfscraper.provenance.store import record_alias, record_entity
from hfscraper.state import StateStore

REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = json.loads((REPO_ROOT / "tests" / "data" / "provenance" / "seed_documents.json").read_text(encoding="utf-8"))


def record_seed_inputs(state_file: Path) -> None:
    store = StateStore(state_file)
    try:
        for repo_type, api in SEED["entities"]:
            record_entity(store, extract(repo_type, api), "t")
        for repo_type, old, new in SEED["aliases"]:
            record_alias(store, repo_type, old, new, "t")
        with store.transaction():
            for repo_type, repo_id in SEED["tombstones"]:
                store.db.execute(
                    "INSERT INTO entities (repo_type, id, deleted_at) VALUES (?, ?, 'now')", (repo_type, repo_id)
                )
    finally:
        store.close()


ALL_GRAPH_FILES = ("json", "graphml", "relationships")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`out/`: the default rebuild (Parquet files only); `text/`: the same state with every text file asked for."""
    folder = tmp_path_factory.mktemp("seed")
    record_seed_inputs(folder / "state.sqlite3")
    rebuild(folder / "state.sqlite3", folder / "out")
    rebuild(folder / "state.sqlite3", folder / "text", graph_files=ALL_GRAPH_FILES)
    return folder


def inodes(folder: Path) -> int:
    return sum(1 + len(files) for _, _, files in os.walk(folder))


def test_the_rebuild_writes_no_file_per_entity_by_default(built: Path) -> None:
    folder = built / "out" / "provenance"
    assert sorted(p.name for p in folder.iterdir()) == [
        "provenance_edges.parquet", "provenance_edges_by_target.parquet", "provenance_nodes.parquet",
    ]  # fmt: skip
    assert inodes(folder) == 4  # whatever the number of entities


def test_the_graph_files_are_the_seeds(built: Path) -> None:
    folder = built / "text" / "provenance"
    for name, digest in SEED["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("graph_format", ALL_GRAPH_FILES)
def test_the_graph_command_writes_the_seeds_bytes_from_the_parquet_files(built: Path, graph_format: str) -> None:
    name = GRAPH_FILES[graph_format]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HFSCRAPER_")}
    clean["PYTHONPATH"] = str(REPO_ROOT)
    command = [sys.executable, "-m", "hfscraper.provenance", "graph", "--format", graph_format]
    to_file = subprocess.run([*command, "--output-dir", str(built / "out"), str(built / name)], env=clean,
                             cwd=built, capture_output=True, timeout=120, check=False)  # fmt: skip
    assert to_file.returncode == 0, to_file.stderr
    to_stdout = subprocess.run([*command, "--output-dir", str(built / "out")], env=clean, cwd=built,
                               capture_output=True, timeout=120, check=False)  # fmt: skip
    assert to_stdout.returncode == 0, to_stdout.stderr
    expected = (built / "text" / "provenance" / name).read_bytes()  # what the rebuild wrote when asked
    assert hashlib.sha256(expected).hexdigest() == SEED["sha256"][name]
    assert (built / name).read_bytes() == expected and to_stdout.stdout == expected
    missing = subprocess.run([*command, "--output-dir", str(built / "nothing")], env=clean, cwd=built,
                             capture_output=True, timeout=120, check=False)  # fmt: skip
    err = missing.stderr.decode()
    assert missing.returncode == 1 and "rebuild the provenance files" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["out", "text"])
def test_every_seed_document_is_answered_byte_for_byte(built: Path, where: str) -> None:
    out = built / where
    assert len(SEED["documents"]) > 100
    for path, text in SEED["documents"].items():
        assert document_for_path(out, path) == text.encode("utf-8"), path
        assert document_for_path(out, f"provenance/{path}") == text.encode("utf-8"), path
        doc = json.loads(text)
        assert document_text(out, doc["type"], doc["id"]) == text.encode("utf-8"), path


@pytest.mark.parametrize("where", ["out", "text"])
def test_only_the_seeds_paths_have_documents(built: Path, where: str) -> None:
    out = built / where
    # a stub (named by an edge, never crawled) and an unknown id: the seed wrote no file for them
    assert node_document(out, "model", "gone/base") is not None
    assert document_text(out, "model", "gone/base") is None
    assert document_for_path(out, "model_relationships/gone__base.json") is None
    assert document_text(out, "model", "no/such-model") is None
    assert document_text(out, "dataset", "fx/new-name") is None  # another type's namespace
    # every node of every type is found, whatever its place in the file (first, last, between)
    data = json.loads((built / "text" / "provenance" / "entity_relationships.json").read_text(encoding="utf-8"))
    for key, doc in data["entities"].items():
        repo_type, _, repo_id = key.partition(":")
        assert node_document(out, repo_type, repo_id) == doc
    documents = {
        f"{ENTITY_FOLDERS[d['type']]}/{name}"
        for name, d in ((p.split("/")[1], json.loads(t)) for p, t in SEED["documents"].items())
    }
    assert documents == set(SEED["documents"])


def test_folder_names_map_back_to_ids() -> None:
    assert id_from_folder_name("org__name") == "org/name"
    assert id_from_folder_name("gpt2") == "gpt2"
    assert id_from_folder_name("~fyxc6lrof5sxiyzpobqxg43xmq") == "../../etc/passwd"
    assert id_from_folder_name("a__b__c") is None  # no id has this folder name
    assert id_from_folder_name("~not base32!") is None


def test_the_per_entity_files_are_still_written_on_request(built: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = rebuild(built / "state.sqlite3", out, entity_files=True)
    written = {
        str(p.relative_to(out / "provenance")): p.read_text(encoding="utf-8")
        for p in (out / "provenance").glob("*_relationships/*.json")
    }
    assert written == SEED["documents"] and summary.entity_files_written == len(written)
    # switched off again: the files go, the answers stay
    again = rebuild(built / "state.sqlite3", out)
    assert again.entity_files_removed == len(written) and again.entity_files_written == 0
    assert not list((out / "provenance").glob("*_relationships"))
    path, text = next(iter(SEED["documents"].items()))
    assert document_for_path(out, path) == text.encode("utf-8")


def run_relationships(out: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HFSCRAPER_")}
    clean["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "hfscraper.provenance", "relationships", "--output-dir", str(out), *args],
        cwd=out.parent, env=clean, capture_output=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("where", ["out", "text"])
def test_the_command_prints_the_seeds_file(built: Path, where: str) -> None:
    out = built / where
    hashed = next(p for p in SEED["documents"] if "/~h" in p)  # an id too long for an invertible folder name
    for path in ("model_relationships/fx__new-name.json", hashed):
        done = run_relationships(out, path)
        assert done.returncode == 0 and done.stdout == SEED["documents"][path].encode("utf-8"), done.stderr
    done = run_relationships(out, "model", "fx/new-name")
    assert done.returncode == 0 and done.stdout == SEED["documents"]["model_relationships/fx__new-name.json"].encode()


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["model_relationships/gone__base.json"], 1, "no relationship document for"),
        (["model", "no/such\x1bmodel"], 1, "no/such\\x1bmodel"),
        (["elsewhere/x.json"], 2, "is not a per-entity document path"),
        (["car", "x/y"], 2, "give a document path"),
    ],
)
def test_the_command_refuses_in_one_line(built: Path, args: list[str], code: int, says: str) -> None:
    done = run_relationships(built / "out", *args)
    err = done.stderr.decode()
    assert done.returncode == code and says in err and len(err.strip().splitlines()) == 1 and not done.stdout, err


def test_the_command_without_a_rebuild_says_so(tmp_path: Path) -> None:
    done = run_relationships(tmp_path / "out", "model", "a/b")
    err = done.stderr.decode()
    assert done.returncode == 1 and "rebuild the provenance files" in err and "Traceback" not in err


def test_documents_of_a_long_single_line_are_found(tmp_path: Path) -> None:
    # a base with many dependents has a long line; its neighbours are still found by the binary search
    state = tmp_path / "state.sqlite3"
    store = StateStore(state)
    entities: list[tuple[str, dict[str, Any]]] = [("model", {"id": "big/base"})]
    entities += [("model", {"id": f"kid/m{n:04d}", "tags": ["base_model:finetune:big/base"]}) for n in range(3000)]
    for repo_type, api in entities:
        record_entity(store, extract(repo_type, api), "t")
    store.close()
    rebuild(state, tmp_path / "out", graph_files=("relationships",))
    assert len(json.loads(document_text(tmp_path / "out", "model", "big/base") or b"{}")["dependents"]) == 3000
    # its line is written link by link, in chunks: the same bytes as the whole document's
    rebuild(state, tmp_path / "files", entity_files=True, graph_files=("relationships",))
    name = Path("provenance") / "entity_relationships.json"
    assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "files" / name).read_bytes()
    assert json.loads((tmp_path / "files" / "provenance" / "model_relationships" / "big__base.json").read_bytes()) == (
        json.loads(document_text(tmp_path / "out", "model", "big/base") or b"{}")
    )
    rebuild(state, tmp_path / "parquet")  # the Parquet files only
    for n in (0, 1, 1499, 2999):
        for where in ("out", "parquet"):
            doc = json.loads(document_text(tmp_path / where, "model", f"kid/m{n:04d}") or b"{}")
            assert doc["depends_on"][0]["id"] == "big/base"
    big = document_text(tmp_path / "parquet", "model", "big/base")
    assert big is not None and big == document_text(tmp_path / "out", "model", "big/base")
