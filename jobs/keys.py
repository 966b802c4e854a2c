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
