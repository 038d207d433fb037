"""`OfflineCommand`: the base of the project commands that read what crawls left and start no crawler.

It lives outside `hfscraper.commands` because Scrapy makes a command of every ScrapyCommand class defined in a module
of COMMANDS_MODULE.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand

from hfscraper.commands.runner import EXIT_INCOMPLETE, check_state, validate_settings
from hfscraper.state import StateError, StateStore

if TYPE_CHECKING:
    import argparse


class OfflineCommand(ScrapyCommand):
    """A project command that reads what crawls left (state, outputs) and starts no crawler: settings validated up
    front (exit 2 with one line), a damaged state file refused up front (exit 1 with one line naming it and what to
    do), Scrapy's log off, `fail()` for a one-line error with an exit code."""

    requires_project = True
    requires_crawler_process = False
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        validate_settings(self.settings)
        check_state(self.settings)

    def fail(self, message: str, code: int) -> None:
        sys.stderr.write(f"hfscraper: {message}\n")
        self.exitcode = code

    def open_state(self, nothing: str = "crawl first") -> tuple[StateStore, Path, Path] | None:
        """`(store, output folder, CAR folder)` of the configured output, the store opened read-write without
        creating it; None after `fail()` (exit 1) when there is no state or it cannot be read."""
        from hfscraper.extensions.checkpoint import car_folder, state_location

        assert self.settings is not None
        path, output = state_location(self.settings)
        if not path.is_file():
            self.fail(f"no crawl state at {path} for the output folder {output}: {nothing}", EXIT_INCOMPLETE)
            return None
        try:
            store = StateStore(path, create=False)
        except (StateError, sqlite3.DatabaseError) as exc:
            self.fail(f"cannot read the crawl state {path}: {exc}", EXIT_INCOMPLETE)
            return None
        return store, output, car_folder(self.settings, output)
