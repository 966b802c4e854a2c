"""GET /v1/me, /v1/balance, /v1/usage: the caller's own account, as the spec shapes them."""

from __future__ import annotations

from datetime import date, datetime, time, timezone

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import ORJSONResponse

from api.deps import PrincipalDep, RedisDep
from api.schemas import error_responses
from jobs import keys
from jobs.errors import ValidationError

router = APIRouter(prefix="/v1", tags=["Account"])
MAX_USAGE_RECORDS = 10_000


@router.get("/me", responses=error_responses(401), operation_id="getMe", summary="Get current user")
async def me(principal: PrincipalDep, redis: RedisDep):
    email = await redis.hget(keys.account(principal.account_id), "email")
    return ORJSONResponse({"userId": principal.account_id, "email": (email or b"").decode() or None})


@router.get("/balance", responses=error_responses(401), operation_id="getBalance", summary="Get balance")
async def balance(principal: PrincipalDep, redis: RedisDep):
    """The balance in cents: what was credited minus what completed jobs captured. Amounts held by
    running jobs are still part of it until they complete (or are released)."""
    raw = await redis.hget(keys.account(principal.account_id), "balance_cents")
    return ORJSONResponse({"balance_cents": int(raw or 0), "currency": "usd"})


# Declared as dates in /openapi.json, which said only "a string". Parsed here, strictly: pydantic's own
# `date` would also take `to=0` (the epoch) or a Unix time.
_DATE = {"pattern": r"^\d{4}-\d{2}-\d{2}$", "json_schema_extra": {"format": "date"}}


def _day(value: str | None, field: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{field} must be a date like 2026-01-31", field=field) from None


@router.get("/usage", responses=error_responses(400, 401), operation_id="getUsage", summary="Get usage")
async def usage(principal: PrincipalDep, redis: RedisDep,
                from_: str | None = Query(default=None, alias="from", description="Start date (inclusive), e.g. 2026-01-01",
                                          **_DATE),
                to: str | None = Query(default=None, description="End date (inclusive), e.g. 2026-01-31", **_DATE)):
    """Completed jobs in the date range (UTC days, both ends inclusive), oldest first, with what
    each cost: cache hits, BYOK jobs and jobs that shared another's provider call cost 0."""
    start, end = _day(from_, "from"), _day(to, "to")
    if start and end and end < start:
        raise ValidationError("to must not be before from", field="to")
    low = _ms(datetime.combine(start, time.min, timezone.utc)) if start else "-inf"
    high = _ms(datetime.combine(end, time.max, timezone.utc)) if end else "+inf"
    raw = await redis.zrangebyscore(keys.account_usage(principal.account_id), low, high, start=0,
                                    num=MAX_USAGE_RECORDS)
    records = [orjson.loads(r) for r in raw]
    return ORJSONResponse({"usage": records, "total_cents": sum(r["cost_cents"] for r in records)})


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
