"""The Celery side: the app, queue/routing config and the worker's sweeper."""
