"""The ElevenLabs simulator against the real `elevenlabs` SDK, and the ElevenLabs adapter against
the simulator, over real HTTP (the simulator runs as `python -m gengate.sim` in a subprocess)."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import socket
import sys
import threading
import time
from typing import Any

import av
import httpx
import pytest
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError

from gengate.adapters.base import CancelVerdict, Finished, ProviderFailure, ProviderRequest
from gengate.adapters.elevenlabs import VOICE_NAMES, VOICES, ElevenLabsAdapter, create
from gengate.config import catalog, schemas
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
    assert adapter.cancel({}, KEY) is CancelVerdict.TOO_LATE  # a call that was made is billed


# -- validation against ElevenLabs' published schemas -----------------------------------------

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "config" / "schemas" / "elevenlabs"
OMIT: Any = ...  # how the SDK spells "leave this field out" (Fern's OMIT)


def _vendor_script() -> Any:
    spec = importlib.util.spec_from_file_location("vendor_elevenlabs_schemas",
                                                  ROOT / "tools" / "vendor_elevenlabs_schemas.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_vendored_files_have_the_documented_shape() -> None:
    paths = sorted(SCHEMA_DIR.glob("*.json"))
    assert {p.name for p in paths} == {"text-to-speech.json", "text-to-speech__stream.json", "music.json"}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text)
        assert set(doc) == {"provider", "endpoint", "source", "commit", "commit_date", "delisted", "input",
                            "query", "output"}
        assert doc["provider"] == "elevenlabs" and not doc["delisted"] and doc["output"] == {}
        assert doc["source"] == f"elevenlabs Python SDK {doc['commit']}, generated from ElevenLabs' published OpenAPI"
        assert path.name == schemas.file_name(doc["endpoint"])
        assert schemas.published("elevenlabs", doc["endpoint"]) == doc
        for part in ("input", "query"):
            assert doc[part]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            assert doc[part]["type"] == "object" and doc[part]["additionalProperties"] is True
        assert text == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    tts_doc, music_doc = schemas.published("elevenlabs", "text-to-speech"), schemas.published("elevenlabs", "music")
    assert tts_doc["input"]["required"] == ["text"] and "required" not in music_doc["input"]
    assert "sign_with_c2pa" in music_doc["input"]["properties"]  # the wire name, not the SDK's parameter name
    length = music_doc["input"]["properties"]["music_length_ms"]["anyOf"][0]
    assert (length["type"], length["minimum"], length["maximum"]) == ("integer", 3000, 600000)
    assert music_doc["input"]["properties"]["model_id"]["anyOf"][0]["enum"] == ["music_v1", "music_v2", "music_v2_5"]
    assert "wav_44100" in tts_doc["query"]["properties"]["output_format"]["enum"]
    assert "auto" in music_doc["query"]["properties"]["output_format"]["enum"]


def test_regenerating_gives_the_same_bytes(tmp_path: Any, capsys: Any) -> None:
    """The command of config/schemas/elevenlabs/README.md, into a scratch folder (the SDK is installed)."""
    date = re.search(r"tools/vendor_elevenlabs_schemas\.py --date (\S+)", (SCHEMA_DIR / "README.md").read_text())
    assert date, "the README names the regenerating command"
    assert _vendor_script().main(["--date", date.group(1), "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    vendored = sorted(SCHEMA_DIR.glob("*.json"))
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [p.name for p in vendored]
    for path in vendored:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def _detail(caught: pytest.ExceptionInfo[ApiError]) -> list[dict[str, Any]]:
    assert caught.value.status_code == 422
    detail = caught.value.body["detail"]
    assert isinstance(detail, list) and detail
    return detail


def test_sdk_missing_and_mistyped_fields_are_422_and_not_recorded(sdk: ElevenLabs, control: httpx.Client) -> None:
    with pytest.raises(ApiError) as missing:
        b"".join(sdk.text_to_speech.convert(RACHEL, text=OMIT, model_id="eleven_v3"))
    (problem,) = _detail(missing)
    assert {k: problem[k] for k in ("loc", "msg", "type")} == {"loc": ["body", "text"], "msg": "Field required",
                                                               "type": "missing"}
    with pytest.raises(ApiError) as mistyped:
        b"".join(sdk.text_to_speech.convert(RACHEL, text=42))  # the SDK does not check types: the server does
    assert [(p["loc"], p["type"]) for p in _detail(mistyped)] == [(["body", "text"], "string_type")]
    with pytest.raises(ApiError) as nested:
        b"".join(sdk.text_to_speech.convert(RACHEL, text="hi", voice_settings={"stability": "high"}))
    assert [(p["loc"], p["type"]) for p in _detail(nested)] == [(["body", "voice_settings", "stability"], "float_type")]
    with pytest.raises(ApiError) as music_type:
        b"".join(sdk.music.compose(prompt="lofi", music_length_ms="30s"))
    assert [(p["loc"], p["type"]) for p in _detail(music_type)] == [(["body", "music_length_ms"], "int_type")]
    assert records(control) == []
    assert stats(control)["submit_rejected"] == 4 and stats(control)["submissions"] == 0


def test_sdk_values_outside_enums_and_ranges_are_422(sdk: ElevenLabs, control: httpx.Client) -> None:
    cases = [
        (lambda: sdk.text_to_speech.convert(RACHEL, text="hi", output_format="mp3_99999_1"),
         ["query", "output_format"], "enum"),
        (lambda: sdk.text_to_speech.convert(RACHEL, text="hi", apply_text_normalization="sometimes"),
         ["body", "apply_text_normalization"], "enum"),
        (lambda: sdk.text_to_speech.stream(RACHEL, text="hi", output_format="wav_44100"),  # stream has no wav
         ["query", "output_format"], "enum"),
        (lambda: sdk.text_to_speech.convert(RACHEL, text="hi", seed=2**32), ["body", "seed"], "less_than_equal"),
        (lambda: sdk.text_to_speech.convert(RACHEL, text="hi", previous_request_ids=["a", "b", "c", "d"]),
         ["body", "previous_request_ids"], "too_long"),
        (lambda: sdk.music.compose(prompt="lofi", model_id="music_v9"), ["body", "model_id"], "enum"),
        (lambda: sdk.music.compose(prompt="lofi", output_format="wav_44100"), ["query", "output_format"], "enum"),
        (lambda: sdk.music.compose(prompt="lofi", music_length_ms=600001), ["body", "music_length_ms"],
         "less_than_equal"),
    ]
    for call, loc, kind in cases:
        with pytest.raises(ApiError) as caught:
            b"".join(call())
        assert [(p["loc"], p["type"]) for p in _detail(caught)] == [(loc, kind)], loc
    enum = _detail_of(sdk, lambda: sdk.music.compose(prompt="lofi", model_id="music_v9"))[0]
    assert enum["msg"] == "Input should be 'music_v1', 'music_v2' or 'music_v2_5'" and enum["input"] == "music_v9"
    assert records(control) == []


def _detail_of(sdk: ElevenLabs, call: Any) -> list[dict[str, Any]]:
    with pytest.raises(ApiError) as caught:
        b"".join(call())
    return _detail(caught)


def test_query_and_body_problems_come_together(provider_base: str, control: httpx.Client) -> None:
    r = httpx.post(f"{provider_base}/v1/text-to-speech/{RACHEL}", params={"enable_logging": "maybe",
                                                                         "optimize_streaming_latency": "x"},
                   json={"model_id": 3}, headers={"xi-api-key": KEY})
    assert r.status_code == 422
    assert [(p["loc"], p["type"]) for p in r.json()["detail"]] == [
        (["query", "enable_logging"], "bool_parsing"), (["query", "optimize_streaming_latency"], "int_parsing"),
        (["body", "text"], "missing"), (["body", "model_id"], "string_type")]
    ok = httpx.post(f"{provider_base}/v1/text-to-speech/{RACHEL}", params={"enable_logging": "false",
                                                                          "optimize_streaming_latency": "2"},
                    json={"text": "hi"}, headers={"xi-api-key": KEY})
    assert ok.status_code == 200
    assert [r["query"] for r in records(control)] == [{"enable_logging": "false", "optimize_streaming_latency": "2"}]


def test_rejection_knobs_still_come_before_validation(provider_base: str, control: httpx.Client) -> None:
    r = httpx.post(f"{provider_base}/v1/music", json={"prompt": 5, "sim": {"submit_status": 503}},
                   headers={"xi-api-key": KEY})
    assert r.status_code == 503 and r.json()["detail"]["status"] == "service_unavailable"
    assert records(control) == []


def test_valid_calls_with_optional_fields_and_nulls_pass(sdk: ElevenLabs, control: httpx.Client) -> None:
    b"".join(sdk.text_to_speech.convert(
        RACHEL, text="hello", model_id=None, output_format="wav_16000", seed=4294967295,
        voice_settings={"stability": 0.5, "use_speaker_boost": True}, apply_text_normalization="auto",
        pronunciation_dictionary_locators=[{"pronunciation_dictionary_id": "d1"}], previous_request_ids=["a"] * 3))
    b"".join(sdk.music.compose(prompt="lofi", music_length_ms=3000, model_id="music_v1", output_format="auto",
                               sign_with_c_2_pa=True))
    first, second = records(control)
    assert first["status"] == second["status"] == "completed"
    assert first["unknown_fields"] == second["unknown_fields"] == []
    assert second["input"]["sign_with_c2pa"] is True


def test_unknown_fields_are_accepted_and_listed(adapter: ElevenLabsAdapter, control: httpx.Client) -> None:
    # a parameter that reached ElevenLabs in a field the endpoint does not have: `stability` belongs
    # inside voice_settings, `duration` is the gateway's name for music_length_ms
    adapter.submit(tts("Hi", options={"stability": 0.4, "sim": {"marker": "m"}}), KEY)
    adapter.submit(music(options={"duration": 12}), KEY)
    first, second = records(control)
    assert first["unknown_fields"] == ["stability"] and first["status"] == "completed"
    assert second["unknown_fields"] == ["duration"] and second["status"] == "completed"


@pytest.mark.parametrize("spec", [s for s in catalog.MODELS if s.provider == "elevenlabs"], ids=lambda s: s.name)
def test_the_gateways_payloads_pass_validation_with_no_unknown_fields(adapter: ElevenLabsAdapter,
                                                                      control: httpx.Client, spec: Any) -> None:
    ((mode, endpoint),) = spec.endpoints.items()
    if spec.capability == "music":
        request = ProviderRequest(job_id="j", model=spec.name, capability="music", mode=mode, endpoint=endpoint,
                                  params={"prompt": "calm piano", "duration": 10}, options={})
    else:
        request = ProviderRequest(job_id="j", model=spec.name, capability="speech", mode=mode, endpoint=endpoint,
                                  params={"text": "Hello from the gateway.", "voice": "adam", "language": "en"},
                                  options={})
    assert isinstance(adapter.submit(request, KEY), Finished)
    (record,) = records(control)
    assert record["unknown_fields"] == [] and record["response_status"] == 200
