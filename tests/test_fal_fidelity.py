"""Every fal model x mode of the catalog, checked against fal's published input schema
(config/schemas/fal, vendored from fal-ai/fal-js by tools/vendor_fal_schemas.py).

For each combination, the requests a user may send (every parameter the catalog allows for the mode
set, each of its aspect ratios and durations at least once, the files that select the mode, the
provider_options it requires) go through the fal adapter's `payload()`, and each payload is validated
the way fal validates it (gengate.sim.schema). A payload is wrong when fal would refuse it (a
required field missing, a wrong type, a value outside an enum) or when a user's parameter went to a
field the endpoint does not have (fal accepts and ignores it: the user's choice silently dropped).
The pipeline-level contract (tests/test_contract.py) sends the same requests through the real API,
worker and simulator.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

import pytest

from gengate.adapters.base import ProviderRequest
from gengate.adapters.fal import payload
from gengate.config.catalog import MODELS, ModelSpec
from gengate.config.schemas import published
from gengate.sim.schema import unknown_fields, validate

FILES = {"image": "https://files.example.test/in.png", "video": "https://files.example.test/in.mp4",
         "audio": "https://files.example.test/in.mp3"}
# The gateway's request fields that must reach the provider when set.
USER_FIELDS = ("prompt", "aspect_ratio", "duration", "language", "num_frames", "image_size", "video_size")


def fal_modes() -> list[tuple[ModelSpec, str]]:
    return [(spec, mode) for spec in MODELS if spec.provider == "fal" for mode in spec.modes]


def user_requests(spec: ModelSpec, mode: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(params, provider_options) a user may send for this mode: every parameter it takes set, each
    aspect ratio and each duration at least once."""
    rules = spec.parameters(mode)
    options = {name: f"{name}-from-an-earlier-job" for name in rules["required_provider_options"]}
    if mode == "transcription":
        return [({"audio_url": FILES["audio"], "language": "en"}, options)]
    base: dict[str, Any] = {"files": [FILES[kind if kind != "visual" else "video"] for kind in spec.kinds(mode)]}
    # the spec's request always carries a prompt; an endpoint without one gets it empty
    base["prompt"] = "a red fox running through snow" if rules["prompt"] else ""
    durations = rules["durations"] or ([5] if rules["duration"] else [])
    out = []
    for ratio, seconds in zip_longest(rules["aspect_ratios"] or [None], durations or [None]):
        params = dict(base)
        if ratio is not None:
            params["aspect_ratio"] = ratio
        if seconds is not None:
            params["duration"] = seconds
        out.append((params, options))
    return out


def problems(spec: ModelSpec, mode: str) -> list[str]:
    endpoint = spec.endpoints[mode]
    record = published("fal", endpoint)
    if record is None:
        return ["no published schema"]
    found = []
    for params, options in user_requests(spec, mode):
        body = payload(ProviderRequest(job_id="job_x", model=spec.name, capability=spec.capability, mode=mode,
                                       endpoint=endpoint, params=params, options=options))
        found += [f"refused: {'.'.join(map(str, e['loc'][1:]))} {e['type']} ({body})"
                  for e in validate(record["input"], body)]
        found += [f"dropped: {field} ({body})" for field in unknown_fields(record["input"], body)
                  if field in USER_FIELDS or field.endswith("_url") or field.endswith("_urls")]
    return found


@pytest.mark.parametrize("spec,mode", fal_modes(), ids=lambda v: v if isinstance(v, str) else v.name)
def test_every_fal_payload_is_what_the_endpoint_takes(spec: ModelSpec, mode: str):
    assert problems(spec, mode) == []


def test_every_parameter_a_user_sets_reaches_a_field():
    """The other half: nothing the user set was left out of the payload (each parameter the mode
    takes ends up in the body under some field)."""
    for spec, mode in fal_modes():
        for params, options in user_requests(spec, mode):
            body = payload(ProviderRequest(job_id="job_x", model=spec.name, capability=spec.capability, mode=mode,
                                           endpoint=spec.endpoints[mode], params=params, options=options))
            sent = str(body)
            for name, value in params.items():
                values = value if isinstance(value, list) else [value]
                for v in values:
                    assert str(v) in sent or (name == "aspect_ratio") or (name == "duration"), (spec.name, mode, name)
            if "aspect_ratio" in params:
                assert any(k in body for k in ("aspect_ratio", "image_size", "video_size")), (spec.name, mode)
            if "duration" in params:
                assert "duration" in body or "num_frames" in body, (spec.name, mode)
            for name in options:
                assert body[name] == options[name]
