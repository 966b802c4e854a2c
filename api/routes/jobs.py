"""GET /v1/jobs (the account's list), GET/DELETE /v1/jobs/{id} and the SSE stream. A job of another
account is simply not found."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import anyio
from redis.asyncio import Redis
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import ORJSONResponse, StreamingResponse

from gengate.api.deps import PrincipalDep, RedisDep, SettingsDep, StoreDep
from gengate.api.schemas import JobDetail, JobListResponse, error_responses
from gengate.api.streams import Slot, StreamSlots
from gengate.config.catalog import CAPABILITIES
from gengate.jobs import cache, keys, states
from gengate.jobs.apikeys import Principal
from gengate.jobs.errors import NotFoundError, ValidationError
from gengate.jobs.listing import Filters, decode_cursor, encode_cursor, list_jobs
from gengate.jobs.record import Job
from gengate.jobs.store import AsyncJobStore
from gengate.tasks.enqueue import CANCEL, SUBMIT, step_message

router = APIRouter(prefix="/v1/jobs", tags=["Jobs"])

Status = Literal[states.ALL]  # type: ignore[valid-type]
Capability = Literal[CAPABILITIES]  # type: ignore[valid-type]


async def _own_job(store: AsyncJobStore, principal: Principal, job_id: str) -> Job:
    job = await store.get(job_id) if job_id.startswith("job_") and len(job_id) <= 64 else None
    if job is None or job.account != principal.account_id:
        raise NotFoundError("Job not found")
    return job


@router.get("", response_model=JobListResponse, responses=error_responses(400, 401, 500), operation_id="listJobs",
            summary="List jobs")
async def list_own_jobs(
    redis: RedisDep,
    principal: PrincipalDep,
    status: Annotated[Status | None, Query(description="Only jobs in this status")] = None,
    capability: Annotated[Capability | None, Query(description="Only jobs of this capability")] = None,
    model: Annotated[str | None, Query(max_length=200, description="`flux-schnell` (any provider) or "
                                       "`fal:flux-schnell`")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size")] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page")] = None,
):
    """The account's jobs, newest first (a gengate addition: the reference API has no list endpoint).

    Follow `next_cursor` until it is null. One request examines at most 2,000 jobs: with a filter
    that matches few of them, a page may hold fewer than `limit` jobs (even none) and still carry a
    `next_cursor` to go on from."""
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError:
        raise ValidationError("cursor is not a next_cursor of this endpoint", field="cursor") from None
    jobs, next_pos = await list_jobs(redis, principal.account_id, Filters(status, capability, model), limit, after)
    return ORJSONResponse({"jobs": jobs, "next_cursor": encode_cursor(next_pos) if next_pos else None})


@router.get("/{job_id}", response_model=JobDetail, responses=error_responses(401, 404, 500), operation_id="getJob")
async def get_job(job_id: str, store: StoreDep, redis: RedisDep, principal: PrincipalDep):
    """The job, with its request, provider and price (gengate additions; see JobDetail)."""
    job = await _own_job(store, principal, job_id)
    current = {"provider": job.provider, "endpoint": job.endpoint, "outcome": job.status, "status": None,
               "message": job.error, "started_at": job.attempt_started_at or job.created_at,
               "ended_at": job.completed_at}
    return ORJSONResponse({**job.public(), "capability": job.capability, "provider": job.provider, "mode": job.mode,
                           "byok": job.byok, "request": job.input, "price_cents": job.hold_cents,
                           "charged_cents": await _charged(redis, job), "attempts": [*(job.attempts or []), current],
                           "routes": job.routes or []})


async def _charged(redis: Redis, job: Job) -> int | None:
    """From the ledger's index, where a hold's one settlement is recorded (jobs/accounts.py): the
    captured cents, 0 if released, None while open. Read only when there is a hold to settle."""
    if job.hold_cents <= 0:
        return 0
    captured, released = await redis.hmget(keys.account_ledger_index(job.account), f"{job.job_id}|capture",
                                           f"{job.job_id}|release")
    if captured is not None:
        return int(captured)
    return 0 if released is not None else None


@router.delete("/{job_id}", status_code=204, responses=error_responses(401, 404, 500), operation_id="cancelJob")
async def cancel_job(job_id: str, store: StoreDep, redis: RedisDep, principal: PrincipalDep, settings: SettingsDep):
    job = await _own_job(store, principal, job_id)
    # The transition settles the price only where no provider can have charged for the job (jobs/accounts.py);
    # a job the provider may have keeps its hold until the cancel step hears the provider.
    won, before = await store.transition(job_id, states.CANCELLED)
    if won and before == states.PROCESSING:
        await redis.lpush(*step_message(CANCEL, job_id, job.capability))
    if won and job.cache_key and job.cache_mode == cache.DEFAULT:
        # Jobs that were sharing this one's provider call go through submit again; one of them leads.
        scope = cache.scope(job.account, settings.cache_shared_across_accounts)
        for follower in await store.release_followers(scope, job.cache_key, job_id):
            await redis.lpush(*step_message(SUBMIT, follower, job.capability))
    return Response(status_code=204)


@router.get("/{job_id}/stream", operation_id="streamJob",
            responses={200: {"content": {"text/event-stream": {}}}, **error_responses(400, 401, 404, 429)})
async def stream_job(
    job_id: str, request: Request, store: StoreDep, principal: PrincipalDep, settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description="Resume after this id")] = None,
    last_event_id_query: Annotated[str | None, Query(alias="lastEventId", description="The same, for EventSource "
                                                     "polyfills that cannot set headers")] = None,
):
    await _own_job(store, principal, job_id)
    after = _resume_id(last_event_id if last_event_id is not None else last_event_id_query)
    slots: StreamSlots = request.app.state.streams
    slot = await slots.acquire(principal.account_id)
    return StreamingResponse(
        _released(_events(request, slots.redis, job_id, after, settings.sse_keepalive_seconds,
                          settings.sse_max_seconds), slots, slot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _released(events: AsyncIterator[bytes], slots: StreamSlots, slot: Slot) -> AsyncIterator[bytes]:
    """The stream's events; its slot is given back however the stream ends. A client that goes
    away cancels the stream's task: the release is shielded, or it would be cancelled with it."""
    try:
        async for event in events:
            yield event
    finally:
        with anyio.CancelScope(shield=True):
            await slots.release(slot)


_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def _resume_id(value: str | None) -> str:
    """The Redis stream entry id to replay after ("0-0": from the start); our `id:` fields are those ids."""
    if value is None or not value.strip():
        return "0-0"
    if not _STREAM_ID.match(value.strip()):
        raise ValidationError("Last-Event-ID must be an event id this stream sent (like 1732212345678-0)",
                              field="Last-Event-ID")
    return value.strip()


async def _events(
    request: Request, redis, job_id: str, last_id: str, keepalive: float, cap: float
) -> AsyncIterator[bytes]:
    """Replay the job's transitions after `last_id`, then follow new ones until a terminal state.

    A read that finds nothing new checks whether the job has already ended (its terminal event
    was then before `last_id`, or the record is gone): the stream closes instead of idling to the cap."""
    stream = keys.job_events(job_id)
    deadline = time.monotonic() + cap
    block: int | None = None  # the first read does not wait
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return
        batch = await redis.xread({stream: last_id}, block=block, count=100)
        if not batch:
            if await _ended(redis, job_id):
                # The status is set and its event added in one script: re-read to not miss an event
                # that landed between the empty read and the status check.
                batch = await redis.xread({stream: last_id}, count=100)
                if not batch:
                    return
            elif block is not None:
                yield b": keepalive\n\n"
        block = int(min(keepalive, max(deadline - time.monotonic(), 0.001)) * 1000)
        for entry_id, fields in batch[0][1] if batch else ():
            last_id = entry_id.decode()
            # `status` for each change of state; `progress` for news within one (a fallback to
            # another provider), whose data is the job with a `progress` object.
            name = fields.get(b"event", b"status")
            yield b"event: " + name + b"\nid: " + entry_id + b"\ndata: " + fields[b"job"] + b"\n\n"
            if fields[b"status"].decode() in states.TERMINAL:
                return


async def _ended(redis, job_id: str) -> bool:
    raw = await redis.hget(keys.job(job_id), "status")
    return raw is None or raw.decode().strip('"') in states.TERMINAL
