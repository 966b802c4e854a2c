"""Task names and the one way we put a pipeline step on its Celery queue (a single LPUSH)."""

from __future__ import annotations

from typing import Any

from gengate.tasks.queues import queue_for
from gengate.tasks.wire import celery_message

SUBMIT = "gengate.submit"
FINALIZE = "gengate.finalize"
CANCEL = "gengate.cancel"


def step_message(task: str, job_id: str, capability: str) -> tuple[str, bytes]:
    return celery_message(task, [job_id], queue=queue_for(capability))


def enqueue(redis: Any, task: str, job_id: str, capability: str) -> None:
    """`redis` may be a client or a pipeline: the message is one LPUSH either way."""
    key, payload = step_message(task, job_id, capability)
    redis.lpush(key, payload)
