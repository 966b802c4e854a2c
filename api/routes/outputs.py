"""GET /o/<job_id>.<ext>: stable output URLs. The 128-bit job id makes the URL a capability, as the
reference gateway's public output URLs are."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gengate.jobs.errors import NotFoundError
from gengate.storage import get_storage
from gengate.storage.local import media_type_for

router = APIRouter(tags=["Outputs"])


@router.api_route("/o/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def get_output(name: str) -> FileResponse:
    path = get_storage().output_path(name)
    if path is None:
        raise NotFoundError("Output not found")
    return FileResponse(path, media_type=media_type_for(name), headers={"Cache-Control": "public, max-age=31536000, immutable"})
