"""`hfscraper.provenance.columnar.SortedTable`: a look-up reads only the row groups whose statistics can hold a key,
and finds every row of a key whose rows span several row groups (a base with more dependents than a row group)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hfscraper.provenance.columnar import EDGE_SCHEMA, SortedTable


def edge(src: str, dst: str) -> dict[str, object]:
    return {"src": src, "src_type": "model", "src_id": src[6:], "dst": dst, "dst_type": "model", "dst_id": dst[6:],
            "kind": "base_model", "relation": "finetune", "sources": ["tag"], "src_scraped": True,
            "dst_scraped": False}  # fmt: skip


def test_rows_of_a_key_spanning_row_groups_and_of_the_edges(tmp_path: Path) -> None:
    rows = [edge("model:a/kid", "model:a/base")]
    rows += [edge(f"model:b/kid{n:02d}", "model:big/base") for n in range(7)]
    rows += [edge("model:z/kid", "model:c/base"), edge("model:zz/kid", "model:d/base")]
    rows.sort(key=lambda r: (r["dst"], r["src"]))
    path = tmp_path / "by_target.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=EDGE_SCHEMA), path, row_group_size=2)
    table = SortedTable(path, "dst", EDGE_SCHEMA)
    assert table.file.metadata.num_row_groups == 5
    assert [r["src"] for r in table.rows(["model:big/base"])] == [f"model:b/kid{n:02d}" for n in range(7)]
    assert [r["src"] for r in table.rows(["model:a/base", "model:d/base"])] == ["model:a/kid", "model:zz/kid"]
    assert list(table.rows(["model:0", "model:big/bas", "model:zzz"])) == []  # before, between, after every key
    assert [r["dst"] for r in table.scan(["dst"])] == [r["dst"] for r in rows]
    assert table.count("dst", "model:big/base") == 7
