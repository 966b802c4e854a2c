"""GET /v1/me, /v1/balance, /v1/usage: the caller's own account, as the spec shapes them.

Usage without `limit` or `cursor` is the whole period in one answer, as the spec (which has no
paging) promises its clients, up to `GENGATE_USAGE_MAX_RECORDS` records; a longer period is a 400
(see `usage`). With `limit` or `cursor` (gengate's additions, with `next_cursor`) it is read a page at
a time, so an answer does not grow with the account's history. The records live in the zset
`keys.account_usage` (completion ms -> record JSON), which Redis orders by score, then member bytes.
A cursor is a position in that order: the last page's final score and how many records with exactly
that score were already returned. Those come first among their score, so the next page is one
ZRANGEBYSCORE from that score with that offset: records completed in one millisecond are neither
skipped nor repeated. (A record written later in that very millisecond, sorting before one already
returned, would be seen twice: scores are the completion time, so only a page that ends at the
newest record can meet one.)

`total_cents` is the whole period's, on every page: summed from the per-UTC-day totals that the
completing transition adds to `keys.account_usage_days` with each record, so it costs one field per
day of the range (or per day the account spent anything, for a long or open-ended one), not one
per record.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import ORJSONResponse
from redis.asyncio import Redis

from gengate.api.deps import PrincipalDep, RedisDep, SettingsDep
from gengate.api.schemas import BalanceResponse, MeResponse, UsageResponse, error_responses
from gengate.jobs import keys
from gengate.jobs.errors import ValidationError

router = APIRouter(prefix="/v1", tags=["Account"])
USAGE_PAGE = 100  # the page size of a request that sends `cursor` without `limit` (~17 kB)
USAGE_PAGE_MAX = 1000
# A closed range up to this many days reads exactly its days' fields; a longer or open-ended one
# reads the whole day hash, which holds only the days the account spent anything (so it is never
# asked for 3.6 million fields by from=0001-01-01&to=9999-12-31).
DAYS_READ_ONE_BY_ONE = 366
_EPOCH = date(1970, 1, 1)


@router.get("/me", response_model=MeResponse, responses=error_responses(401), operation_id="getMe",
            summary="Get current user")
async def me(principal: PrincipalDep, redis: RedisDep):
    email = await redis.hget(keys.account(principal.account_id), "email")
    return ORJSONResponse({"userId": principal.account_id, "email": (email or b"").decode() or None})


@router.get("/balance", response_model=BalanceResponse, responses=error_responses(401), operation_id="getBalance",
            summary="Get balance")
async def balance(principal: PrincipalDep, redis: RedisDep):
    """The balance in cents: what was credited minus what completed jobs captured. Amounts held by
    running jobs are still part of it until they complete (or are released)."""
    raw = await redis.hget(keys.account(principal.account_id), "balance_cents")
    return ORJSONResponse({"balance_cents": int(raw or 0), "currency": "usd"})


# Declared as dates in /openapi.json, not just strings, so a client knows what to send. Parsed here,
# strictly: pydantic's own `date` would also take `to=0` (the epoch) or a Unix time.
_DATE = {"pattern": r"^\d{4}-\d{2}-\d{2}$", "json_schema_extra": {"format": "date"}}


def _day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{field} must be a date like 2026-01-31", field=field) from None


@router.get("/usage", response_model=UsageResponse, responses=error_responses(400, 401), operation_id="getUsage",
            summary="Get usage")
async def usage(
    principal: PrincipalDep, redis: RedisDep, settings: SettingsDep,
    from_: Annotated[str | None, Query(alias="from", description="Start date (inclusive), e.g. 2026-01-01",
                                       **_DATE)] = None,
    to: Annotated[str | None, Query(description="End date (inclusive), e.g. 2026-01-31", **_DATE)] = None,
    # `int`, not `int | None`: absent means "the whole period", never null (a nullable schema makes
    # clients and fuzzers send the text "null").
    limit: Annotated[int, Query(ge=1, le=USAGE_PAGE_MAX, description="Page size, 1 to 1,000 (a gengate addition). "
                                "Without `limit` and `cursor` the answer is the whole period")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page "
                                        "(a gengate addition)")] = None,
):
    """Completed jobs in the date range (UTC days, both ends inclusive), oldest first, with what
    each cost: cache hits, BYOK jobs and jobs that shared another's provider call cost 0.
    `total_cents` is the whole period's.

    Without `limit` and `cursor`, the answer holds every record of the period (`next_cursor` null), up
    to `GENGATE_USAGE_MAX_RECORDS` (10,000 by default); a period holding more is refused with a 400
    on `limit`: page through it, or ask for fewer days. With `limit` (1 to 1,000) or `cursor`, a page
    holds up to `limit` records (100 when only `cursor` is sent); follow `next_cursor` until it is
    null, with the same `from` and `to`; every page carries the whole period's `total_cents`."""
    first, last = _day(from_, "from"), _day(to, "to")
    if first and last and last < first:
        raise ValidationError("to must not be before from", field="to")
    after = _cursor(cursor) if cursor else None
    paged = limit is not None or cursor is not None
    size = (limit or USAGE_PAGE) if paged else settings.usage_max_records
    low = _ms(datetime.combine(first, time.min, timezone.utc)) if first else None
    high = _ms(datetime.combine(last, time.max, timezone.utc)) if last else None
    resume = _resume(after, low)
    entries, day_totals = await _read(redis, principal.account_id, resume, high, size + 1, _day_fields(first, last))
    if not paged and len(entries) > size:
        # Refused, not cut short. The spec has no paging: its clients read `usage` as the whole period
        # and check it against `total_cents`. The first N records with a `next_cursor` they do not know
        # would be a truncated period presented as whole, whose records do not add up to its total.
        # A 400 in the spec's shape is seen, and says both ways out: page (gengate's client always
        # does), or ask for fewer days (which any spec client can). The bound caps the answer's size
        # (~1.7 MB at 10,000 records) and the work of one request; it reads N+1 records, never the
        # whole history.
        raise ValidationError(
            f"The period holds more than {size} usage records, more than one answer carries: page through it "
            "with limit and cursor (follow next_cursor), or ask for fewer days with from and to", field="limit")
    page, next_pos = _page(entries, size, resume)
    return ORJSONResponse({"usage": [orjson.loads(member) for member, _ in page],
                           "total_cents": _sum_days(day_totals, first, last),
                           "next_cursor": _encode(next_pos) if next_pos else None})


async def _read(redis: Redis, account: str, resume: Position | None, high: int | None, count: int,
                days: list[int] | None) -> tuple[list[tuple[bytes, float]], list[bytes | None] | dict[bytes, bytes]]:
    """Up to `count` records from `resume` on, and the day totals; in one MULTI, so the page and
    the total are read at the same instant."""
    pipe = redis.pipeline(transaction=True)
    pipe.zrangebyscore(keys.account_usage(account), resume.score if resume else "-inf",
                       "+inf" if high is None else high, start=resume.skip if resume else 0, num=count,
                       withscores=True)
    if days is None:
        pipe.hgetall(keys.account_usage_days(account))
    else:
        pipe.hmget(keys.account_usage_days(account), days)
    entries, day_totals = await pipe.execute()
    return entries, day_totals


@dataclass(frozen=True)
class Position:
    score: int  # completion ms of the last record returned
    skip: int  # records with exactly that score returned so far: they come first among their score


_CURSOR = re.compile(r"^(\d{1,15}):(\d{1,9})$")


def _encode(pos: Position) -> str:
    return base64.urlsafe_b64encode(f"{pos.score}:{pos.skip}".encode()).rstrip(b"=").decode()


def _cursor(value: str) -> Position:
    """The position a `next_cursor` names; anything `_encode` did not make is a 400 on `cursor`."""
    try:
        match = _CURSOR.match(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii"))
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        match = None
    pos = Position(int(match[1]), int(match[2])) if match else None
    # The round trip refuses what the lenient decoder would let through (stray characters, leading zeros).
    if pos is None or _encode(pos) != value:
        raise ValidationError("cursor is not a next_cursor of this endpoint", field="cursor")
    return pos


def _resume(after: Position | None, low: int | None) -> Position | None:
    """Where the page starts: after the cursor, unless the range (changed since) starts later."""
    if after is None or (low is not None and after.score < low):
        return None if low is None else Position(low, 0)
    return after


def _page(entries: list[tuple[bytes, float]], limit: int,
          resume: Position | None) -> tuple[list[tuple[bytes, float]], Position | None]:
    """The page (`entries` holds one more than `limit` when a next page exists) and where it ended."""
    if len(entries) <= limit:
        return entries, None
    page = entries[:limit]
    score = int(page[-1][1])
    ties = next((i for i, (_, s) in enumerate(reversed(page)) if int(s) != score), len(page))
    if ties == len(page) and resume is not None and resume.score == score:
        ties += resume.skip  # the whole page sat on the score the cursor had already skipped into
    return page, Position(score, ties)


def _epoch_day(day: date) -> int:
    return (day - _EPOCH).days


def _day_fields(first: date | None, last: date | None) -> list[int] | None:
    """The day fields to read one by one, or None to read the whole hash."""
    if first is None or last is None or (last - first).days >= DAYS_READ_ONE_BY_ONE:
        return None
    return list(range(_epoch_day(first), _epoch_day(last) + 1))


def _sum_days(reply: list[bytes | None] | dict[bytes, bytes], first: date | None, last: date | None) -> int:
    if isinstance(reply, list):  # HMGET of exactly the range's days
        return sum(int(v) for v in reply if v is not None)
    low = _epoch_day(first) if first else None
    high = _epoch_day(last) if last else None
    return sum(int(v) for k, v in reply.items()
               if (low is None or int(k) >= low) and (high is None or int(k) <= high))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
