"""Keep a long crawl's resident memory flat: a fixed glibc mmap threshold (HFSCRAPER_MEMORY_MMAP_THRESHOLD).

glibc serves a block of `M_MMAP_THRESHOLD` bytes or more (128 KiB at first) with its own `mmap`, returned to the
system when freed. Its default threshold is dynamic: freeing such a block raises the threshold to that block's
size (up to 32 MiB), so once the first listing page (megabytes of JSON) is freed, every later page and its decoded
strings are carved out of the heap instead, where the small long-lived objects allocated in between pin the
freed space: the crawl's RSS creeps up with the number of entities (measured: +15 MiB from 10,000 to 100,000
models). Setting the threshold explicitly turns the dynamic adjustment off (mallopt(3)); large blocks then go
back to the system as soon as they are freed. The cost is an mmap/munmap per large block: a few per listing
page, nothing per entity.

Process-wide and set once, when the first crawler of the process is built; ignored with another C library.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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


class MemoryExtension:
    """Applies HFSCRAPER_MEMORY_MMAP_THRESHOLD when a crawler is built (see the module docstring)."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        threshold = crawler.settings.getint("HFSCRAPER_MEMORY_MMAP_THRESHOLD", 0)
        if threshold <= 0:
            raise NotConfigured("HFSCRAPER_MEMORY_MMAP_THRESHOLD is 0: glibc's dynamic threshold stays")
        if _applied.get("threshold") != threshold:
            if set_mmap_threshold(threshold):
                _applied["threshold"] = threshold
                logger.debug("glibc mmap threshold set to %(n)d bytes", {"n": threshold})
            else:
                logger.debug("mmap threshold not set (not glibc, or mallopt refused %(n)d)", {"n": threshold})
        return cls(threshold)
