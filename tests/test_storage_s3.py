"""Object storage and a deployment that spans machines (issue 18).

The topology: an API, two provider workers and a media worker, each with a data directory of its
own and no shared file system, one Redis, and one S3 server (moto's, a real HTTP server speaking the
S3 protocol, started here on a free port like the suite's redis-server). Every capability and every
media operation completes, outputs and uploads are served, a worker killed with SIGKILL leaves its
jobs to the other, and no process holds a stored file on its own disk.

And the rest of the suite against S3: `GENGATE_TEST_STORAGE=s3` runs the tests that store or serve
files with the session's storage in an S3 server (tests/conftest.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from gengate import procs
from gengate.jobs.apikeys import create_account, create_key
from gengate.tasks.queues import ALL_QUEUES, MEDIA_QUEUE

from tests.conftest import ROOT, s3_env, wait_for, wait_until
from tests.test_media import _job as _done

BUCKET, PREFIX = "gengate-topology", "hosts"
PROVIDER_QUEUES = ",".join(q for q in ALL_QUEUES if q != MEDIA_QUEUE)
FFMPEG = pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg is not installed (apt-get install -y ffmpeg)")


@dataclass
class Host:
    """One process of the topology, as if on a machine of its own: its own data directory."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return Path(self.env["GENGATE_DATA_DIR"])

    @property
    def log(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log.write_bytes(b"")
        self.proc = procs.start(self.cmd, self.env, self.log)
        if "worker" in self.cmd:
            procs.wait_until(lambda: b"ready." in self.log.read_bytes(), 30, self.name, self.proc)

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            procs.stop(self.proc)


@dataclass
class Topology:
    api: str
    endpoint: str  # the S3 server
    key: str
    redis: redis.Redis
    hosts: dict[str, Host] = field(default_factory=dict)
    base_env: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.api}/v1", headers={"Authorization": f"Bearer {self.key}"}, timeout=15)

    def objects(self, kind: str) -> list[str]:
        """The names of the objects of one kind in the bucket, by the S3 API itself."""
        r = httpx.get(f"{self.endpoint}/{BUCKET}", params={"list-type": "2", "prefix": f"{PREFIX}/{kind}/"})
        r.raise_for_status()
        return [k.split("</Key>")[0].rsplit("/", 1)[-1] for k in r.text.split("<Key>")[1:]]


@pytest.fixture(scope="module")
def topology(env: dict[str, str], redis_url: str, tmp_path_factory) -> Iterator[Topology]:
    proc, endpoint = procs.start_s3(BUCKET)
    db_url = redis_url.rsplit("/", 1)[0] + "/7"  # its own database: the session's worker never sees its jobs
    r = redis.Redis.from_url(db_url)
    r.flushdb()
    root = tmp_path_factory.mktemp("topology")
    port = procs.free_port()
    # Hosts that share no disk name stored files by the public URL, as a real deployment must.
    base = {**env, **s3_env(endpoint, BUCKET, PREFIX), "GENGATE_REDIS_URL": db_url,
            "GENGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "GENGATE_SECRET_KEY": "topology-secret-shared-by-every-host", "GENGATE_STORAGE_SERVE": "redirect",
            "GENGATE_WORKER_METRICS_PORT": "0", "GENGATE_RETENTION_INTERVAL_SECONDS": "1"}
    hosts = {
        "api": Host("api", procs.api_command("127.0.0.1", port),
                    {**base, "GENGATE_DATA_DIR": str(root / "api"), "GENGATE_API_PORT": str(port)}),
        "worker-1": Host("worker-1", procs.worker_command(PROVIDER_QUEUES, 4, "w1@%h"),
                         {**base, "GENGATE_DATA_DIR": str(root / "worker-1")}),
        "worker-2": Host("worker-2", procs.worker_command(PROVIDER_QUEUES, 4, "w2@%h"),
                         {**base, "GENGATE_DATA_DIR": str(root / "worker-2")}),
        "media": Host("media", procs.worker_command(MEDIA_QUEUE, 2, "media@%h"),
                      {**base, "GENGATE_DATA_DIR": str(root / "media")}),
    }
    for host in hosts.values():
        host.start()
    api = f"http://127.0.0.1:{port}"
    procs.wait_http(f"{api}/healthz", 30, hosts["api"].proc)
    key = create_key(r, create_account(r, email="hosts@example.com", plan="dev"))
    yield Topology(api, endpoint, key, r, hosts, base)
    for host in hosts.values():
        host.stop()
    procs.stop(proc)


def _served(url: str) -> bytes:
    """A stored file by its URL: a redirect to the object (presigned), then the object."""
    first = httpx.get(url)
    assert first.status_code == 307, first.text
    assert first.headers["location"].startswith(first.headers["location"].split("?")[0])
    got = httpx.get(first.headers["location"])
    assert got.status_code == 200, got.text
    return got.content


def test_every_capability_completes_across_hosts_and_is_served_from_the_store(topology: Topology, files_url: str):
    """One request of each capability, through workers that share nothing but Redis and the bucket:
    each output is an object in the bucket, served by a redirect to it."""
    requests = {
        "image": {"model": "flux-schnell", "prompt": "a lighthouse"},
        "video": {"model": "kling-v3", "prompt": "waves", "duration": 5},
        "speech": {"model": "eleven_flash_v2_5", "text": "Hello from every host.", "voice": "rachel"},
        "music": {"model": "music_v1", "prompt": "piano", "duration": 10},
        "transcription": {"model": "whisper", "audio_url": f"{files_url}/speech.mp3"},
    }
    seen: dict[str, dict] = {}
    with topology.client() as c:
        for capability, body in requests.items():
            seen[capability] = _done(c, f"/{capability}", {**body, "prompt": body["prompt"] + f" {uuid.uuid4().hex}"}
                                     if "prompt" in body else body)
    assert set(seen) == {"image", "video", "speech", "music", "transcription"}
    stored = set(topology.objects("o"))
    for job in seen.values():
        name = job["output"]["url"].rsplit("/", 1)[-1]
        assert name in stored
        assert len(_served(job["output"]["url"])) > 0


@FFMPEG
def test_every_media_operation_reads_and_writes_the_store(topology: Topology, tmp_path: Path):
    """An upload goes to the bucket; trim, resize, slice, a custom command and a probe read it from
    there (the media worker has never seen the API's disk) and store their outputs there."""
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=25:duration=4", "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
                    "-c:v", "libx264", "-g", "5", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip)],
                   check=True)
    with topology.client() as c:
        up = c.post("/files", content=clip.read_bytes(), headers={"Content-Type": "video/mp4"})
        assert up.status_code == 200, up.text
        url = up.json()["url"]
        assert url.rsplit("/", 1)[-1] in topology.objects("u")
        assert _served(url) == clip.read_bytes()
        probe = c.post("/ffmpeg/probe", json={"url": url})
        assert probe.status_code == 200 and probe.json()["width"] == 320, probe.text
        jobs = [
            _done(c, "/ffmpeg/trim", {"url": url, "start": 1, "end": 3}),
            _done(c, "/ffmpeg/resize", {"url": url, "width": 160, "height": 120, "fit": "contain"}),
            _done(c, "/ffmpeg/slice", {"video_url": url, "every": 2}),
            _done(c, "/ffmpeg", {"command": "-i {{in_1}} -vn -c:a libmp3lame {{out_1}}", "input_files": [url],
                                 "output_files": ["sound.mp3"]}),
        ]
        # a job's output is an input of the next, read from the bucket too
        _done(c, "/ffmpeg/trim", {"url": jobs[0]["output"]["url"], "start": 0, "end": 1})
    for job in jobs:
        assert len(_served(job["output"]["url"])) > 0
    segments = jobs[2]["output"]["metadata"]["segments"]
    assert segments and all(len(_served(s["url"])) > 0 for s in segments)


def test_a_cache_hit_is_a_copy_inside_the_store(topology: Topology):
    """The same request again is answered from the cache with its own output name, copied inside the
    bucket (its bytes never pass through a worker), served like the first."""
    body = {"model": "flux-schnell", "prompt": f"cached across hosts {uuid.uuid4().hex}"}
    with topology.client() as c:
        first = _done(c, "/image", body)
        r = c.post("/image", json=body)
        assert r.status_code == 202 and r.headers["x-cache"] == "HIT", r.text
        second = r.json()
    assert second["output"]["url"] != first["output"]["url"]
    assert _served(second["output"]["url"]) == _served(first["output"]["url"])


def test_a_worker_killed_mid_job_leaves_its_jobs_to_the_other(topology: Topology):
    """Jobs running at the provider while worker-1 is killed with SIGKILL: worker-2 (its sweeper)
    polls and finalizes them into the bucket; none is lost."""
    with topology.client() as c:
        ids = []
        for i in range(8):
            r = c.post("/image", json={"model": "flux-schnell", "prompt": f"kill {i} {uuid.uuid4().hex}",
                                       "provider_options": {"sim": {"latency": 2}}})
            assert r.status_code == 202, r.text
            ids.append(r.json()["job_id"])
        time.sleep(0.8)
        topology.hosts["worker-1"].kill9()
        try:
            done = [wait_for(c, job_id, timeout=60) for job_id in ids]
        finally:
            topology.hosts["worker-1"].start()
    assert [j["status"] for j in done] == ["completed"] * len(ids), done
    stored = set(topology.objects("o"))
    assert all(j["output"]["url"].rsplit("/", 1)[-1] in stored for j in done)


def test_no_host_keeps_a_stored_file_on_its_own_disk(topology: Topology):
    """Everything stored is in the bucket: the hosts' data directories hold no outputs or uploads
    (nothing one of them wrote could be read from another's disk)."""
    for host in topology.hosts.values():
        stored = [p for p in host.data_dir.rglob("*") if p.is_file() and p.parent.name in ("o", "u", "objects")]
        assert stored == [], f"{host.name} keeps files on its disk: {stored[:5]}"
        leftovers = list((host.data_dir / "upload-tmp").glob("*")) if (host.data_dir / "upload-tmp").exists() else []
        assert leftovers == [], f"{host.name} left upload temp files: {leftovers}"


def _extra_api(topology: Topology, **settings: str) -> Host:
    port = procs.free_port()
    env = {**topology.base_env, **{f"GENGATE_{k.upper()}": v for k, v in settings.items()},
           "GENGATE_API_PORT": str(port), "GENGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "GENGATE_DATA_DIR": str(topology.hosts["api"].data_dir.parent / f"api-{port}")}
    host = Host("api-extra", procs.api_command("127.0.0.1", port), env)
    host.start()
    procs.wait_http(f"http://127.0.0.1:{port}/healthz", 30, host.proc)
    return host


def test_stored_files_streamed_by_the_api_with_ranges(topology: Topology):
    """GENGATE_STORAGE_SERVE=stream: the API streams the object itself, ranges included (video
    seeking), with the same headers as a local file."""
    with topology.client() as c:
        job = _done(c, "/image", {"model": "flux-schnell", "prompt": f"streamed {uuid.uuid4().hex}"})
    name = job["output"]["url"].rsplit("/", 1)[-1]
    host = _extra_api(topology, storage_serve="stream")
    try:
        url = f"{host.env['GENGATE_PUBLIC_URL']}/o/{name}"
        whole = httpx.get(url)
        assert whole.status_code == 200 and whole.content == _served(job["output"]["url"]), whole.text
        assert whole.headers["x-content-type-options"] == "nosniff"
        assert whole.headers["content-type"] == "image/png"
        part = httpx.get(url, headers={"Range": "bytes=2-9"})
        assert part.status_code == 206 and part.content == whole.content[2:10], part.headers
        assert part.headers["content-range"] == f"bytes 2-9/{len(whole.content)}"
        tail = httpx.get(url, headers={"Range": "bytes=10-"})
        assert tail.status_code == 206 and tail.content == whole.content[10:]
        assert httpx.get(url.replace("/o/job_", "/o/job_0")).status_code == 404
    finally:
        host.stop()


def test_a_public_storage_url_serves_from_the_bucket_itself(topology: Topology):
    """GENGATE_STORAGE_PUBLIC_URL (a CDN or public bucket): file URLs point at the bucket, no hop
    through the API, and the gateway still knows them as its own files (here a probe's input)."""
    public = f"{topology.endpoint}/{BUCKET}/{PREFIX}"
    # what an operator does for a public bucket: anyone may read its objects (not list or write)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                                                      "Resource": f"arn:aws:s3:::{BUCKET}/{PREFIX}/*"}]}
    httpx.put(f"{topology.endpoint}/{BUCKET}", params={"policy": ""}, content=json.dumps(policy)).raise_for_status()
    host = _extra_api(topology, storage_public_url=public)
    try:
        with httpx.Client(base_url=f"{host.env['GENGATE_PUBLIC_URL']}/v1", timeout=15,
                          headers={"Authorization": f"Bearer {topology.key}"}) as c:
            body = os.urandom(4096)
            up = c.post("/files", content=body, headers={"Content-Type": "application/octet-stream"})
            assert up.status_code == 200, up.text
            url = up.json()["url"]
            assert url.startswith(public + "/u/")
            got = httpx.get(url)
            assert got.content == body, (got.status_code, got.headers, got.text[:300])
            # an own URL: read from the store (a 400 that it is no media), never fetched from outside
            probe = c.post("/ffmpeg/probe", json={"url": url})
            assert probe.status_code == 400 and "not a media file" in probe.json()["message"], probe.text
    finally:
        host.stop()


def test_retention_deletes_expired_objects_from_the_store(topology: Topology):
    """An upload past its time and the output of a job whose time is up leave the bucket."""
    with topology.client() as c:
        up = c.post("/files", content=os.urandom(2048), headers={"Content-Type": "application/octet-stream"}).json()
        job = _done(c, "/image", {"model": "flux-schnell", "prompt": f"expiring {uuid.uuid4().hex}"})
        assert c.delete(f"/files/{up['file_id']}").status_code == 204
    upload, output = up["url"].rsplit("/", 1)[-1], job["output"]["url"].rsplit("/", 1)[-1]
    assert upload not in topology.objects("u")  # deleted by its owner: gone at once
    topology.redis.zadd("gengate:outputs:expiry", {job["job_id"]: time.time()})
    wait_until(lambda: output not in topology.objects("o"), 20, "the expired output deleted from the bucket")


def test_the_suite_stores_and_serves_through_s3():
    """The tests that store or serve files, run again with the session's storage in an S3 server
    (GENGATE_TEST_STORAGE=s3): the same answers from object storage as from a local directory."""
    files = ["tests/test_files.py", "tests/test_cache.py", "tests/test_media.py", "tests/test_pipeline.py",
             "tests/resilience/test_abuse.py", "tests/resilience/test_abuse_storage.py", "tests/test_client.py"]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *files],
                         cwd=ROOT, env={**os.environ, "GENGATE_TEST_STORAGE": "s3"}, capture_output=True, text=True,
                         timeout=900)
    tail = run.stdout[-3000:]
    print(tail)
    assert run.returncode == 0, tail
