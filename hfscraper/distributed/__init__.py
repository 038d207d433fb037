"""Crawling on several machines through one Redis (scrapy-redis): one discovery process, any number of workers.

A listing is one sequential cursor chain, so it cannot be split: the **discovery** (HFSCRAPER_DISTRIBUTED_ROLE =
`discovery`) walks it as a single-process crawl does (cursor checkpoint, resume after a kill) and, instead of
running the entity stages, pushes each entity's listing record into Redis (`WorkQueuePipeline`). **Workers**
(`worker`) take records from Redis (`RedisEntityWorker`, a scrapy-redis `RedisMixin` adapted to `async def
start()`), rebuild the item, and run every per-entity stage: the `baseModels` request, files, previews, CIDs and
pins, provenance, and the crawl state. Every process paces its requests with one quota shared through Redis
(`RedisPacing`).

Modules, one component each:

- `keys`: the Redis key names of one spider's work, and the Redis client from the settings.
- `queue`: `EntityWorkQueue`, the reliable queue (atomic Lua scripts): push, claim, ack, retry, reclaim.
- `addon`: `DistributedAddon`, which switches the components for the role.
- `push`: `WorkQueuePipeline`, the discovery's only item pipeline.
- `worker`: `RedisEntityWorker`, the worker spider's source of items.
- `discovery_checkpoint`, `worker_checkpoint`: the crawl state of each role.
- `ratelimit`: `RedisPacing`, the rate-limit pacing shared by every process.
"""

from __future__ import annotations

from typing import Any, Final

#: HFSCRAPER_DISTRIBUTED_ROLE values.
ROLE_OFF: Final = "off"
ROLE_DISCOVERY: Final = "discovery"
ROLE_WORKER: Final = "worker"
ROLES: Final = (ROLE_OFF, ROLE_DISCOVERY, ROLE_WORKER)


def role_of(settings: Any) -> str:
    """The distributed role the settings ask for (`off` when unset); Scrapy settings or a plain mapping."""
    role = settings.get("HFSCRAPER_DISTRIBUTED_ROLE") or ROLE_OFF
    if role not in ROLES:
        raise ValueError(f"HFSCRAPER_DISTRIBUTED_ROLE must be one of {', '.join(ROLES)}, not {role!r}")
    return str(role)
