"""Request and response bodies of the spec's endpoints (field names exactly as `spec/`).

The response models document what the routes send (most routes write their JSON themselves, so the
models are not what serializes it). A field the API leaves out when it has no value is typed
`X | Omitted = None`: optional, and not nullable in /openapi.json, since the API never sends it as
null. A field the API does send as null (`next_cursor` on the last page, an unknown probe figure)
is `X | None` and required: always present, possibly null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from gengate.config.catalog import CAPABILITIES, MODELS, PASSTHROUGH_IDS, PRICE_UNITS, PROVIDERS, ROUTES
from gengate.jobs.record import MEDIA_CAPABILITY

# `None` in Python only: absent from the JSON answer, so absent from its schema's types.
Omitted = SkipJsonSchema[None]

WEBHOOK_EVENTS = ("progress", "completed", "failed")
VOICES = ("rachel", "domi", "sarah", "antoni", "elli", "josh", "arnold", "adam", "sam")


class FileRef(BaseModel):
    url: str = Field(min_length=1, max_length=4096, description="URL of the input file")


class _JobOptions(BaseModel):
    """What every job-creating request may carry besides its own fields."""

    model_config = ConfigDict(extra="ignore")
    webhook_url: str | None = Field(
        default=None, max_length=2048, validation_alias=AliasChoices("webhook_url", "webhookUrl"),
        description="Receives signed POSTs (Standard Webhooks) when the job changes",
    )
    webhook_events: list[Literal[WEBHOOK_EVENTS]] | None = Field(  # type: ignore[valid-type]
        default=None, max_length=3, validation_alias=AliasChoices("webhook_events", "webhookEvents"),
        description="Events to deliver: progress, completed, failed (default completed and failed)",
    )


class _Request(_JobOptions):
    model: str = Field(min_length=1, max_length=200)
    provider_options: dict[str, Any] | None = Field(default=None, description="Passed to the provider untouched")
    # Routing (gengate additions; api/routing.py)
    provider_order: list[Literal[PROVIDERS]] | None = Field(  # type: ignore[valid-type]
        default=None, min_length=1, max_length=len(PROVIDERS),
        description="The providers this job may run on, in this order, among those the model's routing allows "
                    "(a gengate addition). Not with a pinned `provider:model`")
    allow_pooled_fallback: bool = Field(
        default=False, strict=True, description="A job on your own provider key (BYOK) may fall back to another provider on "
                                   "the gateway's pooled key, billed as any pooled job (a gengate addition)")


def _model_field(capability: str) -> Any:
    """`model` with the values its endpoint accepts listed (bare, or `provider:` prefixed) in the
    OpenAPI document, not just a string, so a client (or a fuzzer) knows which: the catalog's names,
    or a provider's endpoint id (passthrough) in exactly the shape api/resolve.py accepts
    (config/catalog.py PASSTHROUGH_IDS), so that what the document calls valid is what resolves. The
    catalog check stays the one that refuses, with messages saying where a model belongs instead."""
    names = [m.name for m in MODELS if m.capability == capability]
    names += [f"{r.provider}:{r.name}" for m in MODELS if m.capability == capability for r in ROUTES[m.name]]
    ids = [{"pattern": f"^{provider}:{pattern}$", "description": f"Any {provider} endpoint by id (passthrough)"}
           for provider, pattern in PASSTHROUGH_IDS.items()]
    return Field(min_length=1, max_length=200, json_schema_extra={"anyOf": [{"enum": names}, *ids]})


# The request examples of the reference documents (spec/gateway-openapi.yaml and the newer image and
# video endpoint pages), shown at /docs; tests/test_docs.py fails if one is missing.
_IMAGE_EXAMPLES = [
    {"model": "flux-schnell", "prompt": "sunset over mountains, dramatic lighting", "aspect_ratio": "16:9"},
    {"model": "flux-pro", "prompt": "a minimalist logo design, geometric shapes, blue and white gradient",
     "aspect_ratio": "1:1"},
    {"model": "flux-schnell", "prompt": "sunset over mountains, dramatic lighting, photorealistic",
     "aspect_ratio": "16:9"},
    {"model": "nano-banana-pro",
     "prompt": "professional headshot of a woman in a modern office, natural lighting, shallow depth of field",
     "aspect_ratio": "1:1"},
    {"model": "nano-banana-pro/edit", "prompt": "change the shirt color to bright red",
     "files": [{"url": "https://example.com/portrait.jpg"}]},
    {"model": "recraft-v3",
     "prompt": "flat vector illustration of a coffee shop storefront, warm colors, clean lines",
     "aspect_ratio": "1:1"},
    {"model": "phota", "prompt": "product photo of a ceramic mug on a wooden table, morning light, steam rising",
     "aspect_ratio": "4:3"},
    {"model": "phota/edit", "prompt": "remove the background and replace with a clean white studio",
     "files": [{"url": "https://example.com/product.jpg"}]},
    {"model": "grok-imagine-image", "prompt": "a medieval castle perched on a cliff overlooking a stormy sea",
     "aspect_ratio": "16:9"},
    {"model": "qwen-angles", "prompt": "generate multiple angles of this product",
     "files": [{"url": "https://example.com/product.jpg"}]},
    {"model": "soul", "prompt": "a cyberpunk street scene at night, neon reflections on wet pavement",
     "aspect_ratio": "16:9"},
    {"model": "seedvr", "prompt": "", "files": [{"url": "https://example.com/low-res-photo.jpg"}]},
    {"model": "topaz", "prompt": "", "files": [{"url": "https://example.com/low-res-photo.jpg"}]},
]

_VIDEO_EXAMPLES = [
    {"model": "kling-v3", "prompt": "cinematic shot of ocean waves crashing on rocky cliffs at golden hour",
     "duration": 5, "aspect_ratio": "16:9"},
    {"model": "kling-v2.5", "prompt": "cat jumping over a fence in slow motion", "duration": 5,
     "aspect_ratio": "16:9"},
    {"model": "kling-v2.5", "prompt": "cat turns and looks at camera", "duration": 5,
     "files": [{"url": "https://example.com/cat.jpg"}]},
    {"model": "kling-v3", "prompt": "slow camera push-in, the subject blinks and smiles", "duration": 5,
     "files": [{"url": "https://example.com/portrait.jpg"}]},
    {"model": "kling-v3", "prompt": "smooth transition from day to night", "duration": 5,
     "files": [{"url": "https://example.com/day-scene.jpg"}, {"url": "https://example.com/night-scene.jpg"}]},
    {"model": "kling-v3-standard", "prompt": "a paper airplane floating through a sunlit classroom", "duration": 8,
     "aspect_ratio": "16:9"},
    {"model": "seedance-2-preview", "prompt": "a golden retriever running through autumn leaves in slow motion",
     "duration": 5, "aspect_ratio": "16:9"},
    {"model": "seedance-2-preview", "prompt": "@image1 the woman turns to face the camera and smiles", "duration": 5,
     "files": [{"url": "https://example.com/portrait.jpg"}]},
    {"model": "seedance-2-fast-preview", "prompt": "aerial drone shot over a tropical island with turquoise water",
     "duration": 10, "aspect_ratio": "16:9"},
    {"model": "sora-2", "prompt": "a chef preparing sushi in a high-end restaurant, cinematic lighting",
     "duration": 5, "aspect_ratio": "16:9"},
    {"model": "sora-2", "prompt": "the scene slowly comes to life with gentle wind and moving clouds", "duration": 5,
     "files": [{"url": "https://example.com/landscape.jpg"}]},
    {"model": "sora-2-remix", "prompt": "transform into an anime art style with vibrant colors",
     "files": [{"url": "https://example.com/original.mp4"}]},
    {"model": "wan-2.5", "prompt": "a dancer performing contemporary dance in an empty warehouse, dramatic shadows",
     "duration": 5, "aspect_ratio": "9:16"},
    {"model": "minimax", "prompt": "a cat sitting on a windowsill watching rain fall outside", "duration": 5,
     "aspect_ratio": "16:9"},
    {"model": "ltx-2-19b-distilled", "prompt": "abstract colorful particles flowing through space", "duration": 5,
     "aspect_ratio": "16:9"},
    {"model": "grok-imagine", "prompt": "a steam train crossing a stone bridge over a misty valley", "duration": 5,
     "aspect_ratio": "16:9"},
    {"model": "grok-imagine-edit", "prompt": "change the background to a tropical beach at sunset",
     "files": [{"url": "https://example.com/original.mp4"}]},
    {"model": "veed-fabric-1.0", "prompt": "",
     "files": [{"url": "https://example.com/talking-head.mp4"}, {"url": "https://example.com/narration.mp3"}]},
    {"model": "sync-v2", "prompt": "",
     "files": [{"url": "https://example.com/talking-head.mp4"}, {"url": "https://example.com/narration.mp3"}]},
    {"model": "omnihuman-v1.5", "prompt": "",
     "files": [{"url": "https://example.com/portrait.jpg"}, {"url": "https://example.com/speech.mp3"}]},
    {"model": "seedvr-video", "prompt": "", "files": [{"url": "https://example.com/low-res-video.mp4"}]},
    {"model": "topaz-video", "prompt": "", "files": [{"url": "https://example.com/low-res-video.mp4"}]},
]

_SPEECH_EXAMPLES = [
    {"model": "eleven_multilingual_v2", "text": "Hello everyone! Welcome to my channel.", "voice": "rachel"},
]

_MUSIC_EXAMPLES = [
    {"model": "music_v1", "prompt": "upbeat electronic pop, energetic", "duration": 30},
]

_TRANSCRIPTION_EXAMPLES = [
    {"model": "whisper", "audio_url": "https://example.com/audio.mp3"},
]


class ImageRequest(_Request):
    model: str = _model_field("image")
    prompt: str = Field(max_length=20000)
    aspect_ratio: str | None = None
    files: list[FileRef] | None = Field(default=None, max_length=8)

    model_config = ConfigDict(json_schema_extra={"examples": _IMAGE_EXAMPLES})


class VideoRequest(ImageRequest):
    model: str = _model_field("video")
    duration: float | None = Field(default=None, gt=0, le=600)

    model_config = ConfigDict(json_schema_extra={"examples": _VIDEO_EXAMPLES})


class SpeechRequest(_Request):
    model: str = _model_field("speech")
    text: str = Field(min_length=1, max_length=50000)
    voice: Literal[VOICES] = "rachel"  # type: ignore[valid-type]

    model_config = ConfigDict(json_schema_extra={"examples": _SPEECH_EXAMPLES})


class MusicRequest(_Request):
    model: str = _model_field("music")
    prompt: str = Field(max_length=5000)
    # The 3 s floor is documented here and enforced by the catalog check (api/submission.py), whose
    # message names the music range.
    duration: float | None = Field(default=None, gt=0, le=600, json_schema_extra={"minimum": 3})

    model_config = ConfigDict(json_schema_extra={"examples": _MUSIC_EXAMPLES})


class TranscriptionRequest(_Request):
    model: str = _model_field("transcription")
    audio_url: str = Field(min_length=1, max_length=4096)
    language: str | None = Field(default=None, max_length=16)

    model_config = ConfigDict(json_schema_extra={"examples": _TRANSCRIPTION_EXAMPLES})


class JobOutput(BaseModel):
    url: str
    media_type: str
    metadata: dict[str, Any] | Omitted = Field(default=None, description="Media jobs: segments, thumbnails, outputs")


class JobCache(BaseModel):
    hit: bool
    key: str | Omitted = Field(default=None, description="sha256:<hex> of the request, once known")


class JobResponse(BaseModel):
    job_id: str
    status: Literal["queued", "processing", "completed", "failed", "cancelled"]
    model: str
    created_at: str
    completed_at: str | Omitted = Field(default=None, description="When the job finished (completed, failed, "
                                        "or cancelled)")
    output: JobOutput | Omitted = Field(default=None, description="Present when status is completed")
    cache: JobCache | Omitted = None
    error: str | Omitted = Field(default=None, description="Present when status is failed")


class JobAttempt(BaseModel):
    """One provider's try at a job (issue 19's routing): those that ended without it, then the current."""

    provider: str
    endpoint: str = Field(description="The provider's endpoint id the attempt called")
    outcome: str = Field(description="Ended: refused, rate_limited, unreachable, not_sent, circuit_open or "
                         "failed (the job moved on). The current attempt: the job's status")
    status: int | None = Field(description="The provider's HTTP status, when it answered one")
    message: str | None
    started_at: str
    ended_at: str | None = Field(description="Null while the attempt runs")


class JobDetail(JobResponse):
    """GET /v1/jobs/{job_id}: the spec's job, plus what one job's page needs (gengate additions, on
    this endpoint only: the list, the stream and webhooks carry the spec's fields)."""

    capability: str = Field(description="image, video, speech, music, transcription, or media")
    provider: str = Field(description="The provider that runs the job (ffmpeg for media jobs)")
    mode: str = Field(description="The model's mode the request chose (text-to-image, edit, ...); empty for "
                      "single-mode models")
    byok: bool = Field(description="True when the job runs on the caller's own provider key")
    request: dict[str, Any] = Field(description="The request as the gateway validated it (prompt, parameters, "
                                    "file URLs); provider keys are never part of it")
    price_cents: int = Field(description="What the job was priced at when accepted: held from the balance "
                             "while it runs (0 for BYOK jobs and cache hits)")
    charged_cents: int | None = Field(description="What it cost once settled: the price, or 0 when released "
                                      "(failed, cancelled before the provider ran, shared a result); null while "
                                      "the hold is open")
    attempts: list[JobAttempt] = Field(description="Each provider's try, in order: one unless the job fell back")
    routes: list[str] = Field(description="The providers the job may still fall back to, in order")


class ErrorResponse(BaseModel):
    error: str
    message: str
    field: str | Omitted = Field(default=None, description="The field that caused the error, if applicable")
    provider: str | Omitted = Field(default=None, description="The upstream provider that returned the error, "
                                    "if applicable")
    statusCode: int


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {s: {"model": ErrorResponse} for s in statuses}


class FileUploadResponse(BaseModel):
    file_id: str
    url: str = Field(description="Stable URL for the uploaded file; pass it as `files[].url`")
    hash: str = Field(description="sha256:<hex> of the content")
    size: int
    media_type: str
    deduplicated: bool = Field(description="True if an existing file with the same hash was returned")


class JobListResponse(BaseModel):
    jobs: list[JobResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end")


# -- Account and reference ----------------------------------------------------------------------

class MeResponse(BaseModel):
    userId: str
    email: str | None = Field(description="The account's email; null when it has none")


class BalanceResponse(BaseModel):
    balance_cents: int = Field(description="Current balance in cents")
    currency: Literal["usd"]


class UsageRecord(BaseModel):
    job_id: str
    model: str = Field(description="provider:model")
    capability: Literal[(*CAPABILITIES, MEDIA_CAPABILITY)]  # type: ignore[valid-type]
    cost_cents: int = Field(description="Cost in cents: 0 for cache hits, BYOK jobs and jobs that shared "
                            "another's provider call")
    cache_hit: bool
    created_at: str = Field(description="When the job was created")
    completed_at: str | Omitted = Field(default=None, description="When it ended, which is the day the record "
                                        "and its cost count on (a gengate addition; absent on records written by "
                                        "versions before it)")


class UsageResponse(BaseModel):
    usage: list[UsageRecord] = Field(description="Completed jobs of the period (or of this page), oldest first")
    total_cents: int = Field(description="Total cost in cents of the whole period, on every page")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end, and "
                                    "always null when neither `limit` nor `cursor` was sent (a gengate addition)")


class Voice(BaseModel):
    voice_id: str
    name: str


class VoiceListResponse(BaseModel):
    voices: list[Voice]


class ModeParameters(BaseModel):
    aspect_ratios: list[str] = Field(description="The aspect ratios the mode takes; empty: none (a request "
                                                 "that sets one is a 400)")
    durations: list[int] = Field(description="The whole seconds the mode takes; empty: any, when `duration`")
    duration: bool = Field(description="Whether the mode takes a duration")
    prompt: bool = Field(description="Whether the mode takes a prompt (without one, send it empty)")
    required_provider_options: list[str] = Field(description="provider_options the mode requires")


class ModelPricing(BaseModel):
    """A model's unit price: a job costs max(minimum_cents, ceil(units × cents / per)) cents."""

    unit: Literal[PRICE_UNITS] = Field(  # type: ignore[valid-type]
        description="What the price counts: seconds of output (the request's `duration`), characters of a "
                    "speech's `text`, images made, or the job (flat)")
    cents: int = Field(description="Cents for every `per` units")
    per: int = Field(description="How many units `cents` buys (1,000 characters, 60 seconds, 1)")
    minimum_cents: int = Field(description="The least one job costs")
    default_units: int | None = Field(description="The units of a request that names none (the duration filled "
                                                  "in); null where the request always says (a speech's text)")


class ModelRoute(BaseModel):
    """One provider's route to a model: what a job of the model may run on (issue 19's routing)."""

    provider: str
    endpoints: dict[str, str] = Field(description="The provider's endpoint id for each mode")
    modes: list[str]
    price_cents: int = Field(description="The price of the default request on this route")
    pricing: ModelPricing
    pooled: bool = Field(description="True when the gateway's own provider key may run it; false: only jobs "
                                     "that bring their own key for this provider")
    delisted: bool
    source: str = Field(description="Where this route's endpoint ids (and their schemas) come from")


class ModelInfo(BaseModel):
    name: str
    capability: Literal[CAPABILITIES]  # type: ignore[valid-type]
    modes: list[str]
    provider: str
    inputs: dict[str, list[str]] = Field(description="The kinds of files each mode takes, in order")
    aspect_ratios: list[str]
    durations: list[int] = Field(description="Allowed whole seconds; empty: any duration")
    parameters: dict[str, ModeParameters] = Field(description="What a request in each mode may set")
    prompt_optional: list[str] = Field(description="The modes whose prompt may be empty")
    price_cents: int = Field(description="The price in cents of the model's default request (its default "
                                         "duration, one image, a short text); `pricing` prices any request")
    pricing: ModelPricing = Field(description="The unit price: what a job costs for the duration, text or "
                                              "images it asks for")
    legacy: bool
    delisted: bool = Field(description="Gone from the provider's published list: kept for compatibility, "
                                       "it may stop working whenever the provider stops serving it")
    source: str = Field(description="Where the provider's endpoint ids (and their schemas) come from")
    providers: list[ModelRoute] = Field(description="Every provider that serves the model, in the catalog's "
                                        "order (a gengate addition); `provider` and the fields above are the first's")


class ModelListResponse(BaseModel):
    models: list[ModelInfo]


# -- Media Processing (FFmpeg) ------------------------------------------------------------------

URL = Field(min_length=1, max_length=4096)


class ProbeRequest(BaseModel):
    url: str = URL

    model_config = ConfigDict(json_schema_extra={"examples": [{"url": "https://example.com/clip.mp4"}]})


class ProbeResponse(BaseModel):
    duration: float | None
    width: int | None
    height: int | None
    codec: str | None
    audio_codec: str | None
    format: str | None
    bitrate: int | None
    fps: float | None
    size_bytes: int | None


class TrimRequest(_JobOptions):
    url: str = URL
    start: float = Field(default=0.0, ge=0, le=86400)
    end: float | None = Field(default=None, gt=0, le=86400)
    duration: float | None = Field(default=None, gt=0, le=86400)
    precise: bool = Field(default=False, description="Re-encode for frame-exact cuts (else stream copy, cut at keyframes)")

    model_config = ConfigDict(json_schema_extra={"examples": [{"url": "https://example.com/clip.mp4", "start": 1.5, "end": 4}]})


class ResizeRequest(_JobOptions):
    url: str = URL
    width: int = Field(ge=1, le=7680)
    height: int = Field(ge=1, le=7680)
    fit: Literal["cover", "contain", "stretch"] = "contain"

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"url": "https://example.com/clip.mp4", "width": 1080, "height": 1920, "fit": "cover"}]})


class SliceRange(BaseModel):
    start: float = Field(ge=0, le=86400)
    end: float = Field(gt=0, le=86400)


class SliceRequest(_JobOptions):
    video_url: str = URL
    codec: Literal["copy", "reencode"] = "copy"
    every: float | None = Field(default=None, gt=0, le=86400, description="Cut every N seconds")
    at: list[float] | None = Field(default=None, min_length=1, max_length=200, description="Cut at these seconds")
    count: int | None = Field(default=None, ge=1, le=200, description="Cut into N equal segments")
    ranges: list[SliceRange] | None = Field(default=None, min_length=1, max_length=200)
    thumbnails: bool = True

    model_config = ConfigDict(json_schema_extra={"examples": [{"video_url": "https://example.com/clip.mp4", "every": 2}]})


class CommandRequest(_JobOptions):
    command: str = Field(min_length=1, max_length=8192,
                         description="FFmpeg arguments with {{in_N}} / {{out_N}} placeholders; no shell")
    input_files: list[str] | dict[str, str] = Field(
        description="URLs: a list (in_1, in_2, ...) or an object keyed by placeholder name")
    output_files: list[str] | dict[str, str] = Field(
        description="Output file names (their extension picks the format): a list (out_1, ...) or an object")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "command": "-i {{in_1}} -vf scale=640:-2 -c:v libx264 -crf 28 {{out_1}}",
        "input_files": ["https://example.com/clip.mp4"], "output_files": ["small.mp4"]}]})
