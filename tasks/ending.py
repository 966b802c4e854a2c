"""How a job ends, for every kind of job (provider jobs in tasks/pipeline.py, media jobs in
tasks/media.py): completed with a stored result, failed, or settled by the result cache; and what
its end means for the identical jobs that were waiting on it (`release_followers`).

Each ending is one atomic transition in the job store; the loser of a race (a cancel against a
completion) changes nothing, and followers are released by whichever ending won.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from gengate.config.catalog import PASSTHROUGH
from gengate.jobs import cache, health, keys, states
from gengate.jobs.record import MEDIA_PROVIDER, Job
from gengate.storage.fetch import FetchError, UnsafeURL, fetch_hash
from gengate.tasks import enqueue as q
from gengate.tasks.runtime import Runtime

log = logging.getLogger("gengate.pipeline")


def settled_by_cache(rt: Runtime, job: Job, hashes: list[str] | None = None) -> bool:
    """The cache's turn, before any provider call: complete from a cached result, join an identical
    job that is already running, or lead (go on to submit). True when the job needs nothing more now.
    `hashes`: the inputs' content hashes when the caller already has them (media jobs fetch anyway)."""
    if job.cache_mode == cache.NO_STORE:
        return False
    if job.cache_key is None:
        if hashes is None:
            try:
                hashes = input_hashes(rt, cache.input_urls(job.input))
            except (UnsafeURL, FetchError) as exc:
                fail_input(rt, job, str(exc))
                return True
        job.cache_key = cache.compute_key(job.capability, job.model, job.mode, job.input, hashes)
        rt.store.set_fields(job.job_id, cache_key=job.cache_key)
    k, a = cache.decide_args(scope(rt, job), job.cache_key, job.job_id, job.cache_mode)
    decision = cache.decision(rt.cache.decide(keys=k, args=a))
    if decision.kind == "hit" and decision.entry is not None:
        return complete_from_cache(rt, job, decision.entry)
    if decision.kind == "follow":
        # The schedule entry written at creation stays as the backstop: if the leader's release
        # were lost, the sweeper sends this job through submit again, which finds the result.
        rt.store.patch_while(job.job_id, states.QUEUED, leader=decision.leader)
        return True
    return False


def input_hashes(rt: Runtime, urls: list[str]) -> list[str]:
    """sha256 of each input's content: our own files from their records, others fetched (SSRF-safe)."""
    hashes = []
    for url in urls:
        own = cache.own_name(url, rt.settings.file_url_bases)
        if own is not None:
            key, field, encoding = cache.own_hash_lookup(*own)
            sha = cache.decode_own_hash(rt.redis.hget(key, field), encoding)
            if sha is None:
                raise FetchError(f"{url} is not a file of this gateway (unknown or expired)")
            hashes.append(sha)
        else:
            hashes.append(fetch_hash(url).sha256)
    return hashes


def complete_from_cache(rt: Runtime, job: Job, entry: cache.Entry) -> bool:
    """Give the job its own name for the cached content and complete it; False if the blob is gone."""
    try:
        output, sha = entry.materialize(rt.storage, job.job_id)
    except FileNotFoundError:
        rt.redis.delete(keys.cache(scope(rt, job), job.cache_key or ""))
        return False
    rt.store.transition(
        job.job_id, states.COMPLETED, allowed_from=(states.QUEUED, states.PROCESSING), output=output,
        cache={"hit": True, "key": cache.public_key(job.cache_key or "")}, output_sha=sha,
    )
    rt.store.unschedule(job.job_id)
    return True


def release_followers(rt: Runtime, job: Job, entry: cache.Entry | None) -> None:
    """After a leader ends: its followers complete from its result, or (it failed or was cancelled)
    go through submit again, where one of them leads."""
    if job.cache_key is None or job.cache_mode != cache.DEFAULT:
        return
    for follower_id in rt.store.release_followers(scope(rt, job), job.cache_key, job.job_id):
        follower = rt.store.get(follower_id)
        if follower is None or follower.terminal:
            continue
        if entry is None or not complete_from_cache(rt, follower, entry):
            q.enqueue(rt.redis, q.SUBMIT, follower.job_id, follower.capability)


def scope(rt: Runtime, job: Job) -> str:
    return cache.scope(job.account, rt.settings.cache_shared_across_accounts)


def complete(rt: Runtime, job: Job, entry: cache.Entry, url: str) -> None:
    """processing -> completed with the stored result described by `entry` (main output at `url`),
    then caching it and handing it to the jobs that shared this one's work.

    The cache entry is written by the winning transition itself (jobs/store.py `_TRANSITION_LUA`): a
    job that lost to a cancel leaves none, so nobody gets for free a result that its own job was
    cancelled out of, and whoever sees the job completed finds the entry. A job that joined as a
    follower before completes from the entry (`release_followers`)."""
    output: dict[str, Any] = {"url": url, "media_type": entry.media_type}
    if entry.metadata is not None:
        output["metadata"] = entry.metadata
    info = {"hit": False, "key": cache.public_key(job.cache_key)} if job.cache_key else {"hit": False}
    stored = (keys.cache(scope(rt, job), job.cache_key), entry.encode(), rt.settings.cache_ttl_seconds) \
        if job.cache_key and job.cache_mode != cache.NO_STORE else None
    won, _ = rt.store.transition(job.job_id, states.COMPLETED, allowed_from=(states.PROCESSING,), output=output,
                                 cache=info, output_sha=entry.sha, cache_write=stored)
    if won and job.provider != MEDIA_PROVIDER and job.mode != PASSTHROUGH:  # passthrough: no routing, no bound
        # How long the model takes on this provider, from this attempt's start: fastest-first routing.
        started = datetime.fromisoformat((job.attempt_started_at or job.created_at).replace("Z", "+00:00"))
        health.record_duration(rt.redis, job.provider, job.model.split(":", 1)[-1],
                               (datetime.now(timezone.utc) - started).total_seconds())
    rt.store.unschedule(job.job_id)
    release_followers(rt, job, entry if won else None)
    log.info("job %s: %s", job.job_id, "completed" if won else "finished but lost the race (cancelled)")


def fail(rt: Runtime, job: Job, message: str, *, code: str, status: int | None = None) -> None:
    """Fail the job with the spec's ProviderError, naming the provider in the job's `error` string."""
    detail = {"error": "ProviderError", "code": code, "provider": job.provider, "status": status}
    error = f"ProviderError ({job.provider}{f', HTTP {status}' if status else ''}): {message}"
    won, _ = rt.store.transition(job.job_id, states.FAILED, error=error, error_detail=detail)
    rt.store.unschedule(job.job_id)
    release_followers(rt, job, None)
    if won:
        log.info("job %s: failed (%s): %s", job.job_id, code, error)


def fail_input(rt: Runtime, job: Job, message: str, *, error: str = "ValidationError",
               code: str = "input_unavailable") -> None:
    """A failure that is not the provider's: an input URL refused or unreadable, a media command
    that failed. The error string starts with the spec's error name."""
    detail = {"error": error, "code": code, "provider": job.provider, "status": None}
    rt.store.transition(job.job_id, states.FAILED, error=f"{error}: {message}", error_detail=detail)
    rt.store.unschedule(job.job_id)
    release_followers(rt, job, None)
