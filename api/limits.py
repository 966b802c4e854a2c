"""Request-body hygiene: a size cap, so a huge body is refused before it is held in memory, and a
strict JSON parser for the JSON endpoints.

FastAPI reads any body whole and parses it: uncapped, a 60 MB JSON request would take 60 MB (and
more while parsed) of the API's memory, and a 5 MB `provider_options` would become a 5 MB job record.
So every request body is limited to `GENGATE_MAX_REQUEST_BYTES` (1 MiB), except uploads (`POST
/v1/files`, streamed to disk under their own 50 MiB cap). A declared `Content-Length` over the
cap is answered 413 at once, without reading anything; a chunked body is counted as it is read
and refused at the first chunk past the cap. The 413 has the spec's error shape.

`StrictJSONRoute` parses JSON bodies as RFC 8259 JSON: UTF-8 only, and the standard library (which
FastAPI uses) accepts `NaN` / `Infinity` (then stored in the job and re-sent to the provider as invalid JSON) and
lets the last of duplicate keys win silently (`{"model": "a", "model": "b"}`: what a proxy, a log
or an idempotency check reads first is not what the job uses); and integers past 64 bits are more
than the job record's serializer can hold. All are a 400 naming the problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gengate.jobs.errors import PayloadTooLargeError
from gengate.api.errors import error_response


class BodyTooLarge(HTTPException):
    """Raised from `receive` while the app reads a body past the cap. An HTTPException, so FastAPI's
    body reading re-raises it (any other exception there becomes a 400 "error parsing the body") and
    the app's handler for HTTP errors answers it (api/errors.py maps 413 to PayloadTooLargeError)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=_message(limit))


def _message(limit: int) -> str:
    size = f"{limit // 1024 // 1024} MiB" if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0 else f"{limit} bytes"
    return f"Request body too large (max {size})"


class BodyLimit:
    """Pure ASGI middleware: bodies over `max_bytes` are refused with 413, uploads excepted."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: tuple[tuple[str, str], ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt  # (method, path) pairs whose routes enforce their own cap

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"].rstrip("/")) in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await error_response(PayloadTooLargeError(_message(self.max_bytes)))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _refuse_constant(name: str) -> Any:
    raise HTTPException(400, f"Request body is not valid JSON: {name} is not a JSON number")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise HTTPException(400, f"Request body is not valid JSON: duplicate key {key[:100]!r}")
        obj[key] = value
    return obj


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: a JSON number, but not one any field can hold
        raise HTTPException(400, f"Request body is not valid JSON: {text[:40]} is out of range")
    return value


def _int64(text: str) -> int:
    value = int(text)
    # orjson (job records, cache keys, idempotency fingerprints) holds 64 bits: a bigger integer in
    # `provider_options` would raise TypeError when the job is written, so it is refused here.
    if not -(2**63) <= value < 2**64:
        raise HTTPException(400, f"Request body: the integer {text[:40]} is out of the 64-bit range")
    return value


def strict_loads(body: bytes) -> Any:
    """`json.loads` refusing NaN/Infinity and duplicate keys (as HTTPException 400, which FastAPI passes
    on to the error handler; any other parse error it turns into its generic 400)."""
    try:
        text = body.decode("utf-8")  # RFC 8259: UTF-8 only (the stdlib would also guess UTF-16 and -32)
    except UnicodeDecodeError:
        raise HTTPException(400, "Request body is not valid JSON: it is not UTF-8") from None
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite, parse_int=_int64,
                      object_pairs_hook=_refuse_duplicates)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = strict_loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """The route class of routers whose endpoints take a JSON body (`APIRouter(route_class=...)`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
