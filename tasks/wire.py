"""Build the exact Redis list entry kombu would LPUSH for a Celery task, without Celery.

Why: the API is an asyncio process and Celery's `apply_async` is blocking and costs ~1 ms of CPU a
call, which caps enqueueing near ~850/s. Building the message here (a few µs) lets the API write the
job record AND enqueue its first step in ONE `redis.asyncio` MULTI/EXEC round trip, and the real
Celery worker consumes it unchanged.

What it reproduces: `app.send_task(name, args, kwargs, queue=q)` with our app settings
(workers/celery_app.py: JSON serializer, no result backend) over kombu's Redis transport — Celery task
message protocol v2, body base64-encoded inside kombu's JSON envelope. Checked against Celery 5.7.0 /
kombu 5.7.0; tests/test_wire.py diffs it field by field against what `send_task` really pushes, so a
format change in an upgrade fails loudly there.

Deliberate differences from `send_task`:
  * JSON is written with orjson (compact, raw UTF-8) instead of kombu's `json.dumps`; the worker's
    JSON decoder reads both the same. Args must therefore be JSON-native (no datetimes, str dict keys).
  * `argsrepr`/`kwargsrepr` (display only: logs, Flower) are a plain `repr` capped at
    `_REPR_MAX` chars rather than Celery's `saferepr` — identical for short, simple values.
  * No `task-sent` event is published (the app has `task_send_sent_event=True`); the worker still
    emits task-received/started/succeeded.
  * `reply_to` is a per-process uuid (Celery uses a per-thread one); nothing reads it without a
    result backend.
"""

from __future__ import annotations

import base64
import os
import socket
import uuid
from typing import Any

import orjson

_REPR_MAX = 200

# Protocol-v2 "embed" part of the body: no callbacks, errbacks, chain or chord.
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}

_proc: tuple[int, str, str] | None = None  # (pid, origin, reply_to); recomputed after a fork


def _process_ids() -> tuple[str, str]:
    """`origin` ("gen<pid>@<host>", as Celery's anon_nodename) and `reply_to`, per process.

    Uvicorn/gunicorn fork after import, so a value cached at import time would carry the parent pid.
    """
    global _proc
    pid = os.getpid()
    if _proc is None or _proc[0] != pid:
        _proc = (pid, f"gen{pid}@{socket.gethostname()}", str(uuid.uuid4()))
    return _proc[1], _proc[2]


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 3] + "..."


def celery_message(
    task_name: str,
    args: list[Any] | tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    queue: str,
    task_id: str | None = None,
) -> tuple[str, bytes]:
    """Return (redis_list_key, payload) to LPUSH so a Celery worker consuming `queue` runs the task.

    The key is the bare queue name: that is kombu's list for the default priority 0. Other priorities
    live in f"{queue}\x06\x16{p}" (p bucketed down to 0/3/6/9; lower is consumed first). LPUSH, not
    RPUSH: kombu BRPOPs, so LPUSH keeps FIFO order with messages Celery itself sent.
    """
    if not isinstance(args, (list, tuple)):
        raise TypeError("task args must be a list or tuple")
    # Celery normalises empty args/kwargs the same way, which shows in argsrepr ("()" and "{}").
    args = args or ()
    kwargs = kwargs or {}
    task_id = task_id or str(uuid.uuid4())
    origin, reply_to = _process_ids()
    body = base64.b64encode(orjson.dumps([args, kwargs, _EMBED])).decode("ascii")
    envelope = {
        "body": body,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task_name,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            # None/None: the worker applies its own task_time_limit/task_soft_time_limit.
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": _short_repr(args),
            "kwargsrepr": _short_repr(kwargs),
            "origin": origin,
            # None (not True) is what send_task writes; the worker then uses the task's own setting.
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": reply_to,
            "delivery_mode": 2,  # persistent
            # The anonymous exchange "" routes by routing_key == queue name, which is also what kombu's
            # unacked-restore uses to requeue after a lost worker, so no _kombu.binding.* set is needed.
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            # Field name in kombu's `unacked` hash while a worker holds the message: must be unique.
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return queue, orjson.dumps(envelope)
