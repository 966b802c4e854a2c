"""The Celery app of the workers, made by `create_app()` where a worker or Flower starts
(`gengate worker`, `gengate flower`), never as a side effect of importing a task: the tasks
(tasks/steps.py) are `shared_task`s that bind to whichever app the process made.

`celery -A gengate.workers.celery_app ...` (inspect, control, purge) still finds an app: the module
attribute `app` is made on first access.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from gengate.config import logs
from gengate.config.settings import Settings, get_settings
from gengate.tasks.queues import ALL_QUEUES
from gengate.workers.celery_conf import celery_settings

TASK_MODULES = ["gengate.tasks.steps"]
_app: Celery | None = None


def create_app(settings: Settings | None = None) -> Celery:
    """The app with gengate's broker and reliability settings, its tasks and the sweeper bootstep;
    kombu's Redis transport replaced by ours (workers/transport.py) for this process."""
    from gengate.workers import metrics, transport  # noqa: F401  (metrics: the per-task log context and step metrics)
    from gengate.workers.sweeper import Sweeper

    settings = settings or get_settings()
    transport.install()
    app = Celery("gengate", broker=settings.broker_url(), include=TASK_MODULES, set_as_current=True)
    app.conf.update(
        **celery_settings(step_time_limit_seconds=settings.step_time_limit_seconds, default_queue=ALL_QUEUES[0]),
        worker_hijack_root_logger=False,
        broker_use_ssl=settings.broker_ssl(),  # None unless rediss://
    )
    app.steps["worker"].add(Sweeper)
    return app


def get_app() -> Celery:
    global _app
    if _app is None:
        _app = create_app()
    return _app


def __getattr__(name: str) -> Any:
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@signals.celeryd_init.connect  # as the worker starts, before its first warning
@signals.setup_logging.connect
def _setup_logging(**_) -> None:
    """Celery leaves logging to us (it then neither touches the root logger nor redirects stdout):
    its own lines and ours go through the JSON formatter with redaction (config/logs.py). Only what
    Celery prints rather than logs stays plain text: the banner (off with --quiet, see
    gengate/procs.py) and the "worker: Warm shutdown" notice of its signal handler."""
    logs.configure("worker")
