"""The job pipeline: Celery tasks, one per step, each short and safe to run twice."""
