"""`scrapy verify [--type T] [--repair] [--json]`: a deep check of the output folder against the crawl state.

Every stored file rehashed against its recorded size and SHA-256 (or git blob SHA-1), every content-addressed
folder's CID recomputed against the state and `ipfs_cid.txt`, every CAR's root, every `metadata.json`, no stray
files, no missing folder of a stored entity (the checks are in `hfscraper.verify`). One line per problem on
stdout (`models acme/x (/srv/out/models/acme__x): config.json: SHA-256 … expected …`), a progress line on stderr
every few seconds of a long run, and a summary line.

`--repair` marks each live entity with a problem in the state (`StateStore.invalidate_entities`) so that the next
`scrapy crawl` that lists it processes it again: files fetched and checked, folder pruned of stray files,
`metadata.json`, `ipfs_cid.txt` and CAR written anew. On disk it removes only a `metadata.json` that names an
entity that cannot live in its folder (the entity store never overwrites one; `hfscraper.verify.foreign_metadata`).

Exit code: 0 when nothing is wrong, 1 when a problem was found (or there is no usable state file), 2 for bad
arguments or settings.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hfscraper.commands.runner import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE
from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.offline_command import OfflineCommand
from hfscraper.state import StateError, StateStore
from hfscraper.verify import Summary, Verifier, repair

if TYPE_CHECKING:
    import argparse

#: `--type` values: the type or its folder name.
TYPE_NAMES = {**{t: t for t in OUTPUT_FOLDERS}, **{folder: t for t, folder in OUTPUT_FOLDERS.items()}}


def _size(count: int) -> str:
    n = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Command(OfflineCommand):
    def syntax(self) -> str:
        return "[--type T] [--repair] [--json]"

    def short_desc(self) -> str:
        return "Check the output folder against the crawl state (hashes, CIDs, CARs, metadata.json, stray files)"

    def long_desc(self) -> str:
        return (
            "Rehash every stored file against the crawl state, recompute every folder's CID, check every CAR's "
            "root and every metadata.json, look for stray files and missing folders. One line per problem. "
            "--repair marks the entities with a problem so that the next `scrapy crawl` restores them. "
            "Exit code 0 when clean, 1 when a problem was found, 2 for bad arguments."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--type", dest="types", action="append", default=None, metavar="T",
                            help="check only this type: model, dataset or space (repeat or comma-separate; "
                                 "default all)")  # fmt: skip
        parser.add_argument("--repair", action="store_true",
                            help="mark the entities with a problem so that the next crawl restores them")  # fmt: skip
        parser.add_argument("--json", action="store_true", help="print the problems and the summary as JSON")

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        if args:
            self.fail(f"unexpected argument {args[0]!r} (usage: scrapy verify {self.syntax()})", EXIT_USAGE)
            return
        types = self._types(opts.types)
        if types is None:
            return
        opened = self.open_state("nothing to verify (crawl first)")
        if opened is None:
            return
        store, output, cars = opened
        try:
            self._verify(store, output, cars, types, opts)
        except (StateError, sqlite3.DatabaseError) as exc:
            self.fail(f"cannot read the crawl state {store.path}: {exc}", EXIT_INCOMPLETE)
        finally:
            store.close()

    def _types(self, given: list[str] | None) -> list[str] | None:
        if not given:
            return list(OUTPUT_FOLDERS)
        wanted = [part.strip() for value in given for part in value.split(",") if part.strip()]
        unknown = [t for t in wanted if t not in TYPE_NAMES]
        if unknown or not wanted:
            shown = ", ".join(unknown) or "(none)"
            self.fail(f"unknown type {shown} (known: {', '.join(OUTPUT_FOLDERS)})", EXIT_USAGE)
            return None
        return list(dict.fromkeys(TYPE_NAMES[t] for t in wanted))

    def _verify(self, store: StateStore, output: Path, cars: Path, types: list[str], opts: argparse.Namespace) -> None:
        started = time.monotonic()

        def progress(summary: Summary, read: int) -> None:
            seconds = time.monotonic() - started
            sys.stderr.write(
                f"verify: {summary.entities} entities, {_size(read)} read ({read / 1e6 / max(seconds, 1e-6):.0f} "
                f"MB/s), {summary.problems} problems so far ({seconds:.0f} s)\n"
            )
            sys.stderr.flush()

        verifier = Verifier(output, store, types, car_dir=cars, progress=progress)
        problems = []
        for problem in verifier:
            problems.append(problem)
            if not opts.json:
                print(problem, flush=True)
        summary = verifier.summary
        marked, removed = repair(store, summary, problems) if opts.repair else (None, 0)
        seconds = time.monotonic() - started
        if opts.json:
            report = {
                "output_dir": str(output), "state_file": str(store.path), "types": types,
                "entities": summary.entities, "files": summary.files, "bytes": summary.bytes,
                "problems": [p.to_dict() for p in problems],
                "problem_entities": sum(map(len, summary.problem_entities.values())),
                "deleted_problem_entities": sum(map(len, summary.deleted_problem_entities.values())),
                "deleted": summary.deleted, "pending": summary.pending, "marked": marked,
                "removed": removed, "seconds": round(seconds, 2),
            }  # fmt: skip
            print(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            print(self._summary_line(summary, marked, removed, seconds))
        self.exitcode = EXIT_INCOMPLETE if summary.problems else EXIT_OK

    @staticmethod
    def _summary_line(summary: Summary, marked: int | None, removed: int, seconds: float) -> str:
        entities = sum(map(len, summary.problem_entities.values()))
        deleted = sum(map(len, summary.deleted_problem_entities.values()))
        line = (
            f"verify: {summary.entities} entities checked, {summary.files} files, {_size(summary.bytes)} read in "
            f"{seconds:.1f} s: {summary.problems} problem{'s' if summary.problems != 1 else ''}"
        )
        if summary.problems:
            line += f" in {entities + deleted} entit{'y' if entities + deleted == 1 else 'ies'}"
        if summary.pending:
            line += f"; {summary.pending} not stored yet (the next crawl that lists them processes them)"
        if marked is not None:
            line += f"; marked {marked} entit{'y' if marked == 1 else 'ies'} for the next `scrapy crawl` to restore"
            if removed:
                line += f" (removed {removed} metadata.json naming another entity, which the crawl never replaces)"
            if deleted:
                line += f" ({deleted} deleted on the Hub cannot be restored and were not marked)"
        elif entities:
            line += "; run `scrapy verify --repair`, then `scrapy crawl`, to restore them"
        return line
