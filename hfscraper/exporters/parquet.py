"""`ParquetItemExporter`: Hub entity items to a Parquet feed with the declared schema, streamed in row groups.

Registered as the feed format `parquet` (`FEED_EXPORTERS` in hfscraper/settings.py)::

    scrapy crawl models -O models.parquet
    FEEDS = {"models.parquet": {"format": "parquet", "item_export_kwargs": {"batch_size": 5000}}}

Options (`item_export_kwargs`):
- `batch_size` (default 5000): rows buffered before a row group is written; memory stays bounded by one batch.
- `item_type`: `model`, `dataset`, `space` or `all` (the all-entities schema, with a `type` column). Default: the
  spider's `repo_type` when it has one, else the first item's type, else `all`.

A Parquet file cannot be appended to: a local feed opened for appending (`-o`, or `overwrite` left False) is
truncated first, so `overwrite: True` is in effect the default (Scrapy would otherwise append a second file to the
first, which readers then silently read only half of). Rows are built by `hfscraper.exporters.schema.RowBuilder`:
unknown fields go to `extra`, wrong-typed values become null; both are counted in the stats
(`hfscraper/export/feed/extra/<key>`, `hfscraper/export/feed/invalid/<column>`), never a crash.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, BinaryIO, Self

import pyarrow as pa
import pyarrow.parquet as pq
from itemadapter import ItemAdapter
from scrapy.exporters import BaseItemExporter

from hfscraper.exporters.schema import SCHEMAS, RowBuilder
from hfscraper.items import HubEntityItem

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5000
STATS_PREFIX = "hfscraper/export/feed"


class ParquetItemExporter(BaseItemExporter):
    """Writes items as Parquet row groups of at most `batch_size` rows, with a declared (never inferred) schema."""

    def __init__(
        self,
        file: BinaryIO,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        item_type: str | None = None,
        crawler: Crawler | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dont_fail=True, **kwargs)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size!r}")
        if item_type is not None and item_type not in SCHEMAS:
            raise ValueError(f"item_type must be one of {', '.join(SCHEMAS)}, not {item_type!r}")
        self.file = file
        self.batch_size = int(batch_size)
        self.item_type = item_type
        self.crawler = crawler
        self.builder = RowBuilder()
        self.rows: list[dict[str, Any]] = []
        self.writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.items = 0
        self._warned_types: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler, file: BinaryIO, *args: Any, **kwargs: Any) -> Self:
        if kwargs.get("item_type") is None:
            spider = getattr(crawler, "spider", None)
            repo_type = getattr(spider, "repo_type", None)
            if repo_type in SCHEMAS:
                kwargs["item_type"] = repo_type
        return cls(file, *args, crawler=crawler, **kwargs)

    # -- BaseItemExporter -------------------------------------------------------------------------------

    def start_exporting(self) -> None:
        mode = getattr(self.file, "mode", "")
        if "a" in str(mode) and self.file.seekable():
            # Appending a second Parquet file to the first gives a file readers read only half of.
            self.file.seek(0)
            self.file.truncate()

    def export_item(self, item: Any) -> None:
        adapter = ItemAdapter(item)
        if isinstance(item, HubEntityItem):
            repo_type, payload, files = item.repo_type, item.to_api(), item.files
        else:
            data = adapter.asdict()
            repo_type = str(data.pop("type", None) or data.pop("repo_type", None) or self.item_type or "model")
            files = data.pop("files", None)
            payload = data
        if self.schema is None:
            self._open(self.item_type or repo_type)
        assert self.schema is not None
        target = self.schema.metadata[b"entity_type"].decode()
        if target not in ("all", repo_type) and repo_type not in self._warned_types:
            self._warned_types.add(repo_type)
            logger.warning("Parquet feed of %(target)s rows got a %(type)s item: only the shared columns are kept",
                           {"target": target, "type": repo_type})  # fmt: skip
        try:
            row = self.builder.row(repo_type, payload, files=files if isinstance(files, list) else None)
        except ValueError:
            self._inc("invalid/id")
            return
        self.rows.append(row)
        self.items += 1
        if len(self.rows) >= self.batch_size:
            self._flush()

    def finish_exporting(self) -> None:
        if self.schema is None:
            self._open(self.item_type or "all")
        self._flush()
        assert self.writer is not None
        self.writer.close()
        self.writer = None
        for key, count in sorted(self.builder.counts.items()):
            self._inc(key, count)

    # -- internals --------------------------------------------------------------------------------------

    def _open(self, repo_type: str) -> None:
        self.schema = SCHEMAS[repo_type if repo_type in SCHEMAS else "all"]
        self.writer = pq.ParquetWriter(self.file, self.schema, compression="zstd")

    def _flush(self) -> None:
        if not self.rows:
            return
        assert self.writer is not None and self.schema is not None
        batch = pa.RecordBatch.from_pylist(self.rows, schema=self.schema)
        self.writer.write_batch(batch)
        self.rows = []

    def _inc(self, key: str, count: int = 1) -> None:
        if self.crawler is not None and self.crawler.stats is not None:
            self.crawler.stats.inc_value(f"{STATS_PREFIX}/{key}", count)
