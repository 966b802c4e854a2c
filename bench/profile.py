"""Profiles of the submission hot path (the API under load) and of the pipeline (a worker draining
zero-latency jobs), sampled with py-spy (`pip install py-spy`, or the `bench` extra).

    .venv/bin/python bench/profile.py [--quick]

Writes py-spy's collapsed stacks to bench/results/profile-{api,worker}.txt (open them in
speedscope.app, or turn them into an SVG with flamegraph.pl) and prints, for each, where the
busy samples go: by package of the innermost frame (self time), and the heaviest frames inclusive.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load  # noqa: E402
from bench.stack import ROOT, Stack, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results"
OWN = ("api", "jobs", "tasks", "workers", "adapters", "storage", "config", "sim", "gengate", "bench")


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen:
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: .venv/bin/pip install py-spy")
    return subprocess.Popen([exe, "record", "--pid", str(pid), "-d", str(int(seconds)), "-r", str(rate),
                             "--threads", "--gil", "-f", "raw", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _package(frame: str) -> str:
    """'read_response (redis/asyncio/connection.py:1241)' -> 'redis'; our own modules -> 'gengate:<pkg>'."""
    inside = frame.rpartition("(")[2].rstrip(")")
    path = inside.rpartition(":")[0]
    top = path.split("/", 1)[0] if "/" in path else path
    if top in OWN:
        return f"gengate:{top}"
    if top.startswith("<") or path.endswith((".py",)) and "/" not in path:
        return "stdlib"
    if top in ("asyncio", "concurrent", "json", "logging", "email", "http", "urllib", "selectors.py", "threading.py",
               "queue.py", "socket.py", "ssl.py", "dataclasses.py", "copy.py", "uuid.py", "base64.py", "enum.py",
               "typing.py", "functools.py", "contextlib.py", "re", "collections", "importlib"):
        return f"stdlib:{top.removesuffix('.py')}"
    return top


def _short(frame: str) -> str:
    """'create (jobs/store.py:250)' -> 'create (jobs/store.py)': one entry per function, not per line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rpartition(':')[0]})"


def summarise(path: Path, *, thread: str | None = None, top: int = 15) -> str:
    """Busy samples of `path` (py-spy raw, with --threads), optionally of one thread name only."""
    self_pkg: collections.Counter[str] = collections.Counter()
    self_frame: collections.Counter[str] = collections.Counter()
    owner: collections.Counter[str] = collections.Counter()  # the deepest frame of our own code
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        if frames and frames[0].startswith("thread ("):
            name = frames[0].split(":", 1)[1].strip() if ":" in frames[0] else ""
            if thread is not None and not name.startswith(thread):
                continue
            frames = frames[1:]
        if not frames:
            continue
        count = int(n)
        total += count
        self_pkg[_package(frames[-1])] += count
        self_frame[frames[-1]] += count
        for f in set(frames):
            incl[f] += count
        ours = [f for f in frames if _package(f).startswith("gengate")]
        owner[_short(ours[-1]) if ours else "(framework, server, event loop: no gengate frame)"] += count
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}{f' (thread {thread})' if thread else ''}: {total} busy samples",
             "  self time by package: " + ", ".join(f"{k} {v / total:.0%}" for k, v in self_pkg.most_common(10)),
             "  heaviest frames, inclusive (our code and the libraries' entry points):"]
    shown = 0
    for frame, count in incl.most_common():
        if shown >= top:
            break
        pkg = _package(frame)
        if pkg.startswith("gengate") or pkg in ("redis", "pydantic", "fastapi", "starlette", "httpx", "httpcore",
                                                  "kombu", "celery", "fal_client", "orjson", "PIL"):
            if count / total < 0.97:  # skip the frames every sample has
                lines.append(f"    {count / total:5.1%}  {frame}")
                shown += 1
    lines.append("  by the deepest gengate frame (its own time plus the library calls it makes):")
    for frame, count in owner.most_common(top):
        lines.append(f"    {count / total:5.1%}  {frame}")
    lines.append("  hottest frames, self: " + "; ".join(f"{k} {v / total:.1%}" for k, v in self_frame.most_common(6)))
    return "\n".join(lines)


def profile_api(seconds: float, clients: int = 64) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "profile-api.txt"
    with Stack() as s:
        hdr = {"Authorization": f"Bearer {s.key}"}
        run = time.monotonic_ns()

        def request(i: int) -> bytes:
            return load.post("/v1/image", b'{"model":"flux-schnell","prompt":"profile %d %d"}' % (run, i), hdr)

        load.run("127.0.0.1", s.port, request, clients=clients, duration=1, warmup=0)
        spy = record(s.api.pid, seconds, out)
        result = load.run("127.0.0.1", s.port, request, clients=clients, duration=seconds, warmup=0)
        spy.wait(60)
    return f"API under {clients} clients ({result.rate:.0f} req/s):\n" + summarise(out, thread="MainThread")


def profile_worker(jobs: int) -> str:
    from bench.pipeline import create_jobs, completed_count

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "profile-worker.txt"
    with Stack(workers=1) as s:
        s.sim_config(latency=0, long_side=64)
        before = completed_count(s)
        spy = record(s.workers[0].pid, 600, out)
        t0 = time.perf_counter()
        create_jobs(s, jobs, tag="profile")
        t1 = wait_for(lambda: completed_count(s) - before >= jobs, 600, "profiled jobs", 0.05)
        spy.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
        spy.wait(60)
    return f"worker draining {jobs} zero-latency jobs ({jobs / (t1 - t0):.0f} jobs/s):\n" + summarise(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(profile_api(4 if args.quick else 10))
    print()
    print(profile_worker(200 if args.quick else 1500))


if __name__ == "__main__":
    main()
