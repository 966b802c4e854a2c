"""One module per provider, each behind the small interface in `adapters.base`."""

from __future__ import annotations

from functools import lru_cache

from adapters.base import Adapter
from config.settings import get_settings

PROVIDERS = ("fal",)


@lru_cache(maxsize=None)
def get_adapter(provider: str) -> Adapter:
    settings = get_settings()
    if provider == "fal":
        from adapters.fal import FalAdapter

        return FalAdapter(settings.fal)
    raise KeyError(f"no adapter for provider {provider!r}")
