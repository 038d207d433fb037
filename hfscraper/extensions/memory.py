"""Keep a long crawl's resident memory flat: a fixed glibc mmap threshold (HFSCRAPER_MEMORY_MMAP_THRESHOLD); and
its garbage collector from scanning the whole heap over and over (HFSCRAPER_MEMORY_GC_THRESHOLD).

glibc serves a block of `M_MMAP_THRESHOLD` bytes or more (128 KiB at first) with its own `mmap`, returned to the
system when freed. Its default threshold is dynamic: freeing such a block raises the threshold to that block's
size (up to 32 MiB), so once the first listing page (megabytes of JSON) is freed, every later page and its decoded
strings are carved out of the heap instead, where the small long-lived objects allocated in between pin the
freed space: the crawl's RSS creeps up with the number of entities (measured: +15 MiB from 10,000 to 100,000
models). Setting the threshold explicitly turns the dynamic adjustment off (mallopt(3)); large blocks then go
back to the system as soon as they are freed. The cost is an mmap/munmap per large block: a few per listing
page, nothing per entity.

Process-wide and set once, when the first crawler of the process is built; ignored with another C library.

The same extension sets Python's garbage collection threshold (HFSCRAPER_MEMORY_GC_THRESHOLD, `gc.set_threshold`'s
first number: container allocations between two collections of the youngest generation). Every tenth of those
collections also collects the middle generation, and every tenth of those the whole heap (once enough new objects
reached it). At Python's 700 a crawl that decodes a listing page (a thousand entities, tens of thousands of dicts and
lists) collects the young generations a hundred times per page and the whole heap (hundreds of thousands of
objects: the pages and items in flight) every few thousand entities: measured, a fifth of a crawl's CPU, for almost
no garbage (entities hold no reference cycles; what cycles a crawl makes, Twisted's and asyncio's, are a few dozen
objects per entity). At 10,000 the same garbage is found, a few times per page instead of a hundred.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import platform
from typing import TYPE_CHECKING, Final, Self

from scrapy.exceptions import NotConfigured

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

#: mallopt(3) parameter number of M_MMAP_THRESHOLD in glibc's malloc.h.
M_MMAP_THRESHOLD: Final = -3
_applied: dict[str, int] = {}


def set_mmap_threshold(threshold: int) -> bool:
    """Set glibc's mmap threshold to *threshold* bytes (turning its dynamic adjustment off); False when this is not
    glibc or mallopt refused the value."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


def set_gc_threshold(threshold: int) -> None:
    """Collect the youngest generation every *threshold* container allocations (the older generations' numbers
    stay)."""
    gc.set_threshold(threshold, *gc.get_threshold()[1:])


class MemoryExtension:
    """Applies HFSCRAPER_MEMORY_MMAP_THRESHOLD and HFSCRAPER_MEMORY_GC_THRESHOLD when a crawler is built (see the
    module docstring)."""

    def __init__(self, threshold: int, gc_threshold: int = 0) -> None:
        self.threshold = threshold
        self.gc_threshold = gc_threshold

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        threshold = crawler.settings.getint("HFSCRAPER_MEMORY_MMAP_THRESHOLD", 0)
        gc_threshold = crawler.settings.getint("HFSCRAPER_MEMORY_GC_THRESHOLD", 0)
        if threshold <= 0 and gc_threshold <= 0:
            raise NotConfigured(
                "HFSCRAPER_MEMORY_MMAP_THRESHOLD and HFSCRAPER_MEMORY_GC_THRESHOLD are 0: defaults stay"
            )
        if gc_threshold > 0 and _applied.get("gc_threshold") != gc_threshold:
            set_gc_threshold(gc_threshold)
            _applied["gc_threshold"] = gc_threshold
            logger.debug("garbage collection threshold set to %(n)d allocations", {"n": gc_threshold})
        if threshold > 0 and _applied.get("threshold") != threshold:
            if set_mmap_threshold(threshold):
                _applied["threshold"] = threshold
                logger.debug("glibc mmap threshold set to %(n)d bytes", {"n": threshold})
            else:
                logger.debug("mmap threshold not set (not glibc, or mallopt refused %(n)d)", {"n": threshold})
        return cls(threshold, gc_threshold)
