"""Which catalog row and which mode a request means, refusing with a ValidationError that names the
field: `resolve` (the model name, bare or `provider:model`) and `choose_mode` (from the files the
request carries: none -> text-to-X, one image -> edit / image-to-video / upscale, two images ->
keyframes, a visual plus an audio -> lipsync, ...).
"""

from __future__ import annotations

from itertools import permutations

from gengate.config.catalog import BY_NAME, ROUTES, ModelSpec, file_kind, route
from gengate.jobs.errors import ValidationError


def pinned(model: str) -> str | None:
    """The provider a `provider:model` name pins, None for a bare name."""
    return model.partition(":")[0] if ":" in model else None


def resolve(model: str, capability: str) -> ModelSpec:
    """`provider:model` -> that provider's route, a bare name -> the model's first route; refuses
    unknown models, a provider that does not serve the model, and the wrong endpoint."""
    provider, sep, name = model.partition(":") if ":" in model else ("", "", model)
    spec = BY_NAME.get(name)
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
