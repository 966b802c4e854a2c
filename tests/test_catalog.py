"""The catalog covers the spec, every row has an adapter, and its rules are enforced at the API."""

from __future__ import annotations

import uuid

import httpx
import pytest
import redis

from gengate.adapters import get_adapter
from gengate.adapters.elevenlabs import DEFAULT_MUSIC_SECONDS
from gengate.api.resolve import resolve
from gengate.api.submission import with_spec_defaults
from gengate.config import catalog
from gengate.config.catalog import MODE_FILES, MODELS, PRICE_UNITS, PROVIDERS, Pricing
from gengate.config.schemas import published
from gengate.jobs import keys
from tests.conftest import wait_for
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
    # the price of the default request (5 s) as before, and the unit price that prices any other
    assert kling["price_cents"] == 50
    assert kling["pricing"] == {"unit": "second", "cents": 10, "per": 1, "minimum_cents": 1, "default_units": 5}
    shown = {m["name"]: m for m in models}
    assert shown["eleven_v3"]["pricing"] == {"unit": "character", "cents": 10, "per": 1000, "minimum_cents": 3,
                                             "default_units": None}
    assert shown["music_v1"]["pricing"]["unit"] == "second" and shown["music_v1"]["price_cents"] == 10
    assert shown["flux-schnell"]["pricing"]["unit"] == "image" and shown["sync-v2"]["pricing"]["unit"] == "job"
    assert all(m["price_cents"] == catalog.BY_NAME[m["name"]].price_cents for m in models)
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


# -- Prices -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", MODELS, ids=lambda m: m.name)
def test_every_model_is_priced_by_what_its_provider_bills(spec):
    """A model whose request names a duration is priced per second of output, speech per character,
    an image model per image; flat per job only where nothing in the request measures the work."""
    p = spec.pricing
    assert p.unit in PRICE_UNITS and p.cents > 0 and p.per >= 1 and p.minimum_cents >= 1
    timed = {spec.parameters(mode)["duration"] for mode in spec.modes}
    if spec.capability == "speech":
        assert p.unit == "character" and p.default_units is None
    elif timed == {True}:
        assert p.unit == "second" and p.default_units and p.default_units > 0
    else:
        assert True not in timed, "a model priced per job or image whose modes take a duration"
        assert p.unit == ("image" if spec.capability == "image" and set(spec.modes) <= {"text-to-image", "edit"}
                          else "job")
        assert p.default_units == 1
    assert spec.price_cents == p.amount(p.default_units or 0) > 0


# The flat prices before unit pricing: each is still the price of the model's default request.
FLAT_PRICES = {"kling-v3": 50, "kling-v3-standard": 30, "seedance-2-preview": 60, "seedance-2-fast-preview": 35,
               "sora-2": 40, "sora-2-pro": 100, "wan-2.5": 25, "ltx-2-19b-distilled": 10, "grok-imagine": 30,
               "kling-v2.5": 35, "kling-v2.1": 60, "music_v1": 10, "eleven_v3": 3, "eleven_flash_v2_5": 2,
               "flux-schnell": 1, "nano-banana-pro": 15, "minimax": 25, "sync-v2": 20, "whisper": 1}


def test_todays_prices_are_the_default_requests():
    assert {name: catalog.BY_NAME[name].price_cents for name in FLAT_PRICES} == FLAT_PRICES


def test_a_job_costs_its_units_at_the_unit_price_rounded_up_to_the_next_cent():
    assert Pricing("second", 6).amount(3.3) == 20  # 19.8 -> 20: a fraction of a cent is never given away
    assert Pricing("second", 6).amount(5) == 30
    assert Pricing("second", 20, 60).amount(10) == 4  # 3.33 -> 4
    assert Pricing("second", 20, 60).amount(600) == 200
    assert Pricing("character", 10, 1000, 3).amount(2) == 3  # the minimum
    assert Pricing("character", 10, 1000, 3).amount(50_000) == 500
    assert Pricing("character", 10, 1000, 3).amount(30_001) == 301
    assert Pricing("second", 10).amount(0.1) == 1  # exact decimal arithmetic: 0.1 s is not 0.1000000000000000055
    kling = catalog.BY_NAME["kling-v3"]
    assert kling.price("text-to-video", {"duration": 15}) == 3 * kling.price("text-to-video", {"duration": 5}) == 150
    assert kling.price("keyframes", {}) == 50  # no duration: the default request's
    speech = catalog.BY_NAME["eleven_multilingual_v2"]
    assert speech.price("tts", {"text": "x" * 50_000}) == 500 and speech.price("tts", {"text": "hi"}) == 3
    assert catalog.BY_NAME["flux-pro"].price("text-to-image", {"num_images": 4}) == 4 * 5
    assert catalog.BY_NAME["sync-v2"].price("lipsync", {"duration": 60}) == 20


@pytest.mark.parametrize("spec", [s for s in MODELS if s.pricing.unit == "second"], ids=lambda m: m.name)
def test_the_default_duration_priced_is_the_one_made(spec):
    """A request without a duration is priced at the length it gets: the spec's 5 s where the gateway
    fills that in, else the provider's own default (fal's published schema, the music adapter's)."""
    for mode in spec.modes:
        params: dict = {}
        with_spec_defaults(spec, mode, params)
        if "duration" in params:
            made = params["duration"]
        elif spec.capability == "music":
            made = DEFAULT_MUSIC_SECONDS
        else:
            record = published(spec.provider, spec.endpoints[mode])
            assert record is not None, (spec.name, mode)
            made = float(record["input"]["properties"]["duration"]["default"])
        assert made == spec.pricing.default_units, (spec.name, mode)


def _hold(rds: redis.Redis, job_id: str) -> int:
    return int(rds.hget(keys.job(job_id), "hold_cents"))


def test_the_hold_and_charge_follow_the_request(client: httpx.Client, rds: redis.Redis):
    """The hold is the price of the request as validated (seconds asked for, characters sent), and
    what completes is charged exactly that in the usage records."""
    marker = uuid.uuid4().hex
    bodies = {
        "kling 5 s": ("/video", {"model": "kling-v3", "prompt": f"waves {marker}", "duration": 5}, 50),
        "kling 15 s": ("/video", {"model": "kling-v3", "prompt": f"waves {marker}", "duration": 15}, 150),
        "kling default": ("/video", {"model": "kling-v3", "prompt": f"cliffs {marker}"}, 50),
        "music 10 s": ("/music", {"model": "music_v1", "prompt": f"piano {marker}", "duration": 10}, 4),
        "music 600 s": ("/music", {"model": "music_v1", "prompt": f"piano {marker}", "duration": 600}, 200),
        "music default": ("/music", {"model": "music_v1", "prompt": f"drums {marker}"}, 10),
        "speech short": ("/speech", {"model": "eleven_flash_v2_5", "text": f"hi {marker}"}, 2),
        "speech 40k": ("/speech", {"model": "eleven_flash_v2_5", "text": ("word " * 8000)[:40_000 - len(marker)] + marker}, 200),
    }
    jobs = {}
    for what, (path, body, cents) in bodies.items():
        r = client.post(path, json=body, headers={"Cache-Control": "no-store"})
        assert r.status_code == 202, (what, r.text)
        jobs[what] = r.json()["job_id"]
        assert _hold(rds, jobs[what]) == cents, what
    for what, job_id in jobs.items():
        assert wait_for(client, job_id, timeout=60)["status"] == "completed", what
    charged = {r["job_id"]: r["cost_cents"] for r in client.get("/usage").json()["usage"]}
    assert {what: charged[job_id] for what, job_id in jobs.items()} == {w: b[2] for w, b in bodies.items()}
    assert charged[jobs["kling 15 s"]] == 3 * charged[jobs["kling 5 s"]]
    assert charged[jobs["music 600 s"]] > charged[jobs["music 10 s"]]
