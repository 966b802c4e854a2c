"""The vendored fal schemas (config/schemas/fal/*.json) and the script that writes them.

The files: one per fal endpoint of the catalog (or the id is listed as unpublished in
config/schemas/README.md), each of the documented shape, its schemas plausible JSON Schema 2020-12,
and formatted as the script writes them. With FAL_JS_REPO set to a clone of fal-ai/fal-js, the script
is run again and must give the same bytes (the files are never edited by hand).

The parser: small TypeScript snippets, one per construct the generated endpoints.ts uses.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest

from gengate.config import catalog

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "config" / "schemas" / "fal"
README = ROOT / "config" / "schemas" / "README.md"
SCRIPT = ROOT / "tools" / "vendor_fal_schemas.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("vendor_fal_schemas", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


vfs = _load_script()

FILES = sorted(SCHEMA_DIR.glob("*.json"))
# every fal route of the catalog: a model's first row (MODELS) or a route on fal beside it (ALTERNATES)
CATALOG_IDS = sorted({e for spec in (*catalog.MODELS, *catalog.ALTERNATES) if spec.provider == "fal"
                      for e in spec.endpoints.values()})
TOP_KEYS = {"provider", "endpoint", "source", "commit", "commit_date", "delisted", "input", "output"}
JSON_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
# The keywords the script emits; anything else in a file is a typo or a hand edit.
KEYWORDS = {"$schema", "$comment", "$defs", "$ref", "type", "enum", "const", "anyOf", "not", "properties", "required",
            "additionalProperties", "items", "prefixItems", "minItems", "maxItems", "description", "default"}


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def _unpublished() -> set[str]:
    return set(re.findall(r"^- `([^`]+)`", _section("Ids with no published schema"), re.M))


def _delisted() -> dict[str, str]:
    return dict(re.findall(r"^\| `([^`]+)` \| ([0-9a-f]{7,40}) \|", _section("Delisted ids"), re.M))


def _doc(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# The vendored files

def test_there_are_schema_files():
    assert len(FILES) >= 50


@pytest.mark.parametrize("endpoint", CATALOG_IDS)
def test_every_catalog_fal_endpoint_has_a_schema_or_is_listed_unpublished(endpoint: str):
    has_file = (SCHEMA_DIR / vfs.file_name(endpoint)).is_file()
    listed = endpoint in _unpublished()
    assert has_file != listed, f"{endpoint}: file {has_file}, listed as unpublished {listed}"


def test_unpublished_ids_have_no_file():
    for endpoint in _unpublished():
        assert not (SCHEMA_DIR / vfs.file_name(endpoint)).exists(), endpoint


def test_each_file_is_asked_for():
    """No stale file: each is a catalog id, an extra id, or under an extra prefix."""
    wanted = set(CATALOG_IDS) | set(vfs.EXTRA_ENDPOINTS)
    for path in FILES:
        endpoint = _doc(path)["endpoint"]
        assert endpoint in wanted or endpoint.startswith(vfs.EXTRA_PREFIXES), endpoint


def test_the_readme_lists_exactly_the_delisted_files():
    delisted = {_doc(p)["endpoint"]: _doc(p)["commit"] for p in FILES if _doc(p)["delisted"]}
    listed = _delisted()
    assert set(listed) == set(delisted)
    for endpoint, commit in listed.items():
        assert delisted[endpoint].startswith(commit), endpoint


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_shape(path: Path):
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert set(doc) == TOP_KEYS
    assert doc["provider"] == "fal"
    assert doc["source"] == "fal-ai/fal-js libs/client/src/types/endpoints.ts"
    assert path.name == doc["endpoint"].replace("/", "__") + ".json"
    assert re.fullmatch(r"[0-9a-f]{40}", doc["commit"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d|Z)", doc["commit_date"])
    assert isinstance(doc["delisted"], bool)
    # written as the script writes: sorted keys, 2-space indent, a trailing newline
    assert text == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# The Replicate schemas (config/schemas/replicate/*.json): transcribed by hand from published pages,
# so checked for shape and self-consistency, and each named in the README with its source.

REPLICATE_DIR = ROOT / "config" / "schemas" / "replicate"
REPLICATE_FILES = sorted(REPLICATE_DIR.glob("*.json"))
REPLICATE_IDS = sorted({e for spec in (*catalog.MODELS, *catalog.ALTERNATES) if spec.provider == "replicate"
                        for e in spec.endpoints.values()})
# vendored for a model reached by id only (passthrough), used by no catalog row
REPLICATE_BY_ID_ONLY = ["bytedance/sdxl-lightning-4step"]
# cog's OpenAPI keywords on top of the fal set: Replicate's `title`, `x-order`, `format` and ranges
REPLICATE_KEYWORDS = KEYWORDS | {"title", "x-order", "format", "minimum", "maximum"}


def test_every_catalog_replicate_endpoint_has_a_schema():
    assert REPLICATE_IDS
    for endpoint in REPLICATE_IDS:
        assert (REPLICATE_DIR / vfs.file_name(endpoint)).is_file(), endpoint
    # and no file is there for a model the catalog does not route to, but those reached by id in
    # tests/test_passthrough.py (README.md, "Models reached by id only")
    assert sorted(_doc(p)["endpoint"] for p in REPLICATE_FILES) == sorted(REPLICATE_IDS + REPLICATE_BY_ID_ONLY)
    assert not set(REPLICATE_BY_ID_ONLY) & set(REPLICATE_IDS)


def _check_replicate_property(name: str, prop: dict, where: str) -> None:
    assert set(prop) <= REPLICATE_KEYWORDS, f"{where}: unknown keywords {set(prop) - REPLICATE_KEYWORDS}"
    assert prop.get("type") in JSON_TYPES, where
    assert isinstance(prop.get("title"), str) and isinstance(prop.get("x-order"), int), where
    assert isinstance(prop.get("description"), str) and prop["description"], where
    if "enum" in prop:
        assert prop["enum"] and len(set(map(json.dumps, prop["enum"]))) == len(prop["enum"]), where
    if "minimum" in prop and "maximum" in prop:
        assert prop["minimum"] <= prop["maximum"], where
    if "default" in prop:  # a published default is a value the field takes
        from gengate.sim.schema import validate
        assert validate(prop, prop["default"]) == [], f"{where}: default {prop['default']!r}"
        if "enum" in prop:
            assert prop["default"] in prop["enum"], where
        for bound, ok in (("minimum", lambda d, b: d >= b), ("maximum", lambda d, b: d <= b)):
            if bound in prop:
                assert ok(prop["default"], prop[bound]), f"{where}: default outside {bound}"
    if prop.get("type") == "array":
        assert isinstance(prop.get("items"), dict) and prop["items"].get("type") in JSON_TYPES, where


@pytest.mark.parametrize("path", REPLICATE_FILES, ids=lambda p: p.name)
def test_replicate_file_shape(path: Path):
    doc = _doc(path)
    assert set(doc) == TOP_KEYS and doc["provider"] == "replicate" and doc["delisted"] is False
    assert path.name == doc["endpoint"].replace("/", "__") + ".json"
    assert doc["source"].startswith(("https://replicate.com/", "https://github.com/replicate/")), doc["source"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", doc["commit_date"])
    assert doc["commit_date"] in doc["commit"]  # the date the page (or source) was read
    inp = doc["input"]
    assert inp["type"] == "object" and inp["additionalProperties"] is True
    assert inp["required"] == sorted(set(inp["required"])) and set(inp["required"]) <= set(inp["properties"])
    orders = [prop["x-order"] for prop in inp["properties"].values()]
    assert sorted(orders) == list(range(len(orders))), "x-order: the page's order, from 0"
    for name, prop in inp["properties"].items():
        _check_replicate_property(name, prop, f"{path.name}.{name}")
    out = doc["output"]
    assert out.get("type") in ("string", "array") and out.get("title") == "Output"
    assert (out if out["type"] == "string" else out["items"]).get("format") == "uri"  # the output files


def test_the_replicate_readme_has_a_section_per_schema():
    text = (REPLICATE_DIR / "README.md").read_text()
    for path in REPLICATE_FILES:
        doc = _doc(path)
        assert f"### `{doc['endpoint']}`" in text or f"## `{doc['endpoint']}`" in text, doc["endpoint"]
        assert doc["source"] in text or doc["source"].split("/versions/")[0] in text, doc["endpoint"]


def _check_schema(schema, root: dict, where: str) -> None:
    if isinstance(schema, bool):
        return
    assert isinstance(schema, dict), where
    assert set(schema) <= KEYWORDS, f"{where}: unknown keywords {set(schema) - KEYWORDS}"
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        assert kinds and set(kinds) <= JSON_TYPES, f"{where}: type {kind!r}"
    if "enum" in schema:
        assert isinstance(schema["enum"], list) and schema["enum"], where
        assert len({json.dumps(v) for v in schema["enum"]}) == len(schema["enum"]), f"{where}: duplicate enum"
        if kind in ("string", "number", "boolean"):
            python = {"string": str, "number": (int, float), "boolean": bool}[kind]
            assert all(isinstance(v, python) for v in schema["enum"]), where
    if "description" in schema:
        assert isinstance(schema["description"], str) and schema["description"], where
    if "properties" in schema:
        assert isinstance(schema["properties"], dict), where
        for name, sub in schema["properties"].items():
            _check_schema(sub, root, f"{where}.{name}")
    if "required" in schema:
        required = schema["required"]
        assert isinstance(required, list) and required == sorted(set(required)), where
        assert set(required) <= set(schema.get("properties", {})), f"{where}: required names no property"
    if "additionalProperties" in schema:
        _check_schema(schema["additionalProperties"], root, f"{where}.additionalProperties")
    if "items" in schema:
        _check_schema(schema["items"], root, f"{where}[]")
    for i, sub in enumerate(schema.get("prefixItems", ())):
        _check_schema(sub, root, f"{where}[{i}]")
    if "anyOf" in schema:
        assert isinstance(schema["anyOf"], list) and len(schema["anyOf"]) >= 2, where
        for i, sub in enumerate(schema["anyOf"]):
            _check_schema(sub, root, f"{where}|{i}")
    if "not" in schema:
        _check_schema(schema["not"], root, f"{where}!")
    if "$ref" in schema:
        match = re.fullmatch(r"#/\$defs/(\w+)", schema["$ref"])
        assert match and match.group(1) in root.get("$defs", {}), f"{where}: dangling {schema['$ref']}"
    for name, sub in schema.get("$defs", {}).items():
        _check_schema(sub, root, f"{where}$defs.{name}")
    if "default" in schema:
        _check_default(schema["default"], schema, where)


def _fits(value, schema) -> bool:
    if "anyOf" in schema:
        return any(_fits(value, b) for b in schema["anyOf"])
    kind = schema.get("type")
    python = {"string": str, "number": (int, float), "boolean": bool, "array": list, "object": dict,
              "null": type(None)}
    if kind and not isinstance(value, python[kind]):
        return False
    if kind == "number" and isinstance(value, bool):
        return False
    return "enum" not in schema or value in schema["enum"]


def _check_default(value, schema, where: str) -> None:
    assert _fits(value, schema), f"{where}: default {value!r} does not fit"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_schemas_are_json_schema(path: Path):
    doc = _doc(path)
    for part in ("input", "output"):
        schema = doc[part]
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["type"] == "object" and schema["additionalProperties"] is True
        _check_schema(schema, schema, f"{doc['endpoint']} {part}")


@pytest.mark.skipif(not os.environ.get("FAL_JS_REPO"), reason="set FAL_JS_REPO to a fal-ai/fal-js clone")
def test_regenerating_gives_the_same_bytes(tmp_path: Path, capsys):
    """The command of config/schemas/README.md, into a scratch folder: the same files, byte for byte."""
    command = re.search(r"tools/vendor_fal_schemas\.py --repo \S+ \\\n\s+(.*)\n", README.read_text())
    args = command.group(1).split()
    assert vfs.main(["--repo", os.environ["FAL_JS_REPO"], "--out", str(tmp_path), *args]) == 0
    out = capsys.readouterr().out
    assert {p.name for p in tmp_path.glob("*.json")} == {p.name for p in FILES}
    for path in FILES:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name
    assert set(re.findall(r"^NOT PUBLISHED: (\S+)$", out, re.M)) == _unpublished()


# ---------------------------------------------------------------------------------------------
# The TypeScript parser and the conversion

def _schemas(ts: str) -> dict:
    """name -> JSON Schema of each `export type` of a snippet (without $schema/$comment)."""
    decls = vfs.parse_declarations(ts)
    builder = vfs.SchemaBuilder(decls)
    out = {}
    for name in decls:
        schema = builder.root(vfs.Ref(name), name)
        schema.pop("$schema")
        schema.pop("$comment")
        out[name] = schema
    return out


def test_optional_and_required_fields():
    s = _schemas("""
export type In = {
  /**
   * The prompt.
   */
  prompt: string;
  seed?: number;
  flag?: boolean;
  "quoted-name": string;
};
""")["In"]
    assert s == {"type": "object", "additionalProperties": True, "required": ["prompt", "quoted-name"],
                 "properties": {"prompt": {"type": "string", "description": "The prompt."},
                                "seed": {"type": "number"}, "flag": {"type": "boolean"},
                                "quoted-name": {"type": "string"}}}


def test_string_literal_unions_one_line_and_multi_line():
    s = _schemas("""
export type In = {
  format?: "png" | "jpeg";
  ratio?:
    | "16:9"
    | "9:16"
    | "General Use (Light)";
};
""")["In"]["properties"]
    assert s["format"] == {"type": "string", "enum": ["png", "jpeg"]}
    assert s["ratio"] == {"type": "string", "enum": ["16:9", "9:16", "General Use (Light)"]}


def test_number_literal_union():
    assert vfs.SchemaBuilder({}).convert(vfs.parse_type("8 | 16 | 32")) == {"type": "number", "enum": [8, 16, 32]}


def test_union_of_a_reference_and_literals_is_any_of():
    s = _schemas("""
export type ImageSize = {
  width?: number;
  height?: number;
};
export type In = {
  /**
   * The size. Default value: `landscape_4_3`
   */
  image_size?: ImageSize | "square_hd" | "landscape_4_3";
  either?: string | number;
};
""")
    size = {"type": "object", "additionalProperties": True, "required": [],
            "properties": {"width": {"type": "number"}, "height": {"type": "number"}}}
    props = s["In"]["properties"]
    assert props["image_size"] == {"anyOf": [size, {"type": "string", "enum": ["square_hd", "landscape_4_3"]}],
                                   "description": "The size.", "default": "landscape_4_3"}
    assert props["either"] == {"anyOf": [{"type": "string"}, {"type": "number"}]}


def test_arrays_both_spellings_and_nested():
    s = _schemas("""
export type In = {
  a: Array<string>;
  b: string[];
  c?: Array<Array<number>>;
  d?: ("x" | "y")[];
  e?: Array<
    "zoom-in" | "zoom-out"
  >;
};
""")["In"]["properties"]
    assert s["a"] == s["b"] == {"type": "array", "items": {"type": "string"}}
    assert s["c"] == {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
    assert s["d"] == {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}}
    assert s["e"] == {"type": "array", "items": {"type": "string", "enum": ["zoom-in", "zoom-out"]}}


def test_aliases_and_nested_references_are_inlined():
    s = _schemas("""
export type File = {
  url: string;
  content_type?: string;
};
export type Image = {
  url: string;
  width?: number;
};
export type Out = {
  images: Array<Image>;
  video: File;
  extra?: Wrapper;
};
export type Wrapper = {
  inner: Image;
};
export type AliasOut = Out;
""")
    image = {"type": "object", "additionalProperties": True, "required": ["url"],
             "properties": {"url": {"type": "string"}, "width": {"type": "number"}}}
    out = s["Out"]
    assert out["properties"]["images"] == {"type": "array", "items": image}
    assert out["properties"]["video"]["properties"]["content_type"] == {"type": "string"}
    assert out["properties"]["extra"]["properties"]["inner"] == image
    assert s["AliasOut"] == out
    assert "$defs" not in out


def test_file_inputs_are_url_strings():
    s = _schemas("""
export type File = {
  url: string;
};
export type In = {
  image_url: string | Blob | File;
  image_urls?: Array<string | Blob | File>;
  either?: Array<string | Blob | File> | string | Blob | File;
  file_object?: File;
};
""")["In"]["properties"]
    assert s["image_url"] == {"type": "string"}
    assert s["image_urls"] == {"type": "array", "items": {"type": "string"}}
    assert s["either"] == {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}
    assert s["file_object"]["type"] == "object"  # elsewhere File is fal's file object


def test_any_unknown_record_tuple():
    s = _schemas("""
export type In = {
  timings: unknown;
  meta?: any;
  words?: Array<unknown>;
  scale?: Record<string, any>;
  size: [number, number];
};
export type Empty = Record<string, never>;
""")
    props = s["In"]["properties"]
    assert props["timings"] == {} and props["meta"] == {}
    assert props["words"] == {"type": "array", "items": {}}
    assert props["scale"] == {"type": "object", "additionalProperties": {}}
    assert props["size"] == {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}],
                             "items": False, "minItems": 2, "maxItems": 2}
    assert s["Empty"] == {"type": "object", "additionalProperties": {"not": {}}}


def test_recursive_type_goes_through_defs():
    s = _schemas("""
export type Node = {
  name: string;
  children?: Array<Node>;
};
""")["Node"]
    assert s["properties"]["children"] == {"type": "array", "items": {"$ref": "#/$defs/Node"}}
    assert s["$defs"]["Node"]["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}


def test_defaults():
    s = _schemas("""
export type In = {
  /**
   * Steps. Default value: `28`
   */
  steps?: number;
  /**
   * Scale. Default value: `3.5`
   */
  scale?: number;
  /**
   * Check. Default value: `true`
   */
  check?: boolean;
  /**
   * Format. Default value: `"jpeg"`
   */
  format?: "jpeg" | "png";
  /**
   * The CFG scale is a measure of how close you want
   * the model to stick to your prompt. Default value: `0.5`
   */
  cfg?: number;
  /**
   * Size. Default value: `square_hd`
   */
  size?: "square_hd" | "square";
  /**
   * Not a literal of the type. Default value: `center`
   */
  align?: string | number;
  /**
   * The mime type. Default value: `"null"`
   */
  content_type?: string;
  /**
   * Rank. Default value: `"32"`
   */
  rank?: 8 | 16 | 32;
  /**
   * Bad quoting. Default value: `"say "hi""`
   */
  greeting?: string;
  /**
   * The format. Default value: "png". Default value: `"png"`
   */
  twice?: string;
  /**
   *  Default value: `"blur"`
   */
  negative_prompt?: string;
  /**
   *
   */
  timings?: unknown;
};
""")["In"]["properties"]
    assert s["steps"] == {"type": "number", "description": "Steps.", "default": 28}
    assert s["scale"]["default"] == 3.5
    assert s["check"]["default"] is True
    assert s["format"]["default"] == "jpeg"
    assert s["cfg"] == {"type": "number", "default": 0.5,
                        "description": "The CFG scale is a measure of how close you want the model to stick to your prompt."}
    assert s["size"]["default"] == "square_hd"  # unquoted, but a literal of the field
    assert "default" not in s["align"]  # unquoted and not a literal: does not parse
    assert "default" not in s["content_type"]  # the generator's null
    assert s["rank"]["default"] == 32
    assert "default" not in s["greeting"]
    assert s["twice"] == {"type": "string", "description": "The format.", "default": "png"}
    assert s["negative_prompt"] == {"type": "string", "default": "blur"}
    assert s["timings"] == {}


@pytest.mark.parametrize("doc, first", [
    ("One. Two.", "One."),
    ("No full stop", "No full stop"),
    ("Factor (e.g. 2.0 doubles it) of the size. More.", "Factor (e.g. 2.0 doubles it) of the size."),
    ("Use 1.5 or 2. Then more.", "Use 1.5 or 2."),
    ("Tags like @A, @B, etc. Next sentence.", "Tags like @A, @B, etc."),
    ("Is it? Yes.", "Is it?"),
    ("Ends with a URL https://fal.ai/models. Done.", "Ends with a URL https://fal.ai/models."),
])
def test_description_is_the_first_sentence(doc: str, first: str):
    assert vfs.first_sentence(doc) == first


def test_the_endpoint_map():
    decls = vfs.parse_declarations("""
export type AIn = {
  prompt: string;
};
export type AOut = {
  url: string;
};
export type EndpointTypeMap = {
  "fal-ai/a": {
    input: AIn;
    output: AOut;
  };
  "fal-ai/a/b": {
    input: AIn;
    output: AOut;
  };
};
""")
    endpoints = vfs.endpoint_map(decls)
    assert endpoints == {"fal-ai/a": (vfs.Ref("AIn"), vfs.Ref("AOut")), "fal-ai/a/b": (vfs.Ref("AIn"), vfs.Ref("AOut"))}


@pytest.mark.parametrize("ts", [
    "export type A = B & C;",  # intersection
    "export type A = { [key: string]: number };",  # index signature
    "export type A = Promise<string>;",  # unknown generic
    "export type A = { a: string }",  # missing ;
    "export type A<T> = { a: T };",  # generic declaration
    "export type A = { a: string; a: number; };",  # duplicate property
    "type A = string;",  # not exported
    "export interface A { a: string }",
])
def test_the_parser_refuses_what_it_does_not_know(ts: str):
    with pytest.raises(vfs.TSError):
        vfs.parse_declarations(ts)


@pytest.mark.parametrize("ts", [
    "export type A = { a: Missing };",
    "export type A = { a: Blob };",
])
def test_the_conversion_refuses_unknown_references(ts: str):
    decls = vfs.parse_declarations(ts)
    with pytest.raises(vfs.TSError):
        vfs.SchemaBuilder(decls).root(vfs.Ref("A"))


def test_dumps_is_stable():
    doc = {"b": [3, 1], "a": {"z": 1, "y": "é"}}
    assert vfs.dumps(doc) == '{\n  "a": {\n    "y": "é",\n    "z": 1\n  },\n  "b": [\n    3,\n    1\n  ]\n}\n'
