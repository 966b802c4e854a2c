"""A worker's own Prometheus metrics and its per-task log context.

Served by prometheus_client's HTTP server at `http://<GENGATE_WORKER_METRICS_HOST>:<GENGATE_WORKER_METRICS_PORT>/metrics`
(0 = off), started by the sweeper bootstep. The worker runs the threads pool, one process, so the
process's default registry holds everything; each worker on one host needs its own port.

  gengate_provider_request_duration_seconds{provider,call,outcome}  each adapter call: submit, poll,
      cancel; outcome ok | retryable | error
  gengate_worker_steps_total{task,state}        steps run: Celery tasks (gengate.submit, ...) and the
      sweeper's resumes (sweeper.resume); state success | failure | retry
  gengate_worker_step_duration_seconds{task}
  gengate_sweeper_claimed_jobs_total            due jobs the sweeper took from the schedule
  gengate_sweeper_running_jobs                  jobs the sweeper's threads are moving on now
  gengate_sweeper_waiting_jobs                  ... of them, waiting over a second (on a provider)
  gengate_sweeper_queued_webhooks_total         due webhook deliveries it queued
  gengate_webhook_deliveries_total{outcome}     attempts: delivered | gone (410) | retry | exhausted |
      refused (network policy) | dropped (job or secret gone)

Job-level counts (created, completed, failed by provider and model) are not here: they are counted in
Redis by the job store and exposed by the API's /metrics, exact across all processes.
"""

from __future__ import annotations

import logging
import threading
from time import perf_counter
from typing import Any, Callable, TypeVar

from celery import signals
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from config import logs

log = logging.getLogger("gengate.metrics")
T = TypeVar("T")

PROVIDER_SECONDS = Histogram(
    "gengate_provider_request_duration_seconds",
    "Duration of each provider adapter call, by provider, call (submit, poll, cancel) and outcome.",
    ["provider", "call", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))
STEPS = Counter("gengate_worker_steps", "Pipeline steps run by this worker, by task and final state.",
                ["task", "state"])
STEP_SECONDS = Histogram(
    "gengate_worker_step_duration_seconds", "Duration of each pipeline step, by task.", ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))
SWEEPER_CLAIMED = Counter("gengate_sweeper_claimed_jobs", "Due jobs this worker's sweeper claimed from the schedule.")
SWEEPER_RUNNING = Gauge("gengate_sweeper_running_jobs", "Jobs the sweeper's threads are moving on now.")
SWEEPER_WAITING = Gauge("gengate_sweeper_waiting_jobs", "Of those, the ones waiting over a second (on a "
                        "provider, nearly always): they no longer count against GENGATE_WORKER_CONCURRENCY.")
SWEEPER_WEBHOOKS = Counter("gengate_sweeper_queued_webhooks", "Due webhook deliveries this worker's sweeper queued.")
WEBHOOKS = Counter("gengate_webhook_deliveries", "Webhook delivery attempts by outcome.", ["outcome"])


def provider_call(provider: str, call: str, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)`, timed into gengate_provider_request_duration_seconds."""
    start = perf_counter()
    outcome = "error"
    try:
        result = fn(*args)
        outcome = "ok"
        return result
    except BaseException as exc:
        if getattr(exc, "retryable", False):
            outcome = "retryable"
        raise
    finally:
        PROVIDER_SECONDS.labels(provider, call, outcome).observe(perf_counter() - start)


def step_done(task: str, state: str, seconds: float) -> None:
    STEPS.labels(task, state).inc()
    STEP_SECONDS.labels(task).observe(seconds)


def webhook(outcome: str) -> None:
    WEBHOOKS.labels(outcome).inc()


def job_of(args: Any) -> str | None:
    """The job a task is about: its first argument (a job id, or a webhook delivery id
    `msg_<hex>_<event>` naming job `job_<hex>`)."""
    first = args[0] if args else None
    if not isinstance(first, str):
        return None
    if first.startswith("job_"):
        return first
    if first.startswith("msg_") and first.count("_") >= 2:
        return "job_" + first[4:].rsplit("_", 1)[0]
    return None


# Celery calls prerun and postrun in the thread that runs the task (threads pool): the task's log
# context and start time live in that thread.
_running = threading.local()


@signals.task_prerun.connect
def _task_prerun(task: Any = None, args: Any = None, **_: Any) -> None:
    _running.token = logs.begin(job_id=job_of(args))
    _running.start = perf_counter()


@signals.task_postrun.connect
def _task_postrun(task: Any = None, state: str | None = None, **_: Any) -> None:
    start = getattr(_running, "start", None)
    if start is not None:
        step_done(getattr(task, "name", "unknown"), (state or "unknown").lower(), perf_counter() - start)
        _running.start = None
    token = getattr(_running, "token", None)
    if token is not None:
        logs.end(token)
        _running.token = None


_server: Any = None
_server_lock = threading.Lock()


def serve(settings: Any) -> None:
    """Start the metrics endpoint once per process if a port is set; a port already taken is logged,
    not fatal (the worker's jobs matter more than its metrics)."""
    global _server
    port = settings.worker_metrics_port
    if not port:
        return
    with _server_lock:
        if _server is not None:
            return
        try:
            _server = start_http_server(port, addr=settings.worker_metrics_host)
        except OSError as exc:
            log.error("worker metrics: cannot listen on %s:%d (%s); this worker exposes no metrics",
                      settings.worker_metrics_host, port, exc)
            return
    log.info("worker metrics on http://%s:%d/metrics", settings.worker_metrics_host, port)


def stop_serving() -> None:
    global _server
    with _server_lock:
        if _server is not None:
            server, _thread = _server
            server.shutdown()
            server.server_close()
            _server = None
