"""Prometheus metrics and the health probes, against the real API, worker and Redis: job counters
(counted in Redis, exact across processes), cache results, HTTP requests by route template, queue
gauges, the worker's own endpoint (provider latency), `/readyz` with and without Redis and workers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from gengate import procs
from gengate.config.catalog import PROVIDERS
from gengate.jobs import heartbeat, keys
from gengate.jobs.errors import UnavailableError
from tests.conftest import wait_for, wait_until
from gengate.tasks.queues import ALL_QUEUES

Samples = dict[tuple[str, frozenset], float]


def scrape(url: str) -> Samples:
    r = httpx.get(url, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


FLUX = {"provider": "fal", "model": "fal:flux-schnell"}


def _flux(client: httpx.Client, prompt: str, **extra) -> httpx.Response:
    r = client.post("/image", json={"model": "flux-schnell", "prompt": prompt, **extra})
    assert r.status_code == 202, r.text
    return r


def test_metrics_count_a_job_its_cache_hit_and_its_requests(client: httpx.Client, api_url: str):
    metrics = f"{api_url}/metrics"
    route = {"method": "POST", "route": "/v1/image", "status": "202"}
    before = scrape(metrics)
    prompt = f"metrics {uuid.uuid4().hex}"
    job = wait_for(client, _flux(client, prompt).json()["job_id"])
    assert job["status"] == "completed", job
    after = scrape(metrics)
    assert value(after, "gengate_jobs_created_total", **FLUX) == value(before, "gengate_jobs_created_total", **FLUX) + 1
    assert value(after, "gengate_jobs_completed_total", **FLUX) == value(before, "gengate_jobs_completed_total", **FLUX) + 1
    assert value(after, "gengate_jobs_failed_total", **FLUX) == value(before, "gengate_jobs_failed_total", **FLUX)
    miss = {"result": "miss", **FLUX}
    assert value(after, "gengate_cache_results_total", **miss) == value(before, "gengate_cache_results_total", **miss) + 1
    assert value(after, "gengate_http_requests_total", **route) == value(before, "gengate_http_requests_total", **route) + 1
    assert value(after, "gengate_http_request_duration_seconds_count", method="POST", route="/v1/image") >= 1

    # The same request again: answered from the cache, born completed.
    again = _flux(client, prompt)
    assert again.headers["X-Cache"] == "HIT" and again.json()["status"] == "completed"
    hit = {"result": "hit", **FLUX}
    third = scrape(metrics)
    assert value(third, "gengate_cache_results_total", **hit) == value(after, "gengate_cache_results_total", **hit) + 1
    assert value(third, "gengate_jobs_created_total", **FLUX) == value(after, "gengate_jobs_created_total", **FLUX) + 1
    assert value(third, "gengate_jobs_completed_total", **FLUX) == value(after, "gengate_jobs_completed_total", **FLUX) + 1
    assert 0 < value(third, "gengate_cache_hit_ratio") <= 1
    assert value(third, "gengate_http_requests_total", **route) == value(after, "gengate_http_requests_total", **route) + 1


def test_failed_and_cancelled_jobs_are_counted(client: httpx.Client, api_url: str):
    metrics = f"{api_url}/metrics"
    before = scrape(metrics)
    failing = _flux(client, f"fail {uuid.uuid4().hex}", provider_options={"sim": {"fail": "boom"}}).json()["job_id"]
    assert wait_for(client, failing)["status"] == "failed"
    slow = _flux(client, f"slow {uuid.uuid4().hex}", provider_options={"sim": {"latency": 10}}).json()["job_id"]
    assert client.delete(f"/jobs/{slow}").status_code == 204
    after = scrape(metrics)
    for name in ("gengate_jobs_failed_total", "gengate_jobs_cancelled_total"):
        assert value(after, name, **FLUX) == value(before, name, **FLUX) + 1, name
    assert value(after, "gengate_jobs_created_total", **FLUX) == value(before, "gengate_jobs_created_total", **FLUX) + 2
    assert value(after, "gengate_jobs_completed_total", **FLUX) == value(before, "gengate_jobs_completed_total", **FLUX)


def test_routes_are_labelled_by_template_never_by_raw_path(client: httpx.Client, api_url: str):
    job_id = _flux(client, f"route {uuid.uuid4().hex}").json()["job_id"]
    assert client.get(f"/jobs/{job_id}").status_code == 200
    unknown = f"/nothing-here-{uuid.uuid4().hex}"
    assert httpx.get(f"{api_url}{unknown}").status_code == 404
    text = httpx.get(f"{api_url}/metrics").text
    samples = scrape(f"{api_url}/metrics")
    assert value(samples, "gengate_http_requests_total", method="GET", route="/v1/jobs/{job_id}", status="200") >= 1
    assert value(samples, "gengate_http_requests_total", method="GET", route="<unmatched>", status="404") >= 1
    assert job_id not in text and unknown not in text


def test_gateway_gauges_are_present(client: httpx.Client, api_url: str):
    samples = scrape(f"{api_url}/metrics")
    assert value(samples, "gengate_redis_up") == 1
    for queue in ALL_QUEUES:
        assert ("gengate_queue_depth", frozenset({"queue": queue}.items())) in samples
    assert {"gengate_queue_unacked", "gengate_jobs_scheduled", "gengate_webhooks_pending",
            "gengate_cache_hit_ratio"} <= names(samples)
    assert value(samples, "gengate_workers_alive") >= 1
    assert "process_cpu_seconds_total" in names(samples)  # the API process's own


def test_readyz_and_healthz(client: httpx.Client, api_url: str):
    assert httpx.get(f"{api_url}/healthz").json() == {"status": "ok"}
    r = httpx.get(f"{api_url}/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready" and body["redis"] == "ok" and body["workers"] >= 1


def test_worker_metrics_time_provider_calls(client: httpx.Client, env: dict[str, str]):
    url = f"http://127.0.0.1:{env['GENGATE_WORKER_METRICS_PORT']}/metrics"
    submit = {"provider": "fal", "call": "submit", "outcome": "ok"}
    step = {"task": "gengate.submit", "state": "success"}
    before = wait_until(lambda: _try_scrape(url), 15, "the worker's metrics endpoint")
    job = wait_for(client, _flux(client, f"worker {uuid.uuid4().hex}").json()["job_id"])
    assert job["status"] == "completed", job
    after = wait_until(
        lambda: (s := _try_scrape(url)) and value(s, "gengate_worker_steps_total", **step)
        > value(before, "gengate_worker_steps_total", **step) and s, 10, "the submit step's count")
    count = "gengate_provider_request_duration_seconds_count"
    assert value(after, count, **submit) >= value(before, count, **submit) + 1
    assert value(after, "gengate_provider_request_duration_seconds_sum", **submit) > 0
    assert value(after, "gengate_provider_request_duration_seconds_bucket", le="+Inf", **submit) == value(
        after, count, **submit)
    assert any(name == count and dict(labels).get("call") == "poll" for name, labels in after)
    assert {"gengate_sweeper_claimed_jobs_total", "gengate_worker_step_duration_seconds_count"} <= names(after)


def _try_scrape(url: str) -> Samples | None:
    try:
        return scrape(url)
    except (httpx.HTTPError, AssertionError):
        return None


@pytest.fixture
def other_api(env: dict[str, str], tmp_path: Path) -> Iterator:
    """Start a second API process on a Redis URL of the test's choice (never the session's DB)."""
    started = []

    def start(redis_url: str) -> str:
        port = procs.free_port()
        e = dict(env, GENGATE_REDIS_URL=redis_url, GENGATE_API_PORT=str(port))
        proc = procs.start(procs.api_command("127.0.0.1", port), e, tmp_path / f"api-{port}.log")
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{base}/healthz", 30, proc)
        return base

    yield start
    for proc in started:
        procs.stop(proc)


def test_readyz_is_503_when_redis_is_down(other_api):
    base = other_api(f"redis://127.0.0.1:{procs.free_port()}/0")  # nothing listens there
    r = httpx.get(f"{base}/readyz", timeout=10)
    assert r.status_code == 503
    body = r.json()
    assert body["error"] == UnavailableError.code and body["statusCode"] == 503 and "Redis" in body["message"]
    assert httpx.get(f"{base}/healthz").status_code == 200  # liveness never asks Redis
    samples = scrape(f"{base}/metrics")  # a scrape still answers, saying Redis is down
    assert value(samples, "gengate_redis_up") == 0


def test_readyz_is_503_without_a_live_worker(other_api, redis_url: str):
    db = 7  # a database of the session's Redis that nothing else uses: no worker stamps there
    other = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{db}")
    other.flushdb()
    try:
        base = other_api(redis_url.rsplit("/", 1)[0] + f"/{db}")
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and "worker" in r.json()["message"], r.text
        heartbeat.beat(other, "fake@host")
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 200 and r.json() == {"status": "ready", "redis": "ok", "workers": 1,
                                                     "providers": dict.fromkeys(PROVIDERS, "closed")}
        # A stamp older than the window does not count.
        other.zadd(keys.WORKERS, {"fake@host": 1.0})
        assert httpx.get(f"{base}/readyz").status_code == 503
    finally:
        other.flushdb()
