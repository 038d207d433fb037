"""The provenance graph as three sorted Parquet files, and look-ups that read only the row groups they need.

The rebuild writes, under `output_dir/provenance/` (declared schemas, never inferred; zstd; row groups of
`ROW_GROUP` rows, each with the min/max statistics of its columns):

- `provenance_nodes.parquet` (`NODE_SCHEMA`): every node, crawled or stub, with its attributes, sorted by `key`.
- `provenance_edges.parquet` (`EDGE_SCHEMA`): every edge, sorted by `(src, dst, kind)`: a node's out-edges.
- `provenance_edges_by_target.parquet` (`EDGE_SCHEMA`): the same rows sorted by `(dst, src, kind)`: a node's
  in-edges (what depends on it) without a scan of every edge.

Each file is sorted by its first key column, so the row groups that can hold a key are found from the footer's
statistics (a binary search; no index file), and a look-up reads those row groups only: memory and time per
look-up do not grow with the graph, only with the answer. `SortedTable` does this; `GraphFiles` opens the three.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hfscraper.provenance.extract import NODE_ATTRIBUTES
from hfscraper.provenance.freshness import EDGES_BY_TARGET_PARQUET, EDGES_PARQUET, NODES_PARQUET

#: Format tag of every provenance file.
FORMAT: Final = "hfscraper-provenance/1"
#: Rows per Parquet row group (a look-up reads whole row groups; the writer holds one).
ROW_GROUP: Final = 8_192
#: Rows converted to Python at a time by the scans.
SCAN_BATCH: Final = 1_024

#: The Parquet edge list (declared; `sources` is sorted).
EDGE_SCHEMA: Final = pa.schema(
    [
        pa.field("src", pa.string(), nullable=False),
        pa.field("src_type", pa.string(), nullable=False),
        pa.field("src_id", pa.string(), nullable=False),
        pa.field("dst", pa.string(), nullable=False),
        pa.field("dst_type", pa.string(), nullable=False),
        pa.field("dst_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("relation", pa.string(), nullable=False),
        pa.field("sources", pa.list_(pa.string()), nullable=False),
        pa.field("src_scraped", pa.bool_(), nullable=False),
        pa.field("dst_scraped", pa.bool_(), nullable=False),
    ],
    metadata={"format": FORMAT},
)

_ATTRIBUTE_TYPES: Final = {"downloads": pa.int64(), "likes": pa.int64()}
#: The Parquet node list (declared): `key` (`type:id`), then the graph contract's node attributes in its order.
NODE_SCHEMA: Final = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("scraped", pa.bool_(), nullable=False),
        pa.field("deleted", pa.bool_(), nullable=False),
        *(pa.field(name, _ATTRIBUTE_TYPES.get(name, pa.string())) for name in NODE_ATTRIBUTES),
    ],
    metadata={"format": FORMAT},
)
#: Columns written without a dictionary: nearly every value differs (a dictionary would only add its size).
PLAIN_COLUMNS: Final = ("key", "id", "src", "src_id", "dst", "dst_id", "created_at", "last_modified")


class GraphFilesMissing(FileNotFoundError):
    """The folder holds no complete set of Parquet graph files (no rebuild yet, or one by an older version)."""


class SortedTable:
    """A Parquet file sorted by its column *by*: `rows(keys)` reads only the row groups whose statistics can hold
    one of the keys; `scan()` streams every row in order."""

    def __init__(self, path: Path, by: str, schema: pa.Schema) -> None:
        try:
            self.file = pq.ParquetFile(path)
        except FileNotFoundError:
            raise GraphFilesMissing(f"no {path}") from None
        if not self.file.schema_arrow.equals(schema, check_metadata=False):
            raise GraphFilesMissing(f"{path} is not a provenance file this version reads")
        self.path, self.by = path, by
        meta = self.file.metadata
        column = self.file.schema_arrow.get_field_index(by)
        self._lows: list[str] = []
        self._highs: list[str] = []
        self._exact = True
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(column).statistics
            if stats is None or not stats.has_min_max:
                self._exact = False  # then every row group is read (correct, slower)
                break
            self._lows.append(stats.min)
            self._highs.append(stats.max)
        self.num_rows = meta.num_rows

    def _groups(self, key: str) -> range:
        """The row groups whose range holds *key* (consecutive: the file is sorted)."""
        if not self._exact:
            return range(self.file.metadata.num_row_groups)
        first = bisect.bisect_left(self._highs, key)
        last = bisect.bisect_right(self._lows, key, lo=first)
        return range(first, last)

    def rows(self, keys: Iterable[str]) -> Iterator[dict[str, Any]]:
        """The rows whose `by` column is one of *keys*, in file order (each row group read once)."""
        wanted: dict[int, list[str]] = {}
        for key in set(keys):
            for group in self._groups(key):
                wanted.setdefault(group, []).append(key)
        for group in sorted(wanted):
            table = self.file.read_row_group(group)
            mask = pc.is_in(table.column(self.by), value_set=pa.array(wanted[group], pa.string()))
            yield from table.filter(mask).to_pylist()

    def scan(self, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every row in file order, a batch at a time."""
        for batch in self.file.iter_batches(batch_size=SCAN_BATCH, columns=columns):
            yield from batch.to_pylist()

    def count(self, column: str, value: Any) -> int:
        """How many rows have *value* in *column* (one column read)."""
        total = 0
        for batch in self.file.iter_batches(batch_size=65_536, columns=[column]):
            total += pc.sum(pc.equal(batch.column(0), value)).as_py() or 0
        return total


class GraphFiles:
    """The three Parquet files of a provenance folder; raises GraphFilesMissing when one is missing."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.nodes = SortedTable(self.folder / NODES_PARQUET, "key", NODE_SCHEMA)
        self.out_edges = SortedTable(self.folder / EDGES_PARQUET, "src", EDGE_SCHEMA)
        self.in_edges = SortedTable(self.folder / EDGES_BY_TARGET_PARQUET, "dst", EDGE_SCHEMA)

    def node_rows(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """`{key: row}` of the nodes among *keys* (unknown keys left out)."""
        return {row["key"]: row for row in self.nodes.rows(keys)}

    def document(self, key: str) -> dict[str, Any] | None:
        """The node's document of `entity_relationships.json` (attributes, `depends_on`, `dependents`), or None."""
        rows = self.node_rows([key])
        if key not in rows:
            return None
        return make_document(rows[key], self.out_edges.rows([key]), self.in_edges.rows([key]))


def make_document(
    node: dict[str, Any], out: Iterable[dict[str, Any]], into: Iterable[dict[str, Any]]
) -> dict[str, Any]:
    """A node's document from its row and its out- and in-edge rows (each in file order)."""
    doc = {k: v for k, v in node.items() if k != "key"}
    doc["depends_on"] = [out_link(e) for e in out]
    doc["dependents"] = [in_link(e) for e in into]
    return doc


def out_link(edge: dict[str, Any]) -> dict[str, Any]:
    return {"type": edge["dst_type"], "id": edge["dst_id"], "kind": edge["kind"], "relation": edge["relation"],
            "sources": edge["sources"]}  # fmt: skip


def in_link(edge: dict[str, Any]) -> dict[str, Any]:
    return {"type": edge["src_type"], "id": edge["src_id"], "kind": edge["kind"], "relation": edge["relation"],
            "sources": edge["sources"]}  # fmt: skip


def node_attributes(row: dict[str, Any]) -> dict[str, Any]:
    """A node's networkx attributes as `graph.read_graph` gives them (node-link data puts `id` last)."""
    attrs = {k: v for k, v in row.items() if k not in ("key", "id")}
    attrs["id"] = row["id"]
    return attrs


def edge_attributes(row: dict[str, Any]) -> dict[str, Any]:
    return {"kind": row["kind"], "relation": row["relation"], "sources": row["sources"]}


__all__ = [
    "EDGE_SCHEMA",
    "FORMAT",
    "NODE_SCHEMA",
    "GraphFiles",
    "GraphFilesMissing",
    "SortedTable",
    "make_document",
]
