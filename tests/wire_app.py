"""Celery app for tests/test_wire.py: our production settings, a private broker, one observable task.

Run as a real worker subprocess; the broker URL comes from WIRE_BROKER_URL, set by the test.
"""

from __future__ import annotations

import os

import redis
from celery import Celery

from gengate.workers.celery_app import app as _gengate_app

BROKER_URL = os.environ["WIRE_BROKER_URL"]

app = Celery("wire", broker=BROKER_URL)
# Same reliability settings as production (acks_late, reject-on-lost, JSON only, ...), so the test
# proves that our hand-built messages survive exactly the consumer path production uses.
app.conf.update(
    {k: v for k, v in _gengate_app.conf.changes.items() if k not in {"broker_url", "include", "deprecated_settings"}}
)
app.conf.worker_hijack_root_logger = True  # the test keeps the worker log for failure messages

_redis = redis.Redis.from_url(BROKER_URL)


@app.task(name="wire.record")
def record(key: str, value: str, suffix: str = "") -> None:
    # HLEN unacked > 0 while running shows the message is still held for a late ack.
    held = _redis.hlen("unacked")
    pipe = _redis.pipeline()
    pipe.set(key, value + suffix)
    pipe.rpush("wire:runs", key)
    pipe.rpush("wire:held", held)
    pipe.execute()
