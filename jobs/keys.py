"""Every Redis key gengate writes, in one place (Celery's own queue keys are kombu's)."""

from __future__ import annotations

PREFIX = "gengate"

JOB = PREFIX + ":job:{}"  # hash: one field per job attribute, each value JSON-encoded
JOB_EVENTS = PREFIX + ":job:{}:events"  # stream: one entry per transition, carrying the public job JSON
JOB_KEY = PREFIX + ":job:{}:key"  # string: the job's sealed BYOK provider key, deleted at the terminal state
SCHEDULE = PREFIX + ":schedule"  # zset job_id -> unix time the sweeper must next look at the job
ACCOUNT = PREFIX + ":account:{}"  # hash: account profile
ACCOUNT_JOBS = PREFIX + ":account:{}:jobs"  # zset job_id -> created (ms), newest-first listing
API_KEY = PREFIX + ":apikey:{}"  # hash: sha256 of the secret, account, created_at, revoked
ACCOUNT_PROVIDER_KEYS = PREFIX + ":account:{}:provider_keys"  # hash provider -> sealed key saved by the account
ACCOUNT_WEBHOOK_SECRET = PREFIX + ":account:{}:webhook_secret"  # string: sealed Standard Webhooks secret (whsec_...)
ACCOUNT_FILES = PREFIX + ":account:{}:files"  # hash sha256 -> file_id: X-Content-Hash deduplication, per account
FILE = PREFIX + ":file:{}"  # hash: an uploaded file's account, sha256, size, media_type, name, created_at
UPLOADS_EXPIRY = PREFIX + ":uploads:expiry"  # zset file_id -> unix time the upload is deleted (retention)
OUTPUTS_EXPIRY = PREFIX + ":outputs:expiry"  # zset job_id -> unix time its output files are deleted (retention)
RETENTION_LOCK = PREFIX + ":retention:lock"  # string: the worker deleting expired files now (one at a time)
CACHE = PREFIX + ":cache:{}:{}"  # string (scope, key hex): JSON of a cached result {sha, media_type, ext, job_id}
INFLIGHT = PREFIX + ":inflight:{}:{}"  # string (scope, key hex): the job whose provider call identical jobs share
JOB_FOLLOWERS = PREFIX + ":job:{}:followers"  # set: jobs waiting on this job's provider call
IDEMPOTENCY = PREFIX + ":idem:{}:{}"  # string (account, sha256 of path + key): pending or the stored first response
WEBHOOKS_DUE = PREFIX + ":webhooks:due"  # zset delivery id -> unix time of its next attempt
WEBHOOK = PREFIX + ":webhook:{}"  # hash: one delivery (job_id, event, attempts)
# Metrics kept where the truth is, so every API and worker process counts into the same numbers.
STATS_JOBS = PREFIX + ":stats:jobs"  # hash "created|completed|failed|cancelled" + "|provider|model" -> count
STATS_CACHE = PREFIX + ":stats:cache"  # hash "hit|miss|bypass|provider|model" -> completed jobs by cache outcome
RECENT_FAILURES = PREFIX + ":recent_failures"  # list of job ids, newest first: the last jobs that failed (operators)
WORKERS = PREFIX + ":workers"  # zset worker hostname -> Redis time of its sweeper's last heartbeat
# Provider health (jobs/health.py), shared by every worker. Every per-provider key starts with
# PROVIDER_HEALTH + "<provider>:", which the snapshot script builds the names from.
PROVIDERS_SEEN = PREFIX + ":providers"  # set: every provider whose calls were recorded
PROVIDER_HEALTH = PREFIX + ":provider:"
PROVIDER_CIRCUIT = PROVIDER_HEALTH + "{}:circuit"  # hash: failures, opened_at, probe_at, probe_until (Redis time)
PROVIDER_OUTCOMES = PROVIDER_HEALTH + "{}:outcomes"  # list "1"/"0", newest first: the last calls' outcomes
PROVIDER_LATENCY = PROVIDER_HEALTH + "{}:latency"  # list of seconds, newest first: the last calls' latency
PROVIDER_DURATIONS = PROVIDER_HEALTH + "{}:durations:{}"  # list of seconds, newest first: (provider, model) jobs
# Accounts: the ACCOUNT hash also holds plan, balance_cents, holds_cents and optional rpm / concurrency.
ACCOUNT_KEYS = PREFIX + ":account:{}:keys"  # set of the account's API key ids
ACCOUNT_ACTIVE = PREFIX + ":account:{}:active"  # zset job_id -> created ms: the account's live jobs (concurrency)
ACCOUNT_STREAMS = PREFIX + ":account:{}:streams"  # zset slot id -> ms its SSE stream must have ended by
ACCOUNT_RATE = PREFIX + ":account:{}:rate"  # string: GCRA theoretical arrival time (ms) of job-creating requests
ACCOUNT_LEDGER = PREFIX + ":account:{}:ledger"  # stream: every money movement (credit, hold, capture, release)
ACCOUNT_LEDGER_INDEX = PREFIX + ":account:{}:ledger_index"  # hash "job|kind" -> cents: each movement happens once
ACCOUNT_USAGE = PREFIX + ":account:{}:usage"  # zset completed ms -> usage record JSON
# hash UTC day (days since 1970-01-01, as the Lua computes it) -> cents of that day's usage records;
# written with the record in TERMINAL_LUA so GET /v1/usage totals a period by its days, not its records
ACCOUNT_USAGE_DAYS = PREFIX + ":account:{}:usage_days"


def job(job_id: str) -> str:
    return JOB.format(job_id)


def job_events(job_id: str) -> str:
    return JOB_EVENTS.format(job_id)


def job_key(job_id: str) -> str:
    return JOB_KEY.format(job_id)


def account_provider_keys(account_id: str) -> str:
    return ACCOUNT_PROVIDER_KEYS.format(account_id)


def account(account_id: str) -> str:
    return ACCOUNT.format(account_id)


def account_jobs(account_id: str) -> str:
    return ACCOUNT_JOBS.format(account_id)


def api_key(key_id: str) -> str:
    return API_KEY.format(key_id)


def account_webhook_secret(account_id: str) -> str:
    return ACCOUNT_WEBHOOK_SECRET.format(account_id)


def account_files(account_id: str) -> str:
    return ACCOUNT_FILES.format(account_id)


def file(file_id: str) -> str:
    return FILE.format(file_id)


def cache(scope: str, key_hex: str) -> str:
    return CACHE.format(scope, key_hex)


def inflight(scope: str, key_hex: str) -> str:
    return INFLIGHT.format(scope, key_hex)


def job_followers(job_id: str) -> str:
    return JOB_FOLLOWERS.format(job_id)


def idempotency(account_id: str, digest: str) -> str:
    return IDEMPOTENCY.format(account_id, digest)


def webhook(delivery_id: str) -> str:
    return WEBHOOK.format(delivery_id)


def account_active(account_id: str) -> str:
    return ACCOUNT_ACTIVE.format(account_id)


def account_rate(account_id: str) -> str:
    return ACCOUNT_RATE.format(account_id)


def account_ledger(account_id: str) -> str:
    return ACCOUNT_LEDGER.format(account_id)


def account_ledger_index(account_id: str) -> str:
    return ACCOUNT_LEDGER_INDEX.format(account_id)


def account_usage(account_id: str) -> str:
    return ACCOUNT_USAGE.format(account_id)


def account_usage_days(account_id: str) -> str:
    return ACCOUNT_USAGE_DAYS.format(account_id)


def account_keys(account_id: str) -> str:
    return ACCOUNT_KEYS.format(account_id)


def account_streams(account_id: str) -> str:
    return ACCOUNT_STREAMS.format(account_id)


def provider_circuit(provider: str) -> str:
    return PROVIDER_CIRCUIT.format(provider)


def provider_outcomes(provider: str) -> str:
    return PROVIDER_OUTCOMES.format(provider)


def provider_latency(provider: str) -> str:
    return PROVIDER_LATENCY.format(provider)


def provider_durations(provider: str, model: str) -> str:
    return PROVIDER_DURATIONS.format(provider, model)
