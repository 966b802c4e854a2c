"""Higgsfield, over plain httpx: its platform API is a small queue (submit, status, cancel).

Why no SDK: the official `higgsfield-client` retries every call, POSTs included, on 408/429/5xx, so a
submit whose answer was lost could be sent (and billed) twice; it also binds one key per client. Here
one pooled `httpx.Client` (thread-safe) serves every key, the key travels per request, and httpx
never retries anything.

Wire format (docs.higgsfield.ai, `higgsfield-client`): `POST {base}/{model_id}[?hf_webhook=]` with
`Authorization: Key <api_key>:<api_secret>` → `{status: "queued", request_id, status_url, cancel_url}`;
`GET /requests/{id}/status` → `status` in queued | in_progress | completed | failed | nsfw | canceled,
`images: [{url}]` or `video: {url}` when completed, `error` when failed; `POST /requests/{id}/cancel`
→ 202 while queued, 400 once started. `failed` and `nsfw` are final run failures (and not billed).
"""

from __future__ import annotations

import mimetypes
from typing import Any
from urllib.parse import urlsplit

import httpx

from gengate.adapters.base import CancelVerdict, Failed, Finished, Output, ProviderFailure, ProviderRequest, Running, Submitted
from gengate.adapters.http import error_message, json_object, send
from gengate.adapters.http import client as http_client
from gengate.config.settings import ProviderSettings

NAME = "higgsfield"
BASE_URL = "https://platform.higgsfield.ai"
MODES = ("text-to-image",)


def build_payload(req: ProviderRequest) -> dict[str, Any]:
    """Gateway params → Soul's input: prompt, aspect_ratio (default 1:1), resolution 720p; options last."""
    payload: dict[str, Any] = {
        "prompt": req.params.get("prompt") or "",
        "aspect_ratio": req.params.get("aspect_ratio") or "1:1",
        "resolution": "720p",
    }
    payload.update(req.options)
    return payload


class HiggsfieldAdapter:
    name = NAME

    def __init__(self, settings: ProviderSettings) -> None:
        self._base = (settings.base_url or BASE_URL).rstrip("/")
        self._http = http_client(settings)

    def close(self) -> None:
        self._http.close()

    def submit(self, req: ProviderRequest, key: str) -> Submitted:
        if req.mode not in MODES:
            raise ProviderFailure(NAME, f"Higgsfield adapter does not support mode '{req.mode}'", retryable=False)
        params = {"hf_webhook": req.webhook_url} if req.webhook_url else None
        url = f"{self._base}/{req.endpoint.strip('/')}"
        body = _json(self._call("POST", url, key, json=build_payload(req), params=params))
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            # Possibly accepted: retryable, but without a status, so the pipeline will not resubmit.
            raise ProviderFailure(NAME, "Higgsfield's submit answer has no request_id", retryable=True)
        return Submitted(handle={
            "request_id": request_id,
            "status_url": self._own_url(body.get("status_url"), request_id, "status"),
            "cancel_url": self._own_url(body.get("cancel_url"), request_id, "cancel"),
        })

    def poll(self, handle: dict[str, Any], key: str) -> Running | Finished | Failed:
        body = _json(self._call("GET", self._handle_url(handle, "status"), key))
        status = str(body.get("status") or "").strip().lower()
        if status == "queued":
            return Running(message="queued")
        if status == "in_progress":
            return Running(message="in progress")
        if status == "completed":
            outputs = outputs_from_status(body)
            if not outputs:
                return Failed("Higgsfield reported the request completed without any output", "no_output")
            request_id = body.get("request_id") or handle.get("request_id")
            return Finished(outputs=outputs, metadata={"request_id": request_id})
        if status == "failed":
            return Failed(str(body.get("error") or "Higgsfield reported the generation failed"), "generation_failed")
        if status == "nsfw":
            return Failed("Higgsfield's content moderation flagged the input or output as NSFW",
                          "content_policy_violation")
        if status in ("canceled", "cancelled"):
            return Failed("The request was canceled at Higgsfield", "cancelled")
        raise ProviderFailure(NAME, f"unexpected Higgsfield request status {status!r}", retryable=True)

    def cancel(self, handle: dict[str, Any], key: str) -> CancelVerdict:
        """Higgsfield cancels only a queued request: 202 while queued (again 202 once it is canceled),
        400 once processing started or finished (docs/providers.md)."""
        try:
            self._call("POST", self._handle_url(handle, "cancel"), key)
        except ProviderFailure as failure:
            if failure.status == 400:
                return CancelVerdict.TOO_LATE
            if failure.status == 404:
                return CancelVerdict.UNKNOWN
            raise
        return CancelVerdict.CONFIRMED_BEFORE_START

    # -- plumbing ----------------------------------------------------------------
    def _own_url(self, url: Any, request_id: str, action: str) -> str:
        """The provider's URL when it is under our base; else the documented one. The key is only ever
        sent to the configured base, whatever a response says."""
        if isinstance(url, str) and url.startswith(self._base + "/"):
            return url
        return f"{self._base}/requests/{request_id}/{action}"

    def _handle_url(self, handle: dict[str, Any], action: str) -> str:
        return self._own_url(handle.get(f"{action}_url"), str(handle["request_id"]), action)

    def _call(self, method: str, url: str, key: str, **kwargs: Any) -> httpx.Response:
        return send(self._http, NAME, "Higgsfield", method, url, headers={"Authorization": f"Key {key}"},
                    message_of=_detail, **kwargs)


def outputs_from_status(body: dict[str, Any]) -> list[Output]:
    """`images: [{url}]` and/or `video: {url}`; Higgsfield sends no content type, so the URL's
    extension decides (None lets the download's Content-Type decide)."""
    files = [f for f in body.get("images") or [] if isinstance(f, dict)]
    video = body.get("video")
    if isinstance(video, dict):
        files.append(video)
    urls = [f["url"] for f in files if isinstance(f.get("url"), str) and f["url"]]
    return [Output(media_type=media_type_of(url), url=url) for url in urls]


def media_type_of(url: str) -> str | None:
    return mimetypes.guess_type(urlsplit(url).path)[0]


def _json(response: httpx.Response) -> dict[str, Any]:
    return json_object(response, NAME, "Higgsfield")


def _detail(response: httpx.Response) -> str:
    return error_message(response, _detail_from_body)


def _detail_from_body(body: Any, status: int) -> str:
    """The error message, looked up where the official SDK looks: detail, details, message, error."""
    if isinstance(body, dict):
        for name in ("detail", "details", "message", "error"):
            value = body.get(name)
            if isinstance(value, list):  # a validation error list: keep the messages
                value = "; ".join(str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value)
            if value:
                return str(value)
    return str(body)


def create(settings: ProviderSettings) -> HiggsfieldAdapter:
    return HiggsfieldAdapter(settings)
