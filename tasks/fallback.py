"""A job's move to the next provider of its model (api/routing.py chose them, in order, at submission).

The rule that keeps a job from being generated, or billed, twice: the next provider is tried only
when the previous attempt is known not to have been accepted, or ended in a failure its provider
reported. Known not accepted:
- nothing was sent (the send never started, or the provider's circuit was open: jobs/health.py);
- the provider answered with an HTTP error (a 5xx, a 429, a 4xx refusal): an answered refusal is
  no acceptance;
- the connection was refused: the request never reached it.
A timeout after sending is none of these: the provider may have the request, so the job does not
fall back (it fails as it would without routes, or keeps polling once it has a handle). A provider's
reported failure (a poll answering `Failed`) ended that run: the provider bills nothing for it, and
the next one may try.

The move is one Redis script (jobs/store.py `_FALL_BACK_LUA`): only while the job is processing with
no handle and its hold open, the hold re-priced to the next provider's price. Its old attempt joins
`attempts`; a `progress` event tells the SSE stream, and the webhook's `progress` event fires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from gengate.adapters.base import ProviderFailure
from gengate.config.catalog import route
from gengate.jobs.record import Job, utcnow_iso

log = logging.getLogger("gengate.fallback")


def not_accepted(failure: ProviderFailure, *, sent: bool) -> bool:
    """Whether a failed submission provably left nothing at the provider (see the module's rule)."""
    return not sent or failure.status is not None or isinstance(failure.__cause__, httpx.ConnectError)


def attempt_record(job: Job, outcome: str, *, status: int | None = None, message: str = "") -> dict[str, Any]:
    return {"provider": job.provider, "endpoint": job.endpoint, "outcome": outcome, "status": status,
            "message": message[:500], "started_at": job.attempt_started_at or job.created_at, "ended_at": utcnow_iso()}


def move_on(rt: Any, job: Job, outcome: str, *, deadline: Callable[[str], float], status: int | None = None,
            message: str = "", failed_run: bool = False) -> bool:
    """Move `job` to its next usable route, in place; True when it moved (the caller sends it there).
    `deadline(provider)`: until when a submission to that provider may still be sending.
    False: no route left, fallback off, the job is no longer processing unaccepted, or the balance
    cannot hold the next provider's price (then the job ends as it would have without routes)."""
    if not rt.settings.fallback or not job.routes:
        return False
    name = job.model.split(":", 1)[1]
    for i, provider in enumerate(job.routes):
        nxt = route(name, provider)
        if nxt is None or job.mode not in nxt.modes:
            continue  # the catalog changed since the job was routed: skip what no longer serves it
        price = nxt.price(job.mode, job.input)
        attempts = [*(job.attempts or []), attempt_record(job, outcome, status=status, message=message)]
        progress = {"message": f"{job.provider} {outcome}: trying {provider}", "fallback": {
            "from": job.provider, "to": provider, "outcome": outcome, "attempt": len(attempts) + 1}}
        patch = dict(provider=provider, endpoint=nxt.endpoints[job.mode], model=f"{provider}:{name}",
                     routes=job.routes[i + 1:], attempts=attempts, attempt_started_at=utcnow_iso(),
                     unsent=True, submit_deadline=deadline(provider), poll_errors=0, byok=False)
        moved = rt.store.fall_back(job, price, len(attempts) + 1, failed_run=failed_run, **patch)
        if moved == -1:
            log.info("job %s: no fallback to %s: the balance cannot hold its price (%d cents)", job.job_id,
                     provider, price)
            return False
        if moved != 1:
            return False
        for k, v in patch.items():
            setattr(job, k, v)
        job.hold_cents, job.handle, job.poll_interval = price, None, None
        rt.store.add_event(job.job_id, "progress", {**job.public(), "provider": provider, "progress": progress})
        # The webhook's `progress` event (the transition script fires it on a change of `progress`).
        rt.store.patch_while(job.job_id, "processing", progress={**progress, "at": time.time()})
        log.info("job %s: %s %s, falling back to %s", job.job_id, attempts[-1]["provider"], outcome, provider)
        return True
    return False
