"""`OfflineCommand`: the base of the project commands that read what crawls left and start no crawler.

It lives outside `hfscraper.commands` because Scrapy makes a command of every ScrapyCommand class defined in a module
of COMMANDS_MODULE.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand

from hfscraper.commands.runner import check_state, validate_settings

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
