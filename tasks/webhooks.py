"""Webhook delivery: the sweeper's hand-off to Celery and the `gengate.webhook` task's one attempt.

Retries are not Celery countdowns (docs/celery.md: an ETA beyond the visibility timeout runs several
times). A delivery waits in the `gengate:webhooks:due` zset; every sweeper claims what is due
(`dispatcher`), pushing its due time out by a lease and bumping the delivery's `claim` number, and
queues one task message carrying that number. The task runs only if the number is still current,
and bumps it before sending: a stale or redelivered message does nothing, and a delivery whose
worker died comes back by itself when the lease runs out. Each attempt then either ends the
delivery (2xx, 410, refused URL, schedule exhausted) or puts it back in the zset for the next one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import httpx
import orjson
from redis import Redis

from gengate.config.settings import Settings
from gengate.jobs import keys
from gengate.jobs import webhooks as hooks
from gengate.jobs.sealing import SealError
from gengate.storage.fetch import FetchError, UnsafeURL, open_url
from gengate.tasks.runtime import Runtime
from gengate.tasks import metrics as step_metrics
from gengate.tasks.queues import WEBHOOK_QUEUE
from gengate.tasks.wire import celery_message

log = logging.getLogger("gengate.webhooks")

TASK = "gengate.webhook"
# On top of the receiver's timeout: how long a claimed delivery may sit in the Celery queue before
# another sweeper claims it again (the older message then finds its claim stale and does nothing).
LEASE_MARGIN_SECONDS = 30.0
JITTER = 0.1  # up to 10 % later than the schedule says, so one receiver's retries spread out

# KEYS: due zset. ARGV: now, lease-until, limit, delivery key prefix. Returns id, claim, id, claim...
_CLAIM_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  local hk = ARGV[4] .. id
  if redis.call('EXISTS', hk) == 1 then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    out[#out + 1] = id
    out[#out + 1] = redis.call('HINCRBY', hk, 'claim', 1)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# KEYS: delivery hash, due zset. ARGV: claim, delivery id, lease-until.
# Returns {job_id, event, attempts, job JSON}, or nil when the message's claim is not current.
_BEGIN_LUA = """
if redis.call('HGET', KEYS[1], 'claim') ~= ARGV[1] then return false end
redis.call('HINCRBY', KEYS[1], 'claim', 1)
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[2])
return redis.call('HMGET', KEYS[1], 'job_id', 'event', 'attempts', 'job')
"""


def lease_seconds(settings: Settings) -> float:
    return settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS


def dispatcher(redis: Redis, *, lease_seconds: float) -> Callable[[int], int]:
    """For the sweeper: a function that queues up to `limit` due deliveries and returns how many."""
    claim = redis.register_script(_CLAIM_LUA)

    def dispatch(limit: int) -> int:
        now = time.time()
        got = claim(keys=[keys.WEBHOOKS_DUE], args=[now, now + lease_seconds, limit, keys.webhook("")])
        if not got:
            return 0
        pipe = redis.pipeline(transaction=False)
        for did, claim_no in zip(got[::2], got[1::2]):
            queue, payload = celery_message(TASK, [_text(did), int(claim_no)], queue=WEBHOOK_QUEUE)
            pipe.lpush(queue, payload)
        pipe.execute()
        return len(got) // 2

    return dispatch


def deliver(rt: Runtime, delivery_id: str, claim: int) -> None:
    """One attempt of one delivery, if `claim` is still the delivery's current claim."""
    hk = keys.webhook(delivery_id)
    record = rt.redis.register_script(_BEGIN_LUA)(
        keys=[hk, keys.WEBHOOKS_DUE], args=[claim, delivery_id, time.time() + lease_seconds(rt.settings)])
    if record is None:
        log.debug("webhook %s: claim %s is stale; nothing to do", delivery_id, claim)
        return
    job_id, event, attempts, snapshot = (_text(v) if v is not None else None for v in record)
    job = rt.store.get(job_id) if job_id else None
    if job is None or not job.webhook_url or snapshot is None:
        log.warning("webhook %s: job %s or its webhook is gone; dropped", delivery_id, job_id)
        step_metrics.webhook("dropped")
        _finish(rt, delivery_id)
        return
    try:
        secret = hooks.signing_secret(rt.redis, job.account)
    except SealError:
        log.error("webhook %s (job %s): the account's webhook secret cannot be unsealed with this "
                  "server's secret; dropped", delivery_id, job_id)
        step_metrics.webhook("dropped")
        _finish(rt, delivery_id)
        return
    body = orjson.dumps({**orjson.loads(snapshot), "event": event})
    headers = hooks.headers(secret, delivery_id, int(time.time()), body)
    attempt = int(attempts or 0) + 1
    status, problem = _post(rt, job.webhook_url, body, headers)
    if status is not None and (200 <= status < 300 or status == 410):
        # 410 Gone: the receiver asks us to stop (Standard Webhooks); no more retries.
        log.info("webhook %s (job %s, %s): attempt %d answered %d; done", delivery_id, job_id, event, attempt, status)
        step_metrics.webhook("gone" if status == 410 else "delivered")
        _finish(rt, delivery_id)
    elif problem == "unsafe":
        log.warning("webhook %s (job %s): target URL refused by the network policy; dropped", delivery_id, job_id)
        step_metrics.webhook("refused")
        _finish(rt, delivery_id)
    else:
        _retry_later(rt, delivery_id, job_id, attempt, problem or f"HTTP {status}")


def _post(rt: Runtime, url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str | None]:
    """POST through the SSRF-safe fetcher; no redirects (a 3xx counts as a failed attempt).
    Returns (status, None), or (None, "unsafe"), or (None, what went wrong)."""
    try:
        with open_url(url, method="POST", content=body, headers=headers,
                      timeout=rt.settings.webhook_timeout_seconds, max_redirects=0) as response:
            return response.status_code, None
    except UnsafeURL:
        return None, "unsafe"
    except FetchError as exc:
        return None, str(exc)  # says what failed, never the URL
    except httpx.HTTPError as exc:
        return None, type(exc).__name__


def _retry_later(rt: Runtime, delivery_id: str, job_id: str, attempt: int, problem: str) -> None:
    delays = rt.settings.webhook_delays
    if attempt > len(delays):
        log.warning("webhook %s (job %s): attempt %d failed (%s); retries exhausted, giving up",
                    delivery_id, job_id, attempt, problem)
        step_metrics.webhook("exhausted")
        _finish(rt, delivery_id)
        return
    delay = delays[attempt - 1] * (1 + random.uniform(0, JITTER))
    log.info("webhook %s (job %s): attempt %d failed (%s); next in %.1f s", delivery_id, job_id, attempt, problem, delay)
    step_metrics.webhook("retry")
    hk = keys.webhook(delivery_id)
    pipe = rt.redis.pipeline(transaction=True)
    pipe.hset(hk, "attempts", attempt)
    # The record must outlive its next attempt whatever the configured schedule.
    pipe.expire(hk, int(max(hooks.DELIVERY_TTL_SECONDS, delay + 24 * 3600)))
    pipe.zadd(keys.WEBHOOKS_DUE, {delivery_id: time.time() + delay})
    pipe.execute()


def _finish(rt: Runtime, delivery_id: str) -> None:
    pipe = rt.redis.pipeline(transaction=True)
    pipe.zrem(keys.WEBHOOKS_DUE, delivery_id)
    pipe.delete(keys.webhook(delivery_id))
    pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
