"""A private gateway for one benchmark: Redis (AOF off), the simulators, the API, N workers, and the
baselines' servers (the bare Starlette app, the no-op Celery worker), all started by the same code
as `gengate up` (gengate/procs.py) so the figures are those of the commands users run.

    with Stack(workers=1) as s:      # s.base (API URL), s.key (dev-plan key), s.r (sync Redis)
        ...
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gengate.config.catalog import PROVIDERS  # noqa: E402
from gengate import procs  # noqa: E402
from gengate.jobs.apikeys import create_account, create_key  # noqa: E402

BENCH_QUEUE = "bench"  # the no-op baseline's Celery queue


def rss_mb(pid: int) -> float:
    """Resident set size of one process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine() -> dict[str, str]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cores": str(os.cpu_count()), "memory": f"{mem_kb / 1024 / 1024:.1f} GiB", "cpu": cpu,
            "python": sys.version.split()[0]}


class Stack:
    """Redis, simulators, API and workers under one temporary directory; `close()` stops them all."""

    def __init__(self, *, workers: int = 0, api: bool = True, env: dict[str, str] | None = None,
                 public_url_is_api: bool = False) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="gengate-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.noop_workers: list[subprocess.Popen] = []
        self.redis_proc, self.redis_url = procs.start_redis(self.data / "redis", appendonly=False)
        self.sim_proc, self.sim_url = procs.start_sim()
        self.port = procs.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ, GENGATE_REDIS_URL=self.redis_url, GENGATE_DATA_DIR=str(self.data),
            GENGATE_API_PORT=str(self.port),
            **{f"GENGATE_{p.upper()}__BASE_URL": f"{self.sim_url}/{p}" for p in PROVIDERS},
            **{f"GENGATE_{p.upper()}__API_KEY": "bench" for p in PROVIDERS},
        )
        if public_url_is_api:
            self.env["GENGATE_PUBLIC_URL"] = self.base
        self.env.update(env or {})
        self.r = redis.Redis.from_url(self.redis_url)
        self.api: subprocess.Popen | None = None
        self.bare: subprocess.Popen | None = None
        self.bare_port = 0
        try:
            if api:
                self.api = procs.start(procs.api_command("127.0.0.1", self.port), self.env, self.data / "api.log")
                procs.wait_http(f"{self.base}/healthz", 60, self.api)
            # After the API started, so both read the same settings.
            os.environ.update({k: v for k, v in self.env.items() if k.startswith("GENGATE_")})
            self.account = create_account(self.r, plan="dev", credit_cents=10**12)
            self.key = create_key(self.r, self.account)
            for _ in range(workers):
                self.add_worker()
        except BaseException:
            self.close()
            raise

    # -- processes ---------------------------------------------------------------------------------
    def add_worker(self, concurrency: int | None = None) -> subprocess.Popen:
        """One gengate worker (Celery + sweeper), as `gengate worker` runs it; waits until it is ready."""
        name = f"w{len(self.workers) + 1}-{uuid.uuid4().hex[:4]}@%h"
        log = self.data / f"worker-{len(self.workers) + 1}.log"
        proc = self._start_celery(procs.worker_command(concurrency=concurrency, hostname=name), log, "gengate worker")
        self.workers.append(proc)
        return proc

    def _start_celery(self, cmd: list[str], log: Path, what: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start a Celery worker and wait until its log says it is ready."""
        proc = procs.start(cmd, env or self.env, log)
        procs.wait_until(lambda: log.exists() and b"ready." in log.read_bytes(), 90, what, proc)
        return proc

    def stop_workers(self) -> None:
        for w in self.workers:
            procs.stop(w)
        self.workers.clear()

    def add_noop_worker(self, concurrency: int | None = None) -> subprocess.Popen:
        """The baseline: a Celery worker of `bench.noop_app` with gengate's worker settings and pool."""
        from gengate.config.settings import Settings

        n = len(self.noop_workers) + 1
        log = self.data / f"noop-{n}.log"
        cmd = [sys.executable, "-m", "celery", "-A", "bench.noop_app:app", "worker", "-Q", BENCH_QUEUE,
               "--pool", "threads", "-c", str(concurrency or Settings().worker_concurrency), "-l", "info",
               "--without-mingle", "-n", f"noop{n}-{uuid.uuid4().hex[:4]}@%h"]
        proc = self._start_celery(cmd, log, "no-op worker", self.baseline_env())
        self.noop_workers.append(proc)
        return proc

    def stop_noop_workers(self) -> None:
        for w in self.noop_workers:
            procs.stop(w)
        self.noop_workers.clear()

    def baseline_env(self) -> dict[str, str]:
        """The baselines are modules of bench/, found from the repository's root; gengate's own
        processes need no such path."""
        return dict(self.env, PYTHONPATH=str(ROOT))

    def start_bare(self) -> str:
        """The bare baseline app (bench/bare_app.py), served by the very function that serves the API
        (`gengate api`: gengate/cli_server.py `serve_asgi`)."""
        self.bare_port = procs.free_port()
        cmd = [sys.executable, "-P", "-c", "import sys; from gengate.cli_server import serve_asgi; "
               "serve_asgi('bench.bare_app:app', '127.0.0.1', int(sys.argv[1]), 1)", str(self.bare_port)]
        self.bare = procs.start(cmd, self.baseline_env(), self.data / "bare.log")
        procs.wait_http(f"http://127.0.0.1:{self.bare_port}/healthz", 60, self.bare)
        return f"http://127.0.0.1:{self.bare_port}"

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.key}"},
                            timeout=kw.pop("timeout", 60), **kw)

    def sim_stats(self, provider: str = "fal") -> dict:
        return httpx.get(f"{self.sim_url}/{provider}/_sim/stats", timeout=30).json()

    def sim_config(self, provider: str = "fal", **knobs) -> dict:
        """Knobs for every request of the simulator (`POST /<provider>/_sim/config`)."""
        return httpx.post(f"{self.sim_url}/{provider}/_sim/config", json=knobs, timeout=30).json()

    def wait_idle(self, timeout: float = 120) -> None:
        """Until every Celery queue and the unacked hash are empty (nothing left in flight)."""
        from gengate.tasks.queues import ALL_QUEUES

        def idle() -> bool:
            pipe = self.r.pipeline()
            for q in (*ALL_QUEUES, BENCH_QUEUE):
                pipe.llen(q)
            pipe.hlen("unacked")
            return not any(pipe.execute())

        procs.wait_until(idle, timeout, "idle queues")

    def close(self) -> None:
        for p in [*self.workers, *self.noop_workers, self.bare, self.api, self.sim_proc, self.redis_proc]:
            if p is not None:
                procs.stop(p)
        self.workers.clear()
        self.noop_workers.clear()
        shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for(check, timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll `check()` until true; returns the time.perf_counter() at which it was seen true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.perf_counter()
        time.sleep(interval)
    raise TimeoutError(f"{what}: not done after {timeout:g}s")


def run_job(c: httpx.Client, body: dict, headers: dict[str, str] | None = None) -> tuple[str, str]:
    """POST one image job, follow its SSE stream to the end: (job id, final status)."""
    r = c.post("/v1/image", json=body, headers=headers)
    if r.status_code != 202:
        raise RuntimeError(f"POST /v1/image: {r.status_code} {r.text}")
    job = r.json()["job_id"]
    status = None
    with c.stream("GET", f"/v1/jobs/{job}/stream") as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                status = orjson.loads(line[5:])["status"]
                if status in ("completed", "failed", "cancelled"):
                    break
    return job, status or "?"
