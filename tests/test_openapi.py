"""/openapi.json documents what the API really answers, checked against real answers of the real API:

* no operation lists FastAPI's 422 `HTTPValidationError` (validation errors are 400s in the spec's
  error shape), and that schema is gone;
* every JSON answer has a real schema: each GET/POST operation is called, and its answers (2xx and
  the errors the suite can provoke) are validated by schemathesis against the served document, and
  hold no field the schema does not name;
* a field the API leaves out is optional and never nullable; a field it sends as null is required
  and nullable;
* the field names are the reference spec's (`gateway-openapi.yaml`), plus gengate's few additions.
"""

from __future__ import annotations

import datetime
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import schemathesis
import yaml

from gengate.jobs import accounts
from gengate.jobs.apikeys import create_account, create_key
from gengate.sim import media
from tests.conftest import ADMIN_KEY, wait_for
from tests.spec_files import spec_dir

_REF = "#/components/schemas/"
# Fields gengate adds to the spec's response bodies (dotted paths, `[]` for an array's items).
GENGATE_ADDITIONS = {"getUsage": {"next_cursor", "usage[].completed_at"}, **{op: {"output.metadata"} for op in (
    "createImage", "createVideo", "createSpeech", "createMusic", "createTranscription")},
    "getJob": {"output.metadata", "capability", "provider", "mode", "byok", "request", "price_cents", "charged_cents",
               "attempts", "routes"}}


@pytest.fixture(scope="module")
def doc(api_url: str) -> dict[str, Any]:
    r = httpx.get(f"{api_url}/openapi.json")
    assert r.status_code == 200
    return r.json()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _nullable(schema: dict[str, Any]) -> bool:
    return (schema.get("type") == "null" or "null" in (schema.get("type") or []) or schema.get("nullable") is True
            or any(_nullable(s) for s in schema.get("anyOf", []) + schema.get("oneOf", [])))


# -- the document ------------------------------------------------------------------------------------


def test_no_operation_lists_fastapis_422(doc):
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert not [r for r in _refs(doc) if r.endswith(("/HTTPValidationError", "/ValidationError"))]
    for path, method, operation in _operations(doc):
        for status, response in operation["responses"].items():
            if status[0] in "45":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": _REF + "ErrorResponse"}, (method, path, status)
        # Whatever can fail validation (a body, a query or header parameter) is declared as a 400.
        validated = "requestBody" in operation or any(p["in"] != "path" for p in operation.get("parameters", []))
        if validated:
            assert "400" in operation["responses"], f"{method.upper()} {path} validates input but lists no 400"


def test_every_json_answer_has_a_schema(doc):
    for path, method, operation in _operations(doc):
        for status, response in operation["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = response.get("content", {})
            if "text/event-stream" in content:
                continue  # streamJob: its events carry JobResponse JSON, checked in the test below
            schema = content["application/json"]["schema"]
            assert schema.get("$ref", "").startswith(_REF), f"{method.upper()} {path} {status}: untyped ({schema})"
            assert _resolve(doc, schema).get("properties"), f"{method.upper()} {path} {status}: no properties"


def _response_schemas(doc: dict[str, Any]) -> set[str]:
    """Every component schema an answer's body may contain (transitively)."""
    todo = [r for _, _, op in _operations(doc) for r in _refs(op["responses"])]
    seen: set[str] = set()
    while todo:
        name = todo.pop().removeprefix(_REF)
        if name not in seen:
            seen.add(name)
            todo += list(_refs(doc["components"]["schemas"][name]))
    return seen


def test_omitted_fields_are_optional_and_never_null(doc):
    """The API leaves a field out rather than send null (jobs, errors), except where null is the
    answer (`next_cursor` at the end, an account's missing email, a figure ffprobe did not give):
    so a nullable field is a required one, and an optional one is never nullable."""
    schemas = doc["components"]["schemas"]
    for name in sorted(_response_schemas(doc)):
        schema = schemas[name]
        for field, prop in schema.get("properties", {}).items():
            if _nullable(prop):
                assert field in schema.get("required", []), f"{name}.{field}: nullable but optional"
    job, error = schemas["JobResponse"], schemas["ErrorResponse"]
    for field in ("completed_at", "output", "cache", "error"):
        assert field not in job["required"] and not _nullable(job["properties"][field]), field
    for field in ("field", "provider"):
        assert field not in error["required"] and not _nullable(error["properties"][field]), field
    assert not _nullable(schemas["JobOutput"]["properties"]["metadata"])
    assert not _nullable(schemas["JobCache"]["properties"]["key"])
    for name, field in (("JobListResponse", "next_cursor"), ("UsageResponse", "next_cursor"), ("MeResponse", "email"),
                        ("ProbeResponse", "width"), ("ProbeResponse", "fps")):
        assert field in schemas[name]["required"] and _nullable(schemas[name]["properties"][field]), (name, field)


def _shape(doc: dict[str, Any], schema: dict[str, Any], path: str = "") -> dict[str, set[str]]:
    """{dotted object path: its property names}, following refs, arrays (`[]`) and anyOf branches."""
    schema = _resolve(doc, schema)
    out: dict[str, set[str]] = {}
    for branch in schema.get("anyOf", []):
        for k, v in _shape(doc, branch, path).items():
            out.setdefault(k, set()).update(v)
    if "items" in schema:
        out.update(_shape(doc, schema["items"], f"{path}[]"))
    if "properties" in schema:
        out.setdefault(path, set()).update(schema["properties"])
        for name, prop in schema["properties"].items():
            out.update(_shape(doc, prop, f"{path}.{name}" if path else name))
    return out


def _json_2xx(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    for status, response in operation["responses"].items():
        response = _resolve(doc, response)
        if status.startswith("2") and "application/json" in response.get("content", {}):
            return response["content"]["application/json"].get("schema")
    return None


def test_field_names_are_the_specs(doc):
    spec = yaml.safe_load((spec_dir() / "gateway-openapi.yaml").read_text())
    ours = {op["operationId"]: op for _, _, op in _operations(doc)}
    compared = []
    for _, _, operation in _operations(spec):
        theirs_schema = _json_2xx(spec, operation)
        if theirs_schema is None:
            continue
        name = operation["operationId"]
        assert name in ours, f"the spec's {name} is missing"
        theirs, mine = _shape(spec, theirs_schema), _shape(doc, _json_2xx(doc, ours[name]))
        for where, fields in theirs.items():
            assert fields <= mine.get(where, set()), f"{name} {where or 'body'}: lacks {fields - mine.get(where, set())}"
            spec_required = set(_resolve(spec, theirs_schema).get("required", [])) if not where else set()
            assert spec_required <= set(_resolve(doc, _json_2xx(doc, ours[name])).get("required", [])), name
        added = {f"{where}.{f}" if where else f for where, fields in mine.items() for f in fields - theirs.get(where, set())
                 if where in theirs}
        assert added <= GENGATE_ADDITIONS.get(name, set()), f"{name}: fields the spec does not have: {added}"
        compared.append(name)
    assert {"getMe", "getUsage", "getBalance", "uploadFile", "getJob", "listVoices", "createImage"} <= set(compared)


# -- real answers ------------------------------------------------------------------------------------


class Conformance:
    """Validates real answers against the served document: schemathesis's response check (the one
    `st run` applies), the status documented, and no field the schema does not name."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.schema = schemathesis.openapi.from_dict(doc)
        self.checked: dict[str, set[int]] = {}

    def __call__(self, template: str, r: httpx.Response) -> httpx.Response:
        method = r.request.method.lower()
        operation = self.doc["paths"][template][method]
        label = f"{method.upper()} {template} -> {r.status_code}: {r.text[:300]}"
        assert str(r.status_code) in operation["responses"], f"undocumented status: {label}"
        self.schema[template][method.upper()].validate_response(r)
        schema = (operation["responses"][str(r.status_code)].get("content") or {}).get("application/json")
        if schema is not None:
            extra = _undocumented(self.doc, schema["schema"], r.json())
            assert not extra, f"fields the schema does not name, {extra}: {label}"
        self.checked.setdefault(operation["operationId"], set()).add(r.status_code)
        return r

    def event(self, data: bytes) -> None:
        """One SSE event's data: the spec's job, as an item of GET /v1/jobs answers it (GET
        /v1/jobs/{job_id} adds gengate's details, which events do not carry)."""
        page = b'{"jobs":[' + data + b'],"next_cursor":null}'
        r = httpx.Response(200, content=page, headers={"Content-Type": "application/json"},
                           request=httpx.Request("GET", "http://gateway/v1/jobs"))
        r.elapsed = datetime.timedelta(0)
        self("/v1/jobs", r)


def _undocumented(doc: dict[str, Any], schema: dict[str, Any], value: Any, where: str = "$") -> list[str]:
    schema = _resolve(doc, schema)
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if (value is None) == (_resolve(doc, b).get("type") == "null")]
        return _undocumented(doc, branches[0], value, where) if branches else []
    found: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        if not schema.get("additionalProperties"):
            found += [f"{where}.{k}" for k in value if k not in schema["properties"]]
        for k, v in value.items():
            if k in schema["properties"]:
                found += _undocumented(doc, schema["properties"][k], v, f"{where}.{k}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value[:200]):
            found += _undocumented(doc, schema["items"], item, f"{where}[{i}]")
    return found


def _key(rds: redis.Redis, *, email: str | None = "me@example.com", plan: str = "dev", credit: int = 0,
         **limits: int) -> str:
    account = create_account(rds, email=email, plan=plan)
    if credit:
        accounts.credit(rds, account, credit)
    if limits:
        accounts.set_limits(rds, account, **limits)
    return create_key(rds, account)


def _http(api_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=api_url, headers=headers, timeout=30)


def _done(c: httpx.Client, check: Conformance, created: httpx.Response) -> dict[str, Any]:
    check("/v1/jobs/{job_id}", c.get(f"/v1/jobs/{created.json()['job_id']}"))
    job = wait_for(_V1(c), created.json()["job_id"], timeout=60)
    check("/v1/jobs/{job_id}", c.get(f"/v1/jobs/{job['job_id']}"))
    return job


class _V1:
    """`wait_for` takes a client on /v1."""

    def __init__(self, c: httpx.Client) -> None:
        self.c = c

    def get(self, path: str) -> httpx.Response:
        return self.c.get(f"/v1{path}")


def test_every_operation_answers_what_it_documents(doc, api_url: str, rds: redis.Redis, worker, files_url: str):
    check = Conformance(doc)
    m = uuid.uuid4().hex[:12]
    with _http(api_url, _key(rds)) as c:
        # Generation: 202, then the finished job (output, cache, completed_at), a cache hit, a failure.
        bodies = {
            "/v1/image": {"model": "flux-schnell", "prompt": f"sunset {m}", "aspect_ratio": "16:9"},
            "/v1/video": {"model": "kling-v3", "prompt": f"waves {m}", "duration": 5},
            "/v1/speech": {"model": "eleven_v3", "text": f"Hello {m}", "voice": "rachel"},
            "/v1/music": {"model": "music_v1", "prompt": f"upbeat pop {m}", "duration": 10},
            "/v1/transcription": {"model": "whisper", "audio_url": f"{files_url}/a.mp3?v={m}"},
        }
        created = {path: check(path, c.post(path, json=body)) for path, body in bodies.items()}
        finished = {path: _done(c, check, r) for path, r in created.items()}
        assert {j["status"] for j in finished.values()} == {"completed"}, finished
        hit = check("/v1/image", c.post("/v1/image", json=bodies["/v1/image"]))
        assert hit.json()["cache"]["hit"] is True
        failed = check("/v1/image", c.post("/v1/image", json={
            "model": "flux-schnell", "prompt": f"fails {m}", "provider_options": {"sim": {"fail": "NSFW content detected"}}}))
        assert _done(c, check, failed)["status"] == "failed"
        # The stream's events are jobs too.
        job_id = created["/v1/image"].json()["job_id"]
        events = [line[len(b"data: "):] for line in c.get(f"/v1/jobs/{job_id}/stream").content.split(b"\n")
                  if line.startswith(b"data: ")]
        assert events
        for data in events:
            check.event(data)
        # The job list: a page with a cursor, the last without.
        page = check("/v1/jobs", c.get("/v1/jobs", params={"limit": 2})).json()
        assert page["next_cursor"]
        last = check("/v1/jobs", c.get("/v1/jobs", params={"limit": 100})).json()
        assert last["next_cursor"] is None
        check("/v1/jobs", c.get("/v1/jobs", params={"status": "failed", "capability": "image"}))

        # Files, and media processing on them (metadata on slices and commands).
        clip = check("/v1/files", c.post("/v1/files", content=media.mp4_bytes(64, 48, 1.0) + secrets.token_bytes(4),
                                         headers={"Content-Type": "video/mp4"})).json()
        again = check("/v1/files", c.post("/v1/files", content=b"", headers={"X-Content-Hash": clip["hash"]}))
        assert again.json()["deduplicated"] is True
        check("/v1/files/{file_id}", c.get(f"/v1/files/{clip['file_id']}"))
        png = check("/v1/files", c.post("/v1/files", content=media.png_bytes(16, 16, seed=secrets.randbelow(1 << 30)),
                                        headers={"Content-Type": "image/png"})).json()
        probe = check("/v1/ffmpeg/probe", c.post("/v1/ffmpeg/probe", json={"url": clip["url"]})).json()
        assert probe["width"] == 64
        still = check("/v1/ffmpeg/probe", c.post("/v1/ffmpeg/probe", json={"url": png["url"]})).json()
        assert still["fps"] is None and still["audio_codec"] is None, "null is a real answer here"
        media_jobs = {
            "/v1/ffmpeg/trim": {"url": clip["url"], "start": 0, "end": 0.5},
            "/v1/ffmpeg/resize": {"url": png["url"], "width": 8, "height": 8},
            "/v1/ffmpeg/slice": {"video_url": clip["url"], "count": 2},
            "/v1/ffmpeg": {"command": "-i {{in_1}} -c copy {{out_1}}", "input_files": [clip["url"]],
                           "output_files": ["copy.mp4"]},
        }
        for path, body in media_jobs.items():
            job = _done(c, check, check(path, c.post(path, json=body)))
            assert job["status"] == "completed", (path, job)

        # Reference and account.
        check("/v1/voices", c.get("/v1/voices"))
        check("/v1/models", c.get("/v1/models"))
        check("/v1/models", c.get("/v1/models", params={"capability": "video"}))
        check("/v1/me", c.get("/v1/me"))
        check("/v1/balance", c.get("/v1/balance"))
        usage = check("/v1/usage", c.get("/v1/usage")).json()
        assert len(usage["usage"]) >= 10 and usage["next_cursor"] is None
        assert {r["capability"] for r in usage["usage"]} >= {"image", "media"}
        assert check("/v1/usage", c.get("/v1/usage", params={"limit": 1})).json()["next_cursor"]
        check("/v1/usage", c.get("/v1/usage", params={"from": "2026-01-01", "to": "2026-01-31"}))
        # The account's credentials (gengate additions) and the operators' overview.
        check("/v1/keys", c.get("/v1/keys"))
        made = check("/v1/keys", c.post("/v1/keys")).json()
        check("/v1/keys/{key_id}", c.delete(f"/v1/keys/{made['key_id']}"))
        check("/v1/keys", c.get("/v1/keys"))  # with revoked_at set
        check("/v1/webhook-secret", c.post("/v1/webhook-secret"))
        check("/v1/provider-keys/{provider}", c.put("/v1/provider-keys/replicate", json={"key": "r8_openapi"}))
        check("/v1/provider-keys", c.get("/v1/provider-keys"))
        check("/v1/provider-keys/{provider}", c.delete("/v1/provider-keys/replicate"))
        check("/v1/admin/overview", c.get("/v1/admin/overview", headers={"Authorization": f"Bearer {ADMIN_KEY}"}))
        # DELETE answers no body; its 204 is documented.
        check("/v1/jobs/{job_id}", c.delete(f"/v1/jobs/{job_id}"))
    with _http(api_url, _key(rds, email=None)) as c:
        assert check("/v1/me", c.get("/v1/me")).json()["email"] is None

    every = {op["operationId"] for _, method, op in _operations(doc) if method in ("get", "post")}
    answered = {name for name, statuses in check.checked.items() if any(200 <= s < 300 for s in statuses)}
    assert every - {"streamJob"} <= answered, f"operations never checked: {every - answered}"


def test_error_answers_are_documented_in_the_spec_shape(doc, api_url: str, rds: redis.Redis, worker):
    check = Conformance(doc)
    job = "job_" + "0" * 32
    calls = {  # every GET/POST operation, with the path parameters filled in
        "/v1/image": ("post", "/v1/image"), "/v1/video": ("post", "/v1/video"), "/v1/speech": ("post", "/v1/speech"),
        "/v1/music": ("post", "/v1/music"), "/v1/transcription": ("post", "/v1/transcription"),
        "/v1/jobs": ("get", "/v1/jobs"), "/v1/jobs/{job_id}": ("get", f"/v1/jobs/{job}"),
        "/v1/jobs/{job_id}/stream": ("get", f"/v1/jobs/{job}/stream"), "/v1/voices": ("get", "/v1/voices"),
        "/v1/models": ("get", "/v1/models"), "/v1/ffmpeg/probe": ("post", "/v1/ffmpeg/probe"),
        "/v1/ffmpeg/trim": ("post", "/v1/ffmpeg/trim"), "/v1/ffmpeg/resize": ("post", "/v1/ffmpeg/resize"),
        "/v1/ffmpeg/slice": ("post", "/v1/ffmpeg/slice"), "/v1/ffmpeg": ("post", "/v1/ffmpeg"),
        "/v1/files": ("post", "/v1/files"), "/v1/files/{file_id}": ("get", "/v1/files/file_" + "0" * 32),
        "/v1/me": ("get", "/v1/me"), "/v1/balance": ("get", "/v1/balance"), "/v1/usage": ("get", "/v1/usage"),
        "/v1/keys": ("get", "/v1/keys"), "/v1/webhook-secret": ("post", "/v1/webhook-secret"),
        "/v1/provider-keys": ("get", "/v1/provider-keys"), "/v1/admin/overview": ("get", "/v1/admin/overview"),
    }
    # POST /v1/keys shares its path with GET /v1/keys: checked below, as are PUT and DELETE.
    calls_also = [("/v1/keys", "post", "/v1/keys")]
    every = {(p, m) for p, m, _ in _operations(doc) if m in ("get", "post")}
    listed = {(template, method) for template, (method, _) in calls.items()} | {(t, m) for t, m, _ in calls_also}
    assert every == listed, "a new operation: add it here"
    with _http(api_url, None) as anonymous:
        for template, method, url in [(t, m, u) for t, (m, u) in calls.items()] + calls_also:
            assert check(template, anonymous.request(method.upper(), url)).status_code == 401
    with _http(api_url, _key(rds)) as c:
        for template, method, url, kwargs, field in [
            ("/v1/image", "post", "/v1/image", {"json": {"model": "flux-schnell"}}, "prompt"),
            ("/v1/video", "post", "/v1/video", {"json": {"model": "flux-pro", "prompt": "x"}}, "model"),
            ("/v1/image", "post", "/v1/image", {"content": b"{", "headers": {"Content-Type": "application/json"}}, None),
            ("/v1/jobs", "get", "/v1/jobs", {"params": {"cursor": "nope"}}, "cursor"),
            ("/v1/jobs", "get", "/v1/jobs", {"params": {"limit": 0}}, "limit"),
            ("/v1/models", "get", "/v1/models", {"params": {"capability": "nope"}}, "capability"),
            ("/v1/usage", "get", "/v1/usage", {"params": {"from": "2026-13-01"}}, "from"),
            ("/v1/usage", "get", "/v1/usage", {"params": {"limit": "ten"}}, "limit"),
            ("/v1/files", "post", "/v1/files", {"content": b"x", "headers": {"X-Content-Hash": "md5:x"}}, "X-Content-Hash"),
            ("/v1/files", "post", "/v1/files", {"content": b""}, "body"),
            ("/v1/ffmpeg/probe", "post", "/v1/ffmpeg/probe", {"json": {"url": "http://127.1/a.mp4"}}, "url"),
            ("/v1/ffmpeg/trim", "post", "/v1/ffmpeg/trim", {"json": {"url": "https://example.com/a.mp4", "start": -1}},
             "start"),
            ("/v1/jobs/{job_id}/stream", "get", f"/v1/jobs/{job}/stream", {"headers": {"Last-Event-ID": "x"}}, None),
            ("/v1/keys/{key_id}", "delete", "/v1/keys/" + "0" * 12, {}, "key_id"),
            ("/v1/provider-keys/{provider}", "put", "/v1/provider-keys/fal", {"json": {"key": "a\nb"}}, "key"),
            ("/v1/provider-keys/{provider}", "delete", "/v1/provider-keys/fal", {}, "provider"),
        ]:
            r = check(template, c.request(method.upper(), url, **kwargs))
            assert r.status_code in (400, 404) and r.json().get("field") == field, r.text
        for template, url in (("/v1/jobs/{job_id}", f"/v1/jobs/{job}"), ("/v1/jobs/{job_id}/stream", f"/v1/jobs/{job}/stream"),
                              ("/v1/files/{file_id}", "/v1/files/file_" + "0" * 32)):
            assert check(template, c.get(url)).status_code == 404
        assert check("/v1/jobs/{job_id}", c.delete(f"/v1/jobs/{job}")).status_code == 404
        assert check("/v1/image", c.post("/v1/image", content=b" " * (1024 * 1024 + 1),
                                         headers={"Content-Type": "application/json"})).status_code == 413
        # The one 422 the API answers: an Idempotency-Key reused with another body.
        key = {"Idempotency-Key": f"openapi-{uuid.uuid4().hex}"}
        body = {"model": "flux-schnell", "prompt": f"idem {uuid.uuid4().hex}"}
        assert check("/v1/image", c.post("/v1/image", json=body, headers=key)).status_code == 202
        assert check("/v1/image", c.post("/v1/image", json={**body, "prompt": "other"}, headers=key)).status_code == 422
    with _http(api_url, _key(rds, plan="enterprise", rpm=0, concurrency=0)) as broke:
        r = check("/v1/image", broke.post("/v1/image", json={"model": "flux-schnell", "prompt": "no credit"}))
        assert r.status_code == 402 and "field" not in r.json() and "provider" not in r.json()
    with _http(api_url, _key(rds, plan="enterprise", credit=10_000, rpm=1, concurrency=0)) as limited:
        statuses = [check("/v1/image", limited.post("/v1/image", json={"model": "flux-schnell",
                                                                         "prompt": f"rate {uuid.uuid4().hex}"})).status_code
                    for _ in range(2)]
        assert statuses == [202, 429]
    assert check.checked["createImage"] == {202, 400, 401, 402, 413, 422, 429}
    assert all(401 in check.checked[op["operationId"]] for _, method, op in _operations(doc) if method in ("get", "post"))
