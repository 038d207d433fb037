"""`scrapy export` over real crawls of the replica, read back with pyarrow, pandas, polars and DuckDB and compared with
the replica's ground truth: one row per public entity, the declared schema, the data card, a second export after a
crawl over a changed Hub, SIGKILL at random moments, and the `parquet` feed format (`-O`, never appending)."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml

from hfscraper.exporters.schema import SCHEMAS, TYPES
from hfscraper.exporters.unified import CARD, COMMIT_JOURNAL, FILES
from hfscraper.ipfs import file_cid, read_car
from hfscraper.items import parse_hub_datetime
from hfscraper.provenance.outputs import EDGES_PARQUET, PROVENANCE_FOLDER
from tests.support.crawl import REPO_ROOT, crawl, crawl_env, metadata_only, public
from tests.support.replica import ReplicaHandle, run_replica

#: Metadata only, no IPFS stage (the export addresses its own files).
SETTINGS = {"HFSCRAPER_IPFS_ENABLED": "false"}


@pytest.fixture(autouse=True)
def _metadata_only(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata_only(monkeypatch)


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaHandle]:
    with run_replica(tmp_dir=tmp_path_factory.mktemp("replica"), models=60, datasets=30, spaces=30, seed=7) as hub:
        yield hub


def _scrapy() -> list[str]:
    script = Path(sys.executable).with_name("scrapy")
    return [str(script)] if script.exists() else [sys.executable, "-m", "scrapy"]


def export_command(out: Path, exp: Path, *options: str) -> list[str]:
    return [*_scrapy(), "export", *options, "-s", f"HFSCRAPER_OUTPUT_DIR={out}",
            "-s", f"HFSCRAPER_STATE_DIR={out.parent / 'state'}", "-s", f"HFSCRAPER_EXPORT_DIR={exp}"]  # fmt: skip


def run_export(replica: ReplicaHandle, out: Path, exp: Path, *options: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(export_command(out, exp, *options), cwd=REPO_ROOT, env=crawl_env(replica, out),
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


class Crawled:
    def __init__(self, out: Path, exp: Path, held_back: str) -> None:
        self.out, self.exp, self.held_back = out, exp, held_back


@pytest.fixture(scope="module")
def crawled(replica: ReplicaHandle, tmp_path_factory: pytest.TempPathFactory) -> Crawled:
    """A crawl of the replica with one model held back (it appears later), exported once."""
    held_back = public(replica.truth, "model")[-1]["id"]
    replica.mutate("model", delete=[held_back])
    base = tmp_path_factory.mktemp("export")
    out, exp = base / "out", base / "exp"
    result = crawl(replica, "", out, command_name="crawlall", settings=SETTINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    run_export(replica, out, exp)
    return Crawled(out, exp, held_back)


def expected_ids(truth: dict[str, Any], repo_type: str, leave_out: set[str] = frozenset()) -> list[str]:
    return sorted(e["id"] for e in public(truth, repo_type) if e["id"] not in leave_out)


def rows_by_id(path: Path) -> dict[str, dict[str, Any]]:
    rows = pq.read_table(path).to_pylist()
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows)  # one row each
    return by_id


# -- the first export ---------------------------------------------------------------------------------------------


def test_files_hold_exactly_the_public_entities_with_the_declared_schema(
    replica: ReplicaHandle, crawled: Crawled
) -> None:
    truth = replica.truth
    everything = pq.read_table(crawled.exp / FILES["all"])
    assert everything.schema.equals(SCHEMAS["all"], check_metadata=True)
    keys = list(zip(everything.column("type").to_pylist(), everything.column("id").to_pylist(), strict=True))
    assert len(keys) == len(set(keys)) and keys == sorted(keys)  # one row each, in the declared order
    for repo_type in TYPES:
        path = crawled.exp / FILES[repo_type]
        assert pq.read_schema(path).equals(SCHEMAS[repo_type], check_metadata=True)
        rows = rows_by_id(path)
        leave_out = {crawled.held_back} if repo_type == "model" else set()
        assert sorted(rows) == expected_ids(truth, repo_type, leave_out)
        assert sorted(i for t, i in keys if t == repo_type) == sorted(rows)
        for entity in public(truth, repo_type):
            if entity["id"] in leave_out:
                continue
            api, row = entity["api"], rows[entity["id"]]
            assert row["sha"] == api["sha"] and row["deleted"] is False
            assert row["last_modified"] == parse_hub_datetime(api["lastModified"]).replace(microsecond=0) or (
                abs((row["last_modified"] - parse_hub_datetime(api["lastModified"])).total_seconds()) < 0.001
            )
            assert row["tags"] == api.get("tags")
            assert json.loads(row["card_data"]) == api["cardData"] if api.get("cardData") is not None else True
            assert [s["path"] for s in row["siblings"]] == [s["rfilename"] for s in api["siblings"]]
            if repo_type != "space":
                assert row["downloads"] == api["downloads"]
            if repo_type == "space" and "datasets" in api:
                assert row["datasets"] == api["datasets"]
            assert row["crawled_at"] is not None


def test_pandas_polars_and_duckdb_read_the_files(replica: ReplicaHandle, crawled: Crawled) -> None:
    truth = replica.truth
    models = crawled.exp / FILES["model"]
    n_models = len(expected_ids(truth, "model", {crawled.held_back}))
    everything = crawled.exp / FILES["all"]
    n_all = pq.read_metadata(everything).num_rows
    # pandas
    frame = pd.read_parquet(models)
    assert len(frame) == n_models and frame["id"].is_unique
    assert str(frame["last_modified"].dtype).startswith("datetime64[ms, UTC]")
    assert int(frame["downloads"].sum()) == sum(
        e["api"]["downloads"] for e in public(truth, "model") if e["id"] != crawled.held_back
    )
    # polars: a filter on tags
    tag = "transformers"
    with_tag = sorted(e["id"] for e in public(truth, "model")
                      if tag in e["api"]["tags"] and e["id"] != crawled.held_back)  # fmt: skip
    assert with_tag
    lazy = pl.read_parquet(models).filter(pl.col("tags").list.contains(tag))
    assert sorted(lazy["id"].to_list()) == with_tag
    assert pl.read_parquet(everything).height == n_all
    # DuckDB: count, a tag filter, a join of models to the provenance edges
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{everything}')").fetchone()[0] == n_all
    found = con.execute(f"SELECT id FROM read_parquet('{models}') WHERE list_contains(tags, ?) ORDER BY id",
                        [tag]).fetchall()  # fmt: skip
    assert [r[0] for r in found] == with_tag
    edges_path = crawled.out / PROVENANCE_FOLDER / EDGES_PARQUET
    edges = pq.read_table(edges_path).to_pylist()
    model_ids = set(pq.read_table(models, columns=["id"]).column("id").to_pylist())
    expected_join = sum(1 for e in edges if e["src_type"] == "model" and e["src_id"] in model_ids)
    assert expected_join > 0
    joined = con.execute(
        f"SELECT m.id, e.dst_id, e.relation FROM read_parquet('{models}') m "
        f"JOIN read_parquet('{edges_path}') e ON e.src_type = 'model' AND e.src_id = m.id"
    ).fetchall()
    assert len(joined) == expected_join
    con.close()


def test_the_data_card_parses_and_names_the_four_files(crawled: Crawled) -> None:
    text = (crawled.exp / CARD).read_text(encoding="utf-8")
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n", 2)[1])
    configs = {c["config_name"]: c for c in front["configs"]}
    paths = sorted(f["path"] for c in configs.values() for f in c["data_files"])
    assert paths == sorted(FILES.values())
    assert sum(bool(c.get("default")) for c in configs.values()) == 1
    for name in FILES.values():
        path = crawled.exp / name
        cid = file_cid(path, "unixfs-v1-2025")
        assert f"`{cid}`" in text
        car = crawled.exp / "car" / (path.stem + ".car")
        roots, blocks = read_car(car)
        assert roots == [cid]
        # read_car checks every block's hash as it goes; the root block is among them
        assert cid in {block_cid for block_cid, _ in blocks}
    for column in SCHEMAS["all"].names:
        assert f"| `{column}` |" in text
    assert "Crawl time range" in text and "n/a" not in text.split("Crawl time range")[1].split("\n")[0]


def test_datasets_load_dataset_reads_every_config_of_the_card(
    crawled: Crawled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a user of the folder pushed to the Hub gets: the card's `configs:` resolved by the datasets library itself.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = (
        "import json, sys, datasets\n"
        "out = {}\n"
        "for config in ('all_entities', 'models', 'datasets', 'spaces', None):\n"
        "    ds = datasets.load_dataset(sys.argv[1], config, split='train')\n"
        "    out[str(config)] = {'ids': sorted(ds['id']), 'columns': ds.column_names,\n"
        "                        'id_type': str(ds.features['id'].dtype)}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(crawled.exp)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.splitlines()[-1])
    for config, kind in (("all_entities", "all"), ("models", "model"), ("datasets", "dataset"), ("spaces", "space")):
        table = pq.read_table(crawled.exp / FILES[kind])
        assert loaded[config]["ids"] == sorted(table.column("id").to_pylist())
        assert loaded[config]["columns"] == SCHEMAS[kind].names and loaded[config]["id_type"] == "string"
    assert loaded["None"] == loaded["all_entities"]  # the default config


# -- a second export over a changed Hub ---------------------------------------------------------------------------


def test_a_second_export_updates_adds_flags_and_keeps_the_rest(replica: ReplicaHandle, crawled: Crawled) -> None:
    before = {t: rows_by_id(crawled.exp / FILES[t]) for t in TYPES}
    exp2 = crawled.exp.parent / "exp2"
    shutil.copytree(crawled.exp, exp2)
    models = [e["id"] for e in public(replica.truth, "model") if e["id"] != crawled.held_back]
    touched, gone_model = models[:2], models[2]
    gone_space = public(replica.truth, "space")[0]["id"]
    changes = replica.mutate("model", touch=touched, delete=[gone_model], restore=[crawled.held_back])
    replica.mutate("space", delete=[gone_space])
    try:
        second = crawl(replica, "", crawled.out, command_name="crawlall", settings=SETTINGS)
        assert second.returncode == 0, second.stderr[-3000:]
    finally:
        replica.mutate("model", delete=[crawled.held_back], restore=[gone_model])
        replica.mutate("space", restore=[gone_space])
    proc = run_export(replica, crawled.out, exp2)
    assert "kept from the previous export" in proc.stdout
    after = {t: rows_by_id(exp2 / FILES[t]) for t in TYPES}
    # added
    assert set(after["model"]) == set(before["model"]) | {crawled.held_back}
    assert after["model"][crawled.held_back]["deleted"] is False
    # updated
    for repo_id in touched:
        row, info = after["model"][repo_id], changes["touched"][repo_id]
        assert row["sha"] == info["sha"] != before["model"][repo_id]["sha"]
        assert row["last_modified"] == parse_hub_datetime(info["lastModified"])
        assert row["last_modified"] > before["model"][repo_id]["last_modified"]
    # flagged, otherwise unchanged
    for repo_type, repo_id in (("model", gone_model), ("space", gone_space)):
        row = after[repo_type][repo_id]
        assert row["deleted"] is True and row["deleted_at"] is not None
        assert {**row, "deleted": False, "deleted_at": None} == before[repo_type][repo_id]
    # the rest: identical in value
    changed = {("model", i) for i in [*touched, gone_model, crawled.held_back]} | {("space", gone_space)}
    for repo_type in TYPES:
        for repo_id, row in before[repo_type].items():
            if (repo_type, repo_id) not in changed:
                assert after[repo_type][repo_id] == row, (repo_type, repo_id)
    card = (exp2 / CARD).read_text(encoding="utf-8")
    n_models, n_spaces = len(public(replica.truth, "model")), len(public(replica.truth, "space"))
    assert f"| model | {n_models} | {n_models - 1} | 1 |" in card
    assert f"| space | {n_spaces} | {n_spaces - 1} | 1 |" in card
    # --drop-deleted leaves them out
    exp3 = crawled.exp.parent / "exp3"
    shutil.copytree(exp2, exp3)
    run_export(replica, crawled.out, exp3, "--drop-deleted", "--no-car")
    dropped = {t: rows_by_id(exp3 / FILES[t]) for t in TYPES}
    assert gone_model not in dropped["model"] and gone_space not in dropped["space"]
    assert len(dropped["model"]) == n_models - 1 and not any(r["deleted"] for t in TYPES for r in dropped[t].values())


# -- SIGKILL at random moments ------------------------------------------------------------------------------------


def _check_readable(exp: Path) -> None:
    for kind, name in FILES.items():
        path = exp / name
        if path.exists():
            table = pq.read_table(path)  # raises on a torn file
            assert table.schema.equals(SCHEMAS[kind], check_metadata=True)
    if (exp / CARD).exists():
        yaml.safe_load((exp / CARD).read_text(encoding="utf-8").split("---\n", 2)[1])


def test_sigkill_at_random_moments_never_leaves_an_unreadable_file(replica: ReplicaHandle, crawled: Crawled) -> None:
    exp = crawled.exp.parent / "exp-kill"
    command = export_command(crawled.out, exp, "--batch-size", "5")
    env = crawl_env(replica, crawled.out)
    started = time.monotonic()
    subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, check=True, timeout=120)
    duration = time.monotonic() - started
    rng = random.Random(6)
    kills = torn = runs = 0
    # At least 8 runs, and more (up to 24) until enough kills landed mid-write: how long an export takes varies with
    # the machine's load, so a fixed number of runs sometimes had every kill come after the export ended.
    while runs < 8 or (runs < 24 and not (kills >= 3 and torn >= 1)):
        runs += 1
        proc = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.3, 1.0) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        torn += any(p.name.startswith(".hfscraper-tmp-") for p in exp.iterdir())
        _check_readable(exp)
    assert kills >= 3 and torn >= 1  # some kills landed while files were being written
    subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, check=True, timeout=120)
    _check_readable(exp)
    assert not [p.name for p in exp.iterdir() if p.name.startswith(".hfscraper-tmp-")]
    folders = sum(1 for t in ("models", "datasets", "spaces") for _ in (crawled.out / t).iterdir())
    assert pq.read_metadata(exp / FILES["all"]).num_rows == folders


# -- the feed exporter ----------------------------------------------------------------------------------------------


def test_the_parquet_feed_overwrites_and_never_appends(replica: ReplicaHandle, tmp_path: Path) -> None:
    out, feed = tmp_path / "out", tmp_path / "spaces.parquet"
    expected = expected_ids(replica.truth, "space")
    settings = {**SETTINGS, "DELTAFETCH_ENABLED": "false", "HFSCRAPER_PROVENANCE_ENABLED": "false"}
    for option in ("-O", "-o"):  # -o would append with any other format
        result = crawl(replica, "spaces", out, settings=settings, options=[option, str(feed)])
        assert result.returncode == 0, result.stderr[-3000:]
        table = pq.read_table(feed)
        assert table.schema.equals(SCHEMAS["space"], check_metadata=True)
        assert sorted(table.column("id").to_pylist()) == expected


# -- a kill at a known moment: the set stays the previous one, or the next export finishes the new one -----------

#: Pauses `scrapy export` (only that process) at $EXPORT_PAUSE_AT: `write_car` (its first CAR) or `commit` (after
#: the journal and the first rename); it writes its pid to $EXPORT_PAUSE_MARK and sleeps.
EXPORT_PAUSE_HOOK = """
import os
import sys

if "export" in sys.orig_argv and os.environ.get("EXPORT_PAUSE_MARK"):
    import importlib.abc
    import importlib.util
    import time

    def pause():
        mark = os.environ["EXPORT_PAUSE_MARK"]
        with open(mark + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(mark + ".tmp", mark)
        time.sleep(600)

    class _PauseExport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "hfscraper.exporters.unified":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                if os.environ["EXPORT_PAUSE_AT"] == "write_car":
                    module.write_car = lambda *args, **kwargs: pause()
                else:
                    def first_rename_then_pause(export_dir, pairs):
                        tmp, target = pairs[0]
                        os.replace(os.path.join(export_dir, os.path.dirname(target), tmp),
                                   os.path.join(export_dir, target))
                        pause()
                    module._apply_commit = first_rename_then_pause

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _PauseExport())
"""


def check_consistent(exp: Path) -> None:
    """The data card describes exactly the files beside it: each file's CID, each CAR's root."""
    text = (exp / CARD).read_text(encoding="utf-8")
    for name in FILES.values():
        cid = file_cid(exp / name, "unixfs-v1-2025")
        assert f"`{name}` | {pq.read_metadata(exp / name).num_rows} |" in text and f"`{cid}`" in text, name
        roots, _blocks = read_car(exp / "car" / (Path(name).stem + ".car"))
        assert roots == [cid], name


def export_killed_at(replica: ReplicaHandle, crawled: Crawled, exp: Path, moment: str, tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(EXPORT_PAUSE_HOOK, encoding="utf-8")
    mark = tmp_path / "paused.pid"
    env = crawl_env(replica, crawled.out, {"PYTHONPATH": str(hook), "EXPORT_PAUSE_MARK": str(mark),
                                           "EXPORT_PAUSE_AT": moment})  # fmt: skip
    # another batch size: other row groups, so every file of this export differs from the previous one's
    proc = subprocess.Popen(export_command(crawled.out, exp, "--batch-size", "7"), cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():
            assert proc.poll() is None and time.monotonic() < deadline, f"the export never paused at {moment}"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)


def test_a_kill_before_the_commit_leaves_the_previous_export(
    replica: ReplicaHandle, crawled: Crawled, tmp_path: Path
) -> None:
    exp = tmp_path / "exp"
    shutil.copytree(crawled.exp, exp)
    before = {p.relative_to(exp): p.read_bytes() for p in exp.rglob("*") if p.is_file()}
    export_killed_at(replica, crawled, exp, "write_car", tmp_path)
    # before the fix: the Parquet files were already replaced, the data card and CARs were the previous export's
    check_consistent(exp)
    assert {p.relative_to(exp): p.read_bytes() for p in exp.rglob("*") if p.is_file() and
            not p.name.startswith(".hfscraper-tmp-")} == before  # fmt: skip
    run_export(replica, crawled.out, exp)
    check_consistent(exp)
    assert not [p for p in exp.rglob(".hfscraper-*")]


def test_a_kill_during_the_renames_is_finished_by_the_next_export(
    replica: ReplicaHandle, crawled: Crawled, tmp_path: Path
) -> None:
    exp = tmp_path / "exp"
    shutil.copytree(crawled.exp, exp)
    export_killed_at(replica, crawled, exp, "commit", tmp_path)
    assert (exp / COMMIT_JOURNAL).is_file()  # one file replaced, the rest named by the journal
    proc = run_export(replica, crawled.out, exp, "--batch-size", "7")
    assert "completed the export that a kill interrupted" in proc.stdout
    check_consistent(exp)
    assert not [p for p in exp.rglob(".hfscraper-*")]
    folders = sum(1 for t in ("models", "datasets", "spaces") for _ in (crawled.out / t).iterdir())
    assert pq.read_metadata(exp / FILES["all"]).num_rows == folders
