"""Which workers are alive: each worker's sweeper stamps `gengate:workers` every few seconds, and
`/readyz` and `/metrics` count the stamps that are recent. Both sides use Redis's own clock (TIME),
so clock skew between machines cannot make a live worker look dead or a dead one alive. Cheaper and
more direct than Celery's gossip/mingle (which the workers run without): a worker that stamps is a
worker whose sweeper loop turns, which is what moves jobs on."""

from __future__ import annotations

from typing import Any

from gengate.jobs import keys

FORGET_SECONDS = 24 * 3600  # stamps older than this are pruned by every beat

# KEYS: workers zset. ARGV: worker name, forget-after seconds.
BEAT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return 1
"""

# KEYS: workers zset. ARGV: window seconds. Returns how many workers stamped within the window.
ALIVE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')
"""

BEATS_PER_WINDOW = 3  # a worker counts as alive while one of its last three beats is in the window


def window_seconds(settings: Any) -> float:
    return BEATS_PER_WINDOW * settings.worker_heartbeat_seconds


def beat(redis: Any, name: str) -> None:
    redis.eval(BEAT_LUA, 1, keys.WORKERS, name, FORGET_SECONDS)


def forget(redis: Any, name: str) -> None:
    """A worker shutting down cleanly stops counting at once."""
    redis.zrem(keys.WORKERS, name)


def alive_args(settings: Any) -> tuple[str, int, str, float]:
    """`redis.eval(*alive_args(settings))`, sync or async: the number of live workers."""
    return ALIVE_LUA, 1, keys.WORKERS, window_seconds(settings)
