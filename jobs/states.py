"""Job statuses and the allowed transitions. Pure data: the store enforces them atomically."""

from __future__ import annotations

QUEUED = "queued"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"

ALL = (QUEUED, PROCESSING, COMPLETED, FAILED, CANCELLED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})

# to-state -> the states it may be entered from
ALLOWED_FROM: dict[str, frozenset[str]] = {
    PROCESSING: frozenset({QUEUED}),
    # queued -> completed: a cache hit, or an identical job's provider call, answers before any submission.
    COMPLETED: frozenset({QUEUED, PROCESSING}),
    FAILED: frozenset({QUEUED, PROCESSING}),
    CANCELLED: frozenset({QUEUED, PROCESSING}),
}
