"""The job record: what a job is, how it sits in a Redis hash, and what a client may see of it.

Each attribute is one hash field holding JSON, so the transition script can assemble the public
job JSON by concatenation without decoding anything a user sent.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

import orjson

from gengate.jobs import states

# A media job (trim, resize, slice, FFmpeg command) is a job like any other whose "provider" is our
# own FFmpeg, on a capability (and queue) of its own: the API creates them, the media worker runs them.
MEDIA_PROVIDER = "ffmpeg"
MEDIA_CAPABILITY = "media"

# The JobResponse of the spec, in its order. Only these ever reach a client.
PUBLIC_FIELDS = ("job_id", "status", "model", "created_at", "completed_at", "output", "cache", "error")


def new_job_id() -> str:
    # 128 random bits: output URLs are derived from the id, so it must not be guessable.
    return "job_" + secrets.token_hex(16)


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Job:
    job_id: str
    account: str
    capability: str  # image | video | speech | music | transcription
    model: str  # public, "provider:model"
    provider: str
    endpoint: str  # the provider's own model / endpoint id for this job's mode
    input: dict[str, Any]
    mode: str = ""  # text-to-image, edit, image-to-video, lipsync, ... (chosen from the input files)
    status: str = states.QUEUED
    created_at: str = field(default_factory=utcnow_iso)
    updated_at: str | None = None
    completed_at: str | None = None
    output: dict[str, Any] | None = None
    cache: dict[str, Any] | None = None
    error: str | None = None
    error_detail: dict[str, Any] | None = None  # {code, provider, status}: kept for operators, not public
    handle: dict[str, Any] | None = None  # the provider's request handle, persisted before anything else
    submit_deadline: float | None = None  # unix time after which an unconfirmed submission is presumed dead
    unsent: bool | None = None  # processing, and provably nothing sent to the provider yet (tasks/pipeline.py)
    result: dict[str, Any] | None = None  # provider outputs waiting for finalize
    progress: dict[str, Any] | None = None
    poll_interval: float | None = None
    poll_errors: int = 0
    finalize_errors: int = 0
    redrives: int = 0
    byok: bool = False  # the user's own provider key: sealed in a separate Redis key, never in this record
    webhook_url: str | None = None
    webhook_events: list[str] | None = None  # subset of progress, completed, failed
    cache_key: str | None = None  # hex sha256 of the output-changing inputs, once known
    cache_mode: str = "default"  # default | no-cache (skip look-up, store) | no-store (bypass)
    leader: str | None = None  # the job whose provider call this identical job shares
    output_sha: str | None = None  # content hash of the stored output (lets outputs be inputs without a fetch)
    hold_cents: int = 0  # reserved from the balance at admission: captured on completion, else released
    # Routing (api/routing.py, tasks/fallback.py): the providers this job may still fall back to, in
    # order, and the attempts that ended without it (provider, outcome, status, message, times).
    routes: list[str] | None = None
    attempts: list[dict[str, Any]] | None = None
    attempt_started_at: str | None = None  # when the current provider's attempt began (None: at creation)

    @property
    def terminal(self) -> bool:
        return self.status in states.TERMINAL

    def to_fields(self) -> dict[str, bytes]:
        # Not `asdict`: it deep-copies every nested value only for orjson to read it once (bench/profile.py).
        return {k: orjson.dumps(v) for k in _FIELD_NAMES if (v := getattr(self, k)) is not None}

    @classmethod
    def from_fields(cls, raw: dict[bytes | str, bytes | str]) -> Job:
        known = cls.__dataclass_fields__
        values = {}
        for k, v in raw.items():
            name = k.decode() if isinstance(k, bytes) else k
            if name in known:
                values[name] = orjson.loads(v)
        return cls(**values)

    def public(self) -> dict[str, Any]:
        return {k: v for k in PUBLIC_FIELDS if (v := getattr(self, k)) is not None}


def encode_fields(**values: Any) -> dict[str, bytes]:
    """Patch values in the hash's encoding; None values are skipped."""
    return {k: orjson.dumps(v) for k, v in values.items() if v is not None}


_FIELD_NAMES = tuple(f.name for f in fields(Job))
