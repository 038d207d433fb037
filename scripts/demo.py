"""`make demo`: the main job end to end against the bundled Hub replica, on loopback only.

Starts `python -m hfscraper.replica` with a small synthetic Hub (and its dataset viewer), crawls models, datasets
and spaces with `scrapy crawlall` (metadata, the default files, previews, CIDs and CARs, the provenance graph),
compares what landed on disk with the replica's ground truth (every downloaded file's SHA-256 included), exports
the Parquet files with `scrapy export` and checks their row counts, shows the lineage of the model with the most
ancestors, prints a summary and stops the replica. Exits non-zero if the crawl did not complete or the output
disagrees with the truth.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
SIZES = {"models": 600, "datasets": 200, "spaces": 200}


def start_replica(truth: Path) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "hfscraper.replica", "--host", "127.0.0.1", "--port", "0", "--seed", "7",
           "--truth", str(truth)]
    for kind, n in SIZES.items():
        cmd += [f"--{kind}", str(n)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("ready "):
        proc.kill()
        raise SystemExit(f"demo: the replica did not start (said {line!r})")
    return proc, line.split(" ", 1)[1]


def count_folders(output: Path) -> dict[str, int]:
    return {kind: sum(1 for p in (output / kind).glob("*/metadata.json")) for kind in SIZES}


def check_files(output: Path, truth: dict) -> tuple[int, int]:
    """(files on disk, files whose SHA-256 differs from the truth) over every entity folder."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from hfscraper.hub import entity_folder_name
    from hfscraper.repofiles import RESERVED_NAMES

    found = bad = 0
    for kind in SIZES:
        for entity in truth[kind]:
            try:
                folder = output / kind / entity_folder_name(entity["id"])
            except ValueError:
                continue
            known = {f["path"]: f["sha256"] for f in entity["files"]}
            for path in folder.rglob("*") if folder.is_dir() else ():
                rel = path.relative_to(folder).as_posix()
                if path.is_file() and rel not in RESERVED_NAMES:
                    found += 1
                    bad += hashlib.sha256(path.read_bytes()).hexdigest() != known.get(rel)
    return found, bad


def scrapy(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("scrapy")), *args, "-s", f"HFSCRAPER_STATE_DIR={WORK / 'state'}"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def export_and_lineage(output: Path, truth: dict) -> bool:
    """`scrapy export` of the crawl (row counts checked against the truth), then `scrapy lineage` of the public
    model with the longest chain of base models."""
    import pyarrow.parquet as pq

    export_dir = WORK / "export"
    done = scrapy("export", "-s", f"HFSCRAPER_OUTPUT_DIR={output}", "-s", f"HFSCRAPER_EXPORT_DIR={export_dir}",
                  "-s", "LOG_LEVEL=WARNING")  # fmt: skip
    if done.returncode != 0:
        print(f"demo: scrapy export FAILED (exit code {done.returncode}):\n{done.stderr[-2000:]}")
        return False
    ok = True
    for kind in SIZES:
        rows = pq.read_metadata(export_dir / f"all_{kind}_metadata.parquet").num_rows
        expected = sum(1 for e in truth[kind] if not e["private"])
        ok &= rows == expected
        print(f"demo: {export_dir.name}/all_{kind}_metadata.parquet: {rows} rows (public in replica: {expected})")
    models = {e["id"]: e for e in truth["models"] if not e["private"]}

    def bases(repo_id: str, seen: frozenset[str] = frozenset()) -> int:
        parents = [r["target"] for r in models[repo_id]["relations"]
                   if r["kind"] == "base_model" and r["target"] in models and r["target"] not in seen]  # fmt: skip
        return 1 + max(bases(p, seen | {repo_id}) for p in parents) if parents else 0

    deepest = max(sorted(models), key=bases)
    shown = scrapy("lineage", deepest, "--depth", "4", "--limit", "5", "-s", f"HFSCRAPER_OUTPUT_DIR={output}")
    print(f"\ndemo: scrapy lineage {deepest} --depth 4 --limit 5\n{shown.stdout}")
    if shown.returncode != 0:
        print(f"demo: scrapy lineage FAILED (exit code {shown.returncode}): {shown.stderr[-2000:]}")
        return False
    return ok


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    truth_path, output = WORK / "truth.json", WORK / "output"
    replica, url = start_replica(truth_path)
    try:
        print(f"demo: replica serving a synthetic Hub at {url}", flush=True)
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{url}/_replica/info") as answer:
            viewer = json.load(answer)["datasets_server_url"]
        env = dict(os.environ, HF_ENDPOINT=url, HFSCRAPER_DATASETS_SERVER=viewer)
        env.pop("HF_TOKEN", None)
        started = time.monotonic()
        crawl = subprocess.run(
            [str(Path(sys.executable).with_name("scrapy")), "crawlall", "-s", f"HFSCRAPER_OUTPUT_DIR={output}",
             "-s", f"HFSCRAPER_STATE_DIR={WORK / 'state'}", "-s", "LOG_LEVEL=WARNING"],
            cwd=ROOT, env=env,
        )
        elapsed = time.monotonic() - started
    finally:
        replica.terminate()
        replica.wait(timeout=10)
    truth = json.loads(truth_path.read_text(encoding="utf-8"))
    found = count_folders(output)
    ok = crawl.returncode == 0
    print(f"\n{'type':<10}{'public in replica':>20}{'folders written':>18}")
    for kind in SIZES:
        expected = sum(1 for e in truth[kind] if not e["private"])
        ok &= expected == found[kind]
        print(f"{kind:<10}{expected:>20}{found[kind]:>18}")
    files, bad = check_files(output, truth)
    ok &= files > 0 and bad == 0
    print(f"\ndemo: {files} files downloaded, {bad} differing from the replica's SHA-256")
    total = sum(found.values())
    print(f"\ndemo: {total} entities in {elapsed:.1f} s ({total / elapsed:.0f}/s); output in {output}")
    ok &= export_and_lineage(output, truth)
    print("demo: OK" if ok else f"demo: FAILED (crawl exit code {crawl.returncode})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
