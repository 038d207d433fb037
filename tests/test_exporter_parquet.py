"""The declared export schema, the defensive row builder, the Parquet feed exporter and the merge of
`hfscraper.exporters.unified`, without a crawl: items and entity trees built in the test."""

from __future__ import annotations

import io
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scrapy.utils.test import get_crawler

from hfscraper.exporters.parquet import ParquetItemExporter
from hfscraper.exporters.schema import ALL_SCHEMA, SCHEMAS, TYPES, RowBuilder
from hfscraper.exporters.unified import FILES, Source, UnsortedInputError, export
from hfscraper.hub import entity_folder_name
from hfscraper.items import DatasetItem, ModelItem, SpaceItem

MODEL = {
    "_id": "65f0", "id": "org/model", "author": "org", "sha": "a" * 40, "lastModified": "2024-02-19T10:57:45.000Z",
    "createdAt": "2024-01-01T00:00:00.000Z", "private": False, "gated": False, "disabled": False, "downloads": 12,
    "downloadsAllTime": 100, "likes": 3, "tags": ["transformers", "license:mit", "gguf"],
    "pipeline_tag": "text-generation", "library_name": "transformers",
    "cardData": {"license": "mit", "language": ["en", "fr"], "base_model": "org/base", "datasets": ["org/data"]},
    "siblings": [{"rfilename": "README.md"}, {"rfilename": "model.bin", "lfs": {"sha256": "b" * 64, "size": 7}}],
    "spaces": ["org/space"], "safetensors": {"parameters": {"F32": 10}, "total": 10},
}  # fmt: skip


# -- the schema ---------------------------------------------------------------------------------------------


def test_per_type_schemas_are_projections_of_the_all_entities_schema() -> None:
    assert ALL_SCHEMA.names[0] == "type"
    for kind in TYPES:
        schema = SCHEMAS[kind]
        assert "type" not in schema.names
        assert [n for n in ALL_SCHEMA.names if n in schema.names] == schema.names  # same order
        for f in schema:
            assert ALL_SCHEMA.field(f.name).equals(f)
    assert ALL_SCHEMA.field("siblings").type == pa.list_(
        pa.field("element", pa.struct([("path", pa.string()), ("size", pa.int64()), ("sha256", pa.string())]))
    )
    assert ALL_SCHEMA.field("last_modified").type == pa.timestamp("ms", tz="UTC")
    assert ALL_SCHEMA.field("downloads").type == pa.int64()
    assert ALL_SCHEMA.field("tags").type == pa.list_(pa.field("element", pa.string()))
    assert ALL_SCHEMA.field("card_data").type == pa.string()
    for name in ("license", "languages", "base_models", "datasets", "pipeline_tag", "library_name", "extra"):
        assert name in SCHEMAS["model"].names


def test_row_builder_promotes_card_fields_and_keeps_sizes() -> None:
    row = RowBuilder().row("model", MODEL, files=[{"path": "README.md", "size": 5, "sha256": "c" * 64}])
    assert row["license"] == "mit" and row["languages"] == ["en", "fr"]
    assert row["base_models"] == ["org/base"] and row["datasets"] == ["org/data"]
    assert row["siblings"] == [
        {"path": "README.md", "size": 5, "sha256": "c" * 64},
        {"path": "model.bin", "size": 7, "sha256": "b" * 64},
    ]
    assert row["gated"] == "false" and row["safetensors_total"] == 10
    assert json.loads(row["card_data"]) == MODEL["cardData"] and row["extra"] is None
    assert row["deleted"] is False


@pytest.mark.parametrize(
    ("key", "value", "column"),
    [
        ("downloads", "12", "downloads"),
        ("downloads", 2**70, "downloads"),
        ("likes", True, "likes"),
        ("lastModified", "yesterday", "last_modified"),
        ("lastModified", 5, "last_modified"),
        ("tags", "not-a-list-but-a-str", None),
        ("tags", {"a": 1}, "tags"),
        ("cardData", {"x": math.nan}, "card_data"),
        ("cardData", "a string card", None),
        ("siblings", "nope", "siblings"),
        ("siblings", [1, {"rfilename": 2}], "siblings"),
        ("author", ["x"], "author"),
        ("private", "no", "private"),
        ("trendingScore", math.inf, "trending_score"),
        ("author", "bad \udc80 surrogate", "author"),
    ],
)
def test_hostile_values_become_null_and_are_counted(key: str, value: Any, column: str | None) -> None:
    builder = RowBuilder()
    row = builder.row("model", {**MODEL, key: value})
    batch = pa.RecordBatch.from_pylist([row], schema=ALL_SCHEMA)  # never raises
    assert batch.num_rows == 1
    if column is not None:
        assert builder.counts[f"invalid/{column}"] >= 1


def test_unknown_fields_land_in_extra() -> None:
    builder = RowBuilder()
    row = builder.row("dataset", {"id": "d", "brandNewField": {"a": [1, 2]}, "sdk": "gradio"})
    assert json.loads(row["extra"]) == {"brandNewField": {"a": [1, 2]}, "sdk": "gradio"}  # sdk: a space column
    assert builder.counts["extra/brandNewField"] == 1 and builder.counts["extra/sdk"] == 1
    with pytest.raises(ValueError, match="string 'id'"):
        builder.row("model", {"id": 5})


# -- the feed exporter ----------------------------------------------------------------------------------------


def _export(items: list[Any], file: Any, **kwargs: Any) -> ParquetItemExporter:
    exporter = ParquetItemExporter(file, **kwargs)
    exporter.start_exporting()
    for item in items:
        exporter.export_item(item)
    exporter.finish_exporting()
    return exporter


def test_feed_exporter_streams_row_groups_with_the_declared_schema() -> None:
    items = [ModelItem.from_api({**MODEL, "id": f"org/m{i}", "newKey": i}) for i in range(7)]
    buf = io.BytesIO()
    exporter = _export(items, buf, batch_size=3)
    pf = pq.ParquetFile(io.BytesIO(buf.getvalue()))
    assert pf.num_row_groups == 3 and pf.metadata.num_rows == 7
    assert pf.schema_arrow.equals(SCHEMAS["model"], check_metadata=True)
    table = pf.read()
    assert table.column("id").to_pylist() == [f"org/m{i}" for i in range(7)]
    assert [json.loads(e) for e in table.column("extra").to_pylist()] == [{"newKey": i} for i in range(7)]
    assert exporter.builder.counts["extra/newKey"] == 7


def test_feed_exporter_takes_the_spiders_type_and_counts_in_stats() -> None:
    crawler = get_crawler(settings_dict={})
    crawler.stats.open_spider()
    buf = io.BytesIO()
    exporter = ParquetItemExporter.from_crawler(crawler, buf, item_type="all", batch_size=2)
    exporter.start_exporting()
    exporter.export_item(ModelItem.from_api(MODEL))
    exporter.export_item(DatasetItem.from_api({"id": "d", "downloads": "x"}))
    exporter.export_item(SpaceItem.from_api({"id": "s", "sdk": "gradio", "datasets": ["d"]}))
    exporter.finish_exporting()
    table = pq.read_table(io.BytesIO(buf.getvalue()))
    assert table.schema.equals(ALL_SCHEMA)
    assert table.column("type").to_pylist() == ["model", "dataset", "space"]
    assert table.column("datasets").to_pylist()[2] == ["d"]
    assert crawler.stats.get_value("hfscraper/export/feed/invalid/downloads") == 1


def test_feed_exporter_never_appends(tmp_path: Path) -> None:
    path = tmp_path / "feed.parquet"
    items = [ModelItem.from_api({**MODEL, "id": f"org/m{i}"}) for i in range(4)]
    with open(path, "wb") as f:
        _export(items, f)
    with open(path, "ab") as f:  # what Scrapy opens without overwrite
        _export(items[:2], f)
    assert pq.read_table(path).num_rows == 2


def test_feed_exporter_with_no_items_writes_a_valid_empty_file() -> None:
    buf = io.BytesIO()
    _export([], buf, item_type="space")
    table = pq.read_table(io.BytesIO(buf.getvalue()))
    assert table.num_rows == 0 and table.schema.equals(SCHEMAS["space"])


# -- the unified export over entity trees (no state file) ------------------------------------------------------


def _tree(root: Path, repo_type: str, payload: dict[str, Any], *, deleted: str | None = None) -> None:
    folder = root / f"{repo_type}s" / entity_folder_name(payload["id"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.json").write_text(json.dumps(payload), encoding="utf-8")
    if deleted:
        (folder / "tombstone.json").write_text(json.dumps({"id": payload["id"], "deletedAt": deleted}))


def test_export_of_a_tree_merges_with_the_previous_export(tmp_path: Path) -> None:
    out, exp = tmp_path / "out", tmp_path / "exp"
    _tree(out, "model", {**MODEL, "id": "org/a", "mysteryField": 1})
    _tree(out, "model", {**MODEL, "id": "org/b"})
    _tree(out, "space", {"id": "org/s", "sdk": "gradio", "lastModified": "2024-01-01T00:00:00.000Z"})
    first = export([Source(out)], exp, batch_size=2, car=False)
    assert first.rows == 3 and first.counts["extra/mysteryField"] == 1
    models = {r["id"]: r for r in pq.read_table(exp / FILES["model"]).to_pylist()}
    assert json.loads(models["org/a"]["extra"]) == {"mysteryField": 1} and models["org/b"]["extra"] is None
    # a second tree: org/a newer, org/b older (the previous export's row wins), org/c new; org/s only in the old
    out2 = tmp_path / "out2"
    _tree(out2, "model", {**MODEL, "id": "org/a", "lastModified": "2025-01-01T00:00:00.000Z", "likes": 99})
    _tree(out2, "model", {**MODEL, "id": "org/b", "lastModified": "2020-01-01T00:00:00.000Z", "likes": 0})
    _tree(out2, "model", {**MODEL, "id": "org/c"}, deleted="2025-02-02T00:00:00.000Z")
    second = export([Source(out2)], exp, car=False)
    rows = {r["id"]: r for r in pq.read_table(exp / FILES["all"]).to_pylist()}
    assert sorted(rows) == ["org/a", "org/b", "org/c", "org/s"] and second.kept_old == 2
    assert rows["org/a"]["likes"] == 99 and rows["org/b"]["likes"] == 3
    assert rows["org/c"]["deleted"] is True and rows["org/c"]["deleted_at"] is not None
    third = export([Source(out2)], exp, drop_deleted=True, car=False)
    ids = pq.read_table(exp / FILES["all"]).column("id").to_pylist()
    assert sorted(ids) == ["org/a", "org/b", "org/s"] and third.by_type["model"]["deleted"] == 0
    for kind, name in FILES.items():
        assert pq.read_schema(exp / name).equals(SCHEMAS[kind], check_metadata=True)
    assert not [p for p in exp.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_an_unreadable_previous_export_is_replaced(tmp_path: Path) -> None:
    out, exp = tmp_path / "out", tmp_path / "exp"
    _tree(out, "dataset", {"id": "d1", "tags": ["x"]})
    exp.mkdir()
    (exp / FILES["all"]).write_bytes(b"PAR1 not really")
    summary = export([Source(out)], exp, car=False)
    assert summary.counts["old_file_unreadable"] == 1
    assert pq.read_table(exp / FILES["dataset"]).column("id").to_pylist() == ["d1"]


# -- order: every file sorted by (type, id), the merge one streaming pass --------------------------------------

HOSTILE_ORDER_IDS = ["a0/x", "a/b", "a-c/d", "Z/up", "é/accent", "日本/模型", "a_b/c", "org/" + "n" * 200]


def _keys(path: Path) -> list[tuple[str, ...]]:
    table = pq.read_table(path)
    names = [n for n in ("type", "id") if n in table.column_names]
    return list(zip(*(table.column(n).to_pylist() for n in names), strict=True))


def _state_source(root: Path, entities: list[tuple[str, dict[str, Any]]]) -> Source:
    """A crawl output folder written as the entity store writes it, with its state file listing the entities."""
    from hfscraper.state import StateStore, entity_folder

    output, state = root / "out", root / "state.sqlite3"
    StateStore(state).close()
    db = sqlite3.connect(state)
    with db:
        db.execute("INSERT INTO crawls (crawl_id, spider, repo_type, listing_key, scope_key, listing, mode, max_items, "
                   "sweep, started_at, finished_at, finish_reason, complete) VALUES (1, 'all', 'model', 'k', 'k', 'l', "
                   "'full', 0, 1, '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', 'finished', 1)")  # fmt: skip
        for repo_type, payload in entities:
            folder = entity_folder(output, repo_type, payload["id"])
            assert folder is not None
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "metadata.json").write_text(json.dumps(payload), encoding="utf-8")
            db.execute(
                "INSERT INTO entities (repo_type, id, last_modified, first_crawl_id, stored_crawl_id, seen_crawl_id) "
                "VALUES (?, ?, ?, 1, 1, 1)",
                (repo_type, payload["id"], payload.get("lastModified")),
            )
    db.close()
    return Source(output, state)


def test_every_file_is_sorted_by_type_and_id_and_declares_it(tmp_path: Path) -> None:
    out, exp = tmp_path / "out", tmp_path / "exp"
    for i, entity_id in enumerate(HOSTILE_ORDER_IDS):
        _tree(out, TYPES[i % 3], {**MODEL, "id": entity_id})
    export([Source(out)], exp, batch_size=3, car=False)
    for kind, name in FILES.items():
        keys = _keys(exp / name)
        assert keys == sorted(keys) and len(keys) == len(set(keys))  # Python's str order is UTF-8 byte order
        metadata = pq.ParquetFile(exp / name).metadata
        declared = [pq.SortingColumn(0), pq.SortingColumn(1)] if kind == "all" else [pq.SortingColumn(0)]
        assert metadata.num_row_groups >= 1
        assert all(list(metadata.row_group(i).sorting_columns) == declared for i in range(metadata.num_row_groups))
    assert sorted(pq.read_table(exp / FILES["all"]).column("id").to_pylist()) == sorted(HOSTILE_ORDER_IDS)


def test_state_sources_merge_in_one_pass_newest_wins_across_sources(tmp_path: Path) -> None:
    older = {**MODEL, "lastModified": "2024-01-01T00:00:00.000Z", "likes": 1}
    newer = {**MODEL, "lastModified": "2025-01-01T00:00:00.000Z", "likes": 2}
    first = _state_source(tmp_path / "w1", [("model", {**newer, "id": i}) for i in HOSTILE_ORDER_IDS[:5]]
                          + [("dataset", {"id": "d/only-1", "lastModified": "2024-01-01T00:00:00.000Z"})])  # fmt: skip
    second = _state_source(tmp_path / "w2", [("model", {**older, "id": i}) for i in HOSTILE_ORDER_IDS[3:]]
                           + [("space", {"id": "s/only-2", "sdk": "static"})])  # fmt: skip
    exp = tmp_path / "exp"
    summary = export([first, second], exp, batch_size=2, car=False)
    rows = {(r["type"], r["id"]): r for r in pq.read_table(exp / FILES["all"]).to_pylist()}
    assert len(rows) == len(HOSTILE_ORDER_IDS) + 2 == summary.rows
    # ids in both sources: the newer lastModified wins whichever source holds it
    assert all(rows[("model", i)]["likes"] == 2 for i in HOSTILE_ORDER_IDS[:5])
    assert all(rows[("model", i)]["likes"] == 1 for i in HOSTILE_ORDER_IDS[5:])
    assert summary.by_type == {"model": {"rows": 8, "deleted": 0, "live": 8},
                               "dataset": {"rows": 1, "deleted": 0, "live": 1},
                               "space": {"rows": 1, "deleted": 0, "live": 1}}  # fmt: skip
    assert _keys(exp / FILES["all"]) == sorted(rows)
    # exported again with nothing new: every file equal in value (the merge is stable)
    before = {name: pq.read_table(exp / name) for name in FILES.values()}
    again = export([first, second], exp, batch_size=3, car=False)
    assert again.kept_old == 0 and again.new_rows == again.rows  # ties go to the sources
    assert all(pq.read_table(exp / name).equals(table) for name, table in before.items())


def test_a_metadata_file_of_another_id_is_skipped_not_misplaced(tmp_path: Path) -> None:
    source = _state_source(tmp_path, [("model", {**MODEL, "id": "org/a"}), ("model", {**MODEL, "id": "org/b"})])
    from hfscraper.state import entity_folder

    folder = entity_folder(source.output_dir, "model", "org/a")
    assert folder is not None
    (folder / "metadata.json").write_text(json.dumps({**MODEL, "id": "zzz/other"}), encoding="utf-8")
    summary = export([source], tmp_path / "exp", car=False)
    assert summary.counts["skipped/id_mismatch"] == 1
    assert pq.read_table(tmp_path / "exp" / FILES["all"]).column("id").to_pylist() == ["org/b"]


def test_a_previous_export_without_a_declared_order_is_sorted_once(tmp_path: Path) -> None:
    out, exp = tmp_path / "out", tmp_path / "exp"
    _tree(out, "model", {**MODEL, "id": "org/m", "likes": 5})
    exp.mkdir()
    builder = RowBuilder()
    legacy = [builder.row("model", {**MODEL, "id": i}) for i in ("z/last", "a/first", "org/m")]
    pq.write_table(pa.Table.from_pylist(legacy, schema=ALL_SCHEMA), exp / FILES["all"])  # no sorting_columns
    summary = export([Source(out)], exp, car=False)
    assert summary.counts["old_file_sorted_in_memory"] == 1 and summary.kept_old == 2
    assert _keys(exp / FILES["all"]) == [("model", "a/first"), ("model", "org/m"), ("model", "z/last")]
    assert pq.read_table(exp / FILES["model"]).to_pylist()[1]["likes"] == 5


def test_a_previous_export_out_of_its_declared_order_fails_and_is_left_as_it_was(tmp_path: Path) -> None:
    out, exp = tmp_path / "out", tmp_path / "exp"
    _tree(out, "model", {**MODEL, "id": "org/m"})
    exp.mkdir()
    rows = [RowBuilder().row("model", {**MODEL, "id": i}) for i in ("z/last", "a/first")]
    with pq.ParquetWriter(
        exp / FILES["all"], ALL_SCHEMA, sorting_columns=[pq.SortingColumn(0), pq.SortingColumn(1)]
    ) as w:
        w.write_table(pa.Table.from_pylist(rows, schema=ALL_SCHEMA))
    before = (exp / FILES["all"]).read_bytes()
    with pytest.raises(UnsortedInputError, match="not sorted by \\(type, id\\)"):
        export([Source(out)], exp, car=False)
    assert (exp / FILES["all"]).read_bytes() == before
    assert sorted(p.name for p in exp.iterdir()) == [FILES["all"]]  # nothing half-written left
