"""The Python client of the gateway (and of any wire-compatible one), sync and async, on httpx.

    from gengate.client import GatewayClient

    with GatewayClient() as gg:  # GENGATE_API_KEY, GENGATE_BASE_URL
        job = gg.create_image(model="flux-schnell", prompt="sunset over mountains")
        done = gg.wait_for_job(job).raise_for_status()
        gg.download(done, "sunset.png")

`AsyncGatewayClient` has the same methods, each awaited (`iter_jobs` is an async iterator).
"""

from gengate.client.aio import AsyncGatewayClient
from gengate.client.errors import (
    AuthError,
    ConflictError,
    GatewayAPIError,
    GatewayConnectionError,
    GengateError,
    InsufficientBalanceError,
    JobFailed,
    NotFoundError,
    PayloadTooLargeError,
    ProviderError,
    RateLimitError,
    ServerError,
    UnprocessableError,
    ValidationError,
    WaitTimeout,
)
from gengate.client.sync import GatewayClient
from gengate.client.types import (
    Balance,
    CacheHeaders,
    CacheInfo,
    Job,
    JobPage,
    Me,
    Output,
    Probe,
    UploadedFile,
    Usage,
    UsageRecord,
    Voice,
)

__all__ = [
    "AsyncGatewayClient", "GatewayClient",
    "Balance", "CacheHeaders", "CacheInfo", "Job", "JobPage", "Me", "Output", "Probe", "UploadedFile", "Usage",
    "UsageRecord", "Voice",
    "AuthError", "ConflictError", "GatewayAPIError", "GatewayConnectionError", "GengateError",
    "InsufficientBalanceError", "JobFailed", "NotFoundError", "PayloadTooLargeError", "ProviderError",
    "RateLimitError", "ServerError", "UnprocessableError", "ValidationError", "WaitTimeout",
]
