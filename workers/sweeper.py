"""The sweeper: one thread per worker process that moves waiting jobs on without Celery messages.

Jobs that wait on a provider sit in the `gengate:schedule` sorted set, scored by when to look at
them next (next poll, or a lease after which a lost step is re-driven). Each sweeper atomically
claims what is due and hands it to a small thread pool running `tasks.pipeline.resume`. Polls never
become Celery countdowns (an ETA beyond the visibility timeout runs several times, celery#5935), and
ten thousand waiting jobs cost ten thousand zset entries, not ten thousand messages in a worker.
Due webhook deliveries (`gengate:webhooks:due`) are claimed the same way and queued as
`gengate.webhook` Celery messages (tasks/webhooks.py).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from celery import bootsteps

log = logging.getLogger("gengate.sweeper")


def _resume(job_id: str) -> None:
    from tasks import pipeline
    from tasks.runtime import get_runtime

    rt = get_runtime()
    try:
        job = rt.store.get(job_id)
        if job is None:
            rt.store.unschedule(job_id)
        else:
            pipeline.resume(rt, job)
    except Exception:  # one bad job must not stop the sweeper; its claim lease re-drives it later
        log.exception("sweeping job %s failed", job_id)


def sweep_forever(stop: threading.Event) -> None:
    from tasks import webhooks
    from tasks.runtime import get_runtime

    rt = get_runtime()
    s = rt.settings
    slots = threading.BoundedSemaphore(s.worker_concurrency)
    claim_lease = max(2 * s.fal.timeout, 30.0)
    # Due webhook deliveries only become Celery messages (one LPUSH each), so they need no slots.
    dispatch_webhooks = webhooks.dispatcher(rt.redis, lease_seconds=webhooks.lease_seconds(s))

    def run(job_id: str) -> None:
        try:
            _resume(job_id)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=s.worker_concurrency, thread_name_prefix="sweeper") as pool:
        while not stop.is_set():
            free = 0
            while slots.acquire(blocking=False):
                free += 1
            try:
                due = rt.store.claim_due(lease_seconds=claim_lease, limit=free) if free else []
            except Exception:
                log.exception("claiming due jobs failed; retrying")
                due = []
            for _ in range(free - len(due)):
                slots.release()
            for job_id in due:
                pool.submit(run, job_id)
            try:
                hooks_left = dispatch_webhooks(s.sweep_batch) == s.sweep_batch
            except Exception:
                log.exception("queueing due webhooks failed; retrying")
                hooks_left = False
            if (len(due) < free or not free) and not hooks_left:
                stop.wait(s.sweep_interval_seconds)


class Sweeper(bootsteps.StartStopStep):
    """Runs `sweep_forever` beside the worker's task pool for the worker's whole life."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs) -> None:
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, worker) -> None:
        self.thread = threading.Thread(target=sweep_forever, args=(self.stop_event,), name="gengate-sweeper", daemon=True)
        self.thread.start()

    def stop(self, worker) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
