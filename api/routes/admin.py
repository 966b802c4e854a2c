"""`GET /v1/admin/overview`: what an operator watches, in one answer (the dashboard's Operators page).

Behind `GENGATE_ADMIN_KEY` (`Authorization: Bearer <admin key>`), not an account's key: it shows
every account's failures. Unset, the endpoint answers 401 to everyone, so a gateway that never
configured it exposes nothing.

Everything comes from one pipelined Redis round trip (api/metrics.py `read_state`, the numbers
/metrics exports) plus one for the failed jobs' records: workers with the age of their last
heartbeat, queue depths, each provider's jobs by outcome and its error rate (failed / (completed +
failed), since the counts began) with its health now (jobs/health.py: circuit breaker state, success
rate and median latency of its recent calls), and the last failed jobs (jobs/store.py keeps their ids).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field

from gengate.api.deps import bearer_matches
from gengate.api.metrics import read_state
from gengate.api.schemas import error_responses
from gengate.config.settings import get_settings
from gengate.jobs import health, heartbeat, keys
from gengate.jobs.errors import AuthError, UnavailableError

FAILURES_SHOWN = 50
router = APIRouter(prefix="/v1/admin", tags=["Operators"])


class WorkerSeen(BaseModel):
    name: str
    seen_seconds_ago: float = Field(description="Since its last heartbeat, by Redis's clock")
    alive: bool = Field(description="Seen within the window /readyz uses")


class QueueDepth(BaseModel):
    queue: str
    depth: int = Field(description="Messages waiting")


class ProviderCounts(BaseModel):
    provider: str
    created: int
    completed: int
    failed: int
    cancelled: int
    error_rate: float | None = Field(description="failed / (completed + failed) since the counts began; null "
                                     "before any ended")
    circuit: Literal["closed", "open", "half_open"] = Field(
        description="Its circuit breaker: closed (calls go), open (no calls: new jobs go to another provider), "
        "half_open (the cool-down is over: one probe call goes)")
    consecutive_failures: int = Field(description="Retryable failures of its calls since the last success")
    success_rate: float | None = Field(
        description=f"Share of its last {health.OUTCOMES_KEPT} calls that succeeded; null before any call")
    latency_p50_ms: float | None = Field(
        description=f"Median latency of its last {health.LATENCIES_KEPT} timed calls, in ms; null before any")


class RecentFailure(BaseModel):
    job_id: str
    account: str
    model: str
    provider: str
    capability: str
    error: str | None
    code: str | None = Field(description="gengate's classification of the failure")
    provider_status: int | None = Field(description="The provider's HTTP status, when it answered one")
    created_at: str
    updated_at: str | None


class AdminOverview(BaseModel):
    workers_alive: int
    workers: list[WorkerSeen] = Field(description="Workers seen in the last day, most recent first")
    queues: list[QueueDepth]
    unacked: int = Field(description="Messages taken by workers and not yet acknowledged")
    scheduled: int = Field(description="Jobs waiting in the sweeper's schedule (polls, retries, re-drives)")
    webhooks_pending: int
    providers: list[ProviderCounts]
    recent_failures: list[RecentFailure] = Field(description=f"The last failed jobs, newest first (up to "
                                                 f"{FAILURES_SHOWN}; gone once their record expires)")
_FAILURE_FIELDS = ("account", "model", "provider", "capability", "error", "error_detail", "created_at", "updated_at")


def require_admin(request: Request) -> None:
    secret = get_settings().admin_key
    if secret is None:
        raise AuthError("The admin endpoints are off: set GENGATE_ADMIN_KEY on the gateway")
    if not bearer_matches(request, secret.get_secret_value()):
        raise AuthError("Invalid admin key")


def _providers(jobs: list[tuple[str, str, str, int]], healths: dict[str, health.ProviderHealth]) -> list[dict]:
    """Every provider with jobs or health numbers (the catalog's always): a provider whose calls failed
    before any job of it ended still shows, with its circuit."""
    by_provider: dict[str, dict[str, int]] = defaultdict(lambda: {"created": 0, "completed": 0, "failed": 0,
                                                                  "cancelled": 0})
    for event, provider, _model, count in jobs:
        if event in by_provider[provider]:
            by_provider[provider][event] += count
    out = []
    for provider in sorted(set(by_provider) | set(healths)):
        counts = by_provider[provider]
        ended = counts["completed"] + counts["failed"]
        h = healths.get(provider)
        out.append({"provider": provider, **counts,
                    "error_rate": round(counts["failed"] / ended, 4) if ended else None,
                    "circuit": h.state if h else "closed",
                    "consecutive_failures": h.failures if h else 0,
                    "success_rate": round(h.success_rate, 4) if h and h.success_rate is not None else None,
                    "latency_p50_ms": round(h.latency_p50 * 1000, 1) if h and h.latency_p50 is not None else None})
    return out


def _failure(job_id: str, values: list[bytes | None]) -> dict | None:
    if values[0] is None:  # the job's record expired since
        return None
    record = dict(zip(_FAILURE_FIELDS, (orjson.loads(v) if v is not None else None for v in values)))
    detail = record.pop("error_detail") or {}
    return {"job_id": job_id, **record, "code": detail.get("code"), "provider_status": detail.get("status")}


@router.get("/overview", response_model=AdminOverview, responses=error_responses(401, 503), operation_id="getAdminOverview",
            summary="Workers, queues, provider error rates and health, and recent failures (admin key)")
async def overview(request: Request):
    require_admin(request)
    redis = request.app.state.redis
    read = await read_state(
        redis,
        lambda pipe: pipe.time(),
        lambda pipe: pipe.zrange(keys.WORKERS, 0, -1, withscores=True),
        lambda pipe: pipe.lrange(keys.RECENT_FAILURES, 0, FAILURES_SHOWN - 1),
        lambda pipe: pipe.eval(*health.snapshot_args()),
    )
    if read is None:
        raise UnavailableError("Redis is unreachable")
    state, (now, workers, failed_ids, healths) = read
    now_s = now[0] + now[1] / 1e6
    window = heartbeat.window_seconds(get_settings())
    ids = [i.decode() for i in failed_ids]
    pipe = redis.pipeline(transaction=False)
    for job_id in ids:
        pipe.hmget(keys.job(job_id), *_FAILURE_FIELDS)
    failures = [f for job_id, values in zip(ids, await pipe.execute()) if (f := _failure(job_id, values))]
    return ORJSONResponse({
        "workers_alive": state.alive,
        "workers": [{"name": name.decode(), "seen_seconds_ago": round(now_s - seen, 1), "alive": now_s - seen <= window}
                    for name, seen in sorted(workers, key=lambda w: -w[1])],
        "queues": [{"queue": q, "depth": d} for q, d in state.depths.items()],
        "unacked": state.unacked,
        "scheduled": state.scheduled,
        "webhooks_pending": state.webhooks,
        "providers": _providers(state.jobs, health.parse_snapshot(healths)),
        "recent_failures": failures,
    }, headers={"Cache-Control": "no-store"})
