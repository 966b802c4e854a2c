"""The providers' published input and output schemas, vendored as JSON files beside this module
(`<provider>/<endpoint id, "/" as "__">.json`, each naming its source, commit and date; never edited
by hand: config/schemas/README.md says how they are made). The simulators validate requests against
them, and the contract suite checks the catalog's payloads against them."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def file_name(endpoint: str) -> str:
    return endpoint.replace("/", "__") + ".json"


@lru_cache(maxsize=None)
def published(provider: str, endpoint: str) -> dict[str, Any] | None:
    """The vendored record of one endpoint (`input`, `output`, `source`, `commit`, `delisted`), or
    None when the provider publishes no schema for it (or it does not exist)."""
    path = HERE / provider / file_name(endpoint)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def endpoints(provider: str) -> list[str]:
    """Every endpoint id with a vendored schema."""
    return sorted(json.loads(p.read_text())["endpoint"] for p in (HERE / provider).glob("*.json"))
