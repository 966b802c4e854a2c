"""GET /v1/voices (the spec's shape) and GET /v1/models (the catalog, with each model's price of its
default request and its unit pricing, `config/catalog.py` Pricing; filterable by capability)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from gengate.api.deps import PrincipalDep
from gengate.api.schemas import VOICES, ModelListResponse, VoiceListResponse, error_responses
from gengate.config.catalog import CAPABILITIES, MODELS, ROUTES

router = APIRouter(prefix="/v1", tags=["Reference"])


# `responses`, not `response_model`: the models document the answers without FastAPI re-validating
# (and filtering) every one of them.
@router.get("/voices", operation_id="listVoices", summary="List voices", response_model=None,
            responses={200: {"model": VoiceListResponse, "description": "List of voices"}, **error_responses(401)})
async def list_voices(principal: PrincipalDep) -> dict:
    return {"voices": [{"voice_id": v, "name": v.capitalize()} for v in VOICES]}


@router.get("/models", operation_id="listModels", summary="List models", response_model=None,
            responses={200: {"model": ModelListResponse, "description": "The catalog's models"},
                       **error_responses(400, 401)})
async def list_models(principal: PrincipalDep, capability: Literal[CAPABILITIES] | None = None) -> dict:  # type: ignore[valid-type]
    return {"models": [{**m.public(), "providers": [r.route_info() for r in ROUTES[m.name]]}
                       for m in MODELS if capability is None or m.capability == capability]}
