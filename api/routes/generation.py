"""POST /v1/{image,video,speech,music,transcription}: validate, create a job, answer 202 at once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse

from gengate.api.deps import PrincipalDep, SettingsDep, StoreDep
from gengate.api.schemas import (
    ImageRequest,
    JobResponse,
    MusicRequest,
    SpeechRequest,
    TranscriptionRequest,
    VideoRequest,
    _Request,
    error_responses,
)
from gengate.api import idempotency
from gengate.api.limits import StrictJSONRoute
from gengate.api.submission import create_job

router = APIRouter(prefix="/v1", tags=["Generation"], route_class=StrictJSONRoute)  # no NaN, no duplicate keys
_RESPONSES = {202: {"model": JobResponse, "description": "Job created"}, **error_responses(400, 401, 402, 409, 413, 422, 429, 500, 502)}  # 413: api/limits.py


async def _accept(
    request: Request, store, settings, principal, capability: str, body: _Request
) -> ORJSONResponse:
    return await idempotency.created(
        request, store.redis, principal.account_id, settings.idempotency_ttl_seconds,
        lambda also: create_job(store, settings, account_id=principal.account_id, capability=capability, body=body,
                                headers=request.headers, also=also),
    )


@router.post("/image", status_code=202, responses=_RESPONSES, operation_id="createImage", summary="Generate image")
async def create_image(
    request: Request, body: ImageRequest, store: StoreDep, settings: SettingsDep, principal: PrincipalDep
):
    return await _accept(request, store, settings, principal, "image", body)


@router.post("/video", status_code=202, responses=_RESPONSES, operation_id="createVideo", summary="Generate video")
async def create_video(
    request: Request, body: VideoRequest, store: StoreDep, settings: SettingsDep, principal: PrincipalDep
):
    return await _accept(request, store, settings, principal, "video", body)


@router.post("/speech", status_code=202, responses=_RESPONSES, operation_id="createSpeech", summary="Generate speech")
async def create_speech(
    request: Request, body: SpeechRequest, store: StoreDep, settings: SettingsDep, principal: PrincipalDep
):
    return await _accept(request, store, settings, principal, "speech", body)


@router.post("/music", status_code=202, responses=_RESPONSES, operation_id="createMusic", summary="Generate music")
async def create_music(
    request: Request, body: MusicRequest, store: StoreDep, settings: SettingsDep, principal: PrincipalDep
):
    return await _accept(request, store, settings, principal, "music", body)


@router.post("/transcription", status_code=202, responses=_RESPONSES, operation_id="createTranscription",
             summary="Transcribe audio")
async def create_transcription(
    request: Request, body: TranscriptionRequest, store: StoreDep, settings: SettingsDep, principal: PrincipalDep
):
    return await _accept(request, store, settings, principal, "transcription", body)
