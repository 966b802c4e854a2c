"""4. In-flight capacity: N concurrent jobs whose simulated provider takes L seconds, held by ONE
worker process, with provider webhooks on (the API's URL is the public URL; the simulator calls
back when a run ends) and off (polling alone, backoff to GENGATE_POLL_MAX_SECONDS).

The jobs are POSTed through the API by bench/load.py (32 clients). Sampled every second: the
worker's RSS (/proc/<pid>/status), Redis `used_memory`, the simulator's call counters
(`/fal/_sim/stats`). At the end, each job's completion delay = its `completed_at` minus the moment
its provider run ended (the simulator's `submitted_at` + queue time + latency, from
`/fal/_sim/requests`).

    .venv/bin/python bench/inflight.py [--quick] [--jobs N] [--latency L] [--mode on|off|both]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load  # noqa: E402
from bench.pipeline import completed_count, failed_count  # noqa: E402
from bench.report import Figure, pct  # noqa: E402
from bench.stack import Stack, rss_mb, wait_for  # noqa: E402


def polls_per_job(latency: float, initial: float, factor: float, cap: float) -> int:
    """How many status polls the backoff schedule makes in `latency` seconds (the first one at once)."""
    t, interval, n = 0.0, initial, 1
    while t < latency:
        t += interval
        n += 1
        interval = min(interval * factor, cap)
    return n


def run_mode(webhooks: bool, n: int, latency: float) -> tuple[dict, list[str]]:
    from gengate.config.settings import Settings
    from gengate.jobs import keys

    env = {"GENGATE_PROVIDER_WEBHOOKS": "on" if webhooks else "off"}
    log: list[str] = []
    with Stack(workers=1, public_url_is_api=webhooks, env=env) as s:
        settings = Settings()
        worker = s.workers[0]
        time.sleep(1)
        rss0, mem0 = rss_mb(worker.pid), s.r.info("memory")["used_memory"]
        done0 = completed_count(s)
        samples: list[dict] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    st = s.sim_stats()
                    samples.append({"t": time.time(), "rss": rss_mb(worker.pid),
                                    "mem": s.r.info("memory")["used_memory"], "done": completed_count(s) - done0,
                                    "submissions": st.get("submissions", 0), "status": st.get("status_calls", 0),
                                    "result": st.get("result_calls", 0), "hooks": st.get("webhooks_delivered", 0)})
                except Exception as exc:  # a sample lost to a busy machine is not a reason to stop
                    log.append(f"sample failed: {exc!r}")
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        hdr = {"Authorization": f"Bearer {s.key}"}
        stamp = time.monotonic_ns()
        # Set for the whole simulator (not per request through `provider_options`), so the run does
        # not depend on how the API passes those on.
        s.sim_config(latency=latency, long_side=64)
        t0 = time.time()
        r = load.run("127.0.0.1", s.port, lambda i: load.post(
            "/v1/image", b'{"model":"flux-schnell","prompt":"inflight %d %d"}' % (stamp, i),
            hdr), clients=32, total=n)
        t_posted = time.time()
        if r.statuses.get(202) != n:
            raise RuntimeError(f"submission answers: {r.statuses}")
        wait_for(lambda: completed_count(s) - done0 >= n, latency + 1800, f"{n} in-flight jobs", 0.5)
        t_end = time.time()
        stop.set()
        sampler.join(5)
        failed = failed_count(s)
        # Per-job completion delay after the provider's end.
        sim = httpx.get(f"{s.sim_url}/fal/_sim/requests", timeout=120).json()["requests"]
        ends = {q["request_id"]: q["submitted_at"] + q["queue_time"] + q["latency"] for q in sim}
        ids = [m.decode() for m in s.r.zrange(keys.account_jobs(s.account), 0, -1)]
        pipe = s.r.pipeline(transaction=False)
        for j in ids:
            pipe.hmget(keys.job(j), "handle", "completed_at", "status")
        delays = []
        for handle, completed_at, status in pipe.execute():
            if handle is None or completed_at is None or orjson.loads(status) != "completed":
                continue
            rid = orjson.loads(handle)["request_id"]
            done = datetime.fromisoformat(orjson.loads(completed_at).replace("Z", "+00:00")).timestamp()
            if rid in ends:
                delays.append(max(done - ends[rid], 0.0))
        worker_cpu_note = ""
    # Figures from the samples.
    all_in = next((x for x in samples if x["submissions"] >= n), samples[-1])
    mem_per_job = (all_in["mem"] - mem0) / n
    peak_rss = max(x["rss"] for x in samples)
    status_calls = samples[-1]["status"]
    rates = [(b["status"] - a["status"]) / (b["t"] - a["t"]) for a, b in zip(samples[::5], samples[5::5]) if b["t"] > a["t"]]
    cap = settings.poll_max_with_webhooks_seconds if webhooks else settings.poll_max_seconds
    expected = polls_per_job(latency, settings.poll_initial_seconds, settings.poll_backoff, cap)
    first_sub = next((x["t"] for x in samples if x["submissions"] > 0), t0)
    out = {
        "webhooks": webhooks, "n": n, "latency": latency, "failed": failed,
        "post_seconds": t_posted - t0, "provider_submit_seconds": all_in["t"] - first_sub, "total_seconds": t_end - t0,
        "rss0": rss0, "peak_rss": peak_rss, "mem_per_job": mem_per_job, "delay_p50": pct(delays, 0.5) / 1000,
        "delay_p99": pct(delays, 0.99) / 1000, "delay_max": max(delays) if delays else float("nan"),
        "delays": len(delays), "polls_per_job": status_calls / n, "expected_polls": expected,
        "peak_poll_rate": max(rates) if rates else float("nan"), "cap": cap, "worker_cpu": worker_cpu_note,
    }
    line = (f"webhooks {'on' if webhooks else 'off'}: {n} jobs x {latency:g} s: POSTed in {out['post_seconds']:.0f} s, "
            f"all at the provider after {out['provider_submit_seconds']:.0f} s, all done after {out['total_seconds']:.0f} s; "
            f"worker RSS {rss0:.0f} -> peak {peak_rss:.0f} MB; Redis {mem_per_job:,.0f} B per in-flight job; "
            f"completion delay p50 {out['delay_p50']:.2f} s p99 {out['delay_p99']:.2f} s max {out['delay_max']:.2f} s "
            f"({len(delays)} jobs); status polls {out['polls_per_job']:.1f}/job (backoff schedule: {expected}/job over "
            f"{latency:g} s, cap {cap:g} s), peak {out['peak_poll_rate']:.0f} polls/s; failed {failed}")
    log.append(line)
    print(line, flush=True)
    return out, log


def measure(quick: bool = False, n: int | None = None, latency: float | None = None,
            modes: tuple[bool, ...] = (True, False)) -> tuple[list[Figure], list[str]]:
    n = n or (300 if quick else 10_000)
    latency = latency or (10.0 if quick else 60.0)
    figs, log = [], []
    for hooks in modes:
        o, lines = run_mode(hooks, n, latency)
        log += lines
        tag = "webhooks on" if hooks else "webhooks off"
        figs += [
            Figure("4", f"worker RSS, {n:,} jobs in flight ({tag}; 1 run)", o["peak_rss"], "MB", "worker RSS idle", o["rss0"],
                   o["peak_rss"] / o["rss0"], "≤ 300 MB", o["peak_rss"] <= 300),
            Figure("4", f"Redis memory per in-flight job ({tag}; 1 run)", o["mem_per_job"], "B"),
            Figure("4", f"completion delay after the provider's end, p50 ({tag}; 1 run)", o["delay_p50"], "s",
                   "p99 of the same run", o["delay_p99"], None,
                   "≤ 2 s" if hooks else f"≤ poll cap {o['cap']:g} s",
                   o["delay_p99"] <= (2.0 if hooks else o["cap"]),
                   note=f"max {o['delay_max']:.2f} s"),
            Figure("4", f"provider status polls per job over {latency:g} s ({tag}; 1 run)", o["polls_per_job"], "polls",
                   "backoff schedule", o["expected_polls"], o["polls_per_job"] / o["expected_polls"],
                   "≤ 1 poll per backoff interval", o["polls_per_job"] <= o["expected_polls"] * 1.05,
                   note=f"peak {o['peak_poll_rate']:.0f} polls/s"),
        ]
    return figs, log


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int)
    ap.add_argument("--latency", type=float)
    ap.add_argument("--mode", choices=("on", "off", "both"), default="both")
    args = ap.parse_args()
    modes = {"on": (True,), "off": (False,), "both": (True, False)}[args.mode]
    for f in measure(args.quick, args.jobs, args.latency, modes)[0]:
        print(f.row())
