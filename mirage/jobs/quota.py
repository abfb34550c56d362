"""Quota counters in Redis (ADR 0027): one Lua script checks and counts both buckets of a number atomically.

Postgres is the truth, Redis the fast path: a missing key (Redis restarted or flushed, a new hour) is rebuilt
from `t_messages` under a short per-number lock before the claim goes on. Any number of workers may race:
the check and the increment are one atomic script.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime

from redis import Redis

from mirage.engine.quotas import Bucket

MISSING, HOUR_FULL, DAY_FULL, TAKEN = -1, 0, -2, 1
LOCK_MS = 5_000

_TAKE = """
local n = tonumber(ARGV[3])
local h = redis.call('GET', KEYS[1])
local d = redis.call('GET', KEYS[2])
if not h or not d then return -1 end
if tonumber(h) + n > tonumber(ARGV[1]) then return 0 end
if tonumber(d) + n > tonumber(ARGV[2]) then return -2 end
redis.call('INCRBY', KEYS[1], n)
redis.call('INCRBY', KEYS[2], n)
return 1
"""
_GIVE_BACK = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 and tonumber(redis.call('GET', key)) > 0 then redis.call('DECR', key) end
end
return 1
"""
# The tick's read of many counters (ADR 0061): MGET, answered as one comma-separated string (missing -> 0), which
# Python splits far faster than it parses thousands of replies.
_VALUES = """
local v = redis.call('MGET', unpack(KEYS))
for i = 1, #v do if not v[i] then v[i] = '0' end end
return table.concat(v, ',')
"""
_VALUES_CHUNK = 4_000  # keys per call: Lua's unpack takes about 8,000 at most


class QuotaCounter:
    """Take one message from a number's hour and day buckets, or say which one is full."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._values = redis.register_script(_VALUES)

    def take(self, number_id: str, hour: Bucket, day: Bucket, count_since: Callable[[datetime, datetime], int]) -> int:
        """TAKEN, HOUR_FULL or DAY_FULL; `count_since(start, end)` counts the truth when a key must be rebuilt."""
        for _ in range(50):
            result = int(self._take(keys=[hour.key, day.key], args=[hour.limit, day.limit, 1]))
            if result != MISSING:
                return result
            self._rebuild(number_id, (hour, day), count_since)
        raise TimeoutError(f"quota counters of number {number_id} could not be rebuilt")

    def give_back(self, hour: Bucket, day: Bucket) -> None:
        """Undo a take whose claim then failed (the message did not leave)."""
        self._give_back(keys=[hour.key, day.key], args=[])

    def _rebuild(
        self, number_id: str, buckets: Iterable[Bucket], count_since: Callable[[datetime, datetime], int]
    ) -> None:
        lock = f"mirage:quota:{number_id}:rebuild"
        token = str(time.monotonic_ns())
        if not self.redis.set(lock, token, nx=True, px=LOCK_MS):
            time.sleep(0.01)  # another worker is rebuilding; its keys appear in a moment
            return
        try:
            for b in buckets:
                if not self.redis.exists(b.key):
                    self.redis.set(b.key, count_since(b.start, b.end), ex=b.ttl_s, nx=True)
        finally:
            if self.redis.get(lock) == token.encode():
                self.redis.delete(lock)

    def used(self, keys: list[str]) -> list[int]:
        """Current values of several counters at once (missing -> 0): the tick's optimistic view."""
        out: list[int] = []
        for i in range(0, len(keys), _VALUES_CHUNK):
            values = self._values(keys=keys[i : i + _VALUES_CHUNK])
            out.extend(map(int, values.split(b"," if isinstance(values, bytes) else ",")))
        return out
