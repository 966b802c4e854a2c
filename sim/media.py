"""Real, decodable media for the provider simulators.

The simulators hand out URLs to files that clients really download, probe and
store, so every function here returns bytes in a genuine container format:
PNG via Pillow, MP4 (H.264 through libx264 when PyAV's FFmpeg has it, else
MPEG-4 part 2) and MP3 via PyAV, WAV via the standard library.  Pictures are
kept small and everything that costs more than a millisecond is memoised,
because a load test may ask for the same output thousands of times.
"""

from __future__ import annotations

import array
import functools
import io
import math
import wave

import av
from PIL import Image, ImageChops, ImageDraw

MAX_SIDE = 2048
MAX_SECONDS = 30.0


def _clamp_size(width: int, height: int, even: bool = False) -> tuple[int, int]:
    """Bound a requested picture size, so a hostile input cannot exhaust memory."""
    w = max(2 if even else 1, min(int(width), MAX_SIDE))
    h = max(2 if even else 1, min(int(height), MAX_SIDE))
    if even:  # yuv420p chroma subsampling needs even dimensions
        w -= w % 2
        h -= h % 2
    return w, h


def _pattern(width: int, height: int, seed: int, phase: float = 0.0) -> Image.Image:
    """An RGB picture that differs visibly with `seed` (and moves with `phase`).

    Built from Pillow's native gradients so it costs no per-pixel Python.
    """
    horizontal = Image.linear_gradient("L").rotate(90).resize((width, height))
    vertical = Image.linear_gradient("L").resize((width, height))
    radial = Image.radial_gradient("L").resize((width, height))
    shift = int(phase * width) % max(width, 1)
    red = ImageChops.offset(horizontal, shift, 0).point(lambda v: (v + seed * 37) % 256)
    green = vertical.point(lambda v: (v + seed * 91) % 256)
    blue = radial.point(lambda v: (v * ((seed % 5) + 1)) % 256)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    box = max(2, min(width, height) // 4)
    x = int((seed * 13 + phase * width) % max(width - box, 1))
    y = int((seed * 29) % max(height - box, 1))
    draw.rectangle((x, y, x + box, y + box), outline=(255, 255, 255), width=2)
    return image


@functools.lru_cache(maxsize=256)
def png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of exactly `width` x `height` (clamped to 1..2048) whose look depends on `seed`."""
    w, h = _clamp_size(width, height)
    buffer = io.BytesIO()
    _pattern(w, h, seed).save(buffer, format="PNG", optimize=False, compress_level=1)
    return buffer.getvalue()


@functools.lru_cache(maxsize=128)
def cutout_png(width: int, height: int, seed: int) -> bytes:
    """An RGBA PNG like a background remover's: the pattern inside an ellipse, transparent outside.

    Built on ``png_bytes`` (one picture generator for every simulator); Pillow only adds the alpha
    channel and re-encodes.
    """
    picture = Image.open(io.BytesIO(png_bytes(width, height, seed))).convert("RGBA")
    w, h = picture.size
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).ellipse((w * 0.15, h * 0.1, w * 0.85 - 1, h * 0.9 - 1), fill=255)
    picture.putalpha(mask)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@functools.cache
def _video_codec() -> str:
    """libx264 if this FFmpeg build has the encoder, otherwise the always-built mpeg4."""
    try:
        av.codec.Codec("libx264", "w")
    except av.codec.codec.UnknownCodecError:
        return "mpeg4"
    return "libx264"


@functools.lru_cache(maxsize=64)
def mp4_bytes(width: int, height: int, seconds: float = 1.0, fps: int = 8) -> bytes:
    """A playable MP4 of `seconds` at `fps`, sized `width` x `height` rounded down to even.

    Encoded wholly in memory; the moving pattern makes every frame differ so
    decoders and thumbnailers see a real clip, not one repeated picture.
    """
    w, h = _clamp_size(width, height, even=True)
    fps = max(1, min(int(fps), 60))
    frames = max(1, round(min(max(seconds, 0.0), MAX_SECONDS) * fps))
    codec = _video_codec()
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width = w
        stream.height = h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "32"}
        for index in range(frames):
            frame = av.VideoFrame.from_image(_pattern(w, h, 7, phase=index / frames))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _sine_samples(seconds: float, rate: int, frequency: float = 440.0) -> array.array:
    """Signed 16-bit mono samples of a sine tone at one third of full scale."""
    count = max(1, int(min(max(seconds, 0.0), MAX_SECONDS) * rate))
    step = 2.0 * math.pi * frequency / rate
    return array.array("h", (int(10000 * math.sin(step * i)) for i in range(count)))


@functools.lru_cache(maxsize=64)
def wav_bytes(seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV holding a 440 Hz tone."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(_sine_samples(seconds, rate).tobytes())
    return buffer.getvalue()


def has_mp3_encoder() -> bool:
    """Whether PyAV's FFmpeg can write MP3 (its wheels ship libmp3lame)."""
    return _mp3_codec() is not None


@functools.cache
def _mp3_codec() -> str | None:
    """The name of an MP3 encoder this FFmpeg has, if any."""
    for name in ("libmp3lame", "mp3"):
        try:
            av.codec.Codec(name, "w")
        except av.codec.codec.UnknownCodecError:
            continue
        return name
    return None


@functools.lru_cache(maxsize=64)
def mp3_bytes(seconds: float = 1.0) -> bytes:
    """An MP3 of a 440 Hz tone, or a WAV when this FFmpeg cannot encode MP3.

    Callers that must label the bytes correctly should check `has_mp3_encoder()`
    (or sniff the leading bytes: WAV starts with ``RIFF``).
    """
    codec = _mp3_codec()
    if codec is None:
        return wav_bytes(seconds)
    rate = 22050
    samples = _sine_samples(seconds, rate)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        stream.bit_rate = 32000
        chunk = 1152
        for start in range(0, len(samples), chunk):
            part = samples[start : start + chunk]
            frame = av.AudioFrame(format="s16p", layout="mono", samples=len(part))
            frame.planes[0].update(part.tobytes() + bytes(frame.planes[0].buffer_size - 2 * len(part)))
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
