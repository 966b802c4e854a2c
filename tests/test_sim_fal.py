"""The Fal simulator against the real fal-client SDK, over real HTTP.

The simulator runs as a subprocess (``python -m gengate.sim --port 0``), exactly as the
gateway's own end-to-end runs will start it; fal-client is pointed at it by its
``QUEUE_URL_FORMAT`` module constant, which the SDK reads at call time.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import wave
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import fal_client
import fal_client.client as fal_sdk
import httpx
import pytest
from fal_client.client import Completed, FalClientHTTPError, InProgress, Queued, SyncRequestHandle
from PIL import Image

from gengate.adapters.base import CancelVerdict
from gengate.adapters.fal import FalAdapter, outputs_from_result
from gengate.config.settings import ProviderSettings
from gengate.config.schemas import endpoints, published
from gengate.sim import media
from gengate.sim.fal import FalRequest, FalSimulator
from gengate.sim.schema import validate

IMAGE_APP = "fal-ai/flux/schnell"
VIDEO_APP = "fal-ai/kling-video/v3/pro/text-to-video"


# -- fixtures -------------------------------------------------------------------

@pytest.fixture(scope="module")
def provider_base(private_sim_url: str) -> Iterator[str]:
    """The Fal mount of this module's private simulator (conftest), with fal-client's queue aimed at it
    for this module, then restored. It replaces conftest's `provider_base`, so conftest's `control`
    (and `client`, which takes it) bring the aim along."""
    assert private_sim_url.startswith("http://127.0.0.1:"), private_sim_url
    saved = fal_sdk.QUEUE_URL_FORMAT
    fal_sdk.QUEUE_URL_FORMAT = f"{private_sim_url}/fal/"
    try:
        yield f"{private_sim_url}/fal"
    finally:
        fal_sdk.QUEUE_URL_FORMAT = saved


@pytest.fixture()
def client(control: httpx.Client) -> fal_client.SyncClient:
    return fal_client.SyncClient(key="test")


def sim_record(control: httpx.Client, request_id: str) -> dict[str, Any]:
    answer = control.get(f"/_sim/requests/{request_id}")
    answer.raise_for_status()
    return answer.json()


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# -- media ----------------------------------------------------------------------

def test_media_files_decode() -> None:
    assert Image.open(io.BytesIO(media.png_bytes(320, 200, seed=3))).size == (320, 200)
    assert media.png_bytes(64, 64, 1) != media.png_bytes(64, 64, 2)

    with av.open(io.BytesIO(media.mp4_bytes(160, 90, seconds=0.5, fps=8))) as clip:
        frames = list(clip.decode(video=0))
    assert len(frames) >= 1 and (frames[0].width, frames[0].height) == (160, 90)

    with wave.open(io.BytesIO(media.wav_bytes(0.25, rate=8000))) as wav:
        assert wav.getnframes() == 2000 and wav.getframerate() == 8000

    audio = media.mp3_bytes(0.5)
    if media.has_mp3_encoder():
        with av.open(io.BytesIO(audio)) as mp3:
            assert mp3.streams.audio[0].codec_context.name.startswith("mp3")
            assert sum(1 for _ in mp3.decode(audio=0)) >= 1
    else:
        assert audio[:4] == b"RIFF"


# -- lifecycle ----------------------------------------------------------------

def test_image_lifecycle_and_png_download(client: fal_client.SyncClient, control: httpx.Client) -> None:
    handle = client.submit(IMAGE_APP, {"prompt": "a fox", "image_size": {"width": 320, "height": 240},
                                       "sim": {"queue_time": 0.3, "latency": 0.3}})
    assert handle.response_url.startswith(fal_sdk.QUEUE_URL_FORMAT + "fal-ai/flux/requests/")
    seen: list[type] = []
    while not seen or seen[-1] is not Completed:
        state = handle.status(with_logs=True)
        if not seen or seen[-1] is not type(state):
            seen.append(type(state))
        if isinstance(state, InProgress):
            assert isinstance(state.logs, list) and state.logs[0]["message"]
        time.sleep(0.05)
    assert seen == [Queued, InProgress, Completed]
    assert isinstance(state, Completed) and state.error is None
    assert state.metrics["inference_time"] == pytest.approx(0.3, abs=0.05)

    result = handle.get()
    image = result["images"][0]
    assert (image["width"], image["height"], image["content_type"]) == (320, 240, "image/png")
    assert result["prompt"] == "a fox" and result["has_nsfw_concepts"] == [False]
    download = httpx.get(image["url"])
    assert download.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(download.content)).size == (320, 240)

    record = sim_record(control, handle.request_id)
    assert record["status"] == "COMPLETED" and record["outcome"] == "ok"
    assert record["input"]["sim"]["queue_time"] == 0.3 and record["result_calls"] == 1


def test_result_before_completion_is_400(client: fal_client.SyncClient) -> None:
    handle = client.submit(IMAGE_APP, {"prompt": "x", "sim": {"latency": 5}})
    assert isinstance(handle.status(), InProgress)
    early = httpx.get(handle.response_url, headers={"Authorization": "Key test"})
    assert (early.status_code, early.json()) == (400, {"detail": "Request is still in progress"})


def test_video_app_returns_playable_mp4(client: fal_client.SyncClient) -> None:
    handle = client.submit(VIDEO_APP, {"prompt": "waves", "aspect_ratio": "16:9", "duration": "5",
                                       "sim": {"seconds": 1, "latency": 0.1}})
    result = handle.get()
    video = result["video"]
    assert video["content_type"] == "video/mp4"
    download = httpx.get(video["url"])
    assert download.headers["content-type"] == "video/mp4" and len(download.content) == video["file_size"]
    with av.open(io.BytesIO(download.content)) as clip:
        frames = list(clip.decode(video=0))
    assert len(frames) == 8 and (frames[0].width, frames[0].height) == (256, 144)


@pytest.mark.parametrize(("app", "body", "knob", "key"), [
    ("fal-ai/elevenlabs/tts/eleven-v3", {"text": "hi"}, None, "audio"),
    ("fal-ai/whisper", {"audio_url": "https://files.example.test/a.mp3"}, None, "text"),
    (IMAGE_APP, {"prompt": "hi"}, "video", "video"),
])
def test_output_kinds(client: fal_client.SyncClient, app: str, body: dict, knob: str | None, key: str) -> None:
    result = client.submit(app, {**body, "sim": {"output": knob} if knob else {}}).get()
    assert key in result
    if key == "audio":
        assert httpx.get(result["audio"]["url"]).content[:3] in (b"ID3", b"RIF")
    if key == "text":
        assert result["chunks"][0]["timestamp"] == [0.0, 1.0]


# -- cancel ---------------------------------------------------------------------

def test_cancel_while_queued(client: fal_client.SyncClient, control: httpx.Client) -> None:
    handle = client.submit(IMAGE_APP, {"prompt": "x", "sim": {"queue_time": 30}})
    assert isinstance(handle.status(), Queued)
    handle.cancel()
    state = handle.status()
    assert isinstance(state, Completed)
    assert (state.error, state.error_type) == ("Request cancelled", "client_cancelled")
    with pytest.raises(FalClientHTTPError) as caught:
        handle.get()
    assert caught.value.status_code == 400
    record = sim_record(control, handle.request_id)
    assert record["cancelled"] is True and record["cancel_calls"] == 1 and record["outcome"] == "cancelled"


def test_cancel_after_completion_is_400(client: fal_client.SyncClient, control: httpx.Client) -> None:
    handle = client.submit(IMAGE_APP, {"prompt": "x"})
    handle.get()
    with pytest.raises(FalClientHTTPError) as caught:
        handle.cancel()
    assert caught.value.status_code == 400
    assert caught.value.response.json() == {"status": "ALREADY_COMPLETED"}
    record = sim_record(control, handle.request_id)
    assert record["cancelled"] is False and record["cancel_calls"] == 1

    with pytest.raises(FalClientHTTPError) as missing:
        client.cancel(IMAGE_APP, "no-such-request")
    assert missing.value.status_code == 404


def test_adapter_cancel_says_whether_a_runner_had_it(client: fal_client.SyncClient, provider_base: str) -> None:
    """Fal answers 202 to a cancel both in the queue and in progress: the adapter's verdict comes from
    the status after it (queued and never run: confirmed; a runner's time or logs: too late)."""
    adapter = FalAdapter(ProviderSettings(base_url=provider_base, timeout=5.0, connect_timeout=2.0))

    def handle_of(h: SyncRequestHandle) -> dict[str, str]:
        return {"request_id": h.request_id, "response_url": h.response_url, "status_url": h.status_url,
                "cancel_url": h.cancel_url}

    queued = handle_of(client.submit(IMAGE_APP, {"prompt": "q", "sim": {"queue_time": 30}}))
    assert adapter.cancel(queued, "test") is CancelVerdict.CONFIRMED_BEFORE_START
    assert adapter.cancel(queued, "test") is CancelVerdict.CONFIRMED_BEFORE_START  # asked again (400), the same
    running = handle_of(client.submit(IMAGE_APP, {"prompt": "r", "sim": {"latency": 30}}))
    time.sleep(0.05)
    assert adapter.cancel(running, "test") is CancelVerdict.TOO_LATE
    done = client.submit(IMAGE_APP, {"prompt": "d"})
    done.get()
    assert adapter.cancel(handle_of(done), "test") is CancelVerdict.TOO_LATE
    gone = {k: v.replace(queued["request_id"], "no-such-request") for k, v in queued.items()}
    assert adapter.cancel(gone, "test") is CancelVerdict.UNKNOWN


# -- errors ---------------------------------------------------------------------

@pytest.mark.parametrize("status", [401, 403, 422, 500])
def test_submit_status_knob(client: fal_client.SyncClient, control: httpx.Client, status: int) -> None:
    with pytest.raises(FalClientHTTPError) as caught:
        client.submit(IMAGE_APP, {"prompt": "x", "sim": {"submit_status": status}})
    assert caught.value.status_code == status
    if status == 403:
        assert "Exhausted balance" in str(caught.value)
    assert control.get("/_sim/requests").json()["requests"] == []


def test_submit_429_is_retried_by_the_sdk(client: fal_client.SyncClient, control: httpx.Client) -> None:
    knobs = {"submit_status": 429, "submit_status_times": 2}  # fal-client retries 429 itself
    handle = client.submit(IMAGE_APP, {"prompt": "x", "sim": knobs})
    assert handle.get()["images"]
    stats = control.get("/_sim/stats").json()
    assert (stats["submit_attempts"], stats["submit_rejected"], stats["submissions"]) == (3, 2, 1)


def test_auth_is_required_and_checked(provider_base: str, control: httpx.Client) -> None:
    assert httpx.post(f"{provider_base}/{IMAGE_APP}", json={}).status_code == 401
    bearer = httpx.post(f"{provider_base}/{IMAGE_APP}", json={}, headers={"Authorization": "Bearer abc"})
    assert bearer.status_code == 401
    control.post("/_sim/config", json={"keys": ["good-key"]}).raise_for_status()
    with pytest.raises(FalClientHTTPError) as caught:
        fal_client.SyncClient(key="bad-key").submit(IMAGE_APP, {"prompt": "x"})
    assert caught.value.status_code == 401
    handle = fal_client.SyncClient(key="good-key").submit(IMAGE_APP, {"prompt": "x"})
    assert sim_record(control, handle.request_id)["key_suffix"] == "-key"


@pytest.mark.parametrize(("fail_status", "detail_type"), [(422, list), (500, str)])
def test_fail_knob(client: fal_client.SyncClient, fail_status: int, detail_type: type) -> None:
    handle = client.submit(IMAGE_APP, {"prompt": "x", "sim": {"fail": "NSFW content detected",
                                                              "fail_status": fail_status}})
    state = handle.status(with_logs=True)
    assert isinstance(state, Completed) and state.error == "NSFW content detected"
    assert state.error_type and state.logs and state.logs[-1]["level"] == "ERROR"
    with pytest.raises(FalClientHTTPError) as caught:
        handle.get()
    assert caught.value.status_code == fail_status
    detail = caught.value.response.json()["detail"]
    assert isinstance(detail, detail_type)
    assert "NSFW content detected" in (detail[0]["msg"] if isinstance(detail, list) else detail)


def test_status_error_knob(client: fal_client.SyncClient, control: httpx.Client) -> None:
    handle = client.submit(IMAGE_APP, {"prompt": "x", "sim": {"status_error": {"status": 500, "times": 2}}})
    for _ in range(2):
        with pytest.raises(FalClientHTTPError) as caught:
            handle.status()
        assert caught.value.status_code == 500
    assert isinstance(handle.status(), Completed)
    assert sim_record(control, handle.request_id)["status_calls"] == 3

    # An nginx-looking 502 from the edge is one the SDK retries by itself.
    flaky = client.submit(IMAGE_APP, {"prompt": "x", "sim": {
        "status_error": {"status": 502, "times": 2, "ingress": True}}})
    assert isinstance(flaky.status(), Completed)
    assert sim_record(control, flaky.request_id)["status_calls"] == 3


def test_start_timeout_header(client: fal_client.SyncClient) -> None:
    handle = client.submit(IMAGE_APP, {"prompt": "x", "sim": {"queue_time": 10}},
                           headers={"X-Fal-Request-Timeout": "0.2"})
    time.sleep(0.25)
    state = handle.status()
    assert isinstance(state, Completed) and state.error_type == "request_timeout"
    with pytest.raises(FalClientHTTPError) as caught:
        handle.get()
    assert caught.value.status_code == 504


# -- webhooks -------------------------------------------------------------------

class _Receiver(BaseHTTPRequestHandler):
    """Records webhook POSTs; paths under /flaky fail the first time they are hit."""

    received: list[tuple[str, dict[str, Any]]] = []
    failed_once: set[str] = set()

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/flaky") and self.path not in self.failed_once:
            self.failed_once.add(self.path)
            self.send_response(500)
        else:
            self.received.append((self.path, body))
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture()
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    _Receiver.received, _Receiver.failed_once = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    finally:
        server.shutdown()
        server.server_close()


def test_webhooks(client: fal_client.SyncClient, control: httpx.Client,
                  receiver: tuple[str, list[tuple[str, dict[str, Any]]]]) -> None:
    url, received = receiver
    ok = client.submit(IMAGE_APP, {"prompt": "x", "sim": {"latency": 0.2}}, webhook_url=f"{url}/flaky/ok")
    bad = client.submit(IMAGE_APP, {"prompt": "x", "sim": {"fail": "boom"}}, webhook_url=f"{url}/bad")
    gone = client.submit(IMAGE_APP, {"prompt": "x", "sim": {"queue_time": 30}}, webhook_url=f"{url}/gone")
    gone.cancel()
    wait_until(lambda: len(received) == 3)
    bodies = {path: body for path, body in received}

    assert bodies["/flaky/ok"]["request_id"] == ok.request_id
    assert bodies["/flaky/ok"]["status"] == "OK" and bodies["/flaky/ok"]["payload"]["images"]
    assert bodies["/flaky/ok"]["error"] is None
    assert bodies["/bad"]["status"] == "ERROR" and bodies["/bad"]["error"] == "Invalid status code: 422"
    assert bodies["/bad"]["payload"]["detail"][0]["msg"] == "boom"
    assert bodies["/gone"]["status"] == "ERROR" and bodies["/gone"]["request_id"] == gone.request_id

    # The receiver records a body before it answers; the simulator marks delivery once it has the answer.
    wait_until(lambda: sim_record(control, ok.request_id)["webhook"]["delivered"])
    hook = sim_record(control, ok.request_id)["webhook"]
    assert hook["delivered"] is True and hook["attempts"] == 2
    assert sim_record(control, bad.request_id)["webhook"]["attempts"] == 1


# -- control API, handles, async client --------------------------------------

def test_control_api_and_handles(client: fal_client.SyncClient, control: httpx.Client) -> None:
    ids = [client.submit(IMAGE_APP, {"prompt": str(i)}).request_id for i in range(3)]
    client.submit("fal-ai/flux-pro/v1.1", {"prompt": "other"})
    listed = control.get("/_sim/requests", params={"app_id": IMAGE_APP}).json()["requests"]
    assert sorted(r["request_id"] for r in listed) == sorted(ids)
    assert control.get("/_sim/stats").json()["submissions"] == 4

    with httpx.Client(headers={"Authorization": "Key test"}) as http:
        handle = SyncRequestHandle.from_request_id(http, IMAGE_APP, ids[0])
        assert isinstance(handle.status(), Completed)
    assert client.result(IMAGE_APP, ids[1])["images"]
    assert control.get(f"/_sim/requests/{ids[1]}").json()["result_calls"] == 1

    config = control.post("/_sim/config", json={"queue_time": 0.5, "latency": 0.1}).json()
    assert config["queue_time"] == 0.5
    queued = client.submit(IMAGE_APP, {"prompt": "queued"})
    assert isinstance(queued.status(), Queued)
    assert control.post("/_sim/reset").json()["config"]["queue_time"] == 0.0
    assert control.get("/_sim/requests").json()["requests"] == []
    assert httpx.get(str(control.base_url).rsplit("/fal", 1)[0] + "/healthz").json()["status"] == "ok"


def test_async_client(control: httpx.Client) -> None:
    async def run() -> dict[str, Any]:
        handle = await fal_client.AsyncClient(key="test").submit(
            IMAGE_APP, {"prompt": "async", "sim": {"queue_time": 0.1, "latency": 0.1}})
        return await handle.get()

    assert asyncio.run(run())["images"][0]["width"] == 256


def test_inputs_are_validated_as_fal_validates_them(client: fal_client.SyncClient, provider_base: str) -> None:
    """Against the endpoint's published schema (config/schemas/fal): a missing required field, a
    wrong type or a value outside an enum is a 422 with pydantic's detail list, and nothing is queued."""
    before = httpx.get(f"{provider_base}/_sim/stats").json()["submissions"]
    with pytest.raises(fal_client.client.FalClientHTTPError) as refused:
        client.submit("fal-ai/kling-video/v3/pro/image-to-video",
                      {"prompt": "x", "image_url": "https://files.example.test/a.png", "duration": 5})
    assert refused.value.status_code == 422
    detail = refused.value.response.json()["detail"]
    assert {(tuple(e["loc"]), e["type"]) for e in detail} == {(("body", "start_image_url"), "missing"),
                                                              (("body", "duration"), "enum")}
    assert httpx.get(f"{provider_base}/_sim/stats").json()["submissions"] == before
    # An endpoint fal publishes no schema for does not exist.
    with pytest.raises(fal_client.client.FalClientHTTPError) as unknown:
        client.submit("simalabs/sima-video-upscaler", {"video_url": "https://files.example.test/a.mp4"})
    assert unknown.value.status_code == 404


def test_unknown_fields_are_accepted_and_recorded(client: fal_client.SyncClient, provider_base: str) -> None:
    """fal takes fields an endpoint does not have and ignores them: the record lists them."""
    handle = client.submit(IMAGE_APP, {"prompt": "x", "aspect_ratio": "16:9", "image_size": "square_hd"})
    handle.get()
    record = httpx.get(f"{provider_base}/_sim/requests/{handle.request_id}").json()
    assert record["unknown_fields"] == ["aspect_ratio"]


def test_every_output_has_the_published_shape() -> None:
    """Each endpoint's simulated result validates against fal's published output schema, and the
    adapter finds the media in it."""
    simulator = FalSimulator()
    wrong = {}
    for app in endpoints("fal"):
        record = FalRequest(request_id="12345678-aaaa-bbbb-cccc-1234567890ab", app_id=app, root=app,
                            input={"prompt": "x"}, knobs={}, base_url="http://sim/fal", submitted_at=time.time(),
                            started=time.monotonic(), queue_time=0, latency=0, initial_position=0, key_suffix="",
                            headers={})
        output = simulator.shaped_output(record)
        problems = validate(published("fal", app)["output"], output)
        if problems or not outputs_from_result(output):
            wrong[app] = problems or "no media the adapter can find"
    assert wrong == {}
