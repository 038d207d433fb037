"""Provenance graph benchmark: build the graph of a synthetic Hub of 200,000 models (plus 60,000 datasets and
60,000 spaces) through the crawl's own code: extraction, the crash-safe state, and every output file; and the same
for a Hub ten times smaller, to see what grows with the number of entities.

Three processes per size, so that each measured one holds nothing but the provenance code's data:
- a generator builds the replica's synthetic Hub (`hfscraper.replica.synth.build_hub`, no HTTP) and writes each
  public entity's listing JSON (`render_list_item`, the provenance fields) to a pipe, one line each;
- the worker (`python -m bench.graph --worker DIR`) reads the lines and runs `extract` and `record_entity_batch`
  (one transaction per `RECORD_BATCH` entities, the pipeline's largest batch), as the crawl's provenance stage
  does, and reports its rate;
- the rebuild, as a crawl runs it when it ends: a child `python -m hfscraper.provenance rebuild` (every file under
  `provenance/`), whose time and peak RSS (`wait4`'s `ru_maxrss` of that child) are measured.

Rows (N = the sizes below, N/10 = a tenth of each):
- `peak_rss`: the rebuild's peak resident memory at N, MiB. Goal: under 300 MiB (nothing holds the graph: the
  state's rows stream through temporary SQLite tables and ordered scans).
- `peak_rss_tenth`: the same at N/10 (informative); `peak_rss_growth`: `peak_rss / peak_rss_tenth`. Goal: at
  most 1.15 (flat: what grows with N lives on disk, not in memory).
- `rebuild_time`, `rebuild_time_tenth`: seconds to write every output file (informative; the default set: the
  three Parquet files, no whole-graph text file).
- `provenance_inodes`: files and folders under `provenance/` at N. Goal: at most 8, whatever N (no file per
  entity: each per-entity document is answered from the Parquet files).
- `provenance_bytes_per_node`: bytes under `provenance/` per node at N (informative: compare with metadata.json's
  ~1,600 bytes per entity).
- `document_lookup_ms`: milliseconds to answer one seed path (`model_relationships/<folder>.json`) on demand,
  the mean of 200 look-ups of random crawled models (informative; three Parquet look-ups, each reading the row
  groups that can hold the key).
- `extract_store_rate`: entities per second through extraction and the state (informative).
- `nodes`, `edges` (informative).

Sizes: `BENCH_GRAPH_MODELS` (default 200000), `BENCH_GRAPH_DATASETS`, `BENCH_GRAPH_SPACES` (default 60000 each).
`run(smoke=True)` uses 2,000 models and 600 datasets and spaces.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import BenchResult, Row

NAME = "graph"
GOAL_PEAK_MIB = 300
GOAL_GROWTH = 1.15
GOAL_INODES = 8
FIELDS = {
    "model": ["author", "createdAt", "lastModified", "downloads", "likes", "tags", "pipeline_tag", "library_name",
              "cardData", "spaces"],
    "dataset": ["author", "createdAt", "lastModified", "downloads", "likes", "tags", "cardData"],
    "space": ["author", "createdAt", "lastModified", "likes", "tags", "models", "datasets"],
}  # fmt: skip
REPO_ROOT = Path(__file__).resolve().parent.parent


def sizes(*, smoke: bool) -> dict[str, int]:
    if smoke:
        return {"models": 2000, "datasets": 600, "spaces": 600}
    return {
        "models": int(os.environ.get("BENCH_GRAPH_MODELS", "200000")),
        "datasets": int(os.environ.get("BENCH_GRAPH_DATASETS", "60000")),
        "spaces": int(os.environ.get("BENCH_GRAPH_SPACES", "60000")),
    }


def generate(models: int, datasets: int, spaces: int, seed: int = 3) -> None:
    """Write `type\\tjson` lines of every public entity to stdout (the generator process)."""
    from hfscraper.replica.shapes import render_list_item
    from hfscraper.replica.synth import build_hub

    hub = build_hub(models, datasets, spaces, seed=seed)
    out = sys.stdout
    for repo_type in ("model", "dataset", "space"):
        for entity in hub.entities(repo_type):
            if entity.private:
                continue
            api = render_list_item(entity, expand=FIELDS[repo_type])
            out.write(f"{repo_type}\t{json.dumps(api, separators=(',', ':'))}\n")
    out.flush()


def work(folder: Path) -> dict[str, Any]:
    """Read the generator's lines from stdin and record them in a new state under *folder* (the measured
    process); its rate and the state file."""
    from hfscraper.provenance.extract import extract
    from hfscraper.provenance.store import RECORD_BATCH, record_entity_batch
    from hfscraper.state import StateStore, state_file_path, utc_now

    state_file = state_file_path(folder / "state", folder / "out")
    store = StateStore(state_file)
    started = time.monotonic()
    entities = 0
    when = utc_now()
    batch: list[Any] = []

    def flush() -> None:
        failed = [result for ok, result in record_entity_batch(store, batch) if not ok]
        if failed:
            raise RuntimeError(f"{len(failed)} entities not recorded: {failed[0]}")
        batch.clear()

    for line in sys.stdin:
        repo_type, _, payload = line.partition("\t")
        batch.append((extract(repo_type, json.loads(payload)), when))
        entities += 1
        if len(batch) >= RECORD_BATCH:
            flush()
    flush()
    store.close()
    return {
        "entities": entities, "extract_store_seconds": round(time.monotonic() - started, 2),
        "state_file": str(state_file), "state_bytes": state_file.stat().st_size,
        "peak_rss_store_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }  # fmt: skip


def rebuild_child(state_file: Path, output: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run the rebuild as a crawl does (a child process); its summary, wall time and peak RSS."""
    command = [
        sys.executable, "-m", "hfscraper.provenance", "rebuild", "--json", "--output-dir", str(output),
        "--state-file", str(state_file), "--no-fsync", "--no-entity-files",
    ]  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise RuntimeError(f"rebuild failed: {err.read().decode(errors='replace')[-3000:]}")
        summary = json.loads(out.read().decode().strip().splitlines()[-1])
    return {**summary, "wall_seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def lookups(output: Path, count: int = 200, seed: int = 5) -> float:
    """Mean milliseconds to answer a seed path of a random crawled model (`documents.document_for_path`)."""
    import random

    import pyarrow.parquet as pq

    from hfscraper.hub import entity_folder_name
    from hfscraper.provenance.documents import document_for_path

    rng = random.Random(seed)
    nodes = pq.read_table(output / "provenance" / "provenance_nodes.parquet", columns=["type", "id", "scraped"])
    ids = [n["id"] for n in nodes.to_pylist() if n["type"] == "model" and n["scraped"]]
    picked = [rng.choice(ids) for _ in range(count)]
    started = time.monotonic()
    for repo_id in picked:
        if document_for_path(output, f"model_relationships/{entity_folder_name(repo_id)}.json") is None:
            raise RuntimeError(f"no document for {repo_id}")
    return (time.monotonic() - started) * 1000 / count


def inodes(folder: Path) -> int:
    return sum(1 + len(files) for _, _, files in os.walk(folder))


def measure(n: dict[str, int], tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    """Fill a state with a synthetic Hub of sizes *n*, then rebuild its outputs; the measurements."""
    gen = subprocess.Popen(
        [sys.executable, "-m", "bench.graph", "--generate", str(n["models"]), str(n["datasets"]), str(n["spaces"])],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
    )  # fmt: skip
    worker = subprocess.run(
        [sys.executable, "-m", "bench.graph", "--worker", str(tmp)],
        cwd=REPO_ROOT, env=env, stdin=gen.stdout, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert gen.stdout is not None
    gen.stdout.close()
    if gen.wait() != 0 or worker.returncode != 0:
        raise RuntimeError(f"graph benchmark failed: {worker.stderr[-3000:]}")
    filled = json.loads(worker.stdout)
    output = tmp / "out"
    rebuilt = rebuild_child(Path(filled["state_file"]), output, env)
    filled["state_file"] = Path(filled["state_file"]).name  # the results name no folder of this machine
    size = sum(p.stat().st_size for p in (output / "provenance").iterdir() if p.is_file())
    return {
        **filled, "rebuild": rebuilt, "provenance_bytes": size, "provenance_inodes": inodes(output / "provenance"),
        "document_lookup_ms": round(lookups(output), 3), "sizes": n,
    }  # fmt: skip


def run(*, smoke: bool = False) -> BenchResult:
    n = sizes(smoke=smoke)
    tenth = {name: max(1, count // 10) for name, count in n.items()}
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    runs = {}
    for label, wanted in (("tenth", tenth), ("full", n)):
        with tempfile.TemporaryDirectory(prefix="hfscraper-bench-graph-") as tmp:
            runs[label] = measure(wanted, Path(tmp), env)
    full, small = runs["full"], runs["tenth"]
    details: dict[str, Any] = {**runs, "sizes": n, "smoke": smoke}
    rate = full["entities"] / max(full["extract_store_seconds"], 1e-6)
    peak, peak_tenth = full["rebuild"]["peak_rss_mib"], small["rebuild"]["peak_rss_mib"]
    growth = round(peak / max(peak_tenth, 1e-6), 3)
    rows = [
        Row(NAME, "peak_rss", peak, "MiB", f"< {GOAL_PEAK_MIB}", peak < GOAL_PEAK_MIB),
        Row(NAME, "peak_rss_tenth", peak_tenth, "MiB"),
        Row(NAME, "peak_rss_growth", growth, "x", f"<= {GOAL_GROWTH}", growth <= GOAL_GROWTH),
        Row(NAME, "rebuild_time", full["rebuild"]["wall_seconds"], "s"),
        Row(NAME, "rebuild_time_tenth", small["rebuild"]["wall_seconds"], "s"),
        Row(NAME, "provenance_inodes", full["provenance_inodes"], "count", f"<= {GOAL_INODES}",
            full["provenance_inodes"] <= GOAL_INODES),
        Row(NAME, "provenance_bytes_per_node", round(full["provenance_bytes"] / max(full["rebuild"]["nodes"], 1)),
            "B"),
        Row(NAME, "document_lookup_ms", full["document_lookup_ms"], "ms"),
        Row(NAME, "extract_store_rate", round(rate), "entities/s"),
        Row(NAME, "nodes", full["rebuild"]["nodes"], "count"),
        Row(NAME, "edges", full["rebuild"]["edges"], "count"),
    ]  # fmt: skip
    return BenchResult(rows, details)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--generate"]:
        generate(*(int(a) for a in argv[1:4]))
        return 0
    if argv[:1] == ["--worker"]:
        sys.stdout.write(json.dumps(work(Path(argv[1]))) + "\n")
        return 0
    result = run(smoke="--smoke" in argv)
    for row in result.rows:
        sys.stdout.write(f"{row.metric}: {row.value} {row.unit}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
