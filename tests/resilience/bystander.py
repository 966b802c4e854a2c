"""Another tenant's view during an attack: a thread that keeps making ordinary requests with its
own key while a test attacks, and records how long each took and what it got.

Issue 17 asks of every abuse test that the other tenants' requests keep working during the attack;
`Bystander.report()` gives the figures RESILIENCE.md quotes (requests, errors, p50, p99)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class Report:
    requests: int
    errors: list[str]
    p50_ms: float
    p99_ms: float

    def __str__(self) -> str:
        return (f"bystander: {self.requests} requests, {len(self.errors)} errors, "
                f"p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms")


@dataclass
class Bystander:
    """GET /v1/me and GET /v1/jobs in turn as another account, `interval` seconds apart, until stopped.
    Both authenticate and read Redis, so they see any exhaustion of the API's workers, pool or loop."""

    api_url: str
    key: str
    interval: float = 0.05
    timeout: float = 10.0
    _times: list[float] = field(default_factory=list)
    _errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Bystander:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        paths = ("/v1/me", "/v1/jobs?limit=5")
        with httpx.Client(base_url=self.api_url, headers=headers, timeout=self.timeout) as c:
            i = 0
            while not self._stop.is_set():
                path = paths[i % len(paths)]
                i += 1
                start = time.perf_counter()
                try:
                    r = c.get(path)
                    if r.status_code != 200:
                        self._errors.append(f"{path}: {r.status_code} {r.text[:120]}")
                except httpx.HTTPError as exc:
                    self._errors.append(f"{path}: {type(exc).__name__}: {exc}")
                self._times.append(time.perf_counter() - start)
                self._stop.wait(self.interval)

    def report(self) -> Report:
        times = sorted(self._times)
        if not times:
            return Report(0, list(self._errors), 0.0, 0.0)

        def pct(p: float) -> float:
            return times[min(len(times) - 1, int(p * len(times)))] * 1000

        return Report(len(times), list(self._errors), pct(0.50), pct(0.99))
