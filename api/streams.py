"""Open SSE streams, counted per account and per API process, and the Redis pool they read from.

A stream spends most of its life in a blocking `XREAD`, holding a Redis connection the whole time.
Drawn from the pool that serves every other request, a few hundred open streams from one tenant
left no connection for anyone's authentication (a 503 for every tenant). So streams read through a
pool of their own, sized to the per-process cap, and each new stream needs a free slot in both:

- per account (`GENGATE_SSE_MAX_STREAMS_PER_ACCOUNT`): a sorted set in Redis, shared by every API
  process, each member scored with the time its stream must have ended by, so a slot whose process
  died frees itself;
- per process (`GENGATE_SSE_MAX_STREAMS_PER_PROCESS`): the same bound on the stream pool.

Either one full is a 429 in the spec's error shape, with a Retry-After.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from redis.asyncio import BlockingConnectionPool, Redis

from gengate.config.settings import Settings
from gengate.jobs import keys
from gengate.jobs.errors import RateLimitError

# Seconds a slot outlives its stream's own cap before it counts as leaked (a process that died).
SLOT_GRACE_SECONDS = 30
RETRY_AFTER_SECONDS = 5

# KEYS[1]: the account's open streams. ARGV: cap, the slot's id, its lifetime in ms.
# -> 1 taken, 0 full. Leaked slots (past their end) are pruned first.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


def stream_pool(settings: Settings) -> Redis:
    """The Redis client streams read through: one connection per stream, never more than the cap."""
    # A stream's XREAD blocks up to the keepalive interval: the socket must wait longer than that
    # (redis-py's default read timeout, 5 s, cut every quiet stream short).
    pool = BlockingConnectionPool.from_url(settings.resolved_redis_url(),
                                           max_connections=settings.sse_max_streams_per_process + 1,
                                           timeout=5.0, health_check_interval=30,
                                           socket_timeout=settings.sse_keepalive_seconds + 10,
                                           **settings.redis_options())
    return Redis(connection_pool=pool)


@dataclass
class Slot:
    account: str
    id: str
    released: bool = False


@dataclass
class StreamSlots:
    """This process's open streams (slot id -> monotonic deadline) and the shared per-account count."""

    redis: Redis
    settings: Settings
    _open: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._acquire = self.redis.register_script(_ACQUIRE_LUA)

    async def acquire(self, account: str) -> Slot:
        s = self.settings
        now = time.monotonic()
        lifetime = s.sse_max_seconds + SLOT_GRACE_SECONDS
        # A stream whose generator never ran (its client left before the first byte) never released.
        for slot_id in [k for k, end in self._open.items() if end < now]:
            del self._open[slot_id]
        if len(self._open) >= s.sse_max_streams_per_process:
            raise RateLimitError(f"This API process has {s.sse_max_streams_per_process} event streams open, its "
                                 "most; retry shortly or poll GET /v1/jobs/{id}", retry_after=RETRY_AFTER_SECONDS)
        slot = Slot(account, secrets.token_hex(8))
        self._open[slot.id] = now + lifetime  # before the await: concurrent requests see it taken
        try:
            taken = await self._acquire(keys=[keys.account_streams(account)],
                                        args=[s.sse_max_streams_per_account, slot.id, int(lifetime * 1000)])
        except BaseException:
            del self._open[slot.id]
            raise
        if not taken:
            del self._open[slot.id]
            raise RateLimitError(f"Too many open event streams: at most {s.sse_max_streams_per_account} per account; "
                                 "close one, or poll GET /v1/jobs/{id}", retry_after=RETRY_AFTER_SECONDS)
        return slot

    async def release(self, slot: Slot) -> None:
        if slot.released:
            return
        slot.released = True
        self._open.pop(slot.id, None)
        await self.redis.zrem(keys.account_streams(slot.account), slot.id)

    @property
    def open(self) -> int:
        return len(self._open)
