"""POST /v1/files (raw body, streamed to storage), GET /v1/files/{id}, and the stable `/u/<name>` URLs.

The body is never buffered: it goes chunk by chunk into a temp file under the storage root while
being counted and hashed, and the 50 MiB limit stops it at the first byte too many. Deduplication
by content hash is per account, so knowing a hash never yields another tenant's file.
The file id carries 128 random bits: its URL is a capability, like the job output URLs.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import ORJSONResponse
from redis.asyncio import Redis
from starlette.requests import ClientDisconnect

from gengate.api.deps import PrincipalDep, RedisDep, SettingsDep
from gengate.api.metering import take_rate
from gengate.api.stored import off_loop, serve_stored
from gengate.api.schemas import ErrorResponse, FileUploadResponse, error_responses
from gengate.config.settings import Settings
from gengate.jobs import keys, uploads
from gengate.jobs.errors import NotFoundError, PayloadTooLargeError, UnavailableError, ValidationError
from gengate.jobs.record import utcnow_iso
from gengate.storage import get_storage
from gengate.storage.base import Storage, StorageFull, UploadSink, extension_for
from gengate.storage.sniff import HEAD_BYTES, OCTET_STREAM, sniff_media_type

router = APIRouter(tags=["Files"])

# `sha256:<hex>` (the spec's example) or the bare hex digest: both name the same content, so both
# find the same file. Declared in /openapi.json too, so a client knows.
HASH_PATTERN = r"^(sha256:)?[0-9a-fA-F]{64}$"
_HASH = re.compile(r"^(?:sha256:)?([0-9a-fA-F]{64})$")
_FILE_ID = re.compile(r"^file_[0-9a-f]{32}$")
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
_EXT_OVERRIDES = {"video/x-matroska": ".mkv"}  # mimetypes says .mpv
_RECORD_FIELDS = ("account", "sha256", "size", "media_type", "name", "created_at")

# FastAPI must not read the body (it would buffer it); the request body is declared for /docs only.
_BINARY_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    "*/*": {"schema": {"type": "string", "format": "binary"}},
}}}
_UPLOAD_RESPONSES = {
    200: {"model": FileUploadResponse, "description": "File uploaded"},
    **error_responses(400, 401, 429, 500, 503),
    413: {"model": ErrorResponse, "description": "File too large (max 50MB), or the account's storage quota used up"},
}
# Uploaded bytes are the user's: never let a browser run them as a page of this origin.


def new_file_id() -> str:
    return "file_" + secrets.token_hex(16)


@router.post("/v1/files", response_model=FileUploadResponse, responses=_UPLOAD_RESPONSES,
             operation_id="uploadFile", summary="Upload file", openapi_extra=_BINARY_BODY)
async def upload_file(
    request: Request, redis: RedisDep, settings: SettingsDep, principal: PrincipalDep,
    # `str`, not `str | None`: an optional header is absent, never null (a nullable schema makes clients
    # and fuzzers send the text "null").
    x_content_hash: Annotated[str, Header(
        alias="X-Content-Hash", pattern=HASH_PATTERN,
        description="SHA-256 of the content, `sha256:<hex>` or the bare hex (64 digits, either case): an "
        "account's known file is returned without reading the body")] = None,
):
    """Upload a file (raw body, any media type, up to 50 MiB) for use in generation requests."""
    account, storage = principal.account_id, get_storage()
    # Before anything is read: the plan's request rate, then the account's storage quota.
    rate = await take_rate(request.app.state.store, settings, account, "uploads")
    claimed = _claimed_hash(x_content_hash)
    if claimed is not None:
        found = await _find(redis, storage, account, claimed)
        if found is not None:
            return _answer(found, settings, deduplicated=True, headers=rate.headers())
    declared = _declared_length(request)
    limit = min(settings.upload_max_bytes, await _quota_left(redis, settings, account))
    if declared > limit:
        raise _too_large(settings) if declared > settings.upload_max_bytes else _over_quota(settings)
    try:
        storage.ensure_free(declared)
    except StorageFull as exc:
        raise UnavailableError(f"The gateway's storage is full ({exc}); try again later") from None
    sink = storage.open_upload()
    try:
        head = await _receive(request, sink, limit,
                              _too_large(settings) if limit == settings.upload_max_bytes else _over_quota(settings))
        sha = sink.sha256
        if claimed is not None and claimed != sha:
            raise ValidationError(f"X-Content-Hash does not match the content (sha256:{sha})", field="X-Content-Hash")
        found = await _find(redis, storage, account, sha)
        if found is not None:  # the same bytes again, without the header: hashed anyway
            sink.discard()
            return _answer(found, settings, deduplicated=True, headers=rate.headers())
        # The size is known now: take it from the quota atomically (concurrent uploads may have used it).
        k, a = uploads.take_args(account, sink.size, settings)
        if not uploads.usage(await request.app.state.uploads.take(keys=k, args=a)).allowed:
            raise _over_quota(settings)
        media_type = _media_type(request.headers.get("content-type"), head)
        file_id = new_file_id()
        name = file_id + _extension(media_type)
        try:
            await off_loop(storage, storage.commit_upload, sink, name)
        except BaseException:
            k, a = uploads.give_back_args(account, sink.size)
            await request.app.state.uploads.give_back(keys=k, args=a)
            raise
    except BaseException:
        sink.discard()
        raise
    record = {"account": account, "sha256": sha, "size": str(sink.size), "media_type": media_type,
              "name": name, "created_at": utcnow_iso()}
    answer = await _register(request, redis, storage, settings, file_id, record)
    answer.headers.update(rate.headers())
    return answer


@router.delete("/v1/files/{file_id}", status_code=204, responses=error_responses(401, 404),
               operation_id="deleteFile", summary="Delete file")
async def delete_file(file_id: str, request: Request, redis: RedisDep, principal: PrincipalDep):
    """Delete an uploaded file (gengate addition): its URL answers 404 from now on, and its bytes
    leave the account's storage quota. Jobs already holding its content keep their outputs."""
    record = await _record(redis, file_id) if _FILE_ID.match(file_id) else None
    if record is None or record["account"] != principal.account_id:
        raise NotFoundError("File not found")
    if not await forget_upload(request.app.state.uploads, get_storage(), file_id):
        raise NotFoundError("File not found")  # deleted meanwhile, by another request or by retention
    return Response(status_code=204)


async def forget_upload(scripts: uploads.UploadScripts, storage: Storage, file_id: str) -> bool:
    """Forget an upload (jobs/uploads.py) and remove its name, exactly once; False if already gone.
    Its blob is left to retention, which deletes it once no name links to it."""
    k, a = uploads.forget_args(file_id)
    name = uploads.forgotten_name(await scripts.forget(keys=k, args=a))
    if name is None:
        return False
    await off_loop(storage, storage.remove_upload, name)
    return True


@router.get("/v1/files/{file_id}", response_model=FileUploadResponse, responses=error_responses(401, 404),
            operation_id="getFile", summary="Get file")
async def get_file(file_id: str, redis: RedisDep, settings: SettingsDep, principal: PrincipalDep):
    """An uploaded file's metadata (gengate addition; the reference API has no such endpoint)."""
    record = await _record(redis, file_id) if _FILE_ID.match(file_id) else None
    if record is None or record["account"] != principal.account_id:
        raise NotFoundError("File not found")
    return _answer(record, settings, deduplicated=False)


@router.api_route("/u/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def get_upload(name: str, request: Request) -> Response:
    return await serve_stored("u", name, request, "File not found")


async def _receive(request: Request, sink: UploadSink, limit: int, refusal: PayloadTooLargeError) -> bytes:
    """Stream the body into `sink`, refusing byte limit+1 with `refusal`; returns the first bytes, for sniffing."""
    head = b""
    try:
        async for chunk in request.stream():
            if sink.size + len(chunk) > limit:
                raise refusal
            sink.write(chunk)
            if len(head) < HEAD_BYTES:
                head += chunk[:HEAD_BYTES - len(head)]
    except ClientDisconnect:  # nobody to answer; an expected event, not a server error to log
        raise ValidationError("The upload was interrupted", field="body") from None
    if sink.size == 0:
        raise ValidationError("The request body is empty: send the file's bytes as the body", field="body")
    return head


def _too_large(settings: Settings) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"File too large (max {settings.upload_max_bytes // (1024 * 1024)}MB)")


def _over_quota(settings: Settings) -> PayloadTooLargeError:
    return PayloadTooLargeError("The account's storage quota is used up: delete files (DELETE /v1/files/{file_id}) "
                                f"or wait for them to expire (uploads are kept {settings.upload_ttl_seconds // 86400} "
                                "days)")


async def _quota_left(redis: Redis, settings: Settings, account: str) -> int:
    """Bytes the account may still upload (the size limit when its plan has no quota)."""
    plan, used = await redis.hmget(keys.account(account), "plan", "upload_bytes")
    allowed = uploads.quota_of(plan.decode() if plan else "free", settings)
    if allowed == 0:
        return settings.upload_max_bytes
    return max(allowed - int(used or 0), 0)


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length", "0"))
    except ValueError:  # the HTTP server already refuses a malformed one; be safe anyway
        return 0


def _claimed_hash(header: str | None) -> str | None:
    if header is None:
        return None
    m = _HASH.match(header.strip())
    if m is None:
        raise ValidationError("X-Content-Hash must be sha256:<64 hex digits> or the 64 hex digits alone",
                              field="X-Content-Hash")
    return m.group(1).lower()


def _media_type(content_type: str | None, head: bytes) -> str:
    """The client's Content-Type when it says something; the content's own signature otherwise."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared and declared != OCTET_STREAM and _MEDIA_TYPE.match(declared):
        return declared
    return sniff_media_type(head)


def _extension(media_type: str) -> str:
    ext = _EXT_OVERRIDES.get(media_type) or extension_for(media_type)
    return ext if _EXT.match(ext) else ".bin"


async def _record(redis: Redis, file_id: str) -> dict[str, str] | None:
    raw = await redis.hgetall(keys.file(file_id))
    if not raw:
        return None
    record = {k.decode(): v.decode() for k, v in raw.items()}
    record["file_id"] = file_id
    return record if all(f in record for f in _RECORD_FIELDS) else None


async def _find(redis: Redis, storage: Storage, account: str, sha: str) -> dict[str, str] | None:
    """The account's live file with this content, if any (a dangling index entry counts as none)."""
    file_id = await redis.hget(keys.account_files(account), sha)
    if file_id is None:
        return None
    record = await _record(redis, file_id.decode())
    if record is None or record["account"] != account:
        return None
    if not await off_loop(storage, storage.exists, "u", record["name"]):
        return None
    return record


async def _register(request: Request, redis: Redis, storage: Storage, settings: Settings, file_id: str,
                    record: dict[str, str]) -> ORJSONResponse:
    """Write the record (with its retention), then claim the account's hash entry; a concurrent
    identical upload that claimed it first wins, and this one is dropped in its favour."""
    account, sha = record["account"], record["sha256"]
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.file(file_id), mapping=record)
    pipe.zadd(keys.UPLOADS_EXPIRY, {file_id: time.time() + settings.upload_ttl_seconds})
    pipe.hsetnx(keys.account_files(account), sha, file_id)
    _, _, claimed = await pipe.execute()
    if not claimed:
        winner = await _find(redis, storage, account, sha)
        if winner is not None:
            await forget_upload(request.app.state.uploads, storage, file_id)
            return _answer(winner, settings, deduplicated=True)
        await redis.hset(keys.account_files(account), sha, file_id)  # the old entry was dangling
    return _answer({**record, "file_id": file_id}, settings, deduplicated=False)


def _answer(record: dict[str, str], settings: Settings, *, deduplicated: bool,
            headers: dict[str, str] | None = None) -> ORJSONResponse:
    return ORJSONResponse(headers=headers, content={
        "file_id": record["file_id"],
        "url": f"{settings.file_url_base}/u/{record['name']}",
        "hash": "sha256:" + record["sha256"],
        "size": int(record["size"]),
        "media_type": record["media_type"],
        "deduplicated": deduplicated,
    })
