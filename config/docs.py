"""Reference tables generated from the code, so they cannot drift.

`settings_table()` renders one Markdown row per `GENGATE_*` variable from each field's default and
`description`; the per-provider settings appear once as `GENGATE_<PROVIDER>__<FIELD>`. README.md
carries its output between the settings markers below. `models_table()` renders one row per model and
mode of the catalog: provider, endpoint id, where its schema comes from, the files the mode takes and
the aspect ratios and durations it honours, and its price (per second, per characters, per image or
per job; for seconds, the default duration's price too); docs/providers.md carries it between the
models markers.
`tests/test_docs.py` fails when either differs:

    python -m gengate.config.docs --write   # refresh README.md and docs/providers.md (in a source checkout)
    gengate config docs             # print the settings table
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from gengate.config.settings import ProviderSettings, Settings

if TYPE_CHECKING:
    from gengate.config.catalog import Pricing

BEGIN = "<!-- settings:begin -->"
END = "<!-- settings:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"
MODELS_BEGIN = "<!-- models:begin -->"
MODELS_END = "<!-- models:end -->"
PROVIDERS_DOC = Path(__file__).resolve().parents[1] / "docs" / "providers.md"

_UNITS = ((1024**3, "GiB"), (1024**2, "MiB"))
_SPANS = ((86400, "days", "day"), (3600, "h", "h"))


def _hint(name: str, value: int | float) -> str:
    """A reader's gloss of a large round number: `2592000` (30 days), `52428800` (50 MiB)."""
    if isinstance(value, bool) or not value:
        return ""
    if name.endswith("_bytes"):
        for size, unit in _UNITS:
            if value >= size and value % size == 0:
                return f" ({value // size:g} {unit})"
    if name.endswith("_seconds"):
        for size, plural, single in _SPANS:
            if value >= size and value % size == 0:
                n = value // size
                return f" ({n:g} {single if n == 1 else plural})"
    return ""


def _default(name: str, field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "set (hidden)"  # never print a secret, not even a default one
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`{_hint(name, value)}"
    if isinstance(value, int):
        return f"`{value}`{_hint(name, value)}"
    text = str(value)
    return f"`{text}`" if text else "empty"


def _markdown(text: str) -> str:
    """One table cell: no line breaks, `|` escaped, `<...>` kept visible outside code spans."""
    text = " ".join(text.split()).replace("|", "\\|")
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _providers() -> list[str]:
    return [name for name, f in Settings.model_fields.items() if f.annotation is ProviderSettings]


def _provider_default(field_name: str) -> str:
    """One provider field's default, naming the providers whose own default differs."""
    base = _default(field_name, ProviderSettings.model_fields[field_name])
    odd = []
    for provider in _providers():
        value = getattr(Settings.model_fields[provider].default, field_name)
        if value != ProviderSettings.model_fields[field_name].default:
            odd.append(f"`{provider.upper()}`: {_default(field_name, FieldInfo(default=value))}")
    return "; ".join([base, *odd])


def rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of every setting, in the class's order."""
    prefix = Settings.model_config.get("env_prefix", "")
    nested = Settings.model_config.get("env_nested_delimiter", "__")
    out = []
    for name, field in Settings.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            continue  # nested provider settings follow, once for all providers
        out.append((f"{prefix}{name}".upper(), _default(name, field), field.description or ""))
    for name, field in ProviderSettings.model_fields.items():
        out.append((f"{prefix}<PROVIDER>{nested}{name}".upper(), _provider_default(name), field.description or ""))
    return out


def variable_names() -> set[str]:
    """Every concrete variable name, providers spelled out (`GENGATE_FAL__API_KEY`, ...)."""
    names = set()
    for var, _, _ in rows():
        if "<PROVIDER>" in var:
            names |= {var.replace("<PROVIDER>", p.upper()) for p in _providers()}
        else:
            names.add(var)
    return names


def settings_table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{var}` | {default} | {_markdown(meaning)} |" for var, default, meaning in rows()]
    providers = ", ".join(f"`{p.upper()}`" for p in _providers())
    lines += ["", f"`<PROVIDER>` is one of {providers}: `GENGATE_FAL__API_KEY`, `GENGATE_ELEVENLABS__TIMEOUT`, ..."]
    return "\n".join(lines) + "\n"


def models_table() -> str:
    """One row per route and mode of the catalog: each model's first row (MODELS), then its routes on
    other providers (ALTERNATES), a route the operator's pooled key may not run marked BYOK only."""
    from gengate.config.catalog import ROUTES
    from gengate.config.schemas import published

    lines = ["| model | mode | provider | endpoint id | schema | files | aspect ratios | durations (s) | price |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for spec in (row for routes in ROUTES.values() for row in routes):
        provider = spec.provider if spec.pooled else f"{spec.provider} (BYOK only)"
        for mode in spec.modes:
            endpoint = spec.endpoints[mode]
            # ElevenLabs' endpoints are its API routes; the catalog's id is the model_id sent to them
            record = published(spec.provider, ELEVENLABS_ROUTES.get(mode, endpoint) if spec.provider == "elevenlabs"
                               else endpoint)
            schema = _schema_label(spec.provider, record)
            rules = spec.parameters(mode)
            durations = rules["durations"]
            timed = ("any" if not durations else _spans(durations)) if rules["duration"] else "-"
            if spec.capability not in ("video", "music"):
                timed = "-"
            files = " + ".join(spec.kinds(mode)) or "-"
            ratios = ", ".join(rules["aspect_ratios"]) or "-"
            options = "".join(f"; needs `provider_options.{o}`" for o in rules["required_provider_options"])
            lines.append(f"| {spec.name} | {mode} | {provider} | `{endpoint}` | {schema} | {files}{options} | "
                         f"{ratios} | {timed} | {price_label(spec.pricing)} |")
    return "\n".join(lines) + "\n"


_UNIT_NAMES = {"second": ("s", "s"), "character": ("character", "characters"), "image": ("image", "images"),
               "job": ("job", "jobs")}


def price_label(pricing: Pricing) -> str:
    """A unit price in a few words: `10¢/s (5 s: 50¢)`, `10¢ per 1,000 characters, min 3¢`, `4¢/image`."""
    one, many = _UNIT_NAMES[pricing.unit]
    rate = f"{pricing.cents}¢/{one}" if pricing.per == 1 else f"{pricing.cents}¢ per {pricing.per:,} {many}"
    if pricing.unit == "second":
        return f"{rate} ({pricing.default_units} s: {pricing.default_cents}¢)"
    if pricing.minimum_cents > 1:
        return f"{rate}, min {pricing.minimum_cents}¢"
    return rate


ELEVENLABS_ROUTES = {"tts": "text-to-speech", "music": "music"}


def _schema_label(provider: str, record: dict | None) -> str:
    """Where an endpoint's vendored input schema comes from, in a few words (config/schemas/)."""
    if record is None:
        return "none published"
    commit = record["commit"]
    label = {"fal": f"fal-js {commit[:7]}", "elevenlabs": f"elevenlabs SDK {commit}",
             "replicate": _replicate_label(commit)}.get(provider, record["source"])
    return label + (" (delisted)" if record["delisted"] else "")


def _replicate_label(commit: str) -> str:
    """`replicate.com, version c846a699` (a version page read) or `replicate/cog-flux 2610fccf` (the
    source a schema was transcribed from where no page was found)."""
    first = re.sub(r"\b([0-9a-f]{8})[0-9a-f]{32,56}\b", r"\1", commit.split(";")[0])
    return first if first.startswith("replicate/") else f"replicate.com, {first}"


def _spans(values: list[int]) -> str:
    if len(values) > 3 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ", ".join(map(str, values))


def readme_block(text: str, begin: str = BEGIN, end: str = END) -> str:
    """What a document has between the markers."""
    match = re.search(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S)
    if match is None:
        raise ValueError(f"no {begin} ... {end} block")
    return match.group(1)


def _write_block(path: Path, table: str, begin: str, end: str) -> bool:
    text = path.read_text()
    block = readme_block(text, begin, end)
    if block == table:
        return False
    start = text.index(begin) + len(begin) + 1
    path.write_text(text[:start] + table + text[start + len(block):])
    return True


def write_readme(path: Path = README) -> bool:
    """Put the current settings table into README.md; True if it changed."""
    return _write_block(path, settings_table(), BEGIN, END)


def write_models(path: Path = PROVIDERS_DOC) -> bool:
    """Put the current models table into docs/providers.md; True if it changed."""
    return _write_block(path, models_table(), MODELS_BEGIN, MODELS_END)


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        print("README.md updated" if write_readme() else "README.md already current")
        print("docs/providers.md updated" if write_models() else "docs/providers.md already current")
    else:
        print(settings_table(), end="")
