"""Object storage (S3 and what speaks its protocol: Cloudflare R2, MinIO, GCS interoperability),
through obstore (Rust's `object_store`), for deployments that span machines: no process reads a file
another one wrote on its own disk.

Layout under the URL's prefix: outputs `o/<job_id>.<ext>` and uploads `u/<file_id>.<ext>`, each the
object itself, so a public bucket or CDN (GENGATE_STORAGE_PUBLIC_URL) serves the same names the API
does. There are no blobs: a cache hit is a server-side copy of the first job's output (its bytes
never pass through gengate), and one whose source has expired is a miss, like a missing blob locally.

Nothing is held in memory whole: an output streams in as a multipart upload of `PART_BYTES` parts,
at most `PARTS_IN_FLIGHT` at once, so a worker storing a 1 GiB video holds a few parts, not the video.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

import obstore
from obstore.store import S3Store

from gengate.storage.base import (
    SAFE_NAME, Reading, StoredFile, TooLarge, UploadSink, checked_name, media_type_for, output_name,
)
from gengate.storage.local import clean_dir

PART_BYTES = 8 * 1024 * 1024
PARTS_IN_FLIGHT = 4


class _Counted:
    """The chunks of an output, hashed and counted as they pass; TooLarge past `max_bytes` (which
    aborts the multipart upload: nothing is left in the bucket)."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int) -> None:
        self._chunks, self._max = chunks, max_bytes
        self._digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.size += len(chunk)
            if self.size > self._max:
                raise TooLarge(f"output larger than {self._max} bytes")
            self._digest.update(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class S3Storage:
    remote = True

    def __init__(self, url: str, *, public_url: str, tmp_dir: Path, endpoint_url: str | None = None,
                 region: str | None = None, presign_seconds: int = 300) -> None:
        options = {"allow_http": True} if endpoint_url and endpoint_url.startswith("http://") else {}
        config = {k: v for k, v in (("endpoint", endpoint_url), ("region", region)) if v}
        # Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the provider chain (instance
        # roles, web identity), as object_store reads them from the environment.
        self.store = S3Store.from_url(url, client_options=options, **config)  # type: ignore[arg-type]
        self.public_url = public_url.rstrip("/")
        self.presign = timedelta(seconds=presign_seconds)
        self.tmp_dir = Path(tmp_dir)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    def url(self, kind: str, name: str) -> str:
        return f"{self.public_url}/{checked_name(kind, name)}"

    def ensure_free(self, size: int) -> None:
        """An object store has no disk of ours to fill."""

    def put_output(self, name_stem: str, chunks: Iterable[bytes], media_type: str, *, max_bytes: int) -> StoredFile:
        name = output_name(name_stem, media_type)
        media_type = media_type.split(";")[0].strip()
        counted = _Counted(chunks, max_bytes)
        obstore.put(self.store, checked_name("o", name), iter(counted), attributes={"Content-Type": media_type},
                    chunk_size=PART_BYTES, max_concurrency=PARTS_IN_FLIGHT)
        return StoredFile(name, self.url("o", name), counted.sha256, counted.size, media_type)

    def link_output(self, name_stem: str, sha: str, media_type: str, *, source_stem: str,
                    size: int | None = None) -> StoredFile:
        """Copy the output of `source_stem` (which holds this content) to `o/<stem>.<ext>`, inside the
        store. FileNotFoundError when the source has expired."""
        name, source = output_name(name_stem, media_type), output_name(source_stem, media_type)
        if source != name:
            obstore.copy(self.store, checked_name("o", source), checked_name("o", name))
        if size is None:
            size = int(obstore.head(self.store, checked_name("o", name))["size"])
        return StoredFile(name, self.url("o", name), sha, size, media_type.split(";")[0].strip())

    def open_upload(self) -> UploadSink:
        return UploadSink(self.tmp_dir)

    def commit_upload(self, sink: UploadSink, name: str) -> None:
        sink.close()
        try:
            obstore.put(self.store, checked_name("u", name), Path(sink.path),
                        attributes={"Content-Type": media_type_for(name)}, chunk_size=PART_BYTES,
                        max_concurrency=PARTS_IN_FLIGHT)
        finally:
            Path(sink.path).unlink(missing_ok=True)

    def remove_upload(self, name: str) -> None:
        self._delete("u", name)

    def local_path(self, kind: str, name: str) -> Path | None:
        return None

    def exists(self, kind: str, name: str) -> bool:
        try:
            obstore.head(self.store, checked_name(kind, name))
            return True
        except (FileNotFoundError, ValueError):
            return False

    def sign(self, kind: str, name: str) -> str | None:
        """A presigned GET of the object, valid `presign_seconds`; None if there is no such object."""
        if not self.exists(kind, name):
            return None
        return obstore.sign(self.store, "GET", checked_name(kind, name), self.presign)

    def read(self, kind: str, name: str, start: int | None = None, end: int | None = None) -> Reading:
        options = {}
        if start is not None or end is not None:
            first = start or 0
            options["range"] = (first, end + 1) if end is not None else {"offset": first}
        result = obstore.get(self.store, checked_name(kind, name), options=options)  # type: ignore[arg-type]
        first, after = result.range
        return Reading((bytes(b) for b in result.stream(min_chunk_size=1 << 16)), first, after - 1,
                       int(result.meta["size"]))

    def copy_to(self, kind: str, name: str, dest: Path, *, max_bytes: int) -> int:
        reading = self.read(kind, name)
        if reading.total > max_bytes:
            raise TooLarge(f"{reading.total} bytes, more than {max_bytes}")
        with open(dest, "wb") as f:
            for chunk in reading.chunks:
                f.write(chunk)
        return reading.total

    def output_names(self) -> Iterator[str]:
        for batch in obstore.list(self.store, prefix="o/"):
            for meta in batch:
                name = meta["path"].rsplit("/", 1)[-1]
                if SAFE_NAME.match(name):
                    yield name

    def remove_output(self, name: str) -> None:
        self._delete("o", name)

    def collect_blobs(self, grace_seconds: float) -> tuple[int, int]:
        """No blobs here: each name is its own object, deleted with the name."""
        return 0, 0

    def clean_tmp(self, max_age_seconds: float) -> int:
        return clean_dir(self.tmp_dir, max_age_seconds)

    def _delete(self, kind: str, name: str) -> None:
        try:
            obstore.delete(self.store, checked_name(kind, name))
        except (FileNotFoundError, ValueError):
            pass
