"""POST /v1/providers/{provider}/webhooks/{job_id}/{token}: a provider says a job of ours changed.

The callback is only a nudge: it moves the job's next poll to now (the sweeper polls within its
interval), and the poll, made with our own key against the provider's API, stays the authority on
the outcome. So a callback's body is never trusted, a forged or replayed one costs one early poll at
most, and a lost one costs nothing but the (long) fallback poll interval. The token in the path is
an HMAC of the job id under the server's secret (`jobs.sealing.job_token`): only the URL we gave the
provider for this job is accepted.
"""

from __future__ import annotations

import hmac
import time

from fastapi import APIRouter
from fastapi.responses import ORJSONResponse

from gengate.api.deps import StoreDep
from gengate.jobs import states
from gengate.jobs.errors import NotFoundError
from gengate.jobs.sealing import job_token

router = APIRouter(prefix="/v1/providers", include_in_schema=False)

# A nudged job is due "long ago": the sweeper claims the most overdue first, so a job the provider
# says is done goes before every poll that is merely due, even one that fell due before the callback
# came (BENCHMARKS.md), and nudges keep their own order.
NUDGE_AHEAD_SECONDS = 10**9


@router.post("/{provider}/webhooks/{job_id}/{token}")
async def provider_callback(provider: str, job_id: str, token: str, store: StoreDep):
    # Bytes, not str: compare_digest raises TypeError on a str that is not ASCII, and a path may hold any text.
    if not (job_id.startswith("job_") and len(job_id) <= 64
            and hmac.compare_digest(token.encode(), job_token(job_id).encode())):
        raise NotFoundError("Unknown callback")
    job = await store.get(job_id)
    if job is None or job.provider != provider:
        raise NotFoundError("Unknown callback")
    if job.status == states.PROCESSING:
        await store.nudge(job_id, time.time() - NUDGE_AHEAD_SECONDS)
    return ORJSONResponse({"received": True})
