"""Accounts: plans and their limits, the prepaid balance and its ledger, as Redis Lua scripts.

Money is integer cents. The account hash holds `balance_cents` (what was credited minus what was
captured) and `holds_cents` (reserved by live jobs). Every movement is a ledger entry keyed by
(job, kind) through `HSETNX` on the ledger index, so a repeated step can never move money twice:

    credit   balance += n                   (an operator, `gengate credit add`)
    hold     holds += price                 (job admitted; refused with 402 unless balance - holds >= price)
    capture  balance -= price, holds -= price   (job completed by its own provider call, or cancelled too late)
    release  holds -= price                 (job failed, completed from the cache, or cancelled in time)

A job's hold ends exactly once, captured or released, never both (`_SETTLE_FN_LUA`). It ends inside
the job's terminal transition (`jobs/store.py`), which happens exactly once per job, with one
exception: a cancel. Cancelling costs what the provider charges us:

    cancelled while queued                      release   (no provider call was made)
    cancelled while processing, nothing sent    release   (the cancel takes the send's `unsent` mark)
    cancelled while processing, media job       capture   (our FFmpeg started: the work is done)
    cancelled after the provider's result came  capture
    cancelled while processing, otherwise       pending: the hold stays until the worker's cancel step
                                                hears the provider (`settle`): confirmed before the run
                                                started -> release; anything else -> capture

A pending job carries `settle: "pending"` and stays on the sweeper's schedule (unscheduling skips
it) until `SETTLE_LUA` ends its hold, so a lost cancel step is re-driven and nothing is held forever.
Cache hits and BYOK jobs hold nothing and so cost nothing.

Limits per plan: job-creating requests per minute by GCRA (a burst of the whole minute's quota,
then one per 60/rpm seconds), and concurrent jobs by the account's `active` set, which a job
leaves at its terminal transition, whatever ended it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gengate.config.plans import PLANS
from gengate.config.settings import Settings
from gengate.jobs import keys
from gengate.jobs.record import MEDIA_PROVIDER

UNLIMITED = 0
# A concurrency slot frees when one of the account's jobs ends, which cannot be known here: a short
# Retry-After is the honest answer.
CONCURRENCY_RETRY_AFTER = 2


def plan_table(settings: Settings) -> str:
    """'plan:rpm:concurrency ...' for the scripts; 0 means unlimited (the dev plan)."""
    return " ".join([
        f"free:{settings.plan_free_requests_per_minute}:{settings.plan_free_concurrent_jobs}",
        f"pro:{settings.plan_pro_requests_per_minute}:{settings.plan_pro_concurrent_jobs}",
        f"enterprise:{settings.plan_enterprise_requests_per_minute}:{settings.plan_enterprise_concurrent_jobs}",
        "dev:0:0",
    ])


# Shared by both scripts: the account's limits, its own overrides first, else its plan's.
_LIMITS_LUA = """
local function limits(account_key, table_spec)
  local plan, rpm, conc = unpack(redis.call('HMGET', account_key, 'plan', 'rpm', 'concurrency'))
  plan = plan or 'free'
  local prpm, pconc = 0, 0
  for name, r, c in string.gmatch(table_spec, '(%w+):(%d+):(%d+)') do
    if name == plan then prpm, pconc = tonumber(r), tonumber(c) end
  end
  return tonumber(rpm) or prpm, tonumber(conc) or pconc
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# GCRA. KEYS: account hash, rate key. ARGV: plan table.
# -> {allowed 0/1, rpm (0 = unlimited), retry_after s, remaining, reset s}
_RATE_LUA = _LIMITS_LUA + """
local rpm = limits(KEYS[1], ARGV[1])
if rpm <= 0 then return {1, 0, 0, 0, 0} end
local now = now_ms()
local interval = 60000 / rpm
local tat = tonumber(redis.call('GET', KEYS[2])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - rpm * interval
if now < allow_at then
  return {0, rpm, math.ceil((allow_at - now) / 1000), 0, math.ceil((tat - now) / 1000)}
end
redis.call('SET', KEYS[2], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, rpm, 0, math.floor((now - allow_at) / interval), math.ceil((new_tat - now) / 1000)}
"""

# Admission of a job and, when admitted, the writes that create it, in one script: the API's
# submission costs one round trip here instead of two, and a refused job leaves nothing behind.
# KEYS: account hash, active set, ledger index, ledger stream.
# ARGV: plan table, job id, price (cents; 0 holds nothing), job key prefix, then optionally '1' to
# admit or '0' to skip admission (a cache hit takes no slot), then the creating commands, each as
# its number of words followed by the words (jobs/store.py `AsyncJobStore.create`).
# -> {1} | {0, 'concurrency', limit} | {0, 'balance', available}
_ADMIT_LUA = _LIMITS_LUA + """
local job, price = ARGV[2], tonumber(ARGV[3])
if ARGV[5] ~= '0' then
  local _, conc = limits(KEYS[1], ARGV[1])
  if conc > 0 then
    -- A job leaves the set at its terminal transition; prune any that expired without one.
    for _, member in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
      local st = redis.call('HGET', ARGV[4] .. member, 'status')
      if not st or st == '"completed"' or st == '"failed"' or st == '"cancelled"' then
        redis.call('ZREM', KEYS[2], member)
      end
    end
    if redis.call('ZCARD', KEYS[2]) >= conc then return {0, 'concurrency', conc} end
  end
  if price > 0 then
    local balance = tonumber(redis.call('HGET', KEYS[1], 'balance_cents')) or 0
    local holds = tonumber(redis.call('HGET', KEYS[1], 'holds_cents')) or 0
    if balance - holds < price then return {0, 'balance', balance - holds} end
    if redis.call('HSETNX', KEYS[3], job .. '|hold', price) == 1 then
      holds = redis.call('HINCRBY', KEYS[1], 'holds_cents', price)
      redis.call('XADD', KEYS[4], '*', 'job', job, 'kind', 'hold', 'cents', price, 'balance', balance, 'holds', holds)
    end
  end
  redis.call('ZADD', KEYS[2], now_ms(), job)
end
local i = 6
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return {1}
"""

# Undo an admission whose job was never created. KEYS: account hash, active set, ledger index, stream.
# ARGV: job id.
_UNADMIT_LUA = """
redis.call('ZREM', KEYS[2], ARGV[1])
local held = tonumber(redis.call('HGET', KEYS[3], ARGV[1] .. '|hold'))
if held and redis.call('HSETNX', KEYS[3], ARGV[1] .. '|release', held) == 1 then
  local holds = redis.call('HINCRBY', KEYS[1], 'holds_cents', -held)
  local balance = redis.call('HGET', KEYS[1], 'balance_cents') or 0
  redis.call('XADD', KEYS[4], '*', 'job', ARGV[1], 'kind', 'release', 'cents', held, 'balance', balance, 'holds', holds)
end
return 1
"""

# How long a pending cancel waits for its cancel step before the sweeper settles it itself.
CANCEL_BACKSTOP_SECONDS = 5
CAPTURE, RELEASE = "capture", "release"

# The end of a job's hold, shared by the transition script and `SETTLE_LUA`: at most once per job,
# whichever kind (the ledger index's `job|capture` / `job|release` entries), and the usage record of
# a completed job or of any job whose price was captured (a cancel that came too late shows in usage
# like a completion: its price, `cache_hit` false; the job itself says `cancelled`).
_SETTLE_FN_LUA = """
local function acct_settle(job_key, job_id, acct_key, held, kind, completed, hit)
  local cost = 0
  if held > 0 then
    local idx = acct_key .. ':ledger_index'
    if redis.call('HEXISTS', idx, job_id .. '|capture') == 1 or redis.call('HEXISTS', idx, job_id .. '|release') == 1 then
      return 0
    end
    redis.call('HSET', idx, job_id .. '|' .. kind, held)
    if kind == 'capture' then
      redis.call('HINCRBY', acct_key, 'balance_cents', -held)
      cost = held
    end
    local holds = redis.call('HINCRBY', acct_key, 'holds_cents', -held)
    redis.call('XADD', acct_key .. ':ledger', '*', 'job', job_id, 'kind', kind, 'cents', held,
               'balance', redis.call('HGET', acct_key, 'balance_cents') or 0, 'holds', holds)
  end
  if completed or cost > 0 then
    local f = redis.call('HMGET', job_key, 'model', 'capability', 'created_at', 'completed_at')
    local t = redis.call('TIME')
    local acct_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    redis.call('ZADD', acct_key .. ':usage', acct_ms,
      '{"job_id":"' .. job_id .. '","model":' .. f[1] .. ',"capability":' .. f[2] .. ',"cost_cents":' .. cost ..
      ',"cache_hit":' .. (hit and 'true' or 'false') .. ',"created_at":' .. f[3] ..
      (f[4] and (',"completed_at":' .. f[4]) or '') .. '}')
    -- The UTC day's total, atomically with its record: GET /v1/usage sums days instead of records.
    if cost > 0 then
      redis.call('HINCRBY', acct_key .. ':usage_days', math.floor(acct_ms / 86400000), cost)
    end
  end
  return 1
end
"""

# The money part of a winning terminal transition, spliced into the transition script (it runs with
# KEYS[1] = the job hash, ARGV[2] = the new status, `cur` the status before, `job_id` the job's id).
# Lua locals prefixed `acct_`. The cancel rule is the module docstring's table.
TERMINAL_LUA = _SETTLE_FN_LUA + """
local job_id = string.sub(KEYS[1], __JOB_PREFIX_LEN__ + 1)
local acct_kind = 'release'
if ARGV[2] == 'cancelled' and cur == 'processing' then
  -- Taking the `unsent` mark is taking the one right to send: no provider call will follow.
  if redis.call('HDEL', KEYS[1], 'unsent') == 1 then
    acct_kind = 'release'
  elseif redis.call('HGET', KEYS[1], 'provider') == '"__MEDIA__"' or redis.call('HEXISTS', KEYS[1], 'result') == 1 then
    acct_kind = 'capture'
  else
    acct_kind = 'pending'
  end
end
local acct_raw = redis.call('HGET', KEYS[1], 'account')
if acct_raw then
  local acct_key = '__ACCOUNT_PREFIX__' .. string.sub(acct_raw, 2, -2)
  redis.call('ZREM', acct_key .. ':active', job_id)
  local held = tonumber(redis.call('HGET', KEYS[1], 'hold_cents')) or 0
  local cache_raw = redis.call('HGET', KEYS[1], 'cache') or ''
  local hit = string.find(cache_raw, '"hit":true', 1, true) ~= nil
  if ARGV[2] == 'completed' and not hit then acct_kind = 'capture' end
  if acct_kind == 'pending' and held > 0 then
    local t = redis.call('TIME')
    redis.call('HSET', KEYS[1], 'settle', '"pending"')
    redis.call('ZADD', '__SCHEDULE__', tonumber(t[1]) + __BACKSTOP__, job_id)
  else
    if acct_kind == 'pending' then acct_kind = 'release' end
    acct_settle(KEYS[1], job_id, acct_key, held, acct_kind, ARGV[2] == 'completed', hit)
  end
end
"""

# The end of a pending cancel's hold (tasks/pipeline.py `settle_cancel`). KEYS: job hash, schedule.
# ARGV: capture | release. -> 1 if this call settled it, 0 if it was not pending (settled already).
SETTLE_LUA = _SETTLE_FN_LUA + """
if redis.call('HGET', KEYS[1], 'settle') ~= '"pending"' then return 0 end
local job_id = string.sub(KEYS[1], __JOB_PREFIX_LEN__ + 1)
redis.call('HSET', KEYS[1], 'settle', '"' .. ARGV[1] .. 'd"')
redis.call('ZREM', KEYS[2], job_id)
local acct_key = '__ACCOUNT_PREFIX__' .. string.sub(redis.call('HGET', KEYS[1], 'account'), 2, -2)
local held = tonumber(redis.call('HGET', KEYS[1], 'hold_cents')) or 0
return acct_settle(KEYS[1], job_id, acct_key, held, ARGV[1], false, false)
"""


def _fill(script: str) -> str:
    return (script.replace("__JOB_PREFIX_LEN__", str(len(keys.JOB.format(""))))
            .replace("__ACCOUNT_PREFIX__", keys.ACCOUNT.format("")).replace("__SCHEDULE__", keys.SCHEDULE)
            .replace("__BACKSTOP__", str(CANCEL_BACKSTOP_SECONDS)).replace("__MEDIA__", MEDIA_PROVIDER))


TERMINAL_LUA, SETTLE_LUA = _fill(TERMINAL_LUA), _fill(SETTLE_LUA)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int  # requests a minute; 0 = unlimited
    retry_after: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        """IETF draft-ietf-httpapi-ratelimit-headers: the policy and where the caller stands in it."""
        if self.limit == UNLIMITED:
            return {}
        return {"RateLimit-Policy": f'"requests";q={self.limit};w=60',
                "RateLimit": f'"requests";r={self.remaining};t={self.reset}'}


@dataclass(frozen=True)
class Admission:
    admitted: bool
    reason: str = ""  # concurrency | balance
    value: int = 0  # the concurrency limit, or the cents available


class Scripts:
    """The account scripts on one client (sync or `redis.asyncio`: then calls return awaitables)."""

    def __init__(self, redis: Any) -> None:
        self.rate = redis.register_script(_RATE_LUA)
        self.admit = redis.register_script(_ADMIT_LUA)
        self.unadmit = redis.register_script(_UNADMIT_LUA)


def rate_args(account: str, settings: Settings) -> tuple[list[str], list[Any]]:
    return [keys.account(account), keys.account_rate(account)], [plan_table(settings)]


def rate_decision(ret: list) -> RateDecision:
    allowed, limit, retry_after, remaining, reset = (int(v) for v in ret)
    return RateDecision(bool(allowed), limit, max(retry_after, 1) if not allowed else 0, max(remaining, 0), reset)


def _money_keys(account: str) -> list[str]:
    return [keys.account(account), keys.account_active(account), keys.account_ledger_index(account),
            keys.account_ledger(account)]


def admit_args(account: str, job_id: str, price: int, settings: Settings, *, admit: bool = True,
               writes: Iterable[Sequence[Any]] = ()) -> tuple[list[str], list[Any]]:
    """`writes`: the commands (word lists) that create the job, run only once it is admitted."""
    args: list[Any] = [plan_table(settings), job_id, price, keys.JOB.format(""), "1" if admit else "0"]
    for words in writes:
        args.append(len(words))
        args.extend(words)
    return _money_keys(account), args


def admission(ret: list) -> Admission:
    if int(ret[0]) == 1:
        return Admission(True)
    reason = ret[1].decode() if isinstance(ret[1], bytes) else ret[1]
    return Admission(False, reason, int(ret[2]))


def unadmit_args(account: str, job_id: str) -> tuple[list[str], list[Any]]:
    return _money_keys(account), [job_id]


# -- operator actions (sync: the CLI) ----------------------------------------------------------------

def credit(redis: Any, account: str, cents: int, *, reference: str | None = None) -> int:
    """Add credit (or take it back, if negative) with a ledger entry; returns the new balance."""
    ref = reference or "credit_" + secrets.token_hex(8)
    if not redis.hsetnx(keys.account_ledger_index(account), f"{ref}|credit", cents):
        return int(redis.hget(keys.account(account), "balance_cents") or 0)
    balance = redis.hincrby(keys.account(account), "balance_cents", cents)
    holds = int(redis.hget(keys.account(account), "holds_cents") or 0)
    redis.xadd(keys.account_ledger(account), {"job": ref, "kind": "credit", "cents": cents, "balance": balance,
                                              "holds": holds})
    return int(balance)


def ledger_sum(redis: Any, account: str) -> int:
    """What the balance must be by the ledger: credits minus captures."""
    total = 0
    for _, entry in redis.xrange(keys.account_ledger(account)):
        kind, cents = entry[b"kind"], int(entry[b"cents"])
        total += cents if kind == b"credit" else -cents if kind == b"capture" else 0
    return total


def set_limits(redis: Any, account: str, *, rpm: int | None = None, concurrency: int | None = None) -> None:
    """An account's own limits (enterprise), overriding its plan's; 0 means unlimited."""
    fields = {k: v for k, v in (("rpm", rpm), ("concurrency", concurrency)) if v is not None}
    if fields:
        redis.hset(keys.account(account), mapping=fields)


def set_plan(redis: Any, account: str, plan: str) -> None:
    if plan not in PLANS:
        raise ValueError(f"unknown plan {plan!r}; one of {', '.join(PLANS)}")
    redis.hset(keys.account(account), "plan", plan)
