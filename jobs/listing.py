"""An account's jobs, newest first, a page at a time (`GET /v1/jobs`).

The account's index is the zset `keys.account_jobs` (job id -> created ms). Redis orders it by score,
then by member bytes; a page ends at a position (score, job id) and the next one starts strictly
after it, so jobs created in the same millisecond are neither repeated nor skipped. A cursor is
that position, opaque to clients (urlsafe base64).

One request examines at most `SCAN_CAP` index entries: with a filter that matches nothing, it stops
there and answers the (possibly empty) page with a cursor at the stop point, so no request walks an
unbounded history. Entries whose job record has expired are dropped from the index on the way.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from gengate.jobs import keys
from gengate.jobs.record import PUBLIC_FIELDS

SCAN_CAP = 2000
BATCH = 200
_FIELDS = (*PUBLIC_FIELDS, "capability")
_JOB_ID = re.compile(rb"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class Position:
    score: float
    job_id: bytes


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    capability: str | None = None
    model: str | None = None  # "flux-schnell" (any provider) or "fal:flux-schnell"

    def matches(self, job: dict[str, Any], capability: str | None) -> bool:
        if self.status is not None and job.get("status") != self.status:
            return False
        if self.capability is not None and capability != self.capability:
            return False
        if self.model is not None:
            model = job.get("model") or ""
            if model != self.model and (":" in self.model or model.split(":", 1)[-1] != self.model):
                return False
        return True


def encode_cursor(pos: Position) -> str:
    raw = repr(pos.score).encode() + b":" + pos.job_id
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> Position:
    """Raises ValueError for anything `encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc
    score, sep, job_id = raw.partition(b":")
    value = float(score)  # ValueError when not a number
    if not sep or not math.isfinite(value) or not _JOB_ID.match(job_id):
        raise ValueError("not a cursor")
    return Position(value, job_id)


async def list_jobs(
    redis: Redis, account: str, filters: Filters, limit: int, after: Position | None, *,
    scan_cap: int = SCAN_CAP, batch: int = BATCH,
) -> tuple[list[dict[str, Any]], Position | None]:
    """Up to `limit` public jobs after `after`, newest first, and where the next page starts (None: the end)."""
    index = keys.account_jobs(account)
    page: list[dict[str, Any]] = []
    last_returned: Position | None = None
    pos, scanned, gone = after, 0, []
    # The first read takes just what a full page needs (limit + 1 tells whether a next page exists):
    # reading and decoding a whole batch of 200 jobs for a page of 20 would be most of the unfiltered
    # list's cost (BENCHMARKS.md). Later reads, for filters that skip jobs, grow to `batch`.
    want = limit + 1
    try:
        while True:
            entries, exhausted = await _entries_after(redis, index, pos, min(want, batch, scan_cap - scanned))
            want = batch
            jobs = await _fetch(redis, [job_id for job_id, _ in entries])
            for (job_id, score), fetched in zip(entries, jobs):
                if fetched is None:
                    gone.append(job_id)
                elif filters.matches(*fetched):
                    if len(page) == limit:  # a further match exists: there is a next page
                        return page, last_returned
                    page.append(fetched[0])
                    last_returned = Position(score, job_id)
                pos = Position(score, job_id)
                scanned += 1
            if exhausted:
                return page, None
            if len(page) == limit:  # full, and whether more match is unknown without reading on
                return page, last_returned
            if scanned >= scan_cap:
                return page, pos
    finally:
        if gone:
            await redis.zrem(index, *gone)


async def _entries_after(
    redis: Redis, index: str, pos: Position | None, count: int
) -> tuple[list[tuple[bytes, float]], bool]:
    """The next index entries strictly after `pos` in newest-first order, and whether they are the last."""
    if pos is None:
        rest = await redis.zrevrangebyscore(index, "+inf", "-inf", start=0, num=count, withscores=True)
        return rest, len(rest) < count
    pipe = redis.pipeline(transaction=False)
    # Every entry sharing the position's millisecond (few: one account's jobs created in one ms);
    # those with a smaller member come after the position, then strictly older scores.
    pipe.zrevrangebyscore(index, pos.score, pos.score, withscores=True)
    pipe.zrevrangebyscore(index, f"({pos.score!r}", "-inf", start=0, num=count, withscores=True)
    ties, rest = await pipe.execute()
    return [e for e in ties if e[0] < pos.job_id] + rest, len(rest) < count


async def _fetch(redis: Redis, job_ids: list[bytes]) -> list[tuple[dict[str, Any], str | None] | None]:
    """Each job's public JSON and capability, in one round trip; None for an expired job."""
    if not job_ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hmget(keys.job(job_id.decode()), _FIELDS)
    out: list[tuple[dict[str, Any], str | None] | None] = []
    for values in await pipe.execute():
        *public_values, capability = values
        if public_values[PUBLIC_FIELDS.index("status")] is None:
            out.append(None)
            continue
        public = {f: orjson.loads(v) for f, v in zip(PUBLIC_FIELDS, public_values) if v is not None and v != b"null"}
        out.append((public, orjson.loads(capability) if capability is not None else None))
    return out
