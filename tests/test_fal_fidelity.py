"""Every fal model x mode of the catalog, checked against fal's published input schema
(config/schemas/fal, vendored from fal-ai/fal-js by tools/vendor_fal_schemas.py).

For each combination, the request a user would send (every parameter the catalog allows for it set,
the files that select the mode) goes through the fal adapter's `payload()`, and the payload is
validated the way fal validates it (gengate.sim.schema): refused (a required field missing, a wrong
type, a value outside an enum), a user's parameter dropped (sent in a field the endpoint does not
have, which fal accepts and ignores), no published schema, or ok.

`KNOWN` is the list of combinations that are not ok today, each with what is wrong. It is a ratchet:
a combination that becomes ok must leave the list, and a new problem fails the test. The catalog's
per-endpoint payload mapping empties it.
"""

from __future__ import annotations

from typing import Any

import pytest

from gengate.adapters.base import ProviderRequest
from gengate.adapters.fal import payload
from gengate.config.catalog import MODE_FILES, MODELS
from gengate.config.schemas import published
from gengate.sim.schema import unknown_fields, validate

FILES = {"image": "https://files.example.test/in.png", "video": "https://files.example.test/in.mp4",
         "audio": "https://files.example.test/in.mp3"}
# The gateway's request fields and the provider fields they become when the payload honours them.
USER_FIELDS = ("prompt", "aspect_ratio", "duration", "language")


def combinations() -> list[tuple[str, str, str, str]]:
    """(model, mode, visual kind for lipsync or "", endpoint) for every fal row."""
    out = []
    for spec in MODELS:
        if spec.provider != "fal":
            continue
        for mode, endpoint in spec.endpoints.items():
            visuals = ("image", "video") if "visual" in MODE_FILES[mode] else ("",)
            out += [(spec.name, mode, visual, endpoint) for visual in visuals]
    return out


def user_request(model: str, mode: str, visual: str) -> dict[str, Any]:
    """What a user sends for this combination: every parameter the catalog allows for it."""
    spec = next(s for s in MODELS if s.name == model)
    params: dict[str, Any] = {}
    if mode == "transcription":
        return {"audio_url": FILES["audio"], "language": "en"}
    params["prompt"] = "a red fox running through snow"
    if spec.aspect_ratios:
        params["aspect_ratio"] = spec.aspect_ratios[0]
    if spec.capability == "video" and mode not in ("video-upscale", "lipsync", "video-edit", "motion-control"):
        params["duration"] = spec.durations[0] if spec.durations else 5
    params["files"] = [FILES[visual or kind] if kind == "visual" else FILES[kind] for kind in MODE_FILES[mode]]
    return params


def outcome(model: str, mode: str, visual: str, endpoint: str) -> str:
    record = published("fal", endpoint)
    if record is None:
        return "no published schema"
    params = user_request(model, mode, visual)
    spec = next(s for s in MODELS if s.name == model)
    body = payload(ProviderRequest(job_id="job_x", model=model, capability=spec.capability, mode=mode,
                                   endpoint=endpoint, params=params))
    problems = [f"refused: {'.'.join(map(str, e['loc'][1:]))} {e['type']}" for e in validate(record["input"], body)]
    dropped = [f for f in unknown_fields(record["input"], body) if f in USER_FIELDS or f.endswith("_url")]
    problems += [f"dropped: {field}" for field in dropped]
    return "; ".join(problems) or "ok"


# What is wrong today, per combination: the catalog's payload mapping has not reached these rows.
KNOWN: dict[str, str] = {
    'aura-sr/upscale (fal-ai/aura-sr)':
        'dropped: prompt',
    'bytedance-upscaler/video-upscale (fal-ai/bytedance-upscaler/upscale/video)':
        'dropped: prompt',
    'ccsr/upscale (fal-ai/ccsr)':
        'dropped: prompt',
    'grok-imagine-image/edit/edit (xai/grok-imagine-image/edit)':
        'dropped: image_url',
    'kling-v2.1/image-to-video (fal-ai/kling-video/v2.1/master/image-to-video)':
        'dropped: aspect_ratio',
    'kling-v2.1/keyframes (fal-ai/kling-video/v2.1/master/image-to-video)':
        'dropped: aspect_ratio; dropped: tail_image_url',
    'kling-v2.5/image-to-video (fal-ai/kling-video/v2.5-turbo/pro/image-to-video)':
        'dropped: aspect_ratio',
    'kling-v2.5/keyframes (fal-ai/kling-video/v2.5-turbo/pro/image-to-video)':
        'dropped: aspect_ratio',
    'kling-v2.6-motion/motion-control (fal-ai/kling-video/v2.6/pro/motion-control)':
        'refused: character_orientation missing',
    'kling-v2.6/image-to-video (fal-ai/kling-video/v2.6/pro/image-to-video)':
        'refused: start_image_url missing; dropped: aspect_ratio; dropped: image_url',
    'kling-v2.6/keyframes (fal-ai/kling-video/v2.6/pro/image-to-video)':
        'refused: start_image_url missing; dropped: aspect_ratio; dropped: image_url; dropped: tail_image_url',
    'kling-v2/image-to-video (fal-ai/kling-video/v2/master/image-to-video)':
        'dropped: aspect_ratio',
    'kling-v2/keyframes (fal-ai/kling-video/v2/master/image-to-video)':
        'dropped: aspect_ratio; dropped: tail_image_url',
    'kling-v3-standard/image-to-video (fal-ai/kling-video/v3/standard/image-to-video)':
        'refused: start_image_url missing; dropped: aspect_ratio; dropped: image_url',
    'kling-v3-standard/keyframes (fal-ai/kling-video/v3/standard/image-to-video)':
        'refused: start_image_url missing; dropped: aspect_ratio; dropped: image_url; dropped: tail_image_url',
    'kling-v3/image-to-video (fal-ai/kling-video/v3/pro/image-to-video)':
        'refused: start_image_url missing; dropped: aspect_ratio; dropped: image_url',
    'kling-v3/keyframes (fal-ai/kling-video/v3/pro/image-to-video)':
        'refused: start_image_url missing; dropped: aspect_ratio; dropped: image_url; dropped: tail_image_url',
    'ltx-2-19b-distilled/image-to-video (fal-ai/ltx-2-19b/distilled/image-to-video)':
        'dropped: aspect_ratio; dropped: duration',
    'ltx-2-19b-distilled/text-to-video (fal-ai/ltx-2-19b/distilled/text-to-video)':
        'dropped: aspect_ratio; dropped: duration',
    'ltx/image-to-video (fal-ai/ltx-video/image-to-video)':
        'dropped: aspect_ratio; dropped: duration',
    'ltx/text-to-video (fal-ai/ltx-video)':
        'dropped: aspect_ratio; dropped: duration',
    'minimax/image-to-video (fal-ai/minimax/video-01/image-to-video)':
        'dropped: aspect_ratio; dropped: duration',
    'minimax/text-to-video (fal-ai/minimax/video-01)':
        'dropped: aspect_ratio; dropped: duration',
    'omnihuman-v1.5/lipsync/video (fal-ai/bytedance/omnihuman/v1.5)':
        'refused: image_url missing; dropped: video_url',
    'omnihuman/lipsync/image (fal-ai/bytedance/omnihuman)':
        'dropped: prompt',
    'omnihuman/lipsync/video (fal-ai/bytedance/omnihuman)':
        'refused: image_url missing; dropped: prompt; dropped: video_url',
    'phota/edit/edit (fal-ai/phota/edit)':
        'refused: image_urls missing; dropped: image_url',
    'phota/enhance/edit (fal-ai/phota/enhance)':
        'dropped: aspect_ratio; dropped: prompt',
    'qwen-angles/edit (fal-ai/qwen-image-edit-2509-lora-gallery/multiple-angles)':
        'dropped: aspect_ratio; dropped: prompt',
    'recraft-clarity/upscale (fal-ai/recraft/upscale/crisp)':
        'dropped: prompt',
    'seedream-v4.5/edit/edit (fal-ai/bytedance/seedream/v4.5/edit)':
        'dropped: aspect_ratio',
    'seedvr-video/video-upscale (fal-ai/seedvr/upscale/video)':
        'dropped: prompt',
    'seedvr/upscale (fal-ai/seedvr/upscale/image)':
        'dropped: prompt',
    'sima-video-upscaler/video-upscale (simalabs/sima-video-upscaler-lite)':
        'dropped: prompt',
    'sora-2-pro/image-to-video (fal-ai/sora-2/image-to-video/pro)':
        'refused: duration enum',
    'sora-2-pro/text-to-video (fal-ai/sora-2/text-to-video/pro)':
        'refused: duration enum',
    'sora-2-remix/video-edit (fal-ai/sora-2/video-to-video/remix)':
        'refused: video_id missing; dropped: video_url',
    'sora-2/image-to-video (fal-ai/sora-2/image-to-video)':
        'refused: duration enum',
    'sora-2/text-to-video (fal-ai/sora-2/text-to-video)':
        'refused: duration enum',
    'sync-v2-pro/lipsync/image (fal-ai/sync-lipsync/v2/pro)':
        'refused: video_url missing; dropped: image_url; dropped: prompt',
    'sync-v2-pro/lipsync/video (fal-ai/sync-lipsync/v2/pro)':
        'dropped: prompt',
    'sync-v2/lipsync/image (fal-ai/sync-lipsync/v2)':
        'refused: video_url missing; dropped: image_url; dropped: prompt',
    'sync-v2/lipsync/video (fal-ai/sync-lipsync/v2)':
        'dropped: prompt',
    'topaz-video/video-upscale (fal-ai/topaz/upscale/video)':
        'dropped: prompt',
    'veed-fabric-1.0/lipsync/image (veed/fabric-1.0)':
        'refused: resolution missing; dropped: prompt',
    'veed-fabric-1.0/lipsync/video (veed/fabric-1.0)':
        'refused: image_url missing; refused: resolution missing; dropped: prompt; dropped: video_url',
    'wan-2.5-preview/image-to-video (fal-ai/wan-25-preview/image-to-video)':
        'refused: duration enum; dropped: aspect_ratio',
    'wan-2.5-preview/text-to-video (fal-ai/wan-25-preview/text-to-video)':
        'refused: duration enum',
    'wan-2.5/image-to-video (fal-ai/wan-25-preview/image-to-video)':
        'refused: duration enum; dropped: aspect_ratio',
    'wan-2.5/text-to-video (fal-ai/wan-25-preview/text-to-video)':
        'refused: duration enum',
}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, str]:
    return {"/".join(filter(None, c[:3])) + f" ({c[3]})": outcome(*c) for c in combinations()}


def test_every_fal_combination_is_known(outcomes: dict[str, str]):
    problems = {k: v for k, v in outcomes.items() if v != "ok"}
    ok = len(outcomes) - len(problems)
    print(f"\n{ok} of {len(outcomes)} fal model x mode combinations send what fal takes as meant")
    for k, v in sorted(problems.items()):
        print(f"  {k}: {v}")
    assert problems == KNOWN
