"""The model catalog as data: one row per public model name of the spec.

A row names the provider that serves the model, the provider's own endpoint id for each mode the
model has (and where that id comes from), the parameter rules, and its price as a unit price in the
unit its provider bills by (`Pricing`), turned into integer cents per job. Pure
data and pure functions: this bottom layer imports nothing of gengate's (api/resolve.py turns a
request into a row and a mode, refusing what the catalog does not hold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import urlsplit

from gengate.config import schemas
from gengate.config.schemas import published

CAPABILITIES = ("image", "video", "speech", "music", "transcription")
IMAGE_RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4")
VIDEO_RATIOS = ("16:9", "9:16", "1:1")
WIDE_VIDEO_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")

# Files each mode takes, in the order the provider wants them. "visual" is an image or a video.
MODE_FILES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "text-to-image": (), "text-to-video": (), "tts": (), "music": (), "transcription": (),
    "edit": ("image",), "upscale": ("image",), "background-removal": ("image",),
    "image-to-video": ("image",), "keyframes": ("image", "image"),
    "video-edit": ("video",), "video-upscale": ("video",),
    "motion-control": ("image", "video"), "lipsync": ("visual", "audio"),
})
# The spec: "For lipsync and upscale models, [the prompt] can be empty." Background removal has no
# prompt to speak of either.
PROMPT_OPTIONAL = frozenset({"upscale", "video-upscale", "lipsync", "background-removal"})

IMAGE_EXT = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".avif", ".heic"})
VIDEO_EXT = frozenset({".mp4", ".webm", ".mov"})
AUDIO_EXT = frozenset({".mp3", ".wav", ".m4a", ".aac", ".ogg", ".flac", ".opus"})


# Where a file goes decides what kind of file it must be.
_FIELD_KINDS = {"video_url": "video", "audio_url": "audio"}
# The aspect ratios as fal's size enums (`image_size`, `video_size`) spell them.
SIZE_NAMES: Mapping[str, str] = MappingProxyType({
    "1:1": "square_hd", "16:9": "landscape_16_9", "9:16": "portrait_16_9", "4:3": "landscape_4_3", "3:4": "portrait_4_3",
})


@dataclass(frozen=True)
class Payload:
    """How one mode's request becomes the provider's input: which provider field each of the
    gateway's parameters goes to, and what the endpoint can honour. A parameter the user sets that
    the endpoint has no field for is refused (api/submission.py), never dropped.

    files      the provider fields the mode's files go to, in order; `name[]` appends to an array field
    size       the field an aspect ratio goes to: `aspect_ratio` (as it is), `image_size` / `video_size`
               (fal's size names, SIZE_NAMES); None: the endpoint takes none (the input image decides)
    ratios     the aspect ratios the endpoint takes
    duration   how seconds are sent in `duration`: "string" ("5"), "number" (5), "frames" (`num_frames`
               at `fps`); None: the endpoint takes no duration
    durations  the whole seconds the endpoint takes; empty: any
    prompt     False: the endpoint has no prompt field, so a prompt is refused
    params     gateway parameters sent as they are, under the same name (`audio_url`, `language`)
    defaults   fields the endpoint requires that the gateway fills in
    options    fields the endpoint requires that only the user can give, in `provider_options`
    billed     provider fields that change what the provider bills (a count of images, a resolution
               billed double): `provider_options` may not set them, or a job would cost more than it
               was priced (the provider's default, or `defaults`, is sent)
    """

    files: tuple[str, ...] = ()
    size: str | None = None
    ratios: tuple[str, ...] = ()
    duration: str | None = None
    durations: tuple[int, ...] = ()
    prompt: bool = True
    params: tuple[str, ...] = ()
    defaults: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    options: tuple[str, ...] = ()
    billed: tuple[str, ...] = ()
    fps: int = 25  # duration "frames": the frame rate sent as `fps`

    def kinds(self) -> tuple[str, ...]:
        """The kind of file each of `files` must be."""
        return tuple(_FIELD_KINDS.get(f.removesuffix("[]"), "image") for f in self.files)


PRICE_UNITS = ("second", "character", "image", "job")


@dataclass(frozen=True)
class Pricing:
    """A model's price in the unit its provider bills by, so that a job costs in proportion to the
    work it asks for: `cents` for every `per` units of `unit`.

    unit           "second": seconds of output, the request's `duration` (fal bills video per second,
                   ElevenLabs music by its length); "character": characters of the speech's `text`
                   (ElevenLabs bills characters); "image": each image the job makes; "job": flat, where
                   the provider bills per run, or where the output's size follows an input file the
                   gateway does not measure before the job (lipsync, video edit and upscale, upscalers,
                   transcription)
    cents, per     the unit price as two integers (10 cents per 1,000 characters, 20 per 60 s), so no
                   price needs a fraction of a cent written down
    minimum_cents  the least a job costs
    default_units  the units a request that names none gets (the duration the gateway or the
                   provider fills in); None where the request always says (a speech's text)

    A job's amount is max(minimum_cents, ceil(units * cents / per)): exact arithmetic rounded up to
    the next whole cent, because holds, captures and the ledger are integer cents and a fraction
    rounded down would be work given away.
    """

    unit: str
    cents: int
    per: int = 1
    minimum_cents: int = 1
    default_units: int | None = 1

    def amount(self, units: float) -> int:
        """Integer cents for `units` (a float duration counts as the decimal it prints as: 5.1 s is 5.1)."""
        exact = Fraction(Decimal(str(units))) * self.cents / self.per
        return max(self.minimum_cents, math.ceil(exact))

    @property
    def default_cents(self) -> int:
        """The price of the default request: the default duration, one image, one job, or (speech)
        the per-job minimum, which covers a short text."""
        return self.amount(self.default_units or 0)

    def public(self) -> dict:
        return {"unit": self.unit, "cents": self.cents, "per": self.per, "minimum_cents": self.minimum_cents,
                "default_units": self.default_units}


def per_second(cents: int, *, per: int = 1, default: int = 5) -> Pricing:
    """Seconds of output; `default`: the seconds a request without a duration gets (the spec's 5,
    or the provider's own default where the model does not take 5)."""
    return Pricing("second", cents, per, default_units=default)


def per_characters(cents: int, *, per: int = 1000, minimum: int) -> Pricing:
    return Pricing("character", cents, per, minimum, default_units=None)


def per_image(cents: int) -> Pricing:
    return Pricing("image", cents)


def per_job(cents: int) -> Pricing:
    return Pricing("job", cents)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    capability: str
    provider: str
    endpoints: Mapping[str, str]  # mode -> the provider's model / endpoint id
    source: str  # where the endpoint ids were found
    pricing: Pricing
    aspect_ratios: tuple[str, ...] = ()
    durations: tuple[int, ...] = ()  # allowed whole seconds; empty: any duration passes through
    # mode -> how a request becomes the provider's input (rows whose adapter maps by itself have none)
    payloads: Mapping[str, Payload] = field(default_factory=dict)
    legacy: bool = False
    # Why the model is gone from its provider's published list, when it is (kept for compatibility:
    # a request may still reach it, but the provider may stop serving it at any time).
    delisted: str = ""
    # The most characters of `text` one request may carry, where the provider limits it (0: only the
    # API's own cap): a longer text would be accepted, held, then refused by the provider.
    max_text_chars: int = 0
    # Whether the operator's pooled key may run this route. False: BYOK only (the job must bring its
    # own key for this provider), e.g. where the operator has no contract with the provider.
    pooled: bool = True

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.endpoints)

    @property
    def price_cents(self) -> int:
        """The price of the model's default request (`Pricing.default_cents`)."""
        return self.pricing.default_cents

    def units(self, mode: str, params: Mapping[str, Any]) -> float:
        """How many of its pricing unit a validated request (spec defaults filled in) asks for."""
        unit = self.pricing.unit
        if unit == "second":
            seconds = params.get("duration") if self.parameters(mode)["duration"] else None
            return seconds if seconds is not None else (self.pricing.default_units or 0)
        if unit == "character":
            return len(params.get("text") or "")
        if unit == "image":
            # The gateway sends one image per job (num_images is refused in provider_options); a
            # request that did name a count would pay for each image.
            return int(params.get("num_images") or 1)
        return 1

    def price(self, mode: str, params: Mapping[str, Any]) -> int:
        """Integer cents for a validated request: what is held at admission and captured on completion."""
        return self.pricing.amount(self.units(mode, params))

    def kinds(self, mode: str) -> tuple[str, ...]:
        """The kinds of file the mode takes, in order ("visual": an image or a video)."""
        payload = self.payloads.get(mode)
        return payload.kinds() if payload is not None else MODE_FILES[mode]

    def public(self) -> dict:
        return {
            "name": self.name, "capability": self.capability, "modes": list(self.modes), "provider": self.provider,
            "inputs": {mode: list(self.kinds(mode)) for mode in self.modes},
            "aspect_ratios": list(self.aspect_ratios), "durations": list(self.durations),
            "parameters": {mode: self.parameters(mode) for mode in self.modes},
            "prompt_optional": [m for m in self.modes if m in PROMPT_OPTIONAL],
            "price_cents": self.price_cents, "pricing": self.pricing.public(), "legacy": self.legacy,
            "delisted": bool(self.delisted), "source": self.source,
        }

    def route_info(self) -> dict:
        """This row as one of its model's routes (/v1/models `providers`)."""
        return {"provider": self.provider, "endpoints": dict(self.endpoints), "modes": list(self.modes),
                "price_cents": self.price_cents, "pricing": self.pricing.public(), "pooled": self.pooled,
                "delisted": bool(self.delisted), "source": self.source}

    def protected_options(self, mode: str) -> frozenset[str]:
        """The provider fields the gateway fills from what it validates or prices: `provider_options`
        may not set them (it would change a job after its price was fixed, or skip a check)."""
        payload = self.payloads.get(mode)
        if payload is None:
            return PROTECTED_OPTIONS.get(self.provider, frozenset())
        fields = {f.removesuffix("[]") for f in payload.files} | set(payload.params) | set(payload.billed)
        if payload.prompt:
            fields.add("prompt")
        if payload.size:
            fields.add(payload.size)
        if payload.duration == "frames":
            fields |= {"num_frames", "fps"}
        elif payload.duration:
            fields.add("duration")
        if self.capability == "image":
            fields.add("num_images")  # each image is billed: one job, one image
        return frozenset(fields)

    def parameters(self, mode: str) -> dict:
        """What a request in this mode may set: the aspect ratios and durations it takes, whether it
        takes a prompt, and the provider_options it requires."""
        payload = self.payloads.get(mode)
        if payload is None:
            rules = {"aspect_ratios": list(self.aspect_ratios), "durations": list(self.durations),
                     "duration": self.capability in ("video", "music"), "prompt": True,
                     "required_provider_options": []}
            if self.max_text_chars:
                rules["max_text_characters"] = self.max_text_chars
            return rules
        rules = {"aspect_ratios": list(payload.ratios if payload.size else ()),
                 "durations": list(payload.durations) if payload.duration else [],
                 "duration": payload.duration is not None, "prompt": payload.prompt,
                 "required_provider_options": list(payload.options)}
        if self.max_text_chars:
            rules["max_text_characters"] = self.max_text_chars
        return rules


# For rows whose adapter builds the payload itself: the provider fields it fills from the request's
# validated (or priced) fields, which provider_options may therefore not set.
PROTECTED_OPTIONS: Mapping[str, frozenset[str]] = MappingProxyType({
    "elevenlabs": frozenset({"text", "model_id", "voice_id", "prompt", "music_length_ms", "composition_plan"}),
    "piapi": frozenset({"prompt", "duration", "aspect_ratio", "image_urls", "video_urls", "model", "task_type"}),
    "higgsfield": frozenset({"prompt", "aspect_ratio"}),
})

# Where a fal row's ids come from when fal publishes no schema for one of its endpoints.
FAL_UNPUBLISHED = "a fal endpoint id with no published schema (config/schemas/README.md)"
SPEC_OVERVIEW = "spec/gateway-overview.md model table"
# The providers that publish no input schema for the endpoints gengate uses (config/schemas/<provider>/README.md).
PIAPI_SOURCE = ("piapi.ai/docs seedance-2-preview: task_type and an example request only; no published input schema "
                "(config/schemas/piapi/README.md)")
HIGGSFIELD_SOURCE = ("docs.higgsfield.ai: the endpoint and an example request only; no published input schema "
                     "(config/schemas/higgsfield/README.md); provider from " + SPEC_OVERVIEW)
FAL_JS_NEWEST = "fal-js 381105e"
# fal's public model list dropped the two Topaz endpoints on 2026-08-18 for one endpoint per Topaz model
# (…/upscale/image/{precision,creative,generative,transparent}, …/upscale/video/{precision,creative,
# generative}), whose schemas fal has not published yet (config/schemas/README.md).
TOPAZ_DELISTED = "dropped from fal's public model list on 2026-08-18 for per-model endpoints that publish no schema yet"


def _fal(name: str, capability: str, modes: dict[str, tuple[str, Payload]], price: Pricing, *, legacy: bool = False,
         delisted: str = "") -> ModelSpec:
    """A fal row: mode -> (endpoint id, payload). Its aspect ratios and durations (shown by /v1/models)
    are those of its modes together. Where fal publishes every endpoint's schema (vendored in
    config/schemas/fal), that is the source of its ids, and an endpoint gone from fal's newest
    published types marks the row delisted."""
    records = [(ep, published("fal", ep)) for ep in dict.fromkeys(ep for ep, _ in modes.values())]
    source = FAL_UNPUBLISHED
    if all(record for _, record in records):
        commits = ", ".join(sorted({record["commit"][:7] for _, record in records}))
        source = f"fal-ai/fal-js endpoint types ({commits}), vendored in config/schemas/fal"
        gone = [f"{ep} is gone from fal's newest published types ({FAL_JS_NEWEST}); its schema is from "
                f"{record['commit'][:7]}" for ep, record in records if record["delisted"]]
        delisted = "; ".join(filter(None, [delisted, *gone]))
    payloads = {mode: payload for mode, (_, payload) in modes.items()}
    ratios = tuple(dict.fromkeys(r for p in payloads.values() if p.size for r in p.ratios))
    durations = tuple(sorted({d for p in payloads.values() if p.duration for d in p.durations}))
    return ModelSpec(name, capability, "fal", MappingProxyType({m: ep for m, (ep, _) in modes.items()}), source,
                     price, ratios, durations, MappingProxyType(payloads), legacy, delisted)


# The payloads fal's endpoints share, by the fields their published schemas give them.
def _t2i(size: str = "aspect_ratio") -> Payload:
    return Payload(size=size, ratios=IMAGE_RATIOS)


def _edit(files: str = "image_urls[]", size: str | None = "aspect_ratio", prompt: bool = True) -> Payload:
    return Payload(files=(files,), size=size, ratios=IMAGE_RATIOS if size else (), prompt=prompt)


UPSCALE = Payload(files=("image_url",), prompt=False)
UPSCALE_PROMPTED = Payload(files=("image_url",))
VIDEO_UPSCALE = Payload(files=("video_url",), prompt=False)


def _kling(name: str, path: str, price: Pricing, durations: tuple[int, ...], *, start: str, end: str | None,
           legacy: bool = False) -> ModelSpec:
    """Kling on fal: text-to-video takes an aspect ratio; image-to-video does not (the image decides)
    and names its first frame `start` (and its last, if the endpoint has one, `end`: keyframes)."""
    base = f"fal-ai/kling-video/{path}"
    timed = {"duration": "string", "durations": durations}
    modes = {"text-to-video": (f"{base}/text-to-video", Payload(size="aspect_ratio", ratios=VIDEO_RATIOS, **timed)),
             "image-to-video": (f"{base}/image-to-video", Payload(files=(start,), **timed))}
    if end is not None:
        modes["keyframes"] = (f"{base}/image-to-video", Payload(files=(start, end), **timed))
    return _fal(name, "video", modes, price, legacy=legacy)


def _sora(name: str, t2v: str, i2v: str, price: Pricing) -> ModelSpec:
    """Sora takes no 5 s, so a request without a duration gets fal's default, 4 s (its price's default)."""
    timed = {"size": "aspect_ratio", "ratios": ("16:9", "9:16"), "duration": "string", "durations": (4, 8, 12, 16, 20)}
    return _fal(name, "video", {"text-to-video": (t2v, Payload(**timed)),
                                "image-to-video": (i2v, Payload(files=("image_url",), **timed))}, price)


def _wan(name: str) -> ModelSpec:
    timed = {"duration": "string", "durations": (5, 10)}
    return _fal(name, "video", {
        "text-to-video": ("fal-ai/wan-25-preview/text-to-video", Payload(size="aspect_ratio", ratios=VIDEO_RATIOS,
                                                                          **timed)),
        "image-to-video": ("fal-ai/wan-25-preview/image-to-video", Payload(files=("image_url",), **timed))},
        per_second(5))


_NANO_BANANA_T2I = Payload(size="aspect_ratio", ratios=IMAGE_RATIOS, billed=("resolution",))
_NANO_BANANA_EDIT = Payload(files=("image_urls[]",), size="aspect_ratio", ratios=IMAGE_RATIOS, billed=("resolution",))

MODELS: tuple[ModelSpec, ...] = (
    # --- image: text-to-image --------------------------------------------------------------------
    _fal("flux-pro", "image", {"text-to-image": ("fal-ai/flux-pro/v1.1", _t2i("image_size"))}, per_image(5)),
    _fal("flux-dev", "image", {"text-to-image": ("fal-ai/flux/dev", _t2i("image_size"))}, per_image(3)),
    _fal("flux-schnell", "image", {"text-to-image": ("fal-ai/flux/schnell", _t2i("image_size"))}, per_image(1)),
    # `resolution` 4K is billed twice the 1K/2K price on fal too: not for provider_options to set
    _fal("nano-banana-pro", "image", {"text-to-image": ("fal-ai/nano-banana-pro", _NANO_BANANA_T2I),
                                      "edit": ("fal-ai/nano-banana-pro/edit", _NANO_BANANA_EDIT)}, per_image(15)),
    _fal("recraft-v3", "image", {"text-to-image": ("fal-ai/recraft/v3/text-to-image", _t2i("image_size"))}, per_image(4)),
    _fal("phota", "image", {"text-to-image": ("fal-ai/phota", _t2i())}, per_image(4)),
    _fal("grok-imagine-image", "image", {"text-to-image": ("xai/grok-imagine-image", _t2i())}, per_image(7)),
    ModelSpec("soul", "image", "higgsfield", MappingProxyType({"text-to-image": "higgsfield-ai/soul/standard"}),
              HIGGSFIELD_SOURCE, per_image(6), IMAGE_RATIOS + ("21:9",)),
    # --- image: editing -------------------------------------------------------------------------
    _fal("nano-banana-pro/edit", "image", {"edit": ("fal-ai/nano-banana-pro/edit", _NANO_BANANA_EDIT)}, per_image(15)),
    _fal("nano-banana-2/edit", "image", {"edit": ("fal-ai/nano-banana-2/edit", _edit())}, per_image(8)),
    _fal("phota/edit", "image", {"edit": ("fal-ai/phota/edit", _edit())}, per_image(4)),
    # enhance: the image alone, no prompt and no size
    _fal("phota/enhance", "image", {"edit": ("fal-ai/phota/enhance", _edit("image_url", None, prompt=False))}, per_image(4)),
    _fal("grok-imagine-image/edit", "image", {"edit": ("xai/grok-imagine-image/edit", _edit())}, per_image(7)),
    _fal("seedream-v4.5/edit", "image", {"edit": ("fal-ai/bytedance/seedream/v4.5/edit", _edit(size="image_size"))}, per_image(4)),
    # the camera moves are its own fields (rotate_right_left, vertical_angle, ...): provider_options
    _fal("qwen-angles", "image", {"edit": ("fal-ai/qwen-image-edit-2509-lora-gallery/multiple-angles",
                                           _edit(size="image_size", prompt=False))}, per_image(4)),
    # --- image: upscale and background removal --------------------------------------------------
    # Per job: their providers bill by the input's megapixels or by compute time, neither known at admission.
    _fal("seedvr", "image", {"upscale": ("fal-ai/seedvr/upscale/image", UPSCALE)}, per_job(3)),
    _fal("recraft-clarity", "image", {"upscale": ("fal-ai/recraft/upscale/crisp", UPSCALE)}, per_job(4)),
    _fal("clarity-upscaler", "image", {"upscale": ("fal-ai/clarity-upscaler", UPSCALE_PROMPTED)}, per_job(3)),
    _fal("topaz", "image", {"upscale": ("fal-ai/topaz/upscale/image", UPSCALE_PROMPTED)}, per_job(8),
         delisted=TOPAZ_DELISTED),
    _fal("ccsr", "image", {"upscale": ("fal-ai/ccsr", UPSCALE)}, per_job(2)),
    _fal("aura-sr", "image", {"upscale": ("fal-ai/aura-sr", UPSCALE)}, per_job(1)),
    # its published input (config/schemas/replicate) is the image and options; no prompt
    ModelSpec("background-remover", "image", "replicate",
              MappingProxyType({"background-removal": "851-labs/background-remover"}),
              "replicate.com/851-labs/background-remover (version a029dff3's published input schema, vendored in "
              "config/schemas/replicate); provider from " + SPEC_OVERVIEW, per_job(1),
              payloads=MappingProxyType({"background-removal": Payload(files=("image",), prompt=False)})),
    # --- video: generation ----------------------------------------------------------------------
    _kling("kling-v3", "v3/pro", per_second(10), tuple(range(3, 16)), start="start_image_url", end="end_image_url"),
    _kling("kling-v3-standard", "v3/standard", per_second(6), tuple(range(3, 16)), start="start_image_url",
           end="end_image_url"),
    ModelSpec("seedance-2-preview", "video", "piapi", MappingProxyType({
        "text-to-video": "seedance-2-preview", "image-to-video": "seedance-2-preview",
        "video-edit": "seedance-2-preview"}), PIAPI_SOURCE, per_second(12), WIDE_VIDEO_RATIOS, (5, 10, 15)),
    ModelSpec("seedance-2-fast-preview", "video", "piapi", MappingProxyType({
        "text-to-video": "seedance-2-fast-preview", "image-to-video": "seedance-2-fast-preview"}),
        PIAPI_SOURCE, per_second(7), WIDE_VIDEO_RATIOS, (5, 10, 15)),
    _sora("sora-2", "fal-ai/sora-2/text-to-video", "fal-ai/sora-2/image-to-video", per_second(10, default=4)),
    _sora("sora-2-pro", "fal-ai/sora-2/text-to-video/pro", "fal-ai/sora-2/image-to-video/pro",
          per_second(25, default=4)),
    _wan("wan-2.5"),
    _wan("wan-2.5-preview"),
    # video-01 takes a prompt (and an image) only: no size, no duration; one length, so one price per job
    _fal("minimax", "video", {"text-to-video": ("fal-ai/minimax/video-01", Payload()),
                              "image-to-video": ("fal-ai/minimax/video-01/image-to-video",
                                                 Payload(files=("image_url",)))}, per_job(25)),
    # Sized by `video_size`, timed in frames (fal publishes no limit on `num_frames`; its default is
    # 121 at 25 fps). The image-to-video endpoint's optional `end_image_url` makes keyframes.
    _fal("ltx-2-19b-distilled", "video", {
        "text-to-video": ("fal-ai/ltx-2-19b/distilled/text-to-video",
                          Payload(size="video_size", ratios=WIDE_VIDEO_RATIOS, duration="frames")),
        "image-to-video": ("fal-ai/ltx-2-19b/distilled/image-to-video",
                           Payload(files=("image_url",), size="video_size", ratios=WIDE_VIDEO_RATIOS, duration="frames")),
        "keyframes": ("fal-ai/ltx-2-19b/distilled/image-to-video",
                      Payload(files=("image_url", "end_image_url"), size="video_size", ratios=WIDE_VIDEO_RATIOS,
                              duration="frames"))}, per_second(2)),
    # ltx-video takes no duration either: per job
    _fal("ltx", "video", {"text-to-video": ("fal-ai/ltx-video", Payload()),
                          "image-to-video": ("fal-ai/ltx-video/image-to-video", Payload(files=("image_url",)))},
         per_job(5)),
    # grok's durations are a plain number; fal publishes no range for them
    _fal("grok-imagine", "video", {
        "text-to-video": ("xai/grok-imagine-video/text-to-video",
                          Payload(size="aspect_ratio", ratios=WIDE_VIDEO_RATIOS, duration="number")),
        "image-to-video": ("xai/grok-imagine-video/image-to-video",
                           Payload(files=("image_url",), size="aspect_ratio", ratios=WIDE_VIDEO_RATIOS,
                                   duration="number"))}, per_second(6)),
    # --- video: editing and motion control ------------------------------------------------------
    # Per job, like lipsync and video upscale below: the output is as long as an input file the gateway
    # does not measure before the job.
    _fal("grok-imagine-edit", "video", {"video-edit": ("xai/grok-imagine-video/edit-video",
                                                       Payload(files=("video_url",)))}, per_job(30)),
    # A remix edits an earlier Sora job of the same key, named by its `video_id`; it takes no file.
    _fal("sora-2-remix", "video", {"video-edit": ("fal-ai/sora-2/video-to-video/remix",
                                                  Payload(options=("video_id",)))}, per_job(40)),
    # whose orientation the character follows: the reference video's (motion transfer) by default
    _fal("kling-v2.6-motion", "video", {"motion-control": ("fal-ai/kling-video/v2.6/pro/motion-control", Payload(
        files=("image_url", "video_url"), defaults=MappingProxyType({"character_orientation": "video"})))},
         per_job(40)),
    # --- video: lipsync -------------------------------------------------------------------------
    _fal("veed-fabric-1.0", "video", {"lipsync": ("veed/fabric-1.0", Payload(
        files=("image_url", "audio_url"), prompt=False, defaults=MappingProxyType({"resolution": "720p"})))},
         per_job(30)),
    _fal("sync-v2", "video", {"lipsync": ("fal-ai/sync-lipsync/v2", Payload(files=("video_url", "audio_url"),
                                                                             prompt=False))}, per_job(20)),
    _fal("sync-v2-pro", "video", {"lipsync": ("fal-ai/sync-lipsync/v2/pro", Payload(files=("video_url", "audio_url"),
                                                                                     prompt=False))}, per_job(35)),
    _fal("omnihuman-v1.5", "video", {"lipsync": ("fal-ai/bytedance/omnihuman/v1.5",
                                                 Payload(files=("image_url", "audio_url")))}, per_job(40)),
    _fal("omnihuman", "video", {"lipsync": ("fal-ai/bytedance/omnihuman",
                                            Payload(files=("image_url", "audio_url"), prompt=False))}, per_job(35)),
    # --- video: upscale -------------------------------------------------------------------------
    _fal("seedvr-video", "video", {"video-upscale": ("fal-ai/seedvr/upscale/video", VIDEO_UPSCALE)}, per_job(20)),
    _fal("topaz-video", "video", {"video-upscale": ("fal-ai/topaz/upscale/video", VIDEO_UPSCALE)}, per_job(40),
         delisted=TOPAZ_DELISTED),
    _fal("bytedance-upscaler", "video", {"video-upscale": ("fal-ai/bytedance-upscaler/upscale/video", VIDEO_UPSCALE)},
         per_job(20)),
    # fal never published `simalabs/sima-video-upscaler`; its published id is …-lite
    _fal("sima-video-upscaler", "video", {"video-upscale": ("simalabs/sima-video-upscaler-lite", VIDEO_UPSCALE)},
         per_job(20)),
    # --- video: legacy Kling --------------------------------------------------------------------
    _kling("kling-v2.6", "v2.6/pro", per_second(7), (5, 10), start="start_image_url", end="end_image_url", legacy=True),
    _kling("kling-v2.5", "v2.5-turbo/pro", per_second(7), (5, 10), start="image_url", end="tail_image_url",
           legacy=True),
    # v2.1 and v2 master: image-to-video has no last-frame field, so no keyframes
    _kling("kling-v2.1", "v2.1/master", per_second(12), (5, 10), start="image_url", end=None, legacy=True),
    _kling("kling-v2", "v2/master", per_second(12), (5, 10), start="image_url", end=None, legacy=True),
    # --- speech, music, transcription -----------------------------------------------------------
    # ElevenLabs bills speech by characters, Flash and Turbo at half the rate of v3 and Multilingual; the
    # minimum is the price of a short text. Music is billed by its length: a request without a duration
    # gets 30 s (adapters/elevenlabs.py DEFAULT_MUSIC_SECONDS), the default priced here. Characters per
    # request: ElevenLabs' help centre's limits per model (eleven_v3's 5,000 is our reading of it).
    *(ModelSpec(name, "speech", "elevenlabs", MappingProxyType({"tts": name}), "docs/providers.md (ElevenLabs model_id)",
                price, max_text_chars=limit) for name, price, limit in (
        ("eleven_v3", per_characters(10, minimum=3), 5_000),
        ("eleven_multilingual_v2", per_characters(10, minimum=3), 10_000),
        ("eleven_flash_v2_5", per_characters(5, minimum=2), 40_000),
        ("eleven_turbo_v2", per_characters(5, minimum=2), 30_000))),
    ModelSpec("music_v1", "music", "elevenlabs", MappingProxyType({"music": "music_v1"}),
              "docs/providers.md (ElevenLabs /v1/music)", per_second(20, per=60, default=30)),
    _fal("whisper", "transcription", {"transcription": ("fal-ai/whisper",
                                                        Payload(prompt=False, params=("audio_url", "language")))},
         per_job(1)),
)

# Other providers' routes to models of MODELS: the same public name (and capability), served by
# another provider with its own endpoint ids, payload mapping, published schema and price. A job of
# the model may fall back to them, in the model's routing order (api/routing.py); `provider:name`
# pins one. MODELS holds each name's first route (the catalog's default order starts there).
def _replicate(name: str, capability: str, modes: dict[str, tuple[str, Payload]], price: Pricing,
               source: str) -> ModelSpec:
    """A Replicate official model's row: mode -> (`owner/name`, payload). Official models run their
    current version through the models endpoint (no version id) and bill by output. `source` names the
    published input schema read (vendored in config/schemas/replicate, where README.md says how)."""
    payloads = {mode: payload for mode, (_, payload) in modes.items()}
    ratios = tuple(dict.fromkeys(r for p in payloads.values() if p.size for r in p.ratios))
    durations = tuple(sorted({d for p in payloads.values() if p.duration for d in p.durations}))
    return ModelSpec(name, capability, "replicate", MappingProxyType({m: ep for m, (ep, _) in modes.items()}),
                     f"replicate.com/{source}, vendored in config/schemas/replicate", price, ratios, durations,
                     MappingProxyType(payloads))


# FLUX.1 on Replicate (black-forest-labs/flux-schnell, flux-dev): `num_outputs` (1-4) is billed per
# image: one job, one image, as fal's `num_images`. Every IMAGE_RATIOS is in the models' `aspect_ratio` enum.
_FLUX1_REPLICATE = Payload(size="aspect_ratio", ratios=IMAGE_RATIOS, billed=("num_outputs",),
                           defaults=MappingProxyType({"num_outputs": 1}))
# google/nano-banana-pro: the input images go in the `image_input` array; `resolution` 4K is billed
# twice the 1K/2K price (sent as the model's default, 2K).
_NANO_BANANA_PRO_REPLICATE = {
    "text-to-image": ("google/nano-banana-pro", Payload(size="aspect_ratio", ratios=IMAGE_RATIOS,
                                                        billed=("resolution",))),
    "edit": ("google/nano-banana-pro", Payload(files=("image_input[]",), size="aspect_ratio", ratios=IMAGE_RATIOS,
                                               billed=("resolution",))),
}
_NANO_BANANA_PRO_SOURCE = "google/nano-banana-pro (official model; version f5318740's published input schema)"


def _fal_tts(name: str, endpoint: str, price: Pricing) -> ModelSpec:
    """An ElevenLabs speech model on fal (`fal-ai/elevenlabs/tts/...`): the text goes in `text`; the
    voice is the adapter's (adapters/fal.py FAL_VOICES: fal's `voice` takes a voice name). The row
    keeps the ElevenLabs model's own characters-per-request limit: fal serves the same model."""
    spec = _fal(name, "speech", {"tts": (endpoint, Payload(prompt=False, params=("text",)))}, price)
    return replace(spec, max_text_chars=_FIRST_ROWS[name].max_text_chars)


_FIRST_ROWS: Mapping[str, ModelSpec] = MappingProxyType({m.name: m for m in MODELS})

# Prices, in the unit each provider bills: Replicate's official models per output image (flux-schnell
# $0.003 and flux-dev $0.025 per Replicate's pricing as quoted by third parties; flux-1.1-pro $0.04, BFL's
# list price; nano-banana-pro $0.15 at 1K/2K, as resellers of the Replicate model list it: none of these
# was read on replicate.com itself), rounded up to the cent like MODELS' fal rows; fal's ElevenLabs TTS per characters ($0.10 per 1,000 on fal's eleven-v3 pages;
# multilingual-v2's fal price was not found and is taken to be the same, as ElevenLabs prices the two alike);
# kling-v2.1 on Replicate $0.28 per second of output (kwaivgi/kling-v2.1-master as public apps quote Replicate's
# price; fal publishes the same $0.28/s for its master endpoints; replicate.com itself not read).
ALTERNATES: tuple[ModelSpec, ...] = (
    _replicate("flux-schnell", "image", {"text-to-image": ("black-forest-labs/flux-schnell", _FLUX1_REPLICATE)},
               per_image(1), "black-forest-labs/flux-schnell (official model; version c846a699's published input "
                             "schema, its enums from replicate/cog-flux 2610fcc)"),
    _replicate("flux-dev", "image", {"text-to-image": ("black-forest-labs/flux-dev", _FLUX1_REPLICATE)},
               per_image(3), "black-forest-labs/flux-dev (official model; input schema from replicate/cog-flux "
                             "2610fcc's DevPredictor: no replicate.com version page found)"),
    # the public flux-pro is FLUX 1.1 [pro] (fal-ai/flux-pro/v1.1)
    _replicate("flux-pro", "image", {"text-to-image": ("black-forest-labs/flux-1.1-pro",
                                                       Payload(size="aspect_ratio", ratios=IMAGE_RATIOS))},
               per_image(4), "black-forest-labs/flux-1.1-pro (official model; version 96ccd0e7's published input "
                             "schema)"),
    _replicate("nano-banana-pro", "image", _NANO_BANANA_PRO_REPLICATE, per_image(15), _NANO_BANANA_PRO_SOURCE),
    _replicate("nano-banana-pro/edit", "image", {"edit": _NANO_BANANA_PRO_REPLICATE["edit"]}, per_image(15),
               _NANO_BANANA_PRO_SOURCE),
    # kling-v2.1 is Kling 2.1 Master (fal's v2.1/master): on Replicate kwaivgi/kling-v2.1-master, text-to-video
    # and image-to-video (`start_image`), duration an integer 5 or 10; no last-frame field, so no keyframes.
    # kwaivgi/kling-v2.1 is the standard/pro tier, image-to-video only: not this model.
    _replicate("kling-v2.1", "video", {
        "text-to-video": ("kwaivgi/kling-v2.1-master",
                          Payload(size="aspect_ratio", ratios=VIDEO_RATIOS, duration="number", durations=(5, 10))),
        "image-to-video": ("kwaivgi/kling-v2.1-master",
                           Payload(files=("start_image",), duration="number", durations=(5, 10))),
    }, per_second(28), "kwaivgi/kling-v2.1-master (official model; no readable version page: its current "
                       "version's input schema as recorded in public notes, see the README)"),
    # fal publishes ElevenLabs TTS endpoints for v3, multilingual v2 and turbo v2.5 only: eleven_flash_v2_5 and
    # eleven_turbo_v2 (not v2.5) have no fal route.
    _fal_tts("eleven_v3", "fal-ai/elevenlabs/tts/eleven-v3", per_characters(10, minimum=3)),
    _fal_tts("eleven_multilingual_v2", "fal-ai/elevenlabs/tts/multilingual-v2", per_characters(10, minimum=3)),
)

BY_NAME: Mapping[str, ModelSpec] = MappingProxyType({m.name: m for m in MODELS})
PROVIDERS = ("fal", "replicate", "elevenlabs", "higgsfield", "piapi")


def _routes() -> Mapping[str, tuple[ModelSpec, ...]]:
    routes: dict[str, list[ModelSpec]] = {m.name: [m] for m in MODELS}
    for alt in ALTERNATES:
        first = BY_NAME.get(alt.name)
        # An alternate serves a model of MODELS, as the same capability, on a provider of its own.
        assert first is not None and alt.capability == first.capability, alt.name
        assert alt.provider not in {r.provider for r in routes[alt.name]}, (alt.name, alt.provider)
        routes[alt.name].append(alt)
    return MappingProxyType({name: tuple(rows) for name, rows in routes.items()})


# Every route of each public model, the catalog's order first.
ROUTES: Mapping[str, tuple[ModelSpec, ...]] = _routes()


def get(name: str) -> ModelSpec:
    return BY_NAME[name]


def route(name: str, provider: str) -> ModelSpec | None:
    """The model's route on `provider`, if it has one."""
    return next((r for r in ROUTES.get(name, ()) if r.provider == provider), None)


def file_kind(url: str) -> str:
    """image | video | audio by the URL path's extension; "unknown" when it has none we know."""
    try:
        path = urlsplit(url).path.lower()
    except ValueError:  # "http://[::1/x.png": refused later as a URL (a 400); raising here would be a 500
        return "unknown"
    ext = path[path.rfind("."):] if "." in path.rsplit("/", 1)[-1] else ""
    if ext in IMAGE_EXT:
        return "image"
    if ext in VIDEO_EXT:
        return "video"
    if ext in AUDIO_EXT:
        return "audio"
    return "unknown"


# --- any endpoint by id (passthrough) -------------------------------------------------------------
# `fal:<endpoint id>` and `replicate:<owner>/<model>[:<version>]` reach any model of those providers,
# not only the catalog's. Such a request builds its row here, per request (never in BY_NAME or ROUTES:
# the catalog stays what /v1/models lists). Its one mode is PASSTHROUGH: `provider_options` is the
# input, the prompt and files go where the endpoint's published schema names them (api/resolve.py
# `passthrough_fields`), and the output is found in the result by its media type (adapters/base.py
# `find_output`).
PASSTHROUGH = "passthrough"
# What an endpoint id may look like, per provider. One path segment starts with a letter or digit, so
# no segment is `.` or `..` (the id becomes a URL path at the provider). fal: `owner/name[/path...]`
# (fal-js endpoint ids, e.g. fal-ai/bytedance/seedream/v4.5/edit, have up to 5 segments; 8 allowed).
# Replicate: `owner/name`, or `owner/name:<version>` with the version's 64 hex digits (replicate.com
# version ids, e.g. c846a699…e51e of black-forest-labs/flux-schnell). These exact patterns are also
# the OpenAPI document's (api/schemas.py `_model_field`): what it declares valid is what resolves.
_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
PASSTHROUGH_IDS: Mapping[str, str] = MappingProxyType({
    "fal": rf"{_SEGMENT}(?:/{_SEGMENT}){{1,7}}",
    "replicate": rf"{_SEGMENT}/{_SEGMENT}(?::[0-9a-f]{{64}})?",
})
PASSTHROUGH_SOURCE = "an endpoint id given by the request (passthrough)"


def is_passthrough(spec: ModelSpec) -> bool:
    return spec.modes == (PASSTHROUGH,)


def passthrough_price(prices: Mapping[str, int], provider: str, endpoint: str) -> int | None:
    """Cents per job for an endpoint, from GENGATE_PASSTHROUGH_PRICES: the exact `provider:id` first,
    then (a version-pinned Replicate id) its model without the version, then `provider:*`; None when
    none is set (the route is then BYOK only: the operator has not said what a run costs)."""
    keys = [f"{provider}:{endpoint}"]
    if provider == "replicate" and ":" in endpoint:
        keys.append(f"{provider}:{endpoint.partition(':')[0]}")
    keys.append(f"{provider}:*")
    return next((prices[k] for k in keys if k in prices), None)


@lru_cache(maxsize=None)
def _vendored(provider: str) -> frozenset[str]:
    return frozenset(schemas.endpoints(provider))


def passthrough_schema(provider: str, endpoint: str) -> dict[str, Any] | None:
    """The vendored record of a passthrough endpoint's published schema, if any. Looked up in the set
    of vendored ids first: `published` caches every id it is asked for, and these ids are the
    requests' own, so an unknown one must not reach it (the cache would grow with each)."""
    model = endpoint.partition(":")[0] if provider == "replicate" else endpoint
    return published(provider, model) if model in _vendored(provider) else None


def passthrough_spec(provider: str, endpoint: str, capability: str, cents: int | None) -> ModelSpec:
    """The row of one passthrough request: pinned to `provider` (no routes, no fallback), priced per
    job at `cents` (exactly: no minimum added), or BYOK only (`pooled` False) when no price is set.
    The schema consulted is the model's (a Replicate version's id is left out: one vendored version's
    schema stands for the model, config/schemas/replicate/README.md)."""
    record = passthrough_schema(provider, endpoint)
    source = (f"{PASSTHROUGH_SOURCE}; its published schema: {record['source']}, vendored in config/schemas/"
              f"{provider}") if record else f"{PASSTHROUGH_SOURCE}; no vendored schema"
    pricing = Pricing("job", cents or 0, minimum_cents=cents or 0)
    return ModelSpec(endpoint, capability, provider, MappingProxyType({PASSTHROUGH: endpoint}), source, pricing,
                     pooled=cents is not None)
