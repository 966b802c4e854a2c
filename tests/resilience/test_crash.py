"""Crash matrix: SIGKILL the worker at each step of the pipeline, many times, and prove the gateway
still ends every job, never submits one twice, never charges one twice and leaves nothing stuck.

Each scenario runs a private stack (tests/resilience/stack.py: Redis with AOF, simulators, the real
API, a real Celery worker) whose worker carries `GENGATE_CRASH_AT=<point>:#<n>` (tasks/crashpoints.py),
so it kills itself with SIGKILL the n-th time it reaches that point of a job's pipeline (n random),
taking every other job in flight down with it. A supervisor loop restarts it each time it died,
until it has been killed `kills` times; then a worker without crash points finishes the work. The
jobs are Fal image jobs with a unique marker in the prompt and a random provider latency, so the
simulator's record shows how often each job was submitted.

Expected outcome per point: every job terminal, 0 duplicate submissions, 0 double captures, no
leftover hold, concurrency slot or schedule entry, and an output file for every completed job.
Jobs whose worker died between sending the submission and saving the provider's handle fail (the
design's choice: an unknown outcome fails the job rather than risk a second, billed run), at the
point `submit.after_accept` and as collateral of a kill elsewhere; all others complete.

    python3 dev.py test tests/resilience/test_crash.py                       # quick: 20 jobs a point
    python3 dev.py test tests/resilience/test_crash.py -m resilience_long    # 200 jobs a point
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.resilience.stack import Figures, Stack, marker, measure, wait_terminal

pytestmark = pytest.mark.resilience

# point, what the job was doing, whether the jobs are all queued before the first worker starts
MATRIX = [
    ("submit.start", "after enqueue (queued before any worker runs; killed as it takes the message)", True),
    ("submit.before_send", "submit, before the provider call", False),
    ("submit.after_accept", "submit, provider accepted, handle not saved", False),
    ("submit.after_handle", "submit, handle saved, not yet polled", False),
    ("poll.before", "poll, before the provider call", False),
    ("poll.after_result", "poll, result recorded, finalize not started", False),
    ("finalize.during_download", "finalize, during the copy into storage", False),
    ("finalize.before_complete", "finalize, stored, not yet completed", False),
]
QUICK = {"jobs": int(os.environ.get("GENGATE_RESILIENCE_JOBS", "20")), "kills": 3}
LONG = {"jobs": int(os.environ.get("GENGATE_RESILIENCE_LONG_JOBS", "200")), "kills": 15}

# Each scenario's figures, as JSON lines, for RESILIENCE.md (.gengate/ is git-ignored).
RESULTS = Path(os.environ.get("GENGATE_RESILIENCE_RESULTS", Path(__file__).parents[2] / ".gengate" / "resilience"))


def _post_jobs(stack: Stack, key: str, n: int) -> dict[str, str]:
    """`n` image jobs with a unique marker each and 0.1–1.0 s of provider latency; all must get 202."""
    jobs: dict[str, str] = {}
    with stack.client(key) as c:
        for _ in range(n):
            m = marker()
            r = c.post("/image", json={"model": "flux-schnell", "prompt": f"crash {m}",
                                       "provider_options": {"sim": {"latency": round(random.uniform(0.1, 1.0), 2)}}})
            assert r.status_code == 202, r.text
            jobs[r.json()["job_id"]] = m
    return jobs


def run_crash_scenario(root: Path, point: str, label: str, queued_first: bool, n_jobs: int, max_kills: int,
                       timeout: float) -> Figures:
    with Stack(root) as stack:
        account, key = stack.account()
        worker = stack.worker("crash")
        # Each worker process dies the n-th time it reaches the point, n random up to `spread`: the
        # kills fall across the whole run, and the first one surely comes.
        spread = max(4, 2 * n_jobs // max_kills)

        def crash_at() -> str:
            return f"{point}:#{random.randint(1, spread)}" if worker.crash_kills < max_kills else ""

        if not queued_first:
            worker.start(crash_at())
        t0 = time.monotonic()
        jobs = _post_jobs(stack, key, n_jobs)
        if queued_first:
            worker.start(crash_at())

        def supervise() -> None:
            # A worker that died is restarted: with its crash point until it has died `max_kills`
            # times, then clean (the "final worker").
            if not worker.alive():
                worker.reap()
                worker.start(crash_at())

        done = wait_terminal(stack.redis(), list(jobs), timeout, supervise)
        elapsed = time.monotonic() - t0
        figures = measure(stack, f"SIGKILL at `{point}`: {label}", account, jobs, kills=worker.crash_kills)
        figures.extra.update(point=point, spread=spread, elapsed=round(elapsed, 1), all_terminal=done,
                             worker_starts=worker.starts)
        return figures


def _record(figures: Figures, size: str) -> None:
    """Keep each scenario's figures (JSON lines) for RESILIENCE.md."""
    import json

    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"crash-{size}.jsonl", "a") as f:
        f.write(json.dumps({"size": size, **figures.__dict__, "terminal_pct": figures.terminal_pct,
                            "ok": figures.ok}) + "\n")


def _check(figures: Figures, point: str) -> None:
    print(f"\n{figures.scenario}: {figures.__dict__}")
    assert figures.kills >= 1, f"the crash point {point} never fired: {figures}"
    assert figures.terminal == figures.jobs, f"jobs not terminal: {figures}"
    assert figures.duplicates == 0, f"duplicate submissions: {figures}"
    assert figures.double_charges == 0, f"double charges: {figures}"
    assert figures.stuck == 0 and not figures.leaks, f"leaks: {figures}"
    assert figures.extra["submissions"] <= figures.jobs
    # Only an unknown submission outcome may fail a job: the worker died between sending a submission
    # and saving its handle (at this point, or another job in flight at that moment died with it).
    assert set(figures.extra["errors"]) <= {"submission_interrupted"}, f"jobs failed otherwise: {figures}"
    assert figures.outcomes.get("completed", 0) + figures.extra["errors"].get("submission_interrupted", 0) \
        == figures.jobs


@pytest.mark.parametrize(("point", "label", "queued_first"), MATRIX, ids=[m[0] for m in MATRIX])
def test_crash_point(tmp_path: Path, point: str, label: str, queued_first: bool):
    figures = run_crash_scenario(tmp_path, point, label, queued_first, QUICK["jobs"], QUICK["kills"], timeout=120)
    _record(figures, "quick")
    _check(figures, point)


@pytest.mark.resilience_long
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(("point", "label", "queued_first"), MATRIX, ids=[m[0] for m in MATRIX])
def test_crash_point_long(tmp_path: Path, point: str, label: str, queued_first: bool):
    figures = run_crash_scenario(tmp_path, point, label, queued_first, LONG["jobs"], LONG["kills"], timeout=900)
    _record(figures, "long")
    _check(figures, point)


def test_crash_points_fire_only_as_configured():
    """The hook itself: silent without the setting, SIGKILL on the n-th reach, unknown points refused."""
    import signal
    import subprocess
    import sys

    code = ("from tasks.crashpoints import crashpoint\n"
            "for i in range(3):\n"
            "    crashpoint('poll.before'); crashpoint('submit.start'); print(i, flush=True)\n")

    def run(spec: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, GENGATE_CRASH_AT=spec)
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)

    assert run("").stdout.split() == ["0", "1", "2"]
    killed = run("poll.before:#2")
    assert killed.returncode == -signal.SIGKILL and killed.stdout.split() == ["0"]
    assert run("submit.start:0").stdout.split() == ["0", "1", "2"]
    assert run("*:1").returncode == -signal.SIGKILL
    assert "unknown crash point" in run("nowhere:1").stderr
