"""1. Submission throughput and latency: `POST /v1/image` (cache miss, simulator provider) at 1, 16, 64
and 256 concurrent clients, beside the bare baseline (bench/bare_app.py: one route, one LPUSH)
served by the same uvicorn command on the same Redis.

Closed loop (bench/load.py): each client sends its next request when the answer to the last one
arrived, for `duration` seconds after a warm-up; every prompt is unique, so every POST is a cache
miss that creates and queues a job. No worker runs (the jobs wait in their queue), so the API and
the baseline each have the machine to themselves but for Redis and the load generator. Besides
rate and latency, the server's own CPU time per request (utime+stime from /proc) is recorded: it is
the steadiest figure on a shared machine.

    .venv/bin/python bench/submission.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load  # noqa: E402
from bench.report import Figure, median  # noqa: E402
from bench.stack import Stack  # noqa: E402

LEVELS = (1, 16, 64, 256)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(quick: bool = False, runs: int = 3) -> tuple[list[Figure], list[str]]:
    duration, warmup = (1.5, 0.5) if quick else (5.0, 1.0)
    rows: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
    log: list[str] = []
    with Stack() as s:
        s.start_bare()
        hdr = {"Authorization": f"Bearer {s.key}"}
        stamp = time.monotonic_ns()

        def request(i: int) -> bytes:
            return load.post("/v1/image", b'{"model":"flux-schnell","prompt":"bench %d %d"}' % (stamp, i), hdr)

        targets = {"gengate": (s.api.pid, s.port), "bare": (s.bare.pid, s.bare_port)}
        for run in range(runs):
            for clients in LEVELS:
                order = ("bare", "gengate") if (run + clients) % 2 else ("gengate", "bare")
                for name in order:
                    pid, port = targets[name]
                    c0 = cpu_seconds(pid)
                    r = load.run("127.0.0.1", port, request, clients=clients, duration=duration, warmup=warmup)
                    cpu = (cpu_seconds(pid) - c0) / max(r.rate * (duration + warmup), 1) * 1000
                    bad = sum(n for st, n in r.statuses.items() if st >= 300)
                    if bad:
                        raise RuntimeError(f"{name}: {bad} failed requests: {r.statuses}")
                    rows.setdefault((name, clients), []).append((r.rate, r.p(0.5), r.p(0.99), cpu))
                    line = f"run {run + 1} {name:7} {r.summary()}  server CPU {cpu:.2f} ms/req"
                    log.append(line)
                    print(line, flush=True)
    ceiling = load.ceiling(list(LEVELS), duration, rounds=1 if quick else 3)
    figs: list[Figure] = []
    for clients in LEVELS:
        g, b = rows[("gengate", clients)], rows[("bare", clients)]
        g_rate, b_rate = median([x[0] for x in g]), median([x[0] for x in b])
        figs.append(Figure(
            "1", f"POST /v1/image rate, {clients} clients", g_rate, "req/s", "bare LPUSH endpoint", b_rate,
            g_rate / b_rate, "≥ 0.50 of bare", g_rate / b_rate >= 0.5, [x[0] for x in g],
            note=f"generator ceiling {ceiling[clients]:,.0f} req/s"))
    for clients in LEVELS:
        g, b = rows[("gengate", clients)], rows[("bare", clients)]
        p99, b99 = median([x[2] for x in g]), median([x[2] for x in b])
        goal = clients == 64
        figs.append(Figure("1", f"POST /v1/image p99 (p50 {median([x[1] for x in g]):.1f} ms), {clients} clients",
                           p99, "ms", f"bare p99 (p50 {median([x[1] for x in b]):.1f} ms)", b99, p99 / b99,
                           "≤ 25 ms" if goal else "", (p99 <= 25) if goal else None, [x[2] for x in g]))
    g_cpu = median([x[3] for c in LEVELS for x in rows[("gengate", c)]])
    b_cpu = median([x[3] for c in LEVELS for x in rows[("bare", c)]])
    figs.append(Figure("1", "server CPU per request (all levels)", g_cpu, "ms", "bare", b_cpu, g_cpu / b_cpu,
                       runs=[]))
    log.append("load generator ceiling (static-answer asyncio server): "
               + ", ".join(f"{c} clients {v:,.0f} req/s" for c, v in ceiling.items()))
    return figs, log


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    figures, lines = measure(args.quick)
    print("\n".join(lines[-1:]))
    for f in figures:
        print(f.row())
