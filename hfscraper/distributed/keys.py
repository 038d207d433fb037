"""The Redis keys of a distributed crawl, and the Redis client built from the settings.

Every key of one spider's work starts with `<namespace>:<spider>:` (HFSCRAPER_DISTRIBUTED_NAMESPACE, the spider's
name), so several crawls can share one Redis under different namespaces. The keys are computed inside the Lua
scripts as well (a worker's processing list, its lease), so a distributed crawl needs one Redis server, not a
Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapy_redis import connection, defaults

if TYPE_CHECKING:
    import redis
    from scrapy.settings import BaseSettings

DEFAULT_NAMESPACE = "hfscraper"


@dataclass(frozen=True)
class WorkKeys:
    """The key names of one spider's work under one namespace.

    Attributes:
        prefix: `<namespace>:<spider>:`, the start of every key below.
        queue: list of work entries waiting for a worker (JSON, see `hfscraper.distributed.queue`).
        pushed: set of `type/id@sha` the discovery pushed during the current crawl (pushes are idempotent).
        done: set of `type/id@sha` whose stages finished (re-picked work that is done is acked and skipped).
        workers: set of worker ids that may hold entities.
        listing: hash `state` (`running` or `done`), `pushed` (count), `run` (the discovery's crawl id).
        completions: hash `type/id` -> how many times a worker completed every stage of it (the evidence that
            nothing is processed twice).
        by_worker: hash worker id -> entities it completed.
        failed: list of entries that failed HFSCRAPER_DISTRIBUTED_MAX_ATTEMPTS times.
    """

    prefix: str

    @classmethod
    def of(cls, namespace: str, spider: str) -> WorkKeys:
        return cls(f"{namespace or DEFAULT_NAMESPACE}:{spider}:")

    @property
    def queue(self) -> str:
        return self.prefix + "queue"

    @property
    def pushed(self) -> str:
        return self.prefix + "pushed"

    @property
    def done(self) -> str:
        return self.prefix + "done"

    @property
    def workers(self) -> str:
        return self.prefix + "workers"

    @property
    def listing(self) -> str:
        return self.prefix + "listing"

    @property
    def completions(self) -> str:
        return self.prefix + "completions"

    @property
    def by_worker(self) -> str:
        return self.prefix + "by_worker"

    @property
    def failed(self) -> str:
        return self.prefix + "failed"

    def processing(self, worker: str) -> str:
        return f"{self.prefix}processing:{worker}"

    def lease(self, worker: str) -> str:
        return f"{self.prefix}lease:{worker}"


def redis_from_settings(settings: BaseSettings) -> redis.Redis[Any]:
    """A Redis client for REDIS_URL (set from HFSCRAPER_REDIS_URL by `DistributedAddon`), built by scrapy-redis
    with its defaults and REDIS_PARAMS; responses are bytes, as scrapy-redis expects."""
    params = dict(defaults.REDIS_PARAMS)
    params.update(settings.getdict("REDIS_PARAMS"))
    url = settings.get("REDIS_URL") or settings.get("HFSCRAPER_REDIS_URL")
    return connection.get_redis(url=url, **params)  # type: ignore[no-any-return]
