"""wait_for_job's logic without I/O, so the sync and async clients follow a job the same way.

Follow `GET /jobs/{id}/stream` (SSE) until a terminal status. A stream that breaks is resumed with
`Last-Event-ID` after a short backoff; one that ends cleanly without a terminal event (the server's
10-minute cap) is checked with one `GET /jobs/{id}` and resumed. A stream that is refused (non-200,
not text/event-stream) or keeps failing gives way to polling `GET /jobs/{id}` with backoff.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from gengate.client.errors import GatewayAPIError, GatewayConnectionError, RateLimitError, ServerError, WaitTimeout
from gengate.client.types import Job, job_from

STREAM_FAILURES_BEFORE_POLLING = 3
# The server sends a keepalive comment every 15 s: a stream silent for this long is dead.
STREAM_READ_TIMEOUT = 45.0
DEADLINE_SLACK = 2.0


@dataclass
class SSEEvent:
    event: str
    data: str
    id: str | None


class SSEDecoder:
    """Server-Sent Events, line by line (lines without their terminators, as httpx's iter_lines gives)."""

    def __init__(self) -> None:
        self._event, self._data, self._id = "", [], None

    def feed(self, line: str) -> SSEEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):  # a comment: the server's keepalive
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


class Poll:
    """Next step: one GET /jobs/{id} with this timeout."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout


class Stream:
    """Next step: open the SSE stream with these headers and read timeout."""

    def __init__(self, headers: dict[str, str], read_timeout: float) -> None:
        self.headers, self.read_timeout = headers, read_timeout


RECONNECT = object()  # Waiter.line: close this stream and open it again (to tighten its read timeout)


class Waiter:
    def __init__(self, job_id: str, *, timeout: float, poll_interval: float, max_poll_interval: float,
                 request_timeout: float, use_sse: bool, on_update: Callable[[Job], None] | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id, self.timeout, self.clock = job_id, timeout, clock
        self.deadline = clock() + timeout
        self.use_sse = use_sse
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self.request_timeout = request_timeout
        self.on_update = on_update
        self.job: Job | None = None
        self.last_event_id: str | None = None
        self.failures = 0
        self.delay = poll_interval
        self.confirm = False  # a stream ended without a terminal event: poll once before resuming
        self._decoder = SSEDecoder()
        self._read_timeout = STREAM_READ_TIMEOUT
        self._events = 0

    def remaining(self) -> float:
        left = self.deadline - self.clock()
        if left <= 0:
            raise WaitTimeout(self.job_id, self.timeout, self.job)
        return left

    def next(self) -> Poll | Stream:
        left = self.remaining()
        if self.use_sse and not self.confirm:
            self._decoder, self._events = SSEDecoder(), 0
            self._read_timeout = min(left, STREAM_READ_TIMEOUT)
            headers = {"Accept": "text/event-stream"}
            if self.last_event_id:
                headers["Last-Event-ID"] = self.last_event_id
            return Stream(headers, self._read_timeout)
        return Poll(min(left, self.request_timeout))

    # -- the stream --------------------------------------------------------------------------

    def stream_refused(self) -> None:
        """A non-200 answer or another content type: this server has no usable stream; poll."""
        self.use_sse = False

    def line(self, line: str) -> Job | object | None:
        """Feed one line; the terminal job when it arrives, RECONNECT, or None to read on."""
        event = self._decoder.feed(line)
        if event is not None and event.event in ("status", "message") and event.data:
            try:
                data = json.loads(event.data)
            except ValueError:
                data = None
            if isinstance(data, dict) and "job_id" in data and "status" in data:
                self._events += 1
                self.failures = 0
                if event.id:
                    self.last_event_id = event.id
                job = self._seen(job_from(data))
                if job.done:
                    return job
        left = self.remaining()
        # This stream's read timeout was fixed when it opened: a silent server could keep us past the
        # deadline by up to (read timeout - time left). Past DEADLINE_SLACK, a fresh stream (resumed,
        # so nothing is missed or repeated) with a tighter read timeout keeps the deadline.
        return RECONNECT if self._read_timeout - left > DEADLINE_SLACK else None

    def stream_ended(self, error: BaseException | None) -> float:
        """The stream closed (cleanly or with `error`) without a terminal event: seconds to wait."""
        if error is None and self._events:
            self.confirm = True  # the server's cap, or the job is over: one GET tells
            return 0.0
        self.failures += 1
        if self.failures >= STREAM_FAILURES_BEFORE_POLLING:
            self.use_sse = False
            return 0.0
        self.confirm = True
        return min(0.25 * 2 ** self.failures, self.remaining())

    # -- polling -----------------------------------------------------------------------------

    def polled(self, job: Job) -> Job | None:
        """The terminal job, or None after which the caller sleeps `poll_delay()` (unless resuming SSE)."""
        self._seen(job)
        if job.done:
            return job
        if self.use_sse and self.confirm:
            self.confirm = False  # back to the stream; no sleep
        return None

    def must_sleep(self) -> bool:
        return not self.use_sse

    def poll_failed(self, error: BaseException) -> float:
        """Transient failures (no connection, 429, 5xx) are retried until the deadline; others raise."""
        if not isinstance(error, (GatewayConnectionError, RateLimitError, ServerError)):
            raise error
        wait = self.poll_delay()
        if isinstance(error, GatewayAPIError) and error.retry_after:
            wait = max(wait, min(error.retry_after, self.remaining()))
        return wait

    def poll_delay(self) -> float:
        delay = self.delay
        self.delay = min(self.delay * 1.5, self.max_poll_interval)
        return min(delay, self.remaining())

    def _seen(self, job: Job) -> Job:
        # Compared by the job's fields (Job's equality leaves `raw` out): GET /v1/jobs/{id} carries
        # details the stream's events do not, and the same job read both ways is no update.
        if self.on_update is not None and (self.job is None or self.job != job):
            self.on_update(job)
        self.job = job
        return job
