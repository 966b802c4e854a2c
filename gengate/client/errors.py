"""Exceptions of the client. Every error answer of the API becomes a `GatewayAPIError` subclass chosen
by HTTP status, carrying the spec's error body `{error, message, field, provider, statusCode}`.

    GengateError
    ├── GatewayAPIError                  any non-2xx answer
    │   ├── ValidationError          400 (`field` names the culprit)
    │   ├── AuthError                401
    │   ├── InsufficientBalanceError 402
    │   ├── NotFoundError            404
    │   ├── ConflictError            409 (`retry_after`)
    │   ├── PayloadTooLargeError     413
    │   ├── UnprocessableError       422 (Idempotency-Key reused with another body)
    │   ├── RateLimitError           429 (`retry_after`)
    │   └── ServerError              5xx
    │       └── ProviderError        502 (`provider`)
    ├── GatewayConnectionError       the request never got an answer (refused, reset, timed out)
    ├── WaitTimeout                  also a TimeoutError: wait_for_job ran out of time
    └── JobFailed                    Job.raise_for_status() on a failed or cancelled job
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from gengate.client.types import Job


class GengateError(Exception):
    """Base of everything this client raises."""


class GatewayAPIError(GengateError):
    def __init__(self, message: str, *, status_code: int, error: str | None = None, field: str | None = None,
                 provider: str | None = None, retry_after: float | None = None,
                 body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error = error or type(self).__name__
        self.field = field
        self.provider = provider
        self.retry_after = retry_after
        self.body = body
        self.headers = headers or {}

    def __str__(self) -> str:
        where = f" (field: {self.field})" if self.field else f" (provider: {self.provider})" if self.provider else ""
        return f"{self.status_code} {self.error}: {self.message}{where}"


class ValidationError(GatewayAPIError):
    pass


class AuthError(GatewayAPIError):
    pass


class InsufficientBalanceError(GatewayAPIError):
    pass


class NotFoundError(GatewayAPIError):
    pass


class ConflictError(GatewayAPIError):
    pass


class PayloadTooLargeError(GatewayAPIError):
    pass


class UnprocessableError(GatewayAPIError):
    pass


class RateLimitError(GatewayAPIError):
    pass


class ServerError(GatewayAPIError):
    pass


class ProviderError(ServerError):
    pass


class GatewayConnectionError(GengateError):
    """The gateway could not be reached or the connection broke; `__cause__` is httpx's error."""


class WaitTimeout(GengateError, TimeoutError):
    """wait_for_job gave up; `job` is the last state seen (None if none was)."""

    def __init__(self, job_id: str, timeout: float, job: Job | None = None) -> None:
        status = f", last status {job.status}" if job is not None else ""
        super().__init__(f"job {job_id} did not finish within {timeout:g}s{status}")
        self.job_id = job_id
        self.job = job


class JobFailed(GengateError):
    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.job_id} {job.status}" + (f": {job.error}" if job.error else ""))
        self.job = job


_BY_STATUS: dict[int, type[GatewayAPIError]] = {
    400: ValidationError, 401: AuthError, 402: InsufficientBalanceError, 404: NotFoundError, 409: ConflictError,
    413: PayloadTooLargeError, 422: UnprocessableError, 429: RateLimitError, 502: ProviderError,
}


def error_class(status: int) -> type[GatewayAPIError]:
    return _BY_STATUS.get(status) or (ServerError if status >= 500 else GatewayAPIError)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date: rare, and not worth a parser here
        return None


def api_error(response: httpx.Response) -> GatewayAPIError:
    """The exception for an error answer (its body already read). A body that is not the spec's JSON
    (a proxy's HTML page, an empty 502) still gives an error with the HTTP status."""
    body: dict[str, Any] | None = None
    try:
        parsed = json.loads(response.content) if response.content else None
        body = parsed if isinstance(parsed, dict) else None
    except ValueError:
        pass
    status = response.status_code
    if body is not None and isinstance(body.get("message"), str):
        message = body["message"]
    else:
        text = response.text.strip()[:200] if response.content else ""
        message = text or response.reason_phrase or f"HTTP {status}"
    body = body or {}
    return error_class(status)(
        message, status_code=status, error=body.get("error") if isinstance(body.get("error"), str) else None,
        field=body.get("field"), provider=body.get("provider"),
        retry_after=_retry_after(response.headers.get("retry-after")), body=body or None,
        headers=dict(response.headers),
    )
