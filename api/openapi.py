"""/openapi.json as the API answers, not as FastAPI's generator assumes.

The generator lists a 422 `HTTPValidationError` (`{"detail": [...]}`) on every operation that has a
parameter or a body. This API never answers that: a request that fails validation is a 400 in the
spec's error shape (api/errors.py), which each such operation declares with `error_responses(400)`.
Those 422 entries are removed, and with them the schemas only they used. A 422 the API does answer
(an Idempotency-Key reused with another body) is declared by its routes as an `ErrorResponse`, and
stays.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")  # the second is used by the first only
_REF = "#/components/schemas/"


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = answered(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def answered(spec: dict[str, Any]) -> dict[str, Any]:
    """`spec` without FastAPI's 422 `HTTPValidationError` responses and the schemas nothing uses then."""
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for status in [s for s, r in responses.items() if _refers_to(r, "HTTPValidationError")]:
                del responses[status]
    schemas = spec.get("components", {}).get("schemas", {})
    for name in _FASTAPI_ONLY:
        if name in schemas and not _refers_to({k: v for k, v in spec.items() if k != "components"}, name) \
                and not any(_refers_to(s, name) for other, s in schemas.items() if other != name):
            del schemas[name]
    return spec


def _refers_to(node: Any, name: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == _REF + name or any(_refers_to(v, name) for v in node.values())
    if isinstance(node, list):
        return any(_refers_to(v, name) for v in node)
    return False
