"""The sweeper: one thread per worker process that moves waiting jobs on without Celery messages.

Jobs that wait on a provider sit in the `gengate:schedule` sorted set, scored by when to look at
them next (next poll, or a lease after which a lost step is re-driven). Each sweeper atomically
claims what is due and hands it to a thread pool running `tasks.pipeline.resume`. Polls never
become Celery countdowns (an ETA beyond the visibility timeout runs several times, celery#5935), and
ten thousand waiting jobs cost ten thousand zset entries, not ten thousand messages in a worker.

How many resumes run at once: up to `GENGATE_WORKER_CONCURRENCY`, as in the task pool, while
they use the CPU; but a resume that has waited `WAITING_AFTER_SECONDS` (on a provider, nearly always)
stops counting, and another starts beside it, up to `GENGATE_SWEEPER_THREADS` in all. A poll of a
provider that hangs holds its thread for the provider's whole timeout: a pool that counted it as
working would queue every other due job behind such polls, and a pool that let every thread work at
once would let many due polls take the CPU from the submissions (RESILIENCE.md, BENCHMARKS.md).
Waiting threads are cheap; running ones are not.

Due webhook deliveries (`gengate:webhooks:due`) are claimed the same way and queued as
`gengate.webhook` Celery messages (tasks/webhooks.py).
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from celery import bootsteps

from gengate.config import logs
from gengate.jobs import heartbeat
from gengate.tasks import metrics as step_metrics
from gengate.workers import metrics

log = logging.getLogger("gengate.sweeper")

# A provider call usually answers well within this; a resume still going after it is waiting, not
# working, and lets another one start.
WAITING_AFTER_SECONDS = 1.0


class Slots:
    """The sweeper's count of resumes: at most `working` that started less than WAITING_AFTER_SECONDS
    ago, at most `threads` in all. Used from the sweeper's loop (`free`, `begin`) and from the pool's
    threads (`end`)."""

    def __init__(self, working: int, threads: int) -> None:
        self.working_cap, self.threads_cap = working, threads
        self._lock = threading.Lock()
        self._young: dict[int, float] = {}  # run id -> start (monotonic), for runs not yet waiting
        self._running = 0
        self._next_id = 0

    def free(self) -> int:
        """How many more resumes may start now."""
        now = time.monotonic()
        with self._lock:
            for run_id, started in list(self._young.items()):
                if now - started >= WAITING_AFTER_SECONDS:
                    del self._young[run_id]
            metrics.SWEEPER_RUNNING.set(self._running)
            metrics.SWEEPER_WAITING.set(self._running - len(self._young))
            return max(0, min(self.working_cap - len(self._young), self.threads_cap - self._running))

    def begin(self) -> int:
        with self._lock:
            run_id = self._next_id
            self._next_id += 1
            self._young[run_id] = time.monotonic()
            self._running += 1
            return run_id

    def end(self, run_id: int) -> None:
        with self._lock:
            self._young.pop(run_id, None)
            self._running -= 1


def _resume(job_id: str) -> None:
    from gengate.tasks import pipeline
    from gengate.tasks.runtime import get_runtime

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
    step_metrics.step_done("sweeper.resume", state, time.perf_counter() - start)


def sweep_forever(stop: threading.Event, name: str | None = None) -> None:
    from gengate.tasks import retention, webhooks
    from gengate.tasks.runtime import get_runtime

    rt = get_runtime()
    s = rt.settings
    threads = max(s.sweeper_threads, s.worker_concurrency)
    slots = Slots(working=s.worker_concurrency, threads=threads)
    # A claimed job comes back by itself after this if its sweeper dies mid-resume: long enough for one
    # resume (a poll is at most two provider calls), otherwise the step lease. No floor of its own: it is
    # how long a poll lost with its worker waits to be re-driven, which GENGATE_STEP_LEASE_SECONDS
    # promises to bound (RESILIENCE.md).
    claim_lease = max(2 * s.fal.timeout, s.step_lease_seconds)
    # Due webhook deliveries only become Celery messages (one LPUSH each), so they need no slots.
    dispatch_webhooks = webhooks.dispatcher(rt.redis, lease_seconds=webhooks.lease_seconds(s))
    name = name or socket.gethostname()
    next_beat = 0.0  # the heartbeat /readyz counts (jobs/heartbeat.py): at once, then every few seconds
    # Sweeps in a row that could not reach Redis. While Redis is down the loop backs off to one sweep
    # every 2 s, so an outage neither spins nor floods the log, and logs the first failure in full,
    # then one line per sweep, then one line when Redis is back.
    failing = 0

    def failed(what: str, exc: Exception) -> None:
        if failing == 0:
            log.exception("%s failed; retrying", what)
        else:
            log.error("%s failed again (%s); retrying", what, exc)

    def run(job_id: str, run_id: int) -> None:
        try:
            _resume(job_id)
        finally:
            slots.end(run_id)

    retention_thread: threading.Thread | None = None
    next_retention = time.monotonic() + s.retention_interval_seconds * random.uniform(0.1, 1.0)  # spread out

    def keep_retention() -> None:
        try:
            retention.sweep(rt, owner=name)
        except Exception:
            log.exception("retention sweep failed; the next one retries")

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sweeper") as pool:
        while not stop.is_set():
            # Retention in a thread of its own: a long one must not hold up due polls.
            if time.monotonic() >= next_retention and (retention_thread is None or not retention_thread.is_alive()):
                next_retention = time.monotonic() + s.retention_interval_seconds
                retention_thread = threading.Thread(target=keep_retention, name="gengate-retention", daemon=True)
                retention_thread.start()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + s.worker_heartbeat_seconds
                try:
                    heartbeat.beat(rt.redis, name)
                except Exception:
                    log.exception("worker heartbeat failed; retrying")
            free = slots.free()
            ok = True
            try:
                due = rt.store.claim_due(lease_seconds=claim_lease, limit=free) if free else []
            except Exception as exc:
                failed("claiming due jobs", exc)
                due, ok = [], False
            if due:
                metrics.SWEEPER_CLAIMED.inc(len(due))
            for job_id in due:
                pool.submit(run, job_id, slots.begin())
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
        from gengate.tasks.runtime import get_runtime

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
                from gengate.tasks.runtime import get_runtime

                heartbeat.forget(get_runtime().redis, self.worker_name)
            except Exception:
                log.warning("could not remove the heartbeat of %s", self.worker_name)
        metrics.stop_serving()
