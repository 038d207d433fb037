"""Scrapy settings for hfscraper.

The static Scrapy settings come first; hfscraper's own settings (``HFSCRAPER_*``) and any ``[scrapy]``
overrides then come from ``hfscraper.config.load_config()``: the packaged defaults, ``settings.toml`` (or
``$HFSCRAPER_SETTINGS``) and the environment. ``-s`` on the command line overrides all of it. Every key is
documented in docs/SETTINGS.md.
"""

from __future__ import annotations

import sys

from hfscraper import __version__
from hfscraper.config import ConfigError, load_config

BOT_NAME = "hfscraper"
SPIDER_MODULES = ["hfscraper.spiders"]
NEWSPIDER_MODULE = "hfscraper.spiders"
COMMANDS_MODULE = "hfscraper.commands"

# Honest and without a made-up URL: the Hub's operators can tell what is calling.
USER_AGENT = f"hfscraper/{__version__}"
# We call a JSON API, not pages meant for search engines; the Hub's limits are its RateLimit headers.
ROBOTSTXT_OBEY = False
# Scrapy 2.19 starts a local server that runs any POSTed Python code; a crawler needs none of it.
REMOTE_CONTROL_ENABLED = False
TELNETCONSOLE_ENABLED = False

# Concurrency: listing pages are a sequential cursor chain; the parallelism is for per-entity and file
# requests. The Hub's limits count requests per window, not requests in flight, and the rate-limit middleware
# enforces them, so AutoThrottle only has to keep latency in check: up to 16 requests in flight per host (each file
# costs two round trips, resolve then resolve-cache or CDN), starting with no delay. Measured in bench/crawl.py at
# 50 ms per response: 15.5 files-crawl models/s with 4 in flight and a 0.25 s start delay, 53.8 with these.
CONCURRENT_REQUESTS = 32
CONCURRENT_REQUESTS_PER_DOMAIN = 16
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.0
AUTOTHROTTLE_MAX_DELAY = 60.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 16.0
RETRY_ENABLED = True
RETRY_TIMES = 3

ITEM_PIPELINES = {
    # First: writes metadata.json (and refuses hostile ids) before anything else goes into the entity folder.
    "hfscraper.pipelines.entity_store.EntityStorePipeline": 100,
    # The entity's chosen files, verified, at the listed commit (HFSCRAPER_FILES_*); a failed file drops the entity
    # (StageFailed) so that the next run redoes it.
    "hfscraper.pipelines.files.RepoFilesPipeline": 200,
    # preview_info.json (datasets, from the dataset viewer), thumbnail_info.json and relationships.json (spaces).
    "hfscraper.pipelines.previews.PreviewsPipeline": 250,
    # After every pipeline that writes into the entity folder: file and folder CIDs, ipfs_cid.txt, the CAR, the pin.
    "hfscraper.pipelines.ipfs.IpfsPipeline": 300,
    # The relations each entity declares (base models, datasets, a space's models and datasets), replaced per
    # entity in the crawl state; the graph files under output_dir/provenance/ are rebuilt when the crawl ends.
    "hfscraper.pipelines.provenance.ProvenancePipeline": 350,
    # Last: records each entity that went through every stage in the crash-safe state, before any feed
    # sees it (so a crawl killed and resumed never writes a feed row twice).
    "hfscraper.pipelines.state.CrawlStatePipeline": 1000,
}

# Components are registered in these blocks, each in its own priority band (keep the gaps).
DOWNLOADER_MIDDLEWARES: dict[str, int] = {
    # Scrapy's retries, plus a WARNING line per retry (Scrapy logs them at DEBUG only).
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "hfscraper.middlewares.retry.LoggingRetryDownloaderMiddleware": 550,
    # Before RedirectMiddleware (600) sees a 3xx: a redirect is never dropped by the duplicate filter.
    "hfscraper.middlewares.redirects.KeepRedirectsDownloaderMiddleware": 610,
    # Scrapy's, without looking for the Referer spider middleware that is off (below).
    "scrapy.downloadermiddlewares.redirect.RedirectMiddleware": None,
    "hfscraper.middlewares.redirects.HubRedirectMiddleware": 600,
    # Paces each Hub bucket by its RateLimit headers and pauses the host on 429: after every other
    # process_request (right before sending, before the token is added), and it sees each raw response
    # before RedirectMiddleware (600) and the retry middleware (550) do.
    "hfscraper.middlewares.ratelimit.RateLimitDownloaderMiddleware": 940,
    # Next to the downloader: the token is on a request only while it is sent, and only to the Hub.
    "hfscraper.middlewares.auth.HubAuthDownloaderMiddleware": 950,
}
# The Hub's API authenticates by token, never by cookie: no cookie jar to fill and consult on every request.
COOKIES_ENABLED = False
# No log record per scraped item unless LOG_LEVEL shows it (hfscraper/logformatter.py).
LOG_FORMATTER = "hfscraper.logformatter.QuietLogFormatter"
# Scrapy's MemoryStatsCollector without Scrapy 2.19's Python-level __getattribute__ (microseconds per stats call).
STATS_CLASS = "hfscraper.extensions.stats.StatsCollector"
SPIDER_MIDDLEWARES: dict[str, int] = {
    # Drops entities the crawl state already holds (this crawl's own, after a resume; unchanged ones with
    # DELTAFETCH_ENABLED) before they reach the item pipeline.
    "hfscraper.middlewares.deltafetch.DeltaFetchSpiderMiddleware": 500,
    # Every spider middleware wraps every item of a page in one more async-generator layer. These three only look at
    # requests, and a crawl of the Hub needs none of them (no Referer to send, no depth to limit, no meta copies to
    # debug): a few microseconds per entity, 5 million times.
    "scrapy.spidermiddlewares.referer.RefererMiddleware": None,
    "scrapy.spidermiddlewares.depth.DepthMiddleware": None,
    "scrapy.spidermiddlewares.metacopy.MetaCopyDetectionMiddleware": None,
}
EXTENSIONS: dict[str, int] = {
    # Crash-safe resume: the listing's crawl, cursor checkpoints and completion in HFSCRAPER_STATE_DIR.
    "hfscraper.extensions.checkpoint.CheckpointExtension": 500,
    # One progress line per spider every HFSCRAPER_PROGRESS_INTERVAL seconds, in place of Scrapy's LogStats line
    # (which it brings back when the interval is 0).
    "scrapy.extensions.logstats.LogStats": None,
    "hfscraper.extensions.progress.ProgressExtension": 510,
    # The rate-limit budget seen last, per host and bucket, in the crawl state (for `scrapy status`).
    "hfscraper.extensions.progress.RateLimitStateExtension": 520,
    # A fixed glibc mmap threshold (HFSCRAPER_MEMORY_MMAP_THRESHOLD): resident memory stays flat over a long crawl.
    "hfscraper.extensions.memory.MemoryExtension": 100,
    # Stops the crawl (disk_full) before the output or state file system falls below its reserve of space or inodes.
    "hfscraper.capacity.CapacityExtension": 530,
    # Feeds (-o/-O/FEEDS) written only by a crawl the checkpoint admitted: a refused start never truncates the feed
    # of the crawl that is running.
    "scrapy.extensions.feedexport.FeedExporter": None,
    "hfscraper.extensions.feeds.AdmittedFeedExporter": 0,
}

# Crawling on several machines (HFSCRAPER_DISTRIBUTED_ROLE): swaps the components above for a discovery process or a
# worker of a distributed crawl; with the role `off` (the default) it changes nothing.
ADDONS = {"hfscraper.distributed.addon.DistributedAddon": 0}

# The Hub answers file downloads with redirects (to resolve-cache and to its CDN); Scrapy's media
# pipelines ignore redirects unless told otherwise.
MEDIA_ALLOW_REDIRECTS = True
# The Hub answers JSON and files, never an HTML meta refresh: no page body is searched for one.
METAREFRESH_ENABLED = False
FEED_EXPORT_ENCODING = "utf-8"
# `-O out.parquet` / FEEDS format `parquet`: the declared export schema, streamed in row groups (a local feed is
# never appended to).
FEED_EXPORTERS = {"parquet": "hfscraper.exporters.parquet.ParquetItemExporter"}
LOG_LEVEL = "INFO"

# hfscraper's settings, validated. A bad value must stop every scrapy command with one clear line, not an
# import traceback, so the error is printed here and the process exits with the usage code.
try:
    globals().update(load_config())
except ConfigError as exc:
    sys.stderr.write(f"{exc}\n")
    raise SystemExit(2) from None
