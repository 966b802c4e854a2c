"""Queue names. Generation jobs are routed by capability so operators can dedicate workers."""

from __future__ import annotations

GENERATION_QUEUES = ("image", "video", "speech", "music", "transcription")
ALL_QUEUES = GENERATION_QUEUES


def queue_for(capability: str) -> str:
    return capability if capability in GENERATION_QUEUES else GENERATION_QUEUES[0]
