"""All runtime configuration, read from `GENGATE_*` environment variables.

One settings class, nested per provider (`GENGATE_FAL__API_KEY`, `GENGATE_FAL__BASE_URL`, ...),
built once by the cached `get_settings()`. Tests and the `gengate up` supervisor configure child
processes through the environment, never by editing a settings object in place.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


ROUTING_POLICIES = ("catalog", "cheapest", "fastest")  # GENGATE_ROUTING's policies besides a provider list


class ProviderSettings(BaseModel):
    """One upstream provider: the pooled key (None means "use the simulator" under `gengate up`)."""

    api_key: SecretStr | None = Field(
        default=None, description="The server's pooled key for this provider (Higgsfield: `id:secret`). Unset: only "
        "users' own keys (BYOK) reach it; `gengate up` starts a simulator instead.")
    base_url: str | None = Field(default=None, description="Override the provider's API base URL (simulators, proxies).")
    connect_timeout: float = Field(default=5.0, description="Seconds to open a connection to the provider.")
    timeout: float = Field(default=30.0, description="Seconds one provider HTTP call may take.")
    clients_max: int = Field(
        default=64, ge=1, description="Most SDK clients (one per key: the pooled key and users' own) a worker "
        "keeps for this provider; the least recently used is dropped past it.")
    client_idle_seconds: float = Field(
        default=300.0, gt=0, description="A client unused this long is dropped, and with it a user's plain key.")

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_unset(cls, value: Any) -> Any:
        # `GENGATE_FAL__API_KEY=` says "no pooled key", not "the empty key" every call would send.
        return None if isinstance(value, str) and not value.strip() else value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENGATE_", env_nested_delimiter="__", extra="ignore")

    redis_url: str | None = Field(
        default=None,
        description="Redis for job state and the Celery broker. Unset: the private Redis that `gengate up` "
        "started under the data dir, else redis://127.0.0.1:6379/0.",
    )
    redis_username: str | None = Field(
        default=None, description="Redis ACL user, when `GENGATE_REDIS_URL` names none (hosted Redis, `--aclfile`).")
    redis_password: SecretStr | None = Field(
        default=None, description="Redis password (`requirepass`, or the ACL user's), when the URL carries none: "
        "keeps the secret out of the URL that logs and process lists may show.")
    redis_tls_ca_file: Path | None = Field(
        default=None, description="With a `rediss://` URL: the CA bundle that signed the server's certificate "
        "(default: the system's CAs).")
    redis_tls_cert_file: Path | None = Field(
        default=None, description="With a `rediss://` URL: a client certificate, for servers that ask for one.")
    redis_tls_key_file: Path | None = Field(default=None, description="The client certificate's private key.")
    redis_tls_verify: bool = Field(
        default=True, description="With a `rediss://` URL: check the server's certificate and host name. Turn off "
        "only for a self-signed server on a private network.")
    data_dir: Path = Field(default=Path(".gengate"), description="Local state: private Redis, storage, run files.")
    api_host: str = Field(default="127.0.0.1", description="Address `gengate api` and `gengate up` listen on.")
    api_port: int = Field(default=8000, description="Port of the API.")
    api_workers: int = Field(default=1, ge=1, description="API processes `gengate api` runs (uvicorn `--workers`).")
    api_redis_connections: int = Field(
        default=512, ge=4, description="Redis connections each API process may open for ordinary requests (SSE "
        "streams have their own, `GENGATE_SSE_MAX_STREAMS_PER_PROCESS`); a request finding none free gets a 503.")
    public_url: str | None = Field(default=None, description="Base of output URLs; default http://127.0.0.1:<api_port>.")
    storage_dir: Path | None = Field(default=None, description="Local storage root; default <data_dir>/storage.")
    storage_url: str | None = Field(
        default=None, description="Where outputs and uploads live: `file:///path` (a local directory the API "
        "and every worker share; default `file://<GENGATE_STORAGE_DIR>`) or `s3://bucket/prefix` (any "
        "S3-compatible store: AWS S3, Cloudflare R2, MinIO, GCS's S3 interoperability), with "
        "`GENGATE_S3_ENDPOINT_URL`, `GENGATE_S3_REGION` and the standard AWS_ACCESS_KEY_ID / "
        "AWS_SECRET_ACCESS_KEY (or the provider chain: instance roles, web identity).")
    s3_endpoint_url: str | None = Field(
        default=None, description="The S3 API's endpoint for a store other than AWS (R2, MinIO, ...).")
    s3_region: str | None = Field(default=None, description="The bucket's region (AWS_DEFAULT_REGION otherwise).")
    storage_public_url: str | None = Field(
        default=None, description="With object storage: a public base (a CDN or public bucket domain) under "
        "which `o/<name>` and `u/<name>` are the stored objects. Output and upload URLs then point there; "
        "unset, they stay on the API, which redirects to (or streams) the object.")
    storage_serve: Literal["redirect", "stream"] = Field(
        default="redirect", description="With object storage and no public URL: how `/o/…` and `/u/…` answer: a "
        "redirect to a short-lived presigned URL, or the object streamed through the API (range requests "
        "either way).")
    storage_presign_seconds: int = Field(
        default=300, ge=1, description="How long a presigned URL of a stored object stays valid.")

    job_ttl_seconds: int = Field(default=30 * 24 * 3600, description="How long a finished job stays readable.")
    poll_initial_seconds: float = Field(default=0.25, description="First provider poll after submission.")
    poll_max_seconds: float = Field(default=10.0, description="Cap of the poll backoff.")
    provider_webhooks: str = Field(
        default="auto",
        description="Ask providers to call back when a job ends (auto: when GENGATE_PUBLIC_URL is set, since "
        "providers must reach it; on; off). A callback only makes the job's next poll happen at once: "
        "the poll stays the authority, and the fallback when a callback never comes.",
    )
    poll_max_with_webhooks_seconds: float = Field(
        default=30.0, description="How often a job whose provider will call back is polled, as the fallback "
        "for a lost callback (after the look right after submission).")
    poll_backoff: float = Field(default=1.5, description="Factor between successive provider polls.")
    step_lease_seconds: float = Field(
        default=60.0, description="A job whose pipeline step shows no progress for this long is re-driven by the sweeper."
    )
    step_time_limit_seconds: float = Field(
        default=100.0, description="Soft time limit of one pipeline task (the hard limit is 20 s more)."
    )
    routing: dict[str, str] = Field(
        default_factory=dict,
        description="Routing policy per model served by several providers, as JSON: "
        '`{"flux-schnell": "replicate,fal", "kling-v2.1": "cheapest", "*": "fastest"}`. A policy is `catalog` '
        "(the catalog's order, the default), `cheapest` (the lowest price of the request first), `fastest` "
        "(the lowest median duration of the model's recent jobs on each provider first; providers without enough "
        "jobs yet keep the catalog's order after the measured ones), or a comma-separated list of providers (only "
        "those, in that order). `*` is the default for models not named.")
    passthrough_prices: dict[str, int] = Field(
        default_factory=dict,
        description="Cents per job of endpoints reached by id (`fal:<endpoint id>`, `replicate:<owner>/<model>"
        "[:<version>]`; README, Any endpoint by id), as JSON: "
        '`{"fal:fal-ai/flux/krea": 4, "replicate:*": 5}`. The exact id first (a Replicate version: then its model '
        "without the version), then `<provider>:*`. An endpoint no entry prices runs only on the caller's own key "
        "(X-Provider-Key-*, or one saved for the account): the pooled key is never spent at an unknown price.")
    fallback: bool = Field(
        default=True, description="Whether a job whose provider refused it (an HTTP error before acceptance, a "
        "connection refused, an open circuit) or failed it moves on to the model's next provider.")
    provider_retries: int = Field(
        default=5, description="How often a retryable provider error (429, 5xx, timeout) is retried per step.")
    circuit_failures: int = Field(
        default=5, ge=1, description="Consecutive retryable failures (5xx, 429, connection errors, timeouts) of one "
        "provider, counted over every worker, that open its circuit breaker: new jobs then go to another provider "
        "of the model, if any, without calling it.")
    circuit_cooldown_seconds: float = Field(
        default=30.0, gt=0, description="How long an open circuit sends nothing to its provider; then one call goes "
        "as a probe (half-open): its success closes the circuit, its failure opens it for another cool-down.")
    circuit_probe_seconds: float = Field(
        default=60.0, gt=0, description="How long a half-open circuit's probe holds its slot: a probe that never "
        "reports (its worker died) lets another call probe after this.")
    retry_base_seconds: float = Field(default=0.5, description="First retry delay; doubles, with jitter.")
    retry_max_seconds: float = Field(default=30.0, description="Cap of a retry delay, Retry-After included.")
    sweep_interval_seconds: float = Field(default=0.05, description="How often each worker looks for due polls.")
    sweep_batch: int = Field(default=200, description="Most due polls one sweep enqueues.")
    sse_keepalive_seconds: float = Field(default=15.0, description="Seconds between keepalive comments on an SSE stream.")
    sse_max_seconds: float = Field(default=600.0, description="An SSE stream closes after this long; clients reconnect.")
    sse_max_streams_per_account: int = Field(
        default=20, ge=1, description="Most SSE streams one account may have open at once, over all API processes "
        "(429 past it).")
    sse_max_streams_per_process: int = Field(
        default=256, ge=1, description="Most SSE streams one API process serves at once (429 past it); they read "
        "Redis through a pool of this size, apart from the pool that serves every other request.")
    worker_concurrency: int = Field(default=16, description="Threads per worker process (steps are I/O-bound).")
    sweeper_threads: int = Field(
        default=64, ge=1,
        description="Most threads of each worker's sweeper, which polls providers for waiting jobs. Up to "
        "`GENGATE_WORKER_CONCURRENCY` of them work at once; one waiting over a second on its provider (a "
        "provider that hangs) lets another start, up to this many.")
    max_output_bytes: int = Field(default=2 * 1024**3, description="Refuse provider outputs larger than this.")

    cache_ttl_seconds: int = Field(default=30 * 24 * 3600, description="How long a result stays in the cache.")
    cache_shared_across_accounts: bool = Field(
        default=False,
        description="Share cached results (and in-flight provider calls) between accounts. Off: each account "
        "has its own cache, so no tenant can learn what another one generated.",
    )
    upload_max_bytes: int = Field(default=50 * 1024 * 1024, description="Largest file `POST /v1/files` accepts.")
    upload_ttl_seconds: int = Field(
        default=30 * 24 * 3600, ge=1, description="How long an uploaded file is kept; then it is deleted (its URL "
        "answers 404) and its bytes leave the account's storage quota. Outputs live as long as their job "
        "(`GENGATE_JOB_TTL_SECONDS`).")
    storage_min_free_bytes: int = Field(
        default=1024**3, ge=0, description="Free disk space the storage keeps: an upload or output that would leave "
        "less is refused (503 for uploads; the job fails) instead of filling the disk.")
    retention_interval_seconds: float = Field(
        default=600.0, gt=0, description="How often a worker deletes expired uploads and outputs and the stored "
        "bytes no name points to any more (one worker at a time).")
    probe_max_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1, description="Largest file `POST /v1/ffmpeg/probe` fetches from a URL.")
    probe_threads: int = Field(
        default=4, ge=1, description="Probes one API process runs at once, in threads of their own (not the pool "
        "that URL checks use); up to as many more wait, and further ones get a 429.")
    max_request_bytes: int = Field(
        default=1024 * 1024, description="Largest request body of any other endpoint (JSON): larger ones are "
        "refused with 413 before they are read.")
    idempotency_ttl_seconds: int = Field(default=24 * 3600, description="How long an Idempotency-Key is remembered.")
    usage_max_records: int = Field(
        default=10_000, ge=1,
        description="Most records `GET /v1/usage` answers in one piece when asked without `limit` or `cursor` "
        "(the whole period, as the spec's clients expect). A period holding more is refused with a 400 "
        "saying to page (`limit`, `cursor`) or to ask for fewer days, never answered cut short.")

    allow_private_hosts: str = Field(
        default="",
        description="Comma-separated host names or CIDRs that user URLs (input files, webhooks) may reach even "
        "though they are not public (simulators, private deployments). Everything else must resolve to "
        "public addresses only.",
    )
    fetch_max_bytes: int = Field(default=512 * 1024 * 1024, description="Largest input file fetched from a user URL.")
    fetch_timeout_seconds: float = Field(default=30.0, description="Time cap of fetching one user URL, whole body.")
    fetch_max_redirects: int = Field(default=5, description="Redirects followed (each one re-checked) per user URL.")

    media_time_limit_seconds: float = Field(
        default=90.0, description="Wall-clock cap of one media job's FFmpeg work (keep it under the step time limit).")
    media_cpu_seconds: int = Field(default=240, description="CPU seconds one FFmpeg run may use (all its threads).")
    media_max_output_bytes: int = Field(default=2 * 1024**3, description="Largest file one FFmpeg run may write.")
    media_max_memory_bytes: int = Field(default=4 * 1024**3, description="Address-space cap of one FFmpeg run.")
    media_max_files: int = Field(
        default=64, description="Most files one FFmpeg run may create in its job's directory, watched while it runs "
        "(a custom command's run: only its declared outputs).")
    media_max_segments: int = Field(default=200, description="Most segments `POST /v1/ffmpeg/slice` may cut.")
    media_max_job_bytes: int = Field(
        default=2 * 1024**3, ge=1,
        description="Most bytes one media job may hold on disk at once in its working directory (inputs, outputs, "
        "scratch), watched while FFmpeg runs: past it FFmpeg is killed and the job fails. A job starts only when "
        "its working directory's file system has this much free.")
    media_max_outputs: int = Field(
        default=8, ge=1, description="Most output files one custom FFmpeg command (`POST /v1/ffmpeg`) may declare.")
    media_max_inputs: int = Field(default=4, ge=1, description="Most input files one media job may name.")
    media_max_input_bytes: int = Field(
        default=1024**3, ge=1, description="Most bytes of all the input files of one media job together.")
    media_user: str = Field(
        default="nobody",
        description="The user FFmpeg runs as when the worker may switch users (root with CAP_SETUID, CAP_SETGID, "
        "CAP_CHOWN and CAP_DAC_OVERRIDE); empty: never switch. A worker that may not switch runs FFmpeg as itself, "
        "still without network, environment or access to other processes (README, Media processing).")
    media_work_dir: Path | None = Field(
        default=None, description="Where media jobs get their private working directories; default the system's "
        "temporary directory. Its parents must be traversable by GENGATE_MEDIA_USER.")

    plan_free_requests_per_minute: int = Field(default=10, description="Job-creating requests a minute, free plan.")
    plan_free_concurrent_jobs: int = Field(default=2, description="Jobs queued or processing at once, free plan.")
    plan_pro_requests_per_minute: int = Field(default=100, description="Job-creating requests a minute, pro plan.")
    plan_pro_concurrent_jobs: int = Field(default=10, description="Jobs queued or processing at once, pro plan.")
    plan_enterprise_requests_per_minute: int = Field(
        default=1000, description="Enterprise default; `gengate accounts limits` sets an account's own.")
    plan_enterprise_concurrent_jobs: int = Field(
        default=100, description="Enterprise default; `gengate accounts limits` sets an account's own.")
    plan_free_storage_bytes: int = Field(
        default=1024**3, ge=0, description="Bytes of uploaded files an account may keep, free plan (0 = unlimited).")
    plan_pro_storage_bytes: int = Field(default=20 * 1024**3, ge=0, description="The same, pro plan.")
    plan_enterprise_storage_bytes: int = Field(default=200 * 1024**3, ge=0, description="The same, enterprise plan.")
    dev_credit_cents: int = Field(
        default=10_000_000, description="Credit given to the account of the key `gengate up` prints (dev plan).")
    media_price_cents: int = Field(default=1, description="Price of one media (FFmpeg) job, in cents.")

    webhook_retry_delays: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        description="Seconds between webhook delivery attempts after the first (Standard Webhooks' schedule); "
        "comma-separated. Tests shorten it.",
    )
    webhook_timeout_seconds: float = Field(default=10.0, description="Time a webhook receiver has to answer.")

    secret_key: SecretStr | None = Field(
        default=None,
        description="Seals users' own provider keys (BYOK) between API and workers. Unset: a random key kept in "
        "<data_dir>/secret.key, shared by every process using that data dir. Set it when API and workers "
        "run on different machines.",
    )
    byok_ttl_seconds: int = Field(default=24 * 3600, description="A sealed BYOK key outlives no job longer than this.")

    log_format: Literal["json", "text"] = Field(
        default="json", description="Log lines of the API and workers: one JSON object per line, or plain text.")
    log_level: str = Field(default="INFO", description="Lowest level logged (DEBUG, INFO, WARNING, ERROR).")
    metrics_token: SecretStr | None = Field(
        default=None, description="When set, the API's /metrics answers only requests with `Authorization: Bearer "
        "<this token>` (a 401 otherwise): set it wherever the API is reachable from outside.")
    admin_key: SecretStr | None = Field(
        default=None, description="When set, `GET /v1/admin/overview` (the dashboard's Operators page: workers, queues, "
        "provider error rates, recent failures of every account) answers requests with `Authorization: Bearer "
        "<this key>`; unset, it answers 401 to everyone. Use a long random value.")
    account_max_keys: int = Field(
        default=20, ge=1, description="Most active API keys one account may hold; `POST /v1/keys` past it is a 409.")
    worker_metrics_port: int = Field(
        default=0,
        description="Port of a worker's Prometheus endpoint (/metrics); 0 = off. Each worker on one host needs a "
        "port of its own.",
    )
    worker_metrics_host: str = Field(default="127.0.0.1", description="Address the worker's metrics endpoint binds.")
    worker_heartbeat_seconds: float = Field(
        default=5.0,
        description="How often each worker records that it is alive; /readyz counts workers seen within three of these.",
    )

    crash_at: str = Field(
        default="",
        description="For resilience tests only, never in production: SIGKILL the worker at named pipeline points, "
        "e.g. `submit.after_accept:0.3` (probability) or `poll.before:#3` (the 3rd time); see tasks/crashpoints.py.",
    )

    fal: ProviderSettings = ProviderSettings()
    replicate: ProviderSettings = ProviderSettings()
    # ElevenLabs answers synchronously with the audio itself (long for music), inside one Celery task:
    # the read timeout must stay under the task's soft time limit (100 s).
    elevenlabs: ProviderSettings = ProviderSettings(timeout=90.0)
    higgsfield: ProviderSettings = ProviderSettings()
    piapi: ProviderSettings = ProviderSettings()

    @field_validator("routing")
    @classmethod
    def _routing_names_the_catalog(cls, value: dict[str, str]) -> dict[str, str]:
        # Refused at startup: a typo must not silently route everything in the catalog's order.
        from gengate.config.catalog import PROVIDERS, ROUTES

        for name, policy in value.items():
            if name != "*" and name not in ROUTES:
                raise ValueError(f"GENGATE_ROUTING names no model of the catalog: {name!r}")
            if policy in ROUTING_POLICIES:
                continue
            listed = [p.strip() for p in policy.split(",") if p.strip()]
            served = {r.provider for r in ROUTES[name]} if name != "*" else set(PROVIDERS)
            if not listed or not set(listed) <= served:
                raise ValueError(f"GENGATE_ROUTING[{name!r}] = {policy!r}: one of {', '.join(ROUTING_POLICIES)}, or a "
                                 f"comma-separated list of the providers that serve it ({', '.join(sorted(served))})")
        return value

    @field_validator("admin_key", "metrics_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `GENGATE_ADMIN_KEY=` (Compose's `${GENGATE_ADMIN_KEY:-}`) means "not set": an empty token
        # would otherwise be matched by a request sending `Authorization: Bearer ` with nothing after it.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("passthrough_prices")
    @classmethod
    def _passthrough_prices(cls, prices: dict[str, int]) -> dict[str, int]:
        # Refused at startup: a typo (`fal/x`, `Fal:*`) or a negative price must not leave endpoints
        # silently unpriced (BYOK only) or pay the caller.
        for key, cents in prices.items():
            provider, sep, endpoint = key.partition(":")
            if provider not in ("fal", "replicate") or not sep or not endpoint:
                raise ValueError(f"GENGATE_PASSTHROUGH_PRICES: {key!r} is not `fal:<endpoint id>`, "
                                 "`replicate:<owner>/<model>[:<version>]` or `<provider>:*`")
            if cents < 0:
                raise ValueError(f"GENGATE_PASSTHROUGH_PRICES[{key!r}]: a price is whole cents, 0 or more")
        return prices

    @property
    def provider_webhooks_on(self) -> bool:
        return self.provider_webhooks == "on" or (self.provider_webhooks == "auto" and self.public_url is not None)

    @property
    def webhook_delays(self) -> list[float]:
        return [float(x) for x in self.webhook_retry_delays.split(",") if x.strip()]

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def storage_root(self) -> Path:
        return self.storage_dir or self.data_dir / "storage"

    @property
    def base_public_url(self) -> str:
        return (self.public_url or f"http://127.0.0.1:{self.api_port}").rstrip("/")

    @property
    def file_url_base(self) -> str:
        """The base of stored files' URLs (`<base>/o/<name>`, `<base>/u/<name>`)."""
        return (self.storage_public_url or self.base_public_url).rstrip("/")

    @property
    def file_url_bases(self) -> tuple[str, ...]:
        """Every base under which a URL names one of our stored files (the API's, and the storage's)."""
        return tuple(dict.fromkeys((self.file_url_base, self.base_public_url)))

    def resolved_redis_url(self) -> str:
        """The explicit URL, else the private Redis a running `gengate up` recorded, else the local default."""
        if self.redis_url:
            return self.redis_url
        recorded = self.run_dir / "redis.url"
        if recorded.is_file():
            return recorded.read_text().strip()
        return "redis://127.0.0.1:6379/0"

    def redis_options(self) -> dict[str, Any]:
        """Keyword arguments for every redis-py client of ours, beside `resolved_redis_url()`: the
        credentials (a URL's own win, as redis-py merges them over these) and, for `rediss://`, TLS."""
        options: dict[str, Any] = {}
        if self.redis_username:
            options["username"] = self.redis_username
        if self.redis_password is not None:
            options["password"] = self.redis_password.get_secret_value()
        if self.resolved_redis_url().startswith("rediss://"):
            options.update(ssl_cert_reqs="required" if self.redis_tls_verify else "none",
                           ssl_check_hostname=self.redis_tls_verify, **self._tls_files())
        return options

    def broker_url(self) -> str:
        """The Celery broker URL: the Redis URL, with the credentials of the settings written in when it
        has none (kombu reads them from the URL only)."""
        url = self.resolved_redis_url()
        parts = urlsplit(url)
        if parts.username or parts.password or (self.redis_username is None and self.redis_password is None):
            return url
        user = quote(self.redis_username or "", safe="")
        password = quote(self.redis_password.get_secret_value(), safe="") if self.redis_password else ""
        auth = f"{user}:{password}@" if password else f"{user}@"
        return urlunsplit(parts._replace(netloc=auth + parts.netloc))

    def broker_ssl(self) -> dict[str, Any] | None:
        """Celery's `broker_use_ssl` for a `rediss://` broker (None otherwise)."""
        if not self.resolved_redis_url().startswith("rediss://"):
            return None
        return {"ssl_cert_reqs": ssl.CERT_REQUIRED if self.redis_tls_verify else ssl.CERT_NONE, **self._tls_files()}

    def _tls_files(self) -> dict[str, str]:
        files = {"ssl_ca_certs": self.redis_tls_ca_file, "ssl_certfile": self.redis_tls_cert_file,
                 "ssl_keyfile": self.redis_tls_key_file}
        return {key: str(path) for key, path in files.items() if path is not None}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
