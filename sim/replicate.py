"""A Replicate HTTP API simulator that the real ``replicate`` Python SDK can talk to.

Point the SDK at it with ``replicate.Client(api_token=..., base_url="http://HOST:PORT/replicate")``;
the SDK then calls ``<base>/v1/...`` exactly as against ``api.replicate.com``.  Outputs reference
real PNG (RGB, or RGBA cut-outs for background removers), MP4 and MP3/WAV files served from
``/replicate/files/`` (standing in for ``replicate.delivery``).

Design choices, and why:

* A prediction's status is *derived* from the time elapsed since creation (``queue_time`` seconds
  ``starting``, then ``latency`` seconds ``processing``, then ``succeeded``/``failed``), so
  thousands of predictions cost one small record each and no timer.  Only ``Prefer: wait``
  requests, streams and predictions with a ``webhook`` wait on anything.
* Faults and timing are steered per prediction by a ``"sim"`` object inside ``input`` (the gateway
  merges provider options into ``input``) or at the top of the body, or globally by
  ``POST /_sim/config``.  Knob names are shared by every simulator in this package.
* Knobs: ``queue_time``, ``latency``, ``fail`` (the run ends ``failed`` with that error),
  ``submit_status`` (+ ``submit_status_times``, ``retry_after``, ``submit_detail``),
  ``status_error: {"status", "times", "retry_after"}`` on ``GET /v1/predictions/{id}``, ``hang``
  (accept, then answer the create that many seconds late), ``output`` (image | cutout | video |
  audio | text), ``output_list``, ``result`` (the literal output), ``width``/``height``,
  ``seconds``, ``long_side``, ``webhook_attempts``.  The SDK retries GETs answered 429/503/504
  itself (10 tries in all), so a ``status_error`` of those codes is absorbed unless ``times`` >= 10.
* Wire details follow the installed SDK (``replicate/client.py``, ``prediction.py``,
  ``model.py``, ``stream.py``, ``webhook.py``) and responses recorded in the SDK's test cassettes:
  create answers ``201`` with the prediction in ``starting``; cancel answers ``200`` with the
  prediction (unchanged once it is terminal); errors are ``application/problem+json``
  ``{"title","detail","status"}``.  Choices the public material does not settle are marked
  "assumed" next to the code.
* Inputs are validated against the model version's published input schema where one is vendored
  (``gengate.config.schemas.published("replicate", "<owner>/<name>")``, config/schemas/replicate/):
  a body that fails it is refused with Replicate's 422 ``Input validation failed`` problem, whose
  ``invalid_fields`` entries (``{"type", "field", "description"}``) and ``detail`` lines
  (``- <field>: <description>``) follow bodies recorded from the live API (see ``input_problems``),
  and nothing is recorded.  Fields the schema lacks are accepted (Replicate ignores unknown inputs)
  and listed in the request record's ``unknown_fields``; the ``sim`` knob object is not counted.
  Models with no vendored schema keep the sim's own checks (an ``image`` for background removers).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gengate.config import schemas
from gengate.sim import files, media, schema
from gengate.sim.control import (
    JSON, UNKNOWN_STATUS, ControlledSimulator, callback_client, control_routes, hang, number, retry_after_header,
    send_webhook, status_error_due, with_output_fault,
)

#: Defaults that ``POST /_sim/reset`` restores.  Any per-prediction knob may also be set here and
#: then applies to every prediction that does not override it.  ``keys``: when a list, only those
#: tokens authenticate.  ``versions``: version id -> "owner/name", for bare version ids (the versions of the
#: vendored schemas are known without it: ``vendored_versions``).
DEFAULT_CONFIG: JSON = {"queue_time": 0.0, "latency": 0.0, "keys": None, "long_side": 256, "versions": {}}
CONFIG_ONLY = ("keys", "versions", "webhook_secret")

WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
TERMINAL = ("succeeded", "failed", "canceled")
MAX_WAIT = 60  # seconds a ``Prefer: wait`` may hold the request (Replicate's documented default and cap)
URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S")  # an absolute URI: a scheme, then something
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # ids look like "kr2d2jhqbsrj60cjb2vtmekgh4"

# (title, detail) of Replicate's problem bodies.  401/402/422/429 are as recorded from the live API;
# the others are assumed in the same style.
PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request body could not be parsed."),
    401: ("Unauthenticated", "You did not pass a valid authentication token"),
    402: ("Insufficient credit", "You have insufficient credit to run this model. Go to "
          "https://replicate.com/account/billing#billing to purchase credit."),
    403: ("Forbidden", "You do not have permission to perform this action."),
    404: ("Not found", "The requested resource could not be found."),
    409: ("Conflict", "The request conflicts with the current state of the resource."),
    422: ("Input validation failed", "- input: image is required\n"),
    429: ("Request was throttled", "Request was throttled."),
    500: ("Internal server error", "An unexpected error occurred."),
    502: ("Bad gateway", "The upstream service returned an invalid response."),
    503: ("Service unavailable", "The service is temporarily unavailable."),
    504: ("Gateway timeout", "The upstream service did not answer in time."),
}

# Ordered: the first entry whose word occurs in the model name decides the output kind.
KIND_TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cutout", ("background-remov", "remove-bg", "rembg", "remove-background", "matting", "birefnet")),
    ("text", ("whisper", "transcri", "llama", "gpt", "claude", "mistral")),
    ("video", ("video", "kling", "hailuo", "seedance", "veo", "ltx", "luma", "hunyuan", "wan-2", "lipsync")),
    ("audio", ("tts", "speech", "music", "audio", "kokoro", "bark")),
)
OUTPUT_KINDS = ("image", "cutout", "video", "audio", "text")


def _now_iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(26))


def problem(status: int, detail: str | None = None, *, headers: dict[str, str] | None = None,
            extra: JSON | None = None) -> JSONResponse:
    """Replicate's error answer: RFC 7807 problem details (the SDK's ``ReplicateError.from_response``)."""
    title, default_detail = PROBLEMS.get(status, ("Error", "Simulated error"))
    body: JSON = {"title": title, "detail": detail or default_detail, "status": status, **(extra or {})}
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")


def output_kind(model: str) -> str:
    lowered = model.lower()
    for kind, words in KIND_TABLE:
        if any(word in lowered for word in words):
            return kind
    return "image"


def prefer_wait(header: str | None) -> int | None:
    """Seconds asked by ``Prefer: wait`` / ``wait=N`` (clamped to 1..60), else None."""
    for token in re.split(r"[,;]", header or ""):
        name, _, value = token.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        if not value.strip():
            return MAX_WAIT
        seconds = number(value.strip(), float(MAX_WAIT))
        return int(min(max(seconds, 1), MAX_WAIT))
    return None


@dataclass
class WebhookState:
    """Delivery bookkeeping for one prediction's ``webhook``."""

    url: str
    events: tuple[str, ...]
    attempts: int = 0
    delivered: list[str] = field(default_factory=list)  # event names delivered, in order
    last_status: int | None = None
    last_error: str | None = None

    def as_json(self) -> JSON:
        return {"url": self.url, "events": list(self.events), "attempts": self.attempts,
                "delivered": self.delivered, "last_status": self.last_status, "last_error": self.last_error}


@dataclass
class SimPrediction:
    """One accepted prediction; its status is computed from `started` on demand."""

    id: str
    model: str
    version: str
    deployment: str | None
    body: JSON  # the full submitted JSON
    knobs: JSON
    base_url: str  # absolute URL of the mount, e.g. http://127.0.0.1:8000/replicate
    created_at: float  # wall clock, for timestamps
    started: float  # monotonic clock, for status arithmetic
    queue_time: float
    latency: float
    key_suffix: str
    webhook: WebhookState | None = None
    cancelled_at: float | None = None  # seconds after creation
    cancel_calls: int = 0
    status_calls: int = 0
    status_errors_served: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    unknown_fields: list[str] = field(default_factory=list)  # input fields the model's schema lacks
    _output: Any = None

    @property
    def input(self) -> JSON:
        value = self.body.get("input")
        return value if isinstance(value, dict) else {}

    @property
    def ends_after(self) -> float:
        """Seconds after creation at which the prediction is terminal."""
        return self.cancelled_at if self.cancelled_at is not None else self.queue_time + self.latency

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def status(self, elapsed: float) -> str:
        if elapsed >= self.ends_after:
            if self.cancelled_at is not None:
                return "canceled"
            return "failed" if self.knobs.get("fail") else "succeeded"
        return "starting" if elapsed < self.queue_time else "processing"

    def began(self, elapsed: float) -> bool:
        return min(elapsed, self.ends_after) >= self.queue_time

    @property
    def kind(self) -> str:
        forced = self.knobs.get("output")
        return str(forced) if forced in OUTPUT_KINDS else output_kind(self.model)

    @property
    def error(self) -> str:
        return str(self.knobs.get("fail"))

    def urls(self) -> JSON:
        get = f"{self.base_url}/v1/predictions/{self.id}"
        return {"get": get, "cancel": f"{get}/cancel", "stream": f"{self.base_url}/v1/streams/{self.id}"}

    def logs(self, elapsed: float, status: str) -> str:
        """Cog-style logs; the progress line is the tqdm format the SDK's ``Prediction.progress`` parses."""
        if not self.began(elapsed):
            return "Prediction canceled before it started\n" if status == "canceled" else ""
        lines = [f"Running {self.model}"]
        ran = min(elapsed, self.ends_after) - self.queue_time
        fraction = 1.0 if self.latency <= 0 else min(1.0, ran / self.latency)
        if status != "failed":
            step = int(fraction * 10)
            lines.append(f"{int(fraction * 100):3d}%|{'█' * step}{' ' * (10 - step)}| {step}/10 "
                         f"[00:{int(ran):02d}<00:00, 3.33it/s]")
        if status == "failed":
            lines += ["Traceback (most recent call last):", '  File "predict.py", line 42, in predict',
                      f"RuntimeError: {self.error}"]
        elif status == "canceled":
            lines.append("Prediction canceled")
        return "\n".join(lines) + "\n"

    def as_json(self, *, pending: bool = False) -> JSON:
        """The prediction as the API shows it now; `pending` shows it as just created (``starting``)."""
        elapsed = self.elapsed()
        status = "starting" if pending else self.status(elapsed)
        body: JSON = {
            "id": self.id, "model": self.model, "version": self.version, "input": self.input,
            "logs": "" if pending else self.logs(elapsed, status),
            "output": self.output() if status == "succeeded" else None,
            "data_removed": False, "error": self.error if status == "failed" else None,
            "status": status, "created_at": _now_iso(self.created_at), "urls": self.urls(),
        }
        if self.deployment:
            body["deployment"] = self.deployment
        if not pending and self.began(elapsed):
            body["started_at"] = _now_iso(self.created_at + self.queue_time)
        if status in TERMINAL:
            body["completed_at"] = _now_iso(self.created_at + self.ends_after)
            predict = max(0.0, self.ends_after - self.queue_time) if self.began(elapsed) else 0.0
            body["metrics"] = {"predict_time": round(predict, 6), "total_time": round(self.ends_after, 6)}
        if self.webhook is not None:
            body["webhook"] = self.webhook.url
            body["webhook_events_filter"] = list(self.webhook.events)
        return body

    # -- outputs ---------------------------------------------------------------
    def output(self) -> Any:
        """The model output (URL strings as Replicate returns them), built once; bytes are made on download."""
        if self._output is None:
            explicit = self.knobs.get("result")
            built = explicit if explicit is not None else self.build_output()
            self._output = with_output_fault(built, f"{self.base_url}/files/", self.knobs, self.id)
        return self._output

    def size(self, default_ratio: tuple[float, float]) -> tuple[int, int]:
        inp, knobs = self.input, self.knobs
        width, height = knobs.get("width", inp.get("width")), knobs.get("height", inp.get("height"))
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return min(width, media.MAX_SIDE), min(height, media.MAX_SIDE)
        long_side = int(number(knobs.get("long_side"), 256)) or 256
        return files.fit(files.aspect(inp.get("aspect_ratio")) or default_ratio, long_side)

    def build_output(self) -> Any:
        kind, rid, base = self.kind, self.id, f"{self.base_url}/files"
        seed = self.input.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            seed = int(hashlib.sha256(rid.encode()).hexdigest()[:8], 16)
        seconds = number(self.knobs.get("seconds"), 0.0) or number(self.input.get("duration"), 1.0)
        clip = files.millis(seconds) / 1000
        as_list = self.knobs.get("output_list")
        if kind == "cutout":
            # A background remover keeps the input's size; the sim can read it from its own file names.
            image = self.input.get("image")
            width, height = (isinstance(image, str) and files.size_in_name(image)) or self.size((1, 1))
            urls: list[str] = [f"{base}/{files.png_name(rid, width, height, seed, rgba=True)}"]
        elif kind == "video":
            urls = [f"{base}/{files.mp4_name(rid, *self.size((16, 9)), clip)}"]
        elif kind == "audio":
            urls = [f"{base}/{files.audio_name(rid, clip)}"]
        elif kind == "text":
            return str(self.knobs.get("text") or "This is a simulated transcription.")
        else:
            width, height = self.size((1, 1))
            count = self.input.get("num_outputs")
            count = min(max(count, 1), 4) if isinstance(count, int) else 1
            urls = [f"{base}/{files.png_name(f'{rid}-{i}', width, height, seed + i)}" for i in range(count)]
            if as_list is None:
                # the model's published output: a list of URIs (flux-schnell, flux-dev) or one URI
                # (flux-1.1-pro, nano-banana-pro); a model without a vendored schema answers a list,
                # as Replicate's image models (flux, sdxl) mostly do
                published = schemas.published("replicate", self.model)
                as_list = published is None or published["output"].get("type") == "array"
        return urls if as_list else urls[0]


class ReplicateSimulator(ControlledSimulator[SimPrediction]):
    """In-memory state and HTTP handlers of the simulated Replicate API."""

    DEFAULT_CONFIG = DEFAULT_CONFIG
    CONFIG_ONLY = CONFIG_ONLY
    COUNTERS = ("submit_attempts", "submissions", "submit_rejected", "status_calls", "cancel_calls", "cancels",
                "stream_calls", "file_downloads", "webhook_attempts", "webhooks_delivered", "webhooks_failed")

    def __init__(self) -> None:
        self.predictions: dict[str, SimPrediction] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        super().__init__()

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        super().reset()
        self.predictions.clear()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- helpers -------------------------------------------------------------
    def auth(self, request: Request) -> tuple[Response | None, str]:
        """``Authorization: Bearer <token>`` (what the SDK sends) or the older ``Token <token>``."""
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token") or not token:
            return problem(401, "You did not pass an authentication token"), ""
        if self.key_refused(token):
            return problem(401), ""
        return None, token[-4:]

    def lookup(self, request: Request) -> SimPrediction | None:
        return self.predictions.get(request.path_params["prediction_id"])

    async def wait_until_terminal(self, record: SimPrediction, seconds: float) -> None:
        """Sleep until the prediction is terminal (cancel wakes us early) or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while record.status(record.elapsed()) not in TERMINAL:
            if time.monotonic() >= deadline:
                return
            timeout = min(record.ends_after - record.elapsed(), deadline - time.monotonic())
            record.changed.clear()
            try:
                await asyncio.wait_for(record.changed.wait(), timeout=max(timeout, 0.001))
            except TimeoutError:
                pass

    # -- predictions API -------------------------------------------------------
    async def create_for_model(self, request: Request) -> Response:
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        return await self.create(request, model=model, deployment=None)

    async def create_for_deployment(self, request: Request) -> Response:
        deployment = f"{request.path_params['owner']}/{request.path_params['name']}"
        return await self.create(request, model=None, deployment=deployment)

    async def create_for_version(self, request: Request) -> Response:
        return await self.create(request, model=None, deployment=None)

    def resolve_version(self, version: Any) -> tuple[str, str] | None:
        """(model, version) from ``version``: a version id, ``owner/name:id`` or ``owner/name``."""
        if not isinstance(version, str):
            return None
        match = re.fullmatch(r"(?:(?P<model>[\w.-]+/[\w.-]+)(?::(?P<vid>[\w-]+))?|(?P<bare>[\w-]{8,128}))", version)
        if match is None:
            return None
        if match.group("bare"):
            vid = match.group("bare")
            versions = self.config.get("versions")
            known = (versions.get(vid) if isinstance(versions, dict) else None) or vendored_versions().get(vid)
            return (str(known) if known else f"sim/version-{vid[:8]}"), vid
        model = match.group("model")
        return model, match.group("vid") or hidden_version(model)

    async def create(self, request: Request, *, model: str | None, deployment: str | None) -> Response:
        self.count("submit_attempts")
        denied, key_suffix = self.auth(request)
        if denied is not None:
            self.count("submit_rejected")
            return denied
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.count("submit_rejected")
            return problem(400, "The request body must be a JSON object.")
        inp = body.get("input")
        knobs = self.knobs_for(body, inp)
        fault = self.fault_due(knobs, "submit_fault", hashlib.sha256(raw).hexdigest())
        if fault is not None and fault.get("kind") == "reset":  # before acceptance: nothing was recorded
            self.count("submit_rejected")
            return await self.fault_response(request, fault)

        rejection = self.submit_rejection(request.url.path, raw, knobs)
        if rejection is not None:
            self.count("submit_rejected")
            return rejection
        invalid = self.validate(body, model, deployment)
        if isinstance(invalid, Response):
            self.count("submit_rejected")
            return invalid
        record = self.accept(request, body, knobs, key_suffix, *invalid, deployment)
        published = schemas.published("replicate", record.model)
        if published is not None and isinstance(inp, dict):
            # the simulator's own knobs ride in the input too; they are not the caller's parameters
            record.unknown_fields = [f for f in schema.unknown_fields(published["input"], inp) if f != "sim"]

        await hang(knobs)
        if fault is not None:  # accepted, then the answer is lost (malformed) or late (hang)
            faulty = await self.fault_response(request, fault)
            if faulty is not None:
                return faulty
        headers = {"Location": record.urls()["get"]}
        wait = prefer_wait(request.headers.get("prefer"))
        if wait is None:
            return JSONResponse(record.as_json(pending=True), 201, headers=headers)
        await self.wait_until_terminal(record, wait)
        headers["Preference-Applied"] = f"wait={wait}"
        # Not finished within the wait: shown as "starting", which replicate.run() relies on to
        # tell "keep polling" from "done" (see the comment in the SDK's run.py).
        finished = record.status(record.elapsed()) in TERMINAL
        return JSONResponse(record.as_json(pending=not finished), 201, headers=headers)

    def validate(self, body: JSON, model: str | None, deployment: str | None) -> tuple[str, str] | Response:
        """(model, version) of an acceptable body, else the 422 Replicate would answer."""
        fields: list[JSON] = []
        if model is None and deployment is None:
            resolved = self.resolve_version(body.get("version"))
            if resolved is None and body.get("version") is None:
                fields.append({"type": "required", "field": "", "description": "version is required"})
            elif resolved is None:
                return problem(422, "The specified version does not exist (or perhaps you don't have permission "
                               "to use it?)", extra={"title": "Invalid version or not permitted"})
            else:
                model, version = resolved
        elif deployment is not None:
            model, version = deployment, hidden_version(deployment)
        else:
            assert model is not None
            version = hidden_version(model)
        inp = body.get("input")
        published = schemas.published("replicate", model or "")
        if not isinstance(inp, dict):
            fields.append({"type": "required", "field": "", "description": "input is required"})
        elif published is not None:
            fields += input_problems(published["input"], {k: v for k, v in inp.items() if k != "sim"})
        elif output_kind(model or "") == "cutout" and not isinstance(inp.get("image"), str):
            fields.append({"type": "required", "field": "input", "description": "image is required"})
        webhook = body.get("webhook")
        if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("http://", "https://"))):
            fields.append({"type": "format", "field": "webhook", "description": "Does not match format 'uri'"})
        events = body.get("webhook_events_filter")
        if events is not None and (not isinstance(events, list) or any(e not in WEBHOOK_EVENTS for e in events)):
            fields.append({"type": "enum", "field": "webhook_events_filter",
                           "description": "must be a list of: start, output, logs, completed"})
        if fields:
            detail = "".join(f"- {f['field'] or 'body'}: {f['description']}\n" for f in fields)
            return problem(422, detail, extra={"invalid_fields": fields})
        assert model is not None
        return model, version

    def submit_rejection(self, path: str, raw: bytes, knobs: JSON) -> Response | None:
        """The ``submit_status`` knob (only for the first ``submit_status_times`` tries of an identical
        body when given, so a retry can be seen to succeed); 429 carries ``Retry-After`` from ``retry_after``."""
        status = knobs.get("submit_status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            return None
        if not self.submit_failure_due(knobs, path.encode(), raw):
            return None
        return self.injected(status, knobs.get("retry_after"), knobs.get("submit_detail"))

    @staticmethod
    def injected(status: int, retry_after: Any, detail: Any = None) -> Response:
        text = str(detail) if detail else None
        headers = retry_after_header(retry_after)
        if headers is not None:
            seconds = int(headers["Retry-After"])
            if status == 429 and not text:
                text = f"Request was throttled. Expected available in {seconds} second{'s' * (seconds != 1)}."
        return problem(status, text, headers=headers)

    def accept(self, request: Request, body: JSON, knobs: JSON, key_suffix: str, model: str, version: str,
               deployment: str | None) -> SimPrediction:
        record = SimPrediction(
            id=_new_id(), model=model, version=version, deployment=deployment, body=body, knobs=knobs,
            base_url=self.mount_url(request), created_at=time.time(), started=time.monotonic(),
            queue_time=number(knobs.get("queue_time"), 0.0), latency=number(knobs.get("latency"), 0.0),
            key_suffix=key_suffix)
        if isinstance(body.get("webhook"), str):
            events = body.get("webhook_events_filter") or list(WEBHOOK_EVENTS)
            record.webhook = WebhookState(url=body["webhook"], events=tuple(events))
            self.spawn(self.deliver_webhooks(record))
        self.predictions[record.id] = record
        self.count("submissions")
        return record

    async def get(self, request: Request) -> Response:
        self.count("status_calls")
        denied, _ = self.auth(request)
        if denied is not None:
            return denied
        record = self.lookup(request)
        if record is None:
            return problem(404)
        record.status_calls += 1
        knob = status_error_due(record.knobs, record.status_errors_served)
        if knob is not None:
            record.status_errors_served += 1
            status = int(number(knob.get("status"), 500))
            return self.injected(status if 400 <= status <= 599 else 500,
                                 knob.get("retry_after", record.knobs.get("retry_after")), knob.get("detail"))
        fault = self.fault_due(record.knobs, "status_fault", record.id)
        if fault is not None:
            faulty = await self.fault_response(request, fault,
                                               unknown=lambda: {**record.as_json(), "status": UNKNOWN_STATUS})
            if faulty is not None:
                return faulty
        return JSONResponse(record.as_json())

    async def cancel(self, request: Request) -> Response:
        self.count("cancel_calls")
        denied, _ = self.auth(request)
        if denied is not None:
            return denied
        record = self.lookup(request)
        if record is None:
            return problem(404)
        record.cancel_calls += 1
        elapsed = record.elapsed()
        if record.status(elapsed) not in TERMINAL:  # a finished prediction is answered unchanged
            record.cancelled_at = elapsed
            record.changed.set()
            self.count("cancels")
        return JSONResponse(record.as_json())

    async def version(self, request: Request) -> Response:
        """Enough of a model version for ``replicate.run("owner/name:version")``."""
        denied, _ = self.auth(request)
        if denied is not None:
            return denied
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        kind = output_kind(model)
        output: JSON = {"type": "string", "format": "uri", "title": "Output"}
        if kind == "image":
            output = {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"}
        elif kind == "text":
            output = {"type": "string", "title": "Output"}
        return JSONResponse({
            "id": request.path_params["version_id"], "created_at": _now_iso(0), "cog_version": "0.9.0",
            "openapi_schema": {"openapi": "3.0.2", "components": {"schemas": {"Output": output}}}})

    async def webhook_secret_route(self, request: Request) -> Response:
        denied, _ = self.auth(request)
        if denied is not None:
            return denied
        return JSONResponse({"key": str(self.config.get("webhook_secret") or self.webhook_secret)})

    async def stream(self, request: Request) -> Response:
        """Server-sent events as the SDK's ``EventSource`` reads them: output..., then done (or error)."""
        self.count("stream_calls")
        record = self.lookup(request)
        if record is None:
            return problem(404)

        async def events() -> AsyncIterator[bytes]:
            await self.wait_until_terminal(record, 600)
            status, number = record.status(record.elapsed()), 0

            def event(name: str, data: str) -> bytes:
                nonlocal number
                number += 1
                lines = "".join(f"data: {line}\n" for line in data.split("\n"))
                return f"event: {name}\nid: {record.id}:{number}\n{lines}\n".encode()

            if status == "succeeded":
                output = record.output()
                for item in output if isinstance(output, list) else [output]:
                    yield event("output", item if isinstance(item, str) else json.dumps(item))
            elif status == "failed":
                yield event("error", json.dumps({"detail": record.error}))
            reason = {"reason": "canceled"} if status == "canceled" else {}
            yield event("done", json.dumps(reason))

        return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-store"})

    # -- files -----------------------------------------------------------------
    async def file(self, request: Request) -> Response:
        fault = self.output_fault(request)
        if fault is not None:
            return fault
        served = await files.serve(request.path_params["name"])
        if served is None:
            return problem(404)
        self.count("file_downloads")
        return served

    # -- webhooks --------------------------------------------------------------
    def signed_headers(self, body: bytes) -> dict[str, str]:
        """Standard Webhooks headers, verifiable with the SDK's ``Webhooks.validate``."""
        message_id = "msg_" + secrets.token_hex(12)
        timestamp = str(int(time.time()))
        secret = str(self.config.get("webhook_secret") or self.webhook_secret)
        key = base64.b64decode(secret.split("_", 1)[1])
        digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        return {"content-type": "application/json", "webhook-id": message_id, "webhook-timestamp": timestamp,
                "webhook-signature": "v1," + base64.b64encode(digest).decode()}

    async def deliver_webhooks(self, record: SimPrediction) -> None:
        """POST the prediction on ``start`` (once it leaves the queue) and when it ends.

        The sim makes its output in one go at the end, so ``output`` is delivered with the final
        state and ``logs`` events are not sent (assumed; Replicate throttles both to one per 500 ms).
        """
        hook = record.webhook
        assert hook is not None
        client = callback_client()
        if "start" in hook.events:
            while record.elapsed() < min(record.queue_time, record.ends_after):
                record.changed.clear()
                try:
                    await asyncio.wait_for(record.changed.wait(), record.queue_time - record.elapsed())
                except TimeoutError:
                    pass
            if record.began(record.elapsed()):
                await self.post_webhook(client, record, "start")
        await self.wait_until_terminal(record, 24 * 3600)
        status = record.status(record.elapsed())
        if "completed" in hook.events or ("output" in hook.events and status == "succeeded"):
            await self.post_webhook(client, record, "completed")

    async def post_webhook(self, client: httpx.AsyncClient, record: SimPrediction, event: str) -> None:
        hook = record.webhook
        assert hook is not None
        body = json.dumps(record.as_json()).encode()
        if await send_webhook(hook, record.knobs, self.count,
                              lambda: client.post(hook.url, content=body, headers=self.signed_headers(body))):
            hook.delivered.append(event)

    # -- control API hooks -------------------------------------------------------
    def records(self) -> dict[str, SimPrediction]:
        return self.predictions

    def control_json(self, record: SimPrediction) -> JSON:
        elapsed = record.elapsed()
        return {
            "request_id": record.id, "model": record.model, "version": record.version, "input": record.body,
            "status": record.status(elapsed), "cancelled": record.cancelled_at is not None,
            "cancel_calls": record.cancel_calls, "status_calls": record.status_calls,
            "submitted_at": record.created_at, "key_suffix": record.key_suffix,
            "queue_time": record.queue_time, "latency": record.latency,
            "webhook": record.webhook.as_json() if record.webhook else None,
            "unknown_fields": record.unknown_fields,
        }

    def control_listed(self, request: Request, record: SimPrediction) -> bool:
        model = request.query_params.get("model")
        return model is None or record.model == model

    def control_not_found(self) -> Response:
        return JSONResponse({"detail": "Prediction not found"}, 404)

    def control_stats(self) -> JSON:
        statuses = dict.fromkeys(("starting", "processing", *TERMINAL), 0)
        for record in self.predictions.values():
            statuses[record.status(record.elapsed())] += 1
        return statuses


# JSON type names as Go's gojsonschema (which Replicate's messages match, see `input_problems`) says them
_JSON_TYPES = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean",
               "array": "array", "object": "object", "null": "null"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def input_problems(input_schema: JSON, inp: JSON) -> list[JSON]:
    """``invalid_fields`` entries for `inp` against a model's input schema, from
    `gengate.sim.schema.validate`'s pydantic-style list, in Replicate's words.

    Bodies recorded from the live API (quoted in public repositories' notes) fix these shapes:
    ``{"type": "required", "field": "input", "description": "prompt is required"}``,
    ``{"type": "enum", "field": "input.output_format", "description": "output_format must be one of
    the following: \"jpg\", \"png\""}`` and ``{"type": "number_lte", "field":
    "input.num_inference_steps", "description": "Must be less than or equal to 4"}``: gojsonschema's
    error types and messages.  A wrong type was not seen in a recorded body; it is given as
    gojsonschema words it (``invalid_type``, ``Invalid type. Expected: X, given: Y``): assumed.
    """
    found: list[JSON] = []
    for error in schema.validate(input_schema, inp):
        path = [str(part) for part in error["loc"][1:]]
        if error["type"] == "missing":
            found.append({"type": "required", "field": ".".join(["input", *path[:-1]]),
                          "description": f"{path[-1]} is required"})
            continue
        field_name = ".".join(["input", *path])
        if error["type"] in ("greater_than_equal", "less_than_equal"):
            # as recorded: {"type": "number_lte", "description": "Must be less than or equal to 4"}
            lte = error["type"] == "less_than_equal"
            found.append({"type": "number_lte" if lte else "number_gte", "field": field_name,
                          "description": f"Must be {'less' if lte else 'greater'} than or equal to "
                                         f"{json.dumps(error['limit'])}"})
            continue
        if error["type"] == "enum":
            options = _schema_at(input_schema, path).get("enum", [])
            allowed = ", ".join(json.dumps(o) for o in options)
            found.append({"type": "enum", "field": field_name,
                          "description": f"{path[-1] if path else 'input'} must be one of the following: {allowed}"})
        else:
            expected = _JSON_TYPES.get(str(_schema_at(input_schema, path).get("type")), "valid value")
            found.append({"type": "invalid_type", "field": field_name,
                          "description": f"Invalid type. Expected: {expected}, given: {_json_type(error.get('input'))}"})
    # `format: uri` (cog's file inputs), which `schema.validate` does not check; the wording is the
    # one the sim already uses for `webhook` (gojsonschema's): assumed for inputs
    for name, prop in input_schema.get("properties", {}).items():
        value = inp.get(name)
        if prop.get("format") == "uri" and isinstance(value, str) and not URI.match(value):
            found.append({"type": "format", "field": f"input.{name}", "description": "Does not match format 'uri'"})
        if (prop.get("items") or {}).get("format") == "uri" and isinstance(value, list):  # an array of files
            found += [{"type": "format", "field": f"input.{name}.{i}", "description": "Does not match format 'uri'"}
                      for i, item in enumerate(value) if isinstance(item, str) and not URI.match(item)]
    return found


def _schema_at(input_schema: JSON, path: list[str]) -> JSON:
    """The sub-schema at `path` (property names and list indexes) of an input schema."""
    node = input_schema
    for part in path:
        if part.isdigit() and "items" in node:
            node = node["items"]
        else:
            node = node.get("properties", {}).get(part, {})
    return node


@lru_cache(maxsize=1)
def vendored_versions() -> dict[str, str]:
    """version id -> "owner/name" for the versions whose published schemas are vendored (each record's
    `source` is its version page, replicate.com/<owner>/<name>/versions/<id>/api): Replicate knows
    which model a version belongs to, so a prediction created by version id alone is checked against
    that model's schema, as the models endpoint's are."""
    found = {}
    for endpoint in schemas.endpoints("replicate"):
        match = re.search(r"/versions/([0-9a-f]{64})/", schemas.published("replicate", endpoint)["source"])
        if match:
            found[match.group(1)] = endpoint
    return found


def hidden_version(model: str) -> str:
    """The version an official model or deployment reports (a ``dp-`` id, as seen on the live API)."""
    return "dp-" + hashlib.sha256(model.encode()).hexdigest()[:32]


def create_app() -> Starlette:
    """The Replicate simulator as an ASGI app; mount it at ``/replicate`` (see ``sim.server``)."""
    sim = ReplicateSimulator()
    app = Starlette(routes=[
        *control_routes(sim),
        Route("/files/{name}", sim.file, methods=["GET"]),
        Route("/v1/predictions", sim.create_for_version, methods=["POST"]),
        Route("/v1/predictions/{prediction_id}", sim.get, methods=["GET"]),
        Route("/v1/predictions/{prediction_id}/cancel", sim.cancel, methods=["POST"]),
        Route("/v1/models/{owner}/{name}/predictions", sim.create_for_model, methods=["POST"]),
        Route("/v1/models/{owner}/{name}/versions/{version_id}", sim.version, methods=["GET"]),
        Route("/v1/deployments/{owner}/{name}/predictions", sim.create_for_deployment, methods=["POST"]),
        Route("/v1/streams/{prediction_id}", sim.stream, methods=["GET"]),
        Route("/v1/webhooks/default/secret", sim.webhook_secret_route, methods=["GET"]),
    ])
    app.state.sim = sim
    return app
