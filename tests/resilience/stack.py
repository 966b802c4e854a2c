"""A whole private gateway for one resilience scenario, and the measurements every scenario reports.

`Stack` starts a redis-server (AOF on), the provider simulators and the real API as subprocesses,
by the same code as `gengate up` (gengate/procs.py), plus any number of `StackWorker`s: real Celery
workers that a test may start with `GENGATE_CRASH_AT` (tasks/crashpoints.py), SIGKILL, restart. Each
scenario gets its own stack, so no other test's jobs, schedule entries or queued messages can make
its figures. `measure` reads back what happened (job states, the simulator's submissions per marker,
the ledger) into a `Figures` row of RESILIENCE.md.

Importable by any resilience test module: `from tests.resilience.stack import Stack, measure`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from gengate.config.catalog import PROVIDERS
from gengate import procs
from gengate.jobs import accounts, keys
from gengate.jobs.apikeys import create_account, create_key

TERMINAL = {"completed", "failed", "cancelled"}

# Short leases and timeouts: a step that lost its worker is re-driven within seconds, not minutes.
FAST_ENV = {
    **{f"GENGATE_{p.upper()}__TIMEOUT": "3" for p in PROVIDERS},
    "GENGATE_POLL_INITIAL_SECONDS": "0.1",
    "GENGATE_POLL_MAX_SECONDS": "0.5",
    "GENGATE_PROVIDER_RETRIES": "3",
    "GENGATE_RETRY_BASE_SECONDS": "0.1",
    "GENGATE_RETRY_MAX_SECONDS": "1",
    "GENGATE_STEP_LEASE_SECONDS": "4",
    "GENGATE_STEP_TIME_LIMIT_SECONDS": "30",
    "GENGATE_WORKER_CONCURRENCY": "8",
    "GENGATE_WORKER_HEARTBEAT_SECONDS": "1",
    "GENGATE_ALLOW_PRIVATE_HOSTS": "localhost",
    "GENGATE_LOG_FORMAT": "json",
    "PYTHONUNBUFFERED": "1",
}


class StackWorker:
    """One Celery worker subprocess (with its sweeper) that a test kills and restarts at will."""

    def __init__(self, stack: Stack, name: str, concurrency: int = 8) -> None:
        self.stack, self.name, self.concurrency = stack, name, concurrency
        self.log = stack.root / f"worker-{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.crash_kills = 0  # deaths by SIGKILL that this object did not send: a crash point fired

    def start(self, crash_at: str = "", *, wait: bool = True) -> None:
        env = dict(self.stack.env, GENGATE_CRASH_AT=crash_at)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as f:
            f.write(f"--- start {self.starts + 1} crash_at={crash_at!r} ---\n".encode())
        cmd = procs.worker_command(concurrency=self.concurrency, hostname=f"{self.name}-{uuid.uuid4().hex[:4]}@%h")
        self.proc = procs.start(cmd, env, self.log)
        self.starts += 1
        if wait:  # ready, or already dead: a crash point may fire before the worker logs "ready."
            proc = self.proc
            procs.wait_until(lambda: proc.poll() is not None or b"ready." in self.log.read_bytes()[offset:], 60,
                             f"worker {self.name}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reap(self) -> bool:
        """True (once) when the worker died by a SIGKILL of its own crash point since the last look."""
        if self.proc is None or self.proc.poll() is None:
            return False
        died_by_crash = self.proc.returncode == -signal.SIGKILL
        self.proc = None
        if died_by_crash:
            self.crash_kills += 1
        return died_by_crash

    def kill9(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


class Stack:
    """Redis (AOF), simulators, API and workers of one scenario, under `root`."""

    def __init__(self, root: Path, **env_overrides: str) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.overrides = env_overrides
        self.redis_proc: subprocess.Popen | None = None
        self.sim_proc: subprocess.Popen | None = None
        self.api_proc: subprocess.Popen | None = None
        self.workers: list[StackWorker] = []
        self.env: dict[str, str] = {}
        self.redis_url = self.sim_url = self.api_url = ""
        self.redis_port = 0

    # -- processes ---------------------------------------------------------------------------------
    def start(self) -> Stack:
        self.redis_port = procs.free_port()
        self.start_redis()
        self.sim_proc, self.sim_url = procs.start_sim()
        api_port = procs.free_port()
        self.env = {
            **os.environ,
            "GENGATE_REDIS_URL": self.redis_url,
            "GENGATE_DATA_DIR": str(self.root / "data"),
            "GENGATE_API_PORT": str(api_port),
            **{f"GENGATE_{p.upper()}__BASE_URL": f"{self.sim_url}/{p}" for p in PROVIDERS},
            **{f"GENGATE_{p.upper()}__API_KEY": f"pooled-{p}-key" for p in PROVIDERS},
            **FAST_ENV,
            **self.overrides,  # last: a scenario may change any of the above
        }
        self.env.pop("GENGATE_CRASH_AT", None)
        self.api_proc = procs.start(procs.api_command("127.0.0.1", api_port), self.env, self.root / "api.log")
        self.api_url = f"http://127.0.0.1:{api_port}"
        procs.wait_http(f"{self.api_url}/healthz", 60, self.api_proc)
        return self

    def start_redis(self) -> None:
        """(Re)start the scenario's redis-server on its port and directory: AOF on, so a restart keeps
        every write acknowledged before a clean shutdown."""
        self.redis_proc, self.redis_url = procs.start_redis(self.root / "redis", self.redis_port, appendonly=True)

    def stop_redis(self, sig: int = signal.SIGTERM) -> None:
        """Stop redis-server (SIGTERM: it fsyncs the AOF and exits) and wait until it is gone."""
        assert self.redis_proc is not None
        self.redis_proc.send_signal(sig)
        self.redis_proc.wait(30)
        self.redis_proc = None

    def worker(self, name: str = "w", concurrency: int = 8) -> StackWorker:
        w = StackWorker(self, name, concurrency)
        self.workers.append(w)
        return w

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        for proc in (self.api_proc, self.sim_proc, self.redis_proc):
            if proc is not None:
                procs.stop(proc)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------------------------------
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=10)

    def account(self, credit_cents: int = 10_000_000, plan: str = "enterprise") -> tuple[str, str]:
        """A fresh account without limits (so only faults decide what happens), and an API key."""
        r = self.redis()
        account = create_account(r, email="resilience@example.com", plan=plan, credit_cents=credit_cents)
        accounts.set_limits(r, account, rpm=0, concurrency=0)
        return account, create_key(r, account)

    def client(self, key: str, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=f"{self.api_url}/v1", headers={"Authorization": f"Bearer {key}"}, timeout=timeout)

    def sim_submissions(self, provider: str = "fal") -> list[dict]:
        return httpx.get(f"{self.sim_url}/{provider}/_sim/requests", timeout=30).json()["requests"]


# -- measuring ---------------------------------------------------------------------------------------

@dataclass
class Figures:
    """One row of RESILIENCE.md."""

    scenario: str
    jobs: int
    terminal: int
    outcomes: dict[str, int]
    duplicates: int  # jobs the provider received more than once
    double_charges: int  # jobs captured more than once, plus 1 if the balance disagrees with the ledger
    stuck: int  # jobs not terminal at the end
    leaks: list[str] = field(default_factory=list)  # other leftovers: holds, active slots, schedule entries
    max_seconds: float = 0.0  # slowest job, created -> terminal
    kills: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal_pct(self) -> float:
        return 100.0 * self.terminal / self.jobs if self.jobs else 0.0

    @property
    def ok(self) -> bool:
        return self.terminal == self.jobs and not self.duplicates and not self.double_charges and not self.stuck \
            and not self.leaks

    def row(self, command: str) -> str:
        outcome = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (f"| {self.scenario} | {self.jobs} | {self.terminal_pct:.0f} % | {self.duplicates} | "
                f"{self.double_charges} | {self.stuck + len(self.leaks)} | "
                f"{'pass' if self.ok else 'FAIL'}: {outcome}; {self.kills} kills; slowest {self.max_seconds:.0f} s | "
                f"`{command}` |")


def job_states(r: redis.Redis, job_ids: list[str]) -> dict[str, dict[str, Any]]:
    """status, created_at, completed_at and error of each job, read straight from its record."""
    import orjson

    pipe = r.pipeline(transaction=False)
    for j in job_ids:
        pipe.hmget(keys.job(j), "status", "created_at", "completed_at", "error", "error_detail", "handle")
    out = {}
    for j, vals in zip(job_ids, pipe.execute()):
        status, created, completed, error, detail, handle = (orjson.loads(v) if v is not None else None for v in vals)
        out[j] = {"status": status, "created_at": created, "completed_at": completed, "error": error,
                  "code": (detail or {}).get("code"), "handle": handle}
    return out


def all_terminal(r: redis.Redis, job_ids: list[str]) -> bool:
    pipe = r.pipeline(transaction=False)
    for j in job_ids:
        pipe.hget(keys.job(j), "status")
    return all(s is not None and s.decode().strip('"') in TERMINAL for s in pipe.execute())


def _seconds(created: str | None, completed: str | None) -> float:
    from datetime import datetime

    if not created or not completed:
        return 0.0
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(completed) - parse(created)).total_seconds()


def measure(stack: Stack, scenario: str, account: str, jobs: dict[str, str], *, provider: str = "fal",
            kills: int = 0) -> Figures:
    """The figures of a finished scenario. `jobs`: job id -> the unique marker in its prompt."""
    r = stack.redis()
    st = job_states(r, list(jobs))
    outcomes = Counter(v["status"] or "missing" for v in st.values())
    terminal = sum(1 for v in st.values() if v["status"] in TERMINAL)
    per_marker = Counter()
    wanted = set(jobs.values())
    for sub in stack.sim_submissions(provider):
        text = str(sub.get("input"))
        for m in wanted:
            if m in text:
                per_marker[m] += 1
                break
    duplicates = sum(1 for n in per_marker.values() if n > 1)
    ledger = [e for _, e in r.xrange(keys.account_ledger(account))]
    captures = Counter(e[b"job"].decode() for e in ledger if e[b"kind"] == b"capture")
    double = sum(1 for n in captures.values() if n > 1)
    balance = int(r.hget(keys.account(account), "balance_cents") or 0)
    if balance != accounts.ledger_sum(r, account):
        double += 1
    leaks = []
    completed = {j for j, v in st.items() if v["status"] == "completed"}
    # A cancel that came too late for the provider is captured too (README "Cancelling and what it costs").
    chargeable = completed | {j for j, v in st.items() if v["status"] == "cancelled"}
    if set(captures) - chargeable:
        leaks.append(f"captures of jobs neither completed nor cancelled: {sorted(set(captures) - chargeable)[:5]}")
    holds = int(r.hget(keys.account(account), "holds_cents") or 0)
    if holds:
        leaks.append(f"holds_cents={holds}")
    active = r.zcard(keys.account_active(account))
    if active:
        leaks.append(f"{active} concurrency slots held")
    scheduled = [j for j in jobs if r.zscore(keys.SCHEDULE, j) is not None and st[j]["status"] in TERMINAL]
    if scheduled:
        leaks.append(f"{len(scheduled)} terminal jobs still in the schedule")
    storage = stack.root / "data" / "storage" / "o"
    missing_outputs = [j for j in completed if not any(storage.glob(f"{j}.*"))]
    if missing_outputs:
        leaks.append(f"{len(missing_outputs)} completed jobs without an output file")
    durations = [_seconds(v["created_at"], v["completed_at"]) for v in st.values() if v["status"] in TERMINAL]
    errors = Counter(v["code"] or "?" for v in st.values() if v["status"] == "failed")
    return Figures(scenario, len(jobs), terminal, dict(outcomes), duplicates, double,
                   len(jobs) - terminal, leaks, max(durations, default=0.0), kills,
                   extra={"errors": dict(errors), "submissions": sum(per_marker.values()),
                          "captures": sum(captures.values()), "balance": balance})


def marker() -> str:
    return uuid.uuid4().hex


def wait_terminal(r: redis.Redis, job_ids: list[str], timeout: float, tick=None) -> bool:
    """Wait until every job is terminal; `tick()` runs each round (a supervisor restarting workers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if all_terminal(r, job_ids):
            return True
        time.sleep(0.2)
    return False
