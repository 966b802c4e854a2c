"""Any endpoint by id (passthrough): `fal:<endpoint id>` and `replicate:<owner>/<model>[:<version>]`
reach models outside the catalog, through the real pipeline (API -> worker -> official SDK ->
simulator, which validates each request against the endpoint's vendored published schema).

The endpoints used: fal's `fal-ai/elevenlabs/tts/turbo-v2.5` (speech; vendored, used by no catalog row)
and `fal-ai/topaz/upscale/image` (image from an image; the catalog's `topaz` uses it under its own name,
never by this id); Replicate's `black-forest-labs/flux-schnell` pinned to version c846a699… (the version
whose published schema is vendored, config/schemas/replicate/README.md) and `851-labs/background-remover`
(image from an image); `bytedance/sdxl-lightning-4step` (text to image, vendored for this module only:
no catalog row uses it). A second API process of this module prices some of them
(GENGATE_PASSTHROUGH_PRICES) and shares the session's Redis, worker and simulators; the session's own
API prices none, so there every passthrough is BYOK only.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gengate.adapters.base import Output, ProviderRequest, find_output, passthrough_input
from gengate.config.catalog import PASSTHROUGH, PASSTHROUGH_IDS
from gengate.jobs import keys
from gengate.jobs.apikeys import create_account, create_key
from tests.conftest import running_api, sim_requests, wait_for, wait_until

TTS = "fal-ai/elevenlabs/tts/turbo-v2.5"
TOPAZ = "fal-ai/topaz/upscale/image"
# black-forest-labs/flux-schnell's version whose input schema is vendored (its `source`, the version page)
FLUX_VERSION = "c846a69991daf4c0e5d016514849d14ee5b2e6846ce6b9d6f21369e564cfe51e"
REMOVER = "851-labs/background-remover"
# a community model no catalog row uses, vendored from its version page (config/schemas/replicate/README.md)
SDXL = "bytedance/sdxl-lightning-4step"
SDXL_VERSION = "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637"
PRICES = {f"fal:{TTS}": 3, f"fal:{TOPAZ}": 7, "replicate:*": 5, f"replicate:{SDXL}": 2}


@pytest.fixture(scope="module")
def priced_api(env: dict[str, str], data_dir: Path, api_url: str) -> Iterator[str]:
    """A second API with passthrough prices: the same Redis, data dir and public URL as the session's,
    so the session's worker runs its jobs."""
    priced = {**env, "GENGATE_PASSTHROUGH_PRICES": json.dumps(PRICES), "GENGATE_PUBLIC_URL": api_url}
    with running_api(priced, data_dir / "api-passthrough.log") as base:
        yield base


class Account:
    def __init__(self, rds: redis.Redis, base: str) -> None:
        self.rds, self.id = rds, create_account(rds, email="passthrough@example.com")
        self.http = httpx.Client(base_url=f"{base}/v1", headers={"Authorization": f"Bearer {create_key(rds, self.id)}"},
                                 timeout=10)

    def ledger(self, job_id: str) -> dict[str, int]:
        """kind -> cents of the job's ledger entries (hold, capture, release)."""
        entries = [e for _, e in self.rds.xrange(keys.account_ledger(self.id)) if e[b"job"].decode() == job_id]
        return {e[b"kind"].decode(): int(e[b"cents"]) for e in entries}


@pytest.fixture
def priced(priced_api: str, rds: redis.Redis, worker) -> Iterator[Account]:
    account = Account(rds, priced_api)
    yield account
    account.http.close()


@pytest.fixture
def unpriced(api_url: str, rds: redis.Redis, worker) -> Iterator[Account]:
    account = Account(rds, api_url)
    yield account
    account.http.close()


def _created(r: httpx.Response) -> str:
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def _record(sim: httpx.Client, marker: str, provider: str) -> dict:
    found = sim_requests(sim, marker, provider)
    assert len(found) == 1, found
    if provider == "replicate":  # the record's `input` is the whole body; the prediction's input is in it
        return {**found[0], "body": found[0]["input"], "input": found[0]["input"]["input"]}
    return found[0]


# -- through the pipeline: priced -----------------------------------------------------------------------

def test_fal_speech_endpoint_by_id(priced: Account, sim: httpx.Client):
    """The text goes in `text` (the endpoint's schema), provider_options as they are; the audio is found
    by its media type; the set price is held, then captured."""
    m = uuid.uuid4().hex
    r = priced.http.post("/speech", json={"model": f"fal:{TTS}", "text": f"Hello {m}",
                                          "provider_options": {"voice": "Adam", "stability": 0.4}})
    job_id = _created(r)
    assert r.json()["model"] == f"fal:{TTS}"
    job = wait_for(priced.http, job_id, timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "audio/mpeg"
    assert len(httpx.get(job["output"]["url"]).content) > 0
    record = _record(sim, m, "fal")
    assert record["app_id"] == TTS
    assert record["input"] == {"text": f"Hello {m}", "voice": "Adam", "stability": 0.4}
    assert record["unknown_fields"] == []
    detail = priced.http.get(f"/jobs/{job_id}").json()
    assert (detail["mode"], detail["provider"], detail["byok"]) == (PASSTHROUGH, "fal", False)
    assert detail["price_cents"] == detail["charged_cents"] == 3
    assert detail["request"]["provider_fields"] == {"text": "text"}
    assert "voice" not in detail["request"]  # speech's default voice is not the caller's: not sent
    assert priced.ledger(job_id) == {"hold": 3, "capture": 3}


def test_fal_image_endpoint_by_id_takes_the_file_where_its_schema_says(priced: Account, sim: httpx.Client,
                                                                       files_url: str):
    m = uuid.uuid4().hex
    image = f"{files_url}/cat.png?v={m}"
    job_id = _created(priced.http.post("/image", json={"model": f"fal:{TOPAZ}", "prompt": "", "files": [{"url": image}],
                                                        "provider_options": {"model": "CGI"}}))
    job = wait_for(priced.http, job_id, timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "image/png"
    record = _record(sim, m, "fal")
    assert record["app_id"] == TOPAZ
    assert record["input"] == {"image_url": image, "model": "CGI"}
    assert priced.ledger(job_id) == {"hold": 7, "capture": 7}


def test_replicate_version_pinned_model_by_id(priced: Account, sim: httpx.Client):
    """The prediction is created for the version (POST /v1/predictions), which the simulator knows as
    flux-schnell's and checks against its published schema; the price is `replicate:*`'s."""
    m = uuid.uuid4().hex
    job_id = _created(priced.http.post("/image", json={
        "model": f"replicate:black-forest-labs/flux-schnell:{FLUX_VERSION}", "prompt": f"a fox {m}",
        "provider_options": {"go_fast": False, "output_format": "png"}}))
    job = wait_for(priced.http, job_id, timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "image/png"
    assert httpx.get(job["output"]["url"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    record = _record(sim, m, "replicate")
    assert (record["model"], record["version"]) == ("black-forest-labs/flux-schnell", FLUX_VERSION)
    assert record["body"]["version"] == FLUX_VERSION
    assert record["input"] == {"prompt": f"a fox {m}", "go_fast": False, "output_format": "png"}
    assert record["unknown_fields"] == []
    assert priced.ledger(job_id) == {"hold": 5, "capture": 5}


def test_replicate_model_by_id_takes_the_file_where_its_schema_says(priced: Account, sim: httpx.Client,
                                                                    files_url: str):
    m = uuid.uuid4().hex
    image = f"{files_url}/cat.png?v={m}"
    job_id = _created(priced.http.post("/image", json={"model": f"replicate:{REMOVER}", "prompt": "",
                                                        "files": [{"url": image}]}))
    job = wait_for(priced.http, job_id, timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "image/png"
    record = _record(sim, m, "replicate")
    assert record["model"] == REMOVER and record["input"] == {"image": image}


def test_replicate_model_outside_the_catalog_by_id(priced: Account, sim: httpx.Client):
    """A model no catalog row uses: the prompt goes to its schema's `prompt`, provider_options as they
    are; the version-pinned id is priced by its model's entry (no entry for the version itself)."""
    m = uuid.uuid4().hex
    options = {"num_inference_steps": 6, "scheduler": "DPM++2MSDE", "width": 768, "height": 512}
    job_id = _created(priced.http.post("/image", json={
        "model": f"replicate:{SDXL}:{SDXL_VERSION}", "prompt": f"a lighthouse {m}", "provider_options": options}))
    job = wait_for(priced.http, job_id, timeout=60)
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "image/png"
    assert httpx.get(job["output"]["url"]).content[:8] == b"\x89PNG\r\n\x1a\n"
    record = _record(sim, m, "replicate")
    assert (record["model"], record["version"]) == (SDXL, SDXL_VERSION)  # the sim knows the version's model
    assert record["input"] == {"prompt": f"a lighthouse {m}", **options}
    assert record["unknown_fields"] == []
    detail = priced.http.get(f"/jobs/{job_id}").json()
    assert (detail["mode"], detail["provider"]) == (PASSTHROUGH, "replicate")
    assert detail["request"]["provider_fields"] == {"prompt": "prompt"}
    assert priced.ledger(job_id) == {"hold": 2, "capture": 2}


@pytest.mark.parametrize("options,field", [({"num_inference_steps": 11}, "num_inference_steps"),  # max 10
                                           ({"scheduler": "EULER"}, "scheduler")])  # not in its enum
def test_replicate_model_outside_the_catalog_refused_by_its_schema(priced: Account, sim: httpx.Client,
                                                                   options: dict, field: str):
    """Replicate's 422 (the simulator validates against the vendored schema): the job fails naming the
    field, nothing was created, the hold is released."""
    m = uuid.uuid4().hex
    job_id = _created(priced.http.post("/image", json={"model": f"replicate:{SDXL}", "prompt": f"x {m}",
                                                        "provider_options": options}))
    job = wait_for(priced.http, job_id, timeout=60)
    assert job["status"] == "failed" and field in job["error"], job
    assert sim_requests(sim, m, "replicate") == []
    assert priced.ledger(job_id) == {"hold": 2, "release": 2}


def test_what_the_providers_schema_refuses_fails_the_job_and_releases_the_hold(priced: Account, sim: httpx.Client):
    m = uuid.uuid4().hex
    job_id = _created(priced.http.post("/image", json={
        "model": "replicate:black-forest-labs/flux-schnell", "prompt": f"x {m}",
        "provider_options": {"output_format": "gif"}}))
    job = wait_for(priced.http, job_id, timeout=60)
    assert job["status"] == "failed" and "output_format" in job["error"], job  # Replicate's 422 names it
    assert sim_requests(sim, m, "replicate") == []
    assert priced.ledger(job_id) == {"hold": 5, "release": 5}


def test_an_unknown_endpoint_is_the_providers_404(priced: Account):
    r = priced.http.post("/image", json={"model": "fal:fal-ai/no-such-endpoint", "prompt": "x"},
                         headers={"X-Provider-Key-Fal": "byok-fal-key"})
    job = wait_for(priced.http, _created(r), timeout=60)
    assert job["status"] == "failed" and "not found" in job["error"], job


def test_a_result_without_the_capabilitys_media_fails_saying_so(priced: Account):
    """The simulator answers images (its `output` knob) where speech was asked: no audio in the result."""
    m = uuid.uuid4().hex
    job_id = _created(priced.http.post("/speech", json={"model": f"fal:{TTS}", "text": f"Hi {m}",
                                                        "provider_options": {"sim": {"output": "image"}}}))
    job = wait_for(priced.http, job_id, timeout=60)
    assert job["status"] == "failed", job
    assert "no speech output" in job["error"], job
    assert priced.ledger(job_id) == {"hold": 3, "release": 3}


def test_an_identical_request_is_a_cache_hit(priced: Account, sim: httpx.Client):
    """The key covers the endpoint id and provider_options: the same request hits, other options miss."""
    m = uuid.uuid4().hex
    body = {"model": f"fal:{TTS}", "text": f"Cached {m}", "provider_options": {"speed": 1.1}}
    first = wait_for(priced.http, _created(priced.http.post("/speech", json=body)), timeout=60)
    assert first["status"] == "completed", first
    again = priced.http.post("/speech", json=body)
    assert again.status_code == 202 and again.headers["X-Cache"] == "HIT", again.text
    assert again.json()["status"] == "completed"
    hit = priced.http.get(f"/jobs/{again.json()['job_id']}").json()
    assert hit["cache"]["hit"] is True and hit["charged_cents"] in (0, None) and hit["price_cents"] == 0
    other = priced.http.post("/speech", json={**body, "provider_options": {"speed": 1.2}})
    assert other.status_code == 202 and other.headers["X-Cache"] == "MISS", other.text
    assert wait_for(priced.http, other.json()["job_id"], timeout=60)["status"] == "completed"
    assert len(sim_requests(sim, m, "fal")) == 2  # the hit called no provider


def test_cancel_of_a_running_job_reaches_the_provider(priced: Account, sim: httpx.Client):
    m = uuid.uuid4().hex
    job_id = _created(priced.http.post("/speech", json={"model": f"fal:{TTS}", "text": f"Slow {m}",
                                                        "provider_options": {"sim": {"latency": 5}}}))
    wait_until(lambda: sim_requests(sim, m, "fal"), what="the submission")
    wait_until(lambda: priced.http.get(f"/jobs/{job_id}").json()["attempts"], what="the job's attempt")
    assert priced.http.delete(f"/jobs/{job_id}").status_code == 204
    assert priced.http.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    wait_until(lambda: _record(sim, m, "fal")["cancelled"], what="the provider's cancel")
    # running at fal when cancelled: its runner had started, so the price is captured (README, Cancelling)
    assert wait_until(lambda: priced.ledger(job_id).get("capture"), what="the settlement") == 3


class _Hooks(http.server.BaseHTTPRequestHandler):
    calls: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[str, list]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}/hook", _Hooks.calls
    server.shutdown()


def test_a_webhook_is_delivered(priced: Account, hooks: tuple[str, list]):
    url, calls = hooks
    job_id = _created(priced.http.post("/speech", json={"model": f"fal:{TTS}", "text": f"Hook {uuid.uuid4().hex}",
                                                        "webhook_url": url}))
    assert wait_for(priced.http, job_id, timeout=60)["status"] == "completed"
    headers, body = wait_until(lambda: next((c for c in calls if job_id.encode() in c[1]), None),
                               what="the webhook delivery")
    payload = json.loads(body)
    assert (payload["event"], payload["status"], payload["model"]) == ("completed", "completed", f"fal:{TTS}")
    assert {k.lower() for k in headers} >= {"webhook-id", "webhook-timestamp", "webhook-signature"}


# -- without a price: BYOK only ---------------------------------------------------------------------------

def test_without_a_price_the_pooled_key_is_refused_and_byok_runs_free(unpriced: Account, sim: httpx.Client):
    m = uuid.uuid4().hex
    body = {"model": f"fal:{TTS}", "text": f"Own key {m}"}
    refused = unpriced.http.post("/speech", json=body)
    assert refused.status_code == 400, refused.text
    error = refused.json()
    assert error["field"] == "X-Provider-Key-Fal" and "GENGATE_PASSTHROUGH_PRICES" in error["message"], error
    assert sim_requests(sim, m, "fal") == []
    job_id = _created(unpriced.http.post("/speech", json=body, headers={"X-Provider-Key-Fal": "byok-key-7f3a"}))
    job = wait_for(unpriced.http, job_id, timeout=60)
    assert job["status"] == "completed", job
    detail = unpriced.http.get(f"/jobs/{job_id}").json()
    assert detail["byok"] is True and detail["price_cents"] == 0
    assert _record(sim, m, "fal")["key_suffix"] == "7f3a"  # the caller's key, not the pooled one
    assert unpriced.ledger(job_id) == {}


# -- refused before any job ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["fal:justone", "fal:fal-ai/../x", "fal:fal-ai//x", "fal:fal-ai/x?y=1",
                                   "replicate:a/b/c", "replicate:a/b:1234", f"replicate:a/b:{'A' * 64}",
                                   "piapi:owner/model", "elsewhere:owner/model"])
def test_a_malformed_id_is_a_400_on_model(unpriced: Account, model: str):
    r = unpriced.http.post("/image", json={"model": model, "prompt": "x"})
    assert r.status_code == 400 and r.json()["field"] == "model", r.text


def test_a_catalog_name_keeps_meaning_the_catalog_model(unpriced: Account):
    r = unpriced.http.post("/image", json={"model": "replicate:phota/edit", "prompt": "x"})
    assert r.status_code == 400 and "is served by 'fal'" in r.json()["message"], r.text


@pytest.mark.parametrize("path,body,field", [
    ("/image", {"model": f"fal:{TOPAZ}", "prompt": "", "aspect_ratio": "16:9"}, "aspect_ratio"),
    ("/speech", {"model": f"fal:{TTS}", "text": "x", "voice": "adam"}, "voice"),
    ("/speech", {"model": f"fal:{TTS}", "text": "x", "provider_options": {"text": "y"}}, "provider_options.text"),
    ("/image", {"model": "fal:fal-ai/aura-sr", "prompt": "sharper"}, "prompt"),  # its schema has no prompt
    ("/image", {"model": "replicate:someone/unvendored", "prompt": "x",
                "files": [{"url": "http://localhost:1/a.png"}]}, "files"),
    ("/image", {"model": f"fal:{TTS}", "prompt": "x", "provider_order": ["fal"]}, "provider_order"),
])
def test_what_the_gateway_cannot_map_is_a_400(priced: Account, path: str, body: dict, field: str):
    r = priced.http.post(path, json=body)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def test_the_openapi_document_declares_the_ids_it_accepts(unpriced: Account, api_url: str):
    model = httpx.get(f"{api_url}/openapi.json").json()["components"]["schemas"]["ImageRequest"]["properties"]["model"]
    patterns = [branch["pattern"] for branch in model["anyOf"] if "pattern" in branch]
    assert patterns == [f"^{p}:{PASSTHROUGH_IDS[p]}$" for p in ("fal", "replicate")]
    assert any("flux-schnell" in branch.get("enum", []) for branch in model["anyOf"])
    assert re.fullmatch(patterns[1][1:-1], f"replicate:black-forest-labs/flux-schnell:{FLUX_VERSION}")


# -- the adapters' shared parts, without the pipeline ----------------------------------------------------------

def _req(params: dict, options: dict | None = None) -> ProviderRequest:
    return ProviderRequest(job_id="job_x", model=TOPAZ, capability="image", mode=PASSTHROUGH, endpoint=TOPAZ,
                           params=params, options=options or {})


def test_passthrough_input_is_the_options_plus_the_mapped_fields():
    options = {"model": "CGI"}
    req = _req({"prompt": "p", "files": ["https://x/a.png", "https://x/b.png"],
                "provider_fields": {"prompt": "prompt", "files.0": "image_urls[]", "files.1": "image_urls[]"}}, options)
    assert passthrough_input(req) == {"model": "CGI", "prompt": "p",
                                      "image_urls": ["https://x/a.png", "https://x/b.png"]}
    assert options == {"model": "CGI"}  # the request's own options are not touched


def test_the_output_is_found_by_media_type():
    fal = {"seed": 3, "images": [{"url": "https://cdn/a.png", "content_type": "image/png"}],
           "audio": {"url": "https://cdn/s", "content_type": "audio/mpeg"}}
    assert find_output(fal, "image") == Output("image/png", url="https://cdn/a.png")
    assert find_output(fal, "speech") == Output("audio/mpeg", url="https://cdn/s")
    assert find_output(fal, "video") is None
    replicate = ["https://r.d/x/out-0.webp", "https://r.d/x/out.mp4"]
    assert find_output(replicate, "video") == Output("video/mp4", url="https://r.d/x/out.mp4")
    assert find_output("https://r.d/song.wav", "music") == Output("audio/wav", url="https://r.d/song.wav")
    text = find_output({"text": "hello", "chunks": []}, "transcription")
    assert text is not None and text.media_type == "application/json" and json.loads(text.data)["text"] == "hello"
    assert find_output({"images": []}, "transcription") is None


def test_endpoint_ids_cannot_grow_the_statistics(priced: Account, rds: redis.Redis):
    """A passthrough job counts under `provider:*`, whatever id it names: ids a caller makes up add
    no field to the gateway's counters (nor labels to /metrics)."""
    from gengate.jobs import keys as redis_keys

    before = rds.hget(redis_keys.STATS_JOBS, "completed|fal|fal:*")
    job_id = _created(priced.http.post("/speech", json={"model": f"fal:{TTS}", "text": f"count {uuid.uuid4().hex}"}))
    assert wait_for(priced.http, job_id, timeout=60)["status"] == "completed"
    assert int(rds.hget(redis_keys.STATS_JOBS, "completed|fal|fal:*")) == int(before or 0) + 1
    assert not [f for f in rds.hkeys(redis_keys.STATS_JOBS) if TTS.encode() in f]
