"""GatewayClient: the blocking client, on httpx.Client. Its twin in `aio.py` differs only by `await`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Unpack

import httpx

from gengate.client import calls
from gengate.client.calls import Call
from gengate.client.errors import GatewayAPIError, GatewayConnectionError, api_error
from gengate.client.types import Balance, Job, JobPage, Me, Probe, UploadedFile, Usage, Voice
from gengate.client.waiting import RECONNECT, Poll, Waiter


class GatewayClient:
    """A client of the gateway's REST API (and of any wire-compatible one).

    `api_key` and `base_url` default to GENGATE_API_KEY and GENGATE_BASE_URL (else
    http://127.0.0.1:8000/v1). `timeout` is per request; pass `transport=` or a whole `http_client=`
    (an httpx.Client; it is not closed by `close()`) for proxies, retries or tests. `sse=False` makes
    wait_for_job poll instead of following the event stream."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None, *, timeout: float = 30.0,
                 sse: bool = True, transport: httpx.BaseTransport | None = None,
                 http_client: httpx.Client | None = None, headers: Mapping[str, str] | None = None) -> None:
        self.api_key, self.base_url = calls.resolve(api_key, base_url)
        self.timeout = timeout
        self.sse = sse
        self._own = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)
        # Sent per request rather than as the httpx client's defaults, so downloads of output URLs
        # (on another host, for a hosted gateway) never carry the key.
        self._headers = {**(headers or {}), "Authorization": f"Bearer {self.api_key}"}

    def close(self) -> None:
        if self._own:
            self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: Call, *, content: Any = None, timeout: float | None = None) -> Any:
        url = self.base_url + call.path
        try:
            resp = self._http.request(call.method, url, json=call.json, params=call.params, content=content,
                                      headers={**self._headers, **call.headers},
                                      timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TransportError as exc:
            raise GatewayConnectionError(f"{call.method} {url}: {exc or type(exc).__name__}") from exc
        if resp.status_code >= 400:
            raise api_error(resp)
        try:
            return call.parse(resp)
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayAPIError(f"unexpected answer to {call.method} {call.path}: {exc}",
                                  status_code=resp.status_code, error="UnexpectedResponse") from exc

    # -- generation ---------------------------------------------------------------------------

    def create_image(self, **params: Unpack[calls.ImageParams]) -> Job:
        return self._send(calls.create_job("/image", params))

    def create_video(self, **params: Unpack[calls.VideoParams]) -> Job:
        return self._send(calls.create_job("/video", params))

    def create_speech(self, **params: Unpack[calls.SpeechParams]) -> Job:
        return self._send(calls.create_job("/speech", params))

    def create_music(self, **params: Unpack[calls.MusicParams]) -> Job:
        return self._send(calls.create_job("/music", params))

    def create_transcription(self, **params: Unpack[calls.TranscriptionParams]) -> Job:
        return self._send(calls.create_job("/transcription", params))

    # -- jobs ---------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        return self._send(calls.get_job(job_id))

    def cancel_job(self, job_id: str) -> None:
        """Cancel a queued or processing job; no effect on a finished one (get_job tells which)."""
        self._send(calls.cancel_job(job_id))

    def list_jobs(self, *, status: str | None = None, capability: str | None = None, model: str | None = None,
                  limit: int | None = None, cursor: str | None = None) -> JobPage:
        return self._send(calls.list_jobs(status, capability, model, limit, cursor))

    def iter_jobs(self, *, status: str | None = None, capability: str | None = None, model: str | None = None,
                  page_size: int = 100) -> Iterator[Job]:
        """Every job of the account, newest first, following `next_cursor` page by page."""
        cursor = None
        while True:
            page = self.list_jobs(status=status, capability=capability, model=model, limit=page_size, cursor=cursor)
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def wait_for_job(self, job: str | Job, *, timeout: float = 600.0, poll_interval: float = 0.5,
                     max_poll_interval: float = 5.0, on_update: Callable[[Job], None] | None = None) -> Job:
        """Follow the job until it completes, fails or is cancelled, and return it: a failed job is
        returned, not raised (`job.raise_for_status()` raises JobFailed). `on_update` sees each new
        state. Raises WaitTimeout (a TimeoutError) after `timeout` seconds."""
        job_id = job.job_id if isinstance(job, Job) else job
        w = Waiter(job_id, timeout=timeout, poll_interval=poll_interval, max_poll_interval=max_poll_interval,
                   request_timeout=self.timeout, use_sse=self.sse, on_update=on_update)
        while True:
            step = w.next()
            if isinstance(step, Poll):
                try:
                    done = w.polled(self._send(calls.get_job(job_id), timeout=step.timeout))
                except (GatewayAPIError, GatewayConnectionError) as exc:
                    time.sleep(w.poll_failed(exc))
                    continue
                if done is not None:
                    return done
                if w.must_sleep():
                    time.sleep(w.poll_delay())
                continue
            try:
                done = self._follow(job_id, step.headers, step.read_timeout, w)
            except httpx.TransportError as exc:
                time.sleep(w.stream_ended(exc))
                continue
            if done is not None:
                return done

    def _follow(self, job_id: str, headers: dict[str, str], read_timeout: float, w: Waiter) -> Job | None:
        url = f"{self.base_url}{calls.get_job(job_id).path}/stream"
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        with self._http.stream("GET", url, headers={**self._headers, **headers}, timeout=timeout) as resp:
            if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
                w.stream_refused()  # polling then reports the error, if it is one (401, 404)
                return None
            for line in resp.iter_lines():
                got = w.line(line)
                if got is RECONNECT:
                    return None
                if got is not None:
                    return got  # type: ignore[return-value]
        time.sleep(w.stream_ended(None))
        return None

    # -- files --------------------------------------------------------------------------------

    def upload_file(self, source: calls.UploadSource, media_type: str | None = None, *,
                    content_hash: bool = True) -> UploadedFile:
        """Upload bytes, a path or a binary file object (max 50 MB); pass the result's `url` in `files`.

        A path or seekable file is hashed first and then streamed, never held in memory; the
        `X-Content-Hash` lets the gateway answer with the account's existing copy at once."""
        prepared = calls.prepare_upload(source, media_type, content_hash)
        content = prepared.data if prepared.data is not None else prepared.chunks()
        return self._send(calls.upload(prepared), content=content)

    def get_file(self, file_id: str) -> UploadedFile:
        return self._send(calls.get_file(file_id))

    def download(self, source: Job | str, dest: str | os.PathLike | None = None, *,
                 on_progress: Callable[[int, int | None], None] | None = None) -> Path:
        """Save a completed job's output (or any output URL) to `dest` (default `<job_id>.<ext>`,
        or a directory to put that name in). Written to `<dest>.part` first, then renamed."""
        url, path = calls.download_target(source, dest, self.base_url)
        part = path.with_name(path.name + ".part")
        try:
            with self._http.stream("GET", url, timeout=self.timeout, follow_redirects=True) as resp:  # no API key: URLs are
                # public; with object storage the gateway redirects to the object
                if resp.status_code >= 400:
                    resp.read()
                    raise api_error(resp)
                length = resp.headers.get("content-length", "")
                total = int(length) if length.isdigit() else None
                done = 0
                with open(part, "wb") as f:
                    for chunk in resp.iter_bytes():
                        f.write(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(done, total)
            part.replace(path)
        except httpx.TransportError as exc:
            raise GatewayConnectionError(f"GET {url}: {exc or type(exc).__name__}") from exc
        finally:
            part.unlink(missing_ok=True)
        return path

    # -- account and reference ----------------------------------------------------------------

    def balance(self) -> Balance:
        return self._send(calls.balance())

    def usage(self, from_: str | date | None = None, to: str | date | None = None) -> Usage:
        """Every usage record of the period (the server pages them: this follows `next_cursor`)."""
        page = self._send(calls.usage(from_, to))
        records = list(page.usage)
        while page.next_cursor:
            page = self._send(calls.usage(from_, to, page.next_cursor))
            records += page.usage
        return Usage(records, page.total_cents)

    def me(self) -> Me:
        return self._send(calls.me())

    def voices(self) -> list[Voice]:
        return self._send(calls.voices())

    def models(self, capability: str | None = None) -> list[dict[str, Any]]:
        return self._send(calls.models(capability))

    # -- media processing ---------------------------------------------------------------------

    def probe(self, url: str) -> Probe:
        return self._send(calls.probe(url))

    def trim(self, url: str, **params: Unpack[calls.TrimParams]) -> Job:
        return self._send(calls.media_job("trim", {"url": url}, params))

    def resize(self, url: str, width: int, height: int, **params: Unpack[calls.ResizeParams]) -> Job:
        return self._send(calls.media_job("resize", {"url": url, "width": width, "height": height}, params))

    def slice(self, video_url: str, **params: Unpack[calls.SliceParams]) -> Job:
        return self._send(calls.media_job("slice", {"video_url": video_url}, params))

    def ffmpeg(self, command: str, input_files: list[str] | dict[str, str], output_files: list[str] | dict[str, str],
               **params: Unpack[calls.Delivery]) -> Job:
        body = {"command": command, "input_files": input_files, "output_files": output_files}
        return self._send(calls.media_job("", body, params))

