"""A Fal queue-protocol simulator that the real ``fal_client`` can talk to.

Point the SDK at it with ``fal_client.client.QUEUE_URL_FORMAT =
"http://HOST:PORT/fal/"`` and submit, poll, fetch and cancel as against
``queue.fal.run``.  Results reference real PNG/MP4/MP3 files served from
``/fal/files/`` (standing in for Fal's CDN).

Design choices, and why:

* A request's phase is *derived* from the time elapsed since submission
  (``queue_time`` seconds IN_QUEUE, then ``latency`` seconds IN_PROGRESS, then
  COMPLETED), so ten thousand in-flight requests cost one small record each and
  no timer.  Only requests submitted with ``fal_webhook`` get an asyncio task.
* Faults and latency are injected per request through an optional ``"sim"``
  object in the submitted input (the gateway passes provider options through,
  so a test steers the job it creates), or globally via ``POST /_sim/config``.
* Besides the shared fault knobs (``sim.control``), ``result_fault`` ``{"kind", "times"}`` injects
  a transport fault (reset, malformed, hang) into the result GET of a completed request.
* Anything the SDK depends on (field names, status codes, error bodies) follows
  ``fal_client/client.py`` and Fal's public docs; where the protocol is silent
  the choice is noted next to the code that makes it.
* Inputs are validated as fal validates them: against the endpoint's published
  schema (``gengate.config.schemas``, vendored from fal-js). An endpoint with no
  published schema is unknown (404); a body that fails its schema is a 422 with
  pydantic's ``detail`` list, and nothing is queued. Fields the schema does not
  have are accepted, as fal does, and listed in the request's
  ``unknown_fields``, so a test sees a parameter that reached fal in a field the
  endpoint does not have.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import heapq
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gengate.config import schemas
from gengate.sim import files, media, schema
from gengate.sim.control import (
    JSON, UNKNOWN_STATUS, ControlledSimulator, callback_client, control_routes, hang, number, retry_after_header,
    send_webhook, with_output_fault,
)

#: Defaults that ``POST /_sim/reset`` restores.  Any per-request knob may also
#: be given here and then applies to every request that does not override it.
DEFAULT_CONFIG: JSON = {"queue_time": 0.0, "latency": 0.0, "keys": None, "long_side": 256}

EXHAUSTED_BALANCE = (
    "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
)
CANCELLED_ERROR = "Request cancelled"
CANCELLED_TYPE = "client_cancelled"  # Fal's documented request-error type for client cancels
TIMEOUT_ERROR = "Request timed out before it started"
TIMEOUT_TYPE = "request_timeout"
NAMESPACES = ("workflows", "comfy")  # as fal_client.client.APP_NAMESPACES

# Ordered: the first table whose word occurs in the app id decides the output kind.
KIND_TABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("text", ("whisper", "wizper", "speech-to-text", "transcri")),
    ("audio", ("tts", "text-to-speech", "/speech", "speech-", "music", "elevenlabs", "stable-audio")),
    ("video", ("kling", "video", "wan", "minimax", "hailuo", "ltx", "lipsync", "sync",
               "omnihuman", "veo", "sora", "seedance", "upscale-video", "pixverse", "luma", "fabric")),
    ("audio", ("audio",)),
)
NAMED_SIZES: dict[str, tuple[int, int]] = {
    "square_hd": (1, 1), "square": (1, 1),
    "portrait_4_3": (3, 4), "portrait_16_9": (9, 16),
    "landscape_4_3": (4, 3), "landscape_16_9": (16, 9),
}
SUBMIT_ERRORS: dict[int, Any] = {
    400: "Bad request",
    401: "Invalid API key",
    403: EXHAUSTED_BALANCE,
    404: "Application not found",
    422: [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}],
    429: "Too many concurrent requests for this user",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service temporarily unavailable",
    504: "Gateway timeout",
}
NGINX_PAGE = ("<html><head><title>{code}</title></head><body><center><h1>{code}</h1></center>"
              "<hr><center>nginx</center></body></html>")


def _now_iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _root_of(app_id: str) -> str:
    """Where status/result/cancel live: ``[namespace/]owner/alias``, as fal_client's AppId."""
    parts = app_id.split("/")
    if parts[0] in NAMESPACES:
        return "/".join(parts[:3])
    return "/".join(parts[:2])


def output_kind(app_id: str) -> str:
    """Guess what an app returns ("image", "video", "audio" or "text") from its id."""
    lowered = app_id.lower()
    for kind, words in KIND_TABLE:
        if any(word in lowered for word in words):
            return kind
    return "image"


def _ratio(value: Any) -> tuple[float, float] | None:
    if isinstance(value, str) and value in NAMED_SIZES:
        return NAMED_SIZES[value]
    return files.aspect(value)


def media_size(inp: JSON, long_side: int, default_ratio: tuple[float, float]) -> tuple[int, int]:
    """Output size: an explicit ``image_size`` {width,height} is honoured exactly;
    named sizes and ``aspect_ratio`` only give the shape, scaled to `long_side`
    so simulated media stay small."""
    size = inp.get("image_size")
    if isinstance(size, dict):
        width, height = size.get("width"), size.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return min(width, media.MAX_SIDE), min(height, media.MAX_SIDE)
    return files.fit(_ratio(size) or _ratio(inp.get("aspect_ratio")) or default_ratio, long_side)


@dataclass
class WebhookState:
    """Delivery bookkeeping for one request's ``fal_webhook``."""

    url: str
    attempts: int = 0
    delivered: bool = False
    last_status: int | None = None
    last_error: str | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def as_json(self) -> JSON:
        return {"url": self.url, "attempts": self.attempts, "delivered": self.delivered,
                "last_status": self.last_status, "last_error": self.last_error}


@dataclass
class FalRequest:
    """One submitted request; its phase is computed from `started` on demand."""

    request_id: str
    app_id: str
    root: str
    input: JSON
    knobs: JSON
    base_url: str  # absolute URL of the mount, e.g. http://127.0.0.1:8000/fal
    submitted_at: float  # wall clock, for records and log timestamps
    started: float  # monotonic clock, for phase arithmetic
    queue_time: float
    latency: float
    initial_position: int
    key_suffix: str
    headers: JSON
    webhook: WebhookState | None = None
    cancelled_at: float | None = None  # seconds after submit
    cancel_calls: int = 0
    status_calls: int = 0
    result_calls: int = 0
    status_errors_served: int = 0
    result_errors_served: int = 0
    result: JSON | None = None  # memoised success payload
    unknown_fields: list[str] = field(default_factory=list)  # input fields the endpoint's schema lacks

    @property
    def start_timeout(self) -> float | None:
        value = self.headers.get("x-fal-request-timeout")
        timeout = number(value, -1.0) if value is not None else -1.0
        return timeout if 0.0 <= timeout < self.queue_time else None

    @property
    def ends_after(self) -> float:
        """Seconds after submission at which the request is COMPLETED."""
        if self.cancelled_at is not None:
            return self.cancelled_at
        timeout = self.start_timeout
        return timeout if timeout is not None else self.queue_time + self.latency

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def phase(self, elapsed: float) -> str:
        if elapsed >= self.ends_after:
            return "COMPLETED"
        return "IN_QUEUE" if elapsed < self.queue_time else "IN_PROGRESS"

    @property
    def outcome(self) -> str:
        """How the run ends: "ok", "failed", "cancelled" or "timeout"."""
        if self.cancelled_at is not None:
            return "cancelled"
        if self.start_timeout is not None:
            return "timeout"
        return "failed" if self.knobs.get("fail") else "ok"

    @property
    def began(self) -> bool:
        """Whether the run left the queue (it did not if cancelled or timed out while queued)."""
        return self.ends_after >= self.queue_time and self.outcome != "timeout"

    def queue_position(self, elapsed: float) -> int:
        if self.queue_time <= 0:
            return 0
        remaining = max(0.0, self.queue_time - elapsed) / self.queue_time
        return min(self.initial_position, math.ceil(self.initial_position * remaining))

    # -- failure details -------------------------------------------------
    def error_response(self) -> tuple[int, JSON, str]:
        """HTTP status, body and error type the result GET answers for a run that did not succeed."""
        outcome = self.outcome
        if outcome == "cancelled":
            return 400, {"detail": "Request was cancelled", "error_type": CANCELLED_TYPE}, CANCELLED_TYPE
        if outcome == "timeout":
            return 504, {"detail": TIMEOUT_ERROR, "error_type": TIMEOUT_TYPE}, TIMEOUT_TYPE
        message = str(self.knobs.get("fail"))
        status = 500 if int(number(self.knobs.get("fail_status"), 422)) == 500 else 422
        if status == 500:
            return 500, {"detail": message, "error_type": "runner_server_error"}, "runner_server_error"
        error_type = str(self.knobs.get("fail_type") or "content_policy_violation")
        detail = [{"loc": ["body"], "msg": message, "type": error_type,
                   "url": f"https://docs.fal.ai/errors#{error_type}", "input": None}]
        return 422, {"detail": detail}, error_type

    def status_error(self) -> tuple[str, str]:
        """``error`` and ``error_type`` shown by the status of a failed run."""
        if self.outcome == "cancelled":
            return CANCELLED_ERROR, CANCELLED_TYPE
        if self.outcome == "timeout":
            return TIMEOUT_ERROR, TIMEOUT_TYPE
        return str(self.knobs.get("fail")), self.error_response()[2]

    def logs(self, elapsed: float) -> list[JSON]:
        """Runner-style log lines for what has happened so far."""
        def line(message: str, at: float, level: str = "INFO") -> JSON:
            return {"message": message, "level": level, "source": "user",
                    "timestamp": _now_iso(self.submitted_at + at)}

        lines: list[JSON] = []
        if elapsed < self.queue_time or not self.began:
            return lines
        lines.append(line(f"Starting {self.app_id}", self.queue_time))
        end = min(elapsed, self.ends_after)
        if self.latency > 0 and end > self.queue_time:
            percent = min(100, int(100 * (end - self.queue_time) / self.latency))
            lines.append(line(f"Progress: {percent}%", end))
        if elapsed >= self.ends_after:
            if self.outcome == "ok":
                lines.append(line("Generation finished", self.ends_after))
            else:
                lines.append(line(self.status_error()[0], self.ends_after, "ERROR"))
        return lines

    def as_json(self) -> JSON:
        elapsed = self.elapsed()
        phase = self.phase(elapsed)
        return {
            "request_id": self.request_id, "app_id": self.app_id, "input": self.input,
            "submitted_at": self.submitted_at, "status": phase,
            "outcome": self.outcome if phase == "COMPLETED" else None,
            "queue_time": self.queue_time, "latency": self.latency,
            "cancelled": self.cancelled_at is not None, "cancel_calls": self.cancel_calls,
            "status_calls": self.status_calls, "result_calls": self.result_calls,
            "key_suffix": self.key_suffix, "headers": self.headers,
            "webhook": self.webhook.as_json() if self.webhook else None,
            "unknown_fields": self.unknown_fields,
        }


class FalSimulator(ControlledSimulator[FalRequest]):
    """In-memory state and HTTP handlers of the simulated Fal queue."""

    DEFAULT_CONFIG = DEFAULT_CONFIG
    COUNTERS = ("submit_attempts", "submissions", "submit_rejected", "status_calls", "result_calls",
                "cancel_calls", "cancels", "file_downloads", "webhook_attempts", "webhooks_delivered",
                "webhooks_failed")

    def __init__(self) -> None:
        self.requests: dict[str, FalRequest] = {}
        self.queues: dict[str, list[float]] = {}  # per app root: heap of queue-exit times
        self.tasks: set[asyncio.Task[None]] = set()
        super().__init__()

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()
        super().reset()
        self.requests.clear()
        self.queues.clear()

    # -- helpers -------------------------------------------------------------
    def auth_error(self, request: Request) -> tuple[JSONResponse | None, str]:
        header = request.headers.get("authorization", "").strip()
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if not header:
            return JSONResponse({"detail": "Missing authorization header"}, 401), ""
        if scheme != "Key" or not key:
            return JSONResponse({"detail": "Invalid authorization header, expected 'Key <key>'"}, 401), ""
        if self.key_refused(key):
            return JSONResponse({"detail": "Invalid API key"}, 401), ""
        return None, key[-4:]

    def lookup(self, request: Request) -> FalRequest | None:
        found = self.requests.get(request.path_params["request_id"])
        prefix = request.path_params["prefix"]
        if found is None or prefix not in (found.root, found.app_id):
            return None
        return found

    @staticmethod
    def injected(knob: Any, served: int, request_id: str | None = None) -> Response | None:
        """The forced error response of a ``{"status", "times", "ingress", "detail"}`` knob, if still due.

        With ``ingress`` the answer looks like Fal's nginx edge (HTML naming nginx, no
        ``x-fal-request-id``), which fal_client retries on 502/503/504; otherwise it
        looks like Fal's own API answering, which fal_client retries only on 408/409/429.
        """
        if not isinstance(knob, dict):
            return None
        status = int(number(knob.get("status"), 500))
        if served >= int(number(knob.get("times"), 1)) or not 400 <= status <= 599:
            return None
        if knob.get("ingress"):
            return Response(NGINX_PAGE.format(code=status), status, media_type="text/html")
        detail = knob.get("detail") or SUBMIT_ERRORS.get(status, "Simulated error")
        headers = {"x-fal-request-id": request_id} if request_id else None
        return JSONResponse({"detail": detail}, status, headers=headers)

    # -- queue API -------------------------------------------------------------
    async def submit(self, request: Request) -> Response:
        self.count("submit_attempts")
        app_id = request.path_params["app_id"].strip("/")
        if app_id.startswith("_sim") or len([p for p in app_id.split("/") if p]) < 2:
            return JSONResponse({"detail": f"Application '{app_id}' not found"}, 404)
        denied, key_suffix = self.auth_error(request)
        if denied is not None:
            self.count("submit_rejected")
            return denied
        raw = await request.body()
        try:
            payload = json.loads(raw) if raw.strip() else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.count("submit_rejected")
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "Input should be a valid dictionary",
                                             "type": "dict_type"}]}, 422)
        knobs = self.knobs_for(payload)
        fault = self.fault_due(knobs, "submit_fault", hashlib.sha256(raw).hexdigest())
        if fault is not None and fault.get("kind") == "reset":  # before acceptance: nothing was recorded
            self.count("submit_rejected")
            return await self.fault_response(request, fault)

        rejection = self.submit_rejection(app_id, raw, knobs)
        if rejection is not None:
            self.count("submit_rejected")
            return rejection
        published = schemas.published("fal", app_id)
        if published is None:
            self.count("submit_rejected")
            return JSONResponse({"detail": f"Application '{app_id}' not found"}, 404)
        refused = schema.validate(published["input"], payload)
        if refused:
            self.count("submit_rejected")
            return JSONResponse({"detail": refused}, 422)
        webhook_url = request.query_params.get("fal_webhook")
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            self.count("submit_rejected")
            return JSONResponse({"detail": "fal_webhook must be an http(s) URL"}, 422)

        record = self.create(request, app_id, payload, knobs, key_suffix, webhook_url)
        # the simulator's own knobs ride in the input too; they are not the caller's parameters
        record.unknown_fields = [f for f in schema.unknown_fields(published["input"], payload) if f != "sim"]
        self.count("submissions")
        await hang(knobs)
        if fault is not None:  # accepted, then the answer is lost (malformed) or late (hang)
            faulty = await self.fault_response(request, fault, headers={"x-fal-request-id": record.request_id})
            if faulty is not None:
                return faulty
        urls = self.urls(record)
        body = {"request_id": record.request_id, "gateway_request_id": record.request_id, **urls,
                "status": "IN_QUEUE", "queue_position": record.initial_position}
        return JSONResponse(body, 200, headers={"x-fal-request-id": record.request_id})

    def submit_rejection(self, app_id: str, raw: bytes, knobs: JSON) -> Response | None:
        """Apply the ``submit_status`` knob (optionally only to the first ``submit_status_times`` tries
        of an identical body, so SDK or gateway retries can be seen to succeed)."""
        status = knobs.get("submit_status")
        if status is None or not self.submit_failure_due(knobs, app_id.encode(), raw):
            return None
        knob = {"status": status, "times": 1, "ingress": knobs.get("submit_ingress"),
                "detail": knobs.get("submit_detail")}
        response = self.injected(knob, 0)
        retry_after = retry_after_header(knobs.get("retry_after"))
        if response is not None and retry_after is not None:
            response.headers.update(retry_after)
        return response

    def create(self, request: Request, app_id: str, payload: JSON, knobs: JSON,
               key_suffix: str, webhook_url: str | None) -> FalRequest:
        now = time.monotonic()
        root = _root_of(app_id)
        queue_time = number(knobs.get("queue_time"), 0.0)
        heap = self.queues.setdefault(root, [])
        while heap and heap[0] <= now:
            heapq.heappop(heap)
        position = knobs.get("queue_position")
        initial = int(position) if isinstance(position, int) and position >= 0 else len(heap)
        if queue_time > 0:
            heapq.heappush(heap, now + queue_time)
        record = FalRequest(
            request_id=str(uuid.uuid4()), app_id=app_id, root=root, input=payload, knobs=knobs,
            base_url=self.mount_url(request), submitted_at=time.time(), started=now,
            queue_time=queue_time, latency=number(knobs.get("latency"), 0.0),
            initial_position=initial, key_suffix=key_suffix,
            headers={k: v for k, v in request.headers.items() if k.startswith("x-fal-")},
        )
        self.requests[record.request_id] = record
        if webhook_url is not None:
            record.webhook = WebhookState(url=webhook_url)
            task = asyncio.get_running_loop().create_task(self.deliver_webhook(record))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return record

    @staticmethod
    def urls(record: FalRequest) -> JSON:
        base = f"{record.base_url}/{record.root}/requests/{record.request_id}"
        return {"response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    def open_request(self, request: Request, counter: str, missing: JSON) -> FalRequest | Response:
        """The start every per-request route shares: count the call, check auth, find the record."""
        self.count(counter)
        denied, _ = self.auth_error(request)
        if denied is not None:
            return denied
        record = self.lookup(request)
        if record is None:
            return JSONResponse(missing, 404)
        setattr(record, counter, getattr(record, counter) + 1)
        return record

    def forced_error(self, record: FalRequest, knob: str) -> Response | None:
        """The injected error of a `status_error` / `result_error` knob, while it is still due."""
        served = f"{knob}s_served"
        forced = self.injected(record.knobs.get(knob), getattr(record, served), record.request_id)
        if forced is not None:
            setattr(record, served, getattr(record, served) + 1)
        return forced

    async def status(self, request: Request) -> Response:
        record = self.open_request(request, "status_calls", {"detail": "Request not found"})
        if isinstance(record, Response):
            return record
        headers = {"x-fal-request-id": record.request_id}
        forced = self.forced_error(record, "status_error")
        if forced is not None:
            return forced
        fault = self.fault_due(record.knobs, "status_fault", record.request_id)
        if fault is not None:
            faulty = await self.fault_response(request, fault, headers=headers, unknown=lambda: {
                "status": UNKNOWN_STATUS.upper(), "request_id": record.request_id, **self.urls(record)})
            if faulty is not None:
                return faulty
        with_logs = request.query_params.get("logs", "").lower() in ("true", "1", "yes")
        elapsed = record.elapsed()
        phase = record.phase(elapsed)
        body: JSON = {"status": phase, "request_id": record.request_id, **self.urls(record)}
        if phase == "IN_QUEUE":
            body["queue_position"] = record.queue_position(elapsed)
            return JSONResponse(body, 202, headers=headers)
        body["logs"] = record.logs(elapsed) if with_logs else None
        if phase == "IN_PROGRESS":
            return JSONResponse(body, 202, headers=headers)
        ran = max(0.0, min(record.ends_after, elapsed) - record.queue_time)
        body["metrics"] = {"inference_time": round(ran, 3)} if record.outcome != "timeout" else {}
        if record.outcome != "ok":
            body["error"], body["error_type"] = record.status_error()
        return JSONResponse(body, 200, headers=headers)

    async def result(self, request: Request) -> Response:
        record = self.open_request(request, "result_calls", {"detail": "Request not found"})
        if isinstance(record, Response):
            return record
        headers = {"x-fal-request-id": record.request_id}
        forced = self.forced_error(record, "result_error")
        if forced is not None:
            return forced
        fault = self.fault_due(record.knobs, "result_fault", record.request_id)  # reset | malformed | hang
        if fault is not None:
            faulty = await self.fault_response(request, fault, headers=headers)
            if faulty is not None:
                return faulty
        if record.phase(record.elapsed()) != "COMPLETED":
            return JSONResponse({"detail": "Request is still in progress"}, 400, headers=headers)
        if record.outcome != "ok":
            status, body, error_type = record.error_response()
            headers["x-fal-error-type"] = error_type
            if record.outcome == "timeout":  # tells fal_client not to retry a user-set timeout
                headers["x-fal-request-timeout-type"] = "user"
            return JSONResponse(body, status, headers={**headers, "x-fal-retryable": "false"})
        return JSONResponse(await self.result_payload(record), 200, headers=headers)

    async def cancel(self, request: Request) -> Response:
        record = self.open_request(request, "cancel_calls", {"status": "NOT_FOUND"})
        if isinstance(record, Response):
            return record
        elapsed = record.elapsed()
        headers = {"x-fal-request-id": record.request_id}
        if record.phase(elapsed) == "COMPLETED":
            return JSONResponse({"status": "ALREADY_COMPLETED"}, 400, headers=headers)
        record.cancelled_at = elapsed
        self.count("cancels")
        if record.webhook is not None:
            record.webhook.event.set()
        return JSONResponse({"status": "CANCELLATION_REQUESTED"}, 202, headers=headers)

    # -- outputs ---------------------------------------------------------------
    async def result_payload(self, record: FalRequest) -> JSON:
        """The model output, built once per request; media bytes are made off the event loop."""
        if record.result is None:
            explicit = record.knobs.get("result")
            built = explicit if isinstance(explicit, dict) else await run_in_threadpool(self.shaped_output, record)
            record.result = with_output_fault(built, f"{record.base_url}/files/", record.knobs, record.request_id)
        return record.result

    def shaped_output(self, record: FalRequest) -> JSON:
        """The output in the shape the endpoint's published output schema gives it: the media this
        simulator makes, under the field names the endpoint uses (`image` for one, `images` for
        several), with every other required field filled in, and nothing the schema lacks. A test that
        forces another kind of output (the `output` knob) gets it as built."""
        built = self.build_output(record)
        published = schemas.published("fal", record.app_id)
        if published is None or not published["output"].get("properties") or record.knobs.get("output"):
            return built
        fields = published["output"]["properties"]
        if "image" in fields and "image" not in built and built.get("images"):
            built["image"] = built["images"][0]
        media_seconds = (built.get("video") or built.get("audio") or {}).get("duration") or built.get("duration")
        known = {**built, "prompt": record.input.get("prompt", ""), "video_id": record.request_id,
                 "seed": built.get("seed", int(record.request_id.replace("-", "")[:8], 16)),
                 "description": "A simulated result.", "duration": media_seconds or 1.0}
        return schema.conform(published["output"], built, known)

    def build_output(self, record: FalRequest) -> JSON:
        inp, knobs, rid = record.input, record.knobs, record.request_id
        kind = str(knobs.get("output") or output_kind(record.app_id))
        base = f"{record.base_url}/files"  # file names carry every parameter: see sim.files
        long_side = int(number(knobs.get("long_side"), 256)) or 256
        seconds = number(knobs.get("seconds"), 0.0) or number(str(inp.get("duration", "")).rstrip("s"), 1.0)
        clip = files.millis(seconds) / 1000
        if kind == "video":
            width, height = media_size(inp, long_side, (16, 9))
            width, height = width - width % 2, height - height % 2
            name = files.mp4_name(rid, width, height, clip)
            data, content_type = files.render(name)
            return {"video": {"url": f"{base}/{name}", "content_type": content_type, "file_name": name,
                              "file_size": len(data), "width": width, "height": height}}
        if kind == "audio":
            name = files.audio_name(rid, clip)
            data, content_type = files.render(name)
            return {"audio": {"url": f"{base}/{name}", "content_type": content_type,
                              "file_name": name, "file_size": len(data)},
                    "duration": clip}
        if kind in ("text", "transcription"):
            text = str(knobs.get("text") or "This is a simulated transcription.")
            return {"text": text, "chunks": [{"timestamp": [0.0, clip], "text": text}],
                    "inferred_languages": ["en"], "diarization_segments": []}
        width, height = media_size(inp, long_side, (1, 1))
        seed = inp.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            seed = int(rid.replace("-", "")[:8], 16)
        count = inp.get("num_images")
        count = min(max(count, 1), 4) if isinstance(count, int) else 1
        names = [files.png_name(f"{rid}-{i}", width, height, seed + i) for i in range(count)]
        images = [{"url": f"{base}/{name}", "width": width, "height": height,
                   "content_type": "image/png", "file_name": name} for name in names]
        return {"images": images, "seed": seed, "has_nsfw_concepts": [False] * count,
                "prompt": inp.get("prompt", ""), "timings": {"inference": record.latency}}

    async def file(self, request: Request) -> Response:
        fault = self.output_fault(request)
        if fault is not None:
            return fault
        served = await files.serve(request.path_params["name"])
        if served is None:
            return JSONResponse({"detail": "File not found"}, 404)
        self.count("file_downloads")
        return served

    # -- webhooks --------------------------------------------------------------
    async def deliver_webhook(self, record: FalRequest) -> None:
        """Sleep until the request completes (or is cancelled), then POST Fal's webhook body,
        retrying a few times when the receiver fails."""
        hook = record.webhook
        assert hook is not None
        while (remaining := record.ends_after - record.elapsed()) > 0:
            hook.event.clear()
            try:
                await asyncio.wait_for(hook.event.wait(), timeout=remaining)
            except TimeoutError:
                continue
        body: JSON = {"request_id": record.request_id, "gateway_request_id": record.request_id}
        if record.outcome == "ok":
            body.update(status="OK", payload=await self.result_payload(record), error=None)
        else:
            status, error_body, _ = record.error_response()
            error = record.status_error()[0] if record.outcome in ("cancelled", "timeout") \
                else f"Invalid status code: {status}"
            body.update(status="ERROR", payload=error_body, error=error)
        client = callback_client()
        hook.delivered = await send_webhook(hook, record.knobs, self.count, lambda: client.post(hook.url, json=body))

    # -- control API hooks -------------------------------------------------------
    def records(self) -> dict[str, FalRequest]:
        return self.requests

    def control_listed(self, request: Request, record: FalRequest) -> bool:
        app_id = request.query_params.get("app_id")
        return app_id is None or record.app_id == app_id

    def control_stats(self) -> JSON:
        phases = {"IN_QUEUE": 0, "IN_PROGRESS": 0, "COMPLETED": 0}
        for record in self.requests.values():
            phases[record.phase(record.elapsed())] += 1
        return {"in_queue": phases["IN_QUEUE"], "in_progress": phases["IN_PROGRESS"],
                "completed": phases["COMPLETED"]}


def create_app() -> Starlette:
    """The Fal simulator as an ASGI app; mount it at ``/fal`` (see ``sim.server``)."""
    sim = FalSimulator()
    request_path = "/{prefix:path}/requests/{request_id}"
    app = Starlette(routes=[
        *control_routes(sim),
        Route("/files/{name}", sim.file, methods=["GET"]),
        Route(request_path + "/status", sim.status, methods=["GET"]),
        Route(request_path + "/cancel", sim.cancel, methods=["PUT"]),
        Route(request_path, sim.result, methods=["GET"]),
        Route("/{app_id:path}", sim.submit, methods=["POST"]),
    ])
    app.state.sim = sim
    return app
