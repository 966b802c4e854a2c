"""Every provider through the whole pipeline (API -> worker -> official SDK -> simulator):
every example request of the spec, a fault contract run over all five adapters, and BYOK."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from gengate import procs
from gengate.sim import media
from tests.conftest import new_key, sim_requests, wait_for, wait_until
from tests.spec_files import example_requests

MEDIA_TYPES = {"image": "image/png", "video": "video/mp4", "speech": "audio/mpeg", "music": "audio/mpeg",
               "transcription": "application/json"}


EXAMPLES = example_requests()
# Examples of the reference documents that ask a model for what its provider does not take (each per
# the provider's published schema, config/schemas/fal). gengate refuses them with a 400 naming the
# field, where passing them on would have the provider refuse the job or silently ignore the value.
REFUSED_EXAMPLES = {
    "sora-2-text-to-video": "duration",  # sora-2 takes 4, 8, 12, 16 or 20 seconds
    "sora-2-image-to-video": "duration",
    "sora-2-remix": "files",  # a remix names an earlier Sora job (provider_options.video_id), not a file
    "minimax": "aspect_ratio",  # video-01 takes neither an aspect ratio nor a duration
    "lipsync-veed": "files",  # veed/fabric-1.0 animates an image, not a video
    "qwen-angles": "prompt",  # the multiple-angles endpoint has no prompt: its camera moves are its own fields
}


@pytest.mark.parametrize("path,name,body", EXAMPLES, ids=[f"{p}:{n}" for p, n, _ in EXAMPLES])
def test_spec_example_completes(client: httpx.Client, files_url: str, path: str, name: str, body: dict):
    body = dict(body)
    for f in body.get("files", []):
        f["url"] = f["url"].replace("https://example.com", files_url)
    assert httpx.get(body["files"][0]["url"]).status_code == 200 if body.get("files") else True
    if "audio_url" in body:
        body["audio_url"] = body["audio_url"].replace("https://example.com", files_url)
    r = client.post(path, json=body)
    if name in REFUSED_EXAMPLES:
        assert r.status_code == 400 and r.json()["field"] == REFUSED_EXAMPLES[name], r.text
        return
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=60)
    assert job["status"] == "completed", job
    capability = path.strip("/")
    assert job["output"]["media_type"] == MEDIA_TYPES[capability]
    data = httpx.get(job["output"]["url"]).content
    assert len(data) > 0


# One model per provider for the fault contract, with a marker field the simulator records.
CONTRACT = {
    "fal": ("/image", {"model": "flux-schnell"}, "prompt"),
    # the remover takes no prompt: its marker rides in the simulator's knob object (provider_options.sim)
    "replicate": ("/image", {"model": "background-remover", "prompt": "", "files": [{"url": "{files}/cat.png"}]},
                  None),
    "elevenlabs": ("/speech", {"model": "eleven_v3", "voice": "adam"}, "text"),
    "higgsfield": ("/image", {"model": "soul", "aspect_ratio": "16:9"}, "prompt"),
    "piapi": ("/video", {"model": "seedance-2-fast-preview", "duration": 5}, "prompt"),
}
SYNCHRONOUS = {"elevenlabs"}  # answers the submission with the audio itself: nothing to poll or cancel


_FILES = {"url": ""}


@pytest.fixture(autouse=True)
def _files_url(files_url: str) -> None:
    _FILES["url"] = files_url  # where CONTRACT's "{files}" inputs live (the gateway fetches and hashes them)


def _post(client: httpx.Client, provider: str, sim: dict | None = None, **headers) -> tuple[str, str]:
    path, body, marker_field = CONTRACT[provider]
    marker = uuid.uuid4().hex
    body = {**body, marker_field: f"contract {marker}"} if marker_field else dict(body)
    if "files" in body:
        body["files"] = [{"url": f["url"].replace("{files}", _FILES["url"])} for f in body["files"]]
    if sim is not None or marker_field is None:
        body["provider_options"] = {"sim": {**(sim or {}), **({"marker": marker} if marker_field is None else {})}}
    r = client.post(path, json=body, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["job_id"], marker


@pytest.mark.parametrize("provider", CONTRACT)
class TestProviderContract:
    def test_success(self, provider, client, sim):
        job_id, marker = _post(client, provider, {"latency": 0.2})
        job = wait_for(client, job_id)
        assert job["status"] == "completed", job
        assert job["model"].startswith(f"{provider}:")
        got = httpx.get(job["output"]["url"])
        assert got.status_code == 200 and got.headers["content-type"] == job["output"]["media_type"]
        assert len(sim_requests(sim, marker, provider)) == 1

    def test_provider_failure_fails_the_job(self, provider, client):
        job_id, _ = _post(client, provider, {"fail": "simulated content policy violation"})
        job = wait_for(client, job_id)
        assert job["status"] == "failed", job
        assert job["error"].startswith(f"ProviderError ({provider}")

    def test_poll_errors_are_retried_then_complete(self, provider, client, sim):
        if provider in SYNCHRONOUS:
            pytest.skip("a synchronous provider is never polled")
        job_id, marker = _post(client, provider, {"latency": 0.3, "status_error": {"status": 503, "times": 2}})
        job = wait_for(client, job_id)
        assert job["status"] == "completed", job
        assert len(sim_requests(sim, marker, provider)) == 1

    def test_persistent_poll_errors_fail_within_a_bound(self, provider, client, sim):
        if provider in SYNCHRONOUS:
            pytest.skip("a synchronous provider is never polled")
        t0 = time.monotonic()
        job_id, marker = _post(client, provider, {"latency": 30, "status_error": {"status": 500, "times": 1000}})
        job = wait_for(client, job_id, timeout=60)
        assert job["status"] == "failed", job
        # 3 retries, each at most GENGATE_RETRY_MAX_SECONDS=1 apart (or the provider SDK's own GET retries)
        assert time.monotonic() - t0 < 45 and job["error"].startswith(f"ProviderError ({provider}")
        assert len(sim_requests(sim, marker, provider)) == 1

    def test_401_fails_at_once(self, provider, client, sim):
        job_id, marker = _post(client, provider, {"submit_status": 401})
        t0 = time.monotonic()
        job = wait_for(client, job_id)
        assert job["status"] == "failed" and time.monotonic() - t0 < 10, job
        assert job["error"].startswith(f"ProviderError ({provider}, HTTP 401)")
        assert sim_requests(sim, marker, provider) == []

    def test_429_then_success(self, provider, client, sim):
        job_id, marker = _post(client, provider, {"submit_status": 429, "submit_status_times": 1, "retry_after": 1})
        job = wait_for(client, job_id)
        assert job["status"] == "completed", job
        assert len(sim_requests(sim, marker, provider)) == 1

    def test_timeout_after_acceptance_is_never_resubmitted(self, provider, client, sim):
        job_id, marker = _post(client, provider, {"hang": 6})  # provider timeouts are 3 s in the tests
        job = wait_for(client, job_id, timeout=30)
        assert job["status"] == "failed", job
        time.sleep(0.5)
        assert len(sim_requests(sim, marker, provider)) == 1

    def test_cancel(self, provider, client, sim):
        if provider in SYNCHRONOUS:
            pytest.skip("a synchronous provider finishes inside the submission: nothing is left to cancel")
        job_id, marker = _post(client, provider, {"latency": 20})
        wait_until(lambda: sim_requests(sim, marker, provider), what="the submission")
        wait_for(client, job_id, statuses={"processing"})
        time.sleep(0.3)  # let the handle be saved, as a real cancel would arrive later
        assert client.delete(f"/jobs/{job_id}").status_code == 204
        assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
        wait_until(lambda: sim_requests(sim, marker, provider)[0]["cancel_calls"] >= 1, what="the provider's cancel")


CANARY = "canary-" + uuid.uuid4().hex


def test_byok_canary_is_used_and_never_stored_or_logged(client, sim, rds, data_dir: Path):
    job_id, marker = _post(client, "fal", {"latency": 0.3}, **{"X-Provider-Key-Fal": CANARY})
    mid = rds.get(f"gengate:job:{job_id}:key")
    assert mid is not None and CANARY.encode() not in mid  # sealed while the job runs
    job = wait_for(client, job_id)
    assert job["status"] == "completed"
    [req] = sim_requests(sim, marker)
    assert req["key_suffix"] == CANARY[-4:]  # the provider saw the user's key, not the pooled one
    assert rds.get(f"gengate:job:{job_id}:key") is None  # dropped when the job ended
    # Failure paths too: an error response must not echo it.
    bad = client.post("/image", json={"model": "flux-schnell", "prompt": "x", "aspect_ratio": "1:7"},
                      headers={"X-Provider-Key-Fal": CANARY})
    assert CANARY not in bad.text and CANARY not in str(bad.headers)
    assert CANARY not in client.get(f"/jobs/{job_id}").text
    needle = CANARY.encode()
    for key in rds.scan_iter(count=1000):
        dumped = rds.dump(key)
        assert dumped is None or needle not in dumped, key
    for log in data_dir.glob("*.log"):
        assert needle not in log.read_bytes(), log


def test_saved_account_key_is_used_and_header_wins(client, sim, rds, env, api_url):
    import subprocess

    key = client.headers["Authorization"].split()[-1]
    account = rds.hget(f"gengate:apikey:{key.split('_')[2]}", "account").decode()
    subprocess.run([*procs.gengate_command(), "keys", "save-provider", "--account", account, "--provider", "fal"],
                   input="saved-key-ABCD\n", text=True, env=env, check=True, capture_output=True)
    # The key is never an argument, where the process list would show it.
    refused = subprocess.run([*procs.gengate_command(), "keys", "save-provider", "--account", account,
                              "--provider", "fal", "--key", "in-argv-EFGH"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "--key" in refused.stderr
    job_id, marker = _post(client, "fal")
    assert wait_for(client, job_id)["status"] == "completed"
    assert sim_requests(sim, marker)[0]["key_suffix"] == "ABCD"
    job_id, marker = _post(client, "fal", **{"X-Provider-Key-Fal": "header-key-WXYZ"})
    assert wait_for(client, job_id)["status"] == "completed"
    assert sim_requests(sim, marker)[0]["key_suffix"] == "WXYZ"
    # Another account is not affected by this account's saved key.
    other = httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {new_key(rds)}"})
    job_id, marker = _post(other, "fal")
    assert wait_for(other, job_id)["status"] == "completed"
    assert sim_requests(sim, marker)[0]["key_suffix"] == "pooled-fal-key"[-4:]  # the pooled key (conftest)


def test_no_key_anywhere_is_400_naming_the_provider(redis_url: str):
    """With no header, no saved key and no pooled key, the request is refused before a job exists."""
    import asyncio

    from redis.asyncio import Redis
    from starlette.datastructures import Headers

    from gengate.api.provider_keys import from_header, saved_or_pooled
    from gengate.jobs import keys
    from gengate.config.settings import ProviderSettings, Settings
    from gengate.jobs.errors import ValidationError

    settings = Settings(piapi=ProviderSettings(api_key=None), fal=ProviderSettings(api_key="pooled"))

    async def check() -> None:
        redis = Redis.from_url(redis_url)
        async def sealed_key_for(provider: str) -> str | None:  # as api/submission.py resolves it
            saved = await redis.hget(keys.account_provider_keys("user_without_saved_keys"), provider)
            return from_header(provider, Headers({})) or saved_or_pooled(provider, saved, settings)

        try:
            with pytest.raises(ValidationError) as err:
                await sealed_key_for("piapi")
            assert err.value.provider == "piapi" and "X-Provider-Key-PiAPI" in err.value.message
            assert err.value.to_dict()["statusCode"] == 400
            assert await sealed_key_for("fal") is None
        finally:
            await redis.aclose()

    asyncio.run(check())
