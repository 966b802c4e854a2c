"""Provider SDK clients, one per key, in one bounded cache that forgets idle ones.

The SDKs bind a key to a client, so every key needs a client of its own, and users' own keys
(BYOK) are as many as anyone cares to send. The cache keeps at most `max_size` clients, drops the
least recently used past that, and drops any client unused for `idle_seconds`: a user's plain key
then stays in a worker's memory only while its jobs are running (jobs/sealing.py), and a stream of
random keys costs a bounded number of connection pools. A dropped client is not closed, since
another thread may be in a call on it; it is released when the last call returns.

Entries are found by the key's SHA-256, so the cache's own index holds no plain key.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C")


class ClientCache(Generic[C]):
    def __init__(self, make: Callable[[str], C], *, max_size: int, idle_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._make, self._max, self._idle, self._clock = make, max_size, idle_seconds, clock
        self._entries: OrderedDict[bytes, tuple[C, float]] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def get(self, key: str) -> C:
        """The client for `key`, made on first use (outside the lock: making one may be slow)."""
        digest = hashlib.sha256(key.encode()).digest()
        now = self._clock()
        with self._lock:
            self._expire(now)
            found = self._entries.get(digest)
            if found is not None:
                self._entries[digest] = (found[0], now)
                self._entries.move_to_end(digest)
                return found[0]
        client = self._make(key)
        with self._lock:
            found = self._entries.get(digest)
            if found is not None:  # another thread made one meanwhile: use that, drop ours
                return found[0]
            self._entries[digest] = (client, now)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return client

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._entries)

    def _expire(self, now: float) -> None:
        while self._entries:
            _, (_, used) = next(iter(self._entries.items()))
            if now - used < self._idle:
                return
            self._entries.popitem(last=False)
