"""One module per provider, each behind the small interface in `adapters.base`, each exposing
`create(settings) -> adapter`. Adding a provider is adding a module and a catalog row."""

from __future__ import annotations

import importlib
from functools import lru_cache

from gengate.adapters.base import Adapter
from gengate.config.catalog import PROVIDERS
from gengate.config.settings import get_settings


@lru_cache(maxsize=None)
def get_adapter(provider: str) -> Adapter:
    if provider not in PROVIDERS:
        raise KeyError(f"no adapter for provider {provider!r}")
    module = importlib.import_module(f"{__name__}.{provider}")
    return module.create(getattr(get_settings(), provider))
