"""Uploaded files' bookkeeping in Redis: the storage quota, and forgetting an upload.

The quota: bytes of uploaded files an account keeps, against its plan's allowance.

The account hash's `upload_bytes` counts the sizes of the account's live uploads. An upload takes
its size when it is registered (refused past the quota, atomically, so concurrent uploads cannot
overshoot it together) and gives it back when it is deleted, by its owner or by retention. Outputs
are not counted: every output belongs to a job the account paid for, and lives as long as the job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gengate.config.settings import Settings
from gengate.jobs import keys

# KEYS[1]: the account hash. ARGV: plan table 'plan:bytes ...' (0 = unlimited), the size.
# -> {1, used} taken | {0, used, quota} refused
_TAKE_LUA = """
local plan = redis.call('HGET', KEYS[1], 'plan') or 'free'
local quota = 0
for name, q in string.gmatch(ARGV[1], '(%w+):(%d+)') do
  if name == plan then quota = tonumber(q) end
end
local used = tonumber(redis.call('HGET', KEYS[1], 'upload_bytes')) or 0
local size = tonumber(ARGV[2])
if quota > 0 and used + size > quota then return {0, used, quota} end
return {1, redis.call('HINCRBY', KEYS[1], 'upload_bytes', size)}
"""

# KEYS[1]: the account hash. ARGV: the size. Never below zero.
_GIVE_BACK_LUA = """
local used = tonumber(redis.call('HGET', KEYS[1], 'upload_bytes')) or 0
local left = math.max(used - tonumber(ARGV[1]), 0)
redis.call('HSET', KEYS[1], 'upload_bytes', left)
return left
"""


# Forget one upload, exactly once: its record, its retention entry, its share of the account's
# quota, and its dedup index entry if that still points to it (a newer upload may own it).
# KEYS[1]: the file record, KEYS[2]: the retention zset. ARGV: file id, the account key prefix.
# -> the file's stored name, or false if it was already forgotten.
FORGET_LUA = """
redis.call('ZREM', KEYS[2], ARGV[1])
local rec = redis.call('HMGET', KEYS[1], 'account', 'sha256', 'size', 'name')
if not rec[1] then return false end
redis.call('DEL', KEYS[1])
local acct = ARGV[2] .. rec[1]
local used = tonumber(redis.call('HGET', acct, 'upload_bytes')) or 0
redis.call('HSET', acct, 'upload_bytes', math.max(used - (tonumber(rec[3]) or 0), 0))
if redis.call('HGET', acct .. ':files', rec[2]) == ARGV[1] then redis.call('HDEL', acct .. ':files', rec[2]) end
return rec[4]
"""
assert keys.account_files("x") == keys.account("x") + ":files"  # the script derives one from the other


@dataclass(frozen=True)
class Usage:
    allowed: bool
    used: int
    quota: int  # 0 = unlimited


def _quotas(settings: Settings) -> dict[str, int]:
    return {"free": settings.plan_free_storage_bytes, "pro": settings.plan_pro_storage_bytes,
            "enterprise": settings.plan_enterprise_storage_bytes, "dev": 0}


def plan_quotas(settings: Settings) -> str:
    """'plan:bytes ...' for the script; 0 means unlimited (the dev plan)."""
    return " ".join(f"{plan}:{size}" for plan, size in _quotas(settings).items())


def quota_of(plan: str, settings: Settings) -> int:
    """The plan's quota in bytes (0 = unlimited); an account without a plan is on the free one."""
    return _quotas(settings).get(plan, settings.plan_free_storage_bytes)


class UploadScripts:
    def __init__(self, redis: Any) -> None:
        self.take = redis.register_script(_TAKE_LUA)
        self.give_back = redis.register_script(_GIVE_BACK_LUA)
        self.forget = redis.register_script(FORGET_LUA)


def take_args(account: str, size: int, settings: Settings) -> tuple[list[str], list[Any]]:
    return [keys.account(account)], [plan_quotas(settings), size]


def give_back_args(account: str, size: int) -> tuple[list[str], list[Any]]:
    return [keys.account(account)], [size]


def usage(ret: list) -> Usage:
    if int(ret[0]) == 1:
        return Usage(True, int(ret[1]), 0)
    return Usage(False, int(ret[1]), int(ret[2]))


def forget_args(file_id: str) -> tuple[list[str], list[Any]]:
    return [keys.file(file_id), keys.UPLOADS_EXPIRY], [file_id, keys.account("")]


def forgotten_name(ret: Any) -> str | None:
    """The stored name the forget script returned (the caller removes it), None if already gone."""
    return ret.decode() if isinstance(ret, bytes) else ret or None
