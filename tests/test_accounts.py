"""Plans, rate limits, concurrency and the prepaid balance, through the real API, worker and Redis."""

from __future__ import annotations

import base64
import concurrent.futures
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from gengate import procs
from gengate.config.catalog import BY_NAME
from gengate.jobs import accounts, keys
from gengate.jobs.apikeys import create_account, create_key
from tests.conftest import TERMINAL, wait_for, wait_until

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
        completed = {j["job_id"] for j in finished if j["status"] == "completed"}
        assert {j["status"] for j in finished} <= TERMINAL
        # A cancel the provider could not confirm before its run started is charged like a completion,
        # once its provider answered.
        wait_until(lambda: int(rds.hget(keys.account(account), "holds_cents")) == 0, what="the holds to end")
        captures = [e for _, e in rds.xrange(keys.account_ledger(account)) if e[b"kind"] == b"capture"]
        captured = len(captures)
        assert captured == len({e[b"job"] for e in captures}) and completed <= {e[b"job"].decode() for e in captures}
        assert captured - len(completed) <= 3
        balance = c.get("/balance").json()
        assert balance == {"balance_cents": start - captured * PRICE, "currency": "usd"}
        usage = c.get("/usage").json()
        assert usage["total_cents"] == captured * PRICE and len(usage["usage"]) == captured
        assert usage["next_cursor"] is None
    # The settling transition keeps the day's total beside each record (what total_cents sums).
    assert sum(int(v) for v in rds.hvals(keys.account_usage_days(account))) == captured * PRICE
    assert accounts.ledger_sum(rds, account) == start - captured * PRICE
    assert int(rds.hget(keys.account(account), "holds_cents")) == 0


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
        assert c.get("/usage", params={"from": "2026-01-01", "to": "2026-01-31"}).json() == {
            "usage": [], "total_cents": 0, "next_cursor": None}
        for params, field in (({"from": "yesterday"}, "from"), ({"to": "2026-13-01"}, "to"),
                              ({"from": "2026-02-01", "to": "2026-01-01"}, "to")):
            r = c.get("/usage", params=params)
            assert r.status_code == 400 and r.json()["field"] == field


# --- GET /v1/usage: pages and the period's total -------------------------------------------------

DAY_MS = 86_400_000
MARCH_1 = int(datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp() * 1000)


def _seed_usage(rds: redis.Redis, account: str, records: list[tuple[int, int]]) -> list[str]:
    """(completion ms, cents) records, written as TERMINAL_LUA leaves them: the record in the usage
    zset and its cents on its UTC day. The job ids, in the order the API must return them."""
    pipe = rds.pipeline(transaction=False)
    members = []
    for ms, cents in records:
        record = {"job_id": f"job_{uuid.uuid4().hex}", "model": "fal:flux-schnell", "capability": "image",
                  "cost_cents": cents, "cache_hit": False, "created_at": "2026-03-01T00:00:00Z"}
        member = orjson.dumps(record)
        members.append((ms, member, record["job_id"]))
        pipe.zadd(keys.account_usage(account), {member: ms})
        if cents:
            pipe.hincrby(keys.account_usage_days(account), ms // DAY_MS, cents)
    pipe.execute()
    return [job_id for _, _, job_id in sorted(members)]  # Redis's order: score, then member bytes


def _usage_pages(c: httpx.Client, **params) -> list[dict]:
    pages, cursor = [], None
    while True:
        r = c.get("/usage", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor does not advance"


def test_usage_pages_keep_the_whole_periods_total(api: str, rds: redis.Redis):
    account = _account(rds, "pro")
    records = [(MARCH_1 + (i // 3) * 1000, i % 7) for i in range(250)]  # three records a millisecond
    expected = _seed_usage(rds, account, records)
    total = sum(cents for _, cents in records)
    with _client(api, rds, account) as c:
        for params in ({"limit": 100}, {"limit": 100, "from": "2026-03-01", "to": "2026-03-01"},
                       {"limit": 100, "from": "2026-02-01"}):
            pages = _usage_pages(c, **params)
            assert [len(p["usage"]) for p in pages] == [100, 100, 50], params
            assert [r["job_id"] for p in pages for r in p["usage"]] == expected, "each record once, oldest first"
            assert {p["total_cents"] for p in pages} == {total}, "every page carries the period's total"
        whole = c.get("/usage").json()
        assert [r["job_id"] for r in whole["usage"]] == expected, "no paging parameter: the whole period"
        assert whole["next_cursor"] is None and whole["total_cents"] == total
        assert len(c.get("/usage", params={"limit": 1000}).json()["usage"]) == 250
        first = c.get("/usage", params={"limit": 100}).json()
        second = c.get("/usage", params={"cursor": first["next_cursor"]}).json()
        assert [r["job_id"] for r in second["usage"]] == expected[100:200], "a cursor alone pages by 100"
        assert second["next_cursor"] and second["total_cents"] == total


def test_usage_records_of_one_millisecond_are_neither_skipped_nor_repeated(api: str, rds: redis.Redis):
    account = _account(rds, "pro")
    expected = _seed_usage(rds, account, [(MARCH_1, 1)] + [(MARCH_1 + 5, 2)] * 7 + [(MARCH_1 + 6, 3)] * 2)
    with _client(api, rds, account) as c:
        for limit in (1, 2, 3, 4, 7, 8, 10):
            pages = _usage_pages(c, limit=limit)
            assert [r["job_id"] for p in pages for r in p["usage"]] == expected, limit
            assert {p["total_cents"] for p in pages} == {21}


def test_usage_total_sums_the_days_of_the_range(api: str, rds: redis.Redis):
    account = _account(rds, "pro")
    # Feb 28 23:59:59.999, Mar 1 00:00, Mar 1 23:59:59.999, Mar 2, and a year and more later.
    _seed_usage(rds, account, [(MARCH_1 - 1, 1), (MARCH_1, 10), (MARCH_1 + DAY_MS - 1, 100), (MARCH_1 + DAY_MS, 1000),
                               (MARCH_1 + 400 * DAY_MS, 10000)])
    with _client(api, rds, account) as c:
        for params, cents in (({}, 11111),
                              ({"from": "2026-03-01", "to": "2026-03-01"}, 110),
                              ({"from": "2026-03-01"}, 11110),
                              ({"to": "2026-03-01"}, 111),
                              ({"from": "2026-02-28", "to": "2026-03-02"}, 1111),
                              ({"from": "2025-01-01", "to": "2027-12-31"}, 11111),  # longer than a year
                              ({"from": "0001-01-01", "to": "9999-12-31"}, 11111),
                              ({"from": "2026-03-03", "to": "2027-04-01"}, 0)):
            body = c.get("/usage", params=params).json()
            assert body["total_cents"] == cents == sum(r["cost_cents"] for r in body["usage"]), params


USAGE_MAX = 10_000  # GENGATE_USAGE_MAX_RECORDS's default: the session API runs with it


def _spread(n: int, days: int = 3) -> list[tuple[int, int]]:
    """n records over `days` UTC days from March 1 (some in one millisecond), costing 0 to 6 cents."""
    per_day = -(-n // days)
    return [(MARCH_1 + (i // per_day) * DAY_MS + (i % per_day) // 2, i % 7) for i in range(n)]


def test_usage_without_paging_is_the_whole_period_up_to_the_bound(api: str, rds: redis.Redis):
    """The spec's clients send no paging parameter and read the answer as the period: they get all of
    it, with the total its records add up to, up to GENGATE_USAGE_MAX_RECORDS records."""
    account = _account(rds, "pro")
    records = _spread(USAGE_MAX)
    expected = _seed_usage(rds, account, records)
    with _client(api, rds, account) as c:
        r = c.get("/usage")
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x["job_id"] for x in body["usage"]] == expected, "every record once, oldest first"
        assert body["next_cursor"] is None
        assert body["total_cents"] == sum(x["cost_cents"] for x in body["usage"]) == sum(cents for _, cents in records)
        for params in ({"from": "2026-03-02"}, {"to": "2026-03-02"}, {"from": "2026-03-02", "to": "2026-03-02"},
                       {"from": "2026-02-01", "to": "2026-03-31"}):
            body = c.get("/usage", params=params).json()
            assert body["usage"] and body["next_cursor"] is None, params
            assert body["total_cents"] == sum(x["cost_cents"] for x in body["usage"]), params


def test_usage_past_the_bound_is_refused_not_cut_short(api: str, rds: redis.Redis):
    """One record past the bound: a 400 on `limit` that says to page or to ask for fewer days, never
    the first 10,000 records presented as the period. Paging and a shorter period both still work."""
    account = _account(rds, "pro")
    records = _spread(USAGE_MAX + 1)
    expected = _seed_usage(rds, account, records)
    total = sum(cents for _, cents in records)
    with _client(api, rds, account) as c:
        for params in ({}, {"from": "2026-03-01"}, {"from": "2026-03-01", "to": "2026-03-03"}):
            r = c.get("/usage", params=params)
            assert r.status_code == 400, (params, r.status_code)
            body = r.json()
            assert set(body) == {"error", "message", "field", "statusCode"}
            assert body["error"] == "ValidationError" and body["field"] == "limit" and body["statusCode"] == 400
            assert "10000" in body["message"] and "cursor" in body["message"] and "from" in body["message"]
        pages = _usage_pages(c, limit=1000)
        assert [len(p["usage"]) for p in pages] == [1000] * 10 + [1]
        assert [x["job_id"] for p in pages for x in p["usage"]] == expected
        assert {p["total_cents"] for p in pages} == {total}
        day = c.get("/usage", params={"from": "2026-03-02", "to": "2026-03-02"}).json()
        assert len(day["usage"]) == -(-(USAGE_MAX + 1) // 3) and day["next_cursor"] is None
        assert day["total_cents"] == sum(x["cost_cents"] for x in day["usage"])


@pytest.fixture(scope="module")
def bounded_api(env: dict[str, str], data_dir: Path) -> Iterator[str]:
    """An API of this module's own with GENGATE_USAGE_MAX_RECORDS=5 (the bound is a setting)."""
    port = procs.free_port()
    proc = procs.start(procs.api_command("127.0.0.1", port),
                       {**env, "GENGATE_API_PORT": str(port), "GENGATE_USAGE_MAX_RECORDS": "5"},
                       data_dir / "api-usage-bound.log")
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", 30, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        procs.stop(proc)


def test_usage_bound_is_the_setting(bounded_api: str, rds: redis.Redis):
    account = _account(rds, "pro")
    expected = _seed_usage(rds, account, [(MARCH_1 + i, 1) for i in range(5)])
    with _client(bounded_api, rds, account) as c:
        body = c.get("/usage").json()
        assert [x["job_id"] for x in body["usage"]] == expected and body["total_cents"] == 5
        _seed_usage(rds, account, [(MARCH_1 + DAY_MS, 2)])
        refused = c.get("/usage")
        assert refused.status_code == 400 and refused.json()["field"] == "limit"
        assert "more than 5 usage records" in refused.json()["message"]
        assert len(c.get("/usage", params={"to": "2026-03-01"}).json()["usage"]) == 5
        assert len(c.get("/usage", params={"limit": 6}).json()["usage"]) == 6, "a page is not bounded by it"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("params, field", [
    ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"limit": ""}, "limit"),
    ({"limit": "null"}, "limit"),
    ({"cursor": "%%%"}, "cursor"),
    ({"cursor": "x" * 201}, "cursor"),
    ({"cursor": _b64(b"soon:0")}, "cursor"),
    ({"cursor": _b64(b"1772323200000:-1")}, "cursor"),
    ({"cursor": _b64(b"1772323200000")}, "cursor"),
    ({"cursor": _b64(b"1772323200000:3") + "=="}, "cursor"),
    ({"cursor": _b64(b"1.5e12:0")}, "cursor"),
    ({"cursor": _b64(b"1772323200000.0:job_1")}, "cursor"),  # a GET /v1/jobs cursor
])
def test_bad_usage_paging_is_400_with_the_field(api: str, rds: redis.Redis, params: dict, field: str):
    with _client(api, rds, _account(rds, "pro")) as c:
        r = c.get("/usage", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error", "message", "field", "statusCode"}
    assert body["error"] == "ValidationError" and body["field"] == field and body["statusCode"] == 400


def _gengate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*procs.gengate_command(), *args], env=env, capture_output=True, text=True,
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
