"""Abuse (issue 17 item 8): BYOK jobs cost the operator nothing but what the user's key pays for.
A random `X-Provider-Key-Fal` made a job free and skipped the balance check, yet the worker
downloaded and hashed its inputs before the provider ever saw the key, and every distinct key left
an SDK client (holding the plain key) in the worker for good."""

from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Iterator

import httpx
import pytest
import redis

from gengate.adapters.clients import ClientCache
from gengate.adapters.fal import FalAdapter
from gengate.config.settings import ProviderSettings
from gengate.jobs.apikeys import create_account, create_key

from tests.conftest import new_key, wait_for
from tests.resilience.bystander import Bystander

pytestmark = pytest.mark.resilience

BIG = 64 * 1024 * 1024


class _Counting(http.server.BaseHTTPRequestHandler):
    """A 64 MiB "image" that counts the bytes it serves."""

    served = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(BIG))
        self.end_headers()
        chunk = b"\x89PNG\r\n\x1a\n" + b"\0" * (1024 * 1024 - 8)
        try:
            for _ in range(BIG // len(chunk)):
                self.wfile.write(chunk)
                with _Counting.lock:
                    _Counting.served += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def big_file() -> Iterator[str]:
    _Counting.served = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()


def test_a_byok_job_is_not_downloaded_by_the_gateway(client: httpx.Client, big_file: str, api_url: str,
                                                    rds: redis.Redis):
    """Ten BYOK jobs with random keys, each naming a 64 MiB input by URL: the gateway reads at most
    the few bytes that tell the file's kind, never the file (the provider fetches it, on the user's
    key); before, each job downloaded and hashed the 64 MiB first. Nothing is charged."""
    before = client.get("/balance").json()
    with Bystander(api_url, new_key(rds)) as b:
        jobs = []
        for i in range(10):
            r = client.post("/image", json={"model": "nano-banana-pro", "prompt": f"edit {i}",
                                            "files": [{"url": f"{big_file}/in{i}.png"}]},
                            headers={"X-Provider-Key-Fal": secrets.token_hex(16)})
            assert r.status_code == 202, r.text
            jobs.append(r.json()["job_id"])
        ended = [wait_for(client, job_id, timeout=60) for job_id in jobs]
    report = b.report()
    print(f"\nBYOK jobs with 64 MiB inputs: gateway read {_Counting.served} bytes in all; {report}")
    assert all(job["status"] in ("completed", "failed") for job in ended), ended
    assert _Counting.served < 10 * 2 * 1024 * 1024, _Counting.served  # sniffing reads a chunk, not the file
    assert client.get("/balance").json() == before
    assert not report.errors, report.errors


def test_byok_jobs_count_against_the_plans_rate_and_concurrency(api_url: str, rds: redis.Redis, worker):
    """A free-plan account with no balance: BYOK jobs are accepted (the provider bills the user),
    but only two run at once and ten are created a minute, like any other job."""
    key = create_key(rds, create_account(rds, email="byok@example.com", plan="free", credit_cents=0))
    with httpx.Client(base_url=f"{api_url}/v1", timeout=10,
                      headers={"Authorization": f"Bearer {key}", "Cache-Control": "no-store"}) as c:
        def submit(i: int) -> httpx.Response:
            return c.post("/image", json={"model": "flux-schnell", "prompt": f"byok {i}",
                                          "provider_options": {"sim": {"latency": 30}}},
                          headers={"X-Provider-Key-Fal": secrets.token_hex(16)})

        codes = [submit(i) for i in range(3)]
        assert [r.status_code for r in codes[:2]] == [202, 202]
        third = codes[2].json()
        assert codes[2].status_code == 429 and "at once" in third["message"], third
        for r in codes[:2]:
            assert c.delete(f"/jobs/{r.json()['job_id']}").status_code == 204
        statuses = []
        for i in range(3, 12):
            r = submit(i)
            statuses.append(r.status_code)
            if r.status_code == 202:
                c.delete(f"/jobs/{r.json()['job_id']}")
        assert statuses[-1] == 429 and 429 in statuses, statuses
        assert "rate limit" in r.json()["message"].lower()


def test_one_bounded_client_cache_forgets_keys():
    """Every adapter keeps its per-key SDK clients in one ClientCache: at most `max_size`, none idle
    past `idle_seconds`, found by the key's hash (no plain key in the index)."""
    now = [0.0]
    made: list[str] = []
    cache: ClientCache[str] = ClientCache(lambda key: made.append(key) or f"client-{key}", max_size=3,
                                          idle_seconds=60, clock=lambda: now[0])
    for key in ("a", "b", "c", "d"):
        assert cache.get(key) == f"client-{key}"
    assert len(cache) == 3  # "a", the least recently used, was dropped
    assert cache.get("b") == "client-b" and made == ["a", "b", "c", "d"]  # kept: not made again
    now[0] = 61
    assert len(cache) == 0  # idle past the limit
    assert all(isinstance(k, bytes) and len(k) == 32 for k in cache._entries)  # sha256 digests only
    # a real adapter: a thousand random keys leave at most `clients_max` SDK clients behind
    fal = FalAdapter(ProviderSettings(clients_max=8))
    for _ in range(1000):
        fal._client(secrets.token_hex(16))
    assert len(fal._clients) == 8
