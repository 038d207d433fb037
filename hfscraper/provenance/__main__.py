"""`python -m hfscraper.provenance rebuild|graph|relationships`: rebuild the provenance files; write one whole-graph
text file; print one entity's document.

`rebuild [--output-dir DIR] [--state-dir DIR] [--entity-files] [--graph-files json,graphml,relationships]` writes
`output_dir/provenance/` from the crawl state, as a crawl does when it ends (no request to the Hub). The folders
default to the configured ones (HFSCRAPER_OUTPUT_DIR, HFSCRAPER_STATE_DIR, HFSCRAPER_PROVENANCE_ENTITY_FILES,
HFSCRAPER_PROVENANCE_GRAPH_FILES: settings.toml, environment). Prints one summary line; exit code 0, 1 when there
is no crawl state for the output folder, 2 for bad usage.

A crawl runs this in a child process with `--output-dir`, `--state-file`, `--fsync`/`--no-fsync`,
`--entity-files`/`--no-entity-files` and `--graph-files` (its own settings): given the first four, no configuration
is read (`--graph-files` then defaults to none) and neither Scrapy nor the settings are imported, so the child
holds little more than pyarrow and the rebuild's bounded buffers.

`graph --format json|graphml|relationships [--output-dir DIR] [OUT]` writes `provenance_graph.json`,
`provenance_graph.graphml` or `entity_relationships.json` of the last rebuild, from its Parquet files, to OUT
(replaced all or nothing) or to stdout: byte for byte the file a rebuild asked for it writes. Exit code 0, 1 when
there is no rebuild to read (or OUT cannot be written), 2 for bad usage.

`relationships [--output-dir DIR] PATH` (the seed's `model_relationships/<folder>.json`, `dataset_...`,
`space_...`, with or without the `provenance/` folders before it) or `relationships TYPE ID` prints exactly the
bytes that per-entity file held, answered from `entity_relationships.json` (`hfscraper.provenance.documents`).
Exit code 0, 1 when the last rebuild wrote no such document (or there is none yet), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from hfscraper.fsutil import TEMP_PREFIX
from hfscraper.provenance.documents import DocumentsUnavailable, document_for_path, document_text
from hfscraper.provenance.extract import TYPES
from hfscraper.provenance.freshness import GRAPH_FILES, provenance_dir


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


def _graph_formats(text: str) -> tuple[str, ...]:
    """`json,graphml` -> `("json", "graphml")`; ValueError for an unknown format."""
    formats = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [f for f in formats if f not in GRAPH_FILES]
    if unknown:
        raise ValueError(f"unknown graph file format {', '.join(unknown)} (known: {', '.join(GRAPH_FILES)})")
    return formats


def _locations(args: argparse.Namespace) -> tuple[Path, Path, bool, bool, tuple[str, ...]]:
    """`(state file, output folder, fsync, entity files, graph files)` from the arguments, and from the
    configuration for what they leave out. Raises ValueError with the configuration's message when it is
    invalid, or for an unknown graph file format."""
    given = None if args.graph_files is None else _graph_formats(args.graph_files)
    if args.output_dir and args.state_file and args.fsync is not None and args.entity_files is not None:
        return Path(args.state_file), Path(args.output_dir), args.fsync, args.entity_files, given or ()
    from hfscraper.extensions.checkpoint import state_location

    settings = _settings(args)
    state_file, output_dir = state_location(settings)
    if args.state_file:
        state_file = Path(args.state_file)
    fsync = settings.getbool("HFSCRAPER_STORE_FSYNC") if args.fsync is None else args.fsync
    entity_files = args.entity_files
    if entity_files is None:
        entity_files = settings.getbool("HFSCRAPER_PROVENANCE_ENTITY_FILES", False)
    if given is None:
        given = _graph_formats(",".join(settings.getlist("HFSCRAPER_PROVENANCE_GRAPH_FILES", [])))
    return state_file, output_dir, fsync, entity_files, given


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


def graph(args: argparse.Namespace) -> int:
    """Write one whole-graph text file from the Parquet files of the last rebuild (see the module docstring)."""
    from hfscraper.provenance.columnar import GraphFiles, GraphFilesMissing
    from hfscraper.provenance.graphfiles import WRITERS

    try:
        output_dir = _output_dir(args)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    folder = provenance_dir(output_dir)
    try:
        files = GraphFiles(folder)
    except (GraphFilesMissing, OSError) as exc:
        sys.stderr.write(f"{exc}: rebuild the provenance files (`python -m hfscraper.provenance rebuild`) or crawl "
                         "first\n")  # fmt: skip
        return 1
    writer = WRITERS[args.format]
    if args.out in (None, "-"):
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=False)
        writer(files, out)
        out.flush()
        out.detach()
        return 0
    target = Path(args.out)
    part = target.with_name(f"{TEMP_PREFIX}{os.getpid()}-{target.name}.part")
    try:
        with open(part, "w", encoding="utf-8", newline="") as f:
            writer(files, f)
        os.replace(part, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            part.unlink()
        sys.stderr.write(f"cannot write {target}: {exc.strerror or exc}\n")
        return 1
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
    cmd.add_argument(
        "--graph-files", metavar="FORMATS",
        help="also write these whole-graph text files, comma-separated: json (provenance_graph.json), graphml "
             "(provenance_graph.graphml), relationships (entity_relationships.json); empty for none "
             "(default: HFSCRAPER_PROVENANCE_GRAPH_FILES)",
    )  # fmt: skip
    text = sub.add_parser("graph", help="write one whole-graph text file of the last rebuild (from its Parquet files)")
    text.add_argument("--format", required=True, choices=tuple(GRAPH_FILES),
                      help="json (provenance_graph.json), graphml (provenance_graph.graphml) or relationships "
                           "(entity_relationships.json)")  # fmt: skip
    text.add_argument("out", nargs="?", metavar="OUT", help="the file to write (default: stdout)")
    text.add_argument("--output-dir", help="the crawl's output folder (default: HFSCRAPER_OUTPUT_DIR)")
    docs = sub.add_parser("relationships", help="print the per-entity document the seed's path held")
    docs.add_argument(
        "entity", nargs="+", metavar="PATH | TYPE ID",
        help="model_relationships/<folder>.json (or dataset_..., space_...), or a type and an id: model org/name",
    )  # fmt: skip
    docs.add_argument("--output-dir", help="the crawl's output folder (default: HFSCRAPER_OUTPUT_DIR)")
    args = parser.parse_args(argv)
    if args.command == "relationships":
        return relationships(args)
    if args.command == "graph":
        return graph(args)
    # pyarrow only for the rebuild
    from hfscraper.provenance.outputs import rebuild
    from hfscraper.state import StateError

    try:
        state_file, output_dir, fsync, entity_files, graph_files = _locations(args)
    except ValueError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    try:
        summary = rebuild(state_file, output_dir, fsync=fsync, entity_files=entity_files, graph_files=graph_files)
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
