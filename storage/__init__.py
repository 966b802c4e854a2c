"""Where outputs and uploads live, content-addressed, served at stable URLs."""

from __future__ import annotations

from functools import lru_cache

from gengate.config.settings import get_settings
from gengate.storage.local import LocalStorage


@lru_cache(maxsize=1)
def get_storage() -> LocalStorage:
    s = get_settings()
    return LocalStorage(s.storage_root, s.base_public_url, min_free_bytes=s.storage_min_free_bytes)
