"""The server's commands: `up` (a whole local gateway), `api`, `worker`, `flower`, `sim`, `config docs`,
and `keys create|webhook-secret|save-provider`. They need the server extra (`gengate[server]`);
gengate/cli.py imports this module only when one of them runs."""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import sys
import threading
from urllib.parse import urlsplit, urlunsplit

import redis

from gengate import procs
from gengate.config.catalog import PROVIDERS
from gengate.config.settings import get_settings


def _redis() -> redis.Redis:
    settings = get_settings()
    return redis.Redis.from_url(settings.resolved_redis_url(), **settings.redis_options())


def cmd_keys_create(args: argparse.Namespace) -> int:
    from gengate.jobs.apikeys import create_account, create_key
    from gengate.jobs.webhooks import ensure_secret

    r = _redis()
    account = args.account or create_account(r, email=args.email, plan=args.plan)
    key = create_key(r, account)
    print(f"account: {account}", file=sys.stderr)
    secret = ensure_secret(r, account)
    if secret is not None:  # shown once, when created; `keys webhook-secret` makes a new one
        print(f"webhook secret: {secret}")
    print(key)
    return 0


def cmd_keys_webhook_secret(args: argparse.Namespace) -> int:
    """Replace the account's webhook signing secret and print the new one (alone on the last line)."""
    from gengate.jobs import keys
    from gengate.jobs.webhooks import rotate_secret

    r = _redis()
    if not r.exists(keys.account(args.account)):
        print(f"no account {args.account!r}", file=sys.stderr)
        return 2
    secret = rotate_secret(r, args.account)
    print(f"new webhook secret for {args.account}; the previous one no longer verifies", file=sys.stderr)
    print(secret)
    return 0


def cmd_keys_save_provider(args: argparse.Namespace) -> int:
    """Save an account's own provider key (sealed), used when a request brings none in its headers."""
    from gengate.api.provider_keys import saved_key_fields
    from gengate.jobs import keys

    if args.provider not in PROVIDERS:
        print(f"unknown provider {args.provider!r}; one of {', '.join(PROVIDERS)}", file=sys.stderr)
        return 2
    # Only from standard input (typed without echo at a terminal): a key on the command line would be
    # in the process list and the shell's history.
    plain = (getpass.getpass(f"{args.provider} key: ") if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not plain:
        print("no key given: pass it on standard input", file=sys.stderr)
        return 2
    # The same fields as `PUT /v1/provider-keys/{provider}` writes.
    _redis().hset(keys.account_provider_keys(args.account), mapping=saved_key_fields(args.provider, plain))
    print(f"saved the {args.provider} key for {args.account}")
    return 0


def serve_asgi(app: str, host: str, port: int, workers: int) -> None:
    """uvicorn serving `app` (an import string) in this process; with `workers` > 1, its supervisor
    and that many processes. No directory is added to `sys.path` (uvicorn's command line would add
    the current one)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, workers=workers, access_log=False, timeout_graceful_shutdown=5)


def cmd_api(args: argparse.Namespace) -> int:
    s = get_settings()
    serve_asgi("gengate.api.app:app", args.host or s.api_host, args.port or s.api_port, args.workers or s.api_workers)
    return 0


def celery_worker_argv(args: argparse.Namespace) -> list[str]:
    """What `gengate worker` hands Celery: the threads pool, the queues, the concurrency."""
    s = get_settings()
    # JSON logs: no startup banner (it is printed, not logged); "celery@... ready." is still logged.
    quiet = ["--quiet"] if s.log_format == "json" else []
    from gengate.tasks.queues import ALL_QUEUES

    argv = [*quiet, "worker", "-Q", args.queues or ",".join(ALL_QUEUES), "--pool", "threads",
            "-c", str(args.concurrency or s.worker_concurrency), "-l", "info", "--without-mingle"]
    if args.hostname:
        argv += ["-n", args.hostname]
    return argv


def cmd_worker(args: argparse.Namespace) -> int:
    from gengate.workers.celery_app import create_app

    create_app().start(celery_worker_argv(args))
    return 0


def cmd_flower(args: argparse.Namespace) -> int:
    """Flower on the workers' task events. Credentials reach Flower through the environment
    (`FLOWER_BASIC_AUTH`), never the command line; without them it serves loopback only."""
    if args.basic_auth:
        os.environ["FLOWER_BASIC_AUTH"] = args.basic_auth
    auth = os.environ.get("FLOWER_BASIC_AUTH", "")
    if auth and not all(":" in pair for pair in auth.split(",")):
        print("basic auth must be user:password (several comma-separated)", file=sys.stderr)
        return 2
    if not auth:
        if args.address not in ("127.0.0.1", "localhost", "::1"):
            print(f"refusing to serve Flower on {args.address} without credentials: "
                  "set FLOWER_BASIC_AUTH=user:password (or --basic-auth)", file=sys.stderr)
            return 2
        print("Flower without basic auth, on loopback only; set FLOWER_BASIC_AUTH=user:password", file=sys.stderr)
    from gengate.workers.celery_app import create_app

    create_app().start(["flower", f"--address={args.address}", f"--port={args.port}"])
    return 0


def cmd_config_docs(args: argparse.Namespace) -> int:
    from gengate.config.docs import settings_table

    print(settings_table(), end="")
    return 0


def cmd_sim(args: argparse.Namespace) -> int:
    from gengate.sim.server import serve

    serve(args.host, args.port, ready=lambda url: print(f"SIM_READY {url}", flush=True))
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """One process tree for a newcomer. Ctrl-C stops everything it started."""
    s = get_settings()
    data = s.data_dir.resolve()
    run = data / "run"
    logs = data / "logs"
    run.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    children: list = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    recorded = run / "redis.url"
    try:
        env = dict(os.environ, GENGATE_DATA_DIR=str(data), PYTHONUNBUFFERED="1")
        if s.redis_url and procs.redis_answers(s.redis_url, **s.redis_options()):
            url = s.redis_url
            print(f"redis      {_without_password(url)} (configured)")
        else:
            if s.redis_url:
                print(f"redis      nothing answers at {_without_password(s.redis_url)}; starting a private one")
            password = s.redis_password.get_secret_value() if s.redis_password else None
            proc, url = procs.start_redis(data / "redis", password=password)
            children.append(proc)
            recorded.write_text(url)
            print(f"redis      {url} (private, data in {data / 'redis'})")
        env["GENGATE_REDIS_URL"] = url

        simulated = [name for name in PROVIDERS if getattr(s, name).api_key is None]
        if simulated:
            sim_proc, sim_url = procs.start_sim(env)
            children.append(sim_proc)
        for name in simulated:
            env[f"GENGATE_{name.upper()}__BASE_URL"] = f"{sim_url}/{name}"
            env[f"GENGATE_{name.upper()}__API_KEY"] = "simulator"
            print(f"{name:<10} simulator at {sim_url}/{name} (no GENGATE_{name.upper()}__API_KEY set)")

        from gengate.tasks.queues import ALL_QUEUES, MEDIA_QUEUE

        provider_queues = ",".join(q for q in ALL_QUEUES if q != MEDIA_QUEUE)
        children.append(procs.start(procs.worker_command(provider_queues), env, logs / "worker.log"))
        print(f"worker     1 process (queues {provider_queues}), logs in {logs / 'worker.log'}")
        # FFmpeg work is CPU-bound: a worker of its own with few threads, so it never starves provider steps.
        media_env = dict(env)
        if s.worker_metrics_port:  # two workers on one host: each needs its own metrics port
            media_env["GENGATE_WORKER_METRICS_PORT"] = str(s.worker_metrics_port + 1)
        children.append(procs.start(procs.worker_command(MEDIA_QUEUE, 2, "media@%h"), media_env,
                                    logs / "media-worker.log"))
        print(f"media      1 process (queue {MEDIA_QUEUE}), logs in {logs / 'media-worker.log'}")
        api = procs.start(procs.api_command(s.api_host, s.api_port), env, logs / "api.log")
        children.append(api)
        base = f"http://127.0.0.1:{s.api_port}"
        procs.wait_http(f"{base}/healthz", 30, api)
        print(f"api        {base} (docs at {base}/docs, logs in {logs / 'api.log'})")
        print(f"dashboard  {base}/ui (sign in with the key below)")

        from gengate.jobs.apikeys import create_account, create_key

        r = redis.Redis.from_url(url, **s.redis_options())
        key = create_key(r, create_account(r, email="dev@localhost", plan="dev"))
        print("\nReady. In another shell:\n")
        print(f"export GENGATE_API_KEY={key}")
        print(f"export GENGATE_BASE_URL={base}/v1")
        print('curl -s -X POST "$GENGATE_BASE_URL/image" -H "Authorization: Bearer $GENGATE_API_KEY" '
              "-H 'Content-Type: application/json' -d '{\"model\": \"flux-schnell\", \"prompt\": \"sunset over mountains\"}'")
        print("\nCtrl-C stops everything.", flush=True)
        while not stop.is_set():
            if any(c.poll() is not None for c in children):
                print("a gateway process exited; stopping", file=sys.stderr)
                return 1
            stop.wait(0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            procs.stop(child)
        recorded.unlink(missing_ok=True)


def _without_password(url: str) -> str:
    """The URL as printed: a password in it (redis://user:secret@host) shown as ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))
