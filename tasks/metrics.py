"""The Prometheus series the pipeline steps record, in the process that runs them (a worker).

Only worker processes import this module (the API never imports the pipeline), so the API's
/metrics never shows these series. The worker serves them with its own (workers/metrics.py).

  gengate_provider_request_duration_seconds{provider,call,outcome}  each adapter call: submit, poll,
      cancel; outcome ok | retryable | error
  gengate_worker_steps_total{task,state}        steps run: Celery tasks (gengate.submit, ...) and the
      sweeper's resumes (sweeper.resume); state success | failure | retry
  gengate_worker_step_duration_seconds{task}
  gengate_webhook_deliveries_total{outcome}     attempts: delivered | gone (410) | retry | exhausted |
      refused (network policy) | dropped (job or secret gone)
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Callable, TypeVar

from prometheus_client import Counter, Histogram

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
