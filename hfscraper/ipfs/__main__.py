"""`python -m hfscraper.ipfs`: CIDs and CARs exactly as kubo makes them, offline.

    python -m hfscraper.ipfs cid [--profile P] [--exclude REL]... PATH        # prints the CID, as `ipfs add -Q`
    python -m hfscraper.ipfs car [--profile P] [--exclude REL]... PATH OUT.car  # writes a CARv1, prints its root
    python -m hfscraper.ipfs unpack X.car DEST                                 # verifies a CAR, writes its files

P is `unixfs-v1-2025` (default), `unixfs-v0-2015` (plain `ipfs add`) or `kubo-cidv1` (`ipfs add --cid-version=1`).
Exit codes: 0 done, 2 bad input (a usage error, a missing or unreadable path, a damaged CAR), each with one line
on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from hfscraper.ipfs import CarReadError, DagError, UnsupportedFileError, path_cid, unpack_car, write_car
from hfscraper.ipfs.profiles import DEFAULT_PROFILE, PROFILES

PROG = "python -m hfscraper.ipfs"


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block) and exit with code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="CIDs and CARs exactly as kubo makes them, offline.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{cid,car,unpack}", parser_class=_Parser)

    def add_profile(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--profile",
            default=DEFAULT_PROFILE.name,
            choices=sorted(PROFILES),
            help=f"import profile (default {DEFAULT_PROFILE.name})",
        )
        sub.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="REL",
            help="leave out this path, relative to a folder PATH (repeatable)",
        )

    cid = commands.add_parser("cid", help="print the CID of a file or folder, as `ipfs add -Q [-r --hidden]`")
    add_profile(cid)
    cid.add_argument("path", metavar="PATH")
    car = commands.add_parser("car", help="write a file or folder as a CARv1 with that root; print the root")
    add_profile(car)
    car.add_argument("path", metavar="PATH")
    car.add_argument("out", metavar="OUT.car")
    unpack = commands.add_parser("unpack", help="verify a CAR and write its UnixFS file or folder to DEST")
    unpack.add_argument("car", metavar="X.car")
    unpack.add_argument("dest", metavar="DEST")
    return parser


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "cid":
            result = path_cid(args.path, args.profile, exclude=args.exclude)
        elif args.command == "car":
            result = write_car(args.path, args.out, args.profile, exclude=args.exclude)
        else:
            result = unpack_car(args.car, args.dest)
    except (OSError, UnsupportedFileError, CarReadError, DagError, ValueError) as exc:
        sys.stderr.write(f"{PROG} {args.command}: error: {_describe(exc)}\n")
        return 2
    sys.stdout.write(result + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
