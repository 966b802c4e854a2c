"""The catalog covers the spec, every row has an adapter, and its rules are enforced at the API."""

from __future__ import annotations

import httpx
import pytest

from gengate.adapters import get_adapter
from gengate.api.resolve import resolve
from gengate.config import catalog
from gengate.config.catalog import MODE_FILES, MODELS, PROVIDERS
from tests.spec_files import model_names
from tests.test_api_errors import assert_error


def test_every_model_of_the_spec_has_a_row():
    missing = sorted(model_names() - set(catalog.BY_NAME))
    assert missing == []


@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.name)
def test_every_row_resolves_to_an_adapter(spec):
    adapter = get_adapter(spec.provider)
    assert adapter.name == spec.provider
    assert spec.provider in PROVIDERS and spec.capability in catalog.CAPABILITIES
    assert spec.modes and all(mode in MODE_FILES for mode in spec.modes)
    assert all(spec.endpoints[m] for m in spec.modes) and spec.source and spec.price_cents > 0
    assert resolve(f"{spec.provider}:{spec.name}", spec.capability) is spec


V = "https://files.example.test/"


@pytest.mark.parametrize(
    "path,body,field,words",
    [
        ("/video", {"model": "seedance-2-preview", "prompt": "x", "duration": 8}, "duration", "5, 10, 15"),
        ("/video", {"model": "seedance-2-fast-preview", "prompt": "x", "duration": 20}, "duration", "5, 10, 15"),
        ("/video", {"model": "kling-v3", "prompt": "x", "duration": 2}, "duration", "3-15"),
        ("/video", {"model": "kling-v3-standard", "prompt": "x", "duration": 16}, "duration", "3-15"),
        ("/video", {"model": "wan-2.5", "prompt": "x", "files": [{"url": V + "a.jpg"}, {"url": V + "b.jpg"}]},
         "files", "wan-2.5 accepts"),
        ("/video", {"model": "sync-v2", "prompt": "", "files": [{"url": V + "a.mp4"}]}, "files", "audio"),
        ("/video", {"model": "sync-v2", "prompt": "", "files": [{"url": V + "a.mp4"}, {"url": V + "b.jpg"}]},
         "files", "audio"),
        ("/video", {"model": "seedvr-video", "prompt": "", "files": [{"url": V + "a.png"}]}, "files", ".mp4, .webm, .mov"),
        ("/video", {"model": "sora-2-remix", "prompt": "anime", "files": [{"url": V + "a.avi"}]}, "files",
         "accepts no files"),
        ("/video", {"model": "grok-imagine-edit", "prompt": "x"}, "files", "a video"),
        ("/image", {"model": "nano-banana-pro/edit", "prompt": "x"}, "files", "an image"),
        ("/image", {"model": "topaz", "prompt": "", "files": [{"url": V + "a.jpg"}, {"url": V + "b.jpg"}]},
         "files", "topaz accepts"),
        ("/image", {"model": "nano-banana-pro/edit", "prompt": "", "files": [{"url": V + "a.jpg"}]}, "prompt",
         "prompt is required"),
        ("/video", {"model": "kling-v3", "prompt": "", "files": [{"url": V + "a.jpg"}]}, "prompt", "required"),
        ("/image", {"model": "soul", "prompt": "x", "aspect_ratio": "2:1"}, "aspect_ratio", "21:9"),
        ("/video", {"model": "kling-v3", "prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio", "16:9"),
        ("/image", {"model": "sync-v2", "prompt": "x"}, "model", "/v1/video"),
        ("/video", {"model": "soul", "prompt": "x"}, "model", "/v1/image"),
        ("/speech", {"model": "music_v1", "text": "x"}, "model", "/v1/music"),
        ("/image", {"model": "fal:soul", "prompt": "x"}, "model", "higgsfield"),
        ("/music", {"model": "music_v1", "prompt": "x", "duration": 1}, "duration", "3-600"),
    ],
)
def test_catalog_rules_are_400_with_field(client: httpx.Client, path, body, field, words):
    err = assert_error(client.post(path, json=body), 400, "ValidationError", field)
    assert words in err["message"], err


@pytest.mark.parametrize("path,body", [
    ("/image", {"model": "seedvr", "prompt": "", "files": [{"url": V + "low.jpg"}]}),
    ("/video", {"model": "sync-v2", "prompt": "", "files": [{"url": V + "v.mp3"}, {"url": V + "t.mp4"}]}),
    ("/video", {"model": "omnihuman-v1.5", "prompt": "", "files": [{"url": V + "p.jpg"}, {"url": V + "s.wav"}]}),
    ("/video", {"model": "kling-v3", "prompt": "x", "duration": 15, "files": [{"url": V + "a.jpg"}, {"url": V + "b.jpg"}]}),
    ("/video", {"model": "piapi:seedance-2-preview", "prompt": "x", "duration": 10}),
    ("/image", {"model": "background-remover", "prompt": "", "files": [{"url": V + "cat.png"}]}),
])
def test_allowed_requests_are_accepted(client: httpx.Client, files_url: str, path, body):
    for f in body.get("files", []):
        f["url"] = f["url"].replace(V, files_url + "/")
    r = client.post(path, json=body)
    assert r.status_code == 202, r.text
    client.delete(f"/jobs/{r.json()['job_id']}")


def test_models_and_voices_endpoints(client: httpx.Client):
    models = client.get("/models").json()["models"]
    assert {m["name"] for m in models} == set(catalog.BY_NAME)
    videos = client.get("/models", params={"capability": "video"}).json()["models"]
    assert videos and all(m["capability"] == "video" for m in videos)
    kling = next(m for m in videos if m["name"] == "kling-v3")
    assert kling["provider"] == "fal" and kling["inputs"]["keyframes"] == ["image", "image"] and kling["price_cents"] > 0
    assert_error(client.get("/models", params={"capability": "smell"}), 400, "ValidationError", "capability")
    voices = client.get("/voices").json()["voices"]
    assert voices[0] == {"voice_id": "rachel", "name": "Rachel"} and len(voices) == 9


def test_models_gone_upstream_are_marked_and_every_row_names_its_source(client: httpx.Client):
    """A model whose endpoint fal's newest published types no longer list (or fal's public model
    list dropped) stays for compatibility, marked `delisted`; fal rows name the published types
    their ids were checked against."""
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    assert {name for name, m in models.items() if m["delisted"]} == {
        "sora-2", "sora-2-pro", "sora-2-remix", "whisper", "sima-video-upscaler", "topaz", "topaz-video"}
    for name, m in models.items():
        if m["provider"] == "fal":
            assert m["source"].startswith("fal-ai/fal-js endpoint types ("), name
        assert m["source"], name
    assert catalog.BY_NAME["sima-video-upscaler"].endpoints["video-upscale"] == "simalabs/sima-video-upscaler-lite"
