"""The pipeline baselines: a Celery app with gengate's broker and worker settings (workers/celery_app.py)
and one no-op task, plus a Redis result backend for the round-trip figure (apply_async -> no-op -> result).

The throughput baseline queues `bench.noop` messages built by workers/wire.py (what the API and the
steps push) and ignores results, exactly like gengate's own tasks.
"""

from __future__ import annotations

import os

from celery import Celery

BROKER = os.environ.get("GENGATE_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("bench", broker=BROKER, backend=BROKER)
# gengate's settings (workers/celery_app.py), copied rather than imported: importing that module
# would connect gengate's per-task signal handlers (log context, metrics) to this baseline too.
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_time_limit=120,
    task_soft_time_limit=100,
    broker_transport_options={"visibility_timeout": 600, "unacked_restore_interval": 10, "unacked_restore_throttle": 2},
    broker_connection_retry_on_startup=True,
    task_default_queue="bench",
    task_create_missing_queues=True,
    worker_send_task_events=True,
    task_send_sent_event=True,
)


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    return None


@app.task(name="bench.echo", ignore_result=False)
def echo() -> int:
    return 1
