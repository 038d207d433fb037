"""`scrapy crawl` for hfscraper: Scrapy's command plus validation and an exit code that tells the truth.

Overrides the built-in command of the same name (project commands take precedence). Before anything
starts it validates every HFSCRAPER_* setting (after `-s`) and the spider arguments, printing one clear
line and exiting 2 on a bad value. Afterwards it exits 1 unless the crawl finished completely.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from hfscraper.commands.runner import (
    CrawlOutcome,
    check_state,
    exit_code,
    fail_usage,
    validate_folders,
    validate_output_owner,
    validate_settings,
    validate_spider_arguments,
    validate_token,
)

if TYPE_CHECKING:
    import argparse


class Command(ScrapyCrawlCommand):
    def short_desc(self) -> str:
        return "Run one spider (models, datasets or spaces); exit 1 if the crawl did not complete"

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        validate_settings(self.settings)
        validate_token(self.settings)
        validate_folders(self.settings)
        check_state(self.settings)
        validate_output_owner(self.settings)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            raise UsageError("give exactly one spider name: models, datasets or spaces")
        assert self.crawler_process
        try:
            spidercls = self.crawler_process.spider_loader.load(args[0])
        except KeyError:
            names = ", ".join(sorted(self.crawler_process.spider_loader.list()))
            fail_usage(f"unknown spider {args[0]!r} (known: {names})")
        validate_spider_arguments(spidercls, opts.spargs)
        crawler = self._create_crawler(spidercls)
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        outcome = CrawlOutcome.from_crawler(crawler)
        print(f"hfscraper: {outcome.line()}", file=sys.stderr)
        self.exitcode = 1 if self.crawler_process.bootstrap_failed else exit_code([outcome])
