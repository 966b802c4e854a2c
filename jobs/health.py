"""Provider health, shared by every worker through Redis: a circuit breaker per provider, the
outcomes and latency of its recent calls, and the durations of its recent jobs per model.

The circuit breaker:
  * closed: calls go. Each retryable failure (5xx, 429, connection error, timeout) adds one to the
    provider's consecutive failures; any call showing the provider works (a result, or a 4xx that is
    the request's own fault: the caller decides) sets them back to 0. At `circuit_failures` in a row
    the circuit opens.
  * open: `allow` answers "open" (send nothing, route the job elsewhere) until the cool-down
    (`circuit_cooldown_seconds`) has passed.
  * half-open: the cool-down is over. The first caller of `allow` gets "probe" and holds the one
    probe slot for `circuit_probe_seconds` (a lease: a probe whose worker died frees it); everyone
    else gets "open" meanwhile. The probe's success closes the circuit; its failure opens it again
    for a fresh cool-down.
Any success closes an open circuit, the probe's or a call's sent before the circuit opened: the
provider answered, so it works. A failure once the cool-down has run out (the probe's, or any call's)
starts a fresh cool-down; a failure during the cool-down (a call sent before the circuit opened,
ending late) leaves it as it is, so stragglers cannot keep a recovered provider shut.

Every decision is one Lua script reading Redis's own clock (TIME), so two workers can never both get
the probe and skewed worker clocks change nothing. Opening writes the moment the probe may go
(`probe_at`), so readers (`allow`, `snapshot`) need no cool-down setting of their own: the one that
opened the circuit decided it.

Recent calls (what /metrics, /readyz and /v1/admin/overview show): the outcomes of the provider's
last OUTCOMES_KEPT calls ("1"/"0" in a capped list: the success rate is their share of "1"; a list,
not time buckets, so a quiet provider keeps a meaningful rate) and the latency of its last
LATENCIES_KEPT calls (p50 and p95 by nearest rank). Recent jobs (fastest-first routing): the
durations of the last DURATIONS_KEPT completed jobs per (provider, model); their p50 is None below
DURATIONS_MIN samples, too few to rank by.

Writes take the sync redis-py client (workers). Reads come as `*_args` tuples for `redis.eval(*args)`
or `pipe.eval(*args)`, sync or async, with a pure `parse_*` of the reply, plus sync and async twins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from gengate.config.catalog import PROVIDERS
from gengate.config.settings import get_settings
from gengate.jobs import keys

OUTCOMES_KEPT = 100  # the success rate is over a provider's last this many calls
LATENCIES_KEPT = 100  # call latency quantiles are over a provider's last this many timed calls
DURATIONS_KEPT = 50  # job duration p50 is over the last this many jobs of a (provider, model)
DURATIONS_MIN = 5  # fewer samples than this: no p50 (None), the router keeps its own order

State = Literal["closed", "open", "half_open"]
STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}  # gengate_provider_circuit_state

# KEYS: circuit hash, outcomes list, latency list, providers set.
# ARGV: provider, ok "1"/"0", seconds or "", failures that open, cool-down seconds, outcomes kept,
# latencies kept. Returns "opened" (this failure opened the circuit, or re-opened it after its
# cool-down), "closed" (this success closed an open circuit), or "" (no change).
RECORD_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[6]) - 1)
if ARGV[3] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[3])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[7]) - 1)
end
local was_open = redis.call('HEXISTS', KEYS[1], 'probe_at') == 1
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
  if was_open then return 'closed' end
  return ''
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local cooldown = tonumber(ARGV[5])
if was_open then
  local c = redis.call('HMGET', KEYS[1], 'probe_at', 'probe_until')
  if c[2] or now >= tonumber(c[1]) then
    redis.call('HSET', KEYS[1], 'probe_at', now + cooldown)
    redis.call('HDEL', KEYS[1], 'probe_until')
    return 'opened'
  end
  return ''
end
if failures >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'opened_at', now, 'probe_at', now + cooldown)
  return 'opened'
end
return ''
"""

# KEYS: circuit hash. ARGV: probe lease seconds. Returns "closed", "open" or "probe" (this caller
# holds the half-open circuit's one probe slot until the lease ends or its outcome is recorded).
ALLOW_LUA = """
local c = redis.call('HMGET', KEYS[1], 'probe_at', 'probe_until')
if not c[1] then return 'closed' end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if now < tonumber(c[1]) then return 'open' end
if c[2] and now < tonumber(c[2]) then return 'open' end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[1]))
return 'probe'
"""

# KEYS: providers set. ARGV: the per-provider key prefix (keys.PROVIDER_HEALTH). Read-only.
# Returns [seconds, microseconds, {provider, failures, opened_at, probe_at, probe_until, successes,
# calls, {latency...}}...]; missing hash fields are "".
SNAPSHOT_LUA = """
local t = redis.call('TIME')
local out = {t[1], t[2]}
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local base = ARGV[1] .. p .. ':'
  local c = redis.call('HMGET', base .. 'circuit', 'failures', 'opened_at', 'probe_at', 'probe_until')
  local outcomes = redis.call('LRANGE', base .. 'outcomes', 0, -1)
  local ok = 0
  for _, o in ipairs(outcomes) do
    if o == '1' then ok = ok + 1 end
  end
  out[#out + 1] = {p, c[1] or '', c[2] or '', c[3] or '', c[4] or '', ok, #outcomes,
                   redis.call('LRANGE', base .. 'latency', 0, -1)}
end
return out
"""


@dataclass(frozen=True)
class ProviderHealth:
    provider: str
    state: State
    failures: int  # consecutive retryable failures (0 after any success)
    calls: int  # recent calls the success rate counts (up to OUTCOMES_KEPT)
    success_rate: float | None  # share of those that succeeded; None before any call
    latency_p50: float | None  # seconds, over the last LATENCIES_KEPT timed calls; None before any
    latency_p95: float | None
    opened_at: float | None  # unix time (Redis's clock) the circuit opened; None when closed
    # Seconds until a probe may go: open, the cool-down's rest; half-open, 0 when the probe slot is
    # free, else the rest of the probe's lease; None when closed.
    probe_in_seconds: float | None

    @property
    def probing(self) -> bool:
        return self.state == "half_open" and bool(self.probe_in_seconds)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _settings(settings: Any) -> Any:
    return get_settings() if settings is None else settings


def quantile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank quantile (an observed value, never an interpolation); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# -- the circuit ---------------------------------------------------------------------------------


def record_args(provider: str, ok: bool, seconds: float | None, settings: Any = None) -> tuple:
    s = _settings(settings)
    return (RECORD_LUA, 4, keys.provider_circuit(provider), keys.provider_outcomes(provider),
            keys.provider_latency(provider), keys.PROVIDERS_SEEN, provider, "1" if ok else "0",
            "" if seconds is None else repr(float(seconds)), s.circuit_failures, s.circuit_cooldown_seconds,
            OUTCOMES_KEPT, LATENCIES_KEPT)


def record(redis: Any, provider: str, ok: bool, seconds: float | None, settings: Any = None) -> str | None:
    """One provider call's outcome. `ok`: the provider answered as a working provider does (including
    a 4xx that is the request's fault); not ok: a retryable failure (5xx, 429, connection error,
    timeout). `seconds`: the call's latency, or None not to time it (a call that never got an answer
    may pass the time it waited, or None).
    Returns "opened" when this failure opened the circuit (or re-opened it after its cool-down),
    "closed" when this success closed an open circuit, None when the state did not change: the
    transitions worth a log line. `settings`: anything with `circuit_failures` and
    `circuit_cooldown_seconds` (default: get_settings())."""
    change = _text(redis.eval(*record_args(provider, ok, seconds, settings)))
    return change or None


def allow(redis: Any, provider: str, settings: Any = None) -> str:
    """Whether to call `provider` now: "closed" (send), "open" (do not send: route elsewhere or wait),
    or "probe" (send: this caller holds the half-open circuit's one probe slot, and must `record` the
    call's outcome). `settings`: anything with `circuit_probe_seconds` (default: get_settings())."""
    return _text(redis.eval(ALLOW_LUA, 1, keys.provider_circuit(provider), _settings(settings).circuit_probe_seconds))


# -- the snapshot --------------------------------------------------------------------------------


def snapshot_args() -> tuple:
    """`redis.eval(*snapshot_args())` or `pipe.eval(...)`, sync or async; `parse_snapshot` reads it."""
    return SNAPSHOT_LUA, 1, keys.PROVIDERS_SEEN, keys.PROVIDER_HEALTH


def _float(value: bytes | str) -> float | None:
    text = _text(value)
    return float(text) if text else None


def parse_snapshot(reply: list, known: Iterable[str] = PROVIDERS) -> dict[str, ProviderHealth]:
    """The snapshot script's reply -> {provider: ProviderHealth}, sorted by name. The `known`
    providers (the catalog's) are always there: one never called yet is closed, without numbers."""
    now = int(reply[0]) + int(reply[1]) / 1e6
    out: dict[str, ProviderHealth] = {}
    for row in reply[2:]:
        provider = _text(row[0])
        failures, opened_at, probe_at, probe_until = (_float(v) for v in row[1:5])
        successes, calls = int(row[5]), int(row[6])
        latencies = [float(v) for v in row[7]]
        if probe_at is None:
            state, probe_in = "closed", None
        elif now < probe_at:
            state, probe_in = "open", probe_at - now
        else:
            state, probe_in = "half_open", max(0.0, probe_until - now) if probe_until is not None else 0.0
        out[provider] = ProviderHealth(
            provider=provider, state=state, failures=int(failures or 0), calls=calls,
            success_rate=successes / calls if calls else None,
            latency_p50=quantile(latencies, 0.5), latency_p95=quantile(latencies, 0.95),
            opened_at=opened_at, probe_in_seconds=probe_in)
    for provider in known:
        out.setdefault(provider, ProviderHealth(provider, "closed", 0, 0, None, None, None, None, None))
    return dict(sorted(out.items()))


def snapshot(redis: Any, known: Iterable[str] = PROVIDERS) -> dict[str, ProviderHealth]:
    """Every provider's health, in one round trip."""
    return parse_snapshot(redis.eval(*snapshot_args()), known)


async def snapshot_async(redis: Any, known: Iterable[str] = PROVIDERS) -> dict[str, ProviderHealth]:
    """`snapshot` over redis.asyncio."""
    return parse_snapshot(await redis.eval(*snapshot_args()), known)


# -- job durations, for fastest-first routing ------------------------------------------------------


def record_duration(redis: Any, provider: str, model: str, seconds: float) -> None:
    """A completed job's duration (the caller decides from when to when, the same way for every
    provider), kept among the last DURATIONS_KEPT of its (provider, model)."""
    key = keys.provider_durations(provider, model)
    pipe = redis.pipeline(transaction=True)
    pipe.lpush(key, repr(float(seconds)))
    pipe.ltrim(key, 0, DURATIONS_KEPT - 1)
    pipe.execute()


def _p50(values: list) -> float | None:
    return quantile((float(v) for v in values), 0.5) if len(values) >= DURATIONS_MIN else None


def _durations_pipe(redis: Any, pairs: list[tuple[str, str]]) -> Any:
    """A pipeline (sync or async, as `redis` is) reading each pair's recent durations."""
    pipe = redis.pipeline(transaction=False)
    for provider, model in pairs:
        pipe.lrange(keys.provider_durations(provider, model), 0, -1)
    return pipe


def duration_p50s(redis: Any, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
    """{(provider, model): p50 seconds of its recent jobs, or None below DURATIONS_MIN samples}, in
    one round trip."""
    pairs = list(pairs)
    return {pair: _p50(values) for pair, values in zip(pairs, _durations_pipe(redis, pairs).execute())}


async def duration_p50s_async(redis: Any, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float | None]:
    """`duration_p50s` over redis.asyncio."""
    pairs = list(pairs)
    return {pair: _p50(values) for pair, values in zip(pairs, await _durations_pipe(redis, pairs).execute())}


def p50(redis: Any, provider: str, model: str) -> float | None:
    """The p50 seconds of the recent jobs of one (provider, model), None below DURATIONS_MIN samples."""
    return duration_p50s(redis, [(provider, model)])[(provider, model)]


async def p50_async(redis: Any, provider: str, model: str) -> float | None:
    """`p50` over redis.asyncio."""
    return (await duration_p50s_async(redis, [(provider, model)]))[(provider, model)]

