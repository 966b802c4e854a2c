"""Cache-hit latency: POST /v1/image answered from the cache, beside GET /healthz on the same server.

Starts its own Redis, simulators, API and worker (as `gengate up` does), makes one job, then times
sequential identical POSTs (each a hit) and, interleaved, the cheapest request the API serves. The
difference is what the hit path itself costs on the server. Run: `.venv/bin/python bench/cache_hit.py`
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.catalog import PROVIDERS  # noqa: E402
from gengate import procs  # noqa: E402
from jobs.apikeys import create_account, create_key  # noqa: E402

ROUNDS, N = 3, 1000


def pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))] * 1000


def main() -> None:
    data = Path(tempfile.mkdtemp(prefix="gengate-bench-"))
    redis_proc, redis_url = procs.start_redis(data / "redis", appendonly=False)
    sim_proc, sim_url = procs.start_sim()
    port = procs.free_port()
    env = dict(os.environ, GENGATE_REDIS_URL=redis_url, GENGATE_DATA_DIR=str(data), GENGATE_API_PORT=str(port),
               **{f"GENGATE_{p.upper()}__BASE_URL": f"{sim_url}/{p}" for p in PROVIDERS},
               **{f"GENGATE_{p.upper()}__API_KEY": "bench" for p in PROVIDERS})
    api = procs.start(procs.api_command("127.0.0.1", port), env, data / "api.log")
    worker = procs.start(procs.worker_command(), env, data / "worker.log")
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{base}/healthz", 30, api)
        r = redis.Redis.from_url(redis_url)
        key = create_key(r, create_account(r))
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
            body = {"model": "flux-schnell", "prompt": "bench cache hit"}
            job = c.post("/v1/image", json=body).json()["job_id"]
            while c.get(f"/v1/jobs/{job}").json()["status"] != "completed":
                time.sleep(0.05)
            for _ in range(200):  # warm up both paths
                c.post("/v1/image", json=body)
                c.get("/healthz")
            hit_p50, base_p50 = [], []
            for rnd in range(ROUNDS):
                hits, health = [], []
                for _ in range(N):
                    t = time.perf_counter()
                    resp = c.post("/v1/image", json=body)
                    hits.append(time.perf_counter() - t)
                    assert resp.headers["X-Cache"] == "HIT", resp.text
                    t = time.perf_counter()
                    c.get("/healthz")
                    health.append(time.perf_counter() - t)
                hit_p50.append(pct(hits, 0.5))
                base_p50.append(pct(health, 0.5))
                print(f"round {rnd + 1}: hit p50 {pct(hits, 0.5):.2f} ms p99 {pct(hits, 0.99):.2f} ms | "
                      f"GET /healthz p50 {pct(health, 0.5):.2f} ms p99 {pct(health, 0.99):.2f} ms")
        h, b = statistics.median(hit_p50), statistics.median(base_p50)
        print(f"median of {ROUNDS} rounds x {N}: cache hit p50 {h:.2f} ms, /healthz p50 {b:.2f} ms, "
              f"hit path on top of the bare request {h - b:.2f} ms (ratio {h / b:.2f}x)")
    finally:
        for p in (worker, api, sim_proc, redis_proc):
            procs.stop(p)


if __name__ == "__main__":
    main()
