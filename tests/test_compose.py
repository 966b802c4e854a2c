"""docker-compose.yml and the Dockerfile, checked without Docker: every service runs a command the
project really provides, the same one `gengate up` starts, and the deployment keeps its promises
(durable Redis, every queue served once, one shared data volume, Flower behind credentials)."""

from __future__ import annotations

import json
import re
import shlex
from collections import Counter
from pathlib import Path

import pytest
import yaml

from gengate.config.docs import variable_names
from gengate import cli, procs
from gengate.config.settings import Settings
from gengate.tasks.queues import ALL_QUEUES, MEDIA_QUEUE

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"GENGATE_SECRET_KEY": "a-test-secret", "FLOWER_BASIC_AUTH": "ops:pw", "GENGATE_METRICS_TOKEN": "m-token",
            "GENGATE_REDIS_PASSWORD": "r-pass"}
_VAR = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}|\$(\w+)")


class MissingVariable(Exception):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's variable substitution: `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$`."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3)
        got = env.get(name)
        if op in (":-", "-"):
            return got if got or (op == "-" and got is not None) else arg
        if op in (":?", "?"):
            if got is None or (op == ":?" and not got):
                raise MissingVariable(name)
            return got
        return got or ""

    return _VAR.sub(one, value)


def raw_compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose(env: dict[str, str] | None = None) -> dict:
    """The compose file as Compose would run it (extension fields merged, variables substituted)."""
    doc = raw_compose()
    return interpolate({k: v for k, v in doc.items() if not k.startswith("x-")}, REQUIRED if env is None else env)


def entrypoint() -> list[str]:
    line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("ENTRYPOINT"))
    return json.loads(line.split(None, 1)[1])


def gengate_services(doc: dict) -> dict[str, dict]:
    """The services that run the project's image (built from the Dockerfile)."""
    return {name: svc for name, svc in doc["services"].items() if "build" in svc}


def argv(svc: dict) -> list[str]:
    """What the container runs: the image's entry point and the service's command."""
    assert "entrypoint" not in svc, "a service must not bypass the `gengate` entry point"
    command = svc["command"]
    return entrypoint() + (shlex.split(command) if isinstance(command, str) else [str(c) for c in command])


def gengate_args(service_argv: list[str]) -> list[str]:
    """The arguments of the service's `gengate` command, checked against the real CLI parser: a valid
    command, and one that runs as a service."""
    assert service_argv[0] == "gengate"
    try:
        args = cli.build_parser().parse_args(service_argv[1:])
    except SystemExit:
        pytest.fail(f"`{shlex.join(service_argv)}` is not a valid gengate command")
    assert getattr(args, "long_running", False), f"`{shlex.join(service_argv)}` starts no long-running process"
    return service_argv[1:]


def test_services_and_no_beat():
    doc = compose()
    assert set(doc["services"]) == {"redis", "api", "worker", "media-worker", "flower", "minio", "minio-init"}
    # the object store is an option: only `--profile s3` starts it
    assert {name for name, svc in doc["services"].items() if svc.get("profiles")} == {"minio", "minio-init"}
    assert all(svc["profiles"] == ["s3"] for svc in doc["services"].values() if svc.get("profiles"))
    # The design has no beat: the comment says why, so nobody adds one by habit.
    assert "No `beat` service" in (ROOT / "docker-compose.yml").read_text()


def test_every_service_runs_what_gengate_up_starts():
    """Same entry points as `gengate up` (cli.cmd_up): the provider worker on every queue but media,
    the media worker with two threads and its own name, the API; and Flower."""
    services = gengate_services(compose())
    provider_queues = ",".join(q for q in ALL_QUEUES if q != MEDIA_QUEUE)
    expected = {
        "api": procs.api_args("0.0.0.0", 8000, 2),
        "worker": procs.worker_args(provider_queues),
        "media-worker": procs.worker_args(MEDIA_QUEUE, 2, "media@%h"),
        "flower": procs.flower_args(5555, "0.0.0.0"),
    }
    assert set(services) == set(expected)
    for name, svc in services.items():
        assert gengate_args(argv(svc)) == expected[name], name
    # GENGATE_API_WORKERS sets the API's processes.
    api = gengate_services(compose(dict(REQUIRED, GENGATE_API_WORKERS="5")))["api"]
    assert gengate_args(argv(api)) == procs.api_args("0.0.0.0", 8000, 5)


def test_worker_queues_cover_every_queue_exactly_once():
    taken = Counter()
    for svc in gengate_services(compose()).values():
        args = argv(svc)
        if args[1] == "worker":
            taken.update(args[args.index("-Q") + 1].split(","))
    assert taken == Counter(ALL_QUEUES)


def test_scalable_workers_have_no_fixed_names_or_ports():
    for name in ("worker", "media-worker"):
        svc = compose()["services"][name]
        assert "container_name" not in svc and "ports" not in svc, name


def test_redis_is_durable_private_and_checked():
    redis = compose()["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    cmd = " ".join(redis["command"])
    assert "--appendonly yes" in cmd and "--appendfsync everysec" in cmd and "--maxmemory-policy noeviction" in cmd
    assert "redis-cli" in redis["healthcheck"]["test"] and "ping" in redis["healthcheck"]["test"]
    assert [v for v in redis["volumes"] if v.endswith(":/data")], "Redis keeps its AOF in a volume"
    assert "ports" not in redis
    # a password, the same one every gengate service is given; redis-cli's health check has it too
    password = REQUIRED["GENGATE_REDIS_PASSWORD"]
    assert f"--requirepass {password}" in cmd
    assert redis["environment"]["REDISCLI_AUTH"] == password
    for name, svc in gengate_services(compose()).items():
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert svc["environment"]["GENGATE_REDIS_URL"] == "redis://redis:6379/0", name
        assert svc["environment"]["GENGATE_REDIS_PASSWORD"] == password, name
    # a managed Redis instead (TLS, an ACL user): the URL is the operator's to set
    managed = compose({**REQUIRED, "GENGATE_REDIS_URL": "rediss://cache.example.com:6380/0"})
    assert {svc["environment"]["GENGATE_REDIS_URL"] for svc in gengate_services(managed).values()} == {
        "rediss://cache.example.com:6380/0"}


def test_one_data_volume_shared_by_api_and_workers():
    doc = compose()
    mounts = {}
    for name, svc in gengate_services(doc).items():
        assert svc["environment"]["GENGATE_DATA_DIR"] == "/data", name
        for volume in svc.get("volumes", []):
            source, target = volume.split(":")[:2]
            if target == "/data":
                mounts[name] = source
    assert {"api", "worker", "media-worker"} <= set(mounts)
    assert len(set(mounts.values())) == 1, mounts
    (shared,) = set(mounts.values())
    assert shared in doc["volumes"], "a named volume, not a host path"
    redis_volume = doc["services"]["redis"]["volumes"][0].split(":")[0]
    assert redis_volume != shared


def test_environment_names_real_settings_and_requires_the_shared_secret():
    names = variable_names()
    assert {"GENGATE_SECRET_KEY", "GENGATE_FAL__API_KEY"} <= names
    for name, svc in gengate_services(compose()).items():
        gengate_vars = {k for k in svc["environment"] if k.startswith("GENGATE_")}
        assert gengate_vars <= names, f"{name}: not settings: {gengate_vars - names}"
    # The secret and Flower's credentials are required: Compose refuses to start without them.
    for missing in REQUIRED:
        with pytest.raises(MissingVariable, match=missing):
            compose({k: v for k, v in REQUIRED.items() if k != missing})
    # Provider keys are passed through (null value), never set to an empty string, which would count
    # as a configured key.
    env = raw_compose()["x-gengate-env"]
    for provider in ("FAL", "REPLICATE", "ELEVENLABS", "HIGGSFIELD", "PIAPI"):
        assert f"GENGATE_{provider}__API_KEY" in env and env[f"GENGATE_{provider}__API_KEY"] is None


def test_flower_requires_credentials_and_stays_on_loopback():
    flower = compose()["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == REQUIRED["FLOWER_BASIC_AUTH"]
    assert flower["ports"] and all(p.startswith("127.0.0.1:") for p in flower["ports"])


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"apt-get install -y --no-install-recommends ffmpeg", text)
    assert entrypoint() == ["gengate"]
    assert re.search(r'^RUN pip install "\.\[server\]"( |$)', text, re.M), "the server, without test extras"
    assert "[test]" not in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert "GENGATE_DATA_DIR=/data" in text and re.search(r"^EXPOSE 8000$", text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".gengate", ".env", ".pytest_cache"} <= set(ignored)
    assert "README.md" not in ignored, "pyproject.toml's readme is needed to build the package"


def test_api_command_serves_with_several_processes(env):
    """The API service's command, run for real: `--workers 2` means two uvicorn processes."""
    port = procs.free_port()
    proc = procs.start([*procs.gengate_command(), "api", "--host", "127.0.0.1", "--port", str(port),
                        "--workers", "2"], env)
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/healthz", 30, proc)
        children = (Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                    if Path(f"/proc/{proc.pid}").exists() else [])
        uvicorn_workers = [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
        assert len(uvicorn_workers) == 2, children
    finally:
        procs.stop(proc)


def test_readme_shows_the_compose_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deployment with Docker Compose"):readme.index("## Scaling workers")]
    shown = dict(re.findall(r"^\| `([\w-]+)` \| `([^`]+)` \|", section, re.M))
    services = raw_compose()["services"]
    assert set(shown) == set(services)
    for name, svc in services.items():
        command = [str(c) for c in svc["command"]]
        if "build" in svc:  # the project's image: its entry point runs first
            command = entrypoint() + command
        assert shlex.split(shown[name]) == command, name


def test_containers_run_with_least_privilege():
    """Every container of the project's image: read-only root, scratch on tmpfs, no capabilities,
    no privilege gained through setuid, memory and process limits; Redis bounded too."""
    doc = compose()
    for name, svc in gengate_services(doc).items():
        assert svc["read_only"] is True, name
        assert "/tmp" in svc["tmpfs"], name
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert svc["mem_limit"] and int(str(svc["pids_limit"])) > 0, name
    assert doc["services"]["redis"]["mem_limit"] and doc["services"]["redis"]["pids_limit"]
    # the media worker's limit holds its two FFmpeg runs at their own address-space cap, and itself
    media = doc["services"]["media-worker"]["mem_limit"]
    assert media.endswith("g") and int(media[:-1]) * 1024**3 > 2 * Settings().media_max_memory_bytes


def test_published_metrics_need_a_token():
    """The API's port is published, /metrics with it: compose requires the metrics token."""
    api = compose()["services"]["api"]
    assert api["environment"]["GENGATE_METRICS_TOKEN"] == REQUIRED["GENGATE_METRICS_TOKEN"]
    assert api["environment"]["GENGATE_SECRET_KEY"] == REQUIRED["GENGATE_SECRET_KEY"]  # the shared env is kept


def test_object_storage_is_an_option_every_gengate_service_is_given():
    """With the `s3` profile's MinIO (or any S3 store), the storage settings and the standard AWS
    credentials reach every gengate container; MinIO's root user is those credentials, and a one-off
    container creates the bucket."""
    env = {**REQUIRED, "GENGATE_STORAGE_URL": "s3://gengate/data", "GENGATE_S3_ENDPOINT_URL": "http://minio:9000",
           "AWS_ACCESS_KEY_ID": "gg", "AWS_SECRET_ACCESS_KEY": "secret"}
    doc = compose(env)
    for name, svc in gengate_services(doc).items():
        assert "GENGATE_STORAGE_URL" in svc["environment"] and "AWS_SECRET_ACCESS_KEY" in svc["environment"], name
    raw = raw_compose()["x-gengate-env"]
    for name in ("GENGATE_STORAGE_URL", "GENGATE_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert raw[name] is None, name  # passed through from the shell or .env, never set empty
    minio = doc["services"]["minio"]
    assert minio["environment"] == {"MINIO_ROOT_USER": "gg", "MINIO_ROOT_PASSWORD": "secret"}
    assert "ports" not in minio and "mc ready local" in " ".join(minio["healthcheck"]["test"])
    init = doc["services"]["minio-init"]
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb --ignore-existing local/gengate" in init["command"][0]
