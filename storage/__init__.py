"""Where outputs and uploads live, content-addressed, served at stable URLs: a local directory
(storage/local.py) or an S3-compatible object store (storage/s3.py), by `GENGATE_STORAGE_URL`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gengate.config.settings import get_settings
from gengate.storage.local import LocalStorage


@lru_cache(maxsize=1)
def get_storage():  # -> LocalStorage | S3Storage
    s = get_settings()
    url = s.storage_url or ""
    if url.startswith("s3://"):
        from gengate.storage.s3 import S3Storage  # obstore only where object storage is used

        return S3Storage(url, public_url=s.file_url_base, tmp_dir=s.data_dir / "upload-tmp",
                         endpoint_url=s.s3_endpoint_url, region=s.s3_region,
                         presign_seconds=s.storage_presign_seconds)
    root = Path(unquote(urlsplit(url).path)) if url.startswith("file://") else s.storage_root
    if url and not url.startswith("file://"):
        raise ValueError(f"GENGATE_STORAGE_URL must be file:///path or s3://bucket/prefix, not {url!r}")
    return LocalStorage(root, s.file_url_base, min_free_bytes=s.storage_min_free_bytes)
