"""The one place where errors become the spec's JSON shape `{error, message, field, provider, statusCode}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException

from gengate.jobs.errors import (
    AuthError,
    ConflictError,
    GatewayError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    UnavailableError,
    ValidationError,
)

log = logging.getLogger("gengate.api")

_BY_STATUS: dict[int, type[GatewayError]] = {
    400: ValidationError,
    401: AuthError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    503: UnavailableError,
}


def error_response(exc: GatewayError) -> ORJSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else {}
    if isinstance(exc, RateLimitError):
        headers.update(exc.headers)
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, ConflictError):
        headers["Retry-After"] = "1"
    return ORJSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


def _field(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


async def _validation(request: Request, exc: RequestValidationError) -> ORJSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "Invalid request body", "type": ""}
    field = _field(tuple(first.get("loc", ())))
    if first.get("type") == "missing" and field:
        message = f"{field} is required"
    elif first.get("type") == "json_invalid":
        message, field = "Request body is not valid JSON", None
    elif tuple(first.get("loc", ())) == ("body",):
        # The body as a whole: absent (FastAPI says only "Field required"), or JSON but not an object,
        # or not parsed as JSON at all because its Content-Type is not application/json.
        message = ("A JSON object is required as the request body" if first.get("type") == "missing"
                   else "The request body must be a JSON object, sent with Content-Type: application/json")
    else:
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
    return error_response(ValidationError(message, field=field))


async def _gateway(request: Request, exc: GatewayError) -> ORJSONResponse:
    return error_response(exc)


async def _http(request: Request, exc: HTTPException) -> ORJSONResponse:
    cls = _BY_STATUS.get(exc.status_code)
    if cls is None:
        body = {"error": "HTTPError", "message": str(exc.detail), "statusCode": exc.status_code}
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return ORJSONResponse(body, status_code=exc.status_code, headers=headers)
    detail = str(exc.detail) if exc.detail else "Not found"
    if detail == "There was an error parsing the body":  # FastAPI's words for undecodable JSON (bad UTF-8,
        detail = "Request body is not valid JSON"        # nesting too deep, a number too long)
    return error_response(cls(detail))


def _allowed_methods(request: Request) -> str:
    """Every method of every route at this path. Starlette's 405 names only the first route's methods
    (GET /v1/jobs/{id} would say `Allow: GET`, hiding DELETE), as FastAPI makes one route per method."""
    from starlette.routing import Match

    routes = request.app.router.routes  # routes, or FastAPI's included routers: both answer `matches`
    methods = [m for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
               if any(r.matches({**request.scope, "method": m})[0] == Match.FULL for r in routes)]
    return ", ".join(methods)


async def _redis_down(request: Request, exc: Exception) -> ORJSONResponse:
    log.warning("redis unavailable: %s", exc)
    return error_response(UnavailableError("The job store is temporarily unavailable; retry shortly"))


async def _unexpected(request: Request, exc: Exception) -> ORJSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(GatewayError("An unexpected error occurred"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(GatewayError, _gateway)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(RedisConnectionError, _redis_down)
    app.add_exception_handler(RedisTimeoutError, _redis_down)
    app.add_exception_handler(Exception, _unexpected)
