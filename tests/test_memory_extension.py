"""`MemoryExtension`: glibc's mmap threshold fixed, and what that does to a heap a crawl's pattern fragments; Python's
garbage collection threshold raised, and what that does to the full collections a crawl's pattern triggers."""

from __future__ import annotations

import gc
import json
import platform
import subprocess
import sys
import textwrap

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from hfscraper.config import SCHEMA
from hfscraper.extensions import memory
from hfscraper.extensions.memory import MemoryExtension, set_gc_threshold, set_mmap_threshold

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's threshold is glibc's")

# A crawl's allocation pattern, shrunk: a few multi-megabyte blocks alive at a time (listing pages and the strings
# decoded from them), freed in any order, with small blocks that live on allocated in between. The first 8 MiB
# block freed raises glibc's dynamic threshold above every later page.
_PATTERN = textwrap.dedent(
    """
    import json, random, sys
    from hfscraper.extensions.memory import set_mmap_threshold

    def rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024

    applied = set_mmap_threshold(128 * 1024) if sys.argv[1] == "fixed" else None
    first = bytearray(8 << 20)
    del first
    rng = random.Random(1)
    base = rss_mib()
    kept, pages = [], []
    for _ in range(3000):
        pages.append(bytearray(rng.randint(200_000, 3_000_000)))
        if len(pages) > 3:
            pages.pop(rng.randrange(len(pages)))
        kept.append(bytearray(rng.randint(600, 4000)))
    print(json.dumps({"applied": applied, "growth_mib": rss_mib() - base, "kept_mib": sum(map(len, kept)) / 2**20}))
    """
)


def _growth(mode: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", _PATTERN, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_a_fixed_threshold_keeps_the_heap_from_growing() -> None:
    fixed, dynamic = _growth("fixed"), _growth("dynamic")
    assert fixed["applied"] is True
    # Live data is the same (~6 MiB kept, ~5 MiB of pages); the dynamic threshold leaves freed pages' space
    # pinned in the heap by the kept blocks.
    assert fixed["kept_mib"] == dynamic["kept_mib"]
    assert fixed["growth_mib"] < fixed["kept_mib"] + 9, fixed
    assert dynamic["growth_mib"] > fixed["growth_mib"] + 8, (fixed, dynamic)


def test_the_extension_applies_the_setting_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(memory, "set_mmap_threshold", lambda n: calls.append(n) or True)
    monkeypatch.setattr(memory, "_applied", {})
    for _ in range(3):  # crawlall builds a crawler per spider
        ext = MemoryExtension.from_crawler(get_crawler(settings_dict={"HFSCRAPER_MEMORY_MMAP_THRESHOLD": 65536}))
        assert ext.threshold == 65536
    assert calls == [65536]
    with pytest.raises(NotConfigured):
        MemoryExtension.from_crawler(get_crawler(settings_dict={"HFSCRAPER_MEMORY_MMAP_THRESHOLD": 0}))
    assert calls == [65536]


def test_mallopt_is_called_for_real() -> None:
    assert set_mmap_threshold(128 * 1024) is True


def test_the_project_enables_it() -> None:
    from hfscraper import settings

    assert settings.EXTENSIONS["hfscraper.extensions.memory.MemoryExtension"] == 100


# A crawl's object pattern, shrunk: a heap of long-lived objects (the items and pages in flight), listing pages decoded
# one after another (each a thousand entities of nested dicts and lists, the last few alive), and a few reference
# cycles of garbage per entity (what Twisted and asyncio leave).
_GC_PATTERN = textwrap.dedent(
    """
    import gc, json, sys
    from hfscraper.extensions.memory import set_gc_threshold

    if sys.argv[1] != "default":
        set_gc_threshold(int(sys.argv[1]))
    entity = {"id": "o/n", "tags": ["a", "b"], "cardData": {"x": [1, 2.5]}, "siblings": [{"rfilename": "f"}] * 8}
    page = json.dumps([dict(entity, id=f"o/n{i}") for i in range(1000)])
    heap = [{"k": [i]} for i in range(30_000)]
    gc.collect()
    before = [s["collections"] for s in gc.get_stats()]
    pages, cycles = [], 0
    for _ in range(60):
        pages = [*pages[-2:], json.loads(page)]
        for _ in range(30):
            a = []; a.append(a); cycles += 1
    del a
    after = [s["collections"] for s in gc.get_stats()]
    gc.collect()
    print(json.dumps({"collections": [b - a for a, b in zip(before, after)], "cycles": cycles,
                      "left": sum(1 for o in gc.get_objects() if type(o) is list and len(o) == 1 and o[0] is o)}))
    """
)


def _collections(threshold: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _GC_PATTERN, threshold], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_a_raised_gc_threshold_stops_the_full_collections() -> None:
    default, raised = _collections("default"), _collections("10000")
    young, _, full = default["collections"]  # type: ignore[misc]
    # At 700 the decoded pages alone trigger a full collection every few pages, each over the whole heap.
    assert full >= 5 and young >= 600, default
    assert raised["collections"][2] <= full // 5, (default, raised)  # type: ignore[index]
    assert raised["collections"][0] <= young // 10, (default, raised)  # type: ignore[index]
    # The same garbage is still found: no cycle outlives a collection.
    assert default["left"] == raised["left"] == 0


def test_the_extension_sets_the_gc_threshold_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_applied", {})
    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        for _ in range(3):
            ext = MemoryExtension.from_crawler(
                get_crawler(
                    settings_dict={"HFSCRAPER_MEMORY_GC_THRESHOLD": 12345, "HFSCRAPER_MEMORY_MMAP_THRESHOLD": 0}
                )
            )
            assert ext.gc_threshold == 12345
        assert gc.get_threshold() == (12345, 10, 10)
        set_gc_threshold(5000)
        assert gc.get_threshold() == (5000, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_the_project_raises_the_gc_threshold() -> None:
    (setting,) = [s for s in SCHEMA if s.name == "HFSCRAPER_MEMORY_GC_THRESHOLD"]
    assert setting.default == 10_000
