"""`scrapy status [--json]`: what the crash-safe crawl state says about the output folder's crawls.

For each listing crawled into the output folder (HFSCRAPER_OUTPUT_DIR; the state file under
HFSCRAPER_STATE_DIR), the newest crawl, headed by its listing and the Hub endpoint it listed (part of the listing
identity, so two Hubs' crawls are two listings): when it started and finished, the last run's finish reason (with a
hint for `tombstone_guard`),
`complete: true|false` (and, for a whole listing walked in an order that is no deletion sweep, `caveat`: what its
completion does not tell), whether a process is crawling it right now, and, while it is unfinished, the saved
cursor the next run continues from (with the time of that last checkpoint), and the entities that crawl listed:
stored, and skipped (unchanged since an earlier crawl). Then the entities per type: discovered (ever), live,
and deleted (tombstoned by a full sweep that no longer found them), and what the type's newest crawl listed,
stored and skipped. An entity counts for the crawl that stored or saw it last (the `entities` table's
`stored_crawl_id` and `seen_crawl_id`), so an older crawl of an overlapping listing shows fewer.
Then the chosen files per type: downloaded, unchanged (already on disk),
skipped and failed, with the reasons (files of deleted entities left out).
Then the dataset previews per type (the `previews` table): ok, final without a preview (per reason), and pending
(the viewer's last answer was transient: per reason, with the earliest time a crawl asks again).
Then content addressing: the CIDs
computed (files, and entity folders per profile) and the pins per IPFS backend (with how many belong to
entities marked deleted). Last, the rate-limit budget the last crawl saw per host and bucket (remaining of the
quota, the window, when it resets and when it was seen; the `ratelimits` table). And whether the provenance files
are up to date with the state (`hfscraper.provenance.freshness`: up to date, being rebuilt, out of date, missing).

Then the disks (always, from two `statvfs` calls, so as cheap at 5M entities as at 5): per file system of the
output and state folders, its mount point, bytes and inodes used and free, and the reserve the capacity check
keeps (`hfscraper.capacity`). With `--usage`, also the bytes on disk and inodes the mirror uses per part: entity
folders per type, CARs per type, provenance, the state file, the rest, and per live entity of each type. That
needs one lstat per file (15M at 5M entities: minutes), which is why it is asked for and not the default; a
table kept up to date by every write would cost each entity a state write, for a number only this command reads.

Exit code: 0 when the newest crawl of every listing is complete (and the provenance files, where the crawl
records relations, are up to date), 1 when one is not (or there is no state yet), 2 for bad settings.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfscraper.capacity import file_system_totals, mirror_usage
from hfscraper.commands.runner import EXIT_INCOMPLETE, EXIT_OK
from hfscraper.extensions.checkpoint import (
    TOMBSTONE_GUARD_REASON,
    car_folder,
    listing_is_locked,
    order_caveat,
    state_location,
)
from hfscraper.file_records import files_summary
from hfscraper.ipfs.pins import ipfs_summary
from hfscraper.items import format_hub_datetime
from hfscraper.offline_command import OfflineCommand
from hfscraper.output_owner import public_endpoint
from hfscraper.preview_records import previews_summary
from hfscraper.provenance.freshness import outputs_status
from hfscraper.provenance.freshness import render_status as render_provenance
from hfscraper.state import CrawlRow, StateError, StateStore, parse_time

if TYPE_CHECKING:
    import argparse


def _listing_label(crawl: CrawlRow) -> str:
    listing = crawl.listing
    parts = [f"{key}={listing[key]}" for key in ("search", "author") if listing.get(key)]
    if listing.get("filters"):
        parts.append("filter=" + ",".join(listing["filters"]))
    parts.append(f"sort={listing.get('sort')}")
    if listing.get("max_items"):
        parts.append(f"max_items={listing['max_items']}")
    if listing.get("since"):
        parts.append(f"since={listing['since']}")
    return f"{crawl.spider} ({' '.join(parts)}) from {_endpoint(crawl) or 'an unrecorded endpoint'}"


def _endpoint(crawl: CrawlRow) -> str | None:
    """The Hub a crawl listed (part of its listing identity), without credentials."""
    endpoint = crawl.listing.get("endpoint")
    return public_endpoint(str(endpoint)) if endpoint else None


def _size(count: int) -> str:
    n = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _ratelimits(store: StateStore) -> list[dict[str, Any]]:
    rows = []
    for row in store.ratelimits():
        seen = parse_time(row.seen_at)
        assert seen is not None
        resets = format_hub_datetime(datetime.fromtimestamp(seen.timestamp() + row.reset_seconds, UTC))
        rows.append(
            {
                "host": row.host, "bucket": row.bucket, "remaining": row.remaining, "quota": row.quota,
                "window": row.window, "resets_in": row.reset_seconds, "resets_at": resets, "seen": row.seen_at,
            }
        )  # fmt: skip
    return rows


def collect(store: StateStore) -> dict[str, Any]:
    """The report as a JSON-ready dict (see the module docstring)."""
    newest: dict[str, CrawlRow] = {}
    last_complete: dict[str, CrawlRow] = {}
    newest_of_type: dict[str, CrawlRow] = {}
    for crawl in store.crawls():
        newest[crawl.listing_key] = crawl
        newest_of_type[crawl.repo_type] = crawl
        if crawl.complete:
            last_complete[crawl.listing_key] = crawl
    by_crawl = store.crawl_entity_counts()

    def crawl_counts(crawl: CrawlRow) -> dict[str, int]:
        counts = by_crawl.get(crawl.crawl_id, {"stored": 0, "skipped": 0})
        return {"listed": counts["stored"] + counts["skipped"], **counts}

    listings = []
    for key, crawl in sorted(newest.items(), key=lambda kv: (kv[1].spider, kv[1].crawl_id)):
        cursor = store.cursor(key) if not crawl.complete else None
        running = not crawl.complete and listing_is_locked(store.path, key)
        previous = last_complete.get(key)
        last_checkpoint = cursor.updated_at if cursor is not None else (crawl.finished_at if crawl.complete else None)
        listings.append(
            {
                "spider": crawl.spider,
                "listing": _listing_label(crawl),
                "endpoint": _endpoint(crawl),
                "query": crawl.listing,
                "crawl": crawl.crawl_id,
                "mode": crawl.mode,
                "since": crawl.since,
                "sweep": crawl.sweep,
                "caveat": order_caveat(crawl.listing),
                "started": crawl.started_at,
                "finished": crawl.finished_at,
                "finish_reason": crawl.finish_reason,
                "complete": crawl.complete,
                "running": running,
                "runs": crawl.runs,
                "watermark": crawl.watermark,
                "tombstoned": crawl.tombstoned,
                "last_complete": previous.finished_at if previous is not None else None,
                "entities": crawl_counts(crawl),
                "last_checkpoint": last_checkpoint,
                "cursor": None
                if cursor is None
                else {
                    "page": cursor.page_seq + 1 if not cursor.done else None,
                    "entities_listed": cursor.items_seen,
                    "next_url": cursor.next_url,
                    "all_pages_stored": cursor.done,
                    "saved": cursor.updated_at,
                },
            }
        )
    entities = store.entity_counts()
    output_dir = store.meta().get("output_dir")
    provenance = outputs_status(store, Path(output_dir) if output_dir else None)
    types = {}
    for repo_type in sorted(set(entities) | set(newest_of_type)):
        counts = entities.get(repo_type, {"live": 0, "deleted": 0})
        last = newest_of_type.get(repo_type)
        types[repo_type] = {
            "discovered": counts["live"] + counts["deleted"],
            **counts,
            "last_crawl": None if last is None else {"crawl": last.crawl_id, **crawl_counts(last)},
        }
    return {
        "state_file": str(store.path),
        "output_dir": store.meta().get("output_dir"),
        "endpoint": store.meta().get("endpoint"),
        "listings": listings,
        "entities": entities,
        "types": types,
        "ratelimits": _ratelimits(store),
        "files": files_summary(store),
        "ipfs": ipfs_summary(store),
        "previews": previews_summary(store),
        "provenance": provenance,
        "complete": bool(listings)
        and all(entry["complete"] for entry in listings)
        and (provenance is None or provenance["complete"]),
    }


def render(report: dict[str, Any]) -> str:
    hub = f", Hub {report['endpoint']}" if report.get("endpoint") else ""
    lines = [f"state {report['state_file']} (output {report['output_dir']}{hub})"]
    if not report["listings"]:
        lines.append("no crawl recorded yet")
    for entry in report["listings"]:
        lines.append("")
        kind = "full sweep" if entry["sweep"] else entry["mode"]
        runs = f"{entry['runs']} run{'s' if entry['runs'] != 1 else ''}"
        lines.append(f"{entry['listing']}: crawl #{entry['crawl']}, {kind}, {runs}")
        if entry["running"]:
            ended = "running now"
        elif entry["finish_reason"] is None:
            ended = "no finish recorded (the last run was killed)"
        elif entry["complete"]:
            ended = f"finished {entry['finished']} (finish reason {entry['finish_reason']})"
        elif entry["finish_reason"] == "shutdown":
            ended = f"stopped on request {entry['finished']} (Ctrl-C or SIGTERM; the same command continues it)"
        else:
            ended = f"last run stopped {entry['finished']} (finish reason {entry['finish_reason']})"
        lines.append(f"  started {entry['started']}, {ended}")
        lines.append(f"  complete: {'true' if entry['complete'] else 'false'}")
        if entry["caveat"]:
            lines.append(f"  not a sweep: {entry['caveat']}")
        if entry["since"]:
            lines.append(f"  changes since {entry['since']}")
        if entry["complete"] and entry["watermark"]:
            lines.append(f"  watermark for -a since=auto: {entry['watermark']}")
        if entry["tombstoned"]:
            lines.append(f"  marked deleted: {entry['tombstoned']}")
        cursor = entry["cursor"]
        if cursor is not None:
            if cursor["all_pages_stored"]:
                lines.append(f"  every page stored (saved {cursor['saved']}); the next run completes it")
            else:
                lines.append(
                    f"  cursor: page {cursor['page']} after {cursor['entities_listed']} entities "
                    f"(saved {cursor['saved']}): {cursor['next_url']}"
                )
        elif not entry["complete"]:
            lines.append("  cursor: none yet (the next run starts at the first page)")
        if entry["finish_reason"] == TOMBSTONE_GUARD_REASON and not entry["running"]:
            lines.append(
                "  the full listing lacked more entities than HFSCRAPER_TOMBSTONE_MAX_FRACTION allows to mark "
                "deleted; none were (re-run with -s HFSCRAPER_TOMBSTONE_MAX_FRACTION=1 if the Hub deleted them)"
            )
        if not entry["complete"] and entry["last_complete"]:
            lines.append(f"  last complete crawl of this listing finished {entry['last_complete']}")
        counts = entry["entities"]
        lines.append(f"  entities: {counts['listed']} listed, {counts['stored']} stored, {counts['skipped']} skipped")
    if report["entities"]:
        lines.append("")
        counts = ", ".join(
            f"{t}s {c['live']} live, {c['deleted']} deleted" for t, c in sorted(report["entities"].items())
        )
        lines.append(f"entities: {counts}")
        for repo_type, entry in sorted(report["types"].items()):
            line = f"  {repo_type}s: {entry['discovered']} discovered, {entry['deleted']} deleted"
            last = entry["last_crawl"]
            if last is not None:
                line += (
                    f"; last crawl #{last['crawl']}: {last['listed']} listed, {last['stored']} stored, "
                    f"{last['skipped']} skipped (unchanged)"
                )
            lines.append(line)
    for repo_type, files in sorted(report.get("files", {}).items()):
        line = (
            f"files of {repo_type}s: {files['downloaded']} downloaded, {files['unchanged']} unchanged, "
            f"{files['skipped']} skipped, {files['failed']} failed ({_size(files['bytes'])} on disk)"
        )
        lines.append(line)
        for status in ("skipped", "failed"):
            reasons = files[f"{status}_by_reason"]
            if reasons:
                lines.append(f"  {status}: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    lines += _render_previews(report.get("previews") or {})
    ipfs = report.get("ipfs")
    if ipfs and (ipfs["cids"]["folders"] or ipfs["cids"]["files"] or ipfs["pins"]):
        cids = ipfs["cids"]
        profiles = ", ".join(f"{n} {p}" for p, n in sorted(cids["folders_by_profile"].items()))
        lines.append(f"CIDs: {cids['files']} files, {cids['folders']} entity folders ({profiles or 'none'})")
        for backend, pins in ipfs["pins"].items():
            deleted = f" ({pins['of_deleted_entities']} of deleted entities)" if pins["of_deleted_entities"] else ""
            lines.append(f"pins on {backend}: {pins['pinned']}{deleted}")
        if cars := ipfs.get("cars"):
            lines.append(f"CARs: {cars['on_demand']} built from their folders on demand (no bytes on disk), "
                         f"{cars['in_packs']} in packs, {cars['own_files']} in files of their own")  # fmt: skip
    if report.get("provenance"):
        lines.append(render_provenance(report["provenance"]))
    lines += _render_disks(report)
    for budget in report.get("ratelimits", ()):
        left = f"{budget['remaining']}/{budget['quota']}" if budget["quota"] is not None else str(budget["remaining"])
        window = f", window {budget['window']:g} s" if budget["window"] is not None else ""
        lines.append(
            f"rate limit {budget['host']} {budget['bucket']}: {left} left{window}, resets "
            f"{budget['resets_at']} (seen {budget['seen']})"
        )
    return "\n".join(lines)


def _render_disks(report: dict[str, Any]) -> list[str]:
    lines = []
    for fs in report.get("disks", ()):
        inodes = (
            f"; inodes {fs['inodes_used']:,} used, {fs['inodes_free']:,} free (reserve {fs['inodes_reserve']:,})"
            if fs["inodes_total"]
            else ""
        )
        lines.append(
            f"disk {fs['mount']} ({' and '.join(fs['roles'])}): {_size(fs['bytes_used'])} used, "
            f"{_size(fs['bytes_free'])} free (reserve {_size(fs['bytes_reserve'])}){inodes}"
        )
    usage = report.get("usage")
    if usage is None:
        lines.append("usage per type: run `scrapy status --usage` (walks the output folder)")
        return lines
    for part, counts in usage.items():
        line = f"usage {part}: {_size(counts['bytes'])}, {counts['inodes']:,} inodes"
        if counts.get("entities"):
            line += (
                f" ({_size(counts['bytes'] / counts['entities'])} and "
                f"{counts['inodes'] / counts['entities']:.1f} inodes per entity)"
            )
        lines.append(line)
    return lines


def _usage(store_path: Path, output: Path, car_dir: Path, entities: dict[str, dict[str, int]]) -> dict[str, Any]:
    """`mirror_usage` with the live entities of each type (the denominator of 'per entity')."""
    usage: dict[str, Any] = mirror_usage(output, car_dir, store_path)
    for part, counts in usage.items():
        repo_type = part.split(" ")[0]
        if repo_type in entities and part.endswith((" folders", " CARs")):
            counts["entities"] = entities[repo_type]["live"]
    return usage


def _render_previews(previews: dict[str, Any]) -> list[str]:
    lines = []
    for repo_type, entry in sorted(previews.items()):
        lines.append(
            f"previews of {repo_type}s: {entry['ok']} ok, {entry['definitive']} without a preview (final), "
            f"{entry['pending']} pending"
        )
        if entry["definitive_by_reason"]:
            lines.append("  final: " + ", ".join(f"{r} {n}" for r, n in sorted(entry["definitive_by_reason"].items())))
        if entry["pending"]:
            reasons = ", ".join(f"{r} {n}" for r, n in sorted(entry["pending_by_reason"].items()))
            lines.append(f"  pending: {reasons}; next retry from {entry['next_retry']}")
    return lines


class Command(OfflineCommand):
    def syntax(self) -> str:
        return "[--json] [--usage]"

    def short_desc(self) -> str:
        return "Show each listing's last crawl (complete: true|false, saved cursor) and entity counts"

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--usage",
            action="store_true",
            help="also count the bytes and inodes the mirror uses per type (walks the output folder: one lstat per "
            "file, minutes at millions of entities)",
        )

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        path, output = state_location(self.settings)
        if not path.is_file():
            report: dict[str, Any] = {
                "state_file": str(path), "output_dir": str(output), "listings": [], "entities": {}, "types": {},
                "ratelimits": [],
                "ipfs": {"cids": {"files": 0, "folders": 0, "folders_by_profile": {}}, "pins": {}}, "complete": False,
            }  # fmt: skip
        else:
            try:
                store = StateStore(path, create=False)
            except StateError as exc:
                print(f"hfscraper: {exc}", file=sys.stderr)
                self.exitcode = EXIT_INCOMPLETE
                return
            try:
                report = collect(store)
            finally:
                store.close()
        try:
            report["disks"] = file_system_totals(self.settings)
        except OSError as exc:
            report["disks"] = []
            print(f"hfscraper: cannot read the disks' free space: {exc}", file=sys.stderr)
        if opts.usage:
            car_dir = car_folder(self.settings, output)
            report["usage"] = _usage(path, output, car_dir, report.get("entities") or {})
        print(json.dumps(report, indent=2, ensure_ascii=False) if opts.json else render(report))
        self.exitcode = EXIT_OK if report["complete"] else EXIT_INCOMPLETE
