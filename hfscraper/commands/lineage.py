"""`scrapy lineage ID`: the family tree of one Hub entity, from the provenance graph of the output folder.

Reads the provenance graph of `HFSCRAPER_OUTPUT_DIR/provenance/` (written by the provenance pipeline when a crawl
ends): only the entity's neighbourhood, from the Parquet files (`provenance_nodes.parquet`, the edges by source and
by target), or the whole `provenance_graph.json` of a folder an older version wrote. It shows what the entity is
built on (ancestors: its base models, the datasets it was trained on, the models and datasets a space uses) and
what is built on it (descendants), as a terminal tree, JSON, Graphviz DOT or a Mermaid flowchart. `--type` picks
the kind of entity (default model); `--depth`, `--relation` and `--limit` narrow the walk.

Exit code: 0 when the lineage was printed, 1 when there is no provenance graph yet (crawl first) or it cannot be
read, 2 for bad arguments or settings, or an id the graph does not hold (the message lists close matches).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from scrapy.exceptions import UsageError

from hfscraper.commands.runner import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE
from hfscraper.extensions.checkpoint import state_location
from hfscraper.offline_command import OfflineCommand
from hfscraper.provenance.lineage import (
    DEFAULT_LIMIT,
    RELATIONS,
    RENDERERS,
    TYPES,
    Direction,
    LineageError,
    UnknownEntityError,
    load_lineage,
    select,
)

if TYPE_CHECKING:
    import argparse


class Command(OfflineCommand):
    def syntax(self) -> str:
        return "ID [--ancestors|--descendants|--both] [--depth N] [--relation R ...] [--type T] [--format F]"

    def short_desc(self) -> str:
        return "Show an entity's lineage (base models, datasets, derived models, spaces) from the provenance graph"

    def long_desc(self) -> str:
        return (
            "Show what a Hub entity is built on (ancestors) and what is built on it (descendants), read from "
            "HFSCRAPER_OUTPUT_DIR/provenance/ (only the entity's neighbourhood), as a tree (text), JSON, Graphviz "
            "DOT or a Mermaid flowchart. Exit code 0 when shown, 1 when there is no provenance graph yet (crawl "
            "first), 2 for bad arguments or an unknown id."
        )

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        super().add_options(parser)
        direction = parser.add_mutually_exclusive_group()
        direction.add_argument(
            "--ancestors",
            dest="direction",
            action="store_const",
            const="ancestors",
            help="only what the entity is built on (follow base models, datasets, used models)",
        )
        direction.add_argument(
            "--descendants",
            dest="direction",
            action="store_const",
            const="descendants",
            help="only what is built on the entity (fine-tunes, adapters, quantizations, ...)",
        )
        direction.add_argument(
            "--both",
            dest="direction",
            action="store_const",
            const="both",
            help="ancestors and descendants (the default)",
        )
        parser.add_argument(
            "--depth",
            type=int,
            default=None,
            metavar="N",
            help="at most N edges away from the entity (default: no limit)",
        )
        parser.add_argument(
            "--relation",
            action="append",
            default=None,
            metavar="R",
            help=f"follow only these relations (repeat or comma-separate): {', '.join(RELATIONS)}",
        )
        parser.add_argument(
            "--type",
            dest="entity_type",
            choices=TYPES,
            default="model",
            help="the kind of entity ID names (default: model)",
        )
        parser.add_argument(
            "--format",
            dest="output_format",
            choices=tuple(RENDERERS),
            default="text",
            help="text (a tree, the default), json, dot (Graphviz) or mermaid (a flowchart)",
        )
        parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                            help=f"list at most N entities under each one, then '… and K more' "
                                 f"(default {DEFAULT_LIMIT}; 0 lists all)")  # fmt: skip

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        assert self.settings is not None
        if len(args) != 1:
            raise UsageError("give exactly one entity id (e.g. `scrapy lineage meta-llama/Llama-3.1-8B`)")
        relations = self._relations(opts.relation)
        if relations is None and opts.relation:
            return
        if opts.depth is not None and opts.depth < 0:
            self.fail("--depth must be 0 or more", EXIT_USAGE)
            return
        if opts.limit < 0:
            self.fail("--limit must be 0 (no limit) or more", EXIT_USAGE)
            return
        _, output = state_location(self.settings)
        direction = opts.direction or "both"
        directions: tuple[Direction, ...] = ("ancestors", "descendants") if direction == "both" else (direction,)
        try:
            graph, root = load_lineage(
                Path(output), args[0], opts.entity_type, directions=directions, depth=opts.depth, relations=relations,
                limit=opts.limit or None,
            )  # fmt: skip
        except UnknownEntityError as exc:
            self.fail(str(exc), EXIT_USAGE)
            return
        except LineageError as exc:
            self.fail(str(exc), EXIT_INCOMPLETE)
            return
        lineage = select(
            graph, root, directions=directions, depth=opts.depth, relations=relations, limit=opts.limit or None
        )
        text = RENDERERS[opts.output_format](lineage)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        self.exitcode = EXIT_OK

    def _relations(self, given: list[str] | None) -> frozenset[str] | None:
        if not given:
            return None
        wanted = {part.strip() for value in given for part in value.split(",") if part.strip()}
        unknown = sorted(wanted - set(RELATIONS))
        if unknown:
            self.fail(f"unknown relation {', '.join(unknown)} (known: {', '.join(RELATIONS)})", EXIT_USAGE)
            return None
        return frozenset(wanted)
