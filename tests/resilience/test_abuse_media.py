"""Abuse and cost safety of media jobs (issue 17): one FFmpeg job trying to fill the worker's disk.

The attack of the issue: `-filter_complex color=s=7680x4320:r=240` split into many `-f rawvideo`
outputs, about 50 MB per frame per output, for the price of one media job. With more outputs than
allowed it is refused at the API; with the allowed number it runs and is killed when its working
directory reaches the job's byte cap, the job fails saying so, nothing is stored, its hold is
released, the disk loses no more than the cap, and another tenant sees no difference.

The media worker of this test runs with a byte cap the attack reaches well within the test's time
limit on a slow disk (GENGATE_MEDIA_MAX_JOB_BYTES; the default, 2 GiB, is for production's 90 s).
RESILIENCE.md has a row for each test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gengate.media.run import usage

from tests.conftest import Worker, new_key, wait_for, wait_until
from tests.resilience.bystander import Bystander

pytestmark = [pytest.mark.resilience,
              pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed")]

JOB_CAP = 256 * 1024**2
INPUT_CAP = 12_000  # the capped worker's GENGATE_MEDIA_MAX_INPUT_BYTES (the test clip is 6 kB)
ALLOWED_OUTPUTS = 8  # GENGATE_MEDIA_MAX_OUTPUTS's default


def _attack(outputs: int) -> dict:
    """The issue's command with `outputs` rawvideo outputs of an 8K, 240 fps colour source."""
    labels = "".join(f"[v{i}]" for i in range(1, outputs + 1))
    maps = " ".join(f"-map [v{i}] -f rawvideo {{{{out_{i}}}}}" for i in range(1, outputs + 1))
    return {"command": f'-i {{{{in_1}}}} -filter_complex "color=s=7680x4320:r=240,split={outputs}{labels}" {maps}',
            "output_files": [f"frames{i}.mp4" for i in range(1, outputs + 1)]}


@pytest.fixture
def work_root() -> Iterator[Path]:
    """The media worker's GENGATE_MEDIA_WORK_DIR: a directory of this test's own, so what the job
    puts on disk can be measured there. Traversable (0711): FFmpeg may run as another user."""
    root = Path(tempfile.mkdtemp(prefix="gengate-abuse-media-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def capped_worker(worker: Worker, work_root: Path, data_dir: Path) -> Iterator[Worker]:
    """The session worker stopped, and a worker with the test's byte cap and work dir in its place;
    the session worker is started again afterwards."""
    worker.stop()
    # A time limit long enough that the byte cap, not the clock, is what stops the attack on a slow disk.
    capped = Worker(dict(worker.env, GENGATE_MEDIA_MAX_JOB_BYTES=str(JOB_CAP), GENGATE_MEDIA_WORK_DIR=str(work_root),
                         GENGATE_MEDIA_TIME_LIMIT_SECONDS="45", GENGATE_MEDIA_MAX_INPUT_BYTES=str(INPUT_CAP)),
                    data_dir / "worker-media-capped.log")
    capped.start()
    try:
        yield capped
    finally:
        capped.stop()
        worker.ensure_running()


class _DiskWatch:
    """The most the work dir held and the least free space its file system had, sampled every 20 ms."""

    def __init__(self, root: Path) -> None:
        self.root, self.peak_bytes = root, 0
        self.free_before = self._free()
        self.least_free = self.free_before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _free(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, usage(self.root).bytes)
            self.least_free = min(self.least_free, self._free())
            self._stop.wait(0.02)

    def __enter__(self) -> _DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _stored_bytes(data_dir: Path) -> int:
    root = data_dir / "storage"
    return usage(root).bytes if root.exists() else 0


def test_too_many_outputs_are_refused_before_any_job(client: httpx.Client, files_url: str):
    before = client.get("/jobs").json()["jobs"]
    r = client.post("/ffmpeg", json={**_attack(64), "input_files": [f"{files_url}/clip.mp4"]})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == "ValidationError" and body["field"] == "output_files", body
    assert f"at most {ALLOWED_OUTPUTS}" in body["message"]
    many_inputs = {"command": "-i {{in_1}} {{out_1}}", "output_files": ["o.mp4"],
                   "input_files": [f"{files_url}/clip{i}.mp4" for i in range(1, 10)]}
    r = client.post("/ffmpeg", json=many_inputs)
    assert r.status_code == 400 and r.json()["field"] == "input_files", r.text
    assert client.get("/jobs").json()["jobs"] == before


def test_filling_the_disk_stops_at_the_job_byte_cap(client: httpx.Client, capped_worker: Worker, api_url: str,
                                                     rds: redis.Redis, files_url: str, work_root: Path,
                                                     data_dir: Path):
    balance = client.get("/balance").json()["balance_cents"]
    stored = _stored_bytes(data_dir)
    with Bystander(api_url, new_key(rds)) as bystander, _DiskWatch(work_root) as disk:
        started = time.monotonic()
        r = client.post("/ffmpeg", json={**_attack(ALLOWED_OUTPUTS), "input_files": [f"{files_url}/clip.mp4"]},
                        headers={"Cache-Control": "no-store"})
        assert r.status_code == 202, r.text
        job = wait_for(client, r.json()["job_id"], timeout=60)
        took = time.monotonic() - started
    report = bystander.report()
    print(f"\nattack: {job['status']} in {took:.1f} s: {job.get('error')}")
    print(f"disk: peak {disk.peak_bytes / 2**20:.0f} MiB in the job's directory (cap {JOB_CAP / 2**20:.0f} MiB), "
          f"free space fell by at most {(disk.free_before - disk.least_free) / 2**20:.0f} MiB")
    print(report)

    assert job["status"] == "failed", job
    assert job["error"].startswith("ProcessingError:") and "disk limit" in job["error"], job
    assert not job.get("output"), job
    # what the job held on disk: the cap, plus at most what the disk took in one 50 ms look
    assert disk.peak_bytes <= JOB_CAP + 128 * 1024**2, disk.peak_bytes
    assert disk.free_before - disk.least_free <= JOB_CAP + 512 * 1024**2  # other work shares this disk
    # the job's directory is removed right after the job is failed
    wait_until(lambda: not any(work_root.iterdir()), timeout=10, what="the job's directory to be removed")
    assert _stored_bytes(data_dir) - stored < 1024**2  # nothing of it was stored
    assert client.get("/balance").json()["balance_cents"] == balance  # a failed job is not charged
    assert not _ffmpeg_running("frames1.mp4")
    assert report.errors == [] and report.requests > 0, report


def test_inputs_larger_together_than_allowed_fail_the_job_clearly(client: httpx.Client, capped_worker: Worker,
                                                                  files_url: str):
    """Two inputs of 9.4 kB each under a 12 kB cap for a job's inputs: the second download stops at
    what is left, and the job fails naming the cap; nothing runs."""
    padding = "x" * 3_500  # the test file server appends it to the file's bytes
    body = {"command": "-i {{in_1}} -i {{in_2}} -map 0 -map 1 -c copy {{out_1}}", "output_files": ["both.mkv"],
            "input_files": [f"{files_url}/a.mp4?v=1{padding}", f"{files_url}/b.mp4?v=2{padding}"]}
    r = client.post("/ffmpeg", json=body, headers={"Cache-Control": "no-store"})
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["job_id"], timeout=30)
    assert job["status"] == "failed", job
    assert f"may hold {INPUT_CAP} bytes together" in job["error"], job


def _ffmpeg_running(marker: str) -> bool:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"ffmpeg" in cmdline and marker.encode() in cmdline:
            return True
    return False
