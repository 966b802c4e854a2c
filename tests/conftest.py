"""Session fixtures: a private redis-server on a free port, the provider simulator, the real API
(uvicorn) and a real Celery worker, all as subprocesses started by the same code as `gengate up`."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gengate.config.catalog import PROVIDERS
from gengate import procs
from gengate.jobs.apikeys import create_account, create_key
from gengate.sim import media

TERMINAL = {"completed", "failed", "cancelled"}
ROOT = Path(__file__).resolve().parents[1]
# The repository's folders that are subpackages of `gengate`: none may ever load under its bare name.
PACKAGE_FOLDERS = ("config", "api", "jobs", "tasks", "workers", "adapters", "storage", "media", "sim")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any code the tests ran imported one of our modules by its bare name
    (`import config`, `importlib.import_module("adapters.fal")`): that loads a second copy beside
    `gengate.config`, which only works here because the repository is the current directory."""
    bare = sorted(name for name, module in list(sys.modules.items())
                  if name.split(".")[0] in PACKAGE_FOLDERS
                  and str(getattr(module, "__file__", None) or "").startswith(str(ROOT)))
    if bare:
        print(f"\nmodules of gengate loaded under a bare name (import them as gengate.<name>): {', '.join(bare)}",
              file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gengate")


@pytest.fixture(scope="session")
def redis_url(data_dir: Path) -> Iterator[str]:
    proc, url = procs.start_redis(data_dir / "redis", appendonly=False)
    yield url
    procs.stop(proc)


@pytest.fixture(scope="session")
def rds(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


# GENGATE_TEST_STORAGE=s3: the whole session stores and serves files through an S3 server it starts
# (moto), as a deployment with GENGATE_STORAGE_URL=s3://... would; tests/test_storage_s3.py runs the
# tests that store or serve files this way. Tests that look at the local storage directory skip.
S3_SESSION = os.environ.get("GENGATE_TEST_STORAGE") == "s3"
local_storage_only = pytest.mark.skipif(S3_SESSION, reason="looks at the local storage directory")


def s3_env(endpoint: str, bucket: str, prefix: str) -> dict[str, str]:
    """The settings of a process storing in the test S3 server (which takes any credentials)."""
    return {"GENGATE_STORAGE_URL": f"s3://{bucket}/{prefix}", "GENGATE_S3_ENDPOINT_URL": endpoint,
            "GENGATE_S3_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@pytest.fixture(scope="session")
def storage_env() -> Iterator[dict[str, str]]:
    """The session's storage settings: none (the local directory), or an S3 server's."""
    if not S3_SESSION:
        yield {}
        return
    proc, endpoint = procs.start_s3("gengate-session")
    # Streamed through the API: the tests fetch stored files with plain GETs, which do not follow the
    # redirect mode's 307 (tests/test_storage_s3.py covers that mode and the public URL).
    yield {**s3_env(endpoint, "gengate-session", "suite"), "GENGATE_STORAGE_SERVE": "stream"}
    procs.stop(proc)


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    proc, url = procs.start_sim()
    yield url
    procs.stop(proc)


@pytest.fixture(scope="module")
def private_sim_url() -> Iterator[str]:
    """A simulator of the test module's own, for modules whose tests reset it (`/_sim/reset`) or set
    its global `/_sim/config`: done on the session simulator (`sim_url`), that would disturb others."""
    proc, url = procs.start_sim()
    try:
        yield url
    finally:
        procs.stop(proc)
    assert proc.returncode == 0, "simulator should exit cleanly on SIGTERM"


@pytest.fixture(scope="module")
def provider_base(request: pytest.FixtureRequest, private_sim_url: str) -> str:
    """The mount of the test module's `PROVIDER` in its private simulator."""
    return f"{private_sim_url}/{request.module.PROVIDER}"


@pytest.fixture()
def control(provider_base: str) -> Iterator[httpx.Client]:
    """A client on `provider_base` (control API included), with the simulator reset before each test."""
    with httpx.Client(base_url=provider_base, timeout=10) as http:
        http.post("/_sim/reset").raise_for_status()
        yield http


class _MediaFiles(http.server.BaseHTTPRequestHandler):
    """Serves a real file for any path, by its extension: what the spec's example URLs stand for."""

    def do_GET(self) -> None:
        if self.path.startswith("/redirect-to-metadata/"):  # an SSRF attempt through a redirect
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/iam.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        ext = self.path.split("?")[0].rsplit(".", 1)[-1].lower()
        # `/typed/<kind>` and `/octet/<kind>`: a file without an extension, as signed and CDN URLs
        # often are, served with its Content-Type or as application/octet-stream (its bytes tell)
        folder, _, name = self.path.split("?")[0].lstrip("/").partition("/")
        if folder in ("typed", "octet"):
            ext = {"video": "mp4", "audio": "mp3", "image": "png"}.get(name, "bin")
        body, kind = {
            "mp4": (media.mp4_bytes(64, 64, 1.0), "video/mp4"),
            "mp3": (media.mp3_bytes(1.0), "audio/mpeg"),
            "wav": (media.wav_bytes(1.0), "audio/wav"),
            "bin": (b"\x00\x01 not a media file " * 4, "application/octet-stream"),
        }.get(ext, (media.png_bytes(64, 64), "image/png"))
        if folder == "octet":
            kind = "application/octet-stream"
        if "?v=" in self.path:  # distinct content per variant, for tests that need different file hashes
            body += self.path.split("?v=", 1)[1].encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture(scope="session")
def files_url() -> Iterator[str]:
    """Input files on `localhost`, the one private host the test gateway may fetch from
    (`GENGATE_ALLOW_PRIVATE_HOSTS`); every other loopback spelling stays refused."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MediaFiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()


# The session gateway's operator key (GENGATE_ADMIN_KEY): /v1/admin/overview and the Operators page.
ADMIN_KEY = "test-admin-key-5f0c2b8e9d"  # fixed: pytest may import this module twice (as conftest and tests.conftest)


@pytest.fixture(scope="session")
def env(redis_url: str, sim_url: str, data_dir: Path, storage_env: dict[str, str]) -> dict[str, str]:
    port = procs.free_port()
    return dict(
        os.environ,
        **storage_env,
        GENGATE_REDIS_URL=redis_url,
        GENGATE_DATA_DIR=str(data_dir),
        GENGATE_API_PORT=str(port),
        **{f"GENGATE_{p.upper()}__BASE_URL": f"{sim_url}/{p}" for p in PROVIDERS},
        **{f"GENGATE_{p.upper()}__API_KEY": f"pooled-{p}-key" for p in PROVIDERS},
        # Short provider timeouts so the contract suite's hanging provider times out quickly.
        **{f"GENGATE_{p.upper()}__TIMEOUT": "3" for p in PROVIDERS},
        GENGATE_POLL_INITIAL_SECONDS="0.1",
        GENGATE_PROVIDER_RETRIES="3",
        GENGATE_RETRY_BASE_SECONDS="0.1",
        GENGATE_RETRY_MAX_SECONDS="1",
        GENGATE_POLL_MAX_SECONDS="0.5",
        # Short leases so a killed worker's job is re-driven within the test's patience.
        GENGATE_STEP_LEASE_SECONDS="4",
        GENGATE_ALLOW_PRIVATE_HOSTS="localhost",
        GENGATE_ADMIN_KEY=ADMIN_KEY,
        # Tests make providers fail on purpose, by the dozen: a circuit opened by one test would send
        # another's jobs elsewhere. The fallback suite (tests/resilience/test_fallback.py) opens its own.
        GENGATE_CIRCUIT_FAILURES="1000000",
        GENGATE_WEBHOOK_RETRY_DELAYS="0.2,0.4,0.8",
        GENGATE_WEBHOOK_TIMEOUT_SECONDS="2",
        # Retention sweeps all through the session: it must never take what a test still uses.
        GENGATE_RETENTION_INTERVAL_SECONDS="2",
        # Media jobs in the tests take well under a second; a runaway one is killed after this.
        GENGATE_MEDIA_TIME_LIMIT_SECONDS="8",
        # The session worker's Prometheus endpoint (tests/test_metrics.py reads it).
        GENGATE_WORKER_METRICS_PORT=str(procs.free_port()),
        PYTHONUNBUFFERED="1",
    )


@contextlib.contextmanager
def running_api(env: dict[str, str], log: Path, port: int | None = None) -> Iterator[str]:
    """An API process with `env` (on `port`, or a free one), its base URL while it runs."""
    port = port or procs.free_port()
    proc = procs.start(procs.api_command("127.0.0.1", port), env, log)
    base = f"http://127.0.0.1:{port}"
    procs.wait_http(f"{base}/healthz", 30, proc)
    try:
        yield base
    finally:
        procs.stop(proc)


@pytest.fixture(scope="session")
def api_url(env: dict[str, str], data_dir: Path) -> Iterator[str]:
    with running_api(env, data_dir / "api.log", int(env["GENGATE_API_PORT"])) as base:
        yield base


class Worker:
    """A real Celery worker subprocess that tests may pause, kill -9 and restart."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = procs.worker_command(concurrency=8, hostname=f"test-{uuid.uuid4().hex[:6]}@%h")
        self.proc = procs.start(cmd, self.env, self.log)
        procs.wait_until(lambda: b"ready." in self.log.read_bytes() if self.log.exists() else False,
                         30, "celery worker", self.proc)

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.log.write_bytes(b"")
            self.start()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            self.signal(signal.SIGCONT)
            procs.stop(self.proc)


@pytest.fixture(scope="session")
def _worker(env: dict[str, str], data_dir: Path, api_url: str) -> Iterator[Worker]:
    w = Worker(env, data_dir / "worker.log")
    w.start()
    yield w
    w.stop()


@pytest.fixture
def worker(_worker: Worker) -> Iterator[Worker]:
    _worker.ensure_running()
    yield _worker
    _worker.signal(signal.SIGCONT)  # never leave it paused for the next test
    _worker.ensure_running()


def new_key(rds: redis.Redis) -> str:
    return create_key(rds, create_account(rds, email="test@example.com"))


@pytest.fixture
def client(api_url: str, rds: redis.Redis, worker: Worker) -> Iterator[httpx.Client]:
    """An HTTP client with a fresh account's key: tests never see each other's jobs."""
    with httpx.Client(base_url=f"{api_url}/v1", headers={"Authorization": f"Bearer {new_key(rds)}"}, timeout=10) as c:
        yield c


@pytest.fixture
def sim(sim_url: str) -> Iterator[httpx.Client]:
    """The simulators' control API (`/<provider>/_sim/...`)."""
    with httpx.Client(base_url=sim_url, timeout=5) as c:
        yield c


def sim_requests(sim: httpx.Client, marker: str, provider: str = "fal") -> list[dict]:
    """A simulator's record of accepted submissions whose input carries `marker`."""
    reqs = sim.get(f"/{provider}/_sim/requests").json()["requests"]
    return [r for r in reqs if marker in str(r.get("input"))]


def wait_for(client: httpx.Client, job_id: str, statuses=TERMINAL, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def wait_until(check, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
