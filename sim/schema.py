"""Request validation as a provider does it, against its vendored published schema
(`gengate.config.schemas`, JSON Schema made from the provider's own published types).

`validate(schema, body)` returns the errors in the shape pydantic v2 (which serves fal's and
ElevenLabs' FastAPI apps) gives in a 422's `detail` list: `{"loc": ["body", ...], "msg", "type"}`.
Unknown fields are not errors (the providers accept and ignore them); `unknown_fields` lists them,
so a test can see that a user's parameter reached the provider in a field the endpoint does not have.

Only the JSON Schema the vendoring script writes is understood: type, enum, anyOf, properties,
required, items, $ref into $defs; and `minimum` / `maximum`, which the hand-transcribed Replicate
schemas carry (fal's generated ones never do).
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

_TYPE_ERRORS = {
    "string": ("string_type", "Input should be a valid string"),
    "number": ("float_type", "Input should be a valid number"),
    "integer": ("int_type", "Input should be a valid integer"),
    "boolean": ("bool_type", "Input should be a valid boolean"),
    "array": ("list_type", "Input should be a valid list"),
    "object": ("dict_type", "Input should be a valid dictionary"),
    "null": ("none_required", "Input should be None"),
}


def _is(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "null":
        return value is None
    return True


def _resolve(schema: JSON, root: JSON) -> JSON:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _resolve(root.get("$defs", {}).get(ref.split("/", 2)[2], {}), root)
    return schema


def _enum_message(options: list[Any]) -> str:
    shown = [repr(o) if isinstance(o, str) else str(o) for o in options]
    if len(shown) == 1:
        return f"Input should be {shown[0]}"
    return f"Input should be {', '.join(shown[:-1])} or {shown[-1]}"


def errors(schema: JSON, value: Any, loc: list[Any], root: JSON | None = None) -> list[JSON]:
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        branches = [errors(option, value, loc, root) for option in schema["anyOf"]]
        if any(not found for found in branches):
            return []
        # pydantic reports every branch's errors; those of a branch of the value's own type say what is wrong
        type_errors = {kind for kind, _ in _TYPE_ERRORS.values()}
        return min(branches, key=lambda found: (any(e["loc"] == loc and e["type"] in type_errors for e in found),
                                                len(found)))
    if "enum" in schema:
        options = schema["enum"]
        # `True in [1]` holds in Python; JSON keeps booleans and numbers apart
        if value not in options or (isinstance(value, bool) and not any(o is value for o in options)):
            return [{"loc": loc, "msg": _enum_message(options), "type": "enum", "input": value}]
        return []
    kind = schema.get("type")
    if isinstance(kind, str) and not _is(kind, value):
        error_type, message = _TYPE_ERRORS.get(kind, ("type_error", f"Input should be of type {kind}"))
        return [{"loc": loc, "msg": message, "type": error_type, "input": value}]
    found: list[JSON] = []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # pydantic's words for `ge` / `le` (Replicate's, gojsonschema's, are given by sim.replicate)
        if "minimum" in schema and value < schema["minimum"]:
            found.append({"loc": loc, "msg": f"Input should be greater than or equal to {schema['minimum']}",
                          "type": "greater_than_equal", "input": value, "limit": schema["minimum"]})
        if "maximum" in schema and value > schema["maximum"]:
            found.append({"loc": loc, "msg": f"Input should be less than or equal to {schema['maximum']}",
                          "type": "less_than_equal", "input": value, "limit": schema["maximum"]})
    if kind == "object" and isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                found.append({"loc": [*loc, name], "msg": "Field required", "type": "missing"})
        for name, item in value.items():
            if name in properties:
                found += errors(properties[name], item, [*loc, name], root)
    if kind == "array" and isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(schema["items"], item, [*loc, i], root)
    return found


def validate(schema: JSON, body: Any) -> list[JSON]:
    """The 422 `detail` list for `body` against an endpoint's input schema; empty when valid."""
    return errors(schema, body, ["body"])


def unknown_fields(schema: JSON, body: JSON) -> list[str]:
    """Top-level fields of `body` that the endpoint's input schema does not have."""
    properties = _resolve(schema, schema).get("properties", {})
    return sorted(name for name in body if name not in properties)


def example(schema: JSON, name: str = "", known: JSON | None = None, root: JSON | None = None) -> Any:
    """A value that `schema` takes, for a field called `name`: `known[name]` when it fits, else the
    schema's default, else the first enum value, else a plain value of its type (an object gets its
    required fields). Used by simulators to give every output field its published shape."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    known = known or {}
    if name in known and not errors(schema, known[name], [], root):
        return known[name]
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example(schema["anyOf"][0], name, known, root)
    kind = schema.get("type")
    if kind == "object":
        return {field: example(schema.get("properties", {}).get(field, {}), field, known, root)
                for field in schema.get("required", [])}
    return {"string": "", "number": 0, "integer": 0, "boolean": False, "array": []}.get(kind)


def conform(schema: JSON, value: JSON, known: JSON | None = None) -> JSON:
    """`value` with every field the (object) schema requires and lacks filled in by `example`, and
    the fields the schema does not have left out (a simulator's output in its published shape)."""
    properties = schema.get("properties")
    if not properties:
        return value
    out = {k: v for k, v in value.items() if k in properties}
    for field in schema.get("required", []):
        if field not in out:
            out[field] = example(properties.get(field, {}), field, known, schema)
    return out
