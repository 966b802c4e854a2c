"""Abuse of flat prices (issue 17, item 6): asking for the longest video, ten minutes of music or
50,000 characters of speech for the price of the shortest. Prices follow what the provider bills
(config/catalog.py `Pricing`), so the long variant is held and charged in proportion, and a request
the balance cannot cover is a 402 with no job, while another tenant's requests go on as usual.
Everything is read through the API (/v1/balance, /v1/usage, /v1/jobs); RESILIENCE.md has the rows."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

from gengate.config.catalog import BY_NAME
from gengate.jobs import accounts, keys
from gengate.jobs.apikeys import create_account, create_key
from tests.conftest import new_key, wait_for
from tests.resilience.bystander import Bystander
from tests.test_api_errors import assert_error

pytestmark = pytest.mark.resilience

NO_STORE = {"Cache-Control": "no-store"}
# Each short request and its long variant, with the cents each is held and charged.
PAIRS = [
    ("kling-v3 5 s", "/video", {"model": "kling-v3", "prompt": "waves", "duration": 5}, 50),
    ("kling-v3 15 s", "/video", {"model": "kling-v3", "prompt": "waves", "duration": 15}, 150),
    ("music_v1 10 s", "/music", {"model": "music_v1", "prompt": "piano", "duration": 10}, 4),
    ("music_v1 600 s", "/music", {"model": "music_v1", "prompt": "piano", "duration": 600}, 200),
    ("flash 2 chars", "/speech", {"model": "eleven_flash_v2_5", "text": "hi"}, 2),
    ("flash 40,000 chars", "/speech", {"model": "eleven_flash_v2_5", "text": "a" * 40_000}, 200),
]
LEFT = 100  # what the account keeps after the pairs: less than any long variant costs
# Beyond that balance: each is refused, however often it is sent.
TOO_DEAR = [
    ("kling-v3 15 s", "/video", {"model": "kling-v3", "prompt": "cliffs", "duration": 15}, 150),
    ("music_v1 600 s", "/music", {"model": "music_v1", "prompt": "drums", "duration": 600}, 200),
    # the longest text a model takes in one request (ElevenLabs' limit: longer is a 400 on `text`)
    ("eleven_flash_v2_5 40,000 chars", "/speech", {"model": "eleven_flash_v2_5", "text": "b" * 40_000}, 200),
]


ATTACK_SECONDS = 3.0


def _client(api_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_long_work_is_charged_in_proportion_and_beyond_the_balance_is_a_402(api_url: str, rds: redis.Redis,
                                                                              worker):
    # sanity: the figures above are the catalog's
    assert BY_NAME["kling-v3"].price("text-to-video", {"duration": 15}) == 150
    assert BY_NAME["eleven_flash_v2_5"].price("tts", {"text": "b" * 40_000}) == 200
    start = sum(cents for *_, cents in PAIRS) + LEFT
    account = create_account(rds, plan="enterprise", credit_cents=start)
    accounts.set_limits(rds, account, rpm=0, concurrency=0)
    with _client(api_url, create_key(rds, account)) as c, Bystander(api_url, new_key(rds)) as b:
        # The long variant of each is held and charged in proportion to the short one.
        jobs = {}
        for what, path, body, cents in PAIRS:
            r = c.post(path, json=body, headers=NO_STORE)
            assert r.status_code == 202, (what, r.text)
            jobs[what] = r.json()["job_id"]
        for what, job_id in jobs.items():
            assert wait_for(c, job_id, timeout=60)["status"] == "completed", what
        charged = {r["job_id"]: r["cost_cents"] for r in c.get("/usage").json()["usage"]}
        assert {what: charged[job_id] for what, job_id in jobs.items()} == {w: cents for w, *_, cents in PAIRS}
        assert c.get("/balance").json()["balance_cents"] == LEFT

        # Beyond the balance: the spec's 402 InsufficientBalanceError, no job, nothing held, however
        # often it is asked (for ATTACK_SECONDS at least, so the bystander sees the whole attack).
        rounds, until = 0, time.monotonic() + ATTACK_SECONDS
        while rounds < 10 or time.monotonic() < until:
            rounds += 1
            for what, path, body, cents in TOO_DEAR:
                err = assert_error(c.post(path, json=body, headers=NO_STORE), 402, "InsufficientBalanceError")
                assert f"costs {cents} cents, {LEFT} available" in err["message"], (what, err)
        listed = c.get("/jobs", params={"limit": 100}).json()["jobs"]
        assert sorted(j["job_id"] for j in listed) == sorted(jobs.values()), "a refused request left a job"
        assert int(rds.hget(keys.account(account), "holds_cents") or 0) == 0
        assert c.get("/balance").json()["balance_cents"] == LEFT

        # What the balance covers still runs: the check is the request's own price.
        r = c.post("/video", json={"model": "kling-v3", "prompt": "cliffs", "duration": 5}, headers=NO_STORE)
        assert r.status_code == 202, r.text
        assert wait_for(c, r.json()["job_id"], timeout=60)["status"] == "completed"
        usage = c.get("/usage").json()
        assert c.get("/balance").json()["balance_cents"] == LEFT - 50 == start - usage["total_cents"]
    assert accounts.ledger_sum(rds, account) == LEFT - 50
    report = b.report()
    print(f"\nflat-price abuse: long variants charged {[charged[j] for j in jobs.values()]} cents, "
          f"{rounds * len(TOO_DEAR)} requests beyond the balance refused with 402; {report}")
    assert not report.errors, report.errors
    assert report.requests > 10


def test_a_text_longer_than_the_model_takes_is_refused_before_it_is_held(client: httpx.Client):
    """ElevenLabs refuses a text over its per-model limit after the job was accepted and its price
    held; the catalog knows the limits, so the request is a 400 naming `text`, and no job exists."""
    r = client.post("/speech", json={"model": "eleven_v3", "text": "c" * 5_001, "voice": "rachel"})
    assert "at most 5000" in assert_error(r, 400, "ValidationError", "text")["message"]
    assert client.get("/jobs").json()["jobs"] == []
    models = {m["name"]: m for m in client.get("/models", params={"capability": "speech"}).json()["models"]}
    assert models["eleven_v3"]["parameters"]["tts"]["max_text_characters"] == 5_000
