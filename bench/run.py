"""Run hfscraper's benchmarks and record the results: `python -m bench.run [--smoke] [--only NAME ...]`.

`make bench` runs it inside scripts/hermetic.sh (loopback only). Each benchmark in `BENCHMARKS` is a module with
`NAME` and `run(*, smoke: bool) -> bench.BenchResult`; to add one, write the module and list it here.

Writes `bench/results/<YYYY-MM-DD>.json` (every row plus each benchmark's details) and `bench/RESULTS.md` (one
table: value, goal, met or not). A smoke run (a few seconds, numbers meaningless) writes nothing unless
`--results-dir`/`--markdown` name where. Exit code 0 when every benchmark ran (goals met or not), 1 when one
failed to run.
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


def render_markdown(rows: list[Row], *, date: str, command: str, smoke: bool) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"Run on {date} with `{command}` ({platform.python_implementation()} {platform.python_version()}, "
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
    markdown = render_markdown(rows, date=date, command=command, smoke=args.smoke)
    print(markdown)

    results_dir = args.results_dir or (None if args.smoke else BENCH_DIR / "results")
    markdown_path = args.markdown or (None if args.smoke else BENCH_DIR / "RESULTS.md")
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "date": now.isoformat(timespec="seconds"),
            "command": command,
            "smoke": args.smoke,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "rows": [row.to_dict() for row in rows],
            "details": details,
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
