"""Fal, through the official `fal-client` SDK and its queue API (submit, status, result, cancel).

Fal reports a failed run as COMPLETED with an `error` (it has no FAILED status) and exhausted
balance as 403, not 402; both are mapped here. The SDK already retries 408/409/429 and transport
errors inside one call, so what reaches us is either final or worth a later poll.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlencode

import fal_client
import fal_client.client as fal_sdk
import httpx
import orjson

from adapters.base import (
    Failed, Finished, Output, ProviderFailure, ProviderRequest, Running, Submitted, failure_for_status, header_value,
    retry_after_seconds,
)
from adapters.http import error_message
from config import catalog
from config.settings import ProviderSettings

NAME = "fal"


class FalAdapter:
    name = NAME

    def __init__(self, settings: ProviderSettings) -> None:
        if settings.base_url:
            # The SDK reads this module constant at call time; there is no per-client base URL.
            fal_sdk.QUEUE_URL_FORMAT = settings.base_url.rstrip("/") + "/"
        self._timeout = settings.timeout
        self._clients: dict[str, fal_client.SyncClient] = {}
        self._lock = threading.Lock()

    def _client(self, key: str) -> fal_client.SyncClient:
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = fal_client.SyncClient(key=key, default_timeout=self._timeout)
            return client

    def submit(self, req: ProviderRequest, key: str) -> Submitted:
        # One POST through the SDK's own client (auth, hosts), but not through `SyncClient.submit`: that
        # re-sends on timeouts and 429s, and a re-sent submission Fal already took is a second bill.
        url = fal_sdk.QUEUE_URL_FORMAT + req.endpoint
        if req.webhook_url:
            url += "?" + urlencode({"fal_webhook": req.webhook_url})
        with _mapped_errors():
            response = self._client(key)._client.post(url, json=payload(req), timeout=self._timeout)
        if response.status_code >= 400:
            raise failure_for_status(NAME, response.status_code, _detail(response),
                                     retry_after=retry_after_seconds(response.headers.get("retry-after")))
        data = response.json()
        return Submitted(handle={k: data[k] for k in ("request_id", "response_url", "status_url", "cancel_url")})

    def _handle(self, handle: dict[str, Any], key: str) -> fal_client.SyncRequestHandle:
        return fal_client.SyncRequestHandle(
            request_id=handle["request_id"],
            response_url=handle["response_url"],
            status_url=handle["status_url"],
            cancel_url=handle["cancel_url"],
            client=self._client(key)._client,
        )

    def poll(self, handle: dict[str, Any], key: str) -> Running | Finished | Failed:
        h = self._handle(handle, key)
        with _mapped_errors():
            status = h.status(with_logs=True)
            if isinstance(status, fal_client.Queued):
                return Running(queue_position=status.position)
            if isinstance(status, fal_client.InProgress):
                last = (status.logs or [{}])[-1]
                return Running(message=last.get("message"))
            if status.error:
                return Failed(str(status.error), status.error_type)
            response = h.client.get(h.response_url, timeout=self._timeout)
        if response.status_code >= 400:
            # A completed request whose result GET fails is a failed run (Fal has no FAILED status).
            failure = failure_for_status(NAME, response.status_code, _detail(response))
            if failure.retryable:
                raise failure
            return Failed(failure.message, "result_error")
        return Finished(outputs=outputs_from_result(response.json()), metadata=_metadata(response.json()))

    def cancel(self, handle: dict[str, Any], key: str) -> None:
        with _mapped_errors(ignore={400, 404}):  # already completed / unknown: nothing left to stop
            self._handle(handle, key).cancel()


_IMAGE_SIZES = {
    "1:1": "square_hd",
    "16:9": "landscape_16_9",
    "9:16": "portrait_16_9",
    "4:3": "landscape_4_3",
    "3:4": "portrait_4_3",
}


def payload(req: ProviderRequest) -> dict[str, Any]:
    """The Fal input JSON for a request: field names per mode, with the catalog row's hints."""
    hints = catalog.get(req.model).hints
    p = req.params
    args: dict[str, Any] = {}
    if p.get("prompt"):
        args["prompt"] = p["prompt"]
    if p.get("aspect_ratio"):
        if hints.get("aspect") == "image_size":
            args["image_size"] = _IMAGE_SIZES[p["aspect_ratio"]]
        else:
            args["aspect_ratio"] = p["aspect_ratio"]
    if p.get("duration") is not None:
        seconds = p["duration"]
        args["duration"] = str(int(seconds)) if hints.get("duration") == "str" else (
            int(seconds) if seconds == int(seconds) else seconds)
    files = p.get("files") or []
    if req.mode == "edit" and hints.get("images") == "image_urls":
        args["image_urls"] = files
    elif req.mode in ("edit", "upscale", "background-removal", "image-to-video"):
        args["image_url"] = files[0]
    elif req.mode == "keyframes":
        args["image_url"], args[hints.get("tail", "tail_image_url")] = files
    elif req.mode in ("video-edit", "video-upscale"):
        args["video_url"] = files[0]
    elif req.mode == "motion-control":
        args["image_url"], args["video_url"] = files
    elif req.mode == "lipsync":
        visual, audio = files
        args["video_url" if catalog.file_kind(visual) == "video" else "image_url"] = visual
        args["audio_url"] = audio
    elif req.mode == "transcription":
        args["audio_url"] = p["audio_url"]
        if p.get("language"):
            args["language"] = p["language"]
    args.update(req.options)
    return args


def outputs_from_result(result: dict[str, Any]) -> list[Output]:
    """Fal models answer `images[]`, `image`, `video`, `audio` / `audio_file` or plain text."""
    files: list[dict[str, Any]] = list(result.get("images") or [])
    for name in ("image", "video", "audio", "audio_file", "audio_url"):
        value = result.get(name)
        if isinstance(value, dict) and value.get("url"):
            files.append(value)
        elif isinstance(value, str):
            files.append({"url": value})
    outputs = [Output(media_type=f.get("content_type"), url=f["url"]) for f in files if f.get("url")]
    if not outputs and isinstance(result.get("text"), str):
        outputs.append(Output(media_type="application/json", data=orjson.dumps(result)))
    return outputs


def create(settings: ProviderSettings) -> FalAdapter:
    return FalAdapter(settings)


def _metadata(result: dict[str, Any]) -> dict[str, Any]:
    return {k: result[k] for k in ("seed", "has_nsfw_concepts", "timings") if k in result}


def _detail(response: httpx.Response) -> str:
    return error_message(response, lambda body, status: str(body.get("detail", body) if isinstance(body, dict) else body))


class _mapped_errors:
    """Turn the SDK's and httpx's exceptions into `ProviderFailure`, cause kept."""

    def __init__(self, ignore: set[int] | frozenset[int] = frozenset()) -> None:
        self.ignore = ignore

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, ProviderFailure):
            return False
        if isinstance(exc, fal_sdk.FalClientHTTPError):
            if exc.status_code in self.ignore:
                return True
            retry_after = retry_after_seconds(header_value(exc.response_headers, "retry-after"))
            raise failure_for_status(NAME, exc.status_code, str(exc.message)[:500], retry_after=retry_after) from exc
        if isinstance(exc, (httpx.TransportError, fal_sdk.FalClientTimeoutError)):
            raise ProviderFailure(NAME, f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if isinstance(exc, (ValueError, KeyError)):  # a status or body the SDK could not parse
            raise ProviderFailure(NAME, f"unexpected response: {exc}", retryable=True) from exc
        return False
