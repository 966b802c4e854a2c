"""The model catalog as data: one row per public model name of the spec.

A row names the provider that serves the model, the provider's own endpoint id for each mode the
model has (and where that id comes from), the parameter rules, and a price in integer cents. Pure
data and pure functions: this bottom layer imports nothing of gengate's (api/resolve.py turns a
request into a row and a mode, refusing what the catalog does not hold).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlsplit

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


@dataclass(frozen=True)
class ModelSpec:
    name: str
    capability: str
    provider: str
    endpoints: Mapping[str, str]  # mode -> the provider's model / endpoint id
    source: str  # where the endpoint ids were found
    price_cents: int
    aspect_ratios: tuple[str, ...] = ()
    durations: tuple[int, ...] = ()  # allowed whole seconds; empty: any duration passes through
    hints: Mapping[str, str] = field(default_factory=dict)  # provider payload hints for the adapter
    legacy: bool = False
    # Why the model is gone from its provider's published list, when it is (kept for compatibility:
    # a request may still reach it, but the provider may stop serving it at any time).
    delisted: str = ""

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.endpoints)

    def public(self) -> dict:
        return {
            "name": self.name, "capability": self.capability, "modes": list(self.modes), "provider": self.provider,
            "inputs": {mode: list(MODE_FILES[mode]) for mode in self.modes},
            "aspect_ratios": list(self.aspect_ratios), "durations": list(self.durations),
            "prompt_optional": [m for m in self.modes if m in PROMPT_OPTIONAL],
            "price_cents": self.price_cents, "legacy": self.legacy,
            "delisted": bool(self.delisted), "source": self.source,
        }


# Where a fal row's ids come from when fal publishes no schema for one of its endpoints.
FAL_UNPUBLISHED = "a fal endpoint id with no published schema (config/schemas/README.md)"
SPEC_OVERVIEW = "spec/gateway-overview.md model table"
FAL_JS_NEWEST = "fal-js 381105e"
# fal's public model list dropped the two Topaz endpoints on 2026-08-18 for one endpoint per Topaz model
# (…/upscale/image/{precision,creative,generative,transparent}, …/upscale/video/{precision,creative,
# generative}), whose schemas fal has not published yet (config/schemas/README.md).
TOPAZ_DELISTED = "dropped from fal's public model list on 2026-08-18 for per-model endpoints that publish no schema yet"


def _fal(name, capability, endpoints, price, *, ratios=(), durations=(), legacy=False, delisted="",
         **hints):
    """A fal row. Where fal publishes every endpoint's schema (vendored in config/schemas/fal), that
    is the source of its ids, and an endpoint gone from fal's newest published types marks the row
    delisted."""
    records = [(ep, published("fal", ep)) for ep in dict.fromkeys(endpoints.values())]
    source = FAL_UNPUBLISHED
    if all(record for _, record in records):
        commits = ", ".join(sorted({record["commit"][:7] for _, record in records}))
        source = f"fal-ai/fal-js endpoint types ({commits}), vendored in config/schemas/fal"
        gone = [f"{ep} is gone from fal's newest published types ({FAL_JS_NEWEST}); its schema is from "
                f"{record['commit'][:7]}" for ep, record in records if record["delisted"]]
        delisted = "; ".join(filter(None, [delisted, *gone]))
    return ModelSpec(name, capability, "fal", MappingProxyType(dict(endpoints)), source, price, tuple(ratios),
                     tuple(durations), MappingProxyType(hints), legacy, delisted)


def _kling(name, path, price, durations, legacy=False):
    base = f"fal-ai/kling-video/{path}"
    return _fal(name, "video", {"text-to-video": f"{base}/text-to-video", "image-to-video": f"{base}/image-to-video",
                                "keyframes": f"{base}/image-to-video"},
                price, ratios=VIDEO_RATIOS, durations=durations, legacy=legacy, duration="str",
                tail="tail_image_url")


def _t2v_i2v(name, base, price, *, t2v="text-to-video", i2v="image-to-video", **kw):
    return _fal(name, "video", {"text-to-video": f"{base}/{t2v}", "image-to-video": f"{base}/{i2v}"}, price,
                ratios=kw.pop("ratios", WIDE_VIDEO_RATIOS), **kw)


MODELS: tuple[ModelSpec, ...] = (
    # --- image: text-to-image --------------------------------------------------------------------
    _fal("flux-pro", "image", {"text-to-image": "fal-ai/flux-pro/v1.1"}, 5, ratios=IMAGE_RATIOS, aspect="image_size"),
    _fal("flux-dev", "image", {"text-to-image": "fal-ai/flux/dev"}, 3, ratios=IMAGE_RATIOS, aspect="image_size"),
    _fal("flux-schnell", "image", {"text-to-image": "fal-ai/flux/schnell"}, 1, ratios=IMAGE_RATIOS, aspect="image_size"),
    _fal("nano-banana-pro", "image", {"text-to-image": "fal-ai/nano-banana-pro", "edit": "fal-ai/nano-banana-pro/edit"},
         15, ratios=IMAGE_RATIOS, images="image_urls"),
    _fal("recraft-v3", "image", {"text-to-image": "fal-ai/recraft/v3/text-to-image"}, 4, ratios=IMAGE_RATIOS,
         aspect="image_size"),
    _fal("phota", "image", {"text-to-image": "fal-ai/phota"}, 4, ratios=IMAGE_RATIOS),
    _fal("grok-imagine-image", "image", {"text-to-image": "xai/grok-imagine-image"}, 7, ratios=IMAGE_RATIOS),
    ModelSpec("soul", "image", "higgsfield", MappingProxyType({"text-to-image": "higgsfield-ai/soul/standard"}),
              "docs/providers.md (Higgsfield) and " + SPEC_OVERVIEW, 6, IMAGE_RATIOS + ("21:9",)),
    # --- image: editing -------------------------------------------------------------------------
    _fal("nano-banana-pro/edit", "image", {"edit": "fal-ai/nano-banana-pro/edit"}, 15, ratios=IMAGE_RATIOS,
         images="image_urls"),
    _fal("nano-banana-2/edit", "image", {"edit": "fal-ai/nano-banana-2/edit"}, 8, ratios=IMAGE_RATIOS,
         images="image_urls"),
    _fal("phota/edit", "image", {"edit": "fal-ai/phota/edit"}, 4, ratios=IMAGE_RATIOS),
    _fal("phota/enhance", "image", {"edit": "fal-ai/phota/enhance"}, 4, ratios=IMAGE_RATIOS),
    _fal("grok-imagine-image/edit", "image", {"edit": "xai/grok-imagine-image/edit"}, 7, ratios=IMAGE_RATIOS),
    _fal("seedream-v4.5/edit", "image", {"edit": "fal-ai/bytedance/seedream/v4.5/edit"}, 4, ratios=IMAGE_RATIOS,
         images="image_urls"),
    _fal("qwen-angles", "image", {"edit": "fal-ai/qwen-image-edit-2509-lora-gallery/multiple-angles"}, 4,
         ratios=IMAGE_RATIOS, images="image_urls"),
    # --- image: upscale and background removal --------------------------------------------------
    _fal("seedvr", "image", {"upscale": "fal-ai/seedvr/upscale/image"}, 3),
    _fal("recraft-clarity", "image", {"upscale": "fal-ai/recraft/upscale/crisp"}, 4),
    _fal("clarity-upscaler", "image", {"upscale": "fal-ai/clarity-upscaler"}, 3),
    _fal("topaz", "image", {"upscale": "fal-ai/topaz/upscale/image"}, 8, delisted=TOPAZ_DELISTED),
    _fal("ccsr", "image", {"upscale": "fal-ai/ccsr"}, 2),
    _fal("aura-sr", "image", {"upscale": "fal-ai/aura-sr"}, 1),
    ModelSpec("background-remover", "image", "replicate",
              MappingProxyType({"background-removal": "851-labs/background-remover"}),
              "replicate.com/851-labs/background-remover; provider from " + SPEC_OVERVIEW, 1),
    # --- video: generation ----------------------------------------------------------------------
    _kling("kling-v3", "v3/pro", 50, tuple(range(3, 16))),
    _kling("kling-v3-standard", "v3/standard", 30, tuple(range(3, 16))),
    ModelSpec("seedance-2-preview", "video", "piapi", MappingProxyType({
        "text-to-video": "seedance-2-preview", "image-to-video": "seedance-2-preview",
        "video-edit": "seedance-2-preview"}), "docs/providers.md (PiAPI task_type)", 60, WIDE_VIDEO_RATIOS, (5, 10, 15)),
    ModelSpec("seedance-2-fast-preview", "video", "piapi", MappingProxyType({
        "text-to-video": "seedance-2-fast-preview", "image-to-video": "seedance-2-fast-preview"}),
        "docs/providers.md (PiAPI task_type)", 35, WIDE_VIDEO_RATIOS, (5, 10, 15)),
    _t2v_i2v("sora-2", "fal-ai/sora-2", 40, ratios=VIDEO_RATIOS),
    _t2v_i2v("sora-2-pro", "fal-ai/sora-2", 100, t2v="text-to-video/pro", i2v="image-to-video/pro", ratios=VIDEO_RATIOS),
    _t2v_i2v("wan-2.5", "fal-ai/wan-25-preview", 25),
    _t2v_i2v("wan-2.5-preview", "fal-ai/wan-25-preview", 25),
    _fal("minimax", "video", {"text-to-video": "fal-ai/minimax/video-01",
                              "image-to-video": "fal-ai/minimax/video-01/image-to-video"}, 25, ratios=WIDE_VIDEO_RATIOS),
    _t2v_i2v("ltx-2-19b-distilled", "fal-ai/ltx-2-19b/distilled", 10),
    _fal("ltx", "video", {"text-to-video": "fal-ai/ltx-video", "image-to-video": "fal-ai/ltx-video/image-to-video"}, 5,
         ratios=WIDE_VIDEO_RATIOS),
    _t2v_i2v("grok-imagine", "xai/grok-imagine-video", 30),
    # --- video: editing and motion control ------------------------------------------------------
    _fal("grok-imagine-edit", "video", {"video-edit": "xai/grok-imagine-video/edit-video"}, 30),
    _fal("sora-2-remix", "video", {"video-edit": "fal-ai/sora-2/video-to-video/remix"}, 40),
    _fal("kling-v2.6-motion", "video", {"motion-control": "fal-ai/kling-video/v2.6/pro/motion-control"}, 40),
    # --- video: lipsync -------------------------------------------------------------------------
    _fal("veed-fabric-1.0", "video", {"lipsync": "veed/fabric-1.0"}, 30),
    _fal("sync-v2", "video", {"lipsync": "fal-ai/sync-lipsync/v2"}, 20),
    _fal("sync-v2-pro", "video", {"lipsync": "fal-ai/sync-lipsync/v2/pro"}, 35),
    _fal("omnihuman-v1.5", "video", {"lipsync": "fal-ai/bytedance/omnihuman/v1.5"}, 40),
    _fal("omnihuman", "video", {"lipsync": "fal-ai/bytedance/omnihuman"}, 35),
    # --- video: upscale -------------------------------------------------------------------------
    _fal("seedvr-video", "video", {"video-upscale": "fal-ai/seedvr/upscale/video"}, 20),
    _fal("topaz-video", "video", {"video-upscale": "fal-ai/topaz/upscale/video"}, 40, delisted=TOPAZ_DELISTED),
    _fal("bytedance-upscaler", "video", {"video-upscale": "fal-ai/bytedance-upscaler/upscale/video"}, 20),
    # fal never published `simalabs/sima-video-upscaler`; its published id is …-lite
    _fal("sima-video-upscaler", "video", {"video-upscale": "simalabs/sima-video-upscaler-lite"}, 20),
    # --- video: legacy Kling --------------------------------------------------------------------
    _kling("kling-v2.6", "v2.6/pro", 35, (5, 10), legacy=True),
    _kling("kling-v2.5", "v2.5-turbo/pro", 35, (5, 10), legacy=True),
    _kling("kling-v2.1", "v2.1/master", 60, (5, 10), legacy=True),
    _kling("kling-v2", "v2/master", 60, (5, 10), legacy=True),
    # --- speech, music, transcription -----------------------------------------------------------
    *(ModelSpec(name, "speech", "elevenlabs", MappingProxyType({"tts": name}), "docs/providers.md (ElevenLabs model_id)",
                price) for name, price in (("eleven_v3", 3), ("eleven_multilingual_v2", 3), ("eleven_flash_v2_5", 2),
                                           ("eleven_turbo_v2", 2))),
    ModelSpec("music_v1", "music", "elevenlabs", MappingProxyType({"music": "music_v1"}),
              "docs/providers.md (ElevenLabs /v1/music)", 10),
    _fal("whisper", "transcription", {"transcription": "fal-ai/whisper"}, 1),
)

BY_NAME: Mapping[str, ModelSpec] = MappingProxyType({m.name: m for m in MODELS})
PROVIDERS = ("fal", "replicate", "elevenlabs", "higgsfield", "piapi")


def get(name: str) -> ModelSpec:
    return BY_NAME[name]


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
