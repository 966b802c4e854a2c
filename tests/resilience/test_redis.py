"""Redis restarts under a steady load: nothing accepted is lost, the API says 503 (the JSON error
shape, never a stack trace) while Redis is down, and the API and the worker recover by themselves.

A private stack (tests/resilience/stack.py: redis-server with AOF `appendfsync everysec`, simulators,
the real API, one real Celery worker) takes a steady stream of image jobs from a load thread. The
test stops Redis with SIGTERM (it fsyncs the AOF and exits), keeps the load going against the dead
Redis for longer than the step lease, starts Redis again on the same port and directory, and keeps
the load going. Neither the API nor the worker is restarted. Then every job that was answered 202
must reach a terminal state, once submitted to the provider, charged at most once, nothing left
held or scheduled.

    python3 dev.py test tests/resilience/test_redis.py                       # one restart
    python3 dev.py test tests/resilience/test_redis.py -m resilience_long    # five restarts, 200+ jobs
"""

from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.resilience.stack import Figures, Stack, marker, measure, wait_terminal

pytestmark = pytest.mark.resilience

RESULTS = Path(os.environ.get("GENGATE_RESILIENCE_RESULTS", Path(__file__).parents[2] / ".gengate" / "resilience"))
ERROR_KEYS = {"error", "message", "statusCode"}


@dataclass
class Answer:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer at all
    body: object
    text: str = ""


@dataclass
class Load:
    """A thread posting one image job every `interval` seconds and keeping every answer."""

    stack: Stack
    key: str
    interval: float = 0.15
    answers: list[Answer] = field(default_factory=list)
    accepted: dict[str, str] = field(default_factory=dict)  # job id -> marker
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with self.stack.client(self.key, timeout=10) as c:
            while not self.stop.is_set():
                m = marker()
                t0 = time.monotonic()
                body: object = None
                text = ""
                try:
                    r = c.post("/image", json={"model": "flux-schnell", "prompt": f"redis {m}",
                                               "provider_options": {"sim": {"latency": round(random.uniform(0.1, 1.5), 2)}}})
                    status, text = r.status_code, r.text
                    try:
                        body = r.json()
                    except ValueError:
                        body = None
                except httpx.HTTPError as exc:
                    status, text = None, repr(exc)
                self.answers.append(Answer(t0, time.monotonic(), status, body, text))
                if status == 202 and isinstance(body, dict):
                    self.accepted[body["job_id"]] = m
                self.stop.wait(self.interval)


def _probe_down(stack: Stack, key: str, job_id: str) -> list[tuple[str, int, object]]:
    """While Redis is down: a read, a create and a cancel each answer 503 with the error shape."""
    seen = []
    with stack.client(key, timeout=10) as c:
        for method, path, body in (("GET", f"/jobs/{job_id}", None), ("GET", "/jobs", None),
                                   ("POST", "/image", {"model": "flux-schnell", "prompt": f"probe {marker()}"}),
                                   ("DELETE", f"/jobs/{job_id}", None), ("GET", "/balance", None)):
            r = c.request(method, path, json=body)
            seen.append((f"{method} {path}", r.status_code, r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text))
    r = httpx.get(f"{stack.api_url}/readyz", timeout=10)
    seen.append(("GET /readyz", r.status_code, r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text))
    return seen


def run_redis_scenario(root: Path, restarts: int, down_seconds: float, between_seconds: float) -> tuple[Figures, dict]:
    with Stack(root) as stack:
        account, key = stack.account()
        worker = stack.worker("w")
        worker.start()
        worker_pid, api_pid = worker.proc.pid, stack.api_proc.pid
        load = Load(stack, key)
        thread = threading.Thread(target=load.run, daemon=True)
        thread.start()
        windows: list[tuple[float, float]] = []  # (Redis gone, Redis back) per restart
        probes = []
        recovery = []  # seconds from Redis back to the next 202
        try:
            time.sleep(between_seconds)
            for _ in range(restarts):
                before = next(reversed(load.accepted), None)
                assert before is not None, f"no job accepted before the restart: {load.answers[-3:]}"
                # A job whose provider answers its submission 2 s late: Redis goes while the worker runs
                # an unacknowledged task and waits for more, the case that once killed the worker
                # (workers/transport.py).
                with stack.client(key) as c:
                    m = marker()
                    r = c.post("/image", json={"model": "flux-schnell", "prompt": f"redis hang {m}",
                                               "provider_options": {"sim": {"hang": 2}}})
                    assert r.status_code == 202, r.text
                    load.accepted[r.json()["job_id"]] = m
                time.sleep(0.5)
                stack.stop_redis()
                gone = time.monotonic()
                time.sleep(1.0)
                probes.append(_probe_down(stack, key, before))
                time.sleep(max(0.0, down_seconds - (time.monotonic() - gone)))
                back_at = time.monotonic()
                stack.start_redis()
                back = time.monotonic()
                windows.append((gone, back_at))
                deadline = back + 30
                while time.monotonic() < deadline and not any(a.started >= back and a.status == 202 for a in load.answers):
                    time.sleep(0.05)
                first_ok = [a.ended for a in load.answers if a.started >= back and a.status == 202]
                recovery.append(round(first_ok[0] - back, 2) if first_ok else None)
                time.sleep(between_seconds)
        finally:
            load.stop.set()
            thread.join(30)
        jobs = dict(load.accepted)
        done = wait_terminal(stack.redis(), list(jobs), timeout=120)
        ready = httpx.get(f"{stack.api_url}/readyz", timeout=10)  # Redis answers and the worker's heartbeat is seen
        figures = measure(stack, f"Redis restarted {restarts}× (SIGTERM, AOF everysec, {down_seconds:.0f} s down) "
                          f"under {1 / load.interval:.0f} jobs/s", account, jobs)
        during = [a for a in load.answers if any(g <= a.started and a.ended <= b for g, b in windows)]
        after = [a for a in load.answers if a.started >= windows[-1][1] + 5] if windows else []
        report = {
            "all_terminal": done,
            "requests": len(load.answers),
            "accepted": len(jobs),
            "answers_during_outage": sorted({str(a.status) for a in during}),
            "bad_answers_during_outage": [(a.status, a.text[:200]) for a in during
                                          if a.status != 503 or not isinstance(a.body, dict) or
                                          not ERROR_KEYS <= set(a.body) or a.body.get("statusCode") != 503][:5],
            "non_202_after_recovery": [(a.status, a.text[:200]) for a in after if a.status != 202][:5],
            "probes": probes,
            "recovery_seconds": recovery,
            "readyz_after": ready.status_code,
            "worker_same_process": worker.alive() and worker.proc.pid == worker_pid,
            "api_same_process": stack.api_proc.poll() is None and stack.api_proc.pid == api_pid,
        }
        figures.extra.update(report)
        return figures, report


def _record(figures: Figures, size: str) -> None:
    import json

    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"redis-{size}.jsonl", "a") as f:
        f.write(json.dumps({"size": size, **figures.__dict__, "terminal_pct": figures.terminal_pct,
                            "ok": figures.ok}, default=str) + "\n")


def _check(figures: Figures, report: dict) -> None:
    print(f"\n{figures.scenario}: {figures.__dict__}")
    for probe in report["probes"]:
        for what, status, body in probe:
            assert status == 503, (what, status, body)
            assert isinstance(body, dict) and body["error"] == "ServiceUnavailable" and body["statusCode"] == 503, \
                (what, body)
    assert not report["bad_answers_during_outage"], report["bad_answers_during_outage"]
    assert all(s is not None for s in report["recovery_seconds"]), "the API did not recover by itself"
    assert not report["non_202_after_recovery"], report["non_202_after_recovery"]
    assert report["worker_same_process"] and report["api_same_process"], "the API or the worker died"
    assert report["readyz_after"] == 200
    assert figures.terminal == figures.jobs, f"accepted jobs not terminal: {figures}"
    assert figures.duplicates == 0 and figures.double_charges == 0, figures
    assert figures.stuck == 0 and not figures.leaks, figures


def test_redis_restart_under_load(tmp_path: Path):
    figures, report = run_redis_scenario(tmp_path, restarts=1, down_seconds=6, between_seconds=6)
    _record(figures, "quick")
    _check(figures, report)


@pytest.mark.resilience_long
@pytest.mark.timeout(1200)
def test_redis_restarts_under_load_long(tmp_path: Path):
    figures, report = run_redis_scenario(tmp_path, restarts=5, down_seconds=8, between_seconds=10)
    _record(figures, "long")
    assert figures.jobs >= 200, figures.jobs
    _check(figures, report)
