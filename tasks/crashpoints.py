"""Fault injection for the resilience suite (tests/resilience/): SIGKILL this worker process at a
named point of the pipeline, so a test can prove what a crash *exactly there* leaves behind.

Off unless `GENGATE_CRASH_AT` is set; then `crashpoint(name)` costs one dict look-up. Never set it
in production. The setting is a comma-separated list of `point:rule`:

    submit.after_accept:0.3    kill with probability 0.3 each time the point is reached
    poll.before:#3             kill the 3rd time the point is reached in this process
    *:0.05                     any point, probability 0.05

The points (each a one-line call in tasks/pipeline.py):

    submit.start             a submit message was taken, nothing done yet (the job is still queued)
    submit.before_send       processing, the provider not called yet
    submit.after_accept      the provider accepted the request, its handle not saved yet
    submit.after_handle      the handle saved, the first poll not made
    poll.before              about to poll the provider
    poll.after_result        the provider's result recorded, finalize not started
    finalize.during_download inside the copy of the provider's output into storage (first chunk)
    finalize.before_complete the output stored, the job not yet completed

A kill is `SIGKILL` to the whole process (not an exception): no `finally`, no ack, no cleanup, as
when the kernel's OOM killer or a lost machine ends a worker.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterable, Iterator
from functools import lru_cache

POINTS = (
    "submit.start", "submit.before_send", "submit.after_accept", "submit.after_handle",
    "poll.before", "poll.after_result", "finalize.during_download", "finalize.before_complete",
)

_lock = threading.Lock()
_reached: dict[str, int] = {}


@lru_cache(maxsize=4)
def _rules(spec: str) -> dict[str, tuple[str, float]]:
    """'point:0.3,other:#2' -> {point: ('p', 0.3), other: ('n', 2)}; unknown points are refused."""
    rules: dict[str, tuple[str, float]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, rule = part.partition(":")
        if name != "*" and name not in POINTS:
            raise ValueError(f"GENGATE_CRASH_AT: unknown crash point {name!r} (one of {', '.join(POINTS)})")
        rules[name] = ("n", float(rule[1:])) if rule.startswith("#") else ("p", float(rule or 1))
    return rules


def _spec() -> str:
    from gengate.config.settings import get_settings

    return get_settings().crash_at


def crashpoint(name: str) -> None:
    """SIGKILL this process here if `GENGATE_CRASH_AT` says so; otherwise nothing."""
    spec = _spec()
    if not spec:
        return
    rules = _rules(spec)
    rule = rules.get(name) or rules.get("*")
    if rule is None:
        return
    kind, value = rule
    with _lock:
        _reached[name] = count = _reached.get(name, 0) + 1
    if (kind == "n" and count == int(value)) or (kind == "p" and random.random() < value):
        os.kill(os.getpid(), signal.SIGKILL)


def crashing(name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`chunks`, with `crashpoint(name)` after the first one has gone through (a copy in progress)."""
    for i, chunk in enumerate(chunks):
        yield chunk
        if i == 0:
            crashpoint(name)
