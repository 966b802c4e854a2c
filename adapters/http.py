"""What the adapters that speak plain httpx (Higgsfield, PiAPI; Fal's raw submit) share: one call with
its failures mapped to `ProviderFailure`, a JSON-object answer, and the message of an error answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from gengate.adapters.base import ProviderFailure, failure_for_status, retry_after_seconds
from gengate.config.settings import ProviderSettings


def client(settings: ProviderSettings) -> httpx.Client:
    """One pooled client per adapter: thread-safe for the worker's many threads; httpx never retries."""
    return httpx.Client(
        timeout=httpx.Timeout(settings.timeout, connect=settings.connect_timeout),
        headers={"Accept": "application/json", "User-Agent": "gengate"},
    )


def send(
    client: httpx.Client, provider: str, label: str, method: str, url: str, *,
    headers: dict[str, str], message_of: Callable[[httpx.Response], str], **kwargs: Any,
) -> httpx.Response:
    """One request, never retried; a transport fault or an error status becomes a `ProviderFailure`.
    `label` names the provider in messages, `message_of` reads the message of an error answer."""
    try:
        response = client.request(method, url, headers=headers, **kwargs)
    except httpx.TransportError as exc:
        # No status on purpose: a timeout after sending may have been accepted (see tasks.pipeline).
        raise ProviderFailure(provider, f"{type(exc).__name__} talking to {label}: {exc}", retryable=True) from exc
    try:
        response.raise_for_status()
    except httpx.HTTPStatusError as exc:
        raise failure_for_status(
            provider, response.status_code, message_of(response),
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        ) from exc
    return response


def json_object(response: httpx.Response, provider: str, label: str) -> dict[str, Any]:
    """The answer's JSON object; anything else is a retryable failure (the call may have worked)."""
    try:
        body = response.json()
    except ValueError as exc:
        raise ProviderFailure(provider, f"unreadable {label} answer (HTTP {response.status_code})",
                              retryable=True) from exc
    if not isinstance(body, dict):
        raise ProviderFailure(provider, f"unexpected {label} answer (HTTP {response.status_code})", retryable=True)
    return body


def error_message(response: httpx.Response, from_body: Callable[[Any, int], str]) -> str:
    """The message of an error answer, at most 500 characters: `from_body(json, status)` reads a JSON
    body; any other body is quoted as text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or f"HTTP {response.status_code}"
    return from_body(body, response.status_code)[:500]
