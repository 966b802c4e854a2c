"""gengate's Celery settings as plain values, with no side effects on import: the app
(workers/celery_app.py) and the benchmarks' no-op baseline (bench/noop_app.py) take the very same
broker and reliability settings from here, so the baseline cannot drift from what it is compared to."""

from __future__ import annotations

from typing import Any


def celery_settings(*, step_time_limit_seconds: float, default_queue: str) -> dict[str, Any]:
    return dict(
        task_serializer="json",
        accept_content=["json"],
        # Job state lives in our own Redis records; a result backend would only add ~7 Redis commands a task.
        task_ignore_result=True,
        # docs/celery.md: with early ack, kill -9 loses every running task. Late ack + reject-on-lost redelivers
        # them, and every step is idempotent so a redelivery resumes rather than repeats.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Keep every step far shorter than the visibility timeout (celery#5935 and redelivery storms).
        task_time_limit=step_time_limit_seconds + 20,
        task_soft_time_limit=step_time_limit_seconds,
        broker_transport_options={
            "visibility_timeout": 600,
            # kombu's defaults scan for abandoned messages only every ~100 s; our sweeper is the fast path
            # for lost steps, this is the backstop.
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 2,
        },
        broker_connection_retry_on_startup=True,
        task_default_queue=default_queue,
        task_create_missing_queues=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
