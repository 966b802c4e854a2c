"""The pipeline baselines: a Celery app with gengate's broker and worker settings (workers/celery_app.py)
and one no-op task, plus a Redis result backend for the round-trip figure (apply_async -> no-op -> result).

The throughput baseline queues `bench.noop` messages built by tasks/wire.py (what the API and the
steps push) and ignores results, exactly like gengate's own tasks.
"""

from __future__ import annotations

import os

from celery import Celery

from gengate.config.settings import Settings
from gengate.workers.celery_conf import celery_settings

BROKER = os.environ.get("GENGATE_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("bench", broker=BROKER, backend=BROKER)
# gengate's settings, from the module the app takes them from (importing workers/celery_app.py itself
# would connect gengate's per-task signal handlers, log context and metrics, to this baseline too).
app.conf.update(**celery_settings(step_time_limit_seconds=Settings().step_time_limit_seconds, default_queue="bench"))


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    return None


@app.task(name="bench.echo", ignore_result=False)
def echo() -> int:
    return 1
