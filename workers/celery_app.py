"""The Celery app: broker and reliability settings, nothing else (tasks live in `tasks/`)."""

from __future__ import annotations

from celery import Celery, signals

from config import logs
from config.settings import get_settings
from workers import transport
from workers.celery_conf import celery_settings
from workers.queues import ALL_QUEUES

settings = get_settings()
transport.install()  # kombu's Redis transport, fixed to survive a broker restart under load (see there)

app = Celery("gengate", broker=settings.resolved_redis_url(), include=["tasks.steps"])
app.conf.update(
    **celery_settings(step_time_limit_seconds=settings.step_time_limit_seconds, default_queue=ALL_QUEUES[0]),
    worker_hijack_root_logger=False,
)

from workers import metrics  # noqa: E402,F401  (connects the per-task log context and step metrics)
from workers.sweeper import Sweeper  # noqa: E402  (the step needs the app's blueprint to exist)

app.steps["worker"].add(Sweeper)


@signals.celeryd_init.connect  # as the worker starts, before its first warning
@signals.setup_logging.connect
def _setup_logging(**_) -> None:
    """Celery leaves logging to us (it then neither touches the root logger nor redirects stdout):
    its own lines and ours go through the JSON formatter with redaction (config/logs.py). Only what
    Celery prints rather than logs stays plain text: the banner (off with --quiet, see
    gengate/procs.py) and the "worker: Warm shutdown" notice of its signal handler."""
    logs.configure("worker")
