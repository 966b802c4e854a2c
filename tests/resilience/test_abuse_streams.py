"""Abuse (issue 17 item 4): one tenant opening SSE streams by the hundred. Each open stream holds a
Redis connection in a blocking read; drawn from the pool that serves every request, they left
nothing for anyone's authentication. Now streams are capped per account and per API process (429)
and read through a pool of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import redis

from gengate import procs

from tests.conftest import new_key
from tests.resilience.bystander import Bystander

pytestmark = pytest.mark.resilience


@contextmanager
def _api(env: dict[str, str], log: Path, **settings: str) -> Iterator[str]:
    """An API process of its own (same Redis, same workers) with `settings` as GENGATE_* overrides."""
    port = procs.free_port()
    overrides = {f"GENGATE_{k.upper()}": v for k, v in settings.items()}
    proc = procs.start(procs.api_command("127.0.0.1", port), {**env, **overrides, "GENGATE_API_PORT": str(port)}, log)
    base = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http(f"{base}/healthz", 30, proc)
        yield base
    finally:
        procs.stop(proc)


def _long_job(api: str, key: str) -> str:
    """A job the simulated provider keeps running for a minute: its stream stays open."""
    r = httpx.post(f"{api}/v1/image", json={"model": "flux-schnell", "prompt": "a long one",
                                             "provider_options": {"sim": {"latency": 60}}},
                   headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-store"}, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


async def _open_streams(api: str, key: str, job_id: str, n: int, hold: float) -> list[int]:
    """Open `n` streams of one job at once and keep the open ones until every request was answered
    (then `hold` seconds more): each one's status code."""
    answered: list[int] = []
    everyone = asyncio.Event()
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=30,
                                 limits=httpx.Limits(max_connections=n + 5)) as c:
        async def one() -> int:
            async with c.stream("GET", f"/v1/jobs/{job_id}/stream") as r:
                answered.append(r.status_code)
                if len(answered) == n:
                    everyone.set()
                if r.status_code == 200:
                    # The first event: the stream is open and reading. The iterator is kept: dropped,
                    # it would be finalized, closing the stream.
                    events = r.aiter_raw()
                    await events.__anext__()
                    await asyncio.wait_for(everyone.wait(), 30)
                    await asyncio.sleep(hold)
                    await events.aclose()
                else:
                    await r.aread()
                    assert r.headers["content-type"].startswith("application/json")
                    body = r.json()
                    assert body["error"] == "RateLimitError" and body["statusCode"] == 429, body
                    assert int(r.headers["retry-after"]) > 0
                return r.status_code

        return await asyncio.gather(*(one() for _ in range(n)))


def test_streams_are_capped_per_account_and_slots_come_back(env: dict[str, str], data_dir: Path, rds: redis.Redis,
                                                            worker):
    """One tenant asks for 30 streams where its account may hold 10: 10 open, 20 get a 429 in the
    error shape with a Retry-After. Another tenant's requests and its own stream work throughout,
    and once the first tenant's streams close, its slots are free again."""
    with _api(env, data_dir / "api-sse-account.log", sse_max_streams_per_account="10") as api:
        attacker, other = new_key(rds), new_key(rds)
        job_id, other_job = _long_job(api, attacker), _long_job(api, other)

        async def attack() -> tuple[list[int], list[int]]:
            async def other_stream() -> list[int]:
                await asyncio.sleep(1.5)  # while the attacker holds its 10
                return await _open_streams(api, other, other_job, 1, hold=0.1)
            return await asyncio.gather(_open_streams(api, attacker, job_id, 30, hold=3), other_stream())

        with Bystander(api, other) as b:
            codes, mine = asyncio.run(attack())
        report = b.report()
        print(f"\nSSE per-account cap: {codes.count(200)} open, {codes.count(429)} refused; {report}")
        assert codes.count(200) == 10 and codes.count(429) == 20
        assert mine == [200]
        assert not report.errors, report.errors
        # every slot was given back when its stream closed
        assert asyncio.run(_open_streams(api, attacker, job_id, 10, hold=0.1)) == [200] * 10


def test_streams_do_not_take_the_connections_ordinary_requests_need(env: dict[str, str], data_dir: Path,
                                                                    rds: redis.Redis, worker):
    """The API's pool for ordinary requests holds 8 connections; one tenant opens 40 streams (its
    account may hold them all, the process serves 30). Were the streams' blocking reads drawn from
    that pool, every request would get a 503 from the 9th stream on; they have their own pool, so
    the other tenant sees nothing, and the 10 streams past the process's cap get a 429."""
    with _api(env, data_dir / "api-sse-process.log", sse_max_streams_per_account="1000",
              sse_max_streams_per_process="30", api_redis_connections="8") as api:
        attacker, other = new_key(rds), new_key(rds)
        job_id = _long_job(api, attacker)
        with Bystander(api, other) as b:
            codes = asyncio.run(_open_streams(api, attacker, job_id, 40, hold=4))
        report = b.report()
        print(f"\nSSE per-process cap: {codes.count(200)} open, {codes.count(429)} refused; {report}")
        assert codes.count(200) == 30 and codes.count(429) == 10
        assert not report.errors, report.errors
        assert report.requests > 20


def test_a_quiet_stream_stays_open_on_keepalives(env: dict[str, str], data_dir: Path, rds: redis.Redis, worker):
    """A job with nothing to report for longer than a Redis read's default timeout (5 s): its stream
    sends keepalive comments and then the completion, instead of being cut off mid-way."""
    with _api(env, data_dir / "api-sse-quiet.log", sse_keepalive_seconds="6") as api:
        key = new_key(rds)
        r = httpx.post(f"{api}/v1/image", json={"model": "flux-schnell", "prompt": "quiet",
                                                 "provider_options": {"sim": {"latency": 9}}},
                       headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-store"}, timeout=10)
        assert r.status_code == 202, r.text
        with httpx.stream("GET", f"{api}/v1/jobs/{r.json()['job_id']}/stream",
                          headers={"Authorization": f"Bearer {key}"}, timeout=30) as stream:
            body = b"".join(stream.iter_raw())
    assert b": keepalive" in body, body
    assert b'"status":"completed"' in body, body
