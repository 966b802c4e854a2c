"""A Higgsfield platform-API simulator, speaking the protocol of ``platform.higgsfield.ai``.

The protocol, as documented at docs.higgsfield.ai and used by the official ``higgsfield-client``:

* ``POST /{model_id}[?hf_webhook=<url>]`` with ``Authorization: Key <api_key>:<api_secret>`` and the
  model's JSON input answers ``{"status": "queued", "request_id", "status_url", "cancel_url"}``.
* ``GET /requests/{id}/status`` answers ``status`` in ``queued | in_progress | completed | failed |
  nsfw | canceled``; ``completed`` carries ``images: [{url}]`` (video models ``video: {url}``),
  ``failed`` carries ``error`` (a string), ``nsfw`` nothing more.
* ``POST /requests/{id}/cancel`` answers 202 while queued and 400 once processing started.

Error bodies are ``{"detail": <message>}``: the SDK reads ``detail`` first (then ``details``,
``message``, ``error``); Higgsfield's exact error body is not published, so this shape is an assumption.
Any non-empty key is accepted unless ``POST /_sim/config {"keys": [...]}`` lists the valid ones, so
``gengate up`` can run against the simulator with a placeholder key.

Published schema: none for ``higgsfield-ai/soul/standard``. docs.higgsfield.ai's "How to use API" page
(read 2026-12-04) gives one example body (``prompt``, ``aspect_ratio: "16:9"``, ``resolution: "720p"``)
and no field list, types or enums; its API reference documents only the older ``POST /v1/text2image/soul``
(``params.width_and_height``, ``quality``, ...), a different endpoint. So no JSON is vendored in
config/schemas/higgsfield/ (its README says so) and ``invalid`` keeps the sim's own checks (a string
prompt; ``resolution`` 720p | 1080p, from docs/providers.md). Nothing is recorded for a refused body.

As in ``sim.fal``, a request's phase is derived from the time since submission (``queue_time`` s
queued, ``latency`` s in progress), so no task runs per request; media are generated when a file URL is
fetched (every parameter is in the file name) and memoised by ``sim.media``. ``hf_webhook`` is recorded
and called with the final status body when the request ends.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gengate.sim import files
from gengate.sim.control import (
    JSON,
    ControlledSimulator,
    call_back_when_done,
    control_routes,
    hang,
    number,
    retry_after_header,
    status_error_due,
    with_output_fault,
    UNKNOWN_STATUS,
)

#: What ``POST /_sim/reset`` restores. Any per-request knob may be set here as a global default.
DEFAULT_CONFIG: JSON = {"queue_time": 0.0, "latency": 0.0, "keys": None, "long_side": 256}

ERROR_DETAILS: dict[int, str] = {
    400: "Bad request",
    401: "Invalid API key or secret",
    402: "Not enough credits",
    403: "Forbidden",
    404: "Model not found",
    422: "Validation error",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}
VIDEO_WORDS = ("video", "dop", "kling", "seedance", "wan", "veo", "minimax")


def media_size(aspect_ratio: Any, long_side: int) -> tuple[int, int]:
    """A small picture size with the shape of `aspect_ratio` ("16:9"); square when it is unreadable."""
    return files.fit(files.aspect(str(aspect_ratio or "")) or (1.0, 1.0), long_side)


def error(status: int, detail: Any = None, retry_after: Any = None) -> JSONResponse:
    """Higgsfield's (assumed) error answer; 429 and 503 carry ``Retry-After`` when one is given."""
    headers = retry_after_header(retry_after) if status in (429, 503) else None
    return JSONResponse({"detail": detail or ERROR_DETAILS.get(status, "Simulated error")}, status, headers=headers)


@dataclass
class HiggsfieldRequest:
    """One accepted request; its phase is computed from `started` on demand."""

    request_id: str
    model_id: str
    input: JSON
    knobs: JSON
    base_url: str  # absolute URL of the mount, e.g. http://127.0.0.1:8000/higgsfield
    submitted_at: float  # wall clock, for records
    started: float  # monotonic clock, for phase arithmetic
    queue_time: float
    latency: float
    key_suffix: str
    webhook_url: str | None
    cancelled_at: float | None = None  # seconds after submission
    cancel_calls: int = 0
    status_calls: int = 0
    status_errors_served: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def phase(self) -> str:
        """The Higgsfield status right now."""
        if self.cancelled_at is not None:
            return "canceled"
        elapsed = self.elapsed()
        if elapsed < self.queue_time:
            return "queued"
        if elapsed < self.queue_time + self.latency:
            return "in_progress"
        if self.knobs.get("fail"):
            return "nsfw" if str(self.knobs.get("fail_type", "")).lower() == "nsfw" else "failed"
        return "completed"

    def urls(self) -> JSON:
        base = f"{self.base_url}/requests/{self.request_id}"
        return {"status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    def output_kind(self) -> str:
        kind = self.knobs.get("output")
        if kind in ("image", "video"):
            return str(kind)
        return "video" if any(word in self.model_id.lower() for word in VIDEO_WORDS) else "image"

    def outputs(self) -> JSON:
        """The ``images`` / ``video`` fields of a completed request: URLs of files this sim serves."""
        long_side = int(number(self.knobs.get("long_side"), 256)) or 256
        width, height = media_size(self.input.get("aspect_ratio"), long_side)
        base = f"{self.base_url}/files"
        if self.output_kind() == "video":
            seconds = number(self.input.get("duration"), 5.0) or 5.0
            return {"video": {"url": f"{base}/{files.mp4_name(self.request_id, width, height, seconds)}"}}
        seed = int(self.request_id.replace("-", "")[:8], 16)
        return {"images": [{"url": f"{base}/{files.png_name(self.request_id, width, height, seed)}"}]}

    def status_body(self) -> JSON:
        phase = self.phase()
        body: JSON = {"status": phase, "request_id": self.request_id, **self.urls()}
        if phase == "completed":
            body.update(with_output_fault(self.outputs(), f"{self.base_url}/files/", self.knobs, self.request_id))
        elif phase == "failed":
            body["error"] = str(self.knobs.get("fail"))
        return body

    def as_json(self) -> JSON:
        return {
            "request_id": self.request_id, "model_id": self.model_id, "input": self.input,
            "status": self.phase(), "submitted_at": self.submitted_at,
            "queue_time": self.queue_time, "latency": self.latency,
            "cancelled": self.cancelled_at is not None, "cancel_calls": self.cancel_calls,
            "status_calls": self.status_calls, "key_suffix": self.key_suffix, "webhook_url": self.webhook_url,
        }


class HiggsfieldSimulator(ControlledSimulator[HiggsfieldRequest]):
    """In-memory state and HTTP handlers of the simulated Higgsfield platform API."""

    DEFAULT_CONFIG = DEFAULT_CONFIG
    COUNTERS = ("submit_attempts", "submissions", "submit_rejected", "status_calls", "cancel_calls", "cancels",
                "file_downloads")

    def __init__(self) -> None:
        self.requests: dict[str, HiggsfieldRequest] = {}
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.requests.clear()

    def authorize(self, request: Request) -> tuple[JSONResponse | None, str]:
        """The 401 answer for a missing or unknown key, else None and the key's last four characters."""
        scheme, _, key = request.headers.get("authorization", "").strip().partition(" ")
        key = key.strip()
        if scheme != "Key" or not key:
            return error(401, "Missing or malformed Authorization header, expected 'Key <api_key>:<api_secret>'"), ""
        if self.key_refused(key):
            return error(401), ""
        return None, key[-4:]

    # -- platform API ------------------------------------------------------------
    async def submit(self, request: Request) -> Response:
        self.count("submit_attempts")
        model_id = request.path_params["model_id"].strip("/")
        if model_id.startswith(("_sim", "requests", "files")) or "/" not in model_id:
            self.count("submit_rejected")
            return error(404, f"Model '{model_id}' not found")
        denied, key_suffix = self.authorize(request)
        if denied is not None:
            self.count("submit_rejected")
            return denied
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw.strip() else None
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.count("submit_rejected")
            return error(422, [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}])
        knobs = self.knobs_for(payload)
        fault = self.fault_due(knobs, "submit_fault", hashlib.sha256(raw).hexdigest())
        if fault is not None and fault.get("kind") == "reset":  # before acceptance: nothing was recorded
            self.count("submit_rejected")
            return await self.fault_response(request, fault)
        rejection = self.submit_rejection(model_id, raw, knobs)
        if rejection is None:
            rejection = self.invalid(payload)
        if rejection is not None:
            self.count("submit_rejected")
            return rejection

        record = HiggsfieldRequest(
            request_id=str(uuid.uuid4()), model_id=model_id, input=payload, knobs=knobs,
            base_url=self.mount_url(request),
            submitted_at=time.time(), started=time.monotonic(),
            queue_time=number(knobs.get("queue_time"), 0.0), latency=number(knobs.get("latency"), 0.0),
            key_suffix=key_suffix, webhook_url=request.query_params.get("hf_webhook"),
        )
        self.requests[record.request_id] = record
        self.count("submissions")
        if record.webhook_url:  # Higgsfield posts the final status body to `hf_webhook`
            call_back_when_done(record.webhook_url, record.queue_time + record.latency, record.status_body)
        await hang(knobs)
        if fault is not None:  # accepted, then the answer is lost (malformed) or late (hang)
            faulty = await self.fault_response(request, fault)
            if faulty is not None:
                return faulty
        return JSONResponse({"status": "queued", "request_id": record.request_id, **record.urls()})

    def submit_rejection(self, model_id: str, raw: bytes, knobs: JSON) -> Response | None:
        """The ``submit_status`` knob; with ``submit_status_times`` only the first N tries of an
        identical body fail, so a retry can be seen to succeed."""
        status = int(number(knobs.get("submit_status"), 0))
        if not 400 <= status <= 599 or not self.submit_failure_due(knobs, model_id.encode(), raw):
            return None
        return error(status, knobs.get("submit_detail"), knobs.get("retry_after"))

    @staticmethod
    def invalid(payload: JSON) -> Response | None:
        """The validation a Soul-like model does: a string prompt and a known resolution."""
        problems = []
        if not isinstance(payload.get("prompt"), str):
            problems.append({"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"})
        if payload.get("resolution", "720p") not in ("720p", "1080p"):
            problems.append({"loc": ["body", "resolution"], "msg": "Input should be '720p' or '1080p'",
                             "type": "enum"})
        return error(422, problems) if problems else None

    def open_request(self, request: Request, counter: str) -> HiggsfieldRequest | Response:
        """What status and cancel share: count the call, check auth, find the record."""
        self.count(counter)
        denied, _ = self.authorize(request)
        if denied is not None:
            return denied
        record = self.requests.get(request.path_params["request_id"])
        if record is None:
            return error(404, "Request not found")
        setattr(record, counter, getattr(record, counter) + 1)
        return record

    async def status(self, request: Request) -> Response:
        record = self.open_request(request, "status_calls")
        if isinstance(record, Response):
            return record
        knob = status_error_due(record.knobs, record.status_errors_served)
        if knob is not None:
            record.status_errors_served += 1
            return error(int(number(knob.get("status"), 500)), knob.get("detail"), knob.get("retry_after"))
        fault = self.fault_due(record.knobs, "status_fault", record.request_id)
        if fault is not None:
            faulty = await self.fault_response(request, fault,
                                               unknown=lambda: {**record.status_body(), "status": UNKNOWN_STATUS})
            if faulty is not None:
                return faulty
        return JSONResponse(record.status_body())

    async def cancel(self, request: Request) -> Response:
        record = self.open_request(request, "cancel_calls")
        if isinstance(record, Response):
            return record
        phase = record.phase()
        if phase == "canceled":
            return JSONResponse({"status": "canceled", "request_id": record.request_id}, 202)
        if phase != "queued":
            return error(400, f"Request cannot be canceled: it is {phase}")
        record.cancelled_at = record.elapsed()
        self.count("cancels")
        return JSONResponse({"status": "canceled", "request_id": record.request_id}, 202)

    async def file(self, request: Request) -> Response:
        fault = self.output_fault(request)
        if fault is not None:
            return fault
        served = await files.serve(request.path_params["name"])
        if served is None:
            return error(404, "File not found")
        self.count("file_downloads")
        return served

    # -- control API hooks -------------------------------------------------------
    def records(self) -> dict[str, HiggsfieldRequest]:
        return self.requests

    def control_stats(self) -> JSON:
        return {"phases": dict(Counter(record.phase() for record in self.requests.values()))}


def create_app() -> Starlette:
    """The Higgsfield simulator as an ASGI app; mount it at ``/higgsfield`` (see ``sim.server``)."""
    sim = HiggsfieldSimulator()
    app = Starlette(routes=[
        *control_routes(sim),
        Route("/files/{name}", sim.file, methods=["GET"]),
        Route("/requests/{request_id}/status", sim.status, methods=["GET"]),
        Route("/requests/{request_id}/cancel", sim.cancel, methods=["POST"]),
        Route("/{model_id:path}", sim.submit, methods=["POST"]),
    ])
    app.state.sim = sim
    return app
