"""The operator's account commands: `gengate accounts create|show|plan`, `gengate keys list|revoke`,
`gengate credit add` (their arguments are in cli.py). They talk to Redis directly (the operator runs
them where the gateway runs) and need the server extra."""

from __future__ import annotations

import argparse
import sys

import redis

from gengate.config.settings import get_settings
from gengate.jobs import accounts, keys, states


def _redis() -> redis.Redis:
    settings = get_settings()
    return redis.Redis.from_url(settings.resolved_redis_url(), **settings.redis_options())


def _exists(r: redis.Redis, account: str) -> bool:
    if r.exists(keys.account(account)):
        return True
    print(f"no account {account!r}", file=sys.stderr)
    return False


def cmd_accounts_create(args: argparse.Namespace) -> int:
    from gengate.jobs.apikeys import create_account

    account = create_account(_redis(), email=args.email, plan=args.plan, credit_cents=args.credit)
    print(account)  # alone on the last line, for scripts
    return 0


def cmd_accounts_show(args: argparse.Namespace) -> int:
    from gengate.jobs.apikeys import list_keys

    r = _redis()
    if not _exists(r, args.account):
        return 2
    profile = {k.decode(): v.decode() for k, v in r.hgetall(keys.account(args.account)).items()}
    rpm, conc = _limits(profile, get_settings())
    live = [j.decode() for j in r.zrange(keys.account_active(args.account), 0, -1)
            if (r.hget(keys.job(j.decode()), "status") or b'""').decode().strip('"') in (states.QUEUED, states.PROCESSING)]
    keyring = list_keys(r, args.account)
    print(f"account      {args.account}")
    print(f"email        {profile.get('email') or '-'}")
    print(f"plan         {profile.get('plan', 'free')}")
    print(f"limits       {rpm or 'unlimited'} job requests/min, {conc or 'unlimited'} concurrent jobs")
    print(f"balance      {int(profile.get('balance_cents', 0))} cents")
    print(f"holds        {int(profile.get('holds_cents', 0))} cents")
    print(f"available    {int(profile.get('balance_cents', 0)) - int(profile.get('holds_cents', 0))} cents")
    print(f"live jobs    {len(live)}{': ' + ', '.join(live) if live else ''}")
    print(f"keys         {sum(not k['revoked'] for k in keyring)} active, {sum(k['revoked'] for k in keyring)} revoked")
    return 0


def _limits(profile: dict[str, str], settings) -> tuple[int, int]:
    table = {p.split(":")[0]: p.split(":")[1:] for p in accounts.plan_table(settings).split()}
    rpm, conc = (int(x) for x in table.get(profile.get("plan", "free"), ["0", "0"]))
    return int(profile.get("rpm", rpm)), int(profile.get("concurrency", conc))


def cmd_accounts_plan(args: argparse.Namespace) -> int:
    r = _redis()
    if not _exists(r, args.account):
        return 2
    accounts.set_plan(r, args.account, args.plan)
    accounts.set_limits(r, args.account, rpm=args.rpm, concurrency=args.concurrent)
    print(f"{args.account}: plan {args.plan}")
    return 0


def cmd_credit_add(args: argparse.Namespace) -> int:
    r = _redis()
    if not _exists(r, args.account):
        return 2
    balance = accounts.credit(r, args.account, args.cents)
    print(f"{args.account}: balance {balance} cents")
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from gengate.jobs.apikeys import list_keys

    r = _redis()
    if not _exists(r, args.account):
        return 2
    for k in list_keys(r, args.account):
        print(f"{k['key_id']}  {k['created_at']}  {'revoked' if k['revoked'] else 'active'}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from gengate.jobs.apikeys import parse_key_id, revoke_key

    key_id = parse_key_id(args.key) or args.key  # the whole key or its id
    if not revoke_key(_redis(), key_id):
        print(f"no key {key_id!r}", file=sys.stderr)
        return 2
    print(f"revoked {key_id}")
    return 0
