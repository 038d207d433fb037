"""`python -m hfscraper.provenance rebuild [--output-dir DIR] [--state-dir DIR]`: rebuild the provenance files.

Writes `output_dir/provenance/` from the crawl state, as a crawl does when it ends (no request to the Hub). The
folders default to the configured ones (HFSCRAPER_OUTPUT_DIR, HFSCRAPER_STATE_DIR: settings.toml, environment).
Prints one summary line; exit code 0, 1 when there is no crawl state for the output folder, 2 for bad usage.

A crawl runs this in a child process with `--output-dir`, `--state-file` and `--fsync`/`--no-fsync` (its own
settings): given all three, no configuration is read and neither Scrapy nor the settings are imported, so the
child holds little more than pyarrow and the rebuild's bounded buffers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from hfscraper.provenance.outputs import provenance_dir, rebuild
from hfscraper.state import StateError


def _locations(args: argparse.Namespace) -> tuple[Path, Path, bool]:
    """`(state file, output folder, fsync)` from the arguments, and from the configuration for what they leave out.
    Raises ValueError with the configuration's message when it is invalid."""
    if args.output_dir and args.state_file and args.fsync is not None:
        return Path(args.state_file), Path(args.output_dir), args.fsync
    from scrapy.settings import Settings

    from hfscraper.config import ConfigError, load_config
    from hfscraper.extensions.checkpoint import state_location

    try:
        settings = Settings(load_config())
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if args.output_dir:
        settings.set("HFSCRAPER_OUTPUT_DIR", args.output_dir)
    if args.state_dir:
        settings.set("HFSCRAPER_STATE_DIR", args.state_dir)
    state_file, output_dir = state_location(settings)
    if args.state_file:
        state_file = Path(args.state_file)
    fsync = settings.getbool("HFSCRAPER_STORE_FSYNC") if args.fsync is None else args.fsync
    return state_file, output_dir, fsync


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hfscraper.provenance", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("rebuild", help="rebuild output_dir/provenance/ from the crawl state")
    cmd.add_argument("--output-dir", help="the crawl's output folder (default: HFSCRAPER_OUTPUT_DIR)")
    cmd.add_argument("--state-dir", help="the crawl state folder (default: HFSCRAPER_STATE_DIR)")
    cmd.add_argument("--state-file", help="the state file itself (instead of the one --state-dir holds)")
    cmd.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    cmd.add_argument(
        "--fsync", action=argparse.BooleanOptionalAction, default=None,
        help="flush every file to disk before its rename (default: HFSCRAPER_STORE_FSYNC)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        state_file, output_dir, fsync = _locations(args)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    try:
        summary = rebuild(state_file, output_dir, fsync=fsync)
    except StateError as exc:
        sys.stderr.write(f"no crawl state for {output_dir}: {exc}\n")
        return 1
    if args.json:
        sys.stdout.write(json.dumps(dataclasses.asdict(summary)) + "\n")
        return 0
    sys.stdout.write(
        f"{provenance_dir(output_dir)}: {summary.nodes} nodes ({summary.stubs} stubs), {summary.edges} edges, "
        f"{summary.entity_files_written} entity files written, {summary.entity_files_removed} removed "
        f"({summary.seconds:.1f} s)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
