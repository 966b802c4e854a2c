"""gengate.sim.schema: a provider's validation of a request against its published schema, with the
errors in pydantic v2's 422 shape (what fal's and ElevenLabs' FastAPI apps answer)."""

from __future__ import annotations

from gengate.config.schemas import published
from gengate.sim.schema import unknown_fields, validate

SCHEMA = {
    "type": "object",
    "properties": {
        "prompt": {"type": "string"},
        "duration": {"type": "string", "enum": ["5", "10"]},
        "image_urls": {"type": "array", "items": {"type": "string"}},
        "image_size": {"anyOf": [{"type": "object", "properties": {"width": {"type": "number"}}},
                                 {"type": "string", "enum": ["square_hd", "landscape_16_9"]}]},
        "sync_mode": {"type": "boolean"},
        "seed": {"type": "number"},
    },
    "required": ["prompt"],
}


def test_a_valid_body_has_no_errors():
    assert validate(SCHEMA, {"prompt": "x", "duration": "5", "image_urls": ["https://a/b.png"],
                             "image_size": {"width": 512}, "sync_mode": False, "seed": 3}) == []
    assert validate(SCHEMA, {"prompt": "x", "image_size": "square_hd"}) == []


def test_each_kind_of_error_names_its_field():
    got = validate(SCHEMA, {"duration": 5, "image_urls": ["ok", 7], "image_size": "huge", "sync_mode": 1,
                            "seed": True})
    assert {(tuple(e["loc"]), e["type"]) for e in got} == {
        (("body", "prompt"), "missing"),
        (("body", "duration"), "enum"),
        (("body", "image_urls", 1), "string_type"),
        (("body", "image_size"), "enum"),
        (("body", "sync_mode"), "bool_type"),
        (("body", "seed"), "float_type"),
    }
    enum = next(e for e in got if e["loc"] == ["body", "duration"])
    assert enum["msg"] == "Input should be '5' or '10'" and enum["input"] == 5


def test_a_body_that_is_not_an_object_is_refused():
    assert validate(SCHEMA, ["prompt"]) == [{"loc": ["body"], "msg": "Input should be a valid dictionary",
                                            "type": "dict_type", "input": ["prompt"]}]


def test_unknown_fields_are_accepted_but_listed():
    body = {"prompt": "x", "aspect_ratio": "16:9", "image_url": "https://a/b.png"}
    assert validate(SCHEMA, body) == []
    assert unknown_fields(SCHEMA, body) == ["aspect_ratio", "image_url"]


def test_a_vendored_schema_refuses_what_fal_refuses():
    """kling v3's image-to-video needs `start_image_url`, and its durations are strings."""
    schema = published("fal", "fal-ai/kling-video/v3/pro/image-to-video")["input"]
    assert validate(schema, {"prompt": "x", "start_image_url": "https://a/b.png", "duration": "5"}) == []
    got = validate(schema, {"prompt": "x", "image_url": "https://a/b.png", "duration": 5})
    assert {(tuple(e["loc"]), e["type"]) for e in got} == {(("body", "start_image_url"), "missing"),
                                                           (("body", "duration"), "enum")}


def test_ranges_are_checked_where_a_schema_publishes_them():
    """`minimum` / `maximum` (Replicate's published ranges; fal's generated schemas have none)."""
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 4},
                                               "s": {"type": "number", "maximum": 1}}}
    assert validate(schema, {"n": 1, "s": 0.5}) == [] and validate(schema, {"n": 4, "s": -3}) == []
    got = validate(schema, {"n": 5, "s": 1.5})
    assert [(e["loc"], e["type"], e["limit"]) for e in got] == [
        (["body", "n"], "less_than_equal", 4), (["body", "s"], "less_than_equal", 1)]
    assert validate(schema, {"n": 0})[0]["msg"] == "Input should be greater than or equal to 1"
    assert validate(schema, {"n": True})[0]["type"] == "int_type"  # a boolean is not a number to compare
