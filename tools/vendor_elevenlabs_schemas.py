#!/usr/bin/env python3
"""Vendor ElevenLabs' published request schemas as JSON Schema files under config/schemas/elevenlabs/.

ElevenLabs publishes its API as an OpenAPI document; its official Python SDK, the `elevenlabs`
package, is generated from that document by Fern. This script reads the installed SDK (no network)
and writes, for each endpoint gengate's simulator serves, one file:

    config/schemas/elevenlabs/<endpoint id, "/" replaced by "__">.json
    {"provider": "elevenlabs", "endpoint": id, "source": "elevenlabs Python SDK <version>, generated
     from ElevenLabs' published OpenAPI", "commit": <version>, "commit_date": <date>, "delisted": false,
     "input": <JSON Schema 2020-12 of the JSON body>, "query": <JSON Schema of the query parameters>,
     "output": {}}

Run from the repository with the project's venv (the SDK gengate's adapter uses):

    .venv/bin/python tools/vendor_elevenlabs_schemas.py --date 2026-12-04

`--date` is the release date of the installed SDK when known, else the day the script was run (the
default): it is written as `commit_date`, so passing the recorded one regenerates the same bytes.

How the SDK becomes JSON Schema (anything outside this is refused with an error, so a change in the
generator shows up here rather than as a wrong schema):

- The wire names and where each parameter goes are read from the raw client's method source (`ast`):
  the `httpx_client.stream(...)`/`request(...)` call's path, its `params={...}` dict (query) and its
  `json={...}` dict (body), whose keys are the wire names (`sign_with_c2pa` for the parameter
  `sign_with_c_2_pa`) and whose values name the parameters.
- Types come from the method's type hints (`typing.get_type_hints`), required-ness from its signature
  (a parameter without a default is required), descriptions from its docstring's Parameters section.
- `str`, `int`, `float`, `bool` -> string, integer, number, boolean; `Sequence[T]`/`List[T]` -> array;
  `Dict[str, V]` -> object of V; `Any` -> {}.
- `Union[Literal[...], Any]` is Fern's "open" enum (the `Any` arm is client-side forward
  compatibility, so a newer server value does not break an older SDK): the OpenAPI enum is the
  literal list, written as {"type": "string", "enum": [...]}.
- `Optional[T]` on a body field -> {"anyOf": [T, {"type": "null"}]}: the SDK sends an explicit None as
  JSON null, and its types cannot tell "optional" from "nullable". On a query parameter it is just T
  (the SDK drops None query parameters; a query string has no null).
- A pydantic model (Fern's UncheckedBaseModel) -> an object with its fields under their wire aliases,
  "required" for fields without a default, attribute docstrings as descriptions,
  "additionalProperties": true when the model allows extra fields. Models are inlined.
- Ranges only where the SDK's documentation states them as a rule: "Must be [integer] between A and
  B" on a number -> minimum/maximum; "A maximum of N ... can be sent" / "up to N ... per request" on an
  array -> maxItems. No other limit is invented.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import importlib
import inspect
import json
import re
import sys
import textwrap
import types
import typing
from collections import abc
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "config" / "schemas" / "elevenlabs"
SCHEMA = "https://json-schema.org/draft/2020-12/schema"

#: endpoint id -> (raw client module, class, method). Only what gengate's adapter and simulator use.
ENDPOINTS: dict[str, tuple[str, str, str]] = {
    "text-to-speech": ("elevenlabs.text_to_speech.raw_client", "RawTextToSpeechClient", "convert"),
    "text-to-speech/stream": ("elevenlabs.text_to_speech.raw_client", "RawTextToSpeechClient", "stream"),
    "music": ("elevenlabs.music.raw_client", "RawMusicClient", "compose"),
}

RANGE = re.compile(r"[Mm]ust be (?:an? )?(?:integer |number )?between (-?\d+(?:\.\d+)?)\s*(?:ms)? and "
                   r"(-?\d+(?:\.\d+)?)\s*(?:ms)?")
MAX_ITEMS = (re.compile(r"[Aa] maximum of (\d+) \w+ can be sent"), re.compile(r"\b[Uu]p to (\d+) \w+ per request"))


class SchemaError(Exception):
    pass


def sdk_version() -> str:
    return metadata.version("elevenlabs")


def source_name(version: str) -> str:
    return f"elevenlabs Python SDK {version}, generated from ElevenLabs' published OpenAPI"


# -- reading the raw client's method ------------------------------------------------------------

def _param_of(node: ast.expr) -> str:
    """The parameter a body/query dict value reads: `seed` or `convert_and_respect_...(object_=x, ...)`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        for kw in node.keywords:
            if kw.arg == "object_" and isinstance(kw.value, ast.Name):
                return kw.value.id
    raise SchemaError(f"cannot tell which parameter {ast.unparse(node)} sends")


def _dict_of(node: ast.expr | None) -> dict[str, str]:
    if node is None:
        return {}
    if not isinstance(node, ast.Dict) or not all(isinstance(k, ast.Constant) for k in node.keys):
        raise SchemaError(f"expected a literal dict, got {ast.unparse(node)}")
    return {k.value: _param_of(v) for k, v in zip(node.keys, node.values)}  # type: ignore[union-attr]


def _path_of(node: ast.expr) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "/" + node.value.lstrip("/")
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            else:  # {jsonable_encoder(voice_id)}
                inner = value.value  # type: ignore[attr-defined]
                name = inner.args[0].id if isinstance(inner, ast.Call) else inner.id
                parts.append("{" + name + "}")
        return "/" + "".join(parts).lstrip("/")
    raise SchemaError(f"cannot read the path {ast.unparse(node)}")


def wire_layout(method: typing.Callable) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """(HTTP method, path template, query {wire: param}, body {wire: param}) of an SDK raw call."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr in ("stream", "request") and "httpx_client" in ast.unparse(n.func.value)]
    if len(calls) != 1:
        raise SchemaError(f"{method.__qualname__}: expected one httpx_client call, found {len(calls)}")
    call = calls[0]
    keywords = {kw.arg: kw.value for kw in call.keywords}
    verb = keywords.get("method")
    if not isinstance(verb, ast.Constant):
        raise SchemaError(f"{method.__qualname__}: no literal HTTP method")
    return (str(verb.value), _path_of(call.args[0]), _dict_of(keywords.get("params")),
            _dict_of(keywords.get("json")))


def docstring_params(doc: str | None) -> dict[str, str]:
    """The Parameters section of a numpydoc docstring: {name: description, whitespace collapsed}."""
    text = inspect.cleandoc(doc or "")
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\w[^\n]*\n-+\n|\Z)", text, re.M | re.S)
    if not match:
        return {}
    found: dict[str, str] = {}
    for name, body in re.findall(r"^(\w+) : [^\n]*\n((?:[ \t]+[^\n]*\n?|\n)*)", match.group(1), re.M):
        found[name] = " ".join(body.split())
    return found


def attribute_docs(cls: type) -> dict[str, str]:
    """Fern writes a model field's documentation as a string literal under the field."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for first, second in zip(body, body[1:]):
        if (isinstance(first, ast.AnnAssign) and isinstance(first.target, ast.Name)
                and isinstance(second, ast.Expr) and isinstance(second.value, ast.Constant)
                and isinstance(second.value.value, str)):
            docs[first.target.id] = " ".join(second.value.value.split())
    return docs


# -- types to JSON Schema -----------------------------------------------------------------------

def _is_model(tp: typing.Any) -> bool:
    import pydantic

    return inspect.isclass(tp) and issubclass(tp, pydantic.BaseModel)


def _literal_enum(options: list[typing.Any]) -> dict:
    values = list(dict.fromkeys(options))
    kinds = {type(v) for v in values}
    json_type = {str: "string", int: "integer", bool: "boolean", float: "number"}
    if len(kinds) != 1 or next(iter(kinds)) not in json_type:
        raise SchemaError(f"unsupported literal values {values!r}")
    return {"type": json_type[next(iter(kinds))], "enum": values}


class Converter:
    def __init__(self) -> None:
        self.stack: list[type] = []

    def convert(self, tp: typing.Any, nullable: bool = True) -> dict:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return self.convert(args[0], nullable)
        if tp is typing.Any:
            return {}
        if tp is type(None):
            return {"type": "null"}
        if origin is typing.Literal:
            return _literal_enum(list(args))
        if origin in (typing.Union, types.UnionType):
            return self.union(list(args), nullable)
        if tp is str:
            return {"type": "string"}
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer"}
        if tp is float:
            return {"type": "number"}
        if tp in (dt.datetime, dt.date):
            return {"type": "string"}
        if origin in (list, tuple, set, frozenset) or (inspect.isclass(origin) and issubclass(origin, abc.Sequence)
                                                       and origin is not str):
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                raise SchemaError(f"fixed tuples are not supported: {tp!r}")
            return {"type": "array", "items": self.convert(args[0], nullable) if args else {}}
        if origin is dict or (inspect.isclass(origin) and issubclass(origin, abc.Mapping)):
            value = self.convert(args[1], nullable) if len(args) == 2 else {}
            return {"type": "object", "additionalProperties": value if value else True}
        if _is_model(tp):
            return self.model(tp)
        raise SchemaError(f"unsupported type {tp!r}")

    def union(self, args: list[typing.Any], nullable: bool) -> dict:
        has_none = type(None) in args
        rest = [a for a in args if a is not type(None)]
        literals = [a for a in rest if typing.get_origin(a) is typing.Literal]
        if literals and all(a is typing.Any or typing.get_origin(a) is typing.Literal for a in rest):
            # Fern's open enum: Union[Literal[...], Any]
            schema = _literal_enum([v for lit in literals for v in typing.get_args(lit)])
        elif len(rest) == 1:
            schema = self.convert(rest[0], nullable)
        else:
            branches: list[dict] = []
            for arm in rest:
                sub = self.convert(arm, nullable)
                branches.extend(sub["anyOf"] if set(sub) == {"anyOf"} else [sub])
            schema = {"anyOf": branches}
        if has_none and nullable:
            if set(schema) == {"anyOf"}:
                return {"anyOf": [*schema["anyOf"], {"type": "null"}]}
            return {"anyOf": [schema, {"type": "null"}]}
        return schema

    def model(self, cls: type) -> dict:
        if cls in self.stack:
            raise SchemaError(f"recursive model {cls.__name__}: add $defs support to the script")
        self.stack.append(cls)
        try:
            docs = attribute_docs(cls)
            hints = typing.get_type_hints(cls, include_extras=True)
            properties: dict[str, dict] = {}
            required: list[str] = []
            for name, info in cls.model_fields.items():  # type: ignore[attr-defined]
                wire = info.alias or name
                for extra in typing.get_args(hints.get(name)) if typing.get_origin(hints.get(name)) \
                        is typing.Annotated else ():
                    wire = getattr(extra, "alias", None) or wire
                schema = self.convert(hints.get(name, info.annotation))
                schema = describe(schema, docs.get(name))
                properties[wire] = schema
                if info.is_required():
                    required.append(wire)
            extra = (getattr(cls, "model_config", {}) or {}).get("extra")
            out: dict = {"type": "object", "properties": properties, "additionalProperties": extra != "forbid"}
            if required:
                out["required"] = sorted(required)
            class_doc = cls.__dict__.get("__doc__")
            if class_doc:
                out["description"] = " ".join(class_doc.split())
            return out
        finally:
            self.stack.pop()


def _with_bounds(schema: dict, description: str | None) -> dict:
    """minimum/maximum/maxItems where the documentation states them as a rule."""
    if not description:
        return schema
    if "anyOf" in schema:
        return {**schema, "anyOf": [_with_bounds(b, description) for b in schema["anyOf"]]}
    if schema.get("type") in ("integer", "number"):
        match = RANGE.search(description)
        if match:
            low, high = (json.loads(g) for g in match.groups())
            return {**schema, "minimum": low, "maximum": high}
    if schema.get("type") == "array":
        for pattern in MAX_ITEMS:
            match = pattern.search(description)
            if match:
                return {**schema, "maxItems": int(match.group(1))}
    return schema


def describe(schema: dict, description: str | None) -> dict:
    schema = _with_bounds(schema, description)
    if description:
        schema = {**schema, "description": description}
    return schema


# -- documents ----------------------------------------------------------------------------------

def endpoint_schemas(endpoint: str) -> dict:
    module_name, class_name, method_name = ENDPOINTS[endpoint]
    cls = getattr(importlib.import_module(module_name), class_name)
    method = getattr(cls, method_name)
    verb, path, query, body = wire_layout(method)
    hints = typing.get_type_hints(method, include_extras=True)
    signature = inspect.signature(method)
    docs = docstring_params(method.__doc__)
    converter = Converter()

    def part(fields: dict[str, str], nullable: bool, where: str) -> dict:
        properties, required = {}, []
        for wire, param in fields.items():
            if param not in signature.parameters or param not in hints:
                raise SchemaError(f"{endpoint}: {where} field {wire!r} reads unknown parameter {param!r}")
            properties[wire] = describe(converter.convert(hints[param], nullable), docs.get(param))
            if signature.parameters[param].default is inspect.Parameter.empty:
                required.append(wire)
        schema = {"$schema": SCHEMA,
                  "$comment": f"Generated by tools/vendor_elevenlabs_schemas.py from the elevenlabs SDK's "
                              f"{class_name}.{method_name}: the {where} of {verb} {path}; do not edit.",
                  "type": "object", "properties": properties, "additionalProperties": True}
        if required:
            schema["required"] = sorted(required)
        return schema

    return {"input": part(body, True, "JSON body"), "query": part(query, False, "query parameters")}


def document(endpoint: str, version: str, date: str) -> dict:
    return {"provider": "elevenlabs", "endpoint": endpoint, "source": source_name(version), "commit": version,
            "commit_date": date, "delisted": False, **endpoint_schemas(endpoint), "output": {}}


def file_name(endpoint: str) -> str:
    return endpoint.replace("/", "__") + ".json"


def dumps(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--date", default=dt.date.today().isoformat(),
                    help="commit_date: the SDK's release date if known, else today (the default)")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default: {OUT_DIR})")
    ap.add_argument("endpoint", nargs="*", help=f"endpoint ids (default: all of {', '.join(ENDPOINTS)})")
    args = ap.parse_args(argv)
    unknown = [e for e in args.endpoint if e not in ENDPOINTS]
    if unknown:
        ap.error(f"unknown endpoint ids {unknown}: add them to ENDPOINTS")
    version = sdk_version()
    args.out.mkdir(parents=True, exist_ok=True)
    endpoints = args.endpoint or list(ENDPOINTS)
    for endpoint in endpoints:
        (args.out / file_name(endpoint)).write_text(dumps(document(endpoint, version, args.date)), encoding="utf-8")
    print(f"wrote {len(endpoints)} schema files to {args.out} (elevenlabs SDK {version}, {args.date})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
