"""`python -m hfscraper.provenance rebuild|relationships`: rebuild the provenance files; print one entity's document.

`rebuild [--output-dir DIR] [--state-dir DIR] [--entity-files]` writes `output_dir/provenance/` from the crawl
state, as a crawl does when it ends (no request to the Hub). The folders default to the configured ones
(HFSCRAPER_OUTPUT_DIR, HFSCRAPER_STATE_DIR, HFSCRAPER_PROVENANCE_ENTITY_FILES: settings.toml, environment). Prints
one summary line; exit code 0, 1 when there is no crawl state for the output folder, 2 for bad usage.

A crawl runs this in a child process with `--output-dir`, `--state-file`, `--fsync`/`--no-fsync` and
`--entity-files`/`--no-entity-files` (its own settings): given all four, no configuration is read and neither Scrapy
nor the settings are imported, so the child holds little more than pyarrow and the rebuild's bounded buffers.

`relationships [--output-dir DIR] PATH` (the seed's `model_relationships/<folder>.json`, `dataset_...`,
`space_...`, with or without the `provenance/` folders before it) or `relationships TYPE ID` prints exactly the
bytes that per-entity file held, answered from `entity_relationships.json` (`hfscraper.provenance.documents`).
Exit code 0, 1 when the last rebuild wrote no such document (or there is none yet), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from hfscraper.provenance.documents import DocumentsUnavailable, document_for_path, document_text
from hfscraper.provenance.extract import TYPES
from hfscraper.provenance.freshness import provenance_dir


def _settings(args: argparse.Namespace) -> Any:
    """The configured Scrapy settings with the arguments' folders; ValueError with the configuration's message
    when it is invalid."""
    from scrapy.settings import Settings

    from hfscraper.config import ConfigError, load_config

    try:
        settings = Settings(load_config())
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if args.output_dir:
        settings.set("HFSCRAPER_OUTPUT_DIR", args.output_dir)
    if getattr(args, "state_dir", None):
        settings.set("HFSCRAPER_STATE_DIR", args.state_dir)
    return settings


def _locations(args: argparse.Namespace) -> tuple[Path, Path, bool, bool]:
    """`(state file, output folder, fsync, entity files)` from the arguments, and from the configuration for what
    they leave out. Raises ValueError with the configuration's message when it is invalid."""
    if args.output_dir and args.state_file and args.fsync is not None and args.entity_files is not None:
        return Path(args.state_file), Path(args.output_dir), args.fsync, args.entity_files
    from hfscraper.extensions.checkpoint import state_location

    settings = _settings(args)
    state_file, output_dir = state_location(settings)
    if args.state_file:
        state_file = Path(args.state_file)
    fsync = settings.getbool("HFSCRAPER_STORE_FSYNC") if args.fsync is None else args.fsync
    entity_files = args.entity_files
    if entity_files is None:
        entity_files = settings.getbool("HFSCRAPER_PROVENANCE_ENTITY_FILES", False)
    return state_file, output_dir, fsync, entity_files


def _output_dir(args: argparse.Namespace) -> Path:
    if args.output_dir:
        return Path(args.output_dir)
    from hfscraper.extensions.checkpoint import state_location

    return Path(state_location(_settings(args))[1])


def relationships(args: argparse.Namespace) -> int:
    """Print one per-entity document (see the module docstring)."""
    try:
        output_dir = _output_dir(args)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    where = args.entity
    try:
        if len(where) == 1:
            data = document_for_path(output_dir, where[0])
        elif len(where) == 2 and where[0] in TYPES:
            data = document_text(output_dir, where[0], where[1])
        else:
            sys.stderr.write(f"give a document path (model_relationships/<folder>.json) or a type ({', '.join(TYPES)}) "
                             "and an id\n")  # fmt: skip
            return 2
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except (DocumentsUnavailable, OSError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    if data is None:
        shown = " ".join(where).encode("unicode_escape").decode("ascii")
        sys.stderr.write(f"no relationship document for {shown} in {provenance_dir(output_dir)} (not a crawled "
                         "entity of the last rebuild)\n")  # fmt: skip
        return 1
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return 0


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
    cmd.add_argument(
        "--entity-files", action=argparse.BooleanOptionalAction, default=None,
        help="also write one file per entity, <type>_relationships/<folder>.json "
             "(default: HFSCRAPER_PROVENANCE_ENTITY_FILES)",
    )  # fmt: skip
    docs = sub.add_parser("relationships", help="print the per-entity document the seed's path held")
    docs.add_argument(
        "entity", nargs="+", metavar="PATH | TYPE ID",
        help="model_relationships/<folder>.json (or dataset_..., space_...), or a type and an id: model org/name",
    )  # fmt: skip
    docs.add_argument("--output-dir", help="the crawl's output folder (default: HFSCRAPER_OUTPUT_DIR)")
    args = parser.parse_args(argv)
    if args.command == "relationships":
        return relationships(args)
    # pyarrow only for the rebuild
    from hfscraper.provenance.outputs import rebuild
    from hfscraper.state import StateError

    try:
        state_file, output_dir, fsync, entity_files = _locations(args)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    try:
        summary = rebuild(state_file, output_dir, fsync=fsync, entity_files=entity_files)
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
