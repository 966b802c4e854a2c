"""The Replicate simulator against the real `replicate` SDK, and the Replicate adapter against the
simulator, over real HTTP.

The whole simulator server runs as a subprocess (`gengate.procs.start_sim`), as the gateway's
end-to-end runs start it. The SDK and the adapter reach it at `<sim>/replicate` as their base URL.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import httpx
import pytest
import replicate
from PIL import Image
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput
from replicate.webhook import Webhooks

from gengate.adapters.base import CancelVerdict, Failed, Finished, Output, ProviderFailure, ProviderRequest, Running, Submitted
from gengate.adapters.replicate import _target, build_input, create, media_type_of, outputs_from_output
from gengate.config import schemas
from gengate.config.settings import ProviderSettings
from gengate.sim import schema
from gengate.sim.media import cutout_png

# Its tests reset the simulator and set its global config: a private one (conftest `control`).
PROVIDER = "replicate"
REMOVER = "851-labs/background-remover"
KEY = "r8_sim_test_key_0001"


# -- fixtures -------------------------------------------------------------------

@pytest.fixture()
def client(provider_base: str, control: httpx.Client) -> replicate.Client:
    return replicate.Client(api_token=KEY, base_url=provider_base)


@pytest.fixture()
def adapter(provider_base: str, control: httpx.Client) -> Any:
    return create(ProviderSettings(base_url=provider_base, timeout=5.0, connect_timeout=2.0))


def remover_request(marker: str, options: dict[str, Any] | None = None, *, endpoint: str = REMOVER,
                    image: str = "https://example.com/photo_320x240_s1.png") -> ProviderRequest:
    return ProviderRequest(job_id=marker, model="background-remover", capability="image", mode="background-removal",
                           endpoint=endpoint, params={"prompt": f"cut out {marker}", "files": [image]},
                           options={"marker": marker, **(options or {})})


def records(control: httpx.Client, marker: str | None = None) -> list[dict[str, Any]]:
    found = control.get("/_sim/requests").json()["requests"]
    return [r for r in found if marker is None or json.dumps(r["input"]).find(marker) >= 0]


def stats(control: httpx.Client) -> dict[str, Any]:
    return control.get("/_sim/stats").json()


def poll_until_done(adapter: Any, handle: dict[str, Any], key: str = KEY, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = adapter.poll(handle, key)
        if not isinstance(result, Running):
            return result
        assert time.monotonic() < deadline, "prediction did not finish in time"
        time.sleep(0.05)


def decode_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- the simulator, through the SDK --------------------------------------------------

def test_cutout_png_is_rgba_with_transparent_background() -> None:
    image = decode_png(cutout_png(120, 80, 3))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (120, 80)
    assert image.getpixel((0, 0))[3] == 0 and image.getpixel((60, 40))[3] == 255


def test_sdk_run_background_remover(client: replicate.Client, control: httpx.Client) -> None:
    """`replicate.run` sends `Prefer: wait` to the models endpoint and gets the finished prediction back."""
    output = client.run(REMOVER, input={"image": "https://example.com/cat_200x100_s5.png", "sim": {"latency": 0.2}})
    assert isinstance(output, str) and output.startswith("http://")  # only https:/data: become FileOutput
    answer = httpx.get(output)
    assert answer.headers["content-type"] == "image/png"
    image = decode_png(answer.content)
    assert image.mode == "RGBA" and image.size == (200, 100)  # a remover keeps the input's size
    [record] = records(control)
    assert record["status"] == "succeeded" and record["key_suffix"] == KEY[-4:]


def test_sdk_lifecycle_status_progress_and_metrics(client: replicate.Client, control: httpx.Client) -> None:
    prediction = client.models.predictions.create(
        model=REMOVER, input={"image": "https://example.com/a.png", "sim": {"queue_time": 0.3, "latency": 0.6}})
    assert prediction.status == "starting" and prediction.output is None
    assert prediction.urls["get"].endswith(f"/v1/predictions/{prediction.id}")
    assert prediction.version.startswith("dp-") and prediction.model == REMOVER
    time.sleep(0.55)
    prediction.reload()
    assert prediction.status == "processing" and prediction.started_at
    assert prediction.progress is not None and 0 < prediction.progress.percentage < 1
    prediction.wait()
    assert prediction.status == "succeeded" and prediction.completed_at
    assert prediction.metrics["predict_time"] == pytest.approx(0.6)
    assert isinstance(prediction.output, str) and prediction.output.endswith("_rgba.png")


def test_prefer_wait_holds_until_done_or_timeout(provider_base: str, control: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "Prefer": "wait=1"}
    url = f"{provider_base}/v1/models/black-forest-labs/flux-schnell/predictions"
    quick = httpx.post(url, headers=headers, json={"input": {"prompt": "x", "sim": {"latency": 0.2}}})
    assert quick.status_code == 201 and quick.headers["preference-applied"] == "wait=1"
    assert quick.json()["status"] == "succeeded" and isinstance(quick.json()["output"], list)

    started = time.monotonic()
    slow = httpx.post(url, headers=headers, json={"input": {"prompt": "x", "sim": {"latency": 5}}})
    assert 0.9 < time.monotonic() - started < 3
    assert slow.status_code == 201 and slow.json()["status"] == "starting"
    assert slow.headers["location"] == slow.json()["urls"]["get"]


def test_version_route_and_validation(client: replicate.Client, provider_base: str, control: httpx.Client) -> None:
    control.post("/_sim/config", json={"versions": {"abcdef0123456789": "stability-ai/sdxl"}})
    prediction = client.predictions.create(version="abcdef0123456789", input={"prompt": "a fox"})
    assert prediction.model == "stability-ai/sdxl" and prediction.version == "abcdef0123456789"
    output = client.run("stability-ai/sdxl:abcdef0123456789", input={"prompt": "x", "num_outputs": 2})
    assert isinstance(output, list) and len(output) == 2

    headers = {"Authorization": f"Bearer {KEY}"}
    missing = httpx.post(f"{provider_base}/v1/predictions", headers=headers, json={"input": {}})
    assert missing.status_code == 422 and missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["title"] == "Input validation failed"
    no_image = httpx.post(f"{provider_base}/v1/models/{REMOVER}/predictions", headers=headers, json={"input": {}})
    assert no_image.status_code == 422 and no_image.json()["invalid_fields"][0]["description"] == "image is required"
    assert records(control) and all(r["model"] == "stability-ai/sdxl" for r in records(control))


# -- the published input schema (config/schemas/replicate/851-labs__background-remover.json) ----------

def test_vendored_schema_is_the_published_one() -> None:
    published = schemas.published("replicate", REMOVER)
    assert published is not None and published["provider"] == "replicate" and not published["delisted"]
    assert published["source"].startswith("https://replicate.com/851-labs/background-remover/versions/a029dff3")
    inputs = published["input"]
    assert inputs["required"] == ["image"]
    assert {name: prop["type"] for name, prop in inputs["properties"].items()} == {
        "image": "string", "threshold": "number", "reverse": "boolean", "background_type": "string",
        "format": "string"}
    assert schema.validate(inputs, {"image": "https://e/x.png", "threshold": 0.5, "reverse": True,
                                    "background_type": "white", "format": "jpg"}) == []


def test_sdk_refused_input_is_replicates_422_and_nothing_is_recorded(client: replicate.Client,
                                                                      control: httpx.Client) -> None:
    with pytest.raises(ReplicateError) as caught:
        client.models.predictions.create(model=REMOVER, input={"threshold": "high", "reverse": "yes",
                                                               "sim": {"latency": 0}})
    error = caught.value
    assert error.status == 422 and error.title == "Input validation failed"
    assert error.detail == ("- input: image is required\n"
                            "- input.threshold: Invalid type. Expected: number, given: string\n"
                            "- input.reverse: Invalid type. Expected: boolean, given: string\n")
    assert stats(control)["submissions"] == 0 and stats(control)["submit_rejected"] == 1
    assert records(control) == []


def test_refusal_body_shape_over_http(provider_base: str, control: httpx.Client) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    url = f"{provider_base}/v1/models/{REMOVER}/predictions"
    answer = httpx.post(url, headers=headers, json={"input": {"image": "not a uri", "reverse": 1}})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == {
        "title": "Input validation failed", "status": 422,
        "detail": "- input.reverse: Invalid type. Expected: boolean, given: integer\n"
                  "- input.image: Does not match format 'uri'\n",
        "invalid_fields": [
            {"type": "invalid_type", "field": "input.reverse",
             "description": "Invalid type. Expected: boolean, given: integer"},
            {"type": "format", "field": "input.image", "description": "Does not match format 'uri'"}]}
    # a versioned request for the same model is checked against the same schema
    control.post("/_sim/config", json={"versions": {"a029dff38972b5fd": REMOVER}})
    versioned = httpx.post(f"{provider_base}/v1/predictions", headers=headers,
                           json={"version": "a029dff38972b5fd", "input": {"format": 3, "image": "https://e/x.png"}})
    assert versioned.status_code == 422
    assert versioned.json()["invalid_fields"] == [
        {"type": "invalid_type", "field": "input.format", "description": "Invalid type. Expected: string, given: integer"}]
    assert records(control) == [] and stats(control)["submissions"] == 0


def test_unknown_inputs_are_accepted_and_listed(client: replicate.Client, control: httpx.Client) -> None:
    prediction = client.models.predictions.create(
        model=REMOVER, input={"image": "https://e/x.png", "prompt": "a cat", "scale": 2,
                              "background_type": "green", "sim": {"latency": 0}})
    prediction.wait()
    assert prediction.status == "succeeded"
    [record] = records(control)
    assert record["unknown_fields"] == ["prompt", "scale"]  # the sim's own knob object is not counted
    other = client.models.predictions.create(model="black-forest-labs/flux-schnell", input={"prompt": "x"})
    assert other.status == "starting"  # no vendored schema: the sim's own checks only, nothing listed
    assert [r["unknown_fields"] for r in records(control) if r["model"] != REMOVER] == [[]]


@pytest.mark.parametrize(("model", "kind"), [("kwaivgi/kling-v2.1", "video"), ("minimax/music-01", "audio")])
def test_video_and_audio_outputs_decode(client: replicate.Client, model: str, kind: str) -> None:
    output = client.run(model, input={"prompt": "x", "duration": 1})
    data = httpx.get(output).content
    with av.open(io.BytesIO(data)) as container:
        streams = container.streams.video if kind == "video" else container.streams.audio
        assert len(streams) == 1 and sum(1 for _ in container.decode(streams[0])) >= 1


def test_auth_errors_are_problem_json(client: replicate.Client, provider_base: str, control: httpx.Client) -> None:
    bare = httpx.post(f"{provider_base}/v1/models/{REMOVER}/predictions", json={"input": {"image": "https://e/x.png"}})
    assert bare.status_code == 401 and bare.headers["content-type"] == "application/problem+json"
    assert bare.json() == {"title": "Unauthenticated", "detail": "You did not pass an authentication token",
                           "status": 401}
    control.post("/_sim/config", json={"keys": ["r8_only_this_one"]})
    with pytest.raises(ReplicateError) as caught:
        client.predictions.get("nope")
    assert caught.value.status == 401 and caught.value.title == "Unauthenticated"
    assert stats(control)["submissions"] == 0


def test_cancel_through_sdk(client: replicate.Client, control: httpx.Client) -> None:
    prediction = client.models.predictions.create(model=REMOVER, input={"image": "https://e/x.png",
                                                                       "sim": {"latency": 5}})
    prediction.cancel()
    assert prediction.status == "canceled" and prediction.completed_at and prediction.output is None
    [record] = records(control)
    assert record["cancelled"] and record["cancel_calls"] == 1 and stats(control)["cancels"] == 1


def test_adapter_cancel_says_whether_the_prediction_started(adapter: Any, control: httpx.Client) -> None:
    starting = adapter.submit(remover_request("c-starting", {"sim": {"queue_time": 30}}), KEY).handle
    assert adapter.cancel(starting, KEY) is CancelVerdict.CONFIRMED_BEFORE_START
    assert adapter.cancel(starting, KEY) is CancelVerdict.CONFIRMED_BEFORE_START  # asked again, the same
    running = adapter.submit(remover_request("c-running", {"sim": {"latency": 30}}), KEY).handle
    time.sleep(0.05)
    assert adapter.cancel(running, KEY) is CancelVerdict.TOO_LATE  # canceled, but it had started: billed
    done = adapter.submit(remover_request("c-done"), KEY).handle
    assert isinstance(poll_until_done(adapter, done), Finished)
    assert adapter.cancel(done, KEY) is CancelVerdict.TOO_LATE
    assert adapter.cancel({**done, "id": "no-such-prediction"}, KEY) is CancelVerdict.UNKNOWN


def test_stream_and_signed_webhooks(client: replicate.Client, control: httpx.Client) -> None:
    received: list[tuple[dict[str, str], str]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["content-length"])).decode()
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        prediction = client.models.predictions.create(
            model=REMOVER, input={"image": "https://e/x.png", "sim": {"queue_time": 0.1, "latency": 0.2}},
            webhook=hook, webhook_events_filter=["start", "completed"])
        events = list(prediction.stream())
        assert [e.event.value for e in events] == ["output", "done"] and str(events[0]).endswith("_rgba.png")
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        secret = client.webhooks.default.secret()
        statuses = []
        for headers, body in received:
            Webhooks.validate(headers=headers, body=body, secret=secret, tolerance=60)  # the SDK's verifier
            statuses.append(json.loads(body)["status"])
        assert statuses == ["processing", "succeeded"]
    finally:
        server.shutdown()
        server.server_close()


# -- the adapter -------------------------------------------------------------------------

def test_adapter_background_removal_succeeds(adapter: Any, control: httpx.Client) -> None:
    submitted = adapter.submit(remover_request("m-ok", {"sim": {"latency": 0.2}}), KEY)
    assert isinstance(submitted, Submitted) and json.loads(json.dumps(submitted.handle)) == submitted.handle
    [record] = records(control, "m-ok")
    assert record["input"] == {"input": {"image": "https://example.com/photo_320x240_s1.png",
                                         "marker": "m-ok", "sim": {"latency": 0.2}}}
    assert record["model"] == REMOVER
    # the remover publishes no prompt, so none is sent; the test's marker is a field it does not have
    assert record["unknown_fields"] == ["marker"]
    assert isinstance(adapter.poll(submitted.handle, KEY), Running)
    finished = poll_until_done(adapter, submitted.handle)
    assert isinstance(finished, Finished) and finished.metadata["prediction_id"] == submitted.handle["id"]
    [output] = finished.outputs
    assert output.media_type == "image/png" and output.url
    image = decode_png(httpx.get(output.url).content)
    assert image.mode == "RGBA" and image.size == (320, 240) and image.getpixel((0, 0))[3] == 0


def test_adapter_versioned_endpoint_uses_predictions_route(adapter: Any, control: httpx.Client) -> None:
    version = "95fcc2a26d3899cd6c2691c900465aaeff466285a65c14638cc5f36f34befaf1"
    submitted = adapter.submit(remover_request("m-ver", endpoint=f"{REMOVER}:{version}"), KEY)
    [record] = records(control, "m-ver")
    assert record["input"]["version"].startswith("95fcc2a2") and "image" in record["input"]["input"]
    assert isinstance(poll_until_done(adapter, submitted.handle), Finished)


@pytest.mark.parametrize(("message", "error_type"), [("CUDA out of memory", "model_error"),
                                                     ("NSFW content detected", "content_policy_violation")])
def test_adapter_failed_run(adapter: Any, control: httpx.Client, message: str, error_type: str) -> None:
    submitted = adapter.submit(remover_request("m-fail", {"sim": {"fail": message}}), KEY)
    failed = poll_until_done(adapter, submitted.handle)
    assert failed == Failed(message, error_type)


def test_adapter_bad_key_is_final_401(adapter: Any, control: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    control.post("/_sim/config", json={"keys": [KEY]})
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(remover_request("m-401"), "r8_wrong_key_zzzz")
    failure = caught.value
    assert failure.status == 401 and not failure.retryable and failure.provider == "replicate"
    assert isinstance(failure.__cause__, ReplicateError) and "r8_wrong" not in str(failure)
    # An empty BYOK key must not fall back to REPLICATE_API_TOKEN from the environment.
    monkeypatch.setenv("REPLICATE_API_TOKEN", KEY)
    with pytest.raises(ProviderFailure) as empty:
        adapter.submit(remover_request("m-401b"), "")
    assert empty.value.status == 401
    assert stats(control)["submissions"] == 0


def test_adapter_billing_402_is_final(adapter: Any, control: httpx.Client) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(remover_request("m-402", {"sim": {"submit_status": 402}}), KEY)
    assert caught.value.status == 402 and not caught.value.retryable
    assert "Insufficient credit" in caught.value.message


def test_adapter_429_is_retryable_with_retry_after_and_sent_once(adapter: Any, control: httpx.Client) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(remover_request("m-429", {"sim": {"submit_status": 429, "retry_after": 7}}), KEY)
    failure = caught.value
    assert failure.status == 429 and failure.retryable and failure.retry_after == 7.0
    assert "throttled" in failure.message
    counters = stats(control)
    assert counters["submit_attempts"] == 1 and counters["submissions"] == 0  # the SDK never re-sends a POST
    assert records(control, "m-429") == []


def test_adapter_submit_status_times_then_success(adapter: Any, control: httpx.Client) -> None:
    request = remover_request("m-503", {"sim": {"submit_status": 503, "submit_status_times": 1}})
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(request, KEY)
    assert caught.value.status == 503 and caught.value.retryable
    submitted = adapter.submit(request, KEY)
    assert isinstance(poll_until_done(adapter, submitted.handle), Finished)
    counters = stats(control)
    assert counters["submit_attempts"] == 2 and counters["submissions"] == 1
    assert len(records(control, "m-503")) == 1


def test_adapter_read_timeout_after_acceptance(provider_base: str, control: httpx.Client) -> None:
    impatient = create(ProviderSettings(base_url=provider_base, timeout=0.5, connect_timeout=2.0))
    started = time.monotonic()
    with pytest.raises(ProviderFailure) as caught:
        impatient.submit(remover_request("m-hang", {"sim": {"hang": 1.5}}), KEY)
    assert time.monotonic() - started < 1.4
    failure = caught.value
    assert failure.status is None and failure.retryable
    assert isinstance(failure.__cause__, httpx.ReadTimeout)
    assert len(records(control, "m-hang")) == 1  # accepted exactly once: nothing re-sent it
    assert stats(control)["submit_attempts"] == 1


def test_adapter_poll_errors(adapter: Any, control: httpx.Client) -> None:
    flaky = adapter.submit(remover_request("m-500", {"sim": {"status_error": {"status": 500, "times": 1}}}), KEY)
    with pytest.raises(ProviderFailure) as caught:
        adapter.poll(flaky.handle, KEY)
    assert caught.value.status == 500 and caught.value.retryable
    assert isinstance(poll_until_done(adapter, flaky.handle), Finished)

    # 503 on a GET is no longer absorbed by the SDK's retrying transport (it held a worker thread up
    # to ~50 s, or an uncapped Retry-After): each poll is one request, the pipeline retries later.
    flaky503 = adapter.submit(remover_request("m-503p", {"sim": {"status_error": {"status": 503, "times": 2}}}), KEY)
    for _ in range(2):
        with pytest.raises(ProviderFailure) as caught:
            adapter.poll(flaky503.handle, KEY)
        assert caught.value.status == 503 and caught.value.retryable
    assert isinstance(adapter.poll(flaky503.handle, KEY), Finished)
    [record] = records(control, "m-503p")
    assert record["status_calls"] == 3


def test_adapter_cancel(adapter: Any, control: httpx.Client) -> None:
    running = adapter.submit(remover_request("m-cancel", {"sim": {"latency": 5}}), KEY)
    adapter.cancel(running.handle, KEY)
    [record] = records(control, "m-cancel")
    assert record["cancelled"] and record["cancel_calls"] == 1 and record["status"] == "canceled"
    assert adapter.poll(running.handle, KEY) == Failed("prediction was canceled", "canceled")

    done = adapter.submit(remover_request("m-done"), KEY)
    assert isinstance(poll_until_done(adapter, done.handle), Finished)
    adapter.cancel(done.handle, KEY)  # too late: answered unchanged, no error
    adapter.cancel({"id": "doesnotexist"}, KEY)  # unknown: nothing to stop
    assert isinstance(adapter.poll(done.handle, KEY), Finished)
    assert stats(control)["cancels"] == 1


def test_adapter_byok_keys_are_kept_apart(adapter: Any, control: httpx.Client) -> None:
    adapter.submit(remover_request("m-k1"), "r8_pooled_aaaa")
    adapter.submit(remover_request("m-k2"), "r8_userown_bbbb")
    assert records(control, "m-k1")[0]["key_suffix"] == "aaaa"
    assert records(control, "m-k2")[0]["key_suffix"] == "bbbb"


# -- pure mapping ---------------------------------------------------------------------

def test_payload_mapping() -> None:
    request = remover_request("m", {"image": "https://override/x.png", "sim": {"latency": 1}})
    # the remover's published input has no prompt: the user's (here "cut out m") is not sent
    assert build_input(request) == {"image": "https://override/x.png", "marker": "m",
                                    "sim": {"latency": 1}}
    generic = ProviderRequest(job_id="j", model="m", capability="image", mode="text-to-image", endpoint="a/b",
                              params={"prompt": "a cat", "aspect_ratio": "16:9", "files": ["u1", "u2"]})
    assert build_input(generic) == {"prompt": "a cat", "aspect_ratio": "16:9", "images": ["u1", "u2"]}
    empty = ProviderRequest(job_id="j", model="m", capability="image", mode="background-removal", endpoint=REMOVER)
    with pytest.raises(ProviderFailure) as caught:
        build_input(empty)
    assert not caught.value.retryable
    assert _target(REMOVER) == (REMOVER, None)
    assert _target(f"{REMOVER}:abc123") == (REMOVER, "abc123")
    assert _target("abc123def456") == (None, "abc123def456")
    with pytest.raises(ProviderFailure):
        _target("a/b/c")


def test_output_mapping() -> None:
    client = replicate.Client(api_token="unused")
    assert outputs_from_output("https://replicate.delivery/x/out.png") == [
        Output("image/png", url="https://replicate.delivery/x/out.png")]
    assert outputs_from_output([FileOutput("https://r.d/a.mp4", client), "https://r.d/b.webp?x=1"]) == [
        Output("video/mp4", url="https://r.d/a.mp4"), Output("image/webp", url="https://r.d/b.webp?x=1")]
    assert outputs_from_output({"audio": "http://h/s.mp3", "seed": 3}) == [Output("audio/mpeg", url="http://h/s.mp3")]
    assert outputs_from_output("data:image/png;base64,iVBORw==") == [Output("image/png", data=b"\x89PNG")]
    assert outputs_from_output({"text": "hello"}) == [Output("application/json", data=b'{"text":"hello"}')]
    assert outputs_from_output(None) == [] and outputs_from_output([]) == []
    assert media_type_of("https://h/file") is None and media_type_of("https://h/a.WAV") == "audio/wav"
