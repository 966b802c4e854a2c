"""Provider callbacks: with them on, a job waiting on a provider is polled rarely, and completes
within moments of the provider finishing because the provider's callback pulls its poll forward.

A gateway of this module's own (API + worker on another Redis database, so the session's worker
never takes its jobs), with a first poll interval far longer than the test waits: only the callback
can complete the jobs in time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gengate import procs
from gengate.jobs.apikeys import create_account, create_key
from gengate.jobs.sealing import job_token
from tests.conftest import sim_requests, wait_for

SLOW_POLL = 30.0


@pytest.fixture(scope="module")
def gateway(env: dict[str, str], redis_url: str, data_dir: Path) -> Iterator[tuple[str, redis.Redis]]:
    db_url = redis_url.rsplit("/", 1)[0] + "/5"
    port = procs.free_port()
    own = dict(env, GENGATE_REDIS_URL=db_url, GENGATE_API_PORT=str(port), GENGATE_PROVIDER_WEBHOOKS="on",
               GENGATE_POLL_INITIAL_SECONDS=str(SLOW_POLL), GENGATE_POLL_MAX_WITH_WEBHOOKS_SECONDS=str(SLOW_POLL),
               GENGATE_STEP_LEASE_SECONDS="60", GENGATE_WORKER_METRICS_PORT="0")
    api = procs.start(procs.api_command("127.0.0.1", port), own, data_dir / "api-callbacks.log")
    worker = procs.start(procs.worker_command(hostname="callbacks@%h"), own, data_dir / "worker-callbacks.log")
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", 30, api)
        yield f"http://127.0.0.1:{port}", redis.Redis.from_url(db_url)
    finally:
        procs.stop(worker)
        procs.stop(api)


@pytest.mark.parametrize("provider,path,body", [
    ("fal", "/image", {"model": "flux-schnell"}),
    ("replicate", "/image", {"model": "background-remover", "files": [{"url": "{files}/cat.png"}]}),
    ("higgsfield", "/image", {"model": "soul"}),
    ("piapi", "/video", {"model": "piapi:seedance-2-preview", "duration": 5}),
])
def test_a_callback_completes_the_job_long_before_the_next_poll(gateway, sim: httpx.Client, files_url: str,
                                                                 provider: str, path: str, body: dict):
    api, rds = gateway
    marker = uuid.uuid4().hex
    # the marker rides in the simulator's knob object too: the background remover takes no prompt
    body = {**body, "prompt": "" if provider == "replicate" else f"callback {marker}",
            "provider_options": {"sim": {"latency": 1.0, "marker": marker}}}
    if "files" in body:
        body["files"] = [{"url": f["url"].replace("{files}", files_url)} for f in body["files"]]
    with httpx.Client(base_url=f"{api}/v1", headers={"Authorization": f"Bearer {create_key(rds, create_account(rds))}"},
                      timeout=10) as c:
        started = time.monotonic()
        r = c.post(path, json=body)
        assert r.status_code == 202, r.text
        job = wait_for(c, r.json()["job_id"], timeout=SLOW_POLL - 5)
        elapsed = time.monotonic() - started
    assert job["status"] == "completed", job
    assert elapsed < 1.0 + 3.0, f"{provider}: {elapsed:.1f}s; without the callback it would take {SLOW_POLL}s"
    [req] = sim_requests(sim, marker, provider)
    assert req.get("webhook") or req.get("webhook_url") or "webhook" in str(req), req


def test_a_forged_callback_is_refused(gateway):
    api, rds = gateway
    job_id = "job_" + uuid.uuid4().hex
    bad = httpx.post(f"{api}/v1/providers/fal/webhooks/{job_id}/{'0' * 40}", json={"status": "OK"})
    assert bad.status_code == 404 and bad.json()["error"] == "NotFoundError"
    unknown = httpx.post(f"{api}/v1/providers/fal/webhooks/{job_id}/{job_token(job_id)}", json={})
    assert unknown.status_code == 404
    # A token that is not ASCII is a plain 404 too, never a 500 (compare_digest takes only ASCII str).
    for token in ("é" * 40, "%C3%A9" * 20, "\u4e2d" * 40):
        odd = httpx.post(f"{api}/v1/providers/fal/webhooks/{job_id}/{token}", json={})
        assert odd.status_code == 404 and odd.json()["error"] == "NotFoundError", (token, odd.text)
