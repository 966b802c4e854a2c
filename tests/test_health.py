"""Provider health (jobs/health.py) against the session's real Redis: the circuit breaker's
transitions, its one probe among concurrent callers, the probe's lease, job duration medians, the
snapshot; and over HTTP, /metrics, /readyz and /v1/admin/overview showing what was recorded.

Each test uses providers of its own (`p<uuid>`), so no test sees another's state and nothing is
flushed. Short cool-downs come in as a settings object, never by changing a running process."""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace

import httpx
import redis

from gengate.config.catalog import PROVIDERS
from gengate.jobs import health
from tests.conftest import ADMIN_KEY
from tests.test_metrics import scrape, value

# Short enough for quick tests, long enough that a loaded CI machine does not outlast them between
# two calls that expect the circuit still open.
COOLDOWN = 0.5
LEASE = 0.7
FAST = SimpleNamespace(circuit_failures=3, circuit_cooldown_seconds=COOLDOWN, circuit_probe_seconds=LEASE)
# A cool-down nothing outlasts: for checks that read an open circuit through the API.
SLOW = SimpleNamespace(circuit_failures=3, circuit_cooldown_seconds=60.0, circuit_probe_seconds=LEASE)


def _provider() -> str:
    return f"p{uuid.uuid4().hex[:12]}"


def _open(rds: redis.Redis, provider: str, settings=FAST) -> None:
    for _ in range(settings.circuit_failures - 1):
        assert health.record(rds, provider, False, 0.1, settings) is None
    assert health.record(rds, provider, False, 0.1, settings) == "opened"


def _state(rds: redis.Redis, provider: str) -> health.ProviderHealth:
    return health.snapshot(rds)[provider]


def test_opens_after_n_consecutive_failures_and_not_before(rds: redis.Redis):
    p = _provider()
    assert health.allow(rds, p, FAST) == "closed"  # never called: closed
    for _ in range(2):
        assert health.record(rds, p, False, 0.5, FAST) is None
    assert health.record(rds, p, True, 0.2, FAST) is None  # a success in between starts the count again
    for _ in range(2):
        assert health.record(rds, p, False, None, FAST) is None
        assert health.allow(rds, p, FAST) == "closed"
    assert _state(rds, p).failures == 2 and _state(rds, p).state == "closed"
    assert health.record(rds, p, False, None, FAST) == "opened"  # the third in a row
    assert health.allow(rds, p, FAST) == "open"
    seen = _state(rds, p)
    assert seen.state == "open" and seen.failures == 3 and seen.opened_at is not None
    assert 0 < seen.probe_in_seconds <= COOLDOWN


def test_open_until_the_cooldown_then_exactly_one_probe_whose_success_closes(rds: redis.Redis):
    p = _provider()
    _open(rds, p)
    assert [health.allow(rds, p, FAST) for _ in range(5)] == ["open"] * 5
    time.sleep(COOLDOWN + 0.05)
    assert _state(rds, p).state == "half_open" and _state(rds, p).probe_in_seconds == 0

    callers = 24
    start = threading.Barrier(callers)
    answers: list[str] = []

    def ask() -> None:
        start.wait()
        answers.append(health.allow(rds, p, FAST))

    threads = [threading.Thread(target=ask) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == ["open"] * (callers - 1) + ["probe"]
    assert _state(rds, p).probing

    assert health.record(rds, p, True, 0.3, FAST) == "closed"  # the probe's success
    assert health.allow(rds, p, FAST) == "closed"
    closed = _state(rds, p)
    assert closed.state == "closed" and closed.failures == 0 and closed.opened_at is None
    assert closed.probe_in_seconds is None


def test_a_failed_probe_reopens_for_a_fresh_cooldown(rds: redis.Redis):
    p = _provider()
    _open(rds, p)
    time.sleep(COOLDOWN + 0.05)
    assert health.allow(rds, p, FAST) == "probe"
    assert health.record(rds, p, False, None, FAST) == "opened"
    again = _state(rds, p)
    assert again.state == "open" and COOLDOWN / 2 < again.probe_in_seconds <= COOLDOWN
    assert health.allow(rds, p, FAST) == "open"
    time.sleep(COOLDOWN + 0.05)
    assert health.allow(rds, p, FAST) == "probe"  # the next cool-down over: one more probe
    assert health.allow(rds, p, FAST) == "open"


def test_a_dead_probes_lease_expires_and_another_probe_may_go(rds: redis.Redis):
    p = _provider()
    _open(rds, p)
    time.sleep(COOLDOWN + 0.05)
    assert health.allow(rds, p, FAST) == "probe"  # ... and its worker dies without recording
    assert health.allow(rds, p, FAST) == "open"
    assert 0 < _state(rds, p).probe_in_seconds <= LEASE
    time.sleep(LEASE + 0.05)
    assert health.allow(rds, p, FAST) == "probe"
    assert health.allow(rds, p, FAST) == "open"


def test_late_outcomes_of_calls_sent_before_the_circuit_opened(rds: redis.Redis):
    """A failure during the cool-down leaves it as it is (stragglers cannot keep the provider shut);
    any success closes the circuit, since the provider answered."""
    p = _provider()
    _open(rds, p)
    before = _state(rds, p).probe_in_seconds
    time.sleep(0.05)
    assert health.record(rds, p, False, None, FAST) is None
    assert _state(rds, p).probe_in_seconds < before  # the same cool-down, not a fresh one
    assert health.record(rds, p, True, 1.0, FAST) == "closed"
    assert health.allow(rds, p, FAST) == "closed"


def test_the_settings_defaults(rds: redis.Redis):
    """Without a settings object the gateway's own apply (GENGATE_CIRCUIT_FAILURES, 5 by default)."""
    from gengate.config.settings import Settings

    s = Settings()
    assert (s.circuit_failures, s.circuit_cooldown_seconds, s.circuit_probe_seconds) == (5, 30.0, 60.0)
    p = _provider()
    for _ in range(4):
        assert health.record(rds, p, False, None) is None
    assert health.record(rds, p, False, None) == "opened"
    assert health.allow(rds, p) == "open"
    assert 25 < _state(rds, p).probe_in_seconds <= 30


def test_snapshot_rates_and_latency_over_recent_calls(rds: redis.Redis):
    p = _provider()
    for i in range(1, 21):  # 1..20 seconds, every fourth a (retryable) failure
        health.record(rds, p, i % 4 != 0, float(i), FAST)
    health.record(rds, p, True, None, FAST)  # an untimed success: counted, not timed
    snap = health.snapshot(rds)
    assert set(PROVIDERS) <= set(snap)  # the catalog's providers are always there
    assert list(snap) == sorted(snap)
    h = snap[p]
    assert h == health.ProviderHealth(provider=p, state="closed", failures=0, calls=21, success_rate=16 / 21,
                                      latency_p50=10.0, latency_p95=19.0, opened_at=None, probe_in_seconds=None)

    # Only the last OUTCOMES_KEPT calls count: a run of successes pushes the old failures out.
    for _ in range(health.OUTCOMES_KEPT):
        health.record(rds, p, True, 0.5, FAST)
    h = health.snapshot(rds)[p]
    assert h.calls == health.OUTCOMES_KEPT and h.success_rate == 1.0
    assert h.latency_p50 == h.latency_p95 == 0.5


def test_snapshot_async_twin_reads_the_same(redis_url: str, rds: redis.Redis):
    import asyncio

    from redis.asyncio import Redis as AsyncRedis

    p = _provider()
    _open(rds, p, SLOW)

    async def read() -> dict:
        client = AsyncRedis.from_url(redis_url)
        try:
            return await health.snapshot_async(client)
        finally:
            await client.aclose()

    async_view = asyncio.run(read())[p]
    sync_view = health.snapshot(rds)[p]
    assert async_view.state == sync_view.state == "open"
    assert async_view.failures == 3 and async_view.opened_at == sync_view.opened_at


def test_duration_p50_needs_enough_recent_jobs(rds: redis.Redis):
    p, model = _provider(), "fal:flux-schnell"
    assert health.p50(rds, p, model) is None
    for seconds in (9.0, 1.0, 5.0, 3.0):
        health.record_duration(rds, p, model, seconds)
    assert health.p50(rds, p, model) is None  # 4 < DURATIONS_MIN
    health.record_duration(rds, p, model, 7.0)
    assert health.p50(rds, p, model) == 5.0
    # Only the last DURATIONS_KEPT jobs count: the provider got fast.
    for _ in range(health.DURATIONS_KEPT):
        health.record_duration(rds, p, model, 0.25)
    other = _provider()
    assert health.duration_p50s(rds, [(p, model), (other, model), (p, "other-model")]) == {
        (p, model): 0.25, (other, model): None, (p, "other-model"): None}


def test_duration_p50_async_twin(redis_url: str, rds: redis.Redis):
    import asyncio

    from redis.asyncio import Redis as AsyncRedis

    p, model = _provider(), "flux-schnell"
    for seconds in (4.0, 2.0, 8.0, 6.0, 10.0, 1.0):
        health.record_duration(rds, p, model, seconds)

    async def read() -> tuple:
        client = AsyncRedis.from_url(redis_url)
        try:
            return (await health.p50_async(client, p, model), await health.p50_async(client, p, "nothing"),
                    await health.duration_p50s_async(client, [(p, model)]))
        finally:
            await client.aclose()

    assert asyncio.run(read()) == (4.0, None, {(p, model): 4.0})  # nearest rank: the 3rd of 6
    assert health.p50(rds, p, model) == 4.0


def test_metrics_and_readyz_show_each_providers_health(api_url: str, worker, rds: redis.Redis):
    down, fine, cooled = _provider(), _provider(), _provider()
    _open(rds, down, SLOW)
    _open(rds, cooled)  # FAST: half-open once its cool-down has passed
    for seconds in (0.1, 0.2, 0.3, 0.4):
        health.record(rds, fine, True, seconds, FAST)
    health.record(rds, fine, False, 2.0, FAST)
    untimed = _provider()
    health.record(rds, untimed, True, None, FAST)

    samples = scrape(f"{api_url}/metrics")
    assert value(samples, "gengate_provider_circuit_state", provider=down) == 2
    assert value(samples, "gengate_provider_consecutive_failures", provider=down) == 3
    assert value(samples, "gengate_provider_success_ratio", provider=down) == 0
    assert value(samples, "gengate_provider_circuit_state", provider=fine) == 0
    assert value(samples, "gengate_provider_success_ratio", provider=fine) == 0.8
    assert value(samples, "gengate_provider_latency_seconds", provider=fine, quantile="0.5") == 0.3
    assert value(samples, "gengate_provider_latency_seconds", provider=fine, quantile="0.95") == 2.0
    # Every catalog provider has a state; a provider whose calls were never timed has no latency
    # sample (no made-up numbers).
    for provider in PROVIDERS:
        assert ("gengate_provider_circuit_state", frozenset({"provider": provider}.items())) in samples
    assert value(samples, "gengate_provider_success_ratio", provider=untimed) == 1
    assert not any(name == "gengate_provider_latency_seconds" and dict(labels)["provider"] == untimed
                   for name, labels in samples)
    assert value(samples, "gengate_redis_up") == 1

    r = httpx.get(f"{api_url}/readyz")
    assert r.status_code == 200, r.text  # an open circuit does not make the gateway not ready
    body = r.json()
    assert body["status"] == "ready" and body["providers"][down] == "open"
    assert body["providers"][fine] == "closed" and set(PROVIDERS) <= set(body["providers"])

    time.sleep(COOLDOWN + 0.05)  # the cool-down the opening failure wrote, whatever the API's settings
    assert value(scrape(f"{api_url}/metrics"), "gengate_provider_circuit_state", provider=cooled) == 1
    assert httpx.get(f"{api_url}/readyz").json()["providers"][cooled] == "half_open"


def test_admin_overview_shows_each_providers_circuit(api_url: str, rds: redis.Redis):
    down, fine = _provider(), _provider()
    _open(rds, down, SLOW)
    for seconds in (0.1, 0.2, 0.3):
        health.record(rds, fine, True, seconds, FAST)
    r = httpx.get(f"{api_url}/v1/admin/overview", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    providers = {p["provider"]: p for p in r.json()["providers"]}
    assert providers[down] == {"provider": down, "created": 0, "completed": 0, "failed": 0, "cancelled": 0,
                               "error_rate": None, "circuit": "open", "consecutive_failures": 3,
                               "success_rate": 0.0, "latency_p50_ms": 100.0}
    assert providers[fine]["circuit"] == "closed" and providers[fine]["success_rate"] == 1.0
    assert providers[fine]["latency_p50_ms"] == 200.0
    assert set(PROVIDERS) <= set(providers)
    assert all(p["circuit"] in ("closed", "open", "half_open") for p in providers.values())
