"""Plans, rate limits, concurrency and the prepaid balance, through the real API, worker and Redis."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
import uuid
import httpx
import pytest
import redis

from config.catalog import BY_NAME
from jobs import accounts, keys
from jobs.apikeys import create_account, create_key
from tests.conftest import TERMINAL, sim_requests, wait_for, wait_until

PRICE = BY_NAME["flux-schnell"].price_cents


def _account(rds: redis.Redis, plan: str = "free", *, credit: int = 0, **limits) -> str:
    account = create_account(rds, email=f"{plan}@example.com", plan=plan)
    if credit:
        accounts.credit(rds, account, credit)
    accounts.set_limits(rds, account, **limits)
    return account


@pytest.fixture
def api(api_url: str, worker) -> str:
    return api_url


def _client(api_url: str, rds: redis.Redis, account: str) -> httpx.Client:
    return httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {create_key(rds, account)}"},
                        timeout=30)


def _image(c: httpx.Client, *, latency: float = 0.0, fail: bool = False, **headers) -> httpx.Response:
    sim: dict = {"latency": latency}
    if fail:
        sim["fail"] = "simulated failure"
    return c.post("/image", json={"model": "flux-schnell", "prompt": f"acct {uuid.uuid4().hex}",
                                  "provider_options": {"sim": sim}}, headers=headers)


def _parallel(n: int, fn) -> list[httpx.Response]:
    with concurrent.futures.ThreadPoolExecutor(min(n, 32)) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


def test_rate_limit_admits_exactly_the_quota(api: str, rds: redis.Redis):
    account = _account(rds, "enterprise", credit=1000 * PRICE, rpm=5, concurrency=0)
    with _client(api, rds, account) as c:
        answers = _parallel(100, lambda: _image(c))
    accepted = [a for a in answers if a.status_code == 202]
    limited = [a for a in answers if a.status_code == 429]
    assert len(accepted) == 5 and len(limited) == 95, sorted({a.status_code for a in answers})
    for r in limited[:5]:
        assert r.json()["error"] == "RateLimitError" and r.json()["statusCode"] == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["RateLimit-Policy"] == '"requests";q=5;w=60'
        assert r.headers["RateLimit"].startswith('"requests";r=0;t=')
    assert accepted[0].headers["RateLimit-Policy"] == '"requests";q=5;w=60'


def test_concurrency_limit_and_release(api: str, rds: redis.Redis, worker, sim: httpx.Client):
    account = _account(rds, "free", credit=100 * PRICE, rpm=0)  # free plan: 2 concurrent jobs
    with _client(api, rds, account) as c:
        first, second = (_image(c, latency=3).json()["job_id"] for _ in range(2))
        third = _image(c)
        assert third.status_code == 429 and third.json()["error"] == "RateLimitError"
        assert third.headers["Retry-After"] and third.headers["RateLimit-Policy"] == '"concurrency";q=2'
        assert c.get(f"/jobs/{first}").status_code == 200, "GETs never count against the limits"
        assert c.delete(f"/jobs/{first}").status_code == 204
        assert _image(c).status_code == 202, "a cancelled job gives its slot back"


def test_a_killed_workers_job_releases_its_slot_when_it_ends(api: str, rds: redis.Redis, worker, sim: httpx.Client):
    account = _account(rds, "free", credit=100 * PRICE, rpm=0)
    with _client(api, rds, account) as c:
        jobs = [_image(c, latency=2).json()["job_id"] for _ in range(2)]
        wait_until(lambda: all(c.get(f"/jobs/{j}").json()["status"] == "processing" for j in jobs),
                   what="both jobs processing")
        worker.kill9()
        assert _image(c).status_code == 429
        worker.start()
        for j in jobs:
            assert wait_for(c, j, timeout=60)["status"] in TERMINAL
        assert _image(c).status_code == 202


def test_balance_admits_exactly_what_it_covers(api: str, rds: redis.Redis, worker):
    start = 10 * PRICE
    account = _account(rds, "enterprise", credit=start, rpm=0, concurrency=0)
    with _client(api, rds, account) as c:
        counter = iter(range(50))
        answers = _parallel(50, lambda: _image(c, latency=1.5, fail=next(counter) % 4 == 0))
        accepted = [a.json()["job_id"] for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code == 402]
        assert len(accepted) == 10 and len(refused) == 40
        assert refused[0].json()["error"] == "InsufficientBalanceError" and refused[0].json()["statusCode"] == 402
        for job_id in accepted[:3]:
            c.delete(f"/jobs/{job_id}")
        finished = [wait_for(c, j, timeout=60) for j in accepted]
        completed = sum(1 for j in finished if j["status"] == "completed")
        assert {j["status"] for j in finished} <= TERMINAL
        balance = c.get("/balance").json()
        assert balance == {"balance_cents": start - completed * PRICE, "currency": "usd"}
        usage = c.get("/usage").json()
        assert usage["total_cents"] == completed * PRICE and len(usage["usage"]) == completed
    assert accounts.ledger_sum(rds, account) == start - completed * PRICE
    assert int(rds.hget(keys.account(account), "holds_cents")) == 0
    captures = [e for _, e in rds.xrange(keys.account_ledger(account)) if e[b"kind"] == b"capture"]
    assert len(captures) == completed == len({e[b"job"] for e in captures})


def test_byok_and_cache_hits_cost_nothing(api: str, rds: redis.Redis, worker, sim: httpx.Client):
    account = _account(rds, "pro", credit=PRICE)
    with _client(api, rds, account) as c:
        own = _image(c, **{"X-Provider-Key-Fal": "my-own-fal-key"})
        assert own.status_code == 202, "a BYOK job needs no balance"
        assert wait_for(c, own.json()["job_id"])["status"] == "completed"
        prompt = f"paid {uuid.uuid4().hex}"
        paid = c.post("/image", json={"model": "flux-schnell", "prompt": prompt}).json()["job_id"]
        assert wait_for(c, paid)["status"] == "completed"
        assert c.get("/balance").json()["balance_cents"] == 0
        hit = c.post("/image", json={"model": "flux-schnell", "prompt": prompt})
        assert hit.status_code == 202 and hit.headers["X-Cache"] == "HIT", "a hit is free, even at zero balance"
        assert _image(c).status_code == 402
        records = {r["job_id"]: r for r in c.get("/usage").json()["usage"]}
        assert records[own.json()["job_id"]]["cost_cents"] == 0
        assert records[paid]["cost_cents"] == PRICE and records[paid]["cache_hit"] is False
        assert records[hit.json()["job_id"]] | {"cost_cents": 0, "cache_hit": True} == records[hit.json()["job_id"]]


def test_account_endpoints(api: str, rds: redis.Redis):
    account = _account(rds, "pro", credit=1234)
    with _client(api, rds, account) as c:
        assert c.get("/me").json() == {"userId": account, "email": "pro@example.com"}
        assert c.get("/balance").json() == {"balance_cents": 1234, "currency": "usd"}
        assert c.get("/usage", params={"from": "2026-01-01", "to": "2026-01-31"}).json() == {"usage": [],
                                                                                            "total_cents": 0}
        for params, field in (({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
                              ({"from": "2026-02-01", "to": "2026-01-01"}, "to")):
            r = c.get("/usage", params=params)
            assert r.status_code == 400 and r.json()["field"] == field


def _gengate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gengate.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_operator_commands(api: str, env: dict[str, str], rds: redis.Redis):
    made = _gengate(env, "accounts", "create", "--plan", "pro", "--email", "ops@example.com")
    assert made.returncode == 0, made.stderr
    account = made.stdout.strip().splitlines()[-1]
    assert account.startswith("user_") and rds.hget(keys.account(account), "plan") == b"pro"
    key = _gengate(env, "keys", "create", "--account", account).stdout.strip().splitlines()[-1]
    assert key.startswith("gg_live_")
    assert _gengate(env, "credit", "add", account, "500").returncode == 0
    with httpx.Client(base_url=f"{api}/v1", headers={"Authorization": f"Bearer {key}"}) as c:
        assert c.get("/balance").json()["balance_cents"] == 500
        job = _image(c, latency=5).json()["job_id"]
        shown = _gengate(env, "accounts", "show", account).stdout
        assert "plan         pro" in shown and "balance      500 cents" in shown
        assert f"holds        {PRICE} cents" in shown and job in shown
        c.delete(f"/jobs/{job}")
        listed = _gengate(env, "keys", "list", "--account", account).stdout
        assert key.split("_")[2] in listed and "active" in listed
        assert _gengate(env, "keys", "revoke", key).returncode == 0
        refused = c.get("/balance")
        assert refused.status_code == 401 and refused.json()["error"] == "AuthError"
    assert "revoked" in _gengate(env, "keys", "list", "--account", account).stdout
    assert _gengate(env, "accounts", "show", "user_nobody").returncode == 2
