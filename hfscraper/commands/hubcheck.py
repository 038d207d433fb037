"""`scrapy hubcheck [--json]`: check the configured Hub against the crawler's assumptions before a long crawl.

About 20 requests (the table's last line says how many, per quota bucket) to HFSCRAPER_HUB_ENDPOINT and the
dataset viewer (HFSCRAPER_DATASETS_SERVER); the checks are `hfscraper.hubcheck`'s. Exit code: 0 when every
check holds, 1 when one drifted (the table names it), 2 when the Hub or the viewer cannot be reached or the
settings are bad. The token (HF_TOKEN, the token file, hub.token) goes to the Hub's origin only.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar

from scrapy.commands import ScrapyCommand

from hfscraper import constants
from hfscraper.commands.runner import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, validate_settings, validate_token
from hfscraper.output_owner import public_endpoint

if TYPE_CHECKING:
    import argparse

#: The setting naming each type's listing `expand` fields (the spiders read the same ones).
EXPAND_SETTINGS = {
    "model": "HFSCRAPER_CRAWL_EXPAND_MODELS",
    "dataset": "HFSCRAPER_CRAWL_EXPAND_DATASETS",
    "space": "HFSCRAPER_CRAWL_EXPAND_SPACES",
}


class Command(ScrapyCommand):
    requires_project = True
    requires_crawler_process = False
    default_settings: ClassVar[dict[str, Any]] = {"LOG_ENABLED": False}

    def syntax(self) -> str:
        return "[--json]"

    def short_desc(self) -> str:
        return "Check in ~20 requests that the Hub still behaves as the crawler assumes (OK or DRIFT per check)"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--json", action="store_true", help="print the checks as JSON instead of a table")

    def process_options(self, args: list[str], opts: argparse.Namespace) -> None:
        super().process_options(args, opts)
        assert self.settings is not None
        validate_settings(self.settings)
        validate_token(self.settings)

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        from hfscraper.config import resolve_token
        from hfscraper.hubcheck import HubCheck, Unreachable, render

        assert self.settings is not None
        if args:
            sys.stderr.write(f"hfscraper: hubcheck takes no arguments (got {' '.join(args)})\n")
            self.exitcode = EXIT_USAGE
            return
        endpoint = self.settings.get("HFSCRAPER_HUB_ENDPOINT") or constants.HF_ENDPOINT
        viewer = self.settings.get("HFSCRAPER_DATASETS_SERVER")
        token = resolve_token(self.settings)
        expand = {
            t: self.settings.getlist(name, list(constants.DEFAULT_EXPAND[t])) for t, name in EXPAND_SETTINGS.items()
        }
        check = HubCheck(endpoint, viewer, token=token.reveal() if token else None, expand=expand)
        try:
            report = check.run()
        except Unreachable as exc:
            shown = public_endpoint(endpoint)
            sys.stderr.write(
                f"hfscraper: hubcheck could not reach {shown} or its viewer ({exc}); nothing checked after it\n"
            )
            self.exitcode = EXIT_USAGE
            return
        if opts.json:
            payload = {
                "endpoint": public_endpoint(endpoint),
                "checks": [asdict(c) for c in report.checks],
                "requests": dict(report.requests),
            }
            print(json.dumps(payload, indent=2))
        else:
            print(f"hubcheck of {public_endpoint(endpoint)} (viewer {viewer})")
            print(render(report))
        self.exitcode = EXIT_INCOMPLETE if report.drift else EXIT_OK
