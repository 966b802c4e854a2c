"""Polls of a provider that hangs do not hold back the sweeper (workers/sweeper.py `Slots`): a poll
still waiting after a second stops counting against GENGATE_WORKER_CONCURRENCY and lets another one
start, up to GENGATE_SWEEPER_THREADS in all.

A private stack (tests/resilience/stack.py) whose worker's sweeper may work on 2 jobs at once with 6
threads in all. Six Fal jobs whose every status call hangs past the 3 s timeout keep more hung polls
due than 2; the worker's gauges are sampled throughout: more than 2 sweeper threads must run at once
(the waiting ones handed their place on) and never more than 6. Meanwhile a Higgsfield job completes
while every Fal job is still processing, and the Fal jobs end as the retry budget says (failed,
naming Fal), with nothing left scheduled or running.

    python3 dev.py test tests/resilience/test_hung_polls.py
"""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gengate import procs
from gengate.jobs import keys
from tests.resilience.stack import Stack, job_states, marker, measure, wait_terminal

pytestmark = pytest.mark.resilience

WORKING, THREADS = 2, 6
HUNG_JOBS = 6


def sweeper_gauges(metrics_url: str) -> dict[str, float]:
    """`gengate_sweeper_running_jobs` and `..._waiting_jobs` from the worker's /metrics, by short name."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(metrics_url, timeout=5).text):
        for s in family.samples:
            if s.name in ("gengate_sweeper_running_jobs", "gengate_sweeper_waiting_jobs"):
                out[s.name.split("_")[2]] = s.value
    return out


def test_hung_polls_hand_their_place_to_other_jobs(tmp_path: Path) -> None:
    metrics_port = procs.free_port()
    with Stack(tmp_path / "stack", GENGATE_WORKER_CONCURRENCY=str(WORKING), GENGATE_SWEEPER_THREADS=str(THREADS),
               GENGATE_WORKER_METRICS_PORT=str(metrics_port)) as stack:
        stack.worker().start()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        account, key = stack.account()
        other_account, other_key = stack.account()  # its own ledger: `measure` checks one provider's jobs
        r = stack.redis()
        peak = {"running": 0.0, "waiting": 0.0}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                for name, value in sweeper_gauges(metrics_url).items():
                    peak[name] = max(peak[name], value)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with stack.client(key) as c:
            markers: dict[str, str] = {}  # job id -> the marker in its prompt
            for m in (marker() for _ in range(HUNG_JOBS)):
                markers[c.post("/image", json={"model": "flux-schnell", "prompt": f"hang {m}", "provider_options": {
                    "sim": {"status_fault": {"kind": "hang", "seconds": 6}}}}).json()["job_id"]] = m
            hung = list(markers)
            # Once the Fal jobs' first (inline) polls have timed out, their sweeper polls hang too.
            procs.wait_until(lambda: sweeper_gauges(metrics_url).get("running", 0) > WORKING, 20,
                             f"more than {WORKING} sweeper threads running")
            other_marker = marker()
            other = c.post("/image", headers={"Authorization": f"Bearer {other_key}"},
                           json={"model": "soul", "aspect_ratio": "16:9", "prompt": f"ok {other_marker}"})
            assert other.status_code == 202, other.text
            other_id = other.json()["job_id"]
            assert wait_terminal(r, [other_id], 20)
            states_then = job_states(r, hung)
            assert wait_terminal(r, hung, 90)
            done.set()
            sampler.join(10)

            assert job_states(r, [other_id])[other_id]["status"] == "completed"
            # Each Fal job needs four hung polls (>= 12 s) before it fails: still processing when the other ended.
            assert all(v["status"] == "processing" for v in states_then.values()), states_then
            assert WORKING < peak["running"] <= THREADS, peak
            assert peak["waiting"] > 0, peak
            for job_id in hung:
                job = c.get(f"/jobs/{job_id}").json()
                assert job["status"] == "failed" and job["error"].startswith("ProviderError (fal"), job
        procs.wait_until(lambda: sweeper_gauges(metrics_url).get("running") == 0, 10, "no sweeper thread running")
        assert not any(r.zscore(keys.SCHEDULE, j) is not None for j in [*hung, other_id])
        for figures in (measure(stack, "hung Fal polls", account, markers),
                        measure(stack, "Higgsfield beside them", other_account, {other_id: other_marker},
                                provider="higgsfield")):
            assert figures.ok, figures
        print(f"hung polls: {HUNG_JOBS} Fal + 1 Higgsfield, sweeper {WORKING} working / {THREADS} threads: "
              f"peak {peak['running']:.0f} running, {peak['waiting']:.0f} waiting")
