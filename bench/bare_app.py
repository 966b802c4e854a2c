"""The submission baseline: a bare Starlette app whose one route does one Redis LPUSH.

Served by the very uvicorn command and options of the API (bench/stack.py `start_bare`), with a
`redis.asyncio` client made like the API's (api/app.py), so the difference between the two is what
gengate's submission path costs on top of "an HTTP request that queues something".
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

QUEUE = "bench:bare"


@asynccontextmanager
async def lifespan(app: Starlette):
    app.state.redis = Redis.from_url(os.environ["GENGATE_REDIS_URL"], max_connections=512, health_check_interval=30)
    try:
        yield
    finally:
        await app.state.redis.aclose()


async def push(request: Request) -> JSONResponse:
    body = await request.body()
    await request.app.state.redis.lpush(QUEUE, body)
    return JSONResponse({"status": "queued"}, status_code=202)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v1/image", push, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan)
