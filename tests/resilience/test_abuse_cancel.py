"""Abuse by cancelling (issue 17): a cancel costs what the provider charges us. Cancelled before the
provider started the run (queued here, or still queued there and confirmed so) -> the hold is
released; once the provider ran it, or when its answer proves nothing -> the price is captured,
exactly once, whoever settles it (the cancel step, the send step, the sweeper after a crash). A job
that lost to a cancel leaves no cache entry for a resubmission to get for free."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from gengate.jobs import keys
from gengate.jobs.apikeys import create_account, create_key
from gengate.sim import media

from tests.conftest import Worker, new_key, sim_requests, wait_for, wait_until
from tests.resilience.bystander import Bystander

pytestmark = pytest.mark.resilience


class Tenant:
    def __init__(self, api_url: str, rds: redis.Redis) -> None:
        self.rds = rds
        self.account = create_account(rds, email="cancel@example.com")
        self.http = httpx.Client(base_url=f"{api_url}/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {create_key(rds, self.account)}"})
        self.start_balance = self.balance()

    def balance(self) -> int:
        return int(self.rds.hget(keys.account(self.account), "balance_cents") or 0)

    def holds(self) -> int:
        return int(self.rds.hget(keys.account(self.account), "holds_cents") or 0)

    def ledger(self, job_id: str) -> list[str]:
        return [e[b"kind"].decode() for _, e in self.rds.xrange(keys.account_ledger(self.account))
                if e[b"job"].decode() == job_id]

    def ended(self, job_id: str) -> list[str]:
        return [k for k in self.ledger(job_id) if k in ("capture", "release")]

    def price(self, job_id: str) -> int:
        return int(self.rds.hget(keys.job(job_id), "hold_cents") or 0)

    def job_field(self, job_id: str, name: str) -> bytes | None:
        return self.rds.hget(keys.job(job_id), name)

    def submit(self, marker: str, sim: dict, **headers: str) -> str:
        r = self.http.post("/image", json={"model": "flux-schnell", "prompt": f"cancel {marker}",
                                           "provider_options": {"sim": sim}}, headers=headers)
        assert r.status_code == 202, r.text
        return r.json()["job_id"]

    def settled(self, job_id: str, timeout: float = 30.0) -> str:
        """The one way the job's hold ended (capture | release), once it has."""
        ended = wait_until(lambda: self.ended(job_id), timeout=timeout, what=f"{job_id}'s hold to end")
        assert len(ended) == 1, ended
        return ended[0]

    def usage(self) -> list[dict]:
        return self.http.get("/usage").json()["usage"]


@pytest.fixture
def tenant(api_url: str, rds: redis.Redis, worker: Worker) -> Iterator[Tenant]:
    t = Tenant(api_url, rds)
    try:
        yield t
    finally:
        t.http.close()


def _marker() -> str:
    return uuid.uuid4().hex


def _at_provider(tenant: Tenant, sim: httpx.Client, job_id: str, marker: str, phase: str) -> dict:
    """Wait until the provider has the job in `phase` and the gateway has saved its handle."""
    wait_until(lambda: tenant.job_field(job_id, "handle"), what="the provider's handle to be saved")
    return wait_until(lambda: [r for r in sim_requests(sim, marker) if r["status"] == phase],
                      what=f"the provider to show the job {phase}")[0]


def test_cancel_while_queued_at_the_provider_releases(tenant: Tenant, sim: httpx.Client):
    m = _marker()
    job_id = tenant.submit(m, {"queue_time": 60})
    _at_provider(tenant, sim, job_id, m, "IN_QUEUE")
    assert tenant.http.delete(f"/jobs/{job_id}").status_code == 204
    assert tenant.settled(job_id) == "release"
    assert tenant.balance() == tenant.start_balance and tenant.holds() == 0
    [req] = sim_requests(sim, m)
    assert req["cancelled"] and req["cancel_calls"] >= 1 and req["outcome"] == "cancelled"
    assert tenant.rds.zscore(keys.SCHEDULE, job_id) is None
    assert not [u for u in tenant.usage() if u["job_id"] == job_id]


def test_cancel_after_the_provider_started_captures_once(tenant: Tenant, sim: httpx.Client, rds: redis.Redis):
    m = _marker()
    job_id = tenant.submit(m, {"latency": 60})
    _at_provider(tenant, sim, job_id, m, "IN_PROGRESS")
    price = tenant.price(job_id)
    assert price > 0
    assert tenant.http.delete(f"/jobs/{job_id}").status_code == 204
    assert tenant.settled(job_id) == "capture"
    assert tenant.balance() == tenant.start_balance - price and tenant.holds() == 0
    assert wait_until(lambda: [r for r in sim_requests(sim, m) if r["cancelled"]], what="the provider's cancel")
    # The cancel step delivered again (a redelivered message) and the sweeper's pass: nothing moves twice.
    from gengate.tasks.enqueue import CANCEL, step_message
    rds.lpush(*step_message(CANCEL, job_id, "image"))
    time.sleep(1.0)
    assert tenant.ended(job_id) == ["capture"] and tenant.balance() == tenant.start_balance - price
    [record] = [u for u in tenant.usage() if u["job_id"] == job_id]
    assert record["cost_cents"] == price and record["cache_hit"] is False
    assert tenant.http.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_cancel_before_anything_was_sent_releases_at_once(tenant: Tenant, sim: httpx.Client, worker: Worker):
    """Queued in the gateway (the worker paused): no provider call, released by the cancel itself."""
    import signal
    m = _marker()
    worker.signal(signal.SIGSTOP)
    try:
        job_id = tenant.submit(m, {})
        assert tenant.http.delete(f"/jobs/{job_id}").status_code == 204
        assert tenant.ended(job_id) == ["release"]  # in the cancel's own transition
    finally:
        worker.signal(signal.SIGCONT)
    time.sleep(1.0)
    assert sim_requests(sim, m) == [] and tenant.ended(job_id) == ["release"]


def test_cancel_racing_completion_captures_exactly_once(tenant: Tenant):
    ids = [tenant.submit(_marker(), {"latency": 0.2 + 0.05 * (i % 6)}) for i in range(12)]
    time.sleep(0.35)
    threads = [threading.Thread(target=tenant.http.delete, args=(f"/jobs/{j}",)) for j in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    captured = 0
    for job_id in ids:
        job = wait_for(tenant.http, job_id)
        kind = tenant.settled(job_id)
        if job["status"] == "completed":
            assert kind == "capture"
        else:
            assert job["status"] == "cancelled" and "output" not in job
        captured += tenant.price(job_id) if kind == "capture" else 0
    assert tenant.balance() == tenant.start_balance - captured and tenant.holds() == 0


class _SlowOutput(http.server.BaseHTTPRequestHandler):
    """A provider output whose download starts, then waits until the test lets it finish."""

    started = threading.Event()
    let_finish = threading.Event()

    def do_GET(self) -> None:
        body = media.png_bytes(32, 32)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:100])
        self.wfile.flush()
        type(self).started.set()
        type(self).let_finish.wait(30)
        self.wfile.write(body[100:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def slow_output() -> Iterator[str]:
    _SlowOutput.started.clear()
    _SlowOutput.let_finish.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowOutput)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}/out.png"
    finally:
        _SlowOutput.let_finish.set()
        server.shutdown()


def test_cancel_during_the_output_download_leaves_no_cache_entry(tenant: Tenant, sim: httpx.Client,
                                                                 slow_output: str):
    m = _marker()
    knobs = {"result": {"images": [{"url": slow_output, "content_type": "image/png"}]}}
    first = tenant.submit(m, knobs)
    assert _SlowOutput.started.wait(20), "the output download never started"
    assert tenant.http.delete(f"/jobs/{first}").status_code == 204
    _SlowOutput.let_finish.set()
    # The provider had finished: the cancel came too late and is charged, once.
    assert tenant.settled(first) == "capture"
    time.sleep(0.5)  # the download ends and its completion loses to the cancel
    assert tenant.http.get(f"/jobs/{first}").json()["status"] == "cancelled"
    cache_key = tenant.job_field(first, "cache_key")
    assert cache_key is not None
    assert not tenant.rds.keys(keys.cache("*", cache_key.decode().strip('"')))
    # The same request again is a miss: its own provider call, paid.
    r = tenant.http.post("/image", json={"model": "flux-schnell", "prompt": f"cancel {m}",
                                         "provider_options": {"sim": knobs}})
    assert r.status_code == 202 and r.headers.get("x-cache") != "HIT"
    second = r.json()["job_id"]
    job = wait_for(tenant.http, second)
    assert job["status"] == "completed" and job["cache"]["hit"] is False
    assert tenant.settled(second) == "capture"
    assert len(sim_requests(sim, m)) == 2
    assert tenant.balance() == tenant.start_balance - tenant.price(first) - tenant.price(second)


@pytest.mark.parametrize("phase,expected", [("IN_QUEUE", "release"), ("IN_PROGRESS", "capture")])
def test_worker_killed_between_cancel_and_settlement_settles_once(tenant: Tenant, sim: httpx.Client,
                                                                  worker: Worker, phase: str, expected: str):
    """The worker is stopped before the cancel and killed after it: the cancel step never runs there.
    The settlement's schedule entry brings the job back to the restarted worker's sweeper."""
    import signal
    m = _marker()
    job_id = tenant.submit(m, {"queue_time": 60} if phase == "IN_QUEUE" else {"latency": 60})
    _at_provider(tenant, sim, job_id, m, phase)
    worker.signal(signal.SIGSTOP)
    assert tenant.http.delete(f"/jobs/{job_id}").status_code == 204
    assert tenant.job_field(job_id, "settle") == b'"pending"' and tenant.ended(job_id) == []
    assert tenant.rds.zscore(keys.SCHEDULE, job_id) is not None
    worker.kill9()
    worker.ensure_running()
    assert tenant.settled(job_id, timeout=40) == expected
    time.sleep(1.0)
    assert tenant.ended(job_id) == [expected] and tenant.holds() == 0
    assert tenant.rds.zscore(keys.SCHEDULE, job_id) is None
    price = tenant.price(job_id)
    assert tenant.balance() == tenant.start_balance - (price if expected == "capture" else 0)


def test_bystander_during_a_burst_of_submit_then_cancel(tenant: Tenant, sim: httpx.Client, api_url: str,
                                                       rds: redis.Redis):
    """The attack: submit and cancel at once, over and over, half of the jobs queued at the provider
    (the provider drops them: free for everyone) and half already running there (charged)."""
    ids: list[tuple[str, bool]] = []
    with Bystander(api_url, new_key(rds)) as b:
        for i in range(60):
            queued = i % 2 == 0
            job_id = tenant.submit(_marker(), {"queue_time": 30} if queued else {"latency": 30})
            if not queued:
                wait_until(lambda: tenant.job_field(job_id, "handle"), what="the handle")
                time.sleep(0.05)
            tenant.http.delete(f"/jobs/{job_id}")
            ids.append((job_id, queued))
        kinds = {job_id: tenant.settled(job_id) for job_id, _ in ids}
    report = b.report()
    print(f"\nsubmit-then-cancel x{len(ids)}: {report}")
    assert not report.errors, report.errors
    captured = sum(tenant.price(j) for j, k in kinds.items() if k == "capture")
    assert all(kinds[j] == "release" for j, queued in ids if queued)
    assert all(kinds[j] == "capture" for j, queued in ids if not queued)
    assert tenant.balance() == tenant.start_balance - captured and tenant.holds() == 0
