"""The contract over the whole catalog, through the real pipeline: every model x mode, with every
parameter the catalog allows for it set to realistic values (each of its aspect ratios and durations
at least once, the files that select the mode, the provider_options it requires), goes through the
API, the worker and the adapter to the provider's simulator, and must complete: no submission
refused by the simulator (which validates fal's inputs against fal's published schemas) and, for
fal, no user parameter landing in a field the endpoint does not have (the simulator lists those).

And the other side of the rule: a parameter a mode cannot honour is a 400 naming the field, before
any job exists.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from gengate.config.catalog import MODELS, ModelSpec
from tests.conftest import sim_requests, wait_for
from tests.test_api_errors import assert_error
from tests.test_fal_fidelity import FILES, user_requests

PATHS = {"image": "/image", "video": "/video", "speech": "/speech", "music": "/music",
         "transcription": "/transcription"}
# The simulators that validate against a vendored published schema and list the fields it lacks
# (PiAPI and Higgsfield publish none: config/schemas/<provider>/README.md).
VALIDATED = ("fal", "elevenlabs", "replicate")
USER_FIELDS = ("prompt", "text", "voice", "aspect_ratio", "duration", "language", "image_size", "video_size", "num_frames")


def requests_for(spec: ModelSpec, mode: str) -> list[dict[str, Any]]:
    """The request bodies a user may send for this model and mode."""
    if spec.capability == "speech":
        return [{"text": "Hello from the contract suite.", "voice": "rachel"}]
    if spec.capability == "music":
        return [{"prompt": "calm piano", "duration": 10}]
    bodies = []
    for params, options in user_requests(spec, mode):
        body = dict(params)
        if "files" in body:
            body["files"] = [{"url": url} for url in body["files"]]
        if options:
            body["provider_options"] = options
        bodies.append(body)
    return bodies


CASES = [(spec, mode) for spec in MODELS for mode in spec.modes]


@pytest.mark.parametrize("spec,mode", CASES, ids=[f"{s.name}:{m}" for s, m in CASES])
def test_every_model_and_mode_completes_as_sent(client: httpx.Client, sim: httpx.Client, files_url: str,
                                                spec: ModelSpec, mode: str):
    jobs = []
    for body in requests_for(spec, mode):
        marker = uuid.uuid4().hex
        body = {"model": f"{spec.provider}:{spec.name}", **body}
        for f in body.get("files", []):
            f["url"] = f["url"].replace("https://files.example.test", files_url)
        if "audio_url" in body:
            body["audio_url"] = body["audio_url"].replace("https://files.example.test", files_url)
        # the marker rides in the simulator's own knob object, which every simulator takes and ignores
        body["provider_options"] = {**body.get("provider_options", {}), "sim": {"marker": marker}}
        r = client.post(PATHS[spec.capability], json=body, headers={"Cache-Control": "no-store"})
        assert r.status_code == 202, (body, r.text)
        jobs.append((r.json()["job_id"], marker, body))
    for job_id, marker, body in jobs:
        job = wait_for(client, job_id, timeout=60)
        assert job["status"] == "completed", (body, job)
        if spec.provider in VALIDATED:
            (record,) = sim_requests(sim, marker, spec.provider)
            dropped = [f for f in record["unknown_fields"] if f in USER_FIELDS or f.endswith(("_url", "_urls"))]
            assert dropped == [], (body, record)


def _first(spec_name: str) -> ModelSpec:
    return next(s for s in MODELS if s.name == spec_name)


@pytest.mark.parametrize("path,body,field", [
    # the input image decides the shape: no aspect ratio on image-to-video
    ("/video", {"model": "kling-v3", "prompt": "x", "aspect_ratio": "16:9", "files": [{"url": FILES["image"]}]},
     "aspect_ratio"),
    ("/video", {"model": "wan-2.5", "prompt": "x", "aspect_ratio": "1:1", "files": [{"url": FILES["image"]}]},
     "aspect_ratio"),
    # minimax's video-01 and ltx-video take neither an aspect ratio nor a duration
    ("/video", {"model": "minimax", "prompt": "x", "duration": 5}, "duration"),
    ("/video", {"model": "ltx", "prompt": "x", "aspect_ratio": "16:9"}, "aspect_ratio"),
    # sora-2's ratios and durations are its own
    ("/video", {"model": "sora-2", "prompt": "x", "aspect_ratio": "1:1"}, "aspect_ratio"),
    ("/video", {"model": "sora-2", "prompt": "x", "duration": 5}, "duration"),
    # kling v2.1 master has no last-frame field: no keyframes
    ("/video", {"model": "kling-v2.1", "prompt": "x", "files": [{"url": FILES["image"]}, {"url": FILES["image"]}]},
     "files"),
    # sync-lipsync takes a video, omnihuman an image
    ("/video", {"model": "sync-v2", "prompt": "", "files": [{"url": FILES["image"]}, {"url": FILES["audio"]}]},
     "files"),
    ("/video", {"model": "omnihuman", "prompt": "", "files": [{"url": FILES["video"]}, {"url": FILES["audio"]}]},
     "files"),
    # endpoints without a prompt field
    ("/image", {"model": "seedvr", "prompt": "make it sharp", "files": [{"url": FILES["image"]}]}, "prompt"),
    ("/image", {"model": "phota/enhance", "prompt": "x", "files": [{"url": FILES["image"]}]}, "prompt"),
    # a remix needs the earlier Sora job it remixes
    ("/video", {"model": "sora-2-remix", "prompt": "anime style"}, "provider_options.video_id"),
])
def test_what_a_mode_cannot_honour_is_a_400_naming_the_field(client: httpx.Client, path: str, body: dict,
                                                             field: str):
    err = assert_error(client.post(path, json=body), 400, "ValidationError", field)
    assert body["model"] in err["message"]


def test_file_kinds_come_from_content_not_only_extensions(client: httpx.Client, files_url: str):
    """Signed and CDN URLs often have no extension: the kind comes from the answer's Content-Type,
    else its first bytes, before the mode is chosen; a file that says nothing is a 400 naming it."""
    video, audio = f"{files_url}/typed/video", f"{files_url}/octet/audio"  # Content-Type; bytes only
    r = client.post("/video", json={"model": "sync-v2", "prompt": "", "files": [{"url": audio}, {"url": video}]})
    assert r.status_code == 202, r.text
    assert wait_for(client, r.json()["job_id"], timeout=60)["status"] == "completed"
    r = client.post("/video", json={"model": "seedvr-video", "prompt": "", "files": [{"url": f"{files_url}/octet/video"}]})
    assert r.status_code == 202, r.text
    # an image without an extension selects image-to-video; a video there is refused
    r = client.post("/video", json={"model": "kling-v3", "prompt": "x", "files": [{"url": f"{files_url}/octet/image"}]})
    assert r.status_code == 202, r.text
    assert_error(client.post("/video", json={"model": "kling-v3", "prompt": "x",
                                             "files": [{"url": f"{files_url}/typed/video"}]}), 400,
                 "ValidationError", "files")
    err = assert_error(client.post("/video", json={"model": "seedvr-video", "prompt": "",
                                                   "files": [{"url": f"{files_url}/octet/unknown"}]}),
                       400, "ValidationError", "files")
    assert "files.0.url" in err["message"]
