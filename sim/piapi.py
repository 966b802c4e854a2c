"""A PiAPI task-API simulator for Seedance 2, speaking the protocol of ``api.piapi.ai``.

The protocol, from PiAPI's docs (piapi.ai/docs, Seedance section) and client code built on them:

* ``POST /api/v1/task`` with header ``X-API-Key`` and ``{"model": "seedance", "task_type":
  "seedance-2-preview" | "seedance-2-fast-preview" | ..., "input": {"prompt", "duration",
  "aspect_ratio", "image_urls", "video_urls", ...}, "config": {"webhook_config": {"endpoint",
  "secret"}}}`` answers the envelope ``{"code": 200, "data": <task>, "message": "success"}``.
* ``GET /api/v1/task/{task_id}`` answers the same envelope. ``data.status`` is one of ``pending |
  staged | processing | completed | failed``; a completed Seedance task has ``data.output.video`` (the
  MP4 URL), a failed one ``data.error.message``.
* Errors are the HTTP status plus the envelope with ``code`` = status, ``message`` and ``data: null``.

Choices where the docs are silent, made explicit:

* Status capitalisation: clients are told to compare statuses without case, so about half the tasks
  (by task id) answer ``"Pending"``, ``"Processing"``, ``"Completed"``; the knob ``status_case``
  (``lower`` | ``title`` | ``upper``) forces one spelling.
* Cancel: PiAPI documents ``DELETE /api/v1/task/{task_id}`` (pending tasks only) for some models
  (Kling, Luma), not for Seedance. So the DELETE is counted in ``cancel_calls`` and refused with 400;
  no Seedance task is ever cancelled here.
* Zero timestamps in ``meta`` are Go's zero time, ``0001-01-01T00:00:00Z``.
* Any non-empty key is accepted unless ``POST /_sim/config {"keys": [...]}`` lists the valid ones.
  Webhooks (``config.webhook_config``) are called with ``{timestamp, data: <task>}`` when the task ends.

Published schema: none. PiAPI's Seedance 2 preview page (piapi.ai/docs/seedance-api/seedance-2-preview,
read 2026-12-04) shows one example request (``input`` with ``prompt``, ``duration``, ``aspect_ratio``) and
its answer, but no field table, types, enums or error body as stored; so no JSON is vendored in
config/schemas/piapi/ (its README says so), ``gengate.config.schemas.published("piapi", task_type)``
is None, and the checks above (``invalid``) stay the sim's own, from that example and docs/providers.md.
Nothing is recorded for a refused body; without a schema no ``unknown_fields`` are listed.

A task's phase is derived from the time since submission (``queue_time`` s pending, ``latency`` s
processing), and media are generated when a file URL is fetched, as in ``sim.fal``.
"""

from __future__ import annotations

import datetime as dt
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

TASK_TYPES = frozenset({
    "seedance-2-preview", "seedance-2-fast-preview", "seedance-2-preview-vip", "seedance-2-fast-preview-vip",
    "seedance-2", "seedance-2-fast",
})
PREVIEW_DURATIONS = (5, 10, 15)  # the -preview task types take only these
ERROR_MESSAGES: dict[int, str] = {
    400: "invalid request",
    401: "Invalid API key",
    402: "insufficient credits",
    403: "forbidden",
    404: "task not found",
    429: "too many requests, please retry later",
    500: "internal server error",
    502: "bad gateway",
    503: "service temporarily unavailable",
    504: "gateway timeout",
}
FAILED_CODE = 10000  # PiAPI's generic task-failure code; the exact values are not published
ZERO_TIME = "0001-01-01T00:00:00Z"


def _iso(epoch: float | None) -> str:
    if epoch is None:
        return ZERO_TIME
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def media_size(aspect_ratio: Any, long_side: int) -> tuple[int, int]:
    """An even, small frame size with the shape of `aspect_ratio` ("16:9" when unreadable)."""
    width, height = files.fit(files.aspect(str(aspect_ratio or "")) or (16.0, 9.0), long_side)
    return width - width % 2, height - height % 2


def envelope_error(status: int, message: Any = None, retry_after: Any = None) -> JSONResponse:
    """PiAPI's error answer: the HTTP status repeated as ``code``; 429/503 may carry ``Retry-After``."""
    headers = retry_after_header(retry_after) if status in (429, 503) else None
    body = {"code": status, "data": None, "message": str(message or ERROR_MESSAGES.get(status, "simulated error"))}
    return JSONResponse(body, status, headers=headers)


@dataclass
class PiapiTask:
    """One accepted task; its phase is computed from `started` on demand."""

    task_id: str
    task_type: str
    body: JSON  # the full submitted JSON
    knobs: JSON
    base_url: str  # absolute URL of the mount, e.g. http://127.0.0.1:8000/piapi
    submitted_at: float  # wall clock
    started: float  # monotonic clock, for phase arithmetic
    queue_time: float
    latency: float
    key_suffix: str
    cancel_calls: int = 0
    status_calls: int = 0
    status_errors_served: int = 0

    @property
    def input(self) -> JSON:
        value = self.body.get("input")
        return value if isinstance(value, dict) else {}

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def phase(self) -> str:
        """The lower-case status right now."""
        elapsed = self.elapsed()
        if elapsed < self.queue_time:
            return "pending"
        if elapsed < self.queue_time + self.latency:
            return "processing"
        return "failed" if self.knobs.get("fail") else "completed"

    def spelled(self, status: str) -> str:
        """`status` in this task's capitalisation (see the module docstring)."""
        case = self.knobs.get("status_case")
        if case not in ("lower", "title", "upper"):
            case = "title" if int(self.task_id[0], 16) % 2 else "lower"
        return status.title() if case == "title" else status.upper() if case == "upper" else status

    def output(self) -> JSON:
        """``data.output`` of a completed task: the URL of a file this sim serves."""
        long_side = int(number(self.knobs.get("long_side"), 256)) or 256
        width, height = media_size(self.input.get("aspect_ratio"), long_side)
        base = f"{self.base_url}/files"
        if self.knobs.get("output") == "image":
            seed = int(self.task_id.replace("-", "")[:8], 16)
            return {"image_url": f"{base}/{files.png_name(self.task_id, width, height, seed)}"}
        seconds = number(self.input.get("duration"), 5.0) or 5.0
        return {"video": f"{base}/{files.mp4_name(self.task_id, width, height, seconds)}"}

    def data(self) -> JSON:
        """The task object PiAPI returns in ``data``."""
        phase = self.phase()
        began = self.submitted_at + self.queue_time if phase != "pending" else None
        ended = self.submitted_at + self.queue_time + self.latency if phase in ("completed", "failed") else None
        failure = str(self.knobs.get("fail")) if phase == "failed" else ""
        duration = number(self.input.get("duration"), 5.0)
        config = self.body.get("config") if isinstance(self.body.get("config"), dict) else {}
        return {
            "task_id": self.task_id, "model": "seedance", "task_type": self.task_type,
            "status": self.spelled(phase), "config": config, "input": self.input,
            "output": with_output_fault(self.output(), f"{self.base_url}/files/", self.knobs, self.task_id)
            if phase == "completed" else None,
            "meta": {
                "created_at": _iso(self.submitted_at), "started_at": _iso(began), "ended_at": _iso(ended),
                "usage": {"type": "point", "frozen": int(duration * 100000),
                          "consume": int(duration * 100000) if phase == "completed" else 0},
                "is_using_private_pool": False,
            },
            "detail": None, "logs": [],
            "error": {"code": FAILED_CODE if failure else 0, "raw_message": failure, "message": failure,
                      "detail": None},
        }

    def as_json(self) -> JSON:
        return {
            "request_id": self.task_id, "task_type": self.task_type, "input": self.body,
            "status": self.phase(), "submitted_at": self.submitted_at,
            "queue_time": self.queue_time, "latency": self.latency,
            "cancelled": False,  # Seedance tasks cannot be cancelled (see the module docstring)
            "cancel_calls": self.cancel_calls, "status_calls": self.status_calls, "key_suffix": self.key_suffix,
        }


class PiapiSimulator(ControlledSimulator[PiapiTask]):
    """In-memory state and HTTP handlers of the simulated PiAPI task API."""

    DEFAULT_CONFIG = DEFAULT_CONFIG
    COUNTERS = ("submit_attempts", "submissions", "submit_rejected", "status_calls", "cancel_calls", "cancels",
                "file_downloads")

    def __init__(self) -> None:
        self.tasks: dict[str, PiapiTask] = {}
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.tasks.clear()

    def authorize(self, request: Request) -> tuple[JSONResponse | None, str]:
        """The 401 answer for a missing or unknown ``X-API-Key``, else None and its last four characters."""
        key = request.headers.get("x-api-key", "").strip()
        if not key or self.key_refused(key):
            return envelope_error(401), ""
        return None, key[-4:]

    # -- task API ----------------------------------------------------------------
    async def create_task(self, request: Request) -> Response:
        self.count("submit_attempts")
        denied, key_suffix = self.authorize(request)
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
            return envelope_error(400, "request body must be a JSON object")
        knobs = self.knobs_for(body.get("input"))
        fault = self.fault_due(knobs, "submit_fault", hashlib.sha256(raw).hexdigest())
        if fault is not None and fault.get("kind") == "reset":  # before acceptance: nothing was recorded
            self.count("submit_rejected")
            return await self.fault_response(request, fault)
        rejection = self.submit_rejection(raw, knobs) or self.invalid(body)
        if rejection is not None:
            self.count("submit_rejected")
            return rejection

        task = PiapiTask(
            task_id=str(uuid.uuid4()), task_type=str(body["task_type"]), body=body, knobs=knobs,
            base_url=self.mount_url(request),
            submitted_at=time.time(), started=time.monotonic(),
            queue_time=number(knobs.get("queue_time"), 0.0), latency=number(knobs.get("latency"), 0.0),
            key_suffix=key_suffix,
        )
        self.tasks[task.task_id] = task
        self.count("submissions")
        hook = (body.get("config") or {}).get("webhook_config") or {}
        if isinstance(hook, dict) and hook.get("endpoint"):
            # PiAPI posts {timestamp, data: <task>} with the configured secret in `x-webhook-secret`.
            call_back_when_done(str(hook["endpoint"]), task.queue_time + task.latency,
                                lambda: {"timestamp": int(time.time()), "data": task.data()},
                                headers={"x-webhook-secret": str(hook.get("secret") or "")})
        await hang(knobs)
        if fault is not None:  # accepted, then the answer is lost (malformed) or late (hang)
            faulty = await self.fault_response(request, fault)
            if faulty is not None:
                return faulty
        return JSONResponse({"code": 200, "data": task.data(), "message": "success"})

    def submit_rejection(self, raw: bytes, knobs: JSON) -> Response | None:
        """The ``submit_status`` knob; with ``submit_status_times`` only the first N tries of an
        identical body fail, so a retry can be seen to succeed."""
        status = int(number(knobs.get("submit_status"), 0))
        if not 400 <= status <= 599 or not self.submit_failure_due(knobs, raw):
            return None
        return envelope_error(status, knobs.get("submit_detail"), knobs.get("retry_after"))

    @staticmethod
    def invalid(body: JSON) -> Response | None:
        """The checks PiAPI documents for Seedance: model, task type, a prompt, preview durations."""
        task_type, task_input = body.get("task_type"), body.get("input")
        if body.get("model") != "seedance":
            return envelope_error(400, f"model '{body.get('model')}' is not supported")
        if task_type not in TASK_TYPES:
            return envelope_error(400, f"task_type '{task_type}' is not supported for model seedance")
        if not isinstance(task_input, dict) or not isinstance(task_input.get("prompt"), str):
            return envelope_error(400, "input.prompt is required")
        duration = task_input.get("duration")
        if str(task_type).endswith(("-preview", "-preview-vip")) and duration is not None \
                and duration not in PREVIEW_DURATIONS:
            return envelope_error(400, "input.duration must be one of 5, 10, 15")
        for name in ("image_urls", "video_urls", "audio_urls"):
            urls = task_input.get(name)
            if urls is not None and not (isinstance(urls, list) and all(isinstance(u, str) for u in urls)):
                return envelope_error(400, f"input.{name} must be a list of URLs")
        return None

    def open_task(self, request: Request, counter: str) -> PiapiTask | Response:
        """What get and delete share: count the call, check auth, find the task."""
        self.count(counter)
        denied, _ = self.authorize(request)
        if denied is not None:
            return denied
        task = self.tasks.get(request.path_params["task_id"])
        if task is None:
            return envelope_error(404)
        setattr(task, counter, getattr(task, counter) + 1)
        return task

    async def get_task(self, request: Request) -> Response:
        task = self.open_task(request, "status_calls")
        if isinstance(task, Response):
            return task
        knob = status_error_due(task.knobs, task.status_errors_served)
        if knob is not None:
            task.status_errors_served += 1
            return envelope_error(int(number(knob.get("status"), 500)), knob.get("detail"), knob.get("retry_after"))
        fault = self.fault_due(task.knobs, "status_fault", task.task_id)
        if fault is not None:
            faulty = await self.fault_response(request, fault, unknown=lambda: {
                "code": 200, "data": {**task.data(), "status": UNKNOWN_STATUS}, "message": "success"})
            if faulty is not None:
                return faulty
        return JSONResponse({"code": 200, "data": task.data(), "message": "success"})

    async def cancel_task(self, request: Request) -> Response:
        """Recorded, then refused: PiAPI documents no cancel for Seedance tasks."""
        task = self.open_task(request, "cancel_calls")
        if isinstance(task, Response):
            return task
        return envelope_error(400, f"task_type {task.task_type} does not support cancellation")

    async def file(self, request: Request) -> Response:
        fault = self.output_fault(request)
        if fault is not None:
            return fault
        served = await files.serve(request.path_params["name"])
        if served is None:
            return envelope_error(404, "file not found")
        self.count("file_downloads")
        return served

    # -- control API hooks -------------------------------------------------------
    def records(self) -> dict[str, PiapiTask]:
        return self.tasks

    def control_stats(self) -> JSON:
        return {"phases": dict(Counter(task.phase() for task in self.tasks.values()))}

    def control_not_found(self) -> Response:
        return envelope_error(404)

    def control_bad_config(self) -> Response:
        return envelope_error(400, "config must be a JSON object")


def create_app() -> Starlette:
    """The PiAPI simulator as an ASGI app; mount it at ``/piapi`` (see ``sim.server``)."""
    sim = PiapiSimulator()
    app = Starlette(routes=[
        *control_routes(sim),
        Route("/files/{name}", sim.file, methods=["GET"]),
        Route("/api/v1/task", sim.create_task, methods=["POST"]),
        Route("/api/v1/task/{task_id}", sim.get_task, methods=["GET"]),
        Route("/api/v1/task/{task_id}", sim.cancel_task, methods=["DELETE"]),
    ])
    app.state.sim = sim
    return app
