"""`Idempotency-Key` on the POSTs that create jobs (IETF draft-ietf-httpapi-idempotency-key-header,
and Stripe's behaviour where the draft leaves room).

Scope is (account, path, key): a tenant can never meet another tenant's record. The fingerprint is
the sha256 of the canonical JSON body. The first request writes a short-lived `pending` record
(SET NX); the job's creating transaction replaces it with the response it answers (24 h), so a job
exists iff its idempotency record does. Same key + same body replays that response (same job, same
status); a different body is 422; a request racing the first is 409. A request that ends in an error
before creating anything leaves no record, so the client may fix it and retry with the same key.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import ORJSONResponse
from redis.asyncio import Redis

from gengate.jobs import keys
from gengate.jobs.errors import ConflictError, UnprocessableError, ValidationError

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
PENDING_TTL = 60  # an API process that died mid-request frees the key after this

# Delete the pending record only if it is still ours.
_ABANDON_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass(frozen=True)
class Claim:
    key: str
    fingerprint: str
    pending: bytes
    ttl: int

    def record(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> bytes:
        return orjson.dumps({"state": "done", "fp": self.fingerprint, "status": status, "body": body,
                             "headers": headers})


def fingerprint(raw_body: bytes) -> str:
    try:
        canonical = orjson.dumps(orjson.loads(raw_body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = raw_body
    return hashlib.sha256(canonical).hexdigest()


async def begin(redis: Redis, *, account: str, path: str, key: str, raw_body: bytes, ttl: int) -> Claim | ORJSONResponse:
    """Claim the key for this request, or answer at once: the stored response (replay), 409 or 422."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable() or not key.isascii():
        raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable ASCII characters",
                              field="Idempotency-Key")
    scoped = keys.idempotency(account, hashlib.sha256(f"{path}\n{key}".encode()).hexdigest())
    fp = fingerprint(raw_body)
    pending = orjson.dumps({"state": "pending", "fp": fp, "token": secrets.token_hex(8)})
    for _ in range(2):  # a second try covers a pending record that expired between SET and GET
        if await redis.set(scoped, pending, nx=True, ex=PENDING_TTL):
            return Claim(scoped, fp, pending, ttl)
        raw = await redis.get(scoped)
        if raw is not None:
            return _answer(orjson.loads(raw), fp)
    raise ConflictError("A request with this Idempotency-Key is being processed; retry shortly")


def _answer(stored: dict[str, Any], fp: str) -> ORJSONResponse:
    if stored.get("fp") != fp:
        raise UnprocessableError("This Idempotency-Key was used with a different request body",
                                 field="Idempotency-Key")
    if stored.get("state") != "done":
        raise ConflictError("A request with this Idempotency-Key is being processed; retry shortly")
    headers = dict(stored.get("headers") or {})
    headers["Idempotent-Replayed"] = "true"
    return ORJSONResponse(stored["body"], status_code=stored["status"], headers=headers)


async def abandon(redis: Redis, claim: Claim) -> None:
    await redis.eval(_ABANDON_LUA, 1, claim.key, claim.pending)


async def created(
    request: Request, redis: Redis, account: str, ttl: int,
    create: Callable[[Callable[[Any, dict[str, str]], Callable[[Any], None]] | None], Awaitable[Any]],
) -> ORJSONResponse:
    """Answer a job-creating POST (202 and its cache headers), honouring `Idempotency-Key`. `create`
    gets the hook that writes the replay record inside the job's own creating transaction."""
    claim = None
    key = request.headers.get(HEADER)
    if key is not None:
        begun = await begin(redis, account=account, path=request.url.path, key=key, raw_body=await request.body(),
                            ttl=ttl)
        if isinstance(begun, ORJSONResponse):
            return begun
        claim = begun

    def remember(job: Any, headers: dict[str, str]) -> Callable[[Any], None]:
        # A job exists iff its replay record does.
        assert claim is not None
        record = claim.record(202, job.public(), headers)
        return lambda pipe: pipe.set(claim.key, record, ex=claim.ttl)

    try:
        accepted = await create(remember if claim else None)
    except BaseException:
        if claim is not None:
            await abandon(redis, claim)
        raise
    return ORJSONResponse(accepted.job.public(), status_code=202, headers=accepted.headers)
