"""The model catalog as data: one row per public model name.

Each row names the provider that serves it and the provider's own endpoint id, with where that id
comes from, the parameters the model accepts, and its price in integer cents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.errors import ValidationError

ASPECT_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    capability: str  # image | video | speech | music | transcription
    mode: str  # text-to-image, text-to-video, ...
    provider: str
    endpoint: str  # the provider's model / endpoint id
    source: str  # where the endpoint id was found
    price_cents: int
    aspect_ratios: tuple[str, ...] = ASPECT_RATIOS
    aspect_param: str = "aspect_ratio"  # how the provider names it: aspect_ratio | image_size
    durations: tuple[int, ...] = ()  # allowed whole seconds; empty: the model takes no duration
    image_endpoint: str | None = None  # image-to-video variant, chosen when files are given
    max_files: int = 0
    aliases: tuple[str, ...] = field(default=())


_FAL_MODELS = "fal.ai model pages (fal.ai/models/<endpoint>)"

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("flux-schnell", "image", "text-to-image", "fal", "fal-ai/flux/schnell", _FAL_MODELS, 1,
              aspect_param="image_size"),
    ModelSpec("flux-pro", "image", "text-to-image", "fal", "fal-ai/flux-pro/v1.1", _FAL_MODELS, 5,
              aspect_param="image_size"),
    ModelSpec("nano-banana-pro", "image", "text-to-image", "fal", "fal-ai/nano-banana-pro", _FAL_MODELS, 15),
    ModelSpec("kling-v3", "video", "text-to-video", "fal", "fal-ai/kling-video/v3/pro/text-to-video", _FAL_MODELS, 50,
              aspect_ratios=("16:9", "9:16", "1:1"), durations=tuple(range(3, 16)),
              image_endpoint="fal-ai/kling-video/v3/pro/image-to-video", max_files=2),
)

_BY_NAME = {m.name: m for m in MODELS}


def resolve(model: str, capability: str) -> ModelSpec:
    """`provider:model` or a bare name -> the row; refuses unknown models and the wrong endpoint."""
    provider, _, name = model.rpartition(":")
    spec = _BY_NAME.get(name)
    if spec is None:
        raise ValidationError(f"Unknown model '{model}'", field="model")
    if provider and provider != spec.provider:
        raise ValidationError(f"Model '{name}' is not served by provider '{provider}'", field="model")
    if spec.capability != capability:
        raise ValidationError(
            f"Model '{name}' is a {spec.capability} model; use POST /v1/{spec.capability}", field="model"
        )
    return spec


_FAL_IMAGE_SIZES = {
    "1:1": "square_hd",
    "16:9": "landscape_16_9",
    "9:16": "portrait_16_9",
    "4:3": "landscape_4_3",
    "3:4": "portrait_4_3",
}


def provider_arguments(spec: ModelSpec, params: dict) -> tuple[str, dict]:
    """The provider endpoint and input JSON for a validated request; `provider_options` win."""
    args: dict = {}
    if params.get("prompt"):
        args["prompt"] = params["prompt"]
    ratio = params.get("aspect_ratio")
    if ratio:
        args.update({"image_size": _FAL_IMAGE_SIZES[ratio]} if spec.aspect_param == "image_size" else {"aspect_ratio": ratio})
    if params.get("duration") is not None and spec.durations:
        args["duration"] = str(int(params["duration"]))
    files = [f["url"] for f in params.get("files") or []]
    endpoint = spec.endpoint
    if files and spec.image_endpoint:
        endpoint = spec.image_endpoint
        args["image_url"] = files[0]
        if len(files) > 1:
            args["tail_image_url"] = files[1]
    elif files:
        args["image_urls"] = files
    args.update(params.get("provider_options") or {})
    return endpoint, args
