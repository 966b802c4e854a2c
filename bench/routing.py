"""9. What routing costs a submission: `POST /v1/image` for a model with one route (`recraft-v3`, fal
only), for `flux-schnell` pinned to one provider (`fal:flux-schnell`: no routing), and for
`flux-schnell` routed (fal, then Replicate as its fallback: the request is validated against both
routes and the job records them), in the same run on the same API process.

Closed loop (bench/load.py), 16 clients, unique prompts (every POST a cache miss that creates and
queues a job), no worker; the three kinds alternate within each round so the machine's noise falls
on all of them. The figure that matters is the server's CPU per request (utime+stime from /proc),
the steadiest one on a shared machine; rate and p50 come along.

    .venv/bin/python bench/routing.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load  # noqa: E402
from bench.report import Figure, median  # noqa: E402
from bench.stack import Stack  # noqa: E402
from bench.submission import cpu_seconds  # noqa: E402

KINDS = {
    "one route (recraft-v3)": "recraft-v3",
    "pinned (fal:flux-schnell)": "fal:flux-schnell",
    "routed (flux-schnell: fal, replicate)": "flux-schnell",
}
CLIENTS = 16
BASE = "one route (recraft-v3)"


def measure(quick: bool = False) -> tuple[list[Figure], list[str]]:
    """The figures (server CPU per request of each kind against the one-route model's) for run_all."""
    rows, log = _rounds(quick)
    base_runs = [x[2] for x in rows[BASE]]
    base = median(base_runs)
    figs = [Figure("9", f"server CPU per POST /v1/image, {kind}", median([x[2] for x in runs]), "ms",
                   BASE, base, median([x[2] for x in runs]) / base, runs=[x[2] for x in runs],
                   note=f"{median([x[0] for x in runs]):,.0f} req/s, p50 {median([x[1] for x in runs]):.1f} ms")
            for kind, runs in rows.items() if kind != BASE]
    return figs, log


def _rounds(quick: bool) -> tuple[dict[str, list[tuple[float, float, float]]], list[str]]:
    duration, warmup, rounds = (1.5, 0.5, 2) if quick else (5.0, 1.0, 5)
    rows: dict[str, list[tuple[float, float, float]]] = {k: [] for k in KINDS}
    log: list[str] = []
    with Stack() as s:
        hdr = {"Authorization": f"Bearer {s.key}"}
        stamp = time.monotonic_ns()
        for round_no in range(rounds):
            order = list(KINDS)[round_no % len(KINDS):] + list(KINDS)[:round_no % len(KINDS)]
            for kind in order:
                model = KINDS[kind].encode()

                def request(i: int, model: bytes = model) -> bytes:
                    return load.post("/v1/image", b'{"model":"%s","prompt":"route %d %d %d"}' % (
                        model, stamp, round_no, i), hdr)

                c0 = cpu_seconds(s.api.pid)
                r = load.run("127.0.0.1", s.port, request, clients=CLIENTS, duration=duration, warmup=warmup)
                cpu = (cpu_seconds(s.api.pid) - c0) / max(r.rate * (duration + warmup), 1) * 1000
                bad = sum(n for st, n in r.statuses.items() if st >= 300)
                if bad:
                    raise RuntimeError(f"{kind}: {bad} failed requests: {r.statuses}")
                rows[kind].append((r.rate, r.p(0.5), cpu))
                log.append(f"round {round_no + 1} {kind:40} {r.summary()}  server CPU {cpu:.2f} ms/req")
                print(log[-1], flush=True)
    return rows, log


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    rows, _ = _rounds(ap.parse_args().quick)
    base = median([x[2] for x in rows[BASE]])
    print("\n| kind | rate (req/s) | p50 (ms) | server CPU (ms/req) | CPU vs one route |")
    print("| --- | --- | --- | --- | --- |")
    for kind, runs in rows.items():
        cpu = median([x[2] for x in runs])
        print(f"| {kind} | {median([x[0] for x in runs]):,.0f} | {median([x[1] for x in runs]):.1f} | "
              f"{cpu:.2f} | {cpu / base:.2f}× |")
