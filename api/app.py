"""The FastAPI application: wiring only (routes, error handlers, Redis pool for the process)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse
from redis.asyncio import BlockingConnectionPool, Redis

from gengate.api import errors, limits, metrics, openapi, probes, streams
from gengate.api.routes import account, admin, credentials, docs, files, generation, jobs, media, outputs, provider_webhooks, reference, ui
from gengate.config import logs
from gengate.config.settings import get_settings
from gengate.jobs.uploads import UploadScripts
from gengate.jobs.store import AsyncJobStore

# Seconds a request waits for a free Redis connection before its 503.
POOL_WAIT_SECONDS = 5.0


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = get_settings()
    # A burst of requests past the pool's size waits a moment for a connection instead of failing.
    pool = BlockingConnectionPool.from_url(settings.resolved_redis_url(), max_connections=settings.api_redis_connections,
                                           timeout=POOL_WAIT_SECONDS, health_check_interval=30,
                                           **settings.redis_options())
    redis = Redis(connection_pool=pool)
    app.state.redis = redis
    app.state.store = AsyncJobStore(redis, ttl_seconds=settings.job_ttl_seconds,
                                    byok_ttl_seconds=settings.byok_ttl_seconds)
    app.state.uploads = UploadScripts(redis)
    app.state.probes = probes.Probes(settings.probe_threads)
    # SSE streams block in Redis reads: they get a pool of their own (api/streams.py).
    stream_redis = streams.stream_pool(settings)
    app.state.streams = streams.StreamSlots(stream_redis, settings)
    try:
        yield
    finally:
        app.state.probes.close()
        await stream_redis.aclose()
        await redis.aclose()


def create_app() -> FastAPI:
    # Here, not in the lifespan: uvicorn imports the app before its first line of its own, so every
    # line, uvicorn's included, goes through the JSON formatter and its redaction.
    logs.configure("api")
    app = FastAPI(
        title="gengate",
        version="0.1.0",
        description="Self-hostable, wire-compatible gateway for AI media generation.",
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
        # /docs is ours (api/routes/docs.py): FastAPI's loads Swagger UI from a CDN, and its ReDoc
        # (/redoc) likewise, so neither is served.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    openapi.install(app)  # /openapi.json lists the 400s the API answers, not FastAPI's 422s
    # Before HttpMetrics, so that middleware (added last, so outermost) also counts the 413s.
    app.add_middleware(limits.BodyLimit, max_bytes=get_settings().max_request_bytes,
                       exempt=(("POST", "/v1/files"),))  # uploads stream to disk under their own cap
    app.add_middleware(metrics.HttpMetrics)
    app.include_router(metrics.router)  # /metrics, /readyz
    app.include_router(generation.router)
    app.include_router(jobs.router)
    app.include_router(reference.router)
    app.include_router(media.router)
    app.include_router(outputs.router)
    app.include_router(files.router)
    app.include_router(account.router)
    app.include_router(credentials.router)  # /v1/keys, /v1/webhook-secret, /v1/provider-keys
    app.include_router(admin.router)  # /v1/admin/overview, behind GENGATE_ADMIN_KEY
    app.include_router(provider_webhooks.router)
    app.include_router(docs.router)  # /docs, Swagger UI from files in the package
    app.include_router(ui.router)  # /ui, the web dashboard (static files in the package)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


app = create_app()
