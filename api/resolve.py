"""Which catalog row and which mode a request means, refusing with a ValidationError that names the
field: `resolve` (the model name, bare or `provider:model`, or a provider's endpoint id: passthrough)
and `choose_mode` (from the files the request carries: none -> text-to-X, one image -> edit /
image-to-video / upscale, two images -> keyframes, a visual plus an audio -> lipsync, ...);
`passthrough_fields` says where a passthrough request's prompt and files go in the provider's input.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from itertools import permutations
from typing import Any

from gengate.config.catalog import (
    BY_NAME, PASSTHROUGH_IDS, ROUTES, ModelSpec, file_kind, passthrough_price, passthrough_schema, passthrough_spec,
    route,
)
from gengate.jobs.errors import ValidationError


def pinned(model: str) -> str | None:
    """The provider a `provider:model` name pins, None for a bare name."""
    return model.partition(":")[0] if ":" in model else None


def resolve(model: str, capability: str, prices: Mapping[str, int] | None = None) -> ModelSpec:
    """`provider:model` -> that provider's route, a bare name -> the model's first route; refuses
    unknown models, a provider that does not serve the model, and the wrong endpoint. A catalog name
    always means the catalog's model; `fal:<endpoint id>` and `replicate:<owner>/<model>[:<version>]`
    that name none are passthrough rows (config/catalog.py), of the capability the request came to and
    priced by `prices` (GENGATE_PASSTHROUGH_PRICES)."""
    provider, sep, name = model.partition(":") if ":" in model else ("", "", model)
    spec = BY_NAME.get(name)
    if spec is None and sep and provider in PASSTHROUGH_IDS:
        if not re.fullmatch(PASSTHROUGH_IDS[provider], name):
            shape = "owner/name[/path]" if provider == "fal" else "owner/model or owner/model:<64 hex version>"
            raise ValidationError(f"Unknown model '{model}': neither a model of the catalog nor a {provider} endpoint "
                                  f"id ({provider}:{shape})", field="model")
        return passthrough_spec(provider, name, capability, passthrough_price(prices or {}, provider, name))
    if spec is None:
        raise ValidationError(f"Unknown model '{model}'", field="model")
    if sep:
        spec = route(name, provider)
        if spec is None:
            served = ", ".join(f"'{r.provider}'" for r in ROUTES[name])
            raise ValidationError(f"Model '{name}' is served by {served}, not '{provider}'", field="model")
    if spec.capability != capability:
        raise ValidationError(f"Model '{name}' is a {spec.capability} model; use POST /v1/{spec.capability}",
                              field="model")
    return spec


def _fits(wanted: str, kind: str) -> bool:
    if wanted == "visual":
        return kind in ("image", "video")
    return kind == wanted


def choose_mode(spec: ModelSpec, files: list[str], kinds: list[str] | None = None) -> tuple[str, list[str]]:
    """The model's mode for these input files, and the files in the order that mode wants them.
    `kinds`: each file's kind (api/file_kinds.py); without it, its URL's extension says."""
    kinds = kinds if kinds is not None else [file_kind(f) for f in files]
    for mode in spec.modes:
        wanted = spec.kinds(mode)
        if len(wanted) != len(files):
            continue
        for order in permutations(range(len(files))):
            if all(_fits(w, kinds[i]) for w, i in zip(wanted, order)):
                return mode, [files[i] for i in order]
    raise ValidationError(f"{spec.name} accepts {_describe(spec)}; got {_describe_kinds(kinds)}", field="files")


def _describe(spec: ModelSpec) -> str:
    names = {"image": "an image", "video": "a video (.mp4, .webm, .mov)", "audio": "an audio file",
             "visual": "a video or image"}
    ways = []
    for mode in spec.modes:
        wanted = spec.kinds(mode)
        ways.append("no files" if not wanted else " + ".join(names[w] for w in wanted))
    return " or ".join(dict.fromkeys(ways))


def _describe_kinds(kinds: list[str]) -> str:
    return "no files" if not kinds else ", ".join(f"{k} file" if k != "unknown" else "a file of unknown type"
                                                   for k in kinds)


# -- passthrough ------------------------------------------------------------------------------------
# The gateway's parameters a passthrough request may not set: the endpoint takes its own in
# provider_options, named as its schema names them. Refused rather than dropped or guessed.
_UNMAPPED = ("aspect_ratio", "duration", "voice", "language")
# Where a file of each kind goes, in this order of preference: the first field the endpoint's
# published schema has. Field names as the vendored schemas spell them (config/schemas: fal's
# `image_url` (21 endpoints), `image_urls` (6), `video_url`, `audio_url`; Replicate's `image`,
# `image_input`, `audio`). An array field takes every file of its kind.
_FILE_FIELDS = {kind: (f"{kind}_url", f"{kind}_urls", kind, f"{kind}_input")
                for kind in ("image", "video", "audio")}
# The request's own text fields, and the provider fields each may go to (speech's text: `text`, or
# `prompt` where an endpoint calls it that).
_TEXT_FIELDS = {"prompt": ("prompt",), "text": ("text", "prompt")}


def passthrough_fields(spec: ModelSpec, params: Mapping[str, Any], explicit: Collection[str],
                       kinds: list[str]) -> dict[str, str]:
    """Where the request's prompt (or text) and files go in a passthrough endpoint's input: request
    field (`prompt`, `text`, `audio_url`, `files.<i>`) -> provider field (`name[]`: appended to an
    array). With a vendored published schema, the fields it names; without one, the text fields and
    `audio_url` under their own names, and files are refused: which field takes them is the
    endpoint's to say, in provider_options. `explicit`: the fields the request set (a default, such
    as speech's voice, is not the caller's). `kinds`: each file's kind. A field provider_options sets
    too is refused: which of the two would win is not for the gateway to choose silently."""
    for name in _UNMAPPED:
        if name in explicit and params.get(name) is not None:
            raise ValidationError(f"{name}: an endpoint reached by id takes its parameters in provider_options, "
                                  "named as its published schema names them", field=name)
    record = passthrough_schema(spec.provider, spec.name)
    properties = record["input"].get("properties", {}) if record else None
    fields: dict[str, str] = {}
    for name, targets in _TEXT_FIELDS.items():
        if (params.get(name) or "").strip():
            fields[name] = _text_field(spec, name, targets, properties)
    if params.get("audio_url"):
        fields["audio_url"] = _file_field(spec, "audio", properties, taken=fields, field="audio_url") \
            if properties is not None else "audio_url"
    files = params.get("files") or []
    if files and properties is None:
        raise ValidationError(f"files: {spec.provider}:{spec.name} has no published schema here to say where files "
                              "go; put their URLs in provider_options, in the endpoint's own fields", field="files")
    for i, kind in enumerate(kinds[:len(files)]):
        fields[f"files.{i}"] = _file_field(spec, kind, properties or {}, taken=fields, field="files")
    _refuse_overrides(spec, fields, params.get("provider_options") or {})
    return fields


def _text_field(spec: ModelSpec, name: str, targets: tuple[str, ...], properties: Mapping[str, Any] | None) -> str:
    if properties is None:
        return name
    found = next((t for t in targets if t in properties), None)
    if found is None:
        raise ValidationError(f"{spec.provider}:{spec.name} takes no {name} (its published schema has no "
                              f"`{'` or `'.join(targets)}` field); send an empty one", field=name)
    return found


def _file_field(spec: ModelSpec, kind: str, properties: Mapping[str, Any], *, taken: Mapping[str, str],
                field: str) -> str:
    """The schema's field for a file of `kind`: an array field (`name[]`) takes every such file, a
    single one only the first."""
    name = next((f for f in _FILE_FIELDS.get(kind, ()) if f in properties), None)
    if name is None:
        raise ValidationError(f"{field}: {spec.provider}:{spec.name}'s published schema has no field for {kind} "
                              f"files ({', '.join(_FILE_FIELDS.get(kind, ()))}); put the URL in provider_options, "
                              "in the endpoint's own field", field=field)
    if properties[name].get("type") == "array":
        return f"{name}[]"
    if name in taken.values():
        raise ValidationError(f"{field}: {spec.provider}:{spec.name} takes one {kind} file in `{name}`; put the "
                              "others in provider_options, in the endpoint's own fields", field=field)
    return name


def _refuse_overrides(spec: ModelSpec, fields: Mapping[str, str], options: Mapping[str, Any]) -> None:
    for target in dict.fromkeys(f.removesuffix("[]") for f in fields.values()):
        if target in options:
            what = "text" if target in _TEXT_FIELDS else "files"
            raise ValidationError(f"provider_options.{target} is where {spec.provider}:{spec.name} takes the request's "
                                  f"own {what} too; send it in one place", field=f"provider_options.{target}")
