"""What every simulator shares: the control API under its mount and the fault knobs all of them read.

The control API (``GET /_sim/requests``, ``GET /_sim/requests/{id}``, ``GET|POST /_sim/config``,
``POST /_sim/reset``, ``GET /_sim/stats``) answers the same JSON shapes for every provider, because
tests and ``tests/conftest.py::sim_requests`` read them without knowing which simulator they talk to.
What does differ (a record's fields, a list filter, extra stats, the provider's error body) each
simulator fills in through the hooks of `ControlledSimulator`; its wire protocol stays in its module.

Knobs shared by all simulators: ``submit_status`` + ``submit_status_times`` (the first N tries of an
identical body are rejected, counted by fingerprint, so a retry can be seen to succeed),
``retry_after``, ``hang`` and ``status_error``; knob values are read leniently by `number`.

Transport-level faults (for the resilience suite), shared too: ``submit_fault`` and ``status_fault``
``{"kind", "times", "seconds"}`` on the create call and on the status (poll) call, where ``kind`` is
``reset`` (the connection is closed with a TCP RST before any answer), ``malformed`` (200 with a
truncated JSON body), ``unknown_status`` (a well-formed answer whose status the provider never
documented) or ``hang`` (the answer comes ``seconds`` late, after the client's read timeout);
``times`` (default: every call) counts per request. ``output_status: {"status", "times"}`` makes the
output file URL answer that HTTP status for its first ``times`` downloads (a CDN not yet caught up).
"""

from __future__ import annotations

import asyncio
import weakref
import copy
import hashlib
import json
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urlencode

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

JSON = dict[str, Any]


class Record(Protocol):
    def as_json(self) -> JSON: ...


R = TypeVar("R", bound=Record)


def number(value: Any, default: float) -> float:
    """A non-negative float from a knob value, or `default` when it is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def mount_url(request: Request) -> str:
    """Absolute URL of the simulator's app as the client reached it (mount prefix included)."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


def retry_after_header(value: Any) -> dict[str, str] | None:
    """The ``Retry-After`` header (whole seconds) for a ``retry_after`` knob value; None when unset."""
    if value is None:
        return None
    return {"Retry-After": str(int(number(value, 1.0)))}


async def hang(knobs: JSON) -> None:
    """The ``hang`` knob, after a request was accepted: its answer comes that many seconds late, so
    the client's read timeout fires after the provider has taken (and would bill) the request."""
    seconds = number(knobs.get("hang"), 0.0)
    if seconds > 0:
        await asyncio.sleep(seconds)


_CALLBACK_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def callback_client() -> httpx.AsyncClient:
    """The one HTTP client of the running event loop for every simulated provider's webhooks. A new
    AsyncClient per delivery builds an SSL context (~10 ms of CPU): with thousands of jobs calling back,
    that would take most of the simulator's CPU and delay its answers to submissions (BENCHMARKS.md)."""
    loop = asyncio.get_running_loop()
    client = _CALLBACK_CLIENTS.get(loop)
    if client is None:
        client = _CALLBACK_CLIENTS[loop] = httpx.AsyncClient(timeout=10.0)
    return client


async def send_webhook(hook: Any, knobs: JSON, count: Callable[[str], None],
                       send: Callable[[], Awaitable[httpx.Response]]) -> bool:
    """One webhook as Fal's and Replicate's simulators deliver it: `send()` tried up to the
    ``webhook_attempts`` knob's times (default 3) with a growing pause, each try recorded on `hook`
    (`attempts`, `last_status`, `last_error`) and counted (`webhook_attempts`, then
    `webhooks_delivered` or `webhooks_failed`). True once the receiver took it."""
    attempts = max(1, int(number(knobs.get("webhook_attempts"), 3)))
    for attempt in range(attempts):
        if attempt:
            await asyncio.sleep(0.2 * 2 ** (attempt - 1))
        hook.attempts += 1
        count("webhook_attempts")
        try:
            answer = await send()
        except httpx.HTTPError as exc:
            hook.last_error = f"{type(exc).__name__}: {exc}"
            continue
        hook.last_status = answer.status_code
        if answer.is_success:
            hook.last_error = None
            count("webhooks_delivered")
            return True
        hook.last_error = f"receiver answered {answer.status_code}"
    count("webhooks_failed")
    return False


def call_back_when_done(url: str, after: float, body: Any, *, headers: dict[str, str] | None = None,
                        attempts: int = 3) -> None:
    """A provider's completion webhook: after `after` seconds POST `body()` (called then, so it shows
    the final state) to `url`, retrying a failing receiver a few times. Runs as a task of its own."""
    async def deliver() -> None:
        await asyncio.sleep(max(after, 0.0))
        client = callback_client()
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(0.2 * 2 ** (attempt - 1))
            try:
                if (await client.post(url, json=body(), headers=headers)).is_success:
                    return
            except httpx.HTTPError:
                continue

    _CALLBACKS.add(task := asyncio.get_running_loop().create_task(deliver()))
    task.add_done_callback(_CALLBACKS.discard)


_CALLBACKS: set[asyncio.Task] = set()  # strong references, so pending deliveries are not collected


def status_error_due(knobs: JSON, served: int) -> JSON | None:
    """The ``status_error: {"status", "times", "detail", "retry_after"}`` knob while it is still due
    (``times`` defaults to 1), given how many of its errors were `served` already."""
    knob = knobs.get("status_error")
    if isinstance(knob, dict) and served < int(number(knob.get("times"), 1)):
        return knob
    return None


FAULT_KINDS = ("reset", "malformed", "unknown_status", "hang")
UNKNOWN_STATUS = "warming_up"  # a status no provider documents: adapters must not take it for an end


async def reset_connection(request: Request) -> Response:
    """Close the client's connection with a TCP RST, before any byte of an answer (a provider's load
    balancer restarting): the client sees "connection reset by peer". The ASGI `receive` of uvicorn
    is a method of the request cycle, which holds the transport."""
    transport = getattr(getattr(request.receive, "__self__", None), "transport", None)
    if transport is None:  # not served by uvicorn: the nearest thing is an error answer
        return Response(b"connection reset (simulated)", 502)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:  # linger 0: close() sends RST instead of FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    transport.abort()
    await asyncio.sleep(0.05)  # let the server see the connection gone: it then drops our answer
    return Response(b"", 500)


def malformed_json(headers: Mapping[str, str] | None = None) -> Response:
    """200 with a JSON body cut off in the middle, declared as JSON."""
    return Response(b'{"status": "COMPLETED", "request_id": "', 200, media_type="application/json",
                    headers=dict(headers or {}))


def with_output_fault(payload: Any, files_prefix: str, knobs: JSON, key: str) -> Any:
    """`payload` with every URL under `files_prefix` carrying the ``output_status`` knob as a query
    (signed CDN URLs carry queries too), so the file route can answer the injected status."""
    knob = knobs.get("output_status")
    if not isinstance(knob, dict):
        return payload
    query = urlencode({"sim_status": int(number(knob.get("status"), 404)),
                       "sim_times": int(number(knob.get("times"), 1_000_000)), "sim_key": key})

    def walk(value: Any) -> Any:
        if isinstance(value, str) and value.startswith(files_prefix) and "?" not in value:
            return f"{value}?{query}"
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(payload)


class ControlledSimulator(Generic[R]):
    """State every simulator keeps (config, counters, injected-failure fingerprints) and the
    handlers of its control API. Subclasses set `DEFAULT_CONFIG` and `COUNTERS`, return their
    records from `records`, and override the ``control_*`` hooks where they differ."""

    #: What ``POST /_sim/reset`` restores. Any per-request knob may be set here as a global default.
    DEFAULT_CONFIG: ClassVar[JSON] = {}
    #: Account settings: in the config, never per-request knobs.
    CONFIG_ONLY: ClassVar[tuple[str, ...]] = ("keys",)
    #: The counters of ``/_sim/stats``, all present from the start (at 0).
    COUNTERS: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.config: JSON = {}
        self.stats: dict[str, int] = {}
        self.submit_failures: dict[str, int] = {}  # body fingerprint -> injected failures served
        self.faults_served: dict[tuple[str, str], int] = {}  # (request id or URL, knob) -> served
        self.reset()

    def reset(self) -> None:
        self.config = copy.deepcopy(self.DEFAULT_CONFIG)
        self.submit_failures.clear()
        self.faults_served.clear()
        self.stats = dict.fromkeys(self.COUNTERS, 0)

    def count(self, name: str, by: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + by

    mount_url = staticmethod(mount_url)

    def key_refused(self, key: str) -> bool:
        """Whether ``keys`` in the config lists the valid keys and `key` is not one of them (any
        non-empty key passes while it is unset, so ``gengate up`` runs with a placeholder key)."""
        keys = self.config.get("keys")
        return isinstance(keys, list) and key not in keys

    def knobs_for(self, *sources: Any) -> JSON:
        """The config's knobs, overridden by the ``sim`` object of each source (in order) that has one."""
        knobs = {k: v for k, v in self.config.items() if k not in self.CONFIG_ONLY}
        for source in sources:
            if isinstance(source, dict) and isinstance(source.get("sim"), dict):
                knobs.update(source["sim"])
        return knobs

    def submit_failure_due(self, knobs: JSON, *fingerprint: bytes) -> bool:
        """Whether an injected ``submit_status`` failure is served to this try. With
        ``submit_status_times`` only the first N tries of the same `fingerprint` (the parts that make
        a body identical) fail, so a retry can be seen to succeed; without it every try fails."""
        times = knobs.get("submit_status_times")
        if times is None:
            return True
        key = hashlib.sha256(b"\0".join(fingerprint)).hexdigest()
        served = self.submit_failures.get(key, 0)
        if served >= int(number(times, 0)):
            return False
        self.submit_failures[key] = served + 1
        return True

    def fault_due(self, knobs: JSON, knob: str, key: str) -> JSON | None:
        """The ``submit_fault`` / ``status_fault`` knob `knob` while it is due for `key` (a request
        id; for a submit, anything identifying the body), counting this call as served."""
        spec = knobs.get(knob)
        if not isinstance(spec, dict) or spec.get("kind") not in FAULT_KINDS:
            return None
        served = self.faults_served.get((key, knob), 0)
        if "times" in spec and served >= int(number(spec.get("times"), 1)):
            return None
        self.faults_served[(key, knob)] = served + 1
        return spec

    async def fault_response(self, request: Request, spec: JSON, *, unknown: Any = None,
                             headers: Mapping[str, str] | None = None) -> Response | None:
        """The answer of a due fault; None when the call then goes on normally (after a ``hang``).
        `unknown()` builds the provider's own answer with an undocumented status."""
        kind = spec.get("kind")
        if kind == "reset":
            return await reset_connection(request)
        if kind == "malformed":
            return malformed_json(headers)
        if kind == "hang":
            await asyncio.sleep(number(spec.get("seconds"), 30.0))
            return None
        if kind == "unknown_status" and unknown is not None:
            return JSONResponse(unknown(), 200, headers=dict(headers or {}))
        return None

    def output_fault(self, request: Request) -> Response | None:
        """The ``output_status`` status for a file URL made by `with_output_fault`, while due."""
        status = request.query_params.get("sim_status")
        if status is None or not status.isdigit() or not 400 <= int(status) <= 599:
            return None
        key = (request.query_params.get("sim_key", "") + request.url.path, "output_status")
        served = self.faults_served.get(key, 0)
        if served >= int(number(request.query_params.get("sim_times"), 1)):
            return None
        self.faults_served[key] = served + 1
        return JSONResponse({"detail": "Not Found" if status == "404" else "Simulated error"}, int(status))

    # -- hooks -------------------------------------------------------------------
    def records(self) -> Mapping[str, R]:
        """The accepted requests, by id."""
        raise NotImplementedError

    def control_json(self, record: R) -> JSON:
        return record.as_json()

    def control_listed(self, request: Request, record: R) -> bool:
        """Whether `record` is in ``GET /_sim/requests`` (a simulator may filter by query parameter)."""
        return True

    def control_stats(self) -> JSON:
        """Fields of ``/_sim/stats`` after the counters and ``requests``."""
        return {}

    def control_not_found(self) -> Response:
        return JSONResponse({"detail": "Request not found"}, 404)

    def control_bad_config(self) -> Response:
        return JSONResponse({"detail": "config must be a JSON object"}, 422)

    # -- handlers ----------------------------------------------------------------
    async def sim_requests(self, request: Request) -> Response:
        items = [self.control_json(r) for r in self.records().values() if self.control_listed(request, r)]
        return JSONResponse({"requests": items})

    async def sim_request(self, request: Request) -> Response:
        record = self.records().get(request.path_params["request_id"])
        return self.control_not_found() if record is None else JSONResponse(self.control_json(record))

    async def sim_config(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                update = json.loads(await request.body() or b"{}")
            except ValueError:
                update = None
            if not isinstance(update, dict):
                return self.control_bad_config()
            for key, value in update.items():
                if value is None and key in self.DEFAULT_CONFIG:  # null restores the default
                    self.config[key] = copy.deepcopy(self.DEFAULT_CONFIG[key])
                elif value is None:  # ... or drops a knob that has none
                    self.config.pop(key, None)
                else:
                    self.config[key] = value
        return JSONResponse(self.config)

    async def sim_reset(self, request: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True, "config": self.config})

    async def sim_stats(self, request: Request) -> Response:
        return JSONResponse({**self.stats, "requests": len(self.records()), **self.control_stats()})


def control_routes(sim: ControlledSimulator[Any]) -> list[Route]:
    """The ``/_sim/...`` routes of `sim`, to be listed before the provider's own catch-all routes."""
    return [
        Route("/_sim/requests", sim.sim_requests, methods=["GET"]),
        Route("/_sim/requests/{request_id}", sim.sim_request, methods=["GET"]),
        Route("/_sim/config", sim.sim_config, methods=["GET", "POST"]),
        Route("/_sim/reset", sim.sim_reset, methods=["POST"]),
        Route("/_sim/stats", sim.sim_stats, methods=["GET"]),
    ]
