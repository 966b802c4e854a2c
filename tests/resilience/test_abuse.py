"""Abuse and cost safety (issue 17): what one tenant can do to others and to the operator's bill.
Each test is an attack and what it gets; RESILIENCE.md has a row for each."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gengate import procs

from tests.conftest import wait_for

pytestmark = pytest.mark.resilience

SVG = (b'<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("/v1/me",{credentials:"include"})</script>'
       b'</svg>')


def _job_whose_model_answers(client: httpx.Client, url: str, content_type: str) -> dict:
    """A fal job whose simulated model answers with an image at `url`; its final state."""
    result = {"images": [{"url": url, "content_type": content_type}]}
    r = client.post("/image", json={"model": "flux-schnell", "prompt": f"answer with {url}",
                                    "provider_options": {"sim": {"result": result}}},
                    headers={"Cache-Control": "no-store"})
    assert r.status_code == 202, r.text
    return wait_for(client, r.json()["job_id"], timeout=60)


def _served_safely(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    csp = response.headers["content-security-policy"]
    assert "sandbox" in csp and "default-src 'none'" in csp


def test_served_files_cannot_run_script_on_the_gateway_origin(client: httpx.Client, files_url: str):
    """An SVG (or HTML) upload, and a model output that is one, are served from the gateway's own
    origin: both as the type their name says, never sniffed, in a CSP sandbox, so a script in them
    runs with no origin and reaches nothing."""
    up = client.post("/files", content=SVG, headers={"Content-Type": "image/svg+xml"})
    assert up.status_code in (200, 201), up.text
    upload = httpx.get(up.json()["url"])
    _served_safely(upload)
    assert upload.headers["content-type"].startswith("image/svg+xml")
    # a model whose output is an SVG (the simulator is told to answer with one)
    job = _job_whose_model_answers(client, f"{files_url}/evil.svg", "image/svg+xml")
    assert job["status"] == "completed", job
    assert job["output"]["url"].endswith(".svg")
    _served_safely(httpx.get(job["output"]["url"]))


@pytest.mark.parametrize("path,body,field", [
    # a longer video than the one priced and validated
    ("/video", {"model": "kling-v3", "prompt": "x", "duration": 5}, "duration"),
    # four images for the price of one
    ("/image", {"model": "flux-schnell", "prompt": "x"}, "num_images"),
    # another size than the one checked
    ("/image", {"model": "flux-schnell", "prompt": "x", "aspect_ratio": "1:1"}, "image_size"),
    # 50,000 characters of speech behind a short validated text, or another (pricier) model
    ("/speech", {"model": "eleven_flash_v2_5", "text": "hi", "voice": "rachel"}, "text"),
    ("/speech", {"model": "eleven_flash_v2_5", "text": "hi", "voice": "rachel"}, "model_id"),
    # ten minutes of music behind a validated 10 s
    ("/music", {"model": "music_v1", "prompt": "x", "duration": 10}, "music_length_ms"),
    ("/video", {"model": "seedance-2-fast-preview", "prompt": "x", "duration": 5}, "duration"),
])
def test_provider_options_cannot_override_what_is_validated_or_priced(client: httpx.Client, path: str, body: dict,
                                                                      field: str):
    """`provider_options` reach the provider as they are, but not over a field the gateway filled
    from what it checked and charged for: that is a 400 naming the option, and no job exists."""
    value = {"duration": "15", "num_images": 4, "image_size": "landscape_16_9", "text": "x" * 50_000,
             "model_id": "eleven_v3", "music_length_ms": 600_000}[field]
    before = client.get("/jobs").json()["jobs"]
    r = client.post(path, json={**body, "provider_options": {field: value}})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == f"provider_options.{field}"
    assert client.get("/jobs").json()["jobs"] == before
    # options the gateway does not set still pass
    ok = client.post("/image", json={"model": "flux-schnell", "prompt": "x", "provider_options": {"seed": 7}},
                     headers={"Cache-Control": "no-store"})
    assert ok.status_code == 202, ok.text


@pytest.fixture
def canary() -> Iterator[tuple[str, list[str]]]:
    """An 'internal' HTTP server on 127.0.0.2 (loopback, but neither the simulator's address nor an
    allowed host) that records every request it gets."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"\x89PNG")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.2:{server.server_address[1]}", hits
    server.shutdown()


def test_a_provider_output_is_fetched_like_a_user_url(client: httpx.Client, files_url: str, canary):
    """A model that answers with (or redirects to) an internal address, e.g. by echoing a tenant's
    URL, gets its job failed: the worker fetches outputs through the SSRF guard, and only the
    provider's own configured host is exempt. Nothing is fetched from the internal address."""
    internal, hits = canary
    for url in (f"{internal}/latest/meta-data.png", f"{files_url}/redirect-to-metadata/x.png"):
        job = _job_whose_model_answers(client, url, "image/png")
        assert job["status"] == "failed", job
        assert "output URL refused" in job["error"], job
    assert hits == []
    # the provider's own outputs (on the simulator's host) still arrive
    ok = client.post("/image", json={"model": "flux-schnell", "prompt": "fine"}, headers={"Cache-Control": "no-store"})
    assert wait_for(client, ok.json()["job_id"], timeout=60)["status"] == "completed"


def test_metrics_answer_only_with_the_metrics_token(env: dict[str, str], data_dir: Path):
    """With GENGATE_METRICS_TOKEN set (compose requires it: the API's port is published), /metrics
    is a 401 in the error shape without the token or with a wrong one, any header text included."""
    port = procs.free_port()
    api = procs.start(procs.api_command("127.0.0.1", port), dict(env, GENGATE_METRICS_TOKEN="m-secret-token"),
                      data_dir / "api-metrics-token.log")
    try:
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(f"{base}/healthz", 30, api)
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer é-not-ascii".encode()}):
            r = httpx.get(f"{base}/metrics", headers=headers)
            assert r.status_code == 401 and r.json()["error"] == "AuthError", r.text
        ok = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer m-secret-token"})
        assert ok.status_code == 200 and "gengate_jobs" in ok.text
    finally:
        procs.stop(api)
