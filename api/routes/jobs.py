"""GET/DELETE /v1/jobs/{id} and the SSE stream. A job of another account is simply not found."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import ORJSONResponse, StreamingResponse

from api.deps import PrincipalDep, RedisDep, SettingsDep, StoreDep
from api.schemas import JobResponse, error_responses
from jobs import keys, states
from jobs.apikeys import Principal
from jobs.errors import NotFoundError
from jobs.record import Job
from jobs.store import AsyncJobStore
from tasks.enqueue import CANCEL, step_message

router = APIRouter(prefix="/v1/jobs", tags=["Jobs"])


async def _own_job(store: AsyncJobStore, principal: Principal, job_id: str) -> Job:
    job = await store.get(job_id) if job_id.startswith("job_") and len(job_id) <= 64 else None
    if job is None or job.account != principal.account_id:
        raise NotFoundError("Job not found")
    return job


@router.get("/{job_id}", response_model=JobResponse, responses=error_responses(401, 404, 500), operation_id="getJob")
async def get_job(job_id: str, store: StoreDep, principal: PrincipalDep):
    return ORJSONResponse((await _own_job(store, principal, job_id)).public())


@router.delete("/{job_id}", status_code=204, responses=error_responses(401, 404, 500), operation_id="cancelJob")
async def cancel_job(job_id: str, store: StoreDep, redis: RedisDep, principal: PrincipalDep):
    job = await _own_job(store, principal, job_id)
    won, before = await store.transition(job_id, states.CANCELLED)
    if won and before == states.PROCESSING:
        await redis.lpush(*step_message(CANCEL, job_id, job.capability))
    return Response(status_code=204)


@router.get("/{job_id}/stream", responses={200: {"content": {"text/event-stream": {}}}, **error_responses(401, 404)},
            operation_id="streamJob")
async def stream_job(job_id: str, request: Request, store: StoreDep, redis: RedisDep, principal: PrincipalDep,
                     settings: SettingsDep):
    await _own_job(store, principal, job_id)
    return StreamingResponse(
        _events(request, redis, job_id, settings.sse_keepalive_seconds, settings.sse_max_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(request: Request, redis, job_id: str, keepalive: float, cap: float) -> AsyncIterator[bytes]:
    """Replay the job's transitions from the start, then follow new ones until a terminal state."""
    stream, last_id = keys.job_events(job_id), "0-0"
    deadline = time.monotonic() + cap
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        block = int(min(keepalive, max(deadline - time.monotonic(), 0.001)) * 1000)
        batch = await redis.xread({stream: last_id}, block=block, count=100)
        if not batch:
            yield b": keepalive\n\n"
            continue
        for entry_id, fields in batch[0][1]:
            last_id = entry_id.decode()
            yield b"event: status\nid: " + entry_id + b"\ndata: " + fields[b"job"] + b"\n\n"
            if fields[b"status"].decode() in states.TERMINAL:
                return
