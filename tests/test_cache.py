"""The result cache and shared in-flight calls, through the real API, worker and simulator."""

from __future__ import annotations

import concurrent.futures
import uuid

import httpx
import redis

from gengate.jobs import keys
from tests.conftest import new_key, sim_requests, wait_for, wait_until

TTL = 30 * 24 * 3600


def _image(client: httpx.Client, prompt: str, *, headers: dict | None = None, **extra) -> httpx.Response:
    r = client.post("/image", json={"model": "flux-schnell", "prompt": prompt, **extra}, headers=headers or {})
    assert r.status_code == 202, r.text
    return r


def test_identical_request_is_answered_from_cache_at_once(client: httpx.Client, sim: httpx.Client):
    m = uuid.uuid4().hex
    first = _image(client, f"cached {m}", aspect_ratio="16:9")
    assert first.headers["X-Cache"] == "MISS" and first.headers["X-Cache-TTL"] == str(TTL)
    key = first.headers["X-Cache-Key"]
    assert key.startswith("sha256:") and len(key) == 7 + 64
    done = wait_for(client, first.json()["job_id"])
    assert done["status"] == "completed" and done["cache"] == {"hit": False, "key": key}

    hit = _image(client, f"cached {m}", aspect_ratio="16:9")
    body = hit.json()
    assert hit.headers["X-Cache"] == "HIT" and hit.headers["X-Cache-Key"] == key
    assert 0 < int(hit.headers["X-Cache-TTL"]) <= TTL
    assert body["status"] == "completed" and body["cache"] == {"hit": True, "key": key}
    assert body["job_id"] != done["job_id"] and body["output"]["url"].endswith(f"/o/{body['job_id']}.png")
    assert httpx.get(body["output"]["url"]).content == httpx.get(done["output"]["url"]).content
    got = client.get(f"/jobs/{body['job_id']}").json()
    assert {k: got[k] for k in body} == body and got["price_cents"] == got["charged_cents"] == 0  # hits are free
    assert len(sim_requests(sim, m)) == 1, "a hit must not reach the provider"

    # Any output-changing parameter makes another key.
    other = _image(client, f"cached {m}", aspect_ratio="1:1")
    assert other.headers["X-Cache"] == "MISS" and other.headers["X-Cache-Key"] != key


def test_no_cache_skips_the_look_up_but_stores_and_no_store_bypasses(client: httpx.Client, sim: httpx.Client):
    m = uuid.uuid4().hex
    wait_for(client, _image(client, f"nc {m}").json()["job_id"])
    fresh = _image(client, f"nc {m}", headers={"Cache-Control": "no-cache"})
    assert fresh.headers["X-Cache"] == "MISS" and fresh.json()["status"] == "queued"
    assert wait_for(client, fresh.json()["job_id"])["status"] == "completed"
    assert len(sim_requests(sim, m)) == 2

    m2 = uuid.uuid4().hex
    bypass = _image(client, f"ns {m2}", headers={"Cache-Control": "no-store"})
    assert bypass.headers["X-Cache"] == "BYPASS" and "X-Cache-Key" not in bypass.headers
    job = wait_for(client, bypass.json()["job_id"])
    assert job["status"] == "completed" and job["cache"] == {"hit": False}
    after = _image(client, f"ns {m2}")
    assert after.headers["X-Cache"] == "MISS", "a no-store result must not have been stored"
    wait_for(client, after.json()["job_id"])
    assert len(sim_requests(sim, m2)) == 2


def test_key_uses_file_content_not_urls(client: httpx.Client, sim: httpx.Client, files_url: str):
    """Inputs at external URLs are fetched and hashed by the worker before the provider is called."""
    m = uuid.uuid4().hex
    body = {"model": "nano-banana-pro/edit", "prompt": f"edit {m}"}
    first = client.post("/image", json={**body, "files": [{"url": f"{files_url}/a/cat.png"}]})
    assert first.status_code == 202 and "X-Cache-Key" not in first.headers  # unknown until fetched
    one = wait_for(client, first.json()["job_id"])
    assert one["status"] == "completed" and one["cache"]["hit"] is False

    # Same bytes at another URL: the worker's hash finds the first result.
    second = client.post("/image", json={**body, "files": [{"url": f"{files_url}/elsewhere/kitten.png"}]})
    two = wait_for(client, second.json()["job_id"])
    assert two["status"] == "completed" and two["cache"] == {"hit": True, "key": one["cache"]["key"]}
    # Other bytes: another key, another provider call.
    third = client.post("/image", json={**body, "files": [{"url": f"{files_url}/a/cat.png?v=2"}]})
    three = wait_for(client, third.json()["job_id"])
    assert three["status"] == "completed" and three["cache"]["key"] != one["cache"]["key"]
    assert len(sim_requests(sim, m)) == 2


def test_our_own_output_as_input_is_hashed_without_a_fetch(client: httpx.Client, sim: httpx.Client):
    m = uuid.uuid4().hex
    made = wait_for(client, _image(client, f"source {m}").json()["job_id"])
    edit = {"model": "nano-banana-pro/edit", "prompt": f"edit {m}", "files": [{"url": made["output"]["url"]}]}
    first = client.post("/image", json=edit)
    assert first.status_code == 202 and first.headers["X-Cache-Key"].startswith("sha256:")
    assert wait_for(client, first.json()["job_id"])["status"] == "completed"
    again = client.post("/image", json=edit)
    assert again.headers["X-Cache"] == "HIT" and again.json()["status"] == "completed"

    gone = dict(edit, files=[{"url": made["output"]["url"].replace(made["job_id"], "job_" + "0" * 32)}])
    refused = client.post("/image", json=gone)
    assert refused.status_code == 400 and refused.json()["field"] == "files"


def test_concurrent_identical_requests_share_one_provider_call(client: httpx.Client, sim: httpx.Client):
    m = uuid.uuid4().hex
    body = {"model": "flux-schnell", "prompt": f"shared {m}", "provider_options": {"sim": {"latency": 1.0}}}
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: client.post("/image", json=body), range(6)))
    assert all(a.status_code == 202 for a in answers)
    jobs = [wait_for(client, a.json()["job_id"]) for a in answers]
    assert all(j["status"] == "completed" for j in jobs), jobs
    assert len(sim_requests(sim, m)) == 1, "identical in-flight requests must share one provider call"
    assert sorted(j["cache"]["hit"] for j in jobs) == [False] + [True] * 5
    contents = {httpx.get(j["output"]["url"]).content for j in jobs}
    assert len(contents) == 1 and len({j["output"]["url"] for j in jobs}) == 6


def test_followers_of_a_cancelled_job_get_their_own_call(client: httpx.Client, sim: httpx.Client, rds: redis.Redis):
    m = uuid.uuid4().hex
    body = {"model": "flux-schnell", "prompt": f"lead {m}", "provider_options": {"sim": {"latency": 2.0}}}
    leader = client.post("/image", json=body).json()["job_id"]
    wait_until(lambda: sim_requests(sim, m), what="the leader's submission")
    follower = client.post("/image", json=body).json()["job_id"]
    wait_until(lambda: rds.hget(keys.job(follower), "leader"), what="the follower joining the leader")
    assert client.get(f"/jobs/{follower}").json()["status"] == "queued"
    assert client.delete(f"/jobs/{leader}").status_code == 204
    job = wait_for(client, follower)
    assert job["status"] == "completed" and job["cache"]["hit"] is False
    assert len(sim_requests(sim, m)) == 2


def test_caches_are_per_account(client: httpx.Client, api_url: str, rds: redis.Redis, sim: httpx.Client):
    m = uuid.uuid4().hex
    wait_for(client, _image(client, f"mine {m}").json()["job_id"])
    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {new_key(rds)}"}) as other:
        theirs = _image(other, f"mine {m}")
        assert theirs.headers["X-Cache"] == "MISS", "another tenant must not learn what this one generated"
        assert wait_for(other, theirs.json()["job_id"])["cache"]["hit"] is False
    assert len(sim_requests(sim, m)) == 2


def test_refused_input_urls_are_400_with_their_field(client: httpx.Client):
    for url in ("http://127.1/a.png", "http://2130706433/a.png", "http://[::ffff:127.0.0.1]/a.png",
                "http://169.254.169.254/latest/meta-data/a.png", "file:///etc/passwd.png"):
        r = client.post("/image", json={"model": "nano-banana-pro/edit", "prompt": "x", "files": [{"url": url}]})
        assert r.status_code == 400, (url, r.text)
        assert r.json()["error"] == "ValidationError" and r.json()["field"] == "files.0.url"
    r = client.post("/transcription", json={"model": "whisper", "audio_url": "http://10.0.0.1/a.mp3"})
    assert r.status_code == 400 and r.json()["field"] == "audio_url"
    r = client.post("/image", json={"model": "flux-schnell", "prompt": "x", "webhook_url": "http://127.0.0.1:9/h"})
    assert r.status_code == 400 and r.json()["field"] == "webhook_url"


def test_worker_refuses_a_redirect_to_the_metadata_address(client: httpx.Client, files_url: str):
    """The API accepts the URL (its host is allowed); the worker's fetch follows the redirect, re-checks
    the new address and refuses it: the job fails as the user's error, nothing is fetched from it."""
    url = f"{files_url}/redirect-to-metadata/cat.png"
    r = client.post("/image", json={"model": "nano-banana-pro/edit", "prompt": "x", "files": [{"url": url}]})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"])
    assert job["status"] == "failed" and job["error"].startswith("ValidationError:"), job
    assert "redirect refused" in job["error"]
