"""The threads probes run in, apart from everything else of the API process.

A probe downloads a file and runs ffprobe on it: seconds of blocking work. In the event loop's
default executor it would share the threads that resolve host names for every request's URL check,
so a handful of slow probes from one tenant would stall every tenant's job submissions. Here they
get `GENGATE_PROBE_THREADS` threads of their own; as many more may wait for one, and a probe past
that is answered 429 at once rather than queued without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from gengate.jobs.errors import RateLimitError

T = TypeVar("T")
RETRY_AFTER_SECONDS = 2


class Probes:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="probe")
        self._room = asyncio.Semaphore(2 * threads)  # running plus waiting

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._room.locked():
            raise RateLimitError("Too many probes are running on this server; retry shortly",
                                 retry_after=RETRY_AFTER_SECONDS)
        async with self._room:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
