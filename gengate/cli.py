"""The `gengate` command.

The client's commands, `generate` and `jobs` (cli_generate.py), need only the base install. The
server's commands (`up`, `api`, `worker`, `flower`, `sim`, `config`, `keys`, `accounts`, `credit`;
cli_server.py and cli_accounts.py) need the server extra: this module imports them only when one
runs, and says in one line how to install the extra when it is missing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable

from gengate.config.plans import PLANS

# What no server command runs without; all of them come with `gengate[server]`.
SERVER_MODULES = ("celery", "fastapi", "uvicorn", "redis", "pydantic_settings", "prometheus_client")
SERVER_EXTRA_HINT = 'pip install "gengate[server]"'


def missing_server_modules() -> list[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def _server(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A server command, imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        missing = missing_server_modules()
        if missing:
            print(f"`gengate {args.command}` is part of the gateway server, which is not installed "
                  f"(no {', '.join(missing)}): {SERVER_EXTRA_HINT}", file=sys.stderr)
            return 2
        return getattr(importlib.import_module(module), name)(args)

    return run


def _register_server(sub: argparse._SubParsersAction) -> argparse._SubParsersAction:
    server = "gengate.cli_server"
    sub.add_parser("up", help="run a whole local gateway (private Redis, simulators, API, worker)").set_defaults(
        fn=_server(server, "cmd_up"))
    p = sub.add_parser("api", help="run the HTTP API (uvicorn)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, help="API processes (default GENGATE_API_WORKERS, 1)")
    p.set_defaults(fn=_server(server, "cmd_api"), long_running=True)
    p = sub.add_parser("worker", help="run a Celery worker with the sweeper")
    p.add_argument("--queues", "-Q")
    p.add_argument("--concurrency", "-c", type=int)
    p.add_argument("--hostname", "-n")
    p.set_defaults(fn=_server(server, "cmd_worker"), long_running=True)
    p = sub.add_parser("flower", help="run Flower, the Celery monitor (live tasks, workers, queues)")
    p.add_argument("--port", type=int, default=5555)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--basic-auth", help="user:password; better in the environment as FLOWER_BASIC_AUTH")
    p.set_defaults(fn=_server(server, "cmd_flower"), long_running=True)
    config = sub.add_parser("config", help="configuration").add_subparsers(dest="config_command", required=True)
    config.add_parser("docs", help="print the table of every GENGATE_* setting (Markdown)").set_defaults(
        fn=_server(server, "cmd_config_docs"))
    p = sub.add_parser("sim", help="run the provider simulators")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.set_defaults(fn=_server(server, "cmd_sim"))
    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="create a key (and an account unless --account); prints the key last")
    p.add_argument("--account")
    p.add_argument("--email")
    p.add_argument("--plan", default="dev", choices=PLANS,
                   help="plan of the new account when no --account is given (dev: no limits, ample credit; "
                        "for customers use `gengate accounts create --plan ...`)")
    p.set_defaults(fn=_server(server, "cmd_keys_create"))
    p = keys.add_parser("save-provider", help="save an account's own provider key (BYOK), sealed; the key is "
                                               "read from standard input, never the command line")
    p.add_argument("--account", required=True)
    p.add_argument("--provider", required=True)
    p.set_defaults(fn=_server(server, "cmd_keys_save_provider"))
    p = keys.add_parser("webhook-secret", help="replace an account's webhook signing secret; prints the new one last")
    p.add_argument("--account", required=True)
    p.set_defaults(fn=_server(server, "cmd_keys_webhook_secret"))
    return keys


def _register_accounts(sub: argparse._SubParsersAction, keys_sub: argparse._SubParsersAction) -> None:
    """The operator's account commands (cli_accounts.py)."""
    accounts = "gengate.cli_accounts"
    acc = sub.add_parser("accounts", help="accounts, plans and limits").add_subparsers(dest="accounts_command",
                                                                                       required=True)
    p = acc.add_parser("create", help="create an account; prints its id alone on the last line")
    p.add_argument("--plan", choices=PLANS, default="free")
    p.add_argument("--email")
    p.add_argument("--credit", type=int, default=None, help="starting credit in cents (dev plan: ample by default)")
    p.set_defaults(fn=_server(accounts, "cmd_accounts_create"))
    p = acc.add_parser("show", help="plan, limits, balance, holds, live jobs")
    p.add_argument("account")
    p.set_defaults(fn=_server(accounts, "cmd_accounts_show"))
    p = acc.add_parser("plan", help="change an account's plan; --rpm / --concurrent set its own limits (0 = none)")
    p.add_argument("account")
    p.add_argument("plan", choices=PLANS)
    p.add_argument("--rpm", type=int)
    p.add_argument("--concurrent", type=int)
    p.set_defaults(fn=_server(accounts, "cmd_accounts_plan"))
    credit = sub.add_parser("credit", help="prepaid balance").add_subparsers(dest="credit_command", required=True)
    p = credit.add_parser("add", help="add credit (cents; negative takes it back)")
    p.add_argument("account")
    p.add_argument("cents", type=int)
    p.set_defaults(fn=_server(accounts, "cmd_credit_add"))
    p = keys_sub.add_parser("list", help="an account's keys (ids only: keys are shown once, at creation)")
    p.add_argument("--account", required=True)
    p.set_defaults(fn=_server(accounts, "cmd_keys_list"))
    p = keys_sub.add_parser("revoke", help="revoke a key (the key or its id); it answers 401 from then on")
    p.add_argument("key")
    p.set_defaults(fn=_server(accounts, "cmd_keys_revoke"))


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand; `long_running` marks those a deployment runs as a service (api, worker,
    flower: the compose file's commands are checked against them)."""
    from gengate import cli_generate  # the client side: generate, jobs

    parser = argparse.ArgumentParser(prog="gengate", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    keys = _register_server(sub)
    _register_accounts(sub, keys)
    cli_generate.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args) or 0


if __name__ == "__main__":
    sys.exit(main())
