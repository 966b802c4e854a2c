"""Abuse (issue 17 items 2 and 3): the endpoints that create no job. `POST /v1/files` had no rate
limit, quota or deletion, and nothing ever deleted what was stored; `POST /v1/ffmpeg/probe` was
free, fetched up to 512 MiB into the API host and ran in the executor that every URL check needs.
Each test is an attack, what it got, and what another tenant saw meanwhile."""

from __future__ import annotations

import asyncio
import http.server
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import redis

from gengate.jobs import keys
from gengate.sim import media
from gengate.jobs.apikeys import create_account, create_key
from gengate.storage.local import LocalStorage

from tests.conftest import local_storage_only, new_key, wait_for, wait_until
from tests.resilience.bystander import Bystander
from tests.resilience.test_abuse_streams import _api

pytestmark = pytest.mark.resilience

MiB = 1024 * 1024


def _key(rds: redis.Redis, plan: str) -> str:
    return create_key(rds, create_account(rds, email="abuse@example.com", plan=plan, credit_cents=10_000))


def _upload(api: str, key: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{api}/v1/files", content=body, headers={"Authorization": f"Bearer {key}",
                                                                  "Content-Type": "application/octet-stream"},
                      timeout=30)


def _error(r: httpx.Response, status: int, error: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == error and body["statusCode"] == status, body
    return body


def test_uploads_and_probes_take_from_the_plan_rate(api_url: str, rds: redis.Redis, worker, files_url: str):
    """A free-plan tenant (10 requests a minute) loops on uploads, then on probes: the 11th request
    is a 429 with Retry-After, in the error shape, whatever the endpoint; another tenant is unaffected."""
    attacker = _key(rds, "free")
    with Bystander(api_url, new_key(rds)) as b:
        codes = [_upload(api_url, attacker, os.urandom(1024)).status_code for _ in range(10)]
        over = _upload(api_url, attacker, os.urandom(1024))
        probe = httpx.post(f"{api_url}/v1/ffmpeg/probe", json={"url": f"{files_url}/a.mp4"},
                           headers={"Authorization": f"Bearer {attacker}"}, timeout=30)
    report = b.report()
    print(f"\nupload loop: {codes.count(200)} stored, then {over.status_code}; probe {probe.status_code}; {report}")
    assert codes == [200] * 10
    _error(over, 429, "RateLimitError")
    assert int(over.headers["retry-after"]) > 0
    _error(probe, 429, "RateLimitError")
    assert not report.errors, report.errors


def test_the_storage_quota_refuses_past_it_and_delete_gives_it_back(env: dict[str, str], data_dir: Path,
                                                                   rds: redis.Redis, worker):
    """A pro tenant whose plan keeps 3 MiB of uploads: three 1 MiB files fit, the fourth is a 413
    saying the quota is used up (nothing stored), the same bytes again are deduplicated for free,
    and `DELETE /v1/files/{id}` makes room: its URL answers 404, the quota takes a new file."""
    with _api(env, data_dir / "api-quota.log", plan_pro_storage_bytes=str(3 * MiB)) as api:
        attacker = _key(rds, "pro")
        account = rds.hget(keys.api_key(attacker.split("_")[2]), "account").decode()
        files = [_upload(api, attacker, os.urandom(MiB)) for _ in range(3)]
        assert [r.status_code for r in files] == [200] * 3
        with Bystander(api, new_key(rds)) as b:
            over = _upload(api, attacker, os.urandom(MiB))
            # the same content again, named by its hash: answered from what is stored, nothing taken
            again = httpx.post(f"{api}/v1/files", content=b"", headers={"Authorization": f"Bearer {attacker}",
                                                                         "X-Content-Hash": files[0].json()["hash"]})
        report = b.report()
        assert "quota" in _error(over, 413, "PayloadTooLargeError")["message"]
        assert again.status_code == 200 and again.json()["deduplicated"] is True
        assert int(rds.hget(keys.account(account), "upload_bytes")) == 3 * MiB

        first = files[0].json()
        auth = {"Authorization": f"Bearer {attacker}"}
        assert httpx.delete(f"{api}/v1/files/{first['file_id']}", headers=auth).status_code == 204
        assert httpx.get(first["url"]).status_code == 404
        assert httpx.get(f"{api}/v1/files/{first['file_id']}", headers=auth).status_code == 404
        _error(httpx.delete(f"{api}/v1/files/{first['file_id']}", headers=auth), 404, "NotFoundError")
        # another tenant cannot delete a file it does not own
        other = new_key(rds)
        second = files[1].json()
        _error(httpx.delete(f"{api}/v1/files/{second['file_id']}", headers={"Authorization": f"Bearer {other}"}),
               404, "NotFoundError")
        assert httpx.get(second["url"]).status_code == 200
        assert int(rds.hget(keys.account(account), "upload_bytes")) == 2 * MiB
        assert _upload(api, attacker, os.urandom(MiB)).status_code == 200
    print(f"\nquota: 4th MiB refused with 413; {report}")
    assert not report.errors, report.errors


def test_uploads_and_outputs_expire_and_their_bytes_go(env: dict[str, str], data_dir: Path, rds: redis.Redis,
                                                       worker, client: httpx.Client):
    """Uploads kept 2 s (GENGATE_UPLOAD_TTL_SECONDS) are deleted by the workers' retention (the test
    session sweeps every 2 s): the URL answers 404, the record and the quota share are gone. An
    output goes when its job's time is up (the job's TTL after it ended; brought forward here)."""
    with _api(env, data_dir / "api-retention.log", upload_ttl_seconds="2") as api:
        key = _key(rds, "pro")
        account = rds.hget(keys.api_key(key.split("_")[2]), "account").decode()
        up = _upload(api, key, os.urandom(4096)).json()
        assert httpx.get(up["url"]).status_code == 200
        # within a sweep or two (every 2 s), or one lock lease (10 s) if a sweeping worker was killed
        wait_until(lambda: httpx.get(up["url"]).status_code == 404, 30, "the expired upload deleted")
        assert not rds.exists(keys.file(up["file_id"]))
        assert int(rds.hget(keys.account(account), "upload_bytes")) == 0
    job = client.post("/image", json={"model": "flux-schnell", "prompt": "kept until its job expires"},
                      headers={"Cache-Control": "no-store"}).json()
    done = wait_for(client, job["job_id"])
    assert done["status"] == "completed", done
    time.sleep(3)  # a live job's output survives sweeps
    assert httpx.get(done["output"]["url"]).status_code == 200
    # its time is up, as GENGATE_JOB_TTL_SECONDS after it ended would make it
    assert rds.zscore(keys.OUTPUTS_EXPIRY, job["job_id"]) > time.time() + 3600
    rds.zadd(keys.OUTPUTS_EXPIRY, {job["job_id"]: time.time()})
    wait_until(lambda: httpx.get(done["output"]["url"]).status_code == 404, 30, "the expired job's output deleted")


def test_a_blob_goes_only_when_no_name_links_to_it_for_the_grace(tmp_path: Path):
    """Content-addressed blobs are shared between names: retention deletes one only when its link
    count says no output or upload names it, and only after the grace (a blob just written, about
    to be linked, is never taken)."""
    storage = LocalStorage(tmp_path, "http://x")
    kept = storage.put_output("job_" + "a" * 32, [b"kept"], "image/png", max_bytes=100)
    orphan = storage.put_output("job_" + "b" * 32, [b"orphan"], "image/png", max_bytes=100)
    storage.remove_output(orphan.name)
    assert storage.collect_blobs(grace_seconds=3600) == (0, 0)  # unlinked too recently
    assert storage.collect_blobs(grace_seconds=0) == (1, len(b"orphan"))
    assert storage.blob_path(kept.sha256).is_file() and not storage.blob_path(orphan.sha256).exists()


@local_storage_only
def test_a_full_disk_refuses_uploads_without_filling_it(env: dict[str, str], data_dir: Path, rds: redis.Redis, worker):
    """Storage keeps GENGATE_STORAGE_MIN_FREE_BYTES free: with more asked than the disk has, an
    upload is a 503 in the error shape and nothing is written."""
    with _api(env, data_dir / "api-full.log", storage_min_free_bytes=str(10**18)) as api:
        tmp = data_dir / "storage" / "tmp"
        before = set(tmp.iterdir())
        r = _upload(api, _key(rds, "pro"), os.urandom(4096))
        body = _error(r, 503, "ServiceUnavailable")
        assert "storage is full" in body["message"]
        assert set(tmp.iterdir()) == before


class _Trickle(http.server.BaseHTTPRequestHandler):
    """A file sent piece by piece, half a second apart: a slow provider, CDN or link."""

    def trickle(self, content_type: str, length: int, pieces: Iterable[bytes]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(0.5)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None:
        pass


class _Dribble(_Trickle):
    """A large media file served a few bytes a second: a probe of it holds its thread."""

    def do_GET(self) -> None:
        big = self.path.startswith("/big")
        head = [b"\0" * (2 * MiB)] if big else []
        self.trickle("video/mp4", 200 * MiB if big else 10_000, head + [b"\0" * 16] * 40)


class _SlowImage(_Trickle):
    """A PNG sent over ~10 s, counting how often it is asked for."""

    gets: dict[str, int] = {}

    def do_GET(self) -> None:
        _SlowImage.gets[self.path] = _SlowImage.gets.get(self.path, 0) + 1
        piece = 128 * 1024  # 256 KB/s: a slow provider, or a large output on a slow link, scaled down
        body = media.png_bytes(64, 64) + b"\0" * (20 * piece)
        self.trickle("image/png", len(body), (body[i:i + piece] for i in range(0, len(body), piece)))


def test_a_slow_output_download_is_not_started_again(client: httpx.Client):
    """A provider output that takes ~10 s to download, far past the step lease (4 s in the tests):
    the finalize keeps its job's backstop ahead while bytes come, so the sweeper does not take it
    for dead and fetch the output again beside it (each fetch a whole download)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowImage)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://localhost:{server.server_address[1]}/slow-{uuid.uuid4().hex}.png"
        r = client.post("/image", json={"model": "flux-schnell", "prompt": f"slow {url}", "provider_options": {
            "sim": {"result": {"images": [{"url": url, "content_type": "image/png"}]}}}},
                        headers={"Cache-Control": "no-store"})
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["job_id"], timeout=60)
    finally:
        server.shutdown()
    assert job["status"] == "completed", job
    assert _SlowImage.gets[urlsplit(url).path] == 1, _SlowImage.gets


@pytest.fixture
def dribble() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Dribble)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()


def test_slow_probes_use_their_own_threads_and_capped_bytes(env: dict[str, str], data_dir: Path, rds: redis.Redis,
                                                            worker, dribble: str, files_url: str):
    """One tenant sends 20 probes of a file that trickles in: 2 run (GENGATE_PROBE_THREADS), 2 wait,
    16 are a 429 at once. Meanwhile another tenant's job submissions, whose URL checks resolve host
    names in the API's default executor, answer as fast as before. And a probe of a file larger than
    GENGATE_PROBE_MAX_BYTES stops at the cap with a 400."""
    with _api(env, data_dir / "api-probe.log", probe_threads="2", probe_max_bytes=str(MiB),
              fetch_timeout_seconds="8") as api:
        attacker, other = _key(rds, "enterprise"), _key(rds, "enterprise")

        too_big = httpx.post(f"{api}/v1/ffmpeg/probe", json={"url": f"{dribble}/big.mp4"},
                             headers={"Authorization": f"Bearer {attacker}"}, timeout=30)
        assert "larger than" in _error(too_big, 400, "ValidationError")["message"]

        times: list[float] = []
        errors: list[str] = []

        async def attack() -> list[int]:
            async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {attacker}"},
                                         timeout=30) as c:
                async def probe() -> int:
                    return (await c.post("/v1/ffmpeg/probe", json={"url": f"{dribble}/slow.mp4"})).status_code
                return await asyncio.gather(*(probe() for _ in range(20)))

        def submit_jobs() -> None:
            with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {other}",
                                                     "Cache-Control": "no-store"}, timeout=10) as c:
                for i in range(15):
                    start = time.perf_counter()
                    r = c.post("/v1/image", json={"model": "nano-banana-pro", "prompt": "edit",
                                                  "files": [{"url": f"{files_url}/in{i}.png"}]})
                    times.append(time.perf_counter() - start)
                    if r.status_code != 202:
                        errors.append(r.text)
                    time.sleep(0.1)

        bystander = threading.Thread(target=submit_jobs)
        threading.Timer(1.0, bystander.start).start()  # once the probes hold their threads
        codes = asyncio.run(attack())
        bystander.join(30)
    times.sort()
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))] * 1000
    print(f"\nslow probes: {codes.count(429)} refused at once, {len(codes) - codes.count(429)} run; "
          f"other tenant's submissions: {len(times)}, {len(errors)} errors, p99 {p99:.0f} ms")
    assert codes.count(429) == 16, codes
    assert not errors, errors
    assert len(times) == 15
