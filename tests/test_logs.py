"""Structured logs: the API's and the worker's log files are JSON lines, a job's lines carry its
`job_id` and `account`, and no secret (a user's provider key, a bearer token, a pooled provider key)
reaches any line. Plus the formatter's redaction, in-process."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from pathlib import Path

import httpx
import redis

from gengate.config import logs
from tests.conftest import wait_for, wait_until

REQUIRED = {"ts", "level", "logger", "msg", "service"}


# What Celery prints from its signal handler instead of logging it (a restarted test worker's log
# holds it); everything else must be a JSON line.
_PRINTED = re.compile(r"^worker: (Warm|Cold) shutdown \(MainProcess\)$")


def _lines(path: Path) -> list[dict]:
    out = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.strip() and not _PRINTED.match(raw):
            try:
                out.append(json.loads(raw))
            except ValueError:
                raise AssertionError(f"{path.name}: not a JSON line: {raw[:300]!r}") from None
    return out


def _account(client: httpx.Client, rds: redis.Redis) -> str:
    key = client.headers["Authorization"].split()[-1]
    return rds.hget(f"gengate:apikey:{key.split('_')[2]}", "account").decode()


def test_api_and_worker_logs_are_json_lines(client: httpx.Client, data_dir: Path):
    job_id = client.post("/image", json={"model": "flux-schnell", "prompt": f"json {uuid.uuid4().hex}"}).json()["job_id"]
    wait_for(client, job_id)
    for name, service in (("api.log", "api"), ("worker.log", "worker")):
        lines = _lines(data_dir / name)
        assert lines, name
        for line in lines:
            assert REQUIRED <= set(line), line
            assert line["service"] == service
            assert line["ts"].endswith("Z") and line["level"] in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
    # uvicorn's own lines and Celery's go through the same formatter.
    assert any(line["logger"].startswith("uvicorn") for line in _lines(data_dir / "api.log"))
    assert not any(line["logger"] == "uvicorn.access" for line in _lines(data_dir / "api.log"))  # stays off
    assert any(line["logger"].startswith("celery") for line in _lines(data_dir / "worker.log"))


def test_a_jobs_lines_carry_its_job_id_and_account(client: httpx.Client, rds: redis.Redis, data_dir: Path):
    account = _account(client, rds)
    job_id = client.post("/image", json={"model": "flux-schnell", "prompt": f"ctx {uuid.uuid4().hex}"}).json()["job_id"]
    assert wait_for(client, job_id)["status"] == "completed"

    def mine(name: str) -> list[dict]:
        return [line for line in _lines(data_dir / name) if job_id in line["msg"] or line.get("job_id") == job_id]

    worker = wait_until(lambda: [l for l in mine("worker.log") if "completed" in l["msg"]] and mine("worker.log"),
                        10, "the worker's completion line")
    api = mine("api.log")
    assert any("created" in line["msg"] for line in api), api
    for line in api + worker:
        assert line.get("job_id") == job_id and line.get("account") == account, line
    # Celery's own lines about the job's tasks carry them too (logged inside the task's context).
    assert any(line["logger"].startswith("celery") for line in worker), worker


def test_secrets_reach_no_log_line(client: httpx.Client, api_url: str, data_dir: Path, env: dict[str, str]):
    canary = f"byok-canary-{uuid.uuid4().hex}"
    r = client.post("/image", json={"model": "flux-schnell", "prompt": f"secret {uuid.uuid4().hex}"},
                    headers={"X-Provider-Key-Fal": canary})
    assert r.status_code == 202, r.text
    assert wait_for(client, r.json()["job_id"])["status"] == "completed"
    bad_token = f"gg_live_{uuid.uuid4().hex[:8]}_{uuid.uuid4().hex}"
    assert httpx.get(f"{api_url}/v1/jobs", headers={"Authorization": f"Bearer {bad_token}"}).status_code == 401
    own_token = client.headers["Authorization"].split()[-1]
    pooled = env["GENGATE_FAL__API_KEY"]
    wait_until(lambda: any(r.json()["job_id"] in line for line in (data_dir / "worker.log").read_text().splitlines()),
               10, "the job's worker lines")
    for log in (data_dir / "api.log", data_dir / "worker.log"):
        text = log.read_text()
        for secret in (canary, bad_token, own_token, pooled):
            assert secret not in text, (log.name, secret)


def _format(formatter: logging.Formatter, msg: str, *args) -> str:
    record = logging.LogRecord("gengate.test", logging.WARNING, __file__, 1, msg, args, None)
    return formatter.format(record)


def test_the_formatter_masks_secrets_and_adds_the_context():
    logs.set_secrets(["pooled-key-0123456789"])
    fmt = logs.JsonFormatter("api")
    scope = {"type": "http", "path_params": {"job_id": "job_abc"},
             "headers": [(b"authorization", b"Bearer gg_live_k1_s3cr3t"), (b"x-provider-key-fal", b"user-key-xyz")]}
    token = logs.begin(scope=scope)
    try:
        logs.bind(account="acct_1")
        out = json.loads(_format(fmt, "saw %s and %s and %s; whsec_abcDEF123= ; pooled-key-0123456789",
                                 "gg_live_k1_s3cr3t", {"X-Provider-Key-Fal": "user-key-xyz"}, "Key id:verysecret"))
    finally:
        logs.end(token)
    assert out["job_id"] == "job_abc" and out["account"] == "acct_1" and out["service"] == "api"
    for secret in ("s3cr3t", "user-key-xyz", "abcDEF123", "verysecret", "pooled-key-0123456789"):
        assert secret not in out["msg"], out["msg"]
    assert "[REDACTED]" in out["msg"]
    # Outside any context: no ids, still redacted.
    plain = json.loads(_format(fmt, "Authorization: Bearer abcdefgh12345"))
    assert "job_id" not in plain and "abcdefgh12345" not in plain["msg"]


def test_exceptions_and_text_format_are_redacted_too():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter("worker"))
    logger = logging.getLogger("gengate.test.text")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.context(job_id="job_t"):
            logs.protect("unsealed-byok-key-42")
            try:
                raise RuntimeError("provider said: bad key unsealed-byok-key-42")
            except RuntimeError:
                logger.exception("call failed with api_key=abc123456")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "[job_t]" in text and "unsealed-byok-key-42" not in text and "abc123456" not in text
    assert "RuntimeError" in text  # the traceback is kept, masked


def test_settings_secrets_include_every_provider_key():
    from gengate.config.settings import Settings

    s = Settings(fal={"api_key": "fal-id-1234:fal-secret-5678"}, replicate={"api_key": "r8_replicatekey"},
                 secret_key="server-secret-key")
    found = logs.settings_secrets(s)
    assert {"fal-id-1234:fal-secret-5678", "fal-secret-5678", "r8_replicatekey", "server-secret-key"} <= set(found)
