"""The job store's state machine against a real Redis: atomic, final, one winner under races."""

from __future__ import annotations

import threading

import pytest
import redis

from gengate.jobs import keys, states
from gengate.jobs.record import Job, new_job_id
from gengate.jobs.store import JobStore


@pytest.fixture
def store(rds: redis.Redis) -> JobStore:
    return JobStore(rds, ttl_seconds=3600)


def _new(store: JobStore, status: str = states.QUEUED) -> str:
    job = Job(new_job_id(), "acct", "image", "fal:flux-schnell", "fal", "fal-ai/flux/schnell", {"prompt": "x"})
    store.redis.hset(keys.job(job.job_id), mapping=job.to_fields())
    if status != states.QUEUED:
        assert store.transition(job.job_id, status, allowed_from=(states.QUEUED,))[0]
    return job.job_id


@pytest.mark.parametrize("start,to,ok", [
    (states.QUEUED, states.PROCESSING, True),
    (states.QUEUED, states.CANCELLED, True),
    (states.QUEUED, states.FAILED, True),
    (states.QUEUED, states.COMPLETED, True),  # a cache hit, or an identical job's result
    (states.PROCESSING, states.COMPLETED, True),
    (states.PROCESSING, states.QUEUED, False),
    (states.COMPLETED, states.CANCELLED, False),
    (states.COMPLETED, states.FAILED, False),
    (states.CANCELLED, states.PROCESSING, False),
    (states.FAILED, states.COMPLETED, False),
])
def test_transitions(store: JobStore, start: str, to: str, ok: bool):
    job_id = _new(store, states.PROCESSING if start in (states.COMPLETED,) else start)
    if start == states.COMPLETED:
        assert store.transition(job_id, states.COMPLETED)[0]
    if to == states.QUEUED:
        won = store.transition(job_id, to, allowed_from=(states.QUEUED,))[0]
    else:
        won = store.transition(job_id, to)[0]
    assert won is ok
    assert store.get(job_id).status == (to if ok else start)


def test_missing_job_is_not_transitioned(store: JobStore):
    assert store.transition("job_missing", states.CANCELLED) == (False, None)
    assert not store.redis.exists(keys.job("job_missing"))


def test_racing_complete_and_cancel_have_exactly_one_winner(store: JobStore):
    for _ in range(200):
        job_id = _new(store, states.PROCESSING)
        results: dict[str, bool] = {}
        barrier = threading.Barrier(2)

        def go(to: str) -> None:
            barrier.wait()
            results[to] = store.transition(job_id, to, output={"url": "u", "media_type": "image/png"}
                                           if to == states.COMPLETED else None)[0]

        threads = [threading.Thread(target=go, args=(s,)) for s in (states.COMPLETED, states.CANCELLED)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == [False, True]
        final = store.get(job_id)
        assert results[final.status] is True
        assert (final.output is not None) == (final.status == states.COMPLETED)
        events = store.redis.xrange(keys.job_events(job_id))
        assert [e[b"status"] for _, e in events] == [b"processing", final.status.encode()]


def test_terminal_jobs_get_a_ttl(store: JobStore):
    job_id = _new(store, states.PROCESSING)
    store.transition(job_id, states.FAILED, error="boom")
    assert 0 < store.redis.ttl(keys.job(job_id)) <= 3600
    assert 0 < store.redis.ttl(keys.job_events(job_id)) <= 3600
