"""The result cache, and identical jobs sharing one provider call.

The key (spec: "capability, model, prompt, duration/aspect ratio, and file content hashes (not
URLs)") is a sha256 over the job's capability, model, mode and every output-changing parameter,
with each input file replaced by the sha256 of its content. Our own file and output URLs are
resolved to their hashes from Redis; other URLs are fetched and hashed by the worker.

A cached entry names a stored blob, so a hit gives the new job its own output name linked to the
same content: one copy on disk, and no job's URL reveals another job's id.

Sharing in-flight calls: the first job with a key becomes its leader (`inflight` key); identical jobs
arriving while it runs join its followers set instead of calling the provider. When the leader
completes, every follower completes from its output; when it fails or is cancelled, its followers
are sent through the submit step again, where one of them leads. Both decisions are Lua scripts, so
a job either joins before the leader releases its followers or sees the leader's result after.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from gengate.jobs import keys

DEFAULT, NO_CACHE, NO_STORE = "default", "no-cache", "no-store"
# Request fields that name inputs by URL: their content hashes stand in for them in the key.
URL_FIELDS = ("files", "audio_url", "url", "video_url", "input_files")

# KEYS: cache entry, inflight. ARGV: job id, look up (0/1), coalesce (0/1), inflight ttl, job key prefix.
# -> {'hit', entry} | {'follow', leader} | {'lead', ''} | {'miss', ''}
_DECIDE_LUA = """
if ARGV[2] == '1' then
  local hit = redis.call('GET', KEYS[1])
  if hit then return {'hit', hit} end
end
if ARGV[3] ~= '1' then return {'miss', ''} end
local leader = redis.call('GET', KEYS[2])
if leader and leader ~= ARGV[1] then
  local st = redis.call('HGET', ARGV[5] .. leader, 'status')
  if st == '"queued"' or st == '"processing"' then
    local fk = ARGV[5] .. leader .. ':followers'
    redis.call('SADD', fk, ARGV[1])
    redis.call('EXPIRE', fk, tonumber(ARGV[4]))
    return {'follow', leader}
  end
end
redis.call('SET', KEYS[2], ARGV[1], 'EX', tonumber(ARGV[4]))
return {'lead', ''}
"""

# KEYS: inflight, followers. ARGV: leader job id. Gives up the lead (if still ours) and hands back the followers.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local f = redis.call('SMEMBERS', KEYS[2])
redis.call('DEL', KEYS[2])
return f
"""

INFLIGHT_TTL = 6 * 3600  # a leader that vanished without releasing stops holding its key after this


def mode_from_headers(cache_control: str | None) -> str:
    """`Cache-Control: no-cache` skips the look-up but stores; `no-store` bypasses the cache."""
    tokens = {t.strip().split("=", 1)[0].lower() for t in (cache_control or "").split(",")}
    if "no-store" in tokens:
        return NO_STORE
    if "no-cache" in tokens:
        return NO_CACHE
    return DEFAULT


def named_inputs(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(request field, URL) of each input, in the order the key hashes them (media jobs'
    `input_files` is an object {"in_1": url, ...}, taken in placeholder order)."""
    named = [(f"files.{i}.url", f["url"]) for i, f in enumerate(params.get("files") or [])]
    named += [(name, params[name]) for name in ("audio_url", "url", "video_url") if params.get(name)]
    files = params.get("input_files") or {}
    named += [(f"input_files.{k}", files[k]) for k in sorted(files, key=placeholder_order)]
    return named


def input_urls(params: dict[str, Any]) -> list[str]:
    return [url for _, url in named_inputs(params)]


def placeholder_order(name: str) -> tuple[int, str]:
    digits = name.rsplit("_", 1)[-1]
    return (int(digits) if digits.isdigit() else 0, name)


def compute_key(capability: str, model: str, mode: str, params: dict[str, Any], file_hashes: list[str]) -> str:
    """Hex sha256 of what decides the output. Integral floats count as ints (5 and 5.0 are one duration)."""
    material = {
        "capability": capability,
        "model": model,
        "mode": mode,
        "params": {k: _normal(v) for k, v in params.items() if k not in URL_FIELDS},
        "files": file_hashes,
    }
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _normal(value: Any) -> Any:
    # Only where a float is exact: 1e53 as an int would overflow orjson's 64 bits.
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def scope(account: str, shared: bool) -> str:
    return "shared" if shared else account


def public_key(key_hex: str) -> str:
    return "sha256:" + key_hex


@dataclass(frozen=True)
class Entry:
    """A cached result: the main output's content, and for media jobs the other files it made
    (segments, thumbnails: name suffix, sha, media type) and its metadata as first produced."""

    sha: str
    media_type: str
    job_id: str
    files: tuple[tuple[str, str, str], ...] = ()
    metadata: dict[str, Any] | None = None

    def encode(self) -> bytes:
        return orjson.dumps({"sha": self.sha, "media_type": self.media_type, "job_id": self.job_id,
                             "files": self.files, "metadata": self.metadata})

    @classmethod
    def decode(cls, raw: bytes | str) -> Entry:
        d = orjson.loads(raw)
        files = tuple(tuple(f) for f in d.get("files") or ())
        return cls(d["sha"], d["media_type"], d["job_id"], files, d.get("metadata"))  # type: ignore[arg-type]

    def materialize(self, storage: Any, job_id: str) -> tuple[dict[str, Any], str]:
        """Give the cached content `job_id`'s own names; the job's output (URLs rewritten from the
        first job's names to this one's) and its sha. The first job's names are where a store without
        blobs copies from. FileNotFoundError if the content is gone."""
        stored = storage.link_output(job_id, self.sha, self.media_type, source_stem=self.job_id)
        for suffix, sha, media_type in self.files:
            storage.link_output(job_id + suffix, sha, media_type, source_stem=self.job_id + suffix)
        output: dict[str, Any] = {"url": stored.url, "media_type": stored.media_type}
        if self.metadata is not None:
            # Job ids are 128 random bits: replacing the first job's id rewrites exactly its URLs.
            output["metadata"] = orjson.loads(orjson.dumps(self.metadata).replace(self.job_id.encode(), job_id.encode()))
        return output, self.sha


@dataclass(frozen=True)
class Decision:
    kind: str  # hit | follow | lead | miss
    entry: Entry | None = None
    leader: str | None = None


def decide_args(scope_id: str, key_hex: str, job_id: str, mode: str) -> tuple[list[str], list[Any]]:
    return (
        [keys.cache(scope_id, key_hex), keys.inflight(scope_id, key_hex)],
        [job_id, "1" if mode == DEFAULT else "0", "1" if mode == DEFAULT else "0", INFLIGHT_TTL, keys.JOB.format("")],
    )


def decision(ret: list) -> Decision:
    kind, value = (v.decode() if isinstance(v, bytes) else v for v in ret)
    if kind == "hit":
        return Decision("hit", entry=Entry.decode(value))
    if kind == "follow":
        return Decision("follow", leader=value)
    return Decision(kind)


def release_args(scope_id: str, key_hex: str, leader: str) -> tuple[list[str], list[Any]]:
    return [keys.inflight(scope_id, key_hex), keys.job_followers(leader)], [leader]


def own_name(url: str, base_public_url: str | tuple[str, ...]) -> tuple[str, str] | None:
    """("u", name) or ("o", name) when the URL is one of our own stored files, else None. The base
    (or bases: the API's, and a storage public URL) under which stored files are named."""
    bases = (base_public_url,) if isinstance(base_public_url, str) else base_public_url
    base = next((b.rstrip("/") + "/" for b in bases if url.startswith(b.rstrip("/") + "/")), None)
    if base is None:
        return None
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return None
    rest = url[len(base):]
    kind, sep, name = rest.partition("/")
    if kind not in ("u", "o") or not sep or "/" in name or "." not in name:
        return None
    return kind, name


def own_hash_lookup(kind: str, name: str) -> tuple[str, str, str]:
    """The Redis hash and field that hold the content sha256 of one of our own files."""
    stem = name.rsplit(".", 1)[0]
    if kind == "u":
        return keys.file(stem), "sha256", "plain"
    return keys.job(stem), "output_sha", "json"


def own_media_type_lookup(kind: str, name: str) -> tuple[str, str] | None:
    """The Redis hash and field that hold the media type of one of our own uploads (an output's
    extension already says its type)."""
    if kind != "u":
        return None
    return keys.file(name.rsplit(".", 1)[0]), "media_type"


def decode_own_hash(raw: bytes | None, encoding: str) -> str | None:
    if raw is None:
        return None
    value = orjson.loads(raw) if encoding == "json" else raw.decode()
    return value if isinstance(value, str) and len(value) == 64 else None


class Scripts:
    """The decision script on one client; with `redis.asyncio` its calls return awaitables. (The
    release script runs through the job stores: `JobStore.release_followers`.)"""

    def __init__(self, redis: Any) -> None:
        self.decide = redis.register_script(_DECIDE_LUA)
