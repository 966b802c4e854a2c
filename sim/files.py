"""The media files every simulator serves under ``/<provider>/files/<name>``.

A file's name carries every parameter needed to make it (size, seed, length, fps), so serving
needs no state, URLs keep working after ``/_sim/reset``, and the simulators agree on one scheme:

    <stem>_<w>x<h>_s<seed>[_rgba].png   <stem>_<w>x<h>_<ms>ms_<fps>fps.mp4   <stem>_<ms>ms.mp3|wav
"""

from __future__ import annotations

import re

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from gengate.sim import media

MAX_SECONDS = 10.0  # longer asks get a shorter clip: the simulators keep media small
VIDEO_FPS = 8
CONTENT_TYPES = {"png": "image/png", "mp4": "video/mp4", "mp3": "audio/mpeg", "wav": "audio/wav"}
_PATTERNS = {
    "png": re.compile(r"^[\w-]+_(?P<w>\d{1,4})x(?P<h>\d{1,4})_s(?P<seed>\d{1,12})(?P<rgba>_rgba)?\.png$"),
    "mp4": re.compile(r"^[\w-]+_(?P<w>\d{1,4})x(?P<h>\d{1,4})_(?P<ms>\d{1,6})ms_(?P<fps>\d{1,2})fps\.mp4$"),
    "mp3": re.compile(r"^[\w-]+_(?P<ms>\d{1,6})ms\.mp3$"),
    "wav": re.compile(r"^[\w-]+_(?P<ms>\d{1,6})ms\.wav$"),
}
_SIZE = re.compile(r"_(\d{1,4})x(\d{1,4})_")


_ASPECT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*")


def aspect(value: object) -> tuple[float, float] | None:
    """ "16:9" (or 16x9, 16/9) as a (w, h) ratio; None when unreadable or not positive."""
    match = _ASPECT.fullmatch(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0 or float(match.group(2)) <= 0:
        return None
    return float(match.group(1)), float(match.group(2))


def fit(ratio: tuple[float, float], long_side: int) -> tuple[int, int]:
    """A size of that shape whose long side is `long_side`: simulated media stay small."""
    scale = long_side / max(ratio)
    return max(2, round(ratio[0] * scale)), max(2, round(ratio[1] * scale))


def millis(seconds: float) -> int:
    """A clip length in ms, capped at MAX_SECONDS; zero or less becomes one second."""
    return int(min(seconds, MAX_SECONDS) * 1000) or 1000


def png_name(stem: str, width: int, height: int, seed: int, *, rgba: bool = False) -> str:
    return f"{stem}_{width}x{height}_s{seed}{'_rgba' if rgba else ''}.png"


def mp4_name(stem: str, width: int, height: int, seconds: float, fps: int = VIDEO_FPS) -> str:
    # Even sides: H.264 needs them, and the name must describe exactly the file served.
    return f"{stem}_{width - width % 2}x{height - height % 2}_{millis(seconds)}ms_{fps}fps.mp4"


def audio_name(stem: str, seconds: float) -> str:
    return f"{stem}_{millis(seconds)}ms.{'mp3' if media.has_mp3_encoder() else 'wav'}"


def size_in_name(url: str) -> tuple[int, int] | None:
    """The width and height a served file's name carries (a remover keeps its input's size)."""
    found = _SIZE.search(url.rsplit("/", 1)[-1])
    return (int(found.group(1)), int(found.group(2))) if found else None


def render(name: str) -> tuple[bytes, str] | None:
    """The bytes and Content-Type of the file `name` describes; None when it describes none."""
    ext = name.rsplit(".", 1)[-1]
    match = _PATTERNS[ext].match(name) if ext in _PATTERNS else None
    if match is None:
        return None
    f = {k: int(v) for k, v in match.groupdict().items() if k != "rgba" and v is not None}
    if ext == "png":
        make = media.cutout_png if match.group("rgba") else media.png_bytes
        data = make(f["w"], f["h"], f["seed"])
    elif ext == "mp4":
        data = media.mp4_bytes(f["w"], f["h"], min(f["ms"] / 1000, MAX_SECONDS), max(f["fps"], 1))
    elif ext == "mp3":
        data = media.mp3_bytes(min(f["ms"] / 1000, MAX_SECONDS))
    else:
        data = media.wav_bytes(min(f["ms"] / 1000, MAX_SECONDS))
    return data, CONTENT_TYPES[ext]


async def serve(name: str) -> Response | None:
    """The response for GET /files/<name> (encoding off the event loop), or None for the caller's 404."""
    rendered = await run_in_threadpool(render, name)
    if rendered is None:
        return None
    data, content_type = rendered
    return Response(data, media_type=content_type, headers={"cache-control": "public, max-age=3600"})
