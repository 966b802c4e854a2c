"""A worker's Prometheus endpoint, its sweeper gauges and its per-task log context.

Served by prometheus_client's HTTP server at `http://<GENGATE_WORKER_METRICS_HOST>:<GENGATE_WORKER_METRICS_PORT>/metrics`
(0 = off), started by the sweeper bootstep. The worker runs the threads pool, one process, so the
process's default registry holds everything: the pipeline's own series (tasks/metrics.py: provider
calls, steps, webhook deliveries) and these. Each worker on one host needs its own port.

  gengate_sweeper_claimed_jobs_total            due jobs the sweeper took from the schedule
  gengate_sweeper_running_jobs                  jobs the sweeper's threads are moving on now
  gengate_sweeper_waiting_jobs                  ... of them, waiting over a second (on a provider)
  gengate_sweeper_queued_webhooks_total         due webhook deliveries it queued

Job-level counts (created, completed, failed by provider and model) are not here: they are counted in
Redis by the job store and exposed by the API's /metrics, exact across all processes.
"""

from __future__ import annotations

import logging
import threading
from time import perf_counter
from typing import Any

from celery import signals
from prometheus_client import Counter, Gauge, start_http_server

from gengate.config import logs
from gengate.tasks.metrics import step_done

log = logging.getLogger("gengate.metrics")

SWEEPER_CLAIMED = Counter("gengate_sweeper_claimed_jobs", "Due jobs this worker's sweeper claimed from the schedule.")
SWEEPER_RUNNING = Gauge("gengate_sweeper_running_jobs", "Jobs the sweeper's threads are moving on now.")
SWEEPER_WAITING = Gauge("gengate_sweeper_waiting_jobs", "Of those, the ones waiting over a second (on a "
                        "provider, nearly always): they no longer count against GENGATE_WORKER_CONCURRENCY.")
SWEEPER_WEBHOOKS = Counter("gengate_sweeper_queued_webhooks", "Due webhook deliveries this worker's sweeper queued.")


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
