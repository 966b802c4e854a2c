"""What each client method sends and how its answer is read, free of I/O: the sync and async clients
only carry a `Call` over their own httpx client. The keyword arguments of every method are declared
once here, as TypedDicts, and both clients take them with `**params: Unpack[...]`."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any, Literal, Required, TypedDict, Union
from urllib.parse import quote

import httpx

from gengate.client import types
from gengate.client.errors import GengateError

CHUNK = 256 * 1024

# Spellings of the BYOK headers as the README documents them (HTTP header names are case-insensitive).
PROVIDER_KEY_HEADERS = {
    "fal": "X-Provider-Key-Fal", "elevenlabs": "X-Provider-Key-ElevenLabs", "higgsfield": "X-Provider-Key-Higgsfield",
    "replicate": "X-Provider-Key-Replicate", "piapi": "X-Provider-Key-PiAPI",
}

FileRef = Union[str, Mapping[str, str]]  # a URL, or the spec's {"url": ...}
CacheControl = Literal["no-cache", "no-store"]


class Delivery(TypedDict, total=False):
    """What any job-creating call may add: webhooks, idempotency, cache control, extra headers."""

    webhook_url: str
    webhook_events: list[Literal["progress", "completed", "failed"]]
    idempotency_key: str  # Idempotency-Key: a retry with the same key and body returns the same job
    cache_control: CacheControl  # no-cache: skip the look-up (still stored); no-store: bypass the cache
    headers: Mapping[str, str]


class JobOptions(Delivery, total=False):
    provider_options: dict[str, Any]  # reaches the provider untouched
    provider_keys: Mapping[str, str]  # {"fal": "..."} -> X-Provider-Key-Fal (BYOK)
    provider_order: list[str]  # a model on several providers: these, in this order (README, routing)
    allow_pooled_fallback: bool  # a BYOK job may fall back to another provider on the gateway's key


class ImageParams(JobOptions, total=False):
    model: Required[str]
    prompt: Required[str]
    aspect_ratio: str
    files: list[FileRef]


class VideoParams(ImageParams, total=False):
    duration: float


class SpeechParams(JobOptions, total=False):
    model: Required[str]
    text: Required[str]
    voice: str


class MusicParams(JobOptions, total=False):
    model: Required[str]
    prompt: Required[str]
    duration: float


class TranscriptionParams(JobOptions, total=False):
    model: Required[str]
    audio_url: Required[str]
    language: str


class TrimParams(Delivery, total=False):
    start: float
    end: float
    duration: float
    precise: bool


class ResizeParams(Delivery, total=False):
    fit: Literal["cover", "contain", "stretch"]


class SliceParams(Delivery, total=False):
    codec: Literal["copy", "reencode"]
    every: float
    at: list[float]
    count: int
    ranges: list[Mapping[str, float]]
    thumbnails: bool


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # under the base URL, e.g. "/image"
    parse: Callable[[httpx.Response], Any]
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


_HEADER_PARAMS = ("idempotency_key", "cache_control", "provider_keys", "headers")


def _json(resp: httpx.Response) -> Any:
    return resp.json()


def _created(resp: httpx.Response) -> types.Job:
    return types.job_from(resp.json(), resp.headers)


def _job(resp: httpx.Response) -> types.Job:
    return types.job_from(resp.json())


def _nothing(resp: httpx.Response) -> None:
    return None


def job_headers(params: Mapping[str, Any]) -> dict[str, str]:
    headers = dict(params.get("headers") or {})
    if params.get("idempotency_key") is not None:
        headers["Idempotency-Key"] = params["idempotency_key"]
    if params.get("cache_control") is not None:
        headers["Cache-Control"] = params["cache_control"]
    for provider, key in (params.get("provider_keys") or {}).items():
        name = PROVIDER_KEY_HEADERS.get(provider.lower(), f"X-Provider-Key-{provider}")
        headers[name] = key
    return headers


def _file_ref(ref: FileRef) -> dict[str, str]:
    return {"url": ref} if isinstance(ref, str) else dict(ref)


def create_job(path: str, params: Mapping[str, Any]) -> Call:
    """POST of a job-creating endpoint: spec fields go to the body, the rest to headers; None is left out."""
    body = {k: v for k, v in params.items() if k not in _HEADER_PARAMS and v is not None}
    if "files" in body:
        body["files"] = [_file_ref(f) for f in body["files"]]
    return Call("POST", path, _created, json=body, headers=job_headers(params))


def get_job(job_id: str) -> Call:
    return Call("GET", f"/jobs/{_segment(job_id)}", _job)


def cancel_job(job_id: str) -> Call:
    return Call("DELETE", f"/jobs/{_segment(job_id)}", _nothing)


def list_jobs(status: str | None, capability: str | None, model: str | None, limit: int | None,
              cursor: str | None) -> Call:
    query = {"status": status, "capability": capability, "model": model, "limit": limit, "cursor": cursor}
    return Call("GET", "/jobs", lambda r: types.page_from(r.json()),
                params={k: v for k, v in query.items() if v is not None})


def get_file(file_id: str) -> Call:
    return Call("GET", f"/files/{_segment(file_id)}", lambda r: types.file_from(r.json()))


def balance() -> Call:
    return Call("GET", "/balance", lambda r: types.balance_from(r.json()))


def me() -> Call:
    return Call("GET", "/me", lambda r: types.me_from(r.json()))


USAGE_PAGE = 1000  # the server's largest page: `usage()` reads every page of the period


def usage(from_: str | date | None, to: str | date | None, cursor: str | None = None) -> Call:
    query = {"from": _day(from_), "to": _day(to), "limit": USAGE_PAGE, "cursor": cursor}
    return Call("GET", "/usage", lambda r: types.usage_from(r.json()),
                params={k: v for k, v in query.items() if v is not None})


def voices() -> Call:
    return Call("GET", "/voices", lambda r: types.voices_from(r.json()))


def models(capability: str | None) -> Call:
    return Call("GET", "/models", lambda r: r.json()["models"],
                params={"capability": capability} if capability else None)


def probe(url: str) -> Call:
    return Call("POST", "/ffmpeg/probe", lambda r: types.probe_from(r.json()), json={"url": url})


def media_job(op: str, body: dict[str, Any], params: Mapping[str, Any]) -> Call:
    """A media job (trim, resize, slice, custom command): body fields plus the Delivery options."""
    return create_job(f"/ffmpeg/{op}" if op else "/ffmpeg", {**params, **body})


def _day(value: str | date | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def _segment(value: str) -> str:
    # An id is one path segment: a "/" or "?" in a caller's string must not reach another endpoint.
    return quote(value, safe="")


# -- uploads -------------------------------------------------------------------------------------

UploadSource = Union[str, os.PathLike, bytes, bytearray, memoryview, IO[bytes]]


@dataclass
class Upload:
    """An upload ready to send: bytes in memory, or a path / file object read in chunks as it goes."""

    data: bytes | None
    path: Path | None
    fileobj: IO[bytes] | None
    media_type: str
    sha256: str | None
    size: int | None

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": self.media_type}
        if self.sha256:
            headers["X-Content-Hash"] = "sha256:" + self.sha256
        if self.size is not None:
            # Declared up front so an oversized file is refused before its body is sent.
            headers["Content-Length"] = str(self.size)
        return headers

    def chunks(self) -> Iterator[bytes]:
        if self.path is not None:
            with open(self.path, "rb") as f:
                yield from iter(lambda: f.read(CHUNK), b"")
        elif self.fileobj is not None:
            yield from iter(lambda: self.fileobj.read(CHUNK), b"")


def prepare_upload(source: UploadSource, media_type: str | None, content_hash: bool) -> Upload:
    """Hash the source in a first pass (a path or a seekable file is re-read to send, never held in
    memory); guess the media type from a file name when none is given (else the server sniffs it)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return Upload(data, None, None, media_type or "application/octet-stream",
                      hashlib.sha256(data).hexdigest() if content_hash else None, len(data))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        size = path.stat().st_size
        return Upload(None, path, None, media_type or _guess(path.name),
                      _hash_chunks(_read_chunks(path)) if content_hash else None, size)
    name = getattr(source, "name", None)
    guessed = media_type or (_guess(name) if isinstance(name, str) else "application/octet-stream")
    seekable = getattr(source, "seekable", lambda: False)()
    if not seekable:  # one pass only: no hash up front (the server still deduplicates by the bytes)
        return Upload(None, None, source, guessed, None, None)
    start = source.tell()
    sha = _hash_chunks(iter(lambda: source.read(CHUNK), b"")) if content_hash else None
    end = source.seek(0, os.SEEK_END)
    source.seek(start)
    return Upload(None, None, source, guessed, sha, end - start)


def _read_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        yield from iter(lambda: f.read(CHUNK), b"")


def _hash_chunks(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def _guess(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def upload(prepared: Upload) -> Call:
    return Call("POST", "/files", lambda r: types.file_from(r.json()), headers=prepared.headers())


# -- configuration -------------------------------------------------------------------------------

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"


def resolve(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    """The key and base URL: arguments first, then GENGATE_API_KEY / GENGATE_BASE_URL."""
    key = api_key or os.environ.get("GENGATE_API_KEY")
    if not key:
        raise ValueError("no API key: pass api_key= or set GENGATE_API_KEY")
    base = (base_url or os.environ.get("GENGATE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    return key, base


def download_name(job: types.Job) -> str:
    """`<job_id>.<ext>`, the extension from the output URL, else from its media type."""
    assert job.output is not None
    suffix = Path(httpx.URL(job.output.url).path).suffix
    if not suffix or len(suffix) > 10:
        suffix = mimetypes.guess_extension(job.output.media_type.split(";")[0].strip()) or ".bin"
    return job.job_id + suffix


def download_target(source: types.Job | str, dest: str | os.PathLike | None, base_url: str) -> tuple[str, Path]:
    """The URL to fetch and the file to write: `dest`, or the default name (inside `dest` if a directory)."""
    if isinstance(source, types.Job):
        if source.output is None:
            raise GengateError(f"job {source.job_id} has no output (status {source.status})")
        url, name = source.output.url, download_name(source)
    else:
        url, name = source, Path(httpx.URL(source).path).name or "output"
    url = str(httpx.URL(base_url).join(url))  # a relative output URL is the gateway's own
    path = Path(dest) if dest is not None else Path(name)
    return url, path / name if path.is_dir() else path
