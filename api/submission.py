"""From a validated request body to a queued job: catalog checks, the job record, one round trip."""

from __future__ import annotations

import time
from typing import Any

from api.schemas import _Request
from config.catalog import ModelSpec, resolve
from config.settings import Settings
from jobs.errors import ValidationError
from jobs.record import Job, new_job_id
from jobs.store import AsyncJobStore
from tasks.enqueue import SUBMIT, step_message


def check_params(spec: ModelSpec, params: dict[str, Any]) -> None:
    """Parameter rules from the catalog row; each refusal names its field."""
    if "prompt" in params and not (params["prompt"] or "").strip():
        raise ValidationError("prompt is required", field="prompt")
    ratio = params.get("aspect_ratio")
    if ratio is not None and ratio not in spec.aspect_ratios:
        raise ValidationError(
            f"aspect_ratio '{ratio}' is not supported by {spec.name}; use one of {', '.join(spec.aspect_ratios)}",
            field="aspect_ratio",
        )
    duration = params.get("duration")
    if duration is not None and spec.durations:
        if duration != int(duration) or int(duration) not in spec.durations:
            allowed = (f"whole seconds {spec.durations[0]}-{spec.durations[-1]}" if len(spec.durations) > 3
                       else f"one of {', '.join(map(str, spec.durations))}")
            raise ValidationError(f"duration {duration:g} is not supported by {spec.name}; use {allowed}",
                                  field="duration")
    files = params.get("files") or []
    if len(files) > spec.max_files:
        raise ValidationError(f"{spec.name} accepts at most {spec.max_files} input file(s)", field="files")


async def create_job(
    store: AsyncJobStore, settings: Settings, *, account_id: str, capability: str, body: _Request
) -> Job:
    spec = resolve(body.model, capability)
    params = body.model_dump(exclude={"model"}, exclude_none=True)
    check_params(spec, params)
    job = Job(
        job_id=new_job_id(),
        account=account_id,
        capability=capability,
        model=f"{spec.provider}:{spec.name}",
        provider=spec.provider,
        endpoint=spec.endpoint,
        input=params,
    )
    queue_key, message = step_message(SUBMIT, job.job_id, capability)
    await store.create(job, queue_key=queue_key, message=message,
                       recheck_at=time.time() + settings.step_lease_seconds)
    return job
