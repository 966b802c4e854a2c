"""From a validated request body to a queued job: catalog checks, the provider key, one round trip."""

from __future__ import annotations

import time
from typing import Any

from starlette.datastructures import Headers

from api.provider_keys import sealed_key_for
from api.schemas import _Request
from config.catalog import PROMPT_OPTIONAL, ModelSpec, choose_mode, resolve
from config.settings import Settings
from jobs.errors import ValidationError
from jobs.record import Job, new_job_id
from jobs.store import AsyncJobStore
from tasks.enqueue import SUBMIT, step_message

MUSIC_SECONDS = (3, 600)  # ElevenLabs music_length_ms 3,000-600,000


def check_params(spec: ModelSpec, params: dict[str, Any]) -> tuple[str, list[str]]:
    """Parameter rules from the catalog row; each refusal names its field. Returns (mode, files)."""
    files = [f["url"] for f in params.get("files") or []]
    mode, files = choose_mode(spec, files)
    if "prompt" in params and not (params["prompt"] or "").strip() and mode not in PROMPT_OPTIONAL:
        raise ValidationError("prompt is required", field="prompt")
    ratio = params.get("aspect_ratio")
    if ratio is not None and spec.aspect_ratios and ratio not in spec.aspect_ratios:
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
    if duration is not None and spec.capability == "music" and not MUSIC_SECONDS[0] <= duration <= MUSIC_SECONDS[1]:
        raise ValidationError(f"duration must be {MUSIC_SECONDS[0]}-{MUSIC_SECONDS[1]} seconds for music",
                              field="duration")
    return mode, files


async def create_job(
    store: AsyncJobStore, settings: Settings, *, account_id: str, capability: str, body: _Request,
    headers: Headers,
) -> Job:
    spec = resolve(body.model, capability)
    params = body.model_dump(exclude={"model", "webhook_url", "webhook_events"}, exclude_none=True)
    mode, files = check_params(spec, params)
    sealed_key = await sealed_key_for(spec.provider, headers, store.redis, settings, account_id)
    if files:
        params["files"] = [{"url": f} for f in files]
    job = Job(
        job_id=new_job_id(),
        account=account_id,
        capability=capability,
        model=f"{spec.provider}:{spec.name}",
        provider=spec.provider,
        endpoint=spec.endpoints[mode],
        input=params,
        mode=mode,
        byok=sealed_key is not None,
        webhook_url=body.webhook_url,
        webhook_events=sorted(set(body.webhook_events)) if body.webhook_events else None,
    )
    queue_key, message = step_message(SUBMIT, job.job_id, capability)
    await store.create(job, queue_key=queue_key, message=message, sealed_key=sealed_key,
                       recheck_at=time.time() + settings.step_lease_seconds)
    return job
