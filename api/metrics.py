"""Prometheus `/metrics` and the readiness probe `/readyz` of the API.

Two kinds of numbers, rendered together on each scrape:
  * this process's own (`HttpMetrics`): requests by method, route template and status, and their
    latency; plus prometheus_client's process metrics. With several API processes behind one port
    (`--workers`), set `PROMETHEUS_MULTIPROC_DIR` to an empty directory shared by them and every
    scrape sums them all (prometheus_client's multiprocess mode).
  * the gateway's, read from Redis at scrape time in one pipelined round trip: jobs created,
    completed, failed and cancelled by provider and model and completed jobs by cache outcome
    (counted by the job store's own atomic writes, so exact across every API and worker process:
    jobs/store.py `_STATS_LUA`), queue depths, the sweeper's schedule, pending webhooks, live
    workers, and each provider's health (jobs/health.py: its circuit breaker's state, the success
    rate and latency quantiles of its recent calls). Every API process reports the same gateway-wide
    values: aggregate them with `max`, not `sum`, when Prometheus scrapes several API processes.

`/readyz` also names each provider's circuit state; an open circuit never makes the gateway "not
ready" (jobs go to another provider, or fail on their own), so readiness stays Redis and workers.

`/metrics` is async and renders the text itself (the Redis part through a one-scrape collector
handed to `generate_latest`): a synchronous `Collector.collect()` would need a second, blocking Redis
client inside the event loop. A scrape that cannot read Redis still answers, with `gengate_redis_up 0`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis.exceptions import RedisError

from gengate.api.deps import bearer_matches
from gengate.config import logs
from gengate.config.settings import get_settings
from gengate.jobs import health, heartbeat, keys
from gengate.jobs.errors import AuthError, UnavailableError
from gengate.tasks.queues import ALL_QUEUES

REDIS_TIMEOUT_SECONDS = 2.0
UNMATCHED = "<unmatched>"  # the route label of requests no route matched (never the raw path: cardinality)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UNACKED = "unacked"  # kombu's hash of messages delivered to a worker and not yet acknowledged
JOB_EVENTS = ("created", "completed", "failed", "cancelled")
CACHE_RESULTS = ("hit", "miss", "bypass")

HTTP_REQUESTS = Counter(
    "gengate_http_requests", "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"])
HTTP_SECONDS = Histogram(
    "gengate_http_request_duration_seconds",
    "Time from a request's arrival to its response headers, by method and route template "
    "(to the headers: an SSE stream or a download counts its time to first byte, not its length).",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))


class HttpMetrics:
    """Pure ASGI middleware (no per-request task or body copy, unlike BaseHTTPMiddleware): counts
    each response and times it to its headers, labelled with the matched route's template
    (`/v1/jobs/{job_id}`). It also opens the request's log context (config/logs.py)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._bound: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # No reset needed: the server runs each request in a task of its own, and this replaces
        # whatever a previous request on the same task (if a server reused one) had left.
        logs.begin(scope=scope)
        start = perf_counter()
        answered = False

        async def send_timed(message: dict) -> None:
            nonlocal answered
            if not answered and message["type"] == "http.response.start":
                answered = True
                self._observe(scope, message["status"], perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        except BaseException:
            if not answered:  # the server's error middleware answers 500
                self._observe(scope, 500, perf_counter() - start)
            raise

    def _observe(self, scope: dict, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = getattr(scope.get("route"), "path", None) or UNMATCHED
        key = (method, route, status)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = (HTTP_REQUESTS.labels(method, route, str(status)),
                                        HTTP_SECONDS.labels(method, route))
        bound[0].inc()
        bound[1].observe(seconds)


router = APIRouter(include_in_schema=False)


class _Families:
    """A collector for one scrape: the metric families already read from Redis."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def _process_registry() -> Any:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _split(stats: dict) -> list[tuple[str, str, str, int]]:
    """`{b"created|fal|fal:flux-schnell": b"3"}` -> [("created", "fal", "fal:flux-schnell", 3)]."""
    out = []
    for field, count in stats.items():
        parts = _text(field).split("|", 2)
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2], int(count)))
    return sorted(out)


@dataclass
class GatewayState:
    """The gateway-wide counts /metrics and the operators' overview (api/routes/admin.py) show."""

    jobs: list[tuple[str, str, str, int]]  # (event, provider, model, count), see _split
    cache: list[tuple[str, str, str, int]]  # (result, provider, model, count)
    depths: dict[str, int]  # queue -> messages waiting
    unacked: int
    scheduled: int
    webhooks: int
    alive: int


async def read_state(redis: Any, *extra: Callable[[Any], Any]) -> tuple[GatewayState, list[Any]] | None:
    """The gateway's counts in one pipelined round trip (None when Redis cannot be read in time);
    each of `extra` adds its own commands to the same pipeline, whose results come back in order."""
    settings = get_settings()
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.STATS_JOBS)
    pipe.hgetall(keys.STATS_CACHE)
    for queue in ALL_QUEUES:
        pipe.llen(queue)
    pipe.hlen(_UNACKED)
    pipe.zcard(keys.SCHEDULE)
    pipe.zcard(keys.WEBHOOKS_DUE)
    pipe.eval(*heartbeat.alive_args(settings))
    for add in extra:
        add(pipe)
    try:
        async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
            results = await pipe.execute()
    except (RedisError, OSError, TimeoutError):
        return None
    jobs, cache, *rest = results
    n = len(ALL_QUEUES)
    depths, (unacked, scheduled, webhooks, alive), more = rest[:n], rest[n:n + 4], rest[n + 4:]
    state = GatewayState(jobs=_split(jobs), cache=_split(cache),
                         depths={q: int(d) for q, d in zip(ALL_QUEUES, depths)}, unacked=int(unacked),
                         scheduled=int(scheduled), webhooks=int(webhooks), alive=int(alive))
    return state, more


def provider_families(providers: dict[str, health.ProviderHealth]) -> list[Metric]:
    """Each provider's circuit state, and the success rate and latency of its recent calls (a
    provider without recent calls has no sample: no number rather than a made-up one)."""
    state = GaugeMetricFamily(
        "gengate_provider_circuit_state", "Each provider's circuit breaker: 0 closed (calls go), 1 half-open (the "
        "cool-down is over: one probe call goes), 2 open (no calls: new jobs go to another provider).",
        labels=["provider"])
    failures = GaugeMetricFamily(
        "gengate_provider_consecutive_failures", "Retryable failures of each provider's calls since its last "
        "success (the circuit opens at GENGATE_CIRCUIT_FAILURES).", labels=["provider"])
    ratio = GaugeMetricFamily(
        "gengate_provider_success_ratio", f"Share of each provider's last {health.OUTCOMES_KEPT} calls that "
        "succeeded (a retryable failure is a failure; a request refused for its own fault is not).",
        labels=["provider"])
    latency = GaugeMetricFamily(
        "gengate_provider_latency_seconds", f"Latency of each provider's calls, over its last "
        f"{health.LATENCIES_KEPT} timed calls (all workers), by quantile.", labels=["provider", "quantile"])
    for name, h in providers.items():
        state.add_metric([name], health.STATE_VALUES[h.state])
        failures.add_metric([name], h.failures)
        if h.success_rate is not None:
            ratio.add_metric([name], h.success_rate)
        for q, seconds in (("0.5", h.latency_p50), ("0.95", h.latency_p95)):
            if seconds is not None:
                latency.add_metric([name, q], seconds)
    return [state, failures, ratio, latency]


async def gateway_families(redis: Any) -> list[Metric]:
    """The gateway-wide metrics, from Redis in one pipelined round trip."""
    settings = get_settings()
    up = GaugeMetricFamily("gengate_redis_up", "1 when this scrape could read Redis, else 0.")
    read = await read_state(redis, lambda pipe: pipe.eval(*health.snapshot_args()))
    if read is None:
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    state, (providers,) = read

    families: list[Metric] = [up]
    by_event = {e: CounterMetricFamily(f"gengate_jobs_{e}", f"Jobs {e}, by provider and model (all processes).",
                                       labels=["provider", "model"]) for e in JOB_EVENTS}
    for event, provider, model, count in state.jobs:
        if event in by_event:
            by_event[event].add_metric([provider, model], count)
    families += by_event.values()

    results_family = CounterMetricFamily(
        "gengate_cache_results",
        "Completed jobs by where their result came from: hit (a cached result, or an identical job's provider "
        "call), miss (a provider call of their own), bypass (Cache-Control skipped the look-up).",
        labels=["result", "provider", "model"])
    totals = dict.fromkeys(CACHE_RESULTS, 0)
    for result, provider, model, count in state.cache:
        results_family.add_metric([result, provider, model], count)
        totals[result] = totals.get(result, 0) + count
    looked_up = totals["hit"] + totals["miss"]
    families += [
        results_family,
        GaugeMetricFamily("gengate_cache_hit_ratio",
                          "Share of completed jobs (cache not bypassed) whose result came from the cache: "
                          "hit / (hit + miss), since the counts began.",
                          value=totals["hit"] / looked_up if looked_up else 0.0),
    ]
    depth = GaugeMetricFamily("gengate_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
    for queue, n in state.depths.items():
        depth.add_metric([queue], n)
    families += [
        depth,
        GaugeMetricFamily("gengate_queue_unacked", "Messages taken by workers and not yet acknowledged "
                          "(running or reserved steps).", value=state.unacked),
        GaugeMetricFamily("gengate_jobs_scheduled", "Jobs in the sweeper's schedule: waiting for a provider poll, "
                          "a retry, or a lost step's re-drive.", value=state.scheduled),
        GaugeMetricFamily("gengate_webhooks_pending", "Webhook deliveries waiting for their next attempt.",
                          value=state.webhooks),
        GaugeMetricFamily("gengate_workers_alive", f"Workers whose sweeper was seen in the last "
                          f"{heartbeat.window_seconds(settings):g} s.", value=state.alive),
    ]
    return families + provider_families(health.parse_snapshot(providers))


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    token = get_settings().metrics_token
    if token is not None:
        if not bearer_matches(request, token.get_secret_value()):
            raise AuthError("/metrics needs the metrics token (Authorization: Bearer <GENGATE_METRICS_TOKEN>)")
    families = await gateway_families(request.app.state.redis)
    body = generate_latest(_process_registry()) + generate_latest(_Families(families))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz")
async def readyz(request: Request) -> ORJSONResponse:
    """Ready when Redis answers and at least one worker was seen recently; else 503 saying which.
    The answer also names each provider's circuit state, which readiness does not depend on."""
    settings = get_settings()
    pipe = request.app.state.redis.pipeline(transaction=False)
    pipe.ping()
    pipe.eval(*heartbeat.alive_args(settings))
    pipe.eval(*health.snapshot_args())
    try:
        async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
            # A failing snapshot script must not fail the probe: only the ping and the count decide.
            pong, workers, providers = await pipe.execute(raise_on_error=False)
    except (RedisError, OSError, TimeoutError):
        raise UnavailableError("Not ready: Redis is unreachable") from None
    if isinstance(pong, Exception) or isinstance(workers, Exception):
        raise UnavailableError("Not ready: Redis is unreachable")
    if int(workers) < 1:
        raise UnavailableError(
            f"Not ready: no worker seen in the last {heartbeat.window_seconds(settings):g} s")
    body: dict[str, Any] = {"status": "ready", "redis": "ok", "workers": int(workers)}
    if not isinstance(providers, Exception):
        body["providers"] = {name: h.state for name, h in health.parse_snapshot(providers).items()}
    return ORJSONResponse(body)
