"""tasks/wire.py against the real thing: kombu's own messages, and a real Celery worker consuming ours.

Everything runs against a private redis-server started for this module. Run with `-s` to see the
measured build time.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from gengate import procs
from gengate.workers.celery_app import app as gengate_app
from gengate.tasks.wire import celery_message

REPO = Path(__file__).resolve().parents[1]

# Fields that are fresh per message (or per process) by design; everything else must match kombu.
VOLATILE_HEADERS = {"id", "root_id", "origin"}
VOLATILE_PROPERTIES = {"correlation_id", "reply_to", "delivery_tag"}


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A Redis of this module's own: the tests flush whole databases."""
    proc, url = procs.start_redis(tmp_path_factory.mktemp("wire-redis"), appendonly=False)
    yield url.rsplit("/", 1)[0]
    procs.stop(proc, 5)


def _db(redis_url: str, db: int) -> tuple[str, redis.Redis]:
    url = f"{redis_url}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    return url, client


def _decode(payload: bytes) -> dict[str, Any]:
    envelope = json.loads(payload)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    return envelope


CASES: list[tuple[str, Any, Any, str]] = [
    ("wire.record", ["k1", "v1"], None, "video"),
    ("wire.record", ("k2", "ünï 🎨"), {"suffix": "!"}, "speech"),
    ("tasks.steps.start", [], {}, gengate_app.conf.task_default_queue),  # default queue, empty args
    ("wire.record", [{"a": [1, 2.5, None, True]}], {"n": 3}, "image"),
]


@pytest.mark.parametrize(("name", "args", "kwargs", "queue"), CASES)
def test_format_matches_send_task(redis_url: str, name: str, args: Any, kwargs: Any, queue: str) -> None:
    url, client = _db(redis_url, 0)
    app = Celery("wire-format", broker=url)
    app.conf.update(
        {k: v for k, v in gengate_app.conf.changes.items() if k not in {"broker_url", "include", "deprecated_settings"}}
    )
    try:
        app.send_task(name, args=args, kwargs=kwargs, queue=queue)
    finally:
        app.close()
    lists = [k.decode() for k in client.keys() if client.type(k) == b"list"]
    assert len(lists) == 1, lists
    (theirs_raw,) = client.lrange(lists[0], 0, -1)
    theirs = _decode(theirs_raw)

    key, payload = celery_message(name, args, kwargs, queue=queue)
    ours = _decode(payload)
    assert key == lists[0] == queue

    assert ours.keys() == theirs.keys()
    for part, volatile in (("headers", VOLATILE_HEADERS), ("properties", VOLATILE_PROPERTIES)):
        assert ours[part].keys() == theirs[part].keys(), part
        for field in ours[part].keys() - volatile:
            assert ours[part][field] == theirs[part][field], f"{part}.{field}"
    assert ours["properties"]["delivery_info"].keys() == theirs["properties"]["delivery_info"].keys()
    for field in ours.keys() - {"headers", "properties"}:
        assert ours[field] == theirs[field], field

    h, p = ours["headers"], ours["properties"]
    assert h["id"] == h["root_id"] == p["correlation_id"]
    assert re.fullmatch(rf"gen{os.getpid()}@.+", h["origin"])
    assert p["delivery_tag"] != h["id"]
    # An explicit task id is used as-is.
    assert json.loads(celery_message(name, args, kwargs, queue=queue, task_id="fixed")[1])["headers"]["id"] == "fixed"


def test_real_worker_runs_each_message_once(redis_url: str, tmp_path: Path) -> None:
    url, client = _db(redis_url, 1)
    queue = "wire-test"
    expected: dict[str, str] = {}
    payloads: list[bytes] = []
    for i in range(50):
        if i % 5 == 0:  # kwargs + non-ASCII text
            key, value, suffix = f"k{i}", f"ünï 🎨 «{i}»", " ✓"
            _, payload = celery_message("wire.record", [key], {"value": value, "suffix": suffix}, queue=queue)
            expected[key] = value + suffix
        else:
            key, value = f"k{i}", f"v{i}"
            list_key, payload = celery_message("wire.record", [key, value], queue=queue)
            assert list_key == queue
            expected[key] = value
        payloads.append(payload)
    # Enqueued before the worker exists: it must pick up what was already waiting, like after a restart.
    client.lpush(queue, *payloads)

    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-P", "-m", "celery", "-A", "wire_app:app", "worker", "-Q", queue, "--pool", "threads",
             "-c", "2", "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
            cwd=tmp_path,  # gengate comes from its installed package, wherever the worker runs
            env={**os.environ, "WIRE_BROKER_URL": url, "PYTHONPATH": str(REPO / "tests")},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            procs.wait_until(lambda: client.llen("wire:runs") >= len(expected), 15, "50 task runs")
            # Late ack: the ack (HDEL from kombu's `unacked` hash) lands just after the task returns.
            procs.wait_until(lambda: client.hlen("unacked") == 0, 5, "all messages acked")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- worker log ---\n{log_path.read_text()[-4000:]}") from None
        time.sleep(0.3)  # room for a duplicate delivery to show up before counting
        runs = [k.decode() for k in client.lrange("wire:runs", 0, -1)]
        assert sorted(runs) == sorted(expected), "each message must run exactly once"
        assert {k: client.get(k).decode() for k in expected} == expected
        # Every run saw its own message still in `unacked`: acks_late held it while the task ran.
        assert all(int(h) >= 1 for h in client.lrange("wire:held", 0, -1))
        assert client.llen(queue) == 0
        assert client.zcard("unacked_index") == 0
    finally:
        procs.stop(worker, 10)


def test_build_time() -> None:
    n = 10_000
    args, kwargs = ["job_01HZX3Q8V2Y7", "image"], {"attempt": 1}
    start = time.perf_counter()
    for _ in range(n):
        celery_message("tasks.steps.submit", args, kwargs, queue="image")
    per_message_us = (time.perf_counter() - start) / n * 1e6
    print(f"\ncelery_message: {n} messages, {per_message_us:.2f} µs each")
