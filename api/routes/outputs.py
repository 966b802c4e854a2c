"""GET /o/<job_id>.<ext>: stable output URLs. The 128-bit job id makes the URL a capability, as the
reference gateway's public output URLs are."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gengate.jobs.errors import NotFoundError
from gengate.storage import get_storage
from gengate.storage.local import media_type_for

router = APIRouter(tags=["Outputs"])

# Every file the gateway serves, an output (/o/) or an upload (/u/), is a tenant's or a model's bytes
# on the gateway's own origin: served as the type its name says, never sniffed, and sandboxed, so an
# SVG or HTML file cannot run script with the origin's authority.
SERVED_FILE_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


@router.api_route("/o/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def get_output(name: str) -> FileResponse:
    path = get_storage().output_path(name)
    if path is None:
        raise NotFoundError("Output not found")
    return FileResponse(path, media_type=media_type_for(name), headers=SERVED_FILE_HEADERS)
