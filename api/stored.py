"""Serving stored files (api/routes/outputs.py's /o/, api/routes/files.py's /u/) and calling the
storage from the event loop.

From a local directory the file is sent as it is (range requests included). From object storage,
by `GENGATE_STORAGE_SERVE`: a redirect to a short-lived presigned URL of the object (the store
answers range requests itself), or the object streamed through the API with its range."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool, iterate_in_threadpool

from gengate.config.settings import get_settings
from gengate.jobs.errors import NotFoundError
from gengate.storage import get_storage
from gengate.storage.base import Storage, checked_name, media_type_for

# Every file the gateway serves, an output (/o/) or an upload (/u/), is a tenant's or a model's bytes
# on the gateway's own origin: served as the type its name says, never sniffed, and sandboxed, so an
# SVG or HTML file cannot run script with the origin's authority.
SERVED_FILE_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}
T = TypeVar("T")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


async def serve_stored(kind: str, name: str, request: Request, missing: str) -> Response:
    """The stored file `kind/name` as the response to `request`; 404 in the error shape if absent."""
    try:
        checked_name(kind, name)
    except ValueError:
        raise NotFoundError(missing) from None
    storage = get_storage()
    path = storage.local_path(kind, name)
    if path is not None:
        return FileResponse(path, media_type=media_type_for(name), headers=SERVED_FILE_HEADERS)
    if not storage.remote:
        raise NotFoundError(missing)
    if get_settings().storage_serve == "redirect":
        url = await run_in_threadpool(storage.sign, kind, name)
        if url is None:
            raise NotFoundError(missing)
        # Not cached: the presigned URL expires, the name it stands for does not.
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    return await _streamed(storage, kind, name, request, missing)


async def _streamed(storage, kind: str, name: str, request: Request, missing: str) -> Response:
    first, last = _range(request.headers.get("range"))
    try:
        reading = await run_in_threadpool(storage.read, kind, name, first, last)
    except FileNotFoundError:
        raise NotFoundError(missing) from None
    except ValueError:  # a range past the end
        return Response(status_code=416, headers={"Content-Range": "bytes */*"})
    headers = {**SERVED_FILE_HEADERS, "Accept-Ranges": "bytes",
               "Content-Length": str(reading.end - reading.start + 1)}
    partial = first is not None or last is not None
    if partial:
        headers["Content-Range"] = f"bytes {reading.start}-{reading.end}/{reading.total}"
    body = iterate_in_threadpool(reading.chunks) if request.method == "GET" else None
    if body is None:
        reading.chunks.close()  # type: ignore[attr-defined]
        return Response(status_code=206 if partial else 200, headers=headers, media_type=media_type_for(name))
    return StreamingResponse(body, status_code=206 if partial else 200, headers=headers,
                             media_type=media_type_for(name))


async def off_loop(storage: Storage, fn: Callable[..., T], *args: Any) -> T:
    """Call a storage method: in a thread for object storage (a network round trip), inline for a
    local directory (a file-system call, cheaper than the thread hop)."""
    if storage.remote:
        return await run_in_threadpool(fn, *args)
    return fn(*args)


def _range(header: str | None) -> tuple[int | None, int | None]:
    """A single `bytes=a-b` range (open either end); anything else is the whole file."""
    m = _RANGE.match((header or "").strip())
    if not m or not m.group(1):  # none, or a suffix range (`bytes=-n`): the whole file, as HTTP allows
        return None, None
    return int(m.group(1)), int(m.group(2)) if m.group(2) else None
