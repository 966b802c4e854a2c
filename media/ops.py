"""The built-in media operations as FFmpeg argument lists, and what ffprobe says in the spec's words.

Pure functions: the worker (`tasks/media.py`) fetches inputs, runs these under `media.run`'s limits
and stores what they write. Our own argument lists never come from the user verbatim: numbers are
validated by the request models and formatted here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gengate.media.sandbox import input_guard

PREAMBLE = ["-nostdin", "-hide_banner", "-y", "-loglevel", "error"]
VIDEO_ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart"]
IMAGE_EXTS = {"png", "jpg", "jpeg", "webp", "bmp", "gif"}
AUDIO_EXTS = {"mp3", "wav", "m4a", "aac", "ogg", "flac", "opus"}


def guarded(args: list[str]) -> list[str]:
    """Our own argument lists get the sandbox's input guard too: an input is user content, and a
    playlist or concat list posing as a video must not make FFmpeg open other files or URLs."""
    out = list(PREAMBLE)
    for arg in args:
        if arg == "-i":
            out += input_guard()
        out.append(arg)
    return out


def _t(seconds: float) -> str:
    return f"{seconds:.3f}"


def summarize(probe: dict[str, Any], size_bytes: int | None = None) -> dict[str, Any]:
    """ffprobe's JSON -> `{duration, width, height, codec, audio_codec, format, bitrate, fps, size_bytes}`."""
    streams = probe.get("streams") or []
    fmt = probe.get("format") or {}
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = _number(fmt.get("duration")) or _number((video or audio or {}).get("duration"))
    # A still image has no frame rate, whatever the image demuxer's default says.
    still = str(fmt.get("format_name", "")).endswith("_pipe") or fmt.get("format_name") == "image2"
    return {
        "duration": round(duration, 3) if duration is not None else None,
        "width": video.get("width") if video else None,
        "height": video.get("height") if video else None,
        "codec": video.get("codec_name") if video else None,
        "audio_codec": audio.get("codec_name") if audio else None,
        "format": fmt.get("format_name"),
        "bitrate": int(_number(fmt.get("bit_rate")) or 0) or None,
        "fps": _fps(video.get("avg_frame_rate") or video.get("r_frame_rate")) if video and not still else None,
        "size_bytes": size_bytes if size_bytes is not None else int(_number(fmt.get("size")) or 0) or None,
    }


def _number(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fps(rate: str | None) -> float | None:
    if not rate or "/" not in rate:
        return _number(rate)
    num, den = (_number(x) for x in rate.split("/", 1))
    return round(num / den, 3) if num and den else None


def has_video(probe: dict[str, Any]) -> bool:
    """A real video stream (a cover picture in an mp3 is not one)."""
    return any(s.get("codec_type") == "video" and not (s.get("disposition") or {}).get("attached_pic")
               for s in probe.get("streams") or [])


def output_ext(probe: dict[str, Any], input_ext: str) -> str:
    """The container of an output derived from one input: images and audio keep theirs, video is mp4."""
    ext = input_ext.lower()
    if ext in IMAGE_EXTS and not _is_animated(probe):
        return ext
    if not has_video(probe):
        return ext if ext in AUDIO_EXTS else "m4a"
    return "mp4"


def _is_animated(probe: dict[str, Any]) -> bool:
    duration = summarize(probe)["duration"]
    return bool(duration and duration > 0.1 and has_video(probe) and (probe.get("format") or {}).get("format_name") == "gif")


def trim_args(src: str, dst: str, *, start: float, duration: float | None, precise: bool, video: bool) -> list[str]:
    """Stream copy seeks before the input (fast, cuts at keyframes); precise re-encodes after an
    accurate seek, so the cut lands on the asked frame."""
    limit = ["-t", _t(duration)] if duration is not None else []
    if not precise:
        return ["-ss", _t(start), "-i", src, *limit, "-map", "0", "-c", "copy", "-avoid_negative_ts", "make_zero", dst]
    codecs = VIDEO_ENCODE if video else []
    return ["-i", src, "-ss", _t(start), *limit, *codecs, dst]


def resize_filter(width: int, height: int, fit: str) -> str:
    if fit == "stretch":
        return f"scale={width}:{height},setsar=1"
    if fit == "cover":  # fill the frame, crop the overflow
        return f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},setsar=1"
    # contain: fit inside, pad the rest
    return (f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1")


def resize_args(src: str, dst: str, *, width: int, height: int, fit: str, video: bool) -> list[str]:
    codecs = VIDEO_ENCODE if video else ["-frames:v", "1"]
    return ["-i", src, "-vf", resize_filter(width, height, fit), *codecs, dst]


@dataclass(frozen=True)
class Segment:
    index: int
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def slice_segments(duration: float, *, every: float | None = None, at: list[float] | None = None,
                   count: int | None = None, ranges: list[tuple[float, float]] | None = None,
                   max_segments: int = 200) -> list[Segment]:
    """The cut plan: every N seconds, at given points, N equal parts, or explicit ranges (clipped to
    the media's duration). Raises ValueError with a user-facing reason."""
    if duration <= 0:
        raise ValueError("the video has no duration to slice")
    if every is not None:
        n = math.ceil(duration / every - 1e-9)
        if n > max_segments:
            raise ValueError(f"every={every:g} makes {n} segments; at most {max_segments}")
        bounds = [(i * every, min((i + 1) * every, duration)) for i in range(n)]
    elif at is not None:
        points = sorted({p for p in at if 0 < p < duration})
        edges = [0.0, *points, duration]
        bounds = list(zip(edges, edges[1:]))
    elif count is not None:
        step = duration / count
        bounds = [(i * step, duration if i == count - 1 else (i + 1) * step) for i in range(count)]
    elif ranges is not None:
        bounds = []
        for start, end in ranges:
            if end <= start:
                raise ValueError(f"range {start:g}-{end:g} ends before it starts")
            if start >= duration:
                raise ValueError(f"range {start:g}-{end:g} starts after the video ends ({duration:g} s)")
            bounds.append((start, min(end, duration)))
    else:
        raise ValueError("give one of every, at, count or ranges")
    segments = [Segment(i, s, e) for i, (s, e) in enumerate(b for b in bounds if b[1] - b[0] > 0.01)]
    if not segments or len(segments) > max_segments:
        raise ValueError(f"the cut plan makes {len(segments)} segments; 1 to {max_segments} are allowed")
    return segments


def segment_args(src: str, dst: str, seg: Segment, *, reencode: bool) -> list[str]:
    if reencode:
        return ["-i", src, "-ss", _t(seg.start), "-t", _t(seg.duration), *VIDEO_ENCODE, dst]
    return ["-ss", _t(seg.start), "-i", src, "-t", _t(seg.duration), "-map", "0", "-c", "copy",
            "-avoid_negative_ts", "make_zero", dst]


def thumbnail_args(src: str, dst: str, at: float) -> list[str]:
    return ["-ss", _t(at), "-i", src, "-frames:v", "1", "-q:v", "3", dst]
