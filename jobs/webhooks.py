"""Webhooks' shared parts: delivery records, each account's signing secret, and the signature.

Deliveries follow Standard Webhooks (https://www.standardwebhooks.com): headers `webhook-id`
(one per event, the same on every retry, so receivers can deduplicate), `webhook-timestamp`
(seconds, of the attempt) and `webhook-signature: v1,<base64 HMAC-SHA256>` over
`"{id}.{timestamp}.{body}"`, keyed with the base64-decoded part of the account's `whsec_` secret.

A delivery is a hash `gengate:webhook:<id>` (job_id, event, attempts, job: the public job JSON at
the moment of the event) plus its due time in the `gengate:webhooks:due` zset. Most are created
inside the job store's transition script (jobs/store.py), atomically with the transition that
fires them; `schedule` writes the same records from Python for a job created already finished.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson
from redis import Redis

from gengate.jobs import keys
from gengate.jobs.record import Job
from gengate.jobs.sealing import seal, unseal

EVENTS = ("progress", "completed", "failed")
DEFAULT_EVENTS = ("completed", "failed")
SECRET_PREFIX = "whsec_"
# A delivery record outlives its whole retry schedule (Standard Webhooks' is ~28 h); each retry
# also pushes the expiry past its own due time, so a longer configured schedule is safe too.
DELIVERY_TTL_SECONDS = 3 * 24 * 3600


def delivery_id(job_id: str, suffix: str) -> str:
    """`msg_<job hex>_<suffix>`: the terminal event's name (a job has at most one), or `p<n>`
    for the n-th progress event. Must match the ids the transition script builds."""
    return f"msg_{job_id.removeprefix('job_')}_{suffix}"


def subscribed(job: Job, event: str) -> bool:
    return bool(job.webhook_url) and event in (job.webhook_events or DEFAULT_EVENTS)


def schedule(pipe: Any, job: Job, event: str, *, at: float | None = None) -> str | None:
    """Queue the delivery of a terminal `event` of `job` inside the caller's pipeline (sync or
    async: only buffered commands are issued). For jobs created already finished (cache hits);
    every other event is created by the transition script. Returns the delivery id, or None when
    the job has no webhook or does not subscribe to the event."""
    if event not in DEFAULT_EVENTS:
        raise ValueError(f"only terminal events are scheduled from Python, not {event!r}")
    if not subscribed(job, event):
        return None
    did = delivery_id(job.job_id, event)
    hk = keys.webhook(did)
    pipe.hset(hk, mapping={"job_id": job.job_id, "event": event, "attempts": 0,
                           "job": orjson.dumps(job.public())})
    pipe.expire(hk, DELIVERY_TTL_SECONDS)
    pipe.zadd(keys.WEBHOOKS_DUE, {did: time.time() if at is None else at})
    return did


# -- the account's signing secret ----------------------------------------------------------------

def new_secret() -> str:
    # Standard Webhooks asks for 24-64 random bytes.
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def ensure_secret(redis: Redis, account: str) -> str | None:
    """Create the account's secret if it has none; returns it only when just created (it is shown
    once, by `gengate keys`), else None."""
    plain = new_secret()
    return plain if redis.set(keys.account_webhook_secret(account), seal(plain), nx=True) else None


def rotate_secret(redis: Redis, account: str) -> str:
    """Replace the account's secret; the old one stops verifying at once."""
    plain = new_secret()
    redis.set(keys.account_webhook_secret(account), seal(plain))
    return plain


def secret_for(redis: Redis, account: str) -> str | None:
    sealed = redis.get(keys.account_webhook_secret(account))
    return unseal(sealed) if sealed is not None else None


def signing_secret(redis: Redis, account: str) -> str:
    """The secret to sign with, created if the account has none yet, so every delivery is signed
    (the account's owner gets it with `gengate keys webhook-secret`)."""
    secret = secret_for(redis, account)
    if secret is None:
        secret = ensure_secret(redis, account) or secret_for(redis, account)  # lost a creation race: read the winner's
    if secret is None:
        raise RuntimeError(f"account {account} has no webhook secret")
    return secret


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": "gengate-webhooks/1",
    }
