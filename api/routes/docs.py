"""/docs: the interactive API docs (Swagger UI), served by the API itself.

FastAPI's own /docs loads Swagger UI's script and CSS from a CDN, so it is a blank page on a network
without the public internet. This page and everything it loads are files shipped in the package
(api/static/: our page and its start script; api/static/swagger-ui/: Swagger UI 5, vendored from the
npm package swagger-ui-dist, see its README.md). Swagger UI 5, not the 4.x of the PyPI package
swagger-ui-bundle: /openapi.json is OpenAPI 3.1, which 4.x cannot render.

Every answer here carries `CSP`: scripts, styles and fetches from this origin only, nothing inline.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parents[1] / "static"
SWAGGER_UI = STATIC / "swagger-ui"

# No 'unsafe-inline' anywhere: the page has no inline script (docs.js starts Swagger UI) and Swagger
# UI sets its element styles through the DOM (element.style), which style-src does not govern.
# img-src allows data: for the icons swagger-ui.css embeds as data: URLs. connect-src falls back to
# 'self': the page fetches /openapi.json, and "Try it out" calls this same gateway.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # Revalidated on each load (FileResponse's ETag and Last-Modified): an upgraded gateway's page
    # and Swagger UI are never mixed with cached older ones.
    "Cache-Control": "no-cache",
}

# The files /docs/static/ serves, by name: a fixed list (no path from the request reaches the disk).
ASSETS: dict[str, tuple[Path, str]] = {
    "docs.js": (STATIC / "docs.js", "text/javascript; charset=utf-8"),
    "swagger-ui-bundle.js": (SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
    "swagger-ui.css": (SWAGGER_UI / "swagger-ui.css", "text/css; charset=utf-8"),
    "favicon-32x32.png": (SWAGGER_UI / "favicon-32x32.png", "image/png"),
    "favicon-16x16.png": (SWAGGER_UI / "favicon-16x16.png", "image/png"),
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs_page() -> FileResponse:
    return FileResponse(STATIC / "docs.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/docs/static/{name}")
async def docs_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, f"no such file: {name}")
    path, media_type = ASSETS[name]
    return FileResponse(path, media_type=media_type, headers=HEADERS)
