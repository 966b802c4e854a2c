"""From a validated request body to a queued job (or a cache hit): catalog checks, URL safety, the
provider key, the cache look-up, and one round trip that writes the job and queues its first step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.datastructures import Headers

from gengate.api.file_kinds import file_kinds
from gengate.api.provider_keys import HEADERS, from_header, saved_or_pooled
from gengate.api.schemas import _JobOptions, _Request
from gengate.api.stored import off_loop
from gengate.api import routing
from gengate.api.resolve import choose_mode, passthrough_fields, pinned, resolve
from gengate.api.routing import RoutePlan, fastest_p50
from gengate.config.catalog import PASSTHROUGH, PROMPT_OPTIONAL, ROUTES, ModelSpec, is_passthrough
from gengate.config.settings import Settings
from gengate.jobs import keys, states
from gengate.jobs.cache import (
    DEFAULT,
    NO_STORE,
    Entry,
    compute_key,
    decode_own_hash,
    named_inputs,
    mode_from_headers,
    own_hash_lookup,
    own_name,
    public_key,
    scope,
)
from gengate.jobs.accounts import CONCURRENCY_RETRY_AFTER, Admission, RateDecision, rate_args, rate_decision, unadmit_args
from gengate.jobs.errors import InsufficientBalanceError, RateLimitError, UnavailableError, ValidationError
from gengate.jobs.record import Job, new_job_id, utcnow_iso
from gengate.jobs.store import AsyncJobStore
from gengate.storage import get_storage
from gengate.storage.fetch import UnsafeURL, check_url
from gengate.tasks.enqueue import SUBMIT, step_message

MUSIC_SECONDS = (3, 600)  # ElevenLabs music_length_ms 3,000-600,000
# How long a submission whose creating script lost its connection waits for Redis to say whether the
# job exists: longer than a Redis restart (the resilience suite's take 8 s), short of a client timeout.
UNKNOWN_OUTCOME_WAIT_SECONDS = 15.0


def check_params(spec: ModelSpec, params: dict[str, Any], options: dict[str, Any] | None = None,
                 kinds: list[str] | None = None) -> tuple[str, list[str]]:
    """Parameter rules from the catalog row, for the mode the files select (`kinds`: what each file
    is); each refusal names its field and what the mode takes. A parameter the mode cannot honour
    is refused, never dropped. Returns (mode, files)."""
    files = [f["url"] for f in params.get("files") or []]
    mode, files = choose_mode(spec, files, kinds)
    rules = spec.parameters(mode)
    where = spec.name if len(spec.modes) == 1 else f"{spec.name} ({mode})"
    prompt = (params.get("prompt") or "").strip()
    if "prompt" in params and not prompt and mode not in PROMPT_OPTIONAL and rules["prompt"]:
        raise ValidationError("prompt is required", field="prompt")
    if prompt and not rules["prompt"]:
        raise ValidationError(f"{where} takes no prompt; send an empty one", field="prompt")
    ratio = params.get("aspect_ratio")
    if ratio is not None and ratio not in rules["aspect_ratios"]:
        if not rules["aspect_ratios"]:
            raise ValidationError(f"{where} takes no aspect_ratio" + (
                ": the input image decides" if spec.kinds(mode) and spec.kinds(mode)[0] == "image" else ""),
                field="aspect_ratio")
        raise ValidationError(f"aspect_ratio '{ratio}' is not supported by {where}; use one of "
                              f"{', '.join(rules['aspect_ratios'])}", field="aspect_ratio")
    duration = params.get("duration")
    if duration is not None and not rules["duration"]:
        raise ValidationError(f"{where} takes no duration", field="duration")
    allowed = rules["durations"]
    if duration is not None and allowed and (duration != int(duration) or int(duration) not in allowed):
        shown = (f"whole seconds {allowed[0]}-{allowed[-1]}" if len(allowed) > 3 and allowed == list(
            range(allowed[0], allowed[-1] + 1)) else f"one of {', '.join(map(str, allowed))}")
        raise ValidationError(f"duration {duration:g} is not supported by {where}; use {shown}", field="duration")
    if duration is not None and spec.capability == "music" and not MUSIC_SECONDS[0] <= duration <= MUSIC_SECONDS[1]:
        raise ValidationError(f"duration must be {MUSIC_SECONDS[0]}-{MUSIC_SECONDS[1]} seconds for music",
                              field="duration")
    limit = rules.get("max_text_characters")
    if limit and len(params.get("text") or "") > limit:
        raise ValidationError(f"text has {len(params['text'])} characters; {where} takes at most {limit} in one "
                              "request", field="text")
    protected = sorted(spec.protected_options(mode) & set(options or {}))
    if protected:
        raise ValidationError(f"provider_options.{protected[0]} would override a field the gateway validates or "
                              f"prices for {where}; set it through the request's own field",
                              field=f"provider_options.{protected[0]}")
    for name in rules["required_provider_options"]:
        if (options or {}).get(name) in (None, ""):
            raise ValidationError(f"{where} needs provider_options.{name}", field=f"provider_options.{name}")
    return mode, files


# The spec's defaults for what a request leaves out (gateway-openapi.yaml: an image's aspect_ratio
# "1:1", a video's duration 5), applied where the mode takes that value; elsewhere the provider's own.
SPEC_DEFAULTS = {("image", "aspect_ratio"): "1:1", ("video", "duration"): 5}


def with_spec_defaults(spec: ModelSpec, mode: str, params: dict[str, Any]) -> None:
    """Fill in the spec's defaults that the request left out and the mode takes."""
    rules = spec.parameters(mode)
    ratio = SPEC_DEFAULTS.get((spec.capability, "aspect_ratio"))
    if ratio is not None and "aspect_ratio" not in params and ratio in rules["aspect_ratios"] and not spec.kinds(mode):
        params["aspect_ratio"] = ratio  # only when no input image could decide the shape instead
    seconds = SPEC_DEFAULTS.get((spec.capability, "duration"))
    if seconds is not None and "duration" not in params and rules["duration"] and (
            not rules["durations"] or seconds in rules["durations"]):
        params["duration"] = seconds


@dataclass
class Accepted:
    """A created job and the cache headers of its answer."""

    job: Job
    headers: dict[str, str]


async def check_urls(named: list[tuple[str, str]], base_public_url: str | tuple[str, ...]) -> None:
    """Refuse, with the field's name, any user URL the gateway must not fetch (SSRF). Our own file
    URLs pass (they are resolved locally, never fetched); a webhook is always checked."""
    named = [(field, url) for field, url in named if field == "webhook_url" or own_name(url, base_public_url) is None]
    results = await asyncio.gather(*(check_url(url) for _, url in named), return_exceptions=True)
    for (field, _), result in zip(named, results):
        if isinstance(result, UnsafeURL):
            raise ValidationError(f"{field}: {result}", field=field)
        if isinstance(result, BaseException):
            raise result


async def own_hashes(redis, named: list[tuple[str, str]], base_public_url: str | tuple[str, ...]) -> list[str] | None:
    """Content hashes of inputs that are all our own files (one round trip), else None: then the
    worker fetches and hashes them. An own URL that names nothing is the user's mistake."""
    lookups = []
    for field, url in named:
        own = own_name(url, base_public_url)
        if own is None:
            return None
        lookups.append((field, url, own_hash_lookup(*own)))
    if not lookups:
        return []
    pipe = redis.pipeline(transaction=False)
    for _, _, (key, hash_field, _) in lookups:
        pipe.hget(key, hash_field)
    hashes = []
    for (field, url, (_, _, encoding)), raw in zip(lookups, await pipe.execute()):
        sha = decode_own_hash(raw, encoding)
        if sha is None:
            raise ValidationError(f"{url} is not a file of this gateway (unknown or expired)",
                                  field=field.split(".")[0])
        hashes.append(sha)
    return hashes


async def create_job(
    store: AsyncJobStore, settings: Settings, *, account_id: str, capability: str, body: _Request,
    headers: Headers, also: Callable[[Job, dict[str, str]], Callable[[Any], None]] | None = None,
) -> Accepted:
    """Validate, answer from the cache when the inputs' hashes are known here, else queue the job.
    `also(job, headers)` returns extra writes for the creating transaction (idempotency)."""
    spec = resolve(body.model, capability, settings.passthrough_prices)
    params = body.model_dump(exclude={"model", "webhook_url", "webhook_events", "provider_order",
                                      "allow_pooled_fallback"}, exclude_none=True)
    urls = [f["url"] for f in params.get("files") or []]
    if is_passthrough(spec):
        plan, mode, files = await _passthrough_plan(store, settings, spec, body, params, urls)
    else:
        # Only when some mode takes that many files: otherwise no kind could make the request valid.
        kinds = (await file_kinds(urls, store.redis, settings.file_url_bases)
                 if urls and any(len(r.kinds(mode)) == len(urls) for r in ROUTES[spec.name] for mode in r.modes)
                 else None)
        plan, mode, files = await _plan(store, settings, spec, body, params, kinds, headers, account_id)
    raw_files = [(f"files.{i}.url", f.url) for i, f in enumerate(getattr(body, "files", None) or [])]
    if files:
        params["files"] = [{"url": f} for f in files]
    first = plan.first
    job = Job(
        job_id=new_job_id(),
        account=account_id,
        capability=capability,
        model=f"{first.provider}:{first.name}",
        provider=first.provider,
        endpoint=first.endpoints[mode],
        input=params,
        mode=mode,
        routes=[r.provider for r in plan.rest] or None,
    )
    # Priced from what was validated (the duration asked for or filled in, the text's characters), so
    # the hold, the balance check and the capture are for the work the provider will bill.
    return await accept(store, settings, job, body, headers, raw_files + named_inputs(params)[len(raw_files):],
                        price=first.price(mode, params), provider=first.provider, also=also,
                        byok_only=_byok_only(first))


def _byok_only(spec: ModelSpec) -> str:
    """Why a route runs only on the caller's own key, or "" when the pooled key may run it."""
    if spec.pooled:
        return ""
    if is_passthrough(spec):
        return (f"no price is set for {spec.provider}:{spec.name} (GENGATE_PASSTHROUGH_PRICES), so it runs only on "
                "your own key")
    return f"{spec.provider}:{spec.name} runs only on your own key"


async def _passthrough_plan(store: AsyncJobStore, settings: Settings, spec: ModelSpec, body: _Request,
                            params: dict[str, Any], urls: list[str]) -> tuple[RoutePlan, str, list[str]]:
    """A passthrough request is pinned by definition (no routes, no fallback) and has one mode; its
    prompt and files go where the endpoint's schema says (`provider_fields` in the job's input, read by
    the adapter). A default the caller did not send (speech's voice) is not part of it."""
    if body.provider_order:
        raise ValidationError("provider_order chooses among a model's providers; an endpoint id names one",
                              field="provider_order")
    for name in set(params) - body.model_fields_set - {"files", "provider_options"}:
        params.pop(name)
    kinds = await file_kinds(urls, store.redis, settings.file_url_bases) if urls else []
    fields = passthrough_fields(spec, params, body.model_fields_set, kinds)
    if fields:
        params["provider_fields"] = fields
    return RoutePlan(spec, ()), PASSTHROUGH, urls


async def _plan(store: AsyncJobStore, settings: Settings, spec: ModelSpec, body: _Request, params: dict[str, Any],
                kinds: list[str] | None, headers: Headers, account: str) -> tuple[RoutePlan, str, list[str]]:
    """The job's routes (api/routing.py) and the request validated on the first: (plan, mode, files).
    `params` gets the first route's defaults filled in."""
    options = params.get("provider_options")
    if pinned(body.model):
        if body.provider_order:
            raise ValidationError("provider_order chooses among a model's providers; a pinned `provider:model` "
                                  "takes none", field="provider_order")
        mode, files = check_params(spec, params, options, kinds)
        with_spec_defaults(spec, mode, params)
        return RoutePlan(spec, ()), mode, files
    policy = routing.policy_for(spec.name, settings)
    allowed = routing.ordered(spec.name, policy if policy not in routing.POLICIES else "catalog", lambda r: 0, {})
    candidates = routing.choose(allowed, body.provider_order)
    keyed = candidates if body.provider_order else await _keyed(store, settings, candidates, headers, account)
    candidates = keyed + [r for r in candidates if r not in keyed]
    first = candidates[0]
    mode, files = check_params(first, params, options, kinds)
    with_spec_defaults(first, mode, params)
    check = lambda route: check_params(route, params, options, kinds)  # noqa: E731
    # Each other route checked once: those that take the request exactly as validated.
    fits = [first, *(r for r in candidates[1:] if routing.takes_same_request(r, mode, check))]
    if not body.provider_order and policy in ("cheapest", "fastest") and len(fits) > 1:
        p50 = await fastest_p50(store.redis, spec.name, fits) if policy == "fastest" else {}
        rank = {r.provider: i for i, r in enumerate(routing.ordered(spec.name, policy, lambda r: r.price(mode, params),
                                                                      p50))}
        # The policy's order among the routes that have a key, then among those that have none.
        fits.sort(key=lambda r: (r not in keyed, rank[r.provider]))
        first = fits[0]
    if options or not settings.fallback:
        return RoutePlan(first, ()), mode, files
    rest = tuple(r for r in fits if r is not first and routing.usable_with_pooled_key(r, settings))
    return RoutePlan(first, rest), mode, files


async def _keyed(store: AsyncJobStore, settings: Settings, routes: list[ModelSpec], headers: Headers,
                 account: str) -> list[ModelSpec]:
    """The `routes` that have a key (the gateway's pooled key, the request's own key header, or a key
    the account saved), in their order; they go first, so an operator with keys for only some
    providers gets the model on those instead of a 400 for the first route's missing key. Reads the
    saved keys (one round trip) only when some route has neither of the others."""
    def has_key(route: ModelSpec, saved: bytes | None = None) -> bool:
        return routing.usable_with_pooled_key(route, settings) or HEADERS[route.provider] in headers or bool(saved)

    if len(routes) < 2 or all(map(has_key, routes)):
        return routes
    saved = await store.redis.hmget(keys.account_provider_keys(account), [r.provider for r in routes])
    return [r for r, s in zip(routes, saved) if has_key(r, s)]


async def accept(
    store: AsyncJobStore, settings: Settings, job: Job, options: _JobOptions, headers: Headers,
    urls: list[tuple[str, str]], *, price: int, provider: str | None = None,
    also: Callable[[Job, dict[str, str]], Callable[[Any], None]] | None = None, byok_only: str = "",
) -> Accepted:
    """Everything after a job's own validation, for generation and media jobs alike: the plan's
    request rate, URL safety, webhook, cache look-up (when the inputs' hashes are known here), the
    provider key (`provider`: None for jobs that call none), then admission (the plan's concurrency,
    the price held from the balance) and the writes that create the job and queue its first step.
    `also(job, headers)` adds writes to the creating script. `byok_only`: why the job may not run on the
    pooled key (it needs the caller's own), "" when it may.

    Round trips to Redis, for the usual job (no input URLs, so its cache key needs no I/O): one for
    the rate, the cache look-up and the account's saved provider key together, one to admit and
    create (besides authentication's). Jobs with input URLs look up the cache on their own after
    their URLs were checked."""
    job.cache_mode = mode_from_headers(headers.get("cache-control"))
    header_key = from_header(provider, headers) if provider else None
    inputs = named_inputs(job.input)
    if job.cache_mode != NO_STORE and not inputs:
        job.cache_key = compute_key(job.capability, job.model, job.mode, job.input, [])
    early = job.cache_key is not None and job.cache_mode == DEFAULT
    rate, cached, saved = await _first_round(store, settings, job, look_up=early,
                                             saved_key=provider if provider and header_key is None else None)
    if options.webhook_url:
        urls = [*urls, ("webhook_url", options.webhook_url)]
    await check_urls(urls, settings.file_url_bases)
    job.webhook_url = options.webhook_url
    job.webhook_events = sorted(set(options.webhook_events)) if options.webhook_events else None
    answer = {"Location": f"/v1/jobs/{job.job_id}", "X-Cache": "BYPASS" if job.cache_mode == NO_STORE else "MISS",
              **rate.headers()}
    if job.cache_mode != NO_STORE:
        if job.cache_key is None:
            hashes = await own_hashes(store.redis, inputs, settings.file_url_bases)
            if hashes is not None:
                job.cache_key = compute_key(job.capability, job.model, job.mode, job.input, hashes)
        if job.cache_key:
            answer["X-Cache-Key"] = public_key(job.cache_key)
        answer["X-Cache-TTL"] = str(settings.cache_ttl_seconds)
    if job.cache_key and job.cache_mode == DEFAULT:
        hit = await _hit(store, settings, job, cached if early else await _look_up(store, settings, job))
        if hit is not None:
            # A hit is free and takes no concurrency slot: nothing to admit.
            answer.update({"X-Cache": "HIT", "X-Cache-TTL": str(hit)})
            await store.create(job, settings, admit=False, also=also(job, answer) if also else None)
            return Accepted(job, answer)
    # Only a job that will call the provider needs a key: a hit answers even when none is configured.
    sealed_key = header_key or (saved_or_pooled(provider, saved, settings) if provider else None)
    if sealed_key is None and byok_only:
        header = HEADERS[provider] if provider else ""
        raise ValidationError(f"{byok_only}: send {header} or save a key with `gengate keys save-provider`",
                              field=header, provider=provider)
    job.byok = sealed_key is not None
    job.hold_cents = 0 if job.byok else price  # BYOK: the provider bills the user directly
    if job.byok and not getattr(options, "allow_pooled_fallback", False):
        job.routes = None  # the user's key for this provider never moves the job to the gateway's keys
    queue_key, message = step_message(SUBMIT, job.job_id, job.capability)
    try:
        verdict = await store.create(job, settings, queue_key=queue_key, message=message, sealed_key=sealed_key,
                                     recheck_at=time.time() + settings.step_lease_seconds,
                                     also=also(job, answer) if also else None)
    except ResponseError:
        # The script failed part way (a write Redis refused): give back the slot and hold it took.
        # Not on a lost connection: admission and creation are one script, so then both happened
        # or neither, and returning the hold of a job that exists would unbalance its capture.
        k, a = unadmit_args(job.account, job.job_id)
        await store.accounts.unadmit(keys=k, args=a)
        raise
    except (RedisConnectionError, RedisTimeoutError) as lost:
        # Redis may have run the script and gone away before answering, and a 503 for a job that then
        # runs and is charged would be wrong (RESILIENCE.md). Ask again once Redis is back: a job that
        # exists is answered 202 like any other.
        if not await _exists_after_all(store, job.job_id):
            raise UnavailableError(f"The job store went away while creating the job; it was not created "
                                   f"if GET /v1/jobs/{job.job_id} answers 404. Retry with an Idempotency-Key "
                                   "to be safe") from lost
        verdict = Admission(True)  # the script writes a job only once it is admitted
    _refused(job, verdict)
    return Accepted(job, answer)


async def _exists_after_all(store: AsyncJobStore, job_id: str) -> bool:
    """Whether the job was written, asking Redis for up to `UNKNOWN_OUTCOME_WAIT_SECONDS` (False when
    it stays unreachable: then nobody can tell, and the 503 says how to find out)."""
    deadline = time.monotonic() + UNKNOWN_OUTCOME_WAIT_SECONDS
    while True:
        try:
            return bool(await store.redis.exists(keys.job(job_id)))
        except (RedisConnectionError, RedisTimeoutError):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.25)


async def _first_round(
    store: AsyncJobStore, settings: Settings, job: Job, *, look_up: bool, saved_key: str | None
) -> tuple[RateDecision, tuple[bytes | None, int], bytes | None]:
    """The plan's request rate, and in the same round trip the cache entry (when `look_up`) and the
    account's saved key for provider `saved_key` (when given). Raises on a refused rate."""
    k, a = rate_args(job.account, settings)
    script = store.accounts.rate
    for attempt in (1, 2):
        # EVALSHA by hand: redis-py's own script-in-pipeline support asks SCRIPT EXISTS first, which
        # is one more round trip on every request. The script is loaded when Redis says it lacks it.
        pipe = store.redis.pipeline(transaction=False)
        pipe.evalsha(script.sha, len(k), *k, *a)
        if look_up:
            _cache_reads(pipe, settings, job)
        if saved_key:
            pipe.hget(keys.account_provider_keys(job.account), saved_key)
        try:
            results = await pipe.execute()
            break
        except NoScriptError:
            if attempt == 2:
                raise
            await store.redis.script_load(script.script)
    rate = rate_decision(results[0])
    if not rate.allowed:
        raise RateLimitError(f"Rate limit exceeded: {rate.limit} job-creating requests a minute on this plan",
                             retry_after=rate.retry_after, headers=rate.headers())
    cached = (results[1], results[2]) if look_up else (None, -2)
    return rate, cached, results[-1] if saved_key else None


def _refused(job: Job, verdict: Admission) -> None:
    if verdict.admitted:
        return
    if verdict.reason == "concurrency":
        raise RateLimitError(f"Too many jobs at once: this plan allows {verdict.value} queued or processing jobs",
                             retry_after=CONCURRENCY_RETRY_AFTER,
                             headers={"RateLimit-Policy": f'"concurrency";q={verdict.value}'})
    raise InsufficientBalanceError(
        f"Insufficient balance: this job costs {job.hold_cents} cents, {max(verdict.value, 0)} available")


def _cache_key(settings: Settings, job: Job) -> str:
    assert job.cache_key is not None
    return keys.cache(scope(job.account, settings.cache_shared_across_accounts), job.cache_key)


def _cache_reads(pipe: Any, settings: Settings, job: Job) -> None:
    """The cache entry and its TTL, as two commands of `pipe`."""
    key = _cache_key(settings, job)
    pipe.get(key)
    pipe.ttl(key)


async def _look_up(store: AsyncJobStore, settings: Settings, job: Job) -> tuple[bytes | None, int]:
    pipe = store.redis.pipeline(transaction=False)
    _cache_reads(pipe, settings, job)
    raw, ttl = await pipe.execute()
    return raw, ttl


async def _hit(store: AsyncJobStore, settings: Settings, job: Job, cached: tuple[bytes | None, int]) -> int | None:
    """On a hit (`cached`: the entry and its TTL), complete `job` in memory from the cached entry (its
    own output name, linked to the same stored content) and return the entry's remaining TTL; None
    on a miss."""
    raw, ttl = cached
    if raw is None:
        return None
    try:
        # Locally, hard links: one metadata write each, cheap enough for the event loop; in object
        # storage, a server-side copy, made from a thread.
        storage = get_storage()
        job.output, job.output_sha = await off_loop(storage, Entry.decode(raw).materialize, storage, job.job_id)
    except FileNotFoundError:
        await store.redis.delete(_cache_key(settings, job))  # the content is gone: the entry lies, forget it
        return None
    now = utcnow_iso()
    job.status, job.updated_at, job.completed_at = states.COMPLETED, now, now
    job.cache = {"hit": True, "key": public_key(job.cache_key)}
    return max(int(ttl), 0)
