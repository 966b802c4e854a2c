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


def _new_key(account_id: str) -> tuple[str, str, dict[str, str]]:
    """A fresh key: its id, the whole key (shown to its owner once, never stored) and its record."""
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"  # 256 bits of secret
    return key_id, key, {"sha256": _digest(key), "account": account_id, "created_at": utcnow_iso(), "revoked": "0"}


def create_key(redis: Redis, account_id: str) -> str:
    key_id, key, record = _new_key(account_id)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.api_key(key_id), mapping=record)
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


# The account's own key management (/v1/keys), one script so that checks and write cannot interleave
# with another request's: two concurrent revokes cannot both see "another key is still active" and
# leave the account with none, two creates cannot both pass the cap.
# KEYS: the account's key set. ARGV: key id, api-key hash prefix, "create" or "revoke", then
#   create: the most active keys allowed, the new record's field/value pairs -> 1, or -2 at the cap;
#   revoke: the time of revocation -> 1, 0 (not the account's key), 2 (already revoked), -1 (its last active key).
KEYRING_LUA = """
local active = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HGET', ARGV[2] .. id, 'revoked') == '0' then active = active + 1 end
end
if ARGV[3] == 'create' then
  if active >= tonumber(ARGV[4]) then return -2 end
  local record = {}
  for i = 5, #ARGV do record[#record + 1] = ARGV[i] end
  redis.call('HSET', ARGV[2] .. ARGV[1], unpack(record))
  redis.call('SADD', KEYS[1], ARGV[1])
  return 1
end
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return 0 end
local revoked = redis.call('HGET', ARGV[2] .. ARGV[1], 'revoked')
if not revoked then return 0 end
if revoked == '1' then return 2 end
if active <= 1 then return -1 end
redis.call('HSET', ARGV[2] .. ARGV[1], 'revoked', '1', 'revoked_at', ARGV[4])
return 1
"""


async def create_own_key(redis: AsyncRedis, account_id: str, max_active: int) -> tuple[str, str, str] | None:
    """A new key for the account: (key_id, key, created_at), or None when it already has `max_active`."""
    key_id, key, record = _new_key(account_id)
    pairs = [v for item in record.items() for v in item]
    done = await redis.eval(KEYRING_LUA, 1, keys.account_keys(account_id), key_id, keys.api_key(""),
                            "create", max_active, *pairs)
    return (key_id, key, record["created_at"]) if done == 1 else None


async def revoke_own_key(redis: AsyncRedis, account_id: str, key_id: str) -> int:
    """Revoke one of the account's keys; KEYRING_LUA's answer (1 done, 0 none such, 2 already, -1 last)."""
    return int(await redis.eval(KEYRING_LUA, 1, keys.account_keys(account_id), key_id, keys.api_key(""),
                                "revoke", utcnow_iso()))


async def own_keys(redis: AsyncRedis, account_id: str) -> list[dict[str, object]]:
    """The account's keys, oldest first: id, created_at, revoked (the key itself is never kept)."""
    ids = sorted(k.decode() for k in await redis.smembers(keys.account_keys(account_id)))
    pipe = redis.pipeline(transaction=False)
    for key_id in ids:
        pipe.hmget(keys.api_key(key_id), "created_at", "revoked", "revoked_at")
    out = []
    for key_id, (created, revoked, revoked_at) in zip(ids, await pipe.execute()):
        if created is not None:
            out.append({"key_id": key_id, "created_at": created.decode(), "revoked": revoked == b"1",
                        "revoked_at": revoked_at.decode() if revoked_at else None})
    return sorted(out, key=lambda k: (k["created_at"], k["key_id"]))


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
