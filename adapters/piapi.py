"""PiAPI (Seedance 2), over plain httpx: PiAPI has no official Python SDK; its task API is two calls.

One pooled `httpx.Client` (thread-safe) serves every key; the key travels per request in `X-API-Key`
and httpx never retries, so a create call is sent exactly once.

Wire format (piapi.ai/docs, Seedance): `POST {base}/api/v1/task` `{"model": "seedance", "task_type",
"input": {...}, "config": {"webhook_config": {"endpoint", "secret"}}}` and `GET /api/v1/task/{id}`, both
answering the envelope `{"code", "data": {task_id, status, output, error: {code, message}, meta, ...},
"message"}`. `status` is pending | staged | processing | completed | failed, compared without case
(PiAPI's spelling varies); a completed task's `data.output.video` is the MP4 URL.

Cancel: PiAPI documents `DELETE /api/v1/task/{id}` (pending tasks only) for some models (Kling, Luma)
but not for Seedance. We still send it, best effort, and treat a refusal as "nothing to cancel": the
task then runs to its end and its output is discarded by the pipeline.
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from gengate.adapters.base import CancelVerdict, Failed, Finished, Output, ProviderFailure, ProviderRequest, Running, Submitted, failure_for_status
from gengate.adapters.http import error_message, json_object, send
from gengate.adapters.http import client as http_client
from gengate.config.settings import ProviderSettings

NAME = "piapi"
BASE_URL = "https://api.piapi.ai"
MODEL = "seedance"
PENDING = frozenset({"pending", "staged"})
# Refusals of a cancel that mean "not cancellable (any more)" rather than a problem with the call.
CANCEL_REFUSALS = frozenset({400, 404, 405, 409})


def build_payload(req: ProviderRequest) -> dict[str, Any]:
    """Gateway params → a Seedance task. `input` gets prompt, duration (int), aspect_ratio and the files
    the mode needs (image-to-video: all as `image_urls`; video-edit: the first as `video_urls`, any
    others as reference `image_urls`); the user's options are merged into `input` last."""
    params = req.params
    task_input: dict[str, Any] = {"prompt": params.get("prompt") or ""}
    if params.get("duration") is not None:
        task_input["duration"] = int(float(params["duration"]))
    if params.get("aspect_ratio"):
        task_input["aspect_ratio"] = params["aspect_ratio"]
    files = [str(f) for f in params.get("files") or []]
    if req.mode == "image-to-video":
        task_input["image_urls"] = files
    elif req.mode == "video-edit":
        task_input["video_urls"] = files[:1]
        if files[1:]:
            task_input["image_urls"] = files[1:]
    elif req.mode != "text-to-video":
        raise ProviderFailure(NAME, f"PiAPI adapter does not support mode '{req.mode}'", retryable=False)
    task_input.update(req.options)
    body: dict[str, Any] = {"model": MODEL, "task_type": req.endpoint, "input": task_input}
    if req.webhook_url:
        body["config"] = {"webhook_config": {"endpoint": req.webhook_url, "secret": ""}}
    return body


class PiapiAdapter:
    name = NAME

    def __init__(self, settings: ProviderSettings) -> None:
        self._base = (settings.base_url or BASE_URL).rstrip("/")
        self._http = http_client(settings)

    def close(self) -> None:
        self._http.close()

    def submit(self, req: ProviderRequest, key: str) -> Submitted:
        data = _data(self._call("POST", f"{self._base}/api/v1/task", key, json=build_payload(req)))
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            # Possibly accepted: retryable, but without a status, so the pipeline will not resubmit.
            raise ProviderFailure(NAME, "PiAPI's create-task answer has no task_id", retryable=True)
        return Submitted(handle={"task_id": task_id, "task_type": req.endpoint})

    def poll(self, handle: dict[str, Any], key: str) -> Running | Finished | Failed:
        data = _data(self._call("GET", self._task_url(handle), key))
        status = str(data.get("status") or "").strip().lower()
        if status in PENDING:
            return Running(message=status)
        if status == "processing":
            return Running(message="processing")
        if status == "completed":
            outputs = outputs_from_task(data.get("output"))
            if not outputs:
                return Failed("PiAPI reported the task completed without a video", "no_output")
            return Finished(outputs=outputs, metadata=_metadata(data))
        if status == "failed":
            error = data.get("error") if isinstance(data.get("error"), dict) else {}
            message = error.get("message") or error.get("raw_message") or "PiAPI reported the task failed"
            return Failed(str(message)[:1000], "generation_failed")
        raise ProviderFailure(NAME, f"unexpected PiAPI task status {data.get('status')!r}", retryable=True)

    def cancel(self, handle: dict[str, Any], key: str) -> CancelVerdict:
        """PiAPI cancels pending tasks only, and only for some models (none for Seedance): a refusal
        means the task runs (or ran) and is billed."""
        try:
            self._call("DELETE", self._task_url(handle), key)
        except ProviderFailure as failure:
            if failure.status == 404:
                return CancelVerdict.UNKNOWN
            if failure.status in CANCEL_REFUSALS:  # Seedance: not cancellable, or already running/done
                return CancelVerdict.TOO_LATE
            raise
        return CancelVerdict.CONFIRMED_BEFORE_START

    # -- plumbing ----------------------------------------------------------------
    def _task_url(self, handle: dict[str, Any]) -> str:
        return f"{self._base}/api/v1/task/{quote(str(handle['task_id']), safe='')}"

    def _call(self, method: str, url: str, key: str, **kwargs: Any) -> httpx.Response:
        return send(self._http, NAME, "PiAPI", method, url, headers={"X-API-Key": key}, message_of=_message,
                    **kwargs)


def outputs_from_task(output: Any) -> list[Output]:
    """`output.video` (Seedance), or an image URL for other task types; PiAPI sends no content type,
    so the URL's extension decides (None lets the download's Content-Type decide)."""
    if not isinstance(output, dict):
        return []
    urls: list[str] = [output[n] for n in ("video", "video_url", "image_url") if isinstance(output.get(n), str)]
    urls += [u for u in output.get("image_urls") or [] if isinstance(u, str)]
    return [Output(media_type=mimetypes.guess_type(urlsplit(u).path)[0], url=u) for u in urls if u]


def _metadata(data: dict[str, Any]) -> dict[str, Any]:
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    return {"task_id": data.get("task_id"), "usage": meta.get("usage")}


def _data(response: httpx.Response) -> dict[str, Any]:
    """`data` of a 2xx envelope; an envelope whose own `code` says error counts as that HTTP error."""
    body = json_object(response, NAME, "PiAPI")
    code = body.get("code")
    if isinstance(code, int) and 400 <= code <= 599:
        raise failure_for_status(NAME, code, str(body.get("message") or f"code {code}")[:500])
    data = body.get("data")
    if not isinstance(data, dict):
        raise ProviderFailure(NAME, f"PiAPI answer without data (HTTP {response.status_code})", retryable=True)
    return data


def _message(response: httpx.Response) -> str:
    return error_message(response, _message_from_body)


def _message_from_body(body: Any, status: int) -> str:
    """The envelope's `message`, plus `data.error.message` when PiAPI gives one."""
    if not isinstance(body, dict):
        return str(body)
    message = str(body.get("message") or body.get("detail") or f"HTTP {status}")
    data = body.get("data")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message") and error["message"] != message:
        message = f"{message}: {error['message']}"
    return message


def create(settings: ProviderSettings) -> PiapiAdapter:
    return PiapiAdapter(settings)
