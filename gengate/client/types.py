"""Typed results: plain dataclasses built from the API's JSON. Each keeps the JSON it came from in `raw`,
so fields a newer server adds are not lost to an older client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gengate.client.errors import JobFailed

TERMINAL = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True)
class Output:
    url: str
    media_type: str
    metadata: dict[str, Any] | None = None  # media jobs: segments, thumbnails, outputs


@dataclass(frozen=True)
class CacheInfo:
    hit: bool
    key: str | None = None


@dataclass(frozen=True)
class CacheHeaders:
    """What the create answer's headers said about the result cache."""

    status: str | None  # X-Cache: HIT, MISS or BYPASS
    key: str | None  # X-Cache-Key
    ttl: int | None  # X-Cache-TTL, seconds


@dataclass(frozen=True)
class Job:
    job_id: str
    status: str  # queued | processing | completed | failed | cancelled
    model: str
    created_at: str
    completed_at: str | None = None
    output: Output | None = None
    cache: CacheInfo | None = None
    error: str | None = None
    # Only on the answer of a create_* call: cache headers, and whether Idempotency-Key replayed it.
    cache_headers: CacheHeaders | None = None
    replayed: bool = False
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    @property
    def cache_status(self) -> str | None:
        return self.cache_headers.status if self.cache_headers else None

    def raise_for_status(self) -> Job:
        """This job if it completed; JobFailed if it failed or was cancelled (wait_for_job returns those)."""
        if self.status in ("failed", "cancelled"):
            raise JobFailed(self)
        return self


@dataclass(frozen=True)
class UploadedFile:
    file_id: str
    url: str  # pass it as files=[url]
    hash: str  # sha256:<hex>
    size: int
    media_type: str
    deduplicated: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: str | None


@dataclass(frozen=True)
class Balance:
    balance_cents: float
    currency: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Me:
    user_id: str
    email: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class UsageRecord:
    job_id: str
    model: str | None
    capability: str | None
    cost_cents: float
    cache_hit: bool
    created_at: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Usage:
    usage: list[UsageRecord]
    total_cents: float
    next_cursor: str | None = None  # set on one page; the clients' `usage()` has followed them all


@dataclass(frozen=True)
class Voice:
    voice_id: str
    name: str


@dataclass(frozen=True)
class Probe:
    duration: float | None
    width: int | None
    height: int | None
    codec: str | None
    audio_codec: str | None
    format: str | None
    bitrate: int | None
    fps: float | None
    size_bytes: int | None


# -- from JSON ---------------------------------------------------------------------------------


def job_from(data: dict[str, Any], headers: Any = None) -> Job:
    out, cache = data.get("output"), data.get("cache")
    cache_headers, replayed = None, False
    if headers is not None:
        ttl = headers.get("x-cache-ttl")
        if headers.get("x-cache") is not None or headers.get("x-cache-key") is not None:
            cache_headers = CacheHeaders(headers.get("x-cache"), headers.get("x-cache-key"),
                                         int(ttl) if ttl and ttl.isdigit() else None)
        replayed = (headers.get("idempotent-replayed") or "").lower() == "true"
    return Job(
        job_id=data["job_id"], status=data["status"], model=data.get("model", ""),
        created_at=data.get("created_at", ""), completed_at=data.get("completed_at"),
        output=Output(out.get("url", ""), out.get("media_type", ""), out.get("metadata"))
        if isinstance(out, dict) else None,
        cache=CacheInfo(bool(cache.get("hit")), cache.get("key")) if isinstance(cache, dict) else None,
        error=data.get("error"), cache_headers=cache_headers, replayed=replayed, raw=data,
    )


def file_from(data: dict[str, Any]) -> UploadedFile:
    return UploadedFile(data["file_id"], data["url"], data["hash"], int(data["size"]), data["media_type"],
                        bool(data["deduplicated"]), raw=data)


def page_from(data: dict[str, Any]) -> JobPage:
    return JobPage([job_from(j) for j in data.get("jobs", [])], data.get("next_cursor"))


def balance_from(data: dict[str, Any]) -> Balance:
    return Balance(data.get("balance_cents", 0), data.get("currency", "usd"), raw=data)


def me_from(data: dict[str, Any]) -> Me:
    return Me(data.get("userId", ""), data.get("email"), raw=data)


def usage_from(data: dict[str, Any]) -> Usage:
    records = [UsageRecord(r.get("job_id", ""), r.get("model"), r.get("capability"), r.get("cost_cents", 0),
                           bool(r.get("cache_hit")), r.get("created_at"), raw=r) for r in data.get("usage", [])]
    return Usage(records, data.get("total_cents", 0), data.get("next_cursor"))


def voices_from(data: dict[str, Any]) -> list[Voice]:
    return [Voice(v["voice_id"], v.get("name", v["voice_id"])) for v in data.get("voices", [])]


def probe_from(data: dict[str, Any]) -> Probe:
    return Probe(**{name: data.get(name) for name in Probe.__dataclass_fields__})
