"""Atomic reads and writes of job records in Redis, for both the async API and the sync workers.

Every status change is one Lua compare-and-set (`TRANSITION`): it checks the current status
against the allowed ones, applies the patch, and appends the new public job JSON to the job's
event stream, so two racing transitions (cancel vs complete) have exactly one winner and every
winner leaves exactly one event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from gengate.config import logs
from gengate.config.catalog import PASSTHROUGH
from gengate.config.settings import Settings
from gengate.jobs import accounts, cache, keys, states, webhooks
from gengate.jobs.record import PUBLIC_FIELDS, Job, encode_fields, utcnow_iso

EVENTS_MAXLEN = 200
log = logging.getLogger("gengate.jobs")

# The transition script's webhook part (runs only for jobs with a `webhook_url`): a winning
# transition that fires a subscribed event creates its delivery (jobs/webhooks.py) in the same
# atomic step, so no event is lost between the state change and its webhook. Events: `completed`
# and `failed` on entering them; `progress` on queued -> processing and on every patch that changes
# the `progress` field. `cancelled` fires nothing (the peer API has no such event). Subscriptions:
# the `webhook_events` JSON list, absent = completed + failed. The delivery keeps the public job
# JSON of this moment (plus `progress` for progress events), so a late retry still says what was.
_WEBHOOK_LUA = """
local to = ARGV[2]
local event = false
if to ~= cur then
  if to == 'completed' or to == 'failed' then event = to elseif to == 'processing' then event = 'progress' end
elseif to == 'processing' and redis.call('HGET', KEYS[1], 'progress') ~= old_progress then
  event = 'progress'
end
local subs = event and redis.call('HGET', KEYS[1], 'webhook_events')
if subs and subs ~= 'null' then
  if not string.find(subs, '"' .. event .. '"', 1, true) then event = false end
elseif event == 'progress' then
  event = false
end
if event then
  local jid = string.sub(redis.call('HGET', KEYS[1], 'job_id'), 2, -2)
  local suffix = event
  if event == 'progress' then suffix = 'p' .. redis.call('HINCRBY', KEYS[1], 'webhook_seq', 1) end
  local id = 'msg_' .. (string.gsub(jid, '^job_', '')) .. '_' .. suffix
  local pub = {__PUBLIC__}
  if event == 'progress' then pub[#pub + 1] = 'progress' end
  local vals = redis.call('HMGET', KEYS[1], unpack(pub))
  local parts = {}
  for i, f in ipairs(pub) do
    if vals[i] and vals[i] ~= 'null' then parts[#parts + 1] = '"' .. f .. '":' .. vals[i] end
  end
  local hk = '__WEBHOOK_KEY__' .. id
  redis.call('HSET', hk, 'job_id', jid, 'event', event, 'attempts', 0, 'job', '{' .. table.concat(parts, ',') .. '}')
  redis.call('EXPIRE', hk, __DELIVERY_TTL__)
  local now = redis.call('TIME')
  redis.call('ZADD', '__WEBHOOKS_DUE__', tonumber(now[1]) + tonumber(now[2]) / 1000000, id)
end
""".replace("__WEBHOOK_KEY__", keys.webhook("")).replace("__WEBHOOKS_DUE__", keys.WEBHOOKS_DUE).replace(
    "__DELIVERY_TTL__", str(webhooks.DELIVERY_TTL_SECONDS))

def stats_model(job: Job) -> str:
    """The model a job counts under in the gateway's statistics: its own, or for an endpoint reached
    by id (passthrough) `provider:*`, so ids a caller makes up cannot grow the counters (and the
    labels /metrics exports) without end. _STATS_LUA keeps the same rule."""
    return f"{job.provider}:*" if job.mode == PASSTHROUGH else job.model


# The transition script's metrics part (api/metrics.py reads the hashes): a winning transition into
# a terminal state counts the job once by provider and model, and a completed job once by cache
# outcome (hit: served from a stored result or an identical job's call; bypass: `Cache-Control`
# skipped the look-up). A failed job's id joins the operators' list of recent failures (its last
# RECENT_FAILURES_KEPT; api/routes/admin.py). Values in the job hash are JSON, hence the quotes stripped.
RECENT_FAILURES_KEPT = 100
_STATS_LUA = """
local meta = redis.call('HMGET', KEYS[1], 'provider', 'model', 'cache', 'cache_mode', 'mode')
local provider = meta[1] and string.sub(meta[1], 2, -2) or ''
local model = meta[2] and string.sub(meta[2], 2, -2) or ''
if meta[5] == '"__PASSTHROUGH__"' then model = provider .. ':*' end
local label = '|' .. provider .. '|' .. model
redis.call('HINCRBY', '__STATS_JOBS__', ARGV[2] .. label, 1)
if ARGV[2] == 'completed' then
  local outcome = 'miss'
  if meta[3] and string.find(meta[3], '"hit":true', 1, true) then outcome = 'hit'
  elseif meta[4] and meta[4] ~= '"default"' then outcome = 'bypass' end
  redis.call('HINCRBY', '__STATS_CACHE__', outcome .. label, 1)
elseif ARGV[2] == 'failed' then
  redis.call('LPUSH', '__RECENT_FAILURES__', string.sub(KEYS[1], __JOB_PREFIX_LEN__ + 1))
  redis.call('LTRIM', '__RECENT_FAILURES__', 0, __RECENT_FAILURES_KEPT__ - 1)
end
""".replace("__STATS_JOBS__", keys.STATS_JOBS).replace("__STATS_CACHE__", keys.STATS_CACHE).replace(
    "__PASSTHROUGH__", PASSTHROUGH).replace(
    "__RECENT_FAILURES__", keys.RECENT_FAILURES).replace("__RECENT_FAILURES_KEPT__", str(RECENT_FAILURES_KEPT))

# KEYS: job hash, events stream, sealed BYOK key (deleted when the job ends), cache key. ARGV: allowed-from (space separated), new status,
# emit event (0/1), ttl seconds (0 keeps the current one), cache entry ("" for none) and its ttl, then field/value pairs
# (values already JSON). A completing job's cache entry is written here, by the winning transition
# only, in the same step: whoever sees the job completed finds its entry (no window in which an
# identical request misses and pays again), and a job that lost to a cancel leaves none.
# Returns {1, previous} on success, {0, current or ""} when the job is missing or in another state.
_TRANSITION_LUA = """
local raw = redis.call('HGET', KEYS[1], 'status')
if not raw then return {0, ''} end
local cur = string.sub(raw, 2, -2)
local allowed = false
for s in string.gmatch(ARGV[1], '%S+') do
  if s == cur then allowed = true break end
end
if not allowed then return {0, cur} end
local hook = redis.call('HGET', KEYS[1], 'webhook_url')
hook = hook and hook ~= 'null'
local old_progress = hook and redis.call('HGET', KEYS[1], 'progress')
local args = {'status', '"' .. ARGV[2] .. '"'}
for i = 7, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
if ARGV[3] == '1' then
  local public = {__PUBLIC__}
  local vals = redis.call('HMGET', KEYS[1], unpack(public))
  local parts = {}
  for i, f in ipairs(public) do
    if vals[i] and vals[i] ~= 'null' then parts[#parts + 1] = '"' .. f .. '":' .. vals[i] end
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', __MAXLEN__, '*', 'status', ARGV[2], 'job', '{' .. table.concat(parts, ',') .. '}')
end
if hook then
__WEBHOOK__
end
if ARGV[2] ~= cur and (ARGV[2] == 'completed' or ARGV[2] == 'failed' or ARGV[2] == 'cancelled') then
__STATS__
__MONEY__
end
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5], 'EX', tonumber(ARGV[6])) end
local ttl = tonumber(ARGV[4])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('DEL', KEYS[3])
  if ARGV[2] == 'completed' or ARGV[2] == 'failed' or ARGV[2] == 'cancelled' then
    -- The job's output files go when its record does (tasks/retention.py).
    local t = redis.call('TIME')
    redis.call('ZADD', '__OUTPUTS_EXPIRY__', tonumber(t[1]) + ttl, string.sub(KEYS[1], __JOB_PREFIX_LEN__ + 1))
  end
end
return {1, cur}
""".replace("__WEBHOOK__", _WEBHOOK_LUA).replace("__STATS__", _STATS_LUA).replace("__MONEY__", accounts.TERMINAL_LUA).replace("__PUBLIC__", ", ".join(f"'{f}'" for f in PUBLIC_FIELDS)).replace("__MAXLEN__", str(EVENTS_MAXLEN)).replace(
    "__OUTPUTS_EXPIRY__", keys.OUTPUTS_EXPIRY).replace("__JOB_PREFIX_LEN__", str(len(keys.job(""))))

# The sweeper's claim: take due jobs and push their due time out by a lease, atomically, so each
# due job goes to one sweeper, and comes back by itself if that sweeper dies before rescheduling it.
_CLAIM_LUA = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return due
"""


# A provider's callback pulls the job's due time forward, only while it waits on the provider:
# scheduled (terminal jobs are not) and without a result yet. A job that has its result is being
# finalized already; a nudge would only start a second finalize beside it (a provider may call back
# several times, e.g. Replicate).
_NUDGE_LUA = """
if redis.call('HEXISTS', KEYS[2], 'result') == 1 then return 0 end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1]) end
return 0
"""


# A job whose cancel is still to be settled (jobs/accounts.py) keeps its schedule entry whoever asks
# to drop it: the entry is what re-drives the settlement if its cancel step is lost.
_UNSCHEDULE_LUA = """
if redis.call('HGET', KEYS[2], 'settle') == '"pending"' then return 0 end
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


# A job's move to its next provider (tasks/fallback.py), atomically with its price: only while it
# is processing with no provider's handle (no provider has accepted it) and its hold still open. The
# hold becomes the next provider's price (the account's holds move by the difference, checked
# against the balance like an admission; a ledger `reprice` entry records it), so at any moment one
# price is held and the one capture or release at the end settles it.
# A run its provider reported failed (`failed_run`) has a handle: it is dropped with the move; any
# other move needs the job to have none (no provider accepted it).
# KEYS: job hash, account hash, ledger index, ledger stream. ARGV: new price, attempt number, 1 for a
# failed run (else 0), then field/value pairs (JSON). -> 1 moved, 0 not processing / accepted /
# settled, -1 balance short.
_FALL_BACK_LUA = """
if redis.call('HGET', KEYS[1], 'status') ~= '"processing"' then return 0 end
if redis.call('HEXISTS', KEYS[1], 'result') == 1 then return 0 end
if ARGV[3] ~= '1' and redis.call('HEXISTS', KEYS[1], 'handle') == 1 then return 0 end
local job_id = string.sub(KEYS[1], __JOB_PREFIX_LEN__ + 1)
if redis.call('HEXISTS', KEYS[3], job_id .. '|capture') == 1 or redis.call('HEXISTS', KEYS[3], job_id .. '|release') == 1 then
  return 0
end
local old = tonumber(redis.call('HGET', KEYS[1], 'hold_cents')) or 0
local new = tonumber(ARGV[1])
if new ~= old then
  local balance = tonumber(redis.call('HGET', KEYS[2], 'balance_cents')) or 0
  local holds = tonumber(redis.call('HGET', KEYS[2], 'holds_cents')) or 0
  if new > old and balance - holds < new - old then return -1 end
  holds = redis.call('HINCRBY', KEYS[2], 'holds_cents', new - old)
  redis.call('HSET', KEYS[3], job_id .. '|hold#' .. ARGV[2], new)
  redis.call('XADD', KEYS[4], '*', 'job', job_id, 'kind', 'reprice', 'cents', new, 'from', old,
             'balance', balance, 'holds', holds)
end
local fields = {'hold_cents', tostring(new)}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HDEL', KEYS[1], 'handle', 'poll_interval')
redis.call('HSET', KEYS[1], unpack(fields))
return 1
""".replace("__JOB_PREFIX_LEN__", str(len(keys.job(""))))


def _decoded(ids: Iterable[bytes | str]) -> list[str]:
    return [i.decode() if isinstance(i, bytes) else i for i in ids]


def _transition_call(
    job_id: str, to: str, allowed_from: Iterable[str] | None, fields: dict[str, bytes], ttl: int, emit: bool,
    cache_write: tuple[str, bytes, int] | None = None,
) -> tuple[list[str], list[Any]]:
    allowed = states.ALLOWED_FROM[to] if allowed_from is None else frozenset(allowed_from)
    cache_key, entry, cache_ttl = cache_write or (keys.job(job_id), b"", 0)
    argv: list[Any] = [" ".join(sorted(allowed)), to, "1" if emit else "0", ttl, entry, cache_ttl]
    for k, v in fields.items():
        argv += [k, v]
    return [keys.job(job_id), keys.job_events(job_id), keys.job_key(job_id), cache_key], argv


def _transition_fields(to: str, patch: dict[str, Any]) -> dict[str, bytes]:
    now = utcnow_iso()
    extra: dict[str, Any] = {"updated_at": now}
    if to in states.TERMINAL:
        extra["completed_at"] = now
    return encode_fields(**extra, **patch)


def _result(ret: list) -> tuple[bool, str | None]:
    ok, cur = ret
    cur = cur.decode() if isinstance(cur, bytes) else cur
    return bool(ok), (cur or None)


class JobStore:
    """Synchronous store, used by workers and the CLI."""

    def __init__(self, redis: Redis, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self._transition = redis.register_script(_TRANSITION_LUA)
        self._claim = redis.register_script(_CLAIM_LUA)
        self._release = redis.register_script(cache.RELEASE_LUA)
        self._unschedule = redis.register_script(_UNSCHEDULE_LUA)
        self._settle = redis.register_script(accounts.SETTLE_LUA)
        self._fall_back = redis.register_script(_FALL_BACK_LUA)

    def get(self, job_id: str) -> Job | None:
        raw = self.redis.hgetall(keys.job(job_id))
        job = Job.from_fields(raw) if raw else None
        if job is not None:
            logs.note_account(job.job_id, job.account)  # a step's log lines name the account of its job
        return job

    def transition(
        self, job_id: str, to: str, *, allowed_from: Iterable[str] | None = None, emit: bool = True,
        cache_write: tuple[str, bytes, int] | None = None, **patch: Any
    ) -> tuple[bool, str | None]:
        """Move the job to `to` if it is in an allowed state; returns (won, state before or now).
        `cache_write` (key, entry, ttl): a result cache entry written by the winning transition."""
        ttl = self.ttl if to in states.TERMINAL else 0
        k, a = _transition_call(job_id, to, allowed_from, _transition_fields(to, patch), ttl, emit, cache_write)
        return _result(self._transition(keys=k, args=a))

    def patch_while(self, job_id: str, status: str, *, emit: bool = False, **patch: Any) -> bool:
        """Update fields only while the job is still in `status` (no status change)."""
        won, _ = self.transition(job_id, status, allowed_from=(status,), emit=emit, **patch)
        return won

    def fall_back(self, job: Job, price: int, attempt: int, *, failed_run: bool, **patch: Any) -> int:
        """Move `job` to another provider (`patch`: its new provider, endpoint, model, routes...) at
        `price`; `failed_run`: its provider reported the run failed. See _FALL_BACK_LUA's answer."""
        args: list[Any] = [price, attempt, 1 if failed_run else 0]
        for k, v in encode_fields(**patch).items():
            args += [k, v]
        money = [keys.account(job.account), keys.account_ledger_index(job.account), keys.account_ledger(job.account)]
        return int(self._fall_back(keys=[keys.job(job.job_id), *money], args=args))

    def add_event(self, job_id: str, event: str, data: dict[str, Any]) -> None:
        """An event of the job's stream that is no status change (a fallback's `progress`)."""
        self.redis.xadd(keys.job_events(job_id), {"status": states.PROCESSING, "event": event, "job": orjson.dumps(data)},
                        maxlen=EVENTS_MAXLEN, approximate=True)

    def sealed_key(self, job_id: str) -> bytes | None:
        return self.redis.get(keys.job_key(job_id))

    def set_fields(self, job_id: str, **patch: Any) -> None:
        """Unconditional write of non-status fields (used for the provider handle, which must never be lost)."""
        self.redis.hset(keys.job(job_id), mapping=encode_fields(**patch))

    def take_unsent(self, job_id: str) -> bool:
        """Claim the one right to send the job's submission: True for exactly one caller, and only
        while the job still carries the `unsent` mark that the move to processing gave it."""
        return self.redis.hdel(keys.job(job_id), "unsent") == 1

    def schedule(self, job_id: str, at: float) -> None:
        self.redis.zadd(keys.SCHEDULE, {job_id: at})

    def unschedule(self, job_id: str) -> None:
        self._unschedule(keys=[keys.SCHEDULE, keys.job(job_id)], args=[job_id])

    def schedule_soon(self, job_id: str, at: float) -> None:
        """Make the job due at `at` unless it is due earlier already."""
        self.redis.zadd(keys.SCHEDULE, {job_id: at}, lt=True)

    # -- a cancel's settlement (jobs/accounts.py) -------------------------------------------------------
    def settlement_pending(self, job_id: str) -> bool:
        return self.redis.hget(keys.job(job_id), "settle") == b'"pending"'

    def settle(self, job_id: str, kind: str) -> bool:
        """End a pending cancel's hold (`accounts.CAPTURE` or `RELEASE`) and its schedule entry;
        False when it was not pending (settled already, or never held anything)."""
        return bool(self._settle(keys=[keys.job(job_id), keys.SCHEDULE], args=[kind]))

    def claim_settlement(self, job_id: str, lease_seconds: float) -> bool:
        """The right to ask the provider about a pending cancel, for one caller at a time; it lapses
        after the lease, should its holder die."""
        return bool(self.redis.set(keys.job(job_id) + ":settling", 1, nx=True, px=int(lease_seconds * 1000)))

    def end_settlement_claim(self, job_id: str) -> None:
        self.redis.delete(keys.job(job_id) + ":settling")

    def count_cancel_attempt(self, job_id: str) -> int:
        return int(self.redis.hincrby(keys.job(job_id), "cancel_attempts", 1))

    def claim_due(self, *, lease_seconds: float, limit: int) -> list[str]:
        now = time.time()
        return _decoded(self._claim(keys=[keys.SCHEDULE], args=[now, now + lease_seconds, limit]))

    def release_followers(self, scope_id: str, cache_key: str, leader: str) -> list[str]:
        """The leader of identical jobs gives up its lead; returns the jobs that were waiting on it."""
        k, a = cache.release_args(scope_id, cache_key, leader)
        return _decoded(self._release(keys=k, args=a))


class AsyncJobStore:
    """The API's store: the same scripts over `redis.asyncio`."""

    def __init__(self, redis: AsyncRedis, *, ttl_seconds: int, byok_ttl_seconds: int = 24 * 3600) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self.byok_ttl = byok_ttl_seconds
        self._transition = redis.register_script(_TRANSITION_LUA)
        self._release = redis.register_script(cache.RELEASE_LUA)
        self._nudge = redis.register_script(_NUDGE_LUA)
        self.accounts = accounts.Scripts(redis)

    async def get(self, job_id: str) -> Job | None:
        raw = await self.redis.hgetall(keys.job(job_id))
        return Job.from_fields(raw) if raw else None

    async def transition(
        self, job_id: str, to: str, *, allowed_from: Iterable[str] | None = None, **patch: Any
    ) -> tuple[bool, str | None]:
        ttl = self.ttl if to in states.TERMINAL else 0
        k, a = _transition_call(job_id, to, allowed_from, _transition_fields(to, patch), ttl, True)
        return _result(await self._transition(keys=k, args=a))

    async def release_followers(self, scope_id: str, cache_key: str, leader: str) -> list[str]:
        """As JobStore.release_followers (a cancelled leader releases from the API)."""
        k, a = cache.release_args(scope_id, cache_key, leader)
        return _decoded(await self._release(keys=k, args=a))

    async def nudge(self, job_id: str, at: float) -> bool:
        """Make a job waiting on its provider due at `at` (a provider's callback); False when the
        job is not waiting (terminal, unscheduled, or its result already in)."""
        return bool(await self._nudge(keys=[keys.SCHEDULE, keys.job(job_id)], args=[job_id, at]))

    async def create(
        self, job: Job, settings: Settings, *, admit: bool = True, queue_key: str | None = None,
        message: bytes | None = None, recheck_at: float | None = None, sealed_key: str | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> accounts.Admission:
        """Admit the job (the plan's concurrency, its price held from the balance) and write it, its
        first event, its account index, its sweeper backstop and its Celery submit message, all in
        one script, one round trip: the job exists iff it was admitted and its message queued. A job
        born terminal (a cache hit) skips admission and has no message and no backstop. `also` adds
        the caller's own writes (the idempotency record)."""
        # A pipeline that is never executed: it only spells the commands, which the admission
        # script runs once the job is admitted.
        pipe = self.redis.pipeline(transaction=False)
        jk = keys.job(job.job_id)
        pipe.hset(jk, mapping=job.to_fields())
        pipe.expire(jk, self.ttl)
        ek = keys.job_events(job.job_id)
        pipe.xadd(ek, {"status": job.status, "job": _public_json(job)}, maxlen=EVENTS_MAXLEN, approximate=True)
        pipe.expire(ek, self.ttl)
        if sealed_key is not None:
            pipe.set(keys.job_key(job.job_id), sealed_key, ex=self.byok_ttl)
        pipe.zadd(keys.account_jobs(job.account), {job.job_id: int(time.time() * 1000)})
        if recheck_at is not None:
            pipe.zadd(keys.SCHEDULE, {job.job_id: recheck_at})
        if queue_key is not None and message is not None:
            pipe.lpush(queue_key, message)
        if job.status == states.COMPLETED:
            # No transition script runs for a job born finished (a cache hit): its webhook and its
            # (free) usage record are written here.
            webhooks.schedule(pipe, job, job.status)
            record = {"job_id": job.job_id, "model": job.model, "capability": job.capability, "cost_cents": 0,
                      "cache_hit": True, "created_at": job.created_at, "completed_at": job.completed_at}
            pipe.zadd(keys.account_usage(job.account), {orjson.dumps(record): int(time.time() * 1000)})
        label = f"|{job.provider}|{stats_model(job)}"  # metrics (see _STATS_LUA); a job born completed is a cache hit
        pipe.hincrby(keys.STATS_JOBS, "created" + label, 1)
        if job.status == states.COMPLETED:
            pipe.hincrby(keys.STATS_JOBS, "completed" + label, 1)
            pipe.hincrby(keys.STATS_CACHE, ("hit" if (job.cache or {}).get("hit") else "miss") + label, 1)
        if also is not None:
            also(pipe)
        k, a = accounts.admit_args(job.account, job.job_id, job.hold_cents, settings, admit=admit,
                                   writes=[words for words, _ in pipe.command_stack])
        verdict = accounts.admission(await self.accounts.admit(keys=k, args=a))
        if verdict.admitted:
            logs.bind(job_id=job.job_id, account=job.account)
            log.info("job %s created: %s%s", job.job_id, job.model,
                     " (cache hit: completed)" if job.status == states.COMPLETED else "")
        return verdict


def _public_json(job: Job) -> bytes:
    return orjson.dumps(job.public())
