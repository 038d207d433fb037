"""`scrapy export`: the entity tree and crawl state of the output folder(s) as unified Parquet files and a data card.

Writes, under HFSCRAPER_EXPORT_DIR (default `data/huggingface_hub_metadata`), `all_entities_metadata.parquet`,
`all_models_metadata.parquet`, `all_datasets_metadata.parquet`, `all_spaces_metadata.parquet`, a CAR of each under
`car/` and `README.md`, merged with what the folder already holds (one row per type and id, the newest wins;
`hfscraper.exporters.unified` has the rules). All or nothing: the new set is written complete beside the old one,
then replaced under a journal; an export killed during the renames is completed by the next one, which says so.

Options: `--from DIR` (repeatable) exports these output folders instead of HFSCRAPER_OUTPUT_DIR (each with its own
state file under HFSCRAPER_STATE_DIR); `--drop-deleted` / `--flag-deleted` override HFSCRAPER_EXPORT_DELETED;
`--batch-size N` overrides HFSCRAPER_EXPORT_BATCH_SIZE; `--no-car` overrides HFSCRAPER_EXPORT_CAR.

Exit code: 0 when the files were written, 1 when an output folder does not exist or the export failed, 2 for bad
arguments or settings.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hfscraper.commands.runner import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE
from hfscraper.extensions.checkpoint import state_location
from hfscraper.offline_command import OfflineCommand

if TYPE_CHECKING:
    import argparse


class Command(OfflineCommand):
    def syntax(self) -> str:
        return "[--from OUTPUT_DIR ...] [--drop-deleted|--flag-deleted] [--batch-size N] [--no-car]"

    def short_desc(self) -> str:
        return "Export the crawled metadata as unified Parquet files with a data card (HFSCRAPER_EXPORT_DIR)"

    def long_desc(self) -> str:
        return (
            "Merge the entity tree and crawl state of the output folder into all_entities_metadata.parquet, "
            "all_models_metadata.parquet, all_datasets_metadata.parquet, all_spaces_metadata.parquet and README.md "
            "under HFSCRAPER_EXPORT_DIR: one row per entity, the newest version, tombstoned ones flagged deleted. "
            "Files are replaced atomically. Exit code 0 when written, 1 when a source is missing or the export "
            "failed, 2 for bad arguments."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--from", dest="sources", action="append", default=None, metavar="OUTPUT_DIR",
                            help="export this output folder (repeatable; default HFSCRAPER_OUTPUT_DIR)")  # fmt: skip
        deleted = parser.add_mutually_exclusive_group()
        deleted.add_argument("--drop-deleted", dest="deleted", action="store_const", const="drop",
                             help="leave tombstoned entities out of the files")  # fmt: skip
        deleted.add_argument("--flag-deleted", dest="deleted", action="store_const", const="flag",
                             help="keep tombstoned entities with deleted = true (the default)")  # fmt: skip
        parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                            help="rows per row group (default HFSCRAPER_EXPORT_BATCH_SIZE)")  # fmt: skip
        parser.add_argument("--no-car", dest="car", action="store_false", default=None,
                            help="give each file's CID without writing its CAR")  # fmt: skip

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        settings = self.settings
        assert settings is not None
        if args:
            self.fail(f"unexpected argument {args[0]!r} (use --from OUTPUT_DIR)", EXIT_USAGE)
            return
        batch_size = opts.batch_size if opts.batch_size is not None else settings.getint("HFSCRAPER_EXPORT_BATCH_SIZE")
        if batch_size < 1:
            self.fail("--batch-size must be at least 1", EXIT_USAGE)
            return
        # Imported here, not at the top: Scrapy imports every command at start-up, and pyarrow (with numpy) would
        # add ~40 MB to every crawl's resident memory.
        from hfscraper.exporters.unified import FILES, Source, export

        sources = []
        for given in opts.sources or [None]:
            if given is not None:
                settings.set("HFSCRAPER_OUTPUT_DIR", given, priority="cmdline")
            state_file, output = state_location(settings)
            if not output.is_dir():
                self.fail(f"no output folder {output} (crawl first, or name one with --from)", EXIT_INCOMPLETE)
                return
            sources.append(Source(output, state_file))
        export_dir = Path(os.path.expanduser(settings.get("HFSCRAPER_EXPORT_DIR") or "data/huggingface_hub_metadata"))
        deleted = opts.deleted or settings.get("HFSCRAPER_EXPORT_DELETED") or "flag"
        car = settings.getbool("HFSCRAPER_EXPORT_CAR", True) if opts.car is None else opts.car
        try:
            summary = export(
                sources, export_dir, drop_deleted=deleted == "drop", batch_size=batch_size,
                profile=settings.get("HFSCRAPER_IPFS_PROFILE") or "unixfs-v1-2025", car=car,
            )  # fmt: skip
        except (OSError, ValueError, sqlite3.Error) as exc:
            self.fail(f"export failed: {exc}", EXIT_INCOMPLETE)
            return
        if summary.finished_interrupted:
            print(f"completed the export that a kill interrupted while it replaced the files of {export_dir}")
        types = ", ".join(f"{c['rows']} {t}s ({c['deleted']} deleted)" for t, c in summary.by_type.items())
        print(f"exported {summary.rows} entities to {export_dir}: {types}; {summary.new_rows} rows read, "
              f"{summary.kept_old} kept from the previous export; {summary.seconds:.1f} s")  # fmt: skip
        for kind, info in summary.files.items():
            print(f"  {FILES[kind]}: {info.rows} rows, {info.size} bytes, {info.cid}")
        extra = sum(v for k, v in summary.counts.items() if k.startswith("extra/"))
        invalid = sum(v for k, v in summary.counts.items() if k.startswith("invalid/"))
        skipped = sum(v for k, v in summary.counts.items() if k.startswith("skipped/"))
        print(f"  unknown fields kept in `extra`: {extra}; values nulled for their type: {invalid}; "
              f"entities skipped: {skipped}")  # fmt: skip
        for key, count in sorted(summary.counts.items()):
            if not key.startswith("extra/"):
                print(f"  {key}: {count}", file=sys.stderr)
        self.exitcode = EXIT_OK
