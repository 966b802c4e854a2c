"""An async HTTP/1.1 load generator: N keep-alive connections, each a closed loop (send, read the
whole answer, send the next), on raw asyncio streams (uvloop when installed).

Why not httpx: its AsyncClient costs ~0.3-0.5 ms of CPU a request in this process, which capped the
generator below the bare baseline on a 2-core machine; this one parses only the status line and
Content-Length. `python bench/load.py --ceiling` measures the generator's own ceiling against a
static-answer asyncio server (near-zero work per request): compare it with the bare baseline's rate.

    result = run(host, port, make_request, clients=64, duration=5, warmup=1)
    result.rate, result.p(0.99)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


def post(path: str, body: bytes, headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def get(path: str, headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> bytes:
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


@dataclass
class Result:
    clients: int
    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, of requests finished in the window
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)  # when keep_bodies

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        """Latency quantile in ms."""
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(len(s) * q))] * 1000

    def summary(self) -> str:
        return (f"{self.clients:>4} clients: {self.rate:8.0f} req/s  p50 {self.p(0.5):6.2f} ms  "
                f"p99 {self.p(0.99):6.2f} ms  statuses {dict(sorted(self.statuses.items()))}")


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i < 0:
        raise RuntimeError(f"answer without Content-Length: {head[:200]!r}")
    j = lower.find(b"\r\n", i + 2)
    length = int(lower[i + 17:j])
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _run(host: str, port: int, make_request: Callable[[int], bytes], clients: int, duration: float | None,
               warmup: float, total: int | None, keep_bodies: bool) -> Result:
    counter = iter(range(10**12))
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration if duration is not None else float("inf")
    result = Result(clients, 0.0)
    issued = 0

    async def client() -> None:
        nonlocal issued
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                now = time.perf_counter()
                if now >= stop_at or (total is not None and issued >= total):
                    return
                issued += 1
                req = make_request(next(counter))
                t = time.perf_counter()
                writer.write(req)
                status, body = await _read_response(reader)
                done = time.perf_counter()
                if total is not None or start_at <= done <= stop_at:
                    result.latencies.append(done - t)
                    result.statuses[status] = result.statuses.get(status, 0) + 1
                    if keep_bodies:
                        result.bodies.append(body)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    result.seconds = duration if total is None else time.perf_counter() - began
    return result


def run(host: str, port: int, make_request: Callable[[int], bytes], *, clients: int, duration: float | None = None,
        warmup: float = 1.0, total: int | None = None, keep_bodies: bool = False) -> Result:
    """Closed-loop load: `clients` connections for `warmup` + `duration` seconds (requests that end
    within the window after the warm-up count), or until `total` requests were sent."""
    coro = _run(host, port, make_request, clients, duration, 0.0 if total is not None else warmup, total, keep_bodies)
    if uvloop is not None:
        return uvloop.run(coro)
    return asyncio.run(coro)


# -- the generator's own ceiling --------------------------------------------------------------------
_STATIC = (b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 19\r\n\r\n"
           b'{"status":"queued"}')


async def _static_server(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lower = head.lower()
                i = lower.find(b"\r\ncontent-length:")
                if i >= 0:
                    await reader.readexactly(int(lower[i + 17:lower.find(b"\r\n", i + 2)]))
                writer.write(_STATIC)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def serve_static(port: int) -> None:
    (uvloop.run if uvloop else asyncio.run)(_static_server(port))


def ceiling(clients: list[int], duration: float, rounds: int = 3) -> dict[int, float]:
    """Median req/s of this generator against a static-answer server in another process."""
    import multiprocessing

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = multiprocessing.get_context("spawn").Process(target=serve_static, args=(port,), daemon=True)
    proc.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        body = b'{"model":"flux-schnell","prompt":"ceiling"}'
        req = post("/v1/image", body, {"Authorization": "Bearer x"})
        out = {}
        for c in clients:
            out[c] = statistics.median(run("127.0.0.1", port, lambda i: req, clients=c, duration=duration,
                                           warmup=0.5).rate for _ in range(rounds))
        return out
    finally:
        proc.terminate()
        proc.join(5)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ceiling", action="store_true", help="measure the generator against a static server")
    ap.add_argument("--duration", type=float, default=3.0)
    args = ap.parse_args()
    if args.ceiling:
        for c, rate in ceiling([1, 16, 64, 256], args.duration).items():
            print(f"{c:>4} clients: {rate:8.0f} req/s (generator ceiling)")
