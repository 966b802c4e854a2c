"""Several providers per public model, as catalog data (ALTERNATES in config/catalog.py): each route
on another provider has its own endpoint ids, payload mapping, vendored published schema and price.

Through the real pipeline (API -> worker -> official SDK -> simulator): a pinned request
(`replicate:flux-schnell`, `fal:eleven_v3`, ...) completes with an output of the right media type, and
the simulator's record of what it was sent carries the fields the provider's schema names. The
simulators refuse what the providers' published schemas refuse, in each provider's own error shape.
Without the pipeline: every route's payload, as its adapter builds it, is what its schema takes.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from gengate.adapters import fal as fal_adapter
from gengate.adapters import replicate as replicate_adapter
from gengate.adapters.base import ProviderRequest
from gengate.config import catalog
from gengate.config.catalog import ALTERNATES, ROUTES, route
from gengate.config.schemas import published
from gengate.sim.schema import unknown_fields, validate
from tests.conftest import sim_requests, wait_for

# model -> the providers it is routed to, in order (first: MODELS' row)
EXPECTED_ROUTES = {
    "flux-schnell": ("fal", "replicate"),
    "flux-dev": ("fal", "replicate"),
    "flux-pro": ("fal", "replicate"),
    "nano-banana-pro": ("fal", "replicate"),
    "nano-banana-pro/edit": ("fal", "replicate"),
    "kling-v2.1": ("fal", "replicate"),
    "eleven_v3": ("elevenlabs", "fal"),
    "eleven_multilingual_v2": ("elevenlabs", "fal"),
}
# left out for want of a published schema or a provider endpoint (config/schemas/replicate/README.md)
NOT_ROUTED = {"eleven_flash_v2_5": "fal", "eleven_turbo_v2": "fal"}
REPLICATE_ENDPOINTS = {
    "flux-schnell": "black-forest-labs/flux-schnell", "flux-dev": "black-forest-labs/flux-dev",
    "flux-pro": "black-forest-labs/flux-1.1-pro", "nano-banana-pro": "google/nano-banana-pro",
    "nano-banana-pro/edit": "google/nano-banana-pro",
}
# kling-v2.1 is Kling 2.1 Master (fal's v2.1/master); on Replicate its master tier, not kwaivgi/kling-v2.1
KLING_MASTER = "kwaivgi/kling-v2.1-master"
FAL_TTS = {"eleven_v3": "fal-ai/elevenlabs/tts/eleven-v3",
           "eleven_multilingual_v2": "fal-ai/elevenlabs/tts/multilingual-v2"}


# -- the data ---------------------------------------------------------------------------------------

def test_each_model_has_its_routes_in_order():
    for name, providers in EXPECTED_ROUTES.items():
        assert tuple(r.provider for r in ROUTES[name]) == providers, name
    for name, provider in NOT_ROUTED.items():
        assert route(name, provider) is None, (name, provider)
    assert {(a.name, a.provider) for a in ALTERNATES} == {(n, p[1]) for n, p in EXPECTED_ROUTES.items()}


def test_each_alternate_names_its_endpoints_price_and_pool():
    for name, endpoint in REPLICATE_ENDPOINTS.items():
        row = route(name, "replicate")
        assert set(row.endpoints.values()) == {endpoint}
        assert row.pricing.unit == "image" and row.pooled  # Replicate's official models bill per image
        assert row.source.startswith("replicate.com/" + endpoint)
    for name, endpoint in FAL_TTS.items():
        row = route(name, "fal")
        assert dict(row.endpoints) == {"tts": endpoint} and row.pooled
        assert row.pricing.unit == "character"  # fal bills ElevenLabs speech by characters
        assert row.max_text_chars == catalog.get(name).max_text_chars  # the same model behind it
    # nano-banana-pro on Replicate has both of fal's modes; the edit is the one endpoint, images in `image_input`
    assert route("nano-banana-pro", "replicate").modes == ("text-to-image", "edit")
    # Kling 2.1 Master on Replicate: text- and image-to-video on one model (no last-frame field: no
    # keyframes, as on fal), billed per second of output, 5 or 10 s
    kling = route("kling-v2.1", "replicate")
    assert dict(kling.endpoints) == {"text-to-video": KLING_MASTER, "image-to-video": KLING_MASTER}
    assert kling.modes == catalog.get("kling-v2.1").modes and kling.pooled
    assert kling.pricing.unit == "second" and kling.durations == (5, 10)
    assert kling.source.startswith("replicate.com/" + KLING_MASTER)


def test_every_alternate_has_a_vendored_published_schema():
    for row in ALTERNATES:
        for endpoint in set(row.endpoints.values()):
            record = published(row.provider, endpoint)
            assert record is not None and not record["delisted"], (row.name, row.provider, endpoint)


def _request(row: catalog.ModelSpec, mode: str, params: dict[str, Any], options: dict | None = None) -> ProviderRequest:
    return ProviderRequest(job_id="job_x", model=row.name, capability=row.capability, mode=mode,
                           endpoint=row.endpoints[mode], params=params, options=options or {})


def _build(row: catalog.ModelSpec, req: ProviderRequest) -> dict[str, Any]:
    return replicate_adapter.build_input(req) if row.provider == "replicate" else fal_adapter.payload(req)


def _user_requests(row: catalog.ModelSpec, mode: str) -> list[dict[str, Any]]:
    """What a user may send in this mode: every aspect ratio it takes, its files, a prompt or a text."""
    if row.capability == "speech":
        return [{"text": "Hello there", "voice": voice} for voice in ("rachel", "adam", "josh")]
    rules = row.parameters(mode)
    files = ["https://files.example/cat_320x240.png" for _ in row.kinds(mode)]
    base: dict[str, Any] = {"prompt": "a red fox", **({"files": files} if files else {})}
    timed = [{**base, "duration": d} for d in rules["durations"]] if rules["duration"] else []
    return [base] + [{**base, "aspect_ratio": r} for r in rules["aspect_ratios"]] + timed


@pytest.mark.parametrize("row", ALTERNATES, ids=lambda r: f"{r.provider}:{r.name}")
def test_every_alternate_payload_is_what_its_schema_takes(row: catalog.ModelSpec):
    for mode in row.modes:
        schema = published(row.provider, row.endpoints[mode])["input"]
        for params in _user_requests(row, mode):
            body = _build(row, _request(row, mode, params))
            assert validate(schema, body) == [], (mode, body)
            assert unknown_fields(schema, body) == [], (mode, body)  # nothing sent to a field it lacks
            sent = str(body)
            for name, value in params.items():  # and nothing the user set was left out
                for v in value if isinstance(value, list) else [value]:
                    assert str(v) in sent or (name == "voice" and v.capitalize() in sent), (mode, name, body)


def test_replicate_payloads_use_each_models_own_fields():
    flux = route("flux-schnell", "replicate")
    assert _build(flux, _request(flux, "text-to-image", {"prompt": "p", "aspect_ratio": "16:9"})) == {
        "prompt": "p", "aspect_ratio": "16:9", "num_outputs": 1}
    pro = route("flux-pro", "replicate")
    assert _build(pro, _request(pro, "text-to-image", {"prompt": "p", "aspect_ratio": "3:4"})) == {
        "prompt": "p", "aspect_ratio": "3:4"}
    nano = route("nano-banana-pro", "replicate")
    assert _build(nano, _request(nano, "edit", {"prompt": "p", "files": ["https://x/a.png"]})) == {
        "prompt": "p", "image_input": ["https://x/a.png"]}
    kling = route("kling-v2.1", "replicate")
    assert _build(kling, _request(kling, "text-to-video", {"prompt": "p", "aspect_ratio": "9:16", "duration": 10})) == {
        "prompt": "p", "aspect_ratio": "9:16", "duration": 10}  # an integer, as the schema's enum
    assert _build(kling, _request(kling, "image-to-video", {"prompt": "p", "files": ["https://x/a.png"],
                                                            "duration": 5})) == {
        "prompt": "p", "start_image": "https://x/a.png", "duration": 5}
    # the image count and the resolution are billed: not settable through provider_options
    assert "num_outputs" in flux.protected_options("text-to-image")
    assert "resolution" in nano.protected_options("edit")


def test_fal_speech_payload_sends_the_voice_by_name():
    row = route("eleven_v3", "fal")
    assert _build(row, _request(row, "tts", {"text": "Hi", "voice": "rachel"})) == {"text": "Hi", "voice": "Rachel"}
    assert "text" in row.protected_options("tts")  # speech is priced by its characters


# -- through the pipeline ---------------------------------------------------------------------------

def _replicate_record(sim: httpx.Client, marker: str) -> dict:
    """The Replicate simulator's record of the one prediction carrying `marker`, its `input` the
    prediction's input (the record's own `input` is the whole request body)."""
    found = sim_requests(sim, marker, "replicate")
    assert len(found) == 1, found
    return {**found[0], "input": found[0]["input"]["input"]}


IMAGE_CASES = [
    # (model, body beyond model/prompt, the endpoint the sim saw, fields its record must carry)
    ("flux-schnell", {"aspect_ratio": "16:9"}, "black-forest-labs/flux-schnell",
     {"aspect_ratio": "16:9", "num_outputs": 1}),
    ("flux-dev", {"aspect_ratio": "9:16"}, "black-forest-labs/flux-dev", {"aspect_ratio": "9:16", "num_outputs": 1}),
    ("flux-pro", {"aspect_ratio": "4:3"}, "black-forest-labs/flux-1.1-pro", {"aspect_ratio": "4:3"}),
    ("nano-banana-pro", {}, "google/nano-banana-pro", {"aspect_ratio": "1:1"}),  # the spec's default ratio
]


@pytest.mark.parametrize("name,extra,endpoint,fields", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_pinned_replicate_text_to_image_completes(client: httpx.Client, sim: httpx.Client, name: str, extra: dict,
                                                  endpoint: str, fields: dict):
    marker = uuid.uuid4().hex
    r = client.post("/image", json={"model": f"replicate:{name}", "prompt": f"a fox {marker}", **extra})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"].startswith("image/")
    assert httpx.get(job["output"]["url"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    record = _replicate_record(sim, marker)
    assert record["model"] == endpoint
    assert record["input"]["prompt"] == f"a fox {marker}"
    assert {k: record["input"].get(k) for k in fields} == fields
    assert "image_input" not in record["input"] and record["unknown_fields"] == []


@pytest.mark.parametrize("name", ["nano-banana-pro", "nano-banana-pro/edit"])
def test_pinned_replicate_edit_sends_the_image_in_image_input(client: httpx.Client, sim: httpx.Client,
                                                              files_url: str, name: str):
    marker = uuid.uuid4().hex
    r = client.post("/image", json={"model": f"replicate:{name}", "prompt": f"make it blue {marker}",
                                    "files": [{"url": f"{files_url}/cat.png"}]})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"].startswith("image/")
    record = _replicate_record(sim, marker)
    assert record["model"] == "google/nano-banana-pro"
    images = record["input"]["image_input"]
    assert isinstance(images, list) and len(images) == 1 and images[0].startswith("http")
    assert "aspect_ratio" not in record["input"]  # the input image decides (the model's match_input_image)


def test_pinned_replicate_kling_text_to_video_completes_with_an_mp4(client: httpx.Client, sim: httpx.Client):
    marker = uuid.uuid4().hex
    r = client.post("/video", json={"model": "replicate:kling-v2.1", "prompt": f"a fox runs {marker}",
                                    "aspect_ratio": "9:16", "duration": 10})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "video/mp4"
    assert httpx.get(job["output"]["url"]).content[4:8] == b"ftyp"
    record = _replicate_record(sim, marker)
    assert record["model"] == KLING_MASTER and record["version"].startswith("dp-")  # the models endpoint
    assert record["input"] == {"prompt": f"a fox runs {marker}", "aspect_ratio": "9:16", "duration": 10}
    assert record["unknown_fields"] == []


def test_pinned_replicate_kling_image_to_video_sends_start_image(client: httpx.Client, sim: httpx.Client,
                                                                files_url: str):
    marker = uuid.uuid4().hex
    r = client.post("/video", json={"model": "replicate:kling-v2.1", "prompt": f"it turns {marker}",
                                    "files": [{"url": f"{files_url}/cat.png"}]})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "video/mp4"
    record = _replicate_record(sim, marker)
    assert record["model"] == KLING_MASTER
    assert record["input"]["start_image"].startswith("http")
    # the spec's default 5 s, sent as the integer the schema takes; no aspect ratio (the image decides)
    assert record["input"]["duration"] == 5 and "aspect_ratio" not in record["input"]


def test_pinned_replicate_kling_refused_by_its_schema_fails_the_job(client: httpx.Client, sim: httpx.Client):
    marker = uuid.uuid4().hex
    r = client.post("/video", json={"model": "replicate:kling-v2.1", "prompt": f"x {marker}",
                                    "provider_options": {"negative_prompt": 3}})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=60)
    assert job["status"] == "failed" and "negative_prompt" in str(job), job  # Replicate's 422 names it
    assert sim_requests(sim, marker, "replicate") == []


@pytest.mark.parametrize("name,endpoint", sorted(FAL_TTS.items()))
def test_pinned_fal_speech_completes(client: httpx.Client, sim: httpx.Client, name: str, endpoint: str):
    marker = uuid.uuid4().hex
    r = client.post("/speech", json={"model": f"fal:{name}", "text": f"Hello {marker}", "voice": "adam"})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "audio/mpeg"
    assert len(httpx.get(job["output"]["url"]).content) > 0
    found = sim_requests(sim, marker, "fal")
    assert len(found) == 1, found
    assert found[0]["app_id"] == endpoint
    assert found[0]["input"] == {"text": f"Hello {marker}", "voice": "Adam"}
    assert found[0]["unknown_fields"] == []


def test_models_lists_both_providers_with_prices(client: httpx.Client):
    models = {m["name"]: m for m in client.get("/models").json()["models"]}
    for name, providers in EXPECTED_ROUTES.items():
        listed = models[name]["providers"]
        assert [p["provider"] for p in listed] == list(providers), name
        for entry in listed:
            row = route(name, entry["provider"])
            assert entry["endpoints"] == dict(row.endpoints)
            assert entry["price_cents"] == row.price_cents > 0
            assert entry["pricing"] == row.pricing.public() and entry["pooled"] is True
    assert [p["provider"] for p in models["eleven_flash_v2_5"]["providers"]] == ["elevenlabs"]


@pytest.mark.parametrize(("model", "option", "value"), [
    ("replicate:flux-schnell", "num_outputs", 4),
    ("replicate:nano-banana-pro", "resolution", "4K"),
    ("fal:nano-banana-pro", "resolution", "4K"),  # billed twice the 1K/2K price on fal too
])
def test_a_billed_field_in_provider_options_is_refused(client: httpx.Client, model: str, option: str, value):
    r = client.post("/image", json={"model": model, "prompt": "x", "provider_options": {option: value}})
    assert r.status_code == 400 and r.json()["field"] == f"provider_options.{option}", r.text


def test_what_the_schema_refuses_fails_the_job_at_the_provider(client: httpx.Client, sim: httpx.Client):
    """An option the provider's published schema refuses reaches the simulator, which refuses it as
    Replicate does (422, nothing created): the job fails, nothing was run."""
    marker = uuid.uuid4().hex
    r = client.post("/image", json={"model": "replicate:flux-schnell", "prompt": f"x {marker}",
                                    "provider_options": {"output_format": "gif"}})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=60)
    assert job["status"] == "failed", job
    assert "output_format" in str(job), job  # Replicate's 422 names the field
    assert sim_requests(sim, marker, "replicate") == []


# -- the simulators refuse what the providers refuse --------------------------------------------------

def _replicate_create(sim_url: str, model: str, inp: dict) -> httpx.Response:
    return httpx.post(f"{sim_url}/replicate/v1/models/{model}/predictions", json={"input": inp},
                      headers={"Authorization": "Bearer r8_routes_test"}, timeout=10)


REPLICATE_REFUSALS = [
    ("black-forest-labs/flux-schnell", {"prompt": "x", "num_outputs": 5}, "number_lte", "input.num_outputs",
     "Must be less than or equal to 4"),
    ("black-forest-labs/flux-schnell", {"prompt": "x", "num_inference_steps": 0}, "number_gte",
     "input.num_inference_steps", "Must be greater than or equal to 1"),
    ("black-forest-labs/flux-dev", {"prompt": "x", "aspect_ratio": "7:5"}, "enum", "input.aspect_ratio", None),
    ("black-forest-labs/flux-1.1-pro", {"aspect_ratio": "1:1"}, "required", "input", "prompt is required"),
    ("black-forest-labs/flux-1.1-pro", {"prompt": "x", "safety_tolerance": 7}, "number_lte",
     "input.safety_tolerance", "Must be less than or equal to 6"),
    ("google/nano-banana-pro", {"prompt": "x", "image_input": ["not a url"]}, "format", "input.image_input.0",
     "Does not match format 'uri'"),
    ("google/nano-banana-pro", {"prompt": "x", "image_input": "https://x/a.png"}, "invalid_type",
     "input.image_input", "Invalid type. Expected: array, given: string"),
    ("google/nano-banana-pro", {"prompt": "x", "resolution": "8K"}, "enum", "input.resolution", None),
    (KLING_MASTER, {"prompt": "x", "duration": 7}, "enum", "input.duration",
     "duration must be one of the following: 5, 10"),
    (KLING_MASTER, {"duration": 5}, "required", "input", "prompt is required"),
    (KLING_MASTER, {"prompt": "x", "start_image": "not a url"}, "format", "input.start_image",
     "Does not match format 'uri'"),
]


@pytest.mark.parametrize("model,inp,kind,field,description", REPLICATE_REFUSALS,
                         ids=[f"{m}:{k}" for m, _, k, _, _ in REPLICATE_REFUSALS])
def test_replicate_sim_refuses_what_the_schema_refuses(sim_url: str, sim: httpx.Client, model: str, inp: dict,
                                                       kind: str, field: str, description: str | None):
    marker = uuid.uuid4().hex
    r = _replicate_create(sim_url, model, {**inp, "seed": 1, "marker": marker})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["title"] == "Input validation failed" and body["status"] == 422
    problem = next(f for f in body["invalid_fields"] if f["field"] == field)
    assert problem["type"] == kind
    if description is not None:
        assert problem["description"] == description
    assert f"- {field}: " in body["detail"]
    assert sim_requests(sim, marker, "replicate") == []  # nothing created


def test_replicate_sim_serves_official_models_with_their_output_shapes(sim_url: str):
    """`POST /v1/models/{owner}/{name}/predictions`: 201, the prediction `starting`, version a `dp-` id;
    once done, flux-schnell answers a list of URIs and flux-1.1-pro one URI, as published."""
    shapes = {}
    for model in ("black-forest-labs/flux-schnell", "black-forest-labs/flux-1.1-pro"):
        r = _replicate_create(sim_url, model, {"prompt": "x"})
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["status"] == "starting" and created["model"] == model
        assert created["version"].startswith("dp-")
        done = httpx.get(created["urls"]["get"], headers={"Authorization": "Bearer r8_routes_test"}).json()
        assert done["status"] == "succeeded"
        shapes[model] = done["output"]
    assert isinstance(shapes["black-forest-labs/flux-schnell"], list)
    assert isinstance(shapes["black-forest-labs/flux-1.1-pro"], str)
    video = _replicate_create(sim_url, KLING_MASTER, {"prompt": "x", "duration": 5})
    assert video.status_code == 201, video.text
    done = httpx.get(video.json()["urls"]["get"], headers={"Authorization": "Bearer r8_routes_test"}).json()
    assert isinstance(done["output"], str) and done["output"].endswith(".mp4")  # one URI, as published


def test_fal_sim_refuses_a_speech_request_without_text(sim_url: str):
    r = httpx.post(f"{sim_url}/fal/fal-ai/elevenlabs/tts/eleven-v3", json={"voice": "Rachel"},
                   headers={"Authorization": "Key routes:test"}, timeout=10)
    assert r.status_code == 422, r.text
    assert {"loc": ["body", "text"], "msg": "Field required", "type": "missing"} in r.json()["detail"]
    bad = httpx.post(f"{sim_url}/fal/fal-ai/elevenlabs/tts/multilingual-v2", json={"text": "x", "voice": 3},
                     headers={"Authorization": "Key routes:test"}, timeout=10)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "voice"]
