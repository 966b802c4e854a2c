"""The Celery tasks: thin wrappers that hand each step to `tasks.pipeline`. They are shared tasks:
they bind to the app the worker made (workers/celery_app.py), so importing them builds no app."""

from __future__ import annotations

from celery import shared_task

from gengate.tasks import enqueue as q
from gengate.tasks import pipeline, webhooks
from gengate.tasks.runtime import get_runtime


@shared_task(name=q.SUBMIT)
def submit(job_id: str) -> None:
    pipeline.submit(get_runtime(), job_id)


# The pipeline finalizes inline, in the step that found the result (tasks/pipeline.py
# `_finalize_now`); this task consumes finalize messages still queued by an earlier release.
@shared_task(name=q.FINALIZE)
def finalize(job_id: str) -> None:
    pipeline.finalize(get_runtime(), job_id)


@shared_task(name=q.CANCEL)
def cancel(job_id: str) -> None:
    pipeline.cancel(get_runtime(), job_id)


@shared_task(name=webhooks.TASK)
def webhook(delivery_id: str, claim: int) -> None:
    webhooks.deliver(get_runtime(), delivery_id, claim)
