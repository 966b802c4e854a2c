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
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from celery import bootsteps

from config import logs
from jobs import heartbeat
from workers import metrics

log = logging.getLogger("gengate.sweeper")


def _resume(job_id: str) -> None:
    from tasks import pipeline
    from tasks.runtime import get_runtime

    rt = get_runtime()
    start, state = time.perf_counter(), "success"
    with logs.context(job_id=job_id):
        try:
            job = rt.store.get(job_id)
            if job is None:
                rt.store.unschedule(job_id)
            else:
                pipeline.resume(rt, job)
        except Exception:  # one bad job must not stop the sweeper; its claim lease re-drives it later
            state = "failure"
            log.exception("sweeping job %s failed", job_id)
    metrics.step_done("sweeper.resume", state, time.perf_counter() - start)


def sweep_forever(stop: threading.Event, name: str | None = None) -> None:
    from tasks import webhooks
    from tasks.runtime import get_runtime

    rt = get_runtime()
    s = rt.settings
    slots = threading.BoundedSemaphore(s.worker_concurrency)
    # A claimed job comes back by itself after this if its sweeper dies mid-resume: long enough for one
    # resume (a poll is at most two provider calls), otherwise the step lease. Not a fixed 30 s floor:
    # the resilience suite measured that floor as the re-drive time of every poll lost with its worker,
    # whatever GENGATE_STEP_LEASE_SECONDS said.
    claim_lease = max(2 * s.fal.timeout, s.step_lease_seconds)
    # Due webhook deliveries only become Celery messages (one LPUSH each), so they need no slots.
    dispatch_webhooks = webhooks.dispatcher(rt.redis, lease_seconds=webhooks.lease_seconds(s))
    name = name or socket.gethostname()
    next_beat = 0.0  # the heartbeat /readyz counts (jobs/heartbeat.py): at once, then every few seconds
    # Sweeps in a row that could not reach Redis. While Redis is down (measured by the resilience
    # suite: ~30 sweeps/s, each logging two tracebacks) the loop backs off to one sweep every 2 s and
    # logs the first failure in full, then one line per sweep, then one line when Redis is back.
    failing = 0

    def failed(what: str, exc: Exception) -> None:
        if failing == 0:
            log.exception("%s failed; retrying", what)
        else:
            log.error("%s failed again (%s); retrying", what, exc)

    def run(job_id: str) -> None:
        try:
            _resume(job_id)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=s.worker_concurrency, thread_name_prefix="sweeper") as pool:
        while not stop.is_set():
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + s.worker_heartbeat_seconds
                try:
                    heartbeat.beat(rt.redis, name)
                except Exception:
                    log.exception("worker heartbeat failed; retrying")
            free = 0
            while slots.acquire(blocking=False):
                free += 1
            ok = True
            try:
                due = rt.store.claim_due(lease_seconds=claim_lease, limit=free) if free else []
            except Exception as exc:
                failed("claiming due jobs", exc)
                due, ok = [], False
            for _ in range(free - len(due)):
                slots.release()
            if due:
                metrics.SWEEPER_CLAIMED.inc(len(due))
            for job_id in due:
                pool.submit(run, job_id)
            try:
                queued = dispatch_webhooks(s.sweep_batch) if ok else 0
                if queued:
                    metrics.SWEEPER_WEBHOOKS.inc(queued)
                hooks_left = queued == s.sweep_batch
            except Exception as exc:
                failed("queueing due webhooks", exc)
                hooks_left, ok = False, False
            if not ok:
                failing += 1
                stop.wait(min(s.sweep_interval_seconds * 2 ** min(failing, 8), 2.0))
                continue
            if failing:
                log.warning("sweeping works again after %d failed sweeps", failing)
                failing = 0
            if (len(due) < free or not free) and not hooks_left:
                stop.wait(s.sweep_interval_seconds)


class Sweeper(bootsteps.StartStopStep):
    """Runs `sweep_forever` beside the worker's task pool for the worker's whole life."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs) -> None:
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self.worker_name: str | None = None

    def start(self, worker) -> None:
        from tasks.runtime import get_runtime

        metrics.serve(get_runtime().settings)  # the worker's /metrics, if GENGATE_WORKER_METRICS_PORT is set
        self.worker_name = getattr(worker, "hostname", None) or socket.gethostname()
        self.thread = threading.Thread(target=sweep_forever, args=(self.stop_event, self.worker_name),
                                       name="gengate-sweeper", daemon=True)
        self.thread.start()

    def stop(self, worker) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout=10)
        if self.worker_name is not None:
            try:  # a worker that stops cleanly stops counting as alive at once
                from tasks.runtime import get_runtime

                heartbeat.forget(get_runtime().redis, self.worker_name)
            except Exception:
                log.warning("could not remove the heartbeat of %s", self.worker_name)
        metrics.stop_serving()
