"""`EntityWorkQueue`: the reliable work queue of a distributed crawl, on Redis lists and atomic Lua scripts.

An **entry** is one entity's listing record as JSON: `{"k": "<type>/<id>@<sha>", "t": "<type>", "r": {...},
"a": <attempts>}`. The discovery pushes each entry once per crawl (`push`: the `pushed` set makes it idempotent,
so a discovery that resumes after a kill and re-reads a page pushes nothing twice).

The reliable-queue pattern: a worker **claims** entries by moving them from the queue to its own processing list
(`LMOVE`, atomically) and keeps a **lease** key alive with a heartbeat. An entry leaves the processing list only
when the worker **acks** it, after every stage of the entity finished (which also sets the entity's done marker,
`type/id@sha` in the `done` set, and counts the completion), or puts it back (`retry`, `release`). When a worker
dies (SIGKILL, a lost machine) its lease runs out and any live worker **reclaims** its processing list into the
queue. An entry claimed again whose done marker is set (its worker died between finishing and acking) is acked
by the claim itself and never reaches the stages twice.

Everything here is blocking redis-py (the client scrapy-redis builds); callers on the reactor run it in a
thread. Nothing here knows Scrapy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hfscraper.distributed.keys import WorkKeys

if TYPE_CHECKING:
    import redis

#: The `listing` hash's `state` values.
LISTING_RUNNING = "running"
LISTING_DONE = "done"

_PUSH = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('HINCRBY', KEYS[3], 'pushed', 1)
  return 1
end
return 0
"""

# KEYS: queue, processing, done; ARGV: how many. Done entries are dropped from the processing list at once.
_CLAIM = """
local out = {}
local skipped = 0
local want = tonumber(ARGV[1])
while #out < want do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not v then break end
  local ok, entry = pcall(cjson.decode, v)
  if ok and type(entry) == 'table' and type(entry.k) == 'string'
      and redis.call('SISMEMBER', KEYS[3], entry.k) == 1 then
    redis.call('LREM', KEYS[2], -1, v)
    skipped = skipped + 1
  else
    out[#out + 1] = v
  end
end
return {skipped, out}
"""

# KEYS: processing, done, completions, by_worker; ARGV: entry, done key, completion key, worker, completed (0/1).
_ACK = """
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
if ARGV[5] == '1' and removed > 0 then
  redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
end
return removed
"""

# KEYS: processing, target list; ARGV: old entry, new entry, 'head' or 'tail'.
_MOVE = """
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed > 0 then
  if ARGV[3] == 'head' then redis.call('LPUSH', KEYS[2], ARGV[2]) else redis.call('RPUSH', KEYS[2], ARGV[2]) end
end
return removed
"""

# KEYS: workers, queue; ARGV: key prefix, this worker. Entries of workers whose lease is gone go back to the
# head of the queue (they were taken first, so they go first again).
_RECLAIM = """
local moved = 0
for _, w in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if w ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. 'lease:' .. w) == 0 then
    local plist = ARGV[1] .. 'processing:' .. w
    while redis.call('LMOVE', plist, KEYS[2], 'RIGHT', 'LEFT') do
      moved = moved + 1
    end
    redis.call('SREM', KEYS[1], w)
  end
end
return moved
"""

# KEYS: listing, queue, workers; ARGV: key prefix. 1 when the listing is done and no entry is waiting or claimed.
_FINISHED = """
if redis.call('HGET', KEYS[1], 'state') ~= 'done' then return 0 end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
for _, w in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('LLEN', ARGV[1] .. 'processing:' .. w) > 0 then return 0 end
end
return 1
"""


def encode_entry(repo_type: str, repo_id: str, sha: str | None, record: dict[str, Any], attempts: int = 0) -> str:
    """The queue entry of one entity's listing record."""
    return json.dumps(
        {"k": done_key(repo_type, repo_id, sha), "t": repo_type, "r": record, "a": attempts},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def done_key(repo_type: str, repo_id: str, sha: str | None) -> str:
    """`type/id@sha`: the entity at one version (the done marker, and the discovery's push key)."""
    return f"{repo_type}/{repo_id}@{sha or ''}"


def completion_key(repo_type: str, repo_id: str) -> str:
    return f"{repo_type}/{repo_id}"


class EntityWorkQueue:
    """One spider's work in Redis, seen by one process (a worker, or the discovery: *worker* is then unused).

    Attributes:
        keys: the key names (`WorkKeys`).
        worker: this worker's id (`host:pid:random`).
        lease_ms: how long a claim lasts without a heartbeat.
    """

    def __init__(self, client: redis.Redis[Any], keys: WorkKeys, worker: str = "", lease: float = 30.0) -> None:
        self.client = client
        self.keys = keys
        self.worker = worker
        self.lease_ms = max(1000, int(lease * 1000))
        self._push = client.register_script(_PUSH)
        self._claim = client.register_script(_CLAIM)
        self._ack = client.register_script(_ACK)
        self._move = client.register_script(_MOVE)
        self._reclaim = client.register_script(_RECLAIM)
        self._finished = client.register_script(_FINISHED)

    @property
    def processing(self) -> str:
        return self.keys.processing(self.worker)

    # -- the discovery ----------------------------------------------------------------------------------------

    def begin_listing(self, run: str, *, fresh: bool) -> None:
        """The discovery starts (*fresh*: a new crawl, which forgets the last crawl's pushes and done markers;
        else a resumed one, which keeps them)."""
        k = self.keys
        with self.client.pipeline(transaction=True) as pipe:
            if fresh:
                pipe.delete(k.pushed, k.done, k.completions, k.by_worker, k.failed, k.listing)
            pipe.hset(k.listing, mapping={"state": LISTING_RUNNING, "run": run})
            pipe.execute()

    def push(self, key: str, entry: str) -> bool:
        """Queue *entry* unless this crawl pushed *key* already; True when it was queued."""
        return bool(self._push(keys=[self.keys.pushed, self.keys.queue, self.keys.listing], args=[key, entry]))

    def finish_listing(self) -> int:
        """Every page is pushed: workers may end once the queue is drained. Returns the entries pushed."""
        self.client.hset(self.keys.listing, "state", LISTING_DONE)
        return int(self.client.hget(self.keys.listing, "pushed") or 0)

    def pushed_keys(self) -> Iterator[str]:
        for raw in self.client.sscan_iter(self.keys.pushed, count=1000):
            yield raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)

    # -- a worker ---------------------------------------------------------------------------------------------

    def heartbeat(self) -> bool:
        """Register this worker and renew its lease; False when the lease had run out (its entries may have been
        reclaimed by another worker meanwhile)."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(self.keys.workers, self.worker)
            pipe.set(self.keys.lease(self.worker), "1", px=self.lease_ms, get=True)
            _, previous = pipe.execute()
        return previous is not None

    def claim(self, n: int) -> tuple[list[bytes], int]:
        """Move up to *n* entries into this worker's processing list: `(entries, entries skipped as done)`."""
        skipped, entries = self._claim(keys=[self.keys.queue, self.processing, self.keys.done], args=[n])
        return list(entries), int(skipped)

    def ack(self, entry: bytes | str, repo_type: str, repo_id: str, sha: str | None, *, completed: bool) -> bool:
        """The entity is finished (*completed*: every stage ran and the state recorded it): set its done marker,
        count the completion, drop the entry from the processing list. False when the entry was not there (the
        lease ran out and another worker reclaimed it)."""
        return bool(
            self._ack(
                keys=[self.processing, self.keys.done, self.keys.completions, self.keys.by_worker],
                args=[
                    entry,
                    done_key(repo_type, repo_id, sha),
                    completion_key(repo_type, repo_id),
                    self.worker,
                    "1" if completed else "0",
                ],
            )
        )

    def retry(self, entry: bytes | str, max_attempts: int) -> bool:
        """The entity's stages failed: queue it again with one more attempt, or, after *max_attempts*, move it to
        the failed list. Returns True when it was queued again."""
        data = json.loads(entry)
        data["a"] = int(data.get("a", 0)) + 1
        again = data["a"] < max_attempts
        new = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
        target = self.keys.queue if again else self.keys.failed
        self._move(keys=[self.processing, target], args=[entry, new, "tail"])
        return again

    def release(self, entries: list[bytes]) -> None:
        """Give claimed entries back to the head of the queue, untouched (a graceful stop)."""
        for entry in entries:
            self._move(keys=[self.processing, self.keys.queue], args=[entry, entry, "head"])

    def discard(self, entry: bytes) -> None:
        """Move an unusable claimed entry to the failed list."""
        self._move(keys=[self.processing, self.keys.failed], args=[entry, entry, "tail"])

    def defer(self, entry: bytes) -> None:
        """Put one claimed entry back at the tail of the queue (its entity is already in this worker's stages)."""
        self._move(keys=[self.processing, self.keys.queue], args=[entry, entry, "tail"])

    def reclaim(self) -> int:
        """Put the entries of every worker whose lease ran out back into the queue; returns how many."""
        return int(self._reclaim(keys=[self.keys.workers, self.keys.queue], args=[self.keys.prefix, self.worker]))

    def finished(self) -> bool:
        """The listing is done, and no entry waits in the queue or is claimed by any worker."""
        k = self.keys
        return bool(self._finished(keys=[k.listing, k.queue, k.workers], args=[k.prefix]))

    def leave(self) -> None:
        """This worker stops: drop its lease and registration (only once its processing list is empty)."""
        if self.client.llen(self.processing) == 0:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.srem(self.keys.workers, self.worker)
                pipe.delete(self.keys.lease(self.worker))
                pipe.execute()
