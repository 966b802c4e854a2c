"""The provider fault matrix (issue 8, part 2): every fault the simulators can inject, on every provider
it applies to, through the whole pipeline (API -> worker -> adapter/SDK -> simulator).

Each scenario submits `JOBS` jobs per provider, in four waves of scenarios run at once (create-call
faults transient then persistent, poll faults transient then persistent: one wave at a time keeps the
load within the one test worker's threads, so the bound measures the fault handling, not a queue
behind other scenarios' hanging calls), and every job must end within a
bound derived from the test settings: retried-then-`completed` for a transient fault (fewer failures
than the retry budget), `failed` with an error starting `ProviderError (<provider>` for a persistent
one. A scenario also counts duplicates (a provider run accepted twice for one job), double charges (a
second capture, or a capture of a job that did not complete) and leaks (holds, concurrency slots,
schedule entries left behind). After the matrix, no worker thread may still be held: no step and no
provider call took longer than the bound (the worker's own Prometheus histograms), and a fresh job
per provider completes promptly.

The sessions' fixtures are used (tests/conftest.py: one API, one worker with 8 task threads and its
sweeper, one simulator); faults are steered per job by `provider_options.sim` knobs (sim/control.py).
`-m resilience_long` runs the same matrix with more jobs per cell.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from gengate.jobs import accounts, keys
from gengate.jobs.apikeys import create_account, create_key
from tests.conftest import TERMINAL

pytestmark = pytest.mark.resilience

JOBS = 5  # jobs per (scenario, provider) in the default run
JOBS_LONG = 20  # ... and under -m resilience_long

# One model per provider, with the field that carries each job's unique marker (as tests/test_providers.py).
CONTRACT: dict[str, tuple[str, dict[str, Any], str]] = {
    "fal": ("/image", {"model": "flux-schnell"}, "prompt"),
    # the remover takes no prompt: its marker rides in the simulator's knob object
    "replicate": ("/image", {"model": "background-remover", "prompt": "", "files": [{"url": "{files}/cat.png"}]}, ""),
    "elevenlabs": ("/speech", {"model": "eleven_v3", "voice": "adam"}, "text"),
    "higgsfield": ("/image", {"model": "soul", "aspect_ratio": "16:9"}, "prompt"),
    "piapi": ("/video", {"model": "seedance-2-fast-preview", "duration": 5}, "prompt"),
}
ALL = tuple(CONTRACT)
POLLED = ("fal", "replicate", "higgsfield", "piapi")  # ElevenLabs answers the create call with the audio
JSON_SUBMIT = POLLED  # ... so a "malformed JSON" create answer only exists for the others


@dataclass(frozen=True)
class Fault:
    name: str
    knobs: dict[str, Any]
    expect: str  # "completed" (transient: retried, then done) or "failed" (persistent)
    providers: tuple[str, ...] = ALL

    @property
    def wave(self) -> int:
        on_submit = self.name.startswith("submit")
        return (0 if on_submit else 2) + (0 if self.expect == "completed" else 1)


def _twice(kind: str, **extra: Any) -> dict[str, Any]:
    return {"status_fault": {"kind": kind, "times": 2, **extra}}


FAULTS: list[Fault] = [
    # The create call. Transient: one refusal, then accepted (a 429/5xx proves nothing was accepted).
    Fault("submit 500 once", {"submit_status": 500, "submit_status_times": 1}, "completed"),
    Fault("submit 502 once", {"submit_status": 502, "submit_status_times": 1}, "completed"),
    Fault("submit 503 once", {"submit_status": 503, "submit_status_times": 1}, "completed"),
    Fault("submit 429 + Retry-After once", {"submit_status": 429, "submit_status_times": 1, "retry_after": 1},
          "completed"),
    Fault("submit 429 no Retry-After once", {"submit_status": 429, "submit_status_times": 1}, "completed"),
    # Persistent refusals: retried within the submit deadline, then failed.
    Fault("submit 500 always", {"submit_status": 500}, "failed"),
    Fault("submit 502 always", {"submit_status": 502}, "failed"),
    Fault("submit 503 always", {"submit_status": 503}, "failed"),
    Fault("submit 429 + Retry-After always", {"submit_status": 429, "retry_after": 1}, "failed"),
    Fault("submit 429 no Retry-After always", {"submit_status": 429}, "failed"),
    # No answer, or no usable one: the provider may have taken the job, so it is never re-sent.
    Fault("submit connection reset", {"submit_fault": {"kind": "reset"}}, "failed"),
    Fault("submit read timeout (hang)", {"hang": 6}, "failed"),
    Fault("submit malformed JSON", {"submit_fault": {"kind": "malformed"}}, "failed", JSON_SUBMIT),
    # The status (poll) call. Transient: two faults (the retry budget is 3), then a good answer.
    Fault("poll 500 twice", {"status_error": {"status": 500, "times": 2}}, "completed", POLLED),
    Fault("poll 502 twice", {"status_error": {"status": 502, "times": 2}}, "completed", POLLED),
    Fault("poll 503 twice", {"status_error": {"status": 503, "times": 2}}, "completed", POLLED),
    Fault("poll 429 + Retry-After twice", {"status_error": {"status": 429, "times": 2, "retry_after": 1}},
          "completed", POLLED),
    Fault("poll 429 no Retry-After twice", {"status_error": {"status": 429, "times": 2}}, "completed", POLLED),
    Fault("poll connection reset twice", _twice("reset"), "completed", POLLED),
    Fault("poll read timeout once", {"status_fault": {"kind": "hang", "seconds": 5, "times": 1}}, "completed",
          POLLED),
    Fault("poll malformed JSON twice", _twice("malformed"), "completed", POLLED),
    Fault("poll unknown status twice", _twice("unknown_status"), "completed", POLLED),
    Fault("fal result malformed JSON once", {"result_fault": {"kind": "malformed", "times": 1}}, "completed",
          ("fal",)),
    Fault("output URL 404 twice", {"output_status": {"status": 404, "times": 2}}, "completed", POLLED),
    # Persistent poll faults: the retry budget runs out, the job fails.
    Fault("poll 500 always", {"status_error": {"status": 500, "times": 1000}}, "failed", POLLED),
    Fault("poll 502 always", {"status_error": {"status": 502, "times": 1000}}, "failed", POLLED),
    Fault("poll 503 always", {"status_error": {"status": 503, "times": 1000}}, "failed", POLLED),
    Fault("poll 429 + Retry-After always", {"status_error": {"status": 429, "times": 1000, "retry_after": 1}},
          "failed", POLLED),
    Fault("poll connection reset always", {"status_fault": {"kind": "reset"}}, "failed", POLLED),
    Fault("poll read timeout always (hang)", {"status_fault": {"kind": "hang", "seconds": 6}}, "failed", POLLED),
    Fault("poll malformed JSON always", {"status_fault": {"kind": "malformed"}}, "failed", POLLED),
    Fault("poll unknown status always", {"status_fault": {"kind": "unknown_status"}}, "failed", POLLED),
    Fault("output URL 404 always", {"output_status": {"status": 404}}, "failed", POLLED),
]


def bound_seconds(env: dict[str, str]) -> float:
    """How long one job may take from the start of its processing to its end, from the test settings:
    every try of the retry budget (a provider call of at most its timeout, then a delay of at most the
    retry cap), plus one step lease for a re-driven step, plus 5 s of scheduling slack."""
    timeout = max(float(env[f"GENGATE_{p.upper()}__TIMEOUT"]) for p in CONTRACT)
    tries = int(env["GENGATE_PROVIDER_RETRIES"]) + 1
    return tries * (timeout + float(env["GENGATE_RETRY_MAX_SECONDS"])) + float(env["GENGATE_STEP_LEASE_SECONDS"]) + 5


@dataclass
class Row:
    """One scenario's figures (a row of RESILIENCE.md)."""

    fault: Fault
    jobs: int = 0
    terminal: int = 0
    outcomes: Counter = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)  # jobs that did not end as expected, with why
    duplicates: int = 0
    double_charges: int = 0
    leaks: list[str] = field(default_factory=list)
    slowest: float = 0.0

    @property
    def ok(self) -> bool:
        return (self.terminal == self.jobs and not self.wrong and not self.duplicates and not self.double_charges
                and not self.leaks)

    def line(self) -> str:
        pct = 100.0 * self.terminal / max(self.jobs, 1)
        outcome = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (f"| fault: {self.fault.name} ({'/'.join(self.fault.providers)}) | {self.jobs} | {pct:.0f}% | "
                f"{self.duplicates} | {self.double_charges} | {len(self.leaks)} | {'pass' if self.ok else 'FAIL'}: "
                f"{outcome}, slowest {self.slowest:.1f} s |")


def _account(rds: redis.Redis) -> tuple[str, str]:
    account = create_account(rds, email="faults@example.com")
    return account, create_key(rds, account)


def _body(provider: str, marker: str, knobs: dict[str, Any], files_url: str) -> tuple[str, dict[str, Any]]:
    path, body, marker_field = CONTRACT[provider]
    body = {**body, "provider_options": {"sim": {**knobs, "marker": marker}}}
    if marker_field:
        body[marker_field] = f"fault {marker}"
    if "files" in body:
        body["files"] = [{"url": f["url"].replace("{files}", files_url)} for f in body["files"]]
    return path, body


def _processing_seconds(rds: redis.Redis, job_id: str) -> float:
    """From the job's `processing` event to its terminal one (event ids are Redis stream ids: ms)."""
    start = end = None
    for entry_id, fields in rds.xrange(keys.job_events(job_id)):
        ms = int(entry_id.split(b"-")[0])
        status = fields[b"status"].decode()
        if status == "processing" and start is None:
            start = ms
        if status in TERMINAL:
            end = ms
    if end is None:
        return float("inf")
    return (end - (start if start is not None else end)) / 1000


def _accepted_per_marker(sim_url: str, provider: str, markers: set[str]) -> Counter:
    reqs = httpx.get(f"{sim_url}/{provider}/_sim/requests", timeout=30).json()["requests"]
    found: Counter = Counter()
    for r in reqs:
        text = str(r.get("input"))
        for m in markers:
            if m in text:
                found[m] += 1
                break
    return found


def worker_histograms(env: dict[str, str]) -> dict[tuple[str, tuple], float]:
    """The worker's step and provider-call duration buckets: (sample name, labels) -> count."""
    text = httpx.get(f"http://127.0.0.1:{env['GENGATE_WORKER_METRICS_PORT']}/metrics", timeout=10).text
    wanted = ("gengate_worker_step_duration_seconds", "gengate_provider_request_duration_seconds")
    out: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name in wanted:
            for s in family.samples:
                if s.name.endswith("_bucket") or s.name.endswith("_count"):
                    out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def slower_than(before: dict, after: dict, name: str, le: float) -> dict[str, float]:
    """Per label set of histogram `name`, how many observations since `before` exceeded `le` seconds."""
    over: dict[str, float] = {}
    for (sample, labels), total in after.items():
        if sample != f"{name}_count":
            continue
        plain = tuple(kv for kv in labels)
        within_key = (f"{name}_bucket", tuple(sorted(plain + (("le", _le(le)),))))
        within = after.get(within_key, 0.0) - before.get(within_key, 0.0)
        count = total - before.get((sample, labels), 0.0)
        if count - within > 0:
            over[",".join(f"{k}={v}" for k, v in labels)] = count - within
    return over


def _le(value: float) -> str:
    return str(float(value))


def run_matrix(*, rds: redis.Redis, api_url: str, sim_url: str, files_url: str, env: dict[str, str],
               jobs_per_cell: int, job_ids_out: list[str] | None = None) -> dict[str, Row]:
    """Submit every scenario's jobs at once, wait for all of them, and measure each scenario."""
    bound = bound_seconds(env)
    plan: list[tuple[Fault, str, str, str]] = []  # (fault, provider, marker, key)
    accounts_of: dict[str, tuple[str, str]] = {}
    for fault in FAULTS:
        accounts_of[fault.name] = _account(rds)  # one account per scenario: its ledger is its own
        for provider in fault.providers:
            for _ in range(jobs_per_cell):
                plan.append((fault, provider, uuid.uuid4().hex, accounts_of[fault.name][1]))

    def post(item: tuple[Fault, str, str, str]) -> tuple[Fault, str, str, str | None, str]:
        fault, provider, marker, key = item
        path, body = _body(provider, marker, fault.knobs, files_url)
        with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            r = c.post(path, json=body)
        return fault, provider, marker, (r.json()["job_id"] if r.status_code == 202 else None), r.text[:200]

    created: list[tuple[Fault, str, str, str | None, str]] = []
    for wave in sorted({f.wave for f in FAULTS}):
        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            batch = list(pool.map(post, [item for item in plan if item[0].wave == wave]))
        t1 = time.monotonic()
        created += batch
        job_ids = [j for _, _, _, j, _ in batch if j]
        deadline = time.monotonic() + 3 * bound  # generous: a late job is reported by its own duration
        while time.monotonic() < deadline:
            pipe = rds.pipeline(transaction=False)
            for j in job_ids:
                pipe.hget(keys.job(j), "status")
            if all((s or b"").decode().strip('"') in TERMINAL for s in pipe.execute()):
                break
            time.sleep(0.25)
        print(f"wave {wave}: {len(batch)} jobs created in {t1 - t0:.1f} s, all ended after {time.monotonic() - t1:.1f} s")

    if job_ids_out is not None:
        job_ids_out.extend(j for _, _, _, j, _ in created if j)
    rows: dict[str, Row] = {f.name: Row(f) for f in FAULTS}
    markers_by_provider: dict[str, set[str]] = {}
    for fault, provider, marker, job_id, _ in created:
        markers_by_provider.setdefault(provider, set()).add(marker)
    accepted = {p: _accepted_per_marker(sim_url, p, ms) for p, ms in markers_by_provider.items()}
    with httpx.Client(base_url=f"{api_url}/v1", timeout=30) as api:
        for fault, provider, marker, job_id, answer in created:
            row = rows[fault.name]
            row.jobs += 1
            if job_id is None:
                row.wrong.append(f"{provider}: not accepted: {answer}")
                continue
            key = accounts_of[fault.name][1]
            job = api.get(f"/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}).json()
            status = job["status"]
            row.outcomes[status] += 1
            if status in TERMINAL:
                row.terminal += 1
            seconds = _processing_seconds(rds, job_id)
            row.slowest = max(row.slowest, seconds)
            if status != fault.expect:
                row.wrong.append(f"{provider} {job_id}: {status} ({job.get('error')})")
            elif status == "failed" and not str(job.get("error")).startswith(f"ProviderError ({provider}"):
                row.wrong.append(f"{provider} {job_id}: error does not name the provider: {job.get('error')}")
            if seconds > bound:
                row.wrong.append(f"{provider} {job_id}: took {seconds:.1f} s > bound {bound:.0f} s")
            if accepted[provider][marker] > 1:
                row.duplicates += 1
            if rds.zscore(keys.SCHEDULE, job_id) is not None and status in TERMINAL:
                row.leaks.append(f"{job_id} still scheduled")
            if rds.exists(keys.job_key(job_id)):
                row.leaks.append(f"{job_id} still has a sealed key")
    for name, (account, _) in accounts_of.items():
        row = rows[name]
        completed = {j for (f, _, _, j, _) in created if f.name == name and j}
        completed = {j for j in completed if (rds.hget(keys.job(j), "status") or b"").decode().strip('"') == "completed"}
        captures = Counter(e[b"job"].decode() for _, e in rds.xrange(keys.account_ledger(account))
                           if e[b"kind"] == b"capture")
        row.double_charges += sum(1 for n in captures.values() if n > 1) + len(set(captures) - completed)
        if int(rds.hget(keys.account(account), "balance_cents") or 0) != accounts.ledger_sum(rds, account):
            row.double_charges += 1
        holds = int(rds.hget(keys.account(account), "holds_cents") or 0)
        if holds:
            row.leaks.append(f"holds_cents={holds}")
        if rds.zcard(keys.account_active(account)):
            row.leaks.append(f"{rds.zcard(keys.account_active(account))} concurrency slots held")
    return rows


def _check(rows: dict[str, Row], fault: Fault) -> None:
    row = rows[fault.name]
    print(row.line())
    assert row.terminal == row.jobs, row.line()
    assert not row.wrong, "\n".join(row.wrong[:10])
    assert row.duplicates == 0 and row.double_charges == 0, row.line()
    assert not row.leaks, row.leaks[:10]


@pytest.fixture(scope="module")
def matrix(rds, api_url, sim_url, files_url, env, _worker) -> dict[str, Any]:
    _worker.ensure_running()
    before = worker_histograms(env)
    t0 = time.monotonic()
    job_ids: list[str] = []
    rows = run_matrix(rds=rds, api_url=api_url, sim_url=sim_url, files_url=files_url, env=env,
                      jobs_per_cell=JOBS, job_ids_out=job_ids)
    elapsed = time.monotonic() - t0
    after = worker_histograms(env)
    print(f"\nfault matrix: {sum(r.jobs for r in rows.values())} jobs in {elapsed:.0f} s")
    return {"rows": rows, "before": before, "after": after, "job_ids": job_ids}


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(matrix, fault: Fault) -> None:
    _check(matrix["rows"], fault)


def test_no_step_crashed(matrix, data_dir) -> None:
    """Every fault was handled by the pipeline: no step of a matrix job ended in an exception that only
    the sweeper's lease could recover from (before the fixes, a malformed Fal answer escaped the
    adapter as a bare ValueError and its job waited out a lease)."""
    ids = set(matrix["job_ids"])
    crashed = []
    for line in (data_dir / "worker.log").read_text(errors="replace").splitlines():
        if '"level":"ERROR"' in line or "Traceback" in line:
            found = re.search(r"job_[0-9a-f]{32}", line)
            if found and found.group(0) in ids:
                crashed.append(line[:300])
    assert not crashed, crashed[:5]


def test_no_worker_slot_held_past_the_bound(matrix, env, rds, api_url, sim_url, files_url, _worker) -> None:
    """After the whole matrix: no step and no provider call ran longer than the bound (before the
    fixes, a hanging Fal status held a thread 120 s per try, ten tries; Replicate's SDK slept up to
    ~50 s, or any Retry-After, inside one poll), and a fresh job on every provider completes at once."""
    bound = bound_seconds(env)
    call_cap = max(float(env[f"GENGATE_{p.upper()}__TIMEOUT"]) for p in CONTRACT) + 2  # one call: its timeout
    steps_over = slower_than(matrix["before"], matrix["after"], "gengate_worker_step_duration_seconds", 10.0)
    calls_over = slower_than(matrix["before"], matrix["after"], "gengate_provider_request_duration_seconds",
                             5.0 if call_cap <= 5 else 10.0)
    assert bound >= 10.0
    assert not steps_over, f"pipeline steps longer than 10 s: {steps_over}"
    assert not calls_over, f"provider calls longer than {call_cap:.0f} s: {calls_over}"
    _, key = _account(rds)
    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10) as c:
        t0 = time.monotonic()
        ids = []
        for provider in CONTRACT:
            path, body = _body(provider, uuid.uuid4().hex, {}, files_url)
            r = c.post(path, json=body)
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
        while time.monotonic() - t0 < 10:
            jobs = [c.get(f"/jobs/{j}").json() for j in ids]
            if all(j["status"] in TERMINAL for j in jobs):
                break
            time.sleep(0.1)
        took = time.monotonic() - t0
    assert all(j["status"] == "completed" for j in jobs), jobs
    assert took < 10, f"fresh jobs took {took:.1f} s after the matrix"
    print(f"| fault matrix aftermath: a fresh job per provider | 5 | 100% | 0 | 0 | 0 | pass: all completed in "
          f"{took:.1f} s; no step > 10 s, no provider call > {call_cap:.0f} s |")


@pytest.mark.resilience_long
def test_fault_matrix_long(rds, api_url, sim_url, files_url, env, _worker) -> None:
    """The same matrix with `JOBS_LONG` jobs per cell."""
    _worker.ensure_running()
    rows = run_matrix(rds=rds, api_url=api_url, sim_url=sim_url, files_url=files_url, env=env,
                      jobs_per_cell=JOBS_LONG)
    for row in rows.values():
        print(row.line())
    bad = [r.line() for r in rows.values() if not r.ok]
    assert not bad, "\n".join(bad) + "\n" + "\n".join(w for r in rows.values() for w in r.wrong[:3])
