"""The PiAPI (Seedance 2) simulator and adapter, over real HTTP against ``python -m gengate.sim`` in a subprocess.

PiAPI has no official Python SDK, so the protocol is driven with plain httpx, as its docs' examples do;
then the adapter is driven directly: submit, poll, cancel.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import av
import httpx
import pytest

from gengate.adapters.base import CancelVerdict, Failed, Finished, ProviderFailure, ProviderRequest, Running, Submitted
from gengate.adapters.piapi import PiapiAdapter, create
from gengate.config.settings import ProviderSettings

# Its tests reset the simulator and set its global config: a private one (conftest `control`).
PROVIDER = "piapi"
KEY = "piapi-test-key-9876"
HEADERS = {"X-API-Key": KEY}


@pytest.fixture()
def adapter(provider_base: str, control: httpx.Client) -> Iterator[PiapiAdapter]:
    made = create(ProviderSettings(base_url=provider_base, timeout=1.0, connect_timeout=1.0))
    yield made
    made.close()


def request(marker: str, sim: dict[str, Any] | None = None, *, mode: str = "text-to-video",
            endpoint: str = "seedance-2-preview", webhook_url: str | None = None, **params: Any) -> ProviderRequest:
    options: dict[str, Any] = {"marker": marker}
    if sim is not None:
        options["sim"] = sim
    return ProviderRequest(job_id=marker, model=endpoint, capability="video", mode=mode, endpoint=endpoint,
                           params={"prompt": f"waves {marker}", "duration": 5, "aspect_ratio": "16:9", **params},
                           options=options, webhook_url=webhook_url)


def record(control: httpx.Client, marker: str) -> dict[str, Any]:
    found = [r for r in control.get("/_sim/requests").json()["requests"]
             if r["input"].get("input", {}).get("marker") == marker]
    assert len(found) == 1, found
    return found[0]


def poll_until_done(adapter: PiapiAdapter, handle: dict[str, Any], timeout: float = 5.0) -> Finished | Failed:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = adapter.poll(handle, KEY)
        if not isinstance(outcome, Running):
            return outcome
        time.sleep(0.05)
    raise AssertionError("task did not finish")


def decode_mp4(url: str) -> tuple[int, int, int]:
    """(width, height, decoded frames) of the MP4 at `url`, decoded by PyAV."""
    with av.open(io.BytesIO(httpx.get(url).content)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.width, stream.codec_context.height, frames


# -- the protocol, as documented -------------------------------------------------------

def test_protocol_lifecycle_envelope_and_real_mp4(control: httpx.Client, provider_base: str) -> None:
    body = {"model": "seedance", "task_type": "seedance-2-fast-preview",
            "input": {"prompt": "a fox", "duration": 5, "aspect_ratio": "9:16",
                      "sim": {"queue_time": 0.2, "latency": 0.2, "status_case": "title"}},
            "config": {"webhook_config": {"endpoint": "https://hook.example/x", "secret": "s"}}}
    created = httpx.post(f"{provider_base}/api/v1/task", json=body, headers=HEADERS)
    assert created.status_code == 200
    envelope = created.json()
    assert envelope["code"] == 200 and envelope["message"] == "success"
    task = envelope["data"]
    assert task["task_type"] == "seedance-2-fast-preview" and task["status"] == "Pending"
    assert task["config"]["webhook_config"]["endpoint"] == "https://hook.example/x"
    assert set(task["error"]) >= {"code", "message"} and {"created_at", "usage"} <= set(task["meta"])

    seen: list[str] = []
    while not seen or seen[-1] not in ("Completed", "Failed"):
        task = httpx.get(f"{provider_base}/api/v1/task/{task['task_id']}", headers=HEADERS).json()["data"]
        if not seen or seen[-1] != task["status"]:
            seen.append(task["status"])
        time.sleep(0.05)
    assert seen == ["Pending", "Processing", "Completed"]  # capitalised: clients must ignore case
    assert decode_mp4(task["output"]["video"]) == (144, 256, 40)  # 9:16, 5 s at 8 fps
    listed = control.get("/_sim/requests").json()["requests"]
    assert len(listed) == 1 and listed[0]["input"] == body and listed[0]["key_suffix"] == KEY[-4:]


def test_protocol_errors(control: httpx.Client, provider_base: str) -> None:
    good = {"model": "seedance", "task_type": "seedance-2-preview", "input": {"prompt": "x"}}
    unauthorised = httpx.post(f"{provider_base}/api/v1/task", json=good)
    assert unauthorised.status_code == 401 and unauthorised.json()["code"] == 401
    for bad in ({**good, "model": "kling"}, {**good, "task_type": "seedance-9"},
                {**good, "input": {"prompt": "x", "duration": 7}}, {**good, "input": {}}):
        answer = httpx.post(f"{provider_base}/api/v1/task", json=bad, headers=HEADERS)
        assert answer.status_code == 400 and answer.json()["code"] == 400 and answer.json()["message"]
    missing = httpx.get(f"{provider_base}/api/v1/task/nope", headers=HEADERS)
    assert missing.status_code == 404 and missing.json()["data"] is None
    stats = control.get("/_sim/stats").json()
    assert (stats["submit_attempts"], stats["submit_rejected"], stats["submissions"]) == (5, 5, 0)
    assert control.get("/_sim/requests").json()["requests"] == []  # refused: nothing recorded


def test_no_published_schema_is_vendored() -> None:
    """PiAPI publishes an example request for Seedance 2 preview, no schema: nothing is vendored and
    the simulator keeps its own checks (config/schemas/piapi/README.md)."""
    from gengate.config import schemas
    assert schemas.published("piapi", "seedance-2-preview") is None
    assert schemas.published("piapi", "seedance-2-fast-preview") is None
    assert "no JSON" in (schemas.HERE / "piapi" / "README.md").read_text()


# -- the adapter -----------------------------------------------------------------------

def test_adapter_text_to_video(adapter: PiapiAdapter, control: httpx.Client) -> None:
    submitted = adapter.submit(request("t2v", {"latency": 0.1}), KEY)
    assert isinstance(submitted, Submitted)
    assert submitted.handle == {"task_id": submitted.handle["task_id"], "task_type": "seedance-2-preview"}
    assert isinstance(adapter.poll(submitted.handle, KEY), Running)
    outcome = poll_until_done(adapter, submitted.handle)
    assert isinstance(outcome, Finished) and [o.media_type for o in outcome.outputs] == ["video/mp4"]
    assert decode_mp4(outcome.outputs[0].url)[:2] == (256, 144)

    sent = record(control, "t2v")
    assert sent["input"] == {"model": "seedance", "task_type": "seedance-2-preview",
                             "input": {"prompt": "waves t2v", "duration": 5, "aspect_ratio": "16:9",
                                       "marker": "t2v", "sim": {"latency": 0.1}}}
    assert sent["key_suffix"] == "9876"


def test_adapter_files_by_mode_and_webhook(adapter: PiapiAdapter, control: httpx.Client) -> None:
    images = ["https://cdn.example/a.png", "https://cdn.example/b.png"]
    adapter.submit(request("i2v", mode="image-to-video", endpoint="seedance-2-fast-preview", files=images), KEY)
    assert record(control, "i2v")["input"]["input"]["image_urls"] == images
    assert record(control, "i2v")["task_type"] == "seedance-2-fast-preview"

    clip = "https://cdn.example/clip.mp4"
    adapter.submit(request("edit", mode="video-edit", files=[clip], webhook_url="https://gw.example/hook"), KEY)
    sent = record(control, "edit")["input"]
    assert sent["input"]["video_urls"] == [clip] and "image_urls" not in sent["input"]
    assert sent["config"] == {"webhook_config": {"endpoint": "https://gw.example/hook", "secret": ""}}

    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(request("lipsync", mode="lipsync"), KEY)
    assert caught.value.retryable is False


@pytest.mark.parametrize("status_case", ["lower", "title", "upper"])
def test_status_case_is_ignored(adapter: PiapiAdapter, status_case: str) -> None:
    handle = adapter.submit(request(status_case, {"status_case": status_case, "queue_time": 0.1}), KEY).handle
    assert isinstance(adapter.poll(handle, KEY), Running)
    assert isinstance(poll_until_done(adapter, handle), Finished)


def test_run_failure_is_failed(adapter: PiapiAdapter) -> None:
    handle = adapter.submit(request("fail", {"fail": "input image did not pass moderation"}), KEY).handle
    outcome = poll_until_done(adapter, handle)
    assert isinstance(outcome, Failed)
    assert outcome.message == "input image did not pass moderation" and outcome.error_type == "generation_failed"


def test_bad_key_is_final_401(adapter: PiapiAdapter, control: httpx.Client) -> None:
    control.post("/_sim/config", json={"keys": [KEY]}).raise_for_status()
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(request("badkey"), "wrong-key-0000")
    failure = caught.value
    assert failure.status == 401 and failure.retryable is False and failure.provider == "piapi"
    assert "wrong-key" not in str(failure) and failure.message == "Invalid API key"
    assert isinstance(adapter.submit(request("goodkey"), KEY), Submitted)


def test_submit_429_is_retryable_with_retry_after(adapter: PiapiAdapter, control: httpx.Client) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(request("busy", {"submit_status": 429, "retry_after": 3}), KEY)
    assert caught.value.status == 429 and caught.value.retryable and caught.value.retry_after == 3.0
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)
    assert control.get("/_sim/requests").json()["requests"] == []


def test_submit_status_times_then_success(adapter: PiapiAdapter, control: httpx.Client) -> None:
    req = request("flaky", {"submit_status": 500, "submit_status_times": 2})
    for _ in range(2):
        with pytest.raises(ProviderFailure) as caught:
            adapter.submit(req, KEY)
        assert caught.value.status == 500 and caught.value.retryable
    assert isinstance(adapter.submit(req, KEY), Submitted)
    stats = control.get("/_sim/stats").json()
    assert (stats["submit_attempts"], stats["submit_rejected"], stats["submissions"]) == (3, 2, 1)


def test_hang_after_accept_is_statusless_timeout_sent_once(adapter: PiapiAdapter, control: httpx.Client) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(request("hang", {"hang": 2.5}), KEY)
    failure = caught.value
    assert failure.status is None and failure.retryable
    assert isinstance(failure.__cause__, httpx.TimeoutException)
    assert not isinstance(failure.__cause__, httpx.ConnectError)
    stats = control.get("/_sim/stats").json()
    assert stats["submit_attempts"] == 1 and stats["submissions"] == 1
    record(control, "hang")  # exactly one accepted task


def test_status_error_is_retryable_poll_failure(adapter: PiapiAdapter, control: httpx.Client) -> None:
    handle = adapter.submit(request("flakypoll", {"status_error": {"status": 502, "times": 1}}), KEY).handle
    with pytest.raises(ProviderFailure) as caught:
        adapter.poll(handle, KEY)
    assert caught.value.status == 502 and caught.value.retryable
    assert isinstance(adapter.poll(handle, KEY), Finished)
    assert record(control, "flakypoll")["status_calls"] == 2


def test_cancel_is_recorded_but_seedance_runs_on(adapter: PiapiAdapter, control: httpx.Client) -> None:
    handle = adapter.submit(request("cancel", {"queue_time": 0.2}), KEY).handle
    assert adapter.cancel(handle, KEY) is CancelVerdict.TOO_LATE  # PiAPI refuses (400): billed, not an error
    sent = record(control, "cancel")
    assert sent["cancel_calls"] == 1 and sent["cancelled"] is False
    assert control.get("/_sim/stats").json()["cancels"] == 0
    assert isinstance(poll_until_done(adapter, handle), Finished)
