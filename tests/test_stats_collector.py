"""`hfscraper.extensions.stats.StatsCollector`: Scrapy's MemoryStatsCollector, same results and deprecation warnings,
without Scrapy 2.19's Python-level `__getattribute__` on every access."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from scrapy import Spider
from scrapy.exceptions import ScrapyDeprecationWarning
from scrapy.statscollectors import MemoryStatsCollector
from scrapy.utils.test import get_crawler

from hfscraper.extensions.stats import WARNED_METHODS, StatsCollector
from tests.support.crawl import crawl
from tests.support.replica import replica_fixture

replica = replica_fixture(models=12, datasets=2, spaces=2, seed=3)


def _run(stats: Any) -> list[Any]:
    out = []
    stats.open_spider()
    stats.inc_value("a")
    stats.inc_value("a", 4)
    stats.inc_value("b", 2, start=10)
    stats.set_value("c", "x")
    stats.max_value("m", 3)
    stats.max_value("m", 1)
    stats.min_value("n", 3)
    stats.min_value("n", 1)
    out.append(dict(stats.get_stats()))
    out.append((stats.get_value("a"), stats.get_value("zz", 9)))
    stats.set_stats({"d": 1})
    out.append(dict(stats.get_stats()))
    stats.clear_stats()
    out.append(dict(stats.get_stats()))
    stats.inc_value("last")
    stats.close_spider(reason="finished")
    out.append(stats.spider_stats)
    return out


def test_it_keeps_the_stats_as_scrapys_collector_does() -> None:
    ours, scrapys = _run(StatsCollector(get_crawler())), _run(MemoryStatsCollector(get_crawler()))
    assert ours == scrapys
    assert ours[0] == {"a": 5, "b": 12, "c": "x", "m": 3, "n": 1}


def test_it_warns_about_a_spider_argument_as_scrapy_does() -> None:
    spider = Spider("s")
    for collector in (StatsCollector(get_crawler()), MemoryStatsCollector(get_crawler())):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            collector.inc_value("a", spider=spider)
            collector.get_value("a", None, spider)
            collector.inc_value("a")
        assert [(w.category, str(w.message)) for w in caught] == [
            (ScrapyDeprecationWarning, f"Passing a 'spider' argument to StatsCollector.{name}() is deprecated and "
             "the argument will be removed in a future Scrapy version.")
            for name in ("inc_value", "get_value")
        ]  # fmt: skip
        assert collector.get_value("a") == 2


def test_its_attribute_look_ups_are_plain() -> None:
    stats = StatsCollector(get_crawler())
    assert type(stats).__getattribute__ is object.__getattribute__
    assert set(WARNED_METHODS) <= set(vars(stats))  # each wrapped once, when made


def test_a_crawl_keeps_its_stats_with_it(replica: Any, tmp_path: Path) -> None:
    from hfscraper import settings

    assert settings.STATS_CLASS == "hfscraper.extensions.stats.StatsCollector"
    result = crawl(replica, "models", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    stats = result.stats
    assert stats["item_scraped_count"] == stats["hfscraper/spider/items"] == stats["hfscraper/store/written"] == 12
    assert stats["finish_reason"] == "finished"
