"""The Celery app: broker and reliability settings, nothing else (tasks live in `tasks/`)."""

from __future__ import annotations

from celery import Celery, signals

from config import logs
from config.settings import get_settings
from workers import transport
from workers.queues import ALL_QUEUES

settings = get_settings()
transport.install()  # kombu's Redis transport, fixed to survive a broker restart under load (see there)

app = Celery("gengate", broker=settings.resolved_redis_url(), include=["tasks.steps"])
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    # Job state lives in our own Redis records; a result backend would only add ~7 Redis commands a task.
    task_ignore_result=True,
    # CELERY.md: early ack lost every running task on kill -9. Late ack + reject-on-lost redelivers
    # instead, and every step is idempotent so a redelivery resumes rather than repeats.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # Keep every step far shorter than the visibility timeout (celery#5935 and redelivery storms).
    task_time_limit=settings.step_time_limit_seconds + 20,
    task_soft_time_limit=settings.step_time_limit_seconds,
    broker_transport_options={
        "visibility_timeout": 600,
        # kombu's defaults scan for abandoned messages only every ~100 s; our sweeper is the fast path
        # for lost steps, this is the backstop.
        "unacked_restore_interval": 10,
        "unacked_restore_throttle": 2,
    },
    broker_connection_retry_on_startup=True,
    task_default_queue=ALL_QUEUES[0],
    task_create_missing_queues=True,
    worker_send_task_events=True,
    task_send_sent_event=True,
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
