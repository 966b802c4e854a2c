"""2. Pipeline overhead and 3. pipeline throughput, with a zero-latency simulated provider.

2. Latency: one job at a time, the time from sending `POST /v1/image` to reading the `completed`
   event on the job's SSE stream (opened right after the 202), beside a raw Celery round trip in
   the same run: `apply_async` of a no-op task -> a worker of the same pool and settings -> its
   result read back (bench/noop_app.py, Redis result backend).
3. Throughput: N jobs created by the API's own code (`api.submission.create_job`, in this process)
   while no worker runs, their submit messages held aside; then the workers start, the messages
   are put back in one RENAME, and the clock runs until the N-th job is `completed`. The baseline
   is N no-op task messages (tasks/wire.py, the format the API pushes) drained the same way by
   workers of the same pool, concurrency and Celery settings. With 1 and with 2 worker processes.

    .venv/bin/python bench/pipeline.py [--quick] [--latency-only | --throughput-only]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import Figure, median, pct  # noqa: E402
from bench.stack import BENCH_QUEUE, Stack, run_job, wait_for  # noqa: E402

CPU_LOG: list[str] = []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# A zero-latency provider run whose fake image stays small: the benchmark is about the gateway.
SIM_OPTIONS = {"sim": {"latency": 0, "long_side": 64}}


def completed_count(s: Stack) -> int:
    from gengate.jobs import keys

    stats = s.r.hgetall(keys.STATS_JOBS)
    return sum(int(v) for k, v in stats.items() if k.startswith((b"completed|", b"failed|")))


def failed_count(s: Stack) -> int:
    from gengate.jobs import keys

    return sum(int(v) for k, v in s.r.hgetall(keys.STATS_JOBS).items() if k.startswith(b"failed|"))


def create_jobs(s: Stack, n: int, *, tag: str, batch: int = 64) -> None:
    """`n` image jobs for the stack's account through `create_job`, as the API makes them (the
    simulator's latency is set with `Stack.sim_config`)."""
    from redis.asyncio import Redis as AsyncRedis
    from starlette.datastructures import Headers

    from gengate.api.schemas import ImageRequest
    from gengate.api.submission import create_job
    from gengate.config.settings import Settings
    from gengate.jobs.store import AsyncJobStore

    settings = Settings()

    async def go() -> None:
        r = AsyncRedis.from_url(s.redis_url, max_connections=batch * 2)
        store = AsyncJobStore(r, ttl_seconds=settings.job_ttl_seconds)
        stamp = time.monotonic_ns()
        for start in range(0, n, batch):
            await asyncio.gather(*(
                create_job(store, settings, account_id=s.account, capability="image", headers=Headers(),
                           body=ImageRequest(model="flux-schnell", prompt=f"{tag} {stamp} {i}"))
                for i in range(start, min(n, start + batch))))
        await r.aclose()

    asyncio.run(go())


# -- 2. latency ------------------------------------------------------------------------------------
def gengate_latencies(s: Stack, n: int) -> list[float]:
    out = []
    stamp = time.monotonic_ns()
    with s.client() as c:
        for i in range(n + 20):
            t = time.perf_counter()
            job, status = run_job(c, {"model": "flux-schnell", "prompt": f"latency {stamp} {i}"})
            if status != "completed":
                raise RuntimeError(f"job {job} ended {status}")
            if i >= 20:  # the first jobs warm up connections and the worker
                out.append(time.perf_counter() - t)
    return out


def celery_latencies(n: int) -> list[float]:
    from bench.noop_app import echo

    out = []
    for i in range(n + 20):
        t = time.perf_counter()
        echo.apply_async(queue=BENCH_QUEUE).get(timeout=30)
        if i >= 20:
            out.append(time.perf_counter() - t)
    return out


def measure_latency(quick: bool = False, runs: int = 3) -> tuple[list[Figure], list[str]]:
    n = 100 if quick else 1000
    g50, g99, c50, c99, log = [], [], [], [], []
    with Stack(workers=1) as s:
        s.sim_config(**SIM_OPTIONS["sim"])
        s.add_noop_worker()
        for run in range(runs):
            g = gengate_latencies(s, n)
            c = celery_latencies(n)
            g50.append(pct(g, 0.5)); g99.append(pct(g, 0.99)); c50.append(pct(c, 0.5)); c99.append(pct(c, 0.99))
            line = (f"run {run + 1}: POST -> completed on SSE p50 {g50[-1]:.1f} ms p99 {g99[-1]:.1f} ms | "
                    f"raw Celery round trip p50 {c50[-1]:.1f} ms p99 {c99[-1]:.1f} ms ({n} each)")
            log.append(line)
            print(line, flush=True)
        if failed_count(s):
            raise RuntimeError("some latency jobs failed")
    return [
        Figure("2", f"POST → completed on SSE, p50 ({n} jobs a run)", median(g50), "ms", "raw Celery round trip p50",
               median(c50), median(g50) / median(c50), "≤ 20 ms", median(g50) <= 20, g50),
        Figure("2", f"POST → completed on SSE, p99 ({n} jobs a run)", median(g99), "ms", "raw Celery round trip p99",
               median(c99), median(g99) / median(c99), "≤ 60 ms", median(g99) <= 60, g99),
    ], log


# -- 3. throughput ---------------------------------------------------------------------------------
def _held(queue: str) -> str:
    return f"{queue}:held"


def gengate_rate(s: Stack, n: int, workers: int) -> float:
    s.stop_workers()
    before = completed_count(s)
    create_jobs(s, n, tag=f"rate{workers}")
    s.r.rename("image", _held("image"))
    for _ in range(workers):
        s.add_worker()
    pids = {"workers": [w.pid for w in s.workers], "simulator": [s.sim_proc.pid], "redis": [s.redis_proc.pid]}
    c0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
    t0 = time.perf_counter()
    s.r.rename(_held("image"), "image")
    t1 = wait_for(lambda: completed_count(s) - before >= n, 600, f"{n} jobs", 0.01)
    CPU_LOG.append(f"{workers} gengate worker(s), {n} jobs in {t1 - t0:.1f} s: CPU ms per job " + ", ".join(
        f"{k} {(sum(cpu_seconds(p) for p in v) - c0[k]) / n * 1000:.1f}" for k, v in pids.items()))
    s.stop_workers()
    return n / (t1 - t0)


def noop_rate(s: Stack, n: int, workers: int) -> float:
    from gengate.tasks.wire import celery_message

    s.stop_noop_workers()
    pipe = s.r.pipeline(transaction=False)
    for _ in range(n):
        _, payload = celery_message("bench.noop", [], queue=BENCH_QUEUE)
        pipe.lpush(_held(BENCH_QUEUE), payload)
    pipe.execute()
    for _ in range(workers):
        s.add_noop_worker()
    pids = [w.pid for w in s.noop_workers]
    c0 = sum(cpu_seconds(p) for p in pids)
    t0 = time.perf_counter()
    s.r.rename(_held(BENCH_QUEUE), BENCH_QUEUE)

    def drained() -> bool:
        pipe = s.r.pipeline(transaction=False)
        pipe.llen(BENCH_QUEUE)
        pipe.hlen("unacked")
        return not any(pipe.execute())

    t1 = wait_for(drained, 600, f"{n} no-op tasks", 0.01)
    CPU_LOG.append(f"{workers} no-op worker(s), {n} tasks in {t1 - t0:.1f} s: worker CPU ms per task "
                   f"{(sum(cpu_seconds(p) for p in pids) - c0) / n * 1000:.2f}")
    s.stop_noop_workers()
    return n / (t1 - t0)


def measure_throughput(quick: bool = False, runs: int = 3) -> tuple[list[Figure], list[str]]:
    n = 200 if quick else 1000
    res: dict[tuple[str, int], list[float]] = {}
    log = []
    with Stack() as s:
        s.sim_config(**SIM_OPTIONS["sim"])
        for run in range(runs):
            for workers in (1, 2):
                g = gengate_rate(s, n, workers)
                c = noop_rate(s, n, workers)
                res.setdefault(("gengate", workers), []).append(g)
                res.setdefault(("noop", workers), []).append(c)
                line = (f"run {run + 1}, {workers} worker(s): gengate {g:.0f} jobs/s, raw Celery no-op {c:.0f} tasks/s "
                        f"({n} each)")
                log.append(line)
                print(line, flush=True)
        if failed_count(s):
            raise RuntimeError(f"{failed_count(s)} throughput jobs failed")
    log += CPU_LOG[-4:]
    g1, g2 = median(res[("gengate", 1)]), median(res[("gengate", 2)])
    c1, c2 = median(res[("noop", 1)]), median(res[("noop", 2)])
    return [
        Figure("3", "jobs/s end to end, 1 worker", g1, "jobs/s", "raw Celery no-op tasks/s, 1 worker", c1, g1 / c1,
               "≥ 0.33 of no-op", g1 / c1 >= 1 / 3, res[("gengate", 1)]),
        Figure("3", "jobs/s end to end, 2 workers", g2, "jobs/s", "raw Celery no-op tasks/s, 2 workers", c2, g2 / c2,
               "≥ 0.33 of no-op", g2 / c2 >= 1 / 3, res[("gengate", 2)]),
        Figure("3", "2 workers / 1 worker (gengate)", g2 / g1, "×", "same for raw Celery no-op", c2 / c1,
               (g2 / g1) / (c2 / c1), "≥ 1.7×", g2 / g1 >= 1.7,
               [a / b for a, b in zip(res[("gengate", 2)], res[("gengate", 1)])]),
    ], log


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--latency-only", action="store_true")
    ap.add_argument("--throughput-only", action="store_true")
    args = ap.parse_args()
    figs = []
    if not args.throughput_only:
        figs += measure_latency(args.quick)[0]
    if not args.latency_only:
        figs += measure_throughput(args.quick)[0]
    for f in figs:
        print(f.row())
