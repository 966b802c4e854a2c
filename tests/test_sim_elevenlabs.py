"""The ElevenLabs simulator against the real `elevenlabs` SDK, and the ElevenLabs adapter against
the simulator, over real HTTP (the simulator runs as `python -m gengate.sim` in a subprocess)."""

from __future__ import annotations

import io
import socket
import threading
import time
from typing import Any

import av
import httpx
import pytest
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError

from gengate.adapters.base import Finished, ProviderFailure, ProviderRequest
from gengate.adapters.elevenlabs import VOICE_NAMES, VOICES, ElevenLabsAdapter, create
from gengate.config.settings import ProviderSettings
from gengate.sim import media

# Its tests reset the simulator and set its global config: a private one (conftest `control`).
PROVIDER = "elevenlabs"
KEY = "sk-test-0123456789abcd"
RACHEL = VOICES["rachel"]


@pytest.fixture()
def sdk(provider_base: str, control: httpx.Client) -> ElevenLabs:
    return ElevenLabs(api_key=KEY, base_url=provider_base, timeout=10)


@pytest.fixture()
def adapter(provider_base: str, control: httpx.Client) -> ElevenLabsAdapter:
    return create(ProviderSettings(base_url=provider_base, timeout=5, connect_timeout=2))


def tts(text: str = "Hello there, this is a test.", **params: Any) -> ProviderRequest:
    options = params.pop("options", {})
    return ProviderRequest(job_id="job-1", model="eleven-v3", capability="speech", mode="tts",
                           endpoint=params.pop("endpoint", "eleven_v3"), params={"text": text, **params},
                           options=options)


def music(**params: Any) -> ProviderRequest:
    options = params.pop("options", {})
    return ProviderRequest(job_id="job-2", model="music-v1", capability="music", mode="music",
                           endpoint="music_v1", params={"prompt": "calm jazz", **params}, options=options)


def records(control: httpx.Client) -> list[dict[str, Any]]:
    return control.get("/_sim/requests").json()["requests"]


def stats(control: httpx.Client) -> dict[str, Any]:
    return control.get("/_sim/stats").json()


def decode_audio(data: bytes) -> float:
    """Decode every frame with PyAV; the duration in seconds."""
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(audio=0))
    assert frames
    return sum(f.samples for f in frames) / frames[0].sample_rate


AUDIO_TYPE = "audio/mpeg" if media.has_mp3_encoder() else "audio/wav"


# -- the simulator, driven by the real SDK ---------------------------------------------

def test_sdk_voices_tts_and_music(sdk: ElevenLabs, control: httpx.Client) -> None:
    voices = sdk.voices.get_all().voices
    assert [v.name.lower() for v in voices] == list(VOICE_NAMES)
    assert {v.name.lower(): v.voice_id for v in voices} == VOICES
    assert all(v.category == "premade" and v.labels for v in voices)
    preview = httpx.get(voices[0].preview_url)
    assert preview.headers["content-type"] == AUDIO_TYPE and decode_audio(preview.content) > 0.5

    speech = b"".join(sdk.text_to_speech.convert(RACHEL, text="x" * 30, model_id="eleven_flash_v2_5",
                                                 output_format="mp3_44100_128"))
    assert decode_audio(speech) == pytest.approx(2.0, abs=0.2)  # 30 chars at 15 chars/s
    song = b"".join(sdk.music.compose(prompt="lofi", music_length_ms=3000, model_id="music_v1"))
    assert decode_audio(song) == pytest.approx(3.0, abs=0.2)

    first, second = records(control)
    assert first["path"].endswith(f"/v1/text-to-speech/{RACHEL}") and first["voice_id"] == RACHEL
    assert first["input"] == {"text": "x" * 30, "model_id": "eleven_flash_v2_5"}
    assert first["query"] == {"output_format": "mp3_44100_128"}
    assert second["input"] == {"prompt": "lofi", "music_length_ms": 3000, "model_id": "music_v1"}
    assert first["status"] == "completed" and first["key_suffix"] == KEY[-4:]


def test_sdk_sends_nothing_until_iterated(sdk: ElevenLabs, control: httpx.Client) -> None:
    lazy = sdk.text_to_speech.convert(RACHEL, text="not yet")
    assert stats(control)["submit_attempts"] == 0
    assert b"".join(lazy)
    assert stats(control)["submit_attempts"] == 1


def test_sdk_sees_elevenlabs_error_bodies(provider_base: str, sdk: ElevenLabs, control: httpx.Client) -> None:
    with pytest.raises(ApiError) as missing_voice:
        b"".join(sdk.text_to_speech.convert("abcdefghij0123456789", text="hi"))
    assert missing_voice.value.status_code == 404
    assert missing_voice.value.body["detail"]["status"] == "voice_not_found"

    no_text = httpx.post(f"{provider_base}/v1/text-to-speech/{RACHEL}", json={"model_id": "eleven_v3"},
                         headers={"xi-api-key": KEY})
    assert no_text.status_code == 422
    assert no_text.json()["detail"][0]["loc"] == ["body", "text"]
    too_short = httpx.post(f"{provider_base}/v1/music", json={"prompt": "x", "music_length_ms": 1000},
                          headers={"xi-api-key": KEY})
    assert too_short.status_code == 422 and too_short.json()["detail"][0]["loc"] == ["body", "music_length_ms"]
    assert httpx.post(f"{provider_base}/v1/music", json={"prompt": "x"}).status_code == 401  # no xi-api-key

    control.post("/_sim/config", json={"keys": ["good-key-1234"]}).raise_for_status()
    with pytest.raises(ApiError) as bad_key:
        b"".join(sdk.text_to_speech.convert(RACHEL, text="hi"))
    assert bad_key.value.status_code == 401
    assert bad_key.value.body["detail"]["status"] == "invalid_api_key"
    assert records(control) == []
    assert stats(control)["submit_rejected"] == 5


# -- the adapter, against the simulator -------------------------------------------------

def test_tts_maps_params_and_options(adapter: ElevenLabsAdapter, control: httpx.Client) -> None:
    options = {"voice_settings": {"stability": 0.3, "similarity_boost": 0.8}, "seed": 7,
               "output_format": "mp3_22050_32", "sim": {"marker": "tts-1"}}
    result = adapter.submit(tts("Good morning", voice="Sarah", language="en", options=options), KEY)
    assert isinstance(result, Finished) and len(result.outputs) == 1
    output = result.outputs[0]
    assert output.media_type == AUDIO_TYPE and output.url is None
    assert decode_audio(output.data or b"") > 0.4
    assert result.metadata["output_format"] == "mp3_22050_32" and result.metadata["request_id"]

    (record,) = records(control)
    assert record["voice_id"] == VOICES["sarah"] and record["query"] == {"output_format": "mp3_22050_32"}
    assert record["input"] == {"text": "Good morning", "model_id": "eleven_v3", "language_code": "en",
                               "voice_settings": {"stability": 0.3, "similarity_boost": 0.8}, "seed": 7,
                               "sim": {"marker": "tts-1"}}


def test_tts_defaults_and_voice_ids(adapter: ElevenLabsAdapter, control: httpx.Client) -> None:
    adapter.submit(tts("Hi", endpoint="eleven_turbo_v2"), KEY)
    adapter.submit(tts("Hi", voice=VOICES["adam"]), KEY)  # already a voice id: passes through
    first, second = records(control)
    assert first["voice_id"] == RACHEL and first["query"] == {"output_format": "mp3_44100_128"}
    assert first["input"]["model_id"] == "eleven_turbo_v2" and second["voice_id"] == VOICES["adam"]

    with pytest.raises(ProviderFailure) as unknown:
        adapter.submit(tts("Hi", voice="../../v1/music"), KEY)
    assert not unknown.value.retryable and unknown.value.status is None
    with pytest.raises(ProviderFailure) as not_found:  # a well-formed id ElevenLabs does not know
        adapter.submit(tts("Hi", voice="abcdefghij0123456789"), KEY)
    assert (not_found.value.status, not_found.value.retryable) == (404, False)
    assert "was not found" in not_found.value.message


def test_music_maps_duration(adapter: ElevenLabsAdapter, control: httpx.Client) -> None:
    result = adapter.submit(music(duration=4, options={"force_instrumental": True}), KEY)
    assert result.outputs[0].media_type == AUDIO_TYPE
    assert decode_audio(result.outputs[0].data or b"") == pytest.approx(4.0, abs=0.2)
    adapter.submit(music(), KEY)
    first, second = records(control)
    assert first["path"].endswith("/v1/music")
    assert first["input"] == {"prompt": "calm jazz", "music_length_ms": 4000, "model_id": "music_v1",
                              "force_instrumental": True}
    assert second["input"]["music_length_ms"] == 30000  # the 30 s default


def test_latency_keeps_the_call_open(adapter: ElevenLabsAdapter, control: httpx.Client) -> None:
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.extend(r["status"] for r in records(control))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.monotonic()
    try:
        result = adapter.submit(tts(options={"sim": {"queue_time": 0.3, "latency": 0.3}}), KEY)
    finally:
        done.set()
        watcher.join()
    assert time.monotonic() - started >= 0.6 and isinstance(result, Finished)
    assert "queued" in seen and "processing" in seen
    assert records(control)[0]["status"] == "completed"


def test_fail_knob_is_a_final_failure(adapter: ElevenLabsAdapter, control: httpx.Client) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(music(options={"sim": {"fail": "Prompt names a copyrighted artist"}}), KEY)
    failure = caught.value
    assert (failure.status, failure.retryable) == (400, False)
    assert "copyrighted artist" in failure.message and "bad_prompt" in failure.message
    assert isinstance(failure.__cause__, ApiError)
    with pytest.raises(ProviderFailure) as invalid:
        adapter.submit(tts(options={"sim": {"fail": "text is unusable", "fail_status": 422}}), KEY)
    assert (invalid.value.status, invalid.value.retryable) == (422, False)
    assert "text is unusable" in invalid.value.message
    assert [(r["status"], r["response_status"]) for r in records(control)] == [("failed", 400), ("failed", 422)]


def test_bad_key_and_exhausted_quota_are_final(adapter: ElevenLabsAdapter, control: httpx.Client) -> None:
    control.post("/_sim/config", json={"keys": [KEY]}).raise_for_status()
    with pytest.raises(ProviderFailure) as bad_key:
        adapter.submit(tts(), "sk-wrong-key-9999")
    assert (bad_key.value.status, bad_key.value.retryable) == (401, False)
    assert "Invalid API key" in bad_key.value.message and "9999" not in bad_key.value.message

    with pytest.raises(ProviderFailure) as quota:
        adapter.submit(tts(options={"sim": {"submit_status": 401, "quota": True}}), KEY)
    assert (quota.value.status, quota.value.retryable) == (401, False)
    assert "quota exceeded" in quota.value.message.lower()
    assert quota.value.__cause__.body["detail"]["status"] == "quota_exceeded"  # type: ignore[union-attr]
    assert records(control) == []


def test_429_is_retryable_with_retry_after_and_not_resent(adapter: ElevenLabsAdapter,
                                                          control: httpx.Client) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(tts(options={"sim": {"submit_status": 429, "retry_after": 3}}), KEY)
    failure = caught.value
    assert (failure.status, failure.retryable, failure.retry_after) == (429, True, 3.0)
    assert "too_many_concurrent_requests" in failure.message
    assert stats(control)["submit_attempts"] == 1  # the SDK did not retry the create call itself
    assert records(control) == []


def test_submit_status_times_then_success(adapter: ElevenLabsAdapter, control: httpx.Client) -> None:
    req = tts(options={"sim": {"submit_status": 503, "submit_status_times": 1}})
    with pytest.raises(ProviderFailure) as caught:
        adapter.submit(req, KEY)
    assert (caught.value.status, caught.value.retryable) == (503, True)
    assert isinstance(adapter.submit(req, KEY), Finished)
    assert (stats(control)["submit_attempts"], len(records(control))) == (2, 1)


def test_too_many_concurrent_requests(provider_base: str, control: httpx.Client) -> None:
    control.post("/_sim/config", json={"max_concurrent": 1}).raise_for_status()
    slow = create(ProviderSettings(base_url=provider_base, timeout=5))
    thread = threading.Thread(target=slow.submit, args=(tts(options={"sim": {"latency": 0.6}}), KEY))
    thread.start()
    try:
        deadline = time.monotonic() + 3
        while stats(control)["in_flight"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(ProviderFailure) as caught:
            slow.submit(tts("another"), KEY)
    finally:
        thread.join()
    assert (caught.value.status, caught.value.retryable) == (429, True)


def test_hang_past_the_timeout_is_statusless_and_sent_once(provider_base: str, control: httpx.Client) -> None:
    impatient = create(ProviderSettings(base_url=provider_base, timeout=0.5, connect_timeout=1))
    started = time.monotonic()
    with pytest.raises(ProviderFailure) as caught:
        impatient.submit(tts(options={"sim": {"hang": 1.5}}), KEY)
    assert time.monotonic() - started < 1.4
    failure = caught.value
    assert failure.status is None and failure.retryable
    assert isinstance(failure.__cause__, httpx.ReadTimeout)
    time.sleep(1.3)  # past the hang: a re-sent call would show up by now
    assert stats(control)["submit_attempts"] == 1
    (record,) = records(control)
    assert record["input"]["sim"] == {"hang": 1.5}


def test_refused_connection_keeps_connect_error_cause() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = create(ProviderSettings(base_url=f"http://127.0.0.1:{port}/elevenlabs", timeout=2, connect_timeout=1))
    with pytest.raises(ProviderFailure) as caught:
        dead.submit(tts(), KEY)
    assert caught.value.retryable and caught.value.status is None
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_poll_and_cancel_are_not_needed(adapter: ElevenLabsAdapter) -> None:
    with pytest.raises(ProviderFailure) as caught:
        adapter.poll({}, KEY)
    assert not caught.value.retryable
    assert adapter.cancel({}, KEY) is None
