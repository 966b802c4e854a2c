"""What each pipeline step does, as plain functions over a `Runtime` (the Celery tasks and the
sweeper only call these).

Every step re-reads the job and acts on what it finds, so a redelivered or repeated call resumes
the job instead of repeating work. The provider's request handle is written before anything else
after a submission, and a job is never submitted twice: a submission whose outcome is unknown
(the worker died between sending it and saving the handle) fails the job rather than risk a
second, billed provider run. A step that died before sending (the job still carries `unsent`) is
no such case: the sweeper sends the job itself.

`crashpoint(...)` lines are fault injection for the resilience suite (tasks/crashpoints.py); they do
nothing unless GENGATE_CRASH_AT is set.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import httpx

from gengate.adapters import get_adapter
from gengate.adapters.base import CancelVerdict, Failed, Finished, Output, ProviderFailure, ProviderRequest, Running, Submitted
from gengate.config import logs
from gengate.jobs import accounts, cache, health, states
from gengate.jobs.record import MEDIA_PROVIDER, Job
from gengate.jobs.sealing import SealError, job_token, unseal
from gengate.storage.fetch import FetchError, Policy, UnsafeURL, open_url
from gengate.storage.fetch import TooLarge as FetchTooLarge
from gengate.storage.base import StorageFull, TooLarge
from gengate.tasks import ending, fallback, media
from gengate.tasks import enqueue as q
from gengate.tasks import metrics as step_metrics
from gengate.tasks.crashpoints import crashing, crashpoint
from gengate.tasks.runtime import Runtime

log = logging.getLogger("gengate.pipeline")


def submit(rt: Runtime, job_id: str) -> None:
    crashpoint("submit.start")
    job = rt.store.get(job_id)
    if job is None:
        return
    if job.provider == MEDIA_PROVIDER and job.status == states.QUEUED:
        media.run(rt, job)  # media jobs have a submit step of their own; once past it, resume below
        return
    if job.status == states.QUEUED and not _unhashed_byok(job) and ending.settled_by_cache(rt, job):
        return
    if job.status == states.QUEUED:
        deadline = _submit_deadline(rt, job.provider)
        won, _ = rt.store.transition(job_id, states.PROCESSING, submit_deadline=deadline, unsent=True)
        if won:
            job.status, job.submit_deadline = states.PROCESSING, deadline
            _send(rt, job)
            return
        job = rt.store.get(job_id)
        if job is None:
            return
    resume(rt, job)


def _unhashed_byok(job: Job) -> bool:
    """A BYOK job whose cache key needs its inputs downloaded goes to its provider without the cache:
    the download and hashing would be the operator's cost, for a job the operator is not paid for
    and whose key no provider has accepted yet (a random key would make it free). Its inputs are
    fetched by the provider, on the user's account; the result is not cached."""
    return job.byok and job.cache_key is None and bool(cache.input_urls(job.input))


def resume(rt: Runtime, job: Job) -> None:
    """Move a job on from wherever it stands; the sweeper calls this for every due job."""
    if job.terminal:
        if job.status == states.CANCELLED and rt.store.settlement_pending(job.job_id):
            settle_cancel(rt, job)  # its cancel step was lost or is waiting: settle from here
        else:
            rt.store.unschedule(job.job_id)
    elif job.status == states.QUEUED:
        # The submit message is late or lost: send another (submit is idempotent), backing off.
        rt.store.set_fields(job.job_id, redrives=job.redrives + 1)
        q.enqueue(rt.redis, q.SUBMIT, job.job_id, job.capability)
        rt.store.schedule(job.job_id, time.time() + rt.settings.step_lease_seconds * 2 ** min(job.redrives, 6))
    elif job.handle is None:
        if job.submit_deadline is not None and time.time() < job.submit_deadline:
            rt.store.schedule(job.job_id, job.submit_deadline)  # a submission may still be in flight
        elif job.provider == MEDIA_PROVIDER:
            ending.fail_input(rt, job, "The media worker stopped while processing this job; submit it again",
                       error="ProcessingError", code="worker_lost")
        elif job.unsent and _resend(rt, job):
            pass  # the submit step died before sending anything: nothing to duplicate, sent from here
        else:
            ending.fail(rt, job, "Submission to the provider was interrupted and its outcome is unknown; "
                 "not resubmitted to avoid a duplicate charge", code="submission_interrupted")
    elif job.result is not None:
        _finalize_now(rt, job)
    else:
        poll(rt, job)


def _submit_deadline(rt: Runtime, provider: str) -> float:
    """Until when the submit step may still be sending. The sweeper fails a job that is processing
    with no handle after this, so the step must never outlive it: it covers one provider call plus
    the lease for retries, and ends before the task's own time limit kills the step."""
    s = rt.settings
    budget = min(s.step_lease_seconds + getattr(s, provider).timeout, s.step_time_limit_seconds - 5)
    return time.time() + budget


def provider_request(job: Job, settings: Any = None) -> ProviderRequest:
    params = {k: v for k, v in job.input.items() if k != "provider_options"}
    if "files" in params:
        params["files"] = [f["url"] for f in params["files"]]
    return ProviderRequest(
        job_id=job.job_id, model=job.model.split(":", 1)[1], capability=job.capability, mode=job.mode,
        endpoint=job.endpoint, params=params, options=job.input.get("provider_options") or {},
        webhook_url=provider_webhook_url(job, settings) if settings is not None else None,
    )


def provider_webhook_url(job: Job, settings: Any) -> str | None:
    """Where the provider calls back (api/routes/provider_webhooks.py), when callbacks are on."""
    if not settings.provider_webhooks_on:
        return None
    return f"{settings.base_public_url}/v1/providers/{job.provider}/webhooks/{job.job_id}/{job_token(job.job_id)}"


def _resend(rt: Runtime, job: Job) -> bool:
    """A job whose submit step died before sending anything (it still carries `unsent`): claim the
    send and make it from here, under a new deadline. False if another caller claimed it first."""
    if not rt.store.take_unsent(job.job_id):
        return False
    job.submit_deadline = _submit_deadline(rt, job.provider)
    if rt.store.patch_while(job.job_id, states.PROCESSING, submit_deadline=job.submit_deadline):  # not cancelled
        rt.store.schedule(job.job_id, job.submit_deadline)  # the backstop, should this send die too
        _send(rt, job, claimed=True)
    else:
        rt.store.settle(job.job_id, accounts.RELEASE)  # cancelled, and this claim means nothing was sent
    return True


def _send(rt: Runtime, job: Job, *, claimed: bool = False) -> None:
    # An open circuit (jobs/health.py) sends a job that has another provider there at once, nothing
    # sent; a job with none left is sent anyway: the circuit steers, it refuses no one's only route.
    if job.routes and rt.settings.fallback and health.allow(rt.redis, job.provider, rt.settings) == "open":
        if fallback.move_on(rt, job, "circuit_open", deadline=lambda p: _submit_deadline(rt, p)):
            _send(rt, job)
            return
    req = provider_request(job, rt.settings)
    adapter = get_adapter(job.provider)
    sending = False
    try:
        key = provider_key(rt, job)
        crashpoint("submit.before_send")
        # The one right to send (the `unsent` mark, taken atomically): a crash before this point left
        # the outcome known, so the sweeper sends instead (`_resend`); after it, the outcome is unknown
        # until the handle is saved, and the job fails rather than risk a second, billed run.
        if not claimed and not rt.store.take_unsent(job.job_id):
            return  # the sweeper already sent the job itself, or a cancel took the right to send
        sending = True
        outcome = _submit_with_retries(rt, adapter, req, key, deadline=job.submit_deadline or time.time(),
                                       can_fall_back=bool(job.routes and rt.settings.fallback))
    except ProviderFailure as failure:
        # Refused before acceptance: the model's next provider, if the job has one (tasks/fallback.py).
        if fallback.not_accepted(failure, sent=sending) and fallback.move_on(
                rt, job, _refusal(failure), deadline=lambda p: _submit_deadline(rt, p), status=failure.status,
                message=failure.message):
            _send(rt, job)
            return
        ending.fail(rt, job, failure.message, code="provider_error", status=failure.status)
        # Cancelled meanwhile: free if nothing was sent or the provider refused it with an HTTP error
        # (the failures retried as not accepted); an answer lost on the way may have started a run.
        unsent = not sending or failure.status is not None
        rt.store.settle(job.job_id, accounts.RELEASE if unsent else accounts.CAPTURE)
        return
    if isinstance(outcome, Finished):
        finalize(rt, job.job_id, outcome)
        return
    assert isinstance(outcome, Submitted)
    crashpoint("submit.after_accept")
    # Persist the handle first, unconditionally: a cancel that raced us must still find it.
    job.handle = outcome.handle
    # With callbacks on, the provider says when the job ends: no early polls (they would take CPU from
    # the finalizes the callbacks ask for; BENCHMARKS.md), only the fallback at the webhook cap, in case
    # a callback is lost.
    s = rt.settings
    job.poll_interval = s.poll_max_with_webhooks_seconds if s.provider_webhooks_on else s.poll_initial_seconds
    rt.store.set_fields(job.job_id, handle=job.handle, poll_interval=job.poll_interval)
    crashpoint("submit.after_handle")
    current = rt.store.get(job.job_id)
    if current is None or current.status != states.PROCESSING:
        if current is not None and current.status == states.CANCELLED:
            settle_cancel(rt, current, sender=True)
        rt.store.unschedule(job.job_id)
        return
    # First look at once: fast providers are often done already, which saves a sweep cycle.
    poll(rt, current)


def _health(rt: Runtime, provider: str, ok: bool, seconds: float) -> None:
    """A submission's outcome into the provider's circuit, logged when it opens or closes it."""
    change = health.record(rt.redis, provider, ok, seconds, rt.settings)
    if change is not None:
        log.warning("provider %s: circuit %s", provider, change)


def _refusal(failure: ProviderFailure) -> str:
    """An attempt's outcome, as `attempts` shows it."""
    if failure.status is None:
        return "unreachable" if isinstance(failure.__cause__, httpx.ConnectError) else "not_sent"
    return "rate_limited" if failure.status == 429 else "refused"


def _submit_with_retries(
    rt: Runtime, adapter: Any, req: ProviderRequest, key: str, *, deadline: float, can_fall_back: bool = False
) -> Submitted | Finished:
    """Retry only failures that prove nothing was accepted: an HTTP 429/5xx answer or a refused
    connection. A timeout after sending may have been accepted, so it is final. No attempt starts
    that could still be running at `deadline`. A job that `can_fall_back` to another provider
    retries only where the provider said when (Retry-After): otherwise the next provider is the
    faster way on."""
    attempts = rt.settings.provider_retries + 1
    call_timeout = getattr(rt.settings, adapter.name).timeout
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        try:
            outcome = step_metrics.provider_call(adapter.name, "submit", adapter.submit, req, key)
            _health(rt, adapter.name, True, time.monotonic() - started)
            return outcome
        except ProviderFailure as failure:
            # Only what says the provider is unwell counts against its circuit: a retryable failure
            # (5xx, 429, no connection, a timeout). A 4xx refusal is this request's or key's matter.
            _health(rt, adapter.name, not failure.retryable, time.monotonic() - started)
            refused = isinstance(failure.__cause__, httpx.ConnectError)
            if attempt == attempts or not (failure.retryable and (failure.status or refused)):
                raise
            if can_fall_back and failure.retry_after is None:
                raise
            delay = retry_delay(rt, attempt, failure.retry_after)
            if time.time() + delay + call_timeout > deadline:
                raise
            time.sleep(delay)
    raise AssertionError("unreachable")


def retry_delay(rt: Runtime, attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (so retries of many jobs spread out), honouring the provider's
    Retry-After, capped by `retry_max_seconds`."""
    s = rt.settings
    backoff = s.retry_base_seconds * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
    return min(max(backoff, retry_after or 0.0), s.retry_max_seconds)


def poll(rt: Runtime, job: Job) -> None:
    crashpoint("poll.before")
    adapter = get_adapter(job.provider)
    try:
        outcome = step_metrics.provider_call(adapter.name, "poll", adapter.poll, job.handle or {},
                                               provider_key(rt, job))
    except ProviderFailure as failure:
        if failure.retryable and job.poll_errors < rt.settings.provider_retries:
            delay = max(retry_delay(rt, job.poll_errors + 1, failure.retry_after), _next_interval(rt, job))
            rt.store.patch_while(job.job_id, states.PROCESSING, poll_errors=job.poll_errors + 1)
            rt.store.schedule(job.job_id, time.time() + delay)
        else:
            ending.fail(rt, job, failure.message, code="provider_error", status=failure.status)
        return
    if isinstance(outcome, Running):
        interval = _next_interval(rt, job)
        progress = {"queue_position": outcome.queue_position, "message": outcome.message}
        rt.store.patch_while(job.job_id, states.PROCESSING, progress=progress, poll_interval=interval, poll_errors=0)
        rt.store.schedule(job.job_id, time.time() + (job.poll_interval or interval))
    elif isinstance(outcome, Failed):
        # The provider reported the run failed: it ended there, and the next provider may try.
        if fallback.move_on(rt, job, "failed", deadline=lambda p: _submit_deadline(rt, p), message=outcome.message,
                            failed_run=True):
            _send(rt, job)
            return
        ending.fail(rt, job, outcome.message, code=outcome.error_type or "provider_failed")
    else:
        job.result = _encode_result(outcome)
        if rt.store.patch_while(job.job_id, states.PROCESSING, result=job.result):
            crashpoint("poll.after_result")
            _finalize_now(rt, job, outcome)


def _finalize_now(rt: Runtime, job: Job, finished: Finished | None = None) -> None:
    """Finalize in the step that found the result, not in a Celery message of its own: a message
    costs ~3 ms of worker CPU and, behind a backlog of submissions, minutes of waiting (BENCHMARKS.md).
    The schedule entry is the backstop: if this worker dies, the sweeper finds the result after the lease."""
    rt.store.schedule(job.job_id, time.time() + rt.settings.step_lease_seconds)
    finalize(rt, job.job_id, finished)


def _next_interval(rt: Runtime, job: Job) -> float:
    """Backoff to a cap; a job whose provider will call back is polled far less (the callback pulls
    its next poll forward), so ten thousand waiting jobs make few provider requests."""
    s = rt.settings
    cap = s.poll_max_with_webhooks_seconds if s.provider_webhooks_on else s.poll_max_seconds
    return min((job.poll_interval or s.poll_initial_seconds) * s.poll_backoff, cap)


def finalize(rt: Runtime, job_id: str, finished: Finished | None = None) -> None:
    """Copy the provider's output into our storage (provider URLs expire), then complete."""
    job = rt.store.get(job_id)
    if job is None or job.status != states.PROCESSING:
        if job is not None and job.terminal:
            if job.status == states.CANCELLED:
                rt.store.settle(job_id, accounts.CAPTURE)  # cancelled, but the provider finished the run
            rt.store.unschedule(job_id)
        return
    outputs = finished.outputs if finished else _decode_result(job.result)
    if not outputs:
        ending.fail(rt, job, "The provider finished without an output file", code="no_output")
        return
    try:
        stored = _store_output(rt, job, outputs[0])
    except (httpx.HTTPError, ProviderFailure, StorageFull) as exc:
        # A full disk is waited out like an unreachable output: retention or the operator may free it.
        errors = job.finalize_errors + 1
        if errors > rt.settings.provider_retries or (isinstance(exc, ProviderFailure) and not exc.retryable):
            full = isinstance(exc, StorageFull)
            ending.fail(rt, job, f"Could not {'store' if full else 'fetch'} the provider's output: {exc}",
                        code="storage_full" if full else "output_unavailable")
            return
        rt.store.patch_while(job_id, states.PROCESSING, finalize_errors=errors)
        rt.store.schedule(job_id, time.time() + retry_delay(rt, errors))
        return
    except TooLarge as exc:
        ending.fail(rt, job, str(exc), code="output_too_large")
        return
    crashpoint("finalize.before_complete")
    ending.complete(rt, job, cache.Entry(stored.sha256, stored.media_type, job_id), stored.url)


def _store_output(rt: Runtime, job: Job, out: Output):
    """Copy the output into storage. A URL is fetched like a user's, through the safe fetcher (public
    addresses only, each redirect checked, no proxy from the environment): a model that echoes a
    tenant's URL must not turn an internal address into that tenant's output. The provider's own
    host, when the operator points it somewhere private (a simulator, a proxy), is exempt."""
    limit = rt.settings.max_output_bytes
    if out.data is not None:
        return rt.storage.put_output(job.job_id, [out.data], out.media_type or "application/octet-stream", max_bytes=limit)
    assert out.url is not None
    try:
        with open_url(out.url, policy=output_policy(rt.settings, job.provider), max_bytes=limit + 1,
                      timeout=rt.settings.step_time_limit_seconds) as response:
            if response.status_code >= 400:
                raise ProviderFailure(job.provider, f"output URL answered {response.status_code}",
                                      status=response.status_code,
                                      retryable=response.status_code in (404, 408, 429) or response.status_code >= 500)
            media_type = out.media_type or response.headers.get("content-type") or "application/octet-stream"
            chunks = _renewing(rt, job.job_id, crashing("finalize.during_download", response.iter_bytes(1 << 16)))
            return rt.storage.put_output(job.job_id, chunks, media_type, max_bytes=limit)
    except UnsafeURL as exc:
        raise ProviderFailure(job.provider, f"output URL refused: {exc}", retryable=False) from exc
    except FetchTooLarge as exc:
        raise TooLarge(f"the provider's output is larger than {limit} bytes") from exc
    except FetchError as exc:  # a connection, a timeout, a redirect past the limit: worth another try
        raise ProviderFailure(job.provider, f"output URL: {exc}", status=exc.status, retryable=True) from exc


def _renewing(rt: Runtime, job_id: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """`chunks`, pushing the job's backstop (its schedule entry) a lease ahead while they come: a
    long download (a large video, a slow store) is progress, not a dead finalize for the sweeper to
    start again beside it."""
    lease = rt.settings.step_lease_seconds
    renew_at = time.monotonic() + lease / 3
    for chunk in chunks:
        if time.monotonic() >= renew_at:
            rt.store.schedule(job_id, time.time() + lease)
            renew_at = time.monotonic() + lease / 3
        yield chunk


@lru_cache(maxsize=None)
def _output_policy(allowed: str) -> Policy:
    return Policy.parse(allowed)


def output_policy(settings: Any, provider: str) -> Policy:
    """GENGATE_ALLOW_PRIVATE_HOSTS, plus the host of the provider's configured base URL, if any."""
    base = getattr(settings, provider).base_url
    host = urlsplit(base).hostname if base else None
    return _output_policy(",".join(filter(None, [settings.allow_private_hosts, host])))


def cancel(rt: Runtime, job_id: str) -> None:
    """After the API moved the job to `cancelled`: stop the provider's run, if it has one, and settle
    the job's price by the provider's answer."""
    job = rt.store.get(job_id)
    if job is not None and job.status == states.CANCELLED:
        settle_cancel(rt, job)
    rt.store.unschedule(job_id)  # nothing while the settlement is pending: its entry re-drives it


def settle_cancel(rt: Runtime, job: Job, *, sender: bool = False) -> None:
    """Stop a cancelled job's provider run and, while its hold is pending (jobs/accounts.py: it was
    cancelled while processing and the provider may have it), end the hold by the provider's answer:
    confirmed stopped before the run started -> release; too late, unknown, or no answer after the
    retries -> capture. A send whose outcome will never be known (no handle after its deadline) is
    captured. Every caller may come here (the cancel step, the send step once it has the handle, the
    sweeper); one at a time asks the provider, and the ledger settles once whatever they do.
    `sender`: the send step, which has just saved the handle."""
    if not rt.store.settlement_pending(job.job_id):
        if job.handle:  # settled already, or nothing held (BYOK): the run still has to stop
            _provider_cancel(rt, job)
        return
    lease = 2 * getattr(rt.settings, job.provider).timeout + 5
    if not rt.store.claim_settlement(job.job_id, lease):
        # Another step is asking; it may have read the job before the handle was saved: look again soon.
        rt.store.schedule_soon(job.job_id, time.time() + 1)
        return
    try:
        current = rt.store.get(job.job_id) if not sender else job
        if current is None:
            return
        if not current.handle and current.submit_deadline is not None and time.time() < current.submit_deadline:
            # A send is in flight: its step settles when its call returns; this entry is the backstop.
            rt.store.schedule(job.job_id, current.submit_deadline)
            current = rt.store.get(job.job_id)  # the handle may have been saved meanwhile
            if current is None or not current.handle:
                return
        if not current.handle:
            rt.store.settle(job.job_id, accounts.CAPTURE)
            return
        try:
            verdict = _provider_cancel(rt, current, quiet=False)
        except ProviderFailure as failure:
            attempts = rt.store.count_cancel_attempt(job.job_id)
            if failure.retryable and attempts <= rt.settings.provider_retries:
                rt.store.schedule(job.job_id, time.time() + retry_delay(rt, attempts, failure.retry_after))
                return
            verdict = CancelVerdict.UNKNOWN
        kind = accounts.RELEASE if verdict is CancelVerdict.CONFIRMED_BEFORE_START else accounts.CAPTURE
        if rt.store.settle(job.job_id, kind):
            log.info("job %s: cancel %s at %s: price %s", job.job_id, verdict.value, job.provider,
                     "released" if kind == accounts.RELEASE else "captured")
    finally:
        rt.store.end_settlement_claim(job.job_id)


def _provider_cancel(rt: Runtime, job: Job, *, quiet: bool = True) -> CancelVerdict:
    """The provider's cancel of the job's run; `quiet`: a failure is logged, not raised."""
    try:
        adapter = get_adapter(job.provider)
        return step_metrics.provider_call(adapter.name, "cancel", adapter.cancel, job.handle or {},
                                          provider_key(rt, job))
    except ProviderFailure as failure:
        log.warning("job %s: provider cancel failed: %s", job.job_id, failure.message)
        if not quiet:
            raise
        return CancelVerdict.UNKNOWN


def provider_key(rt: Runtime, job: Job) -> str:
    """The job's own sealed key (BYOK), else the server's pooled key for its provider."""
    if job.byok:
        sealed = rt.store.sealed_key(job.job_id)
        if sealed is None:
            raise ProviderFailure(job.provider, "The job's own provider key has expired", retryable=False)
        try:
            return logs.protect(unseal(sealed))  # masked in this step's log lines, should anything print it
        except SealError as exc:
            raise ProviderFailure(job.provider, str(exc), retryable=False) from exc
    secret = getattr(rt.settings, job.provider).api_key
    if secret is None:
        raise ProviderFailure(job.provider, f"No API key is configured for provider '{job.provider}'",
                              retryable=False)
    return secret.get_secret_value()


def _encode_result(finished: Finished) -> dict[str, Any]:
    return {
        "outputs": [
            {"media_type": o.media_type, "url": o.url, "data": base64.b64encode(o.data).decode() if o.data else None}
            for o in finished.outputs
        ],
        "metadata": finished.metadata,
    }


def _decode_result(result: dict[str, Any] | None) -> list[Output]:
    return [
        Output(media_type=o.get("media_type"), url=o.get("url"), data=base64.b64decode(o["data"]) if o.get("data") else None)
        for o in (result or {}).get("outputs", [])
    ]
