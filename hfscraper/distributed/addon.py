"""`DistributedAddon`: switch a crawler's components for its distributed role (HFSCRAPER_DISTRIBUTED_ROLE).

Registered in `ADDONS` for every crawl; with the role `off` (the default) it changes nothing. Scrapy runs it when
it builds each crawler, after `-s` options are applied, so `scrapy crawl models -s HFSCRAPER_DISTRIBUTED_ROLE=worker`
is all it takes (or the environment variable, or `[distributed] role` in settings.toml).

- Both roles: `REDIS_URL` (what scrapy-redis reads) is set from HFSCRAPER_REDIS_URL; `DeltaFetchSpiderMiddleware`
  is turned off (the discovery pushes every entity; the worker judges each entity against its own crawl state
  when it claims it).
- `discovery`: the item pipelines are replaced by `WorkQueuePipeline` (push to Redis), and the crawl state is
  kept by `DiscoveryCheckpointExtension` (marks the listing done in Redis; tombstones against the whole listing).
  The spider does not request `baseModels` itself: that per-entity call is the workers'.
- `worker`: the item pipelines stay as they are; the crawl state is kept by `WorkerCheckpointExtension` (no
  listing lock, never a sweep), and the listing spider takes its items from Redis (`RedisEntityWorker`).

The rate-limit pacing follows HFSCRAPER_RATELIMIT_PACING (`auto`: shared through Redis in both roles).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.utils.misc import load_object

from hfscraper.distributed import ROLE_DISCOVERY, ROLE_OFF, ROLE_WORKER, role_of

if TYPE_CHECKING:
    from scrapy.settings import Settings

CHECKPOINT = "hfscraper.extensions.checkpoint.CheckpointExtension"
DELTAFETCH = "hfscraper.middlewares.deltafetch.DeltaFetchSpiderMiddleware"
EXTENSION_OF_ROLE = {
    ROLE_DISCOVERY: "hfscraper.distributed.discovery_checkpoint.DiscoveryCheckpointExtension",
    ROLE_WORKER: "hfscraper.distributed.worker_checkpoint.WorkerCheckpointExtension",
}
PUSH_PIPELINE = "hfscraper.distributed.push.WorkQueuePipeline"
#: Where the discovery's push runs among ITEM_PIPELINES (where the first entity stage would).
PUSH_PRIORITY = 100


class DistributedAddon:
    """Set a crawler's components for HFSCRAPER_DISTRIBUTED_ROLE (see the module docstring)."""

    def update_settings(self, settings: Settings) -> None:
        role = role_of(settings)
        if role == ROLE_OFF:
            return
        settings.set("REDIS_URL", settings.get("HFSCRAPER_REDIS_URL"), priority="addon")
        settings.set_in_component_priority_dict("SPIDER_MIDDLEWARES", load_object(DELTAFETCH), None)
        settings.replace_in_component_priority_dict(
            "EXTENSIONS", load_object(CHECKPOINT), load_object(EXTENSION_OF_ROLE[role])
        )
        if role == ROLE_DISCOVERY:
            for path in list(settings.getdict("ITEM_PIPELINES")):
                settings.set_in_component_priority_dict("ITEM_PIPELINES", load_object(path), None)
            settings.set_in_component_priority_dict("ITEM_PIPELINES", load_object(PUSH_PIPELINE), PUSH_PRIORITY)
