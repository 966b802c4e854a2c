"""6. Cost growth: job lookup, job list and usage as one account's history grows from 1k to 10k to
100k stored jobs.

Completed jobs are written straight into Redis in pipelines (the record as `AsyncJobStore.create`
and the completing transition leave it: job hash, account index entry, usage entry and its day's
total), then each request is timed sequentially (httpx, keep-alive), beside GET /healthz in the same
loop as the baseline. The ratio column compares each size with the 1k figure. The usage figure is
its first page at the default limit (100 records) over a day holding every record.

    .venv/bin/python bench/growth.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import Figure, median, pct  # noqa: E402
from bench.stack import Stack  # noqa: E402

REQUESTS = {
    "GET /v1/jobs/{id}": None,  # a random stored job
    "GET /v1/jobs?limit=20": "/v1/jobs?limit=20",
    "GET /v1/jobs?status=failed (matches none)": "/v1/jobs?status=failed&limit=20",
    "GET /v1/usage (today: a page of 100)": None,
    "GET /v1/usage (a day with none)": "/v1/usage?from=2001-01-01&to=2001-01-01",
    "GET /healthz": "/healthz",
}


def seed(s: Stack, start: int, stop: int) -> list[str]:
    from gengate.jobs import keys, states
    from gengate.jobs.record import Job, new_job_id, utcnow_iso

    ids = []
    now_ms = int(time.time() * 1000)
    pipe = s.r.pipeline(transaction=False)
    for i in range(start, stop):
        job = Job(job_id=new_job_id(), account=s.account, capability="image", model="fal:flux-schnell", provider="fal",
                  endpoint="fal-ai/flux/schnell", input={"prompt": f"seeded {i}"}, mode="text-to-image")
        now = utcnow_iso()
        job.status, job.updated_at, job.completed_at = states.COMPLETED, now, now
        job.output = {"url": f"http://127.0.0.1/o/{job.job_id}.png", "media_type": "image/png"}
        job.cache = {"hit": False, "key": "sha256:" + "0" * 64}
        job.hold_cents = 1
        pipe.hset(keys.job(job.job_id), mapping=job.to_fields())
        pipe.zadd(keys.account_jobs(s.account), {job.job_id: now_ms + i})
        record = {"job_id": job.job_id, "model": job.model, "capability": "image", "cost_cents": 1,
                  "cache_hit": False, "created_at": job.created_at}
        pipe.zadd(keys.account_usage(s.account), {orjson.dumps(record): now_ms + i})
        pipe.hincrby(keys.account_usage_days(s.account), (now_ms + i) // 86_400_000, 1)
        ids.append(job.job_id)
        if len(pipe) >= 3000:
            pipe.execute()
    pipe.execute()
    return ids


def measure(quick: bool = False, rounds: int = 3) -> tuple[list[Figure], list[str]]:
    sizes = (1_000, 10_000) if quick else (1_000, 10_000, 100_000)
    n = 50 if quick else 60
    today = time.strftime("%Y-%m-%d", time.gmtime())
    res: dict[tuple[str, int], list[float]] = {}
    sizes_bytes: dict[tuple[str, int], int] = {}
    log = []
    with Stack() as s, s.client() as c:
        ids: list[str] = []
        for size in sizes:
            ids += seed(s, len(ids), size)
            mem = s.r.info("memory")["used_memory"]
            for rnd in range(rounds):
                times: dict[str, list[float]] = {k: [] for k in REQUESTS}
                for _ in range(n):
                    for name, path in REQUESTS.items():
                        if name.startswith("GET /v1/jobs/{id}"):
                            path = f"/v1/jobs/{random.choice(ids)}"
                        elif name.startswith("GET /v1/usage (today"):
                            path = f"/v1/usage?from={today}&to={today}&limit=100"
                        t = time.perf_counter()
                        r = c.get(path)
                        times[name].append(time.perf_counter() - t)
                        if r.status_code != 200:
                            raise RuntimeError(f"{path}: {r.status_code} {r.text[:200]}")
                        sizes_bytes[(name, size)] = len(r.content)
                for name, values in times.items():
                    res.setdefault((name, size), []).append(pct(values, 0.5))
            line = (f"{size:,} jobs (Redis {mem / 2**20:.0f} MB): " + "; ".join(
                f"{name} p50 {median(res[(name, size)]):.2f} ms ({sizes_bytes[(name, size)]:,} B)" for name in REQUESTS))
            log.append(line)
            print(line, flush=True)
    figs = []
    for name in REQUESTS:
        base = median(res[(name, sizes[0])])
        for size in sizes:
            v = median(res[(name, size)])
            growth_ok = None
            goal = ""
            if size != sizes[0] and name != "GET /healthz":
                goal = "flat (≤ 2× the 1k figure)"
                growth_ok = v <= 2 * base
            figs.append(Figure("6", f"{name} p50, {size:,} jobs", v, "ms", f"same at {sizes[0]:,} jobs", base, v / base,
                               goal, growth_ok, res[(name, size)], note=f"{sizes_bytes[(name, size)]:,} B answer"))
    return figs, log


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    for f in measure(args.quick)[0]:
        print(f.row())
