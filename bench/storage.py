"""8. Object storage (issue 18): what storing outputs in an S3-compatible server costs beside the
local directory, how workers that share nothing but Redis and the bucket scale, and the memory of a
worker storing a large output. One run, one private stack (bench/stack.py) and one S3 server
(moto's standalone server, `gengate.procs.start_s3`), a zero-latency simulated provider.

1. Per-job cost, local store and S3 server alternating (a fresh worker each run): N jobs one at a
   time through the API (POST, then the job's SSE stream until `completed`), with the simulator's
   small image (64 px long side). Figures: the worker's CPU seconds per job (utime+stime from
   /proc/<pid>/stat, before and after the N jobs, after 20 warm-up jobs) and the wall time from the
   provider's end (the simulator's `submitted_at` + queue time + latency, from `/fal/_sim/requests`)
   to the job's `completed_at`, as bench/inflight.py computes it. The S3 server's own CPU per job is
   logged beside it (on a real deployment it runs elsewhere).
2. Throughput with 1, 2 and 4 worker processes, each started as a separate host would be: its own
   GENGATE_DATA_DIR, S3 storage, the same Redis and GENGATE_SECRET_KEY. N jobs are created while no
   worker runs and released at once (bench/pipeline.py's method); the baseline is the raw Celery
   no-op drain with as many no-op worker processes (bench/pipeline.py `noop_rate`), same run, and
   one worker on the local store is measured the same way as a reference.
3. Memory: the peak RSS (VmHWM, /proc/<pid>/status) of a fresh worker that stores one provider
   output of 64 MiB, then of another that stores one of 1 GiB, for each store. The simulated model
   answers with the URL of a streamed body served by this script on `localhost`
   (GENGATE_ALLOW_PRIVATE_HOSTS=localhost lets the worker's fetcher reach it). The stored size is
   checked in the store itself.

    .venv/bin/python bench/storage.py [--quick] [--jobs N] [--rate-jobs N] [--big-mib M] [--runs R]
    python3 bench/run_all --only 8       (benchmark 8)

Defaults (about 3.5 minutes on 2 cores): 200 jobs a run for 1, 300 jobs a run for 2, outputs of
64 MiB and 1 GiB for 3, 3 runs. The recorded figures (BENCHMARKS.md) use `--rate-jobs 1000`, #3's size: about 6 minutes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import (  # noqa: E402
    SIM_OPTIONS, _held, completed_count, cpu_seconds, create_jobs, failed_count, noop_rate,
)
from bench.report import Figure, median, pct  # noqa: E402
from bench.stack import Stack, run_job, wait_for  # noqa: E402
from gengate import procs  # noqa: E402

BENCH = "8"
BUCKET = "gengate-bench"
MIB = 1024 * 1024
WARMUP = 20


# -- the processes ---------------------------------------------------------------------------------
class Bench:
    """One Stack (Redis, simulators, API) plus the S3 server; workers are started per measurement
    with the environment of the store they use."""

    def __init__(self) -> None:
        self.s3_proc, self.s3_endpoint = procs.start_s3(BUCKET)
        s3_env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "GENGATE_S3_REGION": "us-east-1",
                  "GENGATE_S3_ENDPOINT_URL": self.s3_endpoint}
        try:
            # The secret key is set for every process: the S3 workers have data dirs of their own.
            self.stack = Stack(env={"GENGATE_SECRET_KEY": secrets.token_urlsafe(32),
                                    "GENGATE_ALLOW_PRIVATE_HOSTS": "localhost", **s3_env})
        except BaseException:
            procs.stop(self.s3_proc)
            raise
        self.hosts = 0

    def worker_env(self, store: str) -> dict[str, str]:
        """`local`: the stack's data dir and its storage directory (one machine). `s3`: a data dir
        of the worker's own and the bucket, as on a host of its own."""
        s = self.stack
        if store == "local":
            return dict(s.env)
        self.hosts += 1
        home = s.data / f"host-{self.hosts}"
        home.mkdir()
        return dict(s.env, GENGATE_DATA_DIR=str(home), GENGATE_STORAGE_URL=f"s3://{BUCKET}/outputs")

    def start_workers(self, store: str, count: int = 1) -> list:
        """`count` gengate workers (`gengate worker`, as Stack.add_worker starts them), started
        together and waited for together."""
        s = self.stack
        started = []
        for _ in range(count):
            n = len(s.workers) + 1
            log = s.data / f"worker-{store}-{n}.log"
            name = f"{store}{n}-{secrets.token_hex(2)}@%h"
            proc = procs.start(procs.worker_command(hostname=name), self.worker_env(store), log)
            s.workers.append(proc)
            started.append((proc, log))
        for proc, log in started:
            procs.wait_until(lambda: log.exists() and b"ready." in log.read_bytes(), 90, f"{store} worker", proc)
        return [p for p, _ in started]

    def close(self) -> None:
        try:
            self.stack.close()
        finally:
            procs.stop(self.s3_proc)


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of one process, in MiB."""
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            got[line.split(":")[0]] = int(line.split()[1]) / 1024
    return got["VmHWM"], got["VmRSS"]


def completion_delays(b: Bench, jobs: list[str]) -> list[float]:
    """Each job's `completed_at` minus its provider run's end (bench/inflight.py's method), seconds."""
    from gengate.jobs import keys

    sim = httpx.get(f"{b.stack.sim_url}/fal/_sim/requests", timeout=120).json()["requests"]
    ends = {q["request_id"]: q["submitted_at"] + q["queue_time"] + q["latency"] for q in sim}
    pipe = b.stack.r.pipeline(transaction=False)
    for j in jobs:
        pipe.hmget(keys.job(j), "handle", "completed_at")
    out = []
    for handle, completed_at in pipe.execute():
        rid = orjson.loads(handle)["request_id"]
        done = datetime.fromisoformat(orjson.loads(completed_at).replace("Z", "+00:00")).timestamp()
        out.append(max(done - ends[rid], 0.0))
    return out


# -- 1. per-job cost -------------------------------------------------------------------------------
def cost_run(b: Bench, store: str, n: int, tag: str) -> dict[str, float]:
    (worker,) = b.start_workers(store)
    try:
        stamp = time.monotonic_ns()
        with b.stack.client() as c:
            for i in range(WARMUP):  # connections (Redis, simulator, S3), lazy imports
                run_job(c, {"model": "flux-schnell", "prompt": f"warm {tag} {stamp} {i}"})
            w0, s0 = cpu_seconds(worker.pid), cpu_seconds(b.s3_proc.pid)
            t0 = time.perf_counter()
            jobs, post_to_done = [], []
            for i in range(n):
                t = time.perf_counter()
                job, status = run_job(c, {"model": "flux-schnell", "prompt": f"cost {tag} {stamp} {i}"})
                if status != "completed":
                    raise RuntimeError(f"{store} job {job} ended {status}")
                post_to_done.append(time.perf_counter() - t)
                jobs.append(job)
            took = time.perf_counter() - t0
            w1, s1 = cpu_seconds(worker.pid), cpu_seconds(b.s3_proc.pid)
        delays = completion_delays(b, jobs)
    finally:
        procs.stop(worker)
        b.stack.workers.remove(worker)
    return {"cpu_ms": (w1 - w0) / n * 1000, "s3_cpu_ms": (s1 - s0) / n * 1000, "delay_p50": pct(delays, 0.5),
            "delay_p99": pct(delays, 0.99), "post_p50": pct(post_to_done, 0.5), "seconds": took}


def measure_cost(b: Bench, n: int, runs: int, log: list[str]) -> list[Figure]:
    res: dict[str, list[dict[str, float]]] = {"local": [], "s3": []}
    for run in range(runs):
        for store in ("local", "s3"):
            r = cost_run(b, store, n, f"{store}{run}")
            res[store].append(r)
            line = (f"1. run {run + 1} {store:5}: {n} jobs one at a time in {r['seconds']:.1f} s; worker CPU "
                    f"{r['cpu_ms']:.1f} ms/job; provider end -> completed p50 {r['delay_p50']:.1f} ms p99 "
                    f"{r['delay_p99']:.1f} ms; POST -> completed p50 {r['post_p50']:.1f} ms; S3 server CPU "
                    f"{r['s3_cpu_ms']:.1f} ms/job")
            log.append(line)
            print(line, flush=True)

    def m(store: str, k: str) -> float:
        return median([r[k] for r in res[store]])

    def runs_of(store: str, k: str) -> list[float]:
        return [r[k] for r in res[store]]

    figs = []
    for key, what, unit in (("cpu_ms", "worker CPU per job", "ms"),
                            ("delay_p50", "provider end → completed, p50", "ms"),
                            ("delay_p99", "provider end → completed, p99", "ms")):
        figs.append(Figure(BENCH, f"{what}, S3 server ({n} jobs a run)", m("s3", key), unit,
                           "same, local store", m("local", key), m("s3", key) / m("local", key),
                           runs=runs_of("s3", key)))
    figs.append(Figure(BENCH, f"S3 server's own CPU per job ({n} jobs a run)", m("s3", "s3_cpu_ms"), "ms",
                       runs=runs_of("s3", "s3_cpu_ms"), note="moto, in Python: on a real deployment it runs elsewhere"))
    return figs


# -- 2. throughput, workers as separate hosts ------------------------------------------------------
def hosts_rate(b: Bench, n: int, workers: int, store: str = "s3") -> tuple[float, float]:
    """jobs/s of `workers` workers (S3: each with a data dir of its own) and their CPU ms per job."""
    s = b.stack
    before = completed_count(s)
    create_jobs(s, n, tag=f"hosts{store}{workers}")
    s.r.rename("image", _held("image"))
    started = b.start_workers(store, workers)
    pids = {"workers": [w.pid for w in started], "S3 server": [b.s3_proc.pid], "simulator": [s.sim_proc.pid],
            "redis": [s.redis_proc.pid]}
    c0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
    t0 = time.perf_counter()
    s.r.rename(_held("image"), "image")
    t1 = wait_for(lambda: completed_count(s) - before >= n, 600, f"{n} jobs", 0.01)
    cpu = {k: (sum(cpu_seconds(p) for p in v) - c0[k]) / n * 1000 for k, v in pids.items()}
    s.stop_workers()
    return n / (t1 - t0), cpu


def _cpu_text(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if v or k == "workers")


def measure_rates(b: Bench, n: int, runs: int, log: list[str]) -> list[Figure]:
    counts = (1, 2, 4)
    res: dict[tuple[str, int], list[float]] = {}
    for run in range(runs):
        for workers in counts:
            g, cpu = hosts_rate(b, n, workers)
            c = noop_rate(b.stack, n, workers)
            res.setdefault(("gengate", workers), []).append(g)
            res.setdefault(("noop", workers), []).append(c)
            line = (f"2. run {run + 1}, {workers} worker(s) as hosts: gengate (S3) {g:.0f} jobs/s "
                    f"(CPU ms/job: {_cpu_text(cpu)}), raw Celery no-op {c:.0f} tasks/s ({n} each)")
            log.append(line)
            print(line, flush=True)
        # The same drain by one worker on the local store: what S3 itself costs in this harness.
        g, cpu = hosts_rate(b, n, 1, "local")
        res.setdefault(("local", 1), []).append(g)
        line = f"2. run {run + 1}, 1 worker, local store: {g:.0f} jobs/s (CPU ms/job: {_cpu_text(cpu)}) ({n})"
        log.append(line)
        print(line, flush=True)
    figs = []
    g, c = median(res[("local", 1)]), median(res[("noop", 1)])
    figs.append(Figure(BENCH, "jobs/s, 1 worker, local store (reference)", g, "jobs/s",
                       "raw Celery no-op tasks/s, 1 worker(s)", c, g / c, runs=res[("local", 1)]))
    for workers in counts:
        g, c = median(res[("gengate", workers)]), median(res[("noop", workers)])
        figs.append(Figure(BENCH, f"jobs/s, {workers} worker host(s), S3 storage", g, "jobs/s",
                           f"raw Celery no-op tasks/s, {workers} worker(s)", c, g / c, runs=res[("gengate", workers)]))
    g1 = res[("gengate", 1)]
    c1 = res[("noop", 1)]
    for workers in counts[1:]:
        gs = [a / b_ for a, b_ in zip(res[("gengate", workers)], g1)]
        cs = [a / b_ for a, b_ in zip(res[("noop", workers)], c1)]
        figs.append(Figure(BENCH, f"{workers} worker hosts / 1 (gengate, S3)", median(gs), "×",
                           "same for raw Celery no-op", median(cs), median(gs) / median(cs), runs=gs))
    return figs


# -- 3. memory of a worker storing a large output ----------------------------------------------------
class BodyServer:
    """Serves `GET /<bytes>.png`: a body of that many bytes (a PNG signature, then zeros), streamed in
    1 MiB writes with its Content-Length, never held whole."""

    def __init__(self) -> None:
        chunk = b"\x89PNG\r\n\x1a\n" + bytes(MIB - 8)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                size = int(self.path.strip("/").split(".")[0])
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                left = size
                while left > 0:
                    part = chunk if left >= MIB else chunk[:left]
                    self.wfile.write(part)
                    left -= len(part)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, size: int) -> str:
        return f"http://localhost:{self.port}/{size}.png"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def memory_run(b: Bench, server: BodyServer, store: str, size: int) -> dict[str, float]:
    (worker,) = b.start_workers(store)
    try:
        time.sleep(1.0)  # the worker's own start-up settles (sweeper, consumer)
        hwm0, rss0 = peak_rss_mb(worker.pid)
        result = {"images": [{"url": server.url(size), "content_type": "image/png"}]}
        t = time.perf_counter()
        with b.stack.client() as c:
            # Polled, not streamed: an SSE stream that waits more than 5 s for an event is cut by the
            # API (redis-py's default 5 s socket timeout under its 15 s blocking XREAD).
            body = {"model": "flux-schnell", "prompt": f"big {store} {size} {time.monotonic_ns()}",
                    "provider_options": {"sim": {"result": result}}}
            r = c.post("/v1/image", json=body, headers={"Cache-Control": "no-store"})
            if r.status_code != 202:
                raise RuntimeError(f"POST /v1/image: {r.status_code} {r.text}")
            job = r.json()["job_id"]
            record: dict = {}

            def ended() -> bool:
                record.update(c.get(f"/v1/jobs/{job}").json())
                return record["status"] in ("completed", "failed", "cancelled")

            took = wait_for(ended, 600, f"{store} {size} B job", 0.1) - t
            status = record["status"]
        if status != "completed":
            raise RuntimeError(f"{store} {size} B job {job} ended {status}: {record.get('error')}")
        hwm1, rss1 = peak_rss_mb(worker.pid)
    finally:
        procs.stop(worker)
        b.stack.workers.remove(worker)
    return {"hwm0": hwm0, "hwm": hwm1, "rss": rss1, "seconds": took, "url": record["output"]["url"]}


def stored_size(b: Bench, store: str, url: str) -> int:
    """The stored object's size, read from the store itself (not through the API)."""
    name = url.rsplit("/", 1)[-1]
    if store == "local":
        return (b.stack.data / "storage" / "o" / name).stat().st_size
    r = httpx.head(f"{b.s3_endpoint}/{BUCKET}/outputs/o/{name}", timeout=30)  # moto takes unsigned requests
    r.raise_for_status()
    return int(r.headers["content-length"])


def measure_memory(b: Bench, sizes: list[int], log: list[str]) -> list[Figure]:
    server = BodyServer()
    res: dict[tuple[str, int], dict[str, float]] = {}
    try:
        for store in ("local", "s3"):
            for size in sizes:
                r = memory_run(b, server, store, size)
                got = stored_size(b, store, r["url"])
                if got != size:
                    raise RuntimeError(f"{store}: stored {got} bytes of {size}")
                res[(store, size)] = r
                line = (f"3. {store:5} {size // MIB:5} MiB output: worker VmHWM {r['hwm0']:.1f} MiB idle -> "
                        f"{r['hwm']:.1f} MiB after (VmRSS {r['rss']:.1f} MiB); POST -> completed {r['seconds']:.1f} s "
                        f"({size / MIB / r['seconds']:.0f} MiB/s); stored {got:,} B")
                log.append(line)
                print(line, flush=True)
    finally:
        server.close()
    small, big = sizes[0], sizes[-1]
    figs = []
    for store, label in (("local", "local store"), ("s3", "S3 server")):
        r = res[(store, big)]
        figs.append(Figure(BENCH, f"worker peak RSS storing a {big // MIB:,} MiB output, {label}", r["hwm"], "MiB",
                           f"same for a {small // MIB} MiB output", res[(store, small)]["hwm"],
                           r["hwm"] / res[(store, small)]["hwm"], "must not grow with the size",
                           r["hwm"] - res[(store, small)]["hwm"] < 0.1 * small / MIB + 16,
                           note=f"idle worker VmHWM {r['hwm0']:.1f} MiB; {big / MIB / r['seconds']:.0f} MiB/s"))
    return figs


# -- the whole benchmark -----------------------------------------------------------------------------
def measure(quick: bool = False, *, jobs: int | None = None, rate_jobs: int | None = None,
            big_mib: int | None = None, runs: int | None = None) -> tuple[list[Figure], list[str]]:
    n = jobs or (50 if quick else 200)
    rn = rate_jobs or (150 if quick else 300)
    runs = runs or (1 if quick else 3)
    sizes = [64 * MIB, (big_mib or (256 if quick else 1024)) * MIB]
    log: list[str] = []
    b = Bench()
    try:
        b.stack.sim_config(**SIM_OPTIONS["sim"])
        figs: list[Figure] = []
        for part, fn in (("1", lambda: measure_cost(b, n, runs, log)), ("2", lambda: measure_rates(b, rn, runs, log)),
                         ("3", lambda: measure_memory(b, sizes, log))):
            t = time.monotonic()
            figs += fn()
            log.append(f"({part}. took {time.monotonic() - t:.0f} s)")
            print(log[-1], flush=True)
        if failed_count(b.stack):
            raise RuntimeError(f"{failed_count(b.stack)} jobs failed")
    finally:
        b.close()
    return figs, log


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one run (a smoke run)")
    ap.add_argument("--jobs", type=int, help="1: jobs a run and store (default 200)")
    ap.add_argument("--rate-jobs", type=int, help="2: jobs a run and worker count (default 300)")
    ap.add_argument("--big-mib", type=int, help="3: the large output, MiB (default 1024)")
    ap.add_argument("--runs", type=int, help="runs of 1 and 2 (default 3)")
    args = ap.parse_args()
    t = time.monotonic()
    figs, log = measure(args.quick, jobs=args.jobs, rate_jobs=args.rate_jobs, big_mib=args.big_mib, runs=args.runs)
    print()
    for f in figs:
        print(f.row())
    for f in figs:
        if f.note:
            print(f"{f.name}: {f.note}")
    print(f"{time.monotonic() - t:.0f} s")


if __name__ == "__main__":
    main()
