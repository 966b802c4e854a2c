"""Media Processing end to end: real API, Celery worker (media queue), FFmpeg, storage. The inputs
are made here with FFmpeg's own test sources and uploaded through `POST /v1/files`."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_for, wait_until

pytestmark = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed (apt-get install -y ffmpeg)")


def _make(path: Path, *args: str) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """6 s of 320x240 at 25 fps with a 440 Hz tone; a keyframe every 5 frames so stream-copy cuts are close."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    return _make(path, "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-f", "lavfi", "-i",
                 "sine=frequency=440:duration=6", "-c:v", "libx264", "-g", "5", "-pix_fmt", "yuv420p",
                 "-c:a", "aac", "-shortest").read_bytes()


def _ffprobe(data: bytes, tmp_path: Path, ext: str = "mp4") -> dict:
    path = tmp_path / f"{uuid.uuid4().hex}.{ext}"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                          str(path)], check=True, capture_output=True).stdout
    return json.loads(out)


def _duration(info: dict) -> float:
    return float(info["format"]["duration"])


def _video(info: dict) -> dict:
    return next(s for s in info["streams"] if s["codec_type"] == "video")


def _upload(client: httpx.Client, data: bytes, media_type: str = "video/mp4") -> str:
    r = client.post("/files", content=data, headers={"Content-Type": media_type})
    assert r.status_code == 200, r.text
    return r.json()["url"]


def _job(client: httpx.Client, path: str, body: dict, timeout: float = 30) -> dict:
    r = client.post(path, json=body)
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=timeout)
    assert job["status"] == "completed", job
    return job


def test_probe_figures_match_what_was_generated(client: httpx.Client, clip: bytes, files_url: str):
    url = _upload(client, clip)
    r = client.post("/ffmpeg/probe", json={"url": url})
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) == {"duration", "width", "height", "codec", "audio_codec", "format", "bitrate", "fps", "size_bytes"}
    assert abs(got["duration"] - 6) < 0.1 and (got["width"], got["height"]) == (320, 240)
    assert got["codec"] == "h264" and got["audio_codec"] == "aac" and got["fps"] == 25
    assert got["size_bytes"] == len(clip) and got["bitrate"] > 0 and "mp4" in got["format"]
    # An external URL goes through the safe fetcher.
    ext = client.post("/ffmpeg/probe", json={"url": f"{files_url}/any.mp4"})
    assert ext.status_code == 200 and ext.json()["width"] == 64
    bad = client.post("/ffmpeg/probe", json={"url": "http://127.1/a.mp4"})
    assert bad.status_code == 400 and bad.json()["field"] == "url"
    junk = client.post("/ffmpeg/probe", json={"url": _upload(client, b"not media at all", "text/plain")})
    assert junk.status_code == 400 and junk.json()["field"] == "url"


def test_trim_copy_and_precise(client: httpx.Client, clip: bytes, tmp_path: Path):
    url = _upload(client, clip)
    job = _job(client, "/ffmpeg/trim", {"url": url, "start": 1, "end": 3})
    assert job["model"] == "ffmpeg:trim" and job["output"]["media_type"] == "video/mp4"
    info = _ffprobe(httpx.get(job["output"]["url"]).content, tmp_path)
    assert abs(_duration(info) - 2) < 0.3
    assert abs(job["output"]["metadata"]["duration"] - _duration(info)) < 0.05

    precise = _job(client, "/ffmpeg/trim", {"url": url, "start": 0.5, "duration": 1.5, "precise": True})
    assert abs(_duration(_ffprobe(httpx.get(precise["output"]["url"]).content, tmp_path)) - 1.5) < 0.1

    r = client.post("/ffmpeg/trim", json={"url": url, "start": 3, "end": 2})
    assert r.status_code == 400 and r.json()["field"] == "end"


@pytest.mark.parametrize("fit", ["cover", "contain", "stretch"])
def test_resize_video(client: httpx.Client, clip: bytes, tmp_path: Path, fit: str):
    job = _job(client, "/ffmpeg/resize", {"url": _upload(client, clip), "width": 160, "height": 90, "fit": fit})
    video = _video(_ffprobe(httpx.get(job["output"]["url"]).content, tmp_path))
    assert (video["width"], video["height"]) == (160, 90)


def test_resize_image_keeps_its_format(client: httpx.Client, tmp_path: Path):
    png = _make(tmp_path / "in.png", "-f", "lavfi", "-i", "testsrc=size=200x100:duration=1", "-frames:v", "1").read_bytes()
    job = _job(client, "/ffmpeg/resize", {"url": _upload(client, png, "image/png"), "width": 50, "height": 50,
                                          "fit": "contain"})
    assert job["output"]["media_type"] == "image/png"
    video = _video(_ffprobe(httpx.get(job["output"]["url"]).content, tmp_path, "png"))
    assert (video["width"], video["height"]) == (50, 50)


def test_slice_every_count_at(client: httpx.Client, clip: bytes, tmp_path: Path):
    url = _upload(client, clip)
    job = _job(client, "/ffmpeg/slice", {"video_url": url, "every": 2})
    segments = job["output"]["metadata"]["segments"]
    assert [s["index"] for s in segments] == [0, 1, 2] and job["output"]["metadata"]["count"] == 3
    for seg in segments:
        info = _ffprobe(httpx.get(seg["url"]).content, tmp_path)
        assert abs(_duration(info) - 2) < 0.3, seg
        thumb = httpx.get(seg["thumbnail_url"])
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert seg["filename"].endswith(".mp4")
    assert job["output"]["url"] != segments[0]["url"]
    assert httpx.get(job["output"]["url"]).content == httpx.get(segments[0]["url"]).content

    counted = _job(client, "/ffmpeg/slice", {"video_url": url, "count": 4, "codec": "reencode", "thumbnails": False})
    parts = counted["output"]["metadata"]["segments"]
    assert len(parts) == 4 and all("thumbnail_url" not in s for s in parts)
    assert all(abs(_duration(_ffprobe(httpx.get(s["url"]).content, tmp_path)) - 1.5) < 0.15 for s in parts)
    cut = _job(client, "/ffmpeg/slice", {"video_url": url, "at": [1, 4]})
    assert [round(s["end"] - s["start"]) for s in cut["output"]["metadata"]["segments"]] == [1, 3, 2]

    r = client.post("/ffmpeg/slice", json={"video_url": url, "every": 2, "count": 3})
    assert r.status_code == 400 and r.json()["error"] == "ValidationError"


def test_custom_command(client: httpx.Client, clip: bytes, tmp_path: Path):
    body = {"command": "ffmpeg -i {{in_1}} -vf scale=64:48 -c:v libx264 -an {{out_1}} -vn -c:a libmp3lame {{out_2}}",
            "input_files": [_upload(client, clip)], "output_files": ["small.mp4", "sound.mp3"]}
    job = _job(client, "/ffmpeg", body)
    small = _ffprobe(httpx.get(job["output"]["url"]).content, tmp_path)
    assert (_video(small)["width"], _video(small)["height"]) == (64, 48)
    [first, second] = job["output"]["metadata"]["outputs"]
    assert first["filename"] == "small.mp4" and second["filename"] == "sound.mp3"
    sound = _ffprobe(httpx.get(second["url"]).content, tmp_path, "mp3")
    assert [s["codec_type"] for s in sound["streams"]] == ["audio"]


@pytest.mark.parametrize("command", [
    "-vf movie=/etc/passwd -i {{in_1}} {{out_1}}",
    "-i {{in_1}} -filter_complex \"movie=/etc/passwd[x];[0:v][x]overlay\" {{out_1}}",
    "-i file:/etc/passwd {{out_1}}",
    "-i http://example.com/x.mp4 {{out_1}}",
    "-f lavfi -i testsrc {{out_1}}",
    "-i {{in_1}} -f segment out%03d.mp4",
    "-i {{in_1}} " + " ".join(["{{out_1}}"] * 300),
    "-i {{in_1}} {{out_1}}; rm -rf /",
])
def test_hostile_commands_are_refused(client: httpx.Client, command: str):
    r = client.post("/ffmpeg", json={"command": command, "input_files": ["http://localhost:1/a.mp4"],
                                     "output_files": ["o.mp4"]})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "ValidationError" and r.json()["field"] == "command"
    assert r.json()["message"].startswith("command refused:")


def test_runaway_command_is_killed_at_its_time_limit(client: httpx.Client, clip: bytes):
    body = {"command": "-stream_loop 500 -i {{in_1}} -c:v libx264 -preset veryslow {{out_1}}",
            "input_files": [_upload(client, clip)], "output_files": ["long.mp4"]}
    started = time.monotonic()
    r = client.post("/ffmpeg", json=body)
    job = wait_for(client, r.json()["job_id"], timeout=40)
    assert job["status"] == "failed" and job["error"].startswith("ProcessingError:"), job
    assert "time limit" in job["error"]
    assert time.monotonic() - started < 30
    assert not _ffmpeg_running("long.mp4")


def test_cancel_stops_a_running_command(client: httpx.Client, clip: bytes):
    body = {"command": "-stream_loop 500 -i {{in_1}} -c:v libx264 -preset veryslow {{out_1}}",
            "input_files": [_upload(client, clip)], "output_files": ["cancelme.mp4"]}
    job_id = client.post("/ffmpeg", json=body).json()["job_id"]
    wait_until(lambda: _ffmpeg_running("cancelme.mp4"), what="FFmpeg to start")
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    wait_until(lambda: not _ffmpeg_running("cancelme.mp4"), timeout=5, what="FFmpeg to be killed")
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_identical_media_job_is_a_cache_hit(client: httpx.Client, clip: bytes):
    body = {"video_url": _upload(client, clip), "every": 3}
    first = _job(client, "/ffmpeg/slice", body)
    r = client.post("/ffmpeg/slice", json=body)
    assert r.headers["X-Cache"] == "HIT" and r.json()["status"] == "completed"
    hit = r.json()
    segs, hit_segs = first["output"]["metadata"]["segments"], hit["output"]["metadata"]["segments"]
    assert len(hit_segs) == len(segs) == 2
    assert all(hit["job_id"] in s["url"] and first["job_id"] not in s["url"] for s in hit_segs)
    assert httpx.get(hit_segs[1]["url"]).content == httpx.get(segs[1]["url"]).content


def _ffmpeg_running(marker: str) -> bool:
    out = subprocess.run(["pgrep", "-f", f"ffmpeg.*{marker}"], capture_output=True, text=True).stdout
    return bool(out.strip())
