"""GET /o/<job_id>.<ext>: stable output URLs. The 128-bit job id makes the URL a capability, as
the reference gateway's public output URLs are."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gengate.api.stored import serve_stored

router = APIRouter(tags=["Outputs"])


@router.api_route("/o/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def get_output(name: str, request: Request) -> Response:
    return await serve_stored("o", name, request, "Output not found")
