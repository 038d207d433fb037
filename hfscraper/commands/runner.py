"""What `scrapy crawl` and `scrapy crawlall` share: up-front validation and an honest exit code.

Scrapy's own `crawl` exits 0 whatever the finish reason; an archive crawl that stopped early must say so
to the shell (and to `make crawl`), so both commands derive their exit code from every crawler's outcome.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import Settings

#: Exit codes of the project's commands.
EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2


def fail_usage(message: str) -> None:
    """Print one clear line and stop with the usage exit code (no traceback, no help text)."""
    print(f"hfscraper: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def validate_settings(settings: Settings) -> None:
    """Validate every HFSCRAPER_* setting once `-s` has been applied; exit 2 with one line if bad."""
    from hfscraper.config import ConfigError, validate_scrapy_settings

    try:
        validate_scrapy_settings(settings)
    except ConfigError as exc:
        # ConfigError's text is already the complete one-line message.
        print(exc, file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def validate_token(settings: Settings) -> None:
    """Check the Hub token (HF_TOKEN, the token file, hub.token) before a crawl starts, without showing it;
    exit 2 with one line if it is unusable (the auth middleware would otherwise fail with a traceback)."""
    from hfscraper.config import ConfigError, resolve_token

    try:
        resolve_token(settings)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def validate_folders(settings: Settings) -> None:
    """Check that the output and state folders can be created and written, and that their file systems have room
    (`hfscraper.capacity`), before anything starts (nothing is created here); exit 2 with one line if not."""
    from hfscraper.resources import folder_unusable

    folders = (("output", "HFSCRAPER_OUTPUT_DIR", "output"), ("state", "HFSCRAPER_STATE_DIR", "state"))
    for what, name, default in folders:
        folder = settings.get(name) or default
        problem = folder_unusable(folder)
        if problem is not None:
            fail_usage(f"the {what} folder {folder} cannot be used ({problem}); set {name} to a folder you can write")
    from hfscraper.capacity import start_refusal

    refused = start_refusal(settings)
    if refused is not None:
        fail_usage(refused)


def check_state(settings: Settings) -> None:
    """Refuse to start on a damaged state file: one line naming it and what to do, exit 1."""
    from hfscraper.extensions.checkpoint import state_location
    from hfscraper.state import StateDamagedError, check_state_file

    path, _ = state_location(settings)
    try:
        check_state_file(path)
    except StateDamagedError as exc:
        print(f"hfscraper: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_INCOMPLETE) from None


def validate_output_owner(settings: Settings) -> None:
    """Refuse, before any crawler is built (so before a feed, a state file or a folder is touched), a crawl into an
    output folder that belongs to another crawl state or another Hub (`hfscraper.output_owner`); exit 2, one line."""
    from hfscraper.output_owner import check_settings

    refused = check_settings(settings)
    if refused is not None:
        fail_usage(refused[1])


def validate_spider_arguments(spidercls: type, spargs: dict[str, Any]) -> None:
    """Run the spider's own argument check before any crawler is built; exit 2 with one line if bad."""
    check = getattr(spidercls, "validate_arguments", None)
    if check is None:
        return
    try:
        check(dict(spargs))
    except ValueError as exc:
        fail_usage(f"{spidercls.name}: {exc}")


@dataclass(frozen=True)
class CrawlOutcome:
    """How one spider's run ended, read from its stats."""

    spider: str
    finish_reason: str
    items: int
    complete: bool

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlOutcome:
        try:
            stats = crawler.stats.get_stats() if crawler.stats else {}
        except RuntimeError:  # Scrapy 2.19: no stats until the crawl has started (e.g. the spider failed to build)
            stats = {}
        reason = str(stats.get("finish_reason", "not_started"))
        if stats.get("hfscraper/state/tombstone_guarded"):
            reason = "tombstone_guard"  # a full sweep that would have marked too many entities deleted
        # A listing page lost for good, or an entity that could not be stored (its metadata or one of its files)
        # or content-addressed and pinned, means the mirror has a hole.
        incomplete = (
            bool(stats.get("hfscraper/spider/incomplete"))
            or bool(stats.get("hfscraper/store/failed"))
            or bool(stats.get("hfscraper/files/failed"))
            or bool(stats.get("hfscraper/ipfs/failed"))
        )
        name = crawler.spidercls.name
        return cls(
            spider=name,
            finish_reason=reason,
            items=int(stats.get("item_scraped_count", 0)),
            complete=reason == "finished" and not incomplete,
        )

    def line(self) -> str:
        status = "complete" if self.complete else "stopped" if self.finish_reason == "shutdown" else "INCOMPLETE"
        return f"{self.spider}: {status} (finish reason {self.finish_reason}, {self.items} items)"


def exit_code(outcomes: list[CrawlOutcome]) -> int:
    return EXIT_OK if outcomes and all(o.complete for o in outcomes) else EXIT_INCOMPLETE
