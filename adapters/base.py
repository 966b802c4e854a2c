"""The whole provider contract: three calls, a few result types, and one failure type.

    class Adapter(Protocol):
        name: str
        def submit(self, req: ProviderRequest, key: str) -> Submitted | Finished
        def poll(self, handle: dict, key: str) -> Running | Finished | Failed
        def cancel(self, handle: dict, key: str) -> CancelVerdict

Adapters know nothing of Celery or Redis. A provider's HTTP error becomes a `ProviderFailure`,
classified by HTTP status first (`failure_for_status`), keeping the provider name, the status and
the original exception as `__cause__`. `retryable` tells the pipeline whether to try again later.

`cancel` says what the provider answered, because the job's price follows it: a run the provider
confirms it stopped before starting costs nothing; any other answer is charged (tasks/pipeline.py
`settle_cancel`).
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from gengate.config.catalog import PASSTHROUGH


@dataclass(frozen=True)
class ProviderRequest:
    """A validated gateway request, resolved against the catalog; each adapter builds its own payload.

    `params` holds the gateway's own field names: `prompt` (may be ""), `aspect_ratio`, `duration`,
    `files` (list of URLs, in request order), `text`, `voice`, `audio_url`, `language`; absent when not
    given. `options` is the user's `provider_options`, merged into the provider payload last, untouched.
    An endpoint reached by id (mode PASSTHROUGH) also has `provider_fields`: where its prompt and files
    go (`passthrough_input`).
    """

    job_id: str
    model: str  # public model name, e.g. "kling-v3"
    capability: str  # image | video | speech | music | transcription
    mode: str  # text-to-image, edit, upscale, image-to-video, keyframes, lipsync, tts, ...
    endpoint: str  # the provider's model / endpoint id for this mode
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None


@dataclass(frozen=True)
class Output:
    """One result file: a URL to copy from, or the bytes of a synchronous provider."""

    media_type: str | None
    url: str | None = None
    data: bytes | None = None


@dataclass(frozen=True)
class Submitted:
    handle: dict[str, Any]  # JSON-able; enough to poll and cancel from any process


@dataclass(frozen=True)
class Running:
    queue_position: int | None = None
    message: str | None = None


@dataclass(frozen=True)
class Finished:
    outputs: list[Output]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    message: str
    error_type: str | None = None


class CancelVerdict(Enum):
    """What a provider said to a cancel of a run it had accepted."""

    CONFIRMED_BEFORE_START = "confirmed_before_start"  # it never started the run, and will not: nothing billed
    TOO_LATE = "too_late"  # running, finished, or not cancellable any more: the run is billed
    UNKNOWN = "unknown"  # the provider does not know the run, or its answer proves nothing


class ProviderFailure(Exception):
    """A provider call failed. `retryable`: worth another try later (429, 5xx, timeouts)."""

    def __init__(
        self, provider: str, message: str, *, status: int | None = None, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


# Status first: 408/409/425/429 and every 5xx may pass; any other 4xx is the request's or the
# account's fault (bad input, bad key, exhausted balance) and repeating it cannot help.
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


def failure_for_status(
    provider: str, status: int, message: str, *, retry_after: float | None = None
) -> ProviderFailure:
    retryable = status >= 500 or status in _RETRYABLE_4XX
    return ProviderFailure(provider, message, status=status, retryable=retryable, retry_after=retry_after)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a `Retry-After` value in either of its forms (delta-seconds or an HTTP date),
    never negative; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _place(args: dict[str, Any], field: str, value: Any) -> None:
    """`value` into provider field `field`; `name[]` appends to the array field `name`."""
    if field.endswith("[]"):
        args.setdefault(field[:-2], []).append(value)
    else:
        args[field] = value


def mapped_rest(args: dict[str, Any], mapping: Any, params: Mapping[str, Any], files: list[str],
                options: Mapping[str, Any]) -> dict[str, Any]:
    """What every provider does alike with a catalog row's `Payload` (config/catalog.py), after its
    own fields: each file to its field (`name[]` appends to an array field), the gateway parameters
    the mapping sends as they are, the defaults it fills in, and the user's `provider_options` last,
    untouched. Returns `args`."""
    for name, url in zip(mapping.files, files):
        _place(args, name, url)
    for name in mapping.params:
        if params.get(name) is not None:
            args[name] = params[name]
    args.update(mapping.defaults)
    args.update(options)
    return args


def passthrough_input(req: ProviderRequest) -> dict[str, Any]:
    """The input of an endpoint reached by id (config/catalog.py PASSTHROUGH): the user's
    `provider_options` as they are, plus the request's prompt (or text) and files in the fields the API
    chose from the endpoint's published schema (`provider_fields`: request field -> provider field,
    `name[]` appending to an array; api/resolve.py `passthrough_fields`, which refused any overlap)."""
    args: dict[str, Any] = dict(req.options)
    files = list(req.params.get("files") or [])
    for source, target in (req.params.get("provider_fields") or {}).items():
        kind, _, index = source.partition(".")
        _place(args, target, files[int(index)] if kind == "files" else req.params[source])
    return args


def passthrough_handle(handle: dict[str, Any], req: ProviderRequest) -> dict[str, Any]:
    """The handle of a submitted run; a passthrough run's says so, with the capability its output is
    looked for by (`passthrough_finished`): the poll has only the handle to go on."""
    return {**handle, PASSTHROUGH: req.capability} if req.mode == PASSTHROUGH else handle


def passthrough_finished(result: Any, handle: Mapping[str, Any], metadata: dict[str, Any]) -> Finished | Failed:
    """A finished passthrough run (`handle` from `passthrough_handle`): its output found by media type,
    or a failure saying there is none."""
    capability = handle[PASSTHROUGH]
    output = find_output(result, capability)
    if output is None:
        return Failed(f"the endpoint's result has no {capability} output (no file of that media type)", "no_output")
    return Finished(outputs=[output], metadata=metadata)


# Media types by file extension, for outputs that come without one (Replicate sends URLs only).
MEDIA_TYPES = {
    "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
    "mp4": "video/mp4", "webm": "video/webm", "mov": "video/quicktime",
    "mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "m4a": "audio/mp4",
    "json": "application/json", "txt": "text/plain",
}


def media_type_of(url: str) -> str | None:
    """A URL's media type by its path's extension (the table above, then the system's table)."""
    path = urlsplit(url).path
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    return MEDIA_TYPES.get(ext) or (mimetypes.guess_type(path)[0] if ext else None)


# The media type an output of each capability has: its major type (speech and music are audio).
_OUTPUT_MAJOR = {"image": "image", "video": "video", "speech": "audio", "music": "audio"}


def find_output(result: Any, capability: str) -> Output | None:
    """The output of an endpoint reached by id, found in its result by media type: the first file
    whose content type (fal's `{url, content_type}` files) or URL extension (Replicate's output URLs)
    is of the capability's kind. A transcription is text: a text or JSON file, else the result itself
    as JSON when it holds any text. None: nothing of that kind (the job fails saying so)."""
    for url, declared in _files_in(result):
        media_type = declared or media_type_of(url)
        major = (media_type or "").split("/", 1)[0]
        if major == _OUTPUT_MAJOR.get(capability) or (capability == "transcription" and media_type in (
                "application/json", "text/plain")):
            return Output(media_type=media_type, url=url)
    if capability == "transcription" and _has_text(result):
        return Output(media_type="application/json", data=orjson.dumps(result))
    return None


def _files_in(value: Any) -> Iterator[tuple[str, str | None]]:
    """(URL, declared media type or None) of every file in a result, depth first, in order."""
    if isinstance(value, dict):
        url = value.get("url")
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            declared = value.get("content_type")
            yield url, declared if isinstance(declared, str) and "/" in declared else None
            return
        for item in value.values():
            yield from _files_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _files_in(item)
    elif isinstance(value, str) and value.startswith(("http://", "https://")):
        yield value, None


def _has_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip()) and not value.startswith(("http://", "https://", "data:"))
    if isinstance(value, dict):
        return any(_has_text(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_text(v) for v in value)
    return False


def header_value(headers: Mapping[str, str] | None, name: str) -> str | None:
    """`name` looked up without case in a plain dict of headers, as the SDKs' exceptions carry them."""
    return {k.lower(): v for k, v in (headers or {}).items()}.get(name.lower())


class Adapter(Protocol):
    name: str

    def submit(self, req: ProviderRequest, key: str) -> Submitted | Finished: ...

    def poll(self, handle: dict[str, Any], key: str) -> Running | Finished | Failed: ...

    def cancel(self, handle: dict[str, Any], key: str) -> CancelVerdict: ...
