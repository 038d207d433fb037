"""Provenance graph benchmark: build the graph of a synthetic Hub of 200,000 models (plus 60,000 datasets and
60,000 spaces) through the crawl's own code: extraction, the crash-safe state, and every output file.

Two processes, so that the measured one holds nothing but the provenance code's data:
- a generator builds the replica's synthetic Hub (`hfscraper.replica.synth.build_hub`, no HTTP) and writes each
  public entity's listing JSON (`render_list_item`, the provenance fields) to a pipe, one line each;
- the worker (`python -m bench.graph --worker DIR`) reads the lines, runs `extract` and `record_entity_batch` (one
  transaction per `RECORD_BATCH` entities, the pipeline's largest batch), then `rebuild` (every file under
  `provenance/`), and reports its timings and its peak RSS (`ru_maxrss`).

Rows:
- `peak_rss`: the worker's peak resident memory, MiB. Goal: under 300 MiB (bounded: the graph is never held in
  memory; the state's rows stream through temporary SQLite tables).
- `extract_store_rate`: entities per second through extraction and the state (informative).
- `rebuild_time`: seconds to write every output file (informative); `nodes`, `edges` (informative).

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
    """Read the generator's lines from stdin, record them, rebuild the outputs (the measured process)."""
    from hfscraper.provenance.extract import extract
    from hfscraper.provenance.outputs import rebuild
    from hfscraper.provenance.store import RECORD_BATCH, record_entity_batch
    from hfscraper.state import StateStore, state_file_path, utc_now

    output = folder / "out"
    state_file = state_file_path(folder / "state", output)
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
    recorded = time.monotonic()
    rss_recorded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = rebuild(state_file, output)
    done = time.monotonic()
    size = sum(p.stat().st_size for p in (output / "provenance").glob("provenance_*"))
    return {
        "entities": entities, "extract_store_seconds": round(recorded - started, 2),
        "rebuild_seconds": round(done - recorded, 2), "nodes": summary.nodes, "edges": summary.edges,
        "stubs": summary.stubs, "graph_files_bytes": size,
        "peak_rss_after_store_mib": round(rss_recorded, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }  # fmt: skip


def run(*, smoke: bool = False) -> BenchResult:
    n = sizes(smoke=smoke)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with tempfile.TemporaryDirectory(prefix="hfscraper-bench-graph-") as tmp:
        gen = subprocess.Popen(
            [sys.executable, "-m", "bench.graph", "--generate", str(n["models"]), str(n["datasets"]), str(n["spaces"])],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
        )  # fmt: skip
        worker = subprocess.run(
            [sys.executable, "-m", "bench.graph", "--worker", tmp],
            cwd=REPO_ROOT, env=env, stdin=gen.stdout, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert gen.stdout is not None
        gen.stdout.close()
        if gen.wait() != 0 or worker.returncode != 0:
            raise RuntimeError(f"graph benchmark failed: {worker.stderr[-3000:]}")
    details: dict[str, Any] = {**json.loads(worker.stdout), "sizes": n, "smoke": smoke}
    rate = details["entities"] / max(details["extract_store_seconds"], 1e-6)
    rows = [
        Row(NAME, "peak_rss", details["peak_rss_mib"], "MiB", f"< {GOAL_PEAK_MIB}",
            details["peak_rss_mib"] < GOAL_PEAK_MIB),
        Row(NAME, "extract_store_rate", round(rate), "entities/s"),
        Row(NAME, "rebuild_time", details["rebuild_seconds"], "s"),
        Row(NAME, "nodes", details["nodes"], "count"),
        Row(NAME, "edges", details["edges"], "count"),
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
