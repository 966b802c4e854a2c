"""GET /v1/jobs (the account's jobs, newest first, filtered, cursor-paginated) and resuming the SSE
stream with Last-Event-ID, against the real API, worker and simulator."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from gengate.jobs import keys
from gengate.jobs.apikeys import create_account, create_key
from tests.conftest import wait_for


class Account:
    def __init__(self, account_id: str, http: httpx.Client) -> None:
        self.id, self.http = account_id, http


@pytest.fixture
def acct(api_url: str, rds: redis.Redis, worker) -> Iterator[Account]:
    """A fresh account whose id the test knows (to look at its index in Redis)."""
    account_id = create_account(rds, email="list@example.com")
    headers = {"Authorization": f"Bearer {create_key(rds, account_id)}"}
    with httpx.Client(base_url=f"{api_url}/v1", headers=headers, timeout=30) as http:
        yield Account(account_id, http)


def _image(http: httpx.Client, model: str = "flux-schnell", **extra) -> str:
    # Unique prompts: identical requests may be answered from the result cache.
    r = http.post("/image", json={"model": model, "prompt": f"list {uuid.uuid4().hex}", **extra})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def _create(http: httpx.Client, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        ids.append(_image(http))
        time.sleep(0.002)  # distinct creation milliseconds: a well-defined newest-first order
    return ids


def _list(http: httpx.Client, **params) -> dict:
    r = http.get("/jobs", params=params)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"jobs", "next_cursor"}
    return r.json()


def _all_pages(http: httpx.Client, **params) -> tuple[list[str], int]:
    ids, pages, cursor = [], 0, None
    while True:
        page = _list(http, **params, **({"cursor": cursor} if cursor else {}))
        ids += [j["job_id"] for j in page["jobs"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 100, "pagination does not end"


def test_newest_first_with_the_public_job_shape(acct: Account):
    ids = _create(acct.http, 5)
    for job_id in ids:
        wait_for(acct.http, job_id)
    page = _list(acct.http)
    assert [j["job_id"] for j in page["jobs"]] == ids[::-1] and page["next_cursor"] is None
    for listed in page["jobs"]:
        detail = acct.http.get(f"/jobs/{listed['job_id']}").json()
        assert listed == {k: v for k, v in detail.items() if k in listed}  # the spec's fields, the same
        assert set(detail) - set(listed) == {"capability", "provider", "mode", "byok", "request", "price_cents",
                                             "charged_cents", "attempts", "routes"}  # GET /v1/jobs/{id} alone adds them
        assert listed["status"] == "completed" and listed["model"] == "fal:flux-schnell"


def test_filters_by_status_capability_and_model(acct: Account):
    schnell = [_image(acct.http) for _ in range(3)]
    pro = [_image(acct.http, "flux-pro") for _ in range(2)]
    failed = _image(acct.http, provider_options={"sim": {"fail": "NSFW content detected"}})
    r = acct.http.post("/speech", json={"model": "eleven_v3", "text": f"hello {uuid.uuid4().hex}", "voice": "rachel"})
    assert r.status_code == 202, r.text
    speech = r.json()["job_id"]
    for job_id in [*schnell, *pro, failed, speech]:
        wait_for(acct.http, job_id)

    def ids(**params) -> set[str]:
        return {j["job_id"] for j in _list(acct.http, limit=100, **params)["jobs"]}

    assert ids(capability="speech") == {speech}
    assert ids(capability="image") == {*schnell, *pro, failed}
    assert ids(model="flux-schnell") == ids(model="fal:flux-schnell") == {*schnell, failed}
    assert ids(model="fal:flux-pro") == set(pro)
    assert ids(model="replicate:flux-schnell") == set() and ids(model="nope") == set()
    assert ids(status="failed") == {failed}
    assert ids(status="completed", capability="image") == {*schnell, *pro}
    assert ids(status="queued") == set()
    assert ids(status="completed", model="flux-pro", capability="speech") == set()


def test_pagination_has_no_gaps_and_no_repeats(acct: Account, api_url: str, rds: redis.Redis):
    created = _create(acct.http, 25)
    ids, pages = _all_pages(acct.http, limit=10)
    assert ids == created[::-1] and pages == 3
    filtered, _ = _all_pages(acct.http, limit=3, model="flux-schnell")
    assert filtered == created[::-1]

    # Another account sees none of them, with or without this account's cursor.
    with httpx.Client(base_url=f"{api_url}/v1", timeout=10,
                      headers={"Authorization": f"Bearer {create_key(rds, create_account(rds))}"}) as stranger:
        first = _list(acct.http, limit=10)
        assert _list(stranger) == {"jobs": [], "next_cursor": None}
        assert _list(stranger, cursor=first["next_cursor"]) == {"jobs": [], "next_cursor": None}
        assert stranger.get(f"/jobs/{created[0]}").status_code == 404


def test_jobs_created_in_the_same_millisecond_are_neither_repeated_nor_skipped(acct: Account, rds: redis.Redis):
    created = [_image(acct.http) for _ in range(12)]
    index = keys.account_jobs(acct.id)
    # Three creation instants shared by four jobs each; Redis then orders ties by member.
    rds.zadd(index, {job_id: 1_700_000_000_000 + i // 4 for i, job_id in enumerate(created)})
    expected = [m.decode() for m in rds.zrevrange(index, 0, -1)]
    for limit in (1, 3, 4, 5):
        ids, _ = _all_pages(acct.http, limit=limit)
        assert ids == expected, limit


def test_expired_jobs_leave_the_index_and_a_long_scan_stops_with_a_cursor(acct: Account, rds: redis.Redis):
    real = _create(acct.http, 3)
    index = keys.account_jobs(acct.id)
    newest = max(score for _, score in rds.zrange(index, 0, -1, withscores=True))
    # Index entries whose job records expired, all newer than the real jobs: more than one request scans.
    rds.zadd(index, {f"job_{uuid.uuid4().hex}": newest + 1 + i for i in range(2100)})
    first = _list(acct.http)
    assert first["jobs"] == [] and first["next_cursor"], "the scan must stop at its cap with a cursor"
    assert rds.zcard(index) == 3 + 100  # the 2,000 examined were dropped from the index
    rest = _list(acct.http, cursor=first["next_cursor"])
    assert [j["job_id"] for j in rest["jobs"]] == real[::-1] and rest["next_cursor"] is None
    assert rds.zcard(index) == 3


@pytest.mark.parametrize("params, field", [
    ({"status": "done"}, "status"),
    ({"capability": "3d"}, "capability"),
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "%%%"}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"soon:job_1").decode()}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"inf:job_1").decode()}, "cursor"),
    ({"cursor": base64.urlsafe_b64encode(b"12:../../x").decode()}, "cursor"),
    ({"model": "m" * 201}, "model"),
])
def test_bad_parameters_are_400_with_the_field(client: httpx.Client, params: dict, field: str):
    r = client.get("/jobs", params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "ValidationError" and body["field"] == field and body["statusCode"] == 400


# --- SSE: Last-Event-ID ------------------------------------------------------------------------


def _stream(http: httpx.Client, job_id: str, headers: dict | None = None, params: dict | None = None,
            timeout: float = 30) -> list[tuple[str, dict]]:
    """(event id, job) of every event, until the server closes the stream."""
    events, event_id = [], None
    with http.stream("GET", f"/jobs/{job_id}/stream", headers=headers, params=params, timeout=timeout) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                events.append((event_id, json.loads(line[5:])))
    return events


def test_last_event_id_replays_only_later_events(client: httpx.Client):
    job_id = _image(client)
    wait_for(client, job_id)
    everything = _stream(client, job_id)
    assert everything[0][1]["status"] == "queued" and everything[-1][1]["status"] == "completed"
    assert len({eid for eid, _ in everything}) == len(everything)
    first_id = everything[0][0]
    assert _stream(client, job_id, headers={"Last-Event-ID": first_id}) == everything[1:]
    assert _stream(client, job_id, params={"lastEventId": first_id}) == everything[1:]
    # The header wins over the query parameter.
    assert _stream(client, job_id, headers={"Last-Event-ID": first_id}, params={"lastEventId": "0-0"}) \
        == everything[1:]


def test_resuming_after_the_last_event_of_a_finished_job_ends_at_once(client: httpx.Client):
    job_id = _image(client)
    wait_for(client, job_id)
    last_id = _stream(client, job_id)[-1][0]
    started = time.monotonic()
    assert _stream(client, job_id, headers={"Last-Event-ID": last_id}, timeout=5) == []
    assert time.monotonic() - started < 2
    # An id past everything the job will ever send: the job is over, so is the stream.
    assert _stream(client, job_id, headers={"Last-Event-ID": "99999999999999-0"}, timeout=5) == []


def test_resuming_a_running_job_follows_it_to_the_end(client: httpx.Client):
    r = client.post("/image", json={"model": "flux-pro", "prompt": f"resume {uuid.uuid4().hex}",
                                     "provider_options": {"sim": {"latency": 1.0}}})
    job_id = r.json()["job_id"]
    first = _stream_first(client, job_id)
    rest = _stream(client, job_id, headers={"Last-Event-ID": first})
    assert rest and rest[-1][1]["status"] == "completed"
    assert all(_after(eid, first) for eid, _ in rest)
    assert "queued" not in [job["status"] for _, job in rest]


def _stream_first(http: httpx.Client, job_id: str) -> str:
    with http.stream("GET", f"/jobs/{job_id}/stream", timeout=10) as resp:
        for line in resp.iter_lines():
            if line.startswith("id:"):
                return line[3:].strip()
    raise AssertionError("no event")


def _after(a: str, b: str) -> bool:
    return tuple(map(int, a.split("-"))) > tuple(map(int, b.split("-")))


@pytest.mark.parametrize("bad", ["yesterday", "1-2-3", "-1", "12345-", "0x10-0"])
def test_a_malformed_last_event_id_is_400(client: httpx.Client, bad: str):
    job_id = _image(client)
    for kwargs in ({"headers": {"Last-Event-ID": bad}}, {"params": {"lastEventId": bad}}):
        r = client.get(f"/jobs/{job_id}/stream", **kwargs)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "ValidationError" and r.json()["field"] == "Last-Event-ID"
