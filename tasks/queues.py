"""Queue names. Generation jobs are routed by capability so operators can dedicate workers."""

from __future__ import annotations

GENERATION_QUEUES = ("image", "video", "speech", "music", "transcription")
WEBHOOK_QUEUE = "webhooks"  # webhook deliveries: every worker takes them, they are short
# FFmpeg jobs are CPU-bound: their own queue, so a worker of their own (`gengate worker -Q media`)
# keeps them from delaying provider jobs, whose steps are short and I/O-bound.
MEDIA_QUEUE = "media"
ALL_QUEUES = (*GENERATION_QUEUES, WEBHOOK_QUEUE, MEDIA_QUEUE)


def queue_for(capability: str) -> str:
    if capability == MEDIA_QUEUE:
        return MEDIA_QUEUE
    return capability if capability in GENERATION_QUEUES else GENERATION_QUEUES[0]
