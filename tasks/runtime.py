"""Per-process worker resources (Redis pool, job store, storage), made once, lazily."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from redis import BlockingConnectionPool, Redis

from gengate.config.settings import Settings, get_settings
from gengate.jobs.cache import Scripts
from gengate.jobs.store import JobStore
from gengate.storage import get_storage
from gengate.storage.base import Storage


@dataclass
class Runtime:
    settings: Settings
    redis: Redis
    store: JobStore
    storage: Storage
    cache: Scripts


_lock = threading.Lock()
_runtime: tuple[int, Runtime] | None = None


def get_runtime() -> Runtime:
    global _runtime
    with _lock:
        if _runtime is None or _runtime[0] != os.getpid():  # never share sockets across a fork
            s = get_settings()
            # Many threads share one client: a blocking pool waits for a free connection instead of failing.
            pool = BlockingConnectionPool.from_url(s.resolved_redis_url(), max_connections=64, timeout=20,
                                                   **s.redis_options())
            redis = Redis(connection_pool=pool)
            _runtime = (os.getpid(), Runtime(s, redis, JobStore(redis, ttl_seconds=s.job_ttl_seconds), get_storage(),
                                          Scripts(redis)))
        return _runtime[1]
