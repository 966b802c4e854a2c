"""The plan's request rate for endpoints that create no job but cost the gateway: uploads and
probes take from the same per-account budget as job-creating requests, so no endpoint of the API
is free to call in a loop."""

from __future__ import annotations

from gengate.config.settings import Settings
from gengate.jobs.accounts import RateDecision, rate_args, rate_decision
from gengate.jobs.errors import RateLimitError
from gengate.jobs.store import AsyncJobStore


async def take_rate(store: AsyncJobStore, settings: Settings, account: str, what: str) -> RateDecision:
    """One request of the account's per-minute budget; RateLimitError (429, Retry-After) when spent."""
    k, a = rate_args(account, settings)
    rate = rate_decision(await store.accounts.rate(keys=k, args=a))
    if not rate.allowed:
        raise RateLimitError(f"Rate limit exceeded: {rate.limit} requests a minute ({what} included) on this plan",
                             retry_after=rate.retry_after, headers=rate.headers())
    return rate
