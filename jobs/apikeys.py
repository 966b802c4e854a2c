"""Accounts and API keys. A key is `gg_live_<id>_<secret>`; Redis keeps only the id's record and the
sha256 of the whole key, so a leaked Redis dump reveals no usable key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from gengate.config.settings import get_settings
from gengate.jobs import accounts, keys
from gengate.jobs.record import utcnow_iso

PREFIX = "gg_live_"


@dataclass(frozen=True)
class Principal:
    account_id: str
    key_id: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_key_id(key: str) -> str | None:
    if not key.startswith(PREFIX):
        return None
    key_id, sep, secret = key[len(PREFIX):].partition("_")
    if not sep or not secret or not key_id.isalnum() or len(key_id) > 32:
        return None
    return key_id


def create_account(redis: Redis, *, email: str | None = None, plan: str = "dev", credit_cents: int | None = None) -> str:
    """A new account on `plan`. A dev account (the newcomer's and the test suite's: no limits) also gets
    `GENGATE_DEV_CREDIT_CENTS` of credit unless told otherwise; others start at zero."""
    if plan not in accounts.PLANS:
        raise ValueError(f"unknown plan {plan!r}; one of {', '.join(accounts.PLANS)}")
    account_id = "user_" + secrets.token_hex(8)
    redis.hset(keys.account(account_id), mapping={
        "account_id": account_id, "email": email or "", "plan": plan, "created_at": utcnow_iso(),
        "balance_cents": 0, "holds_cents": 0,
    })
    if credit_cents is None and plan == "dev":
        credit_cents = get_settings().dev_credit_cents
    if credit_cents:
        accounts.credit(redis, account_id, credit_cents, reference="initial_credit")
    return account_id


def create_key(redis: Redis, account_id: str) -> str:
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"  # 256 bits of secret
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.api_key(key_id), mapping={
        "sha256": _digest(key), "account": account_id, "created_at": utcnow_iso(), "revoked": "0",
    })
    pipe.sadd(keys.account_keys(account_id), key_id)
    pipe.execute()
    return key


def list_keys(redis: Redis, account_id: str) -> list[dict[str, str]]:
    """The account's keys: id, created_at, revoked (never the key: only its hash is kept)."""
    out = []
    for key_id in sorted(k.decode() for k in redis.smembers(keys.account_keys(account_id))):
        record = redis.hgetall(keys.api_key(key_id))
        if record:
            out.append({"key_id": key_id, "created_at": record[b"created_at"].decode(),
                        "revoked": record.get(b"revoked") == b"1"})
    return out


def revoke_key(redis: Redis, key_id: str) -> bool:
    """From the next request on, the key answers 401. False if there is no such key."""
    if not redis.exists(keys.api_key(key_id)):
        return False
    redis.hset(keys.api_key(key_id), "revoked", "1")
    return True


async def authenticate(redis: AsyncRedis, key: str) -> Principal | None:
    key_id = parse_key_id(key)
    if key_id is None:
        return None
    record = await redis.hgetall(keys.api_key(key_id))
    if not record or record.get(b"revoked") == b"1":
        return None
    if not hmac.compare_digest(record[b"sha256"].decode(), _digest(key)):
        return None
    return Principal(account_id=record[b"account"].decode(), key_id=key_id)
