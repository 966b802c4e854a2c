"""Idempotency-Key on job-creating POSTs: replay, conflict, mismatch, tenancy, expiry."""

from __future__ import annotations

import concurrent.futures
import hashlib
import uuid
from collections.abc import Iterator

import httpx
import orjson
import pytest
import redis

from gengate.api.idempotency import fingerprint
from gengate.jobs import keys
from gengate.jobs.apikeys import create_account, create_key
from tests.conftest import sim_requests, wait_for


@pytest.fixture
def account(api_url: str, rds: redis.Redis, worker) -> Iterator[tuple[str, httpx.Client]]:
    account_id = create_account(rds, email="idem@example.com")
    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {create_key(rds, account_id)}"},
                      timeout=10) as c:
        yield account_id, c


def _body(m: str) -> dict:
    return {"model": "flux-schnell", "prompt": f"idem {m}"}


def test_same_key_and_body_replays_the_first_response(account, rds: redis.Redis, sim: httpx.Client):
    account_id, client = account
    m, key = uuid.uuid4().hex, str(uuid.uuid4())
    first = client.post("/image", json=_body(m), headers={"Idempotency-Key": key})
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    wait_for(client, first.json()["job_id"])
    again = client.post("/image", json=_body(m), headers={"Idempotency-Key": key})
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and again.headers["Location"] == first.headers["Location"]
    assert len(sim_requests(sim, m)) == 1
    assert rds.zcard(keys.account_jobs(account_id)) == 1, "one key, one job"
    [record] = rds.keys(keys.idempotency(account_id, "*"))
    assert 24 * 3600 - 60 < rds.ttl(record) <= 24 * 3600


def test_same_key_other_body_is_422_and_other_path_is_another_scope(account):
    _, client = account
    m, key = uuid.uuid4().hex, str(uuid.uuid4())
    assert client.post("/image", json=_body(m), headers={"Idempotency-Key": key}).status_code == 202
    r = client.post("/image", json=_body(m + "x"), headers={"Idempotency-Key": key})
    assert r.status_code == 422
    assert r.json() == {"error": "UnprocessableError", "message": r.json()["message"], "field": "Idempotency-Key",
                        "statusCode": 422}
    # Key order and whitespace do not change the fingerprint.
    same = client.post("/image", content=b'{ "prompt": "idem %s", "model": "flux-schnell" }' % m.encode(),
                       headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert same.status_code == 202 and same.headers["Idempotent-Replayed"] == "true"
    video = client.post("/video", json={"model": "kling-v3", "prompt": f"idem {m}"}, headers={"Idempotency-Key": key})
    assert video.status_code == 202 and "Idempotent-Replayed" not in video.headers


def test_concurrent_duplicates_make_one_job(account, rds: redis.Redis, sim: httpx.Client):
    account_id, client = account
    m, key = uuid.uuid4().hex, str(uuid.uuid4())
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: client.post("/image", json=_body(m), headers={"Idempotency-Key": key}),
                                range(12)))
    accepted = [a for a in answers if a.status_code == 202]
    assert accepted and all(a.status_code in (202, 409) for a in answers), [a.text for a in answers]
    assert len({a.json()["job_id"] for a in accepted}) == 1
    for conflict in (a for a in answers if a.status_code == 409):
        assert conflict.json()["error"] == "ConflictError" and conflict.headers["Retry-After"] == "1"
    wait_for(client, accepted[0].json()["job_id"])
    assert rds.zcard(keys.account_jobs(account_id)) == 1 and len(sim_requests(sim, m)) == 1


def test_in_flight_first_request_answers_409(account, rds: redis.Redis):
    """A first request still being created (its pending record, as the API writes it) -> 409."""
    account_id, client = account
    m, key = uuid.uuid4().hex, str(uuid.uuid4())
    body = orjson.dumps(_body(m))
    scoped = keys.idempotency(account_id, hashlib.sha256(f"/v1/image\n{key}".encode()).hexdigest())
    rds.set(scoped, orjson.dumps({"state": "pending", "fp": fingerprint(body), "token": "t"}), ex=60)
    r = client.post("/image", content=body, headers={"Idempotency-Key": key, "Content-Type": "application/json"})
    assert r.status_code == 409 and r.json()["statusCode"] == 409


def test_another_tenant_never_sees_a_replay(account, api_url: str, rds: redis.Redis):
    _, client = account
    m, key = uuid.uuid4().hex, str(uuid.uuid4())
    mine = client.post("/image", json=_body(m), headers={"Idempotency-Key": key}).json()
    other_key = create_key(rds, create_account(rds))
    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {other_key}"}) as other:
        theirs = other.post("/image", json=_body(m), headers={"Idempotency-Key": key})
        assert theirs.status_code == 202 and "Idempotent-Replayed" not in theirs.headers
        assert theirs.json()["job_id"] != mine["job_id"]


def test_a_refused_request_leaves_no_record(account, rds: redis.Redis):
    account_id, client = account
    key = str(uuid.uuid4())
    bad = client.post("/image", json={"model": "flux-schnell", "prompt": "x", "aspect_ratio": "7:3"},
                      headers={"Idempotency-Key": key})
    assert bad.status_code == 400
    assert not rds.keys(keys.idempotency(account_id, "*"))
    good = client.post("/image", json={"model": "flux-schnell", "prompt": f"x {key}"}, headers={"Idempotency-Key": key})
    assert good.status_code == 202


def test_bad_keys_are_400(account):
    _, client = account
    for key in ("", "x" * 256, "ключ"):
        r = client.post("/image", json=_body("k"), headers={"Idempotency-Key": key.encode()})
        assert r.status_code == 400 and r.json()["field"] == "Idempotency-Key", (key, r.text)


def test_a_cache_hit_is_replayed_as_a_hit(account):
    _, client = account
    m = uuid.uuid4().hex
    wait_for(client, client.post("/image", json=_body(m)).json()["job_id"])
    key = str(uuid.uuid4())
    hit = client.post("/image", json=_body(m), headers={"Idempotency-Key": key})
    again = client.post("/image", json=_body(m), headers={"Idempotency-Key": key})
    assert hit.headers["X-Cache"] == "HIT" and again.headers["X-Cache"] == "HIT"
    assert again.json() == hit.json() and again.headers["Idempotent-Replayed"] == "true"
