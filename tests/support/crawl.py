"""Run real `scrapy` subprocesses against a replica and read back what they did."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hfscraper.constants import OUTPUT_FOLDERS
from tests.support.replica import ReplicaHandle

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
PAGE_SIZE = 50  # small pages, so every crawl walks a real cursor chain
#: Settings of a crawl of metadata only (no files, no previews).
METADATA_ONLY = {"HFSCRAPER_FILES_ENABLED": "false", "HFSCRAPER_PREVIEWS_ENABLED": "false"}
#: Settings every `crawl_command` starts from (below its own defaults and the caller's): the product's defaults.
#: Test modules about the listing alone over thousands of entities set it to METADATA_ONLY (`metadata_only()`).
DEFAULT_SETTINGS: dict[str, str] = {}


def _scrapy_command() -> list[str]:
    script = Path(sys.executable).with_name("scrapy")
    return [str(script)] if script.exists() else [sys.executable, "-m", "scrapy"]


@dataclass
class CrawlResult:
    returncode: int
    stderr: str
    stats: dict[str, Any]
    output: Path
    stdout: str = ""

    def stat(self, key: str, default: Any = None) -> Any:
        return self.stats.get(key, default)

    def metadata(self, repo_type: str) -> dict[str, dict[str, Any]]:
        """{folder name: parsed metadata.json} of one type."""
        root = self.output / OUTPUT_FOLDERS[repo_type]
        if not root.is_dir():
            return {}
        return {d.name: json.loads((d / "metadata.json").read_text(encoding="utf-8")) for d in root.iterdir()}


def parse_stats(log: str) -> dict[str, Any]:
    """The stats dict Scrapy dumps at the end of a crawl (pprint output, evaluated without builtins)."""
    match = re.search(r"Dumping Scrapy stats:\n(\{.*?\})\n\d{4}-\d\d-\d\d ", log, re.S)
    if not match:
        return {}
    return eval(match.group(1), {"__builtins__": {}, "datetime": datetime})


def crawl(
    replica: ReplicaHandle,
    spider: str,
    output: Path,
    *args: str,
    settings: dict[str, str] | None = None,
    timeout: float = 600,
    command_name: str = "crawl",
    page_size: int | None = PAGE_SIZE,
    env_overrides: dict[str, str] | None = None,
    options: list[str] | None = None,
) -> CrawlResult:
    """`scrapy crawl SPIDER` (or another command, e.g. `crawlall` with spider "") with `-a` args and `-s` settings.

    *env_overrides* adds to (or overrides) the child's environment, e.g. `HF_TOKEN` (by default empty) or `HF_HOME`;
    *options* are further command-line options, e.g. `["-o", "feed.jsonl"]`. The crawl state goes to
    `output.parent / "state"` unless `settings` names another HFSCRAPER_STATE_DIR.
    """
    command = crawl_command(
        spider, output, *args, settings=settings, command_name=command_name, page_size=page_size, options=options
    )
    env = crawl_env(replica, output, env_overrides)
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return CrawlResult(proc.returncode, proc.stderr, parse_stats(proc.stderr), output, proc.stdout)


def crawl_command(
    spider: str,
    output: Path,
    *args: str,
    settings: dict[str, str] | None = None,
    command_name: str = "crawl",
    page_size: int | None = PAGE_SIZE,
    options: list[str] | None = None,
) -> list[str]:
    """The command line `crawl()` runs (for tests that start, signal or kill the process themselves)."""
    command = [*_scrapy_command(), command_name, *([spider] if spider else []), *(options or [])]
    command += ["-s", f"HFSCRAPER_OUTPUT_DIR={output}", "-s", "LOG_LEVEL=INFO"]
    defaults = {**DEFAULT_SETTINGS, "HFSCRAPER_STATE_DIR": str(output.parent / "state")}
    if page_size:
        defaults["HFSCRAPER_CRAWL_PAGE_SIZE"] = str(page_size)
    for name, value in {**defaults, **(settings or {})}.items():
        command += ["-s", f"{name}={value}"]
    for arg in args:
        command += ["-a", arg]
    return command


def crawl_env(replica: ReplicaHandle, output: Path, env_overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `crawl()` gives the child: no developer configuration, the replica as the Hub (and as the
    dataset viewer)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HFSCRAPER_", "HF_")) or k == "HFSCRAPER_IN_NETNS"}
    env.update(
        {"HF_ENDPOINT": replica.url, "HF_TOKEN": "", "HF_HUB_OFFLINE": "0", "HF_HOME": str(output.parent / "hf-home")}
    )
    env["HFSCRAPER_DATASETS_SERVER"] = replica.datasets_server_url  # the replica's dataset viewer
    env.update(env_overrides or {})
    return env


def feed_ids(*feeds: Path) -> list[str]:
    """Every `id` in these JSON-lines feeds, in order (missing feeds have none); a last line cut by SIGKILL is not a
    row, any other broken line is an error."""
    ids = []
    for feed in feeds:
        if not feed.exists():
            continue
        lines = feed.read_bytes().split(b"\n")
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                ids.append(json.loads(line)["id"])
            except ValueError:
                if n != len(lines) - 1:
                    raise AssertionError(f"{feed}: line {n + 1} is broken and not the last one") from None
    return ids


def public(truth: dict[str, Any], repo_type: str) -> list[dict[str, Any]]:
    return [e for e in truth[f"{repo_type}s"] if not e["private"]]


def metadata_only(monkeypatch: Any) -> None:
    """Make every crawl of the calling test crawl metadata only (for an autouse fixture, with pytest's monkeypatch).

    For tests of the listing itself (resume, cursors, deltafetch) over thousands of entities: the files and the
    previews, which have tests of their own, would multiply their run time by ten.
    """
    monkeypatch.setattr(sys.modules[__name__], "DEFAULT_SETTINGS", dict(METADATA_ONLY))
