"""The simulator's HTTP server: one ASGI app with each provider mounted under its
own prefix, plus a way to run it on a port chosen by the OS.

The socket is bound here, not by uvicorn, so ``port=0`` yields a free port whose
number is known before the ready line is printed, and callers (tests, the
``gengate up`` command) can start the simulator without racing for ports.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gengate.sim import fal
from gengate.sim import replicate
from gengate.sim import elevenlabs
from gengate.sim import higgsfield
from gengate.sim import piapi

#: Mounted providers, by URL prefix; each module exposes ``create_app() -> Starlette``.
PROVIDERS: dict[str, Callable[[], ASGIApp]] = {
    "fal": fal.create_app,
    "replicate": replicate.create_app,
    "elevenlabs": elevenlabs.create_app,
    "higgsfield": higgsfield.create_app,
    "piapi": piapi.create_app,
}


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "providers": sorted(PROVIDERS)})


def create_app() -> Starlette:
    """All simulated providers in one app: ``/fal/...`` etc., and ``GET /healthz``."""
    routes: list[BaseRoute] = [Route("/healthz", healthz, methods=["GET"])]
    routes += [Mount(f"/{name}", app=factory()) for name, factory in PROVIDERS.items()]
    return Starlette(routes=routes, middleware=[Middleware(QuietDisconnects)])


class QuietDisconnects:
    """A client that goes away while its request body is read (the resilience suite SIGKILLs
    workers mid-request) is not a simulator error: no "Exception in ASGI application" traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            pass


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 lets the OS pick a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it keep-alive responses stall ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it on Linux): the simulator is
    meant to absorb load tests, and it roughly doubles request throughput."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def serve(host: str = "127.0.0.1", port: int = 0, ready: Callable[[str], None] | None = None,
          log_level: str = "warning") -> None:
    """Run the simulator until SIGINT/SIGTERM (or the server stops), then return normally.

    `ready` is called with the base URL (e.g. ``http://127.0.0.1:41234``) once
    uvicorn has started and accepts connections.
    """
    sock = bind(host, port)
    url = _url(host, sock)
    config = uvicorn.Config(create_app(), log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the captured signal to the handler it found once it
        # has shut down; a no-op handler turns that into a normal return (exit 0).
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: None)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and ready is not None:
            ready(url)
        await task

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run())
    finally:
        sock.close()
