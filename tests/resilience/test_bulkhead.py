"""One provider that hangs holds at most its share of the sweeper's threads (workers/sweeper.py
`Bulkhead`): its further due jobs are put back, and another provider's job still moves on.

A private stack (tests/resilience/stack.py) with a worker whose sweeper has 4 threads and a share of
0.5, so Fal may hold 2. Six Fal jobs whose every status call hangs past the 3 s timeout keep more
Fal polls due than that; the worker's own gauge `gengate_sweeper_busy_threads{provider="fal"}` is
sampled throughout: it must reach the cap and never pass it. Meanwhile a Higgsfield job completes
while every Fal job is still processing, and the Fal jobs end as the retry budget says (failed,
naming Fal), with nothing left scheduled or busy.

    python3 dev.py test tests/resilience/test_bulkhead.py
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gengate import procs
from jobs import keys
from tests.resilience.stack import Stack, job_states, marker, wait_terminal

pytestmark = pytest.mark.resilience

THREADS, SHARE = 4, 0.5
CAP = 2  # ceil(THREADS * SHARE)
HUNG_JOBS = 6


def sweeper_figures(metrics_url: str) -> tuple[dict[str, float], dict[str, float]]:
    """(busy threads per provider, deferred jobs per provider) from the worker's /metrics."""
    busy: dict[str, float] = {}
    deferred: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text):
        for s in family.samples:
            if s.name == "gengate_sweeper_busy_threads":
                busy[s.labels["provider"]] = s.value
            elif s.name == "gengate_sweeper_deferred_jobs_total":
                deferred[s.labels["provider"]] = s.value
    return busy, deferred


def test_a_hanging_provider_holds_only_its_share_of_the_sweeper(tmp_path: Path) -> None:
    metrics_port = procs.free_port()
    with Stack(tmp_path / "stack", GENGATE_SWEEPER_THREADS=str(THREADS), GENGATE_SWEEPER_PROVIDER_SHARE=str(SHARE),
               GENGATE_WORKER_METRICS_PORT=str(metrics_port)) as stack:
        stack.worker().start()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        _, key = stack.account()
        r = stack.redis()
        peak: dict[str, float] = {}
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.05):
                busy, _ = sweeper_figures(metrics_url)
                for provider, value in busy.items():
                    peak[provider] = max(peak.get(provider, 0.0), value)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with stack.client(key) as c:
            hung = [c.post("/image", json={"model": "flux-schnell", "prompt": f"hang {marker()}", "provider_options": {
                "sim": {"status_fault": {"kind": "hang", "seconds": 6}}}}).json()["job_id"] for _ in range(HUNG_JOBS)]
            # Once the Fal jobs' first (inline) polls have timed out, their sweeper polls fill Fal's share.
            procs.wait_until(lambda: sweeper_figures(metrics_url)[0].get("fal", 0) >= CAP, 20,
                             f"{CAP} sweeper threads on Fal")
            other = c.post("/image", json={"model": "soul", "aspect_ratio": "16:9", "prompt": f"ok {marker()}"})
            assert other.status_code == 202, other.text
            other_id = other.json()["job_id"]
            assert wait_terminal(r, [other_id], 20)
            states_then = job_states(r, hung)
            assert wait_terminal(r, hung, 90)
        sampling.set()
        sampler.join(10)

        assert job_states(r, [other_id])[other_id]["status"] == "completed"
        # Each Fal job needs four hung polls (>= 12 s) before it fails: still processing when the other ended.
        assert all(v["status"] == "processing" for v in states_then.values()), states_then
        assert peak.get("fal") == CAP, peak  # reached the cap and never went past it
        busy, deferred = sweeper_figures(metrics_url)
        assert deferred.get("fal", 0) > 0, deferred
        assert busy.get("fal") == 0, busy
        with stack.client(key) as c:
            for job_id in hung:
                job = c.get(f"/jobs/{job_id}").json()
                assert job["status"] == "failed" and job["error"].startswith("ProviderError (fal"), job
        assert not any(r.zscore(keys.SCHEDULE, j) is not None for j in [*hung, other_id])

