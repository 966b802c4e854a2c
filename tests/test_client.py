"""The Python client (`gengate.client`), sync and async, against the real API, worker and simulators.

Every test has a fresh account (so a fresh cache) and unique prompts. httpx transports are wrapped
only to watch or break the event stream; every answer comes from the real gateway."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import os
import shutil
import time
import uuid
from datetime import date

import httpx
import pytest
from PIL import Image

from gengate.client import (
    AsyncGatewayClient,
    AuthError,
    GatewayAPIError,
    GatewayClient,
    GatewayConnectionError,
    Job,
    JobFailed,
    NotFoundError,
    PayloadTooLargeError,
    ProviderError,
    UnprocessableError,
    ValidationError,
    WaitTimeout,
)
from gengate.client.waiting import RECONNECT, SSEDecoder, Stream, Waiter
from gengate import procs
from gengate.sim import media
from tests.conftest import new_key

ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed (apt-get install -y ffmpeg)")


def _u() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def key(api_url, rds, worker) -> str:
    return new_key(rds)


@pytest.fixture
def base(api_url) -> str:
    return f"{api_url}/v1"


@pytest.fixture
def gw(key, base):
    with GatewayClient(key, base, timeout=10) as c:
        yield c


class Recorder(httpx.HTTPTransport):
    """The real transport, noting each request as (method, path, headers)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str, httpx.Headers]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path, request.headers))
        return super().handle_request(request)

    def paths(self, suffix: str) -> list[str]:
        return [p for m, p, _ in self.seen if p.endswith(suffix)]


class StreamRefused(Recorder):
    """The event stream answers 503 (a proxy without SSE, say); everything else is real."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stream"):
            self.seen.append((request.method, request.url.path, request.headers))
            return httpx.Response(503, text="<html>no streaming here</html>", headers={"Content-Type": "text/html"})
        return super().handle_request(request)


class StreamBroken(Recorder):
    """The event stream cannot even be connected to; everything else is real."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/stream"):
            self.seen.append((request.method, request.url.path, request.headers))
            raise httpx.ConnectError("connection refused (test)", request=request)
        return super().handle_request(request)


class _CutAfterFirstEvent(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream) -> None:
        self.inner = inner

    def __iter__(self):
        buffered = b""
        for chunk in self.inner:
            buffered += chunk
            if b"\n\n" in buffered:
                yield buffered[:buffered.index(b"\n\n") + 2]
                raise httpx.ReadError("connection reset (test)")
            yield chunk
            buffered = b""

    def close(self) -> None:
        self.inner.close()


class CutFirstStream(Recorder):
    """The first event stream breaks right after its first event; the resumed one is left alone."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = super().handle_request(request)
        if request.url.path.endswith("/stream") and "last-event-id" not in request.headers:
            resp.stream = _CutAfterFirstEvent(resp.stream)
        return resp


# -- generation and waiting (sync) -----------------------------------------------------------------


def _create_all(c, files_url: str, m: str) -> dict:
    return {
        "image": c.create_image(model="flux-schnell", prompt=f"sunset {m}", aspect_ratio="16:9"),
        "video": c.create_video(model="kling-v3", prompt=f"waves {m}", duration=5),
        "speech": c.create_speech(model="eleven_v3", text=f"Hello {m}", voice="rachel"),
        "music": c.create_music(model="music_v1", prompt=f"upbeat pop {m}", duration=10),
        "transcription": c.create_transcription(model="whisper", audio_url=f"{files_url}/a.mp3?v={m}"),
    }


EXPECTED_MEDIA = {"image": "image/", "video": "video/", "speech": "audio/", "music": "audio/"}


def _check_finished(created: dict[str, Job], finished: dict[str, Job]) -> None:
    for capability, job in created.items():
        assert job.job_id.startswith("job_") and job.status in ("queued", "processing", "completed")
        assert job.cache_status == "MISS" and not job.replayed
        done = finished[capability]
        assert done.status == "completed", (capability, done)
        assert done.job_id == job.job_id and done.completed_at and done.output and done.output.url
        assert done.raise_for_status() is done
        if capability in EXPECTED_MEDIA:
            assert done.output.media_type.startswith(EXPECTED_MEDIA[capability]), done.output


def test_every_capability_created_and_followed_over_sse(key, base, files_url):
    rec = Recorder()
    with GatewayClient(key, base, transport=rec) as c:
        created = _create_all(c, files_url, _u())
        updates: list[Job] = []
        finished = {cap: c.wait_for_job(job, timeout=30, on_update=updates.append) for cap, job in created.items()}
        assert c.get_job(created["image"].job_id) == finished["image"]
    _check_finished(created, finished)
    assert created["image"].model == "fal:flux-schnell" and created["speech"].model.startswith("elevenlabs:")
    # Followed on the stream: one per job, no polling GETs.
    assert len(rec.paths("/stream")) == 5
    assert [p for m, p, _ in rec.seen if m == "GET" and p.startswith("/v1/jobs/") and not p.endswith("/stream")] \
        == [f"/v1/jobs/{created['image'].job_id}"]  # the explicit get_job
    assert updates[-1].status == "completed" and {u.job_id for u in updates} == {j.job_id for j in created.values()}


def test_download_writes_a_valid_file(gw, tmp_path):
    job = gw.wait_for_job(gw.create_image(model="flux-schnell", prompt=f"a cat {_u()}"), timeout=30)
    progress: list[tuple[int, int | None]] = []
    path = gw.download(job, tmp_path, on_progress=lambda done, total: progress.append((done, total)))
    assert path == tmp_path / f"{job.job_id}.png"
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 0
    assert progress and progress[-1][0] == path.stat().st_size == progress[-1][1]
    assert gw.download(job.output.url, tmp_path / "again.png").read_bytes() == path.read_bytes()
    assert not list(tmp_path.glob("*.part"))


def test_cache_hit_and_bypass_headers(gw):
    body = {"model": "flux-schnell", "prompt": f"cached {_u()}"}
    first = gw.wait_for_job(gw.create_image(**body), timeout=30)
    hit = gw.create_image(**body)
    assert hit.status == "completed" and hit.cache and hit.cache.hit and hit.cache_status == "HIT"
    assert hit.cache_headers.key and hit.cache_headers.key.startswith("sha256:") and hit.cache_headers.ttl > 0
    assert hit.output.url != first.output.url  # each job has its own output URL
    bypass = gw.create_image(**body, cache_control="no-store")
    assert bypass.cache_status == "BYPASS" and not (bypass.cache and bypass.cache.hit)
    assert gw.wait_for_job(bypass, timeout=30).status == "completed"


def test_stream_resumed_with_last_event_id_after_a_break(key, base):
    cut = CutFirstStream()
    with GatewayClient(key, base, transport=cut) as c:
        job = c.create_image(model="flux-schnell", prompt=f"resume {_u()}", provider_options={"sim": {"latency": 1}})
        updates: list[str] = []
        done = c.wait_for_job(job, timeout=30, on_update=lambda j: updates.append(j.status))
    assert done.status == "completed"
    streams = [h for m, p, h in cut.seen if p.endswith("/stream")]
    assert len(streams) >= 2 and "last-event-id" not in streams[0]
    assert streams[1]["last-event-id"].count("-") == 1  # the id of the first event, as sent by the server
    assert updates[0] == "queued" and updates[-1] == "completed" and len(updates) == len(set(updates))


def test_polling_when_sse_is_off_refused_or_broken(key, base):
    for transport, sse, streams in ((Recorder(), False, 0), (StreamRefused(), True, 1), (StreamBroken(), True, 3)):
        with GatewayClient(key, base, transport=transport, sse=sse) as c:
            job = c.create_speech(model="eleven_v3", text=f"poll {_u()}", provider_options={"sim": {"latency": 2}})
            done = c.wait_for_job(job, timeout=30, poll_interval=0.1)
        assert done.status == "completed" and done.output.media_type.startswith("audio/")
        polls = [p for m, p, _ in transport.seen if m == "GET" and p == f"/v1/jobs/{job.job_id}"]
        assert len(polls) >= 2
        assert len(transport.paths("/stream")) == streams


def test_a_stream_opened_long_before_the_deadline_is_reopened_to_keep_it():
    now = [0.0]
    w = Waiter("job_x", timeout=30, poll_interval=0.1, max_poll_interval=1, request_timeout=10, use_sse=True,
               on_update=None, clock=lambda: now[0])
    step = w.next()
    assert isinstance(step, Stream) and step.read_timeout == 30 and "Last-Event-ID" not in step.headers
    assert w.line("event: status") is None and w.line("id: 5-0") is None
    assert w.line('data: {"job_id": "job_x", "status": "queued", "model": "m", "created_at": "t"}') is None
    assert w.line("") is None and w.job.status == "queued"
    now[0] = 5.0
    assert w.line(": keepalive") is RECONNECT  # a silent server could now keep us 5 s past the deadline
    step = w.next()
    assert step.read_timeout == 25 and step.headers["Last-Event-ID"] == "5-0"
    now[0] = 30.0
    with pytest.raises(WaitTimeout):
        w.line("")


def test_failed_and_cancelled_jobs_are_returned_not_raised(gw):
    failed = gw.wait_for_job(gw.create_image(model="flux-schnell", prompt=f"bad {_u()}",
                                             provider_options={"sim": {"fail": "NSFW content detected"}}), timeout=30)
    assert failed.status == "failed" and "NSFW" in failed.error
    with pytest.raises(JobFailed, match="NSFW") as info:
        failed.raise_for_status()
    assert info.value.job is failed

    slow = gw.create_video(model="kling-v3", prompt=f"slow {_u()}", provider_options={"sim": {"latency": 5}})
    assert gw.cancel_job(slow.job_id) is None
    assert gw.get_job(slow.job_id).status == "cancelled"
    cancelled = gw.wait_for_job(slow.job_id, timeout=10)
    assert cancelled.status == "cancelled" and cancelled.completed_at
    with pytest.raises(JobFailed):
        cancelled.raise_for_status()
    gw.cancel_job(failed.job_id)  # no effect on a finished job
    assert gw.get_job(failed.job_id).status == "failed"


def test_wait_timeout(gw):
    job = gw.create_image(model="flux-schnell", prompt=f"slow {_u()}", provider_options={"sim": {"latency": 5}})
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as info:
        gw.wait_for_job(job, timeout=1)
    assert 0.9 < time.monotonic() - started < 3
    assert isinstance(info.value, TimeoutError) and info.value.job_id == job.job_id
    assert info.value.job is not None and info.value.job.status in ("queued", "processing")
    gw.cancel_job(job.job_id)


# -- files ----------------------------------------------------------------------------------------


def test_upload_path_bytes_and_file_object_deduplicated(gw, tmp_path):
    png = media.png_bytes(48, 32, seed=int(_u()[:6], 16))
    path = tmp_path / "photo.png"
    path.write_bytes(png)
    first = gw.upload_file(path)
    assert not first.deduplicated and first.media_type == "image/png" and first.size == len(png)
    assert first.hash == "sha256:" + hashlib.sha256(png).hexdigest() and "/u/" in first.url
    for again in (gw.upload_file(path), gw.upload_file(png), gw.upload_file(io.BytesIO(png))):
        assert again.deduplicated and again.file_id == first.file_id and again.url == first.url
    assert gw.get_file(first.file_id) == first
    # Not seekable: no hash up front, streamed once; the gateway still finds the same bytes.
    r, w = os.pipe()
    os.write(w, png)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        assert gw.upload_file(pipe, "image/png").file_id == first.file_id
    # An uploaded file as an input: image-to-video.
    job = gw.wait_for_job(gw.create_video(model="kling-v3", prompt=f"comes alive {_u()}", files=[first.url]),
                          timeout=30)
    assert job.status == "completed" and job.output.media_type.startswith("video/")


def test_large_upload_is_streamed_and_deduplicated_without_resending(gw, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024) + _u().encode())
    first = gw.upload_file(path)
    assert first.size == path.stat().st_size and not first.deduplicated
    again = gw.upload_file(path)
    assert again.deduplicated and again.file_id == first.file_id
    with open(tmp_path / "huge.bin", "wb") as f:  # sparse: refused from its Content-Length, before the body
        f.truncate(50 * 1024 * 1024 + 1)
    with pytest.raises(PayloadTooLargeError) as info:
        gw.upload_file(tmp_path / "huge.bin")
    assert info.value.status_code == 413


# -- job list -------------------------------------------------------------------------------------


def test_list_and_iter_jobs(gw):
    m = _u()
    ids = [gw.create_image(model="flux-schnell", prompt=f"list {m} {i}").job_id for i in range(3)]
    speech = gw.create_speech(model="eleven_v3", text=f"list {m}")
    page = gw.list_jobs(limit=2)
    assert len(page.jobs) == 2 and page.next_cursor
    assert [j.job_id for j in page.jobs] == [speech.job_id, ids[2]]  # newest first
    rest = gw.list_jobs(limit=10, cursor=page.next_cursor)
    assert [j.job_id for j in rest.jobs] == [ids[1], ids[0]] and rest.next_cursor is None
    assert [j.job_id for j in gw.iter_jobs(page_size=1)] == [speech.job_id, *reversed(ids)]
    assert [j.job_id for j in gw.iter_jobs(capability="speech")] == [speech.job_id]
    assert {j.job_id for j in gw.list_jobs(model="flux-schnell").jobs} == set(ids)
    for job_id in ids + [speech.job_id]:
        gw.wait_for_job(job_id, timeout=30)
    assert len(gw.list_jobs(status="completed", limit=100).jobs) == 4


# -- errors ---------------------------------------------------------------------------------------


def test_errors_carry_the_spec_fields(gw, key, base, api_url):
    with pytest.raises(ValidationError) as info:
        gw.create_image(model="no-such-model", prompt="x")
    err = info.value
    assert err.status_code == 400 and err.error == "ValidationError" and err.field == "model" and err.message
    assert isinstance(err, GatewayAPIError) and "model" in str(err)

    with pytest.raises(ValidationError) as info:
        gw.create_speech(model="eleven_v3", text="hi", voice="nobody")
    assert info.value.field == "voice"

    with pytest.raises(NotFoundError) as info:
        gw.get_job("job_" + "0" * 32)
    assert info.value.status_code == 404 and info.value.error == "NotFoundError"
    with pytest.raises(NotFoundError):
        gw.cancel_job("job_" + "0" * 32)
    with pytest.raises(NotFoundError):
        gw.wait_for_job("job_" + "0" * 32, timeout=5)
    with pytest.raises(NotFoundError):
        gw.get_job("../files/x")  # an id stays one path segment

    with GatewayClient("gg_live_not_a_key", base) as bad, pytest.raises(AuthError) as info:
        bad.list_jobs()
    assert info.value.status_code == 401 and info.value.error == "AuthError"

    with GatewayClient(key, f"http://127.0.0.1:{procs.free_port()}/v1", timeout=2) as down:
        with pytest.raises(GatewayConnectionError):
            down.get_job("job_x")


def test_idempotency_key(gw):
    k = f"idem-{_u()}"
    first = gw.create_image(model="flux-schnell", prompt=f"idem {k}", idempotency_key=k)
    again = gw.create_image(model="flux-schnell", prompt=f"idem {k}", idempotency_key=k)
    assert again.job_id == first.job_id and again.replayed and not first.replayed
    with pytest.raises(UnprocessableError) as info:
        gw.create_image(model="flux-schnell", prompt=f"another {k}", idempotency_key=k)
    assert info.value.status_code == 422 and info.value.field == "Idempotency-Key"


def test_non_json_error_bodies_and_unexpected_statuses():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/jobs"):
            return httpx.Response(502, text="<html>Bad Gateway</html>", headers={"Content-Type": "text/html"})
        return httpx.Response(418, content=b"")

    with GatewayClient("k", "http://gw.invalid/v1", transport=httpx.MockTransport(answer)) as c:
        with pytest.raises(ProviderError) as info:
            c.list_jobs()
        assert info.value.status_code == 502 and "Bad Gateway" in info.value.message
        with pytest.raises(GatewayAPIError) as info:
            c.get_job("job_x")
        assert info.value.status_code == 418 and type(info.value) is GatewayAPIError


def test_provider_keys_become_byok_headers(gw, rds):
    job = gw.create_image(model="flux-schnell", prompt=f"byok {_u()}", provider_keys={"fal": "my-own-fal-key"},
                          headers={"X-Test": "1"})
    assert rds.hget(f"gengate:job:{job.job_id}", "byok") == b"true"
    assert gw.wait_for_job(job, timeout=30).status == "completed"


def test_reference_endpoints(gw):
    assert "rachel" in {v.voice_id for v in gw.voices()}
    models = gw.models("speech")
    assert models and all(m["capability"] == "speech" for m in models)


# -- media processing -----------------------------------------------------------------------------


@ffmpeg
def test_media_helpers(gw, files_url):
    m = _u()
    figures = gw.probe(f"{files_url}/clip.mp4?v={m}")
    assert figures.width == 64 and figures.height == 64 and figures.duration and figures.duration > 0.5
    clip = gw.upload_file(media.mp4_bytes(64, 64, 2.0) + m.encode(), "video/mp4").url
    jobs = {
        "trim": gw.trim(clip, start=0, duration=1),
        "resize": gw.resize(f"{files_url}/p.png?v={m}", 32, 16, fit="stretch"),
        "slice": gw.slice(clip, count=2, thumbnails=False),
        "ffmpeg": gw.ffmpeg("-i {{in_1}} -vf scale=32:-2 {{out_1}}", [clip], ["small.mp4"]),
    }
    done = {op: gw.wait_for_job(job, timeout=60) for op, job in jobs.items()}
    assert all(j.status == "completed" for j in done.values()), done
    assert len(done["slice"].output.metadata["segments"]) == 2
    assert done["resize"].output.media_type == "image/png"


# -- the async client -----------------------------------------------------------------------------


def test_async_generation_waiting_and_download(key, base, files_url, tmp_path):
    async def scenario():
        async with AsyncGatewayClient(key, base, timeout=10) as c:
            m = _u()
            jobs = await asyncio.gather(
                c.create_image(model="flux-schnell", prompt=f"sunset {m}"),
                c.create_video(model="kling-v3", prompt=f"waves {m}", duration=5),
                c.create_speech(model="eleven_v3", text=f"Hello {m}", voice="rachel"),
                c.create_music(model="music_v1", prompt=f"pop {m}"),
                c.create_transcription(model="whisper", audio_url=f"{files_url}/a.mp3?v={m}"),
            )
            created = dict(zip(["image", "video", "speech", "music", "transcription"], jobs))
            updates: list[Job] = []
            finished = await asyncio.gather(*(c.wait_for_job(j, timeout=30, on_update=updates.append) for j in jobs))
            _check_finished(created, dict(zip(created, finished)))
            assert await c.get_job(jobs[0].job_id) == finished[0]
            path = await c.download(finished[0], tmp_path / "out.png")
            with Image.open(path) as img:
                assert img.format == "PNG"
            hit = await c.create_image(model="flux-schnell", prompt=f"sunset {m}")
            assert hit.cache_status == "HIT" and hit.status == "completed"
            return updates

    updates = asyncio.run(scenario())
    assert updates and updates[-1].status == "completed"


def test_async_jobs_files_errors_and_timeouts(key, base, tmp_path):
    async def scenario():
        async with AsyncGatewayClient(key, base, timeout=10) as c, \
                AsyncGatewayClient(key, base, timeout=10, sse=False) as polling:
            m = _u()
            # cancel, and a cancelled job returned by wait_for_job
            slow = await c.create_video(model="kling-v3", prompt=f"slow {m}", provider_options={"sim": {"latency": 5}})
            with pytest.raises(WaitTimeout):
                await c.wait_for_job(slow, timeout=0.8)
            await c.cancel_job(slow.job_id)
            assert (await c.wait_for_job(slow.job_id, timeout=10)).status == "cancelled"
            # polling fallback
            job = await polling.create_image(model="flux-schnell", prompt=f"poll {m}")
            assert (await polling.wait_for_job(job, timeout=30, poll_interval=0.1)).status == "completed"
            # list and iterate
            page = await c.list_jobs(limit=1)
            assert [j.job_id for j in page.jobs] == [job.job_id] and page.next_cursor
            assert [j.job_id async for j in c.iter_jobs(page_size=1)] == [job.job_id, slow.job_id]
            # uploads: a path (streamed), then the same bytes again
            png = media.png_bytes(40, 30, seed=int(m[:6], 16))
            (tmp_path / "a.png").write_bytes(png)
            first = await c.upload_file(tmp_path / "a.png")
            assert not first.deduplicated and first.media_type == "image/png"
            again = await c.upload_file(png)
            assert again.deduplicated and again.file_id == first.file_id
            assert await c.get_file(first.file_id) == first
            # errors
            with pytest.raises(ValidationError) as info:
                await c.create_video(model="no-such-model", prompt="x")
            assert info.value.field == "model"
            with pytest.raises(NotFoundError):
                await c.get_job("job_" + "0" * 32)
            with pytest.raises(UnprocessableError):
                await c.create_music(model="music_v1", prompt=f"a {m}", idempotency_key=m)
                await c.create_music(model="music_v1", prompt=f"b {m}", idempotency_key=m)
            async with AsyncGatewayClient("gg_live_nope", base) as bad:
                with pytest.raises(AuthError):
                    await bad.get_job(job.job_id)
            assert "rachel" in {v.voice_id for v in await c.voices()}
            assert await c.models("music")

    asyncio.run(scenario())


@ffmpeg
def test_async_media_helpers(key, base, files_url):
    async def scenario():
        async with AsyncGatewayClient(key, base, timeout=10) as c:
            m = _u()
            assert (await c.probe(f"{files_url}/c.mp4?v={m}")).width == 64
            url = f"{files_url}/c.mp4?v={m}"
            jobs = await asyncio.gather(c.trim(url, start=0, end=0.5), c.resize(f"{files_url}/p.png?v={m}", 20, 20),
                                        c.slice(url, every=0.5), c.ffmpeg("-i {{in_1}} {{out_1}}", [url], ["o.mp4"]))
            done = await asyncio.gather(*(c.wait_for_job(j, timeout=60) for j in jobs))
            assert [j.status for j in done] == ["completed"] * 4, done

    asyncio.run(scenario())


# -- shape ----------------------------------------------------------------------------------------


def test_sync_and_async_clients_have_the_same_methods():
    def surface(cls):
        return {name: [p for p in inspect.signature(fn).parameters] for name, fn in inspect.getmembers(cls)
                if not name.startswith("_") and callable(fn)}

    assert surface(GatewayClient) == surface(AsyncGatewayClient)
    assert all(inspect.iscoroutinefunction(getattr(AsyncGatewayClient, n)) or n == "iter_jobs"
               for n in surface(AsyncGatewayClient))


def test_sse_decoder():
    d = SSEDecoder()
    lines = ["event: status", "id: 1-0", 'data: {"a":', "data: 1}", "", ": keepalive", "", "data:x", ""]
    events = [e for e in map(d.feed, lines) if e]
    assert [(e.event, e.id, e.data) for e in events] == [("status", "1-0", '{"a":\n1}'), ("message", "1-0", "x")]


def test_environment_defaults(monkeypatch):
    monkeypatch.setenv("GENGATE_API_KEY", "gg_live_env")
    monkeypatch.setenv("GENGATE_BASE_URL", "http://example.test/v1/")
    with GatewayClient() as c:
        assert c.api_key == "gg_live_env" and c.base_url == "http://example.test/v1"
    monkeypatch.delenv("GENGATE_API_KEY")
    with pytest.raises(ValueError, match="GENGATE_API_KEY"):
        GatewayClient()


def test_account_methods(gw, rds):
    """me, balance and usage, sync and async, against the account endpoints."""
    from gengate.config.catalog import BY_NAME
    from gengate.jobs import accounts

    me = gw.me()
    assert me.user_id.startswith("user_") and me.email == "test@example.com"
    before = gw.balance()
    assert before.currency == "usd" and before.balance_cents > 0
    job = gw.wait_for_job(gw.create_image(model="flux-schnell", prompt=f"billed {_u()}"), timeout=30)
    assert job.status == "completed"
    price = BY_NAME["flux-schnell"].price_cents
    assert gw.balance().balance_cents == before.balance_cents - price
    usage = gw.usage(from_=date.today(), to=date.today())
    assert [r.job_id for r in usage.usage] == [job.job_id] and usage.total_cents == price
    assert usage.usage[0].cost_cents == price and usage.usage[0].cache_hit is False
    assert accounts.ledger_sum(rds, me.user_id) == gw.balance().balance_cents

    async def run():
        async with AsyncGatewayClient(gw.api_key, gw.base_url) as ag:
            return await ag.me(), await ag.balance(), await ag.usage()

    ame, abalance, ausage = asyncio.run(run())
    assert ame == me and abalance.balance_cents == before.balance_cents - price and ausage.total_cents == price
