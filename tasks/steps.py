"""The Celery tasks: thin wrappers that hand each step to `tasks.pipeline`."""

from __future__ import annotations

from tasks import enqueue as q
from tasks import pipeline
from tasks import webhooks
from tasks.runtime import get_runtime
from workers.celery_app import app


@app.task(name=q.SUBMIT)
def submit(job_id: str) -> None:
    pipeline.submit(get_runtime(), job_id)


# The pipeline finalizes inline now (tasks/pipeline.py `_finalize_now`); the task stays registered for
# messages an older version left in the queues.
@app.task(name=q.FINALIZE)
def finalize(job_id: str) -> None:
    pipeline.finalize(get_runtime(), job_id)


@app.task(name=q.CANCEL)
def cancel(job_id: str) -> None:
    pipeline.cancel(get_runtime(), job_id)


@app.task(name=webhooks.TASK)
def webhook(delivery_id: str, claim: int) -> None:
    webhooks.deliver(get_runtime(), delivery_id, claim)
