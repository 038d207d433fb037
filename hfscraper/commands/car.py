"""`scrapy car TYPE ID [-o OUT.car]`: one entity's own CAR, built from its folder (the `filestore` layout, the
default) or from the CAR pack the IPFS stage put it in.

The CAR is byte for byte the one `HFSCRAPER_IPFS_CAR_LAYOUT=entity` writes (`<car dir>/<type>/<folder>.car`): a
CARv1 whose single root is the folder's CID (`ipfs_cid.txt`), every block's hash checked on the way (a pack's
blocks against their CIDs; a folder against the recorded root: one that changed or was damaged since the crawl is
refused, and a re-crawl of the entity restores its CAR). Written to OUT.car (atomically), or to stdout without `-o`
(a folder is then hashed once before anything is written). The root is printed on stderr.

Exit code: 0 written, 1 no such entity or CAR in the crawl state (or a damaged pack, or a changed folder), 2 bad
arguments.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hfscraper.commands.runner import EXIT_INCOMPLETE, EXIT_USAGE
from hfscraper.constants import OUTPUT_FOLDERS
from hfscraper.ipfs.car import CarReadError, atomic_output
from hfscraper.ipfs.pins import write_entity_car
from hfscraper.offline_command import OfflineCommand

if TYPE_CHECKING:
    import argparse

TYPE_NAMES = {**{t: t for t in OUTPUT_FOLDERS}, **{folder: t for t, folder in OUTPUT_FOLDERS.items()}}


class Command(OfflineCommand):
    def syntax(self) -> str:
        return "TYPE ID [-o OUT.car]"

    def short_desc(self) -> str:
        return "Write one entity's own CAR (single root, from its folder or CAR pack)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("-o", "--output", dest="out", default=None, metavar="OUT.car",
                            help="write the CAR here (default: stdout)")  # fmt: skip

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        if len(args) != 2 or args[0] not in TYPE_NAMES:
            self.fail(f"usage: scrapy car {self.syntax()} (TYPE: {', '.join(OUTPUT_FOLDERS)})", EXIT_USAGE)
            return
        repo_type, repo_id = TYPE_NAMES[args[0]], args[1]
        opened = self.open_state()
        if opened is None:
            return
        store, output, cars = opened
        try:
            if opts.out is None:
                root = write_entity_car(store, cars, repo_type, repo_id, sys.stdout.buffer, output_dir=output)
                sys.stdout.buffer.flush()
            else:
                with atomic_output(Path(os.path.abspath(opts.out))) as (out, _):
                    root = write_entity_car(store, cars, repo_type, repo_id, out, output_dir=output, discardable=True)
        except LookupError as exc:
            self.fail(str(exc.args[0]), EXIT_INCOMPLETE)
            return
        except (OSError, CarReadError, sqlite3.DatabaseError) as exc:
            self.fail(f"cannot write the CAR of {repo_type} {repo_id}: {exc}", EXIT_INCOMPLETE)
            return
        finally:
            store.close()
        sys.stderr.write(f"{root}\n")
