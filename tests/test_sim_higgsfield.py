"""The Higgsfield simulator and adapter, over real HTTP against ``python -m gengate.sim`` in a subprocess.

The protocol is driven with plain httpx, as the documented curl calls do: the official
``higgsfield-client`` is not a dependency of this project (and its retrying POST is why the adapter
does not use it). Then the adapter is driven directly: submit, poll, cancel.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from gengate.adapters.base import CancelVerdict, Failed, Finished, ProviderFailure, ProviderRequest, Running, Submitted
from gengate.adapters.higgsfield import HiggsfieldAdapter, create
from gengate.config.settings import ProviderSettings

# Its tests reset the simulator and set its global config: a private one (conftest `control`).
PROVIDER = "higgsfield"
SOUL = "higgsfield-ai/soul/standard"
KEY = "hf-id:hf-secret"
AUTH = {"Authorization": f"Key {KEY}"}


@pytest.fixture()
def adapter(provider_base: str, control: httpx.Client) -> Iterator[HiggsfieldAdapter]:
    made = create(ProviderSettings(base_url=provider_base, timeout=1.0, connect_timeout=1.0))
    yield made
    made.close()


def request(marker: str, sim: dict[str, Any] | None = None, **params: Any) -> ProviderRequest:
    options: dict[str, Any] = {"marker": marker}
    if sim is not None:
        options["sim"] = sim
    return ProviderRequest(job_id=marker, model="soul", capability="image", mode="text-to-image", endpoint=SOUL,
                           params={"prompt": f"a lighthouse {marker}", **params}, options=options)


def record(control: httpx.Client, marker: str) -> dict[str, Any]:
    found = [r for r in control.get("/_sim/requests").json()["requests"] if r["input"].get("marker") == marker]
    assert len(found) == 1, found
    return found[0]


def poll_until_done(adapter: HiggsfieldAdapter, handle: dict[str, Any], timeout: float = 5.0) -> Finished | Failed:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = adapter.poll(handle, KEY)
        if not isinstance(outcome, Running):
            return outcome
        time.sleep(0.05)
    raise AssertionError("request did not finish")


# -- the protocol, as documented -------------------------------------------------------

def test_protocol_lifecycle_and_real_png(control: httpx.Client, provider_base: str) -> None:
    body = {"prompt": "a fox", "aspect_ratio": "16:9", "resolution": "720p", "sim": {"queue_time": 0.2, "latency": 0.2}}
    submitted = httpx.post(f"{provider_base}/{SOUL}", json=body, headers=AUTH,
                           params={"hf_webhook": "https://hook.example/x"})
    assert submitted.status_code == 200
    answer = submitted.json()
    assert answer["status"] == "queued" and answer["request_id"]
    assert answer["status_url"] == f"{provider_base}/requests/{answer['request_id']}/status"
    assert answer["cancel_url"] == f"{provider_base}/requests/{answer['request_id']}/cancel"

    seen: list[str] = []
    calls = 0
    while not seen or seen[-1] not in ("completed", "failed", "nsfw", "canceled"):
        status = httpx.get(answer["status_url"], headers=AUTH).json()
        calls += 1
        if not seen or seen[-1] != status["status"]:
            seen.append(status["status"])
        time.sleep(0.05)
    assert seen == ["queued", "in_progress", "completed"]
    image = Image.open(io.BytesIO(httpx.get(status["images"][0]["url"]).content))
    assert image.format == "PNG" and image.size == (256, 144)

    sim_record = control.get(f"/_sim/requests/{answer['request_id']}").json()
    assert sim_record["input"] == body and sim_record["webhook_url"] == "https://hook.example/x"
    assert sim_record["key_suffix"] == KEY[-4:] and sim_record["status_calls"] == calls


def test_protocol_errors(control: httpx.Client, provider_base: str) -> None:
    assert httpx.post(f"{provider_base}/{SOUL}", json={"prompt": "x"}).status_code == 401
    bearer = httpx.post(f"{provider_base}/{SOUL}", json={"prompt": "x"}, headers={"Authorization": "Bearer abc"})
    assert bearer.status_code == 401 and "detail" in bearer.json()
    invalid = httpx.post(f"{provider_base}/{SOUL}", json={"resolution": "4k"}, headers=AUTH)
    assert invalid.status_code == 422 and len(invalid.json()["detail"]) == 2
    assert httpx.get(f"{provider_base}/requests/nope/status", headers=AUTH).status_code == 404
    stats = control.get("/_sim/stats").json()
    assert (stats["submit_attempts"], stats["submit_rejected"], stats["submissions"]) == (3, 3, 0)
    assert control.get("/_sim/requests").json()["requests"] == []  # refused: nothing recorded


def test_no_published_schema_is_vendored() -> None:
    """Higgsfield publishes an example body for soul/standard, no schema: nothing is vendored and
    the simulator keeps its own checks (config/schemas/higgsfield/README.md)."""
    from gengate.config import schemas
    assert schemas.published("higgsfield", SOUL) is None
    assert "no JSON" in (schemas.HERE / "higgsfield" / "README.md").read_text()


# -- the adapter -----------------------------------------------------------------------

def test_adapter_success_maps_payload_and_media(adapter: HiggsfieldAdapter, control: httpx.Client) -> None:
    submitted = adapter.submit(request("ok", aspect_ratio="9:16"), KEY)
    assert isinstance(submitted, Submitted) and set(submitted.handle) == {"request_id", "status_url", "cancel_url"}
    outcome = poll_until_done(adapter, submitted.handle)
    assert isinstance(outcome, Finished) and len(outcome.outputs) == 1
    output = outcome.outputs[0]
    assert output.media_type == "image/png"
    image = Image.open(io.BytesIO(httpx.get(output.url).content))
    assert image.format == "PNG" and image.size == (144, 256)

    sent = record(control, "ok")
    assert sent["input"] == {"prompt": "a lighthouse ok", "aspect_ratio": "9:16", "resolution": "720p", "marker": "ok"}
    assert sent["key_suffix"] == "cret"


def test_adapter_defaults_options_last_and_webhook(adapter: HiggsfieldAdapter, control: httpx.Client) -> None:
    req = ProviderRequest(job_id="d", model="soul", capability="image", mode="text-to-image", endpoint=SOUL,
                          params={"prompt": ""}, options={"marker": "d", "resolution": "1080p"},
                          webhook_url="https://gw.example/hooks/higgsfield")
    adapter.submit(req, KEY)
    sent = record(control, "d")
    assert sent["input"] == {"prompt": "", "aspect_ratio": "1:1", "resolution": "1080p", "marker": "d"}
    assert sent["webhook_url"] == "https://gw.example/hooks/higgsfield"
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(ProviderRequest(job_id="u", model="soul", capability="image", mode="edit", endpoint=SOUL), KEY)
    assert caught.value.retryable is False


@pytest.mark.parametrize(("fail_type", "message", "error_type"), [
    (None, "GPU exploded", "generation_failed"),
    ("nsfw", "NSFW", "content_policy_violation"),
])
def test_run_failure_is_failed(adapter: HiggsfieldAdapter, fail_type: str | None, message: str,
                               error_type: str) -> None:
    sim: dict[str, Any] = {"fail": "GPU exploded"}
    if fail_type:
        sim["fail_type"] = fail_type
    outcome = poll_until_done(adapter, adapter.submit(request("fail", sim), KEY).handle)
    assert isinstance(outcome, Failed) and message in outcome.message and outcome.error_type == error_type


def test_bad_key_is_final_401(adapter: HiggsfieldAdapter, control: httpx.Client) -> None:
    control.post("/_sim/config", json={"keys": [KEY]}).raise_for_status()
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(request("badkey"), "other-id:other-secret")
    failure = caught.value
    assert failure.status == 401 and failure.retryable is False and failure.provider == "higgsfield"
    assert "other-secret" not in str(failure)
    assert isinstance(adapter.submit(request("goodkey"), KEY), Submitted)


def test_submit_429_is_retryable_with_retry_after(adapter: HiggsfieldAdapter, control: httpx.Client) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(request("busy", {"submit_status": 429, "retry_after": 7}), KEY)
    assert caught.value.status == 429 and caught.value.retryable and caught.value.retry_after == 7.0
    assert isinstance(caught.value.__cause__, httpx.HTTPStatusError)
    assert control.get("/_sim/requests").json()["requests"] == []


def test_submit_status_times_then_success(adapter: HiggsfieldAdapter, control: httpx.Client) -> None:
    req = request("flaky", {"submit_status": 503, "submit_status_times": 2})
    for _ in range(2):
        with pytest.raises(ProviderFailure) as caught:
            adapter.submit(req, KEY)
        assert caught.value.status == 503 and caught.value.retryable
    assert isinstance(adapter.submit(req, KEY), Submitted)
    stats = control.get("/_sim/stats").json()
    assert (stats["submit_attempts"], stats["submit_rejected"], stats["submissions"]) == (3, 2, 1)


def test_hang_after_accept_is_statusless_timeout_sent_once(adapter: HiggsfieldAdapter, control: httpx.Client) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(request("hang", {"hang": 2.5}), KEY)
    failure = caught.value
    assert failure.status is None and failure.retryable
    assert isinstance(failure.__cause__, httpx.TimeoutException)
    assert not isinstance(failure.__cause__, httpx.ConnectError)
    stats = control.get("/_sim/stats").json()
    assert stats["submit_attempts"] == 1 and stats["submissions"] == 1
    record(control, "hang")  # exactly one accepted submission


def test_status_error_is_retryable_poll_failure(adapter: HiggsfieldAdapter, control: httpx.Client) -> None:
    handle = adapter.submit(request("flakypoll", {"status_error": {"status": 503, "times": 2}}), KEY).handle
    for _ in range(2):
        with pytest.raises(ProviderFailure) as caught:
            adapter.poll(handle, KEY)
        assert caught.value.status == 503 and caught.value.retryable
    assert isinstance(adapter.poll(handle, KEY), Finished)
    assert record(control, "flakypoll")["status_calls"] == 3


def test_cancel_while_queued_and_after_start(adapter: HiggsfieldAdapter, control: httpx.Client) -> None:
    queued = adapter.submit(request("queued", {"queue_time": 30}), KEY).handle
    assert isinstance(adapter.poll(queued, KEY), Running)
    assert adapter.cancel(queued, KEY) is CancelVerdict.CONFIRMED_BEFORE_START
    cancelled = record(control, "queued")
    assert cancelled["cancelled"] is True and cancelled["cancel_calls"] == 1
    outcome = adapter.poll(queued, KEY)
    assert isinstance(outcome, Failed) and outcome.error_type == "cancelled"
    assert adapter.cancel(queued, KEY) is CancelVerdict.CONFIRMED_BEFORE_START  # asked again, the same

    running = adapter.submit(request("running", {"latency": 30}), KEY).handle
    assert adapter.cancel(running, KEY) is CancelVerdict.TOO_LATE  # a 400 "already started": billed, not an error
    started = record(control, "running")
    assert started["cancelled"] is False and started["cancel_calls"] == 1 and started["status"] == "in_progress"
    assert control.get("/_sim/stats").json()["cancels"] == 1


def test_handle_urls_never_leave_the_configured_base(provider_base: str, control: httpx.Client) -> None:
    """A status URL pointing elsewhere is replaced by the documented one: the key stays home."""
    made = create(ProviderSettings(base_url=provider_base, timeout=1.0))
    try:
        handle = made.submit(request("foreign"), KEY).handle
        handle["status_url"] = "https://evil.example/requests/x/status"
        assert isinstance(made.poll(handle, KEY), Finished)
    finally:
        made.close()
