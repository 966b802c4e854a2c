"""The sweeper: one thread per worker process that moves waiting jobs on without Celery messages.

Jobs that wait on a provider sit in the `gengate:schedule` sorted set, scored by when to look at
them next (next poll, or a lease after which a lost step is re-driven). Each sweeper atomically
claims what is due and hands it to a thread pool running `tasks.pipeline.resume`. Polls never
become Celery countdowns (an ETA beyond the visibility timeout runs several times, celery#5935), and
ten thousand waiting jobs cost ten thousand zset entries, not ten thousand messages in a worker.

The pool has its own size (`GENGATE_SWEEPER_THREADS`), larger than the task pool's: a poll is one
provider call that may wait its whole timeout on a provider that hangs. Sized like the task pool,
eight threads held by hung polls queued every other due job behind them (tests/resilience/
test_faults.py: 33.5 s for a job whose bound was 25 s). A per-provider cap (`Bulkhead`) keeps one
hanging provider from holding all of them.
Due webhook deliveries (`gengate:webhooks:due`) are claimed the same way and queued as
`gengate.webhook` Celery messages (tasks/webhooks.py).
"""

from __future__ import annotations

import logging
import math
import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from celery import bootsteps

from config import logs
from jobs import heartbeat, keys
from workers import metrics

log = logging.getLogger("gengate.sweeper")

# How long a job whose provider holds its full share of threads waits before it is claimed again:
# short, because a busy provider frees threads within a poll; jittered, so deferred jobs spread out.
DEFER_SECONDS = 1.0


class Bulkhead:
    """Caps the sweeper threads one provider's jobs hold at once. The schedule holds job ids only, so
    the claimed jobs' providers are read in one round trip; a job over its provider's cap goes back on
    the schedule a moment later (its claim lease would hold it back for seconds), behind other
    providers' due jobs, without taking a thread."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.busy: Counter[str] = Counter()
        self._lock = threading.Lock()

    def admit(self, redis, job_ids: list[str]) -> list[tuple[str, str]]:
        """The (job id, provider) pairs that may run now; the others are deferred."""
        pipe = redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(keys.job(job_id), "provider")
        admitted, deferred = [], []
        with self._lock:
            for job_id, raw in zip(job_ids, pipe.execute()):
                # The field is JSON; a job that vanished has none and runs (resume unschedules it).
                provider = raw.decode().strip('"') if raw else ""
                if provider and self.busy[provider] >= self.cap:
                    deferred.append(job_id)
                    metrics.SWEEPER_DEFERRED.labels(provider).inc()
                else:
                    self.busy[provider] += 1
                    metrics.SWEEPER_BUSY.labels(provider or "unknown").inc()
                    admitted.append((job_id, provider))
        if deferred:
            now = time.time()
            try:  # XX: a job that ended meanwhile left the schedule and must not come back to it
                redis.zadd(keys.SCHEDULE, {j: now + DEFER_SECONDS * random.uniform(0.5, 1.5) for j in deferred},
                           xx=True)
            except Exception:  # the admitted jobs still run; the deferred ones come back after their claim lease
                log.warning("could not put back %d jobs over their provider's share", len(deferred))
        return admitted

    def release(self, provider: str) -> None:
        with self._lock:
            self.busy[provider] -= 1
        metrics.SWEEPER_BUSY.labels(provider or "unknown").dec()


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
    slots = threading.BoundedSemaphore(s.sweeper_threads)
    bulkhead = Bulkhead(max(1, math.ceil(s.sweeper_threads * s.sweeper_provider_share)))
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

    def run(job_id: str, provider: str) -> None:
        try:
            _resume(job_id)
        finally:
            bulkhead.release(provider)
            slots.release()

    with ThreadPoolExecutor(max_workers=s.sweeper_threads, thread_name_prefix="sweeper") as pool:
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
            admitted: list[tuple[str, str]] = []
            try:
                due = rt.store.claim_due(lease_seconds=claim_lease, limit=free) if free else []
                if due:
                    metrics.SWEEPER_CLAIMED.inc(len(due))
                    admitted = bulkhead.admit(rt.redis, due)
            except Exception as exc:  # claimed jobs not admitted come back after their claim lease
                failed("claiming due jobs", exc)
                due, ok = [], False
            for _ in range(free - len(admitted)):
                slots.release()
            for job_id, provider in admitted:
                pool.submit(run, job_id, provider)
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
