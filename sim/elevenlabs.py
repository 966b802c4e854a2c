"""An ElevenLabs simulator that the real ``elevenlabs`` SDK can talk to.

Point the SDK at it with ``ElevenLabs(api_key=..., base_url="http://HOST:PORT/elevenlabs")``;
it calls ``<base>/v1/...`` exactly as against ``api.elevenlabs.io``. Mounted at ``/elevenlabs``.

What it speaks (see docs/providers.md, "ElevenLabs"):

* ``POST /v1/text-to-speech/{voice_id}[/stream]?output_format=...`` and ``POST /v1/music`` answer
  with the audio bytes themselves (a real MP3, or WAV/PCM when asked), after the simulated
  generation time: ElevenLabs is synchronous, so there is no job to poll or cancel.
* ``GET /v1/voices`` lists the nine premade voices of the gateway's spec; their ``preview_url``
  points at real MP3 files under ``/elevenlabs/files/``.
* Auth is the ``xi-api-key`` header. Errors use ElevenLabs' bodies: ``{"detail": {"status",
  "message"}}`` (401 ``invalid_api_key`` / ``quota_exceeded``, 404 ``voice_not_found``, 429
  ``too_many_concurrent_requests``) and FastAPI's 422 ``{"detail": [{"type","loc","msg","input"}]}``.

Knobs (per call in a ``"sim"`` object of the JSON body, or globally via ``POST /_sim/config``):
``queue_time`` and ``latency`` (seconds the call stays open before the audio comes), ``hang``
(record the call as accepted, then wait that long before answering: a read timeout after
acceptance), ``fail`` (the call ends with a 400 ``{"detail": {"status": fail_type, "message":
fail}}``, or FastAPI's 422 with ``fail_status: 422``), ``submit_status`` (+ ``submit_status_times``,
``retry_after``, ``submit_detail``) to reject the call before it is accepted, ``quota: true`` (a 401
``quota_exceeded`` rejection; also the 401 body of ``submit_status: 401``), ``output`` ("mp3" or
"wav", overriding the audio kind). Global-only: ``keys`` (accepted API keys; any non-empty key when
unset), ``voices`` (extra voice ids to accept besides the premade ones) and ``max_concurrent`` (more
calls in flight than this get the 429).

Validation is ElevenLabs' own (a FastAPI app): every create call's JSON body and query parameters
are checked against the endpoint's published schema (``config/schemas/elevenlabs/``, generated from
the ``elevenlabs`` SDK, i.e. from ElevenLabs' OpenAPI document, by tools/vendor_elevenlabs_schemas.py):
a missing required field, a wrong type, a value outside an enum or outside a documented range is a 422
with pydantic's ``detail`` list (``[{"loc": ["body", "text"], "msg": "Field required", "type":
"missing"}]``; query errors have ``["query", name]``), before anything is recorded. Fields the
endpoint does not have are accepted (ElevenLabs ignores them) and listed in the call record's
``unknown_fields`` (the ``sim`` knob object is not counted). The simulator's own rules come after
that: exactly one of ``prompt``/``composition_plan``, non-empty ``text`` within the model's character
limit (400), a known voice (404), and an output codec it can render (mp3, wav, pcm; else 400).

A call's status is derived from the time since it was accepted (queued, processing, then completed
or failed); ``status_error`` has nothing to act on here because nothing is ever polled.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gengate.config import schemas
from gengate.sim import media, schema
from gengate.sim.control import JSON, ControlledSimulator, control_routes, number, retry_after_header

DEFAULT_CONFIG: JSON = {"queue_time": 0.0, "latency": 0.0, "keys": None, "max_concurrent": None}
GLOBAL_ONLY = ("keys", "max_concurrent", "voices")  # account settings, not per-call knobs

#: The premade voices of the gateway's spec: id, display name, labels (labels are illustrative).
PREMADE_VOICES: tuple[tuple[str, str, JSON], ...] = (
    ("21m00Tcm4TlvDq8ikWAM", "Rachel", {"accent": "american", "gender": "female", "age": "young",
                                        "description": "calm", "use_case": "narration"}),
    ("AZnzlk1XvdvUeBnXmlld", "Domi", {"accent": "american", "gender": "female", "age": "young",
                                      "description": "strong", "use_case": "narration"}),
    ("EXAVITQu4vr4xnSDxMaL", "Sarah", {"accent": "american", "gender": "female", "age": "young",
                                       "description": "soft", "use_case": "news"}),
    ("ErXwobaYiN019PkySvjV", "Antoni", {"accent": "american", "gender": "male", "age": "young",
                                        "description": "well-rounded", "use_case": "narration"}),
    ("MF3mGyEYCl7XYWbV9V6O", "Elli", {"accent": "american", "gender": "female", "age": "young",
                                      "description": "emotional", "use_case": "narration"}),
    ("TxGEqnHWrfWFTfGW9XjX", "Josh", {"accent": "american", "gender": "male", "age": "young",
                                      "description": "deep", "use_case": "narration"}),
    ("VR6AewLTigWG4xSOukaG", "Arnold", {"accent": "american", "gender": "male", "age": "middle aged",
                                        "description": "crisp", "use_case": "narration"}),
    ("pNInz6obpgDQGcFmaJgB", "Adam", {"accent": "american", "gender": "male", "age": "middle aged",
                                      "description": "deep", "use_case": "narration"}),
    ("yoZ06aMxZJJ28mfd3POQ", "Sam", {"accent": "american", "gender": "male", "age": "young",
                                     "description": "raspy", "use_case": "narration"}),
)
VOICE_IDS = frozenset(voice_id for voice_id, _, _ in PREMADE_VOICES)

# Per-request character limits from ElevenLabs' help centre (eleven_v3's is our assumption).
TEXT_LIMITS = {"eleven_v3": 5000, "eleven_multilingual_v2": 10000, "eleven_flash_v2_5": 40000,
               "eleven_turbo_v2_5": 40000, "eleven_flash_v2": 30000, "eleven_turbo_v2": 30000}
DEFAULT_TEXT_LIMIT = 10000
MAX_AUDIO_SECONDS = 5.0  # simulated audio stays short, whatever length was asked for
CHARS_PER_SECOND = 15.0
OUTPUT_FORMAT = re.compile(r"^(?P<codec>mp3|pcm|wav|ulaw|alaw|opus)_(?P<rate>\d{4,5})(?:_(?P<kbps>\d{2,3}))?$")
SIMULATED_CODECS = ("mp3", "wav", "pcm")
# `output_format` when the query has none: TTS's documented default, and music's "auto" resolved as
# ElevenLabs documents it (mp3_44100_128 for v1 models, mp3_48000_192 for v2 models).
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
AUTO_OUTPUT_FORMAT = {"music_v2": "mp3_48000_192", "music_v2_5": "mp3_48000_192"}
# pydantic's lax parsing of query strings
_TRUE, _FALSE = {"1", "on", "t", "true", "y", "yes"}, {"0", "off", "f", "false", "n", "no"}
PREVIEW_FILE = re.compile(r"^(?P<voice>[A-Za-z0-9]{10,64})_preview\.mp3$")

SUBMIT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request", "The request could not be processed."),
    401: ("invalid_api_key", "Invalid API key"),
    403: ("missing_permissions", "The API key you used is missing the permission required for this operation."),
    404: ("not_found", "The requested resource was not found."),
    409: ("conflict", "A conflicting request is already in progress."),
    429: ("too_many_concurrent_requests",
          "Your subscription has exceeded its concurrent requests limit. Please try again later."),
    500: ("internal_server_error", "An internal error occurred."),
    502: ("bad_gateway", "Bad gateway."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
    504: ("gateway_timeout", "Gateway timeout."),
}
QUOTA_MESSAGE = ("This request exceeds your quota of 10000. You have 0 credits remaining, "
                 "while {need} credits are required for this request.")


def detail_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """ElevenLabs' usual error body: ``{"detail": {"status": <code>, "message": <text>}}``."""
    return JSONResponse({"detail": {"status": code, "message": message}}, status, headers=headers)


def validation_error(problems: list[JSON]) -> JSONResponse:
    """FastAPI's (pydantic v2) 422 body, which ElevenLabs answers for malformed requests."""
    return JSONResponse({"detail": problems}, 422)


def _problem(kind: str, loc: list[str | int], msg: str, value: Any = None) -> JSON:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def published_schema(endpoint: str) -> JSON:
    """The vendored record of one ElevenLabs endpoint (``input`` and ``query`` schemas)."""
    found = schemas.published("elevenlabs", endpoint)
    if found is None:
        raise RuntimeError(f"no vendored ElevenLabs schema for {endpoint!r}: run tools/vendor_elevenlabs_schemas.py")
    return found


def _branch(node: JSON, value: Any) -> JSON | None:
    """The branch of an ``anyOf`` that `value` (already valid) satisfies."""
    for option in node.get("anyOf", [node]):
        if not schema.errors(option, value, []):
            return option
    return None


def bound_errors(node: JSON, value: Any, loc: list[Any]) -> list[JSON]:
    """The ranges the vendored schema states (``minimum``/``maximum``/``maxItems``, which
    `gengate.sim.schema` does not read), as pydantic reports them; `value` has passed `validate`."""
    node = _branch(node, value) or {}
    found: list[JSON] = []
    number_like = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number_like and "minimum" in node and value < node["minimum"]:
        found.append({"type": "greater_than_equal", "loc": loc, "input": value, "ctx": {"ge": node["minimum"]},
                      "msg": f"Input should be greater than or equal to {node['minimum']}"})
    if number_like and "maximum" in node and value > node["maximum"]:
        found.append({"type": "less_than_equal", "loc": loc, "input": value, "ctx": {"le": node["maximum"]},
                      "msg": f"Input should be less than or equal to {node['maximum']}"})
    if isinstance(value, list):
        limit = node.get("maxItems")
        if isinstance(limit, int) and len(value) > limit:
            found.append({"type": "too_long", "loc": loc, "input": value,
                          "ctx": {"field_type": "List", "max_length": limit, "actual_length": len(value)},
                          "msg": f"List should have at most {limit} item{'s' if limit != 1 else ''} after "
                                 f"validation, not {len(value)}"})
        for i, item in enumerate(value):
            found += bound_errors(node.get("items", {}), item, [*loc, i])
    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                found += bound_errors(sub, value[name], [*loc, name])
    return found


def query_errors(node: JSON, query: dict[str, str]) -> tuple[JSON, list[JSON]]:
    """The query parameters parsed as FastAPI parses them (bool, int), and the 422 problems."""
    parsed: JSON = {}
    problems: list[JSON] = []
    for name, raw in query.items():
        prop = node.get("properties", {}).get(name)
        if prop is None:  # unknown query parameters are ignored
            parsed[name] = raw
            continue
        loc: list[Any] = ["query", name]
        kind = prop.get("type")
        value: Any = raw
        if kind == "boolean":
            if raw.lower() not in _TRUE | _FALSE:
                problems.append({"type": "bool_parsing", "loc": loc, "input": raw,
                                 "msg": "Input should be a valid boolean, unable to interpret input"})
                continue
            value = raw.lower() in _TRUE
        elif kind == "integer":
            if not re.fullmatch(r"\s*[+-]?\d+\s*", raw):
                problems.append({"type": "int_parsing", "loc": loc, "input": raw,
                                 "msg": "Input should be a valid integer, unable to parse string as an integer"})
                continue
            value = int(raw)
        found = schema.errors(prop, value, loc)
        problems += found or bound_errors(prop, value, loc)
        parsed[name] = value
    for name in node.get("required", []):
        if name not in query:
            problems.append({"type": "missing", "loc": ["query", name], "msg": "Field required", "input": None})
    return parsed, problems


def audio_seconds(value: float) -> float:
    """Length of the simulated audio: bounded, and rounded so the media cache gets hits."""
    return round(min(max(value, 0.5), MAX_AUDIO_SECONDS), 1)


@dataclass
class Call:
    """One accepted create call (a TTS or music generation); its status follows from the clock."""

    request_id: str
    endpoint: str  # "text-to-speech" or "music"
    path: str
    voice_id: str | None
    query: JSON
    input: JSON
    knobs: JSON
    submitted_at: float
    started: float  # monotonic
    queue_time: float
    latency: float
    hang: float
    key_suffix: str
    answered: bool = False
    response_status: int | None = None
    unknown_fields: list[str] = field(default_factory=list)  # body fields the endpoint's schema lacks

    @property
    def ends_after(self) -> float:
        return self.queue_time + self.latency + self.hang

    @property
    def outcome(self) -> str:
        return "failed" if self.knobs.get("fail") else "ok"

    def status(self) -> str:
        elapsed = time.monotonic() - self.started
        if elapsed < self.queue_time:
            return "queued"
        if elapsed < self.ends_after:
            return "processing"
        return "completed" if self.outcome == "ok" else "failed"

    def as_json(self) -> JSON:
        return {
            "request_id": self.request_id, "endpoint": self.endpoint, "path": self.path,
            "voice_id": self.voice_id, "query": self.query, "input": self.input,
            "status": self.status(), "outcome": self.outcome, "answered": self.answered,
            "response_status": self.response_status, "queue_time": self.queue_time,
            "latency": self.latency, "hang": self.hang, "cancelled": False, "cancel_calls": 0,
            "status_calls": 0, "submitted_at": self.submitted_at, "key_suffix": self.key_suffix,
            "unknown_fields": self.unknown_fields,
        }


class ElevenLabsSimulator(ControlledSimulator[Call]):
    """In-memory state and HTTP handlers of the simulated ElevenLabs API."""

    DEFAULT_CONFIG = DEFAULT_CONFIG
    CONFIG_ONLY = GLOBAL_ONLY
    COUNTERS = ("submit_attempts", "submissions", "submit_rejected", "completed", "failed", "status_calls",
                "cancel_calls", "cancels", "voices_calls", "file_downloads", "max_in_flight")

    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}
        self.in_flight = 0
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.calls.clear()

    # -- helpers -------------------------------------------------------------
    def auth_error(self, request: Request) -> tuple[JSONResponse | None, str]:
        key = request.headers.get("xi-api-key", "").strip()
        if not key:
            return detail_error(401, "invalid_api_key", "Missing xi-api-key header"), ""
        if self.key_refused(key):
            return detail_error(401, "invalid_api_key", "Invalid API key"), ""
        return None, key[-4:] if len(key) > 4 else ""  # a suffix only, never a whole (short) key

    def rejection(self, request: Request, raw: bytes, knobs: JSON, cost: int) -> Response | None:
        """The ``quota`` and ``submit_status`` knobs, the latter optionally only for the first
        ``submit_status_times`` tries of an identical call (so retries can be seen to succeed)."""
        status = knobs.get("submit_status")
        if status is None and not knobs.get("quota"):
            return None
        if not self.submit_failure_due(knobs, request.url.path.encode(), raw):
            return None
        code = 401 if status is None else int(number(status, 500))
        if code == 401 and knobs.get("quota"):
            return detail_error(401, "quota_exceeded", QUOTA_MESSAGE.format(need=max(cost, 1)))
        if code == 422:
            return validation_error([_problem("value_error", ["body"], str(knobs.get("submit_detail")
                                                                           or "Simulated validation error"))])
        name, message = SUBMIT_ERRORS.get(code, ("simulated_error", "Simulated error"))
        headers = retry_after_header(knobs.get("retry_after")) if code == 429 else None
        return detail_error(code, name, str(knobs.get("submit_detail") or message), headers)

    async def read_json(self, request: Request) -> tuple[bytes, JSON | Response]:
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return raw, validation_error([_problem("model_attributes_type", ["body"],
                                                   "Input should be a valid dictionary or object to extract "
                                                   "fields from", None)])
        return raw, payload

    @staticmethod
    def output_format(query: JSON, payload: JSON) -> tuple[str, Response | None]:
        """The output format to render (``auto`` resolved), or the 400 for a codec the simulator
        cannot produce. The value itself was checked against the endpoint's enum already."""
        value = str(query.get("output_format") or DEFAULT_OUTPUT_FORMAT)
        if value == "auto":
            value = AUTO_OUTPUT_FORMAT.get(str(payload.get("model_id")), DEFAULT_OUTPUT_FORMAT)
        match = OUTPUT_FORMAT.match(value)
        if match is None or match.group("codec") not in SIMULATED_CODECS:
            return value, detail_error(400, "unsupported_output_format",
                                       f"The simulator only produces {', '.join(SIMULATED_CODECS)} audio")
        return value, None

    # -- create calls ----------------------------------------------------------
    async def text_to_speech(self, request: Request) -> Response:
        voice_id = request.path_params["voice_id"]

        def validate(payload: JSON) -> Response | None:  # after the schema: `text` is a string
            text, model = payload["text"], payload.get("model_id") or "eleven_multilingual_v2"
            if not text.strip():
                return detail_error(400, "invalid_text", "The text must not be empty.")
            limit = TEXT_LIMITS.get(str(model), DEFAULT_TEXT_LIMIT)
            if len(text) > limit:
                return detail_error(400, "max_character_limit_exceeded",
                                    f"This request's text has {len(text)} characters and exceeds the "
                                    f"character limit of {limit} characters.")
            if voice_id not in VOICE_IDS and voice_id not in (self.config.get("voices") or ()):
                return detail_error(404, "voice_not_found", f"A voice with the voice_id {voice_id} was not found.")
            return None

        def seconds(payload: JSON) -> float:
            return len(payload["text"]) / CHARS_PER_SECOND

        schema_id = "text-to-speech/stream" if request.url.path.endswith("/stream") else "text-to-speech"
        return await self.create_call(request, "text-to-speech", schema_id, voice_id, validate, seconds,
                                      cost=lambda payload: len(str(payload.get("text") or "")))

    async def music(self, request: Request) -> Response:
        def validate(payload: JSON) -> Response | None:  # after the schema (types, music_length_ms range)
            # documented: "Cannot be used in conjunction with" each other; one of them is needed
            prompt, plan = payload.get("prompt"), payload.get("composition_plan")
            if (prompt is None) == (plan is None):
                return validation_error([_problem("value_error", ["body"], "Value error, exactly one of "
                                                  "'prompt' and 'composition_plan' must be provided")])
            return None

        def seconds(payload: JSON) -> float:
            length = payload.get("music_length_ms")
            return (length if isinstance(length, int) else 30000) / 1000

        return await self.create_call(request, "music", "music", None, validate, seconds,
                                      cost=lambda payload: int(seconds(payload) * 10))

    async def create_call(self, request: Request, endpoint: str, schema_id: str, voice_id: str | None,
                          validate: Any, seconds: Any, cost: Any) -> Response:
        """The path every create call takes: auth, body, injected rejections, validation against the
        published schema, the simulator's own checks, acceptance, the simulated generation time, then
        the audio (or the injected failure)."""
        self.count("submit_attempts")
        denied, key_suffix = self.auth_error(request)
        if denied is not None:
            self.count("submit_rejected")
            return denied
        raw, payload = await self.read_json(request)
        if isinstance(payload, Response):
            self.count("submit_rejected")
            return payload
        knobs = self.knobs_for(payload)
        fault = self.fault_due(knobs, "submit_fault", hashlib.sha256(raw).hexdigest())
        if fault is not None and fault.get("kind") == "reset":  # before acceptance: nothing was recorded
            self.count("submit_rejected")
            return await self.fault_response(request, fault)
        denied = self.rejection(request, raw, knobs, cost(payload))
        output_format, unknown = DEFAULT_OUTPUT_FORMAT, []
        if denied is None:
            published = published_schema(schema_id)
            query, problems = query_errors(published["query"], dict(request.query_params))
            body_problems = schema.validate(published["input"], payload)
            problems += body_problems or bound_errors(published["input"], payload, ["body"])
            if problems:  # FastAPI reports the query's and the body's problems together
                denied = validation_error(problems)
            else:
                output_format, denied = self.output_format(query, payload)
                denied = denied or validate(payload)
                # the simulator's own knobs ride in the body too; they are not the caller's parameters
                unknown = [f for f in schema.unknown_fields(published["input"], payload) if f != "sim"]
        limit = self.config.get("max_concurrent")
        if denied is None and isinstance(limit, int) and self.in_flight >= limit:
            denied = detail_error(429, *SUBMIT_ERRORS[429])
        if denied is not None:
            self.count("submit_rejected")
            return denied

        now = time.monotonic()
        call = Call(
            request_id=uuid.uuid4().hex, endpoint=endpoint, path=request.url.path, voice_id=voice_id,
            query=dict(request.query_params), input=payload, knobs=knobs, submitted_at=time.time(),
            started=now, queue_time=number(knobs.get("queue_time"), 0.0),
            latency=number(knobs.get("latency"), 0.0), hang=number(knobs.get("hang"), 0.0),
            key_suffix=key_suffix, unknown_fields=unknown,
        )
        self.calls[call.request_id] = call
        self.count("submissions")
        self.in_flight += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.in_flight)
        try:
            # The connection stays open for the whole generation, as with the real API.
            await asyncio.sleep(call.ends_after)
            response = await self.answer(call, output_format, seconds(payload), cost(payload))
        finally:
            self.in_flight -= 1
        call.answered, call.response_status = True, response.status_code
        self.count("completed" if response.status_code < 400 else "failed")
        return response

    async def answer(self, call: Call, output_format: str, seconds: float, cost: int) -> Response:
        headers = {"request-id": call.request_id}
        fail = call.knobs.get("fail")
        if fail:
            if int(number(call.knobs.get("fail_status"), 400)) == 422:
                return validation_error([_problem(str(call.knobs.get("fail_type") or "value_error"),
                                                  ["body"], str(fail), None)])
            default_type = "bad_prompt" if call.endpoint == "music" else "invalid_request"
            return detail_error(400, str(call.knobs.get("fail_type") or default_type), str(fail), headers)
        kind = str(call.knobs.get("output") or output_format.split("_", 1)[0])
        data, media_type = await run_in_threadpool(render_audio, kind, output_format, audio_seconds(seconds))
        if call.endpoint == "text-to-speech":
            headers["character-cost"] = str(cost)
        return Response(data, media_type=media_type, headers=headers)

    # -- other API -------------------------------------------------------------
    async def voices(self, request: Request) -> Response:
        self.count("voices_calls")
        denied, _ = self.auth_error(request)
        if denied is not None:
            return denied
        files = f"{self.mount_url(request)}/files"
        voices = [{"voice_id": voice_id, "name": name, "category": "premade", "labels": labels,
                   "description": None, "preview_url": f"{files}/{voice_id}_preview.mp3",
                   "available_for_tiers": [], "settings": None, "is_owner": False, "is_legacy": False}
                  for voice_id, name, labels in PREMADE_VOICES]
        return JSONResponse({"voices": voices})

    async def file(self, request: Request) -> Response:
        match = PREVIEW_FILE.match(request.path_params["name"])
        if match is None or match.group("voice") not in VOICE_IDS:
            return JSONResponse({"detail": "Not Found"}, 404)
        self.count("file_downloads")
        data, media_type = await run_in_threadpool(render_audio, "mp3", "mp3_44100_128", 1.0)
        return Response(data, media_type=media_type, headers={"cache-control": "public, max-age=3600"})

    # -- control API hooks -------------------------------------------------------
    def records(self) -> dict[str, Call]:
        return self.calls

    def control_stats(self) -> JSON:
        return {"in_flight": self.in_flight}


def render_audio(kind: str, output_format: str, seconds: float) -> tuple[bytes, str]:
    """Bytes and Content-Type of the audio for `kind` ("mp3", "wav" or "pcm"); MP3 falls back
    to WAV, honestly labelled, when this FFmpeg has no MP3 encoder."""
    match = OUTPUT_FORMAT.match(output_format)
    rate = int(match.group("rate")) if match else 44100
    if kind in ("mp3", "audio") and media.has_mp3_encoder():
        return media.mp3_bytes(seconds), "audio/mpeg"
    if kind == "pcm":
        return media.wav_bytes(seconds, rate)[44:], "audio/pcm"  # raw s16le: the WAV minus its header
    return media.wav_bytes(seconds, rate), "audio/wav"


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI-style JSON for unknown routes and methods, as ElevenLabs (a FastAPI app) answers."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


def create_app() -> Starlette:
    """The ElevenLabs simulator as an ASGI app; mount it at ``/elevenlabs`` (see ``sim.server``)."""
    sim = ElevenLabsSimulator()
    app = Starlette(
        routes=[
            *control_routes(sim),
            Route("/files/{name}", sim.file, methods=["GET"]),
            Route("/v1/voices", sim.voices, methods=["GET"]),
            Route("/v1/text-to-speech/{voice_id}", sim.text_to_speech, methods=["POST"]),
            Route("/v1/text-to-speech/{voice_id}/stream", sim.text_to_speech, methods=["POST"]),
            Route("/v1/music", sim.music, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.sim = sim
    return app
