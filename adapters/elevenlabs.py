"""ElevenLabs, through the official `elevenlabs` SDK: text-to-speech and music, both synchronous.

ElevenLabs answers the create call with the audio itself, so `submit` returns `Finished` with the
bytes and there is never anything to poll or cancel. Wire details that shape this module:

* `convert()` / `compose()` are lazy generators; we use their `with_raw_response` context managers
  instead, which send the request on entry and expose the response headers (Content-Type).
* The SDK's streaming calls (TTS, music) are never retried by the SDK (only its non-streaming
  `request()` retries 408/409/429/5xx), and it never retries transport errors: a read timeout after
  the request was sent reaches us once, as an `httpx` timeout, and is reported without a status so
  the pipeline does not resubmit a generation that may already be billed.
* Exhausted quota is a 401 whose `detail.status` is `quota_exceeded`, not a 402/429: it is final,
  like a bad key, and the message says so.
* `ELEVENLABS_API_KEY` is read by the SDK at import time as a default: the key is always passed.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from elevenlabs.client import ElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.core.request_options import RequestOptions

from gengate.adapters.base import (
    CancelVerdict, Failed, Finished, Output, ProviderFailure, ProviderRequest, Running, failure_for_status, header_value,
    retry_after_seconds,
)
from gengate.adapters.clients import ClientCache
from gengate.config.settings import ProviderSettings

NAME = "elevenlabs"

#: The spec's voice names, in spec order, and the premade voice each one stands for.
VOICE_NAMES: tuple[str, ...] = ("rachel", "domi", "sarah", "antoni", "elli", "josh", "arnold", "adam", "sam")
VOICES: dict[str, str] = {
    "rachel": "21m00Tcm4TlvDq8ikWAM",
    "domi": "AZnzlk1XvdvUeBnXmlld",
    "sarah": "EXAVITQu4vr4xnSDxMaL",
    "antoni": "ErXwobaYiN019PkySvjV",
    "elli": "MF3mGyEYCl7XYWbV9V6O",
    "josh": "TxGEqnHWrfWFTfGW9XjX",
    "arnold": "VR6AewLTigWG4xSOukaG",
    "adam": "pNInz6obpgDQGcFmaJgB",
    "sam": "yoZ06aMxZJJ28mfd3POQ",
}
DEFAULT_VOICE = "rachel"
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
DEFAULT_MUSIC_SECONDS = 30.0
MUSIC_MODES = frozenset({"music", "text-to-music"})

# Voice ids are opaque alphanumeric strings (20 chars for premade ones). The SDK puts the id into
# the URL path unescaped, so anything else is refused here rather than allowed to alter the path.
_VOICE_ID = re.compile(r"^[A-Za-z0-9]{10,64}$")
# These provider options are query parameters of the create call, not body fields.
_QUERY_OPTIONS = {
    "tts": ("output_format", "enable_logging", "optimize_streaming_latency"),
    "music": ("output_format", "enable_logging"),
}
# Content type by `output_format` codec, for when a response carries no usable Content-Type.
_FORMAT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "pcm": "audio/pcm", "ulaw": "audio/basic",
                 "alaw": "audio/basic", "opus": "audio/ogg"}


class ElevenLabsAdapter:
    name = NAME

    def __init__(self, settings: ProviderSettings) -> None:
        self._base_url = settings.base_url.rstrip("/") if settings.base_url else None
        # The SDK hands its `timeout` to httpx unchanged on every request, so an httpx.Timeout
        # keeps a short connect timeout next to the long read timeout a generation needs.
        self._timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        self._clients: ClientCache[ElevenLabs] = ClientCache(
            lambda key: ElevenLabs(api_key=key, base_url=self._base_url, timeout=self._timeout),  # type: ignore[arg-type]
            max_size=settings.clients_max, idle_seconds=settings.client_idle_seconds)

    def _client(self, key: str) -> ElevenLabs:
        return self._clients.get(key)

    def submit(self, req: ProviderRequest, key: str) -> Finished:
        client = self._client(key)
        kind = "music" if req.capability == "music" or req.mode in MUSIC_MODES else "tts"
        body_options = dict(req.options)
        query = {name: body_options.pop(name) for name in _QUERY_OPTIONS[kind] if name in body_options}
        query.setdefault("output_format", DEFAULT_OUTPUT_FORMAT)
        # `max_retries: 0` is belt and braces: the streaming calls do not retry today, and a
        # generation must never be sent twice by the SDK behind our back.
        options: RequestOptions = {"additional_body_parameters": body_options, "max_retries": 0}
        with _mapped_errors():
            if kind == "music":
                call = client.music.with_raw_response.compose(
                    prompt=req.params.get("prompt", ""),
                    music_length_ms=music_length_ms(req.params),
                    model_id=req.endpoint,
                    request_options=options,
                    **query,
                )
            else:
                extra = {"language_code": req.params["language"]} if req.params.get("language") else {}
                call = client.text_to_speech.with_raw_response.convert(
                    voice_id(req.params.get("voice")),
                    text=req.params.get("text", ""),
                    model_id=req.endpoint,
                    request_options=options,
                    **extra,
                    **query,
                )
            with call as response:
                data = b"".join(response.data)
                headers = {k.lower(): v for k, v in response.headers.items()}
        media_type = _media_type(headers.get("content-type"), str(query["output_format"]))
        return Finished(outputs=[Output(media_type, data=data)], metadata=_metadata(headers, query))

    def poll(self, handle: dict[str, Any], key: str) -> Running | Finished | Failed:
        raise ProviderFailure(NAME, "ElevenLabs is synchronous: there is no job to poll", retryable=False)

    def cancel(self, handle: dict[str, Any], key: str) -> CancelVerdict:
        """Nothing to stop: the audio comes back with the create call, which ElevenLabs bills, and it
        has no cancel endpoint for these calls. A call that was made is always too late to cancel."""
        return CancelVerdict.TOO_LATE


def create(settings: ProviderSettings) -> ElevenLabsAdapter:
    return ElevenLabsAdapter(settings)


def voice_id(voice: Any) -> str:
    """A spec voice name (any case) to its premade voice id; a voice id passes through unchanged."""
    name = str(voice or DEFAULT_VOICE).strip()
    if name.lower() in VOICES:
        return VOICES[name.lower()]
    if _VOICE_ID.match(name):
        return name
    raise ProviderFailure(NAME, f"Unknown voice {name[:64]!r}: use one of {', '.join(VOICE_NAMES)} "
                          "or an ElevenLabs voice id", retryable=False)


def music_length_ms(params: dict[str, Any]) -> int:
    """The gateway's `duration` (seconds) in ms; the 3-600 s range is checked by the gateway."""
    seconds = params.get("duration")
    return round(float(seconds if seconds is not None else DEFAULT_MUSIC_SECONDS) * 1000)


def _media_type(content_type: str | None, output_format: str) -> str:
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared.startswith("audio/"):
        return declared
    return _FORMAT_TYPES.get(output_format.split("_", 1)[0].lower(), "audio/mpeg")


def _metadata(headers: dict[str, str], query: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"output_format": query["output_format"]}
    for header, name in (("request-id", "request_id"), ("history-item-id", "history_item_id"),
                         ("character-cost", "character_cost")):
        if headers.get(header):
            meta[name] = headers[header]
    return meta


def error_message(body: Any) -> str:
    """A readable message from ElevenLabs' error bodies: `{"detail": {"status", "message"}}`,
    FastAPI's 422 `{"detail": [{"loc", "msg"}]}`, or plain text."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        status, message = detail.get("status"), detail.get("message")
        if status == "quota_exceeded":
            return f"ElevenLabs quota exceeded: {message or 'no credits left'}"[:500]
        if message:
            return (f"{message} ({status})" if status else str(message))[:500]
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)[:500] or "validation error"
    return str(detail)[:500] or "ElevenLabs error"


class _mapped_errors:
    """Turn the SDK's and httpx's exceptions into `ProviderFailure`, cause kept."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, ProviderFailure):
            return False
        if isinstance(exc, ApiError):
            if exc.status_code is None:  # no HTTP answer to classify: treat like a transport fault
                raise ProviderFailure(NAME, error_message(exc.body), retryable=True) from exc
            message = error_message(exc.body)
            raise failure_for_status(NAME, exc.status_code, message, retry_after=retry_after_seconds(header_value(exc.headers, "retry-after"))) from exc
        if isinstance(exc, httpx.TransportError):
            # No status on purpose: after a read timeout the generation may have been accepted.
            raise ProviderFailure(NAME, f"{type(exc).__name__}: {exc}", retryable=True) from exc
        return False
