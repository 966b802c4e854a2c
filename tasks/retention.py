"""Retention: what has expired leaves the storage.

- An upload expires `GENGATE_UPLOAD_TTL_SECONDS` after it was made (its owner may delete it before,
  `DELETE /v1/files/{id}`): its record, quota share and name go (jobs/uploads.py).
- An output lives as long as its job: `GENGATE_JOB_TTL_SECONDS` after the job ended, when its
  record expires from Redis, the output's names go too.
- A blob (the content both kinds of names link to) goes once no name links to it any more.
- Temp files a crashed writer left go after a day.

One worker sweeps at a time (a lock in Redis), every `GENGATE_RETENTION_INTERVAL_SECONDS`; a sweep
that dies half-way is finished by the next one, since each step only deletes what is already due.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice

from gengate.jobs import keys, uploads
from gengate.tasks.runtime import Runtime

log = logging.getLogger("gengate.retention")

BATCH = 500
# A blob unlinked for less than this may be in the middle of being linked (a cache hit, an upload's
# commit): never deleted before.
BLOB_GRACE_SECONDS = 3600.0
TMP_MAX_AGE_SECONDS = 24 * 3600.0
LOCK_LEASE_SECONDS = 10


@dataclass
class Swept:
    uploads: int = 0
    outputs: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    tmp: int = 0


def sweep(rt: Runtime, *, owner: str, blob_grace_seconds: float = BLOB_GRACE_SECONDS) -> Swept | None:
    """One retention sweep, unless another worker's is running (None then)."""
    # A short lease, renewed after every batch: a long sweep keeps it, a killed sweeper blocks the
    # others for one lease at most.
    lease = max(int(rt.settings.retention_interval_seconds), LOCK_LEASE_SECONDS)
    if not rt.redis.set(keys.RETENTION_LOCK, owner, nx=True, ex=lease):
        return None

    def renew() -> None:
        rt.redis.expire(keys.RETENTION_LOCK, lease)

    swept = Swept()
    try:
        swept.uploads = _expired_uploads(rt, renew)
        swept.outputs = _expired_outputs(rt, renew)
        swept.blobs, swept.blob_bytes = rt.storage.collect_blobs(blob_grace_seconds)
        swept.tmp = rt.storage.clean_tmp(TMP_MAX_AGE_SECONDS)
    finally:
        # Only our own lock: a sweep slower than its lease must not release the next one's.
        if rt.redis.get(keys.RETENTION_LOCK) == owner.encode():
            rt.redis.delete(keys.RETENTION_LOCK)
    if swept.uploads or swept.outputs or swept.blobs or swept.tmp:
        log.info("retention: %d uploads and %d outputs expired, %d blobs (%d bytes) and %d temp files deleted",
                 swept.uploads, swept.outputs, swept.blobs, swept.blob_bytes, swept.tmp)
    return swept


def _expired_uploads(rt: Runtime, renew: Callable[[], None]) -> int:
    forget = uploads.UploadScripts(rt.redis).forget
    removed = 0
    while True:
        renew()
        due = rt.redis.zrangebyscore(keys.UPLOADS_EXPIRY, "-inf", time.time(), start=0, num=BATCH)
        for file_id in due:
            k, a = uploads.forget_args(file_id.decode())
            name = uploads.forgotten_name(forget(keys=k, args=a))
            if name is not None:
                rt.storage.remove_upload(name)
                removed += 1
        if len(due) < BATCH:
            return removed


# An output's name starts with its job's id: `<job_id>.<ext>`, or `<job_id>_<suffix>.<ext>` for the
# further files of a media job.
_JOB_OF_NAME = re.compile(r"^(job_[0-9a-f]{32})[._]")


def _expired_outputs(rt: Runtime, renew: Callable[[], None]) -> int:
    """Output names of jobs whose time is up. A job's time is set by its terminal transition (its
    record's TTL, jobs/store.py): names of jobs this Redis never ended, such as another deployment's
    sharing the directory, are never taken."""
    now = time.time()
    removed = 0
    names = (n for n in rt.storage.output_names() if _JOB_OF_NAME.match(n))
    while batch := list(islice(names, BATCH)):
        renew()
        pipe = rt.redis.pipeline(transaction=False)
        for name in batch:
            pipe.zscore(keys.OUTPUTS_EXPIRY, _JOB_OF_NAME.match(name).group(1))  # type: ignore[union-attr]
        for name, due in zip(batch, pipe.execute()):
            if due is not None and due <= now:
                rt.storage.remove_output(name)
                removed += 1
    rt.redis.zremrangebyscore(keys.OUTPUTS_EXPIRY, "-inf", now)  # every due job's names are gone now
    return removed
