"""Replicate, through the official `replicate` SDK: create a prediction, poll it, cancel it.

Wire facts this adapter relies on (checked in replicate 1.0.7's source):

* `Client(api_token, base_url=..., timeout=httpx.Timeout)`; other keyword arguments go to the
  `httpx.Client`. The SDK sends `Authorization: Bearer <token>`, and with an empty token it would
  fall back to `REPLICATE_API_TOKEN` from the environment. So the header is always set explicitly
  here: a BYOK call can never run on the pooled key by accident.
* The SDK wraps every client in a `RetryTransport`. It retries HEAD/GET/PUT/DELETE/OPTIONS/TRACE
  on 429/503/504 up to 10 tries, sleeping ~50 s in all, or any Retry-After in whole seconds,
  uncapped: a poll would hold a worker thread that long. Our transport is therefore mounted for every
  URL (`mounts={"all://": ...}`, which httpx prefers to `transport`), so each call is one request;
  the pipeline retries polls itself, with capped backoff and without holding a thread. Create and
  cancel are POSTs: sent exactly once either way.
* `ReplicateError` keeps status/title/detail but drops the response headers. An httpx response
  hook therefore records Retry-After for the error being mapped.
* The SDK sends create with `timeout=None` unless `wait` is given, and in httpx that switches off
  every timeout: a create that hangs would never return. `_TimeoutFloor` fills in the
  configured timeouts on any request that arrives without them.
* `predictions.get()` returns the raw JSON `output`, and only `run()` wraps `https:`/`data:` strings
  into `FileOutput`. Both forms, and lists and dicts of them, are handled.

We never send `Prefer: wait`. A held request would tie up a worker thread, and the SDK replaces the
read timeout with wait+0.5 s. Submit always returns `Submitted`; the pipeline polls at once.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import replicate
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput
from replicate.prediction import Prediction

from gengate.adapters.base import (
    CancelVerdict, Failed, Finished, Output, ProviderFailure, ProviderRequest, Running, Submitted, failure_for_status, mapped_rest,
    media_type_of, passthrough_finished, passthrough_handle, passthrough_input, retry_after_seconds,
)
from gengate.adapters.clients import ClientCache
from gengate.config import catalog
from gengate.config.catalog import PASSTHROUGH
from gengate.config.settings import ProviderSettings

NAME = "replicate"
DEFAULT_BASE_URL = "https://api.replicate.com"

# Replicate's `error` is free text chosen by each model; these words mark safety-filter refusals.
CONTENT_POLICY_WORDS = ("nsfw", "sensitive", "content policy", "safety", "e005", "flagged")

_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: anything else cannot travel in a header
_error_response = threading.local()  # greenlet-local under gevent's monkey-patching


def _remember_error(response: httpx.Response) -> None:
    """httpx response hook: keep the Retry-After of an error answer, which `ReplicateError` drops."""
    if response.status_code >= 400:
        _error_response.retry_after = retry_after_seconds(response.headers.get("retry-after"))


class _TimeoutFloor(httpx.HTTPTransport):
    """The HTTP transport under the SDK's `RetryTransport`: puts our timeouts back on requests the
    SDK sent with `timeout=None` (the create call), so a read timeout can fire after a submit."""

    def __init__(self, timeout: httpx.Timeout) -> None:
        super().__init__()
        self._timeout = timeout.as_dict()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        given = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            name: given.get(name) if given.get(name) is not None else default for name, default in self._timeout.items()
        }
        return super().handle_request(request)


class ReplicateAdapter:
    name = NAME

    def __init__(self, settings: ProviderSettings) -> None:
        self._base_url = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        self._clients: ClientCache[replicate.Client] = ClientCache(
            self._new_client, max_size=settings.clients_max, idle_seconds=settings.client_idle_seconds)

    def _client(self, key: str) -> replicate.Client:
        if not _TOKEN.fullmatch(key):
            # Checked before sending: httpx would reject it with an error that quotes the header,
            # i.e. the key, and an empty token would make the SDK use REPLICATE_API_TOKEN instead.
            raise failure_for_status(NAME, 401, "the Replicate API token is empty or malformed")
        return self._clients.get(key)

    def _new_client(self, key: str) -> replicate.Client:
        floor = _TimeoutFloor(self._timeout)
        client = replicate.Client(
            api_token=key, base_url=self._base_url, timeout=self._timeout,
            headers={"Authorization": f"Bearer {key}"},
            event_hooks={"response": [_remember_error]}, transport=floor,
            mounts={"all://": floor},  # routes around the SDK's RetryTransport (see the docstring)
        )
        _ = client._client  # build the httpx client now: the SDK's lazy property is not thread-safe
        return client

    def submit(self, req: ProviderRequest, key: str) -> Submitted:
        model, version = _target(req.endpoint)
        payload = build_input(req)
        params: dict[str, Any] = {}
        if req.webhook_url:
            params.update(webhook=req.webhook_url, webhook_events_filter=["completed"])
        client = self._client(key)
        with _mapped_errors():
            if version:
                prediction = client.predictions.create(version=version, input=payload, **params)
            else:
                prediction = client.models.predictions.create(model=model, input=payload, **params)
        handle = {"id": prediction.id, "model": prediction.model, "get_url": (prediction.urls or {}).get("get")}
        return Submitted(handle=passthrough_handle(handle, req))

    def poll(self, handle: dict[str, Any], key: str) -> Running | Finished | Failed:
        with _mapped_errors():
            prediction = self._client(key).predictions.get(handle["id"])
        status = prediction.status
        if status == "starting":
            return Running(message="starting")
        if status == "processing":
            return Running(message=_progress(prediction))
        if status == "succeeded" and handle.get(PASSTHROUGH):
            return passthrough_finished(prediction.output, handle, _metadata(prediction))
        if status == "succeeded":
            outputs = outputs_from_output(prediction.output)
            if not outputs:
                return Failed("prediction succeeded without any output", "empty_output")
            return Finished(outputs=outputs, metadata=_metadata(prediction))
        if status == "canceled":
            return Failed("prediction was canceled", "canceled")
        error = str(prediction.error or "prediction failed")
        return Failed(error[:1000], _error_type(error))

    def cancel(self, handle: dict[str, Any], key: str) -> CancelVerdict:
        # The answer is the prediction (a finished one unchanged); an unknown id is a 404.
        with _mapped_errors(ignore={404}):
            return cancel_verdict(self._client(key).predictions.cancel(handle["id"]))
        return CancelVerdict.UNKNOWN


def cancel_verdict(prediction: Any) -> CancelVerdict:
    """Replicate bills a prediction for the compute it used (`started_at` on, `metrics.predict_time`):
    one `canceled` without ever starting, or `aborted` (its deadline passed before it started), cost
    nothing. A prediction still `starting` in the answer has not taken the cancel yet: it proves nothing."""
    status = getattr(prediction, "status", None)
    if status == "aborted":
        return CancelVerdict.CONFIRMED_BEFORE_START
    if status == "canceled":
        ran = (getattr(prediction, "metrics", None) or {}).get("predict_time") or 0
        return CancelVerdict.TOO_LATE if getattr(prediction, "started_at", None) or ran else \
            CancelVerdict.CONFIRMED_BEFORE_START
    if status in ("processing", "succeeded", "failed"):
        return CancelVerdict.TOO_LATE
    return CancelVerdict.UNKNOWN


def create(settings: ProviderSettings) -> ReplicateAdapter:
    return ReplicateAdapter(settings)


# -- payload ---------------------------------------------------------------------

def _target(endpoint: str) -> tuple[str | None, str | None]:
    """(model, version) of a catalog endpoint: "owner/name" runs the model's current version through
    the models endpoint; "owner/name:version" (or a bare version id) goes to /v1/predictions."""
    model, _, version = endpoint.strip().partition(":")
    if version:
        if model.count("/") != 1:
            raise ProviderFailure(NAME, f"bad Replicate endpoint {endpoint!r}", retryable=False)
        return model, version
    if model.count("/") == 1 and all(model.split("/")):
        return model, None
    if model and "/" not in model:
        return None, model
    raise ProviderFailure(NAME, f"bad Replicate endpoint {endpoint!r}", retryable=False)


def build_input(req: ProviderRequest) -> dict[str, Any]:
    """The prediction's `input` from the gateway params, as the model's Replicate row maps its mode
    (`Payload`, config/catalog.py); `options` merged last, untouched. A model reached by id: the user's
    provider_options with the prompt and files mapped in (adapters/base.py `passthrough_input`)."""
    if req.mode == PASSTHROUGH:
        return passthrough_input(req)
    spec = catalog.route(req.model, NAME)
    mapping = spec.payloads.get(req.mode) if spec is not None else None
    if mapping is not None:
        return _mapped_input(req, mapping)
    params = req.params
    files = list(params.get("files") or [])
    if req.mode == "background-removal":
        if not files:
            raise ProviderFailure(NAME, "background removal needs one input image", retryable=False)
        # the remover's published input has no prompt (config/schemas/replicate): the API refuses one
        payload: dict[str, Any] = {"image": files[0]}
    else:
        # A model without a catalog row (none in the catalog today): the convention most official
        # models follow; `provider_options` can rename anything.
        payload = {}
        if params.get("prompt"):
            payload["prompt"] = params["prompt"]
        for name in ("aspect_ratio", "duration", "text", "voice", "language"):
            if params.get(name) is not None:
                payload[name] = params[name]
        if params.get("audio_url"):
            payload["audio"] = params["audio_url"]
        if len(files) == 1:
            payload["image"] = files[0]
        elif files:
            payload["images"] = files
    payload.update(req.options)
    return payload


def _mapped_input(req: ProviderRequest, mapping: catalog.Payload) -> dict[str, Any]:
    """The input a catalog `Payload` describes. Replicate's official models take an aspect ratio as
    it is (`aspect_ratio`), seconds as an integer `duration` where they take one, and files by URL,
    `name[]` appending to an array field (google/nano-banana-pro's `image_input`)."""
    p = req.params
    files = list(p.get("files") or [])
    if len(files) < len(mapping.files):
        raise ProviderFailure(NAME, f"{req.mode} needs {len(mapping.files)} input file(s)", retryable=False)
    args: dict[str, Any] = {}
    if mapping.prompt and p.get("prompt"):
        args["prompt"] = p["prompt"]
    ratio = p.get("aspect_ratio")
    if ratio and mapping.size:
        args[mapping.size] = ratio
    seconds = p.get("duration")
    if seconds is not None and mapping.duration:
        whole = int(seconds) if seconds == int(seconds) else seconds
        args["duration"] = str(whole) if mapping.duration == "string" else whole
    return mapped_rest(args, mapping, p, files, req.options)


# -- results ---------------------------------------------------------------------

def outputs_from_output(output: Any) -> list[Output]:
    """Replicate's `output` is whatever the model returns: a URL, a list of URLs, a dict, or text.

    Files come back as URL strings (`FileOutput` when the SDK wrapped them); anything without a
    URL in it is handed over as JSON.
    """
    urls: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, FileOutput):
            urls.append(value.url)
        elif isinstance(value, str):
            if value.startswith(("https://", "http://", "data:")):
                urls.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(output)
    outputs = [_data_output(url) if url.startswith("data:") else Output(media_type_of(url), url=url) for url in urls]
    if not outputs and output not in (None, "", [], {}):
        outputs.append(Output(media_type="application/json", data=orjson.dumps(output)))
    return outputs


def _data_output(url: str) -> Output:
    header, _, body = url[len("data:"):].partition(",")
    media_type, _, encoding = header.partition(";")
    data = base64.b64decode(body) if encoding.endswith("base64") else unquote(body).encode()
    return Output(media_type=media_type or None, data=data)


def _progress(prediction: Prediction) -> str | None:
    progress = prediction.progress  # parsed by the SDK from the tqdm line in the logs
    if progress is not None:
        return f"{round(progress.percentage * 100)}%"
    lines = [line for line in (prediction.logs or "").splitlines() if line.strip()]
    return lines[-1][:200] if lines else None


def _metadata(prediction: Prediction) -> dict[str, Any]:
    return {"prediction_id": prediction.id, "model": prediction.model, "version": prediction.version,
            "metrics": prediction.metrics or {}}


def _error_type(message: str) -> str:
    lowered = message.lower()
    return "content_policy_violation" if any(word in lowered for word in CONTENT_POLICY_WORDS) else "model_error"


# -- errors ----------------------------------------------------------------------

class _mapped_errors:
    """Turn the SDK's and httpx's exceptions into `ProviderFailure`, cause kept."""

    def __init__(self, ignore: set[int] | frozenset[int] = frozenset()) -> None:
        self.ignore = ignore

    def __enter__(self) -> None:
        _error_response.retry_after = None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or isinstance(exc, ProviderFailure):
            return False
        if isinstance(exc, ReplicateError):
            if exc.status in self.ignore:
                return True
            message = _message(exc)
            if exc.status is None:
                raise ProviderFailure(NAME, message, retryable=True) from exc
            retry_after = getattr(_error_response, "retry_after", None)
            raise failure_for_status(NAME, exc.status, message, retry_after=retry_after) from exc
        if isinstance(exc, httpx.LocalProtocolError):  # our request was malformed; its text may quote headers
            raise ProviderFailure(NAME, "the request could not be sent (malformed header or URL)",
                                  retryable=False) from exc
        if isinstance(exc, httpx.HTTPError):
            # No status: a timeout after sending proves nothing about acceptance, so the pipeline
            # will not resubmit it (only a ConnectError cause, or a 429/5xx, allows that).
            raise ProviderFailure(NAME, f"{type(exc).__name__}: {exc}"[:500], retryable=True) from exc
        if isinstance(exc, (ValueError, KeyError, TypeError)):  # a body the SDK could not parse or validate
            raise ProviderFailure(NAME, f"unexpected response: {exc}"[:500], retryable=True) from exc
        return False


def _message(exc: ReplicateError) -> str:
    parts = [str(part).strip() for part in (exc.title, exc.detail) if part]
    return (": ".join(parts) or f"HTTP {exc.status}")[:500]
