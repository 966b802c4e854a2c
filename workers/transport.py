"""kombu's Redis transport, with one fix and one saving.

The saving: kombu builds a new `redis.Redis` client for every command it sends without one (each
message's unacked bookkeeping and its ack), and a client's constructor copies redis-py's table of
~250 reply callbacks into a case-insensitive dict, a visible share of a worker's CPU (BENCHMARKS.md).
A channel here keeps one synchronous client per connection pool (clients over one pool are
thread-safe; a new pool, after a reconnect, gets a new client).

The fix: a channel keeps the connection parameters it was made with.

Celery 5.7.0 with kombu 5.7.0: when the broker connection drops while the worker both runs an
`acks_late` task and waits in BRPOP for more (that is, most of the time), the consumer first
`collect()`s the connection, which detaches its transport (`transport.client = None`), and then
closes it. Whatever the old channel does next needs a new Redis pool, whose parameters kombu reads
from `transport.client`: restoring the unacknowledged messages as the channel closes, and acking the
tasks still running when they finish. Each raises `AttributeError("'NoneType' object has no
attribute 'hostname'")`, which kombu's and Celery's error handling do not expect, and the worker
exits ("Unrecoverable error"), so a Redis restart under load can leave no worker consuming. It
happens with a bare Celery app too (threads pool, -c 8, two acks_late tasks running, SIGTERM to
redis-server; RESILIENCE.md).

With the parameters remembered, those late calls reach Redis like any other: the messages are
restored, the finished tasks acked, or (Redis still down) a connection error is raised, which both
libraries handle. `install()` (workers/celery_app.py) makes it the class behind `redis://` and
`rediss://` URLs, which stay as they are (Flower picks its broker client by the URL's scheme).
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES, redis


class Channel(redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        saved: dict[bool, dict[str, Any]] = self.__dict__.setdefault("_gengate_connparams", {})
        if self.connection.client is None and asynchronous in saved:  # detached by collect(): see above
            return dict(saved[asynchronous])
        params = super()._connparams(asynchronous=asynchronous)
        saved[asynchronous] = dict(params)
        return params

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        cached = self.__dict__.get("_gengate_client")
        if cached is None or cached[0] is not pool:
            cached = self.__dict__["_gengate_client"] = (pool, super()._create_client())
        return cached[1]


class Transport(redis.Transport):
    Channel = Channel


def install() -> None:
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
