"""Typed dependencies shared by the routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from gengate.config import logs
from gengate.config.settings import Settings, get_settings
from gengate.jobs.apikeys import Principal, authenticate
from gengate.jobs.errors import AuthError
from gengate.jobs.store import AsyncJobStore


# Every dependency is `async def`, trivial as they are: FastAPI runs a plain `def` dependency in its
# thread pool, a thread hop per dependency per request (BENCHMARKS.md).
async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


async def get_store(request: Request) -> AsyncJobStore:
    return request.app.state.store


async def settings_dep() -> Settings:
    return get_settings()


# Declares the bearer scheme in the OpenAPI document; the checks below give the spec's error shape.
_bearer = HTTPBearer(auto_error=False, bearerFormat="gg_live_<id>_<secret>")


async def get_principal(
    request: Request,
    redis: Annotated[Redis, Depends(get_redis)],
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise AuthError("Missing API key")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Invalid API key")
    principal = await authenticate(redis, token.strip())
    if principal is None:
        raise AuthError("Invalid API key")
    logs.bind(account=principal.account_id)  # on every log line of this request from here on
    return principal


def bearer_matches(request: Request, secret: str) -> bool:
    """Whether the request's Authorization header is `Bearer <secret>`, compared in constant time
    (as bytes: compare_digest raises TypeError on non-ASCII text, and a header may hold any)."""
    return hmac.compare_digest(request.headers.get("authorization", "").encode(), b"Bearer " + secret.encode())


RedisDep = Annotated[Redis, Depends(get_redis)]
StoreDep = Annotated[AsyncJobStore, Depends(get_store)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]
