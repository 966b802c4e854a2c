"""Every error is the spec's JSON shape with the right status, and leaves no job behind."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import new_key

SHAPE = {"error", "message", "statusCode"}


def assert_error(resp: httpx.Response, status: int, code: str, field: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert SHAPE <= set(body) <= SHAPE | {"field", "provider"}
    assert body["error"] == code and body["statusCode"] == status and body["message"]
    assert body.get("field") == field
    return body


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"},
                                     {"Authorization": "Bearer gg_live_abc123_wrongsecret"}])
def test_missing_or_bad_key_is_401(api_url: str, headers: dict):
    r = httpx.post(f"{api_url}/v1/image", json={"model": "flux-schnell", "prompt": "x"}, headers=headers)
    assert_error(r, 401, "AuthError")
    assert_error(httpx.get(f"{api_url}/v1/jobs/job_x", headers=headers), 401, "AuthError")


@pytest.mark.parametrize(
    "path,body,field,words",
    [
        ("/image", {"model": "no-such-model", "prompt": "x"}, "model", "Unknown model"),
        ("/image", {"model": "kling-v3", "prompt": "x"}, "model", "/v1/video"),
        ("/video", {"model": "flux-pro", "prompt": "x"}, "model", "/v1/image"),
        ("/image", {"model": "replicate:recraft-v3", "prompt": "x"}, "model", "is served by 'fal'"),
        ("/image", {"model": "flux-schnell"}, "prompt", "prompt is required"),
        ("/image", {"model": "flux-schnell", "prompt": "   "}, "prompt", "prompt is required"),
        ("/image", {"prompt": "x"}, "model", "model is required"),
        ("/image", {"model": "flux-schnell", "prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio", "7:3"),
        ("/video", {"model": "kling-v3", "prompt": "x", "duration": 20}, "duration", "3-15"),
        ("/video", {"model": "kling-v3", "prompt": "x", "duration": 4.5}, "duration", "whole seconds"),
        ("/video", {"model": "kling-v3", "prompt": "x", "files": [{"url": "a"}, {"url": "b"}, {"url": "c"}]},
         "files", "kling-v3 accepts no files or an image or an image + an image"),
        ("/image", {"model": "flux-schnell", "prompt": "x", "files": [{}]}, "files.0.url", "required"),
        ("/image", {"model": "flux-schnell", "prompt": 5}, "prompt", ""),
        ("/speech", {"model": "eleven_v3", "text": "hi", "voice": "nobody"}, "voice", ""),
        ("/transcription", {"model": "whisper"}, "audio_url", "required"),
    ],
)
def test_invalid_requests_are_400_with_field(client: httpx.Client, rds, path: str, body: dict, field: str, words: str):
    before = rds.dbsize()
    err = assert_error(client.post(path, json=body), 400, "ValidationError", field)
    assert words in err["message"]
    assert rds.dbsize() == before  # nothing was created


def test_malformed_json_and_wrong_types_are_400(client: httpx.Client):
    r = client.post("/image", content=b'{"model": "flux-schnell", "prompt": ', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "ValidationError")
    assert_error(client.post("/image", json=[1, 2]), 400, "ValidationError")
    r = client.post("/image", content=b"\xff\xfe", headers={"Content-Type": "application/json"})
    assert_error(r, 400, "ValidationError")


def test_unknown_job_route_and_method(client: httpx.Client, api_url: str):
    assert_error(client.get("/jobs/job_doesnotexist"), 404, "NotFoundError")
    assert_error(client.get("/jobs/not-a-job-id"), 404, "NotFoundError")
    assert_error(client.delete("/jobs/job_doesnotexist"), 404, "NotFoundError")
    assert_error(client.get("/jobs/job_doesnotexist/stream"), 404, "NotFoundError")
    assert_error(httpx.get(f"{api_url}/v1/nothing-here"), 404, "NotFoundError")
    assert_error(httpx.get(f"{api_url}/o/job_nope.png"), 404, "NotFoundError")
    assert_error(httpx.get(f"{api_url}/o/..%2F..%2Fetc%2Fpasswd"), 404, "NotFoundError")
    r = client.put("/image", json={})
    assert r.status_code == 405 and {"error", "message", "statusCode"} <= set(r.json())


def test_another_accounts_job_is_not_found(client: httpx.Client, api_url: str, rds):
    job_id = client.post("/image", json={"model": "flux-schnell", "prompt": "mine",
                                          "provider_options": {"sim": {"latency": 2}}}).json()["job_id"]
    other = {"Authorization": f"Bearer {new_key(rds)}"}
    base = f"{api_url}/v1/jobs/{job_id}"
    assert_error(httpx.get(base, headers=other), 404, "NotFoundError")
    assert_error(httpx.get(f"{base}/stream", headers=other), 404, "NotFoundError")
    assert_error(httpx.delete(base, headers=other), 404, "NotFoundError")
    assert client.get(f"/jobs/{job_id}").json()["status"] in {"queued", "processing"}  # not cancelled by the other


def test_openapi_and_docs_are_served(api_url: str):
    spec = httpx.get(f"{api_url}/openapi.json").json()
    for path in ("/v1/image", "/v1/video", "/v1/speech", "/v1/music", "/v1/transcription", "/v1/jobs/{job_id}",
                 "/v1/jobs/{job_id}/stream"):
        assert path in spec["paths"], path
    assert "202" in spec["paths"]["/v1/image"]["post"]["responses"]
    assert httpx.get(f"{api_url}/docs").status_code == 200
