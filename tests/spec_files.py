"""Reading the reference documents in ../shared/spec: model names and example request bodies."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

SPEC_DIR = Path(os.environ.get("GENGATE_SPEC_DIR", Path(__file__).resolve().parents[2] / "shared" / "spec"))
ENDPOINT_DOCS = ("gateway-image-endpoint.openapi.md", "gateway-video-endpoint.openapi.md")


def spec_available() -> bool:
    return (SPEC_DIR / "gateway-openapi.yaml").is_file()


def spec_dir() -> Path:
    if not spec_available():
        pytest.skip(f"the reference spec is not at {SPEC_DIR} (set GENGATE_SPEC_DIR)")
    return SPEC_DIR


def _openapi_docs() -> list[dict]:
    d = spec_dir()
    docs = [yaml.safe_load((d / "gateway-openapi.yaml").read_text())]
    for name in ENDPOINT_DOCS:
        text = (d / name).read_text()
        block = re.search(r"````yaml[^\n]*\n(.*?)\n````", text, re.S).group(1)
        docs.append(yaml.safe_load(block))
    return docs


def example_requests() -> list[tuple[str, str, dict]]:
    """(path, example name, body) for every request example of every generation endpoint; none when
    the spec is not beside the checkout (collection must not fail, the test then reports no cases)."""
    if not spec_available():
        return []
    out = []
    for doc in _openapi_docs():
        for path, item in doc["paths"].items():
            post = item.get("post") or {}
            content = (post.get("requestBody") or {}).get("content", {}).get("application/json", {})
            for name, example in (content.get("examples") or {}).items():
                out.append((path, name, example["value"]))
    return out


def model_names() -> set[str]:
    """Every model the endpoint documents and the overview's resolution table name."""
    names: set[str] = set()
    for doc in _openapi_docs()[1:]:
        for item in doc["paths"].values():
            model = item["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["model"]
            names |= set(re.findall(r"`([a-z0-9][a-z0-9._/-]*)`", model.get("description", "")))
            names |= set(model.get("examples", []))
    overview = (spec_dir() / "gateway-overview.md").read_text()
    table = overview[overview.index("| Model "):overview.index("## Caching")]
    names |= set(re.findall(r"`([a-z0-9][a-z0-9._/-]*)`", table))
    return names
