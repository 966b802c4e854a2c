"""Local-directory storage: blobs under `objects/<sha256>`, hard-linked as outputs `o/<job_id>.<ext>`
and uploads `u/<file_id>.<ext>`.

Content addressing means identical content is stored once (a cache hit links the same blob under
its own job's name); the per-job or per-file link gives the stable, spec-shaped URL without a
database lookup when serving. The API and every worker must share the directory; storage/s3.py is
the backend for deployments that span machines.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from gengate.storage.base import (
    SAFE_NAME, Reading, StorageFull, StoredFile, TooLarge, UploadSink, checked_name, output_name,
)

# While an output streams in, free space is checked again after every this many bytes.
_FREE_CHECK_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 1 << 16


class LocalStorage:
    remote = False

    def __init__(self, root: Path, public_url: str, *, min_free_bytes: int = 0) -> None:
        self.root = Path(root)
        self.public_url = public_url.rstrip("/")
        self.min_free_bytes = min_free_bytes
        for sub in ("objects", "o", "u", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def ensure_free(self, size: int) -> None:
        """StorageFull unless `size` more bytes still leave the disk its `min_free_bytes`."""
        free = shutil.disk_usage(self.root).free
        if free - size < self.min_free_bytes:
            raise StorageFull(f"the storage disk has {free // 2**20} MiB free and keeps at least "
                              f"{self.min_free_bytes // 2**20} MiB free")

    def put_output(self, name_stem: str, chunks: Iterable[bytes], media_type: str, *, max_bytes: int) -> StoredFile:
        """Stream `chunks` into the store, refusing more than `max_bytes` or more than the disk can
        spare (StorageFull, checked before and while writing); link it as `o/<stem>.<ext>`."""
        digest = hashlib.sha256()
        size = checked = 0
        self.ensure_free(0)
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(f"output larger than {max_bytes} bytes")
                    if size - checked >= _FREE_CHECK_BYTES:
                        self.ensure_free(0)
                        checked = size
                    digest.update(chunk)
                    f.write(chunk)
            sha = digest.hexdigest()
            self._keep_blob(tmp, sha)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return self.link_output(name_stem, sha, media_type, source_stem=name_stem, size=size)

    def blob_path(self, sha: str) -> Path:
        return self.root / "objects" / sha[:2] / sha

    def _keep_blob(self, tmp: str | Path, sha: str) -> None:
        """Make the file `tmp` the blob of `sha`, unless that blob exists (same content, same name).
        Never replaced: on Linux, linking a name that a rename replaces at that instant fails with
        ENOENT (the old inode's last link is gone), and concurrent finalizes of identical outputs write
        the same blob (RESILIENCE.md). The caller removes `tmp` when it is not kept."""
        blob = self.blob_path(sha)
        blob.parent.mkdir(exist_ok=True)
        try:
            os.link(tmp, blob)
        except FileExistsError:
            pass

    def link_output(self, name_stem: str, sha: str, media_type: str, *, source_stem: str,
                    size: int | None = None) -> StoredFile:
        """Give stored content the stable name `o/<stem>.<ext>` (a cache hit reuses another job's).
        Here the content is found by its `sha` (the blob); `source_stem`, the stem of the output that
        holds it, is what a store without blobs copies from. FileNotFoundError if the content is gone."""
        blob = self.blob_path(sha)
        name = output_name(name_stem, media_type)
        link = self.root / "o" / name
        # Replace atomically so a redelivered finalize re-links instead of failing.
        tmp_link = link.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
        os.link(blob, tmp_link)
        os.replace(tmp_link, link)
        if size is None:
            size = blob.stat().st_size
        return StoredFile(name, f"{self.public_url}/o/{name}", sha, size, media_type.split(";")[0].strip())

    # Uploads (`POST /v1/files`): the same blobs, linked as `u/<file_id>.<ext>`.

    def open_upload(self) -> UploadSink:
        return UploadSink(self.root / "tmp")

    def commit_upload(self, sink: UploadSink, name: str) -> None:
        """Move a finished upload into its blob and give it the stable name `u/<name>`."""
        sink.close()
        blob = self.blob_path(sink.sha256)
        try:
            self._keep_blob(sink.path, sink.sha256)
        finally:
            Path(sink.path).unlink(missing_ok=True)
        os.link(blob, self.root / checked_name("u", name))  # a fresh random file id: nothing to replace

    def remove_upload(self, name: str) -> None:
        """Drop the name only; the blob may be shared and stays."""
        if SAFE_NAME.match(name):
            (self.root / "u" / name).unlink(missing_ok=True)

    # Reading stored files by name (kind "o" or "u").

    def local_path(self, kind: str, name: str) -> Path | None:
        """The file itself, for serving it and reading it in place; None if there is no such file."""
        try:
            path = self.root / checked_name(kind, name)
        except ValueError:
            return None
        return path if path.is_file() else None

    def exists(self, kind: str, name: str) -> bool:
        return self.local_path(kind, name) is not None

    def sign(self, kind: str, name: str) -> str | None:
        """A short-lived direct URL: none for a local directory (the API serves the file itself)."""
        return None

    def read(self, kind: str, name: str, start: int | None = None, end: int | None = None) -> Reading:
        path = self.local_path(kind, name)
        if path is None:
            raise FileNotFoundError(f"{kind}/{name}")
        total = path.stat().st_size
        first, last = start or 0, min(end if end is not None else total - 1, total - 1)

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                f.seek(first)
                left = last - first + 1
                while left > 0 and (chunk := f.read(min(_READ_CHUNK, left))):
                    left -= len(chunk)
                    yield chunk

        return Reading(chunks(), first, last, total)

    def copy_to(self, kind: str, name: str, dest: Path, *, max_bytes: int) -> int:
        """Copy a stored file to `dest` (a copy, never a link: the reader may not be trusted with the
        stored file); its size. FileNotFoundError if absent, TooLarge past `max_bytes`."""
        path = self.local_path(kind, name)
        if path is None:
            raise FileNotFoundError(f"{kind}/{name}")
        size = path.stat().st_size
        if size > max_bytes:
            raise TooLarge(f"{size} bytes, more than {max_bytes}")
        shutil.copyfile(path, dest)
        return size

    # Retention: names are removed when what they belong to expires; a blob no name links to any
    # more (its link count is back to 1) is deleted once it has stayed so for `grace` seconds, so
    # a blob just written and not yet linked, or being linked by a cache hit, is never taken.

    def output_names(self) -> Iterator[str]:
        with os.scandir(self.root / "o") as entries:
            for entry in entries:
                if SAFE_NAME.match(entry.name):
                    yield entry.name

    def remove_output(self, name: str) -> None:
        if SAFE_NAME.match(name):
            (self.root / "o" / name).unlink(missing_ok=True)

    def collect_blobs(self, grace_seconds: float) -> tuple[int, int]:
        """Delete blobs no output or upload links to; (blobs, bytes) deleted."""
        count = size = 0
        now = time.time()
        for shard in (self.root / "objects").iterdir():
            if not shard.is_dir():
                continue
            for blob in shard.iterdir():
                st = blob.stat()
                # ctime changes with the link count: "unlinked for `grace`" is ctime older than it.
                if st.st_nlink == 1 and now - st.st_ctime > grace_seconds:
                    blob.unlink(missing_ok=True)
                    count, size = count + 1, size + st.st_size
        return count, size

    def clean_tmp(self, max_age_seconds: float) -> int:
        """Delete temp files a crashed writer left behind."""
        return clean_dir(self.root / "tmp", max_age_seconds)


def clean_dir(directory: Path, max_age_seconds: float) -> int:
    """Delete the files of `directory` older than `max_age_seconds`; how many."""
    removed = 0
    now = time.time()
    for leftover in directory.iterdir():
        try:
            if now - leftover.stat().st_mtime > max_age_seconds:
                leftover.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed
