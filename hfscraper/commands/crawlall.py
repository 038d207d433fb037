"""`scrapy crawlall`: the three spiders (models, datasets, spaces) in one process.

Each spider gets its own crawler; with `-s JOBDIR=DIR` each keeps its queue under `DIR/<spider>` because a
JOBDIR must never be shared between spiders. Spider arguments (`-a`) apply to all three. Exit code: 0 only if
all three crawls completed, 1 otherwise, 2 for bad settings or arguments.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import BaseRunSpiderCommand
from scrapy.crawler import Crawler
from scrapy.settings import SETTINGS_PRIORITIES

from hfscraper.commands.runner import (
    CrawlOutcome,
    check_state,
    exit_code,
    validate_folders,
    validate_output_owner,
    validate_settings,
    validate_spider_arguments,
    validate_token,
)

if TYPE_CHECKING:
    import argparse

SPIDERS = ("models", "datasets", "spaces")


class Command(BaseRunSpiderCommand):
    requires_project = True
    default_settings: ClassVar[dict[str, Any]] = {}

    def syntax(self) -> str:
        return "[options]"

    def short_desc(self) -> str:
        return "Crawl models, datasets and spaces in one run; exit 1 unless all three completed"

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        validate_settings(self.settings)
        validate_token(self.settings)
        validate_folders(self.settings)
        check_state(self.settings)
        validate_output_owner(self.settings)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.crawler_process and self.settings is not None
        loader = self.crawler_process.spider_loader
        jobdir = self.settings.get("JOBDIR")
        crawlers = []
        for name in SPIDERS:
            spidercls = loader.load(name)
            validate_spider_arguments(spidercls, opts.spargs)
            settings = self.settings.copy()
            if jobdir:
                # Above 'cmdline': CrawlerProcess.crawl() merges its own settings (the shared -s JOBDIR, at
                # 'cmdline') into the crawler and would overwrite an equal priority.
                settings.set("JOBDIR", os.path.join(jobdir, name), priority=SETTINGS_PRIORITIES["cmdline"] + 1)
            crawler = Crawler(spidercls, settings, init_reactor=not crawlers)
            crawlers.append(crawler)
            self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        outcomes = [CrawlOutcome.from_crawler(c) for c in crawlers]
        for outcome in outcomes:
            print(f"hfscraper: {outcome.line()}", file=sys.stderr)
        self.exitcode = 1 if self.crawler_process.bootstrap_failed else exit_code(outcomes)
