"""`python3 bench/footprint.py [--baseline REF] [--runs N]`: what one import name and the client/server
split cost or save, each figure beside a baseline measured in the same run.

1. The API process: wall time from start to its first `/healthz` 200, and its RSS then and after
   1,000 requests, for this tree and for `--baseline` (a commit before the split, default bd3edc4,
   checked out into a temporary git worktree and served by its own command line,
   `python -m uvicorn api.app:app` from that tree, with the same interpreter and packages).
   Alternating runs, medians.
2. The installs: distributions and installed size that `pip install gengate` (the client) and
   `pip install "gengate[server]"` add to a fresh virtualenv, from a wheel built from this tree.

Run with the project's .venv (`python3 dev.py test` makes it): `.venv/bin/python bench/footprint.py`;
`python3 bench/run_all --only 7` runs it as benchmark 7.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import Figure  # noqa: E402
from bench.stack import rss_mb  # noqa: E402
from gengate import procs  # noqa: E402

BENCH = "7"
BASELINE = "bd3edc4"  # the last commit before the package became one import name


def _api_once(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    port = procs.free_port()
    start = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen([*cmd, "--host", "127.0.0.1", "--port", str(port)], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc)
        ready = time.perf_counter() - start
        rss_ready = rss_mb(proc.pid)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(1000):
                http.get("/healthz")
        return {"ready_s": ready, "rss_ready": rss_ready, "rss_after": rss_mb(proc.pid)}
    finally:
        procs.stop(proc)


def api_figures(baseline: str, runs: int) -> tuple[list[Figure], list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix="gengate-footprint-"))
    tree = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), baseline], check=True,
                   capture_output=True)
    redis_proc, redis_url = procs.start_redis(tmp / "redis", appendonly=False)
    try:
        env = {**os.environ, "GENGATE_REDIS_URL": redis_url, "GENGATE_DATA_DIR": str(tmp / "data")}
        commands = {"this tree": (procs.gengate_command("api", "--workers", "1"), tmp),
                    f"baseline {baseline}": ([sys.executable, "-m", "uvicorn", "api.app:app", "--no-access-log"], tree)}
        results: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, (cmd, cwd) in commands.items():
                results[name].append(_api_once(cmd, cwd, env, tmp / "api.log"))
        log = [f"1. API process, median of {runs} alternating runs",
               "| code | start to first /healthz | RSS then | RSS after 1,000 requests |", "| --- | --- | --- | --- |"]
        med = {}
        for name, rows in results.items():
            med[name] = m = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            log.append(f"| {name} | {m['ready_s']:.2f} s | {m['rss_ready']:.1f} MB | {m['rss_after']:.1f} MB |")
            starts = ", ".join(f"{r['ready_s']:.2f}" for r in rows)
            sizes = ", ".join(f"{r['rss_after']:.1f}" for r in rows)
            log.append(f"  per run: start {starts} s; RSS {sizes} MB")
        now, old = results["this tree"], med[f"baseline {baseline}"]
        a = med["this tree"]
        figs = [
            Figure(BENCH, "API RSS after 1,000 requests", a["rss_after"], "MB", f"the API of {baseline}",
                   old["rss_after"], a["rss_after"] / old["rss_after"], runs=[r["rss_after"] for r in now]),
            Figure(BENCH, "API start to first /healthz", a["ready_s"], "s", f"the API of {baseline}",
                   old["ready_s"], a["ready_s"] / old["ready_s"], runs=[r["ready_s"] for r in now]),
        ]
        return figs, log
    finally:
        procs.stop(redis_proc)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _venv_contents(home: Path) -> tuple[int, float]:
    listed = subprocess.run([str(home / "bin" / "python"), "-m", "pip", "list", "--format=freeze",
                             "--disable-pip-version-check"], capture_output=True, text=True).stdout.split()
    return len(listed), _du_mb(next((home / "lib").glob("python3*/site-packages")))


def install_figures() -> tuple[list[Figure], list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix="gengate-footprint-"))
    try:
        src = tmp / "src"
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", ".gengate", "__pycache__", "build",
                                                                 "*.egg-info", ".pytest_cache", "dist"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "--disable-pip-version-check", "-w", str(tmp / "dist"), str(src)], check=True)
        (wheel,) = (tmp / "dist").glob("gengate-*.whl")
        venv.EnvBuilder(with_pip=True).create(tmp / "empty")
        empty = _venv_contents(tmp / "empty")
        log = ["2. Installs from the wheel, each into a fresh virtualenv",
               "| install | distributions added | size added | pip install time |", "| --- | --- | --- | --- |"]
        rows: dict[str, tuple[int, float, float]] = {}
        for name, target in (("client", str(wheel)), ("server", f"{wheel}[server]")):
            home = tmp / name
            venv.EnvBuilder(with_pip=True).create(home)
            start = time.perf_counter()
            subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            target], check=True)
            took = time.perf_counter() - start
            count, size = _venv_contents(home)
            rows[name] = (count - empty[0], size - empty[1], took)
            shown = "pip install gengate" if name == "client" else 'pip install "gengate[server]"'
            log.append(f"| {shown} | {rows[name][0]} | {rows[name][1]:.1f} MB | {took:.1f} s |")
        client, server = rows["client"], rows["server"]
        figs = [
            Figure(BENCH, "client install: distributions added", client[0], "", "the server install", server[0],
                   client[0] / server[0]),
            Figure(BENCH, "client install: size added", client[1], "MB", "the server install", server[1],
                   client[1] / server[1]),
        ]
        return figs, log
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(quick: bool, baseline: str = BASELINE) -> tuple[list[Figure], list[str]]:
    api, api_log = api_figures(baseline, 3 if quick else 5)
    installs, install_log = install_figures()
    return api + installs, [*api_log, "", *install_log]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--quick", action="store_true", help="3 API runs instead of 5")
    args = parser.parse_args()
    figs, log = measure(args.quick, args.baseline)
    print("\n".join(log))
    print()
    for f in figs:
        print(f.row())


if __name__ == "__main__":
    main()
