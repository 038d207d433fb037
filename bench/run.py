"""Run hfscraper's benchmarks and record the results: `python -m bench.run [--smoke] [--only NAME ...]`.

`make bench` runs it inside scripts/hermetic.sh (loopback only). Each benchmark in `BENCHMARKS` is a module with
`NAME` and `run(*, smoke: bool) -> bench.BenchResult`; to add one, write the module and list it here.

Writes `bench/results/<YYYY-MM-DD>.json` (every row plus each benchmark's details) and `bench/RESULTS.md` (one
table: value, goal, met or not). `--only` replaces the rows of the benchmarks it runs in that day's results and
keeps the others' (each benchmark's row group says which command and time produced it). A smoke run (a few
seconds, numbers meaningless) writes nothing unless `--results-dir`/`--markdown` name where. Exit code 0 when
every benchmark ran (goals met or not), 1 when one failed to run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import platform
import sys
import traceback
from pathlib import Path
from typing import Any

from bench import BenchResult, Row

BENCH_DIR = Path(__file__).resolve().parent

#: name -> module; each module has `run(*, smoke: bool) -> BenchResult`.
BENCHMARKS: dict[str, str] = {
    "quota": "bench.quota",
    "cid": "bench.cid",
    "graph": "bench.graph",
    "export": "bench.export",
    "crawl": "bench.crawl",
    "verify": "bench.verify",
    "chaos": "bench.chaos",
    "scale": "bench.scale",
}


def run_benchmarks(names: list[str], *, smoke: bool) -> tuple[list[Row], dict[str, Any], list[str]]:
    rows: list[Row] = []
    details: dict[str, Any] = {}
    failed: list[str] = []
    for name in names:
        print(f"bench: running {name}{' (smoke)' if smoke else ''} ...", file=sys.stderr, flush=True)
        try:
            result: BenchResult = importlib.import_module(BENCHMARKS[name]).run(smoke=smoke)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            rows.append(Row(name, "error", "failed to run", "", "runs", False))
            continue
        rows.extend(result.rows)
        details[name] = result.details
    return rows, details, failed


def merge_previous(
    path: Path, names: list[str], rows: list[Row], details: dict[str, Any], runs: dict[str, Any]
) -> tuple[list[Row], dict[str, Any], dict[str, Any]]:
    """The rows, details and runs of *path* (an earlier non-smoke run of the same day), with those of the benchmarks
    in *names* replaced by the new ones; in `BENCHMARKS` order."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return rows, details, runs
    if old.get("smoke"):
        return rows, details, runs
    by_name: dict[str, list[Row]] = {}
    for row in old.get("rows", []):
        if row["benchmark"] not in names and row["benchmark"] in BENCHMARKS:
            by_name.setdefault(row["benchmark"], []).append(Row(**row))
    for row in rows:
        by_name.setdefault(row.benchmark, []).append(row)
    earlier = {"date": old.get("date"), "command": old.get("command")}
    old_runs = old.get("runs") or dict.fromkeys(old.get("details", {}), earlier)
    merged_details = {k: v for k, v in old.get("details", {}).items() if k not in names} | details
    merged_runs = {k: v for k, v in old_runs.items() if k not in names} | runs
    order = list(BENCHMARKS)
    merged_rows = [row for name in sorted(by_name, key=order.index) for row in by_name[name]]
    return (
        merged_rows,
        {k: merged_details[k] for k in sorted(merged_details, key=order.index)},
        {k: merged_runs[k] for k in sorted(merged_runs, key=order.index)},
    )


def render_markdown(rows: list[Row], *, date: str, command: str, smoke: bool, runs: dict[str, Any]) -> str:
    sources = {(run["command"], run["date"]) for run in runs.values()}
    if len(sources) > 1:  # merged from several runs of the day
        how = "; ".join(f"`{name}`: `{run['command']}` at {run['date']}" for name, run in runs.items())
        ran = f"Rows by run ({how}), "
    else:
        ran = f"Run on {date} with `{command}` ("
    lines = [
        "# Benchmark results",
        "",
        f"{ran}{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, against the bundled Hub replica on loopback){' - smoke run' if smoke else ''}.",
        "Details (configuration, raw counts) are in `bench/results/<date>.json`; what each row means is in the "
        "benchmark's module docstring (`bench/<name>.py`).",
        "",
        "| benchmark | metric | value | unit | goal | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        met = "" if row.met is None else ("met" if row.met else "**not met**")
        lines.append(f"| {row.benchmark} | {row.metric} | {row.value} | {row.unit} | {row.goal} | {met} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description="Run hfscraper's benchmarks.")
    parser.add_argument("--smoke", action="store_true", help="a few seconds per benchmark, to check they run")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--results-dir", type=Path, help="where <date>.json goes (default bench/results)")
    parser.add_argument("--markdown", type=Path, help="the table to write (default bench/RESULTS.md)")
    args = parser.parse_args(argv)

    names = args.only or list(BENCHMARKS)
    rows, details, failed = run_benchmarks(names, smoke=args.smoke)
    now = datetime.datetime.now(datetime.UTC)
    date = now.strftime("%Y-%m-%d")
    command = "python -m bench.run" + (" --smoke" if args.smoke else "")
    if args.only:
        command += f" --only {' '.join(names)}"
    stamp = now.isoformat(timespec="seconds")
    runs = {name: {"date": stamp, "command": command} for name in names}
    results_dir = args.results_dir or (None if args.smoke else BENCH_DIR / "results")
    markdown_path = args.markdown or (None if args.smoke else BENCH_DIR / "RESULTS.md")
    if results_dir is not None and args.only and not args.smoke:
        rows, details, runs = merge_previous(results_dir / f"{date}.json", names, rows, details, runs)
    markdown = render_markdown(rows, date=date, command=command, smoke=args.smoke, runs=runs)
    print(markdown)

    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "date": stamp,
            "command": command,
            "smoke": args.smoke,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "rows": [row.to_dict() for row in rows],
            "details": details,
            "runs": runs,
        }
        path = results_dir / f"{date}.json"
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"bench: wrote {path}", file=sys.stderr)
    if markdown_path is not None:
        markdown_path.write_text(markdown, encoding="utf-8")
        print(f"bench: wrote {markdown_path}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
