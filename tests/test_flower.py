"""Flower, started by `gengate flower` against the test worker, shows a finished job's task."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from gengate import procs
from tests.conftest import wait_for, wait_until

AUTH = ("ops", "flower-test-pw")


@pytest.fixture
def flower_url(env: dict[str, str], data_dir) -> Iterator[str]:
    port = procs.free_port()
    proc = procs.start([*procs.gengate_command(), "flower", "--port", str(port)],
                       dict(env, FLOWER_BASIC_AUTH=":".join(AUTH)), data_dir / "flower.log")
    base = f"http://127.0.0.1:{port}"
    try:
        procs.wait_http(f"{base}/healthcheck", 30, proc)
        # The credentials reach Flower through its environment, not its command line (`ps` shows that).
        assert AUTH[1].encode() not in open(f"/proc/{proc.pid}/cmdline", "rb").read()
        yield base
    finally:
        procs.stop(proc)


def test_flower_shows_a_finished_job_task(flower_url, client, worker):
    # Flower sees only events sent while it listens: wait until a worker heartbeat has reached it.
    # (/metrics answers without credentials, mher/flower#1342: why Flower must stay private.)
    wait_until(lambda: re.search(r"^flower_worker_online\{.*\} 1\.0$", httpx.get(f"{flower_url}/metrics").text, re.M),
               15, "Flower receiving worker events")
    r = client.post("/image", json={"model": "flux-schnell", "prompt": f"flower {uuid.uuid4().hex}"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert wait_for(client, job_id)["status"] == "completed"

    def submit_task() -> dict | None:
        tasks = httpx.get(f"{flower_url}/api/tasks", params={"taskname": "gengate.submit"}, auth=AUTH).json()
        return next((t for t in tasks.values() if job_id in (t.get("args") or "") and t["state"] == "SUCCESS"), None)

    task = wait_until(submit_task, 10, "the submit task in Flower")
    assert task["name"] == "gengate.submit" and task["worker"]
    assert httpx.get(f"{flower_url}/api/tasks").status_code == 401
    assert httpx.get(f"{flower_url}/api/tasks", auth=(AUTH[0], "wrong")).status_code == 401


def test_flower_refuses_a_public_address_without_credentials(env):
    bare = {k: v for k, v in env.items() if k != "FLOWER_BASIC_AUTH"}
    out = subprocess.run([*procs.gengate_command(), "flower", "--address", "0.0.0.0"], env=bare,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "FLOWER_BASIC_AUTH" in out.stderr
    out = subprocess.run([*procs.gengate_command(), "flower", "--basic-auth", "no-colon"], env=bare,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "user:password" in out.stderr
