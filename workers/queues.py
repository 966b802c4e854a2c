"""Queue names. Generation jobs are routed by capability so operators can dedicate workers."""

from __future__ import annotations

GENERATION_QUEUES = ("image", "video", "speech", "music", "transcription")
WEBHOOK_QUEUE = "webhooks"  # webhook deliveries: every worker takes them, they are short
ALL_QUEUES = (*GENERATION_QUEUES, WEBHOOK_QUEUE)


def queue_for(capability: str) -> str:
    return capability if capability in GENERATION_QUEUES else GENERATION_QUEUES[0]
