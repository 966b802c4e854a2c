"""Fal, through the official `fal-client` SDK and its queue API (submit, status, result, cancel).

Fal reports a failed run as COMPLETED with an `error` (it has no FAILED status) and exhausted
balance as 403, not 402; both are mapped here. Every call is one request through the SDK's own
authenticated client, with our timeout: the SDK's handle methods (`status()`, `cancel()`) wait up to
120 s a try and retry transport errors, timeouts and 429s up to 10 times, which would hold a worker
thread for minutes (20 for a provider that hangs). The pipeline retries instead, with its capped
backoff, between polls and without holding a thread.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import fal_client
import fal_client.client as fal_sdk
import httpx
import orjson

from gengate.adapters.base import (
    CancelVerdict, Failed, Finished, Output, ProviderFailure, ProviderRequest, Running, Submitted, failure_for_status, header_value,
    mapped_rest, passthrough_finished, passthrough_handle, passthrough_input, retry_after_seconds,
)
from gengate.adapters.clients import ClientCache
from gengate.adapters.http import error_message
from gengate.config import catalog
from gengate.config.catalog import PASSTHROUGH
from gengate.config.settings import ProviderSettings

NAME = "fal"


class FalAdapter:
    name = NAME

    def __init__(self, settings: ProviderSettings) -> None:
        if settings.base_url:
            # The SDK reads this module constant at call time; there is no per-client base URL.
            fal_sdk.QUEUE_URL_FORMAT = settings.base_url.rstrip("/") + "/"
        self._timeout = settings.timeout
        self._clients: ClientCache[fal_client.SyncClient] = ClientCache(
            lambda key: fal_client.SyncClient(key=key, default_timeout=self._timeout),
            max_size=settings.clients_max, idle_seconds=settings.client_idle_seconds)

    def _client(self, key: str) -> fal_client.SyncClient:
        return self._clients.get(key)

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
        # An unreadable 2xx answer maps to a retryable failure without a status (it may have been
        # accepted, so it is not resubmitted), never a bare ValueError/KeyError.
        with _mapped_errors():
            data = response.json()
            handle = {k: str(data[k]) for k in ("request_id", "response_url", "status_url", "cancel_url")}
        return Submitted(handle=passthrough_handle(handle, req))

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
            # One GET (see the module docstring), read as `SyncRequestHandle.status()` reads it.
            response = h.client.get(h.status_url, params={"logs": True}, timeout=self._timeout)
            _raise_for_status(response)
            data = response.json()
            state = data.get("status") if isinstance(data, dict) else None
            if state == "IN_QUEUE":
                return Running(queue_position=data.get("queue_position"))
            if state == "IN_PROGRESS":
                last = (data.get("logs") or [{}])[-1]
                return Running(message=last.get("message") if isinstance(last, dict) else None)
            if state != "COMPLETED":  # a status Fal never documented: look again later, then give up
                raise ProviderFailure(NAME, f"unexpected Fal request status {state!r}"[:500], retryable=True)
            if data.get("error"):
                return Failed(str(data["error"]), data.get("error_type"))
            response = h.client.get(h.response_url, timeout=self._timeout)
            if response.status_code < 400:
                result = response.json()
                if not isinstance(result, dict):
                    raise ValueError("the result is not a JSON object")
        if response.status_code >= 400:
            # A completed request whose result GET fails is a failed run (Fal has no FAILED status).
            failure = failure_for_status(NAME, response.status_code, _detail(response))
            if failure.retryable:
                raise failure
            return Failed(failure.message, "result_error")
        if handle.get(PASSTHROUGH):
            return passthrough_finished(result, handle, _metadata(result))
        return Finished(outputs=outputs_from_result(result), metadata=_metadata(result))

    def cancel(self, handle: dict[str, Any], key: str) -> CancelVerdict:
        """Fal's cancel answers 202 CANCELLATION_REQUESTED both for a queued request (removed, never
        run) and for one in progress (a signal to the runner, which keeps billing until it stops), and
        400 ALREADY_COMPLETED after the end. So the cancel only acts; the status read after it says
        whether a runner ever had the request."""
        h = self._handle(handle, key)
        with _mapped_errors():
            response = h.client.put(h.cancel_url, timeout=self._timeout)
        if response.status_code == 404:
            return CancelVerdict.UNKNOWN
        if response.status_code != 400:
            _raise_for_status(response)
        with _mapped_errors():
            status = h.client.get(h.status_url, params={"logs": True}, timeout=self._timeout)
            _raise_for_status(status)
            data = status.json()
        return cancel_verdict(response.status_code < 400, data if isinstance(data, dict) else {})


def cancel_verdict(accepted: bool, status: dict[str, Any]) -> CancelVerdict:
    """From the status after a cancel: still IN_QUEUE with the cancel accepted (Fal removes it from
    the queue), or COMPLETED with an error and no sign of a runner (no `metrics.inference_time`, the
    runner's seconds, and no runner logs): never started. IN_PROGRESS, a result, or any runner time:
    too late."""
    state = status.get("status")
    if state == "IN_QUEUE":
        return CancelVerdict.CONFIRMED_BEFORE_START if accepted else CancelVerdict.UNKNOWN
    if state == "IN_PROGRESS":
        return CancelVerdict.TOO_LATE
    if state != "COMPLETED":
        return CancelVerdict.UNKNOWN
    metrics = status.get("metrics") if isinstance(status.get("metrics"), dict) else {}
    ran = bool(metrics.get("inference_time")) or bool(status.get("logs"))
    return CancelVerdict.CONFIRMED_BEFORE_START if status.get("error") and not ran else CancelVerdict.TOO_LATE


def payload(req: ProviderRequest) -> dict[str, Any]:
    """The fal input for a request, as the catalog row's payload mapping for its mode says (the API
    has already refused what the mode cannot honour); for an endpoint reached by id, the user's
    provider_options with the prompt and files mapped in."""
    if req.mode == PASSTHROUGH:
        return passthrough_input(req)
    # the model's fal route: its first row, or an alternate (ElevenLabs speech served by fal)
    spec = catalog.route(req.model, NAME) or catalog.get(req.model)
    mapping = spec.payloads[req.mode]
    p = req.params
    args: dict[str, Any] = {}
    if req.capability == "speech" and p.get("voice"):
        args["voice"] = fal_voice(str(p["voice"]))
    if mapping.prompt and p.get("prompt"):
        args["prompt"] = p["prompt"]
    ratio = p.get("aspect_ratio")
    if ratio and mapping.size:
        args[mapping.size] = ratio if mapping.size == "aspect_ratio" else catalog.SIZE_NAMES[ratio]
    seconds = p.get("duration")
    if seconds is not None and mapping.duration:
        if mapping.duration == "string":
            args["duration"] = str(int(seconds))
        elif mapping.duration == "frames":
            args["num_frames"], args["fps"] = round(seconds * mapping.fps) + 1, mapping.fps
        else:
            args["duration"] = int(seconds) if seconds == int(seconds) else seconds
    return mapped_rest(args, mapping, p, list(p.get("files") or []), req.options)


# fal's ElevenLabs TTS endpoints take a voice *name* in `voice` (config/schemas/fal: a plain string whose
# published default is "Rachel"; fal's text-to-dialogue examples name voices the same way, "Aria",
# "Charlotte"). The gateway's voices are ElevenLabs' premade voices by name, so each is sent as that name
# capitalised. fal publishes no list of the names it accepts: only "Rachel" is confirmed by the schema
# itself; the others are assumed to resolve as ElevenLabs' premade voices of those names.
def fal_voice(voice: str) -> str:
    return voice.capitalize()


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


def _raise_for_status(response: httpx.Response) -> None:
    """An error answer as the `ProviderFailure` of its status, Retry-After kept."""
    if response.status_code >= 400:
        raise failure_for_status(NAME, response.status_code, _detail(response),
                                 retry_after=retry_after_seconds(response.headers.get("retry-after")))


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
        if isinstance(exc, (ValueError, KeyError, TypeError)):  # a status or body that could not be parsed
            raise ProviderFailure(NAME, f"unexpected response: {exc}", retryable=True) from exc
        return False
