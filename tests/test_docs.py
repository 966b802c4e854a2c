"""Documentation that cannot drift: README's configuration table is the settings class rendered, and
/docs shows the spec's request examples."""

from __future__ import annotations

import re
import subprocess

import pytest

from gengate import procs
from gengate.api.app import create_app
from gengate.config import docs
from gengate.config.catalog import ALTERNATES, MODELS
from gengate.config.settings import ProviderSettings, Settings
from tests.spec_files import example_requests


def test_readme_configuration_is_the_generated_table():
    block = docs.readme_block(docs.README.read_text())
    assert block == docs.settings_table(), "README.md is stale: run `python -m gengate.config.docs --write`"


def test_the_models_table_of_docs_providers_is_the_catalog():
    """docs/providers.md lists every model x mode as the catalog maps it."""
    block = docs.readme_block(docs.PROVIDERS_DOC.read_text(), docs.MODELS_BEGIN, docs.MODELS_END)
    assert block == docs.models_table(), "docs/providers.md is stale: run `python -m gengate.config.docs --write`"
    assert block.count("\n") - 2 == sum(len(spec.modes) for spec in (*MODELS, *ALTERNATES))


def test_every_setting_is_described_and_listed():
    for model in (Settings, ProviderSettings):
        missing = [name for name, f in model.model_fields.items()
                   if not f.description and f.annotation is not ProviderSettings]
        assert not missing, f"{model.__name__} fields without a description: {missing}"
    names = docs.variable_names()
    for name, field in Settings.model_fields.items():
        if field.annotation is ProviderSettings:
            assert {f"GENGATE_{name.upper()}__{f.upper()}" for f in ProviderSettings.model_fields} <= names
        else:
            assert f"GENGATE_{name.upper()}" in names


def test_table_shows_no_secret_and_spells_defaults():
    rows = {var: default for var, default, _ in docs.rows()}
    assert rows["GENGATE_SECRET_KEY"] == "unset"
    assert rows["GENGATE_<PROVIDER>__API_KEY"] == "unset"
    assert rows["GENGATE_CACHE_TTL_SECONDS"] == "`2592000` (30 days)"
    assert rows["GENGATE_CACHE_SHARED_ACROSS_ACCOUNTS"] == "`false`"
    assert rows["GENGATE_<PROVIDER>__TIMEOUT"] == "`30`; `ELEVENLABS`: `90`"


def test_config_docs_command_prints_the_table():
    out = subprocess.run([*procs.gengate_command(), "config", "docs"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    assert out == docs.settings_table()


@pytest.fixture(scope="module")
def openapi() -> dict:
    return create_app().openapi()


def _request_examples(openapi: dict, operation: dict) -> list:
    content = operation["requestBody"]["content"]["application/json"]
    examples = [content["example"]] if "example" in content else []
    examples += [e["value"] for e in (content.get("examples") or {}).values()]
    schema = content["schema"]
    if "$ref" in schema:
        schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return examples + list(schema.get("examples", []))


def test_every_json_post_has_a_request_example(openapi):
    checked = []
    for path, item in openapi["paths"].items():
        post = item.get("post")
        if post and "application/json" in post.get("requestBody", {}).get("content", {}):
            assert _request_examples(openapi, post), f"POST {path} shows no request example at /docs"
            checked.append(path)
    assert {"/v1/image", "/v1/video", "/v1/speech", "/v1/music", "/v1/transcription"} <= set(checked)


@pytest.mark.parametrize(("path", "name", "body"), example_requests(), ids=lambda v: v if isinstance(v, str) else "")
def test_spec_request_examples_are_at_docs(openapi, path, name, body):
    assert body in _request_examples(openapi, openapi["paths"][f"/v1{path}"]["post"])


def test_every_image_the_readme_shows_is_in_the_repository():
    """README's pictures (the dashboard's screenshots, from tools/screenshots.py) are files here: a
    renamed page or a forgotten PNG would show as a broken image."""
    root = docs.README.parent
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", docs.README.read_text())
    assert len(images) >= 7
    for image in images:
        path = root / image
        assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
