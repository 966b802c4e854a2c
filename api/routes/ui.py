"""/ui: the web dashboard (issue 20), served by the API itself from files shipped in the package.

Plain HTML, CSS and ES modules in api/static/ui/, no build step. The dashboard is a client of the
public /v1 API only (a Bearer key from the tab's sessionStorage), so this module serves files and
nothing else: one page (/ui; views are #/jobs and #/jobs/<id> in the URL's fragment) and its
static files under /ui/static/.

Every answer carries a strict CSP (as /docs, api/routes/docs.py): scripts, styles and fetches from
this origin only, nothing inline, and no string may become HTML (Trusted Types), so a prompt or an
error a provider sends can only ever be text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from gengate.config.settings import get_settings

UI = Path(__file__).resolve().parents[1] / "static" / "ui"

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The files /ui/static/ serves, by name: those in the folder when the module loads (no path from the
# request reaches the disk).
ASSETS: dict[str, tuple[Path, str]] = {
    path.name: (path, MEDIA_TYPES[path.suffix]) for path in sorted(UI.iterdir()) if path.suffix in MEDIA_TYPES
}


def csp(storage_public_url: str | None = None) -> str:
    """The dashboard's policy. Outputs (/o/...) are previewed by img/video/audio elements: on this
    origin, or on the storage's public origin when GENGATE_STORAGE_PUBLIC_URL points elsewhere.
    img-src allows data: (nothing of ours uses it today; harmless, as for /docs). connect-src falls
    back to 'self': the page calls this gateway's /v1 API only. `require-trusted-types-for 'script'`
    with no policy allowed makes every string-to-HTML sink (innerHTML, document.write) throw."""
    media = "'self'"
    if storage_public_url:
        parts = urlsplit(storage_public_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            media += f" {parts.scheme}://{parts.netloc}"
    return (f"default-src 'self'; img-src {media} data:; media-src {media}; style-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
            "require-trusted-types-for 'script'; trusted-types 'none'")


@lru_cache(maxsize=1)
def headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": csp(get_settings().storage_public_url),
        "X-Content-Type-Options": "nosniff",
        # The key sits in the page's session storage: the page is never framed, and never cached
        # beyond a revalidation (an upgraded gateway's files are never mixed with older ones).
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def ui_page() -> FileResponse:
    return FileResponse(UI / "index.html", media_type="text/html; charset=utf-8", headers=headers())


@router.get("/ui/static/{name}")
async def ui_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, f"no such file: {name}")
    path, media_type = ASSETS[name]
    return FileResponse(path, media_type=media_type, headers=headers())
