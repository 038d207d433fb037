"""`RedisPacing`: the rate-limit pacing of `RateLimitDownloaderMiddleware`, shared through Redis by every process.

The Hub counts requests per client identity (its token, else its IP), not per process: N workers on N machines
with one token share one quota. With HFSCRAPER_RATELIMIT_PACING = `redis` (the default of a distributed crawl) the
middleware keeps its pacers and 429 pauses in Redis instead of in the process:

- Per host and bucket, one hash holds what `QuotaPacer` (hfscraper/ratelimit_pacer.py) keeps in memory: the quota
  and window of the last `RateLimit-Policy`, the estimate of what is left (anchored on the `RateLimit` remaining of
  an answer, minus every request sent after it by any process), the window's end, the sequence number of the last
  request; a sorted set holds the requests in flight. The same rules apply (see that module): the budget left is
  spread evenly over the time left, `reserve` requests stay unspent, a window rolls over once its latest possible
  end has passed, answers to requests from before the current window are ignored.
- Each decision is one Lua script, run atomically by Redis, so two processes never take the same send slot, and
  every time is Redis's own clock (`TIME`), so machines need no synchronised clocks. A request goes out only after
  the script counted it (`try_send`); its answer feeds the estimate (`observed`), or ends it without (`forget`).
- Before the first answer tells the policy, one request at a time is in flight (a probe), so N processes starting
  together cannot spend more than a quota's worth before anyone knows the quota.
- A 429 pauses the host for every process (a key with the pause's end); the backoff count is shared too.
- Requests in flight of a process that died are dropped from the count when the window after the one they were
  sent in ends.

Blocking redis-py calls on the reactor: one round trip per request and per answer, far below the spacing of any
quota it paces (3.3 requests per second at the Hub's free tier), and the middleware's waits are between them.

Keys: `<namespace>:ratelimit:<host>:<bucket>` (hash), `...:<bucket>:inflight` (sorted set),
`<namespace>:ratelimit:<host>:pause`, `<namespace>:ratelimit:<host>:in_a_row`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from hfscraper.distributed.keys import DEFAULT_NAMESPACE, redis_from_settings

if TYPE_CHECKING:
    import redis
    from scrapy.settings import BaseSettings

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local FIELDS = {'quota', 'window', 'wend', 'guess', 'sent', 'last', 'first', 'arem', 'aseq', 'seen', 'probe'}
local function load()
  local v = redis.call('HMGET', KEYS[1], unpack(FIELDS))
  local s = {}
  for i, name in ipairs(FIELDS) do s[name] = tonumber(v[i]) end
  s.sent = s.sent or 0
  s.first = s.first or 0
  return s
end
local function save(s)
  local set, del = {}, {}
  for _, name in ipairs(FIELDS) do
    if s[name] == nil then del[#del + 1] = name else set[#set + 1] = name; set[#set + 1] = tostring(s[name]) end
  end
  if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
  if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
end
local function estimate(s)
  if s.arem == nil then return nil end
  return s.arem - (s.sent - s.aseq)
end
local function roll(s, now)
  if s.wend == nil or now < s.wend then return end
  -- unanswered since before the window that just ended began: their process is gone
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', s.first)
  s.wend = nil
  s.guess = nil
  s.first = s.sent
  if s.quota == nil then
    s.arem = nil
    s.aseq = nil
  else
    s.arem = s.quota - redis.call('ZCARD', KEYS[2])
    s.aseq = s.sent
  end
end
"""

# KEYS: bucket hash, in-flight set, host pause; ARGV: reserve. Returns {seq, 0} when sent, else {0, wait ms}.
_TRY_SEND = (
    _COMMON
    + """
local now = now_ms()
local pause = tonumber(redis.call('GET', KEYS[3])) or 0
if pause > now then return {0, pause - now} end
local s = load()
roll(s, now)
local left = estimate(s)
local ready = now
if left == nil or s.wend == nil then
  if s.quota == nil and s.seen == nil and redis.call('ZCARD', KEYS[2]) > 0 and (s.probe or 0) > now then
    return {0, math.min(s.probe - now, 100)}
  end
else
  local usable = left - tonumber(ARGV[1])
  if usable <= 0 then
    ready = s.wend
  else
    local start = s.last or now
    ready = math.max(now, start + (s.wend - start) / (usable + 1))
  end
end
if ready > now then return {0, math.ceil(ready - now)} end
s.sent = s.sent + 1
s.last = now
if s.seen == nil then s.probe = now + 5000 end
redis.call('ZADD', KEYS[2], s.sent, s.sent)
if s.wend == nil and s.arem ~= nil and s.window ~= nil then
  s.wend = now + s.window * 1000
  s.guess = 1
end
save(s)
return {s.sent, 0}
"""
)

# KEYS: bucket hash, in-flight set; ARGV: seq, remaining, reset seconds, quota or '', window or ''.
_OBSERVED = (
    _COMMON
    + """
local now = now_ms()
local seq, remaining, reset = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = load()
redis.call('ZREM', KEYS[2], seq)
s.seen = 1
if ARGV[4] ~= '' then s.quota = tonumber(ARGV[4]) end
if ARGV[5] ~= '' then s.window = tonumber(ARGV[5]) end
roll(s, now)
if seq <= s.first then save(s); return 0 end
local wend = now + math.max(0, reset) * 1000
local est = remaining - (s.sent - seq)
local cur = estimate(s)
local function open()
  s.wend = wend
  s.guess = nil
  s.first = seq - 1
  s.arem = remaining - redis.call('ZCOUNT', KEYS[2], '-inf', seq - 1)
  s.aseq = seq
end
local tolerance = math.max(s.window and s.window * 500 or 0, 1500)
if s.wend == nil or s.guess ~= nil then
  open()
elseif (cur ~= nil and est > cur + redis.call('ZCARD', KEYS[2]) + 1) or wend > s.wend + tolerance then
  open()
else
  s.wend = math.min(s.wend, wend)
  if cur == nil or est < cur then
    s.arem = remaining
    s.aseq = seq
  end
end
save(s)
return 1
"""
)

# KEYS: bucket hash, in-flight set; ARGV: seq.
_FORGET = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'seen', '1')
return 1
"""

# KEYS: host pause; ARGV: seconds (float). Returns {ms added, 1 if it was paused already}.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untl = now + math.ceil(tonumber(ARGV[1]) * 1000)
local current = tonumber(redis.call('GET', KEYS[1])) or 0
local was = 0
if current > now then was = 1 end
if untl <= current then return {0, was} end
redis.call('SET', KEYS[1], tostring(untl), 'PX', untl - now + 1000)
return {untl - math.max(current, now), was}
"""


class RedisPacing:
    """`LocalPacing`'s interface (hfscraper/middlewares/ratelimit.py) over Redis (see the module docstring).

    Times given and returned are on the middleware's clock; every decision is taken on Redis's.
    """

    def __init__(self, client: redis.Redis[Any], namespace: str, reserve: int) -> None:
        self.client = client
        self.prefix = f"{namespace or DEFAULT_NAMESPACE}:ratelimit:"
        self.reserve = reserve
        self._try_send = client.register_script(_TRY_SEND)
        self._observed = client.register_script(_OBSERVED)
        self._forget = client.register_script(_FORGET)
        self._pause = client.register_script(_PAUSE)

    @classmethod
    def from_settings(cls, settings: BaseSettings, reserve: int) -> Self:
        return cls(redis_from_settings(settings), settings.get("HFSCRAPER_DISTRIBUTED_NAMESPACE") or "", reserve)

    def _keys(self, host: str, bucket: str) -> list[str]:
        base = f"{self.prefix}{host}:{bucket}"
        return [base, base + ":inflight"]

    def _pause_key(self, host: str) -> str:
        return f"{self.prefix}{host}:pause"

    def try_send(self, host: str, bucket: str, now: float) -> tuple[float, int | None]:
        seq, wait_ms = self._try_send(keys=[*self._keys(host, bucket), self._pause_key(host)], args=[self.reserve])
        if int(seq) > 0:
            return now, int(seq)
        return now + max(int(wait_ms), 1) / 1000.0, None

    def describe(self, host: str, bucket: str) -> str:
        state = self.client.hgetall(self._keys(host, bucket)[0])
        shown = " ".join(f"{k.decode()}={v.decode()}" for k, v in sorted(state.items()))
        return f"<RedisPacing {shown}>"

    def observed(
        self, host: str, bucket: str, seq: int, now: float, remaining: int, reset: float,
        quota: int | None, window: float | None,
    ) -> None:  # fmt: skip
        self._observed(
            keys=self._keys(host, bucket),
            args=[seq, remaining, reset, "" if quota is None else quota, "" if window is None else window],
        )

    def forget(self, host: str, bucket: str, seq: int) -> None:
        self._forget(keys=self._keys(host, bucket), args=[seq])

    def answered(self, host: str) -> None:
        self.client.delete(f"{self.prefix}{host}:in_a_row")

    def rate_limited(self, host: str) -> int:
        key = f"{self.prefix}{host}:in_a_row"
        with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600)
            count, _ = pipe.execute()
        return int(count)

    def pause_for(self, host: str, now: float, seconds: float) -> tuple[float, bool]:
        added_ms, was = self._pause(keys=[self._pause_key(host)], args=[repr(float(seconds))])
        return int(added_ms) / 1000.0, bool(int(was))
