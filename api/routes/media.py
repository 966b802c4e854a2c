"""Media Processing: `POST /v1/ffmpeg/probe` answers at once; trim, resize, slice and custom commands
are jobs (202, the same lifecycle, cancel, SSE, cache, webhooks and Idempotency-Key as generation)
run by workers of the `media` queue."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse

from gengate.api import idempotency
from gengate.api.deps import PrincipalDep, SettingsDep, StoreDep
from gengate.api.metering import take_rate
from gengate.api.limits import StrictJSONRoute
from gengate.api.schemas import (
    CommandRequest,
    JobResponse,
    ProbeRequest,
    ProbeResponse,
    ResizeRequest,
    SliceRequest,
    TrimRequest,
    _JobOptions,
    error_responses,
)
from gengate.api.submission import accept, check_urls
from gengate.config.settings import Settings
from gengate.jobs import cache
from gengate.jobs.errors import UnavailableError, ValidationError
from gengate.jobs.record import MEDIA_CAPABILITY, MEDIA_PROVIDER, Job, new_job_id
from gengate.media import ops
from gengate.media.run import Limits, MediaFailed, MediaToolMissing, job_dir, probe
from gengate.media.sandbox import UnsafeCommand, plan_command
from gengate.storage import get_storage
from gengate.storage.base import TooLarge as StoredTooLarge
from gengate.storage.fetch import FetchError, UnsafeURL, fetch_hash

router = APIRouter(prefix="/v1/ffmpeg", tags=["Media Processing"], route_class=StrictJSONRoute)  # no NaN, no duplicate keys
_RESPONSES = {202: {"model": JobResponse, "description": "Job created"}, **error_responses(400, 401, 409, 413, 422, 429, 500)}
_PLACEHOLDER = re.compile(r"^(in|out)_([1-9][0-9]?)$")
_OUTPUT_NAME = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}\.(mp4|mov|webm|mkv|m4a|mp3|wav|ogg|flac|aac|gif|png|jpg|jpeg|webp)$")


@router.post("/probe", response_model=ProbeResponse, responses=error_responses(400, 401, 413, 429, 500, 503),
             operation_id="probeMedia", summary="Probe a media file")
async def probe_media(body: ProbeRequest, request: Request, store: StoreDep, settings: SettingsDep,
                      principal: PrincipalDep):
    """ffprobe's figures for a file, at once. Our own files are read in place; others are fetched
    through the SSRF-safe fetcher (at most `GENGATE_PROBE_MAX_BYTES`) into a private directory, in
    the probes' own threads (api/probes.py). It takes from the plan's request rate like a job."""
    rate = await take_rate(store, settings, principal.account_id, "probes")
    await check_urls([("url", body.url)], settings.file_url_bases)
    own = await _own_file(store.redis, body.url, settings)
    try:
        figures = await request.app.state.probes.run(_probe, body.url, own, settings)
    except FileNotFoundError:  # deleted, or expired, since its record was read
        raise ValidationError(f"{body.url} is not a file of this gateway (unknown or expired)", field="url") from None
    except (FetchError, StoredTooLarge) as exc:
        raise ValidationError(f"url: could not fetch it: {exc}", field="url") from None
    except UnsafeURL as exc:  # a redirect to a refused address: the user's URL, so a 400
        raise ValidationError(f"url: {exc}", field="url") from None
    except MediaToolMissing as exc:
        raise UnavailableError(str(exc)) from None
    except MediaFailed:
        raise ValidationError("url: not a media file FFmpeg can read", field="url") from None
    return ORJSONResponse(figures, headers=rate.headers())


async def _own_file(redis, url: str, settings: Settings) -> tuple[str, str] | None:
    """(kind, name) when `url` is one of this gateway's stored files (known to its records), None
    for any other URL; a 400 for an own URL that names nothing."""
    own = cache.own_name(url, settings.file_url_bases)
    if own is None:
        return None
    key, field, encoding = cache.own_hash_lookup(*own)
    if cache.decode_own_hash(await redis.hget(key, field), encoding) is None:
        raise ValidationError(f"{url} is not a file of this gateway (unknown or expired)", field="url")
    return own


def _probe(url: str, own: tuple[str, str] | None, settings: Settings) -> dict[str, Any]:
    """A local stored file is probed in place; one in object storage, or any other URL, is fetched
    into a private directory first (at most GENGATE_PROBE_MAX_BYTES)."""
    limits = Limits(seconds=settings.fetch_timeout_seconds, cpu_seconds=30, max_output_bytes=1 << 20,
                    max_memory_bytes=settings.media_max_memory_bytes, max_files=8)
    storage = get_storage()
    local = storage.local_path(*own) if own is not None else None
    if local is not None:
        return ops.summarize(probe(local, limits=limits), local.stat().st_size)
    with job_dir() as workdir:
        path = workdir / "input"
        if own is not None:
            storage.copy_to(*own, path, max_bytes=settings.probe_max_bytes)
        else:
            with open(path, "wb") as f:
                fetch_hash(url, into=f, max_bytes=settings.probe_max_bytes)
        return ops.summarize(probe(path, limits=limits, workdir=workdir), path.stat().st_size)


async def _create(request: Request, store, settings: Settings, principal, op: str, body: _JobOptions,
                  params: dict[str, Any]) -> ORJSONResponse:
    job = Job(job_id=new_job_id(), account=principal.account_id, capability=MEDIA_CAPABILITY,
              model=f"{MEDIA_PROVIDER}:{op}", provider=MEDIA_PROVIDER, endpoint=op, input=params, mode=op)
    return await idempotency.created(
        request, store.redis, principal.account_id, settings.idempotency_ttl_seconds,
        lambda also: accept(store, settings, job, body, request.headers, cache.named_inputs(params),
                            price=settings.media_price_cents, also=also),
    )


def _params(body: _JobOptions) -> dict[str, Any]:
    return body.model_dump(exclude={"webhook_url", "webhook_events"}, exclude_none=True)


@router.post("/trim", status_code=202, responses=_RESPONSES, operation_id="trimMedia", summary="Trim a video or audio")
async def trim(request: Request, body: TrimRequest, store: StoreDep, settings: SettingsDep, principal: PrincipalDep):
    if body.end is not None and body.duration is not None:
        raise ValidationError("give end or duration, not both", field="end")
    if body.end is not None and body.end <= body.start:
        raise ValidationError(f"end ({body.end:g}) must be after start ({body.start:g})", field="end")
    return await _create(request, store, settings, principal, "trim", body, _params(body))


@router.post("/resize", status_code=202, responses=_RESPONSES, operation_id="resizeMedia",
             summary="Resize a video or image")
async def resize(request: Request, body: ResizeRequest, store: StoreDep, settings: SettingsDep,
                 principal: PrincipalDep):
    return await _create(request, store, settings, principal, "resize", body, _params(body))


@router.post("/slice", status_code=202, responses=_RESPONSES, operation_id="sliceVideo",
             summary="Cut a video into segments")
async def slice_video(request: Request, body: SliceRequest, store: StoreDep, settings: SettingsDep,
                      principal: PrincipalDep):
    given = [name for name in ("every", "at", "count", "ranges") if getattr(body, name) is not None]
    if len(given) != 1:
        raise ValidationError("give exactly one of every, at, count or ranges", field=given[1] if given else "every")
    for i, r in enumerate(body.ranges or []):
        if r.end <= r.start:
            raise ValidationError(f"ranges.{i}: end must be after start", field=f"ranges.{i}.end")
    return await _create(request, store, settings, principal, "slice", body, _params(body))


@router.post("", status_code=202, responses=_RESPONSES, operation_id="runFfmpeg", summary="Run an FFmpeg command")
async def run_command(request: Request, body: CommandRequest, store: StoreDep, settings: SettingsDep,
                      principal: PrincipalDep):
    """Arguments with `{{in_N}}` / `{{out_N}}` placeholders, checked by the sandbox before the job is
    accepted: no shell, no paths or protocols, no filters that read or write files."""
    inputs = _named(body.input_files, "in", "input_files")
    outputs = _named(body.output_files, "out", "output_files")
    # Bounded before any job exists: each output is a file on the worker's disk and in storage,
    # each input a download. (The inputs' bytes together are bounded by the worker, which sees them.)
    if len(inputs) > settings.media_max_inputs:
        raise ValidationError(f"input_files: {len(inputs)} files; at most {settings.media_max_inputs} are allowed",
                              field="input_files")
    if len(outputs) > settings.media_max_outputs:
        raise ValidationError(f"output_files: {len(outputs)} files; at most {settings.media_max_outputs} are "
                              "allowed", field="output_files")
    for key, name in outputs.items():
        if not _OUTPUT_NAME.match(name) or ".." in name:
            raise ValidationError(f"output_files.{key}: '{name}' is not an allowed file name (letters, digits, "
                                  "_ . -, and a media extension such as .mp4, .mp3, .png)", field="output_files")
    try:
        plan_command(body.command, {k: f"/job/{k}.bin" for k in inputs}, {k: f"/job/out/{v}" for k, v in outputs.items()},
                     max_outputs=settings.media_max_outputs)
    except UnsafeCommand as exc:
        raise ValidationError(f"command refused: {exc}", field="command") from None
    params = {"command": body.command, "input_files": inputs, "output_files": outputs}
    return await _create(request, store, settings, principal, "command", body, params)


def _named(values: list[str] | dict[str, str], prefix: str, field: str) -> dict[str, str]:
    """A list (in_1, in_2, ...) or an object keyed by placeholder name -> {name: value}."""
    named = {f"{prefix}_{i}": v for i, v in enumerate(values, 1)} if isinstance(values, list) else dict(values)
    if not named:
        raise ValidationError(f"{field} must name at least one file", field=field)
    for key in named:
        m = _PLACEHOLDER.match(key)
        if not m or m.group(1) != prefix:
            raise ValidationError(f"{field}: '{key}' is not a placeholder name like {prefix}_1", field=field)
    return named
