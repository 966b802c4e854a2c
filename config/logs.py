"""Structured logs for the API and the workers: one formatter, one redaction, one log context.

Every line is one JSON object (`GENGATE_LOG_FORMAT=json`, the default) or a plain text line
(`text`), at `GENGATE_LOG_LEVEL` and above, on standard error:

    {"ts": "2026-11-21T20:18:39.654Z", "level": "INFO", "logger": "gengate.pipeline",
     "msg": "job job_5f0c...: completed", "service": "worker", "job_id": "job_5f0c...", "account": "acct_..."}

`job_id` and `account` come from a context variable, so every line logged while a job or a request
is handled carries them, whoever logs it (our code, Celery, an SDK):
  * API: `api/metrics.HttpMetrics` opens a context per request holding the ASGI scope; the job id is
    read from the matched route's `{job_id}` when a line is written, the account is bound by
    `api.deps.get_principal`, a created job's id by `AsyncJobStore.create`.
  * workers: `workers/metrics.py` opens a context per Celery task (the job id is the task's first
    argument; a webhook delivery id names its job), the sweeper one per job it resumes; the job's
    account is bound when the step reads the job (`JobStore.get` -> `note_account`).

Secrets never reach a line: the formatter masks gateway keys (`gg_live_...`), webhook secrets
(`whsec_...`), credentials after `Bearer`/`Key`/`Token`, values of secret-looking fields
(`Authorization:`, `X-Provider-Key-*:`, `api_key=`...), every secret in the settings (the providers'
pooled keys, `GENGATE_SECRET_KEY`), and the secrets of the request or task being handled: its
bearer token and `X-Provider-Key-*` header values, and an unsealed BYOK key (`protect`).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

import orjson

MASK = "[REDACTED]"

# The current request's or task's context: {"job_id", "account", "scope" (ASGI), "secrets" (list)}.
_context: ContextVar[dict[str, Any] | None] = ContextVar("gengate_log_context", default=None)


def begin(**values: Any) -> Token:
    """A fresh context for one unit of work (a task, a swept job, a request); `end` restores the previous."""
    return _context.set({k: v for k, v in values.items() if v is not None})


def end(token: Token) -> None:
    try:
        _context.reset(token)
    except ValueError:  # made in another context (cannot happen on the paths we use): just clear
        _context.set(None)


@contextmanager
def context(**values: Any) -> Iterator[None]:
    token = begin(**values)
    try:
        yield
    finally:
        end(token)


def bind(**values: Any) -> None:
    """Add `job_id` / `account` to the current context (opening one if there is none)."""
    values = {k: v for k, v in values.items() if v is not None}
    ctx = _context.get()
    if ctx is None:
        _context.set(values)
    else:
        ctx.update(values)


def note_account(job_id: str, account: str) -> None:
    """A job was read: if it is the job this context is about, its account goes on the lines too."""
    ctx = _context.get()
    if ctx is not None and ctx.get("job_id") == job_id and "account" not in ctx:
        ctx["account"] = account


def protect(secret: str) -> str:
    """Mask `secret` in every line logged in the current context (an unsealed BYOK key); returns it."""
    if secret:
        ctx = _context.get()
        if ctx is None:
            _context.set({"secrets": [secret]})
        else:
            ctx.setdefault("secrets", []).append(secret)
    return secret


def current() -> dict[str, Any]:
    """`job_id` and `account` of the current context, as far as known (for tests and callers)."""
    job_id, account, _ = _details(_context.get())
    return {k: v for k, v in (("job_id", job_id), ("account", account)) if v}


# -- redaction -------------------------------------------------------------------------------------

# (pattern, replacement, words of which one must be in the lowercased text for the pattern to run:
# most lines contain none, and a substring test is ten times cheaper than a regex pass).
_PATTERNS: tuple[tuple[re.Pattern[str], str, tuple[str, ...]], ...] = (
    (re.compile(r"\bgg_live_[A-Za-z0-9_\-]+"), "gg_live_" + MASK, ("gg_live_",)),
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=_\-]+"), "whsec_" + MASK, ("whsec_",)),
    # Authorization schemes: `Bearer gg_...`, Fal's `Key id:secret`, Replicate's `Token r8_...`.
    (re.compile(r"\b([Bb]earer|BEARER|Key|Token|Basic)(\s+)(?!\S*\[REDACTED\])[A-Za-z0-9._~+/=:\-]{6,}"), r"\1\2" + MASK,
     ("bearer", "key", "token", "basic")),
    # Secret-looking fields, in headers, reprs, JSON and query strings.
    (re.compile(r"(?i)\b(x-provider-key-[a-z0-9]+|authorization|x-api-key|xi-api-key|api[_-]?key|access_token"
                r"|secret_key|client_secret|secret|password|token)(['\"]?\s*[:=]\s*['\"]?)(?!\S*\[REDACTED\])"
                r"[^\s'\",;&}\]]+"), r"\1\2" + MASK, ("key", "authorization", "token", "secret", "password")),
)
_MIN_SECRET = 4  # shorter values are not secrets worth masking everywhere (and would mangle text)
_static: re.Pattern[str] | None = None


def set_secrets(secrets: Iterable[str]) -> None:
    """The process-wide secrets to mask wherever they appear (from the settings)."""
    global _static
    found = sorted({s for s in secrets if s and len(s) >= _MIN_SECRET}, key=len, reverse=True)
    _static = re.compile("|".join(re.escape(s) for s in found)) if found else None


def settings_secrets(settings: Any) -> list[str]:
    """Every SecretStr of the settings, the nested providers' keys included (Fal's `id:secret`
    also by its secret half)."""
    from pydantic import BaseModel, SecretStr

    out: list[str] = []

    def walk(model: BaseModel) -> None:
        for _, value in model:
            if isinstance(value, SecretStr):
                plain = value.get_secret_value()
                out.append(plain)
                if ":" in plain:
                    out.extend(part for part in plain.split(":") if len(part) >= 8)
            elif isinstance(value, BaseModel):
                walk(value)

    walk(settings)
    return out


def redact(text: str, extra: Iterable[str] = ()) -> str:
    for secret in extra:
        if secret and len(secret) >= _MIN_SECRET and secret in text:
            text = text.replace(secret, MASK)
    if _static is not None:
        text = _static.sub(MASK, text)
    low = text.lower()
    for pattern, repl, words in _PATTERNS:
        if any(w in low for w in words):
            text = pattern.sub(repl, text)
    return text


def _details(ctx: dict[str, Any] | None) -> tuple[str | None, str | None, list[str]]:
    """(job_id, account, secrets) of a context; a request's are read from its ASGI scope only now,
    when a line is written, so a request that logs nothing pays nothing."""
    if not ctx:
        return None, None, []
    job_id, account = ctx.get("job_id"), ctx.get("account")
    secrets = list(ctx.get("secrets") or ())
    scope = ctx.get("scope")
    if scope is not None:
        if job_id is None:
            value = (scope.get("path_params") or {}).get("job_id")
            if isinstance(value, str) and value.startswith("job_"):
                job_id = value[:64]
        for name, value in scope.get("headers") or ():
            if name == b"authorization":
                secrets.append(value.decode("latin-1").split(" ", 1)[-1].strip())
            elif name.startswith(b"x-provider-key-"):
                secrets.append(value.decode("latin-1").strip())
    return job_id, account, secrets


# -- formatters ------------------------------------------------------------------------------------

def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, service, job_id, account, exc."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        job_id, account, secrets = _details(_context.get())
        data: dict[str, Any] = {
            "ts": _iso(record.created), "level": record.levelname, "logger": record.name,
            "msg": redact(record.getMessage(), secrets),
        }
        if self.service:
            data["service"] = self.service
        if job_id:
            data["job_id"] = job_id
        if account:
            data["account"] = account
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = redact(record.exc_text, secrets)
        if record.stack_info:
            data["stack"] = redact(self.formatStack(record.stack_info), secrets)
        return orjson.dumps(data, default=str).decode()


class TextFormatter(logging.Formatter):
    """`2026-11-21 20:18:39,654 INFO gengate.pipeline [job_... acct_...]: message`, redacted."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(gengate_ids)s: %(message)s")
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        job_id, account, secrets = _details(_context.get())
        ids = " ".join(v for v in (job_id, account) if v)
        record.gengate_ids = f" [{ids}]" if ids else ""
        return redact(super().format(record), secrets)


_QUIET = ("httpx", "httpcore", "hpack")  # a line per HTTP call (every provider poll): DEBUG only


def configure(service: str, settings: Any = None) -> None:
    """Send this process's logs, uvicorn's and Celery's included, through one redacting handler on
    standard error. Idempotent; leaves handlers it did not install alone (a test's capture)."""
    if settings is None:
        from gengate.config.settings import get_settings

        settings = get_settings()
    level = logging.getLevelName(str(settings.log_level).upper())
    if not isinstance(level, int):
        level = logging.INFO
    set_secrets(settings_secrets(settings))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if settings.log_format == "json" else TextFormatter(service))
    handler.setLevel(level)
    handler.gengate = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "gengate", False):
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn installs its own text handlers on these. Its access log is on only if it has a handler
    # (uvicorn decides by `hasHandlers()`): with `--no-access-log` it has none and must stay cut off.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if name != "uvicorn.access" or logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
    for name in _QUIET:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)
    logging.captureWarnings(True)  # Python warnings become log lines too (logger `py.warnings`)
