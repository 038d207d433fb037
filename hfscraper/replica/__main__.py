"""Command line: ``python -m hfscraper.replica`` serves a synthetic Hub on loopback.

    python -m hfscraper.replica --host 127.0.0.1 --port 0 --models 300 --datasets 100 --spaces 100 --seed 1 \\
        [--latency-ms L] [--quota-api Q --quota-resolvers Q --quota-pages Q --quota-window W] \\
        [--truth FILE] [--request-log FILE] [--fault KIND[=PARAM]:RATE[:PATH_REGEX]]... \\
        [--approved-token T]... [--revoked-token T]... [--retry-after] \\
        [--hostile-ids] [--hostile-files] [--hostile-cards] [--big-file-mib N] \\
        [--cdn-host 127.0.0.2] [--cdn-port 0] [--viewer-host HOST] [--viewer-port 0] \\
        [--lazy [--changed-fraction F]] [--drift N]

``--lazy`` serves a Hub of any size in constant memory (entities drawn on demand, arithmetic listings:
``hfscraper.replica.lazy``); it has no ground truth and no hostile or big-file extras.

``--drift N``: before each listing page of a volatile sort (downloads, likes, trendingScore, likes30d) that carries a
cursor, N repos already listed fall behind the cursor (keyset paging lists them again) and N not yet listed jump
ahead of it (never listed), as on the real Hub whose counters move all the time (``hfscraper.replica.listing``).

Once the three origins (Hub, CDN, dataset viewer) serve, it prints exactly one line, ``ready http://HOST:PORT``,
on stdout (everything else goes to stderr through logging).  With ``--truth`` the
ground truth is written (atomically) before that line.  SIGTERM or SIGINT stop it
cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hfscraper.replica.faults import KINDS, FaultRule
from hfscraper.replica.ratelimit import DEFAULT_QUOTAS, DEFAULT_WINDOW

logger = logging.getLogger("hfscraper.replica")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hfscraper.replica",
        description="Serve a synthetic Hugging Face Hub (API origin + CDN origin) on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of the Hub origin (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port of the Hub origin; 0 picks a free one")
    parser.add_argument("--cdn-host", default="127.0.0.2", help="address of the CDN origin (default 127.0.0.2)")
    parser.add_argument("--cdn-port", type=int, default=0, help="port of the CDN origin; 0 picks a free one")
    parser.add_argument("--viewer-host", default=None, help="address of the dataset viewer (default: --host)")
    parser.add_argument("--viewer-port", type=int, default=0, help="port of the dataset viewer; 0 picks a free one")
    parser.add_argument("--models", type=int, default=300)
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--spaces", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic Hub and of fault decisions")
    parser.add_argument("--hostile-ids", action="store_true", help="include repo ids that stress URL and path handling")
    parser.add_argument("--big-file-mib", type=int, default=0, help="add an LFS file of this many MiB (0: none)")
    parser.add_argument(
        "--hostile-files", action="store_true", help="add a model whose file names stress path handling (../x, /x)"
    )
    parser.add_argument(
        "--hostile-cards", action="store_true", help="add a model whose card names bases with characters XML forbids"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay every Hub response by this much")
    parser.add_argument("--quota-api", type=int, default=DEFAULT_QUOTAS["api"])
    parser.add_argument("--quota-resolvers", type=int, default=DEFAULT_QUOTAS["resolvers"])
    parser.add_argument("--quota-pages", type=int, default=DEFAULT_QUOTAS["pages"])
    parser.add_argument("--quota-window", type=int, default=DEFAULT_WINDOW, help="rate-limit window in seconds")
    parser.add_argument("--truth", type=Path, help="write the ground truth JSON here before the ready line")
    parser.add_argument("--request-log", type=Path, help="append every request as a JSON line here")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND[=PARAM]:RATE[:PATH_REGEX]",
        help=f"inject failures (repeatable); kinds: {', '.join(KINDS)}; or a JSON rule object",
    )
    parser.add_argument("--approved-token", action="append", default=[], help="token granted gated and private repos")
    parser.add_argument(
        "--withdraw-expand",
        action="append",
        default=[],
        metavar="FIELD",
        help="refuse this expand field as the Hub does a field it dropped (400, the list without it); repeatable",
    )
    parser.add_argument("--revoked-token", action="append", default=[], help="hf_ token answered 401 (revoked)")
    parser.add_argument(
        "--retry-after", action="store_true", help="429s also say Retry-After (as proxies do; the Hub does not)"
    )
    parser.add_argument("--cdn-ttl", type=int, default=3600, help="lifetime of signed CDN URLs in seconds")
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    parser.add_argument(
        "--lazy", action="store_true", help="draw entities on demand: constant memory at any size (hub scale)"
    )
    parser.add_argument(
        "--changed-fraction", type=float, default=0.0, help="with --lazy: start with this share of each type changed"
    )
    parser.add_argument(
        "--drift",
        type=int,
        default=0,
        metavar="N",
        help="move N repos each way across the cursor before each page of a volatile sort (default 0: never)",
    )
    return parser


def write_truth(path: Path, hub: Any) -> None:
    """Write ``hub.truth()`` atomically (a reader never sees a half-written file), streamed when the hub can."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".truth-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if hasattr(hub, "write_truth"):
                hub.write_truth(handle)
            else:
                json.dump(hub.truth(), handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


async def serve(args: argparse.Namespace, faults: list[FaultRule]) -> None:
    from hfscraper.replica.server import HubReplica, ReplicaOptions
    from hfscraper.replica.synth import build_hub

    started = time.monotonic()
    if args.lazy:
        from hfscraper.replica.lazy import LazyHub

        hub: Any = LazyHub(args.models, args.datasets, args.spaces, seed=args.seed)
        if args.changed_fraction:
            hub.mutate({"changed_fraction": args.changed_fraction})
    else:
        hub = build_hub(
            args.models,
            args.datasets,
            args.spaces,
            seed=args.seed,
            hostile_ids=args.hostile_ids,
            big_file_mib=args.big_file_mib,
            hostile_files=args.hostile_files,
            hostile_cards=args.hostile_cards,
        )
    logger.info("synthetic hub built in %.2fs", time.monotonic() - started)
    options = ReplicaOptions(
        seed=args.seed,
        latency_ms=args.latency_ms,
        quotas={"api": args.quota_api, "resolvers": args.quota_resolvers, "pages": args.quota_pages},
        window=args.quota_window,
        faults=faults,
        approved_tokens=frozenset(args.approved_token),
        withdrawn_expand=frozenset(args.withdraw_expand),
        request_log=str(args.request_log) if args.request_log else None,
        cdn_ttl=args.cdn_ttl,
        drift=args.drift,
        retry_after=args.retry_after,
        revoked_tokens=frozenset(args.revoked_token),
    )
    replica = HubReplica(hub, options)
    if args.truth is not None:
        write_truth(args.truth, hub)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await replica.start(args.host, args.port, args.cdn_host, args.cdn_port, args.viewer_host, args.viewer_port)
    try:
        logger.info("hub %s, cdn %s, dataset viewer %s", replica.hub_url, replica.cdn_url, replica.viewer_url)
        sys.stdout.write(f"ready {replica.hub_url}\n")
        sys.stdout.flush()
        await stop.wait()
        logger.info("stopping")
    finally:
        await replica.stop()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        faults = [FaultRule.parse_cli(text) for text in args.fault]
    except ValueError as exc:
        parser.error(f"--fault: {exc}")
    for name in ("models", "datasets", "spaces", "quota_api", "quota_resolvers", "quota_pages"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    if args.drift < 0:
        parser.error("--drift must be >= 0")
    if args.quota_window < 1:
        parser.error("--quota-window must be >= 1")
    if args.lazy:
        extras = [flag for flag, on in (("--truth", args.truth is not None), ("--hostile-ids", args.hostile_ids),
                  ("--hostile-files", args.hostile_files), ("--hostile-cards", args.hostile_cards),
                  ("--big-file-mib", args.big_file_mib > 0), ("--drift", args.drift > 0)) if on]  # fmt: skip
        if extras:
            parser.error(f"{', '.join(extras)}: not available with --lazy")
    elif args.changed_fraction:
        parser.error("--changed-fraction needs --lazy (the regular replica changes through POST /_replica/mutate)")
    if not 0 <= args.changed_fraction <= 1:
        parser.error("--changed-fraction must be between 0 and 1")
    try:
        asyncio.run(serve(args, faults))
    except OSError as exc:
        logger.error("cannot serve: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
