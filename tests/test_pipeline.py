"""One job end to end through the real pipeline: API over HTTP -> Redis -> Celery worker ->
fal-client -> Fal simulator -> storage -> client."""

from __future__ import annotations

import io
import signal
import threading
import time
import uuid

import av
import httpx
from PIL import Image

from tests.conftest import sim_requests, wait_for, wait_until


def _marker() -> str:
    return uuid.uuid4().hex


def test_image_job_completes_with_a_real_png(client: httpx.Client, sim: httpx.Client):
    m = _marker()
    r = client.post("/image", json={"model": "flux-schnell", "prompt": f"sunset {m}", "aspect_ratio": "16:9"})
    assert r.status_code == 202, r.text
    created = r.json()
    assert set(created) == {"job_id", "status", "model", "created_at"}
    assert created["status"] == "queued" and created["model"] == "fal:flux-schnell"
    assert created["job_id"].startswith("job_")

    job = wait_for(client, created["job_id"])
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "image/png"
    assert job["output"]["url"].endswith(f"/o/{created['job_id']}.png")
    assert job["completed_at"] >= job["created_at"]

    got = httpx.get(job["output"]["url"])
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(got.content))
    assert img.format == "PNG" and img.width > img.height  # 16:9 reached the provider as landscape
    [req] = sim_requests(sim, m)
    assert req["app_id"] == "fal-ai/flux/schnell" and req["input"]["image_size"] == "landscape_16_9"


def test_video_job_completes_with_a_real_mp4(client: httpx.Client, sim: httpx.Client):
    m = _marker()
    r = client.post("/video", json={"model": "fal:kling-v3", "prompt": f"waves {m}", "duration": 5})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"])
    assert job["status"] == "completed", job
    assert job["output"]["media_type"] == "video/mp4" and job["output"]["url"].endswith(".mp4")
    body = httpx.get(job["output"]["url"]).content
    with av.open(io.BytesIO(body)) as container:
        frames = list(container.decode(video=0))
    assert frames, "the output MP4 has no video frames"
    [req] = sim_requests(sim, m)
    assert req["app_id"] == "fal-ai/kling-video/v3/pro/text-to-video" and req["input"]["duration"] == "5"


def test_image_to_video_uses_the_image_endpoint(client: httpx.Client, sim: httpx.Client, files_url: str):
    m = _marker()
    files = [{"url": f"{files_url}/day.jpg"}, {"url": f"{files_url}/night.jpg"}]
    r = client.post("/video", json={"model": "kling-v3", "prompt": f"day to night {m}", "files": files})
    assert wait_for(client, r.json()["job_id"])["status"] == "completed"
    [req] = sim_requests(sim, m)
    assert req["app_id"].endswith("image-to-video")
    # kling v3 names its first and last frames `start_image_url` / `end_image_url` (fal's published schema);
    # the spec's default duration, 5 s, goes as fal's string
    assert req["input"]["start_image_url"] == files[0]["url"] and req["input"]["end_image_url"] == files[1]["url"]
    assert req["input"]["duration"] == "5" and req["unknown_fields"] == []


def _stream_statuses(client: httpx.Client, job_id: str) -> list[dict]:
    events = []
    with client.stream("GET", f"/jobs/{job_id}/stream", timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in resp.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                assert event == "status"
                import json

                events.append(json.loads(line[5:]))
    return events  # the server closed the stream


def test_sse_sees_queued_processing_completed(client: httpx.Client):
    r = client.post("/image", json={"model": "flux-pro", "prompt": f"x {_marker()}",
                                     "provider_options": {"sim": {"latency": 0.5}}})
    events = _stream_statuses(client, r.json()["job_id"])
    assert [e["status"] for e in events] == ["queued", "processing", "completed"]
    assert events[-1]["output"]["url"].endswith(".png")
    assert all(e["job_id"] == r.json()["job_id"] for e in events)


def test_cancel_while_queued_never_reaches_the_provider(client: httpx.Client, sim: httpx.Client, worker):
    m = _marker()
    worker.signal(signal.SIGSTOP)  # nothing consumes the queue: the job stays queued
    try:
        job_id = client.post("/image", json={"model": "flux-schnell", "prompt": f"q {m}"}).json()["job_id"]
        assert client.get(f"/jobs/{job_id}").json()["status"] == "queued"
        assert client.delete(f"/jobs/{job_id}").status_code == 204
        job = client.get(f"/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["completed_at"]
    finally:
        worker.signal(signal.SIGCONT)
    time.sleep(1.0)  # the worker now takes the submit message and must do nothing with it
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    assert sim_requests(sim, m) == []
    assert client.delete(f"/jobs/{job_id}").status_code == 204  # no effect on a terminal job
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_cancel_while_processing_cancels_at_the_provider(client: httpx.Client, sim: httpx.Client):
    m = _marker()
    job_id = client.post("/image", json={"model": "flux-schnell", "prompt": f"p {m}",
                                          "provider_options": {"sim": {"latency": 10}}}).json()["job_id"]
    wait_until(lambda: sim_requests(sim, m), what="the provider to receive the job")
    wait_for(client, job_id, statuses={"processing"})
    assert client.delete(f"/jobs/{job_id}").status_code == 204
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    req = wait_until(lambda: [r for r in sim_requests(sim, m) if r["cancelled"]], what="the provider's cancel")[0]
    assert req["cancel_calls"] >= 1
    time.sleep(0.5)
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_provider_run_failure_fails_the_job(client: httpx.Client):
    r = client.post("/image", json={"model": "flux-schnell", "prompt": f"f {_marker()}",
                                     "provider_options": {"sim": {"fail": "NSFW content detected"}}})
    job = wait_for(client, r.json()["job_id"])
    assert job["status"] == "failed" and "NSFW content detected" in job["error"]
    assert "output" not in job and job["completed_at"]


def test_provider_rejections_fail_the_job_with_the_providers_reason(client: httpx.Client, sim: httpx.Client):
    for status, words in ((422, ""), (401, ""), (403, "Exhausted balance")):
        m = _marker()
        r = client.post("/image", json={"model": "flux-schnell", "prompt": f"r {m}",
                                         "provider_options": {"sim": {"submit_status": status}}})
        job = wait_for(client, r.json()["job_id"])
        assert job["status"] == "failed", (status, job)
        assert words in job["error"]
        assert sim_requests(sim, m) == []  # refused submissions are not recorded as accepted


def test_worker_killed_mid_job_still_completes_with_one_submission(client: httpx.Client, sim: httpx.Client, worker):
    m = _marker()
    job_id = client.post("/image", json={"model": "flux-schnell", "prompt": f"k {m}",
                                          "provider_options": {"sim": {"latency": 3}}}).json()["job_id"]
    wait_until(lambda: sim_requests(sim, m), what="the provider to receive the job")
    worker.kill9()
    worker.ensure_running()
    job = wait_for(client, job_id, timeout=40)
    assert job["status"] == "completed", job
    assert len(sim_requests(sim, m)) == 1
    assert httpx.get(job["output"]["url"]).status_code == 200


def test_racing_cancel_and_completion_have_one_winner(client: httpx.Client, rds):
    """Cancel each job right around the moment the provider finishes: exactly one terminal state,
    one terminal event, and a cancelled job never gains an output."""
    ids = [client.post("/image", json={"model": "flux-schnell", "prompt": f"race {i} {_marker()}",
                                        "provider_options": {"sim": {"latency": 0.2 + 0.05 * (i % 6)}}}).json()["job_id"]
           for i in range(12)]
    time.sleep(0.35)
    threads = [threading.Thread(target=client.delete, args=(f"/jobs/{j}",)) for j in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = set()
    for job_id in ids:
        job = wait_for(client, job_id)
        outcomes.add(job["status"])
        assert job["status"] in {"completed", "cancelled"}
        assert ("output" in job) == (job["status"] == "completed")
        time.sleep(0.05)
        events = rds.xrange(f"gengate:job:{job_id}:events")
        terminal = [e for _, e in events if e[b"status"] in (b"completed", b"cancelled", b"failed")]
        assert len(terminal) == 1 and terminal[0][b"status"].decode() == job["status"]


def test_one_zero_latency_job_time_to_completed(client: httpx.Client, capsys):
    """Reports (does not assert) POST -> completed seen on SSE for a zero-latency provider."""
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        job_id = client.post("/image", json={"model": "flux-schnell", "prompt": f"z {_marker()}"}).json()["job_id"]
        events = _stream_statuses(client, job_id)
        samples.append((time.perf_counter() - t0) * 1000)
        assert events[-1]["status"] == "completed"
    with capsys.disabled():
        print(f"\nPOST -> completed on SSE, zero-latency provider: {', '.join(f'{s:.0f}' for s in samples)} ms")


def test_output_url_that_404s_is_retried_then_fails(client: httpx.Client, sim_url: str):
    gone = f"{sim_url}/fal/files/missing.png"
    r = client.post("/image", json={"model": "flux-schnell", "prompt": f"o {_marker()}",
                                     "provider_options": {"sim": {"result": {"images": [{"url": gone}]}}}})
    t0 = time.monotonic()
    job = wait_for(client, r.json()["job_id"], timeout=40)
    assert job["status"] == "failed", job
    assert "Could not fetch the provider's output" in job["error"] and "404" in job["error"]
    assert time.monotonic() - t0 > 0.2  # retried (GENGATE_PROVIDER_RETRIES=3 in tests) before failing
