"""GET /v1/voices (the spec's shape) and GET /v1/models (the catalog, filterable by capability)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from gengate.api.deps import PrincipalDep
from gengate.api.schemas import VOICES, error_responses
from gengate.config.catalog import CAPABILITIES, MODELS

router = APIRouter(prefix="/v1", tags=["Reference"])


@router.get("/voices", operation_id="listVoices", summary="List voices", responses=error_responses(401))
async def list_voices(principal: PrincipalDep) -> dict:
    return {"voices": [{"voice_id": v, "name": v.capitalize()} for v in VOICES]}


@router.get("/models", operation_id="listModels", summary="List models", responses=error_responses(400, 401))
async def list_models(principal: PrincipalDep, capability: Literal[CAPABILITIES] | None = None) -> dict:  # type: ignore[valid-type]
    return {"models": [m.public() for m in MODELS if capability is None or m.capability == capability]}
