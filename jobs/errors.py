"""The gateway's error tree, each class carrying the spec's error code and HTTP status.

    GatewayError (500 InternalError)
    ├── ValidationError            400  bad request body or parameter (has `field`)
    ├── AuthError                  401  missing, malformed or revoked API key
    ├── InsufficientBalanceError   402
    ├── NotFoundError              404  job, file or output unknown *to this account*
    ├── ConflictError              409  (idempotency: first request still in flight)
    ├── PayloadTooLargeError       413
    ├── UnprocessableError         422  (idempotency: same key, different body)
    ├── RateLimitError             429  (has `retry_after`)
    ├── ProviderError              502  upstream failed (has `provider`)
    └── UnavailableError           503  our own backing service (Redis) is down

`api/errors.py` turns any of these into the spec's JSON body in one place.
"""

from __future__ import annotations


class GatewayError(Exception):
    code = "InternalError"
    status = 500

    def __init__(self, message: str, *, field: str | None = None, provider: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.provider = provider

    def to_dict(self) -> dict:
        body: dict = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.provider is not None:
            body["provider"] = self.provider
        body["statusCode"] = self.status
        return body


class ValidationError(GatewayError):
    code, status = "ValidationError", 400


class AuthError(GatewayError):
    code, status = "AuthError", 401


class InsufficientBalanceError(GatewayError):
    code, status = "InsufficientBalanceError", 402


class NotFoundError(GatewayError):
    code, status = "NotFoundError", 404


class ConflictError(GatewayError):
    code, status = "ConflictError", 409


class PayloadTooLargeError(GatewayError):
    code, status = "PayloadTooLargeError", 413


class UnprocessableError(GatewayError):
    code, status = "UnprocessableError", 422


class RateLimitError(GatewayError):
    code, status = "RateLimitError", 429

    def __init__(self, message: str, *, retry_after: int = 1, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers or {}  # RateLimit-Policy / RateLimit (IETF draft)


class ProviderError(GatewayError):
    code, status = "ProviderError", 502


class UnavailableError(GatewayError):
    code, status = "ServiceUnavailable", 503
